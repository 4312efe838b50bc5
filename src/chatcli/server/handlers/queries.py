"""Questions about the server and its users: WHO, WHOIS, ISON, USERHOST, LUSERS, MOTD,
HELP, VERSION, TIME."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chatcli.protocol import Message, is_channel, mask_match
from chatcli.protocol import numerics as n
from chatcli.server.commands import COMMANDS, command
from chatcli.server.errors import HelpNotFound, NoSuchNick, NoSuchServer

if TYPE_CHECKING:
    from chatcli.server.channel import Channel
    from chatcli.server.connection import Connection


# -- WHO, WHOIS -----------------------------------------------------------------------------


@command("WHO")
def who(conn: Connection, msg: Message) -> None:
    """WHO [<room>|<mask>] — list the people in a room, or those matching a nick mask."""
    mask = msg.params[0] if msg.params else "*"
    world = conn.world
    rows: list[tuple[str, ...]] = []
    with world.lock:
        if is_channel(mask):
            channel = world.find_channel(mask)
            if channel is not None and (conn in channel.members or "s" not in channel.modes):
                for member in channel.members:
                    if conn in channel.members or "i" not in member.modes:
                        rows.append(_who_row(conn, member, channel))
        else:
            pattern = "*" if mask == "0" else mask
            shared = world.neighbours(conn)
            for other in world.registered():
                if not mask_match(pattern, other.name, world.casemapping):
                    continue
                if "i" in other.modes and other not in shared:
                    continue
                rows.append(_who_row(conn, other, None))
    for row in rows:
        conn.reply(n.RPL_WHOREPLY, *row)
    conn.reply(n.RPL_ENDOFWHO, mask, "End of WHO list")


def _who_row(conn: Connection, other: Connection, channel: Channel | None) -> tuple[str, ...]:
    flags = "G" if other.away is not None else "H"
    if channel is not None:
        flags += channel.prefix_of(other, "multi-prefix" in conn.caps)
    return (
        channel.name if channel else "*",
        other.user or "~u",
        other.host,
        conn.config.name,
        other.name,
        flags,
        f"0 {other.realname}",
    )


@command("WHOIS", 1)
def whois(conn: Connection, msg: Message) -> None:
    """WHOIS <nick> — who someone is, which rooms they are in, whether they are away."""
    nick = msg.params[-1].split(",")[0]
    world = conn.world
    with world.lock:
        other = world.find_nick(nick)
        if other is None:
            conn.send_error(NoSuchNick(nick))
            conn.reply(n.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
            return
        rooms = [
            channel.prefix_of(other) + channel.name
            for channel in other.channels
            if "s" not in channel.modes or conn in channel.members
        ]
        away = other.away
    conn.reply(n.RPL_WHOISUSER, other.name, other.user or "~u", other.host, "*", other.realname)
    if rooms:
        conn.reply(n.RPL_WHOISCHANNELS, other.name, " ".join(sorted(rooms)))
    conn.reply(n.RPL_WHOISSERVER, other.name, conn.config.name, conn.config.network)
    if away is not None:
        conn.reply(n.RPL_AWAY, other.name, away)
    idle = int(time.monotonic() - other.last_spoke)
    conn.reply(
        n.RPL_WHOISIDLE, other.name, str(idle), str(other.signon), "seconds idle, signon time"
    )
    conn.reply(n.RPL_ENDOFWHOIS, other.name, "End of /WHOIS list")


@command("WHOWAS", 1)
def whowas(conn: Connection, msg: Message) -> None:
    """WHOWAS <nick> [<count>] — who used a nick that is no longer online."""
    nick = msg.params[0].split(",")[0]
    count = int(msg.params[1]) if len(msg.params) > 1 and msg.params[1].isdigit() else 0
    world = conn.world
    with world.lock:
        folded = world.fold(nick)
        found = [d for d in reversed(world.whowas) if world.fold(d.nick) == folded]
    if count > 0:
        found = found[:count]
    if not found:
        conn.reply(n.ERR_WASNOSUCHNICK, nick, "There was no such nickname")
    for departed in found:
        conn.reply(
            n.RPL_WHOWASUSER, departed.nick, departed.user, departed.host, "*", departed.realname
        )
        left = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(departed.left_at))
        conn.reply(n.RPL_WHOISSERVER, departed.nick, conn.config.name, left)
    conn.reply(n.RPL_ENDOFWHOWAS, nick, "End of WHOWAS")


@command("ISON", 1)
def ison(conn: Connection, msg: Message) -> None:
    """ISON <nick>{ <nick>} — which of these nicks are online."""
    nicks = " ".join(msg.params).split()
    with conn.world.lock:
        online = [c.name for nick in nicks if (c := conn.world.find_nick(nick)) is not None]
    conn.reply(n.RPL_ISON, " ".join(online))


@command("USERHOST", 1)
def userhost(conn: Connection, msg: Message) -> None:
    """USERHOST <nick>{ <nick>} — the user@host of up to five nicks."""
    replies = []
    with conn.world.lock:
        for nick in msg.params[:5]:
            other = conn.world.find_nick(nick)
            if other is not None:
                sign = "-" if other.away is not None else "+"
                replies.append(f"{other.name}={sign}{other.user}@{other.host}")
    conn.reply(n.RPL_USERHOST, " ".join(replies))


# -- LUSERS, MOTD, VERSION, TIME ------------------------------------------------------------


@command("LUSERS")
def lusers(conn: Connection, msg: Message) -> None:
    """LUSERS — how many people and rooms there are."""
    send_lusers(conn)


def send_lusers(conn: Connection) -> None:
    world = conn.world
    with world.lock:
        total = world.users
        invisible = world.invisible
        unknown = len(world.connections) - total
        channels = len(world.channels)
        most = world.max_users
    conn.reply(
        n.RPL_LUSERCLIENT,
        f"There are {total - invisible} users and {invisible} invisible on 1 servers",
    )
    if unknown:
        conn.reply(n.RPL_LUSERUNKNOWN, str(unknown), "unknown connection(s)")
    conn.reply(n.RPL_LUSERCHANNELS, str(channels), "channels formed")
    conn.reply(n.RPL_LUSERME, f"I have {total} clients and 0 servers")
    conn.reply(n.RPL_LOCALUSERS, str(total), str(most), f"Current local users {total}, max {most}")
    conn.reply(
        n.RPL_GLOBALUSERS, str(total), str(most), f"Current global users {total}, max {most}"
    )


@command("MOTD")
def motd(conn: Connection, msg: Message) -> None:
    """MOTD — the server's message of the day."""
    send_motd(conn)


