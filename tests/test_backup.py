"""``chat backup``: a checked copy of a live database, and restoring it.

Every test works on real SQLite files, most of them written by a real server; ``chat
backup`` runs as a process of its own, as an operator's cron job runs it."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from chatcli.backup import BackupError, backup, human_size
from chatcli.errors import ExitStatus
from tests.conftest import Client, RunningServer, posix_only

HISTORY = "draft/chathistory batch server-time message-tags"


def chat_backup(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``chat backup ARGS`` as a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "chatcli", "backup", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def start_backup(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chatcli", "backup", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def say(client: Client, room: str, texts: list[str]) -> None:
    """Say ``texts`` in ``room``; once this returns the server has kept them all (a
    message is on disk before the server answers what its sender sent next)."""
    for text in texts:
        client.send(f"PRIVMSG {room} :{text}")
    client.sync()


def history(port: int, room: str) -> list[str]:
    """The texts of every message kept in ``room``, oldest first, read with CHATHISTORY."""
    reader = Client(port)
    try:
        reader.register("reader", HISTORY, join=False)
        reader.send(f"JOIN {room}")
        reader.expect("366")
        reader.send(f"CHATHISTORY LATEST {room} * 5000")
        start = reader.expect("BATCH")
        inside = reader.collect("BATCH")
        assert inside[-1].params == ("-" + start.params[0][1:],)
        return [m.params[1] for m in inside[:-1] if m.command == "PRIVMSG"]
    finally:
        reader.close()


def make_database(path: Path, rows: int = 500) -> None:
    """A WAL database of a few hundred pages, as the server's is."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE t (x BLOB)")
        db.executemany("INSERT INTO t VALUES (?)", [(os.urandom(2000),)] * rows)
    db.close()


@pytest.fixture
def history_server(make_server: Callable[..., RunningServer], tmp_path: Path) -> RunningServer:
    return make_server(db=str(tmp_path / "chat.db"), flood_rate=0, max_chathistory=5000)


def test_a_backup_taken_while_the_server_is_written_to_restores_with_its_history(
    make_server: Callable[..., RunningServer], history_server: RunningServer, tmp_path: Path
) -> None:
    db, copy = tmp_path / "chat.db", tmp_path / "copy.db"
    alice = Client(history_server.port)
    try:
        alice.register("alice", join=False)
        alice.send("JOIN #dev")
        alice.expect("366")
        say(alice, "#dev", [f"m{i}" for i in range(200)])
        proc = start_backup(str(copy), "--db", str(db))
        sent, deadline = 200, time.monotonic() + 30
        while proc.poll() is None and sent < 5000 and time.monotonic() < deadline:
            say(alice, "#dev", [f"m{i}" for i in range(sent, sent + 5)])
            sent += 5
        out, err = proc.communicate(timeout=30)
    finally:
        alice.close()
    assert (proc.returncode, err) == (0, "")
    size = human_size(copy.stat().st_size)
    assert out == f"backed up {db} to {copy} ({size}, checked)\n"
    history_server.stop()

    restored = tmp_path / "restored" / "chat.db"
    restored.parent.mkdir()
    shutil.copyfile(copy, restored)
    again = make_server(db=str(restored), max_chathistory=5000)
    kept = history(again.port, "#dev")
    # A consistent copy: every message kept before the backup began, then those said
    # during it up to one instant, in order, none missing or twice.
    assert len(kept) >= 200
    assert kept == [f"m{i}" for i in range(len(kept))]


def test_a_paged_backup_finishes_while_the_server_keeps_writing(
    history_server: RunningServer, tmp_path: Path
) -> None:
    alice = Client(history_server.port)
    stop = threading.Event()
    said: list[int] = []

    def keep_talking() -> None:
        deadline = time.monotonic() + 20
        while not stop.is_set() and len(said) < 20_000 and time.monotonic() < deadline:
            say(alice, "#dev", [f"m{len(said)}"])
            said.append(1)

    alice.register("alice", join=False)
    alice.send("JOIN #dev")
    alice.expect("366")
    say(alice, "#dev", [f"filler {i} " + "x" * 300 for i in range(300)])
    talker = threading.Thread(target=keep_talking, name="talker")
    talker.start()
    try:
        made = backup(tmp_path / "chat.db", tmp_path / "copy.db", pages=1, pause=0.01)
    finally:
        stop.set()
        talker.join(30)
        alice.close()
    assert made.restarts >= 1  # the server did write meanwhile, and the copy coped
    with sqlite3.connect(made.dest) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


def test_an_existing_destination_is_refused_unless_forced(tmp_path: Path) -> None:
    make_database(tmp_path / "chat.db")
    dest = tmp_path / "copy.db"
    dest.write_text("yesterday's backup")
    refused = chat_backup(str(dest), "--db", str(tmp_path / "chat.db"))
    assert refused.returncode == ExitStatus.ERROR
    assert refused.stderr == (
        f"chat: {dest} exists: give another destination, or --force to replace it\n"
    )
    assert dest.read_text() == "yesterday's backup"
    forced = chat_backup(str(dest), "--db", str(tmp_path / "chat.db"), "--force")
    assert forced.returncode == 0, forced.stderr
    with sqlite3.connect(dest) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone() == (500,)
    db.close()


