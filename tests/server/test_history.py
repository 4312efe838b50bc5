"""History in a real SQLite file: replay on join, CHATHISTORY, restarts, and durability.

Every message the server has confirmed to its sender (by its echo, or by answering what
the sender sent next) is in the history, in order, exactly once, even if the server is
killed right after."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.conftest import Client, RunningServer

HISTORY = "draft/chathistory batch server-time message-tags"


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "chat.db")


@pytest.fixture
def history_server(make_server: Callable[..., RunningServer], db: str) -> RunningServer:
    return make_server(db=db, replay_lines=3)


@pytest.fixture
def join(history_server: RunningServer):
    clients: list[Client] = []

    def open_client(nick: str, caps: str = "", room: str | None = "#dev") -> Client:
        client = Client(history_server.port)
        clients.append(client)
        client.register(nick, caps, join=False)
        if room is not None:
            client.send(f"JOIN {room}")
            client.expect("366")
        return client

    yield open_client
    for client in clients:
        client.close()


def say(client: Client, room: str, *texts: str) -> None:
    for text in texts:
        client.send(f"PRIVMSG {room} :{text}")
    client.sync()


def batch_of(client: Client) -> tuple[list, str]:
    """Read one whole batch; return its messages and its type and parameters."""
    start = client.expect("BATCH")
    ref = start.params[0][1:]
    inside = client.collect("BATCH")
    end = inside.pop()
    assert end.params == ("-" + ref,)
    assert all(m.tags.get("batch") == ref for m in inside)
    return inside, " ".join(start.params[1:])


# -- replay on join ---------------------------------------------------------------------------


def test_who_joins_sees_the_last_lines_in_a_batch(join):
    alice = join("alice")
    say(alice, "#dev", "one", "two", "three", "four")
    bob = join("bob", caps="batch server-time message-tags", room=None)
    bob.send("JOIN #dev")
    replayed, kind = batch_of(bob)
    assert kind == "chathistory #dev"
    assert [m.params for m in replayed] == [("#dev", t) for t in ("two", "three", "four")]
    assert all(m.source.startswith("alice!") and m.tags["time"] for m in replayed)
    assert len({m.tags["msgid"] for m in replayed}) == 3


def test_a_plain_client_gets_the_time_in_the_text(join):
    alice = join("alice")
    say(alice, "#dev", "hello")
    plain = join("plain", room=None)
    plain.send("JOIN #dev")
    plain.expect("366")
    text = plain.expect("PRIVMSG").params[1]
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\d \d\d:\d\d UTC\] hello", text)


def test_after_a_restart_and_in_a_room_made_again_the_old_lines_are_said_to_be_old(make_server, db):
    """Joining the default room shows the lines kept on disk, though the server restarted
    since (read before the join, never under the world lock). An unregistered room that
    emptied is gone: one made again by the same name replays the old one's lines after a
    notice saying they were said before it was made again (so a line `chat send` left in
    an empty room still reaches who comes next); CHATHISTORY, asked for, has all."""
    first = make_server(db=db, replay_lines=2)
    alice = Client(first.port)
    alice.register("alice", join=True)
    alice.send("JOIN #dev")
    say(alice, "#dev", "one", "two", "three")
    say(alice, "#lobby", "hello lobby")
    alice.send("PART #dev")  # empty: the room is gone
    alice.sync()
    bob = Client(first.port)
    bob.register("bob", "batch server-time", join=False)
    bob.send("JOIN #dev")
    bob.expect("366")
    seen = [m for m in bob.sync() if m.command in ("NOTICE", "BATCH", "PRIVMSG")]
    assert seen[0].command == "NOTICE"
    assert (
        seen[0].params[-1] == "#dev was empty: the lines below were said before it was made again"
    )
    assert [m.params[1] for m in seen if m.command == "PRIVMSG"] == ["two", "three"]
    bob.send("PRIVMSG #dev :new room")
    bob.sync()
    fetcher = Client(first.port)
    fetcher.register("fetcher", HISTORY, join=False)
    fetcher.send("JOIN #dev")
    fetcher.expect("366")
    fetcher.send("CHATHISTORY LATEST #dev * 10")
    assert [m.params[1] for m in batch_of(fetcher)[0]] == ["one", "two", "three", "new room"]
    for client in (alice, bob, fetcher):
        client.close()
    first.stop()

    second = make_server(db=db, replay_lines=2)
    carol = Client(second.port)
    carol.register("carol", "batch server-time", join=True)  # the default room: no notice
    assert [m.params[1] for m in batch_of(carol)[0]] == ["hello lobby"]
    carol.close()


def test_bots_and_history_fetching_clients_get_no_replay(join):
    alice = join("alice")
    say(alice, "#dev", "hello")
    bot = join("bot", room=None)
    bot.send("MODE bot +B")
    bot.send("JOIN #dev")
    fetcher = join("fetcher", caps=HISTORY, room=None)
    fetcher.send("JOIN #dev")
    for client in (bot, fetcher):
        client.expect("366")
        assert [m for m in client.sync() if m.command in ("BATCH", "PRIVMSG")] == []


# -- CHATHISTORY ------------------------------------------------------------------------------


def fetch(client: Client, request: str) -> list[str]:
    client.send(f"CHATHISTORY {request}")
    found, _ = batch_of(client)
    return [m.params[1] for m in found]


def test_chathistory_latest_before_after_around_between(join):
    alice = join("alice", caps=HISTORY)
    say(alice, "#dev", *(f"m{i}" for i in range(10)))
    assert fetch(alice, "LATEST #dev * 3") == ["m7", "m8", "m9"]
    alice.send("CHATHISTORY LATEST #dev * 10")
    found, _ = batch_of(alice)
    ids = {m.params[1]: m.tags["msgid"] for m in found}
    assert fetch(alice, f"BEFORE #dev msgid={ids['m5']} 2") == ["m3", "m4"]
    assert fetch(alice, f"AFTER #dev msgid={ids['m5']} 2") == ["m6", "m7"]
    assert fetch(alice, f"AROUND #dev msgid={ids['m5']} 4") == ["m3", "m4", "m5", "m6"]
    assert fetch(alice, f"BETWEEN #dev msgid={ids['m2']} msgid={ids['m6']} 10") == [
        "m3",
        "m4",
        "m5",
    ]
    assert fetch(alice, f"BETWEEN #dev msgid={ids['m6']} msgid={ids['m2']} 2") == ["m4", "m5"]
    assert fetch(alice, f"LATEST #dev msgid={ids['m7']} 10") == ["m8", "m9"]
    assert fetch(alice, "AFTER #dev timestamp=2000-01-01T00:00:00.000Z 1") == ["m0"]
    assert fetch(alice, "BEFORE #dev timestamp=2100-01-01T00:00:00Z 2") == ["m8", "m9"]


def test_chathistory_targets_lists_rooms_with_recent_messages(join):
    alice = join("alice", caps=HISTORY)
    alice.send("JOIN #ops")
    alice.expect("366")
    say(alice, "#dev", "in dev")
    say(alice, "#ops", "in ops")
    alice.send(
        "CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z "
        "timestamp=2100-01-01T00:00:00.000Z 10"
    )
    found, kind = batch_of(alice)
    assert kind == "draft/chathistory-targets"
    assert [m.params[1] for m in found] == ["#ops", "#dev"]  # latest first


def test_chathistory_errors(join):
    alice = join("alice", caps=HISTORY)
    join("bob", room="#secret")
    for request, code in [
        ("LATEST #secret * 10", "INVALID_TARGET"),  # not a member
        ("LATEST #dev * 0", "INVALID_PARAMS"),
        ("LATEST #dev * many", "INVALID_PARAMS"),
        ("BEFORE #dev yesterday 10", "INVALID_PARAMS"),
        ("BEFORE #dev msgid=nope 10", "INVALID_MSGREFTYPE"),
        ("BETWEEN #dev * 10", "INVALID_PARAMS"),
        ("FORWARD #dev * 10", "UNKNOWN_COMMAND"),
    ]:
        alice.send(f"CHATHISTORY {request}")
        fail = alice.expect("FAIL")
        assert fail.params[:2] == ("CHATHISTORY", code), request
    alice.send("PING still-here")
    assert alice.expect("PONG").params[-1] == "still-here"


def test_without_a_database_history_is_not_offered(connect):
    client = connect("alice")
    assert "draft/chathistory" not in client.cap_ls()
    client.send("CHATHISTORY LATEST #lobby * 10")
    assert client.expect("FAIL").params[:2] == ("CHATHISTORY", "MESSAGE_ERROR")


# -- surviving restarts and kills -------------------------------------------------------------


def test_history_survives_a_restart(make_server, db):
    first = make_server(db=db)
    alice = Client(first.port)
    alice.register("alice", join=False)
    alice.send("JOIN #dev")
    say(alice, "#dev", "before the restart")
    alice.close()
    first.stop()
    second = make_server(db=db)
    bob = Client(second.port)
    bob.register("bob", HISTORY, join=False)
    bob.send("JOIN #dev")
    bob.expect("366")
    assert fetch(bob, "LATEST #dev * 10") == ["before the restart"]
    bob.close()


def start_serve(db: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatcli", "serve", "--port", "0", "--db", db, "--flood-rate", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    return proc, int(banner.split(" on ")[1].split()[0].rsplit(":", 1)[1])


def test_every_confirmed_message_survives_sigkill_in_order_exactly_once(db):
    proc, port = start_serve(db)
    sender = Client(port)
    confirmed: list[str] = []
    try:
        sender.register("sender", "echo-message message-tags", join=False)
        sender.send("JOIN #dev")
        sender.expect("366")
        deadline = time.monotonic() + 10
        sent = 0
        while len(confirmed) < 300 and time.monotonic() < deadline:
            for _ in range(20):  # keep messages in flight, as a busy client does
                sender.send(f"PRIVMSG #dev :message {sent}")
                sent += 1
            for _ in range(20):
                echo = sender.expect("PRIVMSG")
                confirmed.append(echo.tags["msgid"])
        # In the middle of traffic: more is on its way, unconfirmed, when the kill comes.
        for _ in range(50):
            sender.send(f"PRIVMSG #dev :message {sent}")
            sent += 1
        proc.kill()  # SIGKILL; TerminateProcess on Windows: no chance to clean up
        proc.wait(10)
    finally:
        sender.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    proc, port = start_serve(db)
    reader = Client(port)
    try:
        reader.register("reader", HISTORY, join=False)
        reader.send("JOIN #dev")
        reader.expect("366")
        reader.send("CHATHISTORY LATEST #dev * 1000")
        found, _ = batch_of(reader)
        kept = [m.tags["msgid"] for m in found]
        assert kept[: len(confirmed)] == confirmed  # in order, none missing, none twice
        assert len(set(kept)) == len(kept)
        texts = [m.params[1] for m in found]
        assert texts == [f"message {i}" for i in range(len(texts))]
    finally:
        reader.close()
        proc.terminate()
        proc.wait(10)


def test_one_request_returns_at_most_max_chathistory_and_isupport_says_so(make_server, db):
    running = make_server(db=db, max_chathistory=4)
    alice = Client(running.port)
    burst = alice.register("alice", HISTORY, join=False)
    assert "CHATHISTORY=4" in [t for m in burst if m.command == "005" for t in m.params]
    alice.send("JOIN #dev")
    alice.expect("366")
    say(alice, "#dev", *(f"m{i}" for i in range(10)))
    assert fetch(alice, "LATEST #dev * 100") == ["m6", "m7", "m8", "m9"]
    assert fetch(alice, "AFTER #dev timestamp=2000-01-01T00:00:00.000Z 9") == [
        "m0", "m1", "m2", "m3",
    ]  # fmt: skip
    alice.close()


def test_history_keeps_at_most_the_limit_per_room(make_server, db):
    running = make_server(db=db, history_per_target=5)
    alice = Client(running.port)
    alice.register("alice", HISTORY, join=False)
    alice.send("JOIN #dev")
    alice.expect("366")
    say(alice, "#dev", *(f"m{i}" for i in range(12)))
    assert running.server.store is not None and running.server.store.sync()
    assert fetch(alice, "LATEST #dev * 100") == [f"m{i}" for i in range(7, 12)]
    alice.close()
