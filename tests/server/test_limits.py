"""Limits: flood past the hard limit, what is held for a client, connections in all and
per address, the throttle, rooms per client, failed logins and account registrations.

Each limit is in ServerConfig with a documented default; over it, a client is told why (an
ERROR line and closed, or an error reply and carries on) while everyone else chats on.
The lengths of names and texts are in test_lengths.py.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from chatcli.config import ServerConfig
from chatcli.errors import ConfigError
from chatcli.protocol import CaseMapping
from chatcli.protocol import numerics as n
from chatcli.server import logins
from chatcli.server.flood import Backlog, ExcessFlood, FakeLag
from chatcli.server.logins import FREE_FAILURES
from chatcli.server.sendq import Flusher
from chatcli.server.state import World
from chatcli.settings import commented_default
from tests.conftest import Client
from tests.server.hosts import shown_host


class StoppedClock:
    """A clock for the server's throttles that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def chat_works(alice: Client, bob: Client, text: str = "still here") -> None:
    alice.send(f"PRIVMSG {bob.nick} :{text}")
    assert bob.expect("PRIVMSG", bob.nick).params[1] == text


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def refused(client: Client, reason: str) -> None:
    msg = client.expect("ERROR", skip=False)
    assert msg.params[0] == f"Closing link: 127.0.0.1 ({reason})"
    assert client.closed()


# -- the backlog, by the clock it is given ------------------------------------------------


def test_lines_are_due_in_order_at_the_flood_rate():
    backlog = Backlog(FakeLag(burst=2, rate=10.0, now=0.0), kill=30.0, max_bytes=1 << 16)
    for line in (b"A", b"B", b"C", b"PING"):
        backlog.add(line, lagged=line != b"PING", now=0.0)
    assert [backlog.pop(0.0), backlog.pop(0.0), backlog.pop(0.0)] == [b"A", b"B", None]
    assert backlog.next_due() == pytest.approx(0.1)
    assert [backlog.pop(0.1), backlog.pop(0.1)] == [b"C", b"PING"]  # PING waits its turn


def test_more_than_kill_seconds_behind_is_excess_flood():
    backlog = Backlog(FakeLag(burst=5, rate=10.0, now=0.0), kill=2.0, max_bytes=1 << 16)
    for _ in range(5 + 20):  # the burst, then 2 s worth
        backlog.add(b"PRIVMSG x :y", lagged=True, now=0.0)
    with pytest.raises(ExcessFlood):
        backlog.add(b"PRIVMSG x :y", lagged=True, now=0.0)


def test_more_than_max_bytes_held_is_excess_flood():
    backlog = Backlog(FakeLag(burst=1, rate=10.0, now=0.0), kill=0.0, max_bytes=100)
    backlog.add(b"x" * 100, lagged=False, now=0.0)
    with pytest.raises(ExcessFlood):
        backlog.add(b"PING", lagged=False, now=0.0)


OUT_OF_RANGE = [
    {"max_sendq": 0},
    {"registration_timeout": 0.0},
    {"ping_interval": 0.0},
    {"ping_timeout": 0.0},
    {"flood_burst": 0},
    {"flood_rate": -1.0},
    {"flood_kill": -1.0},
    {"max_recvq": 1024},
    {"max_clients": 0},
    {"max_per_ip": -1},
    {"throttle_connects": -1},
    {"throttle_window": 0.0},
    {"nick_grace": 0.0},
    {"login_backoff": -1.0},
    {"login_backoff_max": -1.0},
    {"account_limit": -1},
    {"account_window": 0.0},
    {"channel_len": 5},  # shorter than the default room, #lobby
]


@pytest.mark.parametrize("override", OUT_OF_RANGE)
def test_out_of_range_limits_are_refused(override):
    with pytest.raises(ConfigError):
        ServerConfig(**override).validate()  # type: ignore[arg-type]


