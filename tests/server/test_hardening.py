"""Hardening: hostile or broken peers are answered or dropped alone, and established users
never notice.

* a live fuzz: mutated real command lines, junk, huge and truncated input, from several
  connections at once, while a control pair keeps talking;
* slowloris and connect-and-idle peers, dropped at the registration timeout;
* 2,000 connections from one address, met by max_per_ip, the throttle and the timeout;
* an exception inside a command handler: logged with its traceback, answered with 400.
"""

from __future__ import annotations

import logging
import random
import selectors
import socket
import threading
import time

import pytest

from chatcli.protocol import MAX_LINE_BYTES
from chatcli.protocol import numerics as n
from chatcli.server import commands
from chatcli.server.commands import Command
from tests.conftest import Client

# --------------------------------------------------------------------------------------------
# Live fuzz.
# --------------------------------------------------------------------------------------------

SEED = 20240611
FUZZ_SECONDS = 2.5
FUZZERS = 4

_VERBS = ["PRIVMSG", "JOIN", "MODE", "WHO", "CHATHISTORY", "TAGMSG", "CAP", "AUTHENTICATE"]
_PARAMS = [
    "#lobby",
    "#fuzz",
    "#f,#g",
    "fuzz0",
    "fuzz1",
    "*",
    "+o",
    "-o",
    "+b",
    "+k",
    "+l",
    "+i",
    "LS",
    "302",
    "REQ",
    "END",
    "LIST",
    "PLAIN",
    "+",
    "AAAA",
    "LATEST",
    "BEFORE",
    "AROUND",
    "BETWEEN",
    "TARGETS",
    "timestamp=2024-01-01T00:00:00.000Z",
    "msgid=zz",
    "%tcuhnfar",
    "0",
    "50",
    "-1",
    "99999999999",
    "*!*@*",
    "café",
]
_TAGS = ["label=l1", "+draft/reply=x", "+typing=active", "msgid=m", "batch=b", "+a=\\s\\:"]
_JUNK = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\r", b" ", b":", b"@", b";", b"\t"]


def _real_line(rng: random.Random) -> bytes:
    parts = []
    if rng.random() < 0.3:
        parts.append("@" + ";".join(rng.sample(_TAGS, rng.randint(1, 3))))
    parts.append(rng.choice(_VERBS))
    parts.extend(rng.choice(_PARAMS) for _ in range(rng.randint(0, 5)))
    if rng.random() < 0.5:
        parts.append(":" + " ".join(rng.choice(_PARAMS) for _ in range(rng.randint(0, 4))))
    return " ".join(parts).encode()


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(0, 3)):
        at = rng.randint(0, len(buf))
        kind = rng.randrange(5)
        if kind == 0:
            del buf[at:]  # truncated
        elif kind == 1 and at < len(buf):
            buf[at] ^= rng.randint(1, 255)
        elif kind == 2:
            buf[at:at] = rng.choice(_JUNK)
        elif kind == 3:
            buf[at:at] = buf[at : at + 16] * rng.randint(2, 40)
        else:
            del buf[at : at + rng.randint(1, 8)]
    return bytes(buf)


def _fuzz_chunk(rng: random.Random) -> bytes:
    """One burst of input: mostly mutated real lines, sometimes worse."""
    roll = rng.random()
    if roll < 0.75:
        return b"".join(_mutate(rng, _real_line(rng)) + b"\r\n" for _ in range(rng.randint(1, 20)))
    if roll < 0.85:
        return rng.randbytes(rng.randint(1, 2000))  # binary, line endings where they fall
    if roll < 0.93:  # huge but framed: 417
        return b"PRIVMSG #lobby :" + b"x" * rng.randint(600, 9000) + b"\r\n"
    if roll < 0.97:  # a line that never ends: ReadQ exceeded, the connection is dropped
        return b"PRIVMSG #lobby :" + b"y" * (128 * 1024 + MAX_LINE_BYTES)  # past max_recvq
    return b"\r\n" * rng.randint(1, 50) + b"   \r\n"


