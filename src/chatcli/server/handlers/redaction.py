"""REDACT (IRCv3 draft/message-redaction): take back a message.

    REDACT <target> <msgid> [:<reason>]

Anyone may redact their own messages (by account, or, not logged in, by the very
``nick!user@host`` that said it), in a room they are in or in a direct conversation; a
room's operators may redact any message of their room. The message is deleted from the
history (CHATHISTORY no longer returns it) and from the room's recent lines (nor does a
JOIN replay it); then ``:<source> REDACT <target> <msgid> [:<reason>]`` goes to those of
the room or the conversation who negotiated the capability, and back to its sender. The
others get nothing: the spec leaves a fallback to the server, and a notice for every
redaction would be noise.

Errors are ``FAIL REDACT <code> ...``: INVALID_TARGET (no such room, or not in it; no one
by that name), UNKNOWN_MSGID (no such message kept there: the same answer whether it is
elsewhere or nowhere, so that the reply does not tell of messages one never saw),
REDACT_FORBIDDEN (someone else's message, and not an operator of the room). One msgid per
command; the store is read and written without the world lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatcli.protocol import Message, caps, is_channel
from chatcli.server import history
from chatcli.server.commands import command
from chatcli.server.handlers.chathistory import MAX_MSGID_CHARS
from chatcli.server.store import Outcome
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.connection import Connection
    from chatcli.server.store import Stored


@command("REDACT", 2)
def redact(conn: Connection, msg: Message) -> None:
    """REDACT <target> <msgid> [:<reason>] — take back a message (yours, or as a room's op)."""
    target, msgid = msg.params[0], msg.params[1]
    reason = msg.params[2] if len(msg.params) > 2 and msg.params[2] else None
    store = conn.server.store
    world = conn.world
    if store is None or not 0 < len(msgid) <= MAX_MSGID_CHARS:
        conn.fail("REDACT", "UNKNOWN_MSGID", target, msgid[:MAX_MSGID_CHARS], _UNKNOWN)
        return
    room = is_channel(target)
    is_op = False
    with world.lock:
        if room:
            channel = world.find_channel(target)
            if channel is None or conn not in channel.members:
                conn.fail(
                    "REDACT", "INVALID_TARGET", target, f"You cannot delete messages from {target}"
                )
                return
            key = world.fold(channel.name)
            is_op = channel.is_op(conn)
        else:
            other = world.find_nick(target)
            theirs = history.identity(other) if other is not None else None
    if not room:
        if theirs is None:  # offline: the account named so, if any
            account = store.account(world.fold(target))
            if account is None or account.dropped is not None:
                conn.fail(
                    "REDACT", "INVALID_TARGET", target, f"You cannot delete messages from {target}"
                )
                return
            theirs = account.identity
        key = history.conversation(history.identity(conn), theirs)
    found = store.message(msgid)
    if found is None:  # (one just echoed may still be on its way in)
        store.sync()
        found = store.message(msgid)
    if found is None or found.target != key:
        conn.fail("REDACT", "UNKNOWN_MSGID", target, msgid, _UNKNOWN)
        return
    if not (_is_own(conn, found) or is_op):
        conn.fail(
            "REDACT",
            "REDACT_FORBIDDEN",
            target,
            msgid,
            "You are not authorised to delete this message",
        )
        return
    if store.outcome(store.redact(msgid, key)) is not Outcome.KEPT:
        conn.fail("REDACT", "UNKNOWN_MSGID", target, msgid, "The message could not be deleted")
        return
    _announce(conn, target, msgid, reason, room)


def _is_own(conn: Connection, found: Stored) -> bool:
    """Whether ``found`` was said by ``conn``: by its account, or, said without one, by
    its very source."""
    if found.account is not None:
        return conn.account is not None and conn.world.fold(conn.account) == conn.world.fold(
            found.account
        )
    return conn.account is None and found.source == conn.source


def _announce(conn: Connection, target: str, msgid: str, reason: str | None, room: bool) -> None:
    """Drop the message from the room's recent lines, and tell who reads redactions."""
    world = conn.world
    with world.lock:
        told: list[Connection] = []
        name = target
        if room:
            channel = world.find_channel(target)
            if channel is not None:
                name = channel.name
                world.unkeep_in_room(channel, msgid)
                told = [m for m in channel.members if m is not conn and caps.REDACTION in m.caps]
        else:
            other = world.find_nick(target)
            if other is not None:
                name = other.name
                if other is not conn and caps.REDACTION in other.caps:
                    told = [other]
        params = (name, msgid, reason) if reason is not None else (name, msgid)
        relay = Relay(Message("REDACT", params, conn.source), account=conn.account)
        world.relay_to([conn, *told], relay, actor=conn)


_UNKNOWN = "This message does not exist or is too old"
