"""Framing: a byte stream in, complete lines out.

Sans-IO: the caller feeds whatever ``recv`` returned and takes the complete lines back.

Contract of :class:`LineBuffer`:

1. Lines end with LF; a CR before it is dropped (RFC 1459 says CRLF, real clients send LF).
2. Partial input is kept until its line ending arrives, across any number of feeds.
3. No line may exceed ``max_line`` bytes (a full tag section plus a full body, by default;
   a CR before the LF counts), and no more than that is held without a line ending. Past
   that, ``feed`` raises :class:`ReadQExceeded` and the stream cannot be resynchronised:
   the connection has to end.
4. Lines within ``max_line`` are returned even when they break the finer IRC limits; judging
   them is :func:`~chatcli.protocol.message.parse_line`'s job, so that the peer gets ``417``
   for an over-long line and the connection goes on (as Ergo does).
"""

from __future__ import annotations

from chatcli.protocol.errors import ReadQExceeded
from chatcli.protocol.message import MAX_BODY_BYTES, MAX_TAG_BYTES

#: The most one line can hold: a full tag section plus a full body.
MAX_LINE_BYTES = MAX_TAG_BYTES + MAX_BODY_BYTES


class LineBuffer:
    """Accumulates received bytes and splits them into lines (without line endings)."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the lines they completed, in order.

        Raises:
            ReadQExceeded: more than ``max_line`` bytes arrived without a line ending.
        """
        self._buffer += data
        if b"\n" not in data:
            self._check()
            return []
        *lines, rest = self._buffer.split(b"\n")
        self._buffer = bytearray(rest)
        self._check()
        # Judge the length with the CR, as _check() does while the LF has not arrived yet:
        # otherwise whether a line is too long would depend on where the stream was cut.
        if any(len(line) > self.max_line for line in lines):
            self._fail()
        return [bytes(line[:-1] if line.endswith(b"\r") else line) for line in lines]

    def _check(self) -> None:
        if len(self._buffer) > self.max_line:
            self._fail()

    def _fail(self) -> None:
        self._buffer.clear()
        raise ReadQExceeded(f"no line ending within {self.max_line} bytes")

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a complete line."""
        return len(self._buffer)
