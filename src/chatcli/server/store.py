"""The server's memory on disk: accounts, registered rooms and history, in one SQLite file.

This module owns all SQL. Writes from every connection thread go through one writer thread
that commits what has gathered in one transaction (group commit): a message costs its
sender a queue append and, where it must be durable before the server confirms it, a wait
for the next commit. Reads use a connection of their own, under a lock.

The file is in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the
server being killed (it is in the WAL, which the OS holds), though not a power cut in the
next instant. The schema has a version (``PRAGMA user_version``); migrations run forward at
start-up. A file that is locked, corrupt, of a newer version or not writable stops start-up
with :class:`StoreError` (one line), and is never overwritten.
"""

from __future__ import annotations

import bisect
import contextlib
import enum
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from chatcli.defaults import data_dir
from chatcli.errors import ChatError, ExitStatus
from chatcli.files import (
    create_private,
    how_to_fix,
    private_dir,
    private_file,
    readable_by_others,
)

log = logging.getLogger("chatcli.server")

#: Each migration takes the schema from its index to the next version: SQL, or a function
#: that runs in the migration's transaction.
MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    """
    CREATE TABLE accounts (
        name TEXT PRIMARY KEY,          -- folded
        display TEXT NOT NULL,          -- as registered
        password TEXT NOT NULL,         -- chatcli.passwords hash
        created INTEGER NOT NULL        -- unix seconds
    );
    CREATE TABLE rooms (
        name TEXT PRIMARY KEY,          -- folded
        display TEXT NOT NULL,
        founder TEXT NOT NULL,          -- account (folded)
        created INTEGER NOT NULL,
        topic TEXT NOT NULL DEFAULT '',
        topic_by TEXT NOT NULL DEFAULT '',
        topic_at INTEGER NOT NULL DEFAULT 0,
        modes TEXT NOT NULL DEFAULT '',
        key TEXT,
        user_limit INTEGER,
        operators TEXT NOT NULL DEFAULT '' -- accounts (folded), space-separated
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,         -- the order things happened in
        msgid TEXT NOT NULL UNIQUE,
        at INTEGER NOT NULL,            -- unix milliseconds
        target TEXT NOT NULL,           -- folded room, or a direct conversation's key
        command TEXT NOT NULL,          -- PRIVMSG or NOTICE
        source TEXT NOT NULL,           -- nick!user@host
        account TEXT,                   -- the sender's, if logged in
        recipient TEXT NOT NULL,        -- the room or nick as addressed
        text TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT ''   -- the sender's client-only tags, serialised
    );
    CREATE INDEX messages_by_target ON messages (target, id);
    CREATE TABLE pending (              -- direct messages for accounts that were offline
        account TEXT NOT NULL,
        message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE
    );
    CREATE INDEX pending_by_account ON pending (account, message);
    """,
    """
    CREATE TABLE secrets (              -- the server's own keys, made once (see SECRETS)
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    """,
    lambda db: _stable_identities(db),
)
SCHEMA_VERSION = len(MIGRATIONS)
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
#: the writer stopped for good; the disk's troubles have their own (:func:`_disk_trouble`).
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


