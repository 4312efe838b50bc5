"""Reactions (a TAGMSG with ``+draft/react`` and ``+draft/reply``) are kept in the history
with the messages they refer to, replayed only to who reads message tags, and go when the
message they refer to is redacted; no other TAGMSG is kept."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chatcli.protocol import Message
from tests.conftest import Client, RunningServer, in_room, register_account, say

CAPS = "message-tags batch echo-message server-time draft/chathistory draft/message-redaction"


@pytest.fixture
def chat(make_server: Callable[..., RunningServer], tmp_path) -> RunningServer:
    return make_server(db=str(tmp_path / "chat.db"), replay_lines=10)


@pytest.fixture
def open_client(chat: RunningServer, clients: list[Client]):
    def open_one(nick: str, caps: str = CAPS, room: str | None = "#dev") -> Client:
        return in_room(chat.port, clients, nick, caps, room)

    return open_one


def react(client: Client, target: str, msgid: str, emoji: str = "👍") -> str:
    client.send(f"@+draft/react={emoji};+draft/reply={msgid} TAGMSG {target}")
    return client.expect("TAGMSG", target).tags["msgid"]


def history(client: Client, target: str) -> list[Message]:
    client.send(f"CHATHISTORY LATEST {target} * 50")
    start = client.expect("BATCH")
    assert start.params[1] == "chathistory"
    found = []
    while (msg := client.recv()) is not None and msg.command != "BATCH":
        found.append(msg)
    return found


def test_a_reaction_in_a_room_is_kept_and_replayed_by_chathistory(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    msgid = say(alice, "#dev", "ship it?")
    reaction = react(bob, "#dev", msgid)
    seen = history(alice, "#dev")
    assert [m.command for m in seen] == ["PRIVMSG", "TAGMSG"]
    kept = seen[1]
    assert kept.source.startswith("bob!")
    assert kept.params == ("#dev",)
    assert kept.tags["+draft/react"] == "👍"
    assert kept.tags["+draft/reply"] == msgid
    assert kept.tags["msgid"] == reaction
    assert "time" in kept.tags


def test_a_join_replays_reactions_only_to_who_reads_tags(open_client) -> None:
    alice = open_client("alice")
    msgid = say(alice, "#dev", "lunch?")
    react(alice, "#dev", msgid, "🍕")
    tagged = open_client("carol", caps="message-tags batch", room=None)
    tagged.send("JOIN #dev")
    seen = tagged.collect("366") + tagged.quiet()
    reactions = [m for m in seen if m.command == "TAGMSG"]
    assert len(reactions) == 1 and reactions[0].tags["+draft/reply"] == msgid
    plain = open_client("dave", caps="", room=None)
    plain.send("JOIN #dev")
    seen = plain.collect("366") + plain.quiet()
    assert not [m for m in seen if m.command == "TAGMSG"]
    assert [m for m in seen if m.command == "PRIVMSG" and m.params[-1].endswith("lunch?")]


def test_chathistory_without_message_tags_never_shows_a_tagmsg(open_client) -> None:
    alice = open_client("alice")
    msgid = say(alice, "#dev", "hello")
    react(alice, "#dev", msgid)
    bare = open_client("bob", caps="batch draft/chathistory")
    seen = history(bare, "#dev")
    assert [m.command for m in seen] == ["PRIVMSG"]


def test_a_typing_notice_or_a_reaction_without_reply_is_not_kept(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    msgid = say(alice, "#dev", "hello")
    alice.send("@+typing=active TAGMSG #dev")
    bob.expect("TAGMSG", "#dev")
    alice.send("@+draft/react=👍 TAGMSG #dev")  # (to no message)
    bob.expect("TAGMSG", "#dev")
    alice.send(f"@+draft/reply={msgid} TAGMSG #dev")  # (no reaction)
    bob.expect("TAGMSG", "#dev")
    alice.send(f"@+draft/react=👍;+draft/reply={'x' * 65} TAGMSG #dev")  # (no such msgid)
    bob.expect("TAGMSG", "#dev")
    assert [m.command for m in history(bob, "#dev")] == ["PRIVMSG"]


def test_a_reaction_in_a_direct_conversation_is_kept(open_client, chat) -> None:
    register_account(chat.port, "alice", "alice-pass")
    register_account(chat.port, "bob", "bob-pass")
    alice = open_client("alice", room=None)
    bob = open_client("bob", room=None)
    for client, password in ((alice, "alice-pass"), (bob, "bob-pass")):
        client.send(f"NS IDENTIFY {password}")
        client.expect("900")
    msgid = say(alice, "bob", "ready?")
    react(bob, "alice", msgid, "✅")
    seen = history(alice, "bob")
    assert [m.command for m in seen] == ["PRIVMSG", "TAGMSG"]
    assert seen[1].tags["+draft/react"] == "✅" and seen[1].tags["+draft/reply"] == msgid


def test_redacting_a_message_takes_its_reactions_with_it(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    stays = say(alice, "#dev", "stays")
    goes = say(alice, "#dev", "goes")
    react(bob, "#dev", stays, "👍")
    react(bob, "#dev", goes, "👎")
    alice.send(f"REDACT #dev {goes}")
    alice.expect("REDACT")
    seen = history(bob, "#dev")
    assert [(m.command, m.tags.get("+draft/reply")) for m in seen] == [
        ("PRIVMSG", None),
        ("TAGMSG", stays),
    ]
    carol = open_client("carol", caps="message-tags batch", room=None)
    carol.send("JOIN #dev")
    seen = carol.collect("366") + carol.quiet()
    assert [m.tags.get("+draft/reply") for m in seen if m.command == "TAGMSG"] == [stays]


def test_a_reaction_can_be_redacted_itself(open_client) -> None:
    alice = open_client("alice")
    msgid = say(alice, "#dev", "hello")
    reaction = react(alice, "#dev", msgid)
    alice.send(f"REDACT #dev {reaction}")
    alice.expect("REDACT")
    assert [m.command for m in history(alice, "#dev")] == ["PRIVMSG"]


def test_a_reaction_taken_back_is_kept_after_it_so_the_history_ends_without_it(
    open_client,
) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    msgid = say(alice, "#dev", "ship it?")
    react(bob, "#dev", msgid)
    bob.send(f"@+draft/unreact=👍;+draft/reply={msgid} TAGMSG #dev")
    bob.expect("TAGMSG", "#dev")
    kept = [m for m in history(alice, "#dev") if m.command == "TAGMSG"]
    assert [("+draft/react" in m.tags, "+draft/unreact" in m.tags) for m in kept] == [
        (True, False),
        (False, True),
    ]
    assert all(m.tags["+draft/reply"] == msgid for m in kept)
    alice.send(f"REDACT #dev {msgid}")  # the message goes, and what was said of it
    alice.expect("REDACT")
    assert [m for m in history(alice, "#dev") if m.command == "TAGMSG"] == []
