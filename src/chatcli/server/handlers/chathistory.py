"""CHATHISTORY (IRCv3 draft/chathistory): page through a room's or a conversation's history.

    CHATHISTORY LATEST <target> <* | reference> <limit>
    CHATHISTORY BEFORE|AFTER|AROUND <target> <reference> <limit>
    CHATHISTORY BETWEEN <target> <reference> <reference> <limit>
    CHATHISTORY TARGETS <timestamp> <timestamp> <limit>

A reference is ``msgid=<id>`` or ``timestamp=<server-time>``. Messages come in a
``chathistory`` batch, oldest first. Errors are ``FAIL CHATHISTORY <code> ...``
(IRCv3 standard replies): every parameter is checked before it is used, so that nothing a
client sends can make the command fail otherwise.

* A limit is 1 to :data:`MAX_LIMIT_DIGITS` ASCII digits, at least 1; the server returns at
  most ``max_chathistory`` messages whatever the limit.
* A timestamp is ``YYYY-MM-DDThh:mm:ss[.fraction]Z`` in ASCII digits, and a real UTC date
  and time (no 13th month, no 25th hour, no leap second).
* A msgid is 1 to :data:`MAX_MSGID_CHARS` characters.
"""

from __future__ import annotations

import calendar
import functools
import re
from datetime import datetime
from typing import TYPE_CHECKING

from chatcli.protocol import Message, caps, is_channel, number, server_time
from chatcli.server import history
from chatcli.server.commands import command
from chatcli.server.store import Store

if TYPE_CHECKING:
    from chatcli.server.connection import Connection

# ASCII digits only ([0-9], not \d, which matches any Unicode digit); \Z, not $, which would
# let a trailing newline through.
_TIMESTAMP = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,6}))?Z\Z"
)
#: The most digits a limit may have: more than any history holds.
MAX_LIMIT_DIGITS = 9
#: The longest msgid a reference may name: longer than any this server makes (or another
#: server's, which are seldom above 40).
MAX_MSGID_CHARS = 128
# A reference, resolved: (row id, unix ms); a row id of -1 means "by time".
Ref = tuple[int, int]


class HistoryFail(Exception):
    def __init__(self, code: str, *params: str) -> None:
        super().__init__(params[-1])
        self.code = code
        self.params = params


@command("CHATHISTORY", 1)
def chathistory(conn: Connection, msg: Message) -> None:
    """CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN|TARGETS ... — fetch history."""
    sub = msg.params[0].upper()
    try:
        store = conn.server.store
        if store is None:
            raise HistoryFail("MESSAGE_ERROR", sub, "*", "This server keeps no history")
        if sub == "TARGETS":
            _targets(conn, store, msg.params[1:])
        elif sub in ("LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN"):
            _messages(conn, store, sub, msg.params[1:])
        else:
            raise HistoryFail("UNKNOWN_COMMAND", sub, "Unknown subcommand")
    except HistoryFail as fail:
        conn.fail("CHATHISTORY", fail.code, *fail.params)


