"""The host a test server shows for its clients: the cloak of 127.0.0.1, where every test
client connects from, made with that server's own key (new each run without a database)."""

from __future__ import annotations

from chatcli.server.cloaks import cloak
from tests.conftest import RunningServer

LOOPBACK = "127.0.0.1"


def shown_host(running: RunningServer, ip: str = LOOPBACK) -> str:
    """What others see as the host of a client of ``running`` connected from ``ip``."""
    return cloak(ip, running.server.world.cloak_key, running.config.network)
