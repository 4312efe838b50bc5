"""Real components for the tests that need them: a PostgreSQL and a redis-server of the
test session's own.

Each runs from Debian's packages (``postgresql``, ``redis-server``: ``./run test`` installs
them) in a temporary directory, on a free port of 127.0.0.1 and a unix socket in that
directory, and is stopped and deleted when the session ends; a test that needs one that is
not installed is skipped, saying which package is missing. Every wait is bounded.

PostgreSQL will not run as root: when the tests do, ``initdb`` and ``pg_ctl`` run as the
``postgres`` user (``runuser``), in a directory it owns. Durability is off (``fsync``,
``full_page_writes``, ``synchronous_commit``): a test's database need not survive a power
cut, and making one is then a matter of milliseconds.

Loaded by ``tests/conftest.py`` (``pytest_plugins``): use the fixtures by name.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin() -> Path:
    """Where Debian keeps PostgreSQL's programs: its newest version's (15 on bookworm)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
REDIS_SERVER = Path("/usr/bin/redis-server")
#: The longest a component is given to start or stop (seconds).
START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (as the system picked it now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(argv: list[str]) -> list[str]:
    """``argv`` as the ``postgres`` user when the tests run as root."""
    if os.name == "posix" and os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _run(argv: list[str], timeout: float = START_TIMEOUT) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")


class Postgres:
    """A PostgreSQL server of the test session's own, with trust authentication for the
    ``postgres`` user over 127.0.0.1 and the unix socket in :attr:`directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.host = "127.0.0.1"
        self.port = free_port()
        self._numbers = itertools.count(1)

    def url(self, dbname: str = "postgres") -> str:
        """The URL of the database ``dbname`` over TCP."""
        return f"postgresql://postgres@{self.host}:{self.port}/{dbname}"

    def init(self) -> None:
        _run(
            _as_owner(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                ]
            ),
            timeout=120,
        )

    def start(self) -> None:
        """Start it (again: on the same port); return once it takes connections."""
        options = (
            f"-c listen_addresses={self.host} -p {self.port} -k {self.directory} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
            "-c max_connections=50 -c shared_buffers=16MB"
        )
        _run(
            _as_owner(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.directory / "log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(START_TIMEOUT)),
                    "start",
                ]
            ),
            timeout=START_TIMEOUT + 5,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop it: ``fast`` ends every connection at once (as a restart does)."""
        _run(
            _as_owner(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    mode,
                    "-w",
                    "-t",
                    str(int(START_TIMEOUT)),
                    "stop",
                ]
            ),
            timeout=START_TIMEOUT + 5,
        )

    def new_database(self) -> str:
        """A new, empty database (its URL): one per test, so that none sees another's."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._numbers)}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as db:
            db.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL (15 on Debian bookworm) of the session's own (skipped where it is not
    installed, or where psycopg is not). ``postgres.new_database()`` makes a database for
    one test."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL is not installed (Debian's postgresql package)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (the cluster extra)")
    directory = Path(tempfile.mkdtemp(prefix="chatcli-pg-"))
    if os.name == "posix" and os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = Postgres(directory)
    started = False
    try:
        server.init()
        server.start()
        started = True
        yield server
    finally:
        if started:  # (a test that failed while it was stopped: nothing to stop)
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """The URL of a new PostgreSQL database, the test's alone."""
    return postgres.new_database()


class Redis:
    """A redis-server of the test session's own: no persistence, on :attr:`port` of
    127.0.0.1 and the unix socket :attr:`socket`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.socket = directory / "redis.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again: on the same port); return once it answers PING."""
        argv = [
            str(REDIS_SERVER),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            str(self.socket),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.directory / "log"),
        ]
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self._proc.returncode}): see its log")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT:g} s")
            time.sleep(0.02)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def flush(self) -> None:
        """Empty it (FLUSHALL): what one test left, the next does not see."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5.0) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            assert sock.recv(16).startswith(b"+OK")

    def stop(self) -> None:
        """Stop it (SIGTERM; SIGKILL if it has not gone within a few seconds)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    """A redis-server of the session's own (skipped where it is not installed).
    ``redis_server.stop()`` and ``.start()`` for fault tests: it comes back on the same
    port, empty; ``.flush()`` empties it."""
    if not REDIS_SERVER.exists():
        pytest.skip("redis-server is not installed (Debian's redis-server package)")
    directory = Path(tempfile.mkdtemp(prefix="chatcli-redis-"))
    server = Redis(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
