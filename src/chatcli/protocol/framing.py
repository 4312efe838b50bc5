"""Framing: a byte stream in, complete lines out.

Sans-IO: the caller feeds whatever ``recv`` returned and takes the complete lines back.

Contract of :class:`LineBuffer`:

1. Lines end with LF; a CR before it is dropped (RFC 1459 says CRLF, real clients send LF).
2. Partial input is kept until its line ending arrives, across any number of feeds.
3. No more than ``max_line + 1`` bytes are ever held without a line ending. A line of at
   most ``max_line`` bytes (a full tag section plus a full body, by default; a CR before
   the LF counts) is returned whole.
4. A longer line is *over-long*. By default (``max_dropped=0``) ``feed`` raises
   :class:`ReadQExceeded` as soon as it sees one, and the stream cannot be resynchronised:
   the connection has to end (what a client reading a server wants).
5. With ``max_dropped`` > 0 (what a server reading a client wants) an over-long line is
   dropped instead: its first ``max_line + 1`` bytes are kept and the rest discarded as it
   arrives; once its line ending comes, those ``max_line + 1`` bytes are returned in its
   place, and framing goes on after it. Being one byte longer than any line that fits,
   the stand-in tells its reader that the line was too long
   (:func:`~chatcli.protocol.message.parse_line` answers it with
   :class:`~chatcli.protocol.errors.InputTooLong`, so ``417``, as the IRCv3 message-tags
   specification asks for tags over the limit), and it still starts as the line did (its
   tags, a ``label``, its command). Only a line that goes on for more than
   ``max_dropped`` bytes without ending raises :class:`ReadQExceeded`.
6. Lines within ``max_line`` are returned even when they break the finer IRC limits; judging
   them is :func:`~chatcli.protocol.message.parse_line`'s job, so that the peer gets ``417``
   for an over-long line and the connection goes on (as Ergo does).
7. The lines returned, and whether and where ``ReadQExceeded`` is raised, do not depend on
   how the stream was cut into chunks.
"""

from __future__ import annotations

from chatcli.protocol.errors import ReadQExceeded
from chatcli.protocol.message import MAX_BODY_BYTES, MAX_TAG_BYTES

#: The most one line can hold: a full tag section plus a full body.
MAX_LINE_BYTES = MAX_TAG_BYTES + MAX_BODY_BYTES


class LineBuffer:
    """Accumulates received bytes and splits them into lines (without line endings).

    Args:
        max_line: the longest line returned as it is, a CR before its LF included.
        max_dropped: 0 (the default): an over-long line ends the stream
            (:class:`ReadQExceeded`). Otherwise the longest over-long line (in bytes, before
            its LF) that is dropped and stood in for, the stream going on; a longer one
            ends the stream.
    """

    __slots__ = ("_buffer", "_dropping", "max_dropped", "max_line")

    def __init__(self, max_line: int = MAX_LINE_BYTES, max_dropped: int = 0) -> None:
        if max_dropped and max_dropped <= max_line:
            raise ValueError("max_dropped must be 0 or more than max_line")
        self.max_line = max_line
        self.max_dropped = max_dropped
        # The start of a line still to end. Bytes, not a bytearray: between lines it is
        # the shared empty b"" (a server holds one buffer per idle connection), and a
        # line that ends in the data it came with is returned without a copy.
        self._buffer: bytes | bytearray = b""
        # Bytes of the over-long line being dropped (0: none): its head is in _buffer.
        self._dropping = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the lines they completed, in order (an over-long
        line as its first ``max_line + 1`` bytes, when ``max_dropped`` allows it).

        Raises:
            ReadQExceeded: a line passed ``max_line`` bytes (or, with ``max_dropped``, that
                many) without a line ending. Its ``lines`` are the complete lines that came
                before, still to be handled.
        """
        if not self._dropping:  # the usual case, every line fitting: split at once
            *lines, rest = (self._buffer + data).split(b"\n")
            if len(rest) <= self.max_line and all(len(line) <= self.max_line for line in lines):
                self._buffer = rest
                return [bytes(line[:-1] if line.endswith(b"\r") else line) for line in lines]
        out: list[bytes] = []
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            self._take(piece, out)
            if end < 0:
                break
            out.append(self._line())
            start = end + 1
        return out

    def _take(self, piece: bytes, lines: list[bytes]) -> None:
        """Hold ``piece``, bytes of the current line without its LF: all of it while the
        line fits, only up to ``max_line + 1`` bytes once it is over-long."""
        if self._dropping:
            self._dropping += len(piece)
        else:
            self._buffer += piece
            if len(self._buffer) <= self.max_line:
                return
            if not self.max_dropped:
                self._fail(lines)
            self._dropping = len(self._buffer)
            self._buffer = self._buffer[: self.max_line + 1]
        if self._dropping > self.max_dropped:
            self._fail(lines)

    def _line(self) -> bytes:
        """The line just ended by an LF, taken out of the buffer."""
        line = bytes(self._buffer)
        self._buffer = b""
        if self._dropping:
            self._dropping = 0  # the stand-in: its CR, if it ends so, is kept
        elif line.endswith(b"\r"):
            line = line[:-1]
        return line

    def _fail(self, lines: list[bytes]) -> None:
        self._buffer = b""
        self._dropping = 0
        limit = self.max_dropped or self.max_line
        raise ReadQExceeded(f"no line ending within {limit} bytes", lines)

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a complete line (at most ``max_line + 1``)."""
        return len(self._buffer)

    @property
    def dropping(self) -> bool:
        """Whether an over-long line is being dropped, its line ending still to come."""
        return self._dropping > 0
