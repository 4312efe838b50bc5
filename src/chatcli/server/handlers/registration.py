"""Connection registration and the connection itself: CAP, PASS, NICK, USER, PING, PONG, QUIT.

Registration completes when both NICK and USER have been given and capability negotiation,
if started, has ended (modern IRC client protocol, "Connection Registration").
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chatcli.protocol import Message, caps, is_valid_nick, number
from chatcli.protocol import numerics as n
from chatcli.server import history, multiline, tags
from chatcli.server import metadata as meta
from chatcli.server.channel import (
    FLAG_MODES,
    LIST_MODES,
    PARAM_MODES,
    PREFIXES,
    SET_PARAM_MODES,
)
from chatcli.server.commands import command
from chatcli.server.errors import (
    AlreadyRegistered,
    ErroneousNickname,
    Fatal,
    InvalidCapCmd,
    NeedMoreParams,
    NicknameInUse,
    NoNicknameGiven,
)
from chatcli.server.handlers import accounts, channels, monitor, queries
from chatcli.server.handlers import metadata as metadata_handler
from chatcli.server.handlers.modes import USER_MODES
from chatcli.server.isupport import isupport, send_isupport
from chatcli.server.nicks import rename
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.connection import Connection

#: Capabilities this server implements, with their CAP LS 302 values.
CAPABILITIES: dict[str, str] = {
    caps.ACCOUNT_NOTIFY: "",
    # REGISTER works before connection registration too, as on Ergo; the account is
    # always named after the nick (no "custom-account-name").
    caps.ACCOUNT_REGISTRATION: "before-connect",
    caps.ACCOUNT_TAG: "",
    caps.AWAY_NOTIFY: "",
    caps.BATCH: "",
    caps.CHATHISTORY: "",
    caps.CAP_NOTIFY: "",
    caps.CHANNEL_RENAME: "",
    caps.ECHO_MESSAGE: "",
    caps.EVENT_PLAYBACK: "",
    caps.EXTENDED_JOIN: "",
    caps.EXTENDED_MONITOR: "",
    caps.INVITE_NOTIFY: "",
    caps.LABELED_RESPONSE: "",
    caps.MESSAGE_TAGS: "",
    caps.MULTI_PREFIX: "",
    caps.MULTILINE: multiline.CAP_VALUE,  # (its limits: chatcli.server.multiline)
    caps.METADATA: meta.cap_value(),
    caps.METADATA_NOTIFY: "",
    caps.READ_MARKER: "",
    caps.REDACTION: "",
    caps.SASL: "PLAIN",
    caps.SERVER_TIME: "",
    caps.SETNAME: "",
    caps.USERHOST_IN_NAMES: "",
    caps.AUTOJOIN: "",
    caps.QUIET: "",
}
REALNAME_LEN = 100


#: Capabilities that need the database.
NEED_STORE = frozenset({caps.CHATHISTORY, caps.READ_MARKER, caps.REDACTION})
#: Capabilities fixed once registered: a client that joined rooms quietly must not leave
#: them loudly, nor one that joined loudly leave without a word (a ghost in every list).
BEFORE_REGISTRATION_ONLY = frozenset({caps.QUIET})


def offered_caps(conn: Connection) -> dict[str, str]:
    """The capabilities this server offers ``conn``: all, but those that need a database
    on a server without one, and quiet clients where ``quiet_clients`` is off."""
    return {
        name: value
        for name, value in CAPABILITIES.items()
        if (name not in NEED_STORE or conn.server.store is not None)
        and (name != caps.QUIET or conn.config.quiet_clients)
    }


# -- CAP ------------------------------------------------------------------------------------


@command("CAP", 1, before_registration=True)
def cap(conn: Connection, msg: Message) -> None:
    """CAP LS [302] | CAP LIST | CAP REQ :<caps> | CAP END — negotiate IRCv3 capabilities."""
    sub = msg.params[0].upper()
    if sub == "LS":
        if not conn.registered:
            conn.cap_negotiating = True
        version = (number(msg.params[1], 5) if len(msg.params) > 1 else None) or 0
        if version >= 302:  # implied by CAP LS 302 (IRCv3 cap-notify)
            conn.caps = conn.caps | {caps.CAP_NOTIFY}
        offered = " ".join(
            f"{name}={value}" if value and version >= 302 else name
            for name, value in offered_caps(conn).items()
        )
        _cap_reply(conn, "LS", offered)
    elif sub == "LIST":
        _cap_reply(conn, "LIST", " ".join(sorted(conn.caps)))
    elif sub == "REQ":
        if not conn.registered:
            conn.cap_negotiating = True
        wanted = msg.params[1] if len(msg.params) > 1 else ""
        changes = [(c.startswith("-"), c.lstrip("-")) for c in wanted.split()]
        offered = offered_caps(conn)
        fixed = BEFORE_REGISTRATION_ONLY if conn.registered else frozenset()
        if not changes or any(name not in offered or name in fixed for _, name in changes):
            _cap_reply(conn, "NAK", wanted)
            return
        had_metadata = caps.METADATA in conn.caps
        with conn.world.lock:
            for remove, name in changes:
                conn.caps = conn.caps - {name} if remove else conn.caps | {name}
            if conn.profile != (new := tags.profile(conn.caps)):
                conn.profile = new
                for channel in conn.channels:
                    channel.regroup()
        _cap_reply(conn, "ACK", wanted)
        if conn.registered and not had_metadata and caps.METADATA in conn.caps:
            metadata_handler.connected(conn)  # (its own keys, as on connecting)
        elif had_metadata and caps.METADATA not in conn.caps:
            metadata_handler.capability_dropped(conn)  # (its subscriptions end)
    elif sub == "END":
        if conn.cap_negotiating:
            conn.cap_negotiating = False
            try_register(conn)
    else:
        raise InvalidCapCmd(msg.params[0])


def _cap_reply(conn: Connection, sub: str, text: str) -> None:
    """``CAP <nick> <sub> :<text>``; a ``text`` too long for one line goes over several,
    each but the last marked ``*`` (CAP 302's continuation), cut between words."""
    server = conn.config.name
    room = 510 - len(f":{server} CAP {conn.name} {sub} * :".encode())
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(f"{lines[-1]} {word}".encode()) <= room:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    lines = lines or [""]
    for line in lines[:-1]:
        conn.send(Message("CAP", (conn.name, sub, "*", line), server))
    conn.send(Message("CAP", (conn.name, sub, lines[-1]), server))


# -- PASS, NICK, USER -----------------------------------------------------------------------


@command("PASS", 1, before_registration=True)
def pass_(conn: Connection, msg: Message) -> None:
    """PASS <password> — the server password, given before NICK and USER. Without one,
    PASS <account>:<password> logs in to an account."""
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
    folded = world.fold(new)
    if folded in accounts.RESERVED:
        raise ErroneousNickname(new, text="Nickname is reserved for a service")
    if new == conn.nick:
        return
    changed = folded != conn.folded_nick
    owner = accounts.claim_of(conn, new) if changed else None  # (reads the database)
    if conn.registered:
        accounts.refuse_strict(conn, new, owner)
    # A holder whose peer has closed its connection gives the nick up now, not once its
    # thread notices (a client that drops and reconnects at once is not told 433). A
    # glance at the table without the lock: it is read again under the lock below.
    holder = world.nicks.get(folded)
    if holder is not None and holder is not conn:
        holder.end_if_closed()
    reserved = world.reserve_nick(conn, new)  # (a cluster's claim: not under the lock)
    try:
        with world.lock:
            holder = world.nicks.get(folded)
            if (
                holder is not None
                and holder is not conn
                and accounts.owns(conn, folded)
                and not accounts.owns(holder, folded)
            ):  # the owner takes its nick back
                accounts.service_notice(holder.delivery, f"{new} is taken back by its owner.")
                accounts.to_guest(holder, actor=conn)
            rename(conn, new, actor=conn)
            if changed:
                accounts.hold(conn, owner)
    finally:
        if reserved:
            world.unreserve_nick(conn, new)  # (unless it is ours now)
    if changed:
        accounts.warn_holder(conn, owner)
    if not conn.registered:
        try_register(conn)


@command("USER", 4, before_registration=True)
def user(conn: Connection, msg: Message) -> None:
    """USER <username> 0 * :<realname> — give your username and real name."""
    if conn.registered:
        raise AlreadyRegistered()
    username = msg.params[0]
    if not username or not msg.params[3]:
        raise NeedMoreParams("USER")
    clean = "".join(ch for ch in username if ch.isascii() and (ch.isalnum() or ch in "-_."))
    conn.user = "~" + (clean[:10] or "u")
    conn.realname = msg.params[3][:REALNAME_LEN]
    try_register(conn)


@command("SETNAME", 1)
def setname(conn: Connection, msg: Message) -> None:
    """SETNAME :<realname> — change your real name (shown in WHOIS)."""
    realname = msg.params[0]
    if not realname or len(realname) > REALNAME_LEN:
        conn.send(
            Message(
                "FAIL",
                ("SETNAME", "INVALID_REALNAME", "Real name must be 1 to 100 characters"),
                conn.config.name,
            )
        )
        return
    with conn.world.lock:
        conn.realname = realname
        conn.world.person_changed(conn)
        relay = Relay(Message("SETNAME", (realname,), conn.source), account=conn.account)
        peers = monitor.told_of(conn, caps.SETNAME)
        conn.world.relay_to(peers, relay, actor=conn)


def try_register(conn: Connection) -> None:
    """Complete registration once NICK, USER and CAP negotiation allow it."""
    if conn.registered or conn.nick is None or conn.user is None or conn.cap_negotiating:
        return
    config = conn.config
    if config.password is not None and conn.password != config.password:
        conn.reply(n.ERR_PASSWDMISMATCH, "Password incorrect")
        raise Fatal("Bad password")
    accounts.abort_sasl(conn)
    if config.password is None and not accounts.login_with_pass(conn):
        conn.reply(n.ERR_PASSWDMISMATCH, "Invalid account or password")
        raise Fatal("Invalid account or password")
    owner = accounts.claim_of(conn, conn.nick)  # (reads the database)
    world = conn.world
    if owner is not None and config.nick_reservation == accounts.STRICT:
        # Not logged in to it: the client chooses another nick, and registration waits.
        with world.lock:
            taken = conn.nick
            world.release_nick(conn)
        try:
            accounts.refuse_strict(conn, taken, owner)
        except NicknameInUse as err:
            conn.send_error(err)
        return
    with world.lock:
        world.register(conn)
        accounts.hold(conn, owner)  # before anyone can find it: see accounts.hold
        if conn.secure:
            conn.modes = conn.modes | {"Z"}
        monitor.announce(conn, online=True)
    welcome(conn)
    metadata_handler.connected(conn)
    if conn.modes:
        conn.send(Message("MODE", (conn.name, "+" + "".join(sorted(conn.modes))), conn.source))
    if caps.AUTOJOIN in conn.caps:
        channels.join_channel(conn, config.room, None)
    accounts.warn_holder(conn, owner)
    if conn.account is not None:
        history.deliver_pending(conn)


def welcome(conn: Connection) -> None:
    """The registration burst: 001-005, LUSERS and MOTD."""
    config = conn.config
    server = conn.server
    created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(server.created))
    conn.reply(n.RPL_WELCOME, f"Welcome to the {config.network} IRC Network {conn.source}")
    conn.reply(n.RPL_YOURHOST, f"Your host is {config.name}, running version {server.version}")
    conn.reply(n.RPL_CREATED, f"This server was created {created}")
    chan_modes = "".join(sorted(LIST_MODES + PARAM_MODES + SET_PARAM_MODES + FLAG_MODES))
    with_params = LIST_MODES + PARAM_MODES + SET_PARAM_MODES + "".join(PREFIXES)
    conn.reply(
        n.RPL_MYINFO, config.name, server.version, USER_MODES, chan_modes + "ov", with_params
    )
    send_isupport(conn, isupport(config))
    queries.send_lusers(conn)
    queries.send_motd(conn)


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
    raise Fatal(f"Quit: {reason}" if reason else "Client Quit")
