"""``chat join``: the interactive client.

A reader thread receives and renders; the main thread reads what the user types. With a
terminal, input comes from prompt_toolkit inside ``patch_stdout(raw=True)``, so incoming
lines are printed above the prompt and never clobber what is being typed. Without one
(a pipe or file), each input line is sent and the client quits at end of input.

When the connection drops, the reader thread reconnects (exponential backoff with jitter,
capped; on a terminal until the user quits, for piped input a few times), logs in again
and rejoins the rooms; rejoining a room fetches what was missed there (see
:mod:`chatcli.client.history`). On a terminal, what is typed meanwhile is queued, shown as
pending, and sent in order once reconnected. Quitting never reconnects, and neither does
a KILL by an operator or a server whose TLS certificate is refused.

At connection, an alias that is taken is replaced by ``alias_`` (``alias__``, ...), and
on a terminal a wrong account password is asked again. At the prompt, Ctrl-C clears the
line (twice on an empty line: quit), and a paste of several lines sends each as a message,
or, where the server takes IRCv3 draft/multiline, all as one (:func:`multiline_paste`).

Over TLS, the prompt starts with ``[TLS]`` (``[TLS unverified]`` with ``--insecure``), and
a line after connecting says how the certificate was checked.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from rich.console import Console
from rich.text import Text

from chatcli import __version__
from chatcli.client.buffers import REPLY_TAG
from chatcli.client.formatting import clean
from chatcli.client.history import MULTILINE, Timeline, chat_key, message_lines
from chatcli.client.input import (
    HELP,
    Action,
    InputError,
    Local,
    Multiline,
    multiline_batches,
    parse_input,
)
from chatcli.client.render import INDENT, STYLE_ERROR, STYLE_SYSTEM, ctcp, gist, note, render
from chatcli.client.session import (
    ClientSession,
    WrongAccountPassword,
    says_registered,
)
from chatcli.client.trust import Verified
from chatcli.errors import AliasRejected, ChatError, ConnectError, ExitStatus, Untrusted
from chatcli.protocol import Message, caps, is_channel, split_source
from chatcli.protocol import numerics as n

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

    from chatcli.client.profiles import ClientConfig

#: How many other aliases (alias_, alias__, ...) ``chat join`` tries when its alias is taken.
ALIAS_TRIES = 5
#: How many times in all an account password is asked for on a terminal.
PASSWORD_TRIES = 3
#: How many typed lines are kept, at most, while reconnecting.
QUEUE_LIMIT = 100
#: A paste of more lines than this is sent only once the user says yes.
PASTE_ASK = 5
#: Seconds within which a second Ctrl-C on an empty line quits.
QUIT_WINDOW = 2.0
#: Messages kept (line mode) to quote before a reply to one of them.
RECENT = 500


def ctcp_answer(msg: Message, me: str) -> Message | None:
    """The NOTICE that answers a CTCP VERSION, PING, TIME or CLIENTINFO sent to ``me``."""
    if msg.command != "PRIVMSG" or len(msg.params) < 2 or msg.params[0].lower() != me.lower():
        return None
    request = ctcp(msg.params[1])
    if request is None or not msg.source:
        return None
    verb, arg = request
    answers = {
        "VERSION": f"chatcli {__version__}",
        "PING": arg,
        "TIME": datetime.now().astimezone().strftime("%a %b %d %H:%M:%S %Y %z"),
        "CLIENTINFO": "ACTION CLIENTINFO PING TIME VERSION",
    }
    if verb not in answers:
        return None
    reply = f"\x01{verb} {answers[verb]}\x01" if answers[verb] else f"\x01{verb}\x01"
    return Message("NOTICE", (split_source(msg.source)[0], reply))


@dataclass(frozen=True)
class Backoff:
    """How long to wait before each attempt to reconnect: doubling from ``first`` up to
    ``cap`` seconds, each between half and all of that at random (so that clients cut off
    together do not all come back at once), ``attempts`` times at most (None: forever)."""

    first: float = 1.0
    cap: float = 60.0
    attempts: int | None = None

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        attempts = itertools.count() if self.attempts is None else range(self.attempts)
        for attempt in attempts:
            yield min(self.cap, self.first * 2 ** min(attempt, 32)) * (0.5 + rand() / 2)


#: Takes what one message from the server brought to show, in order (from the reader).
Deliver = Callable[[list[Message]], None]
#: Reconnecting for piped input: about 10 seconds at most.
SCRIPT_BACKOFF = Backoff(first=1.0, cap=4.0, attempts=3)


class ChatView:
    """What the client knows of its own state: alias, rooms, the current room."""

    def __init__(
        self, session: ClientSession, room: str | None, config: ClientConfig | None = None
    ) -> None:
        self.session = session
        self.config = config  #: the client config: its ignore list (None: nobody ignored)
        self.last_direct: str | None = None  #: who last sent us a direct message (/r)
        self.nick = session.nick
        self.rooms: list[str] = []
        self.keys: dict[str, str] = {}  #: the key each keyed room was joined with, by name
        self.room = room  #: where plain text goes
        self.lock = threading.Lock()
        self.wanted: str | None = None  #: a room asked for: talk there once joined
        self._named: set[str] = set()  # rooms with names listed since the last end of NAMES
        #: Set once the server has answered a PING sent after registration, so that the
        #: default room and any --room have been joined (the server handles lines in order).
        self.ready = threading.Event()
        self.ready_token = f"ready-{id(self)}"
        #: What was shown; history requests (under ``lock``).
        self.timeline = Timeline(isupport=session.isupport)
        self.backoff = Backoff()
        self.stopping = threading.Event()  #: the user quit: do not reconnect
        #: Set by /reconnect: reconnect now, without waiting out the backoff.
        self.wake = threading.Event()
        self.asked = False  #: the connection was dropped on purpose (/reconnect)
        self.killed = False  #: an operator put us out (KILL): do not reconnect either
        self.marker = ""  #: what the prompt starts with: :func:`tls_marker`
        #: Under ``queue_lock``: whether the connection is down (reconnecting), and what
        #: was typed meanwhile, to be sent in order once reconnected.
        self.queue_lock = threading.Lock()
        self.down = False
        self.queue: deque[Action] = deque()
        #: Under ``lock``, by conversation (a folded room or alias): the msgid of the last
        #: message there, and of our own last (for /react and /delete).
        self.last_msgid: dict[str, str] = {}
        self.own_msgid: dict[str, str] = {}
        #: The latest messages shown (their sender and text), by msgid, for the quote
        #: before a reply to one of them (line mode).
        self.recent: dict[str, tuple[str, str]] = {}

    def quoted(self, msg: Message) -> Text | None:
        """What a reply answers (``↪ bob: first words…``), dimmed, if it was shown; and
        ``msg`` kept to be quoted in its turn. Line mode: the full-screen client shows
        its own."""
        if msg.command not in ("PRIVMSG", "NOTICE") or len(msg.params) < 2:
            return None
        nick = split_source(msg.source or "")[0]
        msgid = msg.tags.get("msgid")
        if msgid and "!" in (msg.source or ""):
            if len(self.recent) >= RECENT:
                del self.recent[next(iter(self.recent))]
            self.recent[msgid] = (nick, "\n".join(message_lines(msg)))
        answered = msg.tags.get(REPLY_TAG)
        if not answered:
            return None
        if answered not in self.recent:
            return Text(f"{INDENT}↪ a message not shown", style="dim")
        who, text = self.recent[answered]
        return Text(f"{INDENT}↪ {clean(who)}: {gist(text)}", style="dim")

    def notes(self, msg: Message) -> Text | None:
        """A line to show for what the server left unsaid: a NAMES with nobody in it."""
        if msg.command == n.RPL_NAMREPLY and len(msg.params) > 2:
            self._named.add(msg.params[2].lower())
        elif msg.command == n.RPL_ENDOFNAMES and len(msg.params) > 1:
            room = msg.params[1]
            if room != "*" and room.lower() not in self._named:
                return note(f"nobody is in {room}")
            self._named.discard(room.lower())
        return None

    def ignored(self, msg: Message) -> bool:
        """Whether ``msg`` is a message or notice from someone on the ignore list."""
        if self.config is None or msg.command not in ("PRIVMSG", "NOTICE") or not msg.source:
            return False
        return "!" in msg.source and self.config.ignores.matches(msg.source)

    def _said(self, msg: Message, mine: bool) -> None:
        """Keep the msgid of a live message (or multiline batch), ours or anyone's."""
        msgid = msg.tags.get("msgid")
        if not msgid or "batch" in msg.tags or "!" not in (msg.source or ""):
            return
        key = chat_key(Message("PRIVMSG", msg.params[-2:], msg.source), self.nick)
        if len(self.last_msgid) > 1000:
            self.last_msgid.clear()
        self.last_msgid[key] = msgid
        if mine:
            self.own_msgid[key] = msgid

    def observe(self, msg: Message) -> None:
        """Follow our own joins, parts and nick changes, and who wrote to us last."""
        nick = split_source(msg.source or "")[0]
        with self.lock:
            mine = nick.lower() == self.nick.lower()
            if msg.command in ("PRIVMSG", "NOTICE") and len(msg.params) == 2:
                self._said(msg, mine)
            elif msg.command == "BATCH" and msg.params[1:2] == (MULTILINE,) and len(msg.params) > 2:
                self._said(Message("PRIVMSG", (msg.params[2], ""), msg.source, msg.tags), mine)
            elif msg.command == "REDACT" and len(msg.params) > 1:
                for known in (self.last_msgid, self.own_msgid):
                    for key in [k for k, v in known.items() if v == msg.params[1]]:
                        del known[key]
            if (
                msg.command == "PRIVMSG"
                and len(msg.params) == 2
                and msg.params[0].lower() == self.nick.lower()
                and not mine
                and "!" in (msg.source or "")
                and "batch" not in msg.tags
                and not self.ignored(msg)
            ):
                self.last_direct = nick
            elif msg.command == "NICK" and mine and msg.params:
                self.nick = msg.params[0]
            elif msg.command == "JOIN" and mine and msg.params:
                joined = msg.params[0]
                if joined not in self.rooms:
                    self.rooms.append(joined)
                if self.wanted is not None and self.wanted.lower() == joined.lower():
                    self.room, self.wanted = joined, None
                elif self.room is None or self.room not in self.rooms:
                    self.room = joined
            elif msg.command == "RENAME" and len(msg.params) >= 2 and "batch" not in msg.tags:
                self._renamed(msg.params[0], msg.params[1])
            elif msg.command == "KILL" and msg.params[:1] == (self.nick,):
                self.killed = True
            elif msg.command == "PONG" and msg.params[-1:] == (self.ready_token,):
                self.ready.set()
            elif msg.command in ("PART", "KICK") and msg.params:
                gone = (
                    mine
                    if msg.command == "PART"
                    else (len(msg.params) > 1 and msg.params[1].lower() == self.nick.lower())
                )
                if gone and msg.params[0] in self.rooms:
                    self.rooms.remove(msg.params[0])
                    if self.room == msg.params[0]:
                        self.room = self.rooms[-1] if self.rooms else None

    def _renamed(self, old: str, new: str) -> None:
        """The room ``old`` is now named ``new`` (IRCv3 draft/channel-rename): whatever
        was kept by its name (our rooms, where text goes, its key, its last messages, what
        was shown there) is kept by the new one. A new name that is no room's, or that of
        another room we are in, changes nothing. Caller holds :attr:`lock`."""
        was, now = old.lower(), new.lower()
        if not is_channel(new) or (now != was and any(r.lower() == now for r in self.rooms)):
            return
        self.rooms = [new if room.lower() == was else room for room in self.rooms]
        if self.room is not None and self.room.lower() == was:
            self.room = new
        if self.wanted is not None and self.wanted.lower() == was:
            self.wanted = new
        if was in self.keys:
            self.keys[now] = self.keys.pop(was)
        for known in (self.last_msgid, self.own_msgid):
            if was in known:
                known[now] = known.pop(was)
        if was in self._named:
            self._named.discard(was)
            self._named.add(now)
        self.timeline.renamed(old, new)

    def prompt(self) -> str:
        with self.lock:
            return f"{self.marker}{self.room or '(no room)'} {self.nick}> "


