"""The SQL engines the store runs on, and what differs between them.

:class:`~chatcli.server.store.Store` writes its jobs and reads once, in the SQL both
engines speak (``?`` placeholders, ``INSERT ... ON CONFLICT``, ``LIKE ... ESCAPE``), on a
:class:`Connection` of this module. What differs lives here, in an :class:`Engine`:

- connecting, and the schema and its version;
- whether several servers may share the database (:attr:`Engine.shared`): a SQLite file is
  one server's, held with a lock file beside it; a PostgreSQL database is every node's of
  a cluster;
- which errors say something of the database rather than of the job (a full disk, a
  database gone away: :meth:`Engine.trouble`), and how a failure to open is explained in
  one line (:meth:`Engine.explain`).

:func:`chatcli.server.store.engine_for` picks one from ``--db``: a ``postgresql://`` URL is
PostgreSQL (:mod:`chatcli.server.postgres`, imported only then), anything else a SQLite
file (:class:`SQLiteEngine`, here).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

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


class StoreError(ChatError):
    """The database cannot be used; the message says which and why."""

    exit_status = ExitStatus.ERROR


class Cursor(Protocol):
    """What a statement gives back (a DB-API cursor, or the like)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """A connection to the database, in autocommit mode: a transaction is what lies
    between :meth:`begin` and :meth:`commit` (or :meth:`rollback`). SQL is written with
    ``?`` placeholders, whatever the engine."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...

    def insert(self, sql: str, params: Sequence[object]) -> int | None:
        """Run the ``INSERT`` ``sql`` of one row into a table with an ``id`` column: the
        new row's id, or None if no row was inserted (``ON CONFLICT DO NOTHING``)."""
        ...

    def begin(self) -> None:
        """Start a transaction (connecting again first if the connection was lost, where
        the engine can)."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    @property
    def in_transaction(self) -> bool: ...

    @property
    def lost(self) -> bool:
        """Whether the connection was lost (the database went away since it was made)."""
        ...

    def ensure(self) -> None:
        """Connect again if the connection was lost and the engine can; else nothing."""
        ...

    def close(self) -> None: ...


class Engine(Protocol):
    """One database, and how to use it. Made by :func:`chatcli.server.store.engine_for`."""

    #: How the database is named in messages and the log: the file, or the URL without
    #: its password.
    name: Path | str
    #: Whether several servers may use it at once (PostgreSQL): then no lock file keeps
    #: a second one out, and what must happen once (taking waiting messages) happens in
    #: one statement.
    shared: bool
    #: The driver's errors: a job that raises one of these failed in the database.
    errors: tuple[type[Exception], ...]

    def prepare(self) -> None:
        """Before connecting: make the place ready, take the database for this server if
        it is one server's. Raises StoreError or one of :attr:`errors` (or OSError)."""
        ...

    def connect(self) -> Connection: ...

    def migrate(self, db: Connection) -> None:
        """Check the database and bring its schema to the current version."""
        ...

    def opened(self) -> None:
        """After a successful open: warnings about the database's place, if any."""
        ...

    def release(self) -> None:
        """Let go of what :meth:`prepare` took (idempotent)."""
        ...

    def trouble(self, exc: BaseException) -> str | None:
        """Why a failed write says something of the database (full, gone, read-only)
        rather than of the job, as a sender is told; None for any other error."""
        ...

    def explain(self, exc: Exception) -> str:
        """Why the database cannot be opened, in a few words (one line)."""
        ...


# -- SQLite -----------------------------------------------------------------------------------

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
    """
    CREATE TABLE read_markers (         -- IRCv3 draft/read-marker: what each account has read
        account INTEGER NOT NULL,       -- accounts.id
        target TEXT NOT NULL,           -- folded room or nick, as the client names it
        at INTEGER NOT NULL,            -- unix milliseconds of the last message read
        PRIMARY KEY (account, target)
    );
    """,
    """
    CREATE TABLE metadata (             -- IRCv3 draft/metadata-2: what accounts and rooms keep
        owner TEXT NOT NULL,            -- @<account id>, or a registered room (folded)
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (owner, key)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class SQLiteConnection:
    """A :class:`Connection` to a SQLite file (``sqlite3`` speaks ``?`` already)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.raw = db

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self.raw.execute(sql, params)  # type: ignore[arg-type]

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self.raw.executemany(sql, rows)  # type: ignore[arg-type]

    def insert(self, sql: str, params: Sequence[object]) -> int | None:
        cursor = self.raw.execute(sql, params)  # type: ignore[arg-type]
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def begin(self) -> None:
        self.raw.execute("BEGIN")

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self.raw.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    @property
    def lost(self) -> bool:
        return False

    def ensure(self) -> None:
        """A SQLite file's connection is never lost (one closed is a bug: it stays so)."""

    def close(self) -> None:
        self.raw.close()


