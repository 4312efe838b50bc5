"""A client's TLS socket, for a reader thread and a sending thread at once.

``chat join`` reads its connection on one thread and sends on another. OpenSSL does not
allow two threads in one SSL object at the same time, not even one in ``SSL_read`` and one
in ``SSL_write`` (openssl/openssl#20446), so here the socket is non-blocking, every call
into OpenSSL is made under one lock, and waiting for the network (``select``) is done
outside it: neither thread waits for the network while holding the lock. (The server's
:mod:`chatcli.server.tls_socket` does the same for its reader and its flusher.)

:class:`TLSStream` has the few methods of :class:`socket.socket` that
:class:`~chatcli.client.session.ClientSession` uses, with the same meaning:

1. ``recv(size)`` returns what has arrived, ``b""`` at the end of the connection, or raises
   :exc:`TimeoutError` once the timeout (``settimeout``; None: never) has passed;
2. ``sendall(data)`` sends all of ``data`` or raises :exc:`OSError` (:exc:`TimeoutError` if
   the server takes nothing for the timeout);
3. ``shutdown`` and ``close`` may be called from any thread; after ``shutdown``, a ``recv``
   waiting on another thread returns ``b""`` (``close`` alone does not wake it).
"""

from __future__ import annotations

import errno
import select
import ssl
import threading
import time


class TLSStream:
    def __init__(self, sock: ssl.SSLSocket, timeout: float | None) -> None:
        """Take over ``sock``, connected and past its handshake."""
        sock.setblocking(False)
        self._ssl = sock
        self._lock = threading.Lock()
        self._timeout = timeout
        self._closed = False

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def recv(self, size: int) -> bytes:
        deadline = self._deadline()
        while True:
            with self._lock:
                if self._closed:
                    return b""
                try:
                    return self._ssl.recv(size)
                except ssl.SSLWantReadError:
                    for_writing = False
                except ssl.SSLWantWriteError:  # TLS has something to say first
                    for_writing = True
            self._wait(for_writing, deadline)

    def sendall(self, data: bytes) -> None:
        deadline = self._deadline()
        rest = memoryview(data)
        while rest:
            with self._lock:
                if self._closed:
                    raise OSError(errno.EPIPE, "the connection is closed")
                try:
                    rest = rest[self._ssl.send(rest) :]
                    for_writing = None
                except ssl.SSLWantWriteError:
                    for_writing = True
                except ssl.SSLWantReadError:  # TLS has something to read first
                    for_writing = False
            if for_writing is not None:
                self._wait(for_writing, deadline)

    def shutdown(self, how: int) -> None:
        with self._lock:
            self._closed = True
            self._ssl.shutdown(how)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._ssl.close()

    def _deadline(self) -> float | None:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _wait(self, for_writing: bool, deadline: float | None) -> None:
        """Wait until the socket is ready, or closed meanwhile (the next attempt says so).

        Raises:
            TimeoutError: ``deadline`` has passed.
        """
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError("timed out")
        fd = self._ssl.fileno()
        if fd < 0:
            return
        try:
            select.select([] if for_writing else [fd], [fd] if for_writing else [], [], left)
        except (OSError, ValueError):  # closed while we were waiting
            return
