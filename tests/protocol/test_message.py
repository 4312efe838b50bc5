"""Specification of :mod:`chatcli.protocol.message`: parsing, serialising and validating
one IRC line (modern IRC client protocol document and IRCv3 message-tags)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatcli.protocol import (
    MAX_BODY_BYTES,
    MAX_CLIENT_TAG_BYTES,
    MAX_TAG_BYTES,
    EmptyLine,
    InputTooLong,
    InvalidUtf8,
    LocalProtocolError,
    MalformedLine,
    Message,
    ProtocolError,
    ReadQExceeded,
    RemoteProtocolError,
    escape_tag_value,
    message,
    number,
    parse_line,
    unescape_tag_value,
)

# --------------------------------------------------------------------------------------------
# Parsing vectors: (line, command, params, source, tags). In the spirit of the ircdocs
# parser-tests "msg-split" vectors; every line is fed whole to parse_line.
# --------------------------------------------------------------------------------------------

V = pytest.param

PARSE_VECTORS = [
    # Commands and middle parameters.
    V("COMMAND", "COMMAND", (), None, {}, id="command-only"),
    V("foo bar baz asdf", "FOO", ("bar", "baz", "asdf"), None, {}, id="middle-params"),
    V("privmsg #a :hi", "PRIVMSG", ("#a", "hi"), None, {}, id="command-upper-cased"),
    V("PrivMsg #a hi", "PRIVMSG", ("#a", "hi"), None, {}, id="command-mixed-case"),
    V(
        ":irc.example.com 001 alice :Welcome",
        "001",
        ("alice", "Welcome"),
        "irc.example.com",
        {},
        id="numeric",
    ),
    V(
        ":srv 432  #momo :Erroneous Nickname: Illegal characters",
        "432",
        ("#momo", "Erroneous Nickname: Illegal characters"),
        "srv",
        {},
        id="numeric-two-spaces",
    ),
    V(
        "PRIVMSG   #a    :hello   world",
        "PRIVMSG",
        ("#a", "hello   world"),
        None,
        {},
        id="many-spaces-between-params",
    ),
    V("  PING :x", "PING", ("x",), None, {}, id="leading-spaces"),
    V(":srv MODE #tckk +n ", "MODE", ("#tckk", "+n"), "srv", {}, id="trailing-space-ignored"),
    V(
        ":srv MODE #foo-bar +o foobar  ",
        "MODE",
        ("#foo-bar", "+o", "foobar"),
        "srv",
        {},
        id="trailing-spaces-ignored",
    ),
    V(":src AWAY", "AWAY", (), "src", {}, id="no-params"),
    V(":src AWAY ", "AWAY", (), "src", {}, id="no-params-trailing-space"),
    V("CMD a\tb c", "CMD", ("a\tb", "c"), None, {}, id="tab-is-not-a-separator"),
    V(
        "CMD a\x1fb\x0bc d",
        "CMD",
        ("a\x1fb\x0bc", "d"),
        None,
        {},
        id="control-whitespace-is-not-a-separator",
    ),
    V(
        "CMD caf\u00e9\u00a0x \u3000",
        "CMD",
        ("caf\u00e9\u00a0x", "\u3000"),
        None,
        {},
        id="unicode-spaces-are-not-separators",
    ),
    # Source prefix.
    V(":coolguy foo bar baz asdf", "FOO", ("bar", "baz", "asdf"), "coolguy", {}, id="source"),
    V(
        ":nick!user@host PRIVMSG #a :hi",
        "PRIVMSG",
        ("#a", "hi"),
        "nick!user@host",
        {},
        id="source-full-mask",
    ),
    V(":cool\tguy foo bar baz", "FOO", ("bar", "baz"), "cool\tguy", {}, id="source-with-tab"),
    V(
        ":coolguy!ag@net\x035w\x03ork.admin PRIVMSG foo :bar baz",
        "PRIVMSG",
        ("foo", "bar baz"),
        "coolguy!ag@net\x035w\x03ork.admin",
        {},
        id="source-with-control-codes",
    ),
    V(":src   JOIN #chan", "JOIN", ("#chan",), "src", {}, id="spaces-after-source"),
    # Trailing parameter.
    V(
        "foo bar baz :asdf quux",
        "FOO",
        ("bar", "baz", "asdf quux"),
        None,
        {},
        id="trailing-with-space",
    ),
    V(
        ":coolguy foo bar baz :  asdf quux ",
        "FOO",
        ("bar", "baz", "  asdf quux "),
        "coolguy",
        {},
        id="trailing-keeps-spaces",
    ),
    V(
        ":coolguy foo bar baz :  ",
        "FOO",
        ("bar", "baz", "  "),
        "coolguy",
        {},
        id="trailing-only-spaces",
    ),
    V("PRIVMSG #a :", "PRIVMSG", ("#a", ""), None, {}, id="empty-trailing"),
    V("foo bar baz ::asdf", "FOO", ("bar", "baz", ":asdf"), None, {}, id="trailing-starts-colon"),
    V("PRIVMSG #a ::-)", "PRIVMSG", ("#a", ":-)"), None, {}, id="trailing-smiley"),
    V(
        ":coolguy PRIVMSG bar :lol :) ",
        "PRIVMSG",
        ("bar", "lol :) "),
        "coolguy",
        {},
        id="trailing-contains-space-colon",
    ),
    V(":src JOIN :#chan", "JOIN", ("#chan",), "src", {}, id="trailing-without-need"),
    V(":SomeOp MODE #channel :+i", "MODE", ("#channel", "+i"), "SomeOp", {}, id="mode-trailing"),
    V(
        ":SomeOp MODE #channel +oo SomeUser :AnotherUser",
        "MODE",
        ("#channel", "+oo", "SomeUser", "AnotherUser"),
        "SomeOp",
        {},
        id="mode-many-params",
    ),
    V("PRIVMSG #a :a\tb", "PRIVMSG", ("#a", "a\tb"), None, {}, id="trailing-with-tab"),
    V(
        "PRIVMSG #a :h\u00e9llo \U0001f600 \u65e5\u672c",
        "PRIVMSG",
        ("#a", "h\u00e9llo \U0001f600 \u65e5\u672c"),
        None,
        {},
        id="utf8-text",
    ),
    V("CMD a:b c", "CMD", ("a:b", "c"), None, {}, id="colon-inside-middle-param"),
    # Tags.
    V(
        "@a=b;c=32;k;rt=ql7 foo",
        "FOO",
        (),
        None,
        {"a": "b", "c": "32", "k": "", "rt": "ql7"},
        id="tags",
    ),
    V(
        "@c;h=;a=b :quux ab cd",
        "AB",
        ("cd",),
        "quux",
        {"c": "", "h": "", "a": "b"},
        id="tags-without-values",
    ),
    V(
        r"@a=b\\and;c=72\s45;d=gh\:764 foo",
        "FOO",
        (),
        None,
        {"a": "b\\and", "c": "72 45", "d": "gh;764"},
        id="tag-escapes",
    ),
    V(r"@foo=\\\\\:\\s\s COMMAND", "COMMAND", (), None, {"foo": "\\\\;\\s "}, id="tag-escapes-all"),
    V(
        r"@tag1=value\\ntest COMMAND",
        "COMMAND",
        (),
        None,
        {"tag1": "value\\ntest"},
        id="tag-escaped-backslash-then-n",
    ),
    V(r"@tag1=value\1 COMMAND", "COMMAND", (), None, {"tag1": "value1"}, id="tag-unknown-escape"),
    V(
        "@tag1=value1\\ COMMAND",
        "COMMAND",
        (),
        None,
        {"tag1": "value1"},
        id="tag-trailing-lone-backslash",
    ),
    V(
        "@tag1=1;tag2=3;tag3=4;tag1=5 COMMAND",
        "COMMAND",
        (),
        None,
        {"tag1": "5", "tag2": "3", "tag3": "4"},
        id="tag-duplicate-last-wins",
    ),
    V(
        "@tag1=value1;tag2;vendor1/tag3=value2;vendor2/tag4= :irc.example.com COMMAND p1 p2 :p3 p3",
        "COMMAND",
        ("p1", "p2", "p3 p3"),
        "irc.example.com",
        {"tag1": "value1", "tag2": "", "vendor1/tag3": "value2", "vendor2/tag4": ""},
        id="tags-vendor-and-source",
    ),
    V(
        "@example.com/foo=bar PRIVMSG #a :hi",
        "PRIVMSG",
        ("#a", "hi"),
        None,
        {"example.com/foo": "bar"},
        id="tag-vendor-domain",
    ),
    V(
        "@+example.com/draft-reply=abc;+typing=active TAGMSG #a",
        "TAGMSG",
        ("#a",),
        None,
        {"+example.com/draft-reply": "abc", "+typing": "active"},
        id="tags-client-only",
    ),
    V(
        "@time=2024-01-01T00:00:00.000Z  :s PING x",
        "PING",
        ("x",),
        "s",
        {"time": "2024-01-01T00:00:00.000Z"},
        id="spaces-after-tags",
    ),
    V(
        "@msg=h\u00e9\\s\U0001f600 PING",
        "PING",
        (),
        None,
        {"msg": "h\u00e9 \U0001f600"},
        id="tag-utf8-value",
    ),
    V("@a=x=y PING", "PING", (), None, {"a": "x=y"}, id="tag-value-with-equals"),
    V("@ PING", "PING", (), None, {}, id="empty-tag-section"),
    V("@foo_bar=1;;ok=2;=3 PING", "PING", (), None, {"ok": "2"}, id="invalid-tag-keys-dropped"),
    # Tag values may not hold CR, LF or NUL (see Message): a received tag whose value
    # unescapes to one is dropped, and the rest of the message is kept.
    V(r"@bad=a\nb;ok=1 PING", "PING", (), None, {"ok": "1"}, id="tag-with-escaped-lf-dropped"),
    V(r"@bad=a\r;ok=1 PING", "PING", (), None, {"ok": "1"}, id="tag-with-escaped-cr-dropped"),
]


@pytest.mark.parametrize(("line", "command", "params", "source", "tags"), PARSE_VECTORS)
def test_parse_vectors(line, command, params, source, tags):
    expected = Message(command, params, source, tags)
    parsed = parse_line(line.encode("utf-8"))
    assert parsed == expected
    assert parsed.command == command
    assert parsed.params == params
    assert parsed.source == source
    assert dict(parsed.tags) == tags
    # Text input parses the same way as bytes.
    assert parse_line(line) == expected


@pytest.mark.parametrize(("line", "command", "params", "source", "tags"), PARSE_VECTORS)
def test_parse_vectors_reserialise(line, command, params, source, tags):
    """Whatever parses serialises to a line that parses back to the same message."""
    parsed = parse_line(line)
    assert parse_line(parsed.to_bytes()[:-2]) == parsed


# --------------------------------------------------------------------------------------------
# Serialisation.
# --------------------------------------------------------------------------------------------

SERIALISE_VECTORS = [
    V(Message("PING"), "PING", id="command-only"),
    V(message("PRIVMSG", "#a", "hi"), "PRIVMSG #a hi", id="no-colon-needed"),
    V(message("PRIVMSG", "#a", "hello world"), "PRIVMSG #a :hello world", id="space"),
    V(message("PRIVMSG", "#a", ""), "PRIVMSG #a :", id="empty"),
    V(message("PRIVMSG", "#a", ":-)"), "PRIVMSG #a ::-)", id="leading-colon"),
    V(message("PRIVMSG", "#a", "a:b"), "PRIVMSG #a a:b", id="inner-colon"),
    V(message("PRIVMSG", "#a", "a\tb"), "PRIVMSG #a a\tb", id="tab-needs-no-colon"),
    V(message("MODE", "#a", "+o", "bob"), "MODE #a +o bob", id="middles-never-get-colon"),
    V(message("001", "alice", "Welcome to IRC"), "001 alice :Welcome to IRC", id="numeric"),
    V(message("PRIVMSG", "#a", "hi", source="bob!b@h"), ":bob!b@h PRIVMSG #a hi", id="source"),
    V(
        Message("TAGMSG", ("#a",), tags={"+typing": "active"}),
        "@+typing=active TAGMSG #a",
        id="tag",
    ),
    V(Message("PING", tags={"a": "", "b": "1"}), "@a;b=1 PING", id="tag-without-value"),
    V(Message("PING", tags={"k": "x;y z\\"}), r"@k=x\:y\sz\\ PING", id="tag-escaped"),
    V(
        Message("PRIVMSG", ("#a", "hi there"), "s", {"example.com/x": "1"}),
        "@example.com/x=1 :s PRIVMSG #a :hi there",
        id="everything",
    ),
]


@pytest.mark.parametrize(("msg", "line"), SERIALISE_VECTORS)
def test_to_line(msg, line):
    assert msg.to_line() == line
    assert msg.to_bytes() == line.encode("utf-8") + b"\r\n"
    assert parse_line(line) == msg


def test_to_bytes_is_utf8_with_crlf():
    msg = message("PRIVMSG", "#a", "\u65e5\u672c \U0001f600")
    assert msg.to_bytes() == "PRIVMSG #a :\u65e5\u672c \U0001f600\r\n".encode()


def test_lower_case_command_is_kept_as_given():
    """A verb of letters is kept as given; parsing upper-cases it."""
    assert Message("privmsg", ("#a", "x")).to_line() == "privmsg #a x"
    assert parse_line("privmsg #a x").command == "PRIVMSG"


def test_tags_keep_insertion_order():
    msg = Message("PING", tags={"z": "1", "a": "2", "m": ""})
    assert msg.to_line() == "@z=1;a=2;m PING"


def test_repr_shows_the_line():
    assert "PRIVMSG #a :hi there" in repr(message("PRIVMSG", "#a", "hi there"))


def test_message_shorthand():
    msg = message("PRIVMSG", "#lobby", "hi", source="bob!b@h", time="now")
    assert msg == Message("PRIVMSG", ("#lobby", "hi"), "bob!b@h", {"time": "now"})


def test_message_is_frozen_and_tags_read_only():
    tags = {"a": "1"}
    msg = Message("PING", ["x"], tags=tags)
    assert msg.params == ("x",)  # any iterable becomes a tuple
    with pytest.raises(AttributeError):
        msg.command = "PONG"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del msg.source  # type: ignore[misc]
    with pytest.raises(TypeError):
        msg.tags["b"] = "2"  # type: ignore[index]
    tags["a"] = "changed"
    assert msg.tags == {"a": "1"}


def test_with_tags_returns_a_copy():
    msg = message("PRIVMSG", "#a", "hi", source="s", a="1")
    tagged = msg.with_tags({"b": "2"})
    assert tagged == Message("PRIVMSG", ("#a", "hi"), "s", {"b": "2"})
    assert msg.tags == {"a": "1"}
    with pytest.raises(LocalProtocolError):
        msg.with_tags({"bad key": "x"})


def test_message_equality_ignores_tag_order():
    assert Message("PING", tags={"a": "1", "b": "2"}) == Message("PING", tags={"b": "2", "a": "1"})
    assert Message("PING", ("x",)) != Message("PING", ("y",))


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        (";", r"\:"),
        (" ", r"\s"),
        ("\\", "\\\\"),
        ("\r", r"\r"),
        ("\n", r"\n"),
        ("a; b\\c\r\nd", r"a\:\sb\\c\r\nd"),
        ("\u00e9=\U0001f600", "\u00e9=\U0001f600"),
        ("", ""),
    ],
)
def test_escape_tag_value(value, escaped):
    assert escape_tag_value(value) == escaped
    assert unescape_tag_value(escaped) == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (r"a\b", "ab"),
        ("abc\\", "abc"),
        ("\\", ""),
        (r"\\\\", "\\\\"),
        (r"\\s", "\\s"),
        (r"\t", "t"),
    ],
)
def test_unescape_tag_value_is_lenient(raw, value):
    """An unknown escape drops the backslash; a lone trailing backslash is dropped."""
    assert unescape_tag_value(raw) == value


@settings(max_examples=200)
@given(st.text())
def test_unescape_inverts_escape(value):
    escaped = escape_tag_value(value)
    assert not set(escaped) & set("; \r\n")
    assert unescape_tag_value(escaped) == value


# --------------------------------------------------------------------------------------------
# Construction is validated: a message that exists can always be serialised.
# --------------------------------------------------------------------------------------------

INVALID_MESSAGES = [
    V({"command": ""}, id="empty-command"),
    V({"command": "PRIV MSG"}, id="command-with-space"),
    V({"command": "PRIV1"}, id="command-letters-and-digits"),
    V({"command": "12"}, id="numeric-two-digits"),
    V({"command": "1234"}, id="numeric-four-digits"),
    V({"command": "\u00e9t\u00e9"}, id="command-non-ascii"),
    V({"command": "PRIVMSG\n"}, id="command-trailing-newline"),
    V({"command": "001\n"}, id="numeric-trailing-newline"),
    V({"command": ":PING"}, id="command-colon"),
    V({"params": ("#a", "x\ry")}, id="last-param-cr"),
    V({"params": ("#a", "x\ny")}, id="last-param-lf"),
    V({"params": ("#a", "x\0y")}, id="last-param-nul"),
    V({"params": ("#\r", "x")}, id="middle-param-cr"),
    V({"params": ("#\n", "x")}, id="middle-param-lf"),
    V({"params": ("#\0", "x")}, id="middle-param-nul"),
    V({"params": ("a b", "x")}, id="middle-param-space"),
    V({"params": ("", "x")}, id="middle-param-empty"),
    V({"params": (":a", "x")}, id="middle-param-colon"),
    V({"params": ("#a", "\ud800")}, id="param-lone-surrogate"),
    V({"source": ""}, id="source-empty"),
    V({"source": "a b"}, id="source-space"),
    V({"source": "a\r\nQUIT"}, id="source-crlf"),
    V({"source": "a\0"}, id="source-nul"),
    V({"source": "\udcff"}, id="source-lone-surrogate"),
    V({"tags": {"": "x"}}, id="tag-key-empty"),
    V({"tags": {"a b": "x"}}, id="tag-key-space"),
    V({"tags": {"a=b": "x"}}, id="tag-key-equals"),
    V({"tags": {"a;b": "x"}}, id="tag-key-semicolon"),
    V({"tags": {"foo_bar": "x"}}, id="tag-key-underscore"),
    V({"tags": {"+": "x"}}, id="tag-key-only-plus"),
    V({"tags": {"vendor/": "x"}}, id="tag-key-empty-name"),
    V({"tags": {"/foo": "x"}}, id="tag-key-empty-vendor"),
    V({"tags": {"a\n": "x"}}, id="tag-key-trailing-newline"),
    V({"tags": {"a": "x\r\ny"}}, id="tag-value-crlf"),
    V({"tags": {"a": "x\0"}}, id="tag-value-nul"),
    V({"tags": {"a": "\ud800"}}, id="tag-value-lone-surrogate"),
]


@pytest.mark.parametrize("fields", INVALID_MESSAGES)
def test_invalid_message_cannot_be_built(fields):
    """A Message is checked once, when it is made: no parameter can smuggle CR, LF or NUL,
    and no middle parameter holds a space."""
    kwargs = {"command": "PRIVMSG", "params": ("#a", "hi")} | fields
    with pytest.raises(LocalProtocolError):
        Message(**kwargs)


def test_local_protocol_error_is_a_value_error():
    with pytest.raises(ValueError):
        message("PRIVMSG", "#a", "x\r\nQUIT")


@pytest.mark.parametrize(
    "params",
    [("",), (":x",), ("a b",), ("#a", ""), ("#a", ":x"), ("#a", " lead"), ("#a", "a b c")],
)
def test_last_param_may_be_anything_but_cr_lf_nul(params):
    """Only the last parameter may be empty, start with ':' or hold spaces."""
    assert parse_line(Message("PRIVMSG", params).to_line()).params == params


# --------------------------------------------------------------------------------------------
# Round trip: parse_line(m.to_bytes()[:-2]) == m for every valid message.
# --------------------------------------------------------------------------------------------

_NO_CRLF_NUL = st.characters(exclude_characters="\r\n\0", exclude_categories=("Cs",))
_NO_SPACE_CRLF_NUL = st.characters(exclude_characters=" \r\n\0", exclude_categories=("Cs",))

commands = st.text(string.ascii_uppercase, min_size=1, max_size=12) | st.text(
    string.digits, min_size=3, max_size=3
)
middle_params = st.text(_NO_SPACE_CRLF_NUL, min_size=1, max_size=20).filter(
    lambda p: not p.startswith(":")
)
last_params = st.text(_NO_CRLF_NUL, max_size=40)
sources = st.none() | st.text(_NO_SPACE_CRLF_NUL, min_size=1, max_size=30)
tag_keys = st.from_regex(r"\+?(?:[A-Za-z0-9.\-]{1,12}/)?[A-Za-z0-9\-]{1,12}", fullmatch=True)
tag_values = st.text(_NO_CRLF_NUL, max_size=20)


@st.composite
def messages(draw):
    params = draw(st.lists(middle_params, max_size=5))
    if draw(st.booleans()):
        params.append(draw(last_params))
    return Message(
        draw(commands),
        tuple(params),
        draw(sources),
        draw(st.dictionaries(tag_keys, tag_values, max_size=4)),
    )


@settings(max_examples=300)
@given(messages())
def test_round_trip(msg):
    line = msg.to_bytes()
    assert line.endswith(b"\r\n")
    assert b"\r" not in line[:-2] and b"\n" not in line[:-2] and b"\0" not in line
    assert parse_line(line[:-2], limit=False) == msg
    assert parse_line(msg.to_line(), limit=False) == msg


# --------------------------------------------------------------------------------------------
# parse_line errors.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", [b"", b" ", b"     ", "", "   "])
def test_empty_line(line):
    """A line with nothing in it; servers silently ignore these."""
    with pytest.raises(EmptyLine):
        parse_line(line)


def _body(size: int) -> bytes:
    """A PRIVMSG body of exactly ``size`` bytes."""
    head = b"PRIVMSG #a :"
    return head + b"x" * (size - len(head))


def test_body_limit_is_510_bytes_without_crlf():
    """Bytes allowed for the message body, CRLF included: 512 (RFC 1459 section 2.3)."""
    assert MAX_BODY_BYTES == 512
    assert len(parse_line(_body(510)).params[1]) == 510 - len(b"PRIVMSG #a :")
    with pytest.raises(InputTooLong):
        parse_line(_body(511))
    with pytest.raises(InputTooLong):
        parse_line(_body(511).decode())


def test_body_limit_counts_the_source_but_not_the_tags():
    body = b":" + b"s" * 100 + b" " + _body(408)
    assert len(body) == 510
    tags = b"@a=" + b"v" * 4000 + b" "
    assert parse_line(tags + body).source == "s" * 100
    with pytest.raises(InputTooLong):
        parse_line(tags + body + b"x")


def test_body_limit_counts_bytes_not_characters():
    line = "PRIVMSG #a :" + "\u00e9" * 250  # 12 + 500 bytes, 262 characters
    with pytest.raises(InputTooLong):
        parse_line(line)


def _tags(size: int) -> bytes:
    """A tag section of exactly ``size`` bytes, '@' included, trailing space excluded."""
    return b"@a=" + b"v" * (size - 3)


def test_tag_section_limit():
    """A client's tag section, the leading '@' and trailing space included, may be 4096
    bytes (a server's, 8191: what a client reads with ``limit=False``)."""
    assert (MAX_CLIENT_TAG_BYTES, MAX_TAG_BYTES) == (4096, 8191)
    ok = _tags(MAX_CLIENT_TAG_BYTES - 1)
    assert len(parse_line(ok + b" PING").tags["a"]) == MAX_CLIENT_TAG_BYTES - 4
    with pytest.raises(InputTooLong):
        parse_line(_tags(MAX_CLIENT_TAG_BYTES) + b" PING")
    with pytest.raises(InputTooLong):
        parse_line(_tags(MAX_CLIENT_TAG_BYTES))  # tags without a body: judged by length first
    server_side = _tags(MAX_TAG_BYTES - 1) + b" PING"
    assert len(parse_line(server_side, limit=False).tags["a"]) == MAX_TAG_BYTES - 4


def test_limit_false_turns_off_length_checks():
    long_body = _body(2000)
    long_tags = _tags(20000) + b" PING"
    padded = b" " * 9000 + b"PING x"
    assert parse_line(long_body, limit=False).params[1] == "x" * (2000 - 12)
    assert parse_line(long_tags, limit=False).tags["a"] == "v" * (20000 - 3)
    assert parse_line(padded, limit=False).params == ("x",)


@pytest.mark.parametrize(
    "line",
    [
        V(b" " * 9000 + b"PING x", id="leading-spaces"),
        V(b"@a=b" + b" " * 9000 + b"PING x", id="spaces-after-the-tags"),
        V(b"@a=b" + b" " * (MAX_TAG_BYTES + MAX_BODY_BYTES - 4) + b"P", id="one-byte-over"),
        V(b"@a=b" + b" " * (MAX_TAG_BYTES + MAX_BODY_BYTES - 4) + b"\r", id="with-its-cr"),
    ],
)
def test_no_line_is_longer_than_a_full_tag_section_and_a_full_body(line):
    """However much of it is padding: the stand-in for a line that framing dropped is one
    byte longer than that, and must never parse as a (cut) message."""
    with pytest.raises(InputTooLong):
        parse_line(line)


def test_a_padded_line_within_the_maximum_still_parses():
    line = b" " * (MAX_TAG_BYTES + MAX_BODY_BYTES - 6) + b"PING x"
    assert parse_line(line).params == ("x",)


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"PRIVMSG #a :\xff", "PRIVMSG"),
        (b"privmsg #a :caf\xc3", "PRIVMSG"),
        (b":nick!u@h NOTICE #a :\xc3\x28", "NOTICE"),
        (b"@a=\xff :s TOPIC #a :x", "TOPIC"),
        (b"001 me :\xed\xa0\x80", "001"),
        (b"\xffCMD x", "*"),
        (b":src\xff", "*"),
        (b"\xff", "*"),
    ],
)
def test_invalid_utf8(line, command):
    """A line that is not valid UTF-8 is answered with FAIL <command> INVALID_UTF8."""
    with pytest.raises(InvalidUtf8) as info:
        parse_line(line)
    assert info.value.command == command