def _disk_trouble(exc: BaseException) -> str | None:
    """Why a failed write says something of the disk or the file rather than of the job
    (no use trying the other jobs of its transaction on their own), as the sender is told;
    None for any other error."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(exc).lower()
    if code == 13 or "full" in text:  # SQLITE_FULL
        return "the server's disk is full"
    if code == 8 or "readonly" in text or "read-only" in text:  # SQLITE_READONLY
        return "the server's database is read-only"
    if code == 10 or "i/o" in text:  # SQLITE_IOERR
        return "the server's disk failed (I/O error)"
    if code == 14 or "unable to open" in text:  # SQLITE_CANTOPEN
        return "the server cannot open its database"
    if code in (5, 6) or "locked" in text or "busy" in text:  # SQLITE_BUSY, SQLITE_LOCKED
        return "the server's database is locked"
    return None


class StoreError(ChatError):
    """The database cannot be used; the message says which file and why."""

    exit_status = ExitStatus.ERROR


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


def identity_of(account_id: int) -> str:
    """The identity string of the account ``account_id`` (see :attr:`Account.identity`)."""
    return f"@{account_id}"


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


_MESSAGE_COLUMNS = "id, msgid, at, target, command, source, account, recipient, text, tags"
_INSERT_MESSAGE = (
    "INSERT INTO messages (msgid, at, target, command, source, account, recipient, text, "
    "tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
Job = Callable[[sqlite3.Connection], object] | tuple[object, ...]


#: Targets whose new messages are counted at once (for trimming); past it, all are trimmed
#: and forgotten: a server sees many small conversations, and this must not grow with them.
MAX_TOUCHED = 10_000


class Store:
    """The database. :meth:`open` it, :meth:`close` it; thread-safe in between.

    Args:
        path: the SQLite file.
        retention: how much history to keep.
        on_fatal: called once, with a one-line reason, if the writer cannot go on (its
            connection unusable, or failing again and again where it should not): the
            server must then stop, with a non-zero exit, rather than run on without a
            history. Called on the writer's thread; it must not wait for the store. Also
            settable as the attribute ``on_fatal`` before :meth:`open`.
    """

    def __init__(
        self,
        path: Path,
        retention: Retention | None = None,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.retention = retention or Retention()
        self.on_fatal = on_fatal
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
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
        self._lock_fd: int | None = None  # the open <file>.lock, while we hold it
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
        """Open (creating if new) and migrate; start the writer.

        The file holds password hashes, the cloak key and direct messages: a new one is made
        0600, with its ``-wal`` and ``-shm``, in a directory made 0700 if it is new. Of an
        existing directory, only chatcli's data directory is narrowed to 0700 (one the user
        chose is theirs: see :mod:`chatcli.files`). A database that other users may read is
        used all the same, with a warning that says how to make it private.

        Raises:
            StoreError: the file cannot be used (locked, corrupt, newer, read-only...).
        """
        directory, ours = self.path.parent, False
        try:
            ours = directory.resolve() == data_dir().resolve()
            private_dir(directory, tighten=ours)
            self._take_lock()
            self._writer = self._connect()
            self._migrate(self._writer)
            self._secrets = self._load_secrets(self._writer)
            self._reader = self._connect()
        except StoreError:
            self._close_connections()
            raise
        except sqlite3.DatabaseError as exc:
            self._close_connections()
            raise StoreError(f"cannot use the database {self.path}: {_explain(exc)}") from None
        except OSError as exc:
            self._close_connections()
            raise StoreError(
                f"cannot use the database {self.path}: {exc.strerror or exc}"
            ) from None
        files = [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")]
        candidates = ([directory] if ours else []) + files
        exposed = [path for path in candidates if readable_by_others(path)]
        if exposed:
            log.warning(
                "the database %s is open to other users, and it holds password hashes, the "
                "cloak key and direct messages: make it private with %s",
                self.path,
                how_to_fix(exposed),
            )
        self._thread = threading.Thread(target=self._write_loop, name="store", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, stop the writer, close the file. Idempotent."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._close_connections()

    @property
    def lock_path(self) -> Path:
        """The lock file beside the database: held by the one server that uses it."""
        return Path(f"{self.path}.lock")

    def _take_lock(self) -> None:
        """Hold ``<file>.lock`` exclusively until :meth:`close`, with our pid in it.

        An advisory lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) rather than the
        file's mere presence: the system lets it go when the process ends, however it ends,
        so a crash leaves nothing to clean up. The file itself stays (deleting it would
        let a third server lock a new file while a second still holds the old one).
        ``flock`` locks belong to the open file, so a second Store in the same process is
        refused as well.

        Raises:
            StoreError: another process (or Store) holds it; the message names the file and
                the pid written in it.
        """
        if self._lock_fd is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock_file(fd)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StoreError(
                f"{self.path} is in use by another chat serve"
                + (f" (pid {holder})" if holder else "")
                + ": stop it first, or give this one another --db"
            ) from None
        with contextlib.suppress(OSError):  # the pid is for the message; the lock is what counts
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # no stale pid for the next refusal to name
            os.close(fd)  # (and with it the lock)

    def _connect(self) -> sqlite3.Connection:
        # SQLite makes a new database 0644 (less the umask), and its -wal and -shm with the
        # database's mode: made first, 0600, the database and those files are private.
        create_private(self.path)
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 5000")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL journal mode (got {mode})")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        if not readable_by_others(self.path):  # and a -wal or -shm left wider follows it
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(OSError):  # not ours to change: open() warns
                    private_file(f"{self.path}{suffix}")
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"it is from a newer chatcli (schema {version}; this one knows up to "
                f"{SCHEMA_VERSION})"
            )
        db.execute("PRAGMA quick_check")  # raises DatabaseError on a damaged file
        for number in range(version, SCHEMA_VERSION):
            migration = MIGRATIONS[number]
            db.execute("BEGIN IMMEDIATE")
            try:
                if callable(migration):  # in the transaction, the new version with it
                    migration(db)
                else:  # executescript commits first: the version gets a transaction of its own
                    db.executescript(migration.replace("\n    ", "\n"))
                    db.execute("BEGIN IMMEDIATE")
                db.execute(f"PRAGMA user_version = {number + 1}")
                db.execute("COMMIT")
            except sqlite3.Error:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            log.info("database %s migrated to schema %d", self.path, number + 1)

    def _load_secrets(self, db: sqlite3.Connection) -> dict[str, bytes]:
        """Every one of SECRETS, making (and keeping) those the file does not hold yet."""
        query = "SELECT name, value FROM secrets"
        found = {name: bytes(value) for name, value in db.execute(query)}
        missing = [name for name in SECRETS if name not in found]
        for name in missing:  # OR IGNORE: should another server have just made it, its wins
            db.execute(
                "INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)",
                (name, secrets.token_bytes(SECRET_BYTES)),
            )
        if missing:
            found = {name: bytes(value) for name, value in db.execute(query)}
        return found

    def secret(self, name: str) -> bytes:
        """The server's secret ``name`` (one of :data:`SECRETS`): the same from one run to
        the next. The store must be open."""
        return self._secrets[name]

    def _close_connections(self) -> None:
        for db in (self._reader, self._writer):
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
        self._reader = self._writer = None
        self._release_lock()

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
            self._reader.execute("SELECT 1 FROM accounts LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            return f"a read failed: {exc}"
        finally:
            self._read_lock.release()
        return None

    def _write_loop(self) -> None:
        """The writer thread: take what is queued, write it in one transaction, settle it.

        A write that fails for the disk's sake (full, read-only, I/O error: see
        :func:`_disk_trouble`) is settled not kept at once, with the rest of its
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

    def _write_batch(
        self, db: sqlite3.Connection, first: int, jobs: list[Job]
    ) -> tuple[list[int], str]:
        """Write ``jobs`` (tickets from ``first``); return the tickets not kept, and why."""
        every = list(range(first, first + len(jobs)))
        failing = self._failing_since is not None and time.monotonic() < self._retry_at
        if failing and not self._stop:  # (closing: one last try)
            return every, self._reason  # not tried: the disk is failing
        error = self._commit(db, jobs)
        if error is None:
            self._recovered()
            return [], ""
        trouble = _disk_trouble(error)
        if trouble is not None:  # (a full disk fails them all)
            self._failing(trouble, error)
            return every, trouble
        if len(jobs) == 1:
            _log_job_error(error)
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
            trouble = _disk_trouble(error)
            if trouble is None:
                _log_job_error(error)
            else:
                self._failing(trouble, error)
        if trouble is None:
            self._recovered()
        return lost, trouble or JOB_REASON

    def _commit(self, db: sqlite3.Connection, jobs: list[Job]) -> Exception | None:
        """Run ``jobs`` in one transaction; the error (rolled back) if it failed, for
        whatever reason: a full disk, or a job that raised."""
        if db.in_transaction:  # a failed COMMIT may leave one open; it cannot be ours
            db.execute("ROLLBACK")  # (if this fails, the connection is unusable: _survive)
        started = time.perf_counter()
        try:
            db.execute("BEGIN")
            self._run(db, jobs)
            self._since_prune += len(jobs)
            self._trim(db)
            if self._since_prune >= 1000:
                self._since_prune = 0
                self._expire(db)
            db.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
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
                error,
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

    def _survive(self, db: sqlite3.Connection, exc: Exception, last: int) -> bool:
        """The writer's own code raised ``exc`` (with tickets up to ``last`` taken): log it,
        settle what it was busy with as not kept, and say whether it may go on."""
        log.error("the database writer failed unexpectedly; it goes on", exc_info=exc)
        now = time.monotonic()
        self._crashes.append(now)
        why = ""
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
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

    def _run(self, db: sqlite3.Connection, jobs: list[Job]) -> None:
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

    def _trim(self, db: sqlite3.Connection) -> None:
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

    def _expire(self, db: sqlite3.Connection) -> None:
        if self.retention.days > 0:
            cutoff = int((time.time() - self.retention.days * 86400) * 1000)
            db.execute("DELETE FROM messages WHERE at < ?", (cutoff,))

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        with self._read_lock:
            assert self._reader is not None, "the store is not open"
            return self._reader.execute(sql, tuple(params)).fetchall()

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

        def job(db: sqlite3.Connection) -> None:
            self._touched[message.target] = self._touched.get(message.target, 0) + 1
            cursor = db.execute(_INSERT_MESSAGE, row)
            for owner in owners:
                db.execute(
                    "INSERT INTO pending (account, message) VALUES (?, ?)",
                    (owner, cursor.lastrowid),
                )

        return self.write(job, on_lost)

    def latest(self, target: str, limit: int) -> list[Stored]:
        """The last ``limit`` messages of ``target``, oldest first."""
        rows = self._read(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE target = ? ORDER BY id DESC LIMIT ?",
            (target, limit),
        )
        return [Stored(*row) for row in reversed(rows)]

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
    ) -> list[Stored]:
        """Messages of ``target`` strictly after ``after`` and before ``before``, each an
        (id, at) bound where either part may be used: an id of -1 means "by time"."""
        where, params = ["target = ?"], [target]
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
        first; they are no longer pending once taken."""
        rows = self._read(
            f"SELECT {', '.join('m.' + c for c in _MESSAGE_COLUMNS.split(', '))} "
            "FROM pending p JOIN messages m ON m.id = p.message WHERE p.account = ? "
            "ORDER BY m.id",
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

        def job(db: sqlite3.Connection) -> None:
            cursor = db.execute(
                "INSERT OR IGNORE INTO accounts (name, display, password, created) "
                "VALUES (?, ?, ?, ?)",
                (folded, display, password_hash, int(time.time())),
            )
            if cursor.rowcount == 1 and cursor.lastrowid is not None:
                created.append(cursor.lastrowid)

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
        sides. Waits for the commit."""
        mine = _like_escape(identity_of(account_id))

        def job(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE accounts SET password = '', dropped = ? WHERE id = ?",
                (int(time.time()), account_id),
            )
            db.execute("DELETE FROM pending WHERE account = ?", (account_id,))
            db.execute(
                "DELETE FROM messages WHERE target LIKE ? ESCAPE '\\' OR target LIKE ? ESCAPE '\\'",
                (f"dm:{mine}\x00%", f"dm:%\x00{mine}"),
            )

        self._must(self.write(job))

    def erase_account(self, folded: str) -> bool:
        """Free the name of a dropped account, so that it can be registered again (by
        anyone: nothing of the old account is left to inherit). False if ``folded`` is no
        dropped account. Waits for the commit."""
        erased: list[bool] = []

        def job(db: sqlite3.Connection) -> None:
            cursor = db.execute(
                "DELETE FROM accounts WHERE name = ? AND dropped IS NOT NULL", (folded,)
            )
            erased.append(cursor.rowcount == 1)

        self._must(self.write(job))
        return bool(erased and erased[0])

    # -- registered rooms -------------------------------------------------------------------

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
                "INSERT OR REPLACE INTO rooms (name, display, founder, created, topic, "
                "topic_by, topic_at, modes, key, user_limit, operators) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        )

    def drop_room(self, folded: str) -> None:
        self.write(lambda db: db.execute("DELETE FROM rooms WHERE name = ?", (folded,)))


