"""A command's output that belongs to a room's stream (its own JOIN, seen by the room at
the same moment) reaches the client in the room's order, even when the command goes on
for a while after it changed the shared state. Real server on port 0."""

from __future__ import annotations

import dataclasses
import time

import pytest

from chatcli.server.commands import COMMANDS
from tests.conftest import Client

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def slow_join(monkeypatch):
    """JOIN as ever, then 0.3 s more of the command (as a slow history read would be)."""
    join = COMMANDS["JOIN"]

    def slow(conn, msg):
        join.handler(conn, msg)
        time.sleep(0.3)

    monkeypatch.setitem(COMMANDS, "JOIN", dataclasses.replace(join, handler=slow))


def test_own_join_comes_before_the_rooms_next_line(server, clients, slow_join):
    alice, bob = Client(server.port), Client(server.port)
    clients.extend([alice, bob])
    alice.register("alice")
    bob.register("bob")
    bob.send("JOIN #b")
    bob.expect("366")
    alice.send("JOIN #b")
    assert bob.expect("JOIN").source.startswith("alice!")  # alice is in #b now...
    bob.send("PRIVMSG #b :welcome, alice")  # ...and this is the room's next line
    seen = []
    while "PRIVMSG" not in seen:
        msg = alice.recv()
        assert msg is not None
        if msg.command in ("JOIN", "PRIVMSG") and msg.params[0] == "#b":
            seen.append(msg.command)
    assert seen == ["JOIN", "PRIVMSG"]