def send_motd(conn: Connection) -> None:
    lines = conn.config.motd
    if not lines:
        conn.reply(n.ERR_NOMOTD, "MOTD File is missing")
        return
    conn.reply(n.RPL_MOTDSTART, f"- {conn.config.name} Message of the day - ")
    for line in lines:
        conn.reply(n.RPL_MOTD, f"- {line}")
    conn.reply(n.RPL_ENDOFMOTD, "End of /MOTD command.")


@command("VERSION")
def version(conn: Connection, msg: Message) -> None:
    """VERSION — the server's software and version."""
    if msg.params and msg.params[0].lower() != conn.config.name.lower():
        raise NoSuchServer(msg.params[0])
    conn.reply(n.RPL_VERSION, conn.server.version, conn.config.name, "chatcli IRC server")
    from chatcli.server.handlers.registration import isupport

    tokens = isupport(conn.config)
    for i in range(0, len(tokens), 12):
        conn.reply(n.RPL_ISUPPORT, *tokens[i : i + 12], "are supported by this server")


@command("TIME")
def time_(conn: Connection, msg: Message) -> None:
    """TIME — the server's local time."""
    now = time.time()
    text = time.strftime("%A %B %d %Y -- %H:%M:%S %z", time.localtime(now))
    conn.reply(n.RPL_TIME, conn.config.name, str(int(now)), "0", text)


# -- HELP -----------------------------------------------------------------------------------

INTRO = [
    "Everyday commands:",
    "  PRIVMSG #lobby :<text>   talk to the room (everyone is in #lobby)",
    "  PRIVMSG <nick> :<text>   a direct message to one person",
    "  NAMES #lobby, WHO #lobby  who is online;  LUSERS  how many",
    "  QUIT :<reason>           leave",
    "HELP <command> explains one command. All commands:",
]


@command("HELP", before_registration=True)
def help_(conn: Connection, msg: Message) -> None:
    """HELP [<command>] — the list of commands, or help on one."""
    if not msg.params:
        names = sorted(COMMANDS)
        lines = list(INTRO)
        lines += ["  " + " ".join(names[i : i + 8]) for i in range(0, len(names), 8)]
        subject = "*"
    else:
        subject = msg.params[0].upper()
        cmd = COMMANDS.get(subject)
        if cmd is None:
            raise HelpNotFound(subject)
        lines = cmd.help
    conn.reply(n.RPL_HELPSTART, subject, lines[0])
    for line in lines[1:]:
        conn.reply(n.RPL_HELPTXT, subject, line)
    conn.reply(n.RPL_ENDOFHELP, subject, "End of /HELP")
