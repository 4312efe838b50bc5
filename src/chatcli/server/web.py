"""The web listener: HTTP beside the IRC ports (``chat serve --web-port``), HTTPS with the
same certificate when TLS is on, for the probes and scrapers of whoever runs the server:
``GET /healthz`` and ``GET /metrics``.

It listens on every address ``host`` gives, as the IRC listener does. Its accept loop runs
on a thread of its own (``web accept``), supervised as the IRC accept loop is
(:class:`~chatcli.server.supervise.Supervisor`, role ``web accept``); each connection gets
a thread (``web <host>``) that reads one request, answers it and closes. Those are bounded:
:data:`MAX_CONNECTIONS` at once and :data:`MAX_PER_IP` from one address but a proxy's
(more are told 503 and closed), a request must arrive whole within :data:`READ_TIMEOUT`
seconds (a slow or silent client cannot hold a thread), and in :data:`MAX_REQUEST` bytes.
At shutdown the listener stops accepting, wakes every connection's thread and joins it.
A connection from a proxy in ``proxy_protocol`` begins with a PROXY header, read by its
thread before TLS and the request (:meth:`WebListener._unwrap_proxy`): the client it
names is the connection's peer, for the per-address bound and a WebSocket's address
(X-Forwarded-For is believed only if that peer is in ``web_proxies``).

Requests are parsed by the ``websockets`` package's sans-IO server protocol
(:class:`websockets.server.ServerProtocol`), never by hand. An upgrade to a WebSocket at
``/`` keeps that object: the connection is handed to the IRC server as a client
(:mod:`chatcli.server.websocket`, :meth:`WebListener._upgrade`). Every other request goes
through the :class:`Router`: a path it
does not know is 404, a method other than GET 405, and every response carries a
``Content-Security-Policy: default-src 'none'`` and ``X-Content-Type-Options: nosniff``.

``GET /`` (without the upgrade) is the browser client, and ``GET /static/<name>`` its
scripts and style: a fixed table of files in the package's ``chatcli/web`` folder
(:data:`CLIENT_FILES`), read once; the request's path is looked up, never joined to one.
Those pages may run only the scripts, and load only the styles, that come from here, and
connect only back here (:data:`CLIENT_POLICY`).

Nothing here takes the world lock or calls into the store under it: the health check
reads the server's own accessors (:meth:`Server.accept_health` and the like), the metrics
a collector of their own (:mod:`chatcli.server.metrics`).
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import http
import ipaddress
import json
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from websockets.datastructures import Headers
from websockets.exceptions import SecurityError
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from chatcli.server import metrics, websocket
from chatcli.server import proxied as proxies
from chatcli.server.connection import is_exempt
from chatcli.server.proxied import is_trusted
from chatcli.server.supervise import Supervisor
from chatcli.server.tls_socket import TLSSocket
from chatcli.server.transport import PlainStream, Stream, listen_all

if TYPE_CHECKING:
    from chatcli.server.listener import Server

log = logging.getLogger("chatcli.server.web")

#: Seconds a client has to send its whole request (and finish a TLS handshake) after
#: connecting; then it is told 408 and closed.
READ_TIMEOUT = 10.0
#: The most bytes a request may take, request line and headers; more is 431.
MAX_REQUEST = 16 * 1024
#: HTTP connections served at once, in all and from one address; more are told 503 and
#: closed at once. A browser loading the client opens up to six at once, so an address
#: can load it twice at the same moment (two people behind one NAT) beside a probe. A
#: reverse proxy in ``web_proxies``, and loopback if ``exempt_loopback``, carry everyone's
#: requests: only the bound in all applies to them.
MAX_CONNECTIONS = 64
MAX_PER_IP = 16
#: How long shutdown waits for each connection's thread once woken.
JOIN_TIMEOUT = 2.0
#: After an error response to a request not read whole, what of the rest is read and
#: dropped (at most, and for how long) before closing, so that the client reads the
#: response rather than a reset.
LINGER_BYTES = 64 * 1024
LINGER_SECONDS = 1.0
#: On every response: nothing it holds may load or run anything, nor be sniffed as
#: something else than its Content-Type says.
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'"),
    ("X-Content-Type-Options", "nosniff"),
)
#: The browser client: each path it is served at, the file of the package's ``web`` folder
#: that answers it, and its type. Nothing else of that folder is served.
CLIENT_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/irc.js": ("irc.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
}
#: The client's pages run and style only what this listener serves, open connections
#: only back to it (its WebSocket included), and may not be framed by another site.
#: Images alone may come from elsewhere, over http or https: the avatars people set
#: (IRCv3 metadata), which the client shows only when their address is a web address.
CLIENT_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data: https: http:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
    + b"".join(f"{name}: {value}\r\n".encode() for name, value in SECURITY_HEADERS)
    + b"\r\n"
)

#: What answers a request to a path: the request in, the response out.
Handler = Callable[[Request], Response]


def respond(
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    """A complete response: ``body`` as ``content_type``, with the security headers, never
    cached, and the connection closed after it (one request per connection)."""
    status_ = http.HTTPStatus(status)
    fields = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
            *SECURITY_HEADERS,
            *headers,
        ]
    )
    return Response(status_.value, status_.phrase, fields, body)


def respond_json(status: int, value: object) -> Response:
    """``value`` as a JSON body."""
    body = (json.dumps(value, sort_keys=True) + "\n").encode()
    return respond(status, body, "application/json")


def client_address(
    peer: tuple[str, int], request: Request, proxies: tuple[str, ...]
) -> tuple[str, int]:
    """Whose connection this is: ``peer``, or, when ``peer`` is one of the trusted
    ``proxies``, the last address in the request's X-Forwarded-For (the one that proxy
    saw; what comes before it was written by the client and proves nothing)."""
    forwarded = request.headers.get_all("X-Forwarded-For")
    if not forwarded or not is_trusted(peer[0], proxies):
        return peer
    try:
        client = ipaddress.ip_address(forwarded[-1].split(",")[-1].strip())
    except ValueError:  # not an address: believe nothing
        return peer
    return (str(client), peer[1])


def is_websocket(request: Request) -> bool:
    """Whether ``request`` asks for an upgrade to a WebSocket."""
    upgrade = request.headers.get_all("Upgrade")
    return any(value.strip().lower() == "websocket" for value in upgrade)


def client_responses() -> dict[str, Response]:
    """The browser client's responses, each path's: its file, read once, with the page's
    own Content-Security-Policy (:data:`CLIENT_POLICY`) in place of the listener's."""
    folder = resources.files("chatcli") / "web"
    responses = {}
    for path, (name, content_type) in CLIENT_FILES.items():
        response = respond(200, (folder / name).read_bytes(), content_type)
        del response.headers["Content-Security-Policy"]
        response.headers["Content-Security-Policy"] = CLIENT_POLICY
        response.headers["Referrer-Policy"] = "no-referrer"
        responses[path] = response
    return responses