def test_a_missing_database_is_one_line_and_nothing_written(tmp_path: Path) -> None:
    done = chat_backup(str(tmp_path / "copy.db"), "--db", str(tmp_path / "none.db"))
    assert done.returncode == ExitStatus.ERROR
    assert done.stderr == f"chat: cannot back up {tmp_path / 'none.db'}: no such file\n"
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_file_that_is_no_database_is_refused_and_nothing_written(tmp_path: Path) -> None:
    (tmp_path / "chat.db").write_text("not a database at all, but long enough to be read")
    done = chat_backup(str(tmp_path / "copy.db"), "--db", str(tmp_path / "chat.db"))
    assert done.returncode == ExitStatus.ERROR
    assert done.stderr.startswith(f"chat: cannot back up {tmp_path / 'chat.db'}: ")
    assert done.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.db"]


def test_a_copy_that_fails_its_integrity_check_is_not_kept(tmp_path: Path) -> None:
    db_path = tmp_path / "chat.db"
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE t (x INTEGER, y INTEGER)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, -i) for i in range(100)])
        db.execute("CREATE INDEX t_x ON t (x)")
        # The index now claims to be on y, but holds x's values: a damaged file that
        # opens and reads, as a disk's damage often does.
        db.execute("PRAGMA writable_schema = ON")
        db.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX t_x ON t (y)' WHERE name = 't_x'")
    db.close()
    done = chat_backup(str(tmp_path / "copy.db"), "--db", str(db_path))
    assert done.returncode == ExitStatus.ERROR
    assert done.stderr.startswith(f"chat: the copy for {tmp_path / 'copy.db'} fails its integrity")
    assert done.stderr.endswith(": nothing written\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.db"]


def test_a_backup_that_takes_too_long_stops_and_leaves_nothing(tmp_path: Path) -> None:
    make_database(tmp_path / "chat.db")
    started = time.monotonic()
    with pytest.raises(BackupError, match=re.escape("took more than 0.2 seconds: nothing written")):
        backup(tmp_path / "chat.db", tmp_path / "copy.db", pages=1, pause=0.05, timeout=0.2)
    assert time.monotonic() - started < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.db"]


def test_the_destination_may_be_a_directory_and_the_copy_keeps_the_name(tmp_path: Path) -> None:
    make_database(tmp_path / "chat.db", rows=10)
    (tmp_path / "backups").mkdir()
    made = backup(tmp_path / "chat.db", tmp_path / "backups")
    assert made.dest == tmp_path / "backups" / "chat.db"
    assert made.size == made.dest.stat().st_size


def test_a_journal_left_beside_the_destination_is_refused_even_with_force(tmp_path: Path) -> None:
    make_database(tmp_path / "chat.db", rows=10)
    (tmp_path / "copy.db").write_bytes(b"")
    (tmp_path / "copy.db-wal").write_bytes(b"someone else's journal")
    with pytest.raises(BackupError, match=re.escape("copy.db-wal exists beside")):
        backup(tmp_path / "chat.db", tmp_path / "copy.db", force=True)


@posix_only
def test_the_copy_is_private_as_the_database_is(tmp_path: Path, usual_umask: None) -> None:
    make_database(tmp_path / "chat.db", rows=10)
    made = backup(tmp_path / "chat.db", tmp_path / "copy.db")
    assert stat.S_IMODE(made.dest.stat().st_mode) == 0o600


def test_without_db_it_backs_up_the_database_chat_serve_uses_by_default(tmp_path: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("the data directory follows XDG_DATA_HOME on Linux only")
    data = tmp_path / "data"
    (data / "chatcli").mkdir(parents=True)
    make_database(data / "chatcli" / "chat.db", rows=10)
    done = chat_backup(str(tmp_path / "copy.db"), env={"XDG_DATA_HOME": str(data)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"backed up {data / 'chatcli' / 'chat.db'} to ")


def test_with_the_servers_config_file_it_backs_up_the_database_named_there(
    tmp_path: Path,
) -> None:
    make_database(tmp_path / "team.db", rows=10)
    config = tmp_path / "chat.toml"
    config.write_text(f'db = "{tmp_path / "team.db"}"\nport = 6697\n')
    done = chat_backup(str(tmp_path / "copy.db"), "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"backed up {tmp_path / 'team.db'} to ")
    make_database(tmp_path / "other.db", rows=3)  # --db wins over the file
    done = chat_backup(
        str(tmp_path / "c2.db"), "--config", str(config), "--db", str(tmp_path / "other.db")
    )
    assert done.stdout.startswith(f"backed up {tmp_path / 'other.db'} to ")


def test_a_config_file_that_keeps_no_database_or_is_wrong_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "chat.toml"
    config.write_text('db = ""\n')
    done = chat_backup(str(tmp_path / "copy.db"), "--config", str(config))
    assert (done.returncode, done.stderr) == (
        ExitStatus.USAGE,
        f'chat: {config} keeps no database (db = ""): nothing to back up\n',
    )
    config.write_text("colour = 'blue'\n")
    done = chat_backup(str(tmp_path / "copy.db"), "--config", str(config))
    assert (done.returncode, done.stderr) == (
        ExitStatus.USAGE,
        f"chat: {config}: unknown key 'colour'\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.toml"]


def test_sizes_are_said_as_people_read_them() -> None:
    assert [human_size(n) for n in (812, 49_152, 1_468_006, 3 << 30)] == [
        "812 bytes",
        "48.0 KiB",
        "1.4 MiB",
        "3.0 GiB",
    ]
