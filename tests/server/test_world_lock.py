"""The world lock's discipline: not re-entrant, checked where it is needed, and nothing
waits under it: no database read (a room's history on JOIN), no backpressure. (issue
"server core, second design")"""

from __future__ import annotations

import threading
import time

import pytest

from chatcli.protocol import CaseMapping
from chatcli.protocol import numerics as n
from chatcli.server import sendq
from chatcli.server.sendq import Flusher
from chatcli.server.state import World
from chatcli.server.store import Store
from tests.conftest import Client


@pytest.fixture
def world():
    flusher = Flusher()  # (never started: nothing is sent)
    yield World(CaseMapping.ASCII, flusher)
    flusher.stop()


def test_the_world_lock_is_not_re_entrant(world):
    with world.lock:
        world.assert_held()
        with pytest.raises(RuntimeError, match="not re-entrant"):
            world.lock.acquire()
        world.assert_held()  # still held, once
    world.assert_not_held()
    with pytest.raises(AssertionError, match="must be held"):
        world.assert_held()
    with world.lock, pytest.raises(AssertionError, match="must not be held"):
        world.assert_not_held()
    assert not world.lock.locked()


def test_only_its_holder_releases_the_world_lock(world):
    world.lock.acquire()
    failed: list[BaseException] = []

    def release() -> None:
        try:
            world.lock.release()
        except RuntimeError as exc:
            failed.append(exc)

    thread = threading.Thread(target=release)
    thread.start()
    thread.join()
    assert failed and world.lock.locked() and world.lock.held()
    world.lock.release()


def test_shared_state_changes_check_the_lock(world):
    with pytest.raises(AssertionError, match="must be held"):
        world.forget(object())  # type: ignore[arg-type]


class _Room:
    """Stands for the flusher's "room in the log" event: notes each wait, and whether the
    world lock was held then."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.waits: list[bool] = []

    def clear(self) -> None:
        pass

    def set(self) -> None:
        pass

    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float) -> bool:
        self.waits.append(self.world.lock.held())
        return True


def test_backpressure_never_waits_under_the_world_lock(world, monkeypatch):
    """A thread that queues while the flusher is behind waits, but once it has released
    the world lock; a thread that holds it meanwhile for its own business does not wait."""
    monkeypatch.setattr(sendq, "MAX_LOG", 3)
    flusher = world.flusher
    room = flusher._room = _Room(world)  # type: ignore[assignment]
    line = (sendq._PUT, None, b"x\r\n", None)
    with world.lock:
        for _ in range(6):
            flusher.post(line)  # type: ignore[arg-type]
        assert room.waits == []  # nothing waited under the lock
    assert room.waits == [False]  # once, just after releasing it

    def someone_else() -> None:
        with world.lock:
            pass

    thread = threading.Thread(target=someone_else)
    thread.start()
    thread.join()
    assert room.waits == [False]  # who did not queue does not wait
    flusher.post(line)  # type: ignore[arg-type]
    assert room.waits == [False, False]  # without the lock: at once


def test_a_slow_history_read_on_join_holds_up_nobody_else(make_server, monkeypatch, tmp_path):
    """A JOIN that reads a room's history from the database (the room is made again) does
    it without the world lock: others' commands, those that take the lock included, are
    answered meanwhile. The replay still comes after the JOIN and before later lines."""
    running = make_server(db=str(tmp_path / "chat.db"))
    port = running.port
    alice, bob, carol, dave = (Client(port) for _ in range(4))
    try:
        for client, nick in ((alice, "alice"), (bob, "bob"), (carol, "carol"), (dave, "dave")):
            client.register(nick)
        dave.send("JOIN #fresh")
        dave.expect(n.RPL_ENDOFNAMES)
        dave.send("PRIVMSG #fresh :said earlier")
        dave.send("PART #fresh")  # the room goes, its lines in memory with it
        dave.expect("PART")  # (held until the message is written)
        reading, original = threading.Event(), Store.latest

        def slow_latest(self, target, limit):
            if target == "#fresh":
                reading.set()
                time.sleep(0.5)
            return original(self, target, limit)

        monkeypatch.setattr(Store, "latest", slow_latest)
        bob.sync()
        carol.sync()
        started = time.monotonic()
        alice.send("JOIN #fresh")
        assert reading.wait(5)
        for request, answer in (("PING :quick", "PONG"), ("NAMES #lobby", n.RPL_ENDOFNAMES)):
            asked = time.monotonic()
            bob.send(request)
            bob.expect(answer)
            assert time.monotonic() - asked < 0.2, request
        asked = time.monotonic()
        bob.send("PRIVMSG #lobby :meanwhile")
        assert carol.expect("PRIVMSG", "#lobby").params[1] == "meanwhile"
        assert time.monotonic() - asked < 0.2
        alice.expect("JOIN", "#fresh")  # (what came before it: others' joins to #lobby)
        assert time.monotonic() - started >= 0.5
        dave.send("JOIN #fresh")
        dave.send("PRIVMSG #fresh :said later")
        seen = []
        while not seen or seen[-1] != "said later":
            msg = alice.recv()
            assert msg is not None
            if msg.command == n.RPL_ENDOFNAMES and msg.params[1] == "#fresh":
                seen.append("names")
            elif msg.command == "JOIN":
                seen.append(f"{msg.source.split('!')[0]} joins")
            elif msg.command == "PRIVMSG" and msg.params[0] == "#fresh":
                seen.append(msg.params[1].split("] ")[-1])  # (the replay says when)
        assert seen == ["names", "said earlier", "dave joins", "said later"]
    finally:
        for client in (alice, bob, carol, dave):
            client.close()