def tls_marker(session: ClientSession) -> str:
    """What the prompt starts with: whether the connection is TLS, and checked."""
    info = session.tls_info
    if info is None:
        return ""
    return "[TLS unverified] " if info.verified is Verified.UNVERIFIED else "[TLS] "


def tls_note(session: ClientSession) -> Text | None:
    """The line that says how the connection is secured; None without TLS."""
    info = session.tls_info
    if info is None:
        return None
    if info.verified is Verified.UNVERIFIED:
        return Text(
            f"{info.version} WITHOUT checking the certificate (--insecure): encrypted, but "
            "whoever is in the way could be reading it",
            style=STYLE_ERROR,
        )
    how = info.verified.value
    if info.verified is Verified.PINNED:
        how = f"certificate pinned (SHA-256 {info.fingerprint})"
    line = note(f"secure connection: {info.version}, {how}")
    line.overflow = "fold"  # the fingerprint, whole, however narrow the terminal
    return line


def help_text() -> Text:
    text = Text("Commands (plain text goes to the current room):\n", style=STYLE_SYSTEM)
    for usage, what in HELP:
        text.append(f"  {usage:<24}", style="bold").append(f"{what}\n")
    return text


def ask_password_again(alias: str) -> str | None:
    """Ask the terminal for the account password of ``alias`` again."""
    import getpass

    return getpass.getpass(f"{alias} is a registered account; password (empty: don't log in): ")


