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
        "/query bob hi\nthere",
        "/kick bob bye\nnow",
        "/mode +k a\0b",
        "/list a\0b",
        "/op a\0b",
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


@pytest.mark.parametrize("cmd", ["/msg", "/dm", "/MSG"])
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


@pytest.mark.parametrize("line", ["/msg", "/msg alice", "/msg alice   ", "/dm bob"])
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


# --- conversations -----------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["/query", "/q"])
def test_query_opens_a_conversation_and_sends_nothing(cmd):
    assert parse_input(f"{cmd} alice", ROOM) == Action(local=Local.QUERY, target="alice")


def test_query_with_text_also_sends_it():
    action = parse_input("/query alice hi there", None)
    assert action.local is Local.QUERY
    assert action.target == "alice"
    assert lines(action) == ["PRIVMSG alice :hi there"]


def test_query_with_long_text_splits_it():
    action = parse_input("/query alice " + "z" * 1000, ROOM)
    assert "".join(privmsg_texts(action, "alice")) == "z" * 1000


def test_query_without_an_alias_is_a_usage_error():
    with pytest.raises(InputError, match=r"^usage: /query"):
        parse_input("/query", ROOM)


@pytest.mark.parametrize("alias", ["#lobby", ":bob", "a,b", "bob!x@y", "b*", "$all"])
def test_query_of_an_invalid_alias_says_so(alias):
    with pytest.raises(InputError, match="not a valid alias"):
        parse_input(f"/query {alias} hi", ROOM)


@pytest.mark.parametrize("cmd", ["/r", "/reply"])
def test_reply_hands_the_text_to_the_client(cmd):
    action = parse_input(f"{cmd} sure, see you there", ROOM)
    assert action == Action(local=Local.REPLY, text="sure, see you there")


def test_reply_works_without_a_room():
    assert parse_input("/r ok", None) == Action(local=Local.REPLY, text="ok")


@pytest.mark.parametrize("line", ["/r", "/reply   "])
def test_reply_without_text_is_a_usage_error(line):
    with pytest.raises(InputError, match=r"^usage: /r"):
        parse_input(line, ROOM)


@pytest.mark.parametrize("line", ["/r hi\nthere", "/reply a\0b"])
def test_reply_with_line_breaks_or_nul_is_an_input_error(line):
    with pytest.raises(InputError, match="cannot be sent"):
        parse_input(line, ROOM)


# --- room management ---------------------------------------------------------------------------


def test_list_all_rooms():
    assert lines(parse_input("/list", None)) == ["LIST"]


def test_list_rooms_matching_a_mask():
    assert lines(parse_input("/list #dev*", ROOM)) == ["LIST #dev*"]


def test_invite_to_the_current_room():
    assert lines(parse_input("/invite bob", ROOM)) == ["INVITE bob #lobby"]


def test_invite_to_a_given_room():
    assert lines(parse_input("/invite bob #dev", None)) == ["INVITE bob #dev"]


@pytest.mark.parametrize("line", ["/invite", "/invite bob dev"])
def test_invite_usage_errors(line):
    with pytest.raises(InputError, match=r"^usage: /invite"):
        parse_input(line, ROOM)


def test_invite_of_an_invalid_alias_says_so():
    with pytest.raises(InputError, match="not a valid alias"):
        parse_input("/invite #dev", ROOM)


@pytest.mark.parametrize("cmd", ["/kick", "/k"])
def test_kick_from_the_current_room(cmd):
    assert lines(parse_input(f"{cmd} bob", ROOM)) == ["KICK #lobby bob"]


def test_kick_with_a_reason():
    assert lines(parse_input("/kick bob  be nice", ROOM)) == ["KICK #lobby bob :be nice"]


def test_kick_from_a_given_room():
    assert lines(parse_input("/kick #dev bob", None)) == ["KICK #dev bob"]
    assert lines(parse_input("/kick #dev bob off topic", ROOM)) == ["KICK #dev bob :off topic"]


@pytest.mark.parametrize("line", ["/kick", "/kick #dev", "/kick #dev   "])
def test_kick_without_an_alias_is_a_usage_error(line):
    with pytest.raises(InputError, match=r"^usage: /kick"):
        parse_input(line, ROOM)


def test_kick_of_an_invalid_alias_says_so():
    with pytest.raises(InputError, match="not a valid alias"):
        parse_input("/kick a,b", ROOM)


def test_kick_with_a_line_break_in_the_reason_is_an_input_error():
    with pytest.raises(InputError, match="cannot be sent"):
        parse_input("/kick bob bye\r\nQUIT", ROOM)


def test_ban_of_a_bare_alias_bans_everyone_using_it():
    assert lines(parse_input("/ban bob", ROOM)) == ["MODE #lobby +b bob!*@*"]


@pytest.mark.parametrize("mask", ["*!*@evil.example", "bob!*@*", "*@10.0.0.1"])
def test_ban_of_a_mask_bans_it_as_given(mask):
    assert lines(parse_input(f"/ban {mask}", ROOM)) == [f"MODE #lobby +b {mask}"]


def test_ban_in_a_given_room():
    assert lines(parse_input("/ban #dev bob", None)) == ["MODE #dev +b bob!*@*"]


@pytest.mark.parametrize("cmd", ["/unban", "/ub"])
def test_unban_lifts_a_ban(cmd):
    assert lines(parse_input(f"{cmd} bob", ROOM)) == ["MODE #lobby -b bob!*@*"]
    mask = "*!*@evil.example"
    assert lines(parse_input(f"{cmd} {mask}", ROOM)) == [f"MODE #lobby -b {mask}"]


