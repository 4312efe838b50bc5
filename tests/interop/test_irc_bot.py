"""A bot written with jaraco's ``irc`` library (PyPI: irc), against a real server.

The bot is the library's own ``irc.bot.SingleServerIRCBot``: it parses our numerics and
ISUPPORT, tracks who is in its room from NAMES, JOIN, PART and NICK, and answers CTCP
VERSION by itself. It runs its reactor on a thread of its own until the test stops it.
Raw test clients play the people talking to it, so that what they see is checked line by line.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

import irc.bot
import irc.client
import pytest

from chatcli.protocol import Message, split_source
from tests.conftest import Client, RunningServer
from tests.server.hosts import shown_host

BOT = "helperbot"
ROOM = "#bots"
TIMEOUT = 5.0


class NoReconnect(irc.bot.ReconnectStrategy):
    """A test bot stays down: the default strategy would reconnect a minute later."""

    def run(self, bot: irc.bot.SingleServerIRCBot) -> None:
        pass


class HelperBot(irc.bot.SingleServerIRCBot):
    """Joins ROOM, greets newcomers and says goodbye to leavers there, and answers:

    * ``!echo <text>`` in the room: ``<nick>: <text>``;
    * ``!users`` in the room: the people it believes are there, from its own tracking;
    * ``!part`` in the room: leaves it;
    * ``!whoami`` in private: a NOTICE with the asker's full ``nick!user@host``.

    Every event it reacts to is also put on ``seen``, for the test to wait on.
    """

    def __init__(self, port: int) -> None:
        super().__init__([("127.0.0.1", port)], BOT, "chatcli interop bot", recon=NoReconnect())
        self.port = port
        self.seen: queue.Queue[tuple[str, ...]] = queue.Queue()
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="irc-bot")

    # -- reactions -------------------------------------------------------------------------

    def on_welcome(self, conn: irc.client.ServerConnection, event: irc.client.Event) -> None:
        conn.join(ROOM)

    def on_join(self, conn: irc.client.ServerConnection, event: irc.client.Event) -> None:
        nick = event.source.nick
        if nick == conn.get_nickname():
            self.seen.put(("joined", event.target))
        elif event.target == ROOM:
            conn.privmsg(ROOM, f"welcome to {ROOM}, {nick}")
            self.seen.put(("join", nick))

    def on_part(self, conn: irc.client.ServerConnection, event: irc.client.Event) -> None:
        nick = event.source.nick
        if event.target == ROOM and nick != conn.get_nickname():
            reason = event.arguments[0] if event.arguments else ""
            conn.privmsg(ROOM, f"{nick} left ({reason})")
            self.seen.put(("part", nick, reason))

    def on_nick(self, conn: irc.client.ServerConnection, event: irc.client.Event) -> None:
        self.seen.put(("nick", event.source.nick, event.target))

    def on_pubmsg(self, conn: irc.client.ServerConnection, event: irc.client.Event) -> None:
        nick, text = event.source.nick, event.arguments[0]
        if text.startswith("!echo "):
            conn.privmsg(event.target, f"{nick}: {text.removeprefix('!echo ')}")
        elif text == "!users":
            users = sorted(self.channels[event.target].users(), key=str.lower)
            conn.privmsg(event.target, "users: " + " ".join(users))
        elif text == "!part":
            # irc 20.5's part() sends its message as a middle parameter, which ends at the
            # first space (RFC 1459 2.3.1); a reason with spaces needs its own ':'.
            conn.part(event.target, f":asked to by {nick}")

    def on_privmsg(self, conn: irc.client.ServerConnection, event: irc.client.Event) -> None:
        if event.arguments[0] == "!whoami":
            conn.notice(event.source.nick, f"you are {event.source}")

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and run the reactor on the bot's thread."""
        self._thread.start()

    def _run(self) -> None:
        try:
            self.connect("127.0.0.1", self.port, BOT, ircname="chatcli interop bot")
            while not self._stop.is_set() and self.connection.is_connected():
                self.reactor.process_once(timeout=0.05)
        except BaseException as exc:  # handed to the test by wait_for() and stop()
            self.failure = exc
        finally:
            self.connection.disconnect("bot stopped")  # QUIT, then close the socket

    def stop(self) -> None:
        """Quit, close the socket and join the thread; idempotent. Re-raises its failure."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(TIMEOUT)
            assert not self._thread.is_alive(), "the bot's thread did not stop"
        if self.failure is not None:
            raise AssertionError("the bot failed") from self.failure

    def wait_for(self, *event: str, timeout: float = TIMEOUT) -> None:
        """Wait until the bot has seen ``event``; earlier, other events are dropped."""
        deadline = time.monotonic() + timeout
        while True:
            if self.failure is not None:
                raise AssertionError("the bot failed") from self.failure
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the bot never saw {event}")
            try:
                if self.seen.get(timeout=min(left, 0.1)) == event:
                    return
            except queue.Empty:
                pass


@pytest.fixture
def bot(server: RunningServer) -> Iterator[HelperBot]:
    """The bot, connected and in ROOM; stopped (and its thread joined) afterwards."""
    helper = HelperBot(server.port)
    helper.start()
    try:
        helper.wait_for("joined", ROOM)
        yield helper
    finally:
        helper.stop()


def said_by(client: Client, nick: str, command: str, target: str) -> Message:
    """The next ``command`` whose first parameter is ``target`` and whose source is ``nick``."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        msg = client.expect(command, target, timeout=max(0.0, deadline - time.monotonic()))
        if split_source(msg.source or "")[0] == nick:
            return msg


