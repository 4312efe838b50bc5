"""Rooms: JOIN, PART, TOPIC, NAMES, LIST, KICK, INVITE."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chatcli.protocol import Message, caps, is_valid_channel
from chatcli.protocol import numerics as n
from chatcli.server import history, metadata
from chatcli.server.channel import Channel
from chatcli.server.commands import command
from chatcli.server.errors import (
    ChanOPrivsNeeded,
    IRCError,
    NeedMoreParams,
    NoSuchChannel,
    NoSuchNick,
    NotOnChannel,
    TooManyChannels,
    TooManyTargets,
    UserNotInChannel,
    UserOnChannel,
)
from chatcli.server.handlers import rooms
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.connection import Connection, Speaker
    from chatcli.server.store import Stored


def broadcast(
    conn: Connection, channel: Channel, msg: Message, extended: Message | None = None
) -> Relay:
    """Relay ``msg``, which ``conn`` caused, to every member of ``channel``: serialised
    once per form (``extended``: the form for extended-join). ``conn``'s own copy is sent
    apart, as part of its response to the command."""
    relay = Relay(msg, extended=extended, bot="B" in conn.modes, account=conn.account)
    conn.world.broadcast(channel, relay, skip=conn)
    if conn in channel.members:
        conn.echo(relay)
    return relay


def announce(
    conn: Connection, channel: Channel, msg: Message, extended: Message | None = None
) -> None:
    """:func:`broadcast` ``conn``'s own coming or going (JOIN, PART); a quiet client's
    (:data:`caps.QUIET`) only to itself."""
    if caps.QUIET in conn.caps:
        relay = Relay(msg, extended=extended, bot="B" in conn.modes, account=conn.account)
        conn.echo(relay)
    else:
        broadcast(conn, channel, msg, extended)


def member_channel(conn: Connection, name: str) -> Channel:
    """The channel ``name``, which ``conn`` must be in. Caller holds the world lock."""
    conn.world.assert_held()
    channel = conn.world.find_channel(name)
    if channel is None:
        raise NoSuchChannel(name)
    if conn not in channel.members:
        raise NotOnChannel(channel.name)
    return channel


def op_channel(conn: Connection, name: str) -> Channel:
    """The channel ``name``, where ``conn`` must be an operator. Caller holds the lock."""
    conn.world.assert_held()
    channel = member_channel(conn, name)
    if not channel.is_op(conn):
        raise ChanOPrivsNeeded(channel.name)
    return channel


# -- JOIN, PART -----------------------------------------------------------------------------


@command("JOIN", 1)
def join(conn: Connection, msg: Message) -> None:
    """JOIN <room>{,<room>} [<key>{,<key>}] — enter rooms, creating them if new.
    JOIN 0 leaves every room."""
    if msg.params[0] == "0":
        with conn.world.lock:
            for channel in list(conn.channels):
                _part(conn, channel, "Left all channels")
        return
    keys = msg.params[1].split(",") if len(msg.params) > 1 else []
    for i, name in enumerate(msg.params[0].split(",")):
        try:
            join_channel(conn, name, keys[i] if i < len(keys) else None)
        except IRCError as err:
            conn.send_error(err)


#: How often a JOIN reads a room's history again when the room went (and so its lines in
#: memory) between the read and the join; past that, the room starts with none in memory.
PRELOAD_TRIES = 3


def join_channel(conn: Connection, name: str, key: str | None) -> None:
    """Join ``conn`` to ``name``: announce it to the room, then send topic, names and its
    latest lines.

    The room's history, if it must be read from the database (a room being made again), is
    read before taking the world lock, never under it; the replay itself is sent under the
    lock, from memory, so that it comes after the JOIN and before any later line of the
    room."""
    world = conn.world
    if not is_valid_channel(name, conn.config.channel_len):
        raise NoSuchChannel(name)
    world.assert_not_held()
    reads = conn.server.store is not None and conn.config.replay_lines > 0
    for tries_left in range(PRELOAD_TRIES - 1, -1, -1):
        preloaded = history.preload(conn, name)  # (reads the database: not under the lock)
        with world.lock:
            channel = world.find_channel(name)
            if channel is None and preloaded is None and reads and tries_left:
                continue  # the room went since the glance: read its history, then again
            _join_locked(conn, name, key, channel, preloaded)
            return


def _join_locked(
    conn: Connection,
    name: str,
    key: str | None,
    channel: Channel | None,
    preloaded: list[Stored] | None,
) -> None:
    """:func:`join_channel` under the world lock: ``channel`` is the room ``name`` (None:
    there is none yet), ``preloaded`` its history read before."""
    world = conn.world
    world.assert_held()
    if channel is not None and conn in channel.members:
        return
    if len(conn.channels) >= conn.config.max_channels:
        raise TooManyChannels(name)
    if channel is None:
        channel = Channel(name, int(time.time()))
        world.add_room(channel)
        world.add_member(channel, conn, {"o"})  # who creates a room runs it
    else:
        channel.check_join(conn, key)
        world.add_member(channel, conn, {"o"} if rooms.starts_as_op(conn, channel) else set())
    account = conn.account or "*"  # "*": extended-join's "not logged in"
    extended = Message("JOIN", (channel.name, account, conn.realname), conn.source)
    announce(conn, channel, Message("JOIN", (channel.name,), conn.source), extended)
    if conn.away is not None and caps.QUIET not in conn.caps:  # away-notify: say so
        away = Relay(Message("AWAY", (conn.away,), conn.source), account=conn.account)
        told = [m for m in channel.members if m is not conn and caps.AWAY_NOTIFY in m.caps]
        world.relay_to(told, away, actor=conn)
    if channel.topic:
        send_topic(conn, channel)
    history.send_marker(conn, preloaded)  # (draft/read-marker: before the end of NAMES)
    send_names(conn, channel)
    metadata.join_burst(conn, channel)  # (draft/metadata-2)
    history.replay(conn, channel, preloaded)


@command("PART", 1)
def part(conn: Connection, msg: Message) -> None:
    """PART <room>{,<room>} [:<reason>] — leave rooms."""
    reason = msg.params[1] if len(msg.params) > 1 else ""
    for name in msg.params[0].split(","):
        with conn.world.lock:
            try:
                _part(conn, member_channel(conn, name), reason)
            except IRCError as err:
                conn.send_error(err)


def _part(conn: Connection, channel: Channel, reason: str) -> None:
    params = (channel.name, reason) if reason else (channel.name,)
    announce(conn, channel, Message("PART", params, conn.source))
    conn.world.remove_member(channel, conn)


# -- TOPIC ----------------------------------------------------------------------------------


@command("TOPIC", 1)
def topic(conn: Connection, msg: Message) -> None:
    """TOPIC <room> [:<topic>] — show the topic, or set it (clear it with an empty topic)."""
    with conn.world.lock:
        if len(msg.params) == 1:
            channel = conn.world.find_channel(msg.params[0])
            if channel is None:
                raise NoSuchChannel(msg.params[0])
            if channel.hidden_from(conn):
                raise NotOnChannel(channel.name)
            send_topic(conn, channel)
            return
        channel = member_channel(conn, msg.params[0])
        if "t" in channel.modes and not channel.is_op(conn):
            raise ChanOPrivsNeeded(channel.name)
        channel.topic = msg.params[1][: conn.config.topic_len]
        channel.topic_by = conn.source
        channel.topic_at = int(time.time())
        rooms.save(conn.world, channel)
        change = Message("TOPIC", (channel.name, channel.topic), conn.source)
        relay = broadcast(conn, channel, change)
        # (kept for CHATHISTORY with draft/event-playback: see history.is_event)
        history.record(conn, conn.world.fold(channel.name), change, relay, "")


def send_topic(conn: Connection, channel: Channel) -> None:
    if not channel.topic:
        conn.reply(n.RPL_NOTOPIC, channel.name, "No topic is set")
        return
    conn.reply(n.RPL_TOPIC, channel.name, channel.topic)
    conn.reply(n.RPL_TOPICWHOTIME, channel.name, channel.topic_by, str(channel.topic_at))


# -- NAMES, LIST ----------------------------------------------------------------------------


@command("NAMES")
def names(conn: Connection, msg: Message) -> None:
    """NAMES [<room>{,<room>}] — who is in a room (every room you can see, with none given)."""
    with conn.world.lock:
        if not msg.params:
            for channel in list(conn.world.channels.values()):
                if not channel.hidden_from(conn):
                    send_names(conn, channel, end=False)
            conn.reply(n.RPL_ENDOFNAMES, "*", "End of /NAMES list")
            return
        for name in _targets(conn, "NAMES", msg.params[0]):  # then one end, for them all
            channel = conn.world.find_channel(name)
            if channel is not None and not channel.hidden_from(conn):
                send_names(conn, channel, end=False)
    conn.reply(n.RPL_ENDOFNAMES, msg.params[0], "End of /NAMES list")


def _targets(conn: Connection, command: str, param: str, *, once: bool = True) -> list[str]:
    """The comma-separated targets of ``param`` (with ``once``, each only once), at most
    ``max_targets`` of them (TARGMAX): each costs a room's worth of work, its names or a
    broadcast to it.

    Raises:
        TooManyTargets: more.
    """
    targets = param.split(",")
    if once:
        fold = conn.world.fold
        targets = list({fold(target): target for target in targets}.values())
    if len(targets) > conn.config.max_targets:
        raise TooManyTargets(
            param, text=f"Too many targets for {command} (at most {conn.config.max_targets})"
        )
    return targets


def names_of(channel: Channel, conn: Connection) -> bytes:
    """The names of ``channel``'s members as NAMES shows them to ``conn`` (its prefixes,
    nicks or sources, as its capabilities ask; invisible people only to a member),
    space-separated."""
    multi = "multi-prefix" in conn.caps
    full = "userhost-in-names" in conn.caps
    visible = conn in channel.members
    # Written for speed: every JOIN sends the whole list, so a room's first thousand joins
    # cost half a million entries.
    entries = [
        (channel.prefix_of(member, multi) if modes else "")
        + (member.source if full else member.nick or "*")
        for member, modes in channel.members.items()
        if visible or "i" not in member.modes
    ]
    return " ".join(entries).encode()


def send_names(
    conn: Connection,
    channel: Channel,
    *,
    end: bool = True,
    out: Speaker | None = None,
    names: bytes | None = None,
) -> None:
    """RPL_NAMREPLY lines, each within the line limit, then RPL_ENDOFNAMES; sent by
    ``out`` if given (``conn.delivery``: not as ``conn``'s own command's output); the
    names :func:`names_of` gives, unless ``names`` has them already."""
    # Every part is a checked nick, source or room name, so the lines are made as bytes:
    # the list is joined once and cut at spaces, a step per line rather than per entry.
    head = f":{conn.config.name} {n.RPL_NAMREPLY} {conn.name} {channel.symbol} {channel.name} :"
    head_bytes = head.encode()
    room = 510 - len(head_bytes)
    if names is None:
        names = names_of(channel, conn)
    lines = []
    start = 0
    while start < len(names):
        stop = len(names) if len(names) - start <= room else names.rfind(b" ", start, start + room)
        if stop <= start:  # no space to cut at: cannot happen with valid names, but bounded
            stop = start + room
        lines.append(head_bytes + names[start:stop] + b"\r\n")
        start = stop + 1
    if end:
        lines.append(
            Message(
                n.RPL_ENDOFNAMES, (conn.name, channel.name, "End of /NAMES list"), conn.config.name
            ).to_bytes()
        )
    if lines:
        (out or conn).send_bytes(b"".join(lines))


# -- KICK, INVITE ---------------------------------------------------------------------------


@command("KICK", 2)
def kick(conn: Connection, msg: Message) -> None:
    """KICK <room>{,<room>} <nick>{,<nick>} [:<reason>] — remove someone from a room you
    run: every nick from one room, or each nick from the room in the same place."""
    # No reason, or an empty one (irssi sends that): the kicker's nick, as on Ergo.
    reason = (msg.params[2][: conn.config.kick_len] if len(msg.params) > 2 else "") or conn.name
    rooms, nicks = msg.params[0].split(","), _targets(conn, "KICK", msg.params[1], once=False)
    if len(rooms) == 1:
        rooms = rooms * len(nicks)
    elif len(rooms) != len(nicks):
        raise NeedMoreParams("KICK")  # RFC 2812 3.2.8: as many rooms as nicks, or one
    world = conn.world
    with world.lock:
        for room, nick in zip(rooms, nicks, strict=True):
            try:
                _kick(conn, op_channel(conn, room), nick, reason)
            except IRCError as err:
                conn.send_error(err)


def _kick(conn: Connection, channel: Channel, nick: str, reason: str) -> None:
    target = conn.world.find_nick(nick)
    if target is None:
        raise NoSuchNick(nick)
    if target not in channel.members:
        raise UserNotInChannel(nick, channel.name)
    broadcast(conn, channel, Message("KICK", (channel.name, target.name, reason), conn.source))
    conn.world.remove_member(channel, target)


@command("INVITE")
def invite(conn: Connection, msg: Message) -> None:
    """INVITE <nick> <room> — invite someone into a room (needed for +i rooms).
    INVITE alone lists the rooms you are invited to."""
    if not msg.params:
        with conn.world.lock:
            rooms = [channel.name for channel in conn.invited_to or ()]
        for room in sorted(rooms):
            conn.reply(n.RPL_INVITELIST, room)
        conn.reply(n.RPL_ENDOFINVITELIST, "End of /INVITE list")
        return
    if len(msg.params) < 2:
        raise NeedMoreParams("INVITE")
    nick, name = msg.params[0], msg.params[1]
    world = conn.world
    with world.lock:
        target = world.find_nick(nick)
        if target is None:
            raise NoSuchNick(nick)
        channel = member_channel(conn, name)
        if "i" in channel.modes and not channel.is_op(conn):
            raise ChanOPrivsNeeded(channel.name)
        if target in channel.members:
            raise UserOnChannel(target.name, channel.name)
        world.invite(channel, target)
        conn.reply(n.RPL_INVITING, target.name, channel.name)
        if target.away is not None:
            conn.reply(n.RPL_AWAY, target.name, target.away)
        relay = Relay(
            Message("INVITE", (target.name, channel.name), conn.source), account=conn.account
        )
        told = [target]
        for member in channel.members:  # invite-notify: tell those who could invite too
            if (
                member is not conn
                and caps.INVITE_NOTIFY in member.caps
                and ("i" not in channel.modes or channel.is_op(member))
            ):
                told.append(member)
        world.relay_to(told, relay, actor=conn)
