"""Line transports: the byte streams that clients' IRC lines travel over (TCP, TLS).

A client's :class:`~chatcli.server.connection.Connection` reads from, and its
:class:`~chatcli.server.sendq.SendQueue` writes to, a *stream*: an object with the calls of
:class:`Stream`, all non-blocking. Neither knows which transport it has; a new one (a
WebSocket, say) is a new kind of stream, made where connections are accepted.

* :class:`PlainStream`: TCP. A :class:`socket.socket` itself (its calls are the socket's
  own, in C: nothing is added per read or write), with what TLS adds answered trivially.
* :class:`~chatcli.server.tls_socket.TLSSocket`: TLS over TCP, through OpenSSL.
"""

from __future__ import annotations

import socket
import sys
from typing import Protocol

#: The kinds of stream there are (Stream.transport), for those who count them.
TRANSPORTS = ("tcp", "tls", "websocket")


class HandshakeFailed(Exception):
    """What comes before any line failed (a TLS handshake): the client cannot be served.
    Its text is the reason the client is told (``TLS handshake failed: ...``)."""


class Stream(Protocol):
    """What the server needs of a client's byte stream. Every call is non-blocking."""

    #: The last :meth:`handshake` or :meth:`recv` waits for the socket to be writable, not
    #: readable.
    wants_write: bool
    #: Bytes may wait above the socket (decrypted, not yet read): a read that returns less
    #: than it asked for does not mean that the kernel has nothing more.
    buffered: bool
    #: The stream is encrypted.
    secure: bool
    #: Its kind, one of :data:`TRANSPORTS` (a WebSocket is "websocket", over TLS or not).
    transport: str
    #: After a partial :meth:`send`, how many bytes from its start must be passed again
    #: unchanged (TLS: the record being written), however full the queue.
    retry_bytes: int

    def fileno(self) -> int: ...

    def handshake(self) -> bool:
        """One step of what comes before any line (TLS's handshake): True once done; False
        if it must wait (see :attr:`wants_write`).

        Raises:
            HandshakeFailed: it cannot be done; OSError: the socket failed.
        """
        ...

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes of the client's lines; ``b""`` at its end. Raises
        :class:`BlockingIOError` when nothing is there yet."""
        ...

    def send(self, data: bytes) -> int:
        """Write what it can of ``data`` (whole lines); how much was taken. After a partial
        send, the rest is passed again, before anything else."""
        ...

    def peek_raw(self, size: int) -> bytes:
        """Bytes waiting on the socket itself, left there (``b""``: the peer has closed)."""
        ...

    def recv_raw(self, size: int) -> bytes:
        """Bytes as they arrive on the socket, under any framing: what a peer still sends
        before its end, to be thrown away."""
        ...

    def shutdown(self, how: int) -> None: ...

    def close(self) -> None: ...


class PlainStream(socket.socket):
    """A TCP connection as a :class:`Stream`: the socket, with nothing before its lines."""

    __slots__ = ()

    wants_write = False
    buffered = False
    secure = False
    transport = "tcp"
    retry_bytes = 0  # the kernel took what it says it took

    @classmethod
    def adopt(cls, sock: socket.socket) -> PlainStream:
        """The stream of ``sock`` (accepted), which it takes over: ``sock`` is detached."""
        stream = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        stream.setblocking(False)  # the flusher writes without waiting; see sendq.py
        return stream

    def handshake(self) -> bool:
        return True

    def peek_raw(self, size: int) -> bytes:
        return self.recv(size, socket.MSG_PEEK)

    def recv_raw(self, size: int) -> bytes:
        return self.recv(size)


def listen_all(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets on every address of ``host`` (IPv4 and IPv6 alike) at ``port``;
    with 0, a free port, the same on each. The first socket's address is the one to show.

    Raises:
        OSError: an address is unknown or in use (what was opened is closed again).
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    opened: list[socket.socket] = []
    seen: set[tuple[int, str]] = set()
    try:
        for family, type_, proto, _, sockaddr in infos:
            if (family, sockaddr[0]) in seen:
                continue
            seen.add((family, sockaddr[0]))
            sock = socket.socket(family, type_, proto)
            opened.append(sock)
            if sys.platform != "win32":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((sockaddr[0], port, *sockaddr[2:]))
            sock.listen(backlog)
            port = sock.getsockname()[1]
    except OSError:
        for sock in opened:
            sock.close()
        raise
    return opened
