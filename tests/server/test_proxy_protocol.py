"""The PROXY protocol on the listeners, over real sockets: a connection from an address in
``proxy_protocol`` begins with a header (v1 or v2) that says whose connection it is, and
that client's address is the connection's for everything; from anywhere else, no header is
ever believed. (The parser itself: test_proxyproto.py.)

The spec (2.8, section 1): "the receiver [...] must not try to guess whether the protocol
header is present or not [...] and must only accept it from trusted sources".
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator

import pytest
import trustme
from websockets.sync.client import connect

from chatcli.errors import ConfigError
from chatcli.server import proxied
from chatcli.server.proxyproto import encode_v1, encode_v2
from chatcli.settings import load
from tests.certs import issue, unverified
from tests.conftest import TIMEOUT, Client, RunningServer

pytestmark = pytest.mark.timeout(30)

REAL = ("203.0.113.7", 5555)
PROXY = ("127.0.0.1",)  # the tests' own address: every test client is "the proxy"


def through_proxy(port: int, header: bytes, tls: ssl.SSLContext | None = None) -> Client:
    """A client whose connection begins with ``header``, as a proxy's does; then TLS, if
    ``tls``, and IRC."""
    client = Client(port)
    client.sock.sendall(header)
    if tls is not None:
        client.sock = tls.wrap_socket(client.sock, server_hostname="127.0.0.1")
    return client


def conn_of(running: RunningServer, nick: str):  # -> Connection
    with running.server.world.lock:
        return running.server.world.nicks[nick]


def actual_ip(client: Client) -> str:
    """What WHOIS tells a user of their own real address (RPL_WHOISACTUALLY)."""
    client.send(f"WHOIS {client.nick}")
    return client.expect("338").params[3]


@pytest.fixture
def opened() -> Iterator[list[Client]]:
    clients: list[Client] = []
    yield clients
    for client in clients:
        client.close()


def test_a_v1_header_gives_the_client_its_real_address_for_everything(make_server, opened):
    running = make_server(proxy_protocol=PROXY)
    alice = through_proxy(running.port, encode_v1(REAL, ("127.0.0.1", running.port)))
    opened.append(alice)
    alice.register("alice")
    assert actual_ip(alice) == "203.0.113.7"
    conn = conn_of(running, "alice")
    assert conn.host == "203.0.113.7"
    assert conn.thread.name == "conn 203.0.113.7"
    assert conn.display_host != conn_of(running, "alice").host  # cloaked, of the real one
    assert running.server._per_ip == {"203.0.113.7": 1}  # not the proxy's address
    alice.send("QUIT")
    alice.expect("ERROR")
    alice.close()
    deadline = time.monotonic() + TIMEOUT
    while running.server._per_ip and time.monotonic() < deadline:
        time.sleep(0.01)
    assert running.server._per_ip == {}  # released as the client's


@pytest.mark.parametrize(
    ("source", "expected"),
    [(("2001:db8::7", 40000), "2001:db8::7"), (("::ffff:198.51.100.2", 1), "198.51.100.2")],
)
def test_a_v2_header_with_ipv6_and_tlvs(make_server, opened, source, expected):
    running = make_server(proxy_protocol=PROXY)
    header = encode_v2(source, ("::1", running.port), tlvs=b"\x04\x00\x03abc")  # a NOOP TLV
    bob = through_proxy(running.port, header)
    opened.append(bob)
    bob.register("bob")
    assert actual_ip(bob) == expected


def test_over_tls_the_header_comes_before_the_handshake(make_server, opened, tmp_path):
    cert, key = issue(trustme.CA(), tmp_path, "127.0.0.1")
    running = make_server(proxy_protocol=PROXY, tls=True, tls_cert=cert, tls_key=key)
    header = encode_v2(REAL, ("127.0.0.1", running.port))
    carol = through_proxy(running.port, header, tls=unverified())
    opened.append(carol)
    carol.register("carol")
    assert actual_ip(carol) == "203.0.113.7"
    assert conn_of(running, "carol").secure


@pytest.mark.parametrize("header", [encode_v2(None), b"PROXY UNKNOWN\r\n"])
def test_a_health_check_keeps_the_proxys_address_and_is_not_a_warning(
    make_server, opened, caplog, header
):
    """v2 LOCAL ("the receiver must [...] use the real connection endpoints") and v1
    UNKNOWN: the proxy's own address, held to no per-address limit."""
    running = make_server(proxy_protocol=PROXY, exempt_loopback=False, max_per_ip=1)
    with caplog.at_level(logging.INFO, logger="chatcli.server"):
        checks = [through_proxy(running.port, header) for _ in range(2)]
        opened.extend(checks)
        checks[0].register("check0", join=False)
        checks[1].register("check1", join=False)
        assert actual_ip(checks[0]) == "127.0.0.1"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_connection_from_the_proxy_without_a_header_is_closed_and_counted(make_server, opened):
    running = make_server(proxy_protocol=PROXY)
    bare = Client(running.port)
    opened.append(bare)
    bare.send("NICK mallory")
    error = bare.expect("ERROR", skip=False)
    assert error.params[0] == f"Closing link: 127.0.0.1 ({proxied.NO_HEADER})"
    assert bare.closed()
    assert running.server.traffic().refused == {proxied.NO_HEADER: 1}
    good = through_proxy(running.port, encode_v1(REAL, ("127.0.0.1", running.port)))
    opened.append(good)
    good.register("good")  # and the server goes on


