"""Structures that grow with traffic are bounded: the store's queue of writes.

A writer that falls behind (a slow disk, or a small share of the GIL among many busy
connection threads) used to let its queue grow without bound: about 1 KiB a message, so
that senders outpacing it by 20,000 messages a second cost 100 MiB in a few seconds. Past
``MAX_BACKLOG`` unsettled writes whoever queues waits for the writer, never under the
world lock: a thread that holds it waits once it has released it.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatcli.server import store as store_module
from chatcli.server.state import WorldLock
from chatcli.server.store import Store, Stored
from tests.conftest import Client, RunningServer

LIMIT = 20


@pytest.fixture
def small_backlog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "MAX_BACKLOG", LIMIT)
    monkeypatch.setattr(store_module, "BACKLOG_WAIT", 10.0)


@pytest.fixture
def gate(store: Store) -> Iterator[threading.Event]:
    """The writer stalled (in a job) until the event is set."""
    event = threading.Event()
    store.write(lambda db: event.wait(20))
    yield event
    event.set()


def message(n: int) -> Stored:
    return Stored(n, f"id{n}", 0, "#room", "PRIVMSG", "a!u@h", None, "#room", f"{n}", "")


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def test_a_writer_far_behind_makes_whoever_queues_wait(small_backlog, store, gate):
    for n in range(LIMIT - 1):  # with the stalled job: LIMIT unsettled, no wait
        store.record(message(n))
    assert not store.behind
    thread, done = in_thread(lambda: store.record(message(LIMIT)))
    assert not done.wait(0.3), "queued past the limit without waiting"
    assert store.behind
    gate.set()
    assert done.wait(5)
    thread.join(5)
    assert store.sync()
    assert not store.behind
    assert len(store.latest("#room", 100)) == LIMIT


def test_under_the_world_lock_the_wait_comes_once_it_is_released(small_backlog, store, gate):
    lock = WorldLock()
    lock.store = store
    store.holding_lock = lock.held
    for n in range(LIMIT - 1):
        store.record(message(n))
    queued = threading.Event()

    def under_lock() -> None:
        with lock:
            store.record(message(LIMIT))
            queued.set()

    thread, released = in_thread(under_lock)
    assert queued.wait(2), "waited for the writer while holding the world lock"
    assert not released.wait(0.3), "did not wait for the writer once the lock was released"
    assert not lock.locked()  # (nobody else waits meanwhile)
    gate.set()
    assert released.wait(5)
    thread.join(5)


def test_a_stalled_writer_is_waited_for_a_moment_only(monkeypatch: pytest.MonkeyPatch, store, gate):
    monkeypatch.setattr(store_module, "MAX_BACKLOG", 5)
    monkeypatch.setattr(store_module, "BACKLOG_WAIT", 0.2)
    for n in range(5):
        store.record(message(n))
    started = time.monotonic()
    store.record(message(99))
    assert 0.15 < time.monotonic() - started < 3


def test_the_writer_never_waits_for_itself(small_backlog, store, gate):
    """A job that queues a write (as the writer's own thread) is not held up by the
    backlog it is part of: that would stall the writer for BACKLOG_WAIT."""
    wrote: list[int] = []
    store.write(lambda db: wrote.append(store.write(lambda db: None)))
    threads = [in_thread(lambda n=n: store.record(message(n)))[0] for n in range(LIMIT + 5)]
    time.sleep(0.2)
    assert store.behind
    started = time.monotonic()
    gate.set()
    assert store.sync()
    assert time.monotonic() - started < 5
    assert wrote and store.wait(wrote[0], timeout=5)
    for thread in threads:
        thread.join(5)


def test_a_sender_far_ahead_of_the_disk_waits_alone(
    monkeypatch: pytest.MonkeyPatch, make_server: Callable[..., RunningServer], tmp_path: Path
):
    """In a real server: the sender's thread waits (it reads nothing more meanwhile), not
    the others, and nothing it said is lost."""
    monkeypatch.setattr(store_module, "MAX_BACKLOG", 10)
    monkeypatch.setattr(store_module, "BACKLOG_WAIT", 20.0)
    running = make_server(db=str(tmp_path / "chat.db"), flood_rate=0)
    store = running.server.store
    assert store is not None
    alice, bob, carol = Client(running.port), Client(running.port), Client(running.port)
    stall = threading.Event()
    try:
        for client, nick in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            client.register(nick, join=False)
        for client in (alice, bob):
            client.send("JOIN #room")
            client.expect("366")
        bob.sync()
        store.write(lambda db: stall.wait(20))
        for n in range(30):
            alice.send(f"PRIVMSG #room :line {n}")
        alice.send("PING after")
        before = [m.params[-1] for m in bob.quiet(0.5) if m.command == "PRIVMSG"]
        assert 0 < len(before) < 30, before
        carol.send("JOIN #elsewhere")  # the world lock is free: others go on
        carol.expect("366", timeout=2)
        assert not [m for m in alice.quiet(0.2) if m.command == "PONG"]
        stall.set()
        alice.expect("PONG", None, "after", timeout=10)
        got = before[:]
        while len(got) < 30:
            msg = bob.expect("PRIVMSG", "#room")
            got.append(msg.params[-1])
        assert got == [f"line {n}" for n in range(30)]
        assert store.sync()
        kept = store.latest("#room", 100)
        assert [s.text for s in kept] == [f"line {n}" for n in range(30)]
    finally:
        stall.set()
        for client in (alice, bob, carol):
            client.close()


def test_a_batch_once_written_is_not_kept_alive_while_the_writer_waits(store):
    """The writer held its last batch (every row and whom to tell if it was lost) until
    the next write came: after a burst, its whole size, for as long as all was quiet."""

    def job(db: object) -> None:
        pass

    gone = weakref.ref(job)
    store.write(job)
    del job
    assert store.sync()
    deadline = time.monotonic() + 5
    while gone() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert gone() is None, "the writer still holds its last batch"
