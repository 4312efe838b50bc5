"""The servers under test: how to find, configure, start, watch and stop each one.

Each server runs as a child process on 127.0.0.1 with a port picked here, its files in a
temporary directory. Its CPU time (utime + stime of the whole process, every thread) and
resident memory are read from /proc while it runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .measure import cpu_seconds, proc_status

HOST = "127.0.0.1"
#: The checkout: benchmarks/harness/ is two levels below it.
REPO = Path(__file__).resolve().parent.parent.parent

#: Where a miniircd installed by hand may live, besides PATH and this interpreter's venv.
MINIIRCD_PLACES = ("/tmp/miniircd-venv/bin/miniircd",)


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def terminate(proc: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5.0)
    return proc.returncode


@dataclass
class ServerSpec:
    """One kind of server: how to run it and what it needs from its clients."""

    name: str
    executable: str | None  #: None: not installed
    install_hint: str
    version: str = ""
    #: Lines a sending client sends once joined (ngircd: OPER, then +F to lift flood limits).
    sender_setup: tuple[str, ...] = ()
    #: Extra command-line arguments (chatcli: whatever lifts its flood control, if any).
    extra_args: tuple[str, ...] = ()
    #: Extra environment (chatcli from another source tree: PYTHONPATH).
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Whether the server's connection limit can be raised (chatcli: ``max_clients`` in a
    #: ``chat serve --config`` file; the peers' configurations here set none or 100,000).
    max_clients_settable: bool = False
    #: Whether it serves IRC over WebSocket (IRCv3) on a port of its own: chatcli with
    #: ``--web-port``, InspIRCd with its websocket module; why not, if it does not.
    websocket: bool = False
    no_websocket: str = "no WebSocket listener"

    @property
    def available(self) -> bool:
        return self.executable is not None

    def command(
        self,
        port: int,
        workdir: Path,
        max_clients: int | None = None,
        web_port: int | None = None,
        ws_text: bool = True,
    ) -> list[str]:
        """The command line that runs the server in the foreground; writes its config.
        ``max_clients``: raise chatcli's connection limit (4,096 by default) to this;
        ``web_port``: serve IRC over WebSocket there too (:attr:`websocket` servers), in
        text messages or (not ``ws_text``) binary ones where the server is told which."""
        assert self.executable is not None
        if web_port is not None and not self.websocket:
            raise ValueError(f"{self.name}: {self.no_websocket}")
        if self.name.startswith("chatcli"):
            exe = self.executable
            head = [exe, "-m", "chatcli"] if Path(exe).name.startswith("python") else [exe]
            db = ["--db", str(workdir / "chat.db")] if self.name == HISTORY_VARIANT else []
            conf: list[str] = []
            if max_clients is not None and self.max_clients_settable:
                path = workdir / f"{self.name}-{port}.toml"
                path.write_text(f"max_clients = {int(max_clients)}\n", encoding="utf-8")
                conf = ["--config", str(path)]
            web = ["--web-port", str(web_port)] if web_port is not None else []
            return [
                *head,
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                *self.extra_args,
                *db,
                *conf,
                *web,
            ]
        if self.name == "ngircd":
            conf = workdir / "ngircd.conf"
            conf.write_text(NGIRCD_CONF.format(port=port, dir=workdir), encoding="utf-8")
            return [self.executable, "-n", "-f", str(conf)]
        if self.name == "inspircd":
            conf = workdir / "inspircd.conf"
            (workdir / "motd.txt").write_text("bench\n", encoding="utf-8")
            text = INSPIRCD_CONF.format(port=port, dir=workdir)
            if web_port is not None:
                text += INSPIRCD_WEBSOCKET.format(
                    web_port=web_port, text="yes" if ws_text else "no"
                )
            conf.write_text(text, encoding="utf-8")
            return [self.executable, "--runasroot", "--nofork", f"--config={conf}"]
        if self.name == "miniircd":
            # It refuses to run as root unless told which user to stay.
            root = ["--setuid", "root"] if os.geteuid() == 0 else []
            return [self.executable, "--listen", HOST, "--ports", str(port), *root]
        raise ValueError(self.name)


NGIRCD_CONF = """\
[Global]
Name = bench.ngircd
Info = chatcli benchmark
AdminInfo1 = bench
AdminInfo2 = bench
AdminEMail = bench@localhost
Listen = 127.0.0.1
Ports = {port}
PidFile = {dir}/ngircd.pid
MotdPhrase = bench
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 16
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600
[Options]
DNS = no
Ident = no
PAM = no
[Operator]
Name = bench
Password = bench
"""

INSPIRCD_CONF = """\
<server name="bench.inspircd" description="chatcli benchmark" network="bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect name="main" allow="*" timeout="60" pingfreq="600" maxchans="100"
         hardsendq="4M" softsendq="1M" recvq="1M"
         threshold="1000000000" commandrate="1000000000" fakelag="no"
         localmax="100000" globalmax="100000" limit="100000"
         resolvehostnames="no" useident="no">
