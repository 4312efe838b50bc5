"""MODE: user modes (+i) and channel modes (+b +i +k +l +m +n +s +t, +o and +v)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chatcli.protocol import Message, is_channel
from chatcli.protocol import numerics as n
from chatcli.server.channel import FLAG_MODES, PREFIXES, Channel
from chatcli.server.commands import command
from chatcli.server.errors import (
    ChanOPrivsNeeded,
    InvalidModeParam,
    IRCError,
    NoSuchChannel,
    NoSuchNick,
    UModeUnknownFlag,
    UnknownMode,
    UserNotInChannel,
    UsersDontMatch,
)
from chatcli.server.handlers.channels import broadcast
from chatcli.server.handlers.registration import USER_MODES

if TYPE_CHECKING:
    from chatcli.server.connection import Connection

MAX_PARAM_MODES = 4  # MODES= in ISUPPORT


@command("MODE", 1)
def mode(conn: Connection, msg: Message) -> None:
    """MODE <room> [<modes> [<args>...]] | MODE <nick> [<modes>] — show or change modes."""
    if is_channel(msg.params[0]):
        channel_mode(conn, msg.params[0], msg.params[1:])
    else:
        user_mode(conn, msg.params[0], msg.params[1:])


def user_mode(conn: Connection, nick: str, args: tuple[str, ...]) -> None:
    with conn.world.lock:
        if conn.world.find_nick(nick) is None:
            raise NoSuchNick(nick)
    if conn.world.fold(nick) != conn.folded_nick:
        raise UsersDontMatch()
    if not args:
        conn.reply(n.RPL_UMODEIS, "+" + "".join(sorted(conn.modes)))
        return
    sign, changed, unknown = "+", "", False
    for ch in args[0]:
        if ch in "+-":
            sign = ch
        elif ch not in USER_MODES:
            unknown = True
        elif (ch in conn.modes) != (sign == "+"):
            with conn.world.lock:
                (conn.modes.add if sign == "+" else conn.modes.discard)(ch)
                if ch == "i":
                    conn.world.invisible += 1 if sign == "+" else -1
            changed += sign + ch
    if unknown:
        conn.send_error(UModeUnknownFlag())
    if changed:
        conn.send(Message("MODE", (conn.name, _compact(changed)), conn.source))


def _compact(changes: str) -> str:
    """'+i+w-x' -> '+iw-x'."""
    out, sign = "", ""
    for i in range(0, len(changes), 2):
        if changes[i] != sign:
            sign = changes[i]
            out += sign
        out += changes[i + 1]
    return out


def channel_mode(conn: Connection, name: str, args: tuple[str, ...]) -> None:
    world = conn.world
    with world.lock:
        channel = world.find_channel(name)
        if channel is None:
            raise NoSuchChannel(name)
        if not args:
            conn.reply(
                n.RPL_CHANNELMODEIS, channel.name, *channel.mode_string(conn in channel.members)
            )
            conn.reply(n.RPL_CREATIONTIME, channel.name, str(channel.created))
            return
        changes = _apply(conn, channel, args[0], list(args[1:]))
        if changes:
            flags = _compact("".join(sign + ch for sign, ch, _ in changes))
            params = [arg for _, _, arg in changes if arg is not None]
            broadcast(conn, channel, Message("MODE", (channel.name, flags, *params), conn.source))


def _apply(
    conn: Connection, channel: Channel, modestring: str, args: list[str]
) -> list[tuple[str, str, str | None]]:
    """Apply the changes ``conn`` may make; answer the rest; return what changed."""
    applied: list[tuple[str, str, str | None]] = []
    is_op = channel.is_op(conn)
    sign = "+"
    params_used = 0
    listed = False
    for ch in modestring:
        if ch in "+-":
            sign = ch
            continue
        takes_arg = ch in PREFIXES or ch in "bk" or (ch == "l" and sign == "+")
        arg = args.pop(0) if takes_arg and args else None
        if takes_arg and arg is not None:
            params_used += 1
            if params_used > MAX_PARAM_MODES:
                break
        try:
            if ch == "b" and arg is None:
                if not listed:
                    _list_bans(conn, channel)
                    listed = True
                continue
            if ch not in PREFIXES and ch not in "bkl" and ch not in FLAG_MODES:
                raise UnknownMode(ch, text=f"is an unknown mode char to me for {channel.name}")
            if not is_op:
                raise ChanOPrivsNeeded(channel.name)
            change = _change(conn, channel, sign, ch, arg)
            if change is not None:
                applied.append(change)
        except IRCError as err:
            conn.send_error(err)
    return applied


def _change(
    conn: Connection, channel: Channel, sign: str, ch: str, arg: str | None
) -> tuple[str, str, str | None] | None:
    adding = sign == "+"
    if ch in PREFIXES:
        if arg is None:
            return None
        target = conn.world.find_nick(arg)
        if target is None or target not in channel.members:
            raise UserNotInChannel(arg, channel.name)
        have = channel.members[target]
        if (ch in have) == adding:
            return None
        (have.add if adding else have.discard)(ch)
        return sign, ch, target.name
    if ch == "b":
        assert arg is not None
        if not arg or " " in arg or arg.startswith(":"):
            raise InvalidModeParam(channel.name, "b", "*", text="Invalid ban mask")
        mask = _normal_mask(arg)
        if adding == (mask in channel.bans):
            return None
        if adding:
            channel.bans[mask] = (conn.source, int(time.time()))
        else:
            del channel.bans[mask]
        return sign, ch, mask
    if ch == "k":
        if adding:
            if not arg or "," in arg or " " in arg:
                raise InvalidModeParam(channel.name, "k", arg or "*", text="Invalid key")
            channel.key = arg
            return sign, ch, arg
        if channel.key is None:
            return None
        channel.key = None
        return sign, ch, "*"
    if ch == "l":
        if adding:
            if arg is None or not arg.isdigit() or int(arg) <= 0:
                raise InvalidModeParam(channel.name, "l", arg or "*", text="Invalid limit")
            channel.limit = int(arg)
            return sign, ch, arg
        if channel.limit is None:
            return None
        channel.limit = None
        return sign, ch, None
    if (ch in channel.modes) == adding:
        return None
    (channel.modes.add if adding else channel.modes.discard)(ch)
    return sign, ch, None


def _normal_mask(mask: str) -> str:
    """Complete a ban mask to nick!user@host form: 'bob' -> 'bob!*@*'."""
    if "!" not in mask and "@" not in mask:
        return mask + "!*@*"
    if "!" not in mask:
        return "*!" + mask
    if "@" not in mask:
        return mask + "@*"
    return mask


def _list_bans(conn: Connection, channel: Channel) -> None:
    for mask, (setter, when) in channel.bans.items():
        conn.reply(n.RPL_BANLIST, channel.name, mask, setter, str(when))
    conn.reply(n.RPL_ENDOFBANLIST, channel.name, "End of channel ban list")
