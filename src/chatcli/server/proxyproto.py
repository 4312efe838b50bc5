"""The PROXY protocol (HAProxy's, versions 1 and 2), sans-IO: bytes in, a header out.

A TCP load balancer such as haproxy (``send-proxy``, ``send-proxy-v2``) opens its own
connection to the server and writes, before anything of the client's, one header saying
whose connection it carries: the client's address and port, and the address it reached.
Specification: https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt

:func:`parse` takes the bytes received so far (which may run on past the header: the
client's TLS handshake or IRC lines) and returns the :class:`ProxyHeader` with how many of
them it took, or None while the header is still incomplete; :class:`ProxyHeaderError` when
the bytes cannot begin a header. Version 1 (a text line) and version 2 (binary) are told
apart by their first bytes. Every byte before a complete header belongs to it, so a reader
may take, rather than peek at, whatever :func:`parse` answered None for.

Nothing here reads a socket, starts a thread or looks at a clock: the caller reads (only
from addresses it trusts: a header is a claim anyone could make) and bounds the wait.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from enum import Enum

#: "The maximum line lengths the receiver must support including the CRLF are [...]
#: 107 bytes" (2.1), for ``PROXY UNKNOWN`` with whatever follows it.
V1_MAX = 107
V1_PREFIX = b"PROXY "
#: "\x0D \x0A \x0D \x0A \x00 \x0D \x0A \x51 \x55 \x49 \x54 \x0A" (2.2)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  #: the signature, version and command, family and transport, length
#: The most a version 2 header may take here, all told: the spec's 536-byte buffer (the
#: minimal TCP MSS, so a header the sender writes at once arrives at once), room for the
#: addresses (IPv6: 36 bytes; unix sockets: 216) and a few TLVs. Longer: refused.
MAX_HEADER = 536
_V4_BLOCK = 12  # source and destination addresses (4 bytes each), then ports (2 each)
_V6_BLOCK = 36  # ... (16 bytes each), then ports
_V1_FAMILIES = {"TCP4": ipaddress.IPv4Address, "TCP6": ipaddress.IPv6Address}


class Command(Enum):
    """What the header says of the connection."""

    #: It carries a client's connection (v1, and v2's PROXY command).
    PROXY = "proxy"
    #: The proxy's own connection, a health check (v2 LOCAL): "the receiver must accept
    #: this connection as valid and must use the real connection endpoints".
    LOCAL = "local"


class ProxyHeaderError(ValueError):
    """The bytes are not (the start of) a valid PROXY header; the text says why."""


@dataclasses.dataclass(frozen=True, slots=True)
class ProxyHeader:
    """One PROXY header, parsed."""

    version: int  #: 1 or 2
    command: Command
    #: The client's address and port; None when the header gives none to believe (v1
    #: ``UNKNOWN``, v2 LOCAL, an unspecified family or a unix socket): the connection's
    #: own address stands.
    source: tuple[str, int] | None
    destination: tuple[str, int] | None  #: the address the client reached, likewise
    length: int  #: how many bytes the header took (what follows belongs to the client)


def parse(data: bytes) -> ProxyHeader | None:
    """The PROXY header at the start of ``data``, or None if ``data`` is a valid start of
    one but not the whole of it (every byte of ``data`` then belongs to the header).

    Raises:
        ProxyHeaderError: ``data`` does not begin with a valid header (or the start of
            one): another protocol, a malformed line, too long, an unknown version.
    """
    if data[:1] == V1_PREFIX[:1]:
        return _parse_v1(data)
    if data[:1] == V2_SIGNATURE[:1]:
        return _parse_v2(data)
    if not data:
        return None
    raise ProxyHeaderError("not a PROXY header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    """``PROXY TCP4|TCP6 <source> <destination> <source port> <destination port>\\r\\n``,
    or ``PROXY UNKNOWN ...\\r\\n``: one line of at most :data:`V1_MAX` bytes."""
    if not data.startswith(V1_PREFIX[: len(data)]):
        raise ProxyHeaderError("not a PROXY header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if b"\n" in data[:V1_MAX]:
            raise ProxyHeaderError("version 1 header ends without CR LF")
        if len(data) >= V1_MAX:
            raise ProxyHeaderError(f"version 1 header without CR LF within {V1_MAX} bytes")
        return None
    line = data[:end]
    if not line.isascii():
        raise ProxyHeaderError("version 1 header is not ASCII")
    fields = line.decode("ascii").split(" ")
    if len(fields) < 2:
        raise ProxyHeaderError("version 1 header without a protocol")
    length = end + 2
    if fields[1] == "UNKNOWN":  # "the receiver must ignore anything presented before the CRLF"
        return ProxyHeader(1, Command.PROXY, None, None, length)
    family = _V1_FAMILIES.get(fields[1])
    if family is None:
        raise ProxyHeaderError(f"version 1 protocol not TCP4, TCP6 or UNKNOWN: {fields[1]!r}")
    if len(fields) != 6:
        raise ProxyHeaderError("version 1 header needs two addresses and two ports")
    try:
        source, destination = family(fields[2]), family(fields[3])
    except ValueError:
        raise ProxyHeaderError(f"version 1 addresses are not {fields[1]}") from None
    ports = [_v1_port(text) for text in fields[4:]]
    return ProxyHeader(
        1, Command.PROXY, (_host(source), ports[0]), (_host(destination), ports[1]), length
    )


def _v1_port(text: str) -> int:
    # "a 16-bit unsigned integer expressed in decimal [...] leading zeroes are not permitted"
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        raise ProxyHeaderError(f"version 1 port is not a number: {text!r}")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError(f"version 1 port out of range: {port}")
    return port


def _parse_v2(data: bytes) -> ProxyHeader | None:
    """The binary header: the 12-byte signature, version and command, address family and
    transport, the length of what follows (addresses, then TLVs, which are skipped)."""
    if not data.startswith(V2_SIGNATURE[: len(data)]):
        raise ProxyHeaderError("not a PROXY header")
    if len(data) < V2_FIXED:
        return None
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError(f"PROXY protocol version {version} is not 2")
    if command not in (0, 1):
        raise ProxyHeaderError(f"version 2 command {command} is neither LOCAL nor PROXY")
    family, transport = data[13] >> 4, data[13] & 0x0F
    if family > 3 or transport > 2:
        raise ProxyHeaderError(f"version 2 family and transport unknown: {data[13]:#04x}")
    length = V2_FIXED + int.from_bytes(data[14:16], "big")
    if length > MAX_HEADER:
        raise ProxyHeaderError(f"version 2 header of {length} bytes, over {MAX_HEADER}")
    if len(data) < length:
        return None
    if command == 0:  # LOCAL: "the protocol block [...] must be ignored"
        return ProxyHeader(2, Command.LOCAL, None, None, length)
    if family not in (1, 2):  # UNSPEC or a unix socket: the connection's own address
        return ProxyHeader(2, Command.PROXY, None, None, length)
    if transport != 1:
        raise ProxyHeaderError("version 2 header for a datagram or unknown transport, not TCP")
    block = data[V2_FIXED:length]
    size, width, make = (
        (_V4_BLOCK, 4, ipaddress.IPv4Address)
        if family == 1
        else (_V6_BLOCK, 16, ipaddress.IPv6Address)
    )
    if len(block) < size:
        raise ProxyHeaderError(f"version 2 address block of {len(block)} bytes, under {size}")
    source = make(block[:width])
    destination = make(block[width : 2 * width])
    ports = block[2 * width : size]
    return ProxyHeader(
        2,
        Command.PROXY,
        (_host(source), int.from_bytes(ports[:2], "big")),
        (_host(destination), int.from_bytes(ports[2:], "big")),
        length,
    )


def _host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """``address`` as the server keys addresses: an IPv4-mapped IPv6 address (what a
    proxy listening on IPv6 says of an IPv4 client) as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def encode_v1(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A version 1 header for a TCP connection from ``source`` to ``destination`` (what a
    proxy sends: for tests and tools)."""
    family = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def encode_v2(
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None = None,
    *,
    tlvs: bytes = b"",
) -> bytes:
    """A version 2 header: PROXY for a TCP connection from ``source`` to ``destination``,
    or LOCAL (a health check) with ``source`` None; ``tlvs`` appended as they are."""
    if source is None:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + len(tlvs).to_bytes(2, "big") + tlvs
    destination = destination or (("::" if ":" in source[0] else "0.0.0.0"), 0)
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    family = 0x11 if src.version == 4 else 0x21
    block = src.packed + dst.packed + source[1].to_bytes(2, "big")
    block += destination[1].to_bytes(2, "big") + tlvs
    return V2_SIGNATURE + bytes([0x21, family]) + len(block).to_bytes(2, "big") + block
