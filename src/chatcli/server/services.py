"""What the services (NickServ, ChanServ) say, below the command handlers that act for them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatcli.protocol import Message

if TYPE_CHECKING:
    from chatcli.server.connection import Connection

SERVICE_SOURCE = "NickServ!NickServ@services"
NO_DATABASE = "Accounts need a database, and this server has none"


def service_notice(conn: Connection, text: str, source: str = SERVICE_SOURCE) -> None:
    conn.send(Message("NOTICE", (conn.name, text), source))