def connect_asking(
    session: ClientSession, ask_password: Callable[[str], str | None] | None
) -> list[Message]:
    """Connect, asking ``ask_password`` again after a wrong account password (if given),
    :data:`PASSWORD_TRIES` times in all. Same return value and errors as
    :meth:`ClientSession.connect`."""
    try:
        return session.connect()
    except WrongAccountPassword as exc:
        if ask_password is None:
            raise
        refusal = exc
    for _ in range(PASSWORD_TRIES - 1):
        print(f"chat: {refusal}", file=sys.stderr)
        try:
            return session.retry_login(ask_password(session.nick))
        except WrongAccountPassword as exc:
            refusal = exc
    raise refusal


def _start_reader(
    session: ClientSession,
    view: ChatView,
    show: Callable[[Text], None],
    on_end: Callable[[], None],
    deliver: Deliver | None = None,
) -> threading.Thread:
    """Start the thread that receives, hands what is to be shown to ``deliver`` (default:
    rendered as lines, to ``show``), and reconnects."""

    def shown(messages: list[Message]) -> None:
        for msg in messages:
            for line in (view.quoted(msg), render(msg, view.nick), view.notes(msg)):
                if line is not None:
                    show(line)

    def read() -> None:
        while True:
            told = _receive(session, view, deliver or shown)
            if session.quitting or view.stopping.is_set():
                break
            if view.killed:
                show(note("not reconnecting: a server operator disconnected you"))
                break
            if not told and not view.asked:
                show(Text("connection to the server lost", style=STYLE_ERROR))
            view.asked = False
            with view.queue_lock:
                view.down = True
            if not _reconnect(session, view, show, deliver):
                break
        _unsent(view, show)
        on_end()

    thread = threading.Thread(target=read, name="reader", daemon=True)
    thread.start()
    return thread