# Modern IRC: NICKLEN, CHANNELLEN, TOPICLEN, AWAYLEN and KICKLEN "MUST be a positive
# integer", and so is a limit given in CHANLIMIT, MAXTARGETS or MONITOR. Ergo refuses to
# start with a length under 1 ("Limits aren't setup properly"). A count of 0 would silently
# lock everyone out of what it counts.
NOT_POSITIVE = [
    {"nick_len": 0},  # nobody could register
    {"topic_len": 0},  # every topic set would be cleared
    {"away_len": 0},  # every AWAY would mean back
    {"kick_len": 0},
    {"max_channels": 0},  # not even the default room
    {"max_targets": 0},  # no PRIVMSG at all
    {"max_monitor": -1},
    {"max_chathistory": 0},  # CHATHISTORY would answer nothing, ever
]


@pytest.mark.parametrize("override", NOT_POSITIVE)
def test_lengths_and_counts_below_one_are_refused(override):
    with pytest.raises(ConfigError):
        ServerConfig(**override).validate()  # type: ignore[arg-type]


LIMITS = (
    "max_sendq", "socket_sndbuf", "registration_timeout", "ping_interval", "ping_timeout",
    "flood_burst", "flood_rate", "flood_kill", "max_recvq", "max_clients", "max_per_ip",
    "throttle_connects", "throttle_window", "exempt_loopback", "max_channels", "max_targets",
    "max_monitor", "max_chathistory", "nick_grace", "login_backoff", "login_backoff_max",
    "account_limit", "account_window",
)  # fmt: skip
LENGTHS = ("nick_len", "channel_len", "topic_len", "away_len", "kick_len")


@pytest.mark.parametrize("name", [*LIMITS, *LENGTHS])
def test_every_limit_has_a_documented_default(name):
    """What ``chat serve --print-config`` writes: each setting, commented, at its default."""
    lines = commented_default().splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith(f"{name} = ")]
    assert lines[at - 1].startswith("# "), f"{name} has no documentation"


# -- against the real server --------------------------------------------------------------


def test_flooding_past_the_hard_limit_is_excess_flood(make_server):
    """Excess is delayed; a client that keeps flooding past ``flood_kill`` is dropped."""
    running = make_server(flood_burst=5, flood_rate=10.0, flood_kill=1.0)
    flooder, alice, bob = Client(running.port), Client(running.port), Client(running.port)
    try:
        flooder.register("flooder")
        alice.register("alice")
        bob.register("bob")
        flooder.send("".join(f"PRIVMSG #lobby :flood {i}\r\n" for i in range(200)))
        assert flooder.expect("ERROR").params[0] == "Closing link: 127.0.0.1 (Excess Flood)"
        assert flooder.closed()
        quit_ = alice.expect("QUIT")
        source = f"flooder!~flooder@{shown_host(running)}"
        assert (quit_.source, quit_.params) == (source, ("Excess Flood",))
        chat_works(alice, bob)
    finally:
        for client in (flooder, alice, bob):
            client.close()


def test_a_paste_within_the_hard_limit_is_only_delayed(make_server):
    running = make_server(flood_burst=5, flood_rate=20.0, flood_kill=1.0)
    paster, bob = Client(running.port), Client(running.port)
    try:
        paster.register("paster")
        bob.register("bob")
        paster.send("".join(f"PRIVMSG bob :line {i}\r\n" for i in range(20)))  # 0.75 s
        for i in range(20):
            assert bob.expect("PRIVMSG").params[1] == f"line {i}"
        assert [m for m in paster.sync() if m.command != "JOIN"] == []  # no ERROR
    finally:
        paster.close()
        bob.close()


@pytest.mark.single_server("connections are counted and throttled per node")
def test_over_max_clients_is_server_full(make_server):
    running = make_server(max_clients=2)
    alice, bob = Client(running.port), Client(running.port)
    extra = None
    try:
        alice.register("alice")
        bob.register("bob")
        extra = Client(running.port)
        refused(extra, "Server full")
        chat_works(alice, bob)
    finally:
        for client in (alice, bob, extra):
            if client is not None:
                client.close()


@pytest.mark.single_server("connections are counted and throttled per node")
def test_over_max_per_ip_is_refused_unless_loopback_is_exempt(make_server):
    running = make_server(max_per_ip=2, exempt_loopback=False)
    alice, bob = Client(running.port), Client(running.port)
    extra = None
    try:
        alice.register("alice")
        bob.register("bob")
        extra = Client(running.port)
        refused(extra, "Too many connections from your address")
        chat_works(alice, bob)
        bob.send("QUIT")
        assert bob.closed()
        extra.close()
        wait_for(lambda: running.server.thread_count == 1)
        extra = Client(running.port)  # a place came free
        extra.register("carol")
    finally:
        for client in (alice, bob, extra):
            if client is not None:
                client.close()


