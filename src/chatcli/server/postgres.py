"""PostgreSQL for the store: one database that every node of a cluster shares.

``chat serve --db postgresql://user@host:port/dbname`` (a libpq URL) keeps accounts,
registered rooms, history and waiting direct messages here instead of in a SQLite file.
The store is the same (:class:`chatcli.server.store.Store`: one writer thread committing
in groups, reads on a connection of their own); this module is what differs
(:class:`chatcli.server.sqldb.Engine`):

- psycopg 3 (``pip install 'chatcli-irc[cluster]'``), imported when a URL is used, never
  otherwise;
- every wait is bounded: connecting (``connect_timeout``), each statement
  (``statement_timeout``), and a peer that stops answering (TCP keepalives and
  ``tcp_user_timeout``); a URL may set its own;
- a lost connection (PostgreSQL restarted, a failover) is made again when next used: the
  writes of the moment are not kept and their senders told (the store is *failing*, as on
  a full disk), and writing resumes by itself once the database answers;
- the schema is made at once at the current version, or brought to it from an older one
  (:data:`UPGRADES`); its version is the one row of ``chatcli_schema``; nodes starting
  together make it once (an advisory lock);
- ids come from identity columns, so any number of nodes may write at once; a message is
  recorded once, by the node that took it.

PostgreSQL's ``text`` cannot hold NUL, which the key of a direct conversation does
(``dm:<a>\\0<b>``, :mod:`chatcli.server.history`), so NUL is kept as a line feed, and every
line feed read back is NUL. A line feed is in no key, and in no text but a multiline
message's, between its lines: those come back separated by NUL, which
:func:`chatcli.server.history.line` takes for a line break as it takes a line feed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatcli.dburl import shown
from chatcli.server.sqldb import SCHEMA_VERSION, Connection, StoreError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("chatcli.server")

#: Seconds to wait for a connection (libpq's ``connect_timeout``), unless the URL says.
CONNECT_TIMEOUT = 5
#: The longest any one statement may run, milliseconds (``statement_timeout``): a batch
#: stuck behind a lock fails, and the store says so, rather than holding every sender.
STATEMENT_TIMEOUT_MS = 10_000
#: Unless the URL says otherwise: a peer that stops answering is given up after about
#: this long (keepalives for an idle connection, ``tcp_user_timeout`` for one sending).
DEFAULTS: dict[str, Any] = {
    "connect_timeout": CONNECT_TIMEOUT,
    "application_name": "chatcli",
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
}
#: The advisory lock held while the schema is checked and made (any number, chatcli's).
MIGRATION_LOCK = 0x63686174

#: Schema 4: IRCv3 draft/read-marker, what each account has read (made by SCHEMA too).
READ_MARKERS = (
    """CREATE TABLE read_markers (
        account BIGINT NOT NULL,        -- accounts.id
        target TEXT NOT NULL,           -- folded room or nick, as the client names it
        at BIGINT NOT NULL,             -- unix milliseconds of the last message read
        PRIMARY KEY (account, target)
    )""",
)
#: Schema 5: IRCv3 draft/metadata-2, the keys and values accounts and registered rooms keep.
METADATA = (
    """CREATE TABLE metadata (
        owner TEXT NOT NULL,            -- @<account id>, or a registered room (folded)
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (owner, key)
    )""",
)
#: What takes a database made at a version to the next one: version -> statements.
UPGRADES: dict[int, tuple[str, ...]] = {3: READ_MARKERS, 4: METADATA}

#: The schema at :data:`~chatcli.server.sqldb.SCHEMA_VERSION`, as SQLite's migrations
#: leave it (see :data:`~chatcli.server.sqldb.MIGRATIONS`), in PostgreSQL's types.
SCHEMA = (
    """CREATE TABLE accounts (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- never reused: @<id>
        name TEXT NOT NULL UNIQUE,      -- folded; kept reserved once dropped
        display TEXT NOT NULL,          -- as registered
        password TEXT NOT NULL,         -- chatcli.passwords hash; '' once dropped
        created BIGINT NOT NULL,        -- unix seconds
        dropped BIGINT                  -- unix seconds; NULL while the account exists
    )""",
    """CREATE TABLE rooms (
        name TEXT PRIMARY KEY,          -- folded
        display TEXT NOT NULL,
        founder TEXT NOT NULL,          -- @<account id>
        created BIGINT NOT NULL,
        topic TEXT NOT NULL DEFAULT '',
        topic_by TEXT NOT NULL DEFAULT '',
        topic_at BIGINT NOT NULL DEFAULT 0,
        modes TEXT NOT NULL DEFAULT '',
        key TEXT,
        user_limit BIGINT,
        operators TEXT NOT NULL DEFAULT ''  -- @<account id>, space-separated
    )""",
    """CREATE TABLE messages (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- the order things happened in
        msgid TEXT NOT NULL UNIQUE,
        at BIGINT NOT NULL,             -- unix milliseconds
        target TEXT NOT NULL,           -- folded room, or a direct conversation's key
        command TEXT NOT NULL,          -- PRIVMSG or NOTICE
        source TEXT NOT NULL,           -- nick!user@host
        account TEXT,                   -- the sender's, if logged in
        recipient TEXT NOT NULL,        -- the room or nick as addressed
        text TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT ''   -- the sender's client-only tags, serialised
    )""",
    "CREATE INDEX messages_by_target ON messages (target, id)",
    """CREATE TABLE pending (           -- direct messages for accounts that were offline
        account BIGINT NOT NULL,        -- accounts.id
        message BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE
    )""",
    "CREATE INDEX pending_by_account ON pending (account, message)",
    "CREATE INDEX pending_by_message ON pending (message)",  # (for the cascade)
    """CREATE TABLE secrets (           -- the server's own keys, made once
        name TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    )""",
    "CREATE TABLE chatcli_schema (version INTEGER NOT NULL)",  # one row
    *READ_MARKERS,
    *METADATA,
)


class Result:
    """What a statement gave: its rows (read at once) and how many it changed."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class PostgresConnection:
    """A :class:`chatcli.server.sqldb.Connection` to PostgreSQL, in autocommit mode
    (transactions are explicit), that connects again when its connection was lost."""

    def __init__(self, engine: PostgresEngine) -> None:
        self._engine = engine
        self.raw: psycopg.Connection[tuple[Any, ...]] = engine.raw_connect()

    def execute(self, sql: str, params: Sequence[object] = ()) -> Result:
        cursor = self.raw.execute(_placeholders(sql), _to_db(params))
        rows = [_from_db(row) for row in cursor.fetchall()] if cursor.description else []
        return Result(rows, cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(_placeholders(sql), [_to_db(row) for row in rows])

    def insert(self, sql: str, params: Sequence[object]) -> int | None:
        row = self.execute(f"{sql} RETURNING id", params).fetchone()
        return None if row is None else int(row[0])

    def begin(self) -> None:
        """Start a transaction; on a connection found lost (the database restarted since
        it was last used), connect again and start it there: nothing was done in it yet."""
        self.ensure()
        try:
            self.raw.execute("BEGIN")
        except self._engine.errors:
            if not self.lost:
                raise
            self.ensure()
            self.raw.execute("BEGIN")

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self.raw.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        if self.raw.closed:
            return False  # (a lost connection's transaction is gone with it)
        return self.raw.info.transaction_status is not TransactionStatus.IDLE

    @property
    def lost(self) -> bool:
        return self.raw.closed or self.raw.broken

    def ensure(self) -> None:
        if self.lost:
            with contextlib.suppress(Exception):
                self.raw.close()
            self.raw = self._engine.raw_connect()
            log.info("connected again to the database %s", self._engine.name)

    def close(self) -> None:
        self.raw.close()


class PostgresEngine:
    """A PostgreSQL database, by its libpq URL (:mod:`chatcli.server.postgres`)."""

    shared = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.name: Path | str = shown(url)
        #: The driver's errors (psycopg's, once :meth:`prepare` has imported it).
        self.errors: tuple[type[Exception], ...] = ()
        self._params: dict[str, Any] = {}

    def prepare(self) -> None:
        try:
            import psycopg
            from psycopg.conninfo import conninfo_to_dict
        except ImportError:
            raise StoreError(
                f"cannot use the database {self.name}: PostgreSQL needs psycopg "
                "(pip install 'chatcli-irc[cluster]')"
            ) from None
        self.errors = (psycopg.Error,)
        given = conninfo_to_dict(self.url)  # psycopg.ProgrammingError: not a URL libpq takes
        params = {**DEFAULTS, **given}
        timeout = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
        params["options"] = f"{timeout} {given['options']}" if "options" in given else timeout
        self._params = params

    def raw_connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        return psycopg.connect(**self._params, autocommit=True)

    def connect(self) -> PostgresConnection:
        return PostgresConnection(self)

    def migrate(self, db: Connection) -> None:
        """Make the schema if the database has none, or bring an older one to the current
        version (nodes that start together: one does it, under an advisory lock, and the
        others find it done)."""
        db.begin()
        try:
            db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            (made,) = db.execute("SELECT to_regclass('chatcli_schema') IS NOT NULL").fetchone()
            version = db.execute("SELECT version FROM chatcli_schema").fetchone()[0] if made else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"cannot use the database {self.name}: it is from a newer chatcli "
                    f"(schema {version}; this one knows up to {SCHEMA_VERSION})"
                )
            if version == 0:
                for statement in SCHEMA:
                    db.execute(statement)
                db.execute("INSERT INTO chatcli_schema (version) VALUES (?)", (SCHEMA_VERSION,))
                log.info("database %s made at schema %d", self.name, SCHEMA_VERSION)
            elif version < SCHEMA_VERSION:
                for number in range(version, SCHEMA_VERSION):
                    for statement in UPGRADES[number]:
                        db.execute(statement)
                db.execute("UPDATE chatcli_schema SET version = ?", (SCHEMA_VERSION,))
                log.info("database %s migrated to schema %d", self.name, SCHEMA_VERSION)
            db.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                db.rollback()
            raise

    def opened(self) -> None:
        """Nothing to warn of: who may read the database is PostgreSQL's to say."""

    def release(self) -> None:
        """Nothing is held: several nodes share the database."""

    def trouble(self, exc: BaseException) -> str | None:
        import psycopg

        if not isinstance(exc, psycopg.Error):
            return None
        state = exc.sqlstate or ""
        if state == "53100":  # disk_full
            return "the server's database is full"
        if state == "57014":  # query_canceled: statement_timeout
            return "the server's database did not answer in time"
        if state == "25006":  # read_only_sql_transaction: a standby, say
            return "the server's database is read-only"
        if isinstance(exc, psycopg.OperationalError) and state[:2] in ("", "08", "53", "57"):
            return "the server's database is unavailable"  # gone, restarting, too busy
        return None

    def explain(self, exc: Exception) -> str:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        text = lines[0].removeprefix("connection failed: ").replace("FATAL:  ", "")
        if "Connection refused" in text:
            text += " (is PostgreSQL running there?)"
        return text


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """``sql`` with psycopg's placeholders (``%s``) for ``?``."""
    return sql.replace("%", "%%").replace("?", "%s")


def _to_db(params: Sequence[object]) -> tuple[object, ...]:
    return tuple(p.replace("\x00", "\n") if isinstance(p, str) else p for p in params)


def _from_db(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(v.replace("\n", "\x00") if isinstance(v, str) else v for v in row)
