"""The command table and the dispatcher.

Each verb has a :class:`Command`: its handler, how many parameters it needs, and whether it
may be used before registration. :func:`dispatch` does the checks every command shares and
turns a handler's :class:`~chatcli.server.errors.IRCError` into its numeric reply, so that
handlers are small functions that read like the protocol document.

A handler's docstring starts with the command's syntax line; ``HELP`` shows it. Handlers
enter the table when :mod:`chatcli.server.handlers` is imported (the server does): this
module, below them, imports none of them.

A handler that raises anything else has a bug: the client gets ``400`` and the log the
traceback, at a bounded rate (:class:`TracebackLimit`), so that a client that found a way
to trigger it again and again cannot flood the log.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatcli.protocol import Message
from chatcli.protocol import numerics as n
from chatcli.server.errors import (
    BackboneUnavailable,
    Fatal,
    IRCError,
    NeedMoreParams,
    NotRegistered,
)
from chatcli.server.store import StoreError

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
        conn.end(exc.reason)
    except BackboneUnavailable as exc:  # a cluster's Redis is out of reach
        log.warning("%s from %r not done: %s", msg.command, conn, exc)
        conn.fail(
            msg.command,
            "TEMPORARILY_UNAVAILABLE",
            "The server cannot reach the rest of the chat now; nothing was changed, try again",
        )
    except StoreError as exc:  # the disk is full, say: nothing was changed; try later
        log.warning("%s from %r not done: %s", msg.command, conn, exc)
        conn.fail(
            msg.command,
            "TEMPORARILY_UNAVAILABLE",
            "The server cannot write to its database now; nothing was changed, try again later",
        )
    # SystemExit too: a stray sys.exit() in a handler is a bug like any other, and
    # threading would otherwise end this connection without a word in the log.
    except (Exception, SystemExit):
        log_exception(conn.server.tracebacks, "%s from %r failed", msg.command, conn)
        conn.reply(n.ERR_UNKNOWNERROR, msg.command, "Internal error; the operators were told")


# -- logging unexpected exceptions ----------------------------------------------------------


class TracebackLimit:
    """How many tracebacks go to the log: a token bucket of ``burst`` tracebacks, refilled
    at ``burst`` every ``period`` seconds. Thread-safe; the clock can be injected.

    :meth:`check` is asked once for each exception, and says whether to log its traceback
    and how many were left out since the last one logged.
    """

    def __init__(
        self, burst: int = 5, period: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if burst < 1 or period <= 0:
            raise ValueError("burst must be at least 1 and period positive")
        self.burst = burst
        self.period = period
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._at = clock()
        self._left_out = 0

    def check(self) -> tuple[bool, int]:
        """Count one exception. Returns whether its traceback may be logged, and how many
        tracebacks were left out since the last one logged: this one included, if it is
        left out too; the count starts again after one is logged."""
        with self._lock:
            now = self._clock()
            refill = max(0.0, now - self._at) * self.burst / self.period
            self._tokens = min(float(self.burst), self._tokens + refill)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                left_out, self._left_out = self._left_out, 0
                return True, left_out
            self._left_out += 1
            return False, self._left_out


def log_exception(limit: TracebackLimit, text: str, *args: object) -> None:
    """Log the exception being handled, ``text % args``, at ERROR: with its traceback while
    ``limit`` (the server's) allows, else as one line that names the exception and counts
    the tracebacks left out."""
    full, left_out = limit.check()
    if full:
        note = f" ({left_out} more tracebacks were left out before this one)" if left_out else ""
        log.error(text + note, *args, exc_info=True)
        return
    exc = sys.exc_info()[1]
    log.error(
        text + ": %s (traceback left out, %d since the last one logged: at most %d every %g s)",
        *args,
        f"{type(exc).__name__}: {exc}" if exc is not None else "no exception",
        left_out,
        limit.burst,
        limit.period,
    )
