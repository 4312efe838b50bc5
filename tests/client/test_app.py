"""The interactive client's own logic, without a terminal: CTCP answers and what it
says when the server leaves something unsaid."""

from __future__ import annotations

import pytest

from chatcli import __version__
from chatcli.client.app import ChatView, ctcp_answer
from chatcli.protocol import Message, message


@pytest.mark.parametrize(
    "request_text, answer",
    [
        ("\x01VERSION\x01", f"\x01VERSION chatcli {__version__}\x01"),
        ("\x01PING 1795502274 382740\x01", "\x01PING 1795502274 382740\x01"),
        ("\x01CLIENTINFO\x01", "\x01CLIENTINFO ACTION CLIENTINFO PING TIME VERSION\x01"),
    ],
)
def test_ctcp_requests_are_answered_by_notice(request_text, answer):
    reply = ctcp_answer(message("PRIVMSG", "me", request_text, source="carol!c@h"), "me")
    assert reply == Message("NOTICE", ("carol", answer))


def test_ctcp_time_is_answered():
    reply = ctcp_answer(message("PRIVMSG", "ME", "\x01TIME\x01", source="carol!c@h"), "me")
    assert reply is not None and reply.params[1].startswith("\x01TIME ")


@pytest.mark.parametrize(
    "msg",
    [
        message("PRIVMSG", "me", "plain text", source="carol!c@h"),
        message("PRIVMSG", "#lobby", "\x01VERSION\x01", source="carol!c@h"),  # not to me
        message("NOTICE", "me", "\x01VERSION x\x01", source="carol!c@h"),  # a reply: never answer
        message("PRIVMSG", "me", "\x01ACTION waves\x01", source="carol!c@h"),
        message("PRIVMSG", "me", "\x01DCC SEND x\x01", source="carol!c@h"),
    ],
)
def test_other_messages_get_no_ctcp_answer(msg):
    assert ctcp_answer(msg, "me") is None


class _Session:
    nick = "me"
    isupport: dict[str, str] = {}


def test_names_of_an_empty_or_unknown_room_say_so():
    view = ChatView(_Session(), None)  # type: ignore[arg-type]
    end = message("366", "me", "#nope", "End of /NAMES list", source="srv")
    note = view.notes(end)
    assert note is not None and note.plain.endswith(" -- nobody is in #nope")
    view.notes(message("353", "me", "=", "#lobby", "me bob", source="srv"))
    assert view.notes(message("366", "me", "#lobby", "End", source="srv")) is None


def test_view_follows_own_joins_parts_and_nick():
    view = ChatView(_Session(), None)  # type: ignore[arg-type]
    view.observe(message("JOIN", "#lobby", source="me!u@h"))
    view.observe(message("JOIN", "#dev", source="me!u@h"))
    assert (view.rooms, view.room) == (["#lobby", "#dev"], "#lobby")
    view.observe(message("JOIN", "#dev", source="bob!u@h"))
    view.observe(message("NICK", "newme", source="me!u@h"))
    assert view.nick == "newme"
    view.observe(message("KICK", "#lobby", "newme", "bye", source="op!u@h"))
    assert (view.rooms, view.room) == (["#dev"], "#dev")
    view.observe(message("PART", "#dev", source="newme!u@h"))
    assert (view.rooms, view.room) == ([], None)
    assert view.prompt() == "(no room) newme> "
