"""Specification of :class:`chatcli.protocol.LineBuffer`: a byte stream in, complete lines
out, the same lines however the stream was cut into chunks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatcli.protocol import MAX_BODY_BYTES, MAX_LINE_BYTES, MAX_TAG_BYTES, LineBuffer, parse_line
from chatcli.protocol.errors import InputTooLong, ReadQExceeded

V = pytest.param

# (stream, complete lines, bytes left pending)
FRAMING_VECTORS = [
    V(b"", [], 0, id="nothing"),
    V(b"PING :a\r\n", [b"PING :a"], 0, id="crlf"),
    V(b"PING :a\n", [b"PING :a"], 0, id="lf"),
    V(b"A\r\nB\nC\r\n", [b"A", b"B", b"C"], 0, id="mixed-endings"),
    V(b"A\r\nB", [b"A"], 1, id="partial-last-line"),
    V(b"no ending yet", [], 13, id="only-partial"),
    V(b"\r\n\n", [b"", b""], 0, id="empty-lines-are-returned"),
    V(b"A\r\r\n", [b"A\r"], 0, id="only-one-cr-dropped"),
    V(b"\rX\n", [b"\rX"], 0, id="cr-not-before-lf-kept"),
    V(b"A\rB\r\n", [b"A\rB"], 0, id="inner-cr-kept"),
    V(b"trailing cr\r", [], 12, id="cr-waits-for-lf"),
    V(
        b"@time=x;+typing=active :nick!u@h PRIVMSG #a :hello world\r\n:srv 001 me :Welcome\r\n",
        [b"@time=x;+typing=active :nick!u@h PRIVMSG #a :hello world", b":srv 001 me :Welcome"],
        0,
        id="irc-lines",
    ),
    V(
        "PRIVMSG #a :\U0001f600 \u65e5\u672c\u8a9e\r\nX\n".encode(),
        ["PRIVMSG #a :\U0001f600 \u65e5\u672c\u8a9e".encode(), b"X"],
        0,
        id="utf8-multibyte",
    ),
    V(b"\xff\xfe\x00\n", [b"\xff\xfe\x00"], 0, id="any-bytes-are-framed"),
]


def feed_all(chunks, max_line=MAX_LINE_BYTES):
    buffer = LineBuffer(max_line)
    lines = []
    for chunk in chunks:
        lines.extend(buffer.feed(chunk))
        assert buffer.pending <= max_line
    return lines, buffer.pending


@pytest.mark.parametrize(("stream", "lines", "pending"), FRAMING_VECTORS)
def test_fed_whole(stream, lines, pending):
    assert feed_all([stream]) == (lines, pending)


@pytest.mark.parametrize(("stream", "lines", "pending"), FRAMING_VECTORS)
def test_fed_byte_by_byte(stream, lines, pending):
    """Partial input is kept until its line ending arrives, across any number of feeds."""
    assert feed_all([stream[i : i + 1] for i in range(len(stream))]) == (lines, pending)


@pytest.mark.parametrize(("stream", "lines", "pending"), FRAMING_VECTORS)
def test_split_at_every_position(stream, lines, pending):
    for cut in range(len(stream) + 1):
        assert feed_all([stream[:cut], stream[cut:]]) == (lines, pending), cut


@settings(max_examples=200)
@given(st.data())
def test_any_chunking_gives_the_same_lines(data):
    stream = data.draw(st.lists(st.sampled_from([b"A", b"bc", b" ", b"\r", b"\n", b"\xc3\xa9"])))
    stream = b"".join(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed_all(chunks) == feed_all([stream])


def test_feed_returns_lines_in_order_and_pending_counts_the_rest():
    buffer = LineBuffer()
    assert buffer.pending == 0
    assert buffer.feed(b"NICK al") == []
    assert buffer.pending == 7
    assert buffer.feed(b"ice\r\nUSER a 0 * :A\r") == [b"NICK alice"]
    assert buffer.pending == len(b"USER a 0 * :A\r")
    assert buffer.feed(b"\nPI") == [b"USER a 0 * :A"]
    assert buffer.pending == 2
    assert buffer.feed(b"NG x\n") == [b"PING x"]
    assert buffer.pending == 0


def test_default_max_line_is_a_full_tag_section_plus_a_full_body():
    assert MAX_LINE_BYTES == MAX_TAG_BYTES + MAX_BODY_BYTES
    assert LineBuffer().max_line == MAX_LINE_BYTES


def test_longest_legal_irc_line_fits_the_default_buffer():
    line = b"@a=" + b"v" * (MAX_TAG_BYTES - 4) + b" PRIVMSG #a :" + b"x" * (MAX_BODY_BYTES - 14)
    assert parse_line(line, limit=False).params == ("#a", "x" * (MAX_BODY_BYTES - 14))
    assert feed_all([line + b"\r\n"]) == ([line], 0)
    assert feed_all([line[i : i + 100] for i in range(0, len(line), 100)] + [b"\r\n"]) == (
        [line],
        0,
    )


# --------------------------------------------------------------------------------------------
# Over-long lines, by default (what a client reading a server wants): "No line may exceed
# max_line bytes, and no more than that is held without a line ending. Past that, feed
# raises ReadQExceeded."
# --------------------------------------------------------------------------------------------

MAX = 10


def chunkings(stream):
    """The stream fed whole, byte by byte, and split at every position."""
    yield [stream]
    yield [stream[i : i + 1] for i in range(len(stream))]
    for cut in range(len(stream) + 1):
        yield [stream[:cut], stream[cut:]]


@pytest.mark.parametrize(
    ("stream", "lines"),
    [
        V(b"x" * MAX + b"\n", [b"x" * MAX], id="exactly-max-with-lf"),
        V(b"x" * (MAX - 1) + b"\r\n", [b"x" * (MAX - 1)], id="max-with-crlf"),
        V(b"a\n" + b"x" * MAX + b"\nb\n", [b"a", b"x" * MAX, b"b"], id="between-lines"),
    ],
)
def test_lines_up_to_max_line_pass_however_fed(stream, lines):
    for chunks in chunkings(stream):
        assert feed_all(chunks, MAX) == (lines, 0), chunks


@pytest.mark.parametrize(
    "stream",
    [
        V(b"x" * (MAX + 1), id="no-ending"),
        V(b"x" * (MAX + 1) + b"\n", id="with-lf"),
        V(b"x" * MAX + b"\r\n", id="cr-counts"),
        V(b"ok\n" + b"x" * (MAX + 1) + b"\n", id="after-a-good-line"),
        V(b"x" * (MAX + 1) + b"\nok\n", id="before-a-good-line"),
        V(b"x" * 1000, id="far-too-long"),
    ],
)
def test_over_long_line_raises_however_fed(stream):
    """Whether a line is too long does not depend on how the stream was cut."""
    for chunks in chunkings(stream):
        buffer = LineBuffer(MAX)
        with pytest.raises(ReadQExceeded):
            for chunk in chunks:
                buffer.feed(chunk)
                assert buffer.pending <= MAX
        assert buffer.pending == 0


def test_buffer_holds_max_line_bytes_and_not_one_more():
    buffer = LineBuffer(MAX)
    assert buffer.feed(b"x" * MAX) == []
    assert buffer.pending == MAX
    with pytest.raises(ReadQExceeded) as info:
        buffer.feed(b"x")
    assert info.value.fatal
    assert buffer.pending == 0


def test_default_limit_raises_past_max_line_bytes():
    buffer = LineBuffer()
    assert buffer.feed(b"x" * MAX_LINE_BYTES) == []
    with pytest.raises(ReadQExceeded):
        buffer.feed(b"y")
    assert buffer.pending == 0


@settings(max_examples=300)
@given(
    st.integers(1, 32),
    st.lists(st.binary(max_size=40) | st.sampled_from([b"\n", b"\r\n", b"x" * 33]), max_size=12),
)
def test_arbitrary_chunks_raise_only_readq_exceeded(max_line, chunks):
    buffer = LineBuffer(max_line)
    for chunk in chunks:
        try:
            lines = buffer.feed(chunk)
        except ReadQExceeded:
            assert buffer.pending == 0
            return
        assert buffer.pending <= max_line
        for line in lines:
            assert b"\n" not in line
            assert len(line) <= max_line


def test_lines_before_an_overlong_line_are_not_lost():
    """The complete lines that precede an endless one still count (a QUIT reason, say)."""
    buffer = LineBuffer(max_line=20)
    with pytest.raises(ReadQExceeded) as caught:
        buffer.feed(b"QUIT :bye\r\nPING x\r\n" + b"z" * 30 + b"\r\n")
    assert caught.value.lines == [b"QUIT :bye", b"PING x"]
    with pytest.raises(ReadQExceeded) as caught:
        buffer.feed(b"NICK a\r\n" + b"y" * 30)
    assert caught.value.lines == [b"NICK a"]


# --------------------------------------------------------------------------------------------
# Dropping over-long lines (what a server does with its clients' input): "With max_dropped,
# an over-long line is dropped: its first max_line + 1 bytes stand in for it once its line
# ending comes, and framing goes on after it. Only a line that goes on for more than
# max_dropped bytes without ending raises ReadQExceeded."
# --------------------------------------------------------------------------------------------

DROP = 40  # max_dropped, with max_line MAX


def reference(stream: bytes, max_line: int, max_dropped: int) -> tuple[list[bytes], int] | None:
    """What dropping framing gives for ``stream``, worked out line by line: the lines and
    the bytes pending, or None where ReadQExceeded must be raised."""
    *complete, rest = stream.split(b"\n")
    lines = []
    for line in complete:
        if len(line) <= max_line:
            lines.append(line[:-1] if line.endswith(b"\r") else line)
        elif len(line) <= max_dropped:
            lines.append(line[: max_line + 1])
        else:
            return None
    if len(rest) > max_dropped:
        return None
    return lines, min(len(rest), max_line + 1)


def feed_dropping(chunks: list[bytes], max_line: int = MAX, max_dropped: int = DROP):
    buffer = LineBuffer(max_line, max_dropped)
    lines = []
    try:
        for chunk in chunks:
            lines.extend(buffer.feed(chunk))
            assert buffer.pending <= max_line + 1
    except ReadQExceeded:
        assert buffer.pending == 0 and not buffer.dropping
        return None
    return lines, buffer.pending


@pytest.mark.parametrize(
    ("stream", "lines", "pending"),
    [
        V(b"x" * MAX + b"\n", [b"x" * MAX], 0, id="exactly-max-passes-whole"),
        V(b"x" * (MAX + 1) + b"\n", [b"x" * (MAX + 1)], 0, id="one-over-is-its-own-stand-in"),
        V(b"y" * 30 + b"\r\n", [b"y" * (MAX + 1)], 0, id="stand-in-is-the-first-bytes"),
        V(b"x" * MAX + b"\r\n", [b"x" * MAX + b"\r"], 0, id="stand-in-keeps-its-cr"),
        V(b"a\n" + b"z" * 25 + b"\nb\r\n", [b"a", b"z" * (MAX + 1), b"b"], 0, id="in-between"),
        V(b"z" * DROP + b"\nok\n", [b"z" * (MAX + 1), b"ok"], 0, id="max-dropped-is-dropped"),
        V(b"ok\n" + b"z" * 25, [b"ok"], MAX + 1, id="being-dropped-holds-only-the-head"),
        V(b"\n".join([b"w" * 20] * 3) + b"\n", [b"w" * (MAX + 1)] * 3, 0, id="one-after-another"),
    ],
)
def test_over_long_lines_are_dropped_and_framing_goes_on(stream, lines, pending):
    for chunks in chunkings(stream):
        assert feed_dropping(chunks) == (lines, pending), chunks


@pytest.mark.parametrize(
    "stream",
    [
        V(b"z" * (DROP + 1), id="past-max-dropped-without-ending"),
        V(b"z" * (DROP + 1) + b"\n", id="past-max-dropped-ending-too-late"),
        V(b"z" * DROP + b"\r\n", id="cr-counts"),
        V(b"ok\n" + b"z" * 1000, id="far-too-long"),
    ],
)
def test_only_a_line_past_max_dropped_raises(stream):
    for chunks in chunkings(stream):
        assert feed_dropping(chunks) is None, chunks


def test_lines_before_an_endless_one_are_not_lost_when_dropping():
    buffer = LineBuffer(MAX, DROP)
    assert buffer.feed(b"a\n" + b"z" * 20) == [b"a"]
    assert buffer.dropping
    with pytest.raises(ReadQExceeded) as caught:
        buffer.feed(b"z" * 10 + b"\nQUIT :bye\n" + b"z" * 50)
    assert caught.value.lines == [b"z" * (MAX + 1), b"QUIT :bye"]
    assert caught.value.fatal


@settings(max_examples=300)
@given(st.data())
def test_dropping_matches_the_line_by_line_reference_however_fed(data):
    pieces = [b"a", b"bc", b" ", b"\r", b"\n", b"x" * 9, b"y" * 17]
    stream = b"".join(data.draw(st.lists(st.sampled_from(pieces), max_size=30)))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed_dropping(chunks) == reference(stream, MAX, DROP)


def test_max_dropped_must_leave_room_for_an_over_long_line():
    with pytest.raises(ValueError):
        LineBuffer(MAX, MAX)
    assert LineBuffer(MAX, MAX + 1).max_dropped == MAX + 1


def test_tags_over_every_limit_stand_in_as_a_line_parse_line_refuses():
    """IRCv3 message-tags: a client's tags over the limit are answered 417 (InputTooLong)
    and the connection goes on; the stand-in for the line is too long to parse, and still
    starts as the line did."""
    line = b"@label=L1;+a=" + b"y" * 9000 + b" TAGMSG #r"
    buffer = LineBuffer(max_dropped=64 * 1024)
    [stand_in, after] = buffer.feed(line + b"\r\n" + b"PING x\r\n")
    assert len(stand_in) == MAX_LINE_BYTES + 1 and stand_in.startswith(b"@label=L1;+a=yyy")
    with pytest.raises(InputTooLong):
        parse_line(stand_in)
    assert parse_line(after).params == ("x",)
