"""MARKREAD (IRCv3 draft/read-marker): what an account has read, shared by its clients.

    MARKREAD <target>                   the marker of a room or a nick, as the server has it
    MARKREAD <target> timestamp=<time>  the account has read ``target`` up to ``time``

A marker is an account's, kept in the store per account and target (folded), and only
ever moves forward: a time at or before the marker's is answered with the marker as it
is; a time in the future is taken as now. Once it moved, every connection of the account
that negotiated the capability (on any node of a cluster) is sent ``MARKREAD <target>
timestamp=<time>``; with no marker yet, the time is ``*``. After a JOIN, a client with the
capability is sent the room's marker (read before the world lock by
:func:`chatcli.server.history.preload`).

A client not logged in has markers of its own, kept by its connection and gone with it
(``Connection.read_markers``), which move the same way: at most MAX_SESSION_MARKERS
targets, past which setting a new target's marker forgets the one set longest ago.

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


#: Targets a connection not logged in keeps markers for: a marker for each room it may be
#: in (CHANLIMIT is 50 by default) and as many conversations.
MAX_SESSION_MARKERS = 100


@command("MARKREAD", 0)
def markread(conn: Connection, msg: Message) -> None:
    """MARKREAD <target> [timestamp=<time>] — get or move your read marker of a target."""
    if not msg.params or not msg.params[0]:
        conn.fail("MARKREAD", "NEED_MORE_PARAMS", "Missing parameters")
        return
    target = msg.params[0]
    store = conn.server.store
    account = conn.account_id
    if store is None and account is not None:
        conn.fail("MARKREAD", "INTERNAL_ERROR", target, "This server keeps no read markers")
        return
    config = conn.config
    if not (is_valid_channel(target, config.channel_len) or is_valid_nick(target, config.nick_len)):
        conn.fail("MARKREAD", "INVALID_PARAMS", target, "No such room or nick")
        return
    key = conn.world.fold(target)
    if len(msg.params) == 1:
        conn.send(marker_line(conn, target, _marker(conn, key)))
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
    before = _marker(conn, key)
    if before is not None and at <= before:  # only forward: say where it is
        conn.send(marker_line(conn, target, before))
        return
    if account is None:
        _keep_own(conn, key, at)
        conn.send(marker_line(conn, target, at))
        return
    assert store is not None  # (checked above)
    if store.outcome(store.mark_read(account, key, at)) is not Outcome.KEPT:
        conn.fail("MARKREAD", "INTERNAL_ERROR", target, "The read timestamp could not be set")
        return
    _tell_account(conn, target, store.read_marker(account, key))


def _marker(conn: Connection, key: str) -> int | None:
    """``conn``'s marker of the target ``key`` (folded): its account's, or, not logged in,
    its own."""
    store = conn.server.store
    if conn.account_id is not None and store is not None:
        return store.read_marker(conn.account_id, key)
    return (conn.read_markers or {}).get(key)


def _keep_own(conn: Connection, key: str, at: int) -> None:
    """Move the marker of ``key`` of ``conn``, not logged in, to ``at``: the newest set of
    its at most MAX_SESSION_MARKERS. Under the world lock, as a rename moves them."""
    with conn.world.lock:
        kept = conn.read_markers
        if kept is None:
            kept = conn.read_markers = {}
        kept.pop(key, None)  # (set again: now the newest)
        if len(kept) >= MAX_SESSION_MARKERS:
            del kept[next(iter(kept))]  # the one set longest ago
        kept[key] = at


def _tell_account(conn: Connection, target: str, at: int | None) -> None:
    """The marker to every connection of ``conn``'s account with the capability, on this
    node and the others of a cluster (``conn`` itself as its command's answer)."""
    world = conn.world
    line = Relay(marker_line(conn, target, at))
    with world.lock:
        account = conn.account_id  # (logged out meanwhile: only its own answer)
        held = world.logged_in(account) if account is not None else []
        mine = [p for p in held if caps.READ_MARKER in p.caps]
        if conn not in mine:
            mine.append(conn)
        world.relay_to(mine, line, actor=conn)