def _unsent(view: ChatView, show: Callable[[Text], None]) -> None:
    """The connection is gone for good: say which lines typed meanwhile were never sent,
    so that they can be copied rather than silently lost."""
    with view.queue_lock:
        actions, view.queue = list(view.queue), deque()
    messages = [msg for action in actions for msg in action.messages]
    if messages:
        show(Text("not sent, typed while the connection was down:", style=STYLE_ERROR))
    for msg in messages:
        chat = msg.command in ("PRIVMSG", "NOTICE") and len(msg.params) == 2
        show(Text(f"  {msg.params[0]}: {msg.params[1]}" if chat else f"  {msg.to_line()}"))


def _receive(session: ClientSession, view: ChatView, deliver: Deliver) -> bool:
    """Hand what arrives to ``deliver``, in the order to show it, until the connection
    ends; True if the server said why (ERROR). Messages from the ignored are dropped.
    Each call has what one message brought: a whole ``/history`` answer is one."""
    told = False
    while (msg := session.recv()) is not None:
        view.observe(msg)
        answer = ctcp_answer(msg, view.nick) if "batch" not in msg.tags else None
        if answer is not None:
            with contextlib.suppress(ConnectError):
                session.send(answer)
        told = told or msg.command == "ERROR"
        if msg.command == "ERROR" and session.quitting:
            continue  # the expected goodbye
        with view.lock:
            shown, requests = view.timeline.feed(msg, view.nick)
        with contextlib.suppress(ConnectError):
            for request in requests:
                session.send(request)
        if shown := [each for each in shown if not view.ignored(each)]:
            deliver(shown)
    return told


def _reconnect(
    session: ClientSession,
    view: ChatView,
    show: Callable[[Text], None],
    deliver: Deliver | None = None,
) -> bool:
    """Connect again, log in, rejoin the rooms and send what was queued meanwhile; False if
    the user quit meanwhile or every attempt failed (with a bounded backoff)."""
    bound = view.backoff.attempts
    for attempt, delay in enumerate(view.backoff.delays(), 1):
        of = "" if bound is None else f" of {bound}"
        show(note(f"reconnecting in {delay:.1f}s (attempt {attempt}{of})"))
        view.wake.wait(delay)
        view.wake.clear()
        if view.stopping.is_set():
            return False
        session.nick = view.nick
        try:
            burst = session.reconnect()
        except Untrusted as exc:  # another certificate: never asked about, never accepted
            show(Text(str(exc), style=STYLE_ERROR))
            return False
        except (ConnectError, AliasRejected) as exc:  # down, or our old self still holds the alias
            show(note(f"not yet: {exc}"))
            continue
        except ChatError as exc:  # a wrong password: trying again will not help
            show(Text(str(exc), style=STYLE_ERROR))
            return False
        if view.stopping.is_set():  # the user quit while we were connecting
            session.send_quit()
            return True
        _show_burst(burst, view, show, logged_in=session.account is not None, deliver=deliver)
        show(note("reconnected"))
        with view.lock:
            rooms = list(view.rooms)
        with contextlib.suppress(ConnectError):
            subscribe(session)
            for room in rooms:  # the default room is joined again already (autojoin)
                key = view.keys.get(room.lower())
                session.send(Message("JOIN", (room, key) if key else (room,)))
        _flush(session, view, show)
        return True
    show(Text("could not reconnect: giving up", style=STYLE_ERROR))
    return False


