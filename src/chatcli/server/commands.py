"""The command table and the dispatcher.

Each verb has a :class:`Command`: its handler, how many parameters it needs, and whether it
may be used before registration. :func:`dispatch` does the checks every command shares and
turns a handler's :class:`~chatcli.server.errors.IRCError` into its numeric reply, so that
handlers are small functions that read like the protocol document.

A handler's docstring starts with the command's syntax line; ``HELP`` shows it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatcli.protocol import Message
from chatcli.protocol import numerics as n
from chatcli.server.errors import Fatal, IRCError, NeedMoreParams, NotRegistered

if TYPE_CHECKING:
    from chatcli.server.connection import Connection

log = logging.getLogger("chatcli.server")

Handler = Callable[["Connection", Message], None]


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    min_params: int = 0
    before_registration: bool = False

    @property
    def help(self) -> list[str]:
        doc = (self.handler.__doc__ or self.name).strip()
        return [line.strip() for line in doc.splitlines()]


COMMANDS: dict[str, Command] = {}


def command(
    name: str, min_params: int = 0, *, before_registration: bool = False
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``name``."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, handler, min_params, before_registration)
        return handler

    return register


def dispatch(conn: Connection, msg: Message) -> None:
    """Run one message from ``conn``; every error becomes a reply, never an exception."""
    cmd = COMMANDS.get(msg.command)
    try:
        if cmd is None:
            conn.reply(n.ERR_UNKNOWNCOMMAND, msg.command, "Unknown command")
            return
        if not conn.registered and not cmd.before_registration:
            raise NotRegistered()
        if len(msg.params) < cmd.min_params:
            raise NeedMoreParams(msg.command)
        cmd.handler(conn, msg)
    except IRCError as err:
        conn.send_error(err)
    except Fatal as exc:
        conn.disconnect(exc.reason)
    # SystemExit too: a stray sys.exit() in a handler is a bug like any other, and
    # threading would otherwise end this connection without a word in the log.
    except (Exception, SystemExit):
        log.exception("%s from %r failed", msg.command, conn)
        conn.reply(n.ERR_UNKNOWNERROR, msg.command, "Internal error; the operators were told")


from chatcli.server import handlers  # noqa: E402,F401  (fills COMMANDS)
