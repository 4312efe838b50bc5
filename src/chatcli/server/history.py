"""History: what is said is kept in the store, replayed to who joins a room, served by
CHATHISTORY, and held for accounts that were offline.

Rooms' history is keyed by the folded room name. A direct conversation is keyed by both
sides' identities (their account's stable ``@<id>``, or ``~`` and the nick of who is not
logged in), so that each side reads the same conversation and a nick or an account name
taken later by someone else does not inherit it: only messages between logged-in accounts
are offered back by CHATHISTORY, and dropping an account deletes its conversations.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chatcli.protocol import Message, caps
from chatcli.server import tags
from chatcli.server.store import Stored, identity_of

if TYPE_CHECKING:
    from chatcli.server.channel import Channel
    from chatcli.server.connection import Connection


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


def record(
    conn: Connection,
    key: str,
    msg: Message,
    relay: tags.Relay,
    client_tags: str,
    pending_for: tuple[int, ...] = (),
) -> int | None:
    """Keep ``msg`` (a PRIVMSG or NOTICE from ``conn``, as relayed) under ``key``; return
    the ticket of the write, or None when the server keeps no history."""
    store = conn.server.store
    if store is None:
        return None
    stored = Stored(
        id=0,
        msgid=relay.msgid,
        at=relay.at,
        target=key,
        command=msg.command,
        source=conn.source,
        account=conn.account,
        recipient=msg.params[0],
        text=msg.params[-1],
        tags=client_tags,
    )
    return store.record(stored, pending_for)


def line(stored: Stored, profile: int, plain_time: bool = False) -> bytes:
    """``stored`` as a line for a client of ``profile``. With ``plain_time``, a client
    that does not read server-time sees the time in the text."""
    text = stored.text
    if plain_time and not profile & tags.TIME:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(stored.at / 1000))
        text = f"[{stamp} UTC] {text}"
    msg = Message.unchecked(stored.command, (stored.recipient, text), stored.source, {})
    relay = tags.Relay(
        msg, client_tags=stored.tags, account=stored.account, at=stored.at, msgid=stored.msgid
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
    """Messages from history, for ``target``, in a ``chathistory`` batch."""
    lines = [line(s, conn.profile, plain_time) for s in found]
    send_batch(conn, "chathistory", (target,), lines)


def replay(conn: Connection, channel: Channel) -> None:
    """The room's latest lines, for who just joined it. Not for bots (user mode +B), nor for
    clients that fetch history themselves (draft/chathistory)."""
    store = conn.server.store
    count = conn.config.replay_lines
    if store is None or count <= 0 or "B" in conn.modes or caps.CHATHISTORY in conn.caps:
        return
    lines = store.latest(conn.world.fold(channel.name), count)
    if lines:
        send_history(conn, channel.name, lines, plain_time=True)


def deliver_pending(conn: Connection) -> None:
    """Direct messages that waited for ``conn``'s account while it was offline. Call once
    it has logged in."""
    store = conn.server.store
    if store is None or conn.account_id is None:
        return
    lines = store.take_pending(conn.account_id)
    if lines:
        send_history(conn, conn.name, lines, plain_time=True)
