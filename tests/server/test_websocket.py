"""IRC over WebSocket (IRCv3), on the web listener: a WebSocket user is an IRC user like any
other. Real server on port 0, the `websockets` client library (and its sans-IO client over
a raw socket where a test must send what a well-behaved client never would)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Opcode
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

from chatcli.protocol import Message, parse_line
from tests.conftest import Client, RunningServer

pytestmark = pytest.mark.timeout(30)

BINARY, TEXT = "binary.ircv3.net", "text.ircv3.net"


def url(running: RunningServer) -> str:
    host, port = running.server.web_address
    return f"ws://{host}:{port}/"


def open_ws(running: RunningServer, *subprotocols: str, **options) -> ClientConnection:
    return connect(url(running), subprotocols=list(subprotocols) or None, open_timeout=5, **options)


def lines(ws: ClientConnection, until: str, timeout: float = 5) -> list[Message]:
    """Messages (one IRC line each) up to and including one with the command ``until``."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        raw = data.encode() if isinstance(data, str) else data
        assert not raw.endswith((b"\r", b"\n"))  # one line per message, no line ending
        msg = parse_line(raw)
        got.append(msg)
        if msg.command == until:
            return got
    raise AssertionError(f"no {until} in {got}")


def register(ws: ClientConnection, nick: str) -> None:
    for line in (
        "CAP REQ :chatcli.local/autojoin",
        f"NICK {nick}",
        f"USER {nick} 0 * :W",
        "CAP END",
    ):
        ws.send(line)
    lines(ws, "366")  # welcome, then the default room's NAMES


@pytest.fixture
def running(make_server) -> RunningServer:
    return make_server(web_port=0)


@pytest.mark.parametrize(
    ("offered", "chosen", "kind"),
    [((TEXT, BINARY), TEXT, str), ((BINARY, TEXT), BINARY, bytes), ((), None, str)],
    ids=["text-first", "binary-first", "none"],
)
def test_the_clients_preferred_subprotocol_is_chosen_and_used(running, offered, chosen, kind):
    with open_ws(running, *offered) as ws:
        assert ws.subprotocol == chosen
        ws.send("PING :hello")
        reply = ws.recv(timeout=5)
        assert isinstance(reply, kind)
        pong = parse_line(reply.encode() if isinstance(reply, str) else reply)
        assert (pong.command, pong.params[-1]) == ("PONG", "hello")


def test_a_websocket_user_and_a_tcp_user_talk_in_a_room_and_directly(running, clients):
    tcp = Client(running.port)
    clients.append(tcp)
    tcp.register("tcpuser")
    with open_ws(running, TEXT) as ws:
        register(ws, "webuser")
        tcp.expect("JOIN")  # the web user came into the room
        ws.send("PRIVMSG #lobby :hello from the browser")
        said = tcp.expect("PRIVMSG")
        assert (said.source.split("!")[0], said.params) == (
            "webuser",
            ("#lobby", "hello from the browser"),
        )
        tcp.send("PRIVMSG #lobby :hello from a terminal")
        tcp.send("PRIVMSG webuser :and just to you")
        got = [m for m in lines(ws, "PRIVMSG") if m.command == "PRIVMSG"]
        got += [m for m in lines(ws, "PRIVMSG") if m.command == "PRIVMSG"]
        assert [m.params for m in got] == [
            ("#lobby", "hello from a terminal"),
            ("webuser", "and just to you"),
        ]
        ws.send("PRIVMSG tcpuser :a direct answer, ünïcödé")
        assert tcp.expect("PRIVMSG").params == ("tcpuser", "a direct answer, ünïcödé")


def test_one_room_line_reaches_text_and_binary_members_each_in_their_kind(running, clients):
    tcp = Client(running.port)
    clients.append(tcp)
    tcp.register("tcpuser")
    with open_ws(running, TEXT) as text, open_ws(running, BINARY) as binary:
        register(text, "texter")
        register(binary, "binaryist")
        lines(text, "JOIN")  # (binaryist came in)
        for _ in range(2):  # (framed once for the room, and so for the second member)
            tcp.send("PRIVMSG #lobby :ünïcödé for everyone")
            for ws, kind in ((text, str), (binary, bytes)):
                data = ws.recv(timeout=5)
                assert isinstance(data, kind)
                raw = data.encode() if isinstance(data, str) else data
                assert parse_line(raw).params == ("#lobby", "ünïcödé for everyone")