class Router:
    """Which handler answers which path. Only GET is served; the query string plays no
    part in the choice. New endpoints (the WebSocket transport, the browser client) are
    one :meth:`add` each."""

    def __init__(self) -> None:
        self._routes: dict[str, Handler] = {}

    def add(self, path: str, handler: Handler) -> None:
        """Answer GET ``path`` with ``handler``."""
        self._routes[path] = handler

    def route(self, request: Request) -> Response:
        """The response to ``request``: its handler's, or 404 or 405."""
        path = request.path.partition("?")[0]
        if is_websocket(request):  # (an upgrade to / is taken before routing: _answer)
            return respond(404, b"WebSocket connections are served at /\n")
        handler = self._routes.get(path)
        if handler is None:
            return respond(404, b"not found\n")
        if request.method != "GET":
            return respond(405, b"only GET is served here\n", headers=(("Allow", "GET"),))
        return handler(request)


def health(server: Server) -> tuple[bool, dict[str, str]]:
    """Whether the server is whole, and each part's state ("ok", "off", or what is wrong):
    its accept loop, its flusher (the writer of outgoing queues), its store (the writer
    thread, failing writes, and whether a cheap read is answered) and, for a node of a
    cluster, whether it reaches the cluster's Redis."""
    checks = {
        "accept": server.accept_health(),
        "flusher": server.flusher_health(),
        "store": server.store_health(),
        "cluster": server.cluster.health() if server.cluster is not None else "off",
    }
    return all(state in ("ok", "off") for state in checks.values()), checks


