"""History: what is said is kept in the store, replayed to who joins a room, served by
CHATHISTORY, and held for accounts that were offline.

Rooms' history is keyed by the folded room name. A direct conversation is keyed by both
sides' identities (their account's stable ``@<id>``, or ``~`` and the nick of who is not
logged in), so that each side reads the same conversation and a nick or an account name
taken later by someone else does not inherit it: CHATHISTORY offers a conversation back
only to a logged-in side (with someone not logged in, all that was said with whoever held
that nick), and dropping an account deletes its conversations.

A multiline message (IRCv3 draft/multiline) is kept as one message: its lines joined by
line feeds, and among its tags ``draft/multiline=<indexes>``, the lines that continue the
one before them (see :class:`~chatcli.server.tags.MultilineRelay`); it is replayed as a
``draft/multiline`` batch (nested in the history's batch) to who has the capability, as
its lines one by one to anyone else.

A reaction (a TAGMSG with ``+draft/react`` and ``+draft/reply``), or one taken back
(``+draft/unreact``), is kept too, its text
being the msgid it replies to (so that redacting that message can delete its reactions:
:meth:`Store.redact <chatcli.server.store.Store.redact>`). It is replayed only to clients
with message-tags. Another TAGMSG with client-only tags, but a typing notice, is kept too,
as is a topic change: these "events" are given back only to clients with
draft/event-playback (see :func:`is_event`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatcli.protocol import Message, caps, server_time
from chatcli.server import tags
from chatcli.server.store import Stored, identity_of

if TYPE_CHECKING:
    from chatcli.server.channel import Channel
    from chatcli.server.connection import Connection
    from chatcli.server.state import World
    from chatcli.server.store import Store


def identity(conn: Connection) -> str:
    """Who ``conn`` is, for keying direct conversations: its account's identity, or
    ``~<nick>``."""
    if conn.account_id is not None:
        return identity_of(conn.account_id)
    return "~" + conn.folded_nick


def is_account(identity: str) -> bool:
    """Whether ``identity`` is an account's (not a nick's, which anyone may take)."""
    return identity.startswith("@")


def conversation(one: str, other: str) -> str:
    """The key of the direct conversation between two identities (either order)."""
    first, second = sorted((one, other))
    return f"dm:{first}\x00{second}"


#: The client-only tags of a reaction (IRCv3 draft/react), of one taken back, and of the
#: message it refers to.
REACT, UNREACT, REPLY = caps.REACT, caps.UNREACT, caps.REPLY
#: The longest msgid a kept reaction may refer to (longer: relayed, not kept).
MAX_REPLY_CHARS = 64


#: The client-only tags of a typing notice, which history never keeps.
TYPING = ("+typing", "+draft/typing")


def reaction_to(msg: Message) -> str | None:
    """The text to keep for a TAGMSG that history keeps: the msgid it reacts to, for a
    reaction or one taken back (it has ``+draft/react`` or ``+draft/unreact``, and
    ``+draft/reply``: replayed in order, they leave the reactions as they are); "" for
    another with client-only tags, which only clients with draft/event-playback are given
    back. None for one not kept: a typing notice, or one without client-only tags. Its
    tags are bounded by the parser (IRCv3's 4096 bytes of a client's tags), so a kept
    TAGMSG costs no more than a message."""
    if msg.command != "TAGMSG":
        return None
    if msg.tags.get(REACT) or msg.tags.get(UNREACT):
        reply = msg.tags.get(REPLY, "")
        return reply if 0 < len(reply) <= MAX_REPLY_CHARS else None
    client_tags = [key for key in msg.tags if key.startswith("+")]
    if not client_tags or any(key in TYPING for key in client_tags):
        return None
    return ""


def is_event(stored: Stored) -> bool:
    """Whether ``stored`` is given back only to clients with draft/event-playback: a topic
    change, or a kept TAGMSG that is not a reaction."""
    return stored.command == "TOPIC" or (stored.command == "TAGMSG" and not stored.text)


def record(
    conn: Connection,
    key: str,
    msg: Message,
    relay: tags.Relay,
    client_tags: str,
    pending_for: tuple[int, ...] = (),
    on_lost: Callable[[str], None] | None = None,
    text: str | None = None,
) -> int | None:
    """Keep ``msg`` (a PRIVMSG or NOTICE from ``conn``, as relayed, or a reaction whose
    ``text`` is the msgid it refers to) under ``key``; return the ticket of the write, or
    None when the server keeps no history. If the write is not kept, ``on_lost`` is told
    why (see :meth:`Store.write`)."""
    store = conn.server.store
    if store is None:
        return None
    stored = _stored(conn, key, msg, relay, client_tags, text)
    return store.record(stored, pending_for, on_lost)


def record_room(
    conn: Connection,
    channel: Channel,
    msg: Message,
    relay: tags.Relay,
    client_tags: str,
    on_lost: Callable[[str], None] | None = None,
    text: str | None = None,
) -> int | None:
    """:func:`record` for a room's message, which is also kept among its recent lines.
    Caller holds the world lock (the order of the recent lines is the room's).

    A message the store then fails to keep stays among the recent lines (shown to who
    joins while the server runs: the room did see it); the history on disk, which
    CHATHISTORY reads and which outlives the server, holds only what was kept."""
    conn.world.assert_held()
    store = conn.server.store
    if store is None:
        return None
    stored = _stored(conn, conn.world.fold(channel.name), msg, relay, client_tags, text)
    if is_event(stored):  # (never replayed on JOIN: it would only take a line's place)
        return store.record(stored, on_lost=on_lost)
    if channel.recent is not None:
        channel.recent.append(stored)
    conn.world.kept_in_room(channel, stored)
    return store.record(stored, on_lost=on_lost)


def _stored(
    conn: Connection,
    key: str,
    msg: Message,
    relay: tags.Relay,
    client_tags: str,
    text: str | None = None,
) -> Stored:
    if isinstance(relay, tags.MultilineRelay):
        text, client_tags = relay.text, relay.stored_tags()
    return Stored(
        id=0,
        msgid=relay.msgid,
        at=relay.at,
        target=key,
        command=msg.command,
        source=conn.source,
        account=conn.account,
        recipient=msg.params[0],
        text=msg.params[-1] if text is None else text,
        tags=client_tags,
    )


def line(stored: Stored, profile: int, plain_time: bool = False) -> bytes:
    """``stored`` as a line for a client of ``profile`` (several for a multiline message;
    none for a reaction to a client without message-tags). With ``plain_time``, a client
    that does not read server-time sees the time in the text."""
    client_tags, concat = tags.split_stored(stored.tags)
    if stored.command == "TAGMSG":
        msg = Message.unchecked("TAGMSG", (stored.recipient,), stored.source, {})
        relay = tags.Relay(
            msg,
            client_tags=client_tags,
            account=stored.account,
            at=stored.at,
            msgid=stored.msgid,
            tags_only=True,
        )
        return relay.to(profile)
    text = stored.text
    if plain_time and not profile & tags.TIME:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(stored.at / 1000))
        text = f"[{stamp} UTC] {text}"
    if concat is not None:
        # (PostgreSQL's store reads a line feed back as NUL, which no line can hold: see
        # chatcli.server.postgres. Either separates the lines.)
        lines = tuple(text.replace("\x00", "\n").split("\n"))
        relay: tags.Relay = tags.MultilineRelay(
            stored.command,
            stored.source,
            stored.recipient,
            lines,
            concat,
            client_tags=client_tags,
            account=stored.account,
            at=stored.at,
            msgid=stored.msgid,
        )
        return relay.to(profile)
    msg = Message.unchecked(stored.command, (stored.recipient, text), stored.source, {})
    relay = tags.Relay(
        msg, client_tags=client_tags, account=stored.account, at=stored.at, msgid=stored.msgid
    )
    return relay.to(profile)


def send_batch(conn: Connection, kind: str, params: tuple[str, ...], lines: list[bytes]) -> None:
    """Send ``lines`` (serialised) to ``conn`` in a batch of ``kind``, if it reads batches;
    else as they are."""
    if caps.BATCH in conn.caps:
        conn.send_bytes(tags.batch(conn.config.name, kind, params, lines))
    elif lines:
        conn.send_bytes(b"".join(lines))


def send_history(
    conn: Connection, target: str, found: list[Stored], *, plain_time: bool = False
) -> None:
    """Messages from history, for ``target``, in a ``chathistory`` batch. Events (see
    :func:`is_event`) only to who has draft/event-playback, and never in a JOIN's replay."""
    events = caps.EVENT_PLAYBACK in conn.caps and not plain_time
    if not events:
        found = [s for s in found if not is_event(s)]
    lines = [data for s in found if (data := line(s, conn.profile, plain_time))]
    send_batch(conn, "chathistory", (target,), lines)


class Preloaded(list[Stored]):
    """What :func:`preload` read: the room's latest lines (when it has none in memory), and
    the joiner's read marker of the room (IRCv3 draft/read-marker), if it is to be sent."""

    marker: Message | None = None


def since(channel: Channel) -> int | None:
    """From when (unix ms) ``channel``'s history is its own, as a JOIN replays it: an
    unregistered room that emptied and was made again is a new room, and what was said in
    the old one is replayed only after a notice saying so (as ``chat send`` to an empty
    room leaves its line for who comes next); None for a room that keeps its history (a
    registered room, the default room). CHATHISTORY, which a client asks for and which
    stamps every line with its time, reads all that is kept."""
    if channel.permanent:
        return None
    return channel.born or channel.created * 1000


def prime(world: World, store: Store, channel: Channel, count: int) -> None:
    """Read ``channel``'s latest ``count`` lines into its recent lines, at start-up (for
    the rooms there are then, before anyone can join them)."""
    channel.recent = deque(store.latest(world.fold(channel.name), count), maxlen=count)


def preload(conn: Connection, name: str) -> list[Stored] | None:
    """The latest lines of the room ``name`` from the store, if it has none in memory yet
    (a room being made again): read before joining, without the world lock. None: nothing
    to read."""
    store, count, world = conn.server.store, conn.config.replay_lines, conn.world
    if store is None:
        return None
    marker = None
    if caps.READ_MARKER in conn.caps:
        key = world.fold(name)
        if conn.account_id is not None:
            marker = marker_line(conn, name, store.read_marker(conn.account_id, key))
        else:  # (not logged in: the connection's own markers)
            marker = marker_line(conn, name, (conn.read_markers or {}).get(key))
    channel = world.channels.get(world.fold(name))  # a glance: the join checks again
    if count <= 0 and channel is None:
        found = Preloaded()
    elif channel is None:  # made again (a registered one is always there): the old lines
        found = Preloaded(store.latest(world.fold(name), count))
    elif count <= 0 or channel.recent is not None:
        if marker is None:
            return None
        found = Preloaded()  # (no lines: the room has its own, or none are replayed)
    else:  # (a room of a cluster's other nodes, new to this one)
        found = Preloaded(store.latest(world.fold(name), count))
    found.marker = marker
    return found


def replay(conn: Connection, channel: Channel, preloaded: list[Stored] | None) -> None:
    """The room's latest lines, for who just joined it, from its recent lines (made from
    ``preloaded``, the :func:`preload` of the room, if it has none yet; see :func:`since`).
    Not for bots (user
    mode +B), nor for clients that fetch history themselves (draft/chathistory). Caller
    holds the world lock: no message to the room can come between these lines and the
    ones that follow them."""
    conn.world.assert_held()
    count = conn.config.replay_lines
    if conn.server.store is None or count <= 0:
        return
    if channel.recent is None:  # (made again since the glance: its lines read then)
        if since(channel) is not None and channel.members.keys() == {conn}:
            channel.born = int(time.time() * 1000)  # made by this JOIN (under the lock)
        channel.recent = deque(preloaded or (), maxlen=count)
    if "B" in conn.modes or caps.CHATHISTORY in conn.caps or not channel.recent:
        return
    lines = list(channel.recent)
    if not conn.profile & tags.TAGS:  # (reactions are for who reads tags)
        lines = [s for s in lines if s.command != "TAGMSG"]
        if not lines:
            return
    start = since(channel)
    if start is not None and lines[0].at < start:  # said in the room of the same name before
        conn.notice(f"{channel.name} was empty: the lines below were said before it was made again")
    send_history(conn, channel.name, lines, plain_time=True)


def send_marker(conn: Connection, preloaded: list[Stored] | None) -> None:
    """The joiner's read marker of the room, if :func:`preload` read one (IRCv3
    draft/read-marker: after the JOIN, before the end of NAMES)."""
    if isinstance(preloaded, Preloaded) and preloaded.marker is not None:
        conn.send(preloaded.marker)


def marker_line(conn: Connection, target: str, at: int | None) -> Message:
    """``MARKREAD <target> timestamp=<at>`` (IRCv3 draft/read-marker; ``*`` when there is
    no marker)."""
    stamp = "*" if at is None else "timestamp=" + server_time(at / 1000)
    return Message("MARKREAD", (target, stamp), conn.config.name)


def deliver_pending(conn: Connection) -> None:
    """Direct messages that waited for ``conn``'s account while it was offline. Call once
    it has logged in."""
    store = conn.server.store
    if store is None or conn.account_id is None:
        return
    lines = store.take_pending(conn.account_id)
    if lines:
        send_history(conn, conn.name, lines, plain_time=True)
