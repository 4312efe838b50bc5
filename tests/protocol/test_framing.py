"""Specification of :class:`chatcli.protocol.LineBuffer`: a byte stream in, complete lines
out, the same lines however the stream was cut into chunks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatcli.protocol import MAX_BODY_BYTES, MAX_LINE_BYTES, MAX_TAG_BYTES, LineBuffer, parse_line
from chatcli.protocol.errors import ReadQExceeded

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
# Over-long lines: "No line may exceed max_line bytes, and no more than that is held without
# a line ending. Past that, feed raises ReadQExceeded."
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
