"""Details of the protocol that IRC clients and bots rely on, each as the specifications
(Modern IRC, IRCv3) describe it: found by comparing chatcli with other servers."""

from __future__ import annotations

import pytest

from tests.conftest import Client, RunningServer

PASSWORD = "correct-horse"
HISTORY_CAPS = "batch draft/chathistory server-time echo-message message-tags"


@pytest.fixture
def db_server(make_server, tmp_path) -> RunningServer:
    return make_server(db=str(tmp_path / "chat.db"))


def connect(server: RunningServer, clients: list[Client], nick: str, caps: str = "") -> Client:
    client = Client(server.port)
    clients.append(client)
    client.register(nick, caps, join=False)
    return client


def account(server: RunningServer, clients: list[Client], nick: str, caps: str = "") -> Client:
    """A connection logged in to a new account ``nick``."""
    client = connect(server, clients, nick, caps)
    client.send(f"REGISTER * * :{PASSWORD}")
    assert client.expect("REGISTER").params[0] == "SUCCESS"
    return client


def latest(client: Client, target: str) -> list[str]:
    """The texts CHATHISTORY LATEST gives ``client`` for ``target``."""
    client.send(f"CHATHISTORY LATEST {target} * 50")
    opened = client.expect("BATCH")
    assert opened.params[0].startswith("+")
    return [msg.params[-1] for msg in client.collect("BATCH")[:-1]]


def test_an_account_reads_back_its_conversation_with_someone_not_logged_in(db_server, clients):
    """Both sides' lines of a conversation between an account and a nick are kept; the
    account reads them back by the nick, in order."""
    alice = account(db_server, clients, "alice", HISTORY_CAPS)
    guest = connect(db_server, clients, "guest", HISTORY_CAPS)
    alice.send("PRIVMSG guest :hello guest")
    guest.expect("PRIVMSG")
    guest.send("PRIVMSG alice :hello alice")
    alice.expect("PRIVMSG", "alice")
    alice.sync()
    assert latest(alice, "guest") == ["hello guest", "hello alice"]
    assert latest(alice, "GUEST") == ["hello guest", "hello alice"]


def test_the_nick_side_never_reads_the_conversation_back(db_server, clients):
    """Whoever holds the nick later, logged in or not, is not given what was said to the
    nick before: not by the nick, and not once it is an account of that name."""
    alice = account(db_server, clients, "alice", HISTORY_CAPS)
    guest = connect(db_server, clients, "guest", HISTORY_CAPS)
    alice.send("PRIVMSG guest :for the guest of the moment")
    guest.expect("PRIVMSG")
    alice.sync()
    assert latest(guest, "alice") == []
    guest.send("QUIT")
    assert guest.closed()
    owner = account(db_server, clients, "guest", HISTORY_CAPS)
    assert latest(owner, "alice") == []
