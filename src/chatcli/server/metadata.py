"""IRCv3 draft/metadata-2: keys and values on users and rooms, and who is told of them.

A *target* holds its metadata in a :class:`Metadata`: a user (a Connection, or a
cluster's Remote, in its ``metadata`` attribute; None until something is set) or a room
(:attr:`chatcli.server.channel.Channel.metadata`). The handlers (the METADATA command,
:mod:`chatcli.server.handlers.metadata`) use what is here: validation, the limits, the
lines, who is notified, and the bursts on connection and JOIN.

Keys our own clients use (any valid key is accepted; every key is public, visibility
``*``):

* ``display-name`` — the name to show instead of the nick;
* ``avatar`` — a URL of a picture;
* ``color`` — the colour to draw the nick in, ``#rrggbb``;
* ``status`` — a short line about what one is doing.

With draft/metadata-notify-2 too, a client that MONITORs a user is told of that user's
keys as if it shared a room with them: the current ones when it MONITORs them or they come
online, and each change.

Lifetime: a user's metadata lives with their connection. The connections logged in to one
account share one :class:`Metadata` (the same object), kept in the store (owner
``@<account id>``), so that it survives reconnects and restarts and every connection of
the account shows the same. A registered room's metadata is stored too (owner: the folded
room name); an unregistered room's lives while the room does.

Every cost is bounded: :data:`MAX_KEYS` keys per target, :data:`MAX_VALUE_BYTES` per
value, :data:`MAX_SUBS` subscriptions per connection, :data:`MAX_GET_KEYS` keys per GET,
and a burst (a JOIN's, a SYNC's, a new subscription's) of at most :data:`MAX_SYNC_LINES`
lines, past which the client is told to SYNC later (``RPL_METADATASYNCLATER``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from chatcli.protocol import Message, caps
from chatcli.protocol import numerics as n
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.channel import Channel
    from chatcli.server.connection import Connection
    from chatcli.server.state import World

#: How many keys one target may have.
MAX_KEYS = 20
#: How many bytes (UTF-8) one value may have.
MAX_VALUE_BYTES = 300
#: How many keys one connection may subscribe to.
MAX_SUBS = 50
#: How long a key may be (characters; every allowed character is one byte).
MAX_KEY_LEN = 64
#: How many keys one ``METADATA <target> GET`` may ask for.
MAX_GET_KEYS = 20
#: The most lines a JOIN's or SYNC's burst sends; past that, RPL_METADATASYNCLATER.
MAX_SYNC_LINES = 500
#: The seconds a client told RPL_METADATASYNCLATER is asked to wait before SYNC.
SYNC_RETRY = 2
#: The keys our clients use (documentation; every valid key is accepted).
WELL_KNOWN = ("display-name", "avatar", "color", "status")
#: The visibility of every key: public.
VISIBLE = "*"

#: A valid key: letters, digits and ``_.:/-``, not starting with ``:`` (it could not be a
#: middle parameter). The specification's set is letters, digits and ``_.:-``, case
#: insensitive; ``/`` is taken too, as Ergo and the newer drafts of the specification have
#: it. Keys are compared and kept in lower case (:func:`key_of`).
_KEY = re.compile(r"[a-z0-9_./-][a-z0-9_.:/-]*")
#: What an invalid key's failure says.
KEY_RULE = "Keys are letters, digits and _.:/- (not : first), at most 64"


def cap_value() -> str:
    """The capability's value in ``CAP LS 302``."""
    return (
        f"before-connect,max-subs={MAX_SUBS},max-keys={MAX_KEYS},max-value-bytes={MAX_VALUE_BYTES}"
    )


def key_of(name: str) -> str | None:
    """The key ``name`` names, in lower case (keys are case insensitive); None if it is
    not a valid key name."""
    if len(name) > MAX_KEY_LEN or not name.isascii():
        return None
    key = name.lower()
    return key if _KEY.fullmatch(key) is not None else None


def valid_key(key: str) -> bool:
    """Whether ``key`` is a valid key as kept: a valid key name, in lower case."""
    return key_of(key) == key


def value_problem(value: str) -> str | None:
    """Why ``value`` may not be set (a sentence), or None if it may."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # (bytes that were not UTF-8, kept as surrogates)
        return "Values must be UTF-8"
    if size > MAX_VALUE_BYTES:
        return f"Values may be at most {MAX_VALUE_BYTES} bytes"
    return None


class LimitReached(Exception):
    """A target has :data:`MAX_KEYS` keys already and a new one was to be set."""


class Metadata:
    """The keys and values of one target, in the order they were first set. Changed
    under the world lock."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values: dict[str, str] = dict(values or {})

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        """Set ``key`` to ``value``.

        Raises:
            LimitReached: ``key`` is new and the target has :data:`MAX_KEYS` keys.
        """
        if key not in self.values and len(self.values) >= MAX_KEYS:
            raise LimitReached(key)
        self.values[key] = value

    def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was set."""
        return self.values.pop(key, None) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self.values.items())

    def merge(self, other: Metadata) -> None:
        """Take ``other``'s keys over these, as far as the limit allows."""
        for key, value in other.items():
            if key in self.values or len(self.values) < MAX_KEYS:
                self.values[key] = value

    def to_wire(self) -> dict[str, str]:
        return dict(self.values)


