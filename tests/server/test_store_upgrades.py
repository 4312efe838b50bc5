"""The store on both engines: a database made by an older chatcli is brought to the
current schema on opening and keeps what it held (accounts, registered rooms, history);
what an account keeps of its own (read markers) is bounded.

The old database is made as that version made it: on SQLite, the migrations up to it; on
PostgreSQL, the whole schema without what the upgrades since then add."""

from __future__ import annotations

import sqlite3

import psycopg

from chatcli.server import postgres
from chatcli.server.sqldb import MIGRATIONS, SCHEMA_VERSION
from chatcli.server.store import Store

#: The version before read markers (schema 4): what chatcli 0.x databases are at.
OLD = 3


def fill(execute) -> None:
    """What an old server kept: an account, a registered room and a line of its history."""
    execute("INSERT INTO accounts (name, display, password, created) VALUES ('ada', 'Ada', 'x', 1)")
    execute(
        "INSERT INTO rooms (name, display, founder, created) VALUES ('#team', '#team', '@1', 1)"
    )
    execute(
        "INSERT INTO messages (msgid, at, target, command, source, recipient, text) "
        "VALUES ('m1', 1000, '#team', 'PRIVMSG', 'ada!a@h', '#team', 'said long ago')"
    )


def check_kept_and_current(store: Store) -> None:
    account = store.account("ada")
    assert account is not None and account.name == "Ada"
    assert [room.name for room in store.rooms()] == ["#team"]
    assert [m.text for m in store.latest("#team", 10)] == ["said long ago"]
    # what the upgrades added works: a read marker, kept and read back
    assert store.wait(store.mark_read(account.id, "#team", 1000))
    assert store.read_marker(account.id, "#team") == 1000


def test_an_sqlite_database_of_an_older_version_is_upgraded(tmp_path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:OLD]:
        if callable(migration):
            raw.execute("BEGIN")
            migration(raw)
            raw.execute("COMMIT")
        else:
            raw.executescript(migration)
    raw.execute(f"PRAGMA user_version = {OLD}")
    fill(raw.execute)
    raw.close()

    store = Store(path)
    store.open()
    try:
        check_kept_and_current(store)
    finally:
        store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_a_postgresql_database_of_an_older_version_is_upgraded(pg_url: str) -> None:
    added = {statement for version, more in postgres.UPGRADES.items() if version >= OLD
             for statement in more}  # fmt: skip
    with psycopg.connect(pg_url, autocommit=True) as raw:
        for statement in postgres.SCHEMA:
            if statement not in added:
                raw.execute(statement)
        raw.execute("INSERT INTO chatcli_schema (version) VALUES (%s)", (OLD,))
        raw.execute(
            "INSERT INTO accounts (name, display, password, created) VALUES ('ada', 'Ada', 'x', 1)"
        )
        fill_rest = [
            "INSERT INTO rooms (name, display, founder, created) "
            "VALUES ('#team', '#team', '@1', 1)",
            "INSERT INTO messages (msgid, at, target, command, source, recipient, text) "
            "VALUES ('m1', 1000, '#team', 'PRIVMSG', 'ada!a@h', '#team', 'said long ago')",
        ]
        for statement in fill_rest:
            raw.execute(statement)

    store = Store(pg_url)
    store.open()
    try:
        check_kept_and_current(store)
    finally:
        store.close()
    with psycopg.connect(pg_url, autocommit=True) as raw:
        assert raw.execute("SELECT version FROM chatcli_schema").fetchone() == (SCHEMA_VERSION,)


def test_an_account_keeps_a_bounded_number_of_read_markers(tmp_path, pg_url, monkeypatch):
    """Any name may be marked read, so the store bounds the rows: past the limit, the
    markers set longest ago go (on both engines)."""
    from chatcli.server import store as store_module

    monkeypatch.setattr(store_module, "MAX_READ_MARKERS", 3)
    for where in (tmp_path / "chat.db", pg_url):
        store = Store(where)
        store.open()
        try:
            for at, target in enumerate(("#a", "#b", "#c", "#d", "#e"), start=1):
                assert store.wait(store.mark_read(7, target, at * 1000))
            kept = {t: store.read_marker(7, t) for t in ("#a", "#b", "#c", "#d", "#e")}
            assert kept == {"#a": None, "#b": None, "#c": 3000, "#d": 4000, "#e": 5000}
        finally:
            store.close()


def test_postgresql_has_an_upgrade_for_every_version_since_the_old_one() -> None:
    """A migration added for SQLite without its PostgreSQL twin would fail the start of
    every PostgreSQL database made before it."""
    assert set(postgres.UPGRADES) == set(range(OLD, SCHEMA_VERSION))
