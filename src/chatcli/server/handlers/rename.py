"""RENAME (IRCv3 draft/channel-rename): give a room a new name, keeping all else.

    RENAME <room> <new name> [:<reason>]

A room's operator renames it; its members, topic, modes, lists, invitations and ranks
stay, its history and read markers (those of clients not logged in too) follow it to the
new name, and so does its registration. Members who negotiated the capability are sent
``:<who> RENAME <old> <new> :<reason>`` (the reason may be empty); the others, as the
specification's fallback, a PART of the old name (with the reason), then a JOIN of the
new one with its topic and names, as on joining it, unless only the name's case changed
(then they are told nothing: for them it is the same room). The old name is free at
once: who joins it makes a new room (no redirection, which the specification leaves to
the server).

Refusals: not in the room (ERR_NOTONCHANNEL), not its operator (ERR_CHANOPRIVSNEEDED), no
such room (ERR_NOSUCHCHANNEL), and ``FAIL RENAME CHANNEL_NAME_IN_USE`` (another room has
the name) or ``FAIL RENAME CANNOT_RENAME`` (a name that is not valid, the server's
default room, renamed less than RENAME_COOLDOWN seconds ago: a rename sends
every member of a big room a burst, so a room cannot be made to send them one a moment).

On a cluster, the room is renamed on every node in the stream's order, and each node
tells its own members (:meth:`chatcli.server.cluster.ClusterWorld.rename_room`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from chatcli.protocol import Message, caps, is_valid_channel
from chatcli.server.commands import command
from chatcli.server.errors import ChanOPrivsNeeded
from chatcli.server.handlers.channels import member_channel, names_of, send_names, send_topic
from chatcli.server.history import marker_line
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.channel import Channel
    from chatcli.server.connection import Connection
    from chatcli.server.state import World

_DEFAULT_ROOM = "{room} is this server's default room: its settings name it"
#: Seconds before a room may be renamed again.
RENAME_COOLDOWN = 60.0


@command("RENAME", 2)
def rename(conn: Connection, msg: Message) -> None:
    """RENAME <room> <new name> [:<reason>] — give a room you run a new name."""
    new = msg.params[1]
    reason = msg.params[2][: conn.config.kick_len] if len(msg.params) > 2 else ""
    world = conn.world
    markers = _markers_before(conn, msg.params[0], new)  # (reads the database: not locked)
    with world.lock:
        channel = member_channel(conn, msg.params[0])
        old = channel.name
        if world.fold(old) == world.fold(conn.config.room):
            conn.fail("RENAME", "CANNOT_RENAME", old, new, _DEFAULT_ROOM.format(room=old))
            return
        if not channel.is_op(conn):
            raise ChanOPrivsNeeded(old)
        refusal = _refusal(conn, channel, new)
        if refusal is not None:
            code, text = refusal
            conn.fail("RENAME", code, old, new, text)
            return
        world.rename_room(channel, new)
        channel.renamed_at = time.monotonic()
        store = world.store
        if store is not None:  # the history, read markers and registration follow it
            store.rename_room(world.fold(old), world.fold(new), new)
        line = Message("RENAME", (old, new, reason), conn.source)
        tell(world, channel, line, conn.account, [conn], actor=conn, markers=markers)
        world.tell_renamed(channel, line, conn.account, skip=conn, markers=markers)


def _markers_before(conn: Connection, name: str, new: str) -> dict[int, int | None]:
    """The read markers of the room ``name`` of the accounts of its members who will be
    told of its rename by the fallback and have draft/read-marker: the fallback's JOIN is
    followed by the marker, as any JOIN (account id to unix ms, None for no marker). Read
    before the rename, without the world lock, from a glance at the room's members (who
    joins meanwhile is told no marker); only for a rename that the glance finds allowed
    (by an operator of the room, to a free valid name, past the cooldown), so that a
    refused RENAME reads nothing and a room's members are read at most once a cooldown."""
    world, store = conn.world, conn.server.store
    channel = world.channels.get(world.fold(name))  # a glance: the rename checks again
    if store is None or channel is None or not channel.is_op(conn):
        return {}
    if world.fold(name) == world.fold(conn.config.room) or _refusal(conn, channel, new):
        return {}
    wanted = {
        member.account_id
        for member in list(channel.members)
        if member.account_id is not None
        and caps.READ_MARKER in member.caps
        and caps.CHANNEL_RENAME not in member.caps
    }
    marked = store.read_markers_of(world.fold(channel.name), wanted)
    return {account_id: marked.get(account_id) for account_id in wanted}


def _refusal(conn: Connection, channel: Channel, new: str) -> tuple[str, str] | None:
    """Why ``channel`` may not be named ``new`` (the FAIL code and text), if it may not."""
    world = conn.world
    if not is_valid_channel(new, conn.config.channel_len):
        return "CANNOT_RENAME", f"{new} is not a valid room name"
    taken = world.find_channel(new)
    if taken is not None and taken is not channel:
        return "CHANNEL_NAME_IN_USE", f"{taken.name} is the name of another room"
    if channel.renamed_at and time.monotonic() - channel.renamed_at < RENAME_COOLDOWN:
        return "CANNOT_RENAME", "This room was renamed less than a minute ago"
    return None


def tell(
    world: World,
    channel: Channel,
    line: Message,
    account: str | None,
    people: Iterable[Connection],
    *,
    actor: Connection | None = None,
    markers: dict[int, int | None] | None = None,
) -> None:
    """Tell ``people`` (this server's own connections, members of ``channel``) of its
    rename, ``line`` (``RENAME <old> <new> <reason>``, from who renamed it, logged in to
    ``account``): as such to those with the capability, as a PART and a JOIN (the
    fallback) to the others, with the room's read marker before the end of NAMES for who
    has draft/read-marker (an account's from ``markers``, read before the rename; one
    not logged in, its own). ``actor``, who renamed it, gets its copy as its command's
    output. Caller holds the lock."""
    world.assert_held()
    old, _, reason = line.params
    relay = Relay(line, account=account)
    new = world.fold(channel.name)
    same = world.fold(old) == new
    listed: dict[tuple[bool, bool], bytes] = {}  # the room's names, once per form
    for person in people:
        own = person.read_markers  # (not logged in: its own marker follows the room too)
        if own and not same and world.fold(old) in own:
            own[new] = own.pop(world.fold(old))
        out = person if person is actor else person.delivery
        if caps.CHANNEL_RENAME in person.caps:
            out.send_bytes(relay.to(person.profile) or b"")
            continue
        if same:
            continue  # (only the case changed: for them, the same room)
        part = Message("PART", (old, reason) if reason else (old,), person.source)
        account = person.account or "*"  # (extended-join's "not logged in")
        extended = Message("JOIN", (channel.name, account, person.realname), person.source)
        join = Relay(Message("JOIN", (channel.name,), person.source), extended=extended)
        out.send_bytes((Relay(part).to(person.profile) or b"") + (join.to(person.profile) or b""))
        if channel.topic:
            send_topic(out, channel)  # type: ignore[arg-type]
        if caps.READ_MARKER in person.caps:
            kept = markers or {}
            if person.account_id is None:
                out.send(marker_line(person, channel.name, (person.read_markers or {}).get(new)))
            elif person.account_id in kept:
                out.send(marker_line(person, channel.name, kept[person.account_id]))
        form = (caps.MULTI_PREFIX in person.caps, caps.USERHOST_IN_NAMES in person.caps)
        if form not in listed:  # (made once per form, not once per member, under the lock)
            listed[form] = names_of(channel, person)
        send_names(person, channel, out=out, names=listed[form])
