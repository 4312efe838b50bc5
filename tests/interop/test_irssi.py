"""irssi, a real IRC client, against a real server: it joins #lobby, talks both ways,
changes its nick, parts and quits, while a raw test client or a ``chat join`` user
watches from the other side.

Each terminal program runs in a detached session of a tmux server of the test's own
(``tmux -L``); irssi gets a temporary ``--home``. The test types with ``send-keys`` and
reads each screen with ``capture-pane``, polling until what it expects shows up.
``./run test`` installs tmux and irssi with apt-get; elsewhere (Windows, a machine without
them) the tests are skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatcli.protocol import Message, split_source
from chatcli.tls import make_self_signed
from tests.conftest import Client, RunningServer

if sys.platform == "win32":
    pytest.skip("tmux and irssi do not run on Windows", allow_module_level=True)
if shutil.which("tmux") is None or shutil.which("irssi") is None:
    pytest.skip(
        "needs tmux and irssi on PATH (./run test installs them with apt-get)",
        allow_module_level=True,
    )

IRSSI_NICK = "ircy"
JOIN_TIMEOUT = 15.0  #: connect, register and join, from a program's start
SCREEN_TIMEOUT = 5.0

# Nothing slow: no flood throttling of what irssi sends (it would space commands ~2 s
# apart), no lag pings, no paste detection of typed lines, no user mode to set, no logs;
# and a room's window stays open after /part, so that irssi's own part line can be read.
IRSSI_CONFIG = """\
settings = {
  core = {
    real_name = "irssi under test";
    user_name = "irssi";
    nick = "%(nick)s";
    settings_autosave = "no";
    resolve_reverse_lookup = "no";
  };
  "irc/core" = {
    cmd_queue_speed = "0";
    cmds_max_at_once = "1000";
    lag_check_time = "0";
    skip_motd = "yes";
    usermode = "";
  };
  "fe-common/core" = {
    autolog = "no";
    autoclose_windows = "no";
  };
  "fe-text" = {
    paste_detect_time = "0";
  };
};
"""


class Tmux:
    """A tmux server of one test's own (``tmux -L``): one detached session per program."""

    def __init__(self) -> None:
        self.socket_name = f"chatcli-test-{uuid.uuid4().hex[:12]}"
        self.socket_path = ""
        self.env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        self.env.setdefault("LANG", "C.UTF-8")

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket_name, "-f", os.devnull, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=10,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self, name: str, command: list[str]) -> Screen:
        """Run ``command`` in a new 200x50 session called ``name``. Should it exit, its
        screen stays, so that a failing test shows its last words (a traceback, say)."""
        new = ["new-session", "-d", "-s", name, "-x", "200", "-y", "50", *command]
        self.run(*new, ";", "set-option", "-t", name, "remain-on-exit", "on")
        self.socket_path = self.run("display-message", "-p", "#{socket_path}").strip()
        return Screen(self, name)

    def kill(self) -> None:
        """Stop the server and every program in it; remove its socket, which tmux leaves."""
        self.run("kill-server", check=False)
        if self.socket_path:
            Path(self.socket_path).unlink(missing_ok=True)