class Fuzzer(threading.Thread):
    """Sends fuzz input on one connection, reconnecting whenever the server drops it."""

    def __init__(self, port: int, index: int, stop: threading.Event) -> None:
        super().__init__(name=f"fuzzer {index}")
        self.port = port
        self.index = index
        self.stop = stop
        self.rng = random.Random(SEED + index)
        self.connections = 0
        self.sent = 0

    def run(self) -> None:
        while not self.stop.is_set():
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2.0)
            self.connections += 1
            try:
                if self.rng.random() < 0.7:  # most fuzz from past registration
                    nick = f"fuzz{self.index}x{self.connections}"
                    sock.sendall(
                        f"CAP REQ :chatcli.local/autojoin labeled-response batch message-tags\r\n"
                        f"NICK {nick}\r\nUSER {nick} 0 * :f\r\nCAP END\r\n".encode()
                    )
                self._blast(sock)
            except OSError:
                pass  # dropped by the server (ReadQ, SendQ, QUIT...): connect again
            finally:
                sock.close()

    def _blast(self, sock: socket.socket) -> None:
        while not self.stop.is_set():
            data = _fuzz_chunk(self.rng)
            sock.sendall(data)
            self.sent += len(data)
            # Read what came back, without waiting: a fuzzer that never read would only
            # test the send queue, which test_robustness does.
            sock.settimeout(0.0)
            try:
                while True:
                    if not sock.recv(65536):
                        return
            except BlockingIOError:
                pass
            finally:
                sock.settimeout(2.0)


def test_live_fuzz_leaves_the_server_up_and_the_control_pair_whole(make_server, caplog):
    """Several connections send mutated and hostile input for a few seconds while a control
    pair exchange numbered messages: every one arrives, in order, the server answers a new
    client afterwards, no handler crashed, and (autouse check) no thread or fd leaked."""
    caplog.set_level(logging.ERROR, logger="chatcli.server")
    running = make_server(flood_rate=0.0)
    alice, bob = Client(running.port), Client(running.port)
    stop = threading.Event()
    fuzzers = [Fuzzer(running.port, i, stop) for i in range(FUZZERS)]
    try:
        # Not in #lobby: the control pair talk directly, away from what the fuzzers do.
        alice.register("ctlalice", join=False)
        bob.register("ctlbob", join=False)
        for fuzzer in fuzzers:
            fuzzer.start()
        sent = 0
        deadline = time.monotonic() + FUZZ_SECONDS
        while time.monotonic() < deadline:
            alice.send(f"PRIVMSG ctlbob :seq {sent}")
            bob.send(f"PRIVMSG ctlalice :ack {sent}")
            assert bob.expect("PRIVMSG", "ctlbob").params[1] == f"seq {sent}"
            assert alice.expect("PRIVMSG", "ctlalice").params[1] == f"ack {sent}"
            sent += 1
    finally:
        stop.set()
        for fuzzer in fuzzers:
            fuzzer.join(5)
    try:
        assert not any(f.is_alive() for f in fuzzers)
        assert sent > 20, "the control pair barely got a word in"
        assert sum(f.connections for f in fuzzers) > FUZZERS, "no fuzzer was ever dropped"
        assert sum(f.sent for f in fuzzers) > 100_000
        # Nothing else arrived for the pair: no lost or duplicated message.
        for client in (alice, bob):
            assert [m for m in client.sync() if m.command == "PRIVMSG"] == []
        late = Client(running.port)
        try:
            late.register("latecomer")
            late.sync()
        finally:
            late.close()
        crashes = [r for r in caplog.records if r.exc_info]
        assert not crashes, f"a handler crashed: {crashes[0].getMessage()}"
    finally:
        alice.close()
        bob.close()
    # Every fuzz connection's thread ends: only the control pair's remain.
    deadline = time.monotonic() + 5
    while running.server.thread_count > 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.server.thread_count <= 2


# --------------------------------------------------------------------------------------------
# Slowloris and connect-and-idle.
# --------------------------------------------------------------------------------------------


