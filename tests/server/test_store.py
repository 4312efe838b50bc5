"""The database file: created on first run, migrated forward, and never used (nor
overwritten) when it is damaged, from a newer chatcli or not writable. ``chat serve`` then
stops with one line that names the file and the reason."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from chatcli.server.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError


def serve(db) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatcli", "serve", "--port", "0", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_a_new_file_is_created_at_the_current_schema(tmp_path):
    path = tmp_path / "deep" / "chat.db"
    store = Store(path)
    store.open()
    store.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_older_file_is_migrated_forward_and_keeps_what_it_held(tmp_path):
    """Schema 1 had no secrets: migrated, it keeps its accounts and gains the cloak key."""
    path = tmp_path / "chat.db"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(MIGRATIONS[0])
        db.execute("INSERT INTO accounts VALUES ('alice', 'Alice', 'hash', 0)")
        db.commit()
        db.execute("PRAGMA user_version = 1")
    store = Store(path)
    store.open()
    try:
        assert store.account("alice") is not None
        assert len(store.secret("cloak")) == 32
    finally:
        store.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_damaged_file_stops_start_up_with_one_line_and_is_kept(tmp_path):
    path = tmp_path / "chat.db"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    done = serve(path)
    assert done.returncode == 1
    assert (
        done.stderr
        == f"chat: cannot use the database {path}: it is not a chatcli database, or it is damaged\n"
    )
    assert path.read_bytes() == garbage


def test_a_file_from_a_newer_chatcli_is_refused(tmp_path):
    path = tmp_path / "chat.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="from a newer chatcli"):
        Store(path).open()
    done = serve(path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "newer chatcli" in done.stderr


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_place_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        done = serve(locked / "chat.db")
    finally:
        locked.chmod(0o700)
    assert done.returncode == 1 and done.stderr.startswith("chat: cannot use the database")


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="uses /proc, which no one may write"
)
def test_an_unwritable_place_is_refused_even_for_root():
    done = serve("/proc/chatcli-test/chat.db")
    assert done.returncode == 1
    assert done.stderr.startswith("chat: cannot use the database /proc/chatcli-test/chat.db: ")
    assert done.stderr.count("\n") == 1


def test_many_quiet_conversations_are_trimmed_and_forgotten(tmp_path, monkeypatch):
    """Each target's new messages are counted until it is trimmed; so many targets with a
    few each (direct conversations) must not pile up, and retention still holds."""
    from chatcli.server import store as store_module
    from chatcli.server.store import Retention, Stored

    monkeypatch.setattr(store_module, "MAX_TOUCHED", 50)
    store = Store(tmp_path / "chat.db", Retention(per_target=1000))
    store.open()
    try:
        ticket = 0
        for i in range(300):
            for n in range(2):
                ticket = store.record(
                    Stored(0, f"m{i}-{n}", 1_000 + i, f"dm:{i}", "PRIVMSG", "a!u@h", None,
                           f"b{i}", f"hello {n}", "")
                )  # fmt: skip
            if i % 10 == 9:
                assert store.wait(ticket)
        assert store.sync()
        assert len(store._touched) <= 50 + 20  # (at most one batch past the bound)
        assert [m.text for m in store.latest("dm:7", 10)] == ["hello 0", "hello 1"]
    finally:
        store.close()
