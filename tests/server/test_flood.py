"""Flood control: a burst, then a steady rate; excess is delayed, never dropped."""

from __future__ import annotations

import time

import pytest

from chatcli.server.flood import FakeLag
from tests.conftest import Client


def test_a_burst_passes_at_once():
    lag = FakeLag(burst=3, rate=2.0, now=100.0)
    assert [lag.delay(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_past_the_burst_each_command_waits_its_turn():
    lag = FakeLag(burst=2, rate=4.0, now=0.0)
    lag.delay(0.0)
    lag.delay(0.0)
    assert lag.delay(0.0) == pytest.approx(0.25)
    assert lag.delay(0.25) == pytest.approx(0.25)  # the one before used that token


def test_tokens_come_back_with_time_up_to_the_burst():
    lag = FakeLag(burst=2, rate=1.0, now=0.0)
    lag.delay(0.0)
    lag.delay(0.0)
    assert lag.delay(100.0) == 0.0
    assert lag.delay(100.0) == 0.0
    assert lag.delay(100.0) > 0.0


def test_rate_zero_turns_it_off():
    lag = FakeLag(burst=1, rate=0.0, now=0.0)
    assert all(lag.delay(0.0) == 0.0 for _ in range(1000))


def test_a_flood_is_slowed_down_and_nothing_is_lost(make_server):
    running = make_server(flood_burst=5, flood_rate=20.0)
    flooder, reader = Client(running.port), Client(running.port)
    try:
        flooder.register("flooder")
        reader.register("reader")
        start = time.monotonic()
        flooder.send("".join(f"PRIVMSG #lobby :line {i}\r\n" for i in range(25)))
        for i in range(25):
            assert reader.expect("PRIVMSG").params[1] == f"line {i}"
        # 20 lines past the burst at 20 a second: the server held them for a second.
        assert time.monotonic() - start >= 0.9
    finally:
        flooder.close()
        reader.close()


def test_pings_are_never_held(make_server):
    running = make_server(flood_burst=1, flood_rate=1.0)
    client = Client(running.port)
    try:
        client.register("alice")
        client.send("".join(f"PING :p{i}\r\n" for i in range(50)))
        for i in range(50):
            assert client.expect("PONG").params[-1] == f"p{i}"
    finally:
        client.close()
