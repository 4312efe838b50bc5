"""One client connection: the thread that reads its socket and runs its commands.

Theory of operation: :meth:`Connection.run` is the connection's own thread. It reads,
frames, parses and dispatches, one line at a time, in order. Everything the connection
sends goes through its :class:`~chatcli.server.sendq.SendQueue`, written by the server's
flusher thread (or, when nothing else waits to be sent, by the thread that queues the
line: :meth:`~chatcli.server.sendq.Flusher.write_now`), so other threads may queue lines
to it at any time without waiting for its socket. The socket is non-blocking; this
thread waits for input with ``poll``.

Any thread may end a connection with :meth:`disconnect`: that records the reason, queues
``ERROR``, and shuts the socket down for reading, which wakes this thread. This thread
tears down: it tells the connection's rooms it has quit, waits (briefly) for the
flusher to send what is left, and closes the socket. So the socket is closed exactly
once, by its owner, after the flusher is done with it.

A nick is free the moment its connection is closed by the peer, not only once this
thread has noticed: a client that drops and reconnects at once must not be told its own
nick is in use. So when ``NICK`` finds the nick held, the newcomer's thread asks the
holder with :meth:`Connection.end_if_closed`, which peeks at the holder's socket (taking
nothing from it). If the peer has closed it (the end of the stream, or a reset) and the
holder's thread is :attr:`~Connection.idle` (it has run everything it read and waits to
read more, so it can never run another command), the newcomer ends the holder right
there as its own thread would: :meth:`disconnect`, then :meth:`Connection._leave` (the
QUIT to its rooms, MONITOR, WHOWAS, the nick freed) under the world lock. ``_leave``
happens once, whichever thread comes first: the holder's thread, woken by the end, then
only flushes and closes its socket, as ever. If instead the holder's thread is busy (with
the last commands it read, or already ending), the newcomer waits a moment for it to
leave by itself. A holder whose peer is still there is never touched.

Over TLS the raw socket is peeked: its end is seen once every record before it has been
read. A peer that sent a TLS close_notify before closing leaves bytes there that only
OpenSSL can read, so that case cannot be told cheaply and keeps the old behaviour (the nick
is free once the holder's thread has read the end).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import select
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING

from chatcli.protocol import (
    EmptyLine,
    InputTooLong,
    InvalidUtf8,
    MalformedLine,
    Message,
    caps,
    parse_line,
)
from chatcli.protocol import numerics as n
from chatcli.server import cloaks, tags
from chatcli.server import proxied as proxies
from chatcli.server.commands import dispatch, log_exception
from chatcli.server.errors import IRCError
from chatcli.server.flood import ExcessFlood, FakeLag
from chatcli.server.handlers import monitor
from chatcli.server.sendq import Batch, SendQueue
from chatcli.server.session import Session, verb
from chatcli.server.transport import HandshakeFailed

if TYPE_CHECKING:
    from chatcli.config import ServerConfig
    from chatcli.server.channel import Channel
    from chatcli.server.listener import Server
    from chatcli.server.metadata import Metadata
    from chatcli.server.multiline import Multiline
    from chatcli.server.transport import Stream

log = logging.getLogger("chatcli.server")

RECV_BYTES = 16384
# What a read asks for after a wait: enough for what an idle client sends (a PING, a
# message), small enough that CPython's own allocator gives the buffer (bytes objects of
# up to 512 bytes). A RECV_BYTES buffer comes from glibc, in one of its arenas shared by
# hundreds of threads: 10,000 of them at once (a PING to all) grew the heap by 0.65 KiB a
# connection per PING, for good. A read that fills it reads on with RECV_BYTES.
RECV_FIRST = 400
# Commands whose deliveries to people may wait in the connection's batch (see _run_due);
# before any other, the batch is flushed.
BATCHED = frozenset({b"PRIVMSG", b"NOTICE", b"TAGMSG"})
# How long the reading thread sleeps in poll() before it looks at its quit flag anyway.
# Elsewhere shutdown(SHUT_RD) wakes it at once; on Windows that is not certain.
WAKE_INTERVAL = 0.5 if sys.platform == "win32" else 30.0
# A client that has closed its end may still have commands held by flood control: they
# run, and meanwhile its thread looks at its quit flag (shutdown) this often.
CLOSING_STEP = 0.1
# How long a newcomer waits for a nick whose holder's peer has closed, while the holder's
# thread is busy with its last commands or its end (see Connection.end_if_closed); and how
# often it looks meanwhile.
RELEASE_WAIT = 0.5
RELEASE_STEP = 0.002


def wait_ready(sock: Stream, timeout: float, write: bool = False) -> bool:
    """Wait until ``sock`` has something to read (or an end or error), or with ``write``
    until it can be written; False on timeout."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLOUT if write else select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    readable, writable, errors = select.select(
        [] if write else [sock], [sock] if write else [], [sock], timeout
    )
    return bool(readable or writable or errors)


