"""A line for one client written by the thread that queues it (Flusher.write_now): in
order with what is queued meanwhile, whole when the kernel takes only part, and never
while its connection could be closing the socket. Real sockets (a socket pair)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from chatcli.server.sendq import Flusher, SendQueue

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.settimeout(10)
    flusher = Flusher()
    flusher.start()
    failures: list[str] = []
    queue = SendQueue(ours, 1 << 22, failures.append, flusher)
    yield flusher, queue, theirs
    queue.close()
    queue.finished(5)
    flusher.stop()
    ours.close()
    theirs.close()


def read_all(sock: socket.socket, size: int) -> bytes:
    data = b""
    deadline = time.monotonic() + 10
    while len(data) < size and time.monotonic() < deadline:
        data += sock.recv(65536)
    return data


def test_a_line_to_an_idle_client_is_written_by_the_queueing_thread(pair):
    flusher, queue, theirs = pair
    done = []
    writer = threading.Thread(target=lambda: done.append(flusher.write_now(queue, b"hello\r\n")))
    writer.start()
    writer.join(5)
    assert done == [True]  # written, not left to the flusher
    assert read_all(theirs, 7) == b"hello\r\n"
    assert queue.bytes_sent == 7 and queue.lines_out == 1


def test_what_the_kernel_refuses_is_sent_by_the_flusher_before_what_came_next(pair):
    _, queue, theirs = pair
    big = b"".join(b"line %06d\r\n" % i for i in range(60_000))  # far past the buffers
    writer = threading.Thread(target=queue.put, args=(big,))
    writer.start()
    writer.join(5)
    queue.put(b"after\r\n")
    got = read_all(theirs, len(big) + 7)
    assert got == big + b"after\r\n"


def test_lines_from_many_threads_arrive_whole_each_thread_in_its_order(pair):
    _, queue, theirs = pair

    def say(who: int) -> None:
        for i in range(200):
            queue.put(b"%d %03d\r\n" % (who, i))

    threads = [threading.Thread(target=say, args=(who,)) for who in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    lines = read_all(theirs, 8 * 200 * len(b"0 000\r\n")).split(b"\r\n")[:-1]
    assert len(lines) == 1600
    for who in range(8):
        mine = [int(line.split()[1]) for line in lines if line.split()[0] == b"%d" % who]
        assert mine == list(range(200))


def test_a_queue_closed_while_a_thread_writes_it_finishes_once_the_write_is_over(pair):
    _, queue, _ = pair
    big = b"x" * 2_000_000 + b"\r\n"
    writer = threading.Thread(target=queue.put, args=(big,))
    writer.start()
    queue.abandon()  # the connection ends meanwhile
    assert queue.finished(10)
    writer.join(5)
    assert not writer.is_alive()
