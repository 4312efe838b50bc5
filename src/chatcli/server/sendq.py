"""The outgoing side of every connection: one flusher thread and byte-bounded send queues.

Contract:

1. Queueing never blocks on I/O and never waits for a lock: :meth:`SendQueue.put` and
   :meth:`Flusher.broadcast` append one event to the flusher's log and, if it sleeps,
   wake it. A thread sending to a thousand clients is never held up by a slow one, and
   no thread is woken per recipient. One exception, for light traffic: a ``put`` when
   nothing at all is logged, to a queue that holds nothing, outside the world lock, is
   written by the calling thread at once (one non-blocking ``send``; what the kernel does
   not take is left to the flusher): :meth:`Flusher.write_now`. Its ``_busy`` lock is
   only *tried*, to claim the queue (``_DIRECT``: the flusher then sends nothing of it),
   and is not held across the send, which gives up the GIL.
2. A broadcast costs its sender O(1): the line is serialised once per form (recipients
   with different capabilities get different tags: :mod:`chatcli.server.tags`) and the
   room's audience, its recipients grouped by form, is passed along; the flusher hands each
   form to its group. Consecutive broadcasts to the same audience are joined first, so
   under load a recipient costs the flusher one append per *batch* of messages, not per
   message.
3. The flusher sends *everything* a queue holds with one ``send`` on the (non-blocking)
   socket: a client that falls behind gets many lines per system call. Queues with a line
   of their own (a reply, a direct message) are sent first; queues with room traffic only
   are sent a few at a time, in turn, with the log applied in between, so that a busy room
   (a thousand joins, say) reaches each member in a few large sends, not one per line.
4. Every client receives lines in the order they were queued: the flusher applies its log
   in order. (Handlers queue while holding the world lock, so that order is the order of
   events in the shared state.)
5. At most ``max_bytes`` may wait for one client (queued, or refused by the kernel so far).
   Beyond that the queue fails: what waits is dropped (but for the rest of a line, or TLS
   record, that a send had begun), ``ERROR :SendQ exceeded`` is tried once, and the owner
   is told (``on_fail``, on the flusher thread) so that it ends the
   connection. Everyone else keeps chatting.
6. :meth:`SendQueue.close` queues a final line; nothing queued after it is sent. Once all
   is out, the flusher shuts the socket down for writing, so the peer reads an orderly end,
   and sets :meth:`SendQueue.finished`. It never touches the socket after that: the
   connection's own thread closes it.
7. A send error (the peer went away) finishes the queue quietly; :attr:`SendQueue.failed`
   says why.

8. Backpressure: when the flusher's log holds more than :data:`MAX_LOG` events, whoever
   queues waits for it (a second at most), so that memory stays bounded and a flood slows
   down at its source. Never under the world lock: a thread that holds it waits once it
   has released it (:meth:`Flusher.settle`, called by the lock), so nobody else waits.
9. The flusher thread is supervised (:mod:`chatcli.server.supervise`). A failure while
   sending to one client ends that client (``Internal error``), not the thread. Any other
   failure is logged and the loop restarts, with its log and every queue as they were
   (nothing is lost or reordered: events leave the log only as they are applied); the
   sockets it watched are watched anew. A failure half way through applying an event
   could have given a line to some of its recipients only: that cannot be restarted
   safely, and stops the server (``on_fatal``). A flusher that is gone (stopped, or
   failed) finishes every queue that is closed or abandoned at once, so that no
   connection waits for it.

Threads: every field of a SendQueue but ``finished`` belongs to whoever holds the
flusher's ``_busy`` lock (the flusher thread, or a thread in :meth:`Flusher.write_now`),
and its socket's sending side, while the queue is ``_DIRECT``, to the thread writing it. Other
threads only append to the flusher's log (a deque: atomic appends) and read ``failed`` and,
for operators, the counters (``queued``, ``lines_out``, ``bytes_sent``: a moment's view).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatcli.server.supervise import Supervisor

if TYPE_CHECKING:
    from chatcli.server.transport import Stream

log = logging.getLogger("chatcli.server")

SENDQ_EXCEEDED = "SendQ exceeded"
_SENDQ_ERROR = b"ERROR :" + SENDQ_EXCEEDED.encode() + b"\r\n"

#: Events the flusher's log may hold before posting threads wait for it (backpressure).
MAX_LOG = 50_000
#: Queues with room traffic only that are sent between two looks at the log.
ROOM_BATCH = 8
#: Rounds of room traffic between two polls of the sockets that would block.
POLL_EVERY = 16

# How the flusher sleeps.
_AWAKE, _ON_BELL, _IN_SELECT = range(3)

# Kinds of events in the flusher's log.
_PUT, _BROADCAST, _CLOSE, _ABANDON = range(4)

# Where a queue with something to send waits: nowhere yet, in turn with the room traffic,
# or first, with a line of its own.
_CLEAN, _IN_TURN, _FIRST = range(3)
# ...or being written by a thread in Flusher.write_now: the flusher lists it nowhere and
# sends nothing of it, and what finishes it leaves its latch to that thread.
_DIRECT = 3


class SendQueue:
    """The bytes waiting for one client. Use :meth:`put` and :meth:`close` from any thread."""

    __slots__ = (
        "_backlog",
        "_chunks",
        "_closing",
        "_dirty",
        "_done",
        "_finished",
        "_flusher",
        "_max",
        "_on_fail",
        "_size",
        "bytes_sent",
        "failed",
        "lines_out",
        "sock",
    )

    def __init__(
        self,
        sock: Stream,
        max_bytes: int,
        on_fail: Callable[[str], None],
        flusher: Flusher,
    ) -> None:
        self.sock = sock
        self._max = max_bytes
        self._on_fail = on_fail
        self._flusher = flusher
        self._chunks: list[bytes] = []
        self._backlog = b""  # taken from the chunks, refused by the kernel so far
        self._size = 0  # bytes in _chunks and _backlog
        self._dirty = _CLEAN  # which of the flusher's lists it waits in
        self._closing = False
        # A latch: held until the flusher is done with the queue. (A Lock, not an Event:
        # an Event costs a Condition, and every idle connection has one of these.)
        self._finished = threading.Lock()
        self._finished.acquire()
        self._done = False  # the flusher's own record that it released _finished
        self.failed: str | None = None
        # For operators (STATS l), read by any thread: lines queued, bytes sent so far.
        self.lines_out = 0
        self.bytes_sent = 0

    @property
    def queued(self) -> int:
        """Bytes waiting to be sent (a moment's view, from any thread)."""
        return self._size

    def put(self, data: bytes) -> None:
        """Queue ``data`` (one or more complete lines) for sending. Never blocks. When
        nothing waits to be sent, the calling thread writes it itself
        (:meth:`Flusher.write_now`)."""
        flusher = self._flusher
        if not flusher.write_now(self, data):
            flusher.post((_PUT, self, data, None))

    def close(self, final: bytes = b"") -> None:
        """Queue ``final`` as the last bytes; the queue finishes once all is sent."""
        self._flusher.post((_CLOSE, self, final, None))

    def abandon(self) -> None:
        """Give up on what is still unsent (the peer does not read): finish now."""
        self._flusher.post((_ABANDON, self, b"", None))

    def finished(self, timeout: float | None = None) -> bool:
        """Wait until the flusher is done with this queue; True if it is."""
        if not self._finished.acquire(timeout=-1 if timeout is None else timeout):
            return False
        self._finished.release()
        return True


class Batch:
    """Deliveries that one thread makes in a row, joined: one :meth:`SendQueue.put` per
    queue when :meth:`flush` is called, so that several direct messages to one client read
    in one go (a paste, a bot's burst) leave in one ``send``, not one each.

    Its owner keeps the order: it flushes before anything it queues some other way to
    a queue the batch may hold (a room's line, under the world lock), before it waits, and
    before it reads again. Used by one thread at a time (a connection's, while it runs
    what it read); nothing else touches it.
    """

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: dict[SendQueue, list[bytes]] = {}

    def __bool__(self) -> bool:
        return bool(self._parts)

    def add(self, queue: SendQueue, data: bytes) -> None:
        """Hold ``data`` (whole lines) for ``queue`` until :meth:`flush`."""
        if (parts := self._parts.get(queue)) is None:
            self._parts[queue] = [data]
        else:
            parts.append(data)

    def flush(self) -> None:
        """Queue what is held, each queue's lines in the order they were added."""
        if not self._parts:
            return
        parts, self._parts = self._parts, {}
        for queue, chunks in parts.items():
            queue.put(chunks[0] if len(chunks) == 1 else b"".join(chunks))


def _never() -> bool:
    return False


class Flusher:
    """The thread that writes to every client socket (but for the lines others write at
    once: :meth:`write_now`). See the module docstring.

    Args:
        on_fatal: stops the server with a reason, when the thread failed beyond repair.
    """

    def __init__(self, on_fatal: Callable[[str], None] | None = None) -> None:
        self.on_fatal = on_fatal
        self._log: deque[tuple[int, object, object, SendQueue | None]] = deque()
        self._first: deque[SendQueue] = deque()  # queues with a line of their own
        self._in_turn: deque[SendQueue] = deque()  # queues with room traffic only
        self._rounds_unpolled = 0
        self._selector = selectors.DefaultSelector()
        self._waiting: set[SendQueue] = set()  # registered for EVENT_WRITE
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        # How the flusher sleeps: _AWAKE, on the bell (nothing to watch), or in select().
        self._sleeping = _AWAKE
        # post() rings the bell with no system call that gives up the GIL (a socket send
        # would, and the poster usually holds the world lock: every reader queued behind
        # it would wake for nothing). The socket pair is for when select() must watch.
        self._bell = threading.Event()
        self._stop = False
        self._stopping = threading.Event()  # (ends a restart's backoff)
        self._room = threading.Event()  # set while the log is shorter than MAX_LOG
        self._room.set()
        #: Whether posting threads are asked to wait (a glance, read by the world lock).
        self.behind = False
        #: A line was queued under the world lock while the flusher was in select():
        #: whoever releases the lock wakes it (see post).
        self.wake_owed = False
        self._owed = threading.local()  # .wait: this thread owes a wait (see settle)
        #: Whether the calling thread holds the world lock (set by the World).
        self.holding_lock: Callable[[], bool] = _never
        self._applying = False  # an event is being applied: a restart would be unsafe
        self._dead = False  # the thread is gone: closes finish at once (see _drain_dead)
        self._dead_lock = threading.Lock()
        # Held by the flusher while it applies the log and sends (not while it sleeps),
        # and by a thread that writes to a socket itself (write_now): one writer at a time.
        self._busy = threading.Lock()
        self.supervisor = Supervisor(
            "flusher",
            self._fatal,
            stop=self._stopping,
            safe=lambda: not self._applying,
            recover=self._recover,
        )
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)

    # -- any thread ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def post(self, event: tuple[int, object, object, SendQueue | None]) -> None:
        self._log.append(event)
        if self._sleeping == _IN_SELECT and self.holding_lock():
            # Waking it from select() writes to a socket: not under the world lock, but
            # once that is released (see settle).
            self.wake_owed = True
        elif self._sleeping:
            self._wake()
        elif len(self._log) > MAX_LOG and threading.current_thread() is not self._thread:
            # The flusher is behind: the client whose line this was waits for it, so that
            # memory stays bounded and the flood slows down at its source; but never
            # under the world lock (everyone would wait): then once it is released.
            self.behind = True
            self._room.clear()
            if self.holding_lock():
                self._owed.wait = True
            else:
                self._room.wait(1.0)
        if self._dead:
            self._drain_dead()

    def write_now(self, queue: SendQueue, data: bytes) -> bool:
        """Write ``data`` to ``queue``'s socket on the calling thread, if that keeps every
        order: nothing is logged for anyone (every line queued before is in some queue),
        ``queue`` holds nothing and its socket was not blocked, and the flusher is not at
        work. What the kernel refuses is left for the flusher. False, having done nothing,
        otherwise, or under the world lock (no I/O there), or once the flusher stopped.

        A direct message to an idle client, or a reply, then costs no thread hand-off: the
        flusher is neither woken nor waited for. Under load the log is rarely empty and
        lines go through the flusher, in batches, as before."""
        if self._log or self._dead or self._stop or self.holding_lock():
            return False
        if not self._busy.acquire(blocking=False):
            return False
        try:
            if (
                self._log
                or queue._dirty != _CLEAN
                or queue._chunks
                or queue._backlog
                or queue._closing
                or queue in self._waiting
            ):
                return False
            queue._dirty = _DIRECT
        finally:
            self._busy.release()
        # The send gives up the GIL, and winning it back among thousands of threads can
        # take a while: no lock is held meanwhile (the queue is this thread's: _DIRECT).
        try:
            sent = queue.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the flusher's own try meets the error and finishes the queue
            sent = 0
        rest = data[sent:]
        with self._busy:
            queue.lines_out += data.count(b"\n")
            queue.bytes_sent += sent
            with self._dead_lock:
                queue._dirty = _CLEAN
                if queue._done:  # finished meanwhile: its latch was left to us
                    queue._finished.release()
                    return True
            if rest:  # before whatever was queued meanwhile
                queue._backlog = rest + queue._backlog
                queue._size += len(rest)
            more = bool(queue._backlog or queue._chunks or queue._closing)
            if more:
                self._mark(queue, _FIRST)
        if more:
            self.post((_PUT, queue, b"", None))  # (wakes the flusher: the queue is listed)
        return True

    def settle(self) -> None:
        """Wake the flusher if a thread holding the world lock could not, and wait for it
        (a second at most) if this thread queued lines while it was behind and the world
        lock was held. Called by the world lock, once released."""
        if self.wake_owed:
            self.wake_owed = False
            if self._sleeping:
                self._wake()
        if not getattr(self._owed, "wait", False) or self.holding_lock():
            return
        self._owed.wait = False
        if len(self._log) > MAX_LOG and not self._dead:
            self._room.wait(1.0)

    def broadcast(
        self,
        audience: tuple[tuple[SendQueue, ...], ...],
        forms: tuple[bytes, ...],
        skip: SendQueue | None = None,
    ) -> None:
        """Queue ``forms[i]`` for every queue in ``audience[i]``, but ``skip``. Pass the same
        audience object for the same recipients (a room caches its own) so that batches
        join."""
        self.post((_BROADCAST, audience, forms, skip))

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread (after every queue it serves has finished) and release it.
        Idempotent."""
        if self._stop:
            return
        self._stop = True
        self._stopping.set()
        self._bell.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        if self._thread.ident is not None:
            self._thread.join(timeout)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        mode, self._sleeping = self._sleeping, _AWAKE
        if mode == _ON_BELL:
            self._bell.set()
        else:
            with contextlib.suppress(OSError):  # full (a wake is pending already) or closed
                self._wake_w.send(b"\0")

    # -- the flusher thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.supervisor.run(self._loop)
        finally:  # stopped, or failed for good: nobody may wait for this thread now
            self._dead = True
            self._room.set()
            self._drain_dead()
            with self._dead_lock:  # and the queues closed already, still to be sent
                for queue in (*self._first, *self._in_turn, *self._waiting):
                    if queue._closing and not queue._done:
                        queue._done = True
                        queue._finished.release()

    def _loop(self) -> None:
        while not self._stop:
            self._wait()
            with self._busy:
                self._apply_log()
                if not self._room.is_set() and len(self._log) < MAX_LOG:
                    self.behind = False
                    self._room.set()
                for queue in self._due():
                    try:
                        self._flush(queue)
                    except Exception:  # one broken queue must not silence the rest
                        self._broken(queue, "flushing a send queue")

    def _fatal(self, reason: str) -> None:
        self._dead = True
        self._room.set()
        if self.on_fatal is not None:
            self.on_fatal(reason)

    def _recover(self) -> None:
        """Before a restart: watch the sockets anew (the failure may have come from the
        selector), and send to every queue that waited for its socket (one still blocked
        is watched again). The log and the queues' contents are untouched."""
        waiting = list(self._waiting)
        self._waiting.clear()
        with contextlib.suppress(Exception):
            self._selector.close()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._sleeping = _AWAKE
        self._rounds_unpolled = 0
        for queue in waiting:
            self._mark(queue, _FIRST)

    def _drain_dead(self) -> None:
        """With the thread gone: drop what is logged, finishing each queue closed or
        abandoned (its connection's thread waits for that). Any thread."""
        with self._dead_lock:
            while self._log:
                kind, target, _, _ = self._log.popleft()
                if kind in (_CLOSE, _ABANDON):
                    queue: SendQueue = target  # type: ignore[assignment]
                    if not queue._done:
                        queue._done = True
                        if queue._dirty != _DIRECT:  # (else its writer lets go)
                            queue._finished.release()

    def _broken(self, queue: SendQueue, doing: str) -> None:
        """An unexpected error while ``doing`` something for ``queue``: what it holds may
        be wrong, so it is finished and its connection ended. Everyone else goes on."""
        log.exception("%s failed", doing)
        self._finish(queue, "Internal error")
        try:
            queue._on_fail("Internal error")
        except Exception:
            log.exception("ending the connection of a broken send queue failed")

    def _due(self) -> list[SendQueue]:
        """The queues to send now: every one with a line of its own, and the next few with
        room traffic only. (A queue listed twice is sent when first due; after that it is
        clean and skipped, or listed again for new lines.)"""
        due = []
        first, in_turn = self._first, self._in_turn
        while first:
            queue = first.popleft()
            if queue._dirty == _FIRST:
                queue._dirty = _CLEAN
                due.append(queue)
        while in_turn and len(due) < ROOM_BATCH:
            queue = in_turn.popleft()
            if queue._dirty == _IN_TURN:
                queue._dirty = _CLEAN
                due.append(queue)
        return due

    def _wait(self) -> None:
        """Sleep until there is work; note the sockets that became writable."""
        timeout: float | None = 0
        if not self._log and not self._first and not self._in_turn:
            # Announce sleep, then re-check: a post() in between saw either _AWAKE (and its
            # event is in the log now) or the mode set here (and it rang or wrote to us).
            if not self._waiting:
                self._bell.clear()
                self._sleeping = _ON_BELL
                if not self._log and not self._stop:
                    self._bell.wait()
                self._sleeping = _AWAKE
                return
            self._sleeping = _IN_SELECT
            timeout = 0 if self._log else None
        elif not self._waiting:
            return
        elif self._in_turn and self._rounds_unpolled < POLL_EVERY:
            # Amid room traffic, blocked sockets are polled once every few rounds only: a
            # poll per ROOM_BATCH sends would cost everyone for one client that stalls.
            self._rounds_unpolled += 1
            return
        self._rounds_unpolled = 0
        events = self._selector.select(timeout)
        self._sleeping = _AWAKE
        for key, _ in events:
            if key.fileobj is self._wake_r:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(4096)
            else:
                self._mark(key.data, _FIRST)

    def _mark(self, queue: SendQueue, where: int) -> None:
        """List ``queue`` to be sent: ``_FIRST``, or ``_IN_TURN`` unless it is listed (or
        being written by another thread, which lists it when done)."""
        if queue._dirty == _DIRECT:
            return
        if where == _FIRST:
            if queue._dirty != _FIRST:
                queue._dirty = _FIRST
                self._first.append(queue)
        elif queue._dirty == _CLEAN:
            queue._dirty = _IN_TURN
            self._in_turn.append(queue)

    def _add(self, queue: SendQueue, data: bytes, where: int, lines: int = 0) -> None:
        """Queue ``data``: ``lines`` lines, or as many as it has."""
        if queue._closing:
            return
        try:
            queue.lines_out += lines or data.count(b"\n")
            queue._chunks.append(data)
            queue._size += len(data)
            if queue._size > queue._max:
                self._overflow(queue)
            if queue not in self._waiting:  # else it is flushed when its socket is writable
                self._mark(queue, where)
        except Exception:  # one broken queue must not cost the others their lines
            self._broken(queue, "queueing for a client")

    def _apply_log(self) -> None:
        """Apply the events logged so far, in order, joining runs of broadcasts. (An
        exception out of here leaves ``_applying`` set: see the module docstring, 9.)"""
        log_ = self._log
        left = len(log_)  # what is logged meanwhile waits for the next round
        self._applying = True
        while left > 0:
            kind, target, data, skip = log_.popleft()
            left -= 1
            if kind == _BROADCAST:
                batch, skips = [data], [skip]
                while left > 0 and log_[0][0] == _BROADCAST and log_[0][1] is target:
                    _, _, more, skip = log_.popleft()
                    left -= 1
                    batch.append(more)
                    skips.append(skip)
                self._broadcast(target, batch, skips)  # type: ignore[arg-type]
            elif kind == _PUT:
                self._add(target, data, _FIRST)  # type: ignore[arg-type]
            elif kind == _CLOSE:
                queue: SendQueue = target  # type: ignore[assignment]
                if not queue._closing:
                    if data:
                        self._add(queue, data, _FIRST)
                    queue._closing = True
                    self._mark(queue, _FIRST)
            else:  # _ABANDON
                self._finish(target)  # type: ignore[arg-type]
        self._applying = False

    def _broadcast(
        self,
        audience: tuple[tuple[SendQueue, ...], ...],
        batch: list[tuple[bytes, ...]],
        skips: list[SendQueue | None],
    ) -> None:
        skipped = {skip for skip in skips if skip is not None}  # the senders
        for form, queues in enumerate(audience):
            if not queues:
                continue
            lines = [forms[form] for forms in batch]
            everyone = b"".join(lines)
            if not everyone:  # nothing in this form (TAGMSG to those without tags)
                continue
            for queue in queues:
                if queue not in skipped:
                    self._add(queue, everyone, _IN_TURN, len(lines))
                    continue
                own = b"".join(
                    line for line, skip in zip(lines, skips, strict=True) if skip is not queue
                )
                if own:
                    self._add(queue, own, _IN_TURN)

    def _overflow(self, queue: SendQueue) -> None:
        # What a send has begun is finished first: the rest of the line it cut and what
        # the stream must be given again unchanged (on TLS, the record OpenSSL holds).
        # Then the ERROR line, and nothing else.
        head = queue._backlog
        end = head.find(b"\n", max(0, queue.sock.retry_bytes - 1))
        head = head if end < 0 else head[: end + 1]
        queue._backlog = head
        queue._chunks = [_SENDQ_ERROR]
        queue._size = len(head) + len(_SENDQ_ERROR)
        queue._closing = True
        if queue.failed is None:
            queue.failed = SENDQ_EXCEEDED
            queue._on_fail(SENDQ_EXCEEDED)

    def _flush(self, queue: SendQueue) -> None:
        if queue._done:
            return
        if queue._chunks:
            queue._backlog += b"".join(queue._chunks)
            queue._chunks.clear()
        data = queue._backlog
        try:
            sent = queue.sock.send(data) if data else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._finish(queue, f"Write error: {exc.strerror or exc}")
            return
        if sent:
            queue._backlog = data[sent:]
            queue._size -= sent
            queue.bytes_sent += sent
        if queue._backlog:
            self._watch(queue)
            return
        self._unwatch(queue)
        if queue._closing:
            with contextlib.suppress(OSError):
                queue.sock.shutdown(socket.SHUT_WR)
            self._finish(queue)

    def _finish(self, queue: SendQueue, failure: str | None = None) -> None:
        if queue._done:
            return
        queue._done = True
        self._unwatch(queue)
        queue._closing = True
        queue._chunks.clear()
        queue._backlog = b""
        queue._size = 0
        if failure and queue.failed is None:
            queue.failed = failure
        with self._dead_lock:
            if queue._dirty != _DIRECT:  # (else its writer lets go when its send is over)
                queue._finished.release()

    def _watch(self, queue: SendQueue) -> None:
        if queue not in self._waiting:
            self._waiting.add(queue)
            self._selector.register(queue.sock, selectors.EVENT_WRITE, queue)

    def _unwatch(self, queue: SendQueue) -> None:
        if queue in self._waiting:
            self._waiting.discard(queue)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(queue.sock)
