"""A store that cannot write fails honestly: chat goes on, each sender is told at once which
of its messages were not kept (``WARN ... HISTORY_NOT_KEPT``), operators see it in the log
(once, not per message) and in ``STATS d``, writing resumes by itself when the disk is
back, and the history then holds exactly the messages confirmed as kept. The writer thread
is supervised: an unexpected error is logged with its traceback and it goes on; one it
cannot survive stops it for good and tells the server (``on_fatal``).

Tried on a real filesystem that fills up (a 1 MB tmpfs, where the test may mount one), and
with an injected failure everywhere."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatcli.cli import main
from chatcli.errors import ExitStatus
from chatcli.passwords import hash_password
from chatcli.server import store as store_module
from chatcli.server.store import Outcome, Store, Stored
from tests.conftest import Client

OPER = ("admin", hash_password("s3cret"))
SENDER_CAPS = "echo-message"


class FullDisk:
    """Makes the store's writes fail as a full disk makes them fail, while ``on``."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.on = False
        self.tries = 0
        run = store._run

        def failing_run(db: sqlite3.Connection, jobs: list) -> None:
            if self.on:
                self.tries += 1
                raise sqlite3.OperationalError("database or disk is full")
            run(db, jobs)

        monkeypatch.setattr(store, "_run", failing_run)


def say(client: Client, target: str, text: str) -> tuple[bool, float]:
    """Send ``text`` to ``target``; read up to its echo. Returns whether it was confirmed as
    kept (no WARN before the echo) and how long the WARN, or else the echo, took."""
    started = time.monotonic()
    client.send(f"PRIVMSG {target} :{text}")
    warned_at = None
    while True:
        msg = client.recv()
        assert msg is not None, "the connection closed"
        if msg.command == "WARN" and warned_at is None:
            assert msg.params[:3] == ("PRIVMSG", "HISTORY_NOT_KEPT", target)
            assert "not kept in the history" in msg.params[-1]
            warned_at = time.monotonic()
        if msg.command == "PRIVMSG" and msg.params[-1] == text:  # the echo
            took = (warned_at or time.monotonic()) - started
            return warned_at is None, took


def say_until_kept(
    client: Client, prefix: str, kept: list[str], lost: list[str], within: float
) -> None:
    """Say numbered lines in #lobby, each noted as kept or lost, until one is kept (within
    ``within`` seconds: writing must resume by then)."""
    deadline = time.monotonic() + within
    for i in range(10_000):
        text = f"{prefix} {i}"
        confirmed, _ = say(client, "#lobby", text)
        (kept if confirmed else lost).append(text)
        if confirmed:
            return
        assert time.monotonic() < deadline, "writing did not resume"
        time.sleep(0.1)


def stats_store(client: Client) -> str:
    client.send("STATS d")
    line = client.expect("249")
    client.expect("219")
    return line.params[-1]


@pytest.fixture
def people(make_server, tmp_path: Path, clients: list[Client]):
    running = make_server(db=str(tmp_path / "chat.db"), operators=(OPER,))
    alice, bob, admin = Client(running.port), Client(running.port), Client(running.port)
    clients.extend([alice, bob, admin])
    alice.register("alice", SENDER_CAPS)
    bob.register("bob")
    admin.register("admin", join=False)
    admin.send("OPER admin s3cret")
    admin.expect("381")
    return running, alice, bob, admin


def history(running) -> list[str]:
    store = running.server.store
    store.sync()  # everything settled, kept or not
    return [m.text for m in store.latest("#lobby", 1000)]


def test_a_full_disk_is_told_at_once_and_the_history_holds_what_was_confirmed(
    people, monkeypatch, caplog
):
    running, alice, bob, admin = people
    store = running.server.store
    disk = FullDisk(store, monkeypatch)
    caplog.set_level(logging.INFO, logger="chatcli.server")
    assert stats_store(admin).startswith("store ok")

    kept, lost = [], []
    assert say(alice, "#lobby", "before")[0]
    kept.append("before")
    assert bob.expect("PRIVMSG", "#lobby").params[-1] == "before"

    disk.on = True
    took = []
    for i in range(20):  # each told at once, not after a wait for the disk
        text = f"while full {i}"
        confirmed, seconds = say(alice, "#lobby", text)
        assert not confirmed
        lost.append(text)
        took.append(seconds)
        assert bob.expect("PRIVMSG", "#lobby").params[-1] == text  # delivered all the same
    assert max(took) < 0.5, took
    assert disk.tries <= 2  # the disk is tried again every second or two, not per message
    state = stats_store(admin)
    assert state.startswith("store failing since ")
    assert "the server's disk is full; 20 writes not kept since then" in state
    starts = [r for r in caplog.records if "cannot write to the database" in r.getMessage()]
    assert len(starts) == 1  # once, not once a message

    disk.on = False  # space is back: within RETRY_MAX, messages are kept again
    say_until_kept(alice, "after", kept, lost, store_module.RETRY_MAX + 2)
    for text in ("later 1", "later 2"):
        assert say(alice, "#lobby", text)[0]
        kept.append(text)
    assert stats_store(admin).startswith("store ok")
    assert any("writing to the database" in r.getMessage() for r in caplog.records)
    assert history(running) == kept  # exactly what was confirmed as kept, none of the rest