def _flush(session: ClientSession, view: ChatView, show: Callable[[Text], None]) -> None:
    """Send, in order, what was queued while the connection was down; the connection is up
    again once all is sent (if it drops meanwhile, the rest stays queued)."""
    with view.queue_lock:
        while view.queue:
            try:
                _perform(session, view, view.queue[0], show)
            except ConnectError:
                return
            view.queue.popleft()
        view.down = False


def _perform(
    session: ClientSession,
    view: ChatView,
    action: Action,
    show: Callable[[Text], None],
    *,
    switched_note: bool = True,
) -> None:
    """Do what was typed. ``switched_note``: a /join of a room we are in says so (not for
    the rooms joined on starting, which the server may have put us in already)."""
    already = None
    if action.room is not None:  # (before the JOIN goes: its answer may come at once)
        with view.lock:
            already = next((r for r in view.rooms if r.lower() == action.room.lower()), None)
            if already is None:
                view.wanted = action.room  # switch once the server says we are in
            else:
                view.room = already
    for msg in action.messages:
        if msg.command == "JOIN" and len(msg.params) > 1:  # a key: needed again to rejoin
            with view.lock:
                view.keys[msg.params[0].lower()] = msg.params[1]
        session.send(msg)
        if msg.command == "PRIVMSG" and "echo-message" not in session.caps:
            line = render(Message(msg.command, msg.params, f"{view.nick}!me@local"), view.nick)
            if line is not None:
                show(line)
    if already is not None and switched_note:
        show(note(f"now talking in {already}"))
    if action.local is not None and action.local in _LOCAL:
        _LOCAL[action.local](session, view, action, show)
    if action.local is Local.HISTORY:
        room = view.room
        if room is None:
            show(Text("you are in no room", style=STYLE_ERROR))
            return
        with view.lock:  # (the answer comes headed "earlier in <room>:", or says none is)
            request = view.timeline.older(room, action.count)
        session.send(request)


def _reply(session: ClientSession, view: ChatView, action: Action, show: Show) -> None:
    """``/r text``: to whoever last sent us a direct message."""
    with view.lock:
        target = view.last_direct
    if target is None:
        show(Text("nobody has sent you a direct message yet", style=STYLE_ERROR))
        return
    _perform(session, view, parse_input(f"/msg {target} {action.text}", None), show)


def _ignore(session: ClientSession, view: ChatView, action: Action, show: Show) -> None:
    """``/ignore [mask]`` and ``/unignore mask``: the ignore list, kept in the config file."""
    config = view.config
    if config is None:
        show(Text("there is no client config to keep an ignore list in", style=STYLE_ERROR))
        return
    if action.local is Local.IGNORE and not action.target:
        masks = list(config.ignores)
        show(note("ignoring: " + ", ".join(masks) if masks else "ignoring nobody"))
        return
    try:
        if action.local is Local.IGNORE:
            changed = config.ignores.add(action.target)
            done = f"ignoring {action.target}" if changed else f"already ignoring {action.target}"
        else:
            changed = config.ignores.remove(action.target)
            done = (
                f"no longer ignoring {action.target}"
                if changed
                else (f"{action.target} was not ignored")
            )
        if changed:
            config.save_ignores()
    except (ValueError, ChatError) as exc:
        show(Text(str(exc), style=STYLE_ERROR))
        return
    show(note(done))


def _reconnect_now(session: ClientSession, view: ChatView, action: Action, show: Show) -> None:
    """``/reconnect``: drop the connection; the reader connects again at once."""
    show(note("reconnecting as asked"))
    view.asked = True
    view.wake.set()
    session.close()


def _talk_to(session: ClientSession, view: ChatView, action: Action, show: Show) -> None:
    """``/query alias``: plain text goes to that person from now on."""
    with view.lock:
        view.room = action.target
    show(note(f"now talking to {action.target}"))


def _close(session: ClientSession, view: ChatView, action: Action, show: Show) -> None:
    """``/close``: leave the room (or stop talking to the person) talked to."""
    target = action.target or view.room
    if target is None:
        show(Text("nothing to close", style=STYLE_ERROR))
    elif is_channel(target):
        session.send(Message("PART", (target,)))
    else:
        with view.lock:
            if view.room is not None and view.room.lower() == target.lower():
                view.room = view.rooms[-1] if view.rooms else None
        show(note(f"no longer talking to {target}"))


def _clear(session: ClientSession, view: ChatView, action: Action, show: Show) -> None:
    show(note("/clear clears the full-screen client's buffer; here, your terminal's"))