@pytest.mark.single_server("connections are counted and throttled per node")
def test_connecting_too_fast_is_throttled(make_server):
    running = make_server(throttle_connects=2, throttle_window=0.5, exempt_loopback=False)
    clock = running.server.clock = StoppedClock()
    clients = [Client(running.port), Client(running.port)]
    try:
        clients[0].register("alice")
        clients[1].register("bob")
        clients.append(Client(running.port))
        refused(clients[-1], "Connecting too fast")
        chat_works(clients[0], clients[1])
        clock.now += 0.6  # the window has passed
        clients.append(Client(running.port))
        clients[-1].register("carol")
    finally:
        for client in clients:
            client.close()


def test_loopback_is_exempt_by_default(make_server):
    running = make_server(max_per_ip=1, throttle_connects=1)
    clients = [Client(running.port) for _ in range(3)]
    try:
        for i, client in enumerate(clients):
            client.register(f"user{i}")
        chat_works(clients[0], clients[2])
    finally:
        for client in clients:
            client.close()


def test_holding_more_than_max_recvq_bytes_is_excess_flood(make_server):
    """Lines read but held by flood control are bounded in bytes too: a paste that fits is
    only delayed; a client that keeps sending past ``max_recvq`` is dropped, however few
    seconds behind it is (flood_kill is off here)."""
    running = make_server(flood_burst=20, flood_rate=10.0, flood_kill=0.0, max_recvq=40 * 1024)
    paster, alice, bob = Client(running.port), Client(running.port), Client(running.port)
    line = "PRIVMSG alice :" + "x" * 385 + "\r\n"  # 400 bytes held, the line ending aside
    try:
        paster.register("paster")
        alice.register("alice")
        bob.register("bob")
        paster.sync()
        paster.send(line * 100)  # 40,000 bytes: held at most 100 lines, under 40 KiB
        assert alice.expect("PRIVMSG").params[0] == "alice"  # delayed, not dropped
        assert paster.quiet(0.3) == []
        paster.send(line * 40)  # 56,000 in all; less the burst and 10 a second: over 40 KiB
        assert paster.expect("ERROR").params[0] == "Closing link: 127.0.0.1 (Excess Flood)"
        assert paster.closed()
        assert bob.expect("QUIT").params == ("Excess Flood",)
        chat_works(alice, bob)
    finally:
        for client in (paster, alice, bob):
            client.close()


def test_each_client_has_a_kernel_send_buffer_of_socket_sndbuf(make_server):
    """Not the kernel's own growth to megabytes: a client that stops reading fills its send
    queue (max_sendq, then "SendQ exceeded": test_robustness.py) within a bounded amount."""
    running = make_server(socket_sndbuf=16 * 1024)
    client = Client(running.port)
    try:
        client.register("alice")
        with running.server.world.lock:
            (conn,) = running.server.world.connections
        size = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        assert 16 * 1024 <= size <= 2 * 16 * 1024  # Linux doubles it, for its bookkeeping
    finally:
        client.close()


def test_joining_more_than_max_channels_rooms_is_405(make_server):
    """Modern IRC, ERR_TOOMANYCHANNELS (405): "the JOIN command failed because the client
    has joined their maximum number of channels"; CHANLIMIT says how many."""
    running = make_server(max_channels=3)
    alice, bob = Client(running.port), Client(running.port)
    try:
        burst = alice.register("alice")  # in the default room: one
        assert any("CHANLIMIT=#:3" in m.params for m in burst if m.command == n.RPL_ISUPPORT)
        bob.register("bob")
        alice.send("JOIN #two,#three,#four")
        alice.expect("JOIN", "#two")
        alice.expect("JOIN", "#three")
        refusal = alice.expect(n.ERR_TOOMANYCHANNELS)
        assert refusal.params == ("alice", "#four", "You have joined too many channels")
        chat_works(alice, bob)
        alice.send("PART #two")
        alice.send("JOIN #four")  # a place came free
        alice.expect("JOIN", "#four")
    finally:
        alice.close()
        bob.close()


