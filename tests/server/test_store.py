"""The database file: created on first run, migrated forward, and never used (nor
overwritten) when it is damaged, from a newer chatcli or not writable. ``chat serve`` then
stops with one line that names the file and the reason. It is its owner's alone: made 0600
with its -wal and -shm, in a 0700 directory; one others may read is used, with a warning."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest

from chatcli.server.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError
from tests.conftest import Client, posix_only


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


def test_a_job_that_raises_fails_alone_and_the_writer_goes_on(tmp_path, caplog):
    """Whatever a job raises (here what SQLite raises for a number too large for it), its
    transaction is rolled back and logged; the jobs committed with it are done again on
    their own, and the writer thread lives on for everything after."""
    from chatcli.server.store import Stored

    def message(msgid: str) -> Stored:
        return Stored(0, msgid, 1, "#r", "PRIVMSG", "a!u@h", None, "#r", msgid, "")

    store = Store(tmp_path / "chat.db")
    store.open()
    try:
        go = threading.Event()
        store.write(lambda db: go.wait(5))  # the writer waits here: the three go as one
        tickets = [
            store.record(message("before")),
            store.write(lambda db: db.execute("SELECT ?", (2**70,))),
            store.record(message("after")),
        ]
        go.set()
        results = [store.wait(ticket) for ticket in tickets]
        assert results == [True, False, True]
        assert store.wait(store.record(message("later")))
        assert [m.text for m in store.latest("#r", 10)] == ["before", "after", "later"]
        assert "writing to the database failed" in caplog.text
    finally:
        store.close()


# -- a private file ----------------------------------------------------------------------------


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@posix_only
def test_a_new_servers_database_is_its_owners_alone(make_server, tmp_path, usual_umask):
    """The cloak key, password hashes and direct messages: nobody else may read them, nor
    what is in the write-ahead log."""
    data = tmp_path / "data"
    running = make_server(db=str(data / "chat.db"))
    client = Client(running.port)
    try:
        client.register("alice")
        client.send("REGISTER * * :correct-horse")
        assert client.expect("REGISTER").params[:2] == ("SUCCESS", "alice")
        client.send("PRIVMSG #lobby :hello")
        client.sync()
        assert running.server.store.sync()
        modes = {path.name: mode(path) for path in data.iterdir()}  # while it runs
    finally:
        client.close()
    assert mode(data) == 0o700
    private = {"chat.db": 0o600, "chat.db-wal": 0o600, "chat.db-shm": 0o600}
    assert modes == {**private, "chat.db.lock": 0o600}  # (the lock holds only a pid)


@posix_only
def test_an_existing_database_others_may_read_is_used_with_a_warning(
    make_server, tmp_path, caplog, usual_umask
):
    db = tmp_path / "chat.db"
    store = Store(db)
    store.open()
    store.close()
    db.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="chatcli.server")
    running = make_server(db=str(db))
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name == "chatcli.server" and record.levelno == logging.WARNING
    ]
    assert warnings == [
        f"the database {db} is open to other users, and it holds password hashes, the cloak "
        f"key and direct messages: make it private with chmod 600 {db} {db}-wal {db}-shm"
    ]
    client = Client(running.port)
    try:
        client.register("alice", join=False)
        client.send("REGISTER * * :correct-horse")
        assert client.expect("REGISTER").params[:2] == ("SUCCESS", "alice")
    finally:
        client.close()
    assert mode(db) == 0o644  # told, not changed: the fix is its owner's


@posix_only
def test_chatclis_data_directory_is_narrowed_and_one_the_user_chose_is_not(
    tmp_path, monkeypatch, usual_umask
):
    ours, chosen = tmp_path / "chatcli", tmp_path / "chosen"
    for directory in (ours, chosen):
        directory.mkdir()
        directory.chmod(0o755)
    monkeypatch.setattr("chatcli.server.sqldb.data_dir", lambda: ours)
    for directory in (ours, chosen):
        store = Store(directory / "chat.db")
        store.open()
        store.close()
        assert mode(directory / "chat.db") == 0o600
    assert mode(ours) == 0o700
    assert mode(chosen) == 0o755


@posix_only
def test_a_wider_wal_and_shm_follow_a_private_database(tmp_path, caplog, usual_umask):
    """Left 0644 beside a database made 0600 since (as the warning says to): narrowed."""
    db = tmp_path / "chat.db"
    with closing(sqlite3.connect(db)) as other:  # keeps the -wal and -shm there
        other.execute("PRAGMA journal_mode = WAL")
        other.execute("CREATE TABLE t (x)")
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert (mode(db), mode(wal), mode(shm)) == (0o644, 0o644, 0o644)
        db.chmod(0o600)
        caplog.set_level(logging.WARNING, logger="chatcli.server")
        store = Store(db)
        store.open()
        try:
            assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
        finally:
            store.close()
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