def test_flood_control_holds_over_websocket_too(make_server):
    running = make_server(web_port=0, flood_burst=5, flood_rate=10.0, flood_kill=1.0)
    flooder = RawWebSocket(running, BINARY)
    try:
        for line in ("NICK flooder", "USER f 0 * :F"):
            flooder.send_line(line)
        for i in range(200):
            flooder.protocol.send_binary(f"PRIVMSG #lobby :flood {i}".encode())
        flooder.flush()
        said, code = flooder.until_closed()
        assert said[-1] == b"ERROR :Closing link: 127.0.0.1 (Excess Flood)"
        assert code == 1000  # then the WebSocket is closed properly
    finally:
        flooder.sock.close()


def test_a_page_from_another_origin_is_refused_and_a_configured_one_accepted(make_server):
    running = make_server(web_port=0)
    with pytest.raises(InvalidStatus) as refused:
        open_ws(running, TEXT, origin="https://elsewhere.example")
    assert refused.value.response.status_code == 403
    host, port = running.server.web_address
    for scheme in ("http", "https"):  # its own page, or that page behind a TLS proxy
        with open_ws(running, TEXT, origin=f"{scheme}://{host}:{port}") as ws:
            ws.send("PING :ok")
            assert "PONG" in ws.recv(timeout=5)
    allowed = make_server(web_port=0, web_origins=("https://chat.example.org",))
    with open_ws(allowed, TEXT, origin="https://chat.example.org") as ws:
        ws.send("PING :ok")
        assert "PONG" in ws.recv(timeout=5)


def test_a_message_longer_than_any_line_closes_only_that_connection(running, clients):
    other = Client(running.port)
    clients.append(other)
    other.register("other")
    with open_ws(running, BINARY, max_size=None) as ws:
        register(ws, "big")
        ws.send(b"PRIVMSG #lobby :" + b"x" * 20_000)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    other.send("PING :still here")
    assert other.expect("PONG").params[-1] == "still here"


class RawWebSocket:
    """A WebSocket client over a plain socket, driven by hand (websockets' sans-IO client):
    for frames a well-behaved client would never send."""

    def __init__(self, running: RunningServer, subprotocol: str, rcvbuf: int = 0) -> None:
        host, port = running.server.web_address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # (before connecting, so that the window is small from the start)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect((host, port))
        self.protocol = ClientProtocol(parse_uri(url(running)), subprotocols=[subprotocol])
        self.protocol.send_request(self.protocol.connect())
        self.flush()
        while self.protocol.handshake_exc is None and not self.protocol.events_received():
            self.protocol.receive_data(self.sock.recv(65536))
        assert self.protocol.handshake_exc is None

    def flush(self) -> None:
        self.sock.sendall(b"".join(self.protocol.data_to_send()))

    def send_line(self, line: str) -> None:
        self.protocol.send_binary(line.encode())
        self.flush()

    def messages(self, count: int) -> list[bytes]:
        """The next ``count`` data messages (reading as long as it takes, within bounds)."""
        got: list[bytes] = []
        deadline = time.monotonic() + 10
        while len(got) < count and time.monotonic() < deadline:
            self.protocol.receive_data(self.sock.recv(65536))
            got += [e.data for e in self.protocol.events_received() if e.opcode is Opcode.BINARY]
        return got

    def until_closed(self) -> tuple[list[bytes], int | None]:
        """Every data message until the server closes, and the close code it sent."""
        said: list[bytes] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data = self.sock.recv(65536)
            if not data:
                break
            self.protocol.receive_data(data)
            for event in self.protocol.events_received():
                if event.opcode is Opcode.CLOSE:
                    close = self.protocol.close_rcvd
                    return said, close.code if close else None
                if event.opcode in (Opcode.TEXT, Opcode.BINARY):
                    said.append(event.data)
        return said, None

    def close_code(self) -> int | None:
        """Read until the server closes; the close code it sent."""
        return self.until_closed()[1]


def test_invalid_utf8_in_a_text_message_fails_that_connection_with_1007(running, clients):
    client = RawWebSocket(running, TEXT)
    try:
        client.protocol.send_text(b"PRIVMSG #lobby :\xff\xfe not UTF-8")
        client.flush()
        assert client.close_code() == 1007
    finally:
        client.sock.close()
    other = Client(running.port)
    clients.append(other)
    other.register("other")  # everyone else is still served


