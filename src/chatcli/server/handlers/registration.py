"""Connection registration and the connection itself: CAP, PASS, NICK, USER, PING, PONG, QUIT.

Registration completes when both NICK and USER have been given and capability negotiation,
if started, has ended (modern IRC client protocol, "Connection Registration").
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chatcli.protocol import Message, caps, is_valid_nick
from chatcli.protocol import numerics as n
from chatcli.server.channel import FLAG_MODES, LIST_MODES, PARAM_MODES, PREFIXES, SET_PARAM_MODES
from chatcli.server.commands import command
from chatcli.server.errors import (
    AlreadyRegistered,
    ErroneousNickname,
    InvalidCapCmd,
    NeedMoreParams,
    NoNicknameGiven,
)

if TYPE_CHECKING:
    from chatcli.config import ServerConfig
    from chatcli.server.connection import Connection

#: Capabilities this server implements, with their CAP LS 302 values.
CAPABILITIES: dict[str, str] = {
    caps.ECHO_MESSAGE: "",
    caps.MULTI_PREFIX: "",
    caps.USERHOST_IN_NAMES: "",
    caps.NO_AUTOJOIN: "",
}
USER_MODES = "i"


def isupport(config: ServerConfig) -> list[str]:
    """The ISUPPORT (005) tokens; every one of them is true of this server."""
    return [
        f"AWAYLEN={config.away_len}",
        f"CASEMAPPING={config.casemapping}",
        f"CHANLIMIT=#:{config.max_channels}",
        f"CHANMODES={LIST_MODES},{PARAM_MODES},{SET_PARAM_MODES},{FLAG_MODES}",
        f"CHANNELLEN={config.channel_len}",
        "CHANTYPES=#",
        f"KICKLEN={config.kick_len}",
        f"MAXTARGETS={config.max_targets}",
        "MODES=4",
        f"NETWORK={config.network}",
        f"NICKLEN={config.nick_len}",
        "PREFIX=({}){}".format("".join(PREFIXES), "".join(PREFIXES.values())),
        f"TARGMAX=PRIVMSG:{config.max_targets},NOTICE:{config.max_targets},"
        "JOIN:,PART:,KICK:,NAMES:,LIST:,WHOIS:1",
        f"TOPICLEN={config.topic_len}",
        "UTF8ONLY",
    ]


# -- CAP ------------------------------------------------------------------------------------


@command("CAP", 1, before_registration=True)
def cap(conn: Connection, msg: Message) -> None:
    """CAP LS [302] | CAP LIST | CAP REQ :<caps> | CAP END — negotiate IRCv3 capabilities."""
    sub = msg.params[0].upper()
    if sub == "LS":
        if not conn.registered:
            conn.cap_negotiating = True
        version = int(msg.params[1]) if len(msg.params) > 1 and msg.params[1].isdigit() else 0
        offered = " ".join(
            f"{name}={value}" if value and version >= 302 else name
            for name, value in CAPABILITIES.items()
        )
        _cap_reply(conn, "LS", offered)
    elif sub == "LIST":
        _cap_reply(conn, "LIST", " ".join(sorted(conn.caps)))
    elif sub == "REQ":
        if not conn.registered:
            conn.cap_negotiating = True
        wanted = msg.params[1] if len(msg.params) > 1 else ""
        changes = [(c.startswith("-"), c.lstrip("-")) for c in wanted.split()]
        if not changes or any(name not in CAPABILITIES for _, name in changes):
            _cap_reply(conn, "NAK", wanted)
            return
        for remove, name in changes:
            (conn.caps.discard if remove else conn.caps.add)(name)
        _cap_reply(conn, "ACK", wanted)
    elif sub == "END":
        if conn.cap_negotiating:
            conn.cap_negotiating = False
            try_register(conn)
    else:
        raise InvalidCapCmd(msg.params[0])


def _cap_reply(conn: Connection, sub: str, text: str) -> None:
    conn.send(Message("CAP", (conn.name, sub, text), conn.config.name))


# -- PASS, NICK, USER -----------------------------------------------------------------------


@command("PASS", 1, before_registration=True)
def pass_(conn: Connection, msg: Message) -> None:
    """PASS <password> — the server password, given before NICK and USER."""
    if conn.registered:
        raise AlreadyRegistered()
    conn.password = msg.params[0]


@command("NICK", before_registration=True)
def nick(conn: Connection, msg: Message) -> None:
    """NICK <nickname> — choose or change your nickname."""
    if not msg.params or not msg.params[0]:
        raise NoNicknameGiven()
    new = msg.params[0]
    if not is_valid_nick(new, conn.config.nick_len):
        raise ErroneousNickname(new)
    world = conn.world
    with world.lock:
        if new == conn.nick:
            return
        old_source, old_name = conn.source, conn.name
        world.claim_nick(conn, new)
        if conn.registered:
            world.remember(conn, old_name)
            line = Message("NICK", (new,), old_source).to_bytes()
            for peer in world.neighbours(conn):
                peer.sendq.put(line)
    if not conn.registered:
        try_register(conn)


@command("USER", 4, before_registration=True)
def user(conn: Connection, msg: Message) -> None:
    """USER <username> 0 * :<realname> — give your username and real name."""
    if conn.registered:
        raise AlreadyRegistered()
    username = msg.params[0]
    if not username:
        raise NeedMoreParams("USER")
    clean = "".join(ch for ch in username if ch.isascii() and (ch.isalnum() or ch in "-_."))
    conn.user = "~" + (clean[:10] or "u")
    conn.realname = msg.params[3][:100]
    try_register(conn)


def try_register(conn: Connection) -> None:
    """Complete registration once NICK, USER and CAP negotiation allow it."""
    if conn.registered or conn.nick is None or conn.user is None or conn.cap_negotiating:
        return
    config = conn.config
    if config.password is not None and conn.password != config.password:
        conn.reply(n.ERR_PASSWDMISMATCH, "Password incorrect")
        conn.disconnect("Bad password")
        return
    world = conn.world
    with world.lock:
        conn.registered = True
        world.users += 1
        world.max_users = max(world.max_users, world.users)
    welcome(conn)
    if caps.NO_AUTOJOIN not in conn.caps:
        from chatcli.server.handlers.channels import join_channel

        join_channel(conn, config.room, None)


def welcome(conn: Connection) -> None:
    """The registration burst: 001-005, LUSERS and MOTD."""
    from chatcli.server.handlers.queries import send_lusers, send_motd

    config = conn.config
    server = conn.server
    created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(server.created))
    conn.reply(n.RPL_WELCOME, f"Welcome to the {config.network} IRC Network {conn.source}")
    conn.reply(n.RPL_YOURHOST, f"Your host is {config.name}, running version {server.version}")
    conn.reply(n.RPL_CREATED, f"This server was created {created}")
    chan_modes = "".join(sorted(LIST_MODES + PARAM_MODES + SET_PARAM_MODES + FLAG_MODES))
    conn.reply(n.RPL_MYINFO, config.name, server.version, USER_MODES, chan_modes + "ov", "bklov")
    tokens = isupport(config)
    for i in range(0, len(tokens), 12):
        conn.reply(n.RPL_ISUPPORT, *tokens[i : i + 12], "are supported by this server")
    send_lusers(conn)
    send_motd(conn)


# -- PING, PONG, QUIT -----------------------------------------------------------------------


@command("PING", 1, before_registration=True)
def ping(conn: Connection, msg: Message) -> None:
    """PING <token> — the server answers PONG with the same token."""
    conn.send(Message("PONG", (conn.config.name, msg.params[0]), conn.config.name))


@command("PONG", before_registration=True)
def pong(conn: Connection, msg: Message) -> None:
    """PONG <token> — the answer to the server's PING (any line proves you are alive)."""


@command("QUIT", before_registration=True)
def quit_(conn: Connection, msg: Message) -> None:
    """QUIT [:<reason>] — leave the server; everyone who shares a room sees the reason."""
    reason = msg.params[0] if msg.params and msg.params[0] else ""
    conn.disconnect(f"Quit: {reason}" if reason else "Client Quit")
