"""Nobody inherits an account, its messages or its rooms; password work is bounded; a
registered nick's messages reach only its owner. Against the real server and SQLite file."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import sys
import time

import pytest

from chatcli.passwords import hash_password
from chatcli.protocol import numerics as n
from chatcli.server.store import MIGRATIONS, Store
from tests.conftest import Client
from tests.server.test_accounts import plain, start_sasl

PASSWORD = "correct-horse"
OPER_PASSWORD = "s3cret"


@pytest.fixture
def accounts_server(make_server, tmp_path):
    return make_server(
        db=str(tmp_path / "chat.db"),
        operators=(("admin", hash_password(OPER_PASSWORD)),),
        login_backoff=0.3,
    )


def connect(server, clients, nick, caps="", join=False) -> Client:
    client = Client(server.port)
    clients.append(client)
    client.register(nick, caps, join)
    return client


def account(server, clients, nick, caps="batch draft/chathistory server-time") -> Client:
    """A connection logged in to the account ``nick``, registered first if need be."""
    client = connect(server, clients, nick, caps)
    client.send(f"REGISTER * * :{PASSWORD}")
    if client.collect("REGISTER", "FAIL")[-1].command == "FAIL":
        assert nickserv(client, f"IDENTIFY {PASSWORD}").startswith("You are now logged in")
    return client


def nickserv(client: Client, text: str) -> str:
    """NickServ's answer to ``text`` (other notices, and its warnings about a registered
    nick, skipped)."""
    client.send(f"PRIVMSG NickServ :{text}")
    while True:
        notice = client.expect("NOTICE")
        if notice.source.startswith("NickServ!") and "is a registered" not in notice.params[-1]:
            return notice.params[-1]


def gone(client: Client) -> None:
    """``client`` quits, and is gone (its nick free) once this returns."""
    client.send("QUIT")
    assert client.closed()


def chanserv(client: Client, text: str) -> str:
    client.send(f"PRIVMSG ChanServ :{text}")
    return client.expect("NOTICE").params[-1]


def latest(client: Client, target: str) -> list[str]:
    """The texts CHATHISTORY LATEST gives ``client`` of its conversation with ``target``."""
    client.send(f"CHATHISTORY LATEST {target} * 50")
    batch = client.collect("BATCH")
    assert batch[-1].params[0].startswith("+")
    return [msg.params[-1] for msg in client.collect("BATCH")[:-1]]


def cpu_of(action) -> float:
    """Process CPU seconds (the server runs in this process) that ``action`` cost."""
    started = time.process_time()
    action()
    return time.process_time() - started


# -- dropped accounts -----------------------------------------------------------------------


def test_a_dropped_name_is_reserved_and_its_messages_and_rooms_go_with_it(accounts_server, clients):
    alice = account(accounts_server, clients, "alice")
    bob = account(accounts_server, clients, "bob")
    bob.send("PRIVMSG alice :our secret plan")
    alice.expect("PRIVMSG")
    alice.send("PRIVMSG bob :agreed")
    bob.expect("PRIVMSG")
    assert latest(alice, "bob") == ["our secret plan", "agreed"]
    bob.send("JOIN #bobroom")
    bob.expect("366")
    assert "registered to bob" in chanserv(bob, "REGISTER #bobroom")
    watcher = connect(accounts_server, clients, "watcher")
    watcher.send("JOIN #bobroom")
    watcher.expect("366")

    assert nickserv(bob, "DROP wrong-password") == "Invalid password: the account is kept."
    assert nickserv(bob, f"DROP {PASSWORD}") == "Account bob dropped; the name stays reserved."
    notice = watcher.expect("NOTICE", "#bobroom")
    assert "no longer registered" in notice.params[-1]
    bob.send("QUIT")
    assert bob.closed()

    newcomer = connect(accounts_server, clients, "BOB", "batch draft/chathistory")
    newcomer.send(f"REGISTER * * :{PASSWORD}")
    assert newcomer.expect("FAIL").params[1] == "ACCOUNT_EXISTS"
    assert nickserv(newcomer, "INFO") == "bob was dropped; the name stays reserved."

    admin = connect(accounts_server, clients, "admin")
    admin.send(f"OPER admin {OPER_PASSWORD}")
    admin.expect(n.RPL_YOUREOPER)
    assert nickserv(newcomer, "ERASE bob").startswith("Only server operators")
    assert nickserv(admin, "ERASE bob") == "bob is free to be registered again."

    newcomer.send(f"REGISTER * * :{PASSWORD}")
    assert newcomer.expect("REGISTER").params[0] == "SUCCESS"
    assert latest(newcomer, "alice") == []  # bob's conversation is not the newcomer's
    assert latest(alice, "BOB") == []  # and it is gone from alice's side too
    newcomer.send("JOIN #bobroom")
    names = newcomer.collect("366")
    assert not any(m.command == "MODE" for m in names)
    assert "@BOB" not in " ".join(m.params[-1] for m in names if m.command == n.RPL_NAMREPLY)
    assert chanserv(newcomer, "DROP #bobroom").startswith("Only the founder")


def test_a_dropped_founders_room_passes_to_its_next_registered_operator(accounts_server, clients):
    bob = account(accounts_server, clients, "bob")
    carol = account(accounts_server, clients, "carol")
    for who in (bob, carol):
        who.send("JOIN #team")
        who.expect("366")
    assert "registered to bob" in chanserv(bob, "REGISTER #team")
    bob.send("MODE #team +o carol")  # saved: carol's account runs the room too
    carol.expect("MODE", "#team")

    assert "dropped" in nickserv(bob, f"DROP {PASSWORD}")
    notice = carol.expect("NOTICE", "#team")
    assert "now belongs to the next of its registered operators" in notice.params[-1]
    assert "registered by carol" in chanserv(carol, "INFO #team")
    assert "registered by carol" in chanserv(bob, "INFO #team")


def test_schema_3_rekeys_live_conversations_and_deletes_what_dropped_accounts_left(tmp_path):
    """A database from before stable ids: a conversation with an account dropped then
    (``ghost``) would have passed to whoever registered that name again."""
    path = tmp_path / "chat.db"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        for script in MIGRATIONS[:2]:
            assert isinstance(script, str)
            db.executescript(script)
        db.execute("PRAGMA user_version = 2")
        for name in ("alice", "bob"):
            db.execute("INSERT INTO accounts VALUES (?, ?, ?, ?)", (name, name, "x", 1))
        rows = [
            ("m1", "dm:alice\x00bob", "hello bob"),
            ("m2", "dm:alice\x00ghost", "hello ghost"),
            ("m3", "dm:~zed\x00bob", "from a guest"),
            ("m4", "#room", "in the room"),
        ]
        for msgid, target, text in rows:
            db.execute(
                "INSERT INTO messages (msgid, at, target, command, source, recipient, text) "
                "VALUES (?, 1, ?, 'PRIVMSG', 'x!x@x', 'x', ?)",
                (msgid, target, text),
            )
        db.execute("INSERT INTO pending VALUES ('bob', 1)")
        db.execute("INSERT INTO pending VALUES ('ghost', 2)")
        for room, founder, operators in (("#kept", "ghost", "ghost bob"), ("#gone", "ghost", "")):
            db.execute(
                "INSERT INTO rooms (name, display, founder, created, operators) "
                "VALUES (?, ?, ?, 1, ?)",
                (room, room, founder, operators),
            )
    store = Store(path)
    store.open()
    try:
        alice, bob = store.account("alice"), store.account("bob")
        assert alice is not None and bob is not None and alice.id != bob.id
        assert [s.text for s in store.latest(f"dm:{alice.identity}\x00{bob.identity}", 9)] == [
            "hello bob"
        ]
        assert [s.text for s in store.latest(f"dm:{bob.identity}\x00~zed", 9)] == []
        assert [s.text for s in store.latest(f"dm:~zed\x00{bob.identity}", 9)] == ["from a guest"]
        assert [s.text for s in store.latest("#room", 9)] == ["in the room"]
        assert [s.text for s in store.take_pending(bob.id)] == ["hello bob"]
        with contextlib.closing(sqlite3.connect(path)) as db:
            kept = db.execute("SELECT COUNT(*) FROM messages WHERE text = 'hello ghost'")
            assert kept.fetchone()[0] == 0
        rooms = {room.name: room for room in store.rooms()}
        assert set(rooms) == {"#kept"}
        assert rooms["#kept"].founder == bob.identity
        assert rooms["#kept"].operators == (bob.identity,)
    finally:
        store.close()


# -- passwords ------------------------------------------------------------------------------


def test_set_password_needs_the_current_password(accounts_server, clients):
    alice = account(accounts_server, clients, "alice")
    assert nickserv(alice, "SET PASSWORD new-password").startswith("Usage: SET PASSWORD")
    answer = nickserv(alice, "SET PASSWORD wrong-guess new-password")
    assert answer == "The current password is not right: the password is unchanged."
    assert nickserv(alice, f"SET PASSWORD {PASSWORD} new-password") == "Password changed."
    other = connect(accounts_server, clients, "other")
    assert nickserv(other, f"IDENTIFY alice {PASSWORD}") == "Invalid account or password."
    assert nickserv(other, "IDENTIFY alice new-password").startswith("You are now logged in")


def test_registering_a_taken_name_hashes_nothing(accounts_server, clients):
    gone(account(accounts_server, clients, "alice"))
    squatter = connect(accounts_server, clients, "alice")
    squatter.sync()
    spent = cpu_of(lambda: (squatter.send("REGISTER * * :whatever"), squatter.expect("FAIL")))
    assert spent < 0.025, f"{spent * 1000:.0f} ms of CPU: a hash is about 50"


def test_unknown_names_cost_what_a_wrong_password_costs(make_server, tmp_path, clients):
    """Neither the reply nor its time tells an unknown operator or account from a known one
    with a wrong password."""
    running = make_server(
        db=str(tmp_path / "chat.db"),
        operators=(("admin", hash_password(OPER_PASSWORD)),),
        login_backoff=0,
    )
    client = connect(running, clients, "prober")
    gone(account(running, clients, "alice"))
    client.send("OPER warmup x")  # the first unknown name makes the dummy hash once
    client.expect(n.ERR_PASSWDMISMATCH)

    def answer(line: str, numeric: str) -> tuple[float, tuple[str, ...]]:
        replies: list[tuple[str, ...]] = []
        spent = cpu_of(lambda: (client.send(line), replies.append(client.expect(numeric).params)))
        return spent, replies[0]

    for unknown, known, numeric in (
        ("OPER nobody x", "OPER admin x", n.ERR_PASSWDMISMATCH),
        ("PRIVMSG NickServ :IDENTIFY nobody x", "PRIVMSG NickServ :IDENTIFY alice x", "NOTICE"),
    ):
        unknown_cpu, unknown_reply = min(answer(unknown, numeric) for _ in range(2))
        known_cpu, known_reply = min(answer(known, numeric) for _ in range(2))
        assert unknown_reply == known_reply
        assert unknown_cpu > known_cpu / 2, (unknown, unknown_cpu, known_cpu)


def test_one_address_may_spend_only_so_many_hashes(make_server, tmp_path, clients):
    """hash_burst hashes at once, then one per hash_interval, whatever the names tried
    (and successes count too)."""
    running = make_server(
        db=str(tmp_path / "chat.db"),
        exempt_loopback=False,
        hash_burst=2,
        hash_interval=0.4,
        login_backoff=0,
    )
    client = connect(running, clients, "prober")
    took = []
    for i in range(4):
        started = time.monotonic()
        assert nickserv(client, f"IDENTIFY name{i} x") == "Invalid account or password."
        took.append(time.monotonic() - started)
    assert max(took[:2]) < 0.35, took  # the burst, at once
    assert sum(took) >= 2 * 0.4, took  # then the 4th hash no sooner than 2 intervals on


def test_one_account_may_cost_only_so_many_hashes_from_anywhere(make_server, tmp_path, clients):
    running = make_server(
        db=str(tmp_path / "chat.db"), hash_burst=2, hash_interval=0.4, login_backoff=0
    )
    alice = account(running, clients, "alice")  # REGISTER: the first hash
    started = time.monotonic()
    assert nickserv(alice, f"SET PASSWORD {PASSWORD} another") == "Password changed."  # 2
    assert time.monotonic() - started >= 0.35  # 3 hashes in all: over the burst of 2


@pytest.mark.skipif(sys.platform != "linux", reason="needs 127.0.0.2 to be loopback")
def test_oper_failures_are_counted_per_operator_name_too(accounts_server, clients):
    guesser = connect(accounts_server, clients, "guesser")
    for _ in range(3):  # FREE_FAILURES, from 127.0.0.1
        guesser.send("OPER admin wrong")
        guesser.expect(n.ERR_PASSWDMISMATCH)
    elsewhere = Client(accounts_server.port)
    clients.append(elsewhere)
    elsewhere.sock.close()
    elsewhere.sock = socket.create_connection(
        ("127.0.0.1", accounts_server.port), timeout=5, source_address=("127.0.0.2", 0)
    )
    elsewhere.register("elsewhere", join=False)
    started = time.monotonic()
    elsewhere.send("OPER admin wrong")
    elsewhere.expect(n.ERR_PASSWDMISMATCH)
    assert time.monotonic() - started >= accounts_server.config.login_backoff


# -- registered nicks -----------------------------------------------------------------------


def test_messages_to_a_registered_nick_wait_for_its_owner_while_another_holds_it(
    make_server, tmp_path, clients
):
    running = make_server(db=str(tmp_path / "chat.db"), nick_grace=30.0)
    gone(account(running, clients, "alice"))
    mallory = connect(running, clients, "mallory")
    mallory.send("NICK alice")
    mallory.expect("NICK")
    carol = connect(running, clients, "carol")
    carol.send("PRIVMSG alice :for alice only")
    away = carol.expect(n.RPL_AWAY)
    assert away.params[1:] == (
        "alice",
        "Not logged in as its owner: your message waits for the owner",
    )
    assert not [m for m in mallory.quiet() if m.command == "PRIVMSG"]

    owner = connect(running, clients, "alice2", "batch server-time")
    owner.send(f"PRIVMSG NickServ :IDENTIFY alice {PASSWORD}")
    got = owner.expect("PRIVMSG")  # what waited comes with the login
    assert got.source.startswith("carol!") and got.params[-1] == "for alice only"


def test_strict_reservation_keeps_a_registered_nick_for_sasl(make_server, tmp_path, clients):
    running = make_server(db=str(tmp_path / "chat.db"), nick_reservation="strict")
    gone(account(running, clients, "alice"))
    mallory = connect(running, clients, "mallory")
    mallory.send("NICK alice")
    refusal = mallory.expect(n.ERR_NICKNAMEINUSE)
    assert refusal.params[1] == "alice" and "registered account" in refusal.params[-1]

    impostor = Client(running.port)
    clients.append(impostor)
    impostor.send("NICK alice")
    impostor.send("USER alice 0 * :Not Alice")
    assert impostor.expect(n.ERR_NICKNAMEINUSE).params[:2] == ("*", "alice")
    impostor.send("NICK notalice")
    assert impostor.expect(n.RPL_WELCOME).params[0] == "notalice"

    owner = Client(running.port)
    clients.append(owner)
    start_sasl(owner, "alice")
    owner.send(f"AUTHENTICATE {plain('alice', PASSWORD)}")
    owner.expect(n.RPL_SASLSUCCESS)
    owner.send("CAP END")
    assert owner.expect(n.RPL_WELCOME).params[0] == "alice"


def test_a_conversation_is_read_back_by_the_account_name_while_its_owner_is_away(
    accounts_server, clients
):
    """Conversations are kept under accounts' ids; CHATHISTORY and TARGETS still name them
    by the account's name, online or not, and a client's own last line is in them."""
    alice = account(accounts_server, clients, "alice")
    bob = account(accounts_server, clients, "bob")
    alice.send("PRIVMSG bob :first")
    bob.expect("PRIVMSG")
    bob.send("PRIVMSG alice :second")
    assert latest(bob, "alice") == ["first", "second"]  # at once: its own line included
    bob.send("QUIT")
    assert bob.closed()
    assert latest(alice, "bob") == ["first", "second"]
    alice.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z "
               "timestamp=2100-01-01T00:00:00.000Z 10")  # fmt: skip
    alice.expect("BATCH")
    targets = [m.params[1] for m in alice.collect("BATCH")[:-1]]
    assert targets == ["bob"]


def test_who_registers_a_name_again_cannot_redact_its_former_owners_messages(
    accounts_server, clients
):
    caps = "draft/message-redaction message-tags echo-message"
    bob = account(accounts_server, clients, "bob", caps)
    bob.send("JOIN #plans")
    bob.expect("366")
    keeper = connect(accounts_server, clients, "keeper")  # (the room stays, run by bob)
    keeper.send("JOIN #plans")
    keeper.expect("366")
    bob.send("PRIVMSG #plans :said by the first bob")
    msgid = bob.expect("PRIVMSG").tags["msgid"]
    assert nickserv(bob, f"DROP {PASSWORD}") == "Account bob dropped; the name stays reserved."
    gone(bob)
    admin = connect(accounts_server, clients, "admin")
    admin.send(f"OPER admin {OPER_PASSWORD}")
    admin.expect(n.RPL_YOUREOPER)
    assert nickserv(admin, "ERASE bob") == "bob is free to be registered again."
    newcomer = account(accounts_server, clients, "bob", caps)
    newcomer.send("JOIN #plans")
    newcomer.expect("366")
    newcomer.send(f"REDACT #plans {msgid}")
    fail = newcomer.expect("FAIL")
    assert fail.params[:2] == ("REDACT", "REDACT_FORBIDDEN")
    newcomer.send("PRIVMSG #plans :mine")  # its own, after the account was made, it may
    mine = newcomer.expect("PRIVMSG").tags["msgid"]
    newcomer.send(f"REDACT #plans {mine}")
    assert newcomer.expect("REDACT").params[:2] == ("#plans", mine)
