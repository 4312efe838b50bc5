"""Specification of :mod:`chatcli.protocol.names` (case mapping, nick and channel names,
sources) and of :func:`chatcli.protocol.split_text`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatcli.protocol import (
    CHANTYPES,
    CaseMapping,
    is_channel,
    is_valid_channel,
    is_valid_nick,
    split_source,
    split_text,
)
from chatcli.protocol.names import CHANNELLEN, NICKLEN

V = pytest.param

# --------------------------------------------------------------------------------------------
# Case mapping.
# --------------------------------------------------------------------------------------------


def test_casemapping_values_are_the_isupport_tokens():
    assert CaseMapping("ascii") is CaseMapping.ASCII
    assert CaseMapping("rfc1459") is CaseMapping.RFC1459
    assert str(CaseMapping.RFC1459) == "rfc1459"


@pytest.mark.parametrize(
    ("name", "ascii_fold", "rfc1459_fold"),
    [
        ("Alice", "alice", "alice"),
        ("ABCXYZ", "abcxyz", "abcxyz"),
        ("#Lobby", "#lobby", "#lobby"),
        ("[]\\~", "[]\\~", "{}|^"),
        ("Nick[Away]", "nick[away]", "nick{away}"),
        ("{}|^", "{}|^", "{}|^"),
        ("\u00c9T\u00c9", "\u00c9t\u00c9", "\u00c9t\u00c9"),
        ("_-`0-9", "_-`0-9", "_-`0-9"),
        ("", "", ""),
    ],
)
def test_fold(name, ascii_fold, rfc1459_fold):
    """``ascii`` folds A-Z only; ``rfc1459`` also folds ``[]\\~`` to ``{}|^``."""
    assert CaseMapping.ASCII.fold(name) == ascii_fold
    assert CaseMapping.RFC1459.fold(name) == rfc1459_fold


@settings(max_examples=200)
@given(st.sampled_from(list(CaseMapping)), st.text(max_size=30))
def test_fold_is_idempotent_and_ignores_case(mapping, name):
    folded = mapping.fold(name)
    assert mapping.fold(folded) == folded
    assert len(folded) == len(name)
    ascii_only = "".join(ch for ch in name if ch.isascii())
    assert mapping.fold(ascii_only.upper()) == mapping.fold(ascii_only.lower())


# --------------------------------------------------------------------------------------------
# Nicknames.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nick",
    ["alice", "Alice_", "a", "[bot]", "a-1", "`x", "^^", "{}|\\", "_", "a" * NICKLEN, "Zz9-"],
)
def test_valid_nick(nick):
    assert is_valid_nick(nick)


@pytest.mark.parametrize(
    "nick",
    [
        V("", id="empty"),
        V("a" * (NICKLEN + 1), id="too-long"),
        V("1abc", id="starts-with-digit"),
        V("-abc", id="starts-with-dash"),
        V("a b", id="space"),
        V("a,b", id="comma"),
        V("a*b", id="star"),
        V("a?b", id="question"),
        V("a!b", id="bang"),
        V("a@b", id="at"),
        V("#a", id="channel-prefix"),
        V("a#b", id="hash"),
        V(":a", id="leading-colon"),
        V("a:b", id="colon"),
        V("$a", id="dollar"),
        V("a.b", id="dot"),
        V("\u00e9mile", id="non-ascii"),
        V("nick\n", id="trailing-newline"),
        V("nick\r", id="trailing-cr"),
        V("ni\0ck", id="nul"),
    ],
)
def test_invalid_nick(nick):
    """Nicks must not contain space, comma, '*', '?', '!', '@'; must not start with '$', ':',
    a channel type; we also require a letter or special first."""
    assert not is_valid_nick(nick)


def test_nick_length_limit_is_configurable():
    assert is_valid_nick("abcd", max_len=4)
    assert not is_valid_nick("abcde", max_len=4)


# --------------------------------------------------------------------------------------------
# Channels.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [("#a", True), ("#", True), ("#lobby", True), ("alice", False), ("", False), ("&a", False)],
)
def test_is_channel(target, expected):
    """Whether target names a channel rather than a user (CHANTYPES is '#')."""
    assert CHANTYPES == "#"
    assert is_channel(target) is expected


@pytest.mark.parametrize(
    "name",
    ["#a", "#lobby", "#Foo-Bar.baz", "#\u65e5\u672c", "##", "#a!b@c", "#" + "a" * (CHANNELLEN - 1)],
)
def test_valid_channel(name):
    assert is_valid_channel(name)


@pytest.mark.parametrize(
    "name",
    [
        V("", id="empty"),
        V("#", id="prefix-only"),
        V("lobby", id="no-prefix"),
        V("&lobby", id="unsupported-prefix"),
        V("#a b", id="space"),
        V("#a,b", id="comma"),
        V("#a\x07", id="bell"),
        V("#a:b", id="colon"),
        V("#a\tb", id="tab"),
        V("#a\r", id="cr"),
        V("#a\n", id="lf"),
        V("#a\0b", id="nul"),
        V("#" + "a" * CHANNELLEN, id="too-long"),
    ],
)
def test_invalid_channel(name):
    """'#' then no space, comma, BEL, ':' (nor NUL, CR, LF, which no line can carry)."""
    assert not is_valid_channel(name)


def test_channel_length_limit_is_configurable():
    assert is_valid_channel("#abc", max_len=4)
    assert not is_valid_channel("#abcd", max_len=4)


# --------------------------------------------------------------------------------------------
# Sources.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "parts"),
    [
        ("nick!user@host", ("nick", "user", "host")),
        ("nick!~user@host.example.com", ("nick", "~user", "host.example.com")),
        ("irc.example.com", ("irc.example.com", "", "")),
        ("nick", ("nick", "", "")),
        ("nick@host", ("nick", "", "host")),
        ("nick!user", ("nick", "user", "")),
        ("nick!user@2001:db8::1", ("nick", "user", "2001:db8::1")),
        ("", ("", "", "")),
    ],
)
def test_split_source(source, parts):
    """``nick!user@host`` -> ``(nick, user, host)``; missing parts are empty strings."""
    assert split_source(source) == parts


# --------------------------------------------------------------------------------------------
# split_text.
# --------------------------------------------------------------------------------------------


def assert_pieces_of(text, pieces, max_bytes):
    """Pieces fit, are non-empty, and are the text in order with only spaces left out, and
    only where the text was cut."""
    assert pieces
    if not text:
        assert pieces == [""]
        return
    pos = 0
    for i, piece in enumerate(pieces):
        assert piece
        assert len(piece.encode("utf-8")) <= max_bytes
        assert text.startswith(piece, pos), (text, pieces)
        pos += len(piece)
        if i < len(pieces) - 1:
            while pos < len(text) and text[pos] == " ":
                pos += 1
    assert text[pos:].strip(" ") == ""


@pytest.mark.parametrize("text", ["", "hi", "hello world", "x" * 20])
def test_short_text_is_one_piece(text):
    assert split_text(text, 20) == [text]


def test_cuts_at_a_space_when_possible():
    assert split_text("hello world again", 11) == ["hello world", "again"]
    assert split_text("hello world again", 14) == ["hello world", "again"]
    assert split_text("aaa bbb ccc ddd", 8) == ["aaa bbb", "ccc ddd"]


def test_cuts_inside_a_word_when_there_is_no_space():
    assert split_text("a" * 25, 10) == ["a" * 10, "a" * 10, "a" * 5]


@pytest.mark.parametrize(
    ("text", "max_bytes", "pieces"),
    [
        ("\U0001f600" * 5, 10, ["\U0001f600" * 2, "\U0001f600" * 2, "\U0001f600"]),
        ("\U0001f600" * 3, 7, ["\U0001f600", "\U0001f600", "\U0001f600"]),
        ("\u65e5\u672c\u8a9e" * 3, 10, ["\u65e5\u672c\u8a9e"] * 3),
        (
            "\u65e5\u672c\u8a9e" * 3,
            8,
            ["\u65e5\u672c", "\u8a9e\u65e5", "\u672c\u8a9e", "\u65e5\u672c", "\u8a9e"],
        ),
        ("a\u00e9" * 4, 5, ["a\u00e9a", "\u00e9a\u00e9", "a\u00e9"]),
    ],
)
def test_never_splits_a_character(text, max_bytes, pieces):
    """Pieces of at most max_bytes UTF-8 bytes each, never inside a character."""
    assert split_text(text, max_bytes) == pieces
    assert_pieces_of(text, pieces, max_bytes)


def test_emoji_and_words():
    text = "I \u2764\ufe0f \U0001f600 \u65e5\u672c\u8a9e and some words " * 20
    pieces = split_text(text, 40)
    assert_pieces_of(text, pieces, 40)
    assert len(pieces) > 1


def test_max_bytes_too_small_for_a_character_is_an_error():
    """No piece could hold a 4-byte character in 3 bytes: an error, not an endless loop."""
    with pytest.raises(ValueError):
        split_text("\U0001f600", 3)
    with pytest.raises(ValueError):
        split_text("abc", 0)


_TEXT = st.lists(
    st.sampled_from(["a", "b", " ", "  ", "\u00e9", "\u65e5", "\U0001f600", "\u2764\ufe0f"])
).map("".join) | st.text(max_size=200)


@settings(max_examples=300)
@given(_TEXT, st.integers(4, 60))
def test_split_text_properties(text, max_bytes):
    assert_pieces_of(text, split_text(text, max_bytes), max_bytes)