def test_invalid_utf8_in_text_input():
    """Text decoded with surrogateescape is judged as the bytes it came from."""
    with pytest.raises(InvalidUtf8) as info:
        parse_line(b"PRIVMSG #a :\xff".decode("utf-8", "surrogateescape"))
    assert info.value.command == "PRIVMSG"
    with pytest.raises(InvalidUtf8) as info:
        parse_line("PRIVMSG #a :\ud800")
    assert info.value.command == "PRIVMSG"


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (":src", "*"),
        (":src   ", "*"),
        (":src :trailing only", "*"),
        (": :x", "*"),
        ("@a=b", "*"),
        ("@a=b :src", "*"),
        ("@a=b    ", "*"),
        ("PRIV-MSG #a :x", "PRIV-MSG"),
        ("PRIV1 #a", "PRIV1"),
        ("12 x", "12"),
        ("1234 x", "1234"),
        ("CMD:x y", "CMD:x"),
        ("\tPING x", "\tPING"),
        ("X" * 40 + "1 y", "X" * 32),
    ],
)
def test_malformed_line(line, command):
    """A line that does not parse as an IRC message (no command, or not a valid one)."""
    with pytest.raises(MalformedLine) as info:
        parse_line(line)
    assert info.value.command == command


@pytest.mark.parametrize("line", [b"PRIVMSG #a :x\0y", b"PRIVMSG #a :x\ry", b"PING\n"])
def test_cr_lf_nul_inside_a_line_is_malformed(line):
    with pytest.raises(MalformedLine):
        parse_line(line)