class SQLiteEngine:
    """A SQLite file: one server's, in WAL mode with ``synchronous=NORMAL``; its schema
    version is ``PRAGMA user_version``; a ``<file>.lock`` beside it keeps a second server
    out.

    The file holds password hashes, the cloak key and direct messages: a new one is made
    0600, with its ``-wal`` and ``-shm``, in a directory made 0700 if it is new. Of an
    existing directory, only chatcli's data directory is narrowed to 0700 (one the user
    chose is theirs: see :mod:`chatcli.files`). A database that other users may read is
    used all the same, with a warning that says how to make it private."""

    shared = False
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name: Path | str = path
        self._ours = False  # whether its directory is chatcli's data directory
        self._lock_fd: int | None = None  # the open <file>.lock, while we hold it

    @property
    def lock_path(self) -> Path:
        """The lock file beside the database: held by the one server that uses it."""
        return Path(f"{self.path}.lock")

    def prepare(self) -> None:
        directory = self.path.parent
        self._ours = directory.resolve() == data_dir().resolve()
        private_dir(directory, tighten=self._ours)
        self._take_lock()

    def _take_lock(self) -> None:
        """Hold ``<file>.lock`` exclusively until :meth:`release`, with our pid in it.

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

    def release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # no stale pid for the next refusal to name
            os.close(fd)  # (and with it the lock)

    def connect(self) -> SQLiteConnection:
        # SQLite makes a new database 0644 (less the umask), and its -wal and -shm with the
        # database's mode: made first, 0600, the database and those files are private.
        create_private(self.path)
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout = 5000")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL journal mode (got {mode})")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            db.close()
            raise
        if not readable_by_others(self.path):  # and a -wal or -shm left wider follows it
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(OSError):  # not ours to change: opened() warns
                    private_file(f"{self.path}{suffix}")
        return SQLiteConnection(db)

    def migrate(self, db: Connection) -> None:
        assert isinstance(db, SQLiteConnection)
        raw = db.raw
        version = raw.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"it is from a newer chatcli (schema {version}; this one knows up to "
                f"{SCHEMA_VERSION})"
            )
        raw.execute("PRAGMA quick_check")  # raises DatabaseError on a damaged file
        for number in range(version, SCHEMA_VERSION):
            migration = MIGRATIONS[number]
            raw.execute("BEGIN IMMEDIATE")
            try:
                if callable(migration):  # in the transaction, the new version with it
                    migration(raw)
                else:  # executescript commits first: the version gets a transaction of its own
                    raw.executescript(migration.replace("\n    ", "\n"))
                    raw.execute("BEGIN IMMEDIATE")
                raw.execute(f"PRAGMA user_version = {number + 1}")
                raw.execute("COMMIT")
            except sqlite3.Error:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            log.info("database %s migrated to schema %d", self.path, number + 1)

    def opened(self) -> None:
        directory = self.path.parent
        files = [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")]
        candidates = ([directory] if self._ours else []) + files
        exposed = [path for path in candidates if readable_by_others(path)]
        if exposed:
            log.warning(
                "the database %s is open to other users, and it holds password hashes, the "
                "cloak key and direct messages: make it private with %s",
                self.path,
                how_to_fix(exposed),
            )

    def trouble(self, exc: BaseException) -> str | None:
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

    def explain(self, exc: Exception) -> str:
        if isinstance(exc, OSError):
            return exc.strerror or str(exc)
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


def identity_of(account_id: int) -> str:
    """The identity string of the account ``account_id``: ``@<id>``, never its name, which
    may one day belong to someone else (see :attr:`chatcli.server.store.Account.identity`)."""
    return f"@{account_id}"


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
