"""The server under soak: ``chat serve`` as a child process, and what /proc says about it.

The server runs in a session of its own (a Ctrl-C at the terminal reaches the soak only,
which then ends it in order) and, on Linux, with a parent-death signal, so that even a
soak killed outright does not leave it running. Its stdout and stderr go to files in the
soak's temporary directory: the address and the TLS fingerprint are read from the first.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.measure import cpu_seconds, proc_status
from harness.servers import HOST, ServerProcess, terminate

SERVING = re.compile(r"serving \S+ on (\S+):(\d+)")
FINGERPRINT = re.compile(r"TLS certificate SHA-256 fingerprint: (\S+)")
PR_SET_PDEATHSIG = 1


def chat_command() -> list[str]:
    """``chat`` beside this interpreter (the venv's), else ``python -m chatcli``."""
    chat = Path(sys.executable).parent / "chat"
    return [str(chat)] if chat.exists() else [sys.executable, "-m", "chatcli"]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Sample:
    """The server process at one moment (None where /proc cannot tell)."""

    at: float  #: monotonic seconds
    rss_kib: int | None
    threads: int | None
    fds: int | None
    cpu_s: float | None

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k != "at"}


def sample(pid: int) -> Sample:
    """RSS, threads, open fds and CPU time of ``pid``, from /proc (Linux); None elsewhere
    (macOS has no /proc: the soak then runs without resource figures)."""
    now = time.monotonic()
    try:
        status = proc_status(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        cpu = cpu_seconds(pid)
    except (OSError, ValueError):
        return Sample(now, None, None, None, None)
    return Sample(now, status["rss_kib"], status["threads"], fds, cpu)


class ChatServer(ServerProcess):
    """``chat serve`` on 127.0.0.1 and a port it picks, keeping its database (and, with
    ``tls``, its self-signed certificate) in ``workdir``; a context manager."""

    def __init__(
        self,
        workdir: Path,
        *,
        tls: bool,
        flood_rate: float,
        chat: str | list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.chat = [chat] if isinstance(chat, str) else chat or chat_command()
        self.env = env or {}
        self.tls = tls
        self.flood_rate = flood_rate
        self.db = workdir / "chat.db"
        self.out = workdir / "server.out"
        self.err = workdir / "server.err"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.fingerprint = ""

    def __enter__(self) -> ChatServer:
        return self

    @property
    def command(self) -> list[str]:
        cmd = [*self.chat, "serve", "--host", HOST, "--port", "0", "--db", str(self.db)]
        cmd += ["--flood-rate", f"{self.flood_rate:g}"]
        return [*cmd, "--tls"] if self.tls else cmd

    def start(self, timeout: float = 30.0) -> None:
        """Start it and read its address (and fingerprint) from its stdout.

        Raises:
            RuntimeError: it exited, or did not say where it listens in time.
        """
        env = {**os.environ, **self.env, "XDG_DATA_HOME": str(self.workdir / "data")}
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.out.read_text(encoding="utf-8", errors="replace")
            found = SERVING.search(text)
            printed = FINGERPRINT.search(text)
            if found and (printed or not self.tls):
                self.port = int(found.group(2))
                self.fingerprint = printed.group(1) if printed else ""
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"chat serve exited at start: {self.stderr_tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"chat serve did not say where it listens within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status (None if not started)."""
        return None if self.proc is None else terminate(self.proc, timeout)

    def stderr_tail(self, lines: int = 5) -> str:
        try:
            text = self.err.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def stderr_lines(self) -> list[str]:
        try:
            return self.err.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []

    def db_kib(self) -> int:
        """The database file's size (its WAL apart: that is reused after each checkpoint,
        and stays near SQLite's 1,000-page checkpoint size)."""
        try:
            return self.db.stat().st_size // 1024
        except OSError:
            return 0


def probe(port: int, tls: bool, timeout: float = 10.0) -> bool:
    """One client: register, join, say something, quit, read to the end. Run before the
    baseline is taken, so that it counts what the first client brings to life (the
    database's WAL, its reader), not only the idle server. True if it went through."""
    deadline = time.monotonic() + timeout
    try:
        raw = socket.create_connection((HOST, port), timeout=timeout)
    except OSError:
        return False
    sock: socket.socket = raw
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(raw)
    with sock:
        lines = [
            "NICK probe",
            "USER probe 0 * :soak probe",
            "JOIN #soak-probe",
            "PRIVMSG #soak-probe :warming up",
            "CHATHISTORY LATEST #soak-probe * 10",
            "QUIT :done",
        ]
        sock.sendall(("\r\n".join(lines) + "\r\n").encode())
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                if not sock.recv(65536):
                    return True
            except OSError:
                return False
    return False
