"""Graceful shutdown: every client is told, every socket closes, no thread is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.conftest import Client


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


def test_sigterm_stops_chat_serve_within_two_seconds(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    db = tmp_path / "chat.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatcli", "serve", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    client = None
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert banner.startswith("chatcli serving #lobby on 127.0.0.1:")
        assert proc.stdout.readline() == f"keeping accounts and history in {db}\n"
        port = int(banner.split(" on ")[1].split()[0].rsplit(":", 1)[1])
        client = Client(port)
        client.register("alice")
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        client.expect("ERROR")
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - start < 2.0
    finally:
        if client is not None:
            client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