<performance softlimit="20000" somaxconn="4096" clonesonconnect="no">
<channels users="100" opers="100">
<files motd="{dir}/motd.txt">
<pid file="{dir}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{dir}/inspircd.log">
<options syntaxhints="no" announcets="no">
<security maxtargets="20">
"""

#: InspIRCd's WebSocket listener (m_websocket, which needs m_sha1 for the handshake): the
#: same ``<connect>`` class as TCP clients; any Origin (it refuses a request without one).
#: 3.15 does not negotiate the IRCv3 subprotocols: ``sendastext`` says which kind of
#: message it sends.
INSPIRCD_WEBSOCKET = """\
<module name="sha1">
<module name="websocket">
<websocket sendastext="{text}">
<wsorigin allow="*">
<bind address="127.0.0.1" port="{web_port}" type="clients" hook="websocket">
"""
#: Where Debian's InspIRCd keeps its modules, and those its WebSocket listener needs.
INSPIRCD_MODULES = ("/usr/lib/inspircd/modules",)
WS_MODULES = ("websocket", "sha1")


#: ``chat serve`` options that lift a flood limit, if the server has them, and their values.
FLOOD_OPTIONS = (("--flood-rate", "0"), ("--no-flood-control", None))
#: chatcli keeping history in a database in the server's work directory; plain "chatcli"
#: keeps nothing (``--no-db``), so that the two side by side show what history costs.
HISTORY_VARIANT = "chatcli-history"


def chatcli_spec(src: str | None = None, *, history: bool = False) -> ServerSpec:
    """chatcli as installed (``chat`` beside this interpreter), or from the source tree
    ``src`` (a directory holding the ``chatcli`` package) run as ``python -m chatcli``;
    with ``history``, keeping it in a database."""
    venv_bin = Path(sys.executable).parent
    chat = venv_bin / "chat"
    env: dict[str, str] = {}
    if src is not None:
        exe = sys.executable
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    else:
        exe = str(chat) if chat.exists() else sys.executable
    head = [exe, "-m", "chatcli"] if Path(exe).name.startswith("python") else [exe]
    try:
        help_text = subprocess.run(
            [*head, "serve", "--help"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, **env},
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        help_text = ""
    extra: list[str] = []
    for option, value in FLOOD_OPTIONS:
        if option in help_text:
            extra += [option] if value is None else [option, value]
            break
    if not history and "--no-db" in help_text:
        extra.append("--no-db")
    settable = "--config" in help_text and "max_clients" in _serve_output(
        [*head, "serve", "--print-config"], {**os.environ, **env}
    )
    version = chatcli_version(src)
    return ServerSpec(
        HISTORY_VARIANT if history else "chatcli",
        exe,
        "pip install -e .",
        version=version,
        extra_args=tuple(extra),
        env=env,
        max_clients_settable=settable,
        websocket="--web-port" in help_text,
        no_websocket="chat serve has no --web-port",
    )


def _serve_output(cmd: list[str], env: dict[str, str]) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, check=False, env=env
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def find_servers(
    miniircd: str | None = None, chatcli_src: str | None = None
) -> dict[str, ServerSpec]:
    """Every server the harness knows, with where it is installed (or how to install it)."""
    venv_bin = Path(sys.executable).parent
    specs: dict[str, ServerSpec] = {
        "chatcli": chatcli_spec(chatcli_src),
        HISTORY_VARIANT: chatcli_spec(chatcli_src, history=True),
    }
    ng = shutil.which("ngircd") or _existing("/usr/sbin/ngircd")
    specs["ngircd"] = ServerSpec(
        "ngircd",
        ng,
        "apt-get update && apt-get install -y ngircd",
        version=_first_line([ng, "--version"]).split("-")[0] if ng else "",
        sender_setup=("OPER bench bench", "MODE {nick} +F"),
        no_websocket="ngircd has no WebSocket support",
    )
    insp = shutil.which("inspircd") or _existing("/usr/sbin/inspircd")
    ws_modules = [
        d for d in INSPIRCD_MODULES if all(Path(d, f"m_{m}.so").exists() for m in WS_MODULES)
    ]
    specs["inspircd"] = ServerSpec(
        "inspircd",
        insp,
        "apt-get update && apt-get install -y inspircd",
        version=_first_line([insp, "--version"]) if insp else "",
        websocket=bool(ws_modules),
        no_websocket="m_websocket.so or m_sha1.so not found in " + ", ".join(INSPIRCD_MODULES),
    )
    candidates = [miniircd, os.environ.get("MINIIRCD"), shutil.which("miniircd")]
    candidates += [str(venv_bin / "miniircd"), *MINIIRCD_PLACES]
    mini = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    specs["miniircd"] = ServerSpec(
        "miniircd",
        mini,
        "python3 -m venv /tmp/miniircd-venv && /tmp/miniircd-venv/bin/pip install miniircd",
        version="miniircd " + _first_line([mini, "--version"]) if mini else "",
        no_websocket="miniircd has no WebSocket support",
    )
    return specs


def _existing(path: str) -> str | None:
    return path if os.access(path, os.X_OK) else None


def chatcli_version(src: str | None = None) -> str:
    """The package version and the checkout's commit (with -dirty if src has changes)."""
    if src is not None:
        return f"chatcli from {src}"
    try:
        from importlib.metadata import version

        ver = version("chatcli")
    except Exception:
        ver = "?"
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev, dirty = "", ""
    return f"chatcli {ver} {rev}{'-dirty' if dirty else ''}".strip()


