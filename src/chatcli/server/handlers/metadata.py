"""METADATA (IRCv3 draft/metadata-2): keys and values on users and rooms.

    METADATA <target> GET <key> [<key>...]   the values of keys (a ``metadata`` batch)
    METADATA <target> LIST                   every key and value (a ``metadata`` batch)
    METADATA <target> SET <key> [:<value>]   set a key, or remove it (no value)
    METADATA <target> CLEAR                  remove every key
    METADATA * SUB <key> [<key>...]          be told of changes of these keys
    METADATA * UNSUB <key> [<key>...]        no longer
    METADATA * SUBS                          the keys subscribed to
    METADATA <target> SYNC                   the subscribed keys of a user, or of a room
                                             and its members (a ``metadata`` batch)

``<target>`` is ``*`` (yourself), a nick or a room. Anyone may read a user's metadata, and
a room's, but a secret or private room's only its members (to anyone else it does not
exist). Only the user may change their own; a room's, only its operators. Answers:
``761 RPL_KEYVALUE <target> <key> * :<value>`` for a value (a SET's answer too),
``766 RPL_KEYNOTSET <target> <key>`` for a key without one (a removal's answer too),
``768 ERR_KEYNOTSET <target> <key>`` for the removal of a key that has no value, and the
failures ``FAIL METADATA <code>``: ``NEED_MORE_PARAMS``, ``INVALID_SUBCOMMAND
<subcommand>``, ``INVALID_TARGET <target>``, ``INVALID_KEY <key>``, ``KEY_NO_PERMISSION
<target> <key>``, ``VALUE_INVALID``, ``LIMIT_REACHED <target>``, ``TOO_MANY_SUBS <key>``.
Every batch's parameter is its target (a room's for a JOIN's, the client's own nick for
the one on connection). Keys are case insensitive: ``Display-Name`` is ``display-name``,
and answers name keys in lower case. A change the store was to keep (a logged-in user's,
a registered room's) is answered once written; if it could not be, ``WARN METADATA
NOT_KEPT <target> <key>`` comes first (the change holds in memory meanwhile). Limits,
notifications and bursts: :mod:`chatcli.server.metadata`.

It works before registration too, with the capability (its value says ``before-connect``):
what is set then applies once connected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatcli.protocol import Message, caps, is_valid_channel
from chatcli.protocol import numerics as n
from chatcli.server import history
from chatcli.server import metadata as meta
from chatcli.server.commands import command
from chatcli.server.errors import NotRegistered
from chatcli.server.store import Outcome

if TYPE_CHECKING:
    from chatcli.server.channel import Channel
    from chatcli.server.connection import Connection

#: How many keys one 770/771/772 line names.
KEYS_PER_LINE = 10


class Failed(Exception):
    """A FAIL METADATA reply: its code and context (the text last)."""

    def __init__(self, code: str, *params: str) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


@command("METADATA", 0, before_registration=True)
def metadata(conn: Connection, msg: Message) -> None:
    """METADATA <target> GET|LIST|SET|CLEAR|SUB|UNSUB|SUBS|SYNC [<key>...] [:<value>] —
    keys and values on users (* is you) and rooms: display-name, avatar, color, status."""
    if not conn.registered and caps.METADATA not in conn.caps:
        raise NotRegistered()
    params = msg.params
    if len(params) < 2 or not params[0]:
        conn.fail("METADATA", "NEED_MORE_PARAMS", "Missing parameters")
        return
    target, sub, args = params[0], params[1].upper(), list(params[2:])
    handler = SUBCOMMANDS.get(sub)
    if handler is None:
        conn.fail(
            "METADATA", "INVALID_SUBCOMMAND", _shown(params[1]), "Unknown METADATA subcommand"
        )
        return
    try:
        handler(conn, target, args)
    except Failed as failed:
        conn.fail("METADATA", failed.code, *failed.params)


# -- targets --------------------------------------------------------------------------------


def _find(conn: Connection, target: str) -> tuple[str, Any, Channel | None]:
    """The target's name as answers show it, its holder (a person or a room), and the
    room if it is one. Caller holds the world lock.

    Raises:
        Failed: INVALID_TARGET, for no such nick or room, or one hidden from ``conn``.
    """
    world = conn.world
    if target == "*" or (conn.nick is not None and world.fold(target) == conn.folded_nick):
        return conn.name, conn, None
    if not conn.registered:
        raise Failed("INVALID_TARGET", target, "Only * is a target before registration")
    if is_valid_channel(target, conn.config.channel_len):
        channel = world.find_channel(target)
        if channel is None or channel.hidden_from(conn):
            raise Failed("INVALID_TARGET", target, "No such nick or room")
        return channel.name, channel, channel
    person = world.find_nick(target)
    if person is None:
        raise Failed("INVALID_TARGET", target, "No such nick or room")
    return person.name, person, None


def _shown(param: str) -> str:
    """``param`` as a failure's middle parameter names it: itself, or ``*`` if it could not
    be one (empty, or starting with ``:``, as only a last parameter may be)."""
    return param if param and not param.startswith(":") and " " not in param else "*"


def _check_key(name: str) -> str:
    """The key ``name`` names (in lower case).

    Raises:
        Failed: INVALID_KEY, if it is not a valid key name.
    """
    key = meta.key_of(name)
    if key is None:
        raise Failed("INVALID_KEY", _shown(name), meta.KEY_RULE)
    return key


def _may_change(
    conn: Connection, name: str, holder: Any, channel: Channel | None, key: str
) -> None:
    """Raises Failed (KEY_NO_PERMISSION) unless ``conn`` may change ``holder``'s keys."""
    if channel is not None:
        if not channel.is_op(conn):
            raise Failed("KEY_NO_PERMISSION", name, key, "Only the room's operators may")
    elif holder is not conn:
        raise Failed("KEY_NO_PERMISSION", name, key, "You may only change your own")


