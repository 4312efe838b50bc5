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

import contextlib
import logging
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


#: What a failed write says of the disk or the file, not of the job: no use trying again.
_DISK = sqlite3.OperationalError


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
    """The database. :meth:`open` it, :meth:`close` it; thread-safe in between."""

    def __init__(self, path: Path, retention: Retention | None = None) -> None:
        self.path = path
        self.retention = retention or Retention()
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        # A job is a function run in the writer's transaction, or a message row to insert
        # (rows that follow one another are inserted with one executemany).
        self._jobs: deque[Job] = deque()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the writer waits on it for work
        self._done = threading.Condition(lock)  # and callers of wait() for commits
        self._written = 0  # jobs committed so far
        self._queued = 0  # jobs queued so far
        self._stop = False
        self._thread: threading.Thread | None = None
        # The tickets of the latest transactions that failed (rolled back), as ranges.
        self._failed: deque[tuple[int, int]] = deque(maxlen=64)
        self._since_prune = 0
        # Messages added per target since it was last trimmed to the retention limit.
        self._touched: dict[str, int] = {}
        self._secrets: dict[str, bytes] = {}  # SECRETS, read once at open

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
            self._writer = self._connect()
            self._migrate(self._writer)
            self._secrets = self._load_secrets(self._writer)
            self._reader = self._connect()
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

    # -- the writer -------------------------------------------------------------------------

    def write(self, job: Job) -> int:
        """Queue ``job`` (it runs in the writer's transaction); return a ticket for
        :meth:`wait`. Never blocks."""
        with self._cond:
            self._jobs.append(job)
            self._queued += 1
            ticket = self._queued
            if len(self._jobs) == 1:
                self._cond.notify()
        return ticket

    def wait(self, ticket: int, timeout: float = 10.0) -> bool:
        """Wait until the job with ``ticket`` is written; False on timeout, or if its
        transaction failed (a failure costs only the jobs that were in it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._written < ticket:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._done.wait(left)
            return not any(first <= ticket <= last for first, last in self._failed)

    def _must(self, ticket: int) -> None:
        if not self.wait(ticket):
            raise StoreError(f"cannot write to the database {self.path}")

    def committed(self, ticket: int) -> bool:
        """Whether the job with ``ticket`` is committed (a glance: no lock, no wait)."""
        return self._written >= ticket

    def sync(self) -> bool:
        """Wait until everything queued so far is committed."""
        with self._cond:
            ticket = self._queued
        return self.wait(ticket)

    def _write_loop(self) -> None:
        db = self._writer
        assert db is not None
        while True:
            with self._cond:
                while not self._jobs and not self._stop:
                    self._cond.wait()
                if not self._jobs and self._stop:
                    return
                jobs = list(self._jobs)
                self._jobs.clear()
            first = self._written + 1  # the first job's ticket
            error = self._commit(db, jobs)
            if len(jobs) > 1 and error is not None and not isinstance(error, _DISK):
                # One bad job must not cost the others theirs: each again, on its own.
                for ticket, job in enumerate(jobs, first):
                    if self._commit(db, [job]) is not None:
                        self._fail(ticket, ticket)
            elif error is not None:  # (a full disk fails them all)
                self._fail(first, first + len(jobs) - 1)
            with self._cond:
                self._written += len(jobs)
                self._done.notify_all()

    def _commit(self, db: sqlite3.Connection, jobs: list[Job]) -> Exception | None:
        """Run ``jobs`` in one transaction; the error (rolled back, and logged) if it
        failed, for whatever reason: a full disk, or a job that raised. The writer goes
        on."""
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
            if isinstance(exc, sqlite3.Error):
                log.error("writing to the database failed: %s", exc)
            else:
                log.error("writing to the database failed", exc_info=exc)
            return exc
        return None

    def _fail(self, first: int, last: int) -> None:
        """Note the tickets ``first`` to ``last`` as failed (for :meth:`wait`), joined to
        the failures just before them, so that a run of them takes one entry."""
        with self._cond:
            if self._failed and self._failed[-1][1] == first - 1:
                first = self._failed.pop()[0]
            self._failed.append((first, last))

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

    def record(self, message: Stored, pending_for: Iterable[int] = ()) -> int:
        """Queue ``message`` for history (and for the offline accounts ``pending_for``, by
        id); return the ticket of its write."""
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
            return self.write(row)

        def job(db: sqlite3.Connection) -> None:
            self._touched[message.target] = self._touched.get(message.target, 0) + 1
            cursor = db.execute(_INSERT_MESSAGE, row)
            for owner in owners:
                db.execute(
                    "INSERT INTO pending (account, message) VALUES (?, ?)",
                    (owner, cursor.lastrowid),
                )

        return self.write(job)

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