def test_slowloris_and_idle_peers_are_dropped_at_registration_timeout(make_server):
    """A peer that dribbles its registration a byte at a time, and one that connects and says
    nothing, are both dropped at registration_timeout: input keeps neither alive. Meanwhile
    two registered users chat on undisturbed, and the nick the dribbler asked for is free
    again after."""
    running = make_server(registration_timeout=1.0, tick=0.1)
    alice, bob = Client(running.port), Client(running.port)
    try:
        alice.register("alice")
        bob.register("bob")
        start = time.monotonic()
        slow, idle = Client(running.port), Client(running.port)
        # The NICK line completes; the USER line never does.
        dribble = b"NICK slowloris\r\nUSER slowloris 0 * :" + b"z" * 400
        dropped: dict[str, float] = {}
        received: dict[str, list[str]] = {"slow": [], "idle": []}
        sent = 0
        while len(dropped) < 2 and time.monotonic() - start < 4:
            if "slow" not in dropped and sent < len(dribble):
                try:
                    slow.sock.sendall(dribble[sent : sent + 1])
                    sent += 1
                except OSError:
                    pass  # dropped: the reads below see it
            alice.send(f"PRIVMSG bob :msg {sent}")
            assert bob.expect("PRIVMSG", "bob").params[1] == f"msg {sent}"
            for name, client in (("slow", slow), ("idle", idle)):
                if name in dropped:
                    continue
                try:
                    msg = client.recv(0.02)
                except TimeoutError:
                    continue
                if msg is None:
                    dropped[name] = time.monotonic() - start
                else:
                    received[name].append(msg.to_line())
        slow.close()
        idle.close()
        assert set(dropped) == {"slow", "idle"}, f"still connected after 4 s: {received}"
        for name, after in dropped.items():
            assert 1.0 <= after < 2.5, f"{name} dropped after {after:.2f} s"
            assert received[name][-1].endswith("(Registration timeout)"), received[name]
        assert 10 < sent < len(dribble), "the dribbler should be cut off mid-line"
        # The unregistered nick is released with the connection.
        alice.send("NICK slowloris")
        alice.expect("NICK")
        bob.send("PRIVMSG slowloris :you got it")
        assert alice.expect("PRIVMSG", "slowloris").params[1] == "you got it"
    finally:
        alice.close()
        bob.close()


def test_two_thousand_connections_from_one_address_meet_the_limits(make_server):
    """2,000 connections opened as fast as one address can, each held open and silent: the
    address gets max_per_ip places (the two users already on hold two), the rest are told why
    and closed at once, and those let in are dropped at the registration timeout. The two
    users chat on throughout, and afterwards only they are left."""
    storm_size = 2000
    running = make_server(exempt_loopback=False, registration_timeout=1.0, tick=0.1)
    config = running.server.config
    alice, bob = Client(running.port), Client(running.port)
    storm: list[socket.socket] = []
    most_threads = 0
    try:
        alice.register("alice")
        bob.register("bob")
        done = threading.Event()

        def open_all() -> None:
            try:
                for _ in range(storm_size):
                    storm.append(socket.create_connection(("127.0.0.1", running.port), 5.0))
            finally:
                done.set()

        opener = threading.Thread(target=open_all, name="storm")
        opener.start()
        sent = 0
        while not done.is_set() and sent < 10_000:
            sent += 1
            alice.send(f"PRIVMSG bob :during {sent}")
            assert bob.expect("PRIVMSG", "bob").params[1] == f"during {sent}"
            most_threads = max(most_threads, running.server.thread_count)
        opener.join()
        assert len(storm) == storm_size

        # Read every storm socket to its end (or the deadline): refused ones end at once with
        # ERROR; admitted ones at the registration timeout, which they never beat.
        heard = _read_to_the_end(storm, deadline=time.monotonic() + 4.0)
        reasons = [lines[-1] if lines else "(still open)" for lines in heard]
        refused = [r for r in reasons if "Too many connections" in r or "Connecting too fast" in r]
        timed_out = [r for r in reasons if r.endswith("(Registration timeout)")]
        assert len(timed_out) == config.max_per_ip - 2, set(reasons) - set(refused)
        assert len(refused) == storm_size - len(timed_out), set(reasons)
        assert most_threads <= config.max_per_ip
        assert sent > 0
        alice.send("PRIVMSG bob :after the storm")
        assert bob.expect("PRIVMSG", "bob").params[1] == "after the storm"
        deadline = time.monotonic() + 5.0
        while running.server.thread_count != 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running.server.thread_count == 2
    finally:
        for sock in storm:
            sock.close()
        alice.close()
        bob.close()


def _read_to_the_end(socks: list[socket.socket], deadline: float) -> list[list[str]]:
    """Each socket's lines, read until the server closes it or ``deadline`` passes."""
    lines: list[list[str]] = [[] for _ in socks]
    with selectors.DefaultSelector() as selector:
        for index, sock in enumerate(socks):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, index)
        buffers = [b""] * len(socks)
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                index = key.data
                try:
                    data = socks[index].recv(4096)
                except OSError:
                    data = b""
                if data:
                    buffers[index] += data
                    continue
                selector.unregister(socks[index])
                lines[index] = buffers[index].decode(errors="replace").splitlines()
    return lines


