"""IRC over WebSocket (the IRCv3 WebSocket specification), as a line transport.

A browser, or any WebSocket client, connects to the web listener (:mod:`chatcli.server.web`)
and asks for an upgrade to ``/``. Once the handshake is done the connection becomes a
:class:`WebSocketStream`, a :class:`~chatcli.server.transport.Stream` like TCP and TLS, and
an IRC client like any other: the same connection thread, session, flood control, limits
and send queue. One IRC line travels per WebSocket message, without its CR LF.

* Subprotocols ``binary.ircv3.net`` and ``text.ircv3.net``, chosen in the client's order of
  preference (:func:`choose_subprotocol`). With neither (a legacy client), the server
  answers in text messages and takes either kind.
* Text messages carry UTF-8 only: one that is not valid UTF-8 fails the connection (close
  code 1007, as RFC 6455 says); what the server sends in text messages is valid UTF-8 (any
  stray byte is replaced by U+FFFD, as the specification allows).
* A message longer than the longest IRC line (tags included) fails the connection (1009).

Framing and the WebSocket protocol itself are the ``websockets`` package's sans-IO
:class:`~websockets.server.ServerProtocol`; this module only moves bytes. The reading
thread (the connection's) and a writer (the flusher, or a thread writing at once) share
that object, so every call on it is under the stream's own lock, a leaf lock never held
while waiting (every socket call here is non-blocking), as :class:`TLSSocket` does.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Sequence

from websockets.frames import CloseCode, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from chatcli.protocol.framing import MAX_LINE_BYTES
from chatcli.server.transport import Stream

BINARY = Subprotocol("binary.ircv3.net")
TEXT = Subprotocol("text.ircv3.net")
SUBPROTOCOLS = (BINARY, TEXT)
#: The longest message taken: one IRC line at its longest, tags included.
MAX_MESSAGE = MAX_LINE_BYTES
#: The most bytes of control frames (pongs, the close) that may wait for a client that
#: does not read: its pings are answered outside its send queue, so they are bounded here.
MAX_PENDING = 64 * 1024
#: Frames made lately, by kind (text or not) and line: a room's line goes to each member
#: in the same form, so it is framed once for all of them, not once each. A server's frame
#: is the same for every connection (never masked; no extension is offered). Emptied when
#: it holds this many.
FRAME_CACHE = 1024
_frames: dict[tuple[bool, bytes], bytes] = {}
#: The same for what one send is given, many lines at once: a batch of up to
#: MAX_BATCH_CACHED bytes, and BATCH_CACHE_BYTES of them in all (then emptied).
_batches: dict[tuple[bool, bytes], tuple[bytes, tuple[tuple[int, int], ...]]] = {}
MAX_BATCH_CACHED = 64 * 1024
BATCH_CACHE_BYTES = 2 * 1024 * 1024
_batch_bytes = [0]  # (what _batches holds, about: data and frames)


def choose_subprotocol(
    protocol: ServerProtocol, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """The first of the client's subprotocols (in its order of preference) that we speak;
    None (no header: a legacy client) when there is none."""
    return next((name for name in offered if name in SUBPROTOCOLS), None)


def new_protocol(origins: Sequence[str | None] | None) -> ServerProtocol:
    """The protocol object for one request on the web listener: the WebSocket upgrade is
    accepted only from ``origins`` (None in it: a client that sends no Origin, i.e. not a
    browser; ``origins`` None: any)."""
    return ServerProtocol(
        origins=list(origins) if origins is not None else None,  # type: ignore[arg-type]
        subprotocols=list(SUBPROTOCOLS),
        select_subprotocol=choose_subprotocol,
        max_size=MAX_MESSAGE,
    )


class WebSocketStream:
    """A WebSocket connection, its HTTP handshake done, as a line transport (see the module
    docstring). ``inner`` is the stream of bytes under it (TCP, or TLS)."""

    __slots__ = (
        "_ended",
        "_inner",
        "_lock",
        "_message",
        "_message_is_text",
        "_owes_line",
        "_pending",
        "_protocol",
    )

    buffered = False  # what is read is framed at once; partial frames wait in the protocol
    transport = "websocket"
    retry_bytes = 0  # a line whose frame was cut is passed again, and its tail sent first

    def __init__(self, inner: Stream, protocol: ServerProtocol) -> None:
        self._inner = inner
        self._protocol = protocol
        self._lock = threading.Lock()
        self._message: bytearray | None = None  # a fragmented message being received
        self._message_is_text = False
        # Bytes that must go out before any new frame: the tail of a frame a send cut,
        # then control frames (pongs, the close). _owes_line: that tail is the frame of
        # the first line of the next send's data, which then counts as sent.
        self._pending = b""
        self._owes_line = False
        self._ended = False  # the peer closed, or the connection failed: reads end

    @property
    def text(self) -> bool:
        """Whether IRC lines go out in text messages (text.ircv3.net, or no subprotocol)."""
        return self._protocol.subprotocol != BINARY

    @property
    def secure(self) -> bool:  # type: ignore[override]
        return self._inner.secure

    @property
    def wants_write(self) -> bool:  # type: ignore[override]
        return self._inner.wants_write

    def fileno(self) -> int:
        return self._inner.fileno()

    def handshake(self) -> bool:
        return True  # done by the web listener before the stream was made

    def recv(self, size: int) -> bytes:
        """The IRC lines of the complete messages read so far (each ending in CR LF);
        ``b""`` once the peer has closed; :class:`BlockingIOError` while no message is
        complete."""
        if self._ended:
            return b""
        raw = self._inner.recv(size)  # (BlockingIOError: nothing there yet)
        lines: list[bytes] = []
        with self._lock:
            protocol = self._protocol
            if raw:
                protocol.receive_data(raw)
            else:
                protocol.receive_eof()
            for frame in protocol.events_received():
                if frame.opcode is Opcode.CLOSE:
                    self._ended = True
                elif frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                    self._take(frame.opcode, frame.data, frame.fin, lines)
            self._pending += b"".join(protocol.data_to_send())  # pongs, close answers
            self._write_pending()
            if len(self._pending) > MAX_PENDING:  # pings from a client that does not read
                self._pending = b""
                self._ended = True
            if protocol.state is not State.OPEN or not raw:
                self._ended = True
        if lines:
            return b"".join(lines)
        if self._ended:
            return b""
        raise BlockingIOError("no complete WebSocket message yet")

    def _take(self, opcode: Opcode, data: bytes, fin: bool, lines: list[bytes]) -> None:
        """Add a data frame to the message being received; a whole message is a line."""
        if opcode is Opcode.CONT:
            if self._message is None:  # (the protocol checks this too)
                return
            self._message += data
        else:
            self._message = bytearray(data)
            self._message_is_text = opcode is Opcode.TEXT
        if len(self._message) > MAX_MESSAGE:
            self._fail(CloseCode.MESSAGE_TOO_BIG, "message too big")
            return
        if not fin:
            return
        message, self._message = bytes(self._message), None
        if self._message_is_text:
            try:
                message.decode()
            except UnicodeDecodeError:
                self._fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
                return
        lines.append(message.rstrip(b"\r\n") + b"\r\n")

    def _fail(self, code: CloseCode, reason: str) -> None:
        self._message = None
        self._protocol.fail(code, reason)
        self._ended = True

    def send(self, data: bytes) -> int:
        """Send ``data`` (whole IRC lines), one message each; how much of ``data`` was
        taken: the lines whose frames went out whole. A frame the kernel took only part of
        is finished before anything else, once ``send`` is called again with that line
        first."""
        with self._lock:
            taken = 0
            if self._pending:
                self._write_pending()
                if self._pending:
                    if not self._owes_line:
                        raise BlockingIOError("earlier frames still going out")
                    return 0
                if self._owes_line:
                    self._owes_line = False
                    end = data.find(b"\n") + 1 or len(data)
                    taken, data = end, data[end:]
            if self._protocol.state is not State.OPEN:
                return taken + len(data)  # closing: nothing more goes out; drop it
            if not data:
                return taken
            raw, sizes = self._framed(data)
            try:
                sent = self._inner.send(raw)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent == len(raw):
                return taken + len(data)
            offset = 0  # (cut: count the lines whose frames went out whole)
            for line_size, frame_size in sizes:
                if sent >= frame_size:
                    sent -= frame_size
                    taken += line_size
                    offset += frame_size
                    continue
                if sent:  # cut: its tail first, and the line counts once that is out
                    self._pending = raw[offset + sent : offset + frame_size]
                    self._owes_line = True
                break
            if not taken and not self._owes_line:
                raise BlockingIOError("the socket takes nothing now")
            return taken

    def _framed(self, data: bytes) -> tuple[bytes, tuple[tuple[int, int], ...]]:
        """``data``'s lines framed, one message each, and each line's size and its
        frame's. A room's lines reach every member's queue as one and the same bytes
        object (:meth:`Flusher._broadcast <chatcli.server.sendq.Flusher._broadcast>`),
        whose hash Python keeps: they are framed once for all (see FRAME_CACHE)."""
        key = (self.text, data)
        known = _batches.get(key)
        if known is not None:
            return known
        lines = data.splitlines(keepends=True)
        frames = [self._frame(line) for line in lines]
        sizes = tuple((len(line), len(frame)) for line, frame in zip(lines, frames, strict=True))
        framed = (b"".join(frames), sizes)
        if len(data) <= MAX_BATCH_CACHED:
            if len(_batches) >= FRAME_CACHE or _batch_bytes[0] > BATCH_CACHE_BYTES:
                _batches.clear()
                _batch_bytes[0] = 0
            _batches[key] = framed
            _batch_bytes[0] += 2 * len(data) + 100
        return framed

    def _frame(self, line: bytes) -> bytes:
        """``line``'s message, framed (by the protocol object, once: see FRAME_CACHE)."""
        key = (self.text, line)
        frame = _frames.get(key)
        if frame is not None:
            return frame
        payload = line.rstrip(b"\r\n")
        protocol = self._protocol
        if key[0]:
            protocol.send_text(payload.decode(errors="replace").encode())
        else:
            protocol.send_binary(payload)
        frame = b"".join(protocol.data_to_send())
        if len(_frames) >= FRAME_CACHE:
            _frames.clear()  # (a dict's own lock, or the GIL: safe from any writer)
        _frames[key] = frame
        return frame

    def _write_pending(self) -> None:
        """Write what must go out first, as far as the socket takes it. Lock held."""
        if not self._pending:
            return
        with contextlib.suppress(BlockingIOError, InterruptedError):
            sent = self._inner.send(self._pending)
            self._pending = self._pending[sent:]

    def peek_raw(self, size: int) -> bytes:
        return self._inner.peek_raw(size)

    def recv_raw(self, size: int) -> bytes:
        return self._inner.recv_raw(size)

    def shutdown(self, how: int) -> None:
        """Shutting down for writing closes the WebSocket first (a close frame, as far as
        the socket takes it), then the socket."""
        if how != socket.SHUT_RD:
            with self._lock, contextlib.suppress(Exception):
                if self._protocol.state is State.OPEN and not self._owes_line:
                    self._protocol.send_close(CloseCode.NORMAL_CLOSURE)
                    self._pending += b"".join(self._protocol.data_to_send())
                self._write_pending()
        self._inner.shutdown(how)

    def close(self) -> None:
        self._inner.close()
