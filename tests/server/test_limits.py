"""Limits: flood past the hard limit, connections in all and per address, the throttle.

Each limit is in ServerConfig; over it, a client is told why in an ERROR line and closed,
while everyone else chats on.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from chatcli.config import ServerConfig
from chatcli.errors import ConfigError
from chatcli.server.flood import Backlog, ExcessFlood, FakeLag
from tests.conftest import Client
from tests.server.hosts import shown_host


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
    {"flood_kill": -1.0},
    {"max_recvq": 1024},
    {"max_clients": 0},
    {"max_per_ip": -1},
    {"throttle_connects": -1},
    {"throttle_window": 0.0},
]


@pytest.mark.parametrize("override", OUT_OF_RANGE)
def test_out_of_range_limits_are_refused(override):
    with pytest.raises(ConfigError):
        ServerConfig(**override).validate()  # type: ignore[arg-type]


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


def test_connecting_too_fast_is_throttled(make_server):
    running = make_server(throttle_connects=2, throttle_window=0.5, exempt_loopback=False)
    clients = [Client(running.port), Client(running.port)]
    try:
        clients[0].register("alice")
        clients[1].register("bob")
        clients.append(Client(running.port))
        refused(clients[-1], "Connecting too fast")
        chat_works(clients[0], clients[1])
        time.sleep(0.6)  # the window has passed
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
