"""Server operators: OPER, KILL, WALLOPS, REHASH, messages to everyone (``$*``), and the
operators' STATS (l: connections, y: limits).

Operators are named in the server's configuration with a password hash
(:mod:`chatcli.passwords`); ``OPER`` makes a client one (user mode ``+o``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatcli.errors import ConfigError
from chatcli.passwords import check_nothing, verify_password
from chatcli.protocol import Message, caps, mask_match
from chatcli.protocol import numerics as n
from chatcli.server.commands import command
from chatcli.server.errors import (
    NoPrivileges,
    NoSuchNick,
    NoSuchServer,
    PasswdMismatch,
)
from chatcli.server.logins import address_key, guarded, operator_key
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.connection import Connection


@command("OPER", 2)
def oper(conn: Connection, msg: Message) -> None:
    """OPER <name> <password> — become a server operator."""
    name, password = msg.params[0], msg.params[1]
    stored = dict(conn.config.operators).get(name)
    # An unknown name is checked against a dummy hash and refused as a wrong password is,
    # so that operators' names cannot be told by the reply or its time; attempts are
    # throttled per address and per name, as logins to accounts are.
    keys = (address_key(conn), operator_key(name[:64]))
    if not guarded(
        conn,
        keys,
        lambda: check_nothing(password) if stored is None else verify_password(password, stored),
    ):
        raise PasswdMismatch()
    with conn.world.lock:
        if "o" in conn.modes:
            return
        conn.modes = conn.modes | {"o"}
        conn.world.operators += 1
        conn.world.person_changed(conn)
    conn.reply(n.RPL_YOUREOPER, "You are now an IRC operator")
    conn.send(Message("MODE", (conn.name, "+o"), conn.source))


def require_oper(conn: Connection) -> None:
    if "o" not in conn.modes:
        raise NoPrivileges()


@command("KILL", 1)
def kill(conn: Connection, msg: Message) -> None:
    """KILL <nick> [:<reason>] — disconnect someone (operators only)."""
    require_oper(conn)
    with conn.world.lock:
        victim = conn.world.find_nick(msg.params[0])
    if victim is None:
        raise NoSuchNick(msg.params[0])
    reason = (msg.params[1] if len(msg.params) > 1 else "") or "no reason given"
    # KILL first, as other servers send it: a client that sees it knows it was put out on
    # purpose, and does not reconnect (irssi, chat join).
    victim.delivery.send(Message("KILL", (victim.name, reason), conn.source))
    victim.disconnect(f"Killed ({conn.name} ({reason}))")


@command("WALLOPS", 1)
def wallops(conn: Connection, msg: Message) -> None:
    """WALLOPS :<text> — a message to everyone with user mode +w (operators only)."""
    require_oper(conn)
    relay = Relay(Message("WALLOPS", (msg.params[0],), conn.source))
    with conn.world.lock:
        readers = [other for other in conn.world.registered() if "w" in other.modes]
        conn.world.relay_to(readers, relay, actor=conn)


@command("REHASH")
def rehash(conn: Connection, msg: Message) -> None:
    """REHASH — read the settings file, the MOTD and the TLS certificate again (operators
    only). Settings that take a restart keep their values, and the operator is told."""
    require_oper(conn)
    server = conn.server
    conn.reply(n.RPL_REHASHING, server.config_file or "*", "Rehashing")
    try:
        waiting = server.rehash()
    except ConfigError as exc:
        conn.notice(f"REHASH failed, nothing changed: {exc}")
        return
    if waiting:
        conn.notice("These settings changed but take a restart: " + ", ".join(waiting))


def to_everyone(conn: Connection, msg: Message, mask: str) -> None:
    """PRIVMSG/NOTICE ``$<mask>``: to every user of the servers matching ``mask`` (here:
    ``$*``, or this server's name), as RFC 2812 has it; operators only."""
    require_oper(conn)
    if not mask_match(mask[1:], conn.config.name, conn.world.casemapping):
        raise NoSuchServer(mask)
    relay = Relay(Message(msg.command, (mask, msg.params[1]), conn.source), account=conn.account)
    echo = caps.ECHO_MESSAGE in conn.caps  # the sender gets it back only if it asked to
    with conn.world.lock:
        everyone = [other for other in conn.world.registered() if other is not conn or echo]
        conn.world.relay_to(everyone, relay, actor=conn)


# -- STATS l and y ----------------------------------------------------------------------------

#: Connections STATS l lists at most: more would fill the operator's own send queue.
MAX_LINKS = 1000


def stats_links(conn: Connection) -> None:
    """One RPL_STATSLINKINFO for each connection: ``nick[user@address] <sendq bytes> <lines
    queued> <KiB sent> <lines received> <KiB received> <seconds open> :<TLS or not>``; the
    fullest send queues first, at most :data:`MAX_LINKS` (a notice says how many more)."""
    now = time.monotonic()
    with conn.world.lock:
        everyone = list(conn.world.connections)
    everyone.sort(key=lambda other: (-other.sendq.queued, other.connected_at))
    if len(everyone) > MAX_LINKS:
        conn.notice(f"STATS l: the {MAX_LINKS} fullest of {len(everyone)} connections")
    for other in everyone[:MAX_LINKS]:
        queue = other.sendq
        conn.reply(
            n.RPL_STATSLINKINFO,
            f"{other.name}[{other.user or '*'}@{other.host}]",
            str(queue.queued),
            str(queue.lines_out),
            str(queue.bytes_sent // 1024),
            str(other.lines_received),
            str(other.bytes_received // 1024),
            str(int(now - other.connected_at)),
            "TLS" if other.secure else "plaintext",
        )


def stats_limits(conn: Connection) -> None:
    """One RPL_STATSYLINE for each limit: ``Y <setting> <value> :<how close to it>``."""
    config = conn.config
    with conn.world.lock:
        everyone = list(conn.world.connections)
    per_ip = Counter(other.host for other in everyone)
    busiest = per_ip.most_common(1)[0] if per_ip else ("-", 0)
    fullest = max(everyone, key=lambda other: other.sendq.queued, default=None)
    rows: list[tuple[str, object, str]] = [
        ("max_clients", config.max_clients, f"{len(everyone)} connected"),
        ("max_per_ip", config.max_per_ip, f"most from one address: {busiest[1]} ({busiest[0]})"),
        ("throttle_connects", config.throttle_connects, f"in {_plain(config.throttle_window)} s"),
        ("exempt_loopback", config.exempt_loopback, "from max_per_ip and the throttle"),
        (
            "flood_burst",
            config.flood_burst,
            f"then flood_rate {_plain(config.flood_rate)} a second",
        ),
        ("flood_kill", config.flood_kill, "seconds behind before Excess Flood"),
        ("max_recvq", config.max_recvq, "bytes held for one client"),
        (
            "max_sendq",
            config.max_sendq,
            "largest now: "
            + (f"{fullest.sendq.queued} ({fullest.name})" if fullest is not None else "0"),
        ),
        ("registration_timeout", config.registration_timeout, "seconds"),
        ("ping_interval", config.ping_interval, f"then ping_timeout {_plain(config.ping_timeout)}"),
        ("max_channels", config.max_channels, "rooms per client"),
        ("max_targets", config.max_targets, "targets per message"),
        ("max_chathistory", config.max_chathistory, "messages per CHATHISTORY request"),
    ]
    for setting, value, note in rows:
        conn.reply(n.RPL_STATSYLINE, "Y", setting, _plain(value), note)


def _plain(value: object) -> str:
    """A setting as the configuration file has it: ``1048576``, ``0.5``, ``true``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


#: STATS queries for operators only, by letter.
OPER_STATS: dict[str, Callable[[Connection], None]] = {"l": stats_links, "y": stats_limits}
