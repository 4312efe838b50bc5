"""systemd's readiness protocol: ``chat serve`` under ``$NOTIFY_SOCKET`` says READY=1 once
it accepts, RELOADING=1 then READY=1 around a SIGHUP rehash, and STOPPING=1 on its way
down; and no notification it cannot send ever troubles the server.

The service manager here is a real unix datagram socket, bound where systemd would put
one, and the server a real ``chat serve`` process."""

from __future__ import annotations

import configparser
import os
import shlex
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatcli.cli import serve
from chatcli.config import ServerConfig
from chatcli.sdnotify import Notifier, monotonic_usec
from tests.conftest import Client
from tests.serve import ChatServe

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX") or sys.platform == "win32", reason="no unix sockets"
)


class ServiceManager:
    """What systemd does for a Type=notify service: a datagram socket to be told on."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address  #: as NOTIFY_SOCKET says it

    def next(self, timeout: float = 5.0) -> dict[str, str]:
        """The next notification, as its KEY=value lines."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096)
        return dict(line.split("=", 1) for line in data.decode().splitlines())

    def nothing(self, wait: float = 0.3) -> bool:
        """Whether no notification arrives within ``wait`` seconds."""
        self.sock.settimeout(wait)
        try:
            self.sock.recv(4096)
        except TimeoutError:
            return True
        return False


@pytest.fixture
def manager() -> Iterator[ServiceManager]:
    """A notification socket at a path (in a short directory of its own: a unix socket's
    path may not be longer than about 100 bytes)."""
    with (
        tempfile.TemporaryDirectory(prefix="sd") as directory,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        path = os.path.join(directory, "notify")
        sock.bind(path)
        yield ServiceManager(sock, path)


@pytest.fixture
def abstract_manager() -> Iterator[ServiceManager]:
    """A notification socket in Linux's abstract namespace (NOTIFY_SOCKET=@name)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("abstract unix sockets are Linux's")
    name = f"chatcli-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        yield ServiceManager(sock, "@" + name)


def test_systemd_hears_ready_reloading_ready_and_stopping_as_chat_serve_lives(manager) -> None:
    with ChatServe("--no-db", env={"NOTIFY_SOCKET": manager.address}) as serving:
        ready = manager.next()
        assert ready["READY"] == "1"
        assert ready["STATUS"] == f"serving #lobby on 127.0.0.1:{serving.port}"
        client = Client(serving.port)  # ready means accepting
        try:
            client.register("alice", join=False)
        finally:
            client.close()

        before = monotonic_usec()
        serving.signal(signal.SIGHUP)
        reloading = manager.next()
        assert reloading["RELOADING"] == "1"
        assert before <= int(reloading["MONOTONIC_USEC"]) <= monotonic_usec()
        assert manager.next() == {"READY": "1"}

        serving.signal(signal.SIGTERM)
        assert manager.next() == {"STOPPING": "1"}
        assert serving.proc.wait(timeout=5) == 0
    assert manager.nothing()


def test_a_rehash_that_fails_still_tells_systemd_it_is_ready_again(manager, tmp_path: Path) -> None:
    settings = tmp_path / "chat.toml"
    settings.write_text("max_targets = 4\n")
    env = {"NOTIFY_SOCKET": manager.address}
    with ChatServe("--no-db", "--config", str(settings), env=env) as serving:
        assert manager.next()["READY"] == "1"
        settings.write_text("max_targets = 'many'\n")
        serving.signal(signal.SIGHUP)
        assert manager.next()["RELOADING"] == "1"
        assert manager.next() == {"READY": "1"}
        serving.wait_for_log("rehash failed")


def test_an_abstract_socket_is_told_too(abstract_manager) -> None:
    with ChatServe("--no-db", env={"NOTIFY_SOCKET": abstract_manager.address}):
        assert abstract_manager.next()["READY"] == "1"
    assert abstract_manager.next() == {"STOPPING": "1"}


def test_a_notification_socket_that_is_gone_is_logged_once_and_the_server_serves_on() -> None:
    with tempfile.TemporaryDirectory(prefix="sd") as directory:
        gone = os.path.join(directory, "notify")
        with ChatServe("--no-db", env={"NOTIFY_SOCKET": gone}) as serving:
            log: list[str] = []
            for _ in range(2):  # each rehash would notify twice more
                serving.signal(signal.SIGHUP)
                for _ in range(20):
                    log.append(serving.stderr.readline())
                    if "rehashed the settings" in log[-1]:
                        break
            client = Client(serving.port)
            try:
                client.register("alice", join=False)
            finally:
                client.close()
            serving.signal(signal.SIGTERM)
            assert serving.proc.wait(timeout=5) == 0
            log += serving.stderr.read().splitlines()
    assert sum("rehashed the settings" in line for line in log) == 2
    assert sum("cannot notify systemd" in line for line in log) == 1


def test_the_first_failure_is_the_one_logged(caplog: pytest.LogCaptureFixture) -> None:
    with tempfile.TemporaryDirectory(prefix="sd") as directory:
        notifier = Notifier(os.path.join(directory, "notify"))
        assert not notifier.ready()
        assert not notifier.reloading()
        assert not notifier.stopping()
    warnings = [r.getMessage() for r in caplog.records if "cannot notify" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"cannot notify systemd at NOTIFY_SOCKET={notifier.address}")


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier.from_environment()
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.stopping()


def test_stopping_is_said_once(manager) -> None:
    notifier = Notifier(manager.address)
    assert notifier.stopping()
    assert not notifier.stopping()
    assert manager.next() == {"STOPPING": "1"}
    assert manager.nothing()


def test_the_service_file_is_a_notify_service_that_runs_chat_serve_as_written() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # (keys keep their case)
    unit.read(Path(__file__).resolve().parent.parent / "contrib" / "chatcli.service")
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert service["User"] not in ("", "root")
    assert int(service["LimitNOFILE"]) > ServerConfig.max_clients
    program, command, *args = shlex.split(service["ExecStart"])
    assert (Path(program).name, command) == ("chat", "serve")
    serve.make_context("serve", args)  # (click raises on an option chat serve lacks)
