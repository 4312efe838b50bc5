"""What the store keeps of IRCv3 draft/metadata-2 (schema 5): an account's keys and a
registered room's, on both engines; and a database of schema 4 brought to schema 5 on
opening, keeping what it held."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import psycopg
import pytest

from chatcli.server import postgres
from chatcli.server.sqldb import MIGRATIONS, SCHEMA_VERSION, identity_of
from chatcli.server.store import RoomRecord, Store

#: The version before metadata: read markers were the last thing added.
BEFORE = 4


def check_metadata_works(store: Store) -> None:
    """An account's and a room's keys are set, changed, read back and removed."""
    account = store.account("ada")
    assert account is not None
    ada = identity_of(account.id)
    assert store.metadata_of(ada) == {}
    assert store.wait(store.set_metadata(ada, "display-name", "Ada L."))
    assert store.wait(store.set_metadata(ada, "color", "#336699"))
    assert store.wait(store.set_metadata(ada, "color", "#112233"))
    assert store.metadata_of(ada) == {"color": "#112233", "display-name": "Ada L."}
    assert store.wait(store.set_metadata(ada, "color", None))
    assert store.metadata_of(ada) == {"display-name": "Ada L."}
    assert store.wait(store.replace_metadata("#team", [("avatar", "https://example.org/t")]))
    assert store.metadata_of("#team") == {"avatar": "https://example.org/t"}
    assert store.metadata_of(ada) == {"display-name": "Ada L."}  # (each owner its own)


def test_sqlite_schema_4_is_upgraded_and_keeps_its_read_markers(tmp_path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:BEFORE]:
        if callable(migration):
            raw.execute("BEGIN")
            migration(raw)
            raw.execute("COMMIT")
        else:
            raw.executescript(migration)
    raw.execute(f"PRAGMA user_version = {BEFORE}")
    raw.execute(
        "INSERT INTO accounts (name, display, password, created) VALUES ('ada', 'Ada', 'x', 1)"
    )
    account_id = raw.execute("SELECT id FROM accounts WHERE name = 'ada'").fetchone()[0]
    raw.execute(
        "INSERT INTO read_markers (account, target, at) VALUES (?, '#team', 5)", (account_id,)
    )
    raw.close()

    store = Store(path)
    store.open()
    try:
        assert store.read_marker(account_id, "#team") == 5
        check_metadata_works(store)
    finally:
        store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    raw.close()


def test_postgresql_schema_4_is_upgraded_and_keeps_its_read_markers(pg_url: str) -> None:
    added = {statement for version, more in postgres.UPGRADES.items() if version >= BEFORE
             for statement in more}  # fmt: skip
    assert added == set(postgres.METADATA)
    with psycopg.connect(pg_url, autocommit=True) as raw:
        for statement in postgres.SCHEMA:
            if statement not in added:
                raw.execute(statement)
        raw.execute("INSERT INTO chatcli_schema (version) VALUES (%s)", (BEFORE,))
        raw.execute(
            "INSERT INTO accounts (name, display, password, created) VALUES ('ada', 'Ada', 'x', 1)"
        )
        row = raw.execute("SELECT id FROM accounts WHERE name = 'ada'").fetchone()
        assert row is not None
        account_id = row[0]
        raw.execute(
            "INSERT INTO read_markers (account, target, at) VALUES (%s, '#team', 5)", (account_id,)
        )

    store = Store(pg_url)
    store.open()
    try:
        assert store.read_marker(account_id, "#team") == 5
        check_metadata_works(store)
    finally:
        store.close()
    with psycopg.connect(pg_url, autocommit=True) as raw:
        assert raw.execute("SELECT version FROM chatcli_schema").fetchone() == (SCHEMA_VERSION,)


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Store]:
    store = Store(tmp_path / "chat.db")
    store.open()
    yield store
    store.close()


def test_dropping_an_account_or_a_rooms_registration_forgets_their_keys(sqlite_store) -> None:
    store = sqlite_store
    account = store.create_account("ada", "Ada", "x")
    assert account is not None
    ada = identity_of(account.id)
    store.save_room("#team", RoomRecord("#team", ada, 1, "", "", 0, "nt", None, None, (ada,)))
    assert store.wait(store.set_metadata(ada, "status", "here"))
    assert store.wait(store.set_metadata("#team", "color", "#000000"))
    store.drop_account(account.id)
    assert store.metadata_of(ada) == {}
    store.drop_room("#team")
    assert store.sync()
    assert store.metadata_of("#team") == {}
