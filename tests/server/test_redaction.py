"""REDACT (IRCv3 draft/message-redaction): own messages, a room's operators, direct
conversations, errors, and the history that forgets what was redacted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Client, RunningServer, in_room, register_account, say

CAPS = "draft/message-redaction message-tags echo-message server-time batch"


@pytest.fixture
def history_server(make_server: Callable[..., RunningServer], tmp_path) -> RunningServer:
    return make_server(db=str(tmp_path / "chat.db"), replay_lines=5)


@pytest.fixture
def open_client(history_server: RunningServer, clients: list[Client]):
    def open_one(nick: str, caps: str = CAPS, room: str | None = "#dev") -> Client:
        return in_room(history_server.port, clients, nick, caps, room)

    return open_one


def texts(client: Client, target: str) -> list[str]:
    client.send(f"CHATHISTORY LATEST {target} * 50")
    start = client.expect("BATCH")
    found = []
    while (msg := client.recv()) is not None and msg.command != "BATCH":
        found.append(msg.params[-1])
    assert start.params[1] == "chathistory"
    return found


def test_cap_is_offered(open_client) -> None:
    alice = open_client("alice", caps="", room=None)
    offered = alice.cap_ls()
    assert "draft/message-redaction" in offered


def test_own_message_in_a_room_is_redacted_for_all_and_forgotten(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    alice.expect("JOIN", "#dev")
    kept = say(alice, "#dev", "stays")
    gone = say(alice, "#dev", "oops")
    bob.expect("PRIVMSG", "#dev", "oops")
    alice.send(f"REDACT #dev {gone} :typo")
    echo = alice.expect("REDACT")
    assert echo.params == ("#dev", gone, "typo")
    assert echo.source.startswith("alice!")
    seen = bob.expect("REDACT")
    assert seen.params == ("#dev", gone, "typo")
    assert "msgid" in seen.tags
    history = texts(bob, "#dev")
    assert "oops" not in history and "stays" in history
    assert kept
    carol = open_client("carol", caps="", room=None)  # no chathistory: replayed on JOIN
    carol.send("JOIN #dev")
    replayed = [m.params[-1] for m in carol.collect("366")]
    replayed += [m.params[-1] for m in carol.quiet() if m.command == "PRIVMSG"]
    assert any("stays" in text for text in replayed)
    assert not any("oops" in text for text in replayed)


def test_someone_elses_message_is_refused(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    msgid = say(alice, "#dev", "mine")
    bob.expect("PRIVMSG", "#dev", "mine")
    bob.send(f"REDACT #dev {msgid}")
    fail = bob.expect("FAIL")
    assert fail.params[:4] == ("REDACT", "REDACT_FORBIDDEN", "#dev", msgid)
    assert "mine" in texts(alice, "#dev")


def test_a_room_operator_may_redact_anyones(open_client) -> None:
    op = open_client("op")  # who makes the room runs it
    spammer = open_client("spammer")
    op.expect("JOIN", "#dev")
    msgid = say(spammer, "#dev", "spam")
    op.expect("PRIVMSG", "#dev", "spam")
    op.send(f"REDACT #dev {msgid} :spam")
    assert op.expect("REDACT").params == ("#dev", msgid, "spam")
    assert spammer.expect("REDACT").params == ("#dev", msgid, "spam")
    assert "spam" not in texts(op, "#dev")


def test_unknown_msgid_and_not_a_member(open_client) -> None:
    alice = open_client("alice")
    alice.send("REDACT #dev nosuchid")
    assert alice.expect("FAIL").params[:4] == ("REDACT", "UNKNOWN_MSGID", "#dev", "nosuchid")
    msgid = say(alice, "#dev", "here")
    alice.send(f"REDACT #elsewhere {msgid}")
    assert alice.expect("FAIL").params[:3] == ("REDACT", "INVALID_TARGET", "#elsewhere")
    alice.send("JOIN #other")
    alice.expect("366")
    alice.send(f"REDACT #other {msgid}")  # a message of another room: not found there
    assert alice.expect("FAIL").params[:2] == ("REDACT", "UNKNOWN_MSGID")


def test_direct_message_redaction(history_server: RunningServer, open_client) -> None:
    register_account(history_server.port, "alice", "hunter22")
    register_account(history_server.port, "bob", "hunter22")
    alice = open_client("alice", room=None)
    bob = open_client("bob", room=None)
    for client in (alice, bob):
        client.send(f"PRIVMSG NickServ :IDENTIFY {client.nick} hunter22")
        client.expect("900")
    msgid = say(alice, "bob", "psst")
    bob.expect("PRIVMSG", "bob", "psst")
    bob.send(f"REDACT alice {msgid}")  # not bob's
    assert bob.expect("FAIL").params[:2] == ("REDACT", "REDACT_FORBIDDEN")
    alice.send(f"REDACT bob {msgid}")
    assert alice.expect("REDACT").params == ("bob", msgid)
    assert bob.expect("REDACT").params == ("bob", msgid)
    assert "psst" not in texts(bob, "alice")


def test_without_the_cap_no_redact_line(open_client) -> None:
    alice = open_client("alice")
    plain = open_client("plain", caps="")
    msgid = say(alice, "#dev", "oops")
    plain.expect("PRIVMSG", "#dev", "oops")
    alice.send(f"REDACT #dev {msgid}")
    alice.expect("REDACT")
    plain.send("PING done")
    before = plain.collect("PONG")
    assert not [m for m in before if m.command in ("REDACT", "NOTICE")]


def test_someone_outside_a_conversation_is_told_the_message_is_unknown(
    history_server: RunningServer, open_client
) -> None:
    for name in ("alice", "bob", "carol"):
        register_account(history_server.port, name, "hunter22")
    people = [open_client(name, room=None) for name in ("alice", "bob", "carol")]
    for client in people:
        client.send(f"PRIVMSG NickServ :IDENTIFY {client.nick} hunter22")
        client.expect("900")
    alice, bob, carol = people
    msgid = say(alice, "bob", "between us")
    bob.expect("PRIVMSG", "bob", "between us")
    for target in ("alice", "bob"):  # (the same answer as for a msgid that never was)
        carol.send(f"REDACT {target} {msgid}")
        assert carol.expect("FAIL").params[:4] == ("REDACT", "UNKNOWN_MSGID", target, msgid)
    assert [m for m in alice.sync() + bob.sync() if m.command == "REDACT"] == []
    assert "between us" in texts(bob, "alice")


def test_an_operator_of_another_room_is_no_operator_here(open_client) -> None:
    bob = open_client("bob", room="#bobs")  # bob runs #bobs
    alice = open_client("alice", room="#alices")  # alice runs #alices...
    alice.send("JOIN #bobs")  # ...and is only a member of #bobs
    alice.expect("366")
    mine = say(alice, "#bobs", "from alice")
    alice.send(f"REDACT #bobs {mine}")  # her own: yes
    assert alice.expect("REDACT").params == ("#bobs", mine)
    assert bob.expect("REDACT").params == ("#bobs", mine)
    theirs = say(bob, "#bobs", "from bob")
    alice.expect("PRIVMSG", "#bobs", "from bob")
    alice.send(f"REDACT #bobs {theirs}")
    assert alice.expect("FAIL").params[:4] == ("REDACT", "REDACT_FORBIDDEN", "#bobs", theirs)
    alice.send(f"REDACT #alices {theirs}")  # not a message of the room she runs
    assert alice.expect("FAIL").params[:4] == ("REDACT", "UNKNOWN_MSGID", "#alices", theirs)
    assert [m for m in bob.sync() if m.command == "REDACT"] == []


def test_a_reaction_is_redacted_and_a_tagmsg_not_kept_is_unknown(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    msgid = say(bob, "#dev", "nice")
    alice.expect("PRIVMSG", "#dev", "nice")
    alice.send(f"@+draft/react=x;+draft/reply={msgid} TAGMSG #dev")
    reaction = alice.expect("TAGMSG", "#dev").tags["msgid"]
    bob.expect("TAGMSG", "#dev")
    alice.send(f"REDACT #dev {reaction}")
    assert alice.expect("REDACT").params == ("#dev", reaction)
    assert bob.expect("REDACT").params == ("#dev", reaction)
    alice.send("@+typing=active TAGMSG #dev")  # a typing notice is not kept
    typing = alice.expect("TAGMSG", "#dev").tags["msgid"]
    alice.send(f"REDACT #dev {typing}")
    assert alice.expect("FAIL").params[:4] == ("REDACT", "UNKNOWN_MSGID", "#dev", typing)