def _keyvalue(conn: Connection, name: str, key: str, value: str | None) -> bytes:
    """761 (a value) or 766 (none), for ``conn``."""
    server = conn.config.name
    if value is None:
        return Message(n.RPL_KEYNOTSET, (conn.name, name, key, "key not set"), server).to_bytes()
    return Message(n.RPL_KEYVALUE, (conn.name, name, key, meta.VISIBLE, value), server).to_bytes()


def _fail_line(conn: Connection, code: str, *params: str) -> bytes:
    from chatcli.server.connection import standard_reply

    return standard_reply("FAIL", "METADATA", code, *params, server=conn.config.name).to_bytes()


# -- reading ----------------------------------------------------------------------------------


def _get(conn: Connection, target: str, keys: list[str]) -> None:
    if not keys:
        raise Failed("NEED_MORE_PARAMS", "GET needs at least one key")
    if len(keys) > meta.MAX_GET_KEYS:
        raise Failed("LIMIT_REACHED", target, f"At most {meta.MAX_GET_KEYS} keys per GET")
    with conn.world.lock:
        name, holder, _ = _find(conn, target)
        values = dict(meta.items_of(holder))
    lines = [
        _keyvalue(conn, name, key, values.get(key))
        if (key := meta.key_of(asked)) is not None
        else _fail_line(conn, "INVALID_KEY", _shown(asked), meta.KEY_RULE)
        for asked in keys
    ]
    history.send_batch(conn, "metadata", (name,), lines)


def _list(conn: Connection, target: str, args: list[str]) -> None:
    with conn.world.lock:
        name, holder, _ = _find(conn, target)
        items = meta.items_of(holder)
    lines = [_keyvalue(conn, name, key, value) for key, value in items]
    history.send_batch(conn, "metadata", (name,), lines)


def _sync(conn: Connection, target: str, args: list[str]) -> None:
    with conn.world.lock:
        name, holder, channel = _find(conn, target)
        holders = meta.room_targets(channel) if channel is not None else [(name, holder)]
        meta.send_sync(conn, name, holders)


# -- changing ---------------------------------------------------------------------------------


def _set(conn: Connection, target: str, args: list[str]) -> None:
    if not args:
        raise Failed("NEED_MORE_PARAMS", "SET needs a key")
    key = _check_key(args[0])
    value = args[1] if len(args) > 1 and args[1] else None
    if value is not None and (problem := meta.value_problem(value)) is not None:
        raise Failed("VALUE_INVALID", problem)
    world = conn.world
    with world.lock:
        name, holder, channel = _find(conn, target)
        _may_change(conn, name, holder, channel, key)
        if value is None:
            if not meta.items_of(holder) or holder.metadata.get(key) is None:
                conn.reply(n.ERR_KEYNOTSET, name, key, "key not set")
                return
        elif holder.metadata is not None and holder.metadata.get(key) == value:
            conn.send_bytes(_keyvalue(conn, name, key, value))  # (nothing changes)
            return
        try:
            ticket = change(conn, holder, channel, key, value)
        except meta.LimitReached:
            raise Failed("LIMIT_REACHED", name, f"At most {meta.MAX_KEYS} keys") from None
    _kept(conn, ticket, name, key)
    conn.send_bytes(_keyvalue(conn, name, key, value))


