"""The chat server: a threaded IRC server. See :class:`Server`."""

from chatcli.server.listener import Server

__all__ = ["Server"]