def of(person: Any) -> Metadata:
    """``person``'s metadata (a Connection or a Remote), made empty when first needed."""
    if person.metadata is None:
        person.metadata = Metadata()
    return person.metadata


def items_of(holder: Any) -> list[tuple[str, str]]:
    """The keys and values of a person or room, none if it has no metadata."""
    metadata = holder.metadata
    return metadata.items() if metadata is not None else []


# -- lines ----------------------------------------------------------------------------------


def change_line(server: str, target: str, key: str, value: str | None) -> Message:
    """``METADATA <target> <key> * [:<value>]``: a notification (no value: the key was
    removed)."""
    params = (target, key, VISIBLE) if value is None else (target, key, VISIBLE, value)
    return Message("METADATA", params, server)


def subscribed(person: Any, key: str) -> bool:
    """Whether ``person`` reads metadata notifications of ``key``."""
    return caps.METADATA in person.caps and key in person.meta_subs


def watching(world: World, person: Any) -> list[Any]:
    """This node's watchers (MONITOR) of ``person`` who read its metadata notifications
    (draft/metadata-notify-2). Caller holds the world lock."""
    if person.nick is None:
        return []
    return [
        w
        for w in world.watchers.get(world.fold(person.nick), ())
        if caps.METADATA_NOTIFY in w.caps and caps.METADATA in w.caps
    ]


def sync_lines(conn: Connection, targets: Iterable[tuple[str, Any]]) -> list[bytes] | None:
    """The ``METADATA`` lines of ``targets`` (name, holder) for the keys ``conn``
    subscribed to; None if they would be more than :data:`MAX_SYNC_LINES`."""
    subs = conn.meta_subs
    if not subs:
        return []
    server = conn.config.name
    lines: list[bytes] = []
    for name, holder in targets:
        for key, value in items_of(holder):
            if key in subs:
                if len(lines) >= MAX_SYNC_LINES:
                    return None
                lines.append(change_line(server, name, key, value).to_bytes())
    return lines


def room_targets(channel: Channel) -> Iterator[tuple[str, Any]]:
    """A room and its members, as :func:`sync_lines` reads them."""
    yield channel.name, channel
    for member in list(channel.members):
        if member.metadata is not None and member.nick is not None:
            yield member.nick, member


def send_sync(conn: Connection, target: str, holders: Iterable[tuple[str, Any]]) -> None:
    """A ``metadata`` batch of ``holders``' subscribed keys, or RPL_METADATASYNCLATER for
    ``target`` if it would be too long. Caller holds the world lock, or ``holders`` are
    ``conn``'s own."""
    from chatcli.server import history

    lines = sync_lines(conn, holders)
    if lines is None:
        conn.reply(n.RPL_METADATASYNCLATER, target, str(SYNC_RETRY))
        return
    history.send_batch(conn, "metadata", (target,), lines)


def send_current(conn: Connection, keys: set[str]) -> None:
    """After ``conn`` subscribed to ``keys``: their values on itself, its rooms and their
    members, in a ``metadata`` batch (none if there are none); past
    :data:`MAX_SYNC_LINES` lines, RPL_METADATASYNCLATER for each of its rooms instead.
    Caller holds the world lock."""
    conn.world.assert_held()
    server = conn.config.name
    seen: set[Any] = set()
    lines: list[bytes] = []
    holders: list[tuple[str, Any]] = [(conn.name, conn)]
    for channel in conn.channels:
        holders.extend(room_targets(channel))
    for name, holder in holders:
        if holder in seen:
            continue
        seen.add(holder)
        for key, value in items_of(holder):
            if key in keys:
                if len(lines) >= MAX_SYNC_LINES:
                    for room in conn.channels:
                        conn.reply(n.RPL_METADATASYNCLATER, room.name, str(SYNC_RETRY))
                    return
                lines.append(change_line(server, name, key, value).to_bytes())
    if lines:
        from chatcli.server import history

        history.send_batch(conn, "metadata", (conn.name,), lines)


def join_burst(conn: Connection, channel: Channel) -> None:
    """After ``conn``'s JOIN: the room's metadata and its members' (the keys ``conn``
    subscribed to; RPL_METADATASYNCLATER if too much); and to members who subscribed to
    keys ``conn`` has set and shared no room with it before, those keys. Caller holds the
    world lock."""
    world = conn.world
    world.assert_held()
    if caps.METADATA in conn.caps and conn.meta_subs:
        lines = sync_lines(conn, room_targets(channel))
        if lines is None:
            conn.reply(n.RPL_METADATASYNCLATER, channel.name, str(SYNC_RETRY))
        elif lines:
            from chatcli.server import history

            history.send_batch(conn, "metadata", (channel.name,), lines)
    mine = items_of(conn)
    if not mine or caps.QUIET in conn.caps:
        return
    elsewhere = conn.channels - {channel}  # (who shares another room with it knows)
    others = [
        m
        for m in channel.members
        if m is not conn
        and caps.METADATA in m.caps
        and m.meta_subs
        and elsewhere.isdisjoint(m.channels)
    ]
    if not others:
        return
    for key, value in mine:
        told = [m for m in others if key in m.meta_subs]
        if told:
            relay = Relay(change_line(conn.config.name, conn.name, key, value))
            world.relay_to(told, relay, actor=None)


