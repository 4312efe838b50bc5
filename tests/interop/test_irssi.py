"""irssi, a real IRC client, against a real server: it joins #lobby, talks both ways,
changes its nick and quits, while a raw test client watches from the other side.

irssi runs in a detached tmux session on a socket of its own (``tmux -L``) with its own
temporary ``--home``; the test types with ``send-keys`` and reads the screen with
``capture-pane``. Skipped when ``tmux`` or ``irssi`` is not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatcli.protocol import Message, split_source
from tests.conftest import Client, RunningServer

if shutil.which("tmux") is None or shutil.which("irssi") is None:
    pytest.skip("needs tmux and irssi on PATH", allow_module_level=True)

IRSSI_NICK = "ircy"
JOIN_TIMEOUT = 15.0  #: connect, register and join, from irssi's start
SCREEN_TIMEOUT = 5.0

# Nothing slow: no flood throttling of what irssi sends (it would space commands ~2 s
# apart), no lag pings, no paste detection of typed lines, no user mode to set, no logs.
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
  };
  "fe-text" = {
    paste_detect_time = "0";
  };
};
"""


class Tmux:
    """One detached tmux session on a private server socket."""

    def __init__(self, socket_name: str, session: str) -> None:
        self.socket_name = socket_name
        self.session = session
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

    def start(self, command: list[str]) -> None:
        self.run("new-session", "-d", "-s", self.session, "-x", "200", "-y", "50", *command)

    def type(self, text: str) -> None:
        """Type ``text`` literally, then Enter."""
        self.run("send-keys", "-t", self.session, "-l", text)
        self.run("send-keys", "-t", self.session, "Enter")

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session, check=False)

    def wait_for(self, pattern: str, timeout: float = SCREEN_TIMEOUT) -> str:
        """Poll the screen until ``pattern`` (a regex) is on it; return the screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if re.search(pattern, screen, re.MULTILINE):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on irssi's screen:\n{screen}")
            time.sleep(0.1)

    def kill(self) -> None:
        self.run("kill-server", check=False)


@pytest.fixture
def irssi(server: RunningServer, tmp_path: Path) -> Iterator[Tmux]:
    """irssi connecting as IRSSI_NICK to the test server, in tmux; killed afterwards."""
    home = tmp_path / "irssi"
    home.mkdir()
    (home / "config").write_text(IRSSI_CONFIG % {"nick": IRSSI_NICK})
    tag = uuid.uuid4().hex[:12]
    tmux = Tmux(f"chatcli-irssi-{tag}", "irssi")
    command = ["irssi", f"--home={home}", "-c", "127.0.0.1", "-p", str(server.port)]
    command += ["-n", IRSSI_NICK]
    try:
        tmux.start(command)
        yield tmux
    finally:
        tmux.kill()


def nick_of(msg: Message) -> str:
    return split_source(msg.source or "")[0]


def expect_from(client: Client, nick: str, command: str, *params: str, timeout: float) -> Message:
    """The next ``command`` (with these leading params) whose source is ``nick``."""
    deadline = time.monotonic() + timeout
    while True:
        msg = client.expect(command, *params, timeout=max(0.0, deadline - time.monotonic()))
        if nick_of(msg).lower() == nick.lower():
            return msg


def test_irssi_joins_talks_renames_and_quits(irssi: Tmux, connect: Callable[..., Client]) -> None:
    tester = connect("tester")

    # irssi is joined to #lobby on registration, like everyone.
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
