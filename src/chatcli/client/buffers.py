"""What the full-screen client shows, as data: one buffer per conversation. No I/O, no UI.

A :class:`Buffers` takes each message the client shows (after :mod:`chatcli.client.history`
has put them in order) and says which buffer it belongs to: the server's, a room's, or a
direct conversation's. Each buffer keeps its own scrollback, its unread and mention
counts, and, for a room, its topic and members (with their prefixes and away state), kept
up to date from JOIN, PART, KICK, QUIT, NICK, NAMES, MODE and AWAY.

A line counts as unread only in a buffer that is not in view; a mention is a line of
someone else's that names us as a word, or any direct message. Joins, parts and the like
are "activity", shown but not counted. :meth:`Buffers.switch` reads the buffer (its counts
go to zero) and leaves a read marker in the one left: the index of the first line not seen.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum

from rich.text import Text

from chatcli.client.formatting import strip_formatting
from chatcli.client.history import EARLIER, NOTHING_EARLIER
from chatcli.protocol import Message, is_channel, split_source
from chatcli.protocol import numerics as n

#: Lines kept per buffer; older ones are dropped (the server's history has them).
SCROLLBACK = 2000
#: The name of the server's buffer, where registration, MOTD and notices go.
SERVER = "server"
#: The membership prefixes assumed until the server says (ISUPPORT PREFIX).
DEFAULT_PREFIX = "(ov)@+"
_CHAT = ("PRIVMSG", "NOTICE")
#: What registration brings (welcome, server counts, message of the day): the server's.
_WELCOME = {
    n.RPL_WELCOME, n.RPL_YOURHOST, n.RPL_CREATED, n.RPL_MYINFO, n.RPL_ISUPPORT,
    n.RPL_LUSERCLIENT, n.RPL_LUSEROP, n.RPL_LUSERUNKNOWN, n.RPL_LUSERCHANNELS, n.RPL_LUSERME,
    n.RPL_LOCALUSERS, n.RPL_GLOBALUSERS, n.RPL_MOTDSTART, n.RPL_MOTD, n.RPL_ENDOFMOTD,
    n.ERR_NOMOTD,
}  # fmt: skip


class Kind(Enum):
    SERVER = "server"
    ROOM = "room"
    QUERY = "query"


class Activity(Enum):
    """How much happened in a buffer not in view, least to most."""

    NONE = 0
    EVENTS = 1  #: joins, parts, modes...
    MESSAGES = 2
    MENTION = 3


@dataclass
class Member:
    nick: str
    prefixes: str = ""  #: membership prefixes held, highest first ("@+")
    away: bool = False


@dataclass
class Buffer:
    """One conversation: the server, a room or a person."""

    name: str
    kind: Kind
    lines: list[Text] = field(default_factory=list)
    unread: int = 0
    mentions: int = 0
    activity: Activity = Activity.NONE
    topic: str = ""
    members: dict[str, Member] = field(default_factory=dict)  #: by folded alias
    joined: bool = False  #: a room we are in (a query: always False)
    #: Index in :attr:`lines` of the first line not seen when the buffer was left.
    marker: int | None = None
    #: The server has no earlier history for it (so scrolling up asks no more).
    history_done: bool = False

    @property
    def key(self) -> str:
        return self.name.lower()

    def add(self, line: Text) -> None:
        self.lines.append(line)
        if len(self.lines) > SCROLLBACK:
            cut = len(self.lines) - SCROLLBACK
            del self.lines[:cut]
            if self.marker is not None:
                self.marker = max(0, self.marker - cut)

    def prepend(self, lines: list[Text]) -> None:
        """Put earlier lines (from history) before the first."""
        room = max(0, SCROLLBACK - len(self.lines))
        lines = lines[len(lines) - room :] if room else []
        self.lines[:0] = lines
        if self.marker is not None:
            self.marker += len(lines)

    def sorted_members(self, prefix_order: str) -> list[Member]:
        """Operators first, then voiced..., each group by alias."""

        def rank(member: Member) -> tuple[int, str]:
            first = member.prefixes[:1]
            place = prefix_order.find(first) if first else -1
            return (place if place >= 0 else len(prefix_order), member.nick.lower())

        return sorted(self.members.values(), key=rank)


@dataclass(frozen=True)
class Shown:
    """Where a message went: the buffer, and whether it names us (or is a direct one)."""

    buffer: Buffer
    mention: bool = False
    chat: bool = False  #: a message of someone's (not an event)


def prefix_modes(isupport: Mapping[str, str]) -> tuple[str, str]:
    """The membership modes and their prefixes, from ISUPPORT PREFIX: ``("ov", "@+")``."""
    value = isupport.get("PREFIX", DEFAULT_PREFIX)
    match = re.fullmatch(r"\(([A-Za-z]*)\)(\S*)", value)
    if match is None or len(match[1]) != len(match[2]):
        return "ov", "@+"
    return match[1], match[2]


def names_mentioned(text: str, me: str) -> bool:
    """Whether ``text`` names ``me`` as a word (not inside another alias)."""
    if not me:
        return False
    pattern = r"(?<![\w\[\]\\`^{|}-])" + re.escape(me.lower()) + r"(?![\w\[\]\\`^{|}-])"
    return re.search(pattern, strip_formatting(text).lower()) is not None


class Buffers:
    """The buffers, in the order they were opened (the server's first), and which is in view."""

    def __init__(self, isupport: Mapping[str, str] | None = None) -> None:
        self._isupport: Mapping[str, str] = {} if isupport is None else isupport
        self.server = Buffer(SERVER, Kind.SERVER)
        self._order: list[Buffer] = [self.server]
        self.current: Buffer = self.server
        self._names: dict[str, dict[str, Member]] = {}  # NAMES replies being gathered
        #: Who last sent us a direct message (for /r).
        self.last_direct: str | None = None

    # -- the list ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Buffer]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def get(self, name: str) -> Buffer | None:
        key = name.lower()
        return next((b for b in self._order if b.key == key), None)

    def open(self, name: str) -> Buffer:
        """The buffer for a room or a person, opened (at the end of the list) if need be."""
        found = self.get(name)
        if found is not None:
            return found
        buffer = Buffer(name, Kind.ROOM if is_channel(name) else Kind.QUERY)
        self._order.append(buffer)
        return buffer

    def close(self, buffer: Buffer) -> None:
        """Remove a buffer from the list (the server's stays); the one before comes in view."""
        if buffer is self.server or buffer not in self._order:
            return
        index = self._order.index(buffer)
        self._order.remove(buffer)
        if self.current is buffer:
            self.current = self._order[index - 1]
            self._read(self.current)

    def index(self, buffer: Buffer) -> int:
        return self._order.index(buffer)

    def switch(self, buffer: Buffer) -> None:
        """Bring ``buffer`` into view: it is read, and the one left keeps a read marker."""
        if buffer is self.current:
            return
        self.current.marker = len(self.current.lines)
        self.current = buffer
        self._read(buffer)

    def switch_to(self, number: int) -> Buffer | None:
        """Bring the ``number``-th buffer (from 1) into view, if there is one."""
        if 1 <= number <= len(self._order):
            self.switch(self._order[number - 1])
            return self.current
        return None

    def step(self, by: int) -> None:
        """The next (``by`` 1) or previous (-1) buffer, around the end."""
        index = (self._order.index(self.current) + by) % len(self._order)
        self.switch(self._order[index])

    def next_active(self) -> Buffer | None:
        """The buffer with the most activity, mentions first, the nearest after the
        current one on a tie; None if nothing happened anywhere else."""
        start = self._order.index(self.current)
        ring = self._order[start + 1 :] + self._order[:start]
        best = max(ring, key=lambda b: b.activity.value, default=None)
        if best is None or best.activity is Activity.NONE:
            return None
        return best

    def _read(self, buffer: Buffer) -> None:
        buffer.unread = buffer.mentions = 0
        buffer.activity = Activity.NONE

    def note(self, buffer: Buffer, line: Text, activity: Activity = Activity.EVENTS) -> None:
        """Add a line to a buffer, counted as ``activity`` if it is not in view."""
        buffer.add(line)
        if buffer is self.current:
            return
        if activity is Activity.MENTION:
            buffer.mentions += 1
        if activity.value >= Activity.MESSAGES.value:
            buffer.unread += 1
        if activity.value > buffer.activity.value:
            buffer.activity = activity

    # -- where a message goes ---------------------------------------------------------------

    def route(self, msg: Message, me: str) -> list[Shown]:
        """Follow what ``msg`` changes (members, topics, our rooms) and say which buffers
        show it (none: shown nowhere). Messages of a ``/history`` answer are routed by the
        caller (they go before the first line)."""
        cmd, params = msg.command, msg.params
        nick = split_source(msg.source or "")[0]
        mine = nick.lower() == me.lower()
        if cmd in _CHAT and len(params) >= 2:
            return self._chat(msg, nick, mine, me)
        if cmd == "JOIN" and params:
            room = self.open(params[0]) if mine else self.get(params[0])
            if room is None:
                return []
            if mine:  # (again, maybe, after a reconnect: the server says what is now)
                room.joined, room.history_done = True, False
                room.members.clear()
                room.topic = ""
            room.members.setdefault(nick.lower(), Member(nick))
            return [Shown(room)]
        if cmd in ("PART", "KICK") and params:
            room = self.get(params[0])
            if room is None:
                return []
            gone = nick if cmd == "PART" else (params[1] if len(params) > 1 else "")
            room.members.pop(gone.lower(), None)
            if gone.lower() == me.lower():
                room.joined = False
                room.members.clear()
            return [Shown(room)]
        if cmd == "QUIT":
            return [
                Shown(b)
                for b in self._where(nick)
                if b.members.pop(nick.lower(), None) or b.kind is Kind.QUERY
            ]
        if cmd == "NICK" and params:
            return self._renamed(nick, params[0])
        if cmd == "TOPIC" and len(params) >= 2:
            room = self.get(params[0])
            if room is None:
                return []
            room.topic = params[1]
            return [Shown(room)]
        if cmd == "MODE" and params and is_channel(params[0]):
            room = self.get(params[0])
            if room is None:
                return []
            self._modes(room, params[1:])
            return [Shown(room)]
        if cmd == "AWAY":
            for buffer in self._where(nick):
                member = buffer.members.get(nick.lower())
                if member is not None:
                    member.away = bool(params and params[0])
            return []
        return self._numeric(msg)

    def _chat(self, msg: Message, nick: str, mine: bool, me: str) -> list[Shown]:
        target, text = msg.params[0], msg.params[1]
        if is_channel(target):
            room = self.get(target)
            if room is None:  # e.g. a message to a room we are not in, echoed
                room = self.open(target)
            mention = not mine and names_mentioned(text, me)
            return [Shown(room, mention=mention, chat=not mine)]
        server = msg.source is None or "!" not in msg.source
        if server or (msg.command == "NOTICE" and not mine):
            # Notices of the server and services, and notices to us: the server's buffer
            # (where what we asked for is answered), or the current one if that is where
            # the notice's sender is talked to.
            here = self.current if self.current.key == nick.lower() else self.server
            return [Shown(here, mention=False, chat=not mine)]
        other = target if mine else nick
        if not mine and target.lower() == me.lower():
            self.last_direct = nick
        query = self.open(other)
        return [Shown(query, mention=not mine, chat=not mine)]

    def _where(self, nick: str) -> list[Buffer]:
        key = nick.lower()
        return [
            b for b in self._order if key in b.members or (b.kind is Kind.QUERY and b.key == key)
        ]

    def _renamed(self, old: str, new: str) -> list[Shown]:
        shown = []
        for buffer in self._where(old):
            member = buffer.members.pop(old.lower(), None)
            if member is not None:
                member.nick = new
                buffer.members[new.lower()] = member
            if buffer.kind is Kind.QUERY and self.get(new) is None:
                buffer.name = new
            shown.append(Shown(buffer))
        if self.last_direct is not None and self.last_direct.lower() == old.lower():
            self.last_direct = new
        return shown

    def _modes(self, room: Buffer, args: tuple[str, ...]) -> None:
        """Follow membership modes (+o, +v...) given to people in ``room``."""
        if not args:
            return
        modes, prefixes = prefix_modes(self._isupport)
        chanmodes = self._isupport.get("CHANMODES", "beI,k,l,imnpst").split(",")
        always = "".join(chanmodes[:2])  # list modes and keys: an argument both ways
        on_set = chanmodes[2] if len(chanmodes) > 2 else ""
        rest = iter(args[1:])
        adding = True
        for letter in args[0]:
            if letter in "+-":
                adding = letter == "+"
            elif letter in modes:
                who = next(rest, "")
                member = room.members.get(who.lower())
                if member is None:
                    continue
                symbol = prefixes[modes.index(letter)]
                held = set(member.prefixes)
                held.add(symbol) if adding else held.discard(symbol)
                member.prefixes = "".join(p for p in prefixes if p in held)
            elif letter in always or (adding and letter in on_set):
                next(rest, None)

    def _numeric(self, msg: Message) -> list[Shown]:
        cmd, params = msg.command, msg.params
        if cmd == n.RPL_NAMREPLY and len(params) >= 4:
            room = self.get(params[2])
            if room is None:
                return [Shown(self.current)]
            _, prefixes = prefix_modes(self._isupport)
            gathered = self._names.setdefault(room.key, {})
            for entry in params[3].split():
                name = entry.lstrip(prefixes)
                held = entry[: len(entry) - len(name)]
                nick = split_source(name)[0]  # (userhost-in-names)
                if nick:
                    gathered[nick.lower()] = Member(nick, held)
            return [Shown(room)]
        if cmd == n.RPL_ENDOFNAMES and len(params) >= 2:
            room = self.get(params[1])
            gathered = self._names.pop(params[1].lower(), None)
            if room is not None and gathered is not None and room.joined:
                for key, member in gathered.items():
                    old = room.members.get(key)
                    member.away = old.away if old is not None else False
                room.members = gathered
            return [Shown(room or self.current)]
        if cmd in (n.RPL_TOPIC, n.RPL_NOTOPIC) and len(params) >= 2:
            room = self.get(params[1])
            if room is not None:
                room.topic = params[2] if cmd == n.RPL_TOPIC and len(params) > 2 else ""
                return [Shown(room)]
        if cmd in (EARLIER, NOTHING_EARLIER) and params:
            buffer = self.get(params[0])
            if buffer is not None and cmd == NOTHING_EARLIER:
                buffer.history_done = True
            return [Shown(buffer or self.current)]
        if cmd == "ERROR":
            return [Shown(self.server)]
        if cmd in _WELCOME:
            return [Shown(self.server)]
        if cmd.isdigit() and len(params) >= 2:
            # About a room or a person with a buffer of its own: there; else where the
            # user is (what they asked for is answered there).
            about = self.get(params[1])
            if about is not None:
                return [Shown(about)]
            return [Shown(self.current)]
        return [Shown(self.current)]
