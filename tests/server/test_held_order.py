"""While what a client is told waits for its message to be committed to the history, a
command that changes what it is (JOIN, NICK...) waits for that commit first: nobody else's
line reaches it before it hears of its own change. Real server on port 0, a slow disk."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import Client

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def slow_disk_server(make_server, tmp_path: Path, monkeypatch):
    running = make_server(db=str(tmp_path / "chat.db"))
    store = running.server.store
    run = store._run

    def slow_run(db: sqlite3.Connection, jobs: list) -> None:
        time.sleep(0.5)  # every commit takes half a second
        run(db, jobs)

    monkeypatch.setattr(store, "_run", slow_run)
    return running


def test_a_join_after_a_message_is_heard_before_the_rooms_lines(slow_disk_server, clients):
    alice, bob = Client(slow_disk_server.port), Client(slow_disk_server.port)
    clients.extend([alice, bob])
    alice.register("alice")
    bob.register("bob")
    bob.send("JOIN #b")
    bob.expect("366")
    alice.send("PRIVMSG #lobby :first\r\nJOIN #b")  # one read: the JOIN runs while held
    joined = bob.expect("JOIN")  # the server has alice in #b now
    assert joined.source.startswith("alice!")
    bob.send("PRIVMSG #b :hi alice")
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msg = alice.recv()
        assert msg is not None
        if msg.command in ("JOIN", "PRIVMSG") and msg.params[0] == "#b":
            seen.append(msg.command)
        if "PRIVMSG" in seen:
            break
    assert seen == ["JOIN", "PRIVMSG"]


def test_messages_in_a_row_still_share_one_commit(slow_disk_server, clients):
    alice = Client(slow_disk_server.port)
    clients.append(alice)
    alice.register("alice", "echo-message")
    started = time.monotonic()
    alice.send("\r\n".join(f"PRIVMSG #lobby :line {i}" for i in range(10)))
    for i in range(10):
        assert alice.expect("PRIVMSG").params[1] == f"line {i}"
    assert time.monotonic() - started < 3.0  # not ten half-second commits one after another
