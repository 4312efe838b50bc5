"""The server's memory: accounts, registered rooms and history, in one SQLite file, or in
a PostgreSQL database that the nodes of a cluster share.

This module owns the SQL of what the server keeps, written once for both engines; what
differs between them (connecting, the schema and its versions, a lock file, which errors
say the database is in trouble) is an engine's (:mod:`chatcli.server.sqldb`,
:mod:`chatcli.server.postgres`). Writes from every connection thread go through one
writer thread that commits what has gathered in one transaction (group commit): a message
costs its sender a queue append and, where it must be durable before the server confirms
it, a wait for the next commit. Reads use a connection of their own, under a lock.

A SQLite file is in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the
server being killed (it is in the WAL, which the OS holds), though not a power cut in the
next instant. The schema has a version (``PRAGMA user_version``); migrations run forward at
start-up. A file that is locked, corrupt, of a newer version or not writable stops start-up
with :class:`StoreError` (one line), and is never overwritten. So does a PostgreSQL that
does not answer within a few seconds, or refuses the connection.
"""

from __future__ import annotations

import bisect
import contextlib
import enum
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from chatcli.dburl import is_url, url_of
from chatcli.server.sqldb import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Connection,
    Engine,
    SQLiteEngine,
    StoreError,
    identity_of,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Account",
    "Health",
    "Outcome",
    "Retention",
    "RoomRecord",
    "Store",
    "StoreError",
    "Stored",
    "identity_of",
]

log = logging.getLogger("chatcli.server")

#: The server's secrets, each random bytes made when first needed and kept from then on:
#: "cloak" keys the hosts' cloaks (:mod:`chatcli.server.cloaks`).
SECRETS = ("cloak",)
SECRET_BYTES = 32


#: After a write failed for the disk's sake, new writes are not tried (they are settled
#: not kept at once) until this many seconds have passed; each failed try doubles the wait,
#: up to RETRY_MAX. So a full disk costs one attempt a second or two, not one per message,
#: and writing resumes by itself within RETRY_MAX of the disk coming back.
RETRY_MIN = 1.0
RETRY_MAX = 2.0
#: While the store keeps failing, the log says so at most this often (seconds).
REPORT_EVERY = 60.0
#: Unexpected errors in the writer's own code (not a job's) that it survives: past this
#: many within CRASH_WINDOW seconds it is broken, and the server must stop (``on_fatal``).
MAX_CRASHES = 5
CRASH_WINDOW = 60.0
#: How long a write is waited for before the waiter gives up (:meth:`Store.outcome`).
WAIT_TIMEOUT = 10.0
#: Writes queued and not settled yet that the store holds before whoever queues waits for
#: the writer (about 1 KiB each: a message's row and whom to tell if it is lost). Without
#: it, senders that outpace the disk (or the writer's share of the GIL) grow the queue
#: without bound: 4 threads writing as fast as they could queued 250,000 in 6 s, 250 MiB.
MAX_BACKLOG = 10_000
#: The longest one write waits for room (a stalled writer: it goes on, and the next waits).
BACKLOG_WAIT = 1.0
#: Why a write was not kept, as its sender is told, when the job itself failed (a bug) or
#: the writer stopped for good; the disk's troubles have their own (:meth:`Engine.trouble`).
JOB_REASON = "the server could not write it"
FATAL_REASON = "the server can no longer write its history"


