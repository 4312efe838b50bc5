"""Exit statuses and the errors that carry them to the command line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit statuses of the ``chat`` command, documented in the README."""

    OK = 0
    ERROR = 1  #: anything else that went wrong
    USAGE = 2  #: bad options or arguments (click's own status for usage errors)
    CONNECT = 3  #: the server could not be reached, or the connection was lost
    ALIAS_REJECTED = 4  #: the alias is invalid or in use
    NO_SUCH_TARGET = 5  #: no such user or room
    REFUSED = 6  #: the server refused the message (moderated, banned, wrong password, ...)
    INTERRUPTED = 130  #: Ctrl-C


class ChatError(Exception):
    """An expected failure, shown to the user as one line; carries its exit status."""

    exit_status = ExitStatus.ERROR

    def __init__(self, message: str, exit_status: ExitStatus | None = None) -> None:
        super().__init__(message)
        if exit_status is not None:
            self.exit_status = exit_status


class ConfigError(ChatError):
    exit_status = ExitStatus.USAGE


class ConnectError(ChatError):
    exit_status = ExitStatus.CONNECT


class Untrusted(ConnectError):
    """The server's TLS certificate is not one we may trust: nothing was sent to it."""


class AliasRejected(ChatError):
    exit_status = ExitStatus.ALIAS_REJECTED


class NoSuchTarget(ChatError):
    exit_status = ExitStatus.NO_SUCH_TARGET


class Refused(ChatError):
    exit_status = ExitStatus.REFUSED


def fail_cleanly(func: Callable[..., object]) -> Callable[..., object]:
    """Turn a ChatError into ``chat: <message>`` on stderr and its exit status, and Ctrl-C
    into status 130 without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return func(*args, **kwargs)
        except ChatError as exc:
            print(f"chat: {exc}", file=sys.stderr)
            sys.exit(int(exc.exit_status))
        except KeyboardInterrupt:
            sys.exit(int(ExitStatus.INTERRUPTED))

    return wrapper
