"""Specification of :mod:`chatcli.client.input`: what a typed line turns into."""

from __future__ import annotations

import pytest

from chatcli.client.input import (
    HELP,
    Action,
    InputError,
    Local,
    parse_input,
)
from chatcli.defaults import MAX_TEXT_BYTES
from chatcli.protocol import Message

ROOM = "#lobby"


def lines(action: Action) -> list[str]:
    return [m.to_line() for m in action.messages]


def privmsg_texts(action: Action, target: str = ROOM) -> list[str]:
    assert all(m.command == "PRIVMSG" and m.params[0] == target for m in action.messages)
    return [m.params[1] for m in action.messages]


# --- plain text ------------------------------------------------------------------------------


def test_plain_text_goes_to_the_current_room():
    action = parse_input("hello there", ROOM)
    assert action == Action(messages=(Message("PRIVMSG", (ROOM, "hello there")),))
    assert lines(action) == ["PRIVMSG #lobby :hello there"]


def test_plain_text_is_sent_as_typed():
    assert privmsg_texts(parse_input("  spaced  out ", ROOM)) == ["  spaced  out "]


def test_double_slash_sends_text_starting_with_a_slash():
    assert privmsg_texts(parse_input("//shrug", ROOM)) == ["/shrug"]
    assert privmsg_texts(parse_input("//etc/passwd is a file", ROOM)) == ["/etc/passwd is a file"]


def test_plain_text_without_a_room_is_an_error():
    with pytest.raises(InputError, match="no room"):
        parse_input("hello", None)
    with pytest.raises(InputError):
        parse_input("//hello", None)


@pytest.mark.parametrize("line", ["", " ", "   \t "])
def test_an_empty_line_does_nothing(line):
    assert parse_input(line, ROOM) == Action()
    assert parse_input(line, None) == Action()


def test_short_text_fits_one_message():
    text = "x" * MAX_TEXT_BYTES
    assert privmsg_texts(parse_input(text, ROOM)) == [text]


def test_long_text_without_spaces_is_split_and_nothing_is_lost():
    text = "".join(chr(ord("a") + i % 26) for i in range(2000))
    pieces = privmsg_texts(parse_input(text, ROOM))
    assert len(pieces) > 1
    assert all(0 < len(p.encode("utf-8")) <= MAX_TEXT_BYTES for p in pieces)
    assert "".join(pieces) == text


def test_long_text_with_words_is_split_at_spaces():
    words = [f"word{i}" for i in range(400)]
    text = " ".join(words)
    pieces = privmsg_texts(parse_input(text, ROOM))
    assert len(pieces) > 1
    assert all(len(p.encode("utf-8")) <= MAX_TEXT_BYTES for p in pieces)
    # split between words: no word is cut in two, and all words arrive in order
    assert [w for p in pieces for w in p.split(" ")] == words


@pytest.mark.parametrize("char", ["é", "€", "😀", "日"])
def test_long_multibyte_text_is_split_within_the_byte_limit(char):
    text = char * 1000
    pieces = privmsg_texts(parse_input(text, ROOM))
    assert len(pieces) > 1
    for piece in pieces:
        assert len(piece.encode("utf-8")) <= MAX_TEXT_BYTES
        piece.encode("utf-8").decode("utf-8")  # never cut inside a character
    assert "".join(pieces) == text


def test_long_text_pieces_fit_an_irc_line():
    pieces = parse_input("😀 a" * 700, ROOM).messages
    assert all(len(m.to_bytes()) <= 512 for m in pieces)


# --- CR, LF and NUL (e.g. pasted text) --------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    ["first line\nsecond line", "carriage\rreturn", "nul\0byte", "crlf\r\n", "//slash\nnewline"],
)
def test_text_with_line_breaks_or_nul_is_an_input_error(line):
    with pytest.raises(InputError, match="line breaks or NUL"):
        parse_input(line, ROOM)


@pytest.mark.parametrize(
    "line",
    [
        "/msg bob hi\nthere",
        "/me waves\nagain",
        "/topic a\rb",
        "/away gone\0",
        "/part #lobby bye\nnow",
        "/quit bye\r\nQUIT",
        "/quote PRIVMSG #lobby :x\r\nQUIT",
        "/who a\0b",
    ],
)
def test_commands_with_line_breaks_or_nul_are_input_errors(line):
    with pytest.raises(InputError):
        parse_input(line, ROOM)