def peer_closed(sock: Stream) -> str | None:
    """Whether the peer has closed ``sock``, seen without reading from it: the reason the
    connection's own thread would give (``Connection closed`` at the end of the stream,
    ``Read error: ...`` on a reset), or None while it is open, or when it cannot tell.

    A non-blocking peek of one byte; ``poll``/``select`` first, so that a socket in
    blocking mode never blocks here (and no MSG_DONTWAIT, which Windows lacks). Over TLS
    it peeks at the raw socket, under the TLS layer: bytes pending there (records not yet
    read, or a close_notify) mean it cannot tell.
    """
    try:
        if not wait_ready(sock, 0):
            return None
        data = sock.peek_raw(1)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as exc:  # a reset, most often
        return f"Read error: {exc.strerror or exc}"
    except ValueError:  # closed meanwhile by its own thread (file descriptor -1)
        return "Connection closed"
    return None if data else "Connection closed"


def is_exempt(config: ServerConfig, host: str) -> bool:
    """Whether the per-address limits spare ``host``: loopback (127.0.0.0/8, ::1), if
    ``exempt_loopback``."""
    try:
        loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
    return config.exempt_loopback and loopback


def _safe_middle(param: str) -> str:
    """``param`` as a valid middle parameter: cut at the first space, never empty, never
    starting with ':'."""
    param = param.split(" ", 1)[0].lstrip(":")
    return param or "*"


def standard_reply(kind: str, command: str, code: str, *params: str, server: str) -> Message:
    """An IRCv3 standard reply (``FAIL``, ``WARN``): ``<kind> <command> <code>
    [<context>...] :<text>``; the command and the context, often echoed from the client,
    are made safe as middle parameters, so that answering bad input can never fail."""
    *context, text = (_safe_middle(command), code, *params)
    return Message(kind, (*(_safe_middle(p) for p in context), text), server)


# Guards every Connection.quit_reason (set once). One lock for all: it is taken once per
# connection, at its end, and a lock per connection would cost memory on every idle one.
_QUIT_LOCK = threading.Lock()
#: What caps, modes and channels of a connection are until they change.
_NONE: frozenset = frozenset()


class Speaker:
    """The ways to tell one client something, made once for both routes to it: a
    :class:`Connection` itself (its own command's output, through its session) and its
    :class:`Delivery` (anyone else: straight to its send queue). Subclasses give
    :meth:`send_bytes`, :attr:`name`, :attr:`profile` and :attr:`config`."""

    __slots__ = ()

    if TYPE_CHECKING:
        name: str
        profile: int
        config: ServerConfig

    def send_bytes(self, data: bytes) -> None:
        raise NotImplementedError

    def send(self, msg: Message) -> None:
        self.send_bytes(msg.to_bytes())

    def echo(self, relay: tags.Relay) -> None:
        """A relayed message, in this client's form (its own message echoed, its own JOIN,
        a NICK change it asked for)."""
        if data := relay.to(self.profile):
            self.send_bytes(data)

    def reply(self, numeric: str, *params: str) -> None:
        """Send ``:<server> <numeric> <nick> <params...>``.

        Replies often echo what the client sent (an invalid nick, an unknown room); a
        middle parameter that could not stand on the wire as such is made safe first, so
        that answering bad input can never fail.
        """
        *middle, last = (self.name, *params)
        safe = tuple(_safe_middle(p) for p in middle)
        self.send(Message(numeric, (*safe, last), self.config.name))

    def fail(self, command: str, code: str, *params: str) -> None:
        """An IRCv3 standard reply, ``FAIL <command> <code> [<context>...] :<text>``."""
        self.send(standard_reply("FAIL", command, code, *params, server=self.config.name))

    def warn(self, command: str, code: str, *params: str) -> None:
        """An IRCv3 standard reply ``WARN``: something the client should know of, though
        its command did not fail."""
        self.send(standard_reply("WARN", command, code, *params, server=self.config.name))

    def send_error(self, err: IRCError) -> None:
        self.reply(err.numeric, *err.params, err.text)

    def notice(self, text: str) -> None:
        """A server notice to this client."""
        self.send(Message("NOTICE", (self.name, text), self.config.name))


