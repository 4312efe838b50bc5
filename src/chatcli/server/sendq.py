"""The outgoing side of every connection: byte-bounded send queues and one flusher thread.

Contract of :class:`SendQueue`:

1. :meth:`SendQueue.put` never blocks on I/O. It appends under a short lock and, if the
   queue was idle, hands it to the :class:`Flusher`; a thread sending to a thousand
   clients is never held up by a slow one, and no thread is woken per recipient.
2. The flusher sends *everything* a queue holds with one ``send`` on the (non-blocking)
   socket: a client that falls behind gets many lines per system call, not one per line.
3. Lines go out in the order they were put.
4. At most ``max_bytes`` may wait (in the queue and in what the kernel would not take yet).
   A put beyond that fails the queue: what waits is dropped, ``ERROR :SendQ exceeded`` is
   tried once, and the owner is told (``on_fail``) so that it ends the connection.
   Everyone else keeps chatting.
5. :meth:`close` queues a final line; nothing put after it is sent. Once all is out, the
   flusher shuts the socket down for writing, so the peer reads an orderly end, and sets
   :meth:`finished`. The flusher never touches the socket after that: the connection's
   own thread closes it.
6. A send error (the peer went away) finishes the queue quietly; :attr:`failed` says why.

Theory of operation of the :class:`Flusher`: queues with something to send wait in its
``ready`` deque. The flusher thread takes every ready queue in turn and sends what it
holds. What the kernel does not take stays in the queue's backlog, and the socket is
watched (``selectors``) until it is writable again. When nothing is ready it sleeps in the
selector; :meth:`Flusher.schedule` wakes it through a socket pair, and only when it sleeps.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger("chatcli.server")

SENDQ_EXCEEDED = "SendQ exceeded"
_SENDQ_ERROR = b"ERROR :" + SENDQ_EXCEEDED.encode() + b"\r\n"


class SendQueue:
    def __init__(
        self,
        sock: socket.socket,
        max_bytes: int,
        on_fail: Callable[[str], None],
        flusher: Flusher,
    ) -> None:
        self.sock = sock
        self._max = max_bytes
        self._on_fail = on_fail
        self._flusher = flusher
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._backlog = b""  # taken from the chunks, refused by the kernel so far
        self._size = 0  # bytes in _chunks and _backlog
        self._scheduled = False  # in the flusher's ready deque, or being flushed
        self._closing = False
        self._abandon = False
        self._finished = threading.Event()
        self.failed: str | None = None

    def put(self, data: bytes) -> None:
        """Queue ``data`` (one or more complete lines) for sending. Never blocks on I/O."""
        with self._lock:
            if self._closing:
                return
            if self._size + len(data) > self._max:
                self._chunks = [_SENDQ_ERROR]
                self._backlog = b""
                self._size = len(_SENDQ_ERROR)
                self._closing = True
                self.failed = SENDQ_EXCEEDED
                overflow = True
            else:
                self._chunks.append(data)
                self._size += len(data)
                overflow = False
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._flusher.schedule(self)
        if overflow:
            self._on_fail(SENDQ_EXCEEDED)

    def close(self, final: bytes = b"") -> None:
        """Queue ``final`` as the last bytes; the queue finishes once all is sent."""
        with self._lock:
            if self._closing:
                return
            if final:
                self._chunks.append(final)
                self._size += len(final)
            self._closing = True
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._flusher.schedule(self)

    def abandon(self) -> None:
        """Give up on what is still unsent (the peer does not read): finish now."""
        with self._lock:
            self._abandon = True
            self._closing = True
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            self._flusher.schedule(self)

    def finished(self, timeout: float | None = None) -> bool:
        """Wait until the flusher is done with this queue; True if it is."""
        return self._finished.wait(timeout)

    @property
    def pending(self) -> int:
        """Bytes waiting to be sent."""
        return self._size

    # -- called on the flusher thread only ---------------------------------------------------

    def _take(self) -> tuple[bytes, bool, bool]:
        """What to send now, whether it is the last of it, and whether to give up."""
        with self._lock:
            self._scheduled = False
            if self._chunks:
                self._backlog += b"".join(self._chunks)
                self._chunks.clear()
            return self._backlog, self._closing, self._abandon

    def _sent(self, count: int) -> bool:
        """Record that ``count`` bytes went out; True if everything has."""
        with self._lock:
            self._backlog = self._backlog[count:]
            self._size -= count
            return self._size == 0

    def _finish(self, failure: str | None = None) -> None:
        with self._lock:
            self._closing = True
            self._chunks.clear()
            self._backlog = b""
            self._size = 0
            if failure and not self.failed:
                self.failed = failure
        self._finished.set()


class Flusher:
    """The one thread that writes to every client socket. See the module docstring."""

    def __init__(self) -> None:
        self._ready: deque[SendQueue] = deque()
        self._selector = selectors.DefaultSelector()
        self._waiting: set[SendQueue] = set()  # registered for EVENT_WRITE
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._sleeping = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def schedule(self, queue: SendQueue) -> None:
        """Hand ``queue`` to the flusher (any thread); wakes it if it sleeps."""
        self._ready.append(queue)
        if self._sleeping:
            self._sleeping = False
            self._wake()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread (after every queue it serves has finished) and release it.
        Idempotent."""
        if self._stop:
            return
        self._stop = True
        self._wake()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake is already pending) or closed
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        try:
            while not self._stop:
                self._wait()
                for _ in range(len(self._ready)):
                    queue = self._ready.popleft()
                    try:
                        self._flush(queue)
                    except Exception:  # one broken queue must not silence the rest
                        log.exception("flushing a send queue failed")
                        self._unwatch(queue)
                        queue._finish("Internal error")
        except Exception:  # a bug here would silence every client: make it loud
            log.critical("the flusher thread failed", exc_info=True)
            raise

    def _wait(self) -> None:
        """Sleep until there is work; note the sockets that became writable."""
        timeout: float | None = 0
        if not self._ready:
            self._sleeping = True
            # Re-check after announcing sleep: a schedule() in between saw _sleeping
            # either False (and its queue is in _ready now) or True (and it woke us).
            timeout = 0 if self._ready else None
        elif not self._waiting:
            return
        events = self._selector.select(timeout)
        self._sleeping = False
        for key, _ in events:
            if key.fileobj is self._wake_r:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            else:
                self._ready.append(key.data)

    def _flush(self, queue: SendQueue) -> None:
        data, closing, abandon = queue._take()
        if queue._finished.is_set():
            return
        if abandon:
            self._unwatch(queue)
            queue._finish()
            return
        try:
            sent = queue.sock.send(data) if data else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._unwatch(queue)
            queue._finish(f"Write error: {exc.strerror or exc}")
            return
        done = queue._sent(sent)
        if not done:
            self._watch(queue)
            return
        self._unwatch(queue)
        if closing:
            with contextlib.suppress(OSError):
                queue.sock.shutdown(socket.SHUT_WR)
            queue._finish()

    def _watch(self, queue: SendQueue) -> None:
        if queue not in self._waiting:
            self._waiting.add(queue)
            self._selector.register(queue.sock, selectors.EVENT_WRITE, queue)

    def _unwatch(self, queue: SendQueue) -> None:
        if queue in self._waiting:
            self._waiting.discard(queue)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(queue.sock)
