"""Typed errors of the protocol layer.

A *local* error means our own code tried to build something the protocol forbids (a bug on
our side, or input we should have validated first). A *remote* error means the peer sent
something malformed; it carries the numeric or standard reply a server should answer with,
and whether the connection can go on.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by :mod:`chatcli.protocol`."""


class LocalProtocolError(ProtocolError, ValueError):
    """We tried to build an invalid message (e.g. a parameter containing CR, LF or NUL)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something we cannot accept.

    Attributes:
        fatal: True when there is no sane way to go on reading this connection.
    """

    fatal = False


class EmptyLine(RemoteProtocolError):
    """A line with nothing in it; servers silently ignore these."""


class MalformedLine(RemoteProtocolError):
    """A line that does not parse as an IRC message (no command, or not a valid one).

    Attributes:
        command: what stood where the command should be, or ``*``, for the reply.
    """

    def __init__(self, reason: str, command: str = "*") -> None:
        super().__init__(reason)
        self.command = command


class InputTooLong(RemoteProtocolError):
    """A complete line whose body or tag section exceeds the limits (ERR_INPUTTOOLONG, 417)."""


class InvalidUtf8(RemoteProtocolError):
    """A line that is not valid UTF-8 (answered with ``FAIL <command> INVALID_UTF8``).

    Attributes:
        command: the command the line named, as far as it could be read, for the reply.
    """

    def __init__(self, command: str) -> None:
        super().__init__(f"{command}: line is not valid UTF-8")
        self.command = command


class ReadQExceeded(RemoteProtocolError):
    """The peer sent more bytes than the maximum line length without a line ending.

    Attributes:
        lines: complete lines that arrived before the offending one, not yet returned.
    """

    fatal = True

    def __init__(self, reason: str, lines: list[bytes] | None = None) -> None:
        super().__init__(reason)
        self.lines = lines or []
