"""Bad input and bad peers: each gets a clear answer or is dropped alone, the server keeps
serving everyone else, and nothing is lost."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import pytest

from chatcli.protocol import numerics as n
from chatcli.server import commands
from chatcli.server.commands import Command, TracebackLimit, log_exception
from tests.conftest import Client


def test_overlong_line_gets_417_and_the_connection_goes_on(connect):
    alice = connect("alice")
    alice.send("PRIVMSG #lobby :" + "x" * 600)
    assert alice.expect("417").params[0] == "alice"
    alice.sync()


def test_overlong_tags_get_417(connect):
    alice = connect("alice")
    alice.send("@+a=" + "y" * 8200 + " PRIVMSG #lobby :hi")
    alice.expect("417")
    alice.sync()


def test_tags_over_every_limit_get_417_and_everyone_goes_on(connect):
    """IRCv3 message-tags: tags over the client limit are answered ERR_INPUTTOOLONG; the
    line is dropped, not the connection. Even a line longer than any line can be (here
    9000 bytes of tags) is dropped as it arrives, and framing resumes at its end."""
    alice, bob = connect("alice"), connect("bob")
    alice.expect("JOIN", "#lobby")  # bob's
    bob.send("@+a=" + "y" * 9000 + " TAGMSG #lobby")
    assert bob.expect("417").params[0] == "bob"
    bob.send("PING :after")
    assert bob.expect("PONG", skip=False).params[-1] == "after"
    bob.send("PRIVMSG alice :still here")
    assert alice.expect("PRIVMSG").params == ("alice", "still here")
    alice.send("PRIVMSG #lobby :and so am I")
    assert bob.expect("PRIVMSG", "#lobby").params[1] == "and so am I"
    assert not [m for m in alice.sync() if m.command in ("QUIT", "TAGMSG")]


def test_a_line_far_too_long_but_ended_gets_417_and_lines_around_it_run(server, connect):
    alice = connect("alice")
    huge = b"PRIVMSG #lobby :" + b"z" * (server.config.max_recvq - 100)
    alice.send(b"PING :before\r\n" + huge + b"\r\nPING :after\r\n")
    assert alice.expect("PONG", skip=False).params[-1] == "before"
    assert alice.expect("417", skip=False).params[0] == "alice"
    assert alice.expect("PONG", skip=False).params[-1] == "after"


def test_the_417_for_a_dropped_line_carries_its_label(connect):
    """The stand-in for a dropped line starts as the line did: its label is read."""
    alice = connect("alice", caps="labeled-response batch message-tags")
    alice.send("@label=big;+a=" + "y" * 9000 + " TAGMSG #lobby")
    assert alice.expect("417").tags.get("label") == "big"
    alice.sync()


def test_endless_line_closes_only_that_connection(server, connect):
    """A line that goes on past the receive queue (max_recvq) without ending is taken as
    never ending: that connection is closed (one that ends sooner gets 417, above)."""
    alice, flooder = connect("alice"), connect("flood")
    alice.expect("JOIN")
    endless = b"PRIVMSG #lobby :" + b"z" * (server.config.max_recvq + 1)  # no line ending
    flooder.sock.sendall(endless)
    assert flooder.expect("ERROR").params[0].endswith("(ReadQ exceeded)")
    assert alice.expect("QUIT").params == ("ReadQ exceeded",)
    alice.send("PRIVMSG #lobby :still here")
    alice.sync()


def test_invalid_utf8_is_rejected_like_ergo(connect):
    """IRCv3 UTF8ONLY: 'Servers publishing this token MUST NOT relay content ... containing
    non-UTF-8 data to clients.' Ergo answers FAIL <command> INVALID_UTF8."""
    alice, bob = connect("alice"), connect("bob")
    alice.expect("JOIN")
    bob.send(b"PRIVMSG #lobby :caf\xe9\r\n")
    fail = bob.expect("FAIL")
    assert fail.params[:2] == ("PRIVMSG", "INVALID_UTF8")
    bob.send("PRIVMSG #lobby :café")
    assert alice.expect("PRIVMSG").params == ("#lobby", "café")