class ServerProcess:
    """What every server process the harness starts answers: its pid, whether it still
    runs; leaving its ``with`` block stops it (``stop``, the subclass's)."""

    proc: subprocess.Popen[bytes] | None

    def stop(self) -> None:
        raise NotImplementedError

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class RunningServer(ServerProcess):
    """A server process started for one group of scenarios; use as a context manager."""

    def __init__(
        self,
        spec: ServerSpec,
        workdir: Path,
        max_clients: int | None = None,
        web: bool = False,
        ws_text: bool = True,
    ) -> None:
        self.spec = spec
        self.ws_text = ws_text
        self.max_clients = max_clients
        self.workdir = workdir
        self.port = free_port()
        #: with ``web``, the port of its WebSocket listener
        self.web_port: int | None = free_port() if web else None
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = workdir / f"{spec.name}-{self.port}.log"

    def __enter__(self) -> RunningServer:
        self.start()
        return self

    def cpu(self) -> float:
        try:
            return cpu_seconds(self.pid)
        except (OSError, ValueError):
            return float("nan")

    def status(self) -> dict[str, int]:
        try:
            return proc_status(self.pid)
        except OSError:
            return {"rss_kib": 0, "threads": 0}

    def start(self, timeout: float = 15.0) -> None:
        cmd = self.spec.command(
            self.port, self.workdir, self.max_clients, self.web_port, self.ws_text
        )
        with open(self._log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                env={**os.environ, **self.spec.env},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.name} exited at start: {self.log_tail()}")
            try:
                for port in (self.port, self.web_port):
                    if port is not None:
                        with socket.create_connection((HOST, port), timeout=1.0):
                            pass
            except OSError:
                time.sleep(0.05)
                continue
            time.sleep(0.2)  # let it settle (and forget the probe connection)
            return
        self.stop()
        raise RuntimeError(f"{self.spec.name} did not listen within {timeout:.0f} s")

    def stop(self, timeout: float = 8.0) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout)

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self._log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])


def extract_revision(rev: str, into: Path) -> str:
    """``git archive`` the chatcli package at ``rev`` into ``into``; return its src dir."""
    out = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "src/chatcli"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"git archive {rev} failed: {out.stderr.decode(errors='replace')}")
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(into, filter="data")
    return str(into / "src")


def chatcli_version_at(rev: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return f"chatcli {out.stdout.strip() or rev} (git archive of {rev})"