def test_error_hierarchy():
    for cls in (EmptyLine, InputTooLong, InvalidUtf8, MalformedLine, ReadQExceeded):
        assert issubclass(cls, RemoteProtocolError)
        assert issubclass(cls, ProtocolError)
    assert issubclass(LocalProtocolError, ProtocolError)
    for cls in (EmptyLine, InputTooLong, InvalidUtf8, MalformedLine):
        assert cls.fatal is False
    assert ReadQExceeded.fatal is True


# --------------------------------------------------------------------------------------------
# Robustness: arbitrary input raises nothing but ProtocolError.
# --------------------------------------------------------------------------------------------

# Bytes that matter to the grammar, to reach deeper than uniformly random bytes do.
_IRCISH = st.lists(
    st.sampled_from(
        [
            b" ",
            b":",
            b"@",
            b";",
            b"=",
            b"\\",
            b"/",
            b"+",
            b"a",
            b"Z",
            b"1",
            b"#",
            b"\t",
            b"\xff",
            b"\xc3",
            b"\xa9",
            b"\x00",
            b"\r",
            b"\n",
            b"PRIVMSG",
            b"001",
            b"\\s",
        ]
    ),
    max_size=40,
).map(b"".join)


def _parse_or_protocol_error(data, **kwargs):
    try:
        msg = parse_line(data, **kwargs)
    except ProtocolError:
        return
    assert isinstance(msg, Message)
    # The parser builds messages without re-checking them: what it builds must pass the
    # checks a Message makes at construction.
    assert Message(msg.command, msg.params, msg.source, msg.tags) == msg
    # Whatever parses re-serialises to a line that parses back to the same message.
    assert parse_line(msg.to_bytes()[:-2], limit=False) == msg


