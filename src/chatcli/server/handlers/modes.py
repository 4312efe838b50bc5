"""MODE: user modes (+i +w +B; -o) and channel modes (+b +e +I lists, +i +k +l +m +n +s +t,
+o and +v)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chatcli.protocol import Message, is_channel, number
from chatcli.protocol import numerics as n
from chatcli.server.channel import (
    ACCOUNT,
    FLAG_MODES,
    LIST_MODES,
    MAX_LIST_ENTRIES,
    MUTE,
    PREFIXES,
    Channel,
)
from chatcli.server.commands import command
from chatcli.server.errors import (
    BanListFull,
    ChanOPrivsNeeded,
    InvalidModeParam,
    IRCError,
    NoSuchChannel,
    NoSuchNick,
    NotOnChannel,
    UModeUnknownFlag,
    UnknownMode,
    UserNotInChannel,
    UsersDontMatch,
)
from chatcli.server.handlers import rooms
from chatcli.server.handlers.channels import broadcast

if TYPE_CHECKING:
    from chatcli.server.connection import Connection

MAX_PARAM_MODES = 4  # MODES= in ISUPPORT
#: User modes: bot (IRCv3 bot mode, ``BOT=B``: WHOIS and WHO show it), connected over TLS
#: (the server's to set), invisible, server operator (which only OPER could give: ``+o``
#: is ignored) and wallops.
USER_MODES = "BZiow"
#: Each list mode's replies: (entry numeric, end numeric, end text).
LIST_REPLIES = {
    "b": (n.RPL_BANLIST, n.RPL_ENDOFBANLIST, "End of channel ban list"),
    "e": (n.RPL_EXCEPTLIST, n.RPL_ENDOFEXCEPTLIST, "End of channel exception list"),
    "I": (n.RPL_INVEXLIST, n.RPL_ENDOFINVEXLIST, "End of channel invite list"),
}


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
        elif (ch == "o" and sign == "+") or ch == "Z":
            continue  # "If a user attempts to make themselves an operator using the "+o"
            # flag, the attempt SHOULD be ignored" (RFC 2812 3.1.5); servers do so silently.
            # TLS is a fact of the connection, not a choice: +Z and -Z likewise.
        elif (ch in conn.modes) != (sign == "+"):
            _set_user_mode(conn, sign, ch)
            changed += sign + ch
    if unknown:
        conn.send_error(UModeUnknownFlag())
    if changed:
        conn.send(Message("MODE", (conn.name, _compact(changed)), conn.source))


def _set_user_mode(conn: Connection, sign: str, ch: str) -> None:
    with conn.world.lock:
        conn.modes = conn.modes | {ch} if sign == "+" else conn.modes - {ch}
        conn.world.person_changed(conn)
        if ch == "i":
            conn.world.invisible += 1 if sign == "+" else -1
        elif ch == "o":  # only ever taken away here; OPER gives it
            conn.world.operators -= 1


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
            rooms.save(world, channel)


def _apply(
    conn: Connection, channel: Channel, modestring: str, args: list[str]
) -> list[tuple[str, str, str | None]]:
    """Apply the changes ``conn`` may make; answer the rest; return what changed."""
    applied: list[tuple[str, str, str | None]] = []
    is_op = channel.is_op(conn)
    sign = "+"
    params_used = 0
    listed = ""
    for ch in modestring:
        if ch in "+-":
            sign = ch
            continue
        takes_arg = ch in PREFIXES or ch in LIST_MODES or ch == "k" or (ch == "l" and sign == "+")
        arg = args.pop(0) if takes_arg and args else None
        if takes_arg and arg is not None:
            params_used += 1
            if params_used > MAX_PARAM_MODES:
                break
        try:
            if ch in LIST_MODES and arg is None:
                if ch not in listed:
                    listed += ch
                    _list_masks(conn, channel, ch)
                continue
            if ch not in PREFIXES and ch not in LIST_MODES + "kl" + FLAG_MODES:
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
        if target is None:
            raise NoSuchNick(arg)
        if target not in channel.members:
            raise UserNotInChannel(arg, channel.name)
        have = channel.members[target]
        if (ch in have) == adding:
            return None
        (have.add if adding else have.discard)(ch)
        return sign, ch, target.name
    if ch in LIST_MODES:
        assert arg is not None
        return _change_list(conn, channel, sign, ch, arg)
    if ch == "k":
        if adding:
            if not arg or "," in arg or " " in arg:
                raise InvalidModeParam(channel.name, "k", _echo(arg), text="Invalid key")
            channel.key = arg
            return sign, ch, arg
        if channel.key is None:
            return None
        channel.key = None
        return sign, ch, "*"
    if ch == "l":
        if adding:
            limit = number(arg or "")
            if limit is None or not 0 < limit <= MAX_LIMIT:
                raise InvalidModeParam(channel.name, "l", _echo(arg), text="Invalid limit")
            channel.limit = limit
            return sign, ch, arg
        if channel.limit is None:
            return None
        channel.limit = None
        return sign, ch, None
    if (ch in channel.modes) == adding:
        return None
    (channel.modes.add if adding else channel.modes.discard)(ch)
    return sign, ch, None


def _echo(arg: str | None) -> str:
    """A refused mode parameter as ERR_INVALIDMODEPARAM sends it back: "*" for one that
    cannot be a middle parameter (empty, with a space, or starting with ":")."""
    if not arg or " " in arg or arg.startswith(":"):
        return "*"
    return arg


#: The largest user limit (+l) a room takes: more than any server holds, and small enough
#: for the database to keep.
MAX_LIMIT = 1_000_000

#: The longest mask a list mode takes: a whole nick!user@host, IPv6 and a mute's "m:"
#: included, with room to spare. (Each is kept compiled: see chatcli.protocol.masks.)
MAX_MASK_LEN = 150


def _change_list(
    conn: Connection, channel: Channel, sign: str, mode: str, arg: str
) -> tuple[str, str, str | None] | None:
    """Add or remove a mask of list mode ``mode``; the same mask in another case is the
    same entry."""
    if not arg or " " in arg or arg.startswith(":"):
        raise InvalidModeParam(channel.name, mode, "*", text="Invalid mask")
    mask = _normal_mask(arg)
    if len(mask) > MAX_MASK_LEN and sign == "+":  # a compiled mask's memory grows with it
        raise InvalidModeParam(
            channel.name, mode, "*", text=f"Mask too long (at most {MAX_MASK_LEN} characters)"
        )
    masks = channel.mask_list(mode)
    fold = conn.world.fold
    folded = fold(mask)
    present = next((have for have in masks if fold(have) == folded), None)
    if sign == "-":
        if present is None:
            return None
        channel.remove_mask(mode, present)
        return sign, mode, present
    if present is not None:
        return None
    if len(masks) >= MAX_LIST_ENTRIES:
        raise BanListFull(channel.name, mode)
    channel.add_mask(mode, mask, conn.source, int(time.time()))
    return sign, mode, mask


def _normal_mask(mask: str) -> str:
    """Complete a ban mask to nick!user@host form: 'bob' -> 'bob!*@*', and a mute's mask
    likewise: 'M:bob' -> 'm:bob!*@*'. An account's mask stays as it is: 'A:bob' -> 'a:bob'."""
    if mask[:2].lower() == MUTE:
        return MUTE + _normal_mask(mask[2:] or "*")
    if mask[:2].lower() == ACCOUNT:  # an account's name (or a mask of names), as it is
        return ACCOUNT + (mask[2:] or "*")
    if "!" not in mask and "@" not in mask:
        return mask + "!*@*"
    if "!" not in mask:
        return "*!" + mask
    if "@" not in mask:
        return mask + "@*"
    return mask


def _list_masks(conn: Connection, channel: Channel, mode: str) -> None:
    """The entries of a list mode, with who set each and when. Anyone may see the bans
    (as before); the exception lists are for members only."""
    if mode != "b" and conn not in channel.members:
        raise NotOnChannel(channel.name)
    entry, end, text = LIST_REPLIES[mode]
    for mask, (setter, when) in channel.mask_list(mode).items():
        conn.reply(entry, channel.name, mask, setter, str(when))
    conn.reply(end, channel.name, text)