# -- who is told of a change ----------------------------------------------------------------


def sharing(world: World, person: Any) -> list[Any]:
    """Everyone (on every node) whose metadata is ``person``'s: ``person`` and the other
    connections logged in to its account. Caller holds the world lock."""
    if person.account_id is None:
        return [person]
    same = world.logged_in(person.account_id)
    if person not in same:
        same.append(person)
    return same


def notify_user(world: World, origin: Any, holders: list[Any], key: str, value: str | None) -> None:
    """``key`` of the user ``holders`` (one person, or the connections of one account)
    changed to ``value`` (None: removed), by ``origin`` (not told: its command's answer
    says it; None: by no command). Everyone subscribed to ``key`` who shares a room with
    one of them, and they themselves, are told, once each, naming the holder they know.
    Caller holds the world lock."""
    world.assert_held()
    told: set[Any] = {origin}
    server = holders[0].config.name
    for holder in holders:
        if holder.nick is None or not holder.registered:
            continue
        near = [*world.neighbours(holder), *watching(world, holder)]
        audience = list({p: None for p in near if p not in told and subscribed(p, key)})
        told.update(audience)
        if audience:
            relay = Relay(change_line(server, holder.nick, key, value))
            world.relay_to(audience, relay, actor=None)


def tell_watchers(world: World, person: Any, before: dict[str, str]) -> None:
    """``person`` (of a cluster's other node, or an account's connection changed by
    another node) had the keys ``before`` and has its keys now: this node's watchers of it
    who share no room with it (who do were told by the node that made the change) are
    told of each key that changed. Caller holds the world lock."""
    world.assert_held()
    watchers = watching(world, person)
    if not watchers:
        return
    after = dict(items_of(person))
    neighbours = world.neighbours(person)
    for key in {*before, *after}:
        if before.get(key) == after.get(key):
            continue
        told = [w for w in watchers if w not in neighbours and key in w.meta_subs]
        if told:
            relay = Relay(change_line(told[0].config.name, person.nick, key, after.get(key)))
            world.relay_to(told, relay, actor=None)


def send_watched(conn: Connection, people: Iterable[Any]) -> None:
    """After ``conn`` MONITORed ``people`` (online), with draft/metadata-notify-2: their
    subscribed keys, in a ``metadata`` batch for each (none for one with none). Caller
    holds the world lock."""
    if caps.METADATA_NOTIFY not in conn.caps or caps.METADATA not in conn.caps:
        return
    from chatcli.server import history

    for person in people:
        if person.nick is not None and (lines := sync_lines(conn, [(person.nick, person)])):
            history.send_batch(conn, "metadata", (person.nick,), lines)


def online(person: Any) -> None:
    """``person`` came online: its watchers with draft/metadata-notify-2 are sent its
    subscribed keys (each a METADATA line). Caller holds the world lock."""
    world = person.world
    mine = items_of(person)
    if not mine:
        return
    for watcher in watching(world, person):
        if watcher is person or not watcher.meta_subs:
            continue
        for key, value in mine:
            if key in watcher.meta_subs:
                line = change_line(watcher.config.name, person.nick, key, value)
                world.deliver(watcher, line.to_bytes())


def notify_room(world: World, origin: Any, channel: Channel, key: str, value: str | None) -> None:
    """``key`` of ``channel`` changed to ``value``: its members on this server subscribed to
    ``key`` (but ``origin``, whose command's answer says it) are told. (On a cluster each
    node tells its own, when it takes the room's new state: in the stream's order, so that
    who joined on another node a moment before hears of it.) Caller holds the world lock."""
    world.assert_held()
    audience = [
        m
        for m in channel.members
        if m is not origin and m in world.connections and subscribed(m, key)
    ]
    if audience:
        relay = Relay(change_line(audience[0].config.name, channel.name, key, value))
        world.relay_to(audience, relay, actor=None)


# -- the record of a person, for a cluster's other nodes -------------------------------------


def to_record(person: Any) -> dict[str, Any]:
    """What a cluster's other nodes keep of ``person``'s metadata and subscriptions."""
    metadata = person.metadata
    return {
        "meta": metadata.to_wire() if metadata is not None and len(metadata) else {},
        "subs": sorted(person.meta_subs),
    }


def from_record(person: Any, record: dict[str, Any]) -> None:
    """Take ``person``'s metadata and subscriptions from its record (:func:`to_record`),
    bounded as if they were set here."""
    meta = record.get("meta") or {}
    values = {str(k): str(v) for k, v in list(meta.items())[:MAX_KEYS] if valid_key(str(k))}
    if person.metadata is None:
        person.metadata = Metadata(values) if values else None
    else:
        person.metadata.values = values
    subs = record.get("subs") or ()
    person.meta_subs = frozenset(str(k) for k in list(subs)[:MAX_SUBS])
