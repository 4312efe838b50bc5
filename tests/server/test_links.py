"""LINKS (RFC 2812 3.4.5): the servers of the network, on one server and on a cluster's
nodes (those with people on them)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.components import Redis
from tests.conftest import TIMEOUT, Client, RunningServer


def links(client, line="LINKS"):
    """[(server, linked to, info)] from a LINKS, and the end's mask."""
    client.send(line)
    replies = client.collect("365")
    rows = [m.params[1:] for m in replies if m.command == "364"]
    return rows, replies[-1].params[1]


def test_links_on_a_single_server_is_itself(connect):
    alice = connect("alice")
    rows, end = links(alice)
    assert rows == [("chatcli.local", "chatcli.local", "0 chatcli IRC server")]
    assert end == "*"
    assert links(alice, "LINKS *.local")[0] == rows
    assert links(alice, "LINKS CHATCLI.*")[0] == rows  # under the casemapping
    assert links(alice, "LINKS *.example.org") == ([], "*.example.org")
    assert links(alice, "LINKS chatcli.local *.local")[0] == rows  # <server> <mask>


def test_links_refuses_an_unknown_server_and_a_long_mask(connect):
    alice = connect("alice")
    alice.send("LINKS nowhere.example *")
    assert alice.expect("402", skip=False).params[1] == "nowhere.example"
    alice.send("LINKS " + "*" * 200)
    assert "Mask too long" in alice.expect("400", skip=False).params[-1]
    assert links(alice)[0]


@pytest.fixture
def redis_url(redis_server: Redis) -> str:
    redis_server.flush()
    return redis_server.url


@pytest.mark.timeout(60)
def test_links_on_a_cluster_lists_the_nodes_with_people(
    make_server: Callable[..., RunningServer], redis_url: str
):
    a = make_server(cluster=redis_url, cluster_timeout=2.0, name="a.chat", flood_rate=0)
    b = make_server(cluster=redis_url, cluster_timeout=2.0, name="b.chat", flood_rate=0)
    clients = [Client(a.port), Client(b.port)]
    try:
        alice, bob = clients
        alice.register("alice")
        bob.register("bob")
        deadline = time.monotonic() + TIMEOUT
        while len(rows := links(alice)[0]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rows == [
            ("a.chat", "a.chat", "0 chatcli IRC server"),
            ("b.chat", "a.chat", "1 chatcli IRC server"),
        ]
        assert links(alice, "LINKS b.*")[0] == rows[1:]
        while len(rows := links(bob)[0]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [row[0] for row in rows] == ["b.chat", "a.chat"]
    finally:
        for client in clients:
            client.close()
