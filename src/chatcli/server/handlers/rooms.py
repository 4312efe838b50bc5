"""Registered rooms (ChanServ): a room whose topic, modes, key and operators survive restarts.

An operator of a room who is logged in registers it with ``/msg ChanServ REGISTER #room``
and becomes its founder. A registered room stays when empty; whoever joins it with the
account of its founder, or of anyone who held ``+o`` there while it was saved, gets ``+o``
back. Its state is saved whenever its topic, modes or operators change.

Founders and operators are accounts' identities (``@<id>``, see
:attr:`chatcli.server.store.Account.identity`), never names: when an account is dropped it
loses them (:func:`forget_account`), and a room it founded passes to another of its
registered operators or, with none, stops being registered; the room is told.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chatcli.protocol import Message, is_channel
from chatcli.server import history, metadata
from chatcli.server.channel import Channel
from chatcli.server.services import NO_DATABASE, service_notice
from chatcli.server.store import RoomRecord
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.connection import Connection
    from chatcli.server.state import World
    from chatcli.server.store import Account, Store

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
    if verb == "INFO":
        with world.lock:
            channel = world.find_channel(args[0])
            found = (channel.name, channel.founder, channel.created) if channel else None
        if found is None:
            service_notice(conn, f"There is no room {args[0]}.", SOURCE)
        else:
            service_notice(conn, _info(store, *found), SOURCE)
        return
    with world.lock:
        channel = world.find_channel(args[0])
        if channel is None:
            service_notice(conn, f"There is no room {args[0]}.", SOURCE)
        elif conn.account is None:
            service_notice(conn, "Log in first: rooms belong to accounts.", SOURCE)
        elif verb == "REGISTER":
            _register(conn, channel, store)
        else:
            _drop(conn, channel, store)


def _info(store: Store, name: str, founder: str | None, created: int) -> str:
    """What ChanServ INFO says of a room. Reads the database: without the world lock."""
    if founder is None:
        return f"{name} is not registered."
    account = store.account_by_id(int(founder[1:]))
    who = account.name if account is not None else "an account since dropped"
    since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(created))
    return f"{name} was registered by {who}; it exists since {since}."


def _register(conn: Connection, channel: Channel, store: Store) -> None:
    assert conn.account is not None
    if channel.founder is not None:
        service_notice(conn, f"{channel.name} is registered already.", SOURCE)
    elif not channel.is_op(conn):
        service_notice(conn, f"Only an operator of {channel.name} may register it.", SOURCE)
    else:
        channel.founder = history.identity(conn)
        channel.permanent = True
        save(conn.world, channel)
        store.replace_metadata(conn.world.fold(channel.name), metadata.items_of(channel))
        service_notice(conn, f"{channel.name} is registered to {conn.account}.", SOURCE)


def _drop(conn: Connection, channel: Channel, store: Store) -> None:
    if channel.founder is None or channel.founder != history.identity(conn):
        service_notice(conn, f"Only the founder of {channel.name} may drop it.", SOURCE)
        return
    _unregister(conn.world, channel, store, conn.config.room)
    service_notice(conn, f"{channel.name} is no longer registered.", SOURCE)


def _unregister(world: World, channel: Channel, store: Store, default_room: str) -> None:
    store.drop_room(world.fold(channel.name))
    channel.founder = None
    channel.op_accounts.clear()
    channel.permanent = world.fold(channel.name) == world.fold(default_room)
    world.room_changed(channel)


def forget_account(world: World, account: Account, default_room: str) -> None:
    """``account`` is being dropped: it is no longer an operator of any registered room,
    and each room it founded passes to another of its registered operators (the first by
    id: the oldest account) or, with none, is no longer registered. Each room changed is
    told by ChanServ."""
    store = world.store
    if store is None:
        return
    gone = account.identity
    with world.lock:
        for channel in list(world.channels.values()):
            if channel.founder is None or gone not in channel.op_accounts | {channel.founder}:
                continue
            channel.op_accounts.discard(gone)
            if channel.founder != gone:
                save(world, channel, forgetting=gone)
                continue
            heirs = sorted(channel.op_accounts, key=lambda identity: int(identity[1:]))
            if heirs:
                channel.founder = heirs[0]
                save(world, channel, forgetting=gone)
                text = (
                    f"{channel.name}'s founder {account.name} dropped their account: the "
                    "room now belongs to the next of its registered operators."
                )
            else:
                _unregister(world, channel, store, default_room)
                text = (
                    f"{channel.name}'s founder {account.name} dropped their account, and "
                    "no other registered operator is left: the room is no longer registered."
                )
            relay = Relay(Message("NOTICE", (channel.name, text), SOURCE))
            world.broadcast(channel, relay)


def save(world: World, channel: Channel, forgetting: str | None = None) -> None:
    """A room's state changed: tell a cluster's other nodes (World.room_changed), and
    save a registered room's state (a no-op for others): who of its members is an
    operator now (but ``forgetting``, an account being dropped), its topic and modes.
    Caller holds the world lock."""
    world.assert_held()
    world.room_changed(channel)
    store = world.store
    if channel.founder is None or store is None:
        return
    for member, prefixes in channel.members.items():
        if member.account_id is not None:
            identity = history.identity(member)
            if identity != forgetting:
                op = "o" in prefixes
                (channel.op_accounts.add if op else channel.op_accounts.discard)(identity)
    channel.op_accounts.add(channel.founder)
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
        if kept := store.metadata_of(world.fold(record.name)):
            channel.metadata = metadata.Metadata(kept)
        world.add_room(channel)


def starts_as_op(conn: Connection, channel: Channel) -> bool:
    """Whether ``conn`` gets +o on joining registered ``channel``."""
    return conn.account_id is not None and history.identity(conn) in channel.op_accounts
