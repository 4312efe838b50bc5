"""The server: listening sockets, the accept loop, liveness checks and shutdown.

Lifecycle (as in :mod:`socketserver`): :meth:`Server.bind` opens the listeners (port 0 picks
a free port; :attr:`Server.address` tells which); :meth:`Server.serve_forever` accepts until
:meth:`Server.shutdown` (or :meth:`Server.request_stop`, safe in a signal handler) and then
ends every connection; :meth:`Server.close` releases the listeners. All are idempotent.

Threads: the thread in ``serve_forever`` accepts (and rehashes on SIGHUP: see
:meth:`Server.request_rehash`); a housekeeping thread checks liveness once a tick; each
connection has its own thread, which reads and runs its commands; one flusher thread
writes to every client; and while there are refusals to tell over TLS, one thread tells
them (:mod:`chatcli.server.refusals`).

From a trusted proxy (``proxy_protocol``), a connection begins with a PROXY header: the
accept loop only counts it in all (``max_clients``); its own thread reads the header and
has the client's address admitted (:mod:`chatcli.server.proxied`).

Every background loop (accepting, housekeeping, the flusher, the TLS refusals) is
supervised (:mod:`chatcli.server.supervise`): after an unexpected exception it is logged
and restarted, within a budget. Past it, or where a restart cannot be safe, or when the
store's writer cannot go on, :meth:`Server.fatal` stops the server, and ``serve_forever``
raises :class:`~chatcli.server.supervise.ServerFailed` with the reason (``chat serve``
then exits non-zero). The server is never left up but broken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

from chatcli import __version__, tls
from chatcli.config import ServerConfig
from chatcli.errors import ConfigError
from chatcli.protocol import Message
from chatcli.server import history, isupport
from chatcli.server.admission import take_slot
from chatcli.server.channel import Channel
from chatcli.server.commands import TracebackLimit
from chatcli.server.connection import Connection, is_exempt
from chatcli.server.handlers import accounts, rooms
from chatcli.server.proxied import is_trusted
from chatcli.server.refusals import TLSRefusals, hang_up
from chatcli.server.sendq import SENDQ_EXCEEDED, Flusher
from chatcli.server.state import World
from chatcli.server.store import Retention, Store
from chatcli.server.supervise import ServerFailed, Supervisor
from chatcli.server.tls_socket import TLSSocket
from chatcli.server.transport import TRANSPORTS, PlainStream, Stream, listen_all

if TYPE_CHECKING:
    from chatcli.server.cluster import Cluster
    from chatcli.server.web import WebListener

log = logging.getLogger("chatcli.server")

LISTEN_BACKLOG = 1024
# Connection threads do little but recv, parse and queue: a small stack is plenty. It
# reserves 256 KiB of address space per thread instead of 8 MiB (10,000 connections:
# 2.5 GiB, not 80); resident memory is the same either way, about 16 KiB a thread.
THREAD_STACK_BYTES = 256 * 1024
# Once a thread has started, two things it carries per thread are the same for all: the
# Event its start() waited on (with a Condition, a lock and a deque of waiters: 1.1 KiB),
# set for good, and its copy of the closure that reports an uncaught exception (0.4 KiB,
# which looks the hook up when called). A connection's thread shares these instead
# (:func:`_shed`): 10,000 idle connections, 15 MiB less.
_STARTED = threading.Event()
_STARTED.set()
_make_hook = getattr(threading, "_make_invoke_excepthook", None)
_INVOKE_EXCEPTHOOK = _make_hook() if _make_hook is not None else None
#: Settings a running server cannot take up: a rehash keeps them as they were, and says
#: which of them changed (they take a restart).
RESTART_ONLY = (
    "host", "port", "tls", "tls_port", "db", "name", "network", "casemapping", "room",
    "history_per_target", "history_days", "replay_lines", "web_port",
)  # fmt: skip


def _shed(thread: threading.Thread) -> None:
    """Let a started ``thread`` share what every started thread holds alike (see
    :data:`_STARTED`). Only what this CPython has, and only once it has started."""
    started = getattr(thread, "_started", None)
    if isinstance(started, threading.Event) and started.is_set():
        thread._started = _STARTED  # type: ignore[attr-defined]
    if _INVOKE_EXCEPTHOOK is not None and hasattr(thread, "_invoke_excepthook"):
        thread._invoke_excepthook = _INVOKE_EXCEPTHOOK  # type: ignore[attr-defined]


class Liveness(Enum):
    OK = "ok"
    PING = "ping"
    DROP = "drop"


def check_liveness(
    now: float,
    *,
    registered: bool,
    connected_at: float,
    last_seen: float,
    ping_sent: float | None,
    config: ServerConfig,
) -> tuple[Liveness, str]:
    """Decide what to do about one connection at ``now`` (monotonic seconds).

    Returns:
        ``(OK, "")``, ``(PING, "")`` to probe an idle client, or ``(DROP, reason)``.
    """
    if not registered:
        if now - connected_at >= config.registration_timeout:
            return Liveness.DROP, "Registration timeout"
        return Liveness.OK, ""
    if ping_sent is not None:
        if now - ping_sent >= config.ping_timeout:
            return Liveness.DROP, f"Ping timeout: {int(now - last_seen)} seconds"
        return Liveness.OK, ""
    if now - last_seen >= config.ping_interval:
        return Liveness.PING, ""
    return Liveness.OK, ""


@dataclasses.dataclass(slots=True)
class Traffic:
    """What connections have done, for metrics: counters that only grow. The server keeps
    those of the connections that have ended (:meth:`Server.forget`); :meth:`Server.traffic`
    adds those of the open ones, so that each connection counts once, open or ended."""

    lines_received: int = 0  #: IRC lines read from clients
    bytes_received: int = 0
    lines_sent: int = 0  #: lines queued to clients (delivered to their sockets' queues)
    bytes_sent: int = 0  #: bytes the kernel took
    sendq_drops: int = 0  #: connections ended for a full send queue ("SendQ exceeded")
    flood_kills: int = 0  #: connections ended for flooding ("Excess Flood")

    def add(self, conn: Connection) -> None:
        """Count ``conn``'s figures in (a glance at its counters, on the GIL)."""
        self.lines_received += conn.lines_received
        self.bytes_received += conn.bytes_received
        self.lines_sent += conn.sendq.lines_out
        self.bytes_sent += conn.sendq.bytes_sent
        reason = conn.quit_reason or ""
        self.sendq_drops += reason.startswith(SENDQ_EXCEEDED)
        self.flood_kills += reason == "Excess Flood"