def test_failure_counts_are_forgotten_when_stale_and_bounded_in_number(monkeypatch):
    """Each count lasts FAILURE_MEMORY after its last failure, and there are never more than
    MAX_KEYS of them (the oldest go first), however fast failures come."""
    monkeypatch.setattr(logins, "MAX_KEYS", 100)
    flusher = Flusher()  # (never started: nothing is sent)
    world = World(CaseMapping.ASCII, flusher)
    try:
        for i in range(150):  # 150 names tried in a second: the 50 oldest go
            logins.note(world, (f"account a{i}",), failed=True, now=i / 150)
        assert list(world.failed_logins) == [f"account a{i}" for i in range(50, 150)]
        logins.note(world, ("account a60",), failed=True, now=2.0)  # again: the newest now
        assert world.failed_logins["account a60"] == (2, 2.0)
        assert list(world.failed_logins)[-1] == "account a60"
        logins.note(world, ("ip 192.0.2.1",), failed=True, now=2.0 + logins.FAILURE_MEMORY - 1)
        assert list(world.failed_logins) == ["account a60", "ip 192.0.2.1"]  # the rest are stale
        logins.note(world, ("account a60",), failed=False, now=2.0 + logins.FAILURE_MEMORY)
        assert list(world.failed_logins) == ["ip 192.0.2.1"]  # a success forgets at once
    finally:
        flusher.stop()


def test_failed_logins_wait_at_most_login_backoff_max(make_server, tmp_path):
    """After FREE_FAILURES failed logins each attempt waits first, twice as long each time
    (login_backoff) but never longer than login_backoff_max."""
    running = make_server(db=str(tmp_path / "chat.db"), login_backoff=0.05, login_backoff_max=0.1)
    guesser, bob = Client(running.port), Client(running.port)
    # uncapped, the last six would wait 0.05, 0.1, 0.2, 0.4, 0.8, 1.6: 3.15 s in all (more
    # attempts would meet the password-hashing budget, another limit)
    waits = [0.0] * FREE_FAILURES + [0.05, 0.1, 0.1, 0.1, 0.1, 0.1]
    took = []
    try:
        guesser.register("guesser", join=False)
        bob.register("bob", join=False)
        for _ in waits:
            started = time.monotonic()
            guesser.send("PRIVMSG NickServ :IDENTIFY nobody wrong")
            assert guesser.expect("NOTICE").params[-1] == "Invalid account or password."
            took.append(time.monotonic() - started)
        assert all(t >= wait for t, wait in zip(took, waits, strict=True)), took
        # past what a free attempt takes (a round trip and a password's hash): 0.55 s in
        # all, capped; less than the uncapped 3.15 s by a busy machine's margin
        base = min(took[:FREE_FAILURES])
        assert sum(t - base for t in took[FREE_FAILURES:]) < 2.5, took
        chat_works(guesser, bob)  # slowed, not dropped
    finally:
        guesser.close()
        bob.close()


@pytest.mark.single_server("registrations per address are counted per node")
def test_the_account_limit_counts_only_the_last_account_window(make_server, tmp_path):
    running = make_server(
        db=str(tmp_path / "chat.db"), account_limit=1, account_window=0.3, exempt_loopback=False
    )
    clock = running.server.clock = StoppedClock()
    first, second = Client(running.port), Client(running.port)
    try:
        first.register("first", join=False)
        second.register("second", join=False)
        first.send("REGISTER * * :hunter22")
        assert first.expect("REGISTER").params[:2] == ("SUCCESS", "first")
        second.send("REGISTER * * :hunter22")
        fail = second.expect("FAIL")
        assert fail.params == (
            "REGISTER",
            "TEMPORARILY_UNAVAILABLE",
            "*",
            "Too many accounts registered from your address lately",
        )
        chat_works(first, second)
        clock.now += 0.35  # the window has passed
        second.send("REGISTER * * :hunter22")
        assert second.expect("REGISTER").params[:2] == ("SUCCESS", "second")
    finally:
        first.close()
        second.close()
