"""Supervised threads: a failure in any background thread of the server is logged with its
traceback and the thread restarted, or, past its budget or where a restart is not safe,
the server stops with a clear reason and ``chat serve`` exits non-zero. Never up but
broken. (issue "server core, second design")"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import trustme
from click.testing import CliRunner

from chatcli.cli import main
from chatcli.errors import ExitStatus
from chatcli.server import Server, supervise
from chatcli.server.refusals import TLSRefusals
from chatcli.server.sendq import Flusher
from chatcli.server.supervise import ServerFailed, Supervisor
from tests import certs
from tests.certs import issue
from tests.conftest import TEST_CONFIG, Client

# -- helpers ----------------------------------------------------------------------------------


class Boom(RuntimeError):
    pass


def fail_once(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> list[int]:
    """Make ``owner.name`` raise Boom the first time it is called, then work as before.
    Returns a list that counts the calls."""
    original = getattr(owner, name)
    calls: list[int] = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise Boom(f"injected into {name}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, failing)
    return calls


def fail_always(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
    def failing(self, *args, **kwargs):
        raise Boom(f"injected into {name}, always")

    monkeypatch.setattr(owner, name, failing)


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restarts after a few milliseconds, so that a budget is spent within a test."""
    monkeypatch.setattr(supervise, "FIRST_BACKOFF", 0.005)
    monkeypatch.setattr(supervise, "MAX_BACKOFF", 0.02)


