"""The load generator: many IRC clients driven by one epoll loop on non-blocking sockets.

Design, so that the generator is cheaper than the server it measures:

* One process, one thread, one ``select.epoll``; every client is a non-blocking socket.
* Reading goes into one shared buffer (``recv_into``, 256 KiB at a time), so a client that
  fell behind hands over hundreds of lines per system call.
* A client in *counting* mode does not split lines: it counts the occurrences of the phase
  tag (``AK]^_{|}$&'/)*?+``, the start of every message text of phase 7: a long needle
  is found by skipping, not by looking at every byte) in the complete lines received. Every
  message line of a phase has the same length (the senders' nicks are as long as each
  other), so when the bytes are exactly that many lines long nothing else arrived;
  otherwise (a JOIN, a QUIT, a PING) the lines are split and each one looked at.
* A client in *parsing* mode (probes, the designated receiver, clients still registering)
  splits every line; probes decode each message's sender id, sequence number and send
  timestamp to measure delivery latency.

Every message text is exactly 64 bytes: ``<tag><sender>.<seq>.<send time µs>.`` padded with
``x`` (servers may send it with or without the ':' of a trailing parameter).

WebSocket clients (IRC over WebSocket, the IRCv3 specification: one IRC line per message,
no CR LF) live in the same loop, on the server's web port. Their framing is written out
here rather than taken from the ``websockets`` package's sans-IO protocol: that object
parses every frame in Python, with a generator per frame and a copy per payload, which for
a thousand members of a busy room would cost the generator more than the server it
measures. What a client needs is small:

* the handshake: one fixed upgrade request (a fixed key, the Origin of the server's own
  page), and a check that the answer is ``101`` with the accept value that key calls for;
* what it sends (registration, JOIN, PONG; senders are TCP clients) in binary frames,
  masked as RFC 6455 requires, with the mask key 0: XOR with zero leaves the payload as
  it is, so masking costs nothing;
* what it receives, counted as the TCP clients count lines: every message frame of a phase
  is as long as the others, so when what was read is k frames of that length, the two
  header bytes and three bytes of the tag at every k-th position say (strided slices)
  that all k are this phase's messages; anything else is walked frame by frame (2-, 4- or
  10-byte headers), each payload taken as a line. Pings are answered, a close ends it.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import select
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

RECV = 256 * 1024
MAX_REST = 16 * 1024  #: a partial line longer than this is a protocol error
TEXT_LEN = 64
TAG_LEN = 16


#: Characters that no line of the benchmark contains, even modulo 64 (CPython's substring
#: search keeps a 64-bit "bloom" mask of the needle's bytes, and skips a whole needle length
#: wherever the next byte's class is not in it): a tag made of them is found in about
#: len(text) / 17 steps.
TAG_ALPHABET = b"ABCDEFHKLNOQTUWXYZ"
TAG_SUFFIX = b"]^_{|}$&'/)*?+"

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT

CONNECTING, REGISTERING, JOINING, READY, FAILED, UPGRADING = range(6)

#: WebSocket subprotocols (IRCv3): ``text`` is what chatcli's browser client asks for first.
WS_SUBPROTOCOLS = {"text": "text.ircv3.net", "binary": "binary.ircv3.net"}
#: The handshake's key: fixed (RFC 6455 wants 16 random bytes from a browser, so that
#: caches and proxies cannot answer for the server; none is in the way here).
WS_KEY = base64.b64encode(b"chatcli-bench-16").decode()
WS_ACCEPT = base64.b64encode(
    hashlib.sha1((WS_KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
)
#: The longest handshake answer read.
WS_MAX_RESPONSE = 8 * 1024
WS_CLOSE, WS_PING, WS_PONG = 8, 9, 10


def ws_request(host: str, port: int, subprotocol: str) -> bytes:
    """The upgrade request every WebSocket client sends: the same bytes each time. It
    carries the Origin of a page served at that address, as a browser would: InspIRCd 3
    refuses a request without one (chatcli takes either, and this one is its own)."""
    return (
        f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {subprotocol}\r\n"
        f"Origin: http://{host}:{port}\r\n\r\n"
    ).encode()


def ws_frame(payload: bytes, opcode: int = 2) -> bytes:
    """One final client frame: masked (the mask bit set) with the key 0, so the payload is
    sent as it is."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def ws_frames(lines: bytes) -> bytes:
    """IRC lines (CR LF ended) as client frames, one line each, without the CR LF."""
    return b"".join(ws_frame(line) for line in lines.split(b"\r\n") if line)