def _stable_identities(db: sqlite3.Connection) -> None:
    """Schema 3: accounts get a stable id (never reused: AUTOINCREMENT) and a tombstone
    (``dropped``); direct conversations, waiting messages and registered rooms refer to
    accounts by ``@<id>`` instead of a name that could be registered again. What still
    named an account that no longer exists (left by a drop before this version) is
    deleted: it would otherwise pass to whoever registers that name next."""
    db.execute(
        "CREATE TABLE accounts_by_id ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"  # the account's identity: @<id>
        " name TEXT NOT NULL UNIQUE,"  # folded; kept reserved once dropped
        " display TEXT NOT NULL,"  # as registered
        " password TEXT NOT NULL,"  # chatcli.passwords hash; '' once dropped
        " created INTEGER NOT NULL,"  # unix seconds
        " dropped INTEGER)"  # unix seconds; NULL while the account exists
    )
    db.execute(
        "INSERT INTO accounts_by_id (name, display, password, created) "
        "SELECT name, display, password, created FROM accounts ORDER BY created, name"
    )
    db.execute("DROP TABLE accounts")
    db.execute("ALTER TABLE accounts_by_id RENAME TO accounts")
    ids = {name: identity_of(i) for i, name in db.execute("SELECT id, name FROM accounts")}

    def side(name: str) -> str | None:
        return name if name.startswith("~") else ids.get(name)

    conversations = [t for (t,) in db.execute("SELECT DISTINCT target FROM messages")]
    for target in conversations:
        if not target.startswith("dm:"):
            continue
        sides = [side(name) for name in target[3:].split("\x00")]
        if len(sides) != 2 or None in sides:
            db.execute("DELETE FROM messages WHERE target = ?", (target,))
        else:
            db.execute(
                "UPDATE messages SET target = ? WHERE target = ?",
                (f"dm:{sides[0]}\x00{sides[1]}", target),
            )
    db.execute(
        "CREATE TABLE pending_by_id ("
        " account INTEGER NOT NULL,"  # accounts.id
        " message INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE)"
    )
    db.execute(
        "INSERT INTO pending_by_id (account, message) SELECT a.id, p.message "
        "FROM pending p JOIN accounts a ON a.name = p.account"
    )
    db.execute("DROP TABLE pending")
    db.execute("ALTER TABLE pending_by_id RENAME TO pending")
    db.execute("CREATE INDEX pending_by_account ON pending (account, message)")
    rooms = list(db.execute("SELECT name, founder, operators FROM rooms"))
    for room, founder, operators in rooms:  # founder and operators: @<id> from now on
        kept = [ids[name] for name in operators.split() if name in ids]
        heir = ids.get(founder) or (kept[0] if kept else None)
        if heir is None:
            db.execute("DELETE FROM rooms WHERE name = ?", (room,))
        else:
            db.execute(
                "UPDATE rooms SET founder = ?, operators = ? WHERE name = ?",
                (heir, " ".join(sorted(set(kept) | {heir})), room),
            )


def _never() -> bool:
    return False


def _log_job_error(error: Exception) -> None:
    """A job's own failure (not the disk's): a bug, or bad data; worth its traceback unless
    SQLite said it all."""
    if isinstance(error, sqlite3.Error):
        log.error("writing to the database failed: %s", error)
    else:
        log.error("writing to the database failed", exc_info=error)


def _when(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(wall))


def _lock_file(fd: int) -> None:
    """Lock the open file ``fd`` exclusively, without waiting (OSError if it is held)."""
    if os.name == "nt":
        import msvcrt

        # A byte far past the pid, so that others may still read the pid (Windows locks
        # are mandatory); a lock may lie beyond the end of the file.
        os.lseek(fd, 1 << 20, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        os.lseek(fd, 0, os.SEEK_SET)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_pid(fd: int) -> int | None:
    """The pid written in the lock file ``fd``, if any."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _explain(exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return "it is locked by another program (is another chat serve using it?)"
    if "readonly" in text or "read-only" in text:
        return "it is read-only"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return "it is not a chatcli database, or it is damaged"
    if "unable to open" in text:
        return "it cannot be opened (check the directory and its permissions)"
    return text
