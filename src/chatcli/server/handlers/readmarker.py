"""MARKREAD (IRCv3 draft/read-marker): what an account has read, shared by its clients.

    MARKREAD <target>                   the marker of a room or a nick, as the server has it
    MARKREAD <target> timestamp=<time>  the account has read ``target`` up to ``time``

A marker is an account's (a client not logged in is refused: ``FAIL MARKREAD
ACCOUNT_REQUIRED``), kept in the store per account and target (folded), and only ever
moves forward: a time at or before the marker's is answered with the marker as it is; a
time in the future is taken as now. Once it moved, every connection of the account that
negotiated the capability (on any node of a cluster) is sent ``MARKREAD <target>
timestamp=<time>``; with no marker yet, the time is ``*``. After a JOIN, a client with the
capability is sent the room's marker (read before the world lock by
:func:`chatcli.server.history.preload`).

The store is read and written without the world lock; the lock is held only to find the
account's connections.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chatcli.protocol import Message, caps, is_valid_channel, is_valid_nick
from chatcli.server.commands import command
from chatcli.server.handlers.chathistory import parse_timestamp
from chatcli.server.history import marker_line
from chatcli.server.store import Outcome
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.connection import Connection


@command("MARKREAD", 0)
def markread(conn: Connection, msg: Message) -> None:
    """MARKREAD <target> [timestamp=<time>] — get or move your read marker of a target."""
    if not msg.params or not msg.params[0]:
        conn.fail("MARKREAD", "NEED_MORE_PARAMS", "Missing parameters")
        return
    target = msg.params[0]
    store = conn.server.store
    account = conn.account_id
    if store is None:
        conn.fail("MARKREAD", "INTERNAL_ERROR", target, "This server keeps no read markers")
        return
    if account is None:
        conn.fail("MARKREAD", "ACCOUNT_REQUIRED", target, "Log in to keep read markers")
        return
    config = conn.config
    if not (is_valid_channel(target, config.channel_len) or is_valid_nick(target, config.nick_len)):
        conn.fail("MARKREAD", "INVALID_PARAMS", target, "No such room or nick")
        return
    key = conn.world.fold(target)
    if len(msg.params) == 1:
        conn.send(marker_line(conn, target, store.read_marker(account, key)))
        return
    at = parse_timestamp(msg.params[1])
    if at is None:
        conn.fail(
            "MARKREAD",
            "INVALID_PARAMS",
            msg.params[1],
            "Timestamps look like timestamp=2026-01-31T12:00:00.000Z",
        )
        return
    at = min(at, int(time.time() * 1000))
    before = store.read_marker(account, key)
    if before is not None and at <= before:  # only forward: say where it is
        conn.send(marker_line(conn, target, before))
        return
    if store.outcome(store.mark_read(account, key, at)) is not Outcome.KEPT:
        conn.fail("MARKREAD", "INTERNAL_ERROR", target, "The read timestamp could not be set")
        return
    _tell_account(conn, target, store.read_marker(account, key))


def _tell_account(conn: Connection, target: str, at: int | None) -> None:
    """The marker to every connection of ``conn``'s account with the capability, on this
    node and the others of a cluster (``conn`` itself as its command's answer)."""
    world = conn.world
    line = Relay(marker_line(conn, target, at))
    with world.lock:
        mine = [
            person
            for person in world.registered()
            if person.account_id == conn.account_id and caps.READ_MARKER in person.caps
        ]
        if conn not in mine:
            mine.append(conn)
        world.relay_to(mine, line, actor=conn)