def test_binary_junk_gets_errors_and_harms_no_one(connect):
    alice, junk = connect("alice"), connect("junk")
    alice.expect("JOIN")
    junk.send(os.urandom(3000).replace(b"\n", b" ") + b"\r\n")
    junk.send(b"\x00\x01\x02\r\n:\r\n@\r\n   \r\n:prefix-only\r\n\xff\xfe\r\n!!! ???\r\n")
    junk.sync()
    alice.send("PRIVMSG #lobby :hello junk")
    junk.expect("PRIVMSG")


def test_a_burst_of_thousands_of_lines_is_handled_in_order(connect):
    alice = connect("alice")
    alice.send("".join(f"PING :n{i}\r\n" for i in range(5000)))
    for i in range(5000):
        assert alice.expect("PONG", skip=False).params[-1] == f"n{i}"


def test_connections_that_vanish_leave_nothing_behind(server, connect):
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(b"NICK x\r\n")
        sock.close()  # RST
    alice = connect("alice")
    deadline = time.monotonic() + 5
    while server.server.thread_count > 1:
        assert time.monotonic() < deadline, "connection threads were not reaped"
        time.sleep(0.02)
    alice.sync()


def test_a_client_that_never_reads_is_dropped_and_costs_the_others_nothing(make_server):
    """A stalled reader fills only its own send queue; it is dropped with 'SendQ exceeded'
    while the others exchange 10,000 messages and receive every one, in order."""
    running = make_server(max_sendq=64 * 1024, flood_rate=0)  # no fake lag: a real flood
    count = 10_000
    stalled_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled_sock.connect(("127.0.0.1", running.port))
    stalled_sock.sendall(  # joins the room, and never reads again
        b"CAP REQ chatcli.local/autojoin\r\nNICK stalled\r\nUSER s 0 * :S\r\nCAP END\r\n"
    )
    alice, bob = Client(running.port), Client(running.port)
    batch = 100
    received = threading.Semaphore(0)
    stop = threading.Event()
    sender = None
    try:
        alice.register("alice")
        bob.register("bob")

        def talk() -> None:  # closed loop: a batch in flight at a time, as people chat
            for start in range(0, count, batch):
                alice.send("".join(f"PRIVMSG #lobby :message {i:05d} " + "." * 80 + "\r\n"
                                   for i in range(start, start + batch)))  # fmt: skip
                while not received.acquire(timeout=0.1):
                    if stop.is_set():
                        return

        sender = threading.Thread(target=talk, name="talk")
        sender.start()
        got = 0
        quit_reason = None
        deadline = time.monotonic() + 60
        while got < count and time.monotonic() < deadline:
            msg = bob.recv()
            assert msg is not None
            if msg.command == "PRIVMSG":
                assert msg.params[1].startswith(f"message {got:05d} ")
                got += 1
                if got % batch == 0:
                    received.release()
            elif msg.command == "QUIT" and msg.source.startswith("stalled!"):
                quit_reason = msg.params[0]
        assert got == count
        if quit_reason is None:
            quit_reason = bob.expect("QUIT", timeout=10).params[0]
        assert quit_reason == "SendQ exceeded"
        bob.send("ISON stalled")
        assert bob.expect("303").params[-1] == ""
    finally:
        stop.set()
        if sender is not None:
            sender.join(10)
        alice.close()
        bob.close()
        stalled_sock.close()


@pytest.mark.parametrize(
    "line, reply",
    [
        ("NICK :a b", "432"),
        ("TOPIC :#a b", "403"),
        ("MODE :a b", "401"),
        ("MODE :#a b", "403"),
        ("CAP :LS x", "410"),
        ("VERSION :a b", "402"),
        ("HELP :a b", "524"),
        ("WHOIS :a b", "401"),
        ("JOIN :#a b", "403"),
        ("PART :#a b", "403"),
        ("NAMES :#a b", "366"),
        ("WHO :a b", "315"),
        ("PRIVMSG :a b", "412"),
        ("KICK #lobby :a b", "482"),
        ("INVITE bob :#a b", "401"),
        ("MODE #lobby +b :a b", "482"),
    ],
)
def test_parameters_with_spaces_are_answered_not_fatal(connect, line, reply):
    """Replies echo what was sent; a trailing parameter with a space in it must not make
    the echo unsendable (it used to end the connection with 'Internal error')."""
    alice = connect("alice")
    alice.send(line)
    msg = alice.expect(reply)
    assert " " not in "".join(msg.params[:-1])
    alice.sync()


