"""Direct messages read in one go leave together: one write per recipient for the lot,
in order, and never after what the sender says next to a room. Real sockets."""

from __future__ import annotations

import socket
import time

import pytest

from chatcli.server.sendq import Batch, Flusher, SendQueue
from tests.conftest import Client

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def queues():
    """Two send queues on socket pairs, with a running flusher; their peers' ends."""
    flusher = Flusher()
    flusher.start()
    made = []
    for _ in range(2):
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.settimeout(10)
        made.append((SendQueue(ours, 1 << 20, lambda reason: None, flusher), ours, theirs))
    yield [(queue, theirs) for queue, _, theirs in made]
    for queue, ours, theirs in made:
        queue.close()
        queue.finished(5)
        ours.close()
        theirs.close()
    flusher.stop()


def test_a_batch_holds_lines_until_flushed_then_sends_each_queue_its_own_in_order(queues):
    (bob, bob_end), (carol, carol_end) = queues
    batch = Batch()
    assert not batch
    batch.add(bob, b"1\r\n")
    batch.add(carol, b"a\r\n")
    batch.add(bob, b"2\r\n")
    batch.add(bob, b"3\r\n")
    assert batch
    bob_end.setblocking(False)
    with pytest.raises(BlockingIOError):
        bob_end.recv(100)  # nothing before the flush
    bob_end.setblocking(True)
    bob_end.settimeout(10)
    batch.flush()
    assert not batch
    # An idle queue is written at once by the flushing thread: one write for the three.
    assert bob_end.recv(100) == b"1\r\n2\r\n3\r\n"
    assert carol_end.recv(100) == b"a\r\n"
    batch.flush()  # (nothing left: nothing sent twice)
    bob_end.setblocking(False)
    time.sleep(0.05)
    with pytest.raises(BlockingIOError):
        bob_end.recv(100)


def test_a_burst_of_direct_messages_arrives_in_order_around_a_room_message(server, clients):
    alice, bob = Client(server.port), Client(server.port)
    clients.extend([alice, bob])
    alice.register("alice")
    bob.register("bob")
    for client in (alice, bob):
        client.send("JOIN #b")
        client.expect("366")
    alice.sync()
    # One read on alice's connection: direct messages, then the room, then more.
    alice.send(
        "PRIVMSG bob :1\r\nPRIVMSG bob :2\r\nPRIVMSG #b :3\r\nNOTICE bob :4\r\n"
        "PRIVMSG bob,#b :5\r\nPRIVMSG bob :6"
    )
    seen = []
    deadline = time.monotonic() + 10
    while len(seen) < 7 and time.monotonic() < deadline:
        msg = bob.recv()
        assert msg is not None
        if msg.command in ("PRIVMSG", "NOTICE"):
            seen.append((msg.params[0], msg.params[1]))
    assert seen == [
        ("bob", "1"),
        ("bob", "2"),
        ("#b", "3"),
        ("bob", "4"),
        ("bob", "5"),
        ("#b", "5"),
        ("bob", "6"),
    ]