@pytest.mark.parametrize("line", ["/join #a\nb", "/nick bob\nQUIT", "/whois bob\r\nx"])
def test_commands_taking_words_never_send_control_characters(line):
    """Commands that take a single word split on any whitespace, so a line break only ends
    the word: what they send holds no CR, LF or NUL (a Message cannot hold them)."""
    try:
        action = parse_input(line, ROOM)
    except InputError:
        return
    for msg in action.messages:
        assert not any(c in b for b in msg.params for c in "\r\n\0")
        assert msg.to_bytes().count(b"\r\n") == 1


def test_text_that_is_not_utf8_is_an_input_error():
    # what a surrogateescape decoding of invalid bytes gives
    with pytest.raises(InputError):
        parse_input("caf\udce9", ROOM)
    with pytest.raises(InputError):
        parse_input("/nick b\udcffb", ROOM)


# --- commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["/msg", "/query", "/dm", "/MSG"])
def test_msg_sends_a_direct_message(cmd):
    action = parse_input(f"{cmd} alice hi there", ROOM)
    assert lines(action) == ["PRIVMSG alice :hi there"]
    assert action.room is None


def test_msg_works_without_a_room():
    assert lines(parse_input("/msg alice hi", None)) == ["PRIVMSG alice hi"]


def test_msg_can_address_a_room():
    assert lines(parse_input("/msg #other hi all", ROOM)) == ["PRIVMSG #other :hi all"]


def test_long_direct_message_is_split():
    pieces = privmsg_texts(parse_input("/msg alice " + "z" * 1000, ROOM), "alice")
    assert len(pieces) == 3
    assert "".join(pieces) == "z" * 1000


@pytest.mark.parametrize("line", ["/msg", "/msg alice", "/msg alice   ", "/query", "/dm bob"])
def test_msg_without_text_is_a_usage_error(line):
    with pytest.raises(InputError, match=r"^usage: /msg"):
        parse_input(line, ROOM)


@pytest.mark.parametrize("cmd", ["/users", "/names"])
def test_users_lists_the_current_room(cmd):
    assert lines(parse_input(cmd, ROOM)) == ["NAMES #lobby"]


def test_users_lists_a_given_room():
    assert lines(parse_input("/users #other", ROOM)) == ["NAMES #other"]
    assert lines(parse_input("/names #other extra", None)) == ["NAMES #other"]


def test_users_without_a_room_asks_for_everyone():
    assert lines(parse_input("/users", None)) == ["NAMES"]


def test_who():
    assert lines(parse_input("/who", ROOM)) == ["WHO #lobby"]
    assert lines(parse_input("/who", None)) == ["WHO *"]
    assert lines(parse_input("/who bob*", ROOM)) == ["WHO bob*"]


def test_join_a_room_switches_to_it():
    action = parse_input("/join #dev", ROOM)
    assert lines(action) == ["JOIN #dev"]
    assert action.room == "#dev"


def test_join_adds_the_missing_hash():
    action = parse_input("/join dev", None)
    assert lines(action) == ["JOIN #dev"]
    assert action.room == "#dev"


def test_join_with_a_key():
    action = parse_input("/join #secret hunter2", ROOM)
    assert lines(action) == ["JOIN #secret hunter2"]
    assert action.room == "#secret"


def test_join_ignores_words_after_the_key():
    assert lines(parse_input("/join #a k extra words", ROOM)) == ["JOIN #a k"]


def test_join_without_a_room_is_a_usage_error():
    with pytest.raises(InputError, match=r"^usage: /join"):
        parse_input("/join", ROOM)
    with pytest.raises(InputError, match=r"^usage: /join"):
        parse_input("/join    ", ROOM)


@pytest.mark.parametrize("cmd", ["/part", "/leave"])
def test_part_the_current_room(cmd):
    action = parse_input(cmd, ROOM)
    assert lines(action) == ["PART #lobby"]
    assert action.room is None


def test_part_the_current_room_with_a_reason():
    assert lines(parse_input("/part see you all", ROOM)) == ["PART #lobby :see you all"]


def test_part_a_given_room():
    assert lines(parse_input("/part #dev", ROOM)) == ["PART #dev"]
    assert lines(parse_input("/part #dev", None)) == ["PART #dev"]


def test_part_a_given_room_with_a_reason():
    assert lines(parse_input("/part #dev gone home", ROOM)) == ["PART #dev :gone home"]


