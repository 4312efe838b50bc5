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

Each person's message shown keeps an :class:`Entry` beside its line: its msgid, what it
answers (``+draft/reply``), the reactions to it (``+draft/react``) and whether it was
deleted (``REDACT``), so that those can change the line after it is shown. A ``MARKREAD``
(IRCv3 draft/read-marker) from another device of the account counts again what is unread
after its time. People's display names and colours (IRCv3 draft/metadata-2) are kept in
:attr:`Buffers.people`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import cached_property

from rich.text import Text

from chatcli.client.formatting import strip_formatting
from chatcli.client.history import EARLIER, NOTHING_EARLIER, message_lines
from chatcli.protocol import Message, caps, is_channel, split_source
from chatcli.protocol import numerics as n

#: Lines kept per buffer; older ones are dropped (the server's history has them).
SCROLLBACK = 2000
#: The name of the server's buffer, where registration, MOTD and notices go.
SERVER = "server"
#: The membership prefixes assumed until the server says (ISUPPORT PREFIX).
DEFAULT_PREFIX = "(ov)@+"
_CHAT = ("PRIVMSG", "NOTICE")
#: Client tags of IRCv3 message-tags: what a message answers, and a reaction's text.
REPLY_TAG, REACT_TAG = caps.REPLY, caps.REACT
#: Different reactions kept per message, and people per reaction: more are not counted.
MOST_REACTIONS = 20
MOST_REACTORS = 100
#: The longest reaction kept (in characters); a longer one is dropped.
REACTION_CHARS = 32
#: People whose display name or colour is kept; past this, the first known is forgotten.
MOST_PEOPLE = 5000
#: The longest display name kept (in characters): longer ones are cut.
DISPLAY_NAME_CHARS = 32
#: The metadata keys the client subscribes to and shows.
METADATA_KEYS = ("display-name", "color")
#: A colour a person may choose: ``#rgb`` or ``#rrggbb``; nothing else reaches a style.
SAFE_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
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


def message_time(msg: Message) -> datetime | None:
    """The ``time`` tag (IRCv3 server-time) of ``msg``, if it has a valid one."""
    stamp = msg.tags.get("time")
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


@dataclass
class Entry:
    """A person's message shown in a buffer, and what has happened to it since."""

    msg: Message
    nick: str
    mention: bool = False
    #: Reactions, each with who reacted, in the order they first came.
    reactions: dict[str, list[str]] = field(default_factory=dict)
    deleted: bool = False

    @property
    def msgid(self) -> str | None:
        return self.msg.tags.get("msgid") or None

    @property
    def reply_to(self) -> str | None:
        return self.msg.tags.get(REPLY_TAG) or None

    @cached_property  # (read in loops over a buffer's entries: worked out once)
    def when(self) -> datetime | None:
        return message_time(self.msg)

    @cached_property
    def text(self) -> str:
        """The whole text (a multiline message's lines, joined by line breaks)."""
        return "\n".join(message_lines(self.msg))

    def react(self, text: str, nick: str) -> bool:
        """Count ``nick``'s reaction ``text``; False if nothing changed."""
        if not text or len(text) > REACTION_CHARS:
            return False
        who = self.reactions.get(text)
        if who is None:
            if len(self.reactions) >= MOST_REACTIONS:
                return False
            who = self.reactions[text] = []
        if any(other.lower() == nick.lower() for other in who) or len(who) >= MOST_REACTORS:
            return False
        who.append(nick)
        return True