@pytest.mark.parametrize("cmd", ["ban", "unban"])
def test_ban_without_a_mask_is_a_usage_error(cmd):
    with pytest.raises(InputError, match=rf"^usage: /{cmd}"):
        parse_input(f"/{cmd}", ROOM)


@pytest.mark.parametrize("mask", [":bob", "a,b"])
def test_ban_of_an_invalid_mask_says_so(mask):
    with pytest.raises(InputError, match="not a valid alias or mask"):
        parse_input(f"/ban {mask}", ROOM)


@pytest.mark.parametrize(
    ("cmd", "change"), [("op", "+o"), ("deop", "-o"), ("voice", "+v"), ("devoice", "-v")]
)
def test_member_modes_for_one_alias(cmd, change):
    assert lines(parse_input(f"/{cmd} bob", ROOM)) == [f"MODE #lobby {change} bob"]


def test_op_several_aliases_in_one_line():
    assert lines(parse_input("/op a b c", ROOM)) == ["MODE #lobby +ooo a b c"]


def test_op_in_a_given_room():
    assert lines(parse_input("/op #dev bob", None)) == ["MODE #dev +o bob"]


def test_member_modes_take_at_most_four_aliases_a_line():
    assert lines(parse_input("/voice a b c d", ROOM)) == ["MODE #lobby +vvvv a b c d"]
    assert lines(parse_input("/devoice a b c d e f g h i", ROOM)) == [
        "MODE #lobby -vvvv a b c d",
        "MODE #lobby -vvvv e f g h",
        "MODE #lobby -v i",
    ]


def test_bans_take_at_most_four_masks_a_line():
    action = parse_input("/ban a b c d e", ROOM)
    assert lines(action) == ["MODE #lobby +bbbb a!*@* b!*@* c!*@* d!*@*", "MODE #lobby +b e!*@*"]


@pytest.mark.parametrize("cmd", ["op", "deop", "voice", "devoice"])
def test_member_modes_without_an_alias_are_a_usage_error(cmd):
    with pytest.raises(InputError, match=rf"^usage: /{cmd}"):
        parse_input(f"/{cmd}", ROOM)
    with pytest.raises(InputError, match=rf"^usage: /{cmd}"):
        parse_input(f"/{cmd} #dev", ROOM)


def test_member_modes_of_an_invalid_alias_say_so():
    with pytest.raises(InputError, match="not a valid alias"):
        parse_input("/op bob :carol", ROOM)


def test_mode_changes_the_current_room_when_it_starts_with_a_sign():
    assert lines(parse_input("/mode +k hunter2", ROOM)) == ["MODE #lobby +k hunter2"]
    assert lines(parse_input("/mode -t", ROOM)) == ["MODE #lobby -t"]


def test_mode_of_a_given_target():
    assert lines(parse_input("/mode #dev +l 10", None)) == ["MODE #dev +l 10"]
    assert lines(parse_input("/mode carol +i", None)) == ["MODE carol +i"]


def test_mode_with_only_a_target_asks_for_its_modes():
    assert lines(parse_input("/mode #dev", None)) == ["MODE #dev"]


def test_mode_alone_asks_for_the_current_room_modes():
    assert lines(parse_input("/mode", ROOM)) == ["MODE #lobby"]


def test_mode_with_a_middle_argument_starting_with_a_colon_is_an_input_error():
    with pytest.raises(InputError, match="cannot be sent"):
        parse_input("/mode +ov :bob carol", ROOM)


@pytest.mark.parametrize(
    "line",
    [
        "/kick bob",
        "/ban bob",
        "/unban bob",
        "/op bob",
        "/deop bob",
        "/voice bob",
        "/devoice bob",
        "/invite bob",
        "/mode +t",
        "/mode",
    ],
)
@pytest.mark.parametrize("room", [None, "alice"])
def test_room_commands_outside_a_room_say_so(line, room):
    with pytest.raises(InputError, match="you are in no room"):
        parse_input(line, room)


# --- local actions --------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["/close", "/wc"])
def test_close_the_current_buffer(cmd):
    assert parse_input(cmd, ROOM) == Action(local=Local.CLOSE)


def test_close_a_given_buffer():
    assert parse_input("/close alice", ROOM) == Action(local=Local.CLOSE, target="alice")
    assert parse_input("/close #dev", None) == Action(local=Local.CLOSE, target="#dev")


@pytest.mark.parametrize("cmd", ["/clear", "/c", "/cl"])
def test_clear_is_local(cmd):
    assert parse_input(cmd, ROOM) == Action(local=Local.CLEAR)


def test_ignore_a_mask():
    assert parse_input("/ignore spammer", ROOM) == Action(local=Local.IGNORE, target="spammer")
    assert parse_input("/ignore *!*@evil.example", None).target == "*!*@evil.example"


def test_ignore_alone_lists_the_ignores():
    assert parse_input("/ignore", ROOM) == Action(local=Local.IGNORE)


def test_unignore_a_mask():
    assert parse_input("/unignore spammer", ROOM) == Action(local=Local.UNIGNORE, target="spammer")


def test_unignore_without_a_mask_is_a_usage_error():
    with pytest.raises(InputError, match=r"^usage: /unignore"):
        parse_input("/unignore", ROOM)


@pytest.mark.parametrize("line", ["/ignore a\0b", "/unignore a\0b", "/close a\0b"])
def test_local_targets_with_nul_are_input_errors(line):
    with pytest.raises(InputError, match="cannot be sent"):
        parse_input(line, ROOM)


def test_reconnect_is_local():
    assert parse_input("/reconnect", None) == Action(local=Local.RECONNECT)


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