def test_part_without_any_room_is_a_usage_error():
    with pytest.raises(InputError, match=r"^usage: /part"):
        parse_input("/part", None)
    with pytest.raises(InputError, match=r"^usage: /part"):
        parse_input("/part just a reason", None)


def test_nick():
    assert lines(parse_input("/nick carol", ROOM)) == ["NICK carol"]
    assert lines(parse_input("/nick carol extra", None)) == ["NICK carol"]
    with pytest.raises(InputError, match=r"^usage: /nick"):
        parse_input("/nick", ROOM)


def test_me_sends_a_ctcp_action():
    action = parse_input("/me waves at everyone", ROOM)
    assert action.messages == (Message("PRIVMSG", (ROOM, "\x01ACTION waves at everyone\x01")),)


def test_me_needs_text_and_a_room():
    with pytest.raises(InputError, match=r"^usage: /me"):
        parse_input("/me", ROOM)
    with pytest.raises(InputError, match="no room"):
        parse_input("/me waves", None)


def test_long_me_is_split_into_actions_that_fit():
    action = parse_input("/me " + "ah" * 600, ROOM)
    texts = privmsg_texts(action)
    assert len(texts) > 1
    for text in texts:
        assert text.startswith("\x01ACTION ") and text.endswith("\x01")
        assert len(text.encode("utf-8")) <= MAX_TEXT_BYTES
    assert "".join(t[8:-1] for t in texts) == "ah" * 600


def test_topic_show_and_set():
    assert lines(parse_input("/topic", ROOM)) == ["TOPIC #lobby"]
    assert lines(parse_input("/topic Welcome all", ROOM)) == ["TOPIC #lobby :Welcome all"]
    with pytest.raises(InputError, match="no room"):
        parse_input("/topic", None)


def test_away_set_and_clear():
    assert lines(parse_input("/away out for lunch", ROOM)) == ["AWAY :out for lunch"]
    assert lines(parse_input("/away", ROOM)) == ["AWAY"]
    assert lines(parse_input("/away", None)) == ["AWAY"]


def test_whois():
    assert lines(parse_input("/whois bob", ROOM)) == ["WHOIS bob"]
    with pytest.raises(InputError, match=r"^usage: /whois"):
        parse_input("/whois", ROOM)


@pytest.mark.parametrize("cmd", ["/quote", "/raw"])
def test_quote_sends_a_raw_line(cmd):
    action = parse_input(f"{cmd} privmsg #dev :hello there", None)
    assert action.messages == (Message("PRIVMSG", ("#dev", "hello there")),)
    assert lines(parse_input(f"{cmd} MODE #dev +t", ROOM)) == ["MODE #dev +t"]


@pytest.mark.parametrize("raw", [":only-a-source", "123abc foo", "@a=b", "x" * 600])
def test_quote_of_a_bad_line_is_an_input_error(raw):
    with pytest.raises(InputError, match=r"^/quote"):
        parse_input(f"/quote {raw}", ROOM)


def test_quote_without_a_line_is_a_usage_error():
    with pytest.raises(InputError, match=r"^usage: /quote"):
        parse_input("/quote", ROOM)
    with pytest.raises(InputError, match=r"^usage: "):
        parse_input("/raw", ROOM)


@pytest.mark.parametrize("cmd", ["/quit", "/exit", "/QUIT"])
def test_quit_is_local(cmd):
    assert parse_input(cmd, ROOM) == Action(local=Local.QUIT)


def test_quit_with_a_reason():
    action = parse_input("/quit going home now", None)
    assert action.local is Local.QUIT
    assert action.reason == "going home now"
    assert action.messages == ()


def test_help_is_local():
    assert parse_input("/help", ROOM) == Action(local=Local.HELP)
    assert parse_input("/help join", None).local is Local.HELP


def test_help_lists_every_documented_command():
    for usage, description in HELP:
        assert usage.startswith("/") and description
        name = usage.split()[0]
        try:
            parse_input(name, ROOM)
        except InputError as exc:
            assert "unknown command" not in str(exc), name


@pytest.mark.parametrize("line", ["/frobnicate", "/frobnicate with args", "/", "/ hello"])
def test_unknown_command_points_to_help(line):
    with pytest.raises(InputError, match="/help") as info:
        parse_input(line, ROOM)
    assert "unknown command" in str(info.value)


def test_command_names_are_case_insensitive():
    assert lines(parse_input("/JoIn #dev", None)) == ["JOIN #dev"]


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)
