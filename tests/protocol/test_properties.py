"""Hardening properties of the read path: whatever a peer sends, framing and parsing answer
with a typed *remote* error or a well-formed message, never anything else.

test_message.py and test_framing.py already throw arbitrary bytes at ``parse_line`` and at
``LineBuffer`` separately. These tests start from real command lines instead, mutate them
(truncated, bit-flipped, spliced with invalid UTF-8, grown past the limits), run them
through both layers as the server does, and check each outcome against an oracle: which
error a line must raise, not only that the error is a ProtocolError.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chatcli.protocol import (
    MAX_BODY_BYTES,
    MAX_LINE_BYTES,
    EmptyLine,
    InputTooLong,
    InvalidUtf8,
    LineBuffer,
    MalformedLine,
    Message,
    ReadQExceeded,
    RemoteProtocolError,
    parse_line,
)

# --------------------------------------------------------------------------------------------
# Strategies: real command lines, then mutations of them.
# --------------------------------------------------------------------------------------------

_VERBS = ["PRIVMSG", "JOIN", "MODE", "WHO", "CHATHISTORY", "TAGMSG", "CAP", "AUTHENTICATE"]
_WORDS = [
    "#lobby",
    "#a,#b",
    "alice",
    "*",
    "+o",
    "-b+k",
    "LS",
    "REQ",
    "302",
    "PLAIN",
    "LATEST",
    "BEFORE",
    "timestamp=2024-01-01T00:00:00.000Z",
    "msgid=abc",
    "%ntuhra",
    "+",
    "0",
    "50",
    "café",
    "\U0001f600",
]
_TEXT = st.characters(exclude_characters=" \r\n\0", exclude_categories=("Cs",))
_middle = st.sampled_from(_WORDS) | st.text(_TEXT, min_size=1, max_size=12).filter(
    lambda w: not w.startswith(":")
)
_tag = st.tuples(
    st.sampled_from(["label", "+draft/reply", "+typing", "msgid", "time", "x/y"]),
    st.sampled_from(["", "abc", r"a\sb\:c", "\\", "é"]),
).map(lambda kv: f"{kv[0]}={kv[1]}" if kv[1] else kv[0])


@st.composite
def command_lines(draw: st.DrawFn) -> bytes:
    """A well-formed client line (without its line ending) of one of the verbs above."""
    parts = []
    tags = draw(st.lists(_tag, max_size=3))
    if tags:
        parts.append("@" + ";".join(tags))
    if draw(st.booleans()):
        parts.append(":alice!a@h")
    parts.append(draw(st.sampled_from(_VERBS) | st.sampled_from(_VERBS).map(str.lower)))
    parts.extend(draw(st.lists(_middle, max_size=4)))
    if draw(st.booleans()):
        parts.append(":" + draw(st.text(_TEXT | st.just(" "), max_size=30)))
    return " ".join(parts).encode()


_NASTY_BYTES = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf0\x9f", b"\x00", b"\r", b"\n", b"\r\n"]
_NASTY = st.sampled_from(
    [*_NASTY_BYTES, b" ", b":", b"@", b";", b"=", b"\\", b"\t", b"PRIVMSG"]
) | st.binary(min_size=1, max_size=8)


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A command line after up to four random edits (may hold CR, LF or NUL)."""
    data = bytearray(draw(command_lines()))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "repeat", "grow"]))
        at = draw(st.integers(0, len(data)))
        if kind == "truncate":  # cut anywhere, in the middle of a character too
            del data[at:]
        elif kind == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(_NASTY)
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(1, 20))
        elif kind == "grow":  # past the body limit, the tag limit, or both
            data[at:at] = draw(st.sampled_from([b"x", b"\xc3\xa9", b";", b" "])) * draw(
                st.sampled_from([300, 600, 4200, 9000])
            )
    return bytes(data)


# --------------------------------------------------------------------------------------------
# parse_line on mutated lines: an oracle for which outcome each line must have.
# --------------------------------------------------------------------------------------------


def _outcome(data: bytes, *, limit: bool) -> Message | RemoteProtocolError:
    try:
        return parse_line(data, limit=limit)
    except RemoteProtocolError as exc:  # anything else (LocalProtocolError too) fails the test
        return exc


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_reply_params(exc: RemoteProtocolError) -> None:
    """The server echoes the command of a bad line in its reply (FAIL <command> ..., 421
    <command> ...): it must be a valid middle parameter, or answering would fail."""
    if isinstance(exc, (InvalidUtf8, MalformedLine)):
        Message("FAIL", (exc.command, "INVALID_UTF8", "rejected"), "chatcli.local")


