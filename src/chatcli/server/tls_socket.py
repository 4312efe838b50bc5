"""A client's TLS connection, shared by the two threads that use every client socket.

A connection's own thread reads its socket and the flusher writes it, or another thread
holding the flusher's ``_busy`` lock (see :mod:`chatcli.server.connection` and
:mod:`chatcli.server.sendq`). With TLS both go
through one OpenSSL object, which must not be used by two threads at once, so every call
on it takes the socket's lock. Every call is non-blocking (the socket is), so the lock is
held only while OpenSSL works on bytes already at hand: neither thread waits for the
network while holding it.

:class:`TLSSocket` has the few methods of :class:`socket.socket` those threads use, with
the same meaning: ``recv`` and ``send`` raise :exc:`BlockingIOError` when they would
block, whatever TLS wanted to do next. Until :meth:`TLSSocket.handshake` is done, ``send``
fails: nothing but a refusal is ever queued before that, and a client that has not
finished its handshake cannot read it anyway.

Known limit: a TLS 1.3 client that asks for key updates while a write of ours is still
pending may get a read error (OpenSSL's reply would overtake that write): only that
client is dropped. No client in use does so.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import threading

from chatcli.server.transport import HandshakeFailed

#: Raised by TLS calls that would block, whichever way.
_WOULD_BLOCK = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
#: Bytes given to OpenSSL per write: one TLS record's worth. Python's writes are all or
#: nothing, so a larger one that blocks half-way reports nothing sent, and a client that
#: reads steadily but not all at once would seem to fall ever further behind.
RECORD_BYTES = 16384


class TLSSocket:
    """A TLS connection as a :class:`~chatcli.server.transport.Stream`."""

    __slots__ = ("_ended", "_lock", "_ssl", "ready", "wants_write")

    buffered = True  # OpenSSL may hold decrypted bytes
    secure = True
    transport = "tls"
    retry_bytes = RECORD_BYTES  # a retried write passes the same record again

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        """Take over ``sock`` (accepted, non-blocking) as the server side of TLS."""
        self._ssl = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self._lock = threading.Lock()
        self.ready = False  #: the handshake is done
        self._ended = False  # shut down for writing: nothing more may be sent
        self.wants_write = False  #: the last step waits to write, not to read

    @classmethod
    def adopt(cls, established: ssl.SSLSocket) -> TLSSocket:
        """The stream of a TLS connection whose handshake is done already (by the web
        listener, before a WebSocket upgrade), which it takes over, non-blocking."""
        stream = cls.__new__(cls)
        established.setblocking(False)
        stream._ssl = established
        stream._lock = threading.Lock()
        stream.ready = True
        stream._ended = False
        stream.wants_write = False
        return stream

    def handshake(self) -> bool:
        """One step of the handshake: True once it is done, False if it must wait for the
        socket to be readable (or writable: :attr:`wants_write`) first.

        Raises:
            HandshakeFailed: the handshake failed (its reason in OpenSSL's words); OSError:
                the socket failed.
        """
        with self._lock:
            try:
                self._ssl.do_handshake()
            except _WOULD_BLOCK as exc:
                self.wants_write = isinstance(exc, ssl.SSLWantWriteError)
                return False
            except ssl.SSLError as exc:
                raise HandshakeFailed(f"TLS handshake failed: {exc.reason or 'error'}") from exc
            self.ready = True
            return True

    def recv(self, size: int) -> bytes:
        """What has arrived, decrypted; ``b""`` at the end. Raises BlockingIOError if it
        must wait: for the socket to be readable or, with :attr:`wants_write`, writable."""
        with self._lock:
            if self._ended:  # (after close_notify, Python would read the bare socket)
                return b""
            try:
                data = self._ssl.recv(size)
            except _WOULD_BLOCK as exc:
                self.wants_write = isinstance(exc, ssl.SSLWantWriteError)
                raise BlockingIOError(errno.EAGAIN, "TLS: nothing to read yet") from None
            self.wants_write = False
            return data

    def send(self, data: bytes) -> int:
        """Send what of ``data`` the socket takes, a record at a time; return how much, or
        raise BlockingIOError if it takes nothing. As OpenSSL requires, a retry passes the
        same bytes first (more may follow them): the caller sends on from what was not
        sent, and a record that blocked is the first record of the next call."""
        with self._lock:
            if not self.ready or self._ended:
                raise OSError(errno.ENOTCONN, "TLS handshake not finished, or TLS ended")
            view, sent = memoryview(data), 0
            while sent < len(view):
                try:
                    sent += self._ssl.send(view[sent : sent + RECORD_BYTES])
                except _WOULD_BLOCK:
                    if sent:
                        return sent
                    raise BlockingIOError(errno.EAGAIN, "TLS: the socket is full") from None
            return sent

    def peek_raw(self, size: int) -> bytes:
        """Up to ``size`` bytes waiting on the plain socket under TLS, left there: neither
        taken from OpenSSL nor touching its state, so without the lock (a closed peer:
        ``b""``)."""
        return socket.socket.recv(self._ssl, size, socket.MSG_PEEK)

    def recv_raw(self, size: int) -> bytes:
        """Bytes as they arrive, TLS records and all: for reading what a peer still sends
        before the end, to be thrown away (after a failed handshake, say)."""
        return socket.socket.recv(self._ssl, size)

    def shutdown(self, how: int) -> None:
        """As :meth:`socket.socket.shutdown`; shutting down for writing first says so in
        TLS (close_notify), where the handshake got that far."""
        if how != socket.SHUT_RD and self.ready:
            with self._lock, contextlib.suppress(ssl.SSLError, OSError, ValueError):
                self._ended = True
                self._ssl.unwrap()  # sends close_notify; the peer's answer is not awaited
        # The plain socket's shutdown: SSLSocket.shutdown would drop the TLS state, which
        # the other thread may be using.
        socket.socket.shutdown(self._ssl, how)

    def fileno(self) -> int:
        return self._ssl.fileno()

    def close(self) -> None:
        self._ssl.close()