def test_max_per_ip_counts_the_clients_behind_the_proxy_apart(make_server, opened):
    running = make_server(proxy_protocol=PROXY, exempt_loopback=False, max_per_ip=1)
    dest = ("127.0.0.1", running.port)
    first = through_proxy(running.port, encode_v1(("203.0.113.7", 1), dest))
    second = through_proxy(running.port, encode_v1(("203.0.113.8", 2), dest))
    opened += [first, second]
    first.register("first")
    second.register("second")  # another address behind the same proxy
    again = through_proxy(running.port, encode_v1(("203.0.113.7", 3), dest))
    opened.append(again)
    error = again.expect("ERROR", skip=False)
    reason = "Too many connections from your address"
    assert error.params[0] == f"Closing link: 203.0.113.7 ({reason})"
    assert again.closed()
    first.sync()  # still served


def test_a_header_from_anyone_else_is_not_believed(make_server, opened):
    running = make_server(proxy_protocol=("10.0.0.0/8",))  # not the tests' address
    eve = Client(running.port)
    opened.append(eve)
    eve.send(encode_v1(REAL, ("127.0.0.1", running.port)))
    eve.register("eve")  # an unknown line of its own, then on as ever
    assert actual_ip(eve) == "127.0.0.1"


def test_a_slow_proxy_is_dropped_after_the_timeout_without_stalling_accepts(
    make_server, opened, monkeypatch
):
    monkeypatch.setattr(proxied, "HEADER_TIMEOUT", 0.8)
    running = make_server(proxy_protocol=PROXY)
    slow = Client(running.port)
    opened.append(slow)
    slow.sock.sendall(b"PROXY TCP4 203.0")  # and no more
    started = time.monotonic()
    other = through_proxy(running.port, encode_v1(REAL, ("127.0.0.1", running.port)))
    opened.append(other)
    other.register("other")  # served meanwhile, not after the slow one's timeout
    assert time.monotonic() - started < 0.8
    assert slow.closed()
    assert running.server.traffic().refused == {proxied.NO_HEADER: 1}


def test_a_proxy_and_its_clients_over_ipv6(make_server, opened):
    try:
        running = make_server(host="::1", proxy_protocol=("::1",))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    header = encode_v1(("2001:db8::7", 1), ("::1", running.port))
    dave = Client(running.port, host="::1")
    opened.append(dave)
    dave.sock.sendall(header)
    dave.register("dave")
    assert actual_ip(dave) == "2001:db8::7"


def test_the_proxy_protocol_setting_must_be_addresses_or_networks(tmp_path):
    path = tmp_path / "chat.toml"
    path.write_text('proxy_protocol = ["10.0.0.0/8", "::1"]\n')
    assert load(path)["proxy_protocol"] == ("10.0.0.0/8", "::1")
    path.write_text('proxy_protocol = ["not an address"]\n')
    with pytest.raises(ConfigError, match="proxy_protocol"):
        load(path)


# -- the web listener --------------------------------------------------------------------


def web_socket(running: RunningServer, header: bytes) -> socket.socket:
    address = running.server.web_address
    assert address is not None
    sock = socket.create_connection(address, timeout=TIMEOUT)
    sock.sendall(header)
    return sock


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_the_web_listener_reads_the_header_before_http_and_websocket(make_server):
    running = make_server(web_port=0, proxy_protocol=PROXY, web_proxies=("198.51.100.0/24",))
    dest = ("127.0.0.1", 80)
    with web_socket(running, encode_v2(REAL, dest)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: chat\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 200 ")
    host, port = running.server.web_address  # type: ignore[misc]
    url = f"ws://{host}:{port}/"
    for source, forwarded, expected in (
        (REAL, {}, "203.0.113.7"),  # the PROXY header's client
        (REAL, {"X-Forwarded-For": "192.0.2.9"}, "203.0.113.7"),  # not a web proxy
        (("198.51.100.4", 1), {"X-Forwarded-For": "192.0.2.9"}, "192.0.2.9"),  # one
    ):
        sock = web_socket(running, encode_v1(source, dest))
        with connect(url, sock=sock, open_timeout=5, additional_headers=forwarded) as ws:
            for line in ("NICK webby", "USER w 0 * :W"):
                ws.send(line)
            deadline = time.monotonic() + TIMEOUT
            while "001" not in str(ws.recv(timeout=TIMEOUT)):
                assert time.monotonic() < deadline
            assert conn_of(running, "webby").host == expected


def test_the_web_listener_closes_a_proxy_connection_without_a_header(make_server):
    running = make_server(web_port=0, proxy_protocol=PROXY)
    with web_socket(running, b"GET /healthz HTTP/1.1\r\nHost: chat\r\n\r\n") as sock:
        assert read_all(sock) == b""
    assert running.server.traffic().refused == {proxied.NO_HEADER: 1}
