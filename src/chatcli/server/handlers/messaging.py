"""Talking: PRIVMSG, NOTICE and AWAY.

A direct message to a registered nick reaches only a connection logged in to its account:
while the owner is offline, or while someone else holds the nick (its grace period, see
:mod:`chatcli.server.handlers.accounts`), it waits for the owner's next login, and the
sender is told so with RPL_AWAY.

What is said is confirmed to its sender (its echo, and whatever it is told next) only
once it is settled in the history. One that the store cannot keep (a full disk...) is
delivered all the same, and its sender told at once, with an IRCv3 standard reply:
``WARN <command> HISTORY_NOT_KEPT <target> :<why>``. A message for an offline account has
nowhere else to wait: if it is not kept it is lost, and that is a
``FAIL <command> MESSAGE_NOT_KEPT <target> :<why>`` (instead of RPL_AWAY and the echo).
A NOTICE gets the WARN too: it is no automatic reply to the notice's text (which the rule
of no replies to a NOTICE is about), but the server's word on its own storage.

A multiline message (IRCv3 draft/multiline, :mod:`chatcli.server.multiline`) is gathered
by BATCH and the lines tagged with its batch, and delivered when its batch closes as any
message is, to one target, as a :class:`~chatcli.server.tags.MultilineRelay`. Its errors
are ``FAIL BATCH <code>``: MULTILINE_MAX_BYTES and MULTILINE_MAX_LINES (past a limit),
MULTILINE_INVALID_TARGET (a line for another target than the batch's, or a batch for
several or for ``$`` masks) and MULTILINE_INVALID (anything else: no such batch open, a
second one opened, PRIVMSG and NOTICE mixed, a blank line marked as continuing the one
before, nothing but blank lines, no capability). Once a batch has failed, the rest of its
lines and its end are dropped without a word. A failed delivery (no such room...) is
answered as a PRIVMSG's would be.

A reaction (a TAGMSG with ``+draft/react`` and ``+draft/reply``) is kept in the history;
no other TAGMSG is (see :mod:`chatcli.server.history`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatcli.protocol import Message, caps, escape_tag_value, is_channel, is_valid_nick
from chatcli.protocol import numerics as n
from chatcli.server import history, tags
from chatcli.server import multiline as ml
from chatcli.server.channel import PREFIXES, Channel
from chatcli.server.commands import command
from chatcli.server.errors import (
    CannotSendToChan,
    IRCError,
    NoRecipient,
    NoSuchChannel,
    NoSuchNick,
    NoTextToSend,
    TooManyTargets,
)
from chatcli.server.handlers import accounts, monitor, operators
from chatcli.server.multiline import Multiline
from chatcli.server.tags import MultilineRelay, Relay

if TYPE_CHECKING:
    from chatcli.server.connection import Connection


@command("PRIVMSG")
def privmsg(conn: Connection, msg: Message) -> None:
    """PRIVMSG <target>{,<target>} :<text> — say something to a room or to one person."""
    deliver(conn, msg, notice=False)


@command("NOTICE")
def notice(conn: Connection, msg: Message) -> None:
    """NOTICE <target>{,<target>} :<text> — like PRIVMSG, but never answered automatically."""
    # RFC 2812 3.3.2: no automatic reply, errors included, is ever sent for a NOTICE.
    with contextlib.suppress(IRCError):
        deliver(conn, msg, notice=True)


@command("TAGMSG")
def tagmsg(conn: Connection, msg: Message) -> None:
    """TAGMSG <target>{,<target>} — send only message tags (a reaction, a typing notice)."""
    deliver(conn, msg, notice=False)


def deliver(conn: Connection, msg: Message, *, notice: bool) -> None:
    if msg.tags and "batch" in msg.tags:  # a line of a multiline message
        _add_line(conn, msg)
        return
    if not msg.params or not msg.params[0]:
        raise NoRecipient(text=f"No recipient given ({msg.command})")
    text_param = msg.command != "TAGMSG"
    if text_param and (len(msg.params) < 2 or not msg.params[1]):
        raise NoTextToSend()
    targets = msg.params[0].split(",")
    if len(targets) > conn.config.max_targets:
        raise TooManyTargets(
            msg.params[0], text=f"Too many targets (at most {conn.config.max_targets})"
        )
    conn.last_spoke = time.monotonic()
    client_tags = tags.client_only(msg.tags) if msg.tags else ""
    for target in targets:
        try:
            _deliver_one(conn, msg, target, client_tags, notice)
        except IRCError as err:
            if not notice:
                conn.send_error(err)


def _deliver_one(
    conn: Connection,
    msg: Message,
    target: str,
    client_tags: str,
    notice: bool,
    multiline: Multiline | None = None,
) -> None:
    """Deliver ``msg`` to ``target`` (one of its targets), or, with ``multiline``, the
    multiline message whose first line ``msg`` is."""
    world = conn.world
    rest = msg.params[1:2]  # the text; none for TAGMSG
    tags_only = msg.command == "TAGMSG"
    away: tuple[str, str] | None = None  # the recipient's nick and away message
    kept: int | None = None  # the history write to wait for before confirming
    relay: Relay | None = None
    recipient = None
    batch = conn.batch
    if batch is not None and (target.startswith("$") or is_channel(target)):
        batch.flush()  # (what this client said before reaches everyone before this)
    if target.startswith("$") and not tags_only:
        operators.to_everyone(conn, msg, target)
        return
    if target[:1] in STATUS and is_channel(target[1:]):
        _to_status(conn, msg, target, client_tags, tags_only, multiline)
        return
    reaction = history.reaction_to(msg)  # (a TAGMSG that the history keeps, if not None)
    with world.lock:
        if is_channel(target):
            channel = world.find_channel(target)
            if channel is None:
                raise NoSuchChannel(target)
            if not channel.can_speak(conn):
                raise CannotSendToChan(channel.name)
            for text in multiline.texts if multiline is not None else rest:
                _check_ctcp(channel, text)
            # All parts are checked already: the text is a parsed parameter, the room's
            # name and our source were validated when they were made.
            out = Message.unchecked(msg.command, (channel.name, *rest), conn.source, {})
            relay = _relay(conn, out, client_tags, tags_only, multiline)
            copies = world.broadcast(channel, relay, skip=conn)
            world.messages.note(msg.command, "room", copies)
            if not tags_only or reaction is not None:
                lost = not_kept(conn, msg.command, channel.name)
                kept = history.record_room(
                    conn, channel, out, relay, client_tags, lost, text=reaction
                )
        elif (recipient := world.find_nick(target)) is not None and not (
            accounts.holds_for_another(recipient)
        ):
            out = Message(msg.command, (recipient.name, *rest), conn.source)
            relay = _relay(conn, out, client_tags, tags_only, multiline)
            world.messages.note(msg.command, "direct", 1 if relay.to(recipient.profile) else 0)
            if recipient.away is not None:
                away = (recipient.name, recipient.away)
            if not tags_only or reaction is not None:
                key = history.conversation(history.identity(conn), history.identity(recipient))
                lost = not_kept(conn, msg.command, recipient.name)
                kept = history.record(
                    conn, key, out, relay, client_tags, on_lost=lost, text=reaction
                )
    if recipient is not None and relay is not None:
        # To one person: after the lock, where the line can be written at once (no thread
        # hand-off) when nothing else waits to be sent; see SendQueue.put.
        # (To oneself too: a delivery, not part of the labeled response.) With others'
        # direct messages read in the same go, in one send (conn.batch: see _run_due).
        world.relay_to(
            (recipient,), relay, actor=None, batch=batch if recipient is not conn else None
        )
    elif batch is not None:
        batch.flush()  # a service's answer, or a wait for the disk: nothing waits on it
    if relay is None:  # nobody online by that name: a service, or an account to keep it for
        if _to_service(conn, target, msg, multiline):
            return
        lost: list[str] = []  # why it was not kept, if it was not
        relay, kept = _keep_for_offline(conn, msg, target, client_tags, lost.append, multiline)
        if kept is not None and conn.server.store is not None:
            conn.server.store.outcome(kept)  # (on a timeout it may yet be kept: see _release)
        if lost:  # nowhere else to wait: lost, and told instead of "kept for their return"
            why = f"your message could not be kept for {target}'s return ({lost[0]})"
            conn.fail(msg.command, "MESSAGE_NOT_KEPT", target, why)
            return
        with world.lock:
            world.messages.note(msg.command, "offline", 0)
        away = (target, "Offline: your message is kept for their return")
        if recipient is not None:  # someone holds the nick, not logged in to it
            away = (target, "Not logged in as its owner: your message waits for the owner")
    # What the sender is told from now on (its echo, then whatever it asks next) is held
    # until the message is in the history: once confirmed, it survives a crash.
    if kept is not None:
        conn.confirm_after(kept)
    _echo(conn, relay, multiline.label if multiline is not None else None)
    if away is not None and not notice and not tags_only:
        conn.reply(n.RPL_AWAY, *away)


def _relay(
    conn: Connection,
    out: Message,
    client_tags: str,
    tags_only: bool,
    multiline: Multiline | None,
) -> Relay:
    """How ``out`` (the first line of ``multiline``, if given) is relayed."""
    bot = "B" in conn.modes
    if multiline is None:
        return Relay(
            out, client_tags=client_tags, bot=bot, tags_only=tags_only, account=conn.account
        )
    return MultilineRelay(
        out.command,
        conn.source,
        out.params[0],
        tuple(multiline.texts),
        frozenset(multiline.concat),
        client_tags=client_tags,
        bot=bot,
        account=conn.account,
    )


def _echo(conn: Connection, relay: Relay, label: str | None) -> None:
    """The sender's echo (echo-message), if it asked for echoes. A multiline message's
    opening BATCH was labeled: its label goes on the echo's first line (IRCv3
    draft/multiline), or on an ACK without echo-message."""
    if label is None:
        if caps.ECHO_MESSAGE in conn.caps:
            conn.echo(relay)
        return
    tag = "label=" + escape_tag_value(label)
    data = relay.to(conn.profile) if caps.ECHO_MESSAGE in conn.caps else b""
    if not data:
        data = Message("ACK", (), conn.config.name).to_bytes()
    conn.send_bytes(tags.with_tags(data, tag))


def _to_service(conn: Connection, target: str, msg: Message, multiline: Multiline | None) -> bool:
    """:func:`accounts.to_service`; a multiline message reaches a service as its lines, one
    command each."""
    if not accounts.to_service(conn, target, msg):
        return False
    for text in multiline.texts[1:] if multiline is not None else ():
        if text:
            accounts.to_service(conn, target, Message(msg.command, (target, text)))
    return True


def _check_ctcp(channel: Channel, text: str) -> None:
    """+C: a CTCP other than ACTION (``/me``) may not be sent to the room."""
    if "C" not in channel.modes or not text.startswith("\x01"):
        return
    if text[1:].split(" ", 1)[0].rstrip("\x01").upper() != "ACTION":
        raise CannotSendToChan(channel.name, text="Cannot send CTCP to channel (+C)")


#: STATUSMSG: a room's name after one of these goes to its members of that rank or
#: higher (``@#room``: its operators; ``+#room``: its voiced members and operators).
STATUS = {sym: mode for mode, sym in PREFIXES.items()}


def _to_status(
    conn: Connection,
    msg: Message,
    target: str,
    client_tags: str,
    tags_only: bool,
    multiline: Multiline | None = None,
) -> None:
    """PRIVMSG/NOTICE/TAGMSG ``@#room`` (STATUSMSG): to the room's members of that rank or
    higher, as ``@#room``; the sender must be able to speak in the room. Not kept in the
    history (a room's history is for all its members)."""
    world = conn.world
    ranks = "".join(PREFIXES)  # highest first
    enough = set(ranks[: ranks.index(STATUS[target[0]]) + 1])
    with world.lock:
        channel = world.find_channel(target[1:])
        if channel is None:
            raise NoSuchChannel(target[1:])
        if not channel.can_speak(conn):
            raise CannotSendToChan(channel.name)
        for text in multiline.texts if multiline is not None else msg.params[1:2]:
            _check_ctcp(channel, text)
        status = target[0] + channel.name
        out = Message.unchecked(msg.command, (status, *msg.params[1:2]), conn.source, {})
        relay = _relay(conn, out, client_tags, tags_only, multiline)
        told = [m for m, has in channel.members.items() if m is not conn and has & enough]
        world.relay_to(told, relay, actor=conn)
    _echo(conn, relay, multiline.label if multiline is not None else None)


def not_kept(conn: Connection, command: str, target: str) -> Callable[[str], None]:
    """What tells ``conn`` that its message to ``target`` was delivered but not kept in the
    history, and why (the store's ``on_lost``: it runs on the store's writer thread, so the
    WARN is queued before the echo held for the same write)."""

    def tell(reason: str) -> None:
        conn.delivery.warn(
            command,
            "HISTORY_NOT_KEPT",
            target,
            f"your message was delivered but not kept in the history ({reason})",
        )

    return tell


def _keep_for_offline(
    conn: Connection,
    msg: Message,
    target: str,
    client_tags: str,
    on_lost: Callable[[str], None],
    multiline: Multiline | None = None,
) -> tuple[Relay, int | None]:
    """Keep a direct message for ``target``, who is not online, if it is a registered
    account (delivered when they next log in); else ERR_NOSUCHNICK. Without the world lock:
    this reads the database."""
    store = conn.server.store
    owner = conn.world.fold(target)
    valid = is_valid_nick(target, conn.config.nick_len)
    account = store.account(owner) if store is not None and valid else None
    if account is None or account.dropped is not None or msg.command == "TAGMSG":
        raise NoSuchNick(target)
    out = Message(msg.command, (account.name, msg.params[1]), conn.source)
    relay = _relay(conn, out, client_tags, False, multiline)
    key = history.conversation(history.identity(conn), account.identity)
    pending = (account.id,)
    return relay, history.record(conn, key, out, relay, client_tags, pending, on_lost)


# -- multiline messages (IRCv3 draft/multiline) ---------------------------------------------


@command("BATCH", 1)
def batch(conn: Connection, msg: Message) -> None:
    """BATCH +<ref> draft/multiline <target> | BATCH -<ref> — open or close a multiline
    message (IRCv3 draft/multiline; see :mod:`chatcli.server.multiline`)."""
    param = msg.params[0]
    if param.startswith("+"):
        _open_batch(conn, msg)
    elif param.startswith("-"):
        _close_batch(conn, param[1:])
    else:
        conn.fail("BATCH", "MULTILINE_INVALID", "A batch's reference begins with + or -")


def _open_batch(conn: Connection, msg: Message) -> None:
    ref = msg.params[0][1:]
    kind = msg.params[1] if len(msg.params) > 1 else ""
    if kind != tags.MULTILINE_BATCH:
        conn.fail(
            "BATCH", "MULTILINE_INVALID", f"Clients may only send {tags.MULTILINE_BATCH} batches"
        )
        return
    if not {caps.MULTILINE, caps.BATCH} <= conn.caps:
        conn.fail(
            "BATCH",
            "MULTILINE_INVALID",
            f"Multiline messages need the capabilities {caps.MULTILINE} and {caps.BATCH}",
        )
        return
    if not 0 < len(ref) <= ml.MAX_REF_CHARS:
        conn.fail(
            "BATCH",
            "MULTILINE_INVALID",
            f"A batch's reference is 1 to {ml.MAX_REF_CHARS} characters",
        )
        return
    if len(msg.params) < 3 or not msg.params[2]:
        conn.fail("BATCH", "MULTILINE_INVALID", "A multiline batch names its target")
        return
    target = msg.params[2]
    if "," in target or target.startswith("$"):
        conn.fail(
            "BATCH",
            "MULTILINE_INVALID_TARGET",
            target,
            target,
            "A multiline message goes to one room or one person",
        )
        return
    if (open_one := conn.multiline) is not None and not open_one.failed:
        conn.fail(
            "BATCH",
            "MULTILINE_INVALID",
            f"Multiline batch {open_one.ref} is still open: close it first",
        )
        return
    label = conn.session.take_label()  # (answered with the echo, once the batch is closed)
    client_tags = tags.client_only(msg.tags) if msg.tags else ""
    conn.multiline = Multiline(ref, target, client_tags, label)


def _add_line(conn: Connection, msg: Message) -> None:
    """A line of the multiline batch its ``batch`` tag names (see :func:`_fail_batch` for
    what ends a batch as invalid)."""
    open_one = conn.multiline
    ref = msg.tags["batch"]
    if open_one is None or (open_one.failed and open_one.ref != ref):
        conn.fail("BATCH", "MULTILINE_INVALID", f"No multiline batch {ref[:64]} is open")
        return
    if open_one.failed:
        return  # (the client was told when it failed)
    if ref != open_one.ref:
        _fail_batch(
            conn, "MULTILINE_INVALID", f"A line of batch {ref[:64]} inside batch {open_one.ref}"
        )
        return
    if msg.command == "TAGMSG" or (open_one.command not in (None, msg.command)):
        _fail_batch(
            conn, "MULTILINE_INVALID", "A multiline batch holds PRIVMSGs or NOTICEs only, not both"
        )
        return
    target = msg.params[0] if msg.params else ""
    if conn.world.fold(target) != conn.world.fold(open_one.target):
        _fail_batch(
            conn, "MULTILINE_INVALID_TARGET", open_one.target, target, "Invalid multiline target"
        )
        return
    text = msg.params[1] if len(msg.params) > 1 else ""
    concat = tags.MULTILINE_CONCAT in msg.tags
    if concat and not text:
        _fail_batch(conn, "MULTILINE_INVALID", "A blank line cannot continue the one before it")
        return
    if len(open_one.texts) >= ml.MAX_LINES:
        _fail_batch(
            conn, "MULTILINE_MAX_LINES", str(ml.MAX_LINES), "Multiline batch max-lines exceeded"
        )
        return
    joined = 1 if open_one.texts and not concat else 0  # (the line feed before it)
    open_one.size += len(text.encode()) + joined
    if open_one.size > ml.MAX_BYTES:
        _fail_batch(
            conn, "MULTILINE_MAX_BYTES", str(ml.MAX_BYTES), "Multiline batch max-bytes exceeded"
        )
        return
    if concat and open_one.texts:
        open_one.concat.add(len(open_one.texts))
    open_one.command = msg.command
    open_one.texts.append(text)


def _fail_batch(conn: Connection, code: str, *params: str) -> None:
    """The open multiline batch is invalid: drop its lines, tell the client once, and
    drop what it still sends in that batch, up to its end."""
    open_one = conn.multiline
    assert open_one is not None
    conn.multiline = Multiline(open_one.ref, open_one.target, failed=True)
    conn.session.give_label(open_one.label)  # (the opening BATCH's answer)
    conn.fail("BATCH", code, *params)


def _close_batch(conn: Connection, ref: str) -> None:
    """BATCH -<ref>: the multiline message is complete; deliver it."""
    open_one = conn.multiline
    if open_one is None or open_one.ref != ref:
        conn.fail("BATCH", "MULTILINE_INVALID", f"No multiline batch {ref[:64]} is open")
        return
    conn.multiline = None
    if open_one.failed:
        return
    if open_one.command is None or not open_one.has_text():
        conn.session.give_label(open_one.label)
        conn.fail(
            "BATCH", "MULTILINE_INVALID", "A multiline message needs a line that is not blank"
        )
        return
    command = open_one.command
    first = Message.unchecked(command, (open_one.target, open_one.texts[0]), conn.source, {})
    conn.last_spoke = time.monotonic()
    try:
        _deliver_one(
            conn, first, open_one.target, open_one.client_tags, command == "NOTICE", open_one
        )
    except IRCError as err:
        if command != "NOTICE":
            conn.session.give_label(open_one.label)
            conn.send_error(err)


@command("AWAY")
def away(conn: Connection, msg: Message) -> None:
    """AWAY [:<message>] — mark yourself away with a message, or back without one."""
    text = msg.params[0][: conn.config.away_len] if msg.params else ""
    world = conn.world
    with world.lock:
        conn.away = text or None
        world.person_changed(conn)
        notify_neighbours(
            conn, caps.AWAY_NOTIFY, Message("AWAY", (text,) if text else (), conn.source)
        )
    if text:
        conn.reply(n.RPL_NOWAWAY, "You have been marked as being away")
    else:
        conn.reply(n.RPL_UNAWAY, "You are no longer marked as being away")


def notify_neighbours(conn: Connection, cap: str, msg: Message) -> None:
    """Relay ``msg`` about ``conn`` to everyone else sharing a room with it who has ``cap``,
    and to who MONITORs it with extended-monitor and ``cap`` (each once).
    Caller holds the world lock."""
    conn.world.assert_held()
    relay = Relay(msg, account=conn.account)
    peers = [peer for peer in monitor.told_of(conn, cap) if peer is not conn]
    conn.world.relay_to(peers, relay, actor=conn)
