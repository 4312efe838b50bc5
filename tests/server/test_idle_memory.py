"""What an idle connection holds: nothing it does not need while idle (10,000 of them must
fit in 24 KiB each), and the same behaviour as before it was made so."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from chatcli.protocol import LineBuffer, ReadQExceeded
from chatcli.server import listener
from chatcli.server.flood import Backlog, ExcessFlood, FakeLag
from tests.conftest import Client, RunningServer

# -- the flood backlog --------------------------------------------------------------------


def test_an_empty_backlog_holds_no_queue_and_drops_it_once_drained():
    backlog = Backlog(FakeLag(burst=2, rate=10.0, now=0.0), kill=30.0, max_bytes=1 << 16)
    assert backlog.lines is None and len(backlog) == 0 and backlog.next_due() is None
    assert backlog.pop(0.0) is None
    backlog.add(b"a", lagged=True, now=0.0)
    backlog.add(b"b", lagged=True, now=0.0)
    backlog.add(b"c", lagged=True, now=0.0)  # past the burst: due 0.1 s later
    assert len(backlog) == 3
    assert [backlog.pop(0.0), backlog.pop(0.0), backlog.pop(0.0)] == [b"a", b"b", None]
    assert backlog.next_due() == pytest.approx(0.1)
    assert backlog.pop(0.1) == b"c"
    assert backlog.lines is None and len(backlog) == 0 and backlog.size == 0
    # Held again after draining: in order, and charged as before.
    backlog.add(b"d", lagged=False, now=5.0)
    backlog.add(b"e", lagged=True, now=5.0)
    assert [backlog.pop(5.0), backlog.pop(5.0), backlog.pop(5.0)] == [b"d", b"e", None]
    assert backlog.lines is None


def test_a_backlog_still_bounds_what_it_holds():
    backlog = Backlog(FakeLag(burst=1, rate=10.0, now=0.0), kill=0.0, max_bytes=10)
    backlog.add(b"12345", lagged=False, now=0.0)
    with pytest.raises(ExcessFlood):
        backlog.add(b"123456", lagged=False, now=0.0)


# -- framing --------------------------------------------------------------------------------


def test_a_line_buffer_has_no_instance_dict():
    assert not hasattr(LineBuffer(), "__dict__")


@pytest.mark.parametrize("max_dropped", [0, 64])
def test_lines_come_out_as_bytes_however_the_stream_is_cut(max_dropped: int):
    stream = b"PING a\r\nNICK bob\nPRIVMSG #r :" + b"x" * 20 + b"\r\n" + b"QUIT\n"
    for cut in range(1, len(stream) + 1):
        buffer = LineBuffer(max_line=40, max_dropped=max_dropped)
        lines = [*buffer.feed(stream[:cut]), *buffer.feed(stream[cut:])]
        assert lines == [b"PING a", b"NICK bob", b"PRIVMSG #r :" + b"x" * 20, b"QUIT"]
        assert all(type(line) is bytes for line in lines)
        assert buffer.pending == 0


def test_an_over_long_line_is_still_stood_in_for_and_framing_goes_on():
    buffer = LineBuffer(max_line=8, max_dropped=64)
    lines = [*buffer.feed(b"PING a\nPRIVMSG "), *buffer.feed(b"#r :" + b"y" * 20)]
    assert buffer.dropping and buffer.pending == 9
    lines += buffer.feed(b"yy\r\nPING b\n")
    assert lines == [b"PING a", b"PRIVMSG #", b"PING b"]
    assert all(type(line) is bytes for line in lines) and buffer.pending == 0
    with pytest.raises(ReadQExceeded):
        buffer.feed(b"z" * 100)


# -- the connection's thread ----------------------------------------------------------------


def test_a_started_connection_thread_shares_its_start_event(
    server: RunningServer, connect: Callable[..., Client]
):
    client = connect("alice", join=False)
    with server.server.world.lock:
        (conn,) = server.server.world.connections
    thread = conn.thread
    # Shared by the accepting thread once start() has returned there, which may be just
    # after the connection's own thread has answered the client.
    deadline = time.monotonic() + 5
    while thread._started is not listener._STARTED and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    assert thread._started is listener._STARTED  # type: ignore[attr-defined]
    assert thread.is_alive() and "started" in repr(thread)
    client.send("QUIT :bye")
    assert client.closed()
    thread.join(5.0)
    assert not thread.is_alive()


def test_shedding_leaves_a_thread_that_is_not_started_alone():
    thread = threading.Thread(target=time.sleep, args=(0,))
    listener._shed(thread)
    assert thread._started is not listener._STARTED  # type: ignore[attr-defined]
    thread.start()
    listener._shed(thread)
    thread.join(5.0)
    assert not thread.is_alive()