def subscribe(session: ClientSession) -> None:
    """Ask for people's display names and colours (IRCv3 draft/metadata-2), if offered."""
    if caps.METADATA in session.caps:
        session.send(Message("METADATA", ("*", "SUB", "display-name", "color")))


def _last(view: ChatView, table: dict[str, str], show: Show) -> tuple[str, str] | None:
    """The current conversation and a msgid of ``table`` for it; None (said) if none."""
    with view.lock:
        room = view.room
        msgid = table.get(room.lower()) if room is not None else None
    if room is None:
        show(Text("you are in no conversation", style=STYLE_ERROR))
        return None
    if msgid is None:
        mine = table is view.own_msgid
        show(
            Text(
                f"no {'message of yours' if mine else 'message'} in {room} to act on yet",
                style=STYLE_ERROR,
            )
        )
        return None
    return room, msgid


def _delete(session: ClientSession, view: ChatView, action: Action, show: Show) -> None:
    """``/delete``: take back our last message in the current conversation (REDACT)."""
    if caps.REDACTION not in session.caps:
        show(Text("this server cannot delete messages", style=STYLE_ERROR))
        return
    found = _last(view, view.own_msgid, show)
    if found is not None:
        session.send(Message("REDACT", found))


def _react(session: ClientSession, view: ChatView, action: Action, show: Show) -> None:
    """``/react <text>``: react to the last message in the current conversation."""
    if caps.MESSAGE_TAGS not in session.caps:
        show(Text("this server cannot carry reactions", style=STYLE_ERROR))
        return
    found = _last(view, view.last_msgid, show)
    if found is not None:
        session.send(reaction(found[0], found[1], action.text))


def reaction(target: str, msgid: str, text: str) -> Message:
    """The TAGMSG that reacts with ``text`` to the message ``msgid`` in ``target``."""
    return Message("TAGMSG", (target,), tags={caps.REACT: text, caps.REPLY: msgid})


def _metadata(session: ClientSession, view: ChatView, action: Action, show: Show) -> None:
    """``/displayname`` and ``/color``: set (or unset) our own metadata key."""
    if caps.METADATA not in session.caps:
        show(Text("this server keeps no display names or colours", style=STYLE_ERROR))
        return
    value = (action.text,) if action.text else ()
    session.send(Message("METADATA", ("*", "SET", action.target, *value)))
    what = action.target.replace("-", " ")
    show(note(f"your {what} is now {action.text}" if action.text else f"your {what} is unset"))


Show = Callable[[Text], None]
#: What the local commands do, in line mode (the full-screen client has its own for some).
_LOCAL: dict[Local, Callable[[ClientSession, ChatView, Action, Show], None]] = {
    Local.HELP: lambda session, view, action, show: show(help_text()),
    Local.REPLY: _reply,
    Local.IGNORE: _ignore,
    Local.UNIGNORE: _ignore,
    Local.RECONNECT: _reconnect_now,
    Local.QUERY: _talk_to,
    Local.CLOSE: _close,
    Local.CLEAR: _clear,
    Local.DELETE: _delete,
    Local.REACT: _react,
    Local.METADATA: _metadata,
}


def _show_burst(
    burst: Iterable[Message],
    view: ChatView,
    show: Callable[[Text], None],
    logged_in: bool = False,
    deliver: Deliver | None = None,
) -> None:
    """What registration brought, shown (to ``deliver`` if given); but, once ``logged_in``,
    NickServ's word that the alias is a registered account to log in to, which the login
    has answered already."""
    shown = []
    for msg in burst:
        view.observe(msg)
        if not (logged_in and says_registered(msg)):
            shown.append(msg)
    if deliver is not None:
        deliver(shown)
        return
    for msg in shown:
        line = render(msg, view.nick)
        if line is not None:
            show(line)


def run_lines(
    session: ClientSession,
    view: ChatView,
    room: str | None,
    burst: list[Message],
    console: Console,
    lines: Iterable[str],
    rooms: Sequence[str] = (),
) -> ExitStatus:
    typed = (line.rstrip("\r\n") for line in lines)
    # A script would rather fail than wait minutes with its lines going nowhere: a few
    # quick attempts, then the exit status says what happened.
    view.backoff = SCRIPT_BACKOFF
    return chat_loop(
        session, view, room, burst, console.print, lambda: next(typed, None), rooms=rooms
    )


_batch_refs = itertools.count(1)


def multiline_limits(session: ClientSession) -> Multiline | None:
    """The server's limits on a multiline message, if it takes them (IRCv3 draft/multiline)."""
    if caps.MULTILINE not in session.caps or caps.BATCH not in session.caps:
        return None
    return Multiline.parse(session.cap_values.get(caps.MULTILINE, ""))