def test_ban_mask_with_a_space_is_refused(connect):
    alice = connect("alice")
    alice.send("JOIN #b")
    alice.send("MODE #b +b :a b")
    alice.expect("696")
    alice.sync()


# --------------------------------------------------------------------------------------------
# Tracebacks are logged at a bounded rate: "at most burst in full, refilled at burst every
# period seconds; past that one line for each, naming the exception, with a count of the
# tracebacks left out".
# --------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_traceback_limit_is_a_token_bucket_that_counts_what_it_leaves_out():
    clock = FakeClock()
    limit = TracebackLimit(burst=5, period=60.0, clock=clock)
    assert [limit.check() for _ in range(5)] == [(True, 0)] * 5
    assert [limit.check() for _ in range(3)] == [(False, 1), (False, 2), (False, 3)]
    clock.now += 11.9  # not yet a whole traceback's worth (one every 12 s)
    assert limit.check() == (False, 4)
    clock.now += 0.1
    assert limit.check() == (True, 4)  # the one logged says how many were left out before
    assert limit.check() == (False, 1)
    clock.now += 3600.0  # a quiet hour refills the bucket, to burst and no more
    assert [limit.check() for _ in range(6)] == [(True, 1)] + [(True, 0)] * 4 + [(False, 1)]


def test_traceback_limit_ignores_a_clock_that_goes_back():
    clock = FakeClock()
    limit = TracebackLimit(burst=1, period=60.0, clock=clock)
    assert limit.check() == (True, 0)
    clock.now -= 500.0
    assert limit.check() == (False, 1)


def test_traceback_limit_needs_a_burst_and_a_period():
    with pytest.raises(ValueError):
        TracebackLimit(burst=0)
    with pytest.raises(ValueError):
        TracebackLimit(period=0.0)


def test_log_exception_logs_tracebacks_then_one_line_each(caplog):
    caplog.set_level(logging.ERROR, logger="chatcli.server")
    limit = TracebackLimit()  # a server's
    for i in range(7):
        try:
            {}[f"key{i}"]
        except KeyError:
            log_exception(limit, "%s from %r failed", "BOOM", "alice")
    full = [r for r in caplog.records if r.exc_info]
    short = [r for r in caplog.records if not r.exc_info]
    assert len(full) == 5 and len(short) == 2
    assert all(r.levelno == logging.ERROR for r in caplog.records)
    assert short[0].getMessage().startswith("BOOM from 'alice' failed: KeyError: 'key5'")
    assert "1 since the last one logged" in short[0].getMessage()
    assert "2 since the last one logged" in short[1].getMessage()
    caplog.clear()
    try:
        raise RuntimeError("elsewhere")
    except RuntimeError:
        log_exception(TracebackLimit(), "another server's")  # has a limit of its own
    assert caplog.records[0].exc_info


def test_a_client_repeating_a_crash_floods_neither_the_log_nor_itself(connect, caplog):
    """Each time it gets 400 and goes on; the log gets five tracebacks, then a line each."""

    def crash(conn, msg):
        """CRASH — a handler with a bug."""
        raise ZeroDivisionError("a bug")

    caplog.set_level(logging.ERROR, logger="chatcli.server")
    commands.COMMANDS["CRASH"] = Command("CRASH", crash)
    try:
        alice = connect("alice")
        alice.send("CRASH\r\n" * 8)
        for _ in range(8):
            assert alice.expect(n.ERR_UNKNOWNERROR).params[:2] == ("alice", "CRASH")
        alice.sync()
    finally:
        del commands.COMMANDS["CRASH"]
    records = [r for r in caplog.records if r.name == "chatcli.server" and "CRASH" in r.message]
    assert [bool(r.exc_info) for r in records] == [True] * 5 + [False] * 3
    assert "ZeroDivisionError: a bug" in records[-1].message