def test_a_direct_message_is_warned_of_and_one_for_someone_offline_fails(
    people, monkeypatch, clients
):
    running, alice, bob, _ = people
    disk = FullDisk(running.server.store, monkeypatch)
    carol = Client(running.port)
    clients.append(carol)
    carol.register("carol", join=False)
    carol.send("REGISTER * * :correct-horse")
    carol.expect("REGISTER")
    carol.send("QUIT")
    assert carol.closed()
    disk.on = True
    confirmed, took = say(alice, "bob", "psst")
    assert not confirmed and took < 0.5
    assert bob.expect("PRIVMSG", "bob").params[-1] == "psst"
    alice.send("PRIVMSG carol :for later")  # offline: it would wait in the history, lost
    fail = alice.expect("FAIL")
    assert fail.params[:3] == ("PRIVMSG", "MESSAGE_NOT_KEPT", "carol")
    assert "disk is full" in fail.params[-1]
    assert not [m for m in alice.quiet() if m.command in ("PRIVMSG", "301")]  # no echo, no away


def test_chat_send_exits_non_zero_when_a_message_was_not_kept(people, monkeypatch):
    running, _, bob, _ = people
    disk = FullDisk(running.server.store, monkeypatch)
    disk.on = True
    result = CliRunner().invoke(
        main,
        ["send", "--port", str(running.port), "--alias", "ci", "--timeout", "5"],
        input="one\ntwo\n",
    )
    assert result.exit_code == ExitStatus.ERROR, result.output
    assert "2 of 2 messages were delivered but not kept" in result.output
    assert "disk is full" in result.output
    assert [bob.expect("PRIVMSG").params[-1] for _ in range(2)] == ["one", "two"]
    disk.on = False
    time.sleep(store_module.RETRY_MAX + 0.1)
    result = CliRunner().invoke(
        main, ["send", "--port", str(running.port), "--alias", "ci"], input="three\n"
    )
    assert result.exit_code == 0, result.output


# -- a real filesystem that fills up ---------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs, mounted for the test (as root, where it is allowed); else a skip."""
    where = tmp_path / "disk"
    where.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small filesystem takes root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> None:
    """Take every byte left on ``path``'s filesystem."""
    with open(path, "wb") as filler:
        block = b"x" * 4096
        try:
            while True:
                filler.write(block)
                filler.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        with contextlib.suppress(OSError):
            filler.close()


def test_a_real_disk_that_fills_up_and_empties_again(make_server, small_disk, clients, caplog):
    running = make_server(db=str(small_disk / "chat.db"))
    alice, bob = Client(running.port), Client(running.port)
    clients.extend([alice, bob])
    alice.register("alice", SENDER_CAPS)
    bob.register("bob")
    caplog.set_level(logging.INFO, logger="chatcli.server")
    kept, lost, took = [], [], []
    for i in range(5):
        text = f"room {i}"
        assert say(alice, "#lobby", text)[0]
        assert bob.expect("PRIVMSG", "#lobby").params[-1] == text
        kept.append(text)
    filler = small_disk / "filler"
    fill(filler)
    for i in range(400):  # 300 bytes each: the WAL must grow, and cannot
        text = f"{i:04} " + "x" * 295
        confirmed, seconds = say(alice, "#lobby", text)
        assert bob.expect("PRIVMSG", "#lobby").params[-1] == text
        (kept if confirmed else lost).append(text)
        if not confirmed:
            took.append(seconds)
        if len(lost) >= 10:
            break
    assert len(lost) >= 10, "the disk never filled"
    assert max(took) < 0.5, took
    failing = [r for r in caplog.records if "cannot write to the database" in r.getMessage()]
    assert len(failing) == 1
    filler.unlink()  # space is back
    say_until_kept(alice, "back", kept, lost, store_module.RETRY_MAX + 3)
    assert say(alice, "#lobby", "and on")[0]
    kept.append("and on")
    assert history(running) == kept


# -- the writer, supervised ----------------------------------------------------------------


def message(text: str) -> Stored:
    return Stored(0, text, 1, "#r", "PRIVMSG", "a!u@h", None, "#r", text, "")


def test_an_unexpected_error_in_the_writer_is_logged_and_it_goes_on(store, monkeypatch, caplog):
    told: list[str] = []
    write_batch = store._write_batch
    broken = threading.Event()
    broken.set()

    def once(*args):
        if broken.is_set():
            broken.clear()
            raise RuntimeError("a bug in the writer")
        return write_batch(*args)

    monkeypatch.setattr(store, "_write_batch", once)
    started = time.monotonic()
    ticket = store.record(message("unlucky"), on_lost=told.append)
    assert store.outcome(ticket) is Outcome.NOT_KEPT
    assert time.monotonic() - started < 0.5
    assert told == ["the server could not write it"]
    crash = [r for r in caplog.records if "writer failed unexpectedly" in r.getMessage()]
    assert crash and crash[0].exc_info is not None  # with its traceback
    assert store.outcome(store.record(message("lucky"))) is Outcome.KEPT
    assert [m.text for m in store.latest("#r", 10)] == ["lucky"]
    assert store.fatal is None and store.health().ok


