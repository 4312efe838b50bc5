"""``chat serve --web-port``: an HTTP listener beside the IRC ports, with ``GET /healthz``
(200 when the accept loop, the flusher and the store work; 503 and what is wrong when one
does not). Every test talks to a real server on port 0 over real sockets, and breaks what
it checks for real: a store whose disk is full, a stopped writer, a stopped flusher.
(issue 15: chat from a browser, served by chat serve itself; health, metrics and backups)
"""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from chatcli.config import ServerConfig
from chatcli.errors import ConfigError
from chatcli.server import web
from chatcli.settings import load
from tests import certs
from tests.conftest import TIMEOUT, Client, RunningServer
from tests.serve import ChatServe

SECURITY = {
    "Content-Security-Policy": "default-src 'none'",
    "X-Content-Type-Options": "nosniff",
}


def get(
    running: RunningServer,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request to the server's web port: (status, headers, body)."""
    address = running.server.web_address
    assert address is not None
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection(address[0], address[1], timeout=TIMEOUT)
    else:
        conn = http.client.HTTPSConnection(address[0], address[1], timeout=TIMEOUT, context=context)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def raw(running: RunningServer, data: bytes) -> bytes:
    """Send ``data`` as it is on a connection of its own; what comes back, to the end."""
    address = running.server.web_address
    assert address is not None
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(data)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def healthz(running: RunningServer) -> tuple[int, dict]:
    status, headers, body = get(running, "/healthz")
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(body)


def wait_for_health(running: RunningServer, status: int) -> dict:
    """Ask /healthz until it answers ``status`` (within TIMEOUT); its body. (A 503 with no
    body is the listener saying it is busy, its connections just closed not yet let go
    of: asked again.)"""
    deadline = time.monotonic() + TIMEOUT
    while True:
        got, headers, raw = get(running, "/healthz")
        busy = got == 503 and "Content-Type" not in headers
        if not busy:
            assert headers["Content-Type"] == "application/json"
            body = json.loads(raw)
            if got == status:
                return body
        assert time.monotonic() < deadline, f"/healthz still {got}: {raw!r}"
        time.sleep(0.05)


@pytest.fixture
def with_db(make_server: Callable[..., RunningServer], tmp_path: Path) -> RunningServer:
    return make_server(web_port=0, db=str(tmp_path / "chat.db"))


def test_healthz_is_200_and_ok_when_every_part_works(with_db):
    status, headers, body = get(with_db, "/healthz")
    assert status == 200
    assert json.loads(body) == {
        "status": "ok",
        "checks": {"accept": "ok", "flusher": "ok", "store": "ok", "cluster": "off"},
    }
    assert headers.items() >= SECURITY.items()


def test_healthz_without_a_database_says_the_store_is_off_and_is_still_ok(make_server):
    running = make_server(web_port=0)
    assert healthz(running) == (200, {"status": "ok", "checks": {
        "accept": "ok", "flusher": "ok", "store": "off", "cluster": "off",
    }})  # fmt: skip


def test_a_store_whose_disk_is_full_makes_healthz_503_with_the_reason(with_db, monkeypatch):
    store = with_db.server.store
    assert store is not None

    def full(db: sqlite3.Connection, jobs: list) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_run", full)
    alice = Client(with_db.port)
    try:
        alice.register("alice")
        alice.send("PRIVMSG #lobby :this one is not kept")
        alice.sync()
        body = wait_for_health(with_db, 503)
    finally:
        alice.close()
    assert body["status"] == "failing"
    assert body["checks"]["store"].startswith("failing since ")
    assert "disk is full" in body["checks"]["store"]
    assert body["checks"]["accept"] == body["checks"]["flusher"] == "ok"


def test_a_stopped_store_writer_makes_healthz_503(with_db):
    store = with_db.server.store
    assert store is not None and store._thread is not None
    writer = store._thread
    with store._cond:  # the writer ends as it does when the store closes
        store._stop = True
        store._cond.notify_all()
    writer.join(TIMEOUT)
    status, body = healthz(with_db)
    assert status == 503
    assert body["checks"]["store"] == "stopped: the database writer is not running"


def test_a_store_that_does_not_answer_a_read_makes_healthz_503(with_db):
    store = with_db.server.store
    assert store is not None
    store._read_lock.acquire()  # a read that never ends
    try:
        status, body = healthz(with_db)
    finally:
        store._read_lock.release()
    assert status == 503
    assert body["checks"]["store"].startswith("not answering: no read within")
    assert healthz(with_db)[0] == 200


def test_a_stopped_flusher_makes_healthz_503(make_server):
    running = make_server(web_port=0)
    running.server.flusher.stop()
    status, body = healthz(running)
    assert status == 503
    assert body == {
        "status": "failing",
        "checks": {"accept": "ok", "flusher": "stopped", "store": "off", "cluster": "off"},
    }


def test_unknown_paths_are_404_and_other_methods_405_with_the_security_headers(make_server):
    running = make_server(web_port=0)
    status, headers, _ = get(running, "/nothing-here")
    assert status == 404
    assert headers.items() >= SECURITY.items()
    status, headers, _ = get(running, "/healthz", method="DELETE")
    assert status == 405
    assert headers["Allow"] == "GET"
    assert headers.items() >= SECURITY.items()
    assert get(running, "/healthz?verbose=1")[0] == 200  # (the query plays no part)


def test_a_websocket_upgrade_from_a_foreign_page_is_refused_403(make_server):
    running = make_server(web_port=0)
    status, headers, _ = get(
        running,
        "/",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
            "Origin": "http://elsewhere.example",
        },
    )
    assert status == 403
    assert headers.items() >= SECURITY.items()


