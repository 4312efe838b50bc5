"""``GET /metrics`` on the web listener: the server's figures in Prometheus' text format,
read at scrape time from a real server with real clients connected, and checked to move as
the clients come, talk, flood and go. Parsed with prometheus_client's own parser.
(issue 15: chat from a browser, served by chat serve itself; health, metrics and backups)
"""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import prometheus_client
import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families

from tests import certs
from tests.conftest import TIMEOUT, Client, RunningServer, register_account


def scrape(
    running: RunningServer,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample /metrics shows: (name, sorted labels) -> value (over HTTPS with
    ``context``)."""
    status, body = fetch(running, headers, context)
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def fetch(
    running: RunningServer,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    address = running.server.web_address
    assert address is not None
    conn = (
        http.client.HTTPConnection(address[0], address[1], timeout=TIMEOUT)
        if context is None
        else http.client.HTTPSConnection(address[0], address[1], timeout=TIMEOUT, context=context)
    )
    try:
        conn.request("GET", "/metrics", headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def value(
    running: RunningServer, name: str, context: ssl.SSLContext | None = None, **labels: str
) -> float:
    return scrape(running, context=context)[name, tuple(sorted(labels.items()))]


def wait_for(
    running: RunningServer,
    name: str,
    want: float,
    context: ssl.SSLContext | None = None,
    **labels: str,
) -> None:
    """Scrape until ``name`` reads ``want`` (within TIMEOUT)."""
    deadline = time.monotonic() + TIMEOUT
    while (got := value(running, name, context, **labels)) != want:
        assert time.monotonic() < deadline, f"{name}{labels} is {got}, not {want}"
        time.sleep(0.05)


@pytest.fixture
def with_db(make_server: Callable[..., RunningServer], tmp_path: Path) -> RunningServer:
    return make_server(web_port=0, db=str(tmp_path / "chat.db"))


def test_connections_by_transport_and_users_go_from_none_to_two_and_back(make_server, tmp_path):
    ca = trustme.CA()
    cert, key = certs.issue(ca, tmp_path, "127.0.0.1", "localhost")
    running = make_server(web_port=0, tls_port=0, tls_cert=cert, tls_key=key)
    assert running.server.tls_address is not None
    https = certs.trusting(ca)  # (the web port speaks HTTPS too)
    before = scrape(running, context=https)
    assert before["chatcli_connections", (("transport", "tcp"),)] == 0
    assert before["chatcli_connections", (("transport", "tls"),)] == 0
    assert before["chatcli_users", ()] == 0
    alice = Client(running.port)
    bob = Client(running.server.tls_address[1], tls=https)
    try:
        alice.register("alice")
        bob.register("bob")
        after = scrape(running, context=https)
        assert after["chatcli_connections", (("transport", "tcp"),)] == 1
        assert after["chatcli_connections", (("transport", "tls"),)] == 1
        assert after["chatcli_users", ()] == 2
        alice.send("QUIT")
        assert alice.closed()
        wait_for(running, "chatcli_connections", 0, https, transport="tcp")
        assert value(running, "chatcli_users", https) == 1
    finally:
        alice.close()
        bob.close()


def test_a_message_moves_the_line_and_byte_counters_and_a_room_counts(with_db):
    alice, bob = Client(with_db.port), Client(with_db.port)
    try:
        alice.register("alice")
        bob.register("bob")
        before = scrape(with_db)
        alice.send("JOIN #dev")
        alice.expect("366")
        alice.send("PRIVMSG #lobby :hello, metrics")
        assert bob.expect("PRIVMSG").params[-1] == "hello, metrics"
        alice.sync()
        after = scrape(with_db)
    finally:
        alice.close()
        bob.close()
    assert after["chatcli_rooms", ()] == before["chatcli_rooms", ()] + 1
    for name in (
        "chatcli_lines_received_total",
        "chatcli_bytes_received_total",
        "chatcli_lines_sent_total",
        "chatcli_bytes_sent_total",
        "chatcli_store_commit_seconds_count",
        "chatcli_store_commit_seconds_sum",
    ):
        assert after[name, ()] > before[name, ()], name
    assert (
        after["chatcli_store_commit_seconds_bucket", (("le", "+Inf"),)]
        == (after["chatcli_store_commit_seconds_count", ()])
    )
    assert ("chatcli_flusher_backlog", ()) in after


def test_messages_are_counted_by_kind_and_target_and_so_are_their_copies(with_db, clients):
    register_account(with_db.port, "dave", "correct-horse")  # then offline
    alice, bob = Client(with_db.port), Client(with_db.port)
    carol = Client(with_db.port)
    clients.extend((alice, bob, carol))
    alice.register("alice", caps="message-tags")
    bob.register("bob", caps="message-tags")
    carol.register("carol")  # (no message-tags: a TAGMSG does not reach her)
    before = scrape(with_db)
    alice.send("PRIVMSG #lobby :hello, both of you")
    alice.send("NOTICE bob :just you")
    alice.send("@+typing=active TAGMSG #lobby")
    alice.send("PRIVMSG dave :for when you are back")
    alice.expect("301")  # (dave is away: his message is kept)
    alice.sync()
    after = scrape(with_db)

    def moved(name: str, kind: str, target: str) -> float:
        key = (name, (("kind", kind), ("target", target)))
        return after[key] - before[key]

    taken, copies = "chatcli_messages_received_total", "chatcli_messages_delivered_total"
    assert (moved(taken, "privmsg", "room"), moved(copies, "privmsg", "room")) == (1, 2)
    assert (moved(taken, "notice", "direct"), moved(copies, "notice", "direct")) == (1, 1)
    assert (moved(taken, "tagmsg", "room"), moved(copies, "tagmsg", "room")) == (1, 1)
    assert (moved(taken, "privmsg", "offline"), moved(copies, "privmsg", "offline")) == (1, 0)
    assert moved(taken, "privmsg", "direct") == moved(taken, "notice", "room") == 0


def test_the_counters_of_a_connection_that_ended_are_kept(make_server):
    running = make_server(web_port=0)
    alice = Client(running.port)
    try:
        alice.register("alice")
        alice.sync()
        while_open = value(running, "chatcli_lines_received_total")
        alice.send("QUIT")
        assert alice.closed()
    finally:
        alice.close()
    wait_for(running, "chatcli_connections", 0, transport="tcp")
    assert value(running, "chatcli_lines_received_total") >= while_open + 1  # the QUIT too


def test_refused_connections_are_counted_by_reason(make_server):
    running = make_server(web_port=0, max_clients=1)
    assert value(running, "chatcli_connections_refused_total", reason="server_full") == 0
    alice, late = Client(running.port), None
    try:
        alice.register("alice")
        late = Client(running.port)
        assert late.expect("ERROR").params[0].endswith("(Server full)")
    finally:
        alice.close()
        if late is not None:
            late.close()
    assert value(running, "chatcli_connections_refused_total", reason="server_full") == 1
    assert value(running, "chatcli_connections_refused_total", reason="throttle") == 0


def test_a_flood_kill_is_counted(make_server):
    running = make_server(web_port=0, flood_burst=5, flood_rate=10.0, flood_kill=1.0)
    assert value(running, "chatcli_flood_kills_total") == 0
    flooder = Client(running.port)
    try:
        flooder.register("flooder")
        flooder.send("".join(f"PRIVMSG #lobby :flood {i}\r\n" for i in range(200)))
        assert flooder.expect("ERROR").params[0].endswith("(Excess Flood)")
    finally:
        flooder.close()
    wait_for(running, "chatcli_flood_kills_total", 1)
    assert value(running, "chatcli_sendq_drops_total") == 0


def test_a_client_dropped_for_not_reading_is_counted(make_server):
    running = make_server(web_port=0, flood_rate=0, max_sendq=8192, socket_sndbuf=4096)
    assert value(running, "chatcli_sendq_drops_total") == 0
    sleeper, talker = Client(running.port, rcvbuf=4096), Client(running.port)
    try:
        sleeper.register("sleeper")  # and then never reads
        talker.register("talker")
        for _ in range(20):  # 20 batches of 8 KB at most: the 8 KB queue fills in the first few
            talker.send("".join(f"PRIVMSG sleeper :{i} {'x' * 400}\r\n" for i in range(20)))
            talker.sync()
            if value(running, "chatcli_sendq_drops_total") == 1:
                break
        wait_for(running, "chatcli_sendq_drops_total", 1)
        assert value(running, "chatcli_flood_kills_total") == 0
    finally:
        sleeper.close()
        talker.close()


def test_metrics_need_the_bearer_token_when_one_is_set(make_server):
    running = make_server(web_port=0, metrics_token="s3cret-token")
    assert fetch(running)[0] == 401
    assert fetch(running, {"Authorization": "Bearer wrong"})[0] == 401
    assert fetch(running, {"Authorization": "s3cret-token"})[0] == 401
    samples = scrape(running, {"Authorization": "Bearer s3cret-token"})
    assert ("chatcli_connections", (("transport", "tcp"),)) in samples


def test_process_figures_are_on_the_same_page(make_server):
    running = make_server(web_port=0)
    names = {name for name, _ in scrape(running)}
    if not Path("/proc/self/stat").exists():
        pytest.skip("prometheus_client reads process figures from /proc")
    assert {"process_cpu_seconds_total", "process_open_fds", "process_resident_memory_bytes"} <= (
        names
    )


def test_each_server_has_a_registry_of_its_own_and_not_the_global_one(make_server):
    first, second = make_server(web_port=0), make_server(web_port=0)
    alice = Client(first.port)
    try:
        alice.register("alice")
        assert value(first, "chatcli_users") == 1
        assert value(second, "chatcli_users") == 0
    finally:
        alice.close()
    global_names = {family.name for family in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("chatcli_") for name in global_names)
