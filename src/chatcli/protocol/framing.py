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
            ReadQExceeded: more than ``max_line`` bytes arrived without a line ending. Its
                ``lines`` are the complete lines that came before, still to be handled.
        """
        self._buffer += data
        if b"\n" not in data:
            self._check([])
            return []
        *lines, rest = self._buffer.split(b"\n")
        self._buffer = bytearray(rest)
        out: list[bytes] = []
        for line in lines:
            # Judge the length with the CR, as _check() does while the LF has not arrived:
            # otherwise whether a line is too long would depend on where the stream was cut.
            if len(line) > self.max_line:
                self._fail(out)
            out.append(bytes(line[:-1] if line.endswith(b"\r") else line))
        self._check(out)
        return out

    def _check(self, lines: list[bytes]) -> None:
        if len(self._buffer) > self.max_line:
            self._fail(lines)

    def _fail(self, lines: list[bytes]) -> None:
        self._buffer.clear()
        raise ReadQExceeded(f"no line ending within {self.max_line} bytes", lines)

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a complete line."""
        return len(self._buffer)
