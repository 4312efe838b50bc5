"""Shared fixtures: a real server on 127.0.0.1 port 0, real client sockets, leak checks."""

from __future__ import annotations

import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chatcli.config import ServerConfig
from chatcli.protocol import LineBuffer, Message, parse_line
from chatcli.server import Server
from chatcli.server.store import Store
from tests import clustered

#: PostgreSQL and redis-server of the session's own: fixtures ``postgres``, ``pg_url``,
#: ``redis_server``.
pytest_plugins = ("tests.components",)

# Small timeouts so that liveness tests take a fraction of a second, not minutes.
TEST_CONFIG = ServerConfig(
    host="127.0.0.1",
    port=0,
    tick=0.05,
    shutdown_grace=0.5,
    registration_timeout=10.0,
)

TIMEOUT = 5.0
#: For tests of file permission bits, which Windows does not have.
posix_only = pytest.mark.skipif(os.name == "nt", reason="Windows has no permission bits")


def _fd_count() -> int | None:
    path = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        return len(os.listdir(path))
    except OSError:
        return None


@pytest.fixture(autouse=True)
def no_client_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``chat join`` reads a client.toml of the test's own (none), never the user's."""
    home = tmp_path_factory.mktemp("client-config")
    monkeypatch.setenv("CHAT_CLIENT_CONFIG", str(home / "client.toml"))


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test must end with the threads and file descriptors it started with."""
    threads_before = set(threading.enumerate())
    fds_before = _fd_count()
    if clustered.ENABLED and clustered.running():
        # A cluster of the module's, started before the test: its nodes' Redis and
        # PostgreSQL connection pools grow as they need to, whichever test that is.
        fds_before = None
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        fds_after = _fd_count()
        fd_leak = fds_before is not None and fds_after is not None and fds_after > fds_before
        if not leaked and not fd_leak:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"
    assert not fd_leak, f"file descriptors leaked: {fds_before} before, {fds_after} after"


class RunningServer:
    """A server running on its own thread, for one test."""

    def __init__(self, config: ServerConfig) -> None:
        self.server = Server(config)
        self.host, self.port = self.server.bind()
        self.thread = threading.Thread(target=self.server.serve_forever, name="serve_forever")
        self.thread.start()

    @property
    def config(self) -> ServerConfig:
        return self.server.config

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.server.close()
        assert not self.thread.is_alive()


def start_server(config: ServerConfig, request: pytest.FixtureRequest) -> RunningServer:
    """A server with ``config``; under the cluster run, two nodes (tests/clustered.py)."""
    if clustered.ENABLED and config.cluster is None:
        return clustered.Nodes(config, RunningServer, request)  # type: ignore[return-value]
    return RunningServer(config)


@pytest.fixture
def make_server(request: pytest.FixtureRequest) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with config overrides: ``make_server(password="s3cret")``."""
    servers: list[RunningServer] = []

    def start(**overrides: object) -> RunningServer:
        running = start_server(replace(TEST_CONFIG, **overrides), request)  # type: ignore[arg-type]
        servers.append(running)
        return running

    yield start
    for running in servers:
        running.stop()


@pytest.fixture
def server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A store of its own, open, on a file in the test's directory (no server)."""
    opened = Store(tmp_path / "chat.db")
    opened.open()
    yield opened
    opened.close()