# --------------------------------------------------------------------------------------------
# Exceptions inside command handlers.
# --------------------------------------------------------------------------------------------


class Kaboom(RuntimeError):
    pass


def _raise_plainly(conn, msg):
    """BOOM — raise at once."""
    raise Kaboom("plain")


def _raise_under_the_world_lock(conn, msg):
    """BOOM — raise while holding the world lock (must be released)."""
    with conn.world.lock:
        raise Kaboom("under lock")


def _raise_after_sending(conn, msg):
    """BOOM — say something, then raise."""
    conn.notice("before the crash")
    {}["missing"]  # a KeyError, as a real bug would raise


def _exit(conn, msg):
    """BOOM — a stray sys.exit(), which threading would otherwise swallow silently."""
    raise SystemExit(3)


@pytest.fixture
def boom():
    """Install a throwaway BOOM command for one test; the table is restored after."""
    installed: list[str] = []

    def install(handler, before_registration=False):
        commands.COMMANDS["BOOM"] = Command("BOOM", handler, 0, before_registration)
        installed.append("BOOM")

    yield install
    for name in installed:
        commands.COMMANDS.pop(name, None)


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (_raise_plainly, "Kaboom"),
        (_raise_under_the_world_lock, "Kaboom"),
        (_raise_after_sending, "KeyError"),
        (_exit, "SystemExit"),
    ],
)
def test_handler_exception_is_logged_answered_and_harms_no_one(
    connect, boom, caplog, handler, error
):
    """'An exception inside any command handler is caught, logged with a traceback,
    answered with an error to that client, and never kills the connection thread silently
    or affects others.' (issue "Hardening")"""
    boom(handler)
    caplog.set_level(logging.ERROR, logger="chatcli.server")
    alice, bob = connect("alice"), connect("bob")
    alice.expect("JOIN", "#lobby")  # bob's arrival
    alice.send("BOOM now")
    before = alice.collect(n.ERR_UNKNOWNERROR)
    assert before[-1].params[:2] == ("alice", "BOOM")
    if handler is _raise_after_sending:
        assert [m.params[-1] for m in before if m.command == "NOTICE"] == ["before the crash"]

    records = [r for r in caplog.records if r.exc_info and r.name == "chatcli.server"]
    assert len(records) == 1
    assert "BOOM" in records[0].getMessage()
    assert records[0].exc_info[0].__name__ == error
    assert handler.__name__ in caplog.text  # the traceback, down to the handler

    # The same connection goes on, and so does everyone else, the world lock included.
    alice.send("PRIVMSG #lobby :still alive")
    assert bob.expect("PRIVMSG", "#lobby").params[1] == "still alive"
    bob.send("JOIN #other")
    bob.expect("JOIN", "#other")
    alice.send("BOOM again")
    alice.expect(n.ERR_UNKNOWNERROR)
    alice.sync()


def test_handler_exception_before_registration_and_in_a_labeled_response(connect, boom, caplog):
    """The 400 reaches an unregistered client too (as ``*``), and inside a labeled
    response it carries the label."""
    boom(_raise_plainly, before_registration=True)
    caplog.set_level(logging.ERROR, logger="chatcli.server")
    early = connect()
    early.send("BOOM")
    assert early.expect(n.ERR_UNKNOWNERROR).params[:2] == ("*", "BOOM")
    early.register("early", caps="labeled-response batch message-tags")
    early.send("@label=abc BOOM")
    reply = early.expect(n.ERR_UNKNOWNERROR)
    assert reply.tags.get("label") == "abc"
    early.sync()
    assert len([r for r in caplog.records if r.exc_info]) == 2


@pytest.mark.parametrize("line", ["CHATHISTORY :", "CHATHISTORY :LATEST #lobby * 10"])
def test_chathistory_with_an_odd_subcommand_is_answered_not_crashed(connect, caplog, line):
    """Found by the fuzz: the subcommand is echoed in FAIL as a middle parameter, so an
    empty one or one with a space made the reply unbuildable (LocalProtocolError, 400)."""
    caplog.set_level(logging.ERROR, logger="chatcli.server")
    alice = connect("alice")
    alice.send(line)
    replies = alice.sync()
    assert [m.command for m in replies] == ["FAIL"]
    assert not [r for r in caplog.records if r.exc_info]