#: Numeric replies that mean a client could not register or join.
ERROR_NUMERICS = frozenset(
    b"401 403 404 405 432 433 436 437 461 464 465 471 473 474 475 481 491".split()
)


def phase_tag(phase: int) -> bytes:
    """The first 16 bytes of every message text of ``phase`` (0-323)."""
    n = len(TAG_ALPHABET)
    return bytes((TAG_ALPHABET[phase // n % n], TAG_ALPHABET[phase % n])) + TAG_SUFFIX


def now_us() -> int:
    return time.monotonic_ns() // 1000


class Client:
    """One connection of the generator."""

    __slots__ = (
        "acks",
        "closed",
        "count",
        "error",
        "fd",
        "heard",
        "index",
        "lat",
        "lat_sid",
        "nbytes",
        "nick",
        "nickb",
        "oper",
        "out",
        "parse",
        "pong",
        "port",
        "rest",
        "seq",
        "sid",
        "sock",
        "stalled",
        "state",
        "writing",
        "ws",
        "ws_reg",
    )

    def __init__(self, sock: socket.socket, index: int, nick: str) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.index = index
        self.nick = nick
        self.nickb = nick.encode()
        self.state = CONNECTING
        self.out = bytearray()
        self.writing = False
        self.heard = False  # has the server sent anything yet (so it has accepted us)?
        self.rest = b""
        self.parse = True
        self.count = 0
        self.nbytes = 0
        self.lat: list[int] | None = None
        #: with ``lat``: the sender id of each latency sample, where asked (a cluster's
        #: probes tell the sender's node from their own)
        self.lat_sid: list[int] | None = None
        self.port = 0  #: the server port it is connected to (a cluster: which node)
        self.acks: list[int] | None = None
        self.error: str | None = None
        self.closed = False
        self.stalled = False
        self.pong: bytes = b""
        self.oper = False
        self.sid = -1
        self.seq = 0
        self.ws = False  #: a WebSocket client (of the web port)
        self.ws_reg = b""  #: its registration lines, sent once the upgrade is answered

    def __repr__(self) -> str:
        return f"<Client {self.nick} state={self.state}>"


@dataclass
class ConnectResult:
    clients: list[Client]
    ready: int
    failed: int
    seconds: float
    first_error: str


class Generator:
    """The event loop and every client it drives, against one server at host:port."""

    def __init__(
        self, host: str, port: int, ws_port: int | None = None, ws_subprotocol: str = "text"
    ) -> None:
        self.host = host
        self.port = port
        #: the server's web port, for WebSocket clients (``connect(..., ws=True)``)
        self.ws_port = ws_port
        self.ws_subprotocol = WS_SUBPROTOCOLS[ws_subprotocol]
        self.ep = select.epoll()
        self.clients: dict[int, Client] = {}
        self.buf = bytearray(RECV + MAX_REST)
        self.view = memoryview(self.buf)
        self.phase = 0
        self.tag = self.pattern = phase_tag(0)
        self.total = 0  #: pattern lines received this phase, by every client
        self.line_len = 0  #: the length of one message line this phase, once seen
        self.tag_at = 0  #: where the tag starts in that line
        self.marks: tuple[bytes, bytes, bytes, bytes] = (b"", b"", b"", b"")
        #: WebSocket clients: the length of one message frame this phase (header and
        #: payload), where the tag starts in it, and what its strided checks compare with
        self.ws_size = 0
        self.ws_tag_at = 0
        self.ws_marks: tuple[bytes, ...] = ()
        self.ready = 0
        self.failed = 0
        self.silent = 0  #: clients opened that have not heard from the server yet
        self.recvs = 0  #: recv calls that returned data
        self.first_error = ""
        self.on_ready: Callable[[Client], None] | None = None

    # -- phases -------------------------------------------------------------------------------

    def new_phase(self, clients: Iterable[Client]) -> None:
        """Start counting a new phase: a new text tag, every count back to zero."""
        self.phase = (self.phase + 1) % 324
        self.tag = self.pattern = phase_tag(self.phase)
        self.total = 0
        self.line_len = 0
        self.ws_size = 0
        for c in clients:
            c.count = 0
            c.lat = None
            c.lat_sid = None
            c.acks = None
            c.parse = c.state != READY
            c.sid = -1
            c.seq = 0

    def message(self, target: bytes, sid: int, seqs: range, ts: int) -> bytes:
        """PRIVMSG lines to ``target`` with sequence numbers ``seqs``, stamped ``ts`` µs."""
        head = b"PRIVMSG " + target + b" :" + self.tag
        tail = b"." + b"%013d" % ts + b"." + b"x" * (TEXT_LEN - TAG_LEN - 28) + b"\r\n"
        return b"".join(head + b"%04d.%08d" % (sid, seq) + tail for seq in seqs)

    # -- the loop -----------------------------------------------------------------------------

    def poll(self, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for I/O, and handle what is ready."""
        clients = self.clients
        for fd, ev in self.ep.poll(timeout):
            c = clients.get(fd)
            if c is None:
                continue
            if c.state == CONNECTING:
                self._connected(c)
                continue
            if ev & EPOLLOUT:
                self._flush(c)
            if ev & ~EPOLLOUT:
                self._read(c)

    def run_until(self, deadline: float, done: Callable[[], bool], step: float = 0.05) -> bool:
        """Loop until ``done()`` or ``deadline``; True if done."""
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.poll(min(step, left))
        return True

    def _read(self, c: Client) -> None:
        buf = self.buf
        rest = c.rest
        r = len(rest)
        if r:
            buf[:r] = rest
        try:
            n = c.sock.recv_into(self.view[r:], RECV)
        except BlockingIOError:
            return
        except OSError as exc:
            self.close(c, f"recv: {exc.strerror or exc}")
            return
        if not n:
            self.close(c, "closed by server")
            return
        c.nbytes += n
        self.recvs += 1
        if not c.heard:
            c.heard = True
            self.silent -= 1
        end = r + n
        if c.ws:
            self._ws_read(c, end)
            return
        last = buf.rfind(b"\n", 0, end)
        if last < 0:
            if end > MAX_REST:
                self.close(c, "line too long")
            else:
                c.rest = bytes(buf[:end])
            return
        stop = last + 1
        c.rest = bytes(buf[stop:end]) if stop != end else b""
        if c.parse:
            self._lines(c, bytes(buf[:stop]))
            return
        size = self.line_len
        if not size or stop % size:
            self._lines(c, bytes(buf[:stop]))
            return
        # Exactly k lines of the message length: are they all this phase's messages? Look
        # at every k-th byte where a newline and the tag's first, second and last bytes
        # must be (strided slices: k bytes copied, not the whole text).
        k = stop // size
        at = self.tag_at
        if (
            buf[size - 1 : stop : size] != self.marks[0][:k]
            or buf[at:stop:size] != self.marks[1][:k]
            or buf[at + 1 : stop : size] != self.marks[2][:k]
            or buf[at + TAG_LEN - 1 : stop : size] != self.marks[3][:k]
        ):
            self._lines(c, bytes(buf[:stop]))
            return
        c.count += k
        self.total += k

    def _lines(self, c: Client, data: bytes) -> None:
        pattern = self.pattern
        for line in data.split(b"\n"):
            if not line:
                continue
            p = line.find(pattern)
            if p >= 0:
                if not self.line_len:
                    self._learn(len(line) + 1, p)
                self._message(c, line, p)
                continue
            self._protocol(c, line.rstrip(b"\r"))
            if c.closed:
                return

    def _message(self, c: Client, line: bytes, p: int) -> None:
        """Count one message line of this phase (its tag at ``p``); acknowledge and time it
        where asked."""
        c.count += 1
        self.total += 1
        p += TAG_LEN
        if c.acks is not None:
            c.acks[int(line[p : p + 4])] += 1
        if c.lat is not None:
            c.lat.append(now_us() - int(line[p + 14 : p + 27]))
            if c.lat_sid is not None:
                c.lat_sid.append(int(line[p : p + 4]))

    # -- WebSocket clients --------------------------------------------------------------------

    def _ws_read(self, c: Client, end: int) -> None:
        """What a WebSocket client read, ``buf[:end]``: the handshake's answer, then frames
        (see the module docstring)."""
        buf = self.buf
        if c.state == UPGRADING:
            head_end = buf.find(b"\r\n\r\n", 0, end)
            if head_end < 0:
                if end > WS_MAX_RESPONSE:
                    self.close(c, "websocket: handshake answer too long")
                else:
                    c.rest = bytes(buf[:end])
                return
            head = bytes(buf[:head_end])
            status = head.split(b"\r\n", 1)[0]
            if not status.startswith(b"HTTP/1.1 101"):
                self._fail(c, "websocket: " + status.decode(errors="replace"))
                return
            if WS_ACCEPT not in head:
                self._fail(c, "websocket: wrong or missing Sec-WebSocket-Accept")
                return
            c.state = REGISTERING
            after = bytes(buf[head_end + 4 : end])
            buf[: len(after)] = after
            end = len(after)
            self.send(c, c.ws_reg)
            c.ws_reg = b""
            if c.closed:
                return
        size = self.ws_size
        if not c.parse and size and end >= size:
            # k whole frames of this phase's message length: all this phase's messages?
            k = end // size
            stop = k * size
            at = self.ws_tag_at
            mk = self.ws_marks
            if (
                buf[0:stop:size] == mk[0][:k]
                and buf[1:stop:size] == mk[1][:k]
                and buf[at:stop:size] == mk[2][:k]
                and buf[at + 1 : stop : size] == mk[3][:k]
                and buf[at + TAG_LEN - 1 : stop : size] == mk[4][:k]
            ):
                c.count += k
                self.total += k
                c.rest = bytes(buf[stop:end]) if stop != end else b""
                return
        self._ws_frames(c, end)

    def _ws_frames(self, c: Client, end: int) -> None:
        """Walk the frames in ``buf[:end]``: each message's payload is a line; answer pings;
        end at a close. An incomplete last frame waits in ``c.rest``."""
        buf = self.buf
        pos = 0
        frames: list[tuple[bytes, int, int]] = []  # (payload, header length, its first 2 bytes)
        closing = ""
        while end - pos >= 2:  # bounded: pos grows by 2 bytes at least each time
            b0 = buf[pos]
            b1 = buf[pos + 1]
            size = b1 & 0x7F
            head = 2
            if size == 126:
                head = 4
                if end - pos < head:
                    break
                size = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            elif size == 127:
                head = 10
                if end - pos < head:
                    break
                size = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            if b1 & 0x80:
                closing = "websocket: a masked frame from the server"
                break
            if head + size > MAX_REST:
                closing = "websocket: frame too long"
                break
            if pos + head + size > end:
                break
            payload = bytes(buf[pos + head : pos + head + size])
            pos += head + size
            opcode = b0 & 0x0F
            if not b0 & 0x80 or opcode == 0:
                closing = "websocket: a fragmented message"  # no server here fragments
                break
            if opcode in (1, 2):
                frames.append((payload, head, b0 << 8 | b1))
            elif opcode == WS_PING:
                self._send_raw(c, ws_frame(payload, WS_PONG))
            elif opcode == WS_CLOSE:
                closing = "websocket: closed by server"
                break
        c.rest = bytes(buf[pos:end])
        pattern = self.pattern
        for payload, head, b01 in frames:
            p = payload.find(pattern)
            if p >= 0:
                if not self.ws_size:
                    self._ws_learn(head + len(payload), head + p, b01)
                self._message(c, payload, p)
                continue
            self._protocol(c, payload)
            if c.closed:
                return
        if closing:
            self.close(c, closing)

    def _ws_learn(self, size: int, tag_at: int, b01: int) -> None:
        """Note the size of this phase's message frames, where their tag is, and their first
        two bytes ``b01`` (FIN and opcode; the length, or 126 or 127)."""
        self.ws_size = size
        self.ws_tag_at = tag_at
        most = len(self.buf) // size + 1
        b0, b1 = bytes((b01 >> 8,)), bytes((b01 & 0xFF,))
        tag = self.tag
        self.ws_marks = (b0 * most, b1 * most, tag[:1] * most, tag[1:2] * most, tag[-1:] * most)

    def _learn(self, size: int, tag_at: int) -> None:
        """Note the length of this phase's message lines and where their tag is."""
        self.line_len = size
        self.tag_at = tag_at
        most = len(self.buf) // size + 1
        tag = self.tag
        self.marks = (b"\n" * most, tag[:1] * most, tag[1:2] * most, tag[-1:] * most)

    def _protocol(self, c: Client, line: bytes) -> None:
        parts = line.split(b" ", 3)
        if parts[0].startswith(b":"):
            if len(parts) < 2:
                return
            cmd = parts[1]
        else:
            cmd = parts[0]
        if cmd == b"PING":
            self.send(c, b"PONG " + line[line.find(b"PING") + 5 :] + b"\r\n")
        elif cmd == b"PONG":
            c.pong = line
        elif cmd == b"001":
            if c.state == REGISTERING:
                if self._join_after_register:
                    c.state = JOINING
                    self.send(c, b"JOIN #bench\r\n")
                else:
                    self._became_ready(c)
        elif cmd == b"366":
            if c.state == JOINING and b" #bench " in line:
                self._became_ready(c)
        elif cmd == b"381":
            c.oper = True
        elif cmd == b"ERROR":
            c.error = line.decode(errors="replace")
        elif cmd in ERROR_NUMERICS and c.state in (REGISTERING, JOINING):
            self._fail(c, line.decode(errors="replace"))

    # -- writing ------------------------------------------------------------------------------

    def send(self, c: Client, data: bytes) -> None:
        """Send IRC lines (CR LF ended) to ``c``; a WebSocket client's go as frames."""
        if c.ws:
            data = ws_frames(data)
        self._send_raw(c, data)

    def _send_raw(self, c: Client, data: bytes) -> None:
        if c.closed:
            return
        if c.out:
            c.out += data
            return
        try:
            n = c.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self.close(c, f"send: {exc.strerror or exc}")
            return
        if n < len(data):
            c.out += data[n:]
            self._want_write(c, True)

    def _flush(self, c: Client) -> None:
        if not c.out:
            self._want_write(c, False)
            return
        try:
            n = c.sock.send(c.out)
        except BlockingIOError:
            return
        except OSError as exc:
            self.close(c, f"send: {exc.strerror or exc}")
            return
        del c.out[:n]
        if not c.out:
            self._want_write(c, False)

    def _want_write(self, c: Client, on: bool) -> None:
        if c.writing == on or c.stalled or c.closed:
            return
        c.writing = on
        self.ep.modify(c.fd, EPOLLIN | EPOLLOUT if on else EPOLLIN)

    # -- connecting ---------------------------------------------------------------------------

    _join_after_register = True
    _register_lines: bytes = b""

    def connect(
        self,
        count: int,
        prefix: str,
        *,
        window: int,
        deadline: float,
        accept_window: int = 4,
        join: bool = True,
        stop_after_failures: int = 50,
        ws: bool = False,
        ports: Sequence[int] = (),
    ) -> ConnectResult:
        """Open ``count`` clients; register each (NICK/USER, wait for 001) and, with ``join``,
        join #bench (wait for 366).

        At most ``window`` clients are on their way (opened, not yet ready) at once, and at
        most ``accept_window`` of them have not heard from the server yet. A PING after USER
        makes every server answer at once, so "heard from" means "accepted": the next
        connection is opened only when an earlier one has been accepted. That keeps the
        servers with a tiny listen backlog (miniircd 5, ngircd 10) from dropping SYNs and
        stalling clients for seconds, without serialising the registrations themselves.

        With ``ws``, the clients are WebSocket clients of the web port: each sends the
        upgrade request first ("heard from" is then the answer to it, so at most
        ``accept_window`` handshakes are under way at once: chatcli's web listener serves
        only a few HTTP connections from one address at a time) and registers once it is
        answered.

        With ``ports`` (the nodes of a cluster), client i connects to ``ports[i % len]``
        instead of the generator's port.
        """
        self._join_after_register = join
        self.ready = 0
        self.failed = 0
        self.first_error = ""
        made: list[Client] = []
        start = time.monotonic()
        opened = 0
        stop_opening = False
        while time.monotonic() < deadline:
            while (
                not stop_opening
                and opened < count
                and opened - self.ready - self.failed < window
                and self.silent < accept_window
                and self.failed < stop_after_failures
            ):
                nick = f"{prefix}{opened:05d}"  # one width: every message line is as long
                try:
                    port = ports[opened % len(ports)] if ports else None
                    c = self._open(opened, nick, ws, port)
                except OSError as exc:
                    self.first_error = self.first_error or f"socket: {exc.strerror or exc}"
                    stop_opening = True
                    break
                regs = [f"NICK {nick}", f"USER {nick} 0 * :bench", "PING :hi"]
                reg = ("\r\n".join(regs) + "\r\n").encode()
                if ws:
                    c.ws_reg = reg  # sent (framed) once the upgrade is answered
                else:
                    c.out += reg
                made.append(c)
                opened += 1
            if self.ready + self.failed >= opened and (
                opened >= count or stop_opening or self.failed >= stop_after_failures
            ):
                break
            self.poll(0.02)
        seconds = time.monotonic() - start
        return ConnectResult(made, self.ready, self.failed, seconds, self.first_error)

    def _open(self, index: int, nick: str, ws: bool = False, port: int | None = None) -> Client:
        port = self.port if port is None else port
        if ws:
            if self.ws_port is None:
                raise ValueError("WebSocket clients need the server's web port")
            port = self.ws_port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex((self.host, port))
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, errno.errorcode.get(err, str(err)))
        except OSError:
            sock.close()
            raise
        c = Client(sock, index, nick)
        c.port = port
        if ws:
            c.ws = True
            c.out += ws_request(self.host, port, self.ws_subprotocol)
        self.silent += 1
        self.clients[c.fd] = c
        self.ep.register(c.fd, EPOLLOUT)
        return c

    def _connected(self, c: Client) -> None:
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(c, f"connect: {errno.errorcode.get(err, err)}")
            return
        c.state = UPGRADING if c.ws else REGISTERING
        data = bytes(c.out)
        c.out.clear()
        c.writing = False
        self.ep.modify(c.fd, EPOLLIN)
        self._send_raw(c, data)  # (a WebSocket client's upgrade request: not framed)

    def _became_ready(self, c: Client) -> None:
        c.state = READY
        c.parse = False
        self.ready += 1
        if self.on_ready is not None:
            self.on_ready(c)

    def _fail(self, c: Client, reason: str) -> None:
        if c.state in (READY, FAILED):
            return
        c.state = FAILED
        self.failed += 1
        self.first_error = self.first_error or reason
        self.close(c, reason)

    # -- ending -------------------------------------------------------------------------------

    def close(self, c: Client, reason: str) -> None:
        if c.closed:
            return
        if c.state not in (READY, FAILED):
            self._fail(c, reason)  # counts the failure, then comes back here
            return
        c.closed = True
        c.error = c.error or reason
        if not c.heard:
            c.heard = True
            self.silent -= 1
        if self.clients.get(c.fd) is c:
            del self.clients[c.fd]
        if not c.stalled:
            with contextlib.suppress(OSError, ValueError):
                self.ep.unregister(c.fd)
        c.sock.close()

    def stall(self, c: Client) -> None:
        """Stop reading (and writing) ``c``: its socket stays open, unread."""
        if not c.closed and not c.stalled:
            self.ep.unregister(c.fd)
            c.stalled = True

    def unstall(self, c: Client) -> None:
        if c.stalled and not c.closed:
            c.stalled = False
            c.writing = bool(c.out)
            self.ep.register(c.fd, EPOLLIN | (EPOLLOUT if c.out else 0))

    def close_all(self) -> None:
        for c in list(self.clients.values()):
            c.state = READY if c.state != FAILED else FAILED
            self.close(c, "closed by generator")
        self.ep.close()

    def sync(self, clients: Sequence[Client], lines: Sequence[str], timeout: float) -> bool:
        """Send ``lines`` (``{nick}`` filled in) then a PING to each client; wait for every
        PONG. True if all came back in time."""
        live = [c for c in clients if not c.closed]
        for c in live:
            c.pong = b""
            text = "".join(line.format(nick=c.nick) + "\r\n" for line in lines)
            self.send(c, (text + f"PING :sync{c.index}\r\n").encode())
        deadline = time.monotonic() + timeout
        return self.run_until(deadline, lambda: all(c.pong or c.closed for c in live))
