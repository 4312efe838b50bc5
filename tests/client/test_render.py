"""Specification of :mod:`chatcli.client.render`: how each kind of message looks."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from rich.console import Console
from rich.style import Style
from rich.text import Text

from chatcli.client.render import (
    NICK_COLOURS,
    STYLE_DIRECT,
    STYLE_ERROR,
    STYLE_SYSTEM,
    nick_style,
    render,
)
from chatcli.protocol import Message, message

WHEN = datetime(2026, 1, 2, 12, 34)
ME = "me"
BOB = "bob!b@host"
ALICE = "alice!a@host"


def show(msg: Message, me: str = ME) -> Text:
    text = render(msg, me, WHEN)
    assert text is not None, msg
    return text


def plain(msg: Message, me: str = ME) -> str:
    return show(msg, me).plain


def console() -> Console:
    return Console(file=io.StringIO(), width=80, force_terminal=True, color_system="truecolor")


def ansi(text: Text) -> str:
    out = console()
    out.print(text)
    return out.file.getvalue()


def style_at(text: Text, fragment: str) -> Style:
    """The style the terminal gets for the first character of ``fragment`` in ``text``."""
    offset = text.plain.index(fragment)
    return text.get_style_at_offset(console(), offset)


def styles_of(text: Text) -> set[str]:
    """The styles of the spans after the time stamp."""
    return {str(span.style) for span in text.spans if span.start >= len("12:34 ")}


# --- chat ------------------------------------------------------------------------------------


def test_room_message():
    text = show(message("PRIVMSG", "#lobby", "hello", source=BOB))
    assert text.plain == "12:34 #lobby <bob> hello"


def test_room_message_nick_has_its_colour_and_text_is_not_dimmed():
    text = show(message("PRIVMSG", "#lobby", "hello there", source=BOB))
    assert style_at(text, "bob") == Style.parse(nick_style("bob"))
    body = style_at(text, "hello")
    assert not body.dim and body.color is None
    assert style_at(text, "12:34").dim
    out = ansi(text)
    assert "hello there" in out
    assert "\x1b[" in out  # styled for the terminal
    assert "\x1b[2m> hello" not in out


def test_room_notice_uses_dashes():
    assert plain(message("NOTICE", "#lobby", "heads up", source=BOB)) == (
        "12:34 #lobby -bob- heads up"
    )


def test_room_action():
    assert plain(message("PRIVMSG", "#lobby", "\x01ACTION waves\x01", source=BOB)) == (
        "12:34 #lobby * bob waves"
    )


def test_text_is_not_read_as_markup():
    assert plain(message("PRIVMSG", "#lobby", "[bold]hi[/bold] :smile:", source=BOB)) == (
        "12:34 #lobby <bob> [bold]hi[/bold] :smile:"
    )


def test_direct_message_received():
    assert plain(message("PRIVMSG", ME, "psst", source=BOB)) == "12:34 [bob → you] psst"


def test_direct_message_sent_echoed():
    assert plain(message("PRIVMSG", "alice", "hi alice", source="me!m@host")) == (
        "12:34 [you → alice] hi alice"
    )


def test_direct_message_sender_is_compared_case_insensitively():
    assert plain(message("PRIVMSG", "alice", "hi", source="Me!m@host"), "me") == (
        "12:34 [you → alice] hi"
    )


def test_direct_action():
    assert plain(message("PRIVMSG", ME, "\x01ACTION hugs you\x01", source=BOB)) == (
        "12:34 [bob → you] * bob hugs you"
    )


def test_direct_message_is_styled_as_direct():
    text = show(message("PRIVMSG", ME, "psst", source=BOB))
    assert style_at(text, "[bob") == Style.parse(STYLE_DIRECT)
    assert style_at(text, "psst").color.name == "magenta"
    assert "\x1b[1;35m[bob → you]" in ansi(text)


def test_room_direct_and_system_lines_look_different():
    room = styles_of(show(message("PRIVMSG", "#lobby", "hi", source=BOB)))
    direct = styles_of(show(message("PRIVMSG", ME, "hi", source=BOB)))
    system = styles_of(show(message("JOIN", "#lobby", source=BOB)))
    assert STYLE_DIRECT in direct and STYLE_DIRECT not in room | system
    assert STYLE_SYSTEM in system and STYLE_SYSTEM not in room | direct
    assert len({frozenset(room), frozenset(direct), frozenset(system)}) == 3


def test_server_notice():
    text = show(message("NOTICE", "*", "*** Looking up your hostname", source="irc.example"))
    assert text.plain == "12:34 -!- *** Looking up your hostname"
    assert style_at(text, "-!-") != Style()


# --- system lines ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (message("JOIN", "#lobby", source=BOB), "bob joined #lobby"),
        (message("PART", "#lobby", source=BOB), "bob left #lobby"),
        (message("PART", "#lobby", "bye now", source=BOB), "bob left #lobby (bye now)"),
        (message("QUIT", source=BOB), "bob quit"),
        (message("QUIT", "", source=BOB), "bob quit"),
        (message("QUIT", "Ping timeout", source=BOB), "bob quit (Ping timeout)"),
        (message("NICK", "robert", source=BOB), "bob is now known as robert"),
        (
            message("TOPIC", "#lobby", "Welcome!", source=BOB),
            "bob set the topic of #lobby: Welcome!",
        ),
        (message("KICK", "#lobby", "eve", source=BOB), "bob removed eve from #lobby"),
        (
            message("KICK", "#lobby", "eve", "spam", source=BOB),
            "bob removed eve from #lobby (spam)",
        ),
        (message("MODE", "#lobby", "+o", "alice", source=BOB), "bob set mode +o alice on #lobby"),
        (message("INVITE", ME, "#dev", source=BOB), "bob invites you to #dev (/join #dev)"),
        (message("AWAY", "lunch", source=BOB), "bob is away: lunch"),
        (message("AWAY", source=BOB), "bob is back"),
    ],
)
def test_system_lines(msg, expected):
    text = show(msg)
    assert text.plain == f"12:34 -- {expected}"
    assert style_at(text, "-- ").italic and style_at(text, "-- ").dim
    assert style_at(text, "bob") == Style.parse(nick_style("bob"))


def test_nick_change_colours_both_nicks():
    text = show(message("NICK", "robert", source=BOB))
    assert style_at(text, "robert") == Style.parse(nick_style("robert"))


# --- errors ----------------------------------------------------------------------------------


def assert_error(text: Text, fragment: str) -> None:
    assert fragment in text.plain
    style = style_at(text, fragment)
    assert style.bold and style.color.name == "red"
    assert "\x1b[1;31m" in ansi(text)


@pytest.mark.parametrize(
    "text, shown",
    [
        ("Closing link: 127.0.0.1 (Quit: bye)", "bye"),
        ("Closing link: 127.0.0.1 (Client Quit)", "you quit"),
        ("Closing link: 127.0.0.1 (Server shutting down)", "Server shutting down"),
        ("something else", "something else"),
    ],
)
def test_error_tells_why_the_connection_closed(text, shown):
    assert plain(message("ERROR", text)) == f"12:34 -- disconnected: {shown}"


def test_error_without_text():
    assert plain(message("ERROR")) == "12:34 -- disconnected: connection closed"


@pytest.mark.parametrize(
    "reason, shown",
    [
        ("Quit: gone fishing", " (gone fishing)"),
        ("Client Quit", ""),
        ("Ping timeout", " (Ping timeout)"),
    ],
)
def test_quit_reason_is_said_once(reason, shown):
    assert plain(message("QUIT", reason, source="bob!b@h")) == f"12:34 -- bob quit{shown}"


def test_ctcp_requests_and_replies_are_system_lines():
    assert plain(message("PRIVMSG", ME, "\x01VERSION\x01", source="carol!c@h")) == (
        "12:34 -- carol sent a CTCP VERSION request"
    )
    assert plain(message("NOTICE", ME, "\x01PING 123\x01", source="carol!c@h")) == (
        "12:34 -- CTCP PING reply from carol: 123"
    )


def test_a_direct_notice_looks_unlike_a_direct_message():
    notice = plain(message("NOTICE", ME, "a notice", source="carol!c@h"))
    assert notice == "12:34 -carol → you- a notice"


def test_fail():
    text = show(message("FAIL", "PRIVMSG", "INVALID_UTF8", "Message rejected", source="srv"))
    assert text.plain == "12:34 PRIVMSG failed: Message rejected"
    assert_error(text, "PRIVMSG failed")


def test_warn_says_what_the_server_warns_of():
    text = show(
        message(
            "WARN",
            "PRIVMSG",
            "HISTORY_NOT_KEPT",
            "#room",
            "your message was delivered but not kept in the history (the disk is full)",
            source="srv",
        )
    )
    assert text.plain == (
        "12:34 warning: your message was delivered but not kept in the history (the disk is full)"
    )


def test_nickname_in_use():
    text = show(message("433", "*", "bob", "Nickname is already in use", source="srv"))
    assert text.plain == "12:34 bob: Nickname is already in use"
    assert_error(text, "bob: Nickname is already in use")


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (message("401", ME, "ghost", "No such nick/channel"), "ghost: No such nick/channel"),
        (message("421", ME, "FOO", "Unknown command"), "FOO: Unknown command"),
        (message("451", "*", "You have not registered"), "You have not registered"),
        (message("482", ME, "#lobby", "You're not channel operator"), "#lobby: You're not"),
        (message("501", ME, "Unknown MODE flag"), "Unknown MODE flag"),
        (message("404", ME), "404"),
    ],
)
def test_error_numerics(msg, expected):
    assert_error(show(msg), expected)


# --- replies ---------------------------------------------------------------------------------


def test_names_reply_lists_nicks_with_prefixes():
    text = show(message("353", ME, "=", "#lobby", "@alice +bob carol", source="srv"))
    assert text.plain == "12:34 -- in #lobby: @alice, +bob, carol"
    assert style_at(text, "alice") == Style.parse(nick_style("alice"))
    assert style_at(text, "carol") == Style.parse(nick_style("carol"))


def test_names_reply_with_userhost_in_names():
    text = show(message("353", ME, "=", "#lobby", "@alice!a@h bob!b@h", source="srv"))
    assert text.plain == "12:34 -- in #lobby: @alice, bob"


def test_who_reply():
    msg = message(
        "352", ME, "#lobby", "b", "host", "srv", "bob", "H@", "0 Bob Builder", source="srv"
    )
    text = show(msg)
    assert text.plain == "12:34 -- bob b@host in #lobby: Bob Builder"
    assert style_at(text, "bob") == Style.parse(nick_style("bob"))


def test_who_reply_away_and_without_room():
    msg = message("352", ME, "*", "b", "host", "srv", "bob", "G", "0 Bob", source="srv")
    assert plain(msg) == "12:34 -- bob b@host (away): Bob"


def test_topic_reply():
    assert plain(message("332", ME, "#lobby", "Be nice", source="srv")) == (
        "12:34 -- topic of #lobby: Be nice"
    )


def test_no_topic_reply():
    assert plain(message("331", ME, "#lobby", "No topic is set", source="srv")) == (
        "12:34 -- #lobby has no topic"
    )


def test_away_reply():
    assert plain(message("301", ME, "bob", "out for lunch", source="srv")) == (
        "12:34 -- bob is away: out for lunch"
    )


def test_whois_replies():
    user = message("311", ME, "bob", "b", "host", "*", "Bob Builder", source="srv")
    assert plain(user) == "12:34 -- bob is b@host (Bob Builder)"
    chans = message("319", ME, "bob", "@#lobby #dev", source="srv")
    assert plain(chans) == "12:34 -- bob is in @#lobby #dev"
    secure = message("671", ME, "bob", "is using a secure connection", source="srv")
    assert plain(secure) == "12:34 -- bob is connected over TLS"
    real = message("338", ME, "bob", "b@10.0.0.7", "10.0.0.7", "Actual user@host", source="srv")
    assert plain(real) == "12:34 -- bob really is b@10.0.0.7, from 10.0.0.7"
    oper = message("313", ME, "bob", "is an IRC operator", source="srv")
    assert plain(oper) == "12:34 -- bob is a server operator"


def test_an_operators_notice_to_everyone_says_so():
    notice = message("NOTICE", "$*", "restart at noon", source="admin!a@h")
    assert plain(notice) == "12:34 -admin → everyone- restart at noon"


def test_operator_stats_lines_name_each_figure():
    limit = message("218", ME, "Y", "max_clients", "4096", "2 connected", source="srv")
    assert plain(limit) == "12:34 -- max_clients = 4096 (2 connected)"
    link = message(
        "211", ME, "bob[~b@10.0.0.7]", "0", "42", "3", "7", "0", "65", "TLS", source="srv"
    )
    assert plain(link) == (
        "12:34 -- bob[~b@10.0.0.7]: 65s, TLS, sendq 0 B, out 42 lines/3 KiB, in 7 lines/0 KiB"
    )


def test_our_own_user_modes():
    modes = message("MODE", ME, "+Z", source=f"{ME}!u@h")
    assert plain(modes) == "12:34 -- your modes: +Z (a TLS connection)"


def test_welcome_says_who_you_are():
    assert plain(message("001", ME, "Welcome to chatcli, me", source="srv")) == (
        f"12:34 -- connected as {ME}"
    )


@pytest.mark.parametrize(
    "code", ["002", "003", "004", "005", "366", "315", "318", "376", "251", "422"]
)
def test_hidden_numerics(code):
    assert render(message(code, ME, "x", "whatever", source="srv"), ME, WHEN) is None


@pytest.mark.parametrize(
    "msg",
    [
        message("PING", "token"),
        message("PONG", "srv", "token", source="srv"),
        message("CAP", "*", "ACK", "server-time", source="srv"),
        message("CAP", "*", "LS", "message-tags server-time"),
    ],
)
def test_protocol_chatter_is_hidden(msg):
    assert render(msg, ME, WHEN) is None


# --- time ------------------------------------------------------------------------------------


def test_server_time_tag_gives_the_time_in_local_time():
    msg = Message("PRIVMSG", ("#lobby", "hi"), BOB, {"time": "2026-01-02T10:00:00.000Z"})
    local = datetime(2026, 1, 2, 10, 0, tzinfo=UTC).astimezone()
    assert plain(msg) == f"{local:%H:%M} #lobby <bob> hi"


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="needs time.tzset")
def test_server_time_tag_follows_the_local_time_zone(monkeypatch):
    msg = Message("JOIN", ("#lobby",), BOB, {"time": "2026-01-02T10:00:00.000Z"})
    try:
        monkeypatch.setenv("TZ", "UTC-05:30")  # POSIX: 5h30 east of UTC
        time.tzset()
        assert plain(msg) == "15:30 -- bob joined #lobby"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("stamp", ["", "yesterday", "2026-13-45T99:00:00Z"])
def test_bad_server_time_tag_falls_back_to_when(stamp):
    msg = Message("PRIVMSG", ("#lobby", "hi"), BOB, {"time": stamp})
    assert plain(msg) == "12:34 #lobby <bob> hi"


def test_without_when_the_time_is_now():
    text = render(message("PRIVMSG", "#lobby", "hi", source=BOB), ME)
    assert text is not None
    stamp = datetime.strptime(text.plain[:5], "%H:%M")
    now = datetime.now()
    assert abs((now.hour * 60 + now.minute) - (stamp.hour * 60 + stamp.minute)) in (0, 1, 1439)


# --- nick colours ----------------------------------------------------------------------------


def test_nick_style_is_a_palette_colour():
    for nick in ("bob", "alice", "x", "[away]", "Ünïcødé"):
        assert nick_style(nick) in NICK_COLOURS
        Style.parse(nick_style(nick))  # a valid Rich style


def test_nick_style_is_case_insensitive():
    assert nick_style("Bob") == nick_style("bob") == nick_style("BOB")
    assert nick_style("AliceW") == nick_style("alicew")


def test_nick_style_spreads_nicks_over_several_colours():
    nicks = ["alice", "bob", "carol", "dave", "eve", "mallory", "trent", "peggy", "victor"]
    assert len({nick_style(nick) for nick in nicks}) > 1


def test_nick_style_is_the_same_in_every_run():
    code = "from chatcli.client.render import nick_style; print(nick_style('bob'))"
    seen = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        seen.add(out.stdout.strip())
    assert seen == {nick_style("bob")}


def test_the_error_style_constant_is_bold_red():
    style = Style.parse(STYLE_ERROR)
    assert style.bold and style.color.name == "red"


@pytest.mark.parametrize(
    "text",
    [
        "hi \x1b[2J\x1b]0;pwned\x07 there",  # clear screen, set window title
        "\x1b]52;c;ZXZpbA==\x07",  # write the clipboard
        "\x9b31m C1 CSI",
        "bell\x07 and backspace\x08 and DEL\x7f",
    ],
)
def test_terminal_control_characters_from_the_network_never_reach_the_screen(text):
    """A peer must not be able to drive everyone's terminal with escape sequences."""
    for msg in (
        message("PRIVMSG", "#lobby", text, source="bob!b@h"),
        message("PRIVMSG", ME, text, source="bob!b@h"),
        message("TOPIC", "#lobby", text, source="bob!b@h"),
        message("QUIT", text, source="bob!b@h"),
        message("332", ME, "#lobby", text, source="srv"),
    ):
        out = io.StringIO()
        Console(file=out, width=200, force_terminal=True, color_system="truecolor").print(
            render(msg, ME, WHEN)
        )
        printed = out.getvalue()
        # Rich's own colour codes are ESC [ ... m; nothing else may appear.
        assert not re.search(r"\x1b(?!\[[0-9;]*m)", printed), repr(printed)
        assert not any(c in printed for c in "\x07\x08\x7f\x9b")