class Client:
    """A bare IRC client over a real socket, for tests. Every read is bounded in time."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        rcvbuf: int | None = None,
    ) -> None:
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        else:  # a small receive buffer (set before connecting): a reader that falls behind
            self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(TIMEOUT)
            self.sock.connect((host, port))
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        self.buffer = LineBuffer(max_line=1 << 20)
        self.pending: list[Message] = []
        self.nick = "*"
        self.port = port
        if clustered.ENABLED:  # (the node's side of it: see clustered.gone)
            self.address = self.sock.getsockname()

    def send(self, line: str | bytes) -> None:
        if clustered.ENABLED:  # what was done before is known on every node
            clustered.settle(self.port)
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data if data.endswith(b"\n") else data + b"\r\n")

    def recv(self, timeout: float = TIMEOUT) -> Message | None:
        """The next message, or None at end of stream."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message within the timeout")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ConnectionAbortedError):
                return None
            if not data:
                return None
            self.pending.extend(parse_line(line, limit=False) for line in self.buffer.feed(data))
        return self.pending.pop(0)

    def expect(
        self, command: str, *params: str | None, timeout: float = TIMEOUT, skip: bool = True
    ) -> Message:
        """Read until a message with ``command`` and (where not None) these leading params.

        With ``skip=False`` the very next message must match."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.0, deadline - time.monotonic()))
            assert msg is not None, f"connection closed while waiting for {command} {params}"
            if msg.command == command and all(
                want is None or (i < len(msg.params) and msg.params[i] == want)
                for i, want in enumerate(params)
            ):
                return msg
            assert skip, f"expected {command} {params}, got {msg.to_line()!r}"

    def collect(self, *until: str, timeout: float = TIMEOUT) -> list[Message]:
        """Every message up to and including the first of the ``until`` commands."""
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.0, deadline - time.monotonic()))
            assert msg is not None, f"connection closed while waiting for {until}"
            out.append(msg)
            if msg.command in until:
                return out

    def quiet(self, wait: float = 0.2) -> list[Message]:
        """Whatever arrives within ``wait`` seconds (usually: assert it is nothing)."""
        out: list[Message] = []
        try:
            while (msg := self.recv(wait)) is not None:
                out.append(msg)
        except TimeoutError:
            pass
        return out

    def sync(self) -> list[Message]:
        """Round trip: every line sent before has been handled once this returns.
        Returns what arrived before the answer."""
        token = f"sync{time.monotonic_ns()}"
        self.send(f"PING {token}")
        before = self.collect("PONG")
        assert before[-1].params[-1] == token, f"unexpected PONG {before[-1]}"
        if clustered.ENABLED:  # ...and on every node of the cluster
            clustered.settle(self.port)
        return before[:-1]

    def cap_ls(self) -> list[str]:
        """Send ``CAP LS 302``; the capabilities offered (with their values), over the
        reply's continuation lines (each but the last ``CAP <nick> LS * :...``), each line
        within IRC's 512 bytes."""
        self.send("CAP LS 302")
        offered: list[str] = []
        while True:
            line = self.expect("CAP")
            assert len(line.to_bytes()) <= 512 and line.params[1] == "LS"
            offered += line.params[-1].split()
            if len(line.params) == 3:
                return offered
            assert line.params[2] == "*"

    def register(self, nick: str, caps: str = "", join: bool = True) -> list[Message]:
        """Register as ``nick`` with the capabilities ``caps``; return the burst up to the
        end of the default room's NAMES or, with ``join=False``, of the MOTD. (Joining the
        default room is a capability, which ``chat join`` asks for too.)"""
        wanted = " ".join([*caps.split(), *(["chatcli.local/autojoin"] if join else [])])
        if wanted:
            self.send(f"CAP REQ :{wanted}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :Real {nick}")
        if wanted:
            self.send("CAP END")
        self.nick = nick
        burst = self.collect("366") if join else self.collect("376", "422")
        if clustered.ENABLED:  # every node knows of the newcomer
            clustered.settle(self.port)
        return burst

    def closed(self, timeout: float = TIMEOUT) -> bool:
        """Read until the server closes; True if it did within ``timeout``."""
        try:
            while self.recv(timeout) is not None:
                pass
        except TimeoutError:
            return False
        if clustered.ENABLED:  # ...and every node has seen it go
            clustered.gone(self.port, self.address)
        return True

    def close(self) -> None:
        self.sock.close()


def in_room(port: int, clients: list[Client], nick: str, caps: str, room: str | None) -> Client:
    """A client registered as ``nick`` with ``caps``, in ``room`` once its JOIN is done
    (None: in no room), closed with the test (``clients``)."""
    client = Client(port)
    clients.append(client)
    client.register(nick, caps, join=False)
    if room is not None:
        client.send(f"JOIN {room}")
        client.expect("366")
    return client


def say(client: Client, target: str, text: str) -> str:
    """Send ``text`` to ``target``; return its msgid (from the echo: echo-message)."""
    client.send(f"PRIVMSG {target} :{text}")
    return client.expect("PRIVMSG", target, text).tags["msgid"]


def register_account(port: int, nick: str, password: str) -> None:
    """Register ``nick`` as an account on the server at ``port``, on a connection of its
    own that then quits."""
    client = Client(port)
    try:
        client.register(nick, join=False)
        client.send(f"REGISTER * * {password}")
        client.expect("REGISTER")
        client.send("QUIT")
        assert client.closed()
    finally:
        client.close()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """A list to put test clients in; each is closed after the test."""
    opened: list[Client] = []
    yield opened
    for client in opened:
        client.close()


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The usual umask, 022, which leaves new files readable by all, for the test; the one
    before is back after, and nothing changed it meanwhile."""
    before = os.umask(0o022)
    try:
        yield
        assert os.umask(0o022) == 0o022, "the umask was changed"
    finally:
        os.umask(before)


@pytest.fixture
def connect(server: RunningServer) -> Iterator[Callable[..., Client]]:
    """Open test clients to the ``server`` fixture; closed after the test."""
    clients: list[Client] = []

    def open_client(
        nick: str | None = None, caps: str = "", port: int | None = None, join: bool = True
    ) -> Client:
        client = Client(port or server.port)
        clients.append(client)
        if nick is not None:
            client.register(nick, caps, join)
        return client

    yield open_client
    for client in clients:
        client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if clustered.ENABLED:
        clustered.skip_single_server(items)


def pytest_report_header() -> str:
    cluster = ", every server a two-node cluster" if clustered.ENABLED else ""
    return f"chatcli tests on {sys.platform}, Python {sys.version.split()[0]}{cluster}"