@settings(max_examples=300)
@given(st.binary(max_size=600) | _IRCISH)
def test_arbitrary_bytes_raise_only_protocol_errors(data):
    _parse_or_protocol_error(data)
    _parse_or_protocol_error(data, limit=False)


# Text, lone surrogates included (both kinds: the surrogateescape ones that stand for a byte,
# and the others).
_ANY_TEXT = st.lists(
    st.sampled_from(["PING ", "PRIVMSG #a :", " ", ":", "@a=b ", "\t", "\0", "\ud800", "\udcff"])
    | st.characters(),
    max_size=30,
).map("".join)


@settings(max_examples=200)
@given(_ANY_TEXT)
def test_arbitrary_text_raises_only_protocol_errors(data):
    """parse_line also takes text; any text either parses or raises a ProtocolError."""
    _parse_or_protocol_error(data)


def test_a_body_too_long_for_a_line_is_cut_at_a_character_edge():
    """A relayed message gains its sender's prefix; what goes out still fits 512 bytes
    with CRLF (tags aside), cut where a character ends, as Ergo does."""
    text = "é" * 300  # 600 bytes
    sent = Message("PRIVMSG", ("#room", text), "nick!user@host", {"msgid": "x"}).to_bytes()
    tags, body = sent.split(b" ", 1)
    assert tags == b"@msgid=x"
    assert len(body) <= 512 and body.endswith(b"\r\n")
    cut = parse_line(body[:-2])
    assert cut.params[0] == "#room" and text.startswith(cut.params[1])
    assert len(body) >= 511  # no more than one character's bytes short


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("42", 42), ("007", 7), ("123456789", 123456789), ("1234567890", None),
     ("", None), ("-1", None), ("+1", None), (" 1", None), ("1.5", None), ("²", None),
     ("٣", None), ("1²", None)],
)  # fmt: skip
def test_number_takes_only_a_few_ascii_digits(text, expected):
    assert number(text) == expected


def test_number_of_more_digits_where_asked():
    assert number("1234567890", digits=10) == 1234567890 and number("123456", 5) is None
