"""The outgoing side of one connection: a byte-bounded queue drained by one writer thread.

Contract:

1. :meth:`SendQueue.put` never blocks on I/O. It appends under a short lock and wakes the
   writer, so a thread sending to a hundred clients is never held up by a slow one.
2. The writer takes *everything* pending and sends it with one ``sendall``: a client that
   falls behind gets many lines per system call, not one call per line.
3. Lines go out in the order they were put.
4. At most ``max_bytes`` may wait. A put beyond that fails the queue: what waits is dropped,
   the final line ``ERROR :SendQ exceeded`` takes its place, and the owner is told (``on_fail``)
   so that it can end the connection. Everyone else keeps chatting.
5. :meth:`close` queues a final line; nothing put after it is sent. Once the final line is
   out, the writer shuts the socket down for writing, so the peer reads an orderly end.
6. A send error (the peer went away) ends the writer quietly; :attr:`failed` says why.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

SENDQ_EXCEEDED = "SendQ exceeded"


class SendQueue:
    def __init__(
        self,
        sock: socket.socket,
        max_bytes: int,
        on_fail: Callable[[str], None],
        name: str = "writer",
    ) -> None:
        self._sock = sock
        self._max = max_bytes
        self._on_fail = on_fail
        self._cond = threading.Condition(threading.Lock())
        self._chunks: list[bytes] = []
        self._size = 0
        self._closing = False
        self.failed: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, data: bytes) -> None:
        """Queue ``data`` (one or more complete lines) for sending. Never blocks on I/O."""
        with self._cond:
            if self._closing:
                return
            if self._size + len(data) > self._max:
                overflow = True
                self._chunks = [b"ERROR :" + SENDQ_EXCEEDED.encode() + b"\r\n"]
                self._size = len(self._chunks[0])
                self._closing = True
                self.failed = SENDQ_EXCEEDED
            else:
                overflow = False
                self._chunks.append(data)
                self._size += len(data)
            self._cond.notify()
        if overflow:
            self._on_fail(SENDQ_EXCEEDED)

    def close(self, final: bytes = b"") -> None:
        """Queue ``final`` as the last bytes, then end the writer. Idempotent."""
        with self._cond:
            if self._closing:
                return
            if final:
                self._chunks.append(final)
                self._size += len(final)
            self._closing = True
            self._cond.notify()

    def join(self, timeout: float) -> bool:
        """Wait for the writer to finish; True if it did."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def pending(self) -> int:
        """Bytes waiting to be sent."""
        return self._size

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._chunks and not self._closing:
                    self._cond.wait()
                data = b"".join(self._chunks)
                self._chunks.clear()
                self._size = 0
                last = self._closing
            try:
                if data:
                    self._sock.sendall(data)
                if last:
                    self._sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                with self._cond:
                    self.failed = self.failed or f"Write error: {exc.strerror or exc}"
                    self._closing = True
                    self._chunks.clear()
                    self._size = 0
                return
            if last:
                return
