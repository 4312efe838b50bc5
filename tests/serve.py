"""``chat serve`` as a process of its own, for the tests of what only a process has: its
banner, its signals, its exit status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from types import TracebackType


class ChatServe:
    """``python -m chatcli serve --port 0 ARGS``, started and its banner read: the lines up
    to and including "keeping ..." (where it keeps accounts and history). Use as a context
    manager: on leaving, it is stopped with SIGTERM (killed if it has not ended in 5 s)."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatcli", "serve", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout, self.stderr = self.proc.stdout, self.proc.stderr
        self.banner: list[str] = []
        while not self.banner or not self.banner[-1].startswith("keeping"):
            line = self.stdout.readline()
            if not line:
                self.stop()
                raise AssertionError(f"chat serve ended: {self.stderr.read()}")
            self.banner.append(line.rstrip("\n"))

    @property
    def port(self) -> int:
        """The port of its first banner line: "chatcli serving #room on HOST:PORT - ..."."""
        return int(self.banner[0].split(" on ")[1].split()[0].rsplit(":", 1)[1])

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_for_log(self, text: str, lines: int = 50) -> None:
        """Read its stderr until a line holds ``text`` (at most ``lines`` lines)."""
        for _ in range(lines):
            line = self.stderr.readline()
            assert line, f"chat serve ended before logging {text!r}"
            if text in line:
                return
        raise AssertionError(f"{text!r} not in {lines} lines of log")

    def stop(self) -> int:
        """SIGTERM, then wait (kill after 5 s); close its pipes. Returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=5)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.stdout.close()
            self.stderr.close()

    def __enter__(self) -> ChatServe:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