def multiline_paste(
    session: ClientSession,
    target: str | None,
    lines: list[str],
    tags: dict[str, str] | None = None,
) -> list[Action] | None:
    """A paste of ``lines`` to ``target`` as multiline messages: one, or as few as the
    server's limits allow; None where the server takes none (or there is no target)."""
    limits = multiline_limits(session)
    if limits is None or target is None:
        return None
    batches = multiline_batches(target, lines, limits, lambda: f"ml{next(_batch_refs)}", tags)
    return [Action(messages=batch) for batch in batches]


def paste_lines(data: str) -> list[str]:
    """What a paste holds, line by line: its line breaks (``\r\n``, ``\r`` or ``\n``)
    split it, and the one after its last line is dropped."""
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    return text.removesuffix("\n").split("\n")


def run_line_editor(
    session: ClientSession,
    view: ChatView,
    room: str | None,
    burst: list[Message],
    console: Console | None = None,
    terminal_input: Input | None = None,
    terminal_output: Output | None = None,
    rooms: Sequence[str] = (),
) -> ExitStatus:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
    from prompt_toolkit.keys import Keys
    from prompt_toolkit.patch_stdout import patch_stdout

    pasted: deque[str | Typed] = deque()  # lines (or messages) of a paste, still to be sent
    raw: list[str] = []  # the last paste's lines, blank ones too
    interrupted = [float("-inf")]  # when Ctrl-C was last pressed on an empty line
    paste = "\0paste"  # what the prompt returns after a paste of several lines
    bindings = KeyBindings()

    @bindings.add("c-c")
    def _clear_or_quit(event: KeyPressEvent) -> None:
        """Ctrl-C clears the line; on an empty one, a second within QUIT_WINDOW quits."""
        if event.current_buffer.text:
            event.current_buffer.reset()
        elif time.monotonic() - interrupted[0] < QUIT_WINDOW:
            event.app.exit(exception=KeyboardInterrupt())
        else:
            interrupted[0] = time.monotonic()
            show(note("press Ctrl-C again to quit (or Ctrl-D, or /quit)"))

    @bindings.add(Keys.BracketedPaste)
    def _paste(event: KeyPressEvent) -> None:
        """One line pasted is typed (without its line break); more are sent, one a message."""
        buffer = event.current_buffer
        lines = paste_lines(event.data)
        if len(lines) == 1:
            buffer.insert_text(lines[0])
            return
        buffer.insert_text("\n".join(lines))
        raw[:] = paste_lines(buffer.text)
        pasted.extend(line for line in raw if line.strip())
        buffer.reset()
        event.app.exit(result=paste)

    # erase_when_done: the typed line goes; the server's echo shows it once, as sent.
    prompt: PromptSession[str] = PromptSession(
        erase_when_done=True,
        key_bindings=bindings,
        input=terminal_input,
        output=terminal_output,
    )

    def confirm(question: str) -> bool:
        asking: PromptSession[str] = PromptSession(input=terminal_input, output=terminal_output)
        try:
            return asking.prompt(question).strip().lower() in ("y", "yes")
        except (EOFError, KeyboardInterrupt):
            return False

    def read_line() -> str | Typed | None:
        while not pasted:
            try:
                typed = prompt.prompt(view.prompt)
            except EOFError:
                return None
            if typed != paste:
                return typed
            with view.lock:
                room = view.room
            actions = multiline_paste(session, room, raw)
            if actions is not None:
                pasted.clear()
                count = len([line for line in raw if line.strip()])
                if len(actions) > 1 and not confirm(
                    f"the server takes fewer lines in one message: send the {count} lines "
                    f"pasted as {len(actions)} messages? (y/N) "
                ):
                    show(note("paste not sent"))
                    continue
                pasted.extend(Typed(f"(paste of {count} lines)", room, a) for a in actions)
                continue
            if len(pasted) > PASTE_ASK and not confirm(
                f"send the {len(pasted)} lines pasted, one a message? (y/N) "
            ):
                pasted.clear()
                show(note("paste not sent"))
        line = pasted.popleft()  # pasted text is text: a "/" in it runs no command
        if isinstance(line, Typed):
            return line
        return "/" + line if line.startswith("/") else line

    def stop_prompt() -> None:
        app = prompt.app
        if app.is_running and app.loop is not None:
            app.loop.call_soon_threadsafe(lambda: app.exit(exception=EOFError()))

    with patch_stdout(raw=True) if console is None else contextlib.nullcontext():
        if console is None:
            console = Console(file=sys.stdout, highlight=False)
        show = console.print
        show(Text("Type /help for commands, /quit to leave.", style=STYLE_SYSTEM))
        return chat_loop(
            session, view, room, burst, show, read_line, stop_prompt, batch=False, rooms=rooms
        )


