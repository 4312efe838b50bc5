"""A connection's nick changes hands: claimed in the world's table, told to those who share
a room with it and to MONITOR watchers. Below the command handlers: NICK, and the nick
enforcement of registered accounts, both rename through it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatcli.protocol import Message
from chatcli.server.handlers import monitor
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.connection import Connection


def rename(conn: Connection, new: str, *, actor: Connection | None) -> None:
    """Give ``conn`` the nick ``new`` and, once registered, tell everyone who shares a
    room with it (and MONITOR watchers). Caller holds the world lock.

    Raises:
        NicknameInUse: another connection holds it.
    """
    conn.world.assert_held()
    world = conn.world
    old_source, old_name = conn.source, conn.name
    renamed = conn.registered and world.fold(new) != conn.folded_nick
    if renamed:
        monitor.announce(conn, online=False)
    world.claim_nick(conn, new)
    if renamed:
        monitor.announce(conn, online=True)
    if conn.registered:
        world.remember(conn, old_name)
        relay = Relay(Message("NICK", (new,), old_source), account=conn.account)
        world.relay_to(world.neighbours(conn), relay, actor=actor)
