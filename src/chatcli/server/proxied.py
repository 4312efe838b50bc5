"""Connections from a trusted PROXY-protocol proxy: which they are, and reading their header.

``proxy_protocol`` in the settings names the load balancers (addresses or networks) that
begin every connection with a PROXY header (:mod:`chatcli.server.proxyproto`) saying whose
connection it carries. A connection from one of them must begin so; from anywhere else no
header is ever looked for (a client cannot claim another address).

:func:`read_header` is called by the connection's own thread (an IRC connection's, or a
web connection's), never by an accept loop: a proxy that is slow, or someone connecting
from its address who sends nothing, holds that thread only, for at most
:data:`HEADER_TIMEOUT` seconds. It reads from the raw socket, before any TLS handshake (a
proxy sends the header before the client's TLS), and takes exactly the header's bytes:
what follows stays on the socket for TLS, IRC or HTTP.
"""

from __future__ import annotations

import functools
import ipaddress
import select
import socket
import time
from collections.abc import Callable
from typing import Protocol

from chatcli.server.proxyproto import MAX_HEADER, ProxyHeader, ProxyHeaderError, parse

#: Seconds a connection from a proxy has to send its whole PROXY header.
HEADER_TIMEOUT = 5.0
#: The reason a connection from a proxy without a valid header is refused, as counted in
#: the metrics (``chatcli_connections_refused{reason="proxy_header"}``).
NO_HEADER = "No valid PROXY header"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class HeaderNotRead(Exception):
    """No valid PROXY header came: garbage, the connection's end, or the timeout. The text
    says which, for the log."""


class RawSocket(Protocol):
    """What :func:`read_header` needs: a :class:`~chatcli.server.transport.Stream`'s raw
    reads, under any TLS (:class:`SocketReader` gives them to a plain socket)."""

    def fileno(self) -> int: ...

    def peek_raw(self, size: int) -> bytes: ...

    def recv_raw(self, size: int) -> bytes: ...


class SocketReader:
    """A plain socket (the web listener's) as a :class:`RawSocket`."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def peek_raw(self, size: int) -> bytes:
        return self.sock.recv(size, socket.MSG_PEEK)

    def recv_raw(self, size: int) -> bytes:
        return self.sock.recv(size)


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in proxies)


def is_trusted(host: str, proxies: tuple[str, ...]) -> bool:
    """Whether a connection from ``host`` comes from one of ``proxies`` (the setting
    ``proxy_protocol``: addresses or networks), and so must begin with a PROXY header."""
    if not proxies:
        return False
    try:
        source = ipaddress.ip_address(host.split("%", 1)[0])
        return any(source in net for net in _networks(proxies))
    except ValueError:  # not addresses (validated settings have none): trust nothing
        return False


def read_header(
    raw: RawSocket, timeout: float, stopped: Callable[[], bool] = lambda: False
) -> ProxyHeader:
    """Read the PROXY header at the start of ``raw``: peek at what has come, and take
    exactly the header's bytes once it is whole (bytes before a complete header are the
    header's: those are taken as they come, so that a wait is for new bytes). Bounded: at
    most :data:`~chatcli.server.proxyproto.MAX_HEADER` bytes and ``timeout`` seconds; a
    wait ends early on the connection's end (a shutdown wakes it), and ``stopped`` is
    asked after each.

    Raises:
        HeaderNotRead: the header is malformed, or did not come in time or at all;
        OSError: the socket failed.
    """
    deadline = time.monotonic() + timeout
    taken = b""
    while True:
        if stopped():
            raise HeaderNotRead("the connection is ending")
        left = deadline - time.monotonic()
        if left <= 0:
            raise HeaderNotRead(f"no whole PROXY header within {timeout:g} seconds")
        if not _readable(raw, left):
            continue
        try:
            chunk = raw.peek_raw(MAX_HEADER - len(taken))
        except (BlockingIOError, InterruptedError):
            continue
        if not chunk:
            raise HeaderNotRead("closed before a whole PROXY header")
        try:
            header = parse(taken + chunk)
        except ProxyHeaderError as exc:
            raise HeaderNotRead(str(exc)) from None
        if header is not None:
            _take(raw, header.length - len(taken))
            return header
        if len(taken) + len(chunk) >= MAX_HEADER:  # (parse never waits that long)
            raise HeaderNotRead("PROXY header too long")
        taken += _take(raw, len(chunk))


def _take(raw: RawSocket, size: int) -> bytes:
    """``size`` bytes, peeked already: there on the socket."""
    data = b""
    while len(data) < size:
        chunk = raw.recv_raw(size - len(data))
        if not chunk:
            raise HeaderNotRead("closed before a whole PROXY header")
        data += chunk
    return data


def _readable(raw: RawSocket, timeout: float) -> bool:
    """Wait until ``raw`` has bytes (or its end, or an error); False on timeout. poll()
    where there is one (no limit on descriptor numbers), else select()."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(raw.fileno(), select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    readable, _, errors = select.select([raw], [], [raw], timeout)
    return bool(readable or errors)