class Typed(NamedTuple):
    """A line typed in a given place: a room, a person, or none (the server's buffer); or,
    with ``action``, what to do there instead of what the line says (``line`` is then
    what to show if it must wait for a reconnection)."""

    line: str
    room: str | None
    action: Action | None = None


def chat_loop(
    session: ClientSession,
    view: ChatView,
    room: str | None,
    burst: list[Message],
    show: Callable[[Text], None],
    read_line: Callable[[], str | Typed | None],
    on_lost: Callable[[], None] = lambda: None,
    *,
    batch: bool = True,
    rooms: Sequence[str] = (),
    deliver: Deliver | None = None,
) -> ExitStatus:
    """Show what arrives and send what is typed until the user quits (or input ends, or
    the connection does).

    ``read_line`` gives what was typed: a line for the current room, or a :class:`Typed`
    that says where it was typed. ``rooms`` are joined first, then ``room``, where plain
    text goes. ``deliver``, if given, gets each message to show instead of ``show``.

    With ``batch`` (piped input), a line that cannot be sent is an error (the exit status
    says so); without, a line typed while the connection is down is queued (up to
    :data:`QUEUE_LIMIT`) and sent once reconnected."""
    lost = threading.Event()

    def end() -> None:
        lost.set()
        on_lost()

    _show_burst(burst, view, show, logged_in=session.account is not None, deliver=deliver)
    if session.taken is not None:
        show(note(f"{session.taken} is taken: you are {session.nick}"))
    view.marker = tls_marker(session)
    if (secured := tls_note(session)) is not None:
        show(secured)
    reader = _start_reader(session, view, show, end, deliver)
    status = ExitStatus.OK
    try:
        for each in [*rooms, *([room] if room is not None else [])]:
            action = parse_input(f"/join {each}", None)
            _perform(session, view, action, show, switched_note=False)
        subscribe(session)
        session.send(Message("PING", (view.ready_token,)))
        view.ready.wait(session.timeout)
        while not lost.is_set():
            try:
                typed = read_line()
            except KeyboardInterrupt:
                session.send_quit("Leaving")
                status = ExitStatus.INTERRUPTED
                break
            if typed is None:
                if not lost.is_set():
                    session.send_quit()
                break
            action = None
            if isinstance(typed, Typed):
                with view.lock:
                    view.room = typed.room
                typed, action = typed.line, typed.action
            try:
                handled = _submit(session, view, typed, show, queue=not batch, action=action)
            except ConnectError as exc:  # reconnecting, maybe: the reader says how it goes
                show(Text(f"not sent: {exc}", style=STYLE_ERROR))
                handled = False
            if handled is None:
                break
            if not handled and batch:
                status = ExitStatus.ERROR  # a line of the script could not be sent
    except ConnectError as exc:
        show(Text(str(exc), style=STYLE_ERROR))
    return _finish(session, view, reader, status)


def _submit(
    session: ClientSession,
    view: ChatView,
    typed: str,
    show: Callable[[Text], None],
    *,
    queue: bool = False,
    action: Action | None = None,
) -> bool | None:
    """Act on one typed line (or on ``action``, made of it already): True if done (or,
    with ``queue``, queued while the connection is down), False if it could not be, None
    on quit.

    Raises:
        ConnectError: without ``queue``, the connection is gone.
    """
    try:
        action = parse_input(typed, view.room) if action is None else action
    except InputError as exc:
        show(Text(str(exc), style=STYLE_ERROR))
        return False
    if action.local is Local.QUIT:
        session.send_quit(action.reason)
        return None
    if not queue or not action.messages:
        _perform(session, view, action, show)
        return True
    with view.queue_lock:
        if not view.down:
            try:
                _perform(session, view, action, show)
                return True
            except ConnectError:  # the reader thread is about to hear of it
                pass
        if len(view.queue) >= QUEUE_LIMIT:
            show(Text(f"not sent: {QUEUE_LIMIT} lines are waiting already", style=STYLE_ERROR))
            return False
        if not view.queue:
            show(note("queued: will be sent after reconnecting"))
        view.queue.append(action)
    show(Text(f"(pending) {typed}", style="dim"))
    return True


def _finish(
    session: ClientSession, view: ChatView, reader: threading.Thread, status: ExitStatus
) -> ExitStatus:
    """Wait for the server to close after QUIT, then close; a connection lost unasked
    is exit status CONNECT."""
    view.stopping.set()
    view.wake.set()
    reader.join(3.0)
    session.close()
    reader.join(1.0)
    if not session.quitting:
        return ExitStatus.CONNECT
    return status
