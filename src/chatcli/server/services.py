"""What the services (NickServ, ChanServ) say, below the command handlers that act for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatcli.protocol import Message

if TYPE_CHECKING:
    from chatcli.server.connection import Speaker

SERVICE_SOURCE = "NickServ!NickServ@services"
NO_DATABASE = "Accounts need a database, and this server has none"


def service_notice(to: Speaker, text: str, source: str = SERVICE_SOURCE) -> None:
    """A notice from a service to a client: ``to`` is the client itself, as its own
    command's output, or its :attr:`~chatcli.server.connection.Connection.delivery`."""
    to.send(Message("NOTICE", (to.name, text), source))
