"""IRCv3 draft/multiline on a cluster: a multiline message said on one node reaches the
other as one message, rendered for each recipient's capabilities there (one batch, or its
lines one by one), to a room and to one person; and a room's recent lines on the other
node replay it whole. (issue 17)"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.components import Redis
from tests.conftest import Client, RunningServer
from tests.server.test_multiline import read_batch, send_batch

pytestmark = pytest.mark.timeout(60)
LIVENESS = 2.0
CAPS = "message-tags batch server-time echo-message draft/multiline"


@pytest.fixture
def nodes(
    make_server: Callable[..., RunningServer], redis_server: Redis, tmp_path
) -> tuple[RunningServer, RunningServer]:
    redis_server.flush()
    url = redis_server.url
    return (
        make_server(cluster=url, cluster_timeout=LIVENESS, name="a.chat"),
        make_server(cluster=url, cluster_timeout=LIVENESS, name="b.chat"),
    )


def person(port: int, nick: str, clients: list[Client], caps: str = CAPS) -> Client:
    client = Client(port)
    clients.append(client)
    client.register(nick, caps)
    return client


def joined(client: Client, nick: str) -> None:
    while client.expect("JOIN").source.split("!")[0] != nick:
        pass


def test_a_multiline_message_reaches_the_other_node_as_one(nodes, clients) -> None:
    a, b = nodes
    alice = person(a.port, "alice", clients)
    bob = person(b.port, "bob", clients)
    carol = person(b.port, "carol", clients, caps="message-tags server-time")
    joined(alice, "carol")
    send_batch(alice, "#lobby", "one", "two ", "+and a half", "", "three")
    start, lines = read_batch(bob)
    assert start.source.startswith("alice!") and start.params[2] == "#lobby"
    assert [m.params[-1] for m in lines] == ["one", "two ", "and a half", "", "three"]
    assert ["draft/multiline-concat" in m.tags for m in lines] == [False, False, True, False, False]
    echo, _ = read_batch(alice)
    assert echo.tags["msgid"] == start.tags["msgid"] and echo.tags["time"] == start.tags["time"]
    fallback = [carol.expect("PRIVMSG") for _ in range(4)]
    assert [m.params[-1] for m in fallback] == ["one", "two ", "and a half", "three"]
    assert [m.tags.get("msgid") for m in fallback] == [start.tags["msgid"], None, None, None]
    # One person, on the other node.
    send_batch(bob, "alice", "just", "for you", ref="dm")
    start, lines = read_batch(alice)
    assert start.params[2] == "alice"
    assert [m.params for m in lines] == [("alice", "just"), ("alice", "for you")]


def test_the_other_node_replays_it_whole_and_forgets_it_when_redacted(
    make_server: Callable[..., RunningServer], redis_server: Redis, pg_url: str, clients
) -> None:
    redis_server.flush()
    config = {"cluster": redis_server.url, "cluster_timeout": LIVENESS, "db": pg_url}
    a, b = make_server(**config), make_server(**config)
    caps = CAPS + " draft/message-redaction"
    alice = person(a.port, "alice", clients, caps=caps)
    send_batch(alice, "#lobby", "said on", "node a")
    start, _ = read_batch(alice)
    send_batch(alice, "#lobby", "and this", "too", ref="b2")
    second, _ = read_batch(alice)
    bob = Client(b.port)  # (joins on b: the room's lines replayed)
    clients.append(bob)
    bob.send("CAP REQ :" + CAPS + " chatcli.local/autojoin")
    bob.send("NICK bob")
    bob.send("USER bob 0 * :Bob")
    bob.send("CAP END")
    assert bob.expect("BATCH").params[1] == "chathistory"
    replayed, lines = read_batch(bob)
    assert replayed.tags["msgid"] == start.tags["msgid"]
    assert [m.params[-1] for m in lines] == ["said on", "node a"]
    read_batch(bob)
    alice.send(f"REDACT #lobby {second.tags['msgid']}")
    alice.expect("REDACT")
    alice.sync()
    carol = Client(b.port)
    clients.append(carol)
    burst = carol.register("carol") + carol.quiet(0.5)
    said = [m.params[-1] for m in burst if m.command == "PRIVMSG"]
    assert len(said) == 2 and said[0].endswith("said on") and said[1] == "node a"
