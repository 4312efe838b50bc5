"""Registered rooms (ChanServ): a room whose topic, modes, key and operators survive restarts.

An operator of a room who is logged in registers it with ``/msg ChanServ REGISTER #room``
and becomes its founder. A registered room stays when empty; whoever joins it with the
account of its founder, or of anyone who held ``+o`` there while it was saved, gets ``+o``
back. Its state is saved whenever its topic, modes or operators change.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chatcli.protocol import is_channel
from chatcli.server.channel import Channel
from chatcli.server.handlers.accounts import NO_DATABASE, service_notice
from chatcli.server.store import RoomRecord

if TYPE_CHECKING:
    from chatcli.server.connection import Connection
    from chatcli.server.state import World
    from chatcli.server.store import Store

SOURCE = "ChanServ!ChanServ@services"
HELP = (
    "ChanServ keeps a room as it is: its topic, modes, key and operators survive restarts.",
    "REGISTER <#room>  register a room you run (you must be logged in)",
    "INFO <#room>      who registered a room, and when",
    "DROP <#room>      stop keeping it (its founder only)",
)


def chanserv_command(conn: Connection, text: str) -> None:
    """Run one ChanServ command, answered with NOTICEs from ChanServ."""
    verb, *args = text.split() or ["HELP"]
    verb = verb.upper()
    store = conn.server.store
    if verb == "HELP":
        for line in HELP:
            service_notice(conn, line, SOURCE)
        return
    if store is None:
        service_notice(conn, NO_DATABASE + ".", SOURCE)
        return
    if verb not in ("REGISTER", "INFO", "DROP") or not args or not is_channel(args[0]):
        service_notice(conn, f"Usage: {verb} <#room>. /msg ChanServ HELP lists them.", SOURCE)
        return
    world = conn.world
    with world.lock:
        channel = world.find_channel(args[0])
        if channel is None:
            service_notice(conn, f"There is no room {args[0]}.", SOURCE)
        elif verb == "INFO":
            service_notice(conn, _info(channel), SOURCE)
        elif conn.account is None:
            service_notice(conn, "Log in first: rooms belong to accounts.", SOURCE)
        elif verb == "REGISTER":
            _register(conn, channel, store)
        else:
            _drop(conn, channel, store)


def _info(channel: Channel) -> str:
    if channel.founder is None:
        return f"{channel.name} is not registered."
    since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(channel.created))
    return f"{channel.name} was registered by {channel.founder}; it exists since {since}."


def _register(conn: Connection, channel: Channel, store: Store) -> None:
    assert conn.account is not None
    if channel.founder is not None:
        service_notice(conn, f"{channel.name} is registered already.", SOURCE)
    elif not channel.is_op(conn):
        service_notice(conn, f"Only an operator of {channel.name} may register it.", SOURCE)
    else:
        channel.founder = conn.account
        channel.permanent = True
        save(conn.world, channel)
        service_notice(conn, f"{channel.name} is registered to {conn.account}.", SOURCE)


def _drop(conn: Connection, channel: Channel, store: Store) -> None:
    account = conn.world.fold(conn.account or "")
    if channel.founder is None or conn.world.fold(channel.founder) != account:
        service_notice(conn, f"Only the founder of {channel.name} may drop it.", SOURCE)
        return
    store.drop_room(conn.world.fold(channel.name))
    channel.founder = None
    channel.op_accounts.clear()
    channel.permanent = conn.world.fold(channel.name) == conn.world.fold(conn.config.room)
    service_notice(conn, f"{channel.name} is no longer registered.", SOURCE)


def save(world: World, channel: Channel) -> None:
    """Save a registered room's state (a no-op for others). Caller holds the world lock."""
    store = world.store
    if channel.founder is None or store is None:
        return
    for member, prefixes in channel.members.items():
        if member.account is not None:
            folded = world.fold(member.account)
            (channel.op_accounts.add if "o" in prefixes else channel.op_accounts.discard)(folded)
    channel.op_accounts.add(world.fold(channel.founder))
    record = RoomRecord(
        name=channel.name,
        founder=channel.founder,
        created=channel.created,
        topic=channel.topic,
        topic_by=channel.topic_by,
        topic_at=channel.topic_at,
        modes="".join(sorted(channel.modes)),
        key=channel.key,
        limit=channel.limit,
        operators=tuple(sorted(channel.op_accounts)),
    )
    store.save_room(world.fold(channel.name), record)


def load(world: World, store: Store) -> None:
    """Put every registered room in ``world`` (at start-up)."""
    for record in store.rooms():
        channel = Channel(
            record.name,
            record.created,
            modes=set(record.modes),
            key=record.key,
            limit=record.limit,
            topic=record.topic,
            topic_by=record.topic_by,
            topic_at=record.topic_at,
            permanent=True,
            founder=record.founder,
            op_accounts=set(record.operators),
        )
        world.channels[world.fold(record.name)] = channel


def starts_as_op(conn: Connection, channel: Channel) -> bool:
    """Whether ``conn`` gets +o on joining registered ``channel``."""
    return conn.account is not None and conn.world.fold(conn.account) in channel.op_accounts