class Delivery(Speaker):
    """What anyone but a client's own command tells it (another client's command, the
    housekeeping thread, the store's writer): queued straight to its send queue, never
    labeled or held for the store. Made on the spot: ``conn.delivery.notice(...)``."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def send_bytes(self, data: bytes) -> None:
        self.conn.world.deliver(self.conn, data)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.conn.name

    @property
    def profile(self) -> int:  # type: ignore[override]
        return self.conn.profile

    @property
    def config(self) -> ServerConfig:  # type: ignore[override]
        return self.conn.config


class Connection(Speaker):
    __slots__ = (
        "account",
        "account_id",
        "away",
        "batch",
        "bytes_received",
        "cap_negotiating",
        "caps",
        "channels",
        "config",
        "connected_at",
        "display_host",
        "folded_nick",
        "host",
        "idle",
        "invited_to",
        "last_seen",
        "last_spoke",
        "left",
        "lines_received",
        "meta_subs",
        "metadata",
        "modes",
        "monitoring",
        "multiline",
        "nick",
        "nick_deadline",
        "password",
        "ping_sent",
        "profile",
        "proxied",
        "quit_reason",
        "read_markers",
        "realname",
        "registered",
        "sasl",
        "sendq",
        "server",
        "session",
        "signon",
        "sock",
        "thread",
        "user",
        "world",
    )

    def __init__(
        self, server: Server, sock: Stream, address: tuple[str, int], *, proxied: bool = False
    ) -> None:
        self.server = server
        self.world = server.world
        self.config = server.config
        self.sock = sock
        # From a trusted proxy (proxy_protocol), until its PROXY header has given the
        # client's address and that address was admitted: meanwhile the connection's
        # address is the proxy's, not counted per address (see _unwrap_proxy).
        self.proxied = proxied
        self.host = address[0]  # the real address: limits, logs, operators and the user
        # What everyone else sees: a cloak of it, unless cloak_hosts is off.
        self.display_host = self._displayed(self.host)
        # Identity, written under the world lock once registered.
        self.nick: str | None = None
        self.folded_nick = ""
        self.user: str | None = None
        self.realname = ""
        self.password: str | None = None
        # Empty until changed, shared by all (an empty set is 216 bytes): its writers put a
        # new set in its place rather than change it (copy on write).
        self.caps: set[str] | frozenset[str] = _NONE
        self.account: str | None = None  # the account logged in to, as registered
        self.account_id: int | None = None  # ...and its id, which no other account gets
        self.sasl: bytearray | None = None  # a SASL PLAIN payload being received
        # When a nick registered to an account it is not logged in to will be taken away
        # (monotonic seconds); see chatcli.server.handlers.accounts.enforce.
        self.nick_deadline: float | None = None
        self.profile = 0  # the form of relayed messages it gets: chatcli.server.tags
        self.cap_negotiating = False
        self.registered = False
        self.away: str | None = None
        self.modes: set[str] | frozenset[str] = _NONE  # (copy on write, as caps)
        self.monitoring: set[str] | None = None  # MONITOR list (folded nicks), once used
        self.channels: set[Channel] | frozenset[Channel] = _NONE  # (as caps)
        self.invited_to: set[Channel] | None = None  # rooms it may join uninvited, once used
        # IRCv3 draft/multiline: the multiline message it is sending, while its batch is
        # open (chatcli.server.multiline); it goes with the connection.
        self.multiline: Multiline | None = None
        # IRCv3 draft/read-marker, not logged in: its own read markers (folded target to
        # unix ms), once it sets one; they go with the connection
        # (chatcli.server.handlers.readmarker).
        self.read_markers: dict[str, int] | None = None
        # IRCv3 draft/metadata-2 (chatcli.server.metadata): its keys, once it has any
        # (shared with its account's other connections), and the keys it subscribed to.
        self.metadata: Metadata | None = None
        self.meta_subs: frozenset[str] = _NONE
        # Liveness, in time.monotonic() seconds; signon in wall-clock seconds.
        now = time.monotonic()
        self.connected_at = now
        self.last_seen = now
        self.last_spoke = now
        self.ping_sent: float | None = None
        self.signon = int(time.time())
        self.lines_received = self.bytes_received = 0  # for operators: STATS l
        self.quit_reason: str | None = None
        # Whether this connection's thread has run all it read and waits to read more (or
        # has finished reading): until it reads again, it runs no command. Written by that
        # thread only; see end_if_closed.
        self.idle = False
        # Whether it has left the world (_leave: its rooms told, its nick free). Written
        # under the world lock.
        self.left = False
        # Framing, flood control, labeled responses and what waits for the store: the
        # protocol state this thread drives (it alone touches it).
        self.session = Session(
            FakeLag(self.config.flood_burst, self.config.flood_rate, now),
            kill=self.config.flood_kill,
            max_recvq=self.config.max_recvq,
            settled=self._settled,
        )
        self.sendq = SendQueue(sock, self.config.max_sendq, self.disconnect, server.flusher)
        #: While this thread runs what it read: its direct messages to others, joined (one
        #: send per recipient for the lot). None otherwise.
        self.batch: Batch | None = None
        self.thread = threading.Thread(target=self.run, name=f"conn {self.host}", daemon=True)

    def __repr__(self) -> str:
        return f"<Connection {self.nick or '*'} from {self.host}>"

    def _displayed(self, host: str) -> str:
        """What others see of ``host``: its cloak, unless cloak_hosts is off."""
        if self.config.cloak_hosts:
            return cloaks.cloak(host, self.world.cloak_key, self.config.network)
        return host

    # -- identity ---------------------------------------------------------------------------

    @property
    def source(self) -> str:
        """``nick!user@host``, the prefix of everything this client says; the host is
        :attr:`display_host`, so a cloak."""
        return f"{self.nick}!{self.user or '~u'}@{self.display_host}"

    @property
    def idle_seconds(self) -> int:
        """Seconds since this client last said something (WHOIS)."""
        return int(time.monotonic() - self.last_spoke)

    @property
    def server_name(self) -> str:
        """The name of the server this client is on (another node's, for a cluster's
        :class:`~chatcli.server.cluster.Remote`)."""
        return self.config.name

    @property
    def exempt(self) -> bool:
        """Whether the per-address limits spare this client: :func:`is_exempt`."""
        return is_exempt(self.config, self.host)

    @property
    def secure(self) -> bool:
        """Whether the client is connected over TLS."""
        return self.sock.secure

    @property
    def name(self) -> str:
        """The nick, or ``*`` before there is one (the first parameter of every numeric)."""
        return self.nick or "*"

    # -- what this client is told ------------------------------------------------------------
    #
    # Two ways in, chosen by the caller, never by which thread runs:
    # * its own command's output (send, reply, fail, warn, notice, echo...) goes to its
    #   session's outbox, on this connection's own thread, while the command runs: it may
    #   be held for the store or wrapped as a labeled response, and is queued once the
    #   command has run, or at once if said under the world lock (see send_bytes);
    # * what anyone else sends it (relay, deliver), from any thread, goes straight to its
    #   send queue.

    def send_bytes(self, data: bytes) -> None:
        """Our command's output (whole lines) to our own client, through its session.

        Said under the world lock, it is queued before the lock is released: it is part of
        the shared state's order (our own JOIN must reach us before the room's next line,
        queued by whoever takes the lock after us). Otherwise it waits for the command's
        end. (A labeled command's output waits for its end either way, as one response.)
        Only this connection's own thread runs its commands: anyone else uses
        :attr:`delivery` (checked in debug runs).
        """
        assert threading.current_thread() is self.thread, "own output from another thread"
        self.session.write(data)
        if self.world.lock.held():
            self._flush()

    @property
    def delivery(self) -> Delivery:
        """This client, spoken to by anyone but its own command (see :class:`Delivery`)."""
        return Delivery(self)

    def told_by(self, actor: Connection | None) -> Speaker:
        """This client as ``actor``'s command speaks to it: itself if it is the actor (its
        command's output), else :attr:`delivery`. ``actor`` None: a server thread."""
        return self if actor is self else self.delivery

    def confirm_after(self, ticket: int) -> None:
        """Hold what this client is told until the store's write ``ticket`` is settled. A
        write that is not kept is told to the client by whoever queued it (the store's
        ``on_lost``: a WARN, delivered before what was held), never confirmed as kept."""
        self.session.confirm_after(ticket)

    def deliver(self, data: bytes) -> None:
        """Queue ``data`` (whole lines) for this client, from any thread: not part of a
        command of its own (a server PING, a KILL, a store's warning)."""
        self.sendq.put(data)

    def relay(self, relay: tags.Relay) -> None:
        """Queue a relayed message in this client's form, from any thread."""
        if data := relay.to(self.profile):
            self.sendq.put(data)

    def _settled(self, ticket: int) -> bool:
        store = self.server.store
        return store is None or store.settled(ticket)

    def _settle(self, *, always: bool = False) -> None:
        """If anything is held, wait until this client's messages are settled (kept in the
        history, or known not to be: their senders have been told so), then release it.
        Once per batch of lines read: one commit covers them all. (With nothing to tell the
        client, its thread reads on: it does not wait for the disk.) If the store does not
        settle them in time, the client is told that too, rather than left to think them
        kept. With ``always``, waits for them even with nothing held."""
        ticket = self.session.waiting_for(always=always)
        if not ticket:
            return
        store = self.server.store
        if store is not None:
            store.outcome(ticket)  # waits, at most the store's WAIT_TIMEOUT
        if self._settled(ticket):
            self.session.release(in_time=True)
            return
        log.error("history not written in time for %r", self)  # timed out, or closed
        text = "the server could not confirm in time that your messages are in the history"
        warning = standard_reply(
            "WARN", "*", "HISTORY_NOT_CONFIRMED", text, server=self.config.name
        )
        self.session.release(in_time=False, warning=warning.to_bytes())

    def _flush(self) -> None:
        """Queue what our commands have said, in order."""
        if data := self.session.take():
            self.sendq.put(data)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def disconnect(self, reason: str) -> None:
        """End this connection from any thread. Idempotent: the first reason wins."""
        with _QUIT_LOCK:
            if self.quit_reason is not None:
                return
            self.quit_reason = reason
        self.sendq.close(Message("ERROR", (f"Closing link: {self.host} ({reason})",)).to_bytes())
        if threading.current_thread() is not self.thread:
            self._shutdown(socket.SHUT_RD)  # wakes run() out of recv()

    def end(self, reason: str) -> None:
        """End this connection from its own command: what the command said goes first,
        then ``ERROR`` (:meth:`disconnect`)."""
        self._flush()
        self.disconnect(reason)

    def run(self) -> None:
        """The connection thread: read, and run what its :class:`Session` lets run, until
        the end.

        Lines read wait in the session until flood control lets them run; meanwhile the
        thread reads on, so that the session sees a client that keeps flooding ("Excess
        Flood") and bounds what is held for it.

        A line too long to be one (tags over the limit, say) is dropped as it arrives and
        answered ``417`` in its turn (IRCv3 message-tags), the connection going on; only
        one that runs past ``max_recvq`` bytes without ending is "ReadQ exceeded".
        """
        session = self.session
        tls = self.sock.buffered
        drained = False  # the last read took all the kernel had
        size = RECV_FIRST  # what the next read asks for
        try:
            refused = self._unwrap_proxy() if self.proxied else ""
            if self.quit_reason is None:
                self._handshake(self.sock)
            if refused:  # (told once TLS, if any, can carry it)
                self.disconnect(refused)
            while self.quit_reason is None:
                self._run_due()
                if self.quit_reason is not None:
                    break
                due = session.next_due()
                if session.closing is not None:
                    if session.finished():
                        self.disconnect(session.closing)
                        break
                    time.sleep(min(max(0.0, due - time.monotonic()), CLOSING_STEP))  # type: ignore[operator]
                    continue
                self.idle = False  # (before reading: see end_if_closed)
                if drained:
                    # The last read took all there was: wait for more before reading, not
                    # read to be told there is none (a system call less per message).
                    drained = False
                    self.idle = due is None
                    timeout = WAKE_INTERVAL if due is None else due - time.monotonic()
                    if not wait_ready(self.sock, max(0.0, timeout)):
                        continue
                    self.idle = False
                try:
                    data = self.sock.recv(size)
                except (BlockingIOError, InterruptedError):
                    self.idle = due is None  # nothing read, nothing held: all has run
                    timeout = WAKE_INTERVAL if due is None else due - time.monotonic()
                    wait_ready(self.sock, max(0.0, timeout), write=self.sock.wants_write)
                    continue
                if not data:
                    session.end_of_input()
                    continue
                now = self.last_seen = time.monotonic()
                self.ping_sent = None
                self.bytes_received += len(data)
                # (Over TLS, OpenSSL may hold more already decrypted: read again first.)
                drained = len(data) < size and not tls
                size = RECV_BYTES if len(data) == size else RECV_FIRST
                try:
                    self.lines_received += session.receive(data, now)
                except ExcessFlood:
                    self.disconnect("Excess Flood")
                data = None  # type: ignore[assignment]  # (not kept while the thread waits)
        except OSError as exc:
            self.disconnect(f"Read error: {exc.strerror or exc}")
        except Exception:
            log_exception(self.server.tracebacks, "connection %r crashed", self)
            self.disconnect("Internal error")
        finally:
            self.disconnect(self.sendq.failed or "Connection closed")
            self.idle = True  # no command runs any more
            self._teardown()

    def _unwrap_proxy(self) -> str:
        """Read the PROXY header a trusted proxy begins with, before anything else (TLS
        included), and take the address it gives as this connection's, for everything
        from now on (limits, cloak, operators, logs), once admitted by it: "" then, or
        why the client is refused. No valid header in time: the connection ends (the
        reason counted in the metrics), and the client is not served.

        A header that names no client (v1 ``UNKNOWN``; v2 LOCAL, the proxy's health
        check) leaves the proxy's own address, which is not held to the per-address
        limits (:attr:`proxied` stays True: nothing was counted for it)."""
        proxy = self.host
        try:
            header = proxies.read_header(
                self.sock, proxies.HEADER_TIMEOUT, lambda: self.quit_reason is not None
            )
        except proxies.HeaderNotRead as exc:
            if self.quit_reason is None:
                log.warning("refused a connection from %s (a proxy): %s", proxy, exc)
                self.server.count_refusal(proxies.NO_HEADER)
                self.disconnect(proxies.NO_HEADER)
            return ""
        if header.source is None:
            log.debug("a connection from %s (a proxy) for no client: %s", proxy, header)
            return ""
        self.host = header.source[0]
        self.display_host = self._displayed(self.host)
        self.thread.name = f"conn {self.host}"
        log.debug("a connection from %s through %s", self.host, proxy)
        refused = self.server.admit(self.host, in_all=False)
        if not refused:
            self.proxied = False  # (counted by address: released at the end, as any)
        return refused

    def _handshake(self, sock: Stream) -> None:
        """Complete what the transport needs before a line is read (TLS's handshake). It
        fails like any read; a client that takes too long is dropped by the registration
        timeout, which ends the wait too."""
        try:
            while not sock.handshake():
                if self.quit_reason is not None:
                    return
                wait_ready(sock, WAKE_INTERVAL, write=sock.wants_write)
        except HandshakeFailed as exc:
            log.info("%s from %s: %s", exc, self.host, exc.__cause__ or exc)
            self.disconnect(str(exc))

    def _run_due(self) -> None:
        """Run, in order, every line held that flood control lets run now; queue what each
        command said as it ends.

        Direct messages to others among them wait in :attr:`batch` and leave together,
        one send per recipient, when the run ends: before any other command runs, before a
        room message or a wait for the disk (see ``messaging._deliver_one``), and before
        this thread waits, so that nothing anyone sees is reordered or delayed."""
        session = self.session
        batch = self.batch = Batch()
        try:
            while self.quit_reason is None:
                if (raw := session.next_line(time.monotonic())) is None:
                    break
                if batch and verb(raw) not in BATCHED:
                    batch.flush()
                if session.must_settle(raw):
                    batch.flush()
                    self._settle(always=True)
                labels = raw[:1] == b"@" and {caps.LABELED_RESPONSE, caps.BATCH} <= self.caps
                session.begin(raw, labels=labels)
                try:
                    if (msg := self._parse(raw)) is not None:
                        dispatch(self, msg)
                finally:
                    session.end(self.config.name)
                self._flush()
        finally:
            self.batch = None
            batch.flush()
            self._settle()  # what is due goes out before the client waits
            self._flush()

    def _parse(self, raw: bytes) -> Message | None:
        """Parse one line; answer what cannot be parsed and return None for it."""
        try:
            return parse_line(raw)
        except EmptyLine:
            return None
        except InputTooLong as exc:
            self.reply(n.ERR_INPUTTOOLONG, f"Input line too long: {exc}")
        except InvalidUtf8 as exc:
            # Ergo, and IRCv3 UTF8ONLY: the line is dropped and the client told why.
            self.fail(exc.command, "INVALID_UTF8", "Message rejected: it was not valid UTF-8")
        except MalformedLine as exc:
            self.reply(n.ERR_UNKNOWNCOMMAND, exc.command, f"Malformed line: {exc}")
        return None

    def end_if_closed(self) -> bool:
        """If this connection's peer has closed it (or the server is ending it), end it now
        rather than when its thread gets to it, so that its nick is free at once; True if
        it has left (see the module's docstring). Never touches a connection whose peer is
        still there. Called on another connection's thread, without the world lock.
        """
        if self.left:
            return True
        reason = self.quit_reason or peer_closed(self.sock)
        if reason is None:
            return False  # alive (or over TLS, cannot tell)
        # The end was seen before idle is read: if idle, this thread had read everything
        # the peer will ever send, and ran it all. It runs no command again.
        if self.idle:
            self.disconnect(reason)  # (the first reason stays; its thread wakes to close)
            with self.world.lock:
                self._leave()
            return True
        # Its thread is running the last commands it read, or ending: it leaves shortly.
        deadline = time.monotonic() + RELEASE_WAIT
        while not self.left and time.monotonic() < deadline:
            time.sleep(RELEASE_STEP)
        return self.left

    def _leave(self) -> None:
        """Leave the world, once: every room and table, the nick freed; the QUIT to those
        who shared a room, MONITOR's offline notice. Caller holds the world lock. Run by
        this connection's thread as it ends, or first by a newcomer's (end_if_closed)."""
        self.world.assert_held()
        if self.left:
            return
        self.left = True
        reason = self.quit_reason or "Connection closed"
        was_registered = self.registered
        peers = self.world.forget(self)
        if was_registered:
            monitor.announce(self, online=False)
            relay = tags.Relay(Message("QUIT", (reason,), self.source), account=self.account)
            if caps.QUIET not in self.caps:  # (see caps.QUIET)
                self.world.relay_to(peers, relay, actor=None)

    def _teardown(self) -> None:
        """Leave every room (unless a newcomer had it leave already), flush, close. Runs
        once, on this connection's own thread."""
        reason = self.quit_reason or "Connection closed"
        with self.world.lock:
            self._leave()
        deadline = time.monotonic() + self.config.shutdown_grace
        if not self.sendq.finished(self.config.shutdown_grace):
            self.sendq.abandon()  # a peer that does not read: stop waiting for it
            if not self.sendq.finished(10.0):
                log.error("the flusher did not let go of %r; closing it anyway", self)
        self._drain(deadline)
        self.sock.close()
        self.server.forget(self)
        log.info("%s disconnected: %s", self.nick or self.host, reason)

    def _drain(self, deadline: float) -> None:
        """Read what the peer still sends until it closes, so that closing with unread data
        does not reset the connection and destroy our final ERROR line in flight."""
        sock = self.sock
        read = sock.recv_raw
        while (left := deadline - time.monotonic()) > 0:
            try:
                if wait_ready(sock, left) and not read(RECV_BYTES):
                    return
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return

    def _shutdown(self, how: int) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(how)
