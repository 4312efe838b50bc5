"""METADATA (IRCv3 draft/metadata-2) on a cluster: two nodes on a real ``redis-server``,
with clients on each, see one set of keys on people and rooms, and a subscriber on
either node is told of a change made on the other."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import pytest
import redis

from tests.components import Redis
from tests.conftest import TIMEOUT, Client, RunningServer
from tests.server.test_metadata import CAP, batch_of, metadata_lines

pytestmark = pytest.mark.timeout(60)
LIVENESS = 2.0
Nodes = tuple[RunningServer, RunningServer]


@pytest.fixture
def redis_url(redis_server: Redis) -> str:
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def nodes(make_server: Callable[..., RunningServer], redis_url: str) -> Nodes:
    config = {"cluster": redis_url, "cluster_timeout": LIVENESS, "flood_rate": 0}
    return make_server(name="a.chat", **config), make_server(name="b.chat", **config)


def person(port: int, nick: str, clients: list[Client], caps: str = CAP) -> Client:
    client = Client(port)
    clients.append(client)
    client.register(nick, caps)
    return client


def wait_until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.02)


def known(server: RunningServer, nick: str, key: str, value: str | None) -> Callable[[], bool]:
    """Whether ``server``'s node has ``nick``'s ``key`` as ``value``."""

    def check() -> bool:
        found = server.server.world.find_nick(nick)
        metadata = found.metadata if found is not None else None
        return (metadata.get(key) if metadata is not None else None) == value

    return check


def subscribed(server: RunningServer, nick: str, key: str) -> Callable[[], bool]:
    """Whether ``server``'s node knows ``nick`` subscribed to ``key``."""

    def check() -> bool:
        found = server.server.world.find_nick(nick)
        return found is not None and key in found.meta_subs

    return check


def test_a_persons_keys_are_read_and_notified_on_the_other_node(nodes, clients) -> None:
    a, b = nodes
    alice = person(a.port, "alice", clients)
    bob = person(b.port, "bob", clients)
    bob.send("METADATA * SUB display-name")  # (subscribed on node b: node a must know)
    bob.expect("770")
    wait_until(subscribed(a, "bob", "display-name"))
    alice.send("METADATA * SET display-name :Alice A.")
    alice.expect("761")
    assert bob.expect("METADATA").params == ("alice", "display-name", "*", "Alice A.")
    bob.send("METADATA alice GET display-name")
    assert [m.params[1:] for m in batch_of(bob)] == [("alice", "display-name", "*", "Alice A.")]
    alice.send("METADATA * SET display-name")
    alice.expect("766")
    assert bob.expect("METADATA").params == ("alice", "display-name", "*")
    wait_until(known(b, "alice", "display-name", None))


def test_a_rooms_keys_and_the_join_burst_across_nodes(nodes, clients) -> None:
    a, b = nodes
    alice = person(a.port, "alice", clients)
    alice.send("JOIN #den")
    alice.expect("366")
    alice.send("METADATA #den SET color :#00ff00")
    alice.expect("761")
    alice.send("METADATA * SET color :#ff0000")
    alice.expect("761")
    wait_until(known(b, "alice", "color", "#ff0000"))
    bob = person(b.port, "bob", clients)
    bob.send("METADATA * SUB color")
    bob.expect("770")
    assert metadata_lines(batch_of(bob)) == [("alice", "color", "*", "#ff0000")]  # (#lobby)
    bob.send("JOIN #den")
    bob.expect("366")
    assert sorted(metadata_lines(batch_of(bob))) == [
        ("#den", "color", "*", "#00ff00"),
        ("alice", "color", "*", "#ff0000"),
    ]
    bob.send("METADATA #den SET color :#000000")  # (not an operator there)
    assert bob.expect("FAIL").params[1:4] == ("KEY_NO_PERMISSION", "#den", "color")
    alice.send("METADATA #den SET color :#0000ff")
    alice.expect("761")
    assert bob.expect("METADATA").params == ("#den", "color", "*", "#0000ff")


def test_a_node_that_comes_later_knows_the_keys_already_set(
    make_server: Callable[..., RunningServer], redis_url: str, clients
) -> None:
    config = {"cluster": redis_url, "cluster_timeout": LIVENESS}
    a = make_server(**config)
    alice = person(a.port, "alice", clients)
    alice.send("JOIN #early")
    alice.expect("366")
    alice.send("METADATA * SET status :here first")
    alice.expect("761")
    alice.send("METADATA #early SET avatar :https://example.org/early.png")
    alice.expect("761")
    wait_until(lambda: not a.server.cluster._ops)
    trim = redis.Redis.from_url(redis_url)  # (as if it were long ago: nothing to replay)
    trim.xtrim("chatcli:chatcli:events", maxlen=0)
    trim.close()
    b = make_server(**config)
    bob = person(b.port, "bob", clients)
    bob.send("METADATA alice GET status")
    assert [m.params[-1] for m in batch_of(bob)] == ["here first"]
    bob.send("METADATA #early LIST")
    assert [m.params[2:] for m in batch_of(bob)] == [
        ("avatar", "*", "https://example.org/early.png")
    ]


def login(port: int, nick: str, clients: list[Client]) -> Client:
    client = Client(port)
    clients.append(client)
    client.send(f"CAP REQ :sasl {CAP}")
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :Ada")
    client.expect("CAP")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(b"ada\0ada\0correct-horse").decode())
    client.expect("903")
    client.send("CAP END")
    client.expect("001")
    return client


def test_an_accounts_keys_are_shared_by_its_connections_on_both_nodes(
    make_server: Callable[..., RunningServer], redis_url: str, pg_url: str, clients
) -> None:
    config = {"cluster": redis_url, "cluster_timeout": LIVENESS, "db": pg_url}
    a, b = make_server(**config), make_server(**config)
    laptop = person(a.port, "ada", clients)
    laptop.send("REGISTER * * :correct-horse")
    laptop.expect("REGISTER")
    laptop.send("METADATA * SET display-name :Ada L.")
    laptop.expect("761")
    phone = login(b.port, "ada_phone", clients)
    assert metadata_lines(batch_of(phone)) == [("ada_phone", "display-name", "*", "Ada L.")]
    phone.send("METADATA * SUB color")
    phone.expect("770")
    wait_until(subscribed(a, "ada_phone", "color"))
    laptop.send("METADATA * SET color :#336699")
    laptop.expect("761")
    assert phone.expect("METADATA").params == ("ada_phone", "color", "*", "#336699")
    phone.send("METADATA * GET color display-name")
    assert [m.params[-1] for m in batch_of(phone)] == ["#336699", "Ada L."]
    wait_until(known(a, "ada_phone", "color", "#336699"))  # (its copy on node a too)


def test_a_watcher_on_one_node_hears_of_a_monitored_user_on_the_other(nodes, clients) -> None:
    a, b = nodes
    alice = Client(a.port)
    clients.append(alice)
    alice.register("alice", CAP, join=False)
    carol = Client(b.port)
    clients.append(carol)
    carol.register("carol", "draft/metadata-2 draft/metadata-notify-2 batch", join=False)
    carol.send("METADATA * SUB status")
    carol.expect("770")
    carol.send("MONITOR + alice")
    carol.expect("730")
    alice.send("METADATA * SET status :away from keyboard")
    alice.expect("761")
    assert carol.expect("METADATA").params == ("alice", "status", "*", "away from keyboard")
    assert metadata_lines(carol.sync()) == []  # (once)
