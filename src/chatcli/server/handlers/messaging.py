"""Talking: PRIVMSG, NOTICE and AWAY."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from chatcli.protocol import Message, is_channel
from chatcli.protocol import numerics as n
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


def deliver(conn: Connection, msg: Message, *, notice: bool) -> None:
    if not msg.params or not msg.params[0]:
        raise NoRecipient(text=f"No recipient given ({msg.command})")
    if len(msg.params) < 2 or not msg.params[1]:
        raise NoTextToSend()
    targets = msg.params[0].split(",")
    if len(targets) > conn.config.max_targets:
        raise TooManyTargets(
            msg.params[0], text=f"Too many targets (at most {conn.config.max_targets})"
        )
    text = msg.params[1]
    conn.last_spoke = time.monotonic()
    for target in targets:
        try:
            _deliver_one(conn, msg.command, target, text, notice)
        except IRCError as err:
            if not notice:
                conn.send_error(err)


def _deliver_one(conn: Connection, verb: str, target: str, text: str, notice: bool) -> None:
    world = conn.world
    echo = "echo-message" in conn.caps
    with world.lock:
        if is_channel(target):
            channel = world.find_channel(target)
            if channel is None:
                raise NoSuchChannel(target)
            if not channel.can_speak(conn):
                raise CannotSendToChan(channel.name)
            # All parts are checked already: the text is a parsed parameter, the room's
            # name and our source were validated when they were made.
            line = Message.unchecked(verb, (channel.name, text), conn.source, {}).to_bytes()
            world.broadcast(channel, line, skip=None if echo else conn)
            return
        recipient = world.find_nick(target)
        if recipient is None:
            raise NoSuchNick(target)
        line = Message(verb, (recipient.name, text), conn.source).to_bytes()
        recipient.sendq.put(line)
        if echo:
            conn.sendq.put(line)
        away = recipient.away
    if away is not None and not notice:
        conn.reply(n.RPL_AWAY, recipient.name, away)


@command("AWAY")
def away(conn: Connection, msg: Message) -> None:
    """AWAY [:<message>] — mark yourself away with a message, or back without one."""
    text = msg.params[0][: conn.config.away_len] if msg.params else ""
    with conn.world.lock:
        conn.away = text or None
    if text:
        conn.reply(n.RPL_NOWAWAY, "You have been marked as being away")
    else:
        conn.reply(n.RPL_UNAWAY, "You are no longer marked as being away")