def test_a_garbage_request_line_is_answered_400_and_others_are_still_served(make_server):
    running = make_server(web_port=0)
    answer = raw(running, b"\x16\x03\x01 this is no request\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Content-Security-Policy: default-src 'none'" in answer
    assert healthz(running)[0] == 200


def test_an_oversized_header_line_is_431(make_server):
    running = make_server(web_port=0)
    answer = raw(running, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert healthz(running)[0] == 200


def test_a_request_larger_than_the_bound_is_431(make_server):
    running = make_server(web_port=0)
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 1000) for i in range(20))  # 20 KB
    answer = raw(running, b"GET /healthz HTTP/1.1\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert healthz(running)[0] == 200


def test_a_client_that_sends_nothing_is_told_408_and_does_not_keep_its_thread(
    make_server, monkeypatch
):
    monkeypatch.setattr(web, "READ_TIMEOUT", 0.5)
    running = make_server(web_port=0)
    address = running.server.web_address
    assert address is not None
    with socket.create_connection(address, timeout=TIMEOUT) as silent:
        assert healthz(running)[0] == 200  # served meanwhile
        started = time.monotonic()
        answer = read_all(silent)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 3.0
    listener = running.server.web
    assert listener is not None
    deadline = time.monotonic() + TIMEOUT
    while listener._conns and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not listener._conns


def hold(running: RunningServer, count: int) -> list[socket.socket]:
    """``count`` connections to the web port that send nothing, each being served."""
    address, listener = running.server.web_address, running.server.web
    assert address is not None and listener is not None
    held = [socket.create_connection(address, timeout=TIMEOUT) for _ in range(count)]
    deadline = time.monotonic() + TIMEOUT
    while len(listener._conns) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return held


def test_connections_past_the_per_address_bound_are_told_503(make_server, monkeypatch):
    monkeypatch.setattr(web, "MAX_PER_IP", 2)
    running = make_server(web_port=0, exempt_loopback=False)
    address = running.server.web_address
    assert address is not None
    held = hold(running, 2)
    try:
        with socket.create_connection(address, timeout=TIMEOUT) as third:
            assert read_all(third).startswith(b"HTTP/1.1 503 ")  # at once, unasked
    finally:
        for sock in held:
            sock.close()
    assert wait_for_health(running, 200)["status"] == "ok"


def test_a_reverse_proxy_carries_everyones_requests_past_the_per_address_bound(
    make_server, monkeypatch
):
    monkeypatch.setattr(web, "MAX_PER_IP", 2)
    running = make_server(web_port=0, exempt_loopback=False, web_proxies=("127.0.0.1",))
    held = hold(running, 3)
    try:
        assert healthz(running)[0] == 200  # the fourth at once, from the proxy
    finally:
        for sock in held:
            sock.close()


def test_a_connection_still_open_at_shutdown_is_ended_and_its_thread_joined(make_server):
    running = make_server(web_port=0)
    address = running.server.web_address
    assert address is not None
    with socket.create_connection(address, timeout=TIMEOUT) as silent:
        silent.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the end of it
        listener = running.server.web
        assert listener is not None
        deadline = time.monotonic() + TIMEOUT
        while not listener._conns and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        running.stop()
        assert time.monotonic() - started < 4.0
        assert not listener._conns
        assert read_all(silent) == b""


def test_with_tls_the_web_port_speaks_https_with_the_same_certificate(make_server, tmp_path):
    ca = trustme.CA()
    cert, key = certs.issue(ca, tmp_path, "127.0.0.1", "localhost")
    running = make_server(web_port=0, tls_port=0, tls_cert=cert, tls_key=key)
    status, headers, body = get(running, "/healthz", context=certs.trusting(ca))
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    assert headers.items() >= SECURITY.items()
    try:  # no plaintext there: the handshake fails, and the connection is closed or reset
        answer = raw(running, b"GET /healthz HTTP/1.1\r\n\r\n")
    except ConnectionResetError:
        answer = b""
    assert not answer.startswith(b"HTTP/")


def test_the_web_port_listens_where_the_irc_port_does_ipv6_too(make_server):
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    running = make_server(host="::1", web_port=0)
    address = running.server.web_address
    assert address is not None and address[0] == "::1"
    conn = http.client.HTTPConnection("::1", address[1], timeout=TIMEOUT)
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_the_web_port_is_bound_on_every_address_the_host_gives(make_server):
    running = make_server(host="localhost", web_port=0)
    listener = running.server.web
    assert listener is not None
    irc = {sock.getsockname()[0] for sock in running.server._listeners}
    assert {sock.getsockname()[0] for sock in listener._listeners} == irc
    assert len({sock.getsockname()[1] for sock in listener._listeners}) == 1  # one port


def test_web_port_is_a_setting_of_the_config_file(tmp_path):
    path = tmp_path / "chat.toml"
    path.write_text("web_port = 8080\n")
    assert load(path)["web_port"] == 8080
    path.write_text('web_port = "8080"\n')
    with pytest.raises(ConfigError, match="web_port"):
        load(path)
    with pytest.raises(ConfigError, match="web_port"):
        ServerConfig(port=6667, web_port=6667).validate()
    assert ServerConfig().web_port is None  # off unless asked for


def test_chat_serve_web_port_zero_says_which_port_it_picked():
    with ChatServe("--web-port", "0", "--no-db", "--host", "127.0.0.1") as serve:
        line = next(line for line in serve.banner if line.startswith("web on port "))
        port = int(line.split()[3])
        assert f"http://127.0.0.1:{port}/healthz" in line
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        try:
            conn.request("GET", "/healthz")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