def test_a_client_that_vanishes_mid_frame_leaves_nothing_behind(running, clients):
    client = RawWebSocket(running, BINARY)
    client.protocol.send_binary(b"PRIVMSG #lobby :" + b"y" * 2000)
    frame = b"".join(client.protocol.data_to_send())
    client.sock.sendall(frame[: len(frame) // 2])  # half a frame, then gone
    client.sock.close()
    other = Client(running.port)
    clients.append(other)
    other.register("other")
    deadline = time.monotonic() + 5
    while running.server.world.connections and time.monotonic() < deadline:
        with running.server.world.lock:
            left = [c for c in running.server.world.connections if c.nick != "other"]
        if not left:
            break
        time.sleep(0.02)
    assert not left  # its connection ended (and no_leaks checks its thread and socket)


def test_a_websocket_reader_that_falls_behind_gets_every_line_whole_and_in_order(make_server):
    """Frames cut by a full socket are finished before anything else (small buffers on
    both sides, and a reader that stops reading, so that sends are cut mid-frame)."""
    running = make_server(web_port=0, flood_rate=0.0, socket_sndbuf=4096)
    talker = Client(running.port)
    slow = RawWebSocket(running, BINARY, rcvbuf=4096)
    try:
        talker.register("talker")
        for line in ("CAP REQ :chatcli.local/autojoin", "NICK slow", "USER s 0 * :S", "CAP END"):
            slow.send_line(line)
        talker.expect("JOIN")
        for i in range(300):
            talker.send(f"PRIVMSG #lobby :line {i:03d} " + "z" * 400)
        talker.sync()  # all 300 handled; most wait in the server for the slow reader
        said = []
        deadline = time.monotonic() + 10
        while len(said) < 300 and time.monotonic() < deadline:
            for data in slow.messages(1):
                msg = parse_line(data)
                if msg.command == "PRIVMSG":
                    said.append(msg.params[1])
        assert [text[:8] for text in said] == [f"line {i:03d}" for i in range(300)]
        assert all(text.endswith("z" * 400) for text in said)
    finally:
        talker.close()
        slow.sock.close()


def test_a_websocket_user_is_counted_as_such_in_the_metrics(running):
    def connections() -> dict[str, float]:
        host, port = running.server.web_address
        web = http.client.HTTPConnection(host, port, timeout=5)
        try:
            web.request("GET", "/metrics")
            text = web.getresponse().read().decode()
        finally:
            web.close()
        family = next(
            f for f in text_string_to_metric_families(text) if f.name == "chatcli_connections"
        )
        return {s.labels["transport"]: s.value for s in family.samples}

    with open_ws(running, TEXT) as ws:
        register(ws, "counted")
        assert connections() == {"tcp": 0, "tls": 0, "websocket": 1}


def whose(running: RunningServer, nick: str) -> str:
    """The real address the server holds for ``nick``."""
    with running.server.world.lock:
        return running.server.world.nicks[nick].host


def test_x_forwarded_for_is_believed_only_from_a_configured_proxy(make_server):
    forwarded = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}  # the proxy saw .7
    trusting = make_server(web_port=0, web_proxies=("127.0.0.0/8",))
    with open_ws(trusting, TEXT, additional_headers=forwarded) as ws:
        register(ws, "proxied")
        assert whose(trusting, "proxied") == "203.0.113.7"
    wary = make_server(web_port=0)  # no proxy configured: the header proves nothing
    with open_ws(wary, TEXT, additional_headers=forwarded) as ws:
        register(ws, "direct")
        assert whose(wary, "direct") == "127.0.0.1"
    elsewhere = make_server(web_port=0, web_proxies=("10.0.0.0/8",))  # not this peer
    with open_ws(elsewhere, TEXT, additional_headers=forwarded) as ws:
        register(ws, "spoofer")
        assert whose(elsewhere, "spoofer") == "127.0.0.1"


def test_pings_from_a_client_that_never_reads_cannot_grow_the_server_without_bound(running):
    """Each WebSocket ping is answered with a pong outside the send queue's limit: past
    a bound of pongs waiting for a client that does not read, it is disconnected."""
    pinger = RawWebSocket(running, BINARY, rcvbuf=4096)
    try:
        for line in ("NICK pinger", "USER p 0 * :P"):
            pinger.send_line(line)
        for _ in range(4000):  # 125-byte pings: half a megabyte of pongs
            pinger.protocol.send_ping(b"p" * 125)
        with contextlib.suppress(OSError):  # (the server may have hung up already)
            pinger.flush()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with running.server.world.lock:
                if not running.server.world.connections:
                    break
            time.sleep(0.02)
        with running.server.world.lock:
            assert not running.server.world.connections  # dropped, not buffering for ever
    finally:
        pinger.sock.close()