def _clear(conn: Connection, target: str, args: list[str]) -> None:
    world = conn.world
    with world.lock:
        name, holder, channel = _find(conn, target)
        _may_change(conn, name, holder, channel, "*")
        keys = [key for key, _ in meta.items_of(holder)]
        tickets = [change(conn, holder, channel, key, None) for key in keys]
    _kept(conn, max((t for t in tickets if t is not None), default=None), name, "*")
    lines = [_keyvalue(conn, name, key, None) for key in keys]
    history.send_batch(conn, "metadata", (name,), lines)


def _kept(conn: Connection, ticket: int | None, name: str, key: str) -> None:
    """Wait for the store's write ``ticket`` (not under the world lock); if it was not
    kept, say so: ``WARN METADATA NOT_KEPT <target> <key>`` (the change holds until the
    server restarts, or the account's last connection ends)."""
    store = conn.server.store
    if ticket is None or store is None or store.outcome(ticket) is Outcome.KEPT:
        return
    conn.warn("METADATA", "NOT_KEPT", name, key, "Changed, but the server could not keep it")


def change(
    conn: Connection, holder: Any, channel: Channel | None, key: str, value: str | None
) -> int | None:
    """Set (or, with None, remove) ``key`` of ``holder`` (``conn`` itself, or the room
    ``channel``): everywhere it is kept (the account's other connections, the store, a
    cluster's other nodes), and tell the subscribers. Caller holds the world lock. Returns
    the ticket of the store's write, if there is one (a logged-in user's, a registered
    room's).

    Raises:
        LimitReached: a new key, and the target has as many as it may.
    """
    world = conn.world
    world.assert_held()
    store = conn.server.store
    ticket = None
    if channel is not None:
        target = meta.of(channel)
        if value is None:
            target.delete(key)
        else:
            target.set(key, value)
        if channel.founder is not None and store is not None:
            ticket = store.set_metadata(world.fold(channel.name), key, value)
        world.room_changed(channel)
        if conn.registered:
            meta.notify_room(world, conn, channel, key, value)
        return ticket
    holders = meta.sharing(world, conn)
    first = meta.of(conn)
    if value is None:
        first.delete(key)
    else:
        first.set(key, value)  # (raises before anything changed)
    for other in holders:
        if other is not conn and (kept := meta.of(other)) is not first:
            if value is None:
                kept.delete(key)
            else:
                kept.merge(meta.Metadata({key: value}))
    if conn.account_id is not None and store is not None:
        ticket = store.set_metadata(history.identity(conn), key, value)
    for other in holders:
        if other.sendq is not None:  # (this node's own: its record goes to the others)
            world.person_changed(other)
    if conn.account_id is not None:
        world.account_metadata_changed(conn.account_id, key, value)
    meta.notify_user(world, conn, holders, key, value)
    return ticket


# -- subscriptions ----------------------------------------------------------------------------


def _sub(conn: Connection, target: str, keys: list[str]) -> None:
    if not keys:
        raise Failed("NEED_MORE_PARAMS", "SUB needs at least one key")
    subs = set(conn.meta_subs)
    done: list[str] = []
    refused = None  # the first key past the limit: it and those after it are not done
    for asked in keys:
        key = meta.key_of(asked)
        if key is None:
            conn.fail("METADATA", "INVALID_KEY", _shown(asked), meta.KEY_RULE)
            continue
        if key not in subs and len(subs) >= meta.MAX_SUBS:
            refused = asked
            break
        subs.add(key)
        if key not in done:
            done.append(key)
    new = [key for key in done if key not in conn.meta_subs]
    _set_subs(conn, subs)
    _keys_reply(conn, n.RPL_METADATASUBOK, done)
    if refused is not None:
        conn.fail("METADATA", "TOO_MANY_SUBS", refused, f"At most {meta.MAX_SUBS} subscriptions")
    if new and conn.registered:
        with conn.world.lock:
            meta.send_current(conn, set(new))


