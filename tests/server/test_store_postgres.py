"""The store on PostgreSQL (``--db postgresql://...``): the same behaviours as on SQLite,
two nodes sharing one database, and a PostgreSQL that is absent or restarts.

Against a real PostgreSQL of the session's own (tests/components.py), a new database per
test; no mocks. A few representative tests of the SQLite suite run here again on it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from chatcli.server import store as store_module
from chatcli.server.store import Outcome, Store, Stored, StoreError
from tests.components import Postgres, free_port
from tests.conftest import Client
from tests.server import test_history, test_rooms
from tests.server import test_store_failures as failures

# The SQLite suite's fixtures, on a PostgreSQL database instead of a file (``db`` below).
history_server = test_history.history_server
join = test_history.join


@pytest.fixture
def db(pg_url: str) -> str:
    return pg_url


def message(n: int, target: str = "#dev") -> Stored:
    return Stored(0, f"msg{n}", 1_000 + n, target, "PRIVMSG", "a!a@h", None, target, f"m{n}", "")


# -- what the SQLite suite checks, on PostgreSQL ----------------------------------------------


def test_chathistory_answers_from_postgresql(join):
    test_history.test_chathistory_latest_before_after_around_between(join)


def test_history_survives_a_restart_of_the_server(make_server, db):
    test_history.test_history_survives_a_restart(make_server, db)


def test_accounts_and_a_registered_room_are_kept_across_a_restart(make_server, db, clients):
    test_rooms.test_a_registered_room_keeps_topic_modes_key_and_operators(make_server, db, clients)


def test_direct_messages_wait_for_an_offline_account(make_server, db, clients):
    test_rooms.test_direct_messages_wait_for_an_offline_account(make_server, db, clients)


# -- several nodes on one database ------------------------------------------------------------


def test_two_nodes_share_the_history_and_take_waiting_messages_once(pg_url):
    """Each node records what it took, once; every node reads all of it; a message that
    waited for an account is delivered by one node only, however many ask at once."""
    nodes = [Store(pg_url), Store(pg_url)]
    opening = [threading.Thread(target=node.open, name=f"open {i}") for i, node in enumerate(nodes)]
    for thread in opening:  # at once: the schema is made once, and both find it
        thread.start()
    for thread in opening:
        thread.join(10)
    first, second = nodes
    try:
        assert first.is_open and second.is_open
        assert first.secret("cloak") == second.secret("cloak")
        assert first.wait(first.record(message(1)))
        assert second.wait(second.record(message(2)))
        assert second.wait(second.record(message(1)))  # once kept, it is not kept twice
        for node in nodes:
            assert [m.text for m in node.latest("#dev", 10)] == ["m1", "m2"]
        conversation = "dm:@7\x00~bob"
        for n in range(3, 23):
            first.record(message(n, conversation), pending_for=[7])
        assert first.sync()
        assert [m.text for m in second.latest(conversation, 1)] == ["m22"]

        taken: dict[int, list[str]] = {}
        ready = threading.Barrier(2, timeout=5)

        def take(i: int) -> None:
            ready.wait()
            taken[i] = [m.msgid for m in nodes[i].take_pending(7)]

        takers = [threading.Thread(target=take, args=(i,), name=f"take {i}") for i in (0, 1)]
        for thread in takers:
            thread.start()
        for thread in takers:
            thread.join(10)
        assert sorted(taken[0] + taken[1], key=lambda m: int(m[3:])) == [
            f"msg{n}" for n in range(3, 23)
        ]
        assert second.take_pending(7) == [] and first.take_pending(7) == []
    finally:
        for node in nodes:
            node.close()


# -- PostgreSQL absent, or restarting ---------------------------------------------------------


def test_an_unreachable_postgresql_stops_start_up_with_one_line():
    port = free_port()  # nothing listens there
    url = f"postgresql://chat:s3cret@127.0.0.1:{port}/chat"
    done = subprocess.run(
        [sys.executable, "-m", "chatcli", "serve", "--port", "0", "--db", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(
        f"chat: cannot use the database postgresql://chat@127.0.0.1:{port}/chat: "
    )
    assert "Connection refused" in done.stderr
    assert "s3cret" not in done.stderr


def test_a_database_that_does_not_exist_is_named(postgres: Postgres):
    store = Store(postgres.url("nowhere"))
    with pytest.raises(StoreError) as refused:
        store.open()
    assert str(refused.value).startswith(
        f"cannot use the database postgresql://postgres@127.0.0.1:{postgres.port}/nowhere: "
    )
    assert 'database "nowhere" does not exist' in str(refused.value)
    assert not store.is_open


def test_a_restart_of_postgresql_fails_writes_then_they_resume_by_themselves(
    postgres: Postgres, pg_url, monkeypatch
):
    """While PostgreSQL is down, writes are settled not kept at once (their senders told)
    and the store says it is failing; once it is back the store connects again, by itself,
    and what was kept is exactly what was confirmed kept."""
    monkeypatch.setattr(store_module, "RETRY_MIN", 0.1)
    monkeypatch.setattr(store_module, "RETRY_MAX", 0.2)
    store = Store(pg_url)
    store.open()
    outcomes: dict[str, Outcome] = {}
    told: list[str] = []

    def write(n: int) -> Outcome:
        ticket = store.record(message(n), on_lost=told.append)
        outcomes[f"msg{n}"] = store.outcome(ticket, timeout=10)
        return outcomes[f"msg{n}"]

    try:
        assert write(0) is Outcome.KEPT
        postgres.stop()
        try:
            assert write(1) is Outcome.NOT_KEPT
            assert write(2) is Outcome.NOT_KEPT
            health = store.health()
            assert health.failing_since is not None
            assert health.reason == "the server's database is unavailable"
            assert told == [health.reason] * 2
            assert store.ping() is not None
            with pytest.raises(StoreError):
                store.latest("#dev", 10)
        finally:
            postgres.start()
        n, deadline = 3, time.monotonic() + 10
        while write(n) is not Outcome.KEPT:
            assert time.monotonic() < deadline, "writing did not resume"
            n += 1
            time.sleep(0.05)
        assert store.health().ok
        assert store.ping() is None
        kept = [m.msgid for m in store.latest("#dev", 100)]
        assert kept == [msgid for msgid, got in outcomes.items() if got is Outcome.KEPT]
        assert store.fatal is None
    finally:
        store.close()


def test_while_postgresql_restarts_senders_are_warned_and_the_history_is_what_was_confirmed(
    make_server, postgres: Postgres, pg_url, clients, monkeypatch
):
    """As on a full disk (test_store_failures): messages are delivered all the same, each
    sender told of every one not kept, STATS d says the store is failing; then it is kept
    again, by itself, and the history holds exactly what was confirmed."""
    monkeypatch.setattr(store_module, "RETRY_MIN", 0.1)
    monkeypatch.setattr(store_module, "RETRY_MAX", 0.2)
    running = make_server(db=pg_url, operators=(failures.OPER,))
    alice, bob, admin = Client(running.port), Client(running.port), Client(running.port)
    clients.extend([alice, bob, admin])
    alice.register("alice", failures.SENDER_CAPS)
    bob.register("bob")
    admin.register("admin", join=False)
    admin.send("OPER admin s3cret")
    admin.expect("381")
    kept, lost = ["before"], []
    assert failures.say(alice, "#lobby", "before")[0]
    assert bob.expect("PRIVMSG", "#lobby").params[-1] == "before"
    postgres.stop()
    try:
        confirmed, _ = failures.say(alice, "#lobby", "while down")
        assert not confirmed
        lost.append("while down")
        assert bob.expect("PRIVMSG", "#lobby").params[-1] == "while down"  # delivered
        assert failures.stats_store(admin).startswith("store failing since ")
    finally:
        postgres.start()
    failures.say_until_kept(alice, "after", kept, lost, 10)
    assert failures.stats_store(admin).startswith("store ok")
    assert failures.history(running) == kept