def test_a_callback_that_raises_does_not_stop_the_writer(store, monkeypatch):
    disk = FullDisk(store, monkeypatch)
    disk.on = True

    def rude(reason: str) -> None:
        raise ValueError("a sender that is gone")

    assert store.outcome(store.record(message("a"), on_lost=rude)) is Outcome.NOT_KEPT
    disk.on = False
    time.sleep(store_module.RETRY_MAX + 0.1)
    assert store.outcome(store.record(message("b"))) is Outcome.KEPT


def test_a_writer_that_cannot_go_on_stops_for_good_and_tells_the_server(tmp_path):
    fatal: list[str] = []
    store = Store(tmp_path / "chat.db", on_fatal=fatal.append)
    store.open()
    try:
        assert store.wait(store.record(message("kept")))
        store._writer.close()  # its connection unusable
        told: list[str] = []
        ticket = store.record(message("lost"), on_lost=told.append)
        assert store.outcome(ticket, timeout=5) is Outcome.NOT_KEPT
        assert told == ["the server can no longer write its history"]
        assert fatal == [
            f"cannot write to the database {store.path} any more: its writer has a connection "
            "that no longer works (Cannot operate on a closed database.)"
        ]
        assert store.fatal is not None
        started = time.monotonic()  # from now on, not kept at once: nothing waits 10 s
        assert store.outcome(store.record(message("later"))) is Outcome.NOT_KEPT
        assert time.monotonic() - started < 0.1
    finally:
        store.close()


def test_a_writer_that_keeps_failing_stops_for_good(store, monkeypatch):
    fatal: list[str] = []
    store.on_fatal = fatal.append

    def always(*args):
        raise RuntimeError("a bug in the writer")

    monkeypatch.setattr(store, "_write_batch", always)
    outcomes = [store.outcome(store.record(message(str(i)))) for i in range(10)]
    assert outcomes == [Outcome.NOT_KEPT] * 10
    assert len(fatal) == 1 and f"its writer failed {store_module.MAX_CRASHES} times" in fatal[0]


def test_without_a_server_to_tell_the_store_says_it_stopped(store, caplog):
    store._writer.close()
    assert store.outcome(store.record(message("lost"))) is Outcome.NOT_KEPT
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert critical == [
        f"cannot write to the database {store.path} any more: its writer has a connection "
        "that no longer works (Cannot operate on a closed database.); the history is no "
        "longer kept"
    ]


def test_the_server_stops_when_its_store_cannot_go_on(people):
    """What the server does with ``on_fatal``: stop serving (here wired as ``chat serve``
    wires it), and its senders are told their messages were not kept."""
    running, alice, _, _ = people
    store = running.server.store
    store.on_fatal = lambda reason: running.server.request_stop()
    store._writer.close()
    alice.send("PRIVMSG #lobby :the last word")
    warn = alice.expect("WARN")
    assert warn.params[:3] == ("PRIVMSG", "HISTORY_NOT_KEPT", "#lobby")
    running.thread.join(10)
    assert not running.thread.is_alive()  # serve_forever returned
    assert store.fatal is not None


def test_while_it_keeps_failing_the_log_says_so_now_and_then_with_a_count(
    store, monkeypatch, caplog
):
    monkeypatch.setattr(store_module, "REPORT_EVERY", 0.0)  # (a minute, normally)
    monkeypatch.setattr(store_module, "RETRY_MIN", 0.0)  # every write tried
    monkeypatch.setattr(store_module, "RETRY_MAX", 0.0)
    disk = FullDisk(store, monkeypatch)
    disk.on = True
    for i in range(3):
        assert store.outcome(store.record(message(str(i)))) is Outcome.NOT_KEPT
    disk.on = False
    assert store.outcome(store.record(message("back"))) is Outcome.KEPT
    said = [r.getMessage() for r in caplog.records]
    assert len([line for line in said if line.startswith("cannot write to the")]) == 1
    still = [line for line in said if line.startswith("still cannot write")]
    assert [line.split("; ")[1].split(" since")[0] for line in still] == [
        "1 writes not kept",
        "2 writes not kept",
        "3 writes not kept",
    ]
    assert said[-1].startswith(f"writing to the database {store.path} again")
    assert said[-1].endswith("3 writes were not kept")
    assert store.health().ok and store.health().not_kept == 3


def test_registering_an_account_while_the_disk_is_full_fails_and_changes_nothing(
    people, monkeypatch
):
    running, alice, _, _ = people
    disk = FullDisk(running.server.store, monkeypatch)
    disk.on = True
    alice.send("REGISTER * * a-long-password")
    fail = alice.expect("FAIL")
    assert fail.params[:2] == ("REGISTER", "TEMPORARILY_UNAVAILABLE")
    assert "try again later" in fail.params[-1]
    disk.on = False
    time.sleep(2.5)  # the store's next try
    alice.send("REGISTER * * a-long-password")
    assert alice.expect("REGISTER").params[0] == "SUCCESS"