@settings(max_examples=500)
@given(mutated_lines())
def test_mutated_lines_give_the_error_the_line_deserves(data):
    unlimited = _outcome(data, limit=False)
    limited = _outcome(data, limit=True)

    # 1. The limits only ever add InputTooLong; short lines never get it.
    assert not isinstance(unlimited, InputTooLong)
    if isinstance(limited, InputTooLong):
        assert len(data) + 2 > MAX_BODY_BYTES
    else:
        assert type(limited) is type(unlimited)
        assert not isinstance(limited, Message) or limited == unlimited

    # 2. Which error, judged without the limits.
    forbidden = any(c in data for c in b"\r\n\0")
    if forbidden:
        assert isinstance(unlimited, MalformedLine)
    elif not data.strip(b" "):
        assert isinstance(unlimited, EmptyLine)
    elif not _is_utf8(data):
        assert isinstance(unlimited, InvalidUtf8)
    else:
        assert isinstance(unlimited, (Message, MalformedLine))

    # 3. What parses is a valid Message that survives a round trip; what fails can be
    #    answered.
    for outcome in (unlimited, limited):
        if isinstance(outcome, Message):
            assert Message(outcome.command, outcome.params, outcome.source, outcome.tags) == (
                outcome
            )
            assert parse_line(outcome.to_line().encode(), limit=False) == outcome
            # What is sent of it fits an IRC line, its tags aside (cut if need be).
            sent = outcome.to_bytes()
            body = sent.split(b" ", 1)[1] if outcome.tags else sent
            assert len(body) <= MAX_BODY_BYTES and sent.endswith(b"\r\n")
            exact = outcome.to_line().encode()
            if len(exact.split(b" ", 1)[1] if outcome.tags else exact) <= MAX_BODY_BYTES - 2:
                assert parse_line(sent[:-2], limit=False) == outcome  # nothing to cut
        else:
            assert not outcome.fatal
            _check_reply_params(outcome)


@settings(max_examples=200)
@given(command_lines())
def test_every_prefix_of_a_real_line_parses_or_fails_typed(data):
    """A peer cut off at any byte (inside a UTF-8 character too) costs a typed error at
    most, and a prefix that is still valid UTF-8 is never called invalid."""
    for end in range(len(data) + 1):
        outcome = _outcome(data[:end], limit=True)
        if isinstance(outcome, InvalidUtf8):
            assert not _is_utf8(data[:end])
        elif isinstance(outcome, RemoteProtocolError):
            _check_reply_params(outcome)


# --------------------------------------------------------------------------------------------
# Framing and parsing together, as a connection reads.
# --------------------------------------------------------------------------------------------

_ENDINGS = st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"\r\r\n", b"\n\n"])


@st.composite
def streams(draw: st.DrawFn) -> tuple[int, list[bytes]]:
    """A max_line and a byte stream of mutated lines and junk, cut into recv()-sized chunks."""
    pieces = draw(
        st.lists(
            st.tuples(mutated_lines() | st.binary(max_size=200), _ENDINGS).map(b"".join),
            min_size=1,
            max_size=8,
        )
    )
    stream = b"".join(pieces)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return draw(st.sampled_from([64, 600, MAX_LINE_BYTES])), chunks


@settings(max_examples=300)
@given(streams())
def test_read_path_yields_only_messages_and_remote_errors(case):
    """What Connection.run does: feed, split, parse. Only ReadQExceeded is fatal, and the
    lines that came before it are still handed over."""
    max_line, chunks = case
    buffer = LineBuffer(max_line)
    lines: list[bytes] = []
    for chunk in chunks:
        try:
            lines.extend(buffer.feed(chunk))
        except ReadQExceeded as exc:
            assert exc.fatal
            lines.extend(exc.lines)
            break
    for line in lines:
        assert b"\n" not in line and len(line) <= max_line
        outcome = _outcome(line, limit=True)
        if isinstance(outcome, RemoteProtocolError):
            assert not outcome.fatal
            _check_reply_params(outcome)


@settings(max_examples=100)
@given(command_lines())
def test_unmutated_command_lines_parse(data):
    """The mutations start from valid lines: without edits, each one parses."""
    msg = parse_line(data)
    assert msg.command in _VERBS
