"""The chat server: a threaded IRC server. See :class:`Server`."""

from chatcli.server.listener import ListenError, Server

__all__ = ["ListenError", "Server"]