class WebListener:
    """The HTTP listener of one :class:`~chatcli.server.listener.Server`: see the module
    docstring. :meth:`bind`, :meth:`start`, :meth:`stop`, :meth:`close` (the last two
    idempotent)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.router = Router()
        self.router.add("/healthz", self._healthz)
        self.router.add("/metrics", self._metrics)
        for path, response in client_responses().items():
            self.router.add(path, lambda request, response=response: response)
        self.registry = metrics.make_registry(server)  #: what /metrics shows
        self.address: tuple[str, int] | None = None
        self.secure = server.config.wants_tls  #: HTTPS, with the IRC listener's certificate
        self._listeners: list[socket.socket] = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = threading.Event()
        self._acceptor = Supervisor("web accept", server.fatal, stop=self._stop)
        self._thread: threading.Thread | None = None
        # Under _lock: each connection's thread and the socket it reads (to wake it at
        # shutdown), the connections per address, and whether the listener is closed.
        self._lock = threading.Lock()
        self._conns: dict[threading.Thread, socket.socket] = {}
        self._per_ip: dict[str, int] = {}
        self._closed = False

    # -- life -------------------------------------------------------------------------------

    def bind(self, host: str, port: int) -> tuple[str, int]:
        """Listen on every address of ``host`` at ``port`` (0: a free one, the same on
        each); return the first address.

        Raises:
            OSError: an address is unknown or in use (what was opened is closed again).
        """
        self._listeners = listen_all(host, port, MAX_CONNECTIONS)
        self.address = self._listeners[0].getsockname()[:2]
        return self.address

    def start(self) -> None:
        """Start accepting, on the ``web accept`` thread."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(
                target=self._acceptor.run, args=(self._accept_loop,), name="web accept"
            )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, wake every connection's thread and join it. Idempotent."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT)
        with self._lock:  # (a thread closes its socket under it too: never a reused fd)
            conns = list(self._conns.items())
            for _, sock in conns:
                with contextlib.suppress(OSError):  # wakes its recv; the thread closes it
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # (the fd's, even TLS)
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread, _ in conns:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop (:meth:`stop`) and close the listening sockets. Idempotent."""
        self.stop()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sock in self._listeners:
            sock.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- accepting (the web accept thread) ---------------------------------------------------

    def _accept_loop(self) -> None:
        """Accept until stopped. (Run by a supervisor: a restart opens a new selector.)"""
        with selectors.DefaultSelector() as selector:
            for sock in self._listeners:
                selector.register(sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(64)
                        continue
                    try:
                        self._accept(key.fileobj)  # type: ignore[arg-type]
                    except Exception:  # one connection must never stop the listener
                        log.exception("accepting an HTTP connection failed")

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, address = listener.accept()
        except OSError as exc:  # e.g. EMFILE, or the peer gave up already
            log.warning("accepting an HTTP connection failed: %s", exc)
            if exc.errno in (errno.ENFILE, errno.EMFILE):  # back off instead of spinning
                self._stop.wait(0.1)
            return
        host = address[0]
        thread = threading.Thread(target=self._serve, args=(sock, address[:2]), name=f"web {host}")
        config = self.server.config
        bounded = not (
            is_exempt(config, host)
            or is_trusted(host, config.web_proxies)
            or is_trusted(host, config.proxy_protocol)  # (bounded by the client's, once read)
        )
        with self._lock:
            full = len(self._conns) >= MAX_CONNECTIONS or (
                bounded and self._per_ip.get(host, 0) >= MAX_PER_IP
            )
            if not full:
                self._conns[thread] = sock
                self._per_ip[host] = self._per_ip.get(host, 0) + 1
        if full:
            log.warning("refused an HTTP connection from %s: too many at once", host)
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                if not self.secure:  # (over TLS a plain answer would be noise)
                    sock.send(_BUSY)  # a fresh socket's buffer takes it whole
                sock.recv(MAX_REQUEST)  # what came already: closing on it would reset
            sock.close()
            return
        try:
            thread.start()
        except RuntimeError as exc:  # no more threads: refuse this one
            log.error("cannot start a thread for %s: %s", host, exc)
            self._forget(thread, host)
            sock.close()

    def _forget(self, thread: threading.Thread, host: str) -> None:
        with self._lock:
            self._conns.pop(thread, None)
            self._uncount(host)

    def _uncount(self, host: str) -> None:
        """One connection less from ``host`` in ``_per_ip``. Caller holds ``_lock``."""
        left = self._per_ip.get(host, 1) - 1
        if left > 0:
            self._per_ip[host] = left
        else:
            self._per_ip.pop(host, None)

    # -- one connection (its own thread) ----------------------------------------------------

    def _serve(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        """Read one request from ``sock``, answer it, close; or, for a WebSocket upgrade to
        ``/``, hand the connection over to the IRC server. Bounded in time and size. From
        a trusted proxy (``proxy_protocol``), its PROXY header first, which says who
        ``peer`` is."""
        thread = threading.current_thread()
        stream: socket.socket | None = sock
        host = peer[0]  # the address counted for this connection (_per_ip)
        try:
            if is_trusted(host, self.server.config.proxy_protocol):
                client = self._unwrap_proxy(sock, thread, peer)
                if client is None:
                    return
                peer, host = client, client[0]
            stream = self._answer(sock, thread, peer)
        except (OSError, ValueError) as exc:  # gone, reset, timed out, a failed handshake
            log.debug("HTTP connection from %s: %s", host, exc)
        except Exception:
            log.exception("answering an HTTP request from %s failed", host)
        finally:
            with self._lock:  # (so that stop() never wakes a closed, reused descriptor)
                if stream is not None:  # (None: a WebSocket, served as an IRC client now)
                    with contextlib.suppress(OSError):
                        stream.close()
                    sock.close()
            self._forget(thread, host)

    def _unwrap_proxy(
        self, sock: socket.socket, thread: threading.Thread, proxy: tuple[str, int]
    ) -> tuple[str, int] | None:
        """Read the PROXY header that a connection from a trusted proxy begins with (before
        TLS), within :data:`~chatcli.server.proxied.HEADER_TIMEOUT`; return the client's
        address (the proxy's own for a header that names none: a health check), counted
        in the proxy's stead, or None if the connection is refused: no valid header (a
        refusal in the metrics), or too many from the client's address (503)."""
        sock.settimeout(proxies.HEADER_TIMEOUT)
        try:
            header = proxies.read_header(proxies.SocketReader(sock), proxies.HEADER_TIMEOUT)
        except proxies.HeaderNotRead as exc:
            if not self._stop.is_set():
                log.warning("refused an HTTP connection from %s (a proxy): %s", proxy[0], exc)
                self.server.count_refusal(proxies.NO_HEADER)
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                sock.recv(MAX_REQUEST)  # what came already: closing on it would reset
            return None
        if header.source is None:
            return proxy
        client = header.source
        config = self.server.config
        bounded = not (is_exempt(config, client[0]) or is_trusted(client[0], config.web_proxies))
        with self._lock:
            full = bounded and self._per_ip.get(client[0], 0) >= MAX_PER_IP
            if not full:  # counted as the client from now on, not as the proxy
                self._uncount(proxy[0])
                self._per_ip[client[0]] = self._per_ip.get(client[0], 0) + 1
        if full:
            log.warning("refused an HTTP connection from %s: too many at once", client[0])
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                if not self.secure:  # (over TLS a plain answer would be noise)
                    sock.send(_BUSY)  # a fresh socket's buffer takes it whole
                sock.recv(MAX_REQUEST)  # what came already: closing on it would reset
            return None
        thread.name = f"web {client[0]}"
        return client

    def _answer(
        self, sock: socket.socket, thread: threading.Thread, peer: tuple[str, int]
    ) -> socket.socket | None:
        """Read a request, send the response; return the socket as read (TLS-wrapped over
        HTTPS), for the caller to close, or None once a WebSocket was handed over. ``peer``
        is who sent it (the PROXY header's client, from a trusted proxy)."""
        deadline = time.monotonic() + READ_TIMEOUT
        stream = sock
        if self.secure:
            context = self.server.tls_context  # (the latest, after a rehash)
            if context is None:
                return stream
            sock.settimeout(READ_TIMEOUT)
            stream = context.wrap_socket(sock, server_side=True)  # the handshake, bounded
            with self._lock:
                if thread in self._conns:
                    self._conns[thread] = stream
        protocol = websocket.new_protocol(origins=None)
        received = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._send(stream, protocol, respond(408, b"the request took too long\n"), True)
                return stream
            stream.settimeout(left)
            try:
                data = stream.recv(4096)
            except TimeoutError:
                self._send(stream, protocol, respond(408, b"the request took too long\n"), True)
                return stream
            except ssl.SSLError as exc:
                log.debug("HTTPS read failed: %s", exc)
                return stream
            if not data:
                return stream  # gone before asking anything
            received += len(data)
            if received > MAX_REQUEST:
                self._send(stream, protocol, respond(431, b"the request is too large\n"), True)
                return stream
            protocol.receive_data(data)
            failed = protocol.handshake_exc
            if failed is not None:
                status = 431 if isinstance(failed, SecurityError) else 400
                self._send(stream, protocol, respond(status, b"not a request served here\n"), True)
                return stream
            events = protocol.events_received()
            if events and isinstance(events[0], Request):
                request = events[0]
                if request.path.partition("?")[0] == "/" and is_websocket(request):
                    return self._upgrade(stream, protocol, request, peer)
                self._send(stream, protocol, self.router.route(request))
                return stream

    def _send(
        self,
        stream: socket.socket,
        protocol: ServerProtocol,
        response: Response,
        linger: bool = False,
    ) -> None:
        """Send ``response`` through ``protocol`` (what it had queued itself, such as its own
        answer to a bad request, is dropped for ours, which carries our headers). With
        ``linger`` (the request was not read whole), read and drop what more comes, within
        bounds, so that the client is not reset before it reads the response."""
        protocol.data_to_send()
        if protocol.handshake_exc is None:
            protocol.send_response(response)
            data = b"".join(protocol.data_to_send())
        else:  # the protocol has answered, or hung up, already: ours instead
            data = response.serialize()
        stream.settimeout(READ_TIMEOUT)
        stream.sendall(data)
        if not linger:
            return
        with contextlib.suppress(OSError, ValueError):
            socket.socket.shutdown(stream, socket.SHUT_WR)
            deadline, dropped = time.monotonic() + LINGER_SECONDS, 0
            while dropped < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                stream.settimeout(left)
                chunk = stream.recv(16384)
                if not chunk:
                    break
                dropped += len(chunk)

    def _upgrade(
        self,
        stream: socket.socket,
        protocol: ServerProtocol,
        request: Request,
        peer: tuple[str, int],
    ) -> socket.socket | None:
        """Accept ``request``'s upgrade to a WebSocket (from an allowed Origin: see
        :meth:`origins`) and hand the connection to the IRC server as a client; None once
        handed over. Refused by the server's limits: 503, as an HTTP answer. The client is
        ``peer``, or whom its X-Forwarded-For names if ``peer`` is in ``web_proxies``."""
        address = client_address(peer, request, self.server.config.web_proxies)
        protocol.origins = self.origins(request)  # type: ignore[assignment]
        response = protocol.accept(request)
        if response.status_code == 101:
            refused = self.server.admit(address[0])
            if refused:
                response = respond(503, f"{refused}\n".encode())
        if response.status_code != 101:
            for name, value in SECURITY_HEADERS:
                response.headers[name] = value
            self._send(stream, protocol, response)
            return stream
        protocol.send_response(response)
        stream.settimeout(READ_TIMEOUT)
        stream.sendall(b"".join(protocol.data_to_send()))
        # As the IRC listener sets up its clients' sockets (see Server._accept).
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.server.config.socket_sndbuf)
        inner: Stream
        if isinstance(stream, ssl.SSLSocket):
            inner = TLSSocket.adopt(stream)
        else:
            inner = PlainStream.adopt(stream)
        self.server.start_connection(websocket.WebSocketStream(inner, protocol), address)
        return None

    def origins(self, request: Request) -> list[str | None]:
        """The Origins whose pages may open a WebSocket here: ``web_origins`` from the
        settings, or else this listener's own (the page it serves, at the Host the browser
        asked for); and clients that send none, which are not browsers."""
        configured = self.server.config.web_origins
        if configured:
            return [*configured, None]
        host = request.headers.get("Host")
        # Both schemes: behind a proxy that ends TLS, the page is https:// while this
        # listener speaks plain HTTP. (A page of another site has another Origin than
        # the Host its browser asks for; only that is what this check refuses.)
        return [f"http://{host}", f"https://{host}", None] if host else [None]

    # -- endpoints ----------------------------------------------------------------------------

    def _healthz(self, request: Request) -> Response:
        """200 and ``{"status": "ok", ...}`` when every part of the server works; 503 and
        ``{"status": "failing", ...}`` with each part's state otherwise."""
        ok, checks = health(self.server)
        status = "ok" if ok else "failing"
        return respond_json(200 if ok else 503, {"status": status, "checks": checks})

    def _metrics(self, request: Request) -> Response:
        """The server's figures in Prometheus' text format; with ``metrics_token`` set,
        only for ``Authorization: Bearer <token>`` (401 otherwise)."""
        token = self.server.config.metrics_token  # (the latest, after a rehash)
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return respond(
                    401, b"a bearer token is needed\n", headers=(("WWW-Authenticate", "Bearer"),)
                )
        return respond(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
