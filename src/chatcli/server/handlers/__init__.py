"""Command handlers, one module per area; importing this package fills the command table."""

from chatcli.server.handlers import (
    accounts,
    channels,
    chathistory,
    messaging,
    metadata,
    modes,
    monitor,
    operators,
    queries,
    readmarker,
    redaction,
    registration,
    rename,
    rooms,
)

__all__ = [
    "accounts",
    "channels",
    "chathistory",
    "messaging",
    "metadata",
    "modes",
    "monitor",
    "operators",
    "queries",
    "readmarker",
    "redaction",
    "registration",
    "rename",
    "rooms",
]