def all_see_bot_say(text: str, *clients: Client) -> None:
    """The next thing the bot says in ROOM, as each of ``clients`` receives it, is ``text``."""
    for client in clients:
        assert said_by(client, BOT, "PRIVMSG", ROOM).params[1] == text


def test_bot_greets_answers_tracks_and_leaves(
    bot: HelperBot, server: RunningServer, connect: Callable[..., Client]
) -> None:
    alice, carol = connect("alice"), connect("carol")

    # The bot made the room, so it runs it; people who join are greeted.
    alice.send(f"JOIN {ROOM}")
    names = alice.expect("353", "alice", "=", ROOM)
    assert sorted(names.params[3].split()) == ["@" + BOT, "alice"]
    all_see_bot_say(f"welcome to {ROOM}, alice", alice)
    carol.send(f"JOIN {ROOM}")
    all_see_bot_say(f"welcome to {ROOM}, carol", alice, carol)

    # It answers commands in the room, UTF-8 included, and everyone there sees the answer.
    alice.send(f"PRIVMSG {ROOM} :!echo héllo wörld ☃")
    all_see_bot_say("alice: héllo wörld ☃", alice, carol)

    # Its idea of who is there follows NAMES, JOIN and NICK.
    carol.send(f"PRIVMSG {ROOM} :!users")
    all_see_bot_say(f"users: alice carol {BOT}", alice, carol)
    alice.send("NICK alicia")
    bot.wait_for("nick", "alice", "alicia")
    carol.send(f"PRIVMSG {ROOM} :!users")
    all_see_bot_say(f"users: alicia carol {BOT}", alice, carol)

    # It sees people leave, and says so to those who stay.
    carol.send(f"PART {ROOM} :lunch time")
    bot.wait_for("part", "carol", "lunch time")
    all_see_bot_say("carol left (lunch time)", alice)

    # In private: its own command (answered with a NOTICE), and the library's CTCP VERSION.
    alice.send(f"PRIVMSG {BOT} :!whoami")
    whoami = said_by(alice, BOT, "NOTICE", "alicia").params[1]
    assert whoami == f"you are alicia!~alice@{shown_host(server)}"
    alice.send(f"PRIVMSG {BOT} :\x01VERSION\x01")
    version = said_by(alice, BOT, "NOTICE", "alicia").params[1]
    assert version.startswith("\x01VERSION Python irc.bot (") and version.endswith(")\x01")

    # Asked to, it leaves the room with a reason; when stopped, it quits the server.
    alice.send(f"MONITOR + {BOT}")  # to see it go, once it shares no room with anyone
    alice.expect("730")
    alice.send(f"PRIVMSG {ROOM} :!part")
    assert said_by(alice, BOT, "PART", ROOM).params[1:] == ("asked to by alicia",)
    bot.stop()
    assert alice.expect("731").params[1] == BOT