def test_chat_join_into_a_pipe_prints_a_long_line_as_one_line(server):
    """Without a terminal, chat join's output is one line a message, never wrapped (at
    Rich's 80 columns), and not coloured."""
    long = " ".join(["word"] * 59) + " " + "x" * 5  # 300 characters
    done = subprocess.run(
        [sys.executable, "-m", "chatcli", "join", "--port", str(server.port), "-a", "bob"],
        input=long + "\n",
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stdout.splitlines() if "word" in line]
    assert len(said) == 1 and said[0].endswith(f"<bob> {long}")
    assert "\x1b" not in done.stdout


def test_irc_formatting_in_a_room_message_is_shown_as_styles():
    """irssi's and HexChat's bold and colours: styles, not ``\\x0304red`` garbage."""
    text = show(message("PRIVMSG", "#lobby", "\x02hey\x02 \x0304red\x03 done", source=BOB))
    assert text.plain == "12:34 #lobby <bob> hey red done"
    assert style_at(text, "hey").bold
    assert style_at(text, "red").color == Style.parse("bright_red").color
    assert not style_at(text, " done").bold


@pytest.mark.parametrize(
    ("msg", "styled"),
    [
        (message("PRIVMSG", ME, "\x1funder", source=BOB), "under"),
        (message("PRIVMSG", "#lobby", "\x01ACTION \x1funder\x01", source=BOB), "under"),
        (message("NOTICE", "#lobby", "\x1funder", source=BOB), "under"),
        (message("NOTICE", "*", "\x1funder", source="irc.example"), "under"),
        (message("TOPIC", "#lobby", "\x1funder", source=BOB), "under"),
        (message("332", ME, "#lobby", "\x1funder", source="srv"), "under"),
        (message("QUIT", "Quit: \x1funder", source=BOB), "under"),
        (message("PART", "#lobby", "\x1funder", source=BOB), "under"),
        (message("KICK", "#lobby", "me", "\x1funder", source=BOB), "under"),
        (message("AWAY", "\x1funder", source=BOB), "under"),
        (message("372", ME, "- \x1funder", source="srv"), "under"),
    ],
)
def test_formatting_is_styled_wherever_people_write_text(msg, styled):
    text = show(msg)
    assert "\x1f" not in text.plain and "\ufffd" not in text.plain
    assert style_at(text, styled).underline


def test_formatting_in_names_and_other_parameters_is_dropped():
    text = show(message("PRIVMSG", "#lob\x02by", "hi", source="bo\x0304b!b@h"))
    assert text.plain == "12:34 #lobby <bob> hi"


def test_an_empty_reason_is_not_shown():
    assert plain(message("PART", "#lobby", "\x02\x02", source=BOB)) == "12:34 -- bob left #lobby"


def test_nothing_earlier_is_said_in_one_line():
    from chatcli.client.history import EARLIER, NOTHING_EARLIER

    assert plain(Message(NOTHING_EARLIER, ("#dev",))) == "12:34 -- nothing earlier in #dev"
    assert plain(Message(EARLIER, ("#dev",))) == "12:34 -- earlier in #dev:"
    assert render(Message(NOTHING_EARLIER, ("#dev",), "srv"), ME, WHEN) is None  # not the server's