def _unsub(conn: Connection, target: str, keys: list[str]) -> None:
    if not keys:
        raise Failed("NEED_MORE_PARAMS", "UNSUB needs at least one key")
    subs = set(conn.meta_subs)
    done: list[str] = []
    for asked in keys:
        key = meta.key_of(asked)
        if key is None:
            conn.fail("METADATA", "INVALID_KEY", _shown(asked), meta.KEY_RULE)
            continue
        subs.discard(key)
        if key not in done:
            done.append(key)
    _set_subs(conn, subs)
    _keys_reply(conn, n.RPL_METADATAUNSUBOK, done)


def _subs(conn: Connection, target: str, args: list[str]) -> None:
    _keys_reply(conn, n.RPL_METADATASUBS, sorted(conn.meta_subs))


def _set_subs(conn: Connection, subs: set[str]) -> None:
    with conn.world.lock:
        if subs != conn.meta_subs:
            conn.meta_subs = frozenset(subs)
            conn.world.person_changed(conn)


def _keys_reply(conn: Connection, numeric: str, keys: list[str]) -> None:
    """``numeric`` naming ``keys``, :data:`KEYS_PER_LINE` a line (none: no line)."""
    for i in range(0, len(keys), KEYS_PER_LINE):
        conn.reply(numeric, *keys[i : i + KEYS_PER_LINE])


SUBCOMMANDS = {
    "GET": _get,
    "LIST": _list,
    "SET": _set,
    "CLEAR": _clear,
    "SUB": _sub,
    "UNSUB": _unsub,
    "SUBS": _subs,
    "SYNC": _sync,
}


# -- connection and login ---------------------------------------------------------------------


def connected(conn: Connection) -> None:
    """Once registered, with the capability: a ``metadata`` batch of the client's own
    metadata (what it set before connecting, or its account keeps), maybe empty."""
    if caps.METADATA not in conn.caps:
        return
    with conn.world.lock:
        items = meta.items_of(conn)
    name = conn.name
    server = conn.config.name
    lines = [meta.change_line(server, name, key, value).to_bytes() for key, value in items]
    history.send_batch(conn, "metadata", (name,), lines)


def capability_dropped(conn: Connection) -> None:
    """``conn`` removed the capability (CAP REQ -draft/metadata-2): its subscriptions end,
    so that asking for it again starts with none, as on connecting."""
    _set_subs(conn, set())


def account_changed(conn: Connection) -> None:
    """``conn`` logged in or out. Logged in: its metadata becomes the account's, shared
    with the account's other connections here (or read from the store), with what it set
    before logging in written over it (and kept). Logged out: it keeps a copy of its own."""
    world = conn.world
    store = conn.server.store
    account_id = conn.account_id
    if account_id is None:
        with world.lock:
            if conn.account_id is None and conn.metadata is not None:
                conn.metadata = meta.Metadata(conn.metadata.to_wire())
                world.person_changed(conn)
        return
    identity = history.identity(conn)
    stored = store.metadata_of(identity) if store is not None else {}  # (not under the lock)
    with world.lock:
        if conn.account_id != account_id:
            return
        others = [p for p in world.by_account.get(account_id, ()) if p is not conn]
        others = [p for p in others if p in world.connections]  # (this node's)
        shared = next((p.metadata for p in others if p.metadata is not None), None)
        if shared is None:  # (the freshest: a cluster's other node's, else the store's)
            copies = [p for p in meta.sharing(world, conn) if p.sendq is None and p.metadata]
            stored = copies[0].metadata.to_wire() if copies else stored
        kept = shared if shared is not None else meta.Metadata(stored)
        before = dict(meta.items_of(conn))
        for key, value in before.items():  # (what it set before logging in)
            if kept.get(key) != value:
                try:
                    kept.set(key, value)
                except meta.LimitReached:
                    continue
                if store is not None:
                    store.set_metadata(identity, key, value)
                world.account_metadata_changed(account_id, key, value)
                if others:
                    meta.notify_user(world, conn, others, key, value)
        conn.metadata = kept
        for other in others:
            other.metadata = kept
        world.person_changed(conn)
        if conn.registered:  # (its own keys as its account has them: to whoever reads them)
            for key in {*before, *kept}:
                if before.get(key) != kept.get(key):
                    meta.notify_user(world, None, [conn], key, kept.get(key))