#: The bounds (seconds) of the buckets commits are counted in (:attr:`Store.commit_seconds`).
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Latency:
    """How long something took, as a histogram cheap enough to note at every commit: a
    count per bucket (the last: longer than every bound) and the sum. Written by one
    thread (the store's writer); read by others as a moment's view (metrics)."""

    def __init__(self, bounds: tuple[float, ...] = COMMIT_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0  #: seconds, all counted

    def observe(self, seconds: float) -> None:
        """Count one that took ``seconds`` (in the first bucket whose bound is at least that)."""
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def snapshot(self) -> tuple[list[int], float]:
        """The counts per bucket and the sum, as they are now."""
        return list(self.counts), self.total


class Outcome(enum.Enum):
    """What became of a write: :meth:`Store.outcome`."""

    KEPT = "kept"  #: committed: on disk
    NOT_KEPT = "not kept"  #: rolled back, or never tried: it is not on disk, and never will be
    TIMED_OUT = "timed out"  #: not settled in time: not known (yet)


@dataclass(frozen=True, slots=True)
class Health:
    """How the store is doing, for operators (STATS d)."""

    failing_since: float | None  #: unix seconds, while writes fail for the disk's sake
    reason: str  #: why they fail ("" when they do not)
    not_kept_now: int  #: writes not kept since it began failing
    not_kept: int  #: writes not kept since the store was opened
    fatal: str | None  #: why the writer stopped for good, if it did

    @property
    def ok(self) -> bool:
        return self.failing_since is None and self.fatal is None


@dataclass(frozen=True, slots=True)
class Account:
    """An account, or the tombstone of a dropped one (``dropped`` set, no password)."""

    id: int  #: its stable identity: never given to another account, even after a drop
    name: str  #: as registered
    password: str  #: its hash ("" once dropped)
    created: int  #: unix seconds
    dropped: int | None = None  #: unix seconds, if dropped: the name stays reserved

    @property
    def identity(self) -> str:
        """How history, waiting messages and rooms refer to the account: ``@<id>``, never
        its name, which may one day belong to someone else."""
        return identity_of(self.id)


#: The read markers one account keeps at most (IRCv3 draft/read-marker).
MAX_READ_MARKERS = 1000

#: What history keeps of an event (IRCv3 draft/event-playback: a topic change, a kept
#: TAGMSG that is not a reaction), as SQL: see chatcli.server.history.is_event.
_EVENT = "(command = 'TOPIC' OR (command = 'TAGMSG' AND text = ''))"


@dataclass(frozen=True, slots=True)
class Stored:
    """One message from history."""

    id: int
    msgid: str
    at: int  #: unix milliseconds
    target: str
    command: str
    source: str
    account: str | None
    recipient: str
    text: str
    tags: str


@dataclass(frozen=True, slots=True)
class RoomRecord:
    name: str
    founder: str
    created: int
    topic: str
    topic_by: str
    topic_at: int
    modes: str
    key: str | None
    limit: int | None
    operators: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history is kept: at most ``per_target`` messages per room or conversation,
    none older than ``days`` (0: no age limit)."""

    per_target: int = 10_000
    days: float = 0.0


_ROOM_COLUMNS = (
    "name",
    "display",
    "founder",
    "created",
    "topic",
    "topic_by",
    "topic_at",
    "modes",
    "key",
    "user_limit",
    "operators",
)
_MESSAGE_COLUMNS = "id, msgid, at, target, command, source, account, recipient, text, tags"
#: A message is recorded once, however many times it is written: a msgid is unique across
#: a cluster, and one already kept (by another node, say) is left as it is.
_INSERT_MESSAGE = (
    "INSERT INTO messages (msgid, at, target, command, source, account, recipient, text, "
    "tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (msgid) DO NOTHING"
)
Job = Callable[[Connection], object] | tuple[object, ...]


#: Targets whose new messages are counted at once (for trimming); past it, all are trimmed
#: and forgotten: a server sees many small conversations, and this must not grow with them.
MAX_TOUCHED = 10_000


def engine_for(db: Path | str) -> Engine:
    """The engine of ``--db``: PostgreSQL for a ``postgresql://`` URL (psycopg is imported
    only then), else the SQLite file ``db``."""
    if is_url(db):
        from chatcli.server.postgres import PostgresEngine

        return PostgresEngine(url_of(db))
    return SQLiteEngine(Path(db))


class Store:
    """The database. :meth:`open` it, :meth:`close` it; thread-safe in between.

    Args:
        path: the SQLite file, or a PostgreSQL database's URL (``postgresql://...``: see
            :mod:`chatcli.server.postgres`), as a string or a path made of it.
        retention: how much history to keep.
        on_fatal: called once, with a one-line reason, if the writer cannot go on (its
            connection unusable, or failing again and again where it should not): the
            server must then stop, with a non-zero exit, rather than run on without a
            history. Called on the writer's thread; it must not wait for the store. Also
            settable as the attribute ``on_fatal`` before :meth:`open`.
    """

    def __init__(
        self,
        path: Path | str,
        retention: Retention | None = None,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self._engine: Engine = engine_for(path)
        #: The database as messages and the log name it: the file, or the URL without its
        #: password.
        self.path = self._engine.name
        self.retention = retention or Retention()
        self.on_fatal = on_fatal
        self._reader: Connection | None = None
        self._writer: Connection | None = None
        self._read_lock = threading.Lock()
        # A job is a function run in the writer's transaction, or a message row to insert
        # (rows that follow one another are inserted with one executemany).
        self._jobs: deque[Job] = deque()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the writer waits on it for work
        self._done = threading.Condition(lock)  # and callers of wait() for commits
        self._written = 0  # jobs settled so far (kept or not: see _failed)
        self._queued = 0  # jobs queued so far
        self._stop = False
        self._thread: threading.Thread | None = None
        # The tickets of the latest jobs not kept, as ranges (runs of them join up: a disk
        # that stays full is one entry).
        self._failed: deque[tuple[int, int]] = deque(maxlen=1024)
        # Whom to tell if a job is not kept: ticket -> on_lost, until the job is settled.
        self._on_lost: dict[int, Callable[[str], None]] = {}
        # The disk's trouble, while writes fail for its sake (see _write_loop).
        self._failing_since: float | None = None  # wall clock
        self._reason = ""
        self._retry_at = 0.0  # monotonic: when the next batch is tried
        self._retry_wait = RETRY_MIN
        self._reported_at = 0.0  # monotonic: when the log last said it still fails
        self._not_kept_now = 0
        self._not_kept = 0
        self._crashes: deque[float] = deque(maxlen=MAX_CRASHES)
        self._fatal: str | None = None  # why the writer stopped for good
        self._since_prune = 0
        #: How long each transaction that committed took, BEGIN to COMMIT (metrics).
        self.commit_seconds = Latency()
        # Messages added per target since it was last trimmed to the retention limit.
        self._touched: dict[str, int] = {}
        self._secrets: dict[str, bytes] = {}  # SECRETS, read once at open
        # Backpressure (see write): set while more than MAX_BACKLOG writes are unsettled;
        # whether the calling thread holds the server's world lock (then it waits once it
        # has released it: see settle), and the threads that owe such a wait.
        self.behind = False
        self.holding_lock: Callable[[], bool] = _never
        self._owed = threading.local()

    # -- life -------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def open(self) -> None:
        """Open (creating if new) and migrate; start the writer. What the engine does to
        open its database: :class:`chatcli.server.sqldb.SQLiteEngine` (a private file, a
        lock file beside it), :class:`chatcli.server.postgres.PostgresEngine`.

        Raises:
            StoreError: the database cannot be used (locked, corrupt, newer, read-only,
                unreachable...).
        """
        engine = self._engine
        try:
            engine.prepare()
            self._writer = engine.connect()
            engine.migrate(self._writer)
            self._secrets = self._load_secrets(self._writer)
            self._reader = engine.connect()
        except StoreError:
            self._close_connections()
            raise
        except self._failures() as exc:
            self._close_connections()
            why = engine.explain(exc)
            raise StoreError(f"cannot use the database {self.path}: {why}") from None
        engine.opened()
        self._thread = threading.Thread(target=self._write_loop, name="store", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, stop the writer, close the database. Idempotent."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._close_connections()

    def _failures(self) -> tuple[type[Exception], ...]:
        """The errors that say the database (or its file, or the way to it) failed."""
        return (*self._engine.errors, OSError)

    @property
    def shared(self) -> bool:
        """Whether other servers (the nodes of a cluster) use the database too."""
        return self._engine.shared

    def _load_secrets(self, db: Connection) -> dict[str, bytes]:
        """Every one of SECRETS, making (and keeping) those the database does not hold yet."""
        query = "SELECT name, value FROM secrets"
        found = {name: bytes(value) for name, value in db.execute(query).fetchall()}
        missing = [name for name in SECRETS if name not in found]
        for name in missing:  # should another server have just made it, its wins
            db.execute(
                "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (name, secrets.token_bytes(SECRET_BYTES)),
            )
        if missing:
            found = {name: bytes(value) for name, value in db.execute(query).fetchall()}
        return found

    def secret(self, name: str) -> bytes:
        """The server's secret ``name`` (one of :data:`SECRETS`): the same from one run to
        the next. The store must be open."""
        return self._secrets[name]

    def _close_connections(self) -> None:
        for db in (self._reader, self._writer):
            if db is not None:
                with contextlib.suppress(*self._engine.errors):
                    db.close()
        self._reader = self._writer = None
        self._engine.release()

    # -- the writer -------------------------------------------------------------------------
    #
    # Every write is settled, in the order it was queued, as kept (committed) or not kept
    # (rolled back, or never tried); _written counts the settled ones, _failed holds the
    # tickets of those not kept. A write is never retried once settled not kept: whoever
    # queued it has been told it is lost (on_lost), and it must not turn up in the history
    # after all. So the history holds exactly the writes settled kept.

    def write(self, job: Job, on_lost: Callable[[str], None] | None = None) -> int:
        """Queue ``job`` (it runs in the writer's transaction); return a ticket for
        :meth:`wait` and :meth:`outcome`.

        Never blocks under the world lock. With more than :data:`MAX_BACKLOG` writes
        unsettled, whoever queues waits for the writer (:data:`BACKLOG_WAIT` at most), so
        that memory stays bounded and a flood slows down at its source; a thread that
        holds the world lock waits once it has released it (:meth:`settle`).

        If the job is not kept, ``on_lost`` is called once with the reason, as a sender is
        told it ("the server's disk is full"), on the writer's thread and before the ticket
        is settled: so what a connection sends on hearing it goes out before anything it
        held until the ticket was settled (its echo). It must not wait for the store."""
        with self._cond:
            self._queued += 1
            ticket = self._queued
            if self._fatal is None:
                self._jobs.append(job)
                if on_lost is not None:
                    self._on_lost[ticket] = on_lost
                if len(self._jobs) == 1:
                    self._cond.notify()
                if ticket - self._written > MAX_BACKLOG:
                    self.behind = True
                    if threading.current_thread() is not self._thread:  # (never for itself)
                        self._owed.wait = True
                if self.behind and not self.holding_lock():
                    self._make_room()
                return ticket
            # The writer is gone for good: not kept, at once.
            self._mark(ticket, ticket)
            self._not_kept += 1
            self._written = max(self._written, ticket)
        if on_lost is not None:
            self._tell(on_lost, FATAL_REASON)
        return ticket

    def settle(self) -> None:
        """Wait for the writer (:data:`BACKLOG_WAIT` at most) if this thread queued a write
        while more than :data:`MAX_BACKLOG` were unsettled. Called by the world lock, once
        released; at once by :meth:`write` elsewhere."""
        if getattr(self._owed, "wait", False) and not self.holding_lock():
            with self._cond:
                self._make_room()

    def _make_room(self) -> None:
        """:meth:`settle`, with the store's lock held."""
        if not getattr(self._owed, "wait", False):
            return
        self._owed.wait = False
        deadline = time.monotonic() + BACKLOG_WAIT
        while self._queued - self._written > MAX_BACKLOG and self._thread is not None:
            left = deadline - time.monotonic()
            if left <= 0 or self._fatal is not None or self._stop:
                break
            self._done.wait(left)

    def outcome(self, ticket: int, timeout: float = WAIT_TIMEOUT) -> Outcome:
        """Wait until the write ``ticket`` is settled: KEPT, NOT_KEPT (its transaction
        failed, which costs only the jobs in it; or the disk is failing; or the store is
        closed), or TIMED_OUT after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._written < ticket:
                if self._thread is None:
                    return Outcome.NOT_KEPT  # closed (or never opened): nobody will write it
                left = deadline - time.monotonic()
                if left <= 0:
                    return Outcome.TIMED_OUT
                self._done.wait(left)
            if any(first <= ticket <= last for first, last in self._failed):
                return Outcome.NOT_KEPT
            return Outcome.KEPT

    def wait(self, ticket: int, timeout: float = WAIT_TIMEOUT) -> bool:
        """Wait until the write ``ticket`` is settled: whether it was kept (False also on
        timeout). See :meth:`outcome`."""
        return self.outcome(ticket, timeout) is Outcome.KEPT

    def _must(self, ticket: int) -> None:
        outcome = self.outcome(ticket)
        if outcome is not Outcome.KEPT:
            why = self._reason or self._fatal or outcome.value
            raise StoreError(f"cannot write to the database {self.path}: {why}")

    def settled(self, ticket: int) -> bool:
        """Whether the write ``ticket`` is settled, kept or not (a glance: no lock, no
        wait); :meth:`outcome` says which, without waiting once this is true."""
        return self._written >= ticket

    #: The name :meth:`settled` had when a write could only be committed or time out.
    committed = settled

    def sync(self) -> bool:
        """Wait until everything queued so far is settled; whether the last of it was kept."""
        with self._cond:
            ticket = self._queued
        return self.wait(ticket)

    def health(self) -> Health:
        """How the store is doing: failing or not, and the writes it did not keep."""
        with self._cond:
            return Health(
                self._failing_since, self._reason, self._not_kept_now, self._not_kept, self._fatal
            )

    @property
    def fatal(self) -> str | None:
        """Why the writer stopped for good, if it did (the server must then stop)."""
        return self._fatal

    @property
    def writer_alive(self) -> bool:
        """Whether the writer thread is running (a glance, for health checks: /healthz)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def ping(self, timeout: float = 2.0) -> str | None:
        """Whether the database answers a cheap read: None if it does, else why not. Waits
        at most ``timeout`` for the reader (another read may hold it). Never under the
        world lock, as any read (health checks: /healthz)."""
        if not self._read_lock.acquire(timeout=timeout):
            return f"no read within {timeout:g} s (the reader is busy)"
        try:
            if self._reader is None:
                return "closed"
            self._reader.ensure()
            self._reader.execute("SELECT 1 FROM accounts LIMIT 1").fetchall()
        except self._failures() as exc:
            return f"a read failed: {exc}"
        finally:
            self._read_lock.release()
        return None

    def _write_loop(self) -> None:
        """The writer thread: take what is queued, write it in one transaction, settle it.

        A write that fails for the disk's sake (full, read-only, I/O error: see
        :meth:`Engine.trouble`) is settled not kept at once, with the rest of its
        transaction, and the store is *failing*: the writes that come next are settled not
        kept without being tried (so a sender hears it within milliseconds, and the log is
        not flooded) until a retry is due, RETRY_MIN to RETRY_MAX seconds on; the first
        transaction that commits ends it. The log says when it starts, at most once every
        REPORT_EVERY seconds while it lasts (with a count), and when it ends.

        Supervised: an unexpected exception in the writer's own code is logged with its
        traceback, the writes it was busy with are settled not kept, and the loop goes on,
        unless the connection no longer works or it happened MAX_CRASHES times within
        CRASH_WINDOW seconds: then the writer stops for good (:meth:`_die`), settling
        everything not kept, and ``on_fatal`` tells the server to stop, never to run on
        with a history that silently stalls every sender.
        """
        db = self._writer
        assert db is not None
        while True:
            last = self._written  # the last ticket taken
            jobs: list[Job] = []  # (the last batch, settled, is not kept alive meanwhile)
            try:
                with self._cond:
                    while not self._jobs and not self._stop:
                        self._cond.wait()
                    if not self._jobs and self._stop:
                        return
                    jobs = list(self._jobs)
                    self._jobs.clear()
                    first = self._written + 1  # the first job's ticket
                last = first + len(jobs) - 1
                lost, reason = self._write_batch(db, first, jobs)
                self._settle(first, last, lost, reason)
            except Exception as exc:
                if not self._survive(db, exc, last):
                    return

    def _write_batch(self, db: Connection, first: int, jobs: list[Job]) -> tuple[list[int], str]:
        """Write ``jobs`` (tickets from ``first``); return the tickets not kept, and why."""
        every = list(range(first, first + len(jobs)))
        failing = self._failing_since is not None and time.monotonic() < self._retry_at
        if failing and not self._stop:  # (closing: one last try)
            return every, self._reason  # not tried: the disk is failing
        error = self._commit(db, jobs)
        if error is None:
            self._recovered()
            return [], ""
        trouble = self._engine.trouble(error)
        if trouble is not None:  # (a full disk fails them all)
            self._failing(trouble, error)
            return every, trouble
        if len(jobs) == 1:
            self._log_job_error(error)
            return every, JOB_REASON
        # One bad job must not cost the others theirs: each again, on its own.
        lost: list[int] = []
        for ticket, job in enumerate(jobs, first):
            if trouble is not None:  # the disk failed meanwhile: the rest is not tried
                lost.append(ticket)
                continue
            error = self._commit(db, [job])
            if error is None:
                continue
            lost.append(ticket)
            trouble = self._engine.trouble(error)
            if trouble is None:
                self._log_job_error(error)
            else:
                self._failing(trouble, error)
        if trouble is None:
            self._recovered()
        return lost, trouble or JOB_REASON

    def _commit(self, db: Connection, jobs: list[Job]) -> Exception | None:
        """Run ``jobs`` in one transaction; the error (rolled back) if it failed, for
        whatever reason: a full disk, a database gone away, or a job that raised."""
        if db.in_transaction:  # a failed COMMIT may leave one open; it cannot be ours
            db.rollback()  # (if this fails, the connection is unusable: _survive)
        started = time.perf_counter()
        try:
            db.begin()  # (connecting again first, if the engine can and must)
            self._run(db, jobs)
            self._since_prune += len(jobs)
            self._trim(db)
            if self._since_prune >= 1000:
                self._since_prune = 0
                self._expire(db)
            db.commit()
        except Exception as exc:
            with contextlib.suppress(*self._engine.errors):
                if db.in_transaction:
                    db.rollback()
            return exc
        self.commit_seconds.observe(time.perf_counter() - started)
        return None

    def _settle(self, first: int, last: int, lost: list[int], reason: str) -> None:
        """Settle the tickets ``first`` to ``last``: those in ``lost`` not kept (each one's
        ``on_lost`` told, first), the others kept."""
        tell: list[Callable[[str], None]] = []
        with self._cond:
            for ticket in lost:
                self._mark(ticket, ticket)
                if (on_lost := self._on_lost.pop(ticket, None)) is not None:
                    tell.append(on_lost)
            for ticket in range(first, last + 1):
                self._on_lost.pop(ticket, None)
            self._not_kept += len(lost)
            if self._failing_since is not None:
                self._not_kept_now += len(lost)
        for on_lost in tell:
            self._tell(on_lost, reason)
        with self._cond:
            self._written = max(self._written, last)
            if self._queued - self._written <= MAX_BACKLOG:
                self.behind = False
            self._done.notify_all()
        now = time.monotonic()
        if self._failing_since is not None and now - self._reported_at >= REPORT_EVERY:
            self._reported_at = now
            log.error(
                "still cannot write to the database %s: %s; %d writes not kept since %s",
                self.path,
                self._reason,
                self._not_kept_now,
                _when(self._failing_since),
            )

    def _log_job_error(self, error: Exception) -> None:
        """A job's own failure (not the database's): a bug, or bad data; worth its
        traceback unless the database said it all."""
        if isinstance(error, self._engine.errors):
            log.error("writing to the database failed: %s", error)
        else:
            log.error("writing to the database failed", exc_info=error)

    def _tell(self, on_lost: Callable[[str], None], reason: str) -> None:
        try:
            on_lost(reason)
        except Exception:  # one sender's trouble must not stop the writer
            log.exception("telling a sender that a write was not kept failed")

    def _mark(self, first: int, last: int) -> None:
        """Note the tickets ``first`` to ``last`` as not kept, joined to the run just before
        them, so that a run of them takes one entry. Caller holds the lock."""
        if self._failed and self._failed[-1][1] == first - 1:
            first = self._failed.pop()[0]
        self._failed.append((first, last))

    def _failing(self, trouble: str, error: Exception) -> None:
        """A write failed for the disk's sake: the store is failing, or still is."""
        now = time.monotonic()
        if self._failing_since is None:
            with self._cond:
                self._failing_since = time.time()
                self._reason = trouble
                self._not_kept_now = 0
            self._retry_wait = RETRY_MIN
            self._reported_at = now
            log.error(
                "cannot write to the database %s: %s (%s); messages are delivered but not "
                "kept in the history, and their senders told so, until it can (trying again "
                "every %g to %g s)",
                self.path,
                trouble,
                " ".join(str(error).split()),  # (one line: PostgreSQL's errors have several)
                RETRY_MIN,
                RETRY_MAX,
            )
        else:
            self._reason = trouble
            self._retry_wait = min(self._retry_wait * 2, RETRY_MAX)
        self._retry_at = now + self._retry_wait

    def _recovered(self) -> None:
        """A transaction committed: if the store was failing, it no longer is."""
        if self._failing_since is None:
            return
        log.warning(
            "writing to the database %s again, after %s since %s; %d writes were not kept",
            self.path,
            self._reason,
            _when(self._failing_since),
            self._not_kept_now,
        )
        with self._cond:
            self._failing_since = None
            self._reason = ""
            self._not_kept_now = 0

    def _survive(self, db: Connection, exc: Exception, last: int) -> bool:
        """The writer's own code raised ``exc`` (with tickets up to ``last`` taken): log it,
        settle what it was busy with as not kept, and say whether it may go on."""
        log.error("the database writer failed unexpectedly; it goes on", exc_info=exc)
        now = time.monotonic()
        self._crashes.append(now)
        why = ""
        try:
            if db.in_transaction:
                db.rollback()
            db.ensure()  # (a database that restarted: connect again, where the engine can)
            db.execute("SELECT 1").fetchone()
        except Exception as broken:
            why = f"has a connection that no longer works ({broken})"
        if not why and len(self._crashes) == MAX_CRASHES and now - self._crashes[0] < CRASH_WINDOW:
            why = f"failed {MAX_CRASHES} times within {CRASH_WINDOW:g} s"
        if not why:
            try:
                with self._cond:
                    first = self._written + 1
                if last >= first:
                    self._settle(first, last, list(range(first, last + 1)), JOB_REASON)
                return True
            except Exception as again:  # (settling should not fail: if it does, give up)
                why = f"failed again settling what it was writing ({again!r})"
        self._die(why)  # settles the rest
        return False

    def _die(self, why: str) -> None:
        """Stop writing for good: everything queued, and everything queued from now on, is
        settled not kept; ``on_fatal`` is told, for the server to stop."""
        message = f"cannot write to the database {self.path} any more: its writer {why}"
        if self.on_fatal is None:  # (else the server says it, as it stops)
            log.critical("%s; the history is no longer kept", message)
        with self._cond:
            self._fatal = why
            self._jobs.clear()
            first, last = self._written + 1, self._queued
            tell = [self._on_lost.pop(t) for t in range(first, last + 1) if t in self._on_lost]
            if last >= first:
                self._mark(first, last)
                self._not_kept += last - first + 1
        for on_lost in tell:
            self._tell(on_lost, FATAL_REASON)
        with self._cond:
            self._written = max(self._written, last)
            self._done.notify_all()
        if self.on_fatal is not None:
            try:
                self.on_fatal(message)
            except Exception:
                log.exception("stopping the server after the database writer failed failed")

    def _run(self, db: Connection, jobs: list[Job]) -> None:
        start = 0
        while start < len(jobs):
            job = jobs[start]
            if callable(job):
                job(db)
                start += 1
                continue
            end = start
            while end < len(jobs) and not callable(jobs[end]):
                end += 1
            rows = jobs[start:end]
            db.executemany(_INSERT_MESSAGE, rows)  # type: ignore[arg-type]
            for row in rows:
                target = row[2]  # type: ignore[index]
                self._touched[target] = self._touched.get(target, 0) + 1
            start = end

    def _trim(self, db: Connection) -> None:
        """Keep about ``per_target`` messages per target: a target is trimmed once it has
        grown by 1% of the limit (so it may briefly hold that much more), not on every
        commit."""
        keep = self.retention.per_target
        due = [target for target, added in self._touched.items() if added > keep // 100]
        if len(self._touched) - len(due) > MAX_TOUCHED:  # many quiet conversations: all now
            due = list(self._touched)
        for target in due:
            db.execute(
                "DELETE FROM messages WHERE target = ? AND id <= (SELECT id FROM messages "
                "WHERE target = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (target, target, keep),
            )
            del self._touched[target]

    def _expire(self, db: Connection) -> None:
        if self.retention.days > 0:
            cutoff = int((time.time() - self.retention.days * 86400) * 1000)
            db.execute("DELETE FROM messages WHERE at < ?", (cutoff,))

    def _read(self, sql: str, params: Iterable[object] = (), *, again: bool = True) -> list[tuple]:
        """The rows of ``sql``, on the reader's connection. One found lost (the database
        restarted) is made again, and the read tried once more if ``again``.

        Raises:
            StoreError: the database did not answer.
        """
        values = tuple(params)
        with self._read_lock:
            reader = self._reader
            assert reader is not None, "the store is not open"
            try:
                try:
                    reader.ensure()
                    return reader.execute(sql, values).fetchall()
                except self._engine.errors:
                    if not (again and reader.lost):
                        raise
                    reader.ensure()
                    return reader.execute(sql, values).fetchall()
            except self._failures() as exc:
                why = self._engine.trouble(exc) or exc
                raise StoreError(f"cannot read the database {self.path}: {why}") from None

    # -- history ----------------------------------------------------------------------------

    def record(
        self,
        message: Stored,
        pending_for: Iterable[int] = (),
        on_lost: Callable[[str], None] | None = None,
    ) -> int:
        """Queue ``message`` for history (and for the offline accounts ``pending_for``, by
        id); return the ticket of its write. ``on_lost``: see :meth:`write`."""
        row = (
            message.msgid,
            message.at,
            message.target,
            message.command,
            message.source,
            message.account,
            message.recipient,
            message.text,
            message.tags,
        )
        owners = tuple(pending_for)
        if not owners:
            return self.write(row, on_lost)

        def job(db: Connection) -> None:
            self._touched[message.target] = self._touched.get(message.target, 0) + 1
            kept = db.insert(_INSERT_MESSAGE, row)
            for owner in owners if kept is not None else ():  # (else: who kept it did)
                db.execute("INSERT INTO pending (account, message) VALUES (?, ?)", (owner, kept))

        return self.write(job, on_lost)

    def latest(self, target: str, limit: int) -> list[Stored]:
        """The last ``limit`` messages of ``target``, oldest first, as a room's recent lines
        hold them: without events (topic changes, kept TAGMSGs but reactions), which a JOIN
        never replays."""
        rows = self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE target = ? AND NOT {_EVENT} "
            "ORDER BY id DESC LIMIT ?",
            (target, limit),
        )
        return [Stored(*row) for row in reversed(rows)]

    def message(self, msgid: str) -> Stored | None:
        """The message ``msgid``, if it is kept."""
        rows = self._read(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE msgid = ?", (msgid,))
        return Stored(*rows[0]) if rows else None

    def redact(self, msgid: str, target: str) -> int:
        """Queue the deletion of the message ``msgid`` of ``target`` (IRCv3
        draft/message-redaction: a redacted message is gone from the history, and from the
        offline accounts' waiting messages with it), and of the reactions to it (kept as
        TAGMSGs whose text is the msgid they refer to); return the ticket of the write."""

        def job(db: Connection) -> None:
            db.execute("DELETE FROM messages WHERE msgid = ? AND target = ?", (msgid, target))
            db.execute(
                "DELETE FROM messages WHERE target = ? AND command = 'TAGMSG' AND text = ?",
                (target, msgid),
            )

        return self.write(job)

    def row_of(self, msgid: str) -> tuple[int, int] | None:
        """The (row id, unix ms) of the message ``msgid``, if it is kept."""
        rows = self._read("SELECT id, at FROM messages WHERE msgid = ?", (msgid,))
        return (rows[0][0], rows[0][1]) if rows else None

    def between(
        self,
        target: str,
        *,
        after: tuple[int, int] | None = None,
        before: tuple[int, int] | None = None,
        limit: int,
        newest_first: bool = False,
        events: bool = True,
    ) -> list[Stored]:
        """Messages of ``target`` strictly after ``after`` and before ``before``, each an
        (id, at) bound where either part may be used: an id of -1 means "by time". Without
        ``events``, no topic changes nor kept TAGMSGs but reactions
        (:func:`chatcli.server.history.is_event`)."""
        where, params = ["target = ?"], [target]
        if not events:
            where.append(f"NOT {_EVENT}")
        for bound, op in ((after, ">"), (before, "<")):
            if bound is None:
                continue
            row_id, at = bound
            if row_id >= 0:
                where.append(f"id {op} ?")
                params.append(row_id)
            else:
                where.append(f"at {op} ?")
                params.append(at)
        order = "DESC" if newest_first else "ASC"
        rows = self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {' AND '.join(where)} "
            f"ORDER BY id {order} LIMIT ?",
            (*params, limit),
        )
        found = [Stored(*row) for row in rows]
        return list(reversed(found)) if newest_first else found

    def targets(
        self, rooms: Iterable[str], identity: str, since: int, until: int, limit: int
    ) -> list[tuple[str, int]]:
        """Keys with messages between ``since`` and ``until`` (unix ms, exclusive): the
        ``rooms`` given and the direct conversations of ``identity``; each with the time of
        its latest message there, latest first."""
        room_list = list(rooms)
        marks = ",".join("?" * len(room_list)) or "NULL"
        mine = _like_escape(identity)
        rows = self._read(
            "SELECT target, MAX(at) FROM messages WHERE at > ? AND at < ? AND "
            f"(target IN ({marks}) OR target LIKE ? ESCAPE '\\' "
            "OR target LIKE ? ESCAPE '\\') GROUP BY target ORDER BY MAX(at) DESC LIMIT ?",
            (since, until, *room_list, f"dm:{mine}\x00%", f"dm:%\x00{mine}", limit),
        )
        return [(target, at) for target, at in rows]

    def take_pending(self, account: int) -> list[Stored]:
        """The direct messages that waited for the account with the id ``account``, oldest
        first; they are no longer pending once taken.

        In a shared database (PostgreSQL) they are taken in the statement that reads them,
        so that of two nodes the account logs in to at once, one gets them, and the other
        none; a single server's file (SQLite) is read, and what was read deleted by the
        writer."""
        columns = ", ".join("m." + c for c in _MESSAGE_COLUMNS.split(", "))
        if self._engine.shared:
            rows = self._read(
                "WITH taken AS (DELETE FROM pending WHERE account = ? RETURNING message) "
                f"SELECT {columns} FROM messages m JOIN taken t ON m.id = t.message "
                "ORDER BY m.id",
                (account,),
                again=False,  # (taken, if a lost answer did take them: never twice)
            )
            return [Stored(*row) for row in rows]
        rows = self._read(
            f"SELECT {columns} FROM pending p JOIN messages m ON m.id = p.message "
            "WHERE p.account = ? ORDER BY m.id",
            (account,),
        )
        if rows:  # only what was read: a message kept meanwhile waits for the next login
            last = rows[-1][0]
            self.write(
                lambda db: db.execute(
                    "DELETE FROM pending WHERE account = ? AND message <= ?", (account, last)
                )
            )
        return [Stored(*row) for row in rows]

    # -- accounts ---------------------------------------------------------------------------

    _ACCOUNT = "SELECT id, display, password, created, dropped FROM accounts"

    def account(self, folded: str) -> Account | None:
        """The account named ``folded``, or its tombstone if it was dropped."""
        rows = self._read(f"{self._ACCOUNT} WHERE name = ?", (folded,))
        return Account(*rows[0]) if rows else None

    def account_by_id(self, account_id: int) -> Account | None:
        rows = self._read(f"{self._ACCOUNT} WHERE id = ?", (account_id,))
        return Account(*rows[0]) if rows else None

    def account_names(self, ids: Iterable[int]) -> dict[int, str]:
        """The names of the accounts ``ids`` (dropped ones included: their names stay)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self._read(f"SELECT id, display FROM accounts WHERE id IN ({marks})", wanted)
        return dict(rows)

    def create_account(self, folded: str, display: str, password_hash: str) -> Account | None:
        """Register an account; None if the name is taken (or reserved by a dropped
        account). Waits for the commit."""
        created: list[int] = []

        def job(db: Connection) -> None:
            made = db.insert(
                "INSERT INTO accounts (name, display, password, created) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (folded, display, password_hash, int(time.time())),
            )
            if made is not None:
                created.append(made)

        self._must(self.write(job))
        return self.account_by_id(created[0]) if created else None

    def set_password(self, account_id: int, password_hash: str) -> None:
        self._must(
            self.write(
                lambda db: db.execute(
                    "UPDATE accounts SET password = ? WHERE id = ? AND dropped IS NULL",
                    (password_hash, account_id),
                )
            )
        )

    def drop_account(self, account_id: int) -> None:
        """Drop an account: its name stays reserved (a tombstone, until :meth:`erase`), and
        its direct conversations and the messages waiting for it are deleted, on both
        sides; what it said in rooms is no longer its name's (history keeps the name, which
        whoever registers it next would otherwise own: REDACT), and its read markers go.
        Waits for the commit."""
        mine = _like_escape(identity_of(account_id))

        def job(db: Connection) -> None:
            db.execute(
                "UPDATE accounts SET password = '', dropped = ? WHERE id = ?",
                (int(time.time()), account_id),
            )
            db.execute("DELETE FROM pending WHERE account = ?", (account_id,))
            db.execute("DELETE FROM metadata WHERE owner = ?", (identity_of(account_id),))
            db.execute("DELETE FROM read_markers WHERE account = ?", (account_id,))
            db.execute(
                "DELETE FROM messages WHERE target LIKE ? ESCAPE '\\' OR target LIKE ? ESCAPE '\\'",
                (f"dm:{mine}\x00%", f"dm:%\x00{mine}"),
            )
            db.execute(
                "UPDATE messages SET account = NULL "
                "WHERE lower(account) = (SELECT name FROM accounts WHERE id = ?)",
                (account_id,),
            )

        self._must(self.write(job))

    def erase_account(self, folded: str) -> bool:
        """Free the name of a dropped account, so that it can be registered again (by
        anyone: nothing of the old account is left to inherit). False if ``folded`` is no
        dropped account. Waits for the commit."""
        erased: list[bool] = []

        def job(db: Connection) -> None:
            cursor = db.execute(
                "DELETE FROM accounts WHERE name = ? AND dropped IS NOT NULL", (folded,)
            )
            erased.append(cursor.rowcount == 1)

        self._must(self.write(job))
        return bool(erased and erased[0])

    # -- read markers -----------------------------------------------------------------------

    def read_marker(self, account_id: int, target: str) -> int | None:
        """When (unix ms) the account ``account_id`` last read ``target`` (folded), if it
        said (IRCv3 draft/read-marker)."""
        rows = self._read(
            "SELECT at FROM read_markers WHERE account = ? AND target = ?", (account_id, target)
        )
        return int(rows[0][0]) if rows else None

    def read_markers_of(self, target: str, accounts: Iterable[int]) -> dict[int, int]:
        """The read markers of ``target`` (folded) that ``accounts`` have, by account: a
        query per 500 of them, not one each."""
        ids, found = list(accounts), {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._read(
                f"SELECT account, at FROM read_markers WHERE target = ? AND account IN "
                f"({', '.join('?' * len(chunk))})",
                (target, *chunk),
            )
            found.update((int(account), int(at)) for account, at in rows)
        return found

    def mark_read(self, account_id: int, target: str, at: int) -> int:
        """Queue moving the account's read marker of ``target`` (folded) to ``at`` (unix
        ms), if that is later than where it is; return the ticket of the write. An account
        keeps at most :data:`MAX_READ_MARKERS`: past that, the one set longest ago goes
        (any name may be marked, so the rows are bounded here)."""

        def job(db: Connection) -> None:
            db.execute(
                "INSERT INTO read_markers (account, target, at) VALUES (?, ?, ?) "
                "ON CONFLICT (account, target) DO UPDATE SET at = excluded.at "
                "WHERE excluded.at > read_markers.at",
                (account_id, target, at),
            )
            (count,) = db.execute(
                "SELECT count(*) FROM read_markers WHERE account = ?", (account_id,)
            ).fetchone()
            if count > MAX_READ_MARKERS:  # (the oldest go, ties with them too)
                db.execute(
                    "DELETE FROM read_markers WHERE account = ? AND at <= (SELECT at FROM "
                    "read_markers WHERE account = ? ORDER BY at LIMIT 1 OFFSET ?)",
                    (account_id, account_id, count - MAX_READ_MARKERS - 1),
                )

        return self.write(job)

    # -- metadata ---------------------------------------------------------------------------

    def metadata_of(self, owner: str) -> dict[str, str]:
        """The keys and values ``owner`` keeps (IRCv3 draft/metadata-2): an account's
        (``@<id>``) or a registered room's (its folded name), by key."""
        rows = self._read("SELECT key, value FROM metadata WHERE owner = ? ORDER BY key", (owner,))
        return {str(key): str(value) for key, value in rows}

    def set_metadata(self, owner: str, key: str, value: str | None) -> int:
        """Queue setting ``owner``'s ``key`` to ``value`` (None: removing it); return the
        ticket of the write."""
        if value is None:
            return self.write(
                lambda db: db.execute(
                    "DELETE FROM metadata WHERE owner = ? AND key = ?", (owner, key)
                )
            )
        return self.write(
            lambda db: db.execute(
                "INSERT INTO metadata (owner, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value",
                (owner, key, value),
            )
        )

    def replace_metadata(self, owner: str, items: Iterable[tuple[str, str]]) -> int:
        """Queue making ``items`` all that ``owner`` keeps; return the ticket."""
        rows = [(owner, key, value) for key, value in items]

        def job(db: Connection) -> None:
            db.execute("DELETE FROM metadata WHERE owner = ?", (owner,))
            if rows:
                db.executemany("INSERT INTO metadata (owner, key, value) VALUES (?, ?, ?)", rows)

        return self.write(job)

    # -- registered rooms -------------------------------------------------------------------

    def rename_room(self, old: str, new: str, name: str) -> int:
        """Queue moving a room's history, read markers, registration and metadata from the
        folded name ``old`` to ``new`` (shown as ``name``: IRCv3 draft/channel-rename); what was
        kept under ``new`` before (a room of that name, since emptied) is deleted first, so
        that it is not taken for this room's. Return the ticket of the write."""

        def job(db: Connection) -> None:
            if new != old:
                db.execute("DELETE FROM messages WHERE target = ?", (new,))
                db.execute("DELETE FROM read_markers WHERE target = ?", (new,))
                db.execute("DELETE FROM rooms WHERE name = ?", (new,))
                db.execute("DELETE FROM metadata WHERE owner = ?", (new,))
                db.execute("UPDATE read_markers SET target = ? WHERE target = ?", (new, old))
                db.execute("UPDATE metadata SET owner = ? WHERE owner = ?", (new, old))
            db.execute(
                "UPDATE messages SET target = ?, recipient = ? WHERE target = ?", (new, name, old)
            )
            db.execute("UPDATE rooms SET name = ?, display = ? WHERE name = ?", (new, name, old))
            moved = self._touched.pop(old, 0)  # (new's own, if any, were deleted)
            self._touched.pop(new, None)
            if moved:
                self._touched[new] = moved

        return self.write(job)

    def rooms(self) -> list[RoomRecord]:
        rows = self._read(
            "SELECT display, founder, created, topic, topic_by, topic_at, modes, key, "
            "user_limit, operators FROM rooms"
        )
        return [RoomRecord(*row[:9], tuple(row[9].split())) for row in rows]

    def save_room(self, folded: str, room: RoomRecord) -> None:
        """Create or update a registered room (queued; not waited for)."""
        values = (
            folded,
            room.name,
            room.founder,
            room.created,
            room.topic,
            room.topic_by,
            room.topic_at,
            room.modes,
            room.key,
            room.limit,
            " ".join(room.operators),
        )
        self.write(
            lambda db: db.execute(
                "INSERT INTO rooms (name, display, founder, created, topic, topic_by, "
                "topic_at, modes, key, user_limit, operators) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in _ROOM_COLUMNS[1:]),
                values,
            )
        )

    def drop_room(self, folded: str) -> None:
        def job(db: Connection) -> None:
            db.execute("DELETE FROM rooms WHERE name = ?", (folded,))
            db.execute("DELETE FROM metadata WHERE owner = ?", (folded,))

        self.write(job)


def _never() -> bool:
    return False


def _when(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
