"""The load generator: many IRC clients driven by one epoll loop on non-blocking sockets.

Design, so that the generator is cheaper than the server it measures:

* One process, one thread, one ``select.epoll``; every client is a non-blocking socket.
* Reading goes into one shared buffer (``recv_into``, 256 KiB at a time), so a client that
  fell behind hands over hundreds of lines per system call.
* A client in *counting* mode does not split lines: it counts the occurrences of the phase
  tag (``T07~``, the start of every message text of phase 7) and of newlines in
  the complete lines received. Only when they differ (some other line arrived: a JOIN, a
  QUIT, a PING) does it look for the few lines it must act on (PING, PONG, ERROR).
* A client in *parsing* mode (probes, the designated receiver, clients still registering)
  splits every line; probes decode each message's sender id, sequence number and send
  timestamp to measure delivery latency.

Every message text is exactly 64 bytes: ``T<phase>~<sender>.<seq>.<send time µs>.`` padded
with ``x`` (servers may send it with or without the ':' of a trailing parameter).
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

RECV = 256 * 1024
MAX_REST = 16 * 1024  #: a partial line longer than this is a protocol error
TEXT_LEN = 64

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT

CONNECTING, REGISTERING, JOINING, READY, FAILED = range(5)
ERROR_NUMERICS = frozenset(
    (b"401", b"403", b"404", b"405", b"432", b"433", b"436", b"437", b"451", b"461")
    + (b"464", b"465", b"471", b"473", b"474", b"475", b"481", b"491")
)


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
        "index",
        "lat",
        "nbytes",
        "nick",
        "nickb",
        "out",
        "oper",
        "parse",
        "pong",
        "rest",
        "seq",
        "sid",
        "sock",
        "stalled",
        "state",
        "writing",
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
        self.rest = b""
        self.parse = True
        self.count = 0
        self.nbytes = 0
        self.lat: list[int] | None = None
        self.acks: list[int] | None = None
        self.error: str | None = None
        self.closed = False
        self.stalled = False
        self.pong: bytes = b""
        self.oper = False
        self.sid = -1
        self.seq = 0

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

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.ep = select.epoll()
        self.clients: dict[int, Client] = {}
        self.buf = bytearray(RECV + MAX_REST)
        self.view = memoryview(self.buf)
        self.phase = 0
        self.tag = b"T00~"
        self.pattern = b"T00~"
        self.total = 0  #: pattern lines received this phase, by every client
        self.ready = 0
        self.failed = 0
        self.first_error = ""
        self.on_ready: Callable[[Client], None] | None = None

    # -- phases -------------------------------------------------------------------------------

    def new_phase(self, clients: Iterable[Client]) -> None:
        """Start counting a new phase: a new text tag, every count back to zero."""
        self.phase = (self.phase + 1) % 100
        self.tag = b"T%02d~" % self.phase
        self.pattern = self.tag
        self.total = 0
        for c in clients:
            c.count = 0
            c.lat = None
            c.acks = None
            c.parse = c.state != READY
            c.sid = -1
            c.seq = 0

    def message(self, target: bytes, sid: int, seqs: range, ts: int) -> bytes:
        """PRIVMSG lines to ``target`` with sequence numbers ``seqs``, stamped ``ts`` µs."""
        head = b"PRIVMSG " + target + b" :" + self.tag
        tail = b"." + b"%013d" % ts + b"." + b"x" * (TEXT_LEN - 32) + b"\r\n"
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
        end = r + n
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
        k = buf.count(self.pattern, 0, stop)
        if k != buf.count(b"\n", 0, stop) and (
            buf.find(b"PING", 0, stop) >= 0
            or buf.find(b"ERROR", 0, stop) >= 0
            or buf.find(b"PONG", 0, stop) >= 0
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
                c.count += 1
                self.total += 1
                if c.acks is not None:
                    c.acks[int(line[p + 4 : p + 8])] += 1
                if c.lat is not None:
                    c.lat.append(now_us() - int(line[p + 18 : p + 31]))
                continue
            self._protocol(c, line.rstrip(b"\r"))
            if c.closed:
                return

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
        join: bool = True,
        prelude: Sequence[str] = (),
        postlude: Sequence[str] = (),
        stop_after_failures: int = 50,
    ) -> ConnectResult:
        """Open ``count`` clients, at most ``window`` of them not yet ready at once; register
        each (NICK/USER, wait for 001) and, with ``join``, join #bench (wait for 366)."""
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
                and self.failed < stop_after_failures
            ):
                nick = f"{prefix}{opened}"
                try:
                    c = self._open(opened, nick)
                except OSError as exc:
                    self.first_error = self.first_error or f"socket: {exc.strerror or exc}"
                    stop_opening = True
                    break
                regs = [*prelude, f"NICK {nick}", f"USER {nick} 0 * :bench", *postlude]
                c.out += ("\r\n".join(regs) + "\r\n").encode()
                made.append(c)
                opened += 1
            if self.ready + self.failed >= opened and (
                opened >= count or stop_opening or self.failed >= stop_after_failures
            ):
                break
            self.poll(0.02)
        seconds = time.monotonic() - start
        return ConnectResult(made, self.ready, self.failed, seconds, self.first_error)

    def _open(self, index: int, nick: str) -> Client:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex((self.host, self.port))
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, errno.errorcode.get(err, str(err)))
        except OSError:
            sock.close()
            raise
        c = Client(sock, index, nick)
        self.clients[c.fd] = c
        self.ep.register(c.fd, EPOLLOUT)
        return c

    def _connected(self, c: Client) -> None:
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(c, f"connect: {errno.errorcode.get(err, err)}")
            return
        c.state = REGISTERING
        data = bytes(c.out)
        c.out.clear()
        c.writing = False
        self.ep.modify(c.fd, EPOLLIN)
        self.send(c, data)

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
        if self.clients.get(c.fd) is c:
            del self.clients[c.fd]
        if not c.stalled:
            try:
                self.ep.unregister(c.fd)
            except (OSError, ValueError):
                pass
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
