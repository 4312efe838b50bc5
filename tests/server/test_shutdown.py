"""Graceful shutdown: every client is told, every socket closes, no thread is left."""

from __future__ import annotations

import signal
import time

from tests.conftest import Client
from tests.serve import ChatServe


def test_shutdown_tells_every_client_and_stops_every_thread(make_server):
    running = make_server()
    clients = [Client(running.port) for _ in range(3)]
    try:
        for i, client in enumerate(clients):
            client.register(f"user{i}")
        silent = Client(running.port)  # connected, not registered
        start = time.monotonic()
        running.stop()
        assert time.monotonic() - start < 2.0
        for client in clients:
            assert client.expect("NOTICE").params[-1] == "Server shutting down"
            assert client.expect("ERROR").params[0].endswith("(Server shutting down)")
            assert client.closed()
        assert silent.closed()
        assert running.server.thread_count == 0
    finally:
        for client in clients:
            client.close()
        silent.close()


def test_stop_is_idempotent(make_server):
    running = make_server()
    running.stop()
    running.stop()


def test_sigterm_stops_chat_serve_telling_its_clients(tmp_path):
    """Within ChatServe.stop's 5 s (a kill, and a failure, after that): how fast it is on
    a quiet machine is the benchmarks' to say."""
    db = tmp_path / "chat.db"
    with ChatServe("--db", str(db)) as serving:
        assert serving.banner[0].startswith("chatcli serving #lobby on 127.0.0.1:")
        assert serving.banner[1] == f"keeping accounts and history in {db}"
        client = Client(serving.port)
        try:
            client.register("alice")
            serving.signal(signal.SIGTERM)
            client.expect("ERROR")
            assert serving.stop() == 0
        finally:
            client.close()
