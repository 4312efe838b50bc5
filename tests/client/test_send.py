"""``chat send`` of many lines: paced to the server's flood control, each line delivered
once and in order, and a timeout that counts from the server's last confirmation."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from chatcli.cli import main
from chatcli.errors import ExitStatus
from tests.conftest import Client


def chat_send(port: int, *args: str) -> list[str]:
    """``chat send`` on the command line, as a script would run it."""
    return [sys.executable, "-m", "chatcli", "send", "--port", str(port), *args]


def received(watcher: Client, count: int, timeout: float = 30.0) -> list[str]:
    """The texts of the next ``count`` messages ``watcher`` receives."""
    deadline = time.monotonic() + timeout
    return [
        watcher.expect("PRIVMSG", timeout=deadline - time.monotonic()).params[1]
        for _ in range(count)
    ]


def test_a_thousand_lines_from_a_pipe_arrive_once_each_in_order(make_server, clients):
    running = make_server(flood_burst=20, flood_rate=200)
    watcher = Client(running.port)
    clients.append(watcher)
    watcher.register("watcher")
    lines = [f"line {i}" for i in range(1, 1001)]
    started = time.monotonic()
    done = subprocess.run(
        chat_send(running.port, "--alias", "ci"),
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert (done.returncode, done.stderr) == (0, "")
    assert received(watcher, 1000) == lines
    assert [m for m in watcher.quiet() if m.command == "PRIVMSG"] == []  # no line twice
    assert took > 1000 / 200 - 1  # paced by the server: no faster than its rate allows


def test_a_long_input_at_the_default_pace_outlasts_the_timeout_and_succeeds(server, connect):
    """60 lines take some 5 s at the default 10 a second: more than ``--timeout 3``, which
    counts from the last confirmation, not from the start."""
    assert (server.config.flood_burst, server.config.flood_rate) == (20, 10.0)
    watcher = connect("watcher")
    lines = [f"step {i}" for i in range(1, 61)]
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        ["send", "--port", str(server.port), "--timeout", "3"],
        input="\n".join(lines) + "\n",
    )
    took = time.monotonic() - started
    assert (result.exit_code, result.stderr) == (0, "")
    assert received(watcher, 60) == lines
    assert took > 3  # longer than the timeout: it was paced, and did not give up


def test_lines_stream_in_as_they_come(server, connect):
    watcher = connect("watcher")
    with subprocess.Popen(
        chat_send(server.port, "--alias", "tailer"),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdin is not None
            proc.stdin.write("first\n")
            proc.stdin.flush()
            assert watcher.expect("PRIVMSG", timeout=10).params[1] == "first"  # stdin is open
            proc.stdin.write("second\n")
            proc.stdin.close()
            assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()
    assert watcher.expect("PRIVMSG").params[1] == "second"


class GoesSilent:
    """A server on 127.0.0.1 port 0 that welcomes one client, answers its first ``pongs``
    PINGs each ``pause`` seconds after it came, and then answers nothing (but QUIT)."""

    def __init__(self, pongs: int, pause: float) -> None:
        self.pongs, self.pause = pongs, pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, name="goes-silent")
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn, conn.makefile("rb") as lines:
            conn.settimeout(10)
            nick = "*"
            for raw in lines:
                verb, _, rest = raw.decode().strip().partition(" ")
                if verb == "NICK":
                    nick = rest
                elif verb == "USER":
                    conn.sendall(f":silent 001 {nick} :Welcome\r\n".encode())
                elif verb == "PING" and self.pongs > 0:
                    self.pongs -= 1
                    time.sleep(self.pause)
                    conn.sendall(f":silent PONG silent {rest}\r\n".encode())
                elif verb == "QUIT":
                    return

    def close(self) -> None:
        self.listener.close()
        self.thread.join(15)


@pytest.fixture
def goes_silent() -> Iterator[GoesSilent]:
    silent = GoesSilent(pongs=3, pause=0.5)
    yield silent
    silent.close()


def test_a_server_that_stops_confirming_fails_after_the_timeout_of_silence(goes_silent):
    lines = "".join(f"line {i}\n" for i in range(20))
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        ["send", "--port", str(goes_silent.port), "--to", "bob", "--timeout", "1"],
        input=lines,
    )
    took = time.monotonic() - started
    assert result.exit_code == ExitStatus.CONNECT
    # 10 sent at once; each of the 3 confirmations lets one more go; then nothing.
    assert result.stderr == (
        "chat: the server did not confirm in time: nothing for 1 s, 3 of 13 messages confirmed\n"
    )
    assert 3 * 0.5 + 1 <= took < 3 * 0.5 + 1 + 3  # 1 s after the last confirmation