@dataclasses.dataclass(frozen=True, slots=True)
class TrafficView:
    """A moment's view of the connections, for metrics (:meth:`Server.traffic`)."""

    totals: Traffic  #: of every connection so far, open or ended
    #: connections open, by transport (``tcp``, ``tls``, ``websocket``: Stream.transport)
    by_transport: dict[str, int]
    registered: int  #: of those, the ones past registration (NICK and USER)
    refused: dict[str, int]  #: connections refused, by reason ("Server full"...)


class ListenError(OSError):
    """A listening socket could not be opened: where (:attr:`host`, :attr:`port`), and
    why (``strerror``)."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.host, self.port = host, port


class Server:
    """A chat server.

    Args:
        config: its settings.
        reload_config: how to read them again, for a rehash (REHASH, SIGHUP); without it
            a rehash reloads the TLS certificate only.
        config_file: where they come from, as REHASH tells the operator.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        reload_config: Callable[[], ServerConfig] | None = None,
        config_file: str = "",
    ) -> None:
        self.config = config.validate()
        self.reload_config = reload_config
        self.config_file = config_file
        self._fingerprint = ""
        # First: a certificate that cannot be used stops start-up before anything is open.
        self.tls_context: ssl.SSLContext | None = self._load_tls(config)
        #: Why the server stopped, if part of it failed beyond repair (see :meth:`fatal`).
        self.failure: str | None = None
        self.flusher = Flusher(on_fatal=self.fatal)
        #: How many tracebacks of unexpected errors go to the log (see commands.dispatch).
        self.tracebacks = TracebackLimit()
        #: The time admission decisions are made at (the throttles: chatcli.server.admission).
        self.clock: Callable[[], float] = time.monotonic
        self.refusals = TLSRefusals(on_fatal=self.fatal)  #: refusals told over TLS
        #: The cluster this server is a node of (``cluster``), once started in bind.
        self.cluster: Cluster | None = None
        if config.cluster:
            from chatcli.server.cluster import Cluster, ClusterWorld  # (only for a cluster)

            world = ClusterWorld(config.casemapping, self.flusher, config)
            self.world: World = world
            self.cluster = Cluster(
                config.cluster, world, config, on_fatal=self.fatal, cut_off=self._cut_off
            )
        else:
            self.world = World(config.casemapping, self.flusher)
        self.store: Store | None = None
        if config.db is not None:
            retention = Retention(config.history_per_target, config.history_days)
            self.store = Store(config.db, retention)  # (a path, or a URL: kept as given)
            self.store.on_fatal = self.fatal  # the writer cannot go on: stop
        self.version = config.version or f"chatcli-{__version__}"
        self.created = time.time()
        self.address: tuple[str, int] | None = None
        self.tls_address: tuple[str, int] | None = None  #: where TLS is spoken, if anywhere
        self._listeners: list[socket.socket] = []
        self._secure: set[socket.socket] = set()  # the listeners that speak TLS
        self._stop = threading.Event()
        self._acceptor = Supervisor("accept", self.fatal, stop=self._stop)
        self._accepting = False  # the accept loop is running (a glance: accept_health)
        self._housekeeper = Supervisor("housekeeping", self.fatal, stop=self._stop)
        self._reload = threading.Event()
        #: Called on the accepting thread once a rehash asked for by request_rehash (SIGHUP)
        #: is over, whether it changed anything or failed: ``chat serve`` tells systemd.
        self.on_rehashed: Callable[[], object] | None = None
        self._rehash_lock = threading.Lock()
        self._stopped = threading.Event()
        self._running = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._state_lock = threading.Lock()
        self._closed = False
        # Each connection's thread -> the connection, while it runs.
        self._threads: dict[threading.Thread, Connection] = {}
        # Metrics: the figures of the connections that have ended (see Traffic), and the
        # connections refused, by reason.
        self._ended = Traffic()
        self._refused: dict[str, int] = {}
        # Accept limits, under _state_lock: connections open per address, and the times of
        # recent connections per address (the throttle; pruned by housekeeping).
        self._per_ip: dict[str, int] = {}
        self._recent: dict[str, deque[float]] = {}
        #: The HTTP listener (health, metrics), with ``web_port``; its address once bound.
        self.web: WebListener | None = None
        self.web_address: tuple[str, int] | None = None
        if config.web_port is not None:
            from chatcli.server.web import WebListener  # (only servers that serve the web)

            self.web = WebListener(self)
        # The default room has no operator, so nothing in it is reserved to operators (no
        # +t): anyone may set its topic. It stays when empty.
        lobby = Channel(config.room, int(self.created), modes={"n"}, permanent=True)
        self.world.add_room(lobby)

    # -- TLS --------------------------------------------------------------------------------

    def _load_tls(self, config: ServerConfig) -> ssl.SSLContext | None:
        """The TLS context ``config`` asks for (None: no TLS); the fingerprint of its
        certificate becomes :attr:`tls_fingerprint`.

        Raises:
            ConfigError: the certificate and key cannot be used.
        """
        if not config.wants_tls:
            return None
        if not config.tls_cert:
            raise ConfigError("TLS needs a certificate: tls_cert (and tls_key)")
        fingerprint = tls.file_fingerprint(config.tls_cert)
        context = tls.server_context(config.tls_cert, config.tls_key or config.tls_cert)
        self._fingerprint = fingerprint
        return context

    @property
    def tls_fingerprint(self) -> str | None:
        """The SHA-256 fingerprint of the certificate served, if TLS is on."""
        return self._fingerprint if self.tls_context is not None else None

    def rehash(self) -> list[str]:
        """Read the settings and the TLS certificate again, and apply them: to every
        connection from now on, to new connections for what each fixes when it starts
        (the sizes of its send and read queues, and its flood cut-off). Returns the
        settings that changed but take a restart (:data:`RESTART_ONLY`); they keep their
        values meanwhile.

        Raises:
            ConfigError: the new settings or certificate cannot be used; nothing changed.
        """
        with self._rehash_lock:  # SIGHUP and an operator's REHASH, one after the other
            return self._rehash()

    def _rehash(self) -> list[str]:
        old = self.config
        new = old if self.reload_config is None else self.reload_config().validate()
        waiting = [key for key in RESTART_ONLY if getattr(new, key) != getattr(old, key)]
        new = dataclasses.replace(new, **{key: getattr(old, key) for key in RESTART_ONLY})
        context = self._load_tls(new) if self.tls_context is not None else None
        told = isupport.changed_isupport(old, new)  # what clients were told, now untrue
        with self.world.lock:
            self.config = new
            self.tls_context = context
            for conn in self.world.connections:
                conn.config = new
                lag = conn.session.lag
                lag.burst, lag.rate = float(new.flood_burst), new.flood_rate
                if told and conn.registered:  # (to all, the operator asking too: delivered)
                    isupport.send_isupport(conn.delivery, told)
        log.warning(
            "rehashed the settings%s%s",
            f" in {self.config_file}" if self.config_file else "",
            f"; TLS certificate loaded, SHA-256 {self._fingerprint}" if context else "",
        )
        if waiting:
            log.warning("changed settings that take a restart: %s", ", ".join(waiting))
        return waiting

    def request_rehash(self) -> None:
        """Ask the accepting thread to :meth:`rehash` (logging a failure). Safe in a signal
        handler (SIGHUP)."""
        self._reload.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"r")

    # -- binding ----------------------------------------------------------------------------

    def bind(self) -> tuple[str, int]:
        """Open the listening sockets; return the (host, port) actually bound.

        Every address ``host`` resolves to is bound, on one port (``localhost`` gives both
        127.0.0.1 and ::1); so, with ``tls_port``, is the TLS port
        (:attr:`tls_address`).

        Raises:
            ListenError: an address is unknown or in use.
        """
        if self._listeners:
            assert self.address is not None
            return self.address
        if self.store is not None and not self.store.is_open:
            self.store.open()  # StoreError: the database cannot be used
            self.world.store = self.store
            rooms.load(self.world, self.store)
            if self.config.replay_lines > 0:
                for channel in self.world.channels.values():
                    history.prime(self.world, self.store, channel, self.config.replay_lines)
        if self.cluster is not None and not self.cluster.started:
            self.cluster.start()  # ClusterError: its Redis cannot be used
        config = self.config
        try:
            self.address = self._listen(config.port, secure=config.tls)
            if config.tls:
                self.tls_address = self.address
            elif config.tls_port is not None:
                self.tls_address = self._listen(config.tls_port, secure=True)
            if self.web is not None and config.web_port is not None:
                try:
                    self.web_address = self.web.bind(config.host, config.web_port)
                except OSError as exc:
                    raise ListenError(config.host, config.web_port, exc) from None
        except OSError:
            self.close()
            raise
        return self.address

    def _listen(self, port: int, *, secure: bool) -> tuple[str, int]:
        """Listen on every address of ``host`` at ``port``; return the first address.

        Raises:
            ListenError: an address is unknown or in use.
        """
        try:
            return self._open(port, secure)
        except OSError as exc:
            raise ListenError(self.config.host, port, exc) from None

    def _open(self, port: int, secure: bool) -> tuple[str, int]:
        opened = listen_all(self.config.host, port, LISTEN_BACKLOG)
        self._listeners.extend(opened)
        if secure:
            self._secure.update(opened)
        host, port = opened[0].getsockname()[:2]
        return host, port

    # -- serving ----------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections until asked to stop; then end every connection.

        Raises:
            ServerFailed: the server stopped because part of it failed (:meth:`fatal`).
        """
        self.bind()
        with self._state_lock:
            started = not self._running and not self._stop.is_set()
            self._running = self._running or started
        if not started:
            self._raise_failure()
            return
        housekeeper = threading.Thread(
            target=self._housekeeper.run, args=(self._housekeeping,), name="housekeeping"
        )
        housekeeper.start()
        self.flusher.start()
        try:
            self._acceptor.run(self._accept_loop)
        finally:
            self._stop.set()
            housekeeper.join()
            if self.web is not None:
                self.web.stop()
            self.refusals.stop()
            self._end_all()
            if self.cluster is not None:
                self.cluster.stop()  # (after the QUITs: the other nodes hear of them)
            self.flusher.stop()
            self._stopped.set()
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise ServerFailed(f"the server stopped: {self.failure}")

    def _accept_loop(self) -> None:
        """Accept connections, and rehash when asked, until the server stops. (Run by a
        supervisor: a restart opens a new selector.)"""
        with selectors.DefaultSelector() as selector:
            for sock in self._listeners:
                selector.register(sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            self._accepting = True
            try:
                if self.web is not None:  # (once accepting: health is ok from its first answer)
                    self.web.start()
                while not self._stop.is_set():
                    for key, _ in selector.select():
                        if key.fileobj is self._wake_r:
                            self._woken()
                            continue
                        try:
                            self._accept(key.fileobj)  # type: ignore[arg-type]
                        except Exception:  # one connection must never stop the server
                            log.exception("accepting a connection failed")
            finally:
                self._accepting = False

    def _woken(self) -> None:
        """The accepting thread was woken: to stop, or to rehash."""
        with contextlib.suppress(OSError):
            self._wake_r.recv(64)
        if self._reload.is_set():
            self._reload.clear()
            try:
                self.rehash()
            except ConfigError as exc:  # what was loaded before stays
                log.error("rehash failed: %s", exc)
            finally:
                if self.on_rehashed is not None:
                    self.on_rehashed()

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, address = listener.accept()
        except OSError as exc:  # e.g. EMFILE, or the peer gave up already
            log.warning("accept failed: %s", exc)
            if exc.errno in (errno.ENFILE, errno.EMFILE):  # back off instead of spinning
                time.sleep(0.1)
            return
        sock.setblocking(False)  # the flusher writes without waiting; see sendq.py
        host = address[0]
        secure = listener in self._secure
        # From a trusted proxy: only the bound in all applies now; the client behind it is
        # admitted by its own address once its connection's thread has read the PROXY
        # header (Connection.run; never here, where a slow header would stall accepting).
        proxied = is_trusted(host, self.config.proxy_protocol)
        refused = self._admit(host, self.clock(), by_address=not proxied)
        if refused:
            self.count_refusal(refused)
            log.warning("refused a connection from %s: %s", host, refused)
            line = Message("ERROR", (f"Closing link: {host} ({refused})",)).to_bytes()
            if secure and proxied:  # (its TLS comes after a header: no refusal to tell)
                hang_up(sock)
                return
            if secure:
                assert self.tls_context is not None
                self.refusals.refuse(sock, line, self.tls_context)
                return
            with contextlib.suppress(OSError):
                sock.send(line)  # a fresh socket's buffer takes one short line
            hang_up(sock)
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.config.socket_sndbuf)
            stream: Stream
            if secure:
                assert self.tls_context is not None
                stream = TLSSocket(sock, self.tls_context)
            else:
                stream = PlainStream.adopt(sock)
        except OSError as exc:  # gone already: a reset between accept and now
            log.info("lost %s before it started: %s", host, exc)
            sock.close()
            if not proxied:
                self._release(host)
            return
        self.start_connection(stream, address, proxied=proxied)

    def admit(self, host: str, *, in_all: bool = True) -> str:
        """Count a new connection from ``host`` that another listener accepted (a
        WebSocket), or, with ``in_all`` False, the client a proxy's connection (counted in
        all already) carries, once its PROXY header gives its address; or return why it
        is refused (counted, as refusals here are)."""
        refused = self._admit(host, self.clock(), in_all=in_all)
        if refused:
            self.count_refusal(refused)
            log.warning("refused a connection from %s: %s", host, refused)
        return refused

    def count_refusal(self, reason: str) -> None:
        """Count a connection refused for ``reason`` (the metrics' refusals)."""
        with self._state_lock:
            self._refused[reason] = self._refused.get(reason, 0) + 1

    def start_connection(
        self, stream: Stream, address: tuple[str, int], *, proxied: bool = False
    ) -> None:
        """Serve ``stream``, admitted (:meth:`admit`), as a client: its connection and
        its thread. Any transport: TCP and TLS from here, WebSocket from the web listener.
        With ``proxied``, from a trusted proxy and not yet admitted by address: its thread
        reads the PROXY header first (:meth:`Connection.run`)."""
        host = address[0]
        conn = Connection(self, stream, address[:2], proxied=proxied)
        with self.world.lock:
            self.world.arrive(conn)
        with self._state_lock:
            self._threads[conn.thread] = conn
        old = threading.stack_size()
        try:
            threading.stack_size(THREAD_STACK_BYTES)
            conn.start()
            _shed(conn.thread)
        except (RuntimeError, ValueError) as exc:  # no more threads: refuse this one
            log.error("cannot start a thread for %s: %s", host, exc)
            with self.world.lock:
                self.world.forget(conn)
            self.forget(conn)
            stream.close()
        finally:
            threading.stack_size(old)

    def _admit(self, host: str, now: float, *, in_all: bool = True, by_address: bool = True) -> str:
        """Count a new connection from ``host`` at ``now``; or return why it is refused.

        ``max_clients`` applies to everyone (unless not ``in_all``: counted already);
        ``max_per_ip`` and the throttle (``throttle_connects`` in ``throttle_window``) not
        to loopback if ``exempt_loopback``, nor (``by_address`` False) to a proxy's
        connection before its header is read. A refused connection does not count against
        its address.
        """
        config = self.config
        exempt = is_exempt(config, host)
        with self._state_lock:
            if in_all and len(self._threads) >= config.max_clients:
                return "Server full"
            if not by_address:
                return ""
            if not exempt and 0 < config.max_per_ip <= self._per_ip.get(host, 0):
                return "Too many connections from your address"
            if (
                not exempt
                and config.throttle_connects
                and not take_slot(
                    self._recent, host, now, config.throttle_connects, config.throttle_window
                )
            ):
                return "Connecting too fast"
            self._per_ip[host] = self._per_ip.get(host, 0) + 1
        return ""

    def forget(self, conn: Connection) -> None:
        """Called by a connection's thread when it has finished (thread reaping)."""
        with self._state_lock:
            if conn.thread not in self._threads:
                return
            del self._threads[conn.thread]
            self._ended.add(conn)
        if not conn.proxied:  # (a proxy's, not admitted by address: nothing to release)
            self._release(conn.host)

    def _release(self, host: str) -> None:
        """Count one connection from ``host`` less (one :meth:`_admit` counted)."""
        with self._state_lock:
            left = self._per_ip.get(host, 1) - 1
            if left > 0:
                self._per_ip[host] = left
            else:
                self._per_ip.pop(host, None)

    def _housekeeping(self) -> None:
        """Once a tick, until the server stops: :meth:`_tick`. (Run by a supervisor.)"""
        while not self._stop.wait(self.config.tick):
            self._tick(time.monotonic())

    def _tick(self, now: float) -> None:
        """Check every connection's liveness. (The connection throttle forgets quiet
        addresses itself, at the clock admission is decided by: see _admit.)"""
        with self.world.lock:
            conns = list(self.world.connections)
        for conn in conns:
            action, reason = check_liveness(
                now,
                registered=conn.registered,
                connected_at=conn.connected_at,
                last_seen=conn.last_seen,
                ping_sent=conn.ping_sent,
                config=self.config,
            )
            if action is Liveness.PING:
                conn.ping_sent = now
                self.world.deliver(conn, Message("PING", (self.config.name,)).to_bytes())
            elif action is Liveness.DROP:
                conn.disconnect(reason)
            accounts.enforce(conn, now)  # a registered nick held without logging in

    # -- stopping ---------------------------------------------------------------------------

    def fatal(self, reason: str) -> None:
        """Stop the server because part of it failed beyond repair (a supervised thread
        past its restart budget, the store's writer): log ``reason``, a line, and stop;
        ``serve_forever`` then raises :class:`~chatcli.server.supervise.ServerFailed`
        with it, and ``chat serve`` exits non-zero. The first reason wins. Any thread;
        does not wait (safe on the failing thread itself)."""
        with self._state_lock:
            first = self.failure is None
            if first:
                self.failure = reason
        if first:
            log.critical("stopping the server: %s", reason)
        self.request_stop()

    def request_stop(self) -> None:
        """Ask ``serve_forever`` to stop, without waiting. Safe in a signal handler."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop serving, end every connection, and wait for that (at most ``timeout``)."""
        self.request_stop()
        with self._state_lock:
            running = self._running
        if running:
            self._stopped.wait(timeout)

    def _end_all(self) -> None:
        """Tell every client the server is going, end them all, and join their threads."""
        with self.world.lock:
            conns = list(self.world.connections)
        for conn in conns:
            conn.delivery.notice("Server shutting down")
            conn.disconnect("Server shutting down")
        deadline = time.monotonic() + self.config.shutdown_grace + 1.0
        with self._state_lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stragglers = [t.name for t in threads if t.is_alive()]
        if stragglers:
            log.warning("threads still running at shutdown: %s", ", ".join(stragglers))

    def _cut_off(self, reason: str) -> None:
        """The cluster's Redis has been out of reach too long: end every client's
        connection, saying why, rather than go on alone (see chatcli.server.cluster)."""
        log.error("ending every connection: %s", reason)
        with self.world.lock:
            conns = list(self.world.connections)
        for conn in conns:
            conn.delivery.notice(reason)
            conn.disconnect(reason)

    def close(self) -> None:
        """Close the listening sockets. Idempotent."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        for sock in self._listeners:
            sock.close()
        if self.web is not None:
            self.web.close()
        self._wake_r.close()
        self._wake_w.close()
        if self.cluster is not None:
            self.cluster.stop()
        self.flusher.stop()
        if self.store is not None:
            self.store.close()

    # -- health (read-only glances, for /healthz: chatcli.server.web) -------------------------

    def accept_health(self) -> str:
        """The accept loop: "ok" while it runs, else why not."""
        if self._accepting:
            return "ok"
        failed = self._acceptor.failed or self.failure
        if failed is not None:
            return f"stopped: {failed}"
        if self._stop.is_set():
            return "stopped: the server is stopping"
        return "not running (starting, or restarting after a failure)"

    def flusher_health(self) -> str:
        """The flusher (the thread that writes to clients): "ok" while it runs, else why
        not. (Reads the flusher's own flags: a glance, on the GIL.)"""
        flusher = self.flusher
        if flusher.supervisor.failed is not None:
            return f"stopped: {flusher.supervisor.failed}"
        if flusher._dead or flusher._stop or not flusher._thread.is_alive():
            return "stopped"
        return "ok"

    def store_health(self) -> str:
        """The store: "off" without a database, "ok" when its writer runs, writes and a
        cheap read is answered, else what is wrong. Reads the database: never call it
        under the world lock."""
        store = self.store
        if store is None:
            return "off"
        if store.fatal is not None:
            return f"stopped: {store.fatal}"
        if not store.writer_alive:
            return "stopped: the database writer is not running"
        health = store.health()
        if health.failing_since is not None:
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(health.failing_since))
            return f"failing since {since}: {health.reason} ({health.not_kept_now} writes not kept)"
        trouble = store.ping()
        return "ok" if trouble is None else f"not answering: {trouble}"

    def traffic(self) -> TrafficView:
        """What the connections have done and are, for metrics: each connection's counters
        once (the open ones' added to the ended ones', taken together under the state
        lock), and the open ones by transport. Never takes the world lock."""
        with self._state_lock:
            totals = dataclasses.replace(self._ended)
            conns = list(self._threads.values())
            refused = dict(self._refused)
        registered = 0
        by_transport = dict.fromkeys(TRANSPORTS, 0)
        for conn in conns:
            totals.add(conn)
            by_transport[conn.sock.transport] = by_transport.get(conn.sock.transport, 0) + 1
            registered += conn.registered
        return TrafficView(totals, by_transport, registered, refused)

    @property
    def thread_count(self) -> int:
        """Connection threads still running."""
        with self._state_lock:
            return len(self._threads)
