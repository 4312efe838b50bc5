"""CHATHISTORY (IRCv3 draft/chathistory): page through a room's or a conversation's history.

    CHATHISTORY LATEST <target> <* | reference> <limit>
    CHATHISTORY BEFORE|AFTER|AROUND <target> <reference> <limit>
    CHATHISTORY BETWEEN <target> <reference> <reference> <limit>
    CHATHISTORY TARGETS <timestamp> <timestamp> <limit>

A reference is ``msgid=<id>`` or ``timestamp=<server-time>``. Messages come in a
``chathistory`` batch, oldest first. Errors are ``FAIL CHATHISTORY <code> ...``.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import TYPE_CHECKING

from chatcli.protocol import Message, is_channel, server_time
from chatcli.server import history
from chatcli.server.commands import command
from chatcli.server.store import Store

if TYPE_CHECKING:
    from chatcli.server.connection import Connection

_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?Z$")
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
    first = None if sub == "LATEST" and args[1] == "*" else _ref(store, sub, args[1])
    if sub == "LATEST":
        found = store.between(key, after=first, limit=limit, newest_first=True)
    elif sub == "BEFORE":
        found = store.between(key, before=first, limit=limit, newest_first=True)
    elif sub == "AFTER":
        found = store.between(key, after=first, limit=limit)
    elif sub == "AROUND":
        assert first is not None
        older = store.between(key, before=first, limit=limit // 2, newest_first=True)
        at_and_after = (first[0] - 1, first[1]) if first[0] >= 0 else (-1, first[1] - 1)
        newer = store.between(key, after=at_and_after, limit=limit - len(older))
        found = older + newer
    else:  # BETWEEN: from the first reference towards the second
        second = _ref(store, sub, args[2])
        assert first is not None
        if _before(first, second):
            found = store.between(key, after=first, before=second, limit=limit)
        else:
            found = store.between(key, after=second, before=first, limit=limit, newest_first=True)
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
    found = store.targets(rooms, me, min(times), max(times), limit)
    server = conn.config.name
    lines = []
    for key, at in found:
        name = rooms.get(key) or _other_side(key, me)
        if name is None:
            continue
        when = server_time(at / 1000)
        lines.append(Message("CHATHISTORY", ("TARGETS", name, when), server).to_bytes())
    history.send_batch(conn, "draft/chathistory-targets", (), lines)


def _other_side(key: str, me: str) -> str | None:
    """The other identity of a conversation key, if it is a logged-in account's."""
    if not key.startswith("dm:") or me.startswith("~"):
        return None
    one, _, other = key[3:].partition("\x00")
    name = other if one == me else one
    return None if name.startswith("~") else name


def _key(conn: Connection, sub: str, target: str) -> str | None:
    """Where ``target``'s history is kept, if ``conn`` may read it."""
    world = conn.world
    if is_channel(target):
        with world.lock:
            channel = world.find_channel(target)
            if channel is None or conn not in channel.members:
                raise HistoryFail("INVALID_TARGET", sub, target, "You are not in that room")
            return world.fold(channel.name)
    if conn.account is None:  # only accounts keep their conversations
        return None
    with world.lock:
        other = world.find_nick(target)
        theirs = history.identity(other) if other is not None else world.fold(target)
    if theirs.startswith("~"):
        return None
    return history.conversation(history.identity(conn), theirs)


def _limit(conn: Connection, sub: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise HistoryFail("INVALID_PARAMS", sub, "The limit must be a positive number")
    return min(int(text), conn.config.max_chathistory)


def _ref(store: Store, sub: str, text: str) -> Ref:
    kind, _, value = text.partition("=")
    if kind == "msgid" and value:
        row = store.row_of(value)
        if row is None:
            raise HistoryFail("INVALID_MSGREFTYPE", sub, text, "No such message")
        return row
    if kind == "timestamp":
        return (-1, _timestamp(sub, text))
    raise HistoryFail("INVALID_PARAMS", sub, "A reference is msgid=... or timestamp=...")


def _timestamp(sub: str, text: str) -> int:
    kind, _, value = text.partition("=")
    found = _TIMESTAMP.match(value) if kind == "timestamp" else None
    if found is None:
        raise HistoryFail("INVALID_PARAMS", sub, "Timestamps look like timestamp=" + _EXAMPLE)
    seconds = calendar.timegm(time.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S"))
    fraction = (found.group(2) or "0").ljust(3, "0")[:3]
    return seconds * 1000 + int(fraction)


def _before(one: Ref, other: Ref) -> bool:
    if one[0] >= 0 and other[0] >= 0:
        return one[0] < other[0]
    return one[1] < other[1]


_EXAMPLE = "2026-01-31T12:00:00.000Z"