@dataclass
class Buffer:
    """One conversation: the server, a room or a person."""

    name: str
    kind: Kind
    lines: list[Text] = field(default_factory=list)
    #: Beside each line: its message's :class:`Entry`, or None (events, notes).
    entries: list[Entry | None] = field(default_factory=list)
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
    #: Read up to this time (IRCv3 draft/read-marker: said by the server, or sent by us).
    read_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.name.lower()

    def add(self, line: Text, entry: Entry | None = None) -> None:
        self.lines.append(line)
        self.entries.append(entry)
        if len(self.lines) > SCROLLBACK:
            cut = len(self.lines) - SCROLLBACK
            del self.lines[:cut]
            del self.entries[:cut]
            if self.marker is not None:
                self.marker = max(0, self.marker - cut)

    def prepend(self, lines: list[Text], entries: list[Entry | None] | None = None) -> None:
        """Put earlier lines (from history) before the first."""
        room = max(0, SCROLLBACK - len(self.lines))
        beside = entries if entries is not None else [None] * len(lines)
        lines = lines[len(lines) - room :] if room else []
        beside = beside[len(beside) - len(lines) :] if lines else []
        self.lines[:0] = lines
        self.entries[:0] = beside
        if self.marker is not None:
            self.marker += len(lines)

    def clear(self) -> None:
        self.lines.clear()
        self.entries.clear()
        self.marker = None

    def find(self, msgid: str) -> int | None:
        """The index of the line of the message ``msgid``, latest first; None if not shown."""
        for index in range(len(self.entries) - 1, -1, -1):
            entry = self.entries[index]
            if entry is not None and entry.msgid == msgid:
                return index
        return None

    def count_unread(self, me: str) -> None:
        """Count again what is unread: the messages of others after :attr:`read_at`."""
        self.unread = self.mentions = 0
        for entry in self.entries:
            if entry is None or entry.nick.lower() == me.lower() or entry.deleted:
                continue
            when = entry.when
            if when is not None and self.read_at is not None and when <= self.read_at:
                continue
            self.unread += 1
            self.mentions += entry.mention
        if self.mentions:
            self.activity = Activity.MENTION
        elif self.unread:
            self.activity = max(self.activity, Activity.MESSAGES, key=lambda a: a.value)
        else:
            self.activity = Activity.NONE

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
        #: People's metadata (display-name, color), by folded alias.
        self.people: dict[str, dict[str, str]] = {}

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

    def note(
        self,
        buffer: Buffer,
        line: Text,
        activity: Activity = Activity.EVENTS,
        entry: Entry | None = None,
    ) -> None:
        """Add a line to a buffer, counted as ``activity`` if it is not in view."""
        buffer.add(line, entry)
        if buffer is self.current:
            return
        when = entry.when if entry is not None else None
        if when is not None and buffer.read_at is not None and when <= buffer.read_at:
            return  # read on another device already
        if activity is Activity.MENTION:
            buffer.mentions += 1
        if activity.value >= Activity.MESSAGES.value:
            buffer.unread += 1
        if activity.value > buffer.activity.value:
            buffer.activity = activity

    # -- what changes lines shown, and counts ---------------------------------------------

    def about(self, target: str, nick: str, me: str) -> Buffer | None:
        """The buffer of a message to ``target`` from ``nick``: the room's, or the other
        person's."""
        if is_channel(target):
            return self.get(target)
        return self.get(nick if target.lower() == me.lower() else target)

    def locate(self, msgid: str, buffer: Buffer | None) -> tuple[Buffer, int] | None:
        """Where the message ``msgid`` is shown in ``buffer`` (the conversation a deletion
        or reaction was sent to: one sent to another cannot touch it)."""
        index = buffer.find(msgid) if buffer is not None else None
        return None if buffer is None or index is None else (buffer, index)

    def redacted(self, msg: Message, me: str) -> tuple[Buffer, int] | None:
        """``REDACT <target> <msgid> [reason]``: mark the message deleted; where it is."""
        if len(msg.params) < 2:
            return None
        nick = split_source(msg.source or "")[0]
        found = self.locate(msg.params[1], self.about(msg.params[0], nick, me))
        if found is None:
            return None
        entry = found[0].entries[found[1]]
        assert entry is not None
        entry.deleted = True
        entry.reactions.clear()
        return found

    def reacted(self, msg: Message, me: str) -> tuple[Buffer, int] | None:
        """A TAGMSG (or message) with ``+draft/react`` to a message shown: count it."""
        text, msgid = msg.tags.get(REACT_TAG), msg.tags.get(REPLY_TAG)
        if not text or not msgid or not msg.params:
            return None
        nick = split_source(msg.source or "")[0]
        found = self.locate(msgid, self.about(msg.params[0], nick, me))
        if found is None:
            return None
        entry = found[0].entries[found[1]]
        assert entry is not None
        if entry.deleted or not entry.react(text, nick):
            return None
        return found

    def marked_read(self, msg: Message, me: str) -> Buffer | None:
        """``MARKREAD <target> timestamp=<time>``: the account read ``target`` up to then
        (here or on another device); its unread lines are counted again."""
        if len(msg.params) < 2 or not msg.params[1].startswith("timestamp="):
            return None
        buffer = self.get(msg.params[0])
        try:
            when = datetime.fromisoformat(
                msg.params[1].removeprefix("timestamp=").replace("Z", "+00:00")
            )
        except ValueError:
            return None
        if buffer is None or when.tzinfo is None:
            return None
        if buffer.read_at is None or when > buffer.read_at:
            buffer.read_at = when
        if buffer is not self.current:
            buffer.count_unread(me)
            if buffer.marker is not None:  # "new since you left": after what was read
                buffer.marker = next(
                    (
                        index
                        for index, entry in enumerate(buffer.entries)
                        if index >= buffer.marker
                        and entry is not None
                        and (at := entry.when) is not None
                        and at > buffer.read_at
                    ),
                    len(buffer.lines),
                )
        return buffer

    def metadata(self, target: str, key: str, value: str | None) -> bool:
        """A person's metadata ``key`` is now ``value`` (None: unset); True if it changed
        what is shown. Only the keys shown are kept, and only safe values."""
        if key not in METADATA_KEYS or is_channel(target) or not target or target == "*":
            return False
        if value is not None and key == "color" and not SAFE_COLOUR.fullmatch(value):
            value = None
        if value is not None and key == "display-name":
            value = " ".join(strip_formatting(value).split())[:DISPLAY_NAME_CHARS] or None
        folded = target.lower()
        known = self.people.get(folded, {})
        if known.get(key) == value:
            return False
        if value is None:
            known.pop(key, None)
        else:
            known[key] = value
        if known and folded not in self.people:
            if len(self.people) >= MOST_PEOPLE:
                del self.people[next(iter(self.people))]
            self.people[folded] = known
        elif not known:
            self.people.pop(folded, None)
        return True

    def shown_name(self, nick: str) -> tuple[str, str | None]:
        """How ``nick`` is shown: the display name (or the alias), and the chosen colour."""
        known = self.people.get(nick.lower(), {})
        return known.get("display-name", nick), known.get("color")

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
        if cmd == "RENAME" and len(params) >= 2:
            # (one replayed in a history batch happened then: it renames nothing now)
            room = self.rename(params[0], params[1]) if "batch" not in msg.tags else None
            return [] if room is None else [Shown(room)]
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
        target, text = msg.params[0], "\n".join(message_lines(msg))
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
        known = self.people.pop(old.lower(), None)
        if known is not None:
            self.people[new.lower()] = known
        return shown

    def rename(self, old: str, new: str) -> Buffer | None:
        """The room ``old`` is now named ``new`` (IRCv3 draft/channel-rename): its buffer
        keeps its lines, members, counts and place, under the new name; None if it has
        none. A buffer left of another room of the new name (one we are not in: the server
        gives a name in use to no other room) gives way to it; one of a room we are in does
        not (nothing is renamed)."""
        room = self.get(old)
        if room is None or room.kind is not Kind.ROOM or not is_channel(new):
            return None
        stale = self.get(new)
        if stale is not None and stale is not room and stale.joined:
            return None
        if stale is not None and stale is not room:
            in_view = stale is self.current
            self.close(stale)
            if in_view:
                self.switch(room)
        gathered = self._names.pop(room.key, None)
        room.name = new
        if gathered is not None:
            self._names[room.key] = gathered
        return room

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
