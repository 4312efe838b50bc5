"""Server operators: OPER, KILL, WALLOPS.

Operators are named in the server's configuration with a password hash
(:mod:`chatcli.passwords`); ``OPER`` makes a client one (user mode ``+o``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatcli.passwords import verify_password
from chatcli.protocol import Message
from chatcli.protocol import numerics as n
from chatcli.server.commands import command
from chatcli.server.errors import NoOperHost, NoPrivileges, NoSuchNick, PasswdMismatch
from chatcli.server.handlers.accounts import throttled
from chatcli.server.tags import Relay

if TYPE_CHECKING:
    from chatcli.server.connection import Connection


@command("OPER", 2)
def oper(conn: Connection, msg: Message) -> None:
    """OPER <name> <password> — become a server operator."""
    name, password = msg.params[0], msg.params[1]
    stored = dict(conn.config.operators).get(name)
    if stored is None:
        raise NoOperHost()
    # Slowed after repeated failures from one address, as logins to accounts are.
    if not throttled(conn, ("oper " + conn.host,), lambda: verify_password(password, stored)):
        raise PasswdMismatch()
    with conn.world.lock:
        if "o" in conn.modes:
            return
        conn.modes.add("o")
        conn.world.operators += 1
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
    reason = msg.params[1] if len(msg.params) > 1 else "no reason given"
    victim.disconnect(f"Killed ({conn.name} ({reason}))")


@command("WALLOPS", 1)
def wallops(conn: Connection, msg: Message) -> None:
    """WALLOPS :<text> — a message to everyone with user mode +w (operators only)."""
    require_oper(conn)
    relay = Relay(Message("WALLOPS", (msg.params[0],), conn.source))
    with conn.world.lock:
        for other in conn.world.registered():
            if "w" in other.modes:
                other.relay(relay)
