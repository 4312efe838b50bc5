"""Command handlers, one module per area; importing this package fills the command table."""

from chatcli.server.handlers import (
    channels,
    messaging,
    modes,
    monitor,
    operators,
    queries,
    registration,
)

__all__ = ["channels", "messaging", "modes", "monitor", "operators", "queries", "registration"]