def wait_for(check: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def failures_logged(caplog: pytest.LogCaptureFixture, role: str) -> list[logging.LogRecord]:
    """The records of ``role``'s thread failing, each with a traceback of the Boom."""
    return [
        r
        for r in caplog.records
        if f"the {role} thread failed" in r.getMessage()
        and r.exc_info is not None
        and r.exc_info[0] is Boom
    ]


def chat_works(port: int, tls=None) -> None:
    """Two new clients can still talk in the default room."""
    alice, bob = Client(port, tls=tls), Client(port, tls=tls)
    try:
        alice.register("alice2")
        bob.register("bob2")
        alice.expect("JOIN", "#lobby")  # bob's arrival
        alice.send("PRIVMSG #lobby :still serving")
        assert bob.expect("PRIVMSG", "#lobby").params[1] == "still serving"
    finally:
        alice.close()
        bob.close()


class Serving:
    """A server whose ``serve_forever`` runs on a thread of its own, which keeps what
    ``serve_forever`` raised (the conftest fixture's would go unseen)."""

    def __init__(self, **overrides: object) -> None:
        self.server = Server(replace(TEST_CONFIG, **overrides))  # type: ignore[arg-type]
        self.port = self.server.bind()[1]
        self.raised: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="serve_forever")
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.server.serve_forever()
        except BaseException as exc:
            self.raised = exc

    def ended(self, timeout: float = 10.0) -> BaseException | None:
        """Wait for ``serve_forever`` to end by itself; what it raised."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the server is still up"
        return self.raised

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.server.close()


@pytest.fixture
def serving() -> Iterator[Callable[..., Serving]]:
    started: list[Serving] = []

    def start(**overrides: object) -> Serving:
        running = Serving(**overrides)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


# -- the supervisor itself --------------------------------------------------------------------


def test_a_failed_loop_is_logged_and_restarted(caplog, quick):
    fatal: list[str] = []
    runs: list[int] = []

    def loop() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise Boom("again")

    supervisor = Supervisor("test", fatal.append)
    supervisor.run(loop)
    assert len(runs) == 3 and supervisor.restarts == 2 and fatal == []
    assert len(failures_logged(caplog, "test")) == 2
    assert "Boom: again" in caplog.text  # the traceback


def test_past_its_budget_a_loop_stops_the_server(caplog, quick):
    fatal: list[str] = []

    def loop() -> None:
        raise Boom("for good")

    supervisor = Supervisor("test", fatal.append)
    supervisor.run(loop)  # returns: it gave up
    assert supervisor.restarts == supervise.RESTARTS
    assert fatal == [
        f"the test thread failed {supervise.RESTARTS + 1} times within 60 seconds "
        "(last: Boom: for good)"
    ]
    assert supervisor.failed == fatal[0]
    assert caplog.records[-1].levelno == logging.CRITICAL


def test_a_loop_that_cannot_safely_restart_stops_the_server_at_once(quick):
    fatal: list[str] = []

    def loop() -> None:
        raise Boom("half done")

    Supervisor("test", fatal.append, safe=lambda: False).run(loop)
    assert fatal == ["the test thread failed and cannot safely restart (Boom: half done)"]


def test_a_stray_system_exit_does_not_end_a_thread_silently(quick):
    runs: list[int] = []

    def loop() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise SystemExit(3)

    Supervisor("test", lambda reason: None).run(loop)
    assert len(runs) == 2


def test_no_restart_once_the_server_stops(caplog):
    stop = threading.Event()
    runs: list[int] = []

    def loop() -> None:
        runs.append(1)
        stop.set()
        raise Boom("while stopping")

    Supervisor("test", lambda reason: pytest.fail(reason), stop=stop).run(loop)
    assert runs == [1]
    assert "the test thread failed while the server stops" in caplog.text


# -- each thread of a real server -------------------------------------------------------------


def test_the_accept_loop_is_restarted(make_server, monkeypatch, caplog):
    calls = fail_once(monkeypatch, Server, "_woken")
    running = make_server()
    running.server.request_rehash()  # wakes the accept loop, which fails
    wait_for(lambda: failures_logged(caplog, "accept"))
    wait_for(lambda: len(calls) >= 2)  # restarted, and woken again by the same byte
    chat_works(running.port)
    assert running.server.failure is None


def test_housekeeping_is_restarted(make_server, monkeypatch, caplog):
    calls = fail_once(monkeypatch, Server, "_tick")
    running = make_server()
    wait_for(lambda: failures_logged(caplog, "housekeeping"))
    wait_for(lambda: len(calls) >= 3)  # ticking again
    chat_works(running.port)
    assert running.server.failure is None


def test_the_flusher_is_restarted_and_loses_nothing(server, connect, monkeypatch, caplog):
    running = server
    alice, bob = connect("alice"), connect("bob")
    alice.expect("JOIN", "#lobby")
    calls = fail_once(monkeypatch, Flusher, "_due")
    bob.send("PRIVMSG #lobby :through the failure")  # queued when the flusher fails
    bob.send("PRIVMSG #lobby :and after it")
    assert alice.expect("PRIVMSG", "#lobby").params[1] == "through the failure"
    assert alice.expect("PRIVMSG", "#lobby").params[1] == "and after it"
    assert len(calls) >= 2
    assert len(failures_logged(caplog, "flusher")) == 1
    assert running.server.flusher.supervisor.restarts == 1
    chat_works(running.port)
    assert running.server.failure is None


def test_one_broken_send_queue_ends_its_client_only(server, connect, monkeypatch, caplog):
    """A failure while queueing for one client ends that client, not the flusher."""
    running = server
    alice, bob = connect("alice"), connect("bob")
    alice.expect("JOIN", "#lobby")
    world = running.server.world
    with world.lock:
        bob_queue = world.find_nick("bob").sendq
    original = Flusher._mark

    def mark(self, queue, where):
        if queue is bob_queue and not queue._closing:
            raise Boom("bob's queue")
        original(self, queue, where)

    monkeypatch.setattr(Flusher, "_mark", mark)
    alice.send("PRIVMSG #lobby :hello")
    assert bob.closed()
    assert alice.expect("QUIT").params[0] == "Internal error"
    assert "queueing for a client failed" in caplog.text
    assert running.server.flusher.supervisor.restarts == 0
    chat_works(running.port)
    assert running.server.failure is None


def test_the_tls_refusals_thread_is_restarted(make_server, monkeypatch, caplog, tmp_path):
    ca = trustme.CA()
    cert, key = issue(ca, tmp_path, "127.0.0.1", "localhost")
    trusting = certs.trusting(ca)
    calls = fail_once(monkeypatch, TLSRefusals, "_step")
    running = make_server(tls=True, tls_cert=cert, tls_key=key, max_clients=1)
    alice = Client(running.port, tls=trusting)
    try:
        alice.register("alice")
        # The first refusal meets the failure: closed without a word.
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as first:
            first.sendall(b"\x16\x03\x01\x00\x05hello")  # a start of a handshake: a step
            wait_for(lambda: failures_logged(caplog, "tls refusals"))
        # The next is told, by the restarted thread.
        late = Client(running.port, tls=trusting)
        assert late.expect("ERROR", skip=False).params[0].endswith("(Server full)")
        late.close()
        assert len(calls) >= 2
        alice.send("PRIVMSG alice :still here")
        assert alice.expect("PRIVMSG").params[1] == "still here"
        assert running.server.failure is None
    finally:
        alice.close()


# -- stopping for good ------------------------------------------------------------------------


def test_a_flusher_failure_half_way_through_an_event_stops_the_server(serving, monkeypatch):
    """A broadcast half applied cannot be restarted without losing or repeating a line:
    the server stops, with the reason, and every connection ends."""
    running = serving()
    alice, bob = Client(running.port), Client(running.port)
    try:
        alice.register("alice")
        bob.register("bob")
        alice.expect("JOIN", "#lobby")
        fail_always(monkeypatch, Flusher, "_broadcast")
        bob.send("PRIVMSG #lobby :lost in the flusher")
        raised = running.ended()
        assert isinstance(raised, ServerFailed)
        assert str(raised) == (
            "the server stopped: the flusher thread failed and cannot safely restart "
            "(Boom: injected into _broadcast, always)"
        )
        assert raised.exit_status == ExitStatus.ERROR
        assert alice.closed() and bob.closed()
        assert running.server.thread_count == 0
    finally:
        alice.close()
        bob.close()


def test_a_thread_failing_past_its_budget_stops_the_server(serving, monkeypatch, caplog, quick):
    fail_always(monkeypatch, Server, "_tick")
    running = serving()
    raised = running.ended()
    assert isinstance(raised, ServerFailed)
    assert str(raised) == (
        f"the server stopped: the housekeeping thread failed {supervise.RESTARTS + 1} times "
        "within 60 seconds (last: Boom: injected into _tick, always)"
    )
    assert len(failures_logged(caplog, "housekeeping")) == supervise.RESTARTS + 1
    assert "stopping the server: the housekeeping thread failed" in caplog.text


def test_the_flusher_past_its_budget_stops_the_server(serving, monkeypatch, quick):
    running = serving()
    alice, bob = Client(running.port), Client(running.port)
    try:
        alice.register("alice")
        bob.register("bob")
        fail_always(monkeypatch, Flusher, "_due")
        # Work for the flusher (a line to a room of several always goes through it; a
        # reply to an idle client may be written by its own thread): it fails, again
        # and again.
        alice.send("PRIVMSG #lobby :x")
        raised = running.ended()
        assert isinstance(raised, ServerFailed)
        assert "the flusher thread failed 6 times within 60 seconds" in str(raised)
        assert alice.closed()
    finally:
        alice.close()
        bob.close()


def test_fatal_from_any_thread_stops_the_server_with_its_reason(serving, tmp_path):
    """The store's writer (or anything that cannot go on) stops the server through
    Server.fatal; the first reason wins."""
    running = serving(db=str(tmp_path / "chat.db"))
    assert running.server.store is not None
    assert running.server.store.on_fatal == running.server.fatal  # wired
    alice = Client(running.port)
    try:
        alice.register("alice")
        threading.Thread(target=running.server.fatal, args=("the store failed",)).start()
        raised = running.ended()
        assert str(raised) == "the server stopped: the store failed"
        running.server.fatal("a second reason")
        assert running.server.failure == "the store failed"
        assert alice.closed()
    finally:
        alice.close()


def test_chat_serve_exits_non_zero_with_the_reason(monkeypatch, tmp_path, quick):
    """chat serve, in this process, with its housekeeping failing for good."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setattr("signal.signal", lambda *args: None)  # (pytest's handlers stay)
    monkeypatch.setattr("sys.setswitchinterval", lambda interval: None)
    fail_always(monkeypatch, Server, "_tick")
    result = CliRunner().invoke(main, ["serve", "--host", "127.0.0.1", "--port", "0", "--no-db"])
    assert result.exit_code == ExitStatus.ERROR == 1
    assert result.stdout.startswith("chatcli serving #lobby on 127.0.0.1:")
    assert result.stderr.strip().splitlines()[-1] == (
        "chat: the server stopped: the housekeeping thread failed 6 times within 60 seconds "
        "(last: Boom: injected into _tick, always)"
    )