class Screen:
    """The terminal of one program in tmux: type into it, read it."""

    def __init__(self, tmux: Tmux, name: str) -> None:
        self.tmux = tmux
        self.name = name

    def type(self, text: str) -> None:
        """Type ``text`` literally, then Enter."""
        self.tmux.run("send-keys", "-t", self.name, "-l", text)
        self.tmux.run("send-keys", "-t", self.name, "Enter")

    def text(self) -> str:
        """The screen, after what has scrolled off it."""
        return self.tmux.run("capture-pane", "-p", "-S", "-", "-t", self.name, check=False)

    def wait_for(self, pattern: str, timeout: float = SCREEN_TIMEOUT) -> str:
        """Poll the screen until ``pattern`` (a regex) is on it; return the screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.text()
            if re.search(pattern, screen, re.MULTILINE):
                return screen
            if time.monotonic() > deadline:
                shown = "\n".join(line for line in screen.splitlines() if line.strip())
                raise AssertionError(f"{pattern!r} not on {self.name}'s screen:\n{shown}")
            time.sleep(0.1)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    """A private tmux server, killed (with every program in it) after the test."""
    mux = Tmux()
    try:
        yield mux
    finally:
        mux.kill()


def start_irssi(tmux: Tmux, port: int, home: Path) -> Screen:
    """irssi connecting as IRSSI_NICK to 127.0.0.1:``port``, with ``home`` as its home."""
    home.mkdir()
    (home / "config").write_text(IRSSI_CONFIG % {"nick": IRSSI_NICK})
    command = ["irssi", f"--home={home}", "-c", "127.0.0.1", "-p", str(port), "-n", IRSSI_NICK]
    return tmux.start("irssi", command)


def start_chat_join(tmux: Tmux, port: int, alias: str) -> Screen:
    """Our own client, ``chat join``, from the checkout under test."""
    # Line mode: what is said scrolls as lines, for the screen to be read back in order.
    command = [sys.executable, "-m", "chatcli", "join", "--plain", "--alias", alias]
    command += ["--port", str(port)]
    return tmux.start(alias, command)


@pytest.fixture
def irssi(server: RunningServer, tmux: Tmux, tmp_path: Path) -> Screen:
    """irssi connecting to the test server as IRSSI_NICK."""
    return start_irssi(tmux, server.port, tmp_path / "irssi")


def nick_of(msg: Message) -> str:
    return split_source(msg.source or "")[0]


def expect_from(client: Client, nick: str, command: str, *params: str, timeout: float) -> Message:
    """The next ``command`` (with these leading params) whose source is ``nick``."""
    deadline = time.monotonic() + timeout
    while True:
        msg = client.expect(command, *params, timeout=max(0.0, deadline - time.monotonic()))
        if nick_of(msg).lower() == nick.lower():
            return msg


def test_irssi_joins_talks_renames_and_quits(irssi: Screen, connect: Callable[..., Client]) -> None:
    tester = connect("tester")

    # Once registered, irssi joins #lobby, as the MOTD tells a newcomer to.
    irssi.wait_for(r"Current global users", timeout=JOIN_TIMEOUT)  # registered
    irssi.type("/join #lobby")
    expect_from(tester, IRSSI_NICK, "JOIN", "#lobby", timeout=JOIN_TIMEOUT)
    irssi.type("/window goto #lobby")
    irssi.wait_for(r"^\[#lobby\]")
    irssi.wait_for(rf"{IRSSI_NICK} \S+ has joined #lobby")

    # The raw client talks in the room; irssi shows it.
    tester.send("PRIVMSG #lobby :hello irssi, from the test")
    irssi.wait_for(r"<.?tester> hello irssi, from the test")

    # irssi talks in the room (plain typed text) and directly.
    irssi.type("hello room, from irssi")
    msg = expect_from(tester, IRSSI_NICK, "PRIVMSG", "#lobby", timeout=SCREEN_TIMEOUT)
    assert msg.params[1] == "hello room, from irssi"
    irssi.type("/msg tester psst, just for you")
    msg = expect_from(tester, IRSSI_NICK, "PRIVMSG", "tester", timeout=SCREEN_TIMEOUT)
    assert msg.params[1] == "psst, just for you"

    # A nick change is seen by the others in the room.
    irssi.type("/nick ircy2")
    msg = expect_from(tester, IRSSI_NICK, "NICK", timeout=SCREEN_TIMEOUT)
    assert msg.params[0] == "ircy2"
    irssi.wait_for(r"You're now known as ircy2")

    # And so is quitting, with its reason.
    irssi.type("/quit see you later")
    msg = expect_from(tester, "ircy2", "QUIT", timeout=SCREEN_TIMEOUT)
    assert "see you later" in msg.params[0]


def test_irssi_and_chat_join_see_each_other(
    server: RunningServer, tmux: Tmux, tmp_path: Path
) -> None:
    """Two people on two terminals: bob on ``chat join``, the other on irssi."""
    bob = start_chat_join(tmux, server.port, "bob")
    bob.wait_for(r"-- bob joined #lobby", timeout=JOIN_TIMEOUT)

    # irssi joins the room; bob sees it come, irssi sees bob there.
    irssi = start_irssi(tmux, server.port, tmp_path / "irssi")
    irssi.wait_for(r"Current global users", timeout=JOIN_TIMEOUT)  # registered
    irssi.type("/join #lobby")
    bob.wait_for(rf"-- {IRSSI_NICK} joined #lobby", timeout=JOIN_TIMEOUT)
    irssi.type("/window goto #lobby")
    irssi.wait_for(r"^\[#lobby\]")
    irssi.wait_for(r"\[Users #lobby\]")
    irssi.wait_for(r"\[ bob\s*\]")

    # Room messages, both ways, non-ASCII included.
    bob.type("hello irssi, from chat join ☃")
    irssi.wait_for(r"<.?bob> hello irssi, from chat join ☃")
    irssi.type("hi bob, irssi here ✓")
    bob.wait_for(rf"#lobby <{IRSSI_NICK}> hi bob, irssi here ✓")

    # Direct messages, both ways. irssi shows bob's in a query window of its own.
    irssi.type("/msg bob just between us")
    bob.wait_for(rf"\[{IRSSI_NICK} → you\] just between us")
    bob.type(f"/msg {IRSSI_NICK} noted")
    irssi.type("/window goto bob")
    irssi.wait_for(r"<.?bob> noted")
    irssi.type("/window goto #lobby")
    irssi.wait_for(r"^\[#lobby\]")

    # Nick changes, each seen on the other's screen.
    bob.type("/nick robert")
    bob.wait_for(r"-- bob is now known as robert")
    irssi.wait_for(r"bob is now known as robert")
    irssi.type("/nick ircy2")
    irssi.wait_for(r"You're now known as ircy2")
    bob.wait_for(rf"-- {IRSSI_NICK} is now known as ircy2")

    # irssi leaves the room with a reason; both screens say so.
    irssi.type("/part #lobby gone fishing")
    irssi.wait_for(r"ircy2 \S+ has left #lobby \[gone fishing\]")
    bob.wait_for(r"-- ircy2 left #lobby \(gone fishing\)")


def test_irssi_and_chat_join_talk_over_tls(
    make_server: Callable[..., RunningServer], tmux: Tmux, tmp_path: Path
) -> None:
    """The same two people, both on TLS to a self-signed certificate, each pinning its
    fingerprint: irssi with -tls_pinned_cert, chat join with --tls-fingerprint."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, ["chatcli.local", "127.0.0.1"])
    running = make_server(tls=True, tls_cert=str(cert), tls_key=str(key))
    pinned = running.server.tls_fingerprint
    assert pinned is not None

    command = [sys.executable, "-m", "chatcli", "join", "--plain", "--alias", "bob"]
    bob = tmux.start("bob", [*command, "--port", str(running.port), "--tls-fingerprint", pinned])
    bob.wait_for(r"-- bob joined #lobby", timeout=JOIN_TIMEOUT)
    bob.wait_for(r"secure connection: TLSv1\.[23], certificate pinned")

    home = tmp_path / "irssi"
    home.mkdir()
    (home / "config").write_text(IRSSI_CONFIG % {"nick": IRSSI_NICK})
    irssi = tmux.start("irssi", ["irssi", f"--home={home}", "-n", IRSSI_NICK])
    irssi.wait_for(r"Irssi v", timeout=JOIN_TIMEOUT)
    irssi.type(f"/connect -tls -tls_pinned_cert {pinned} 127.0.0.1 {running.port}")
    irssi.wait_for(r"Current global users", timeout=JOIN_TIMEOUT)
    irssi.type("/join #lobby")
    bob.wait_for(rf"-- {IRSSI_NICK} joined #lobby", timeout=JOIN_TIMEOUT)
    irssi.type("/window goto #lobby")
    irssi.wait_for(r"^\[#lobby\]")

    irssi.type("hello over TLS, from irssi")
    bob.wait_for(rf"#lobby <{IRSSI_NICK}> hello over TLS, from irssi")
    bob.type("and back, from chat join")
    irssi.wait_for(r"<.?bob> and back, from chat join")
    bob.type(f"/whois {IRSSI_NICK}")
    bob.wait_for(rf"-- {IRSSI_NICK} is connected over TLS")
