"""Registered rooms (ChanServ) survive restarts; direct messages wait for offline accounts.

Against the real server and a real SQLite file, restarted on the same file."""

from __future__ import annotations

import pytest

from tests.conftest import Client

PASSWORD = "correct-horse"


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "chat.db")


def account_client(server, clients, nick: str, caps: str = "") -> Client:
    """A client that registers (first time) or logs in to the account ``nick``."""
    client = Client(server.port)
    clients.append(client)
    client.register(nick, caps, join=False)
    client.send(f"REGISTER * * :{PASSWORD}")
    if client.collect("REGISTER", "FAIL")[-1].command == "FAIL":  # it exists: log in
        client.send(f"PRIVMSG NickServ :IDENTIFY {PASSWORD}")
        client.expect("900")  # (REGISTER SUCCESS logs in too, 900 first)
    return client


def chanserv(client: Client, text: str) -> str:
    client.send(f"PRIVMSG ChanServ :{text}")
    return client.expect("NOTICE").params[-1]


def test_a_registered_room_keeps_topic_modes_key_and_operators(make_server, db, clients):
    first = make_server(db=db)
    alice = account_client(first, clients, "alice")
    alice.send("JOIN #team")
    alice.expect("366")
    assert "registered to alice" in chanserv(alice, "REGISTER #team")
    alice.send("TOPIC #team :Sprint 12")
    alice.send("MODE #team +kt s3cret")
    alice.expect("MODE")
    alice.sync()
    assert first.server.store is not None and first.server.store.sync()
    first.stop()

    second = make_server(db=db)
    outsider = Client(second.port)
    clients.append(outsider)
    outsider.register("outsider", join=False)
    outsider.send("JOIN #team")
    outsider.expect("475")  # the key survived
    outsider.send("JOIN #team s3cret")
    assert outsider.expect("332").params[-1] == "Sprint 12"
    outsider.expect("366")
    alice = account_client(second, clients, "alice")
    alice.send("JOIN #team s3cret")
    names = alice.expect("353")
    assert "@alice" in names.params[-1].split()  # its operator gets +o back
    assert "registered by alice" in chanserv(outsider, "INFO #team")


def test_only_a_logged_in_operator_registers_and_only_the_founder_drops(make_server, db, clients):
    server = make_server(db=db)
    alice = account_client(server, clients, "alice")
    bob = account_client(server, clients, "bob")
    alice.send("JOIN #team")
    alice.expect("366")
    bob.send("JOIN #team")
    bob.expect("366")
    assert "Only an operator" in chanserv(bob, "REGISTER #team")
    guest = Client(server.port)
    clients.append(guest)
    guest.register("guest", join=False)
    assert "Log in first" in chanserv(guest, "REGISTER #team")
    assert "registered to alice" in chanserv(alice, "REGISTER #team")
    assert "founder" in chanserv(bob, "DROP #team")
    assert "registered by alice" in chanserv(bob, "INFO #team")
    assert "no longer registered" in chanserv(alice, "DROP #team")
    assert "There is no room" in chanserv(alice, "INFO #nowhere")


def test_direct_messages_wait_for_an_offline_account(make_server, db, clients):
    server = make_server(db=db)
    bob = account_client(server, clients, "bob")
    bob.send("QUIT")
    assert bob.closed()
    alice = Client(server.port)
    clients.append(alice)
    alice.register("alice", join=False)
    alice.send("PRIVMSG bob :are you there?")
    assert alice.expect("301").params[1] == "bob"  # kept for their return
    alice.send("PRIVMSG nobody :hello?")
    alice.expect("401")  # not an account: nobody to keep it for
    back = account_client(server, clients, "bob", caps="batch server-time")
    got = back.expect("PRIVMSG")
    assert got.source.startswith("alice!") and got.params == ("bob", "are you there?")
    assert got.tags["time"]