def _messages(conn: Connection, store: Store, sub: str, args: tuple[str, ...]) -> None:
    wanted = 4 if sub == "BETWEEN" else 3
    if len(args) < wanted:
        raise HistoryFail("INVALID_PARAMS", sub, "Not enough parameters")
    target, limit = args[0], _limit(conn, sub, args[wanted - 1])
    key = _key(conn, sub, target)
    if key is None:  # a conversation no one may read back: nothing to show
        history.send_history(conn, target, [])
        return
    store.sync()  # what this client was shown is in the history before it is read
    events = caps.EVENT_PLAYBACK in conn.caps  # (topic changes... : see history.is_event)
    between = functools.partial(store.between, key, events=events)
    first = None if sub == "LATEST" and args[1] == "*" else _ref(store, sub, args[1])
    if sub == "LATEST":
        found = between(after=first, limit=limit, newest_first=True)
    elif sub == "BEFORE":
        found = between(before=first, limit=limit, newest_first=True)
    elif sub == "AFTER":
        found = between(after=first, limit=limit)
    elif sub == "AROUND":
        assert first is not None
        older = between(before=first, limit=limit // 2, newest_first=True)
        at_and_after = (first[0] - 1, first[1]) if first[0] >= 0 else (-1, first[1] - 1)
        newer = between(after=at_and_after, limit=limit - len(older))
        found = older + newer
    else:  # BETWEEN: from the first reference towards the second
        second = _ref(store, sub, args[2])
        assert first is not None
        if _before(first, second):
            found = between(after=first, before=second, limit=limit)
        else:
            found = between(after=second, before=first, limit=limit, newest_first=True)
    history.send_history(conn, target, found)


def _targets(conn: Connection, store: Store, args: tuple[str, ...]) -> None:
    if len(args) < 3:
        raise HistoryFail("INVALID_PARAMS", "TARGETS", "Not enough parameters")
    times = [_timestamp("TARGETS", arg) for arg in args[:2]]
    limit = _limit(conn, "TARGETS", args[2])
    world = conn.world
    with world.lock:
        rooms = {world.fold(channel.name): channel.name for channel in conn.channels}
    me = history.identity(conn)
    store.sync()  # what this client was shown is in the history before it is read
    found = store.targets(rooms, me, min(times), max(times), limit)
    others = {key: _other_side(key, me) for key, _ in found if key not in rooms}
    names = store.account_names(int(o[1:]) for o in others.values() if o is not None)
    server = conn.config.name
    lines = []
    for key, at in found:
        other = others.get(key)
        name = rooms.get(key) or (names.get(int(other[1:])) if other is not None else None)
        if name is None:
            continue
        when = server_time(at / 1000)
        lines.append(Message("CHATHISTORY", ("TARGETS", name, when), server).to_bytes())
    history.send_batch(conn, "draft/chathistory-targets", (), lines)


def _other_side(key: str, me: str) -> str | None:
    """The other identity of a conversation key, if it is an account's."""
    if not key.startswith("dm:") or not history.is_account(me):
        return None
    one, _, other = key[3:].partition("\x00")
    identity = other if one == me else one
    return identity if history.is_account(identity) and identity[1:].isdigit() else None


def _key(conn: Connection, sub: str, target: str) -> str | None:
    """Where ``target``'s history is kept, if ``conn`` may read it. All of it: for a room
    made again, the lines of its earlier lives too (each with its time, in a chathistory
    batch), unlike a JOIN's replay (see :func:`chatcli.server.history.since`)."""
    world = conn.world
    if is_channel(target):
        with world.lock:
            channel = world.find_channel(target)
            if channel is None or conn not in channel.members:
                raise HistoryFail("INVALID_TARGET", sub, target, "You are not in that room")
            return world.fold(channel.name)
    if conn.account_id is None:  # only accounts keep their conversations
        return None
    with world.lock:  # who holds the nick now, if logged in; else the account named so
        other = world.find_nick(target)
        theirs = history.identity(other) if other is not None else None
    if theirs is None or not history.is_account(theirs):
        store = conn.server.store
        account = store.account(world.fold(target)) if store is not None else None
        if account is not None and account.dropped is None:
            theirs = account.identity
    # With someone not logged in, an account reads back what it said with whoever held
    # that nick: it was one side of all of it. (The nick's side never reads it back.)
    return history.conversation(history.identity(conn), theirs or "~" + world.fold(target))


def _limit(conn: Connection, sub: str, text: str) -> int:
    """The limit ``text`` asks for, capped at ``max_chathistory``.

    Raises:
        HistoryFail: INVALID_PARAMS, unless ``text`` is 1 to :data:`MAX_LIMIT_DIGITS` ASCII
            digits worth at least 1 (see :func:`chatcli.protocol.number`).
    """
    limit = number(text, MAX_LIMIT_DIGITS)
    if limit is None or limit < 1:
        raise HistoryFail("INVALID_PARAMS", sub, "The limit must be a positive number")
    return min(limit, conn.config.max_chathistory)


def _ref(store: Store, sub: str, text: str) -> Ref:
    """The message or time the reference ``text`` names.

    Raises:
        HistoryFail: INVALID_PARAMS for anything but ``msgid=<1 to MAX_MSGID_CHARS
            characters>`` or a valid ``timestamp=``; INVALID_MSGREFTYPE for a msgid that
            names no message kept.
    """
    kind, _, value = text.partition("=")
    if kind == "msgid":
        if not 0 < len(value) <= MAX_MSGID_CHARS:
            raise HistoryFail(
                "INVALID_PARAMS", sub, f"A msgid is 1 to {MAX_MSGID_CHARS} characters"
            )
        row = store.row_of(value)
        if row is None:
            raise HistoryFail("INVALID_MSGREFTYPE", sub, text, "No such message")
        return row
    if kind == "timestamp":
        return (-1, _timestamp(sub, text))
    raise HistoryFail("INVALID_PARAMS", sub, "A reference is msgid=... or timestamp=...")


def _timestamp(sub: str, text: str) -> int:
    """The Unix time, in milliseconds, of ``timestamp=YYYY-MM-DDThh:mm:ss[.fff]Z``.

    Raises:
        HistoryFail: INVALID_PARAMS, unless ``text`` has that form in ASCII digits and
            names a real date and time.
    """
    millis = parse_timestamp(text)
    if millis is None:
        raise HistoryFail("INVALID_PARAMS", sub, "Timestamps look like timestamp=" + _EXAMPLE)
    return millis


def parse_timestamp(text: str) -> int | None:
    """The Unix time, in milliseconds, of ``timestamp=YYYY-MM-DDThh:mm:ss[.fff]Z``; None
    unless ``text`` has that form in ASCII digits and names a real date and time."""
    kind, _, value = text.partition("=")
    found = _TIMESTAMP.match(value) if kind == "timestamp" else None
    return _unix_ms(found.group(1), found.group(2)) if found is not None else None


def _unix_ms(when: str, fraction: str | None) -> int | None:
    """``YYYY-MM-DDThh:mm:ss`` (UTC) and a fraction of a second as Unix milliseconds; None
    if there is no such date or time (``2026-13-45T99:99:99``)."""
    try:
        parsed = datetime.strptime(when, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return calendar.timegm(parsed.timetuple()) * 1000 + int((fraction or "0").ljust(3, "0")[:3])


def _before(one: Ref, other: Ref) -> bool:
    if one[0] >= 0 and other[0] >= 0:
        return one[0] < other[0]
    return one[1] < other[1]


_EXAMPLE = "2026-01-31T12:00:00.000Z"
