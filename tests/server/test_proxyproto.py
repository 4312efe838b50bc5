"""Specification of :mod:`chatcli.server.proxyproto`: the PROXY protocol, versions 1 and 2
(https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt), byte by byte. No sockets."""

from __future__ import annotations

import pytest

from chatcli.server.proxyproto import (
    MAX_HEADER,
    V1_MAX,
    V2_SIGNATURE,
    Command,
    ProxyHeader,
    ProxyHeaderError,
    encode_v1,
    encode_v2,
    parse,
)

# What follows a header: the client's own bytes (a TLS ClientHello, an IRC line).
AFTER = b"\x16\x03\x01\x00\xa5NICK alice\r\n"


def _tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


#: (header bytes, what they parse to) for every kind of valid header.
VALID = [
    (
        b"PROXY TCP4 203.0.113.7 192.0.2.1 5555 6667\r\n",
        ProxyHeader(1, Command.PROXY, ("203.0.113.7", 5555), ("192.0.2.1", 6667), 44),
    ),
    (
        b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 6697\r\n",
        ProxyHeader(1, Command.PROXY, ("2001:db8::7", 65535), ("2001:db8::1", 6697), 47),
    ),
    (  # an IPv4 client of a proxy listening on IPv6: keyed as the IPv4 address it is
        b"PROXY TCP6 ::ffff:198.51.100.2 ::1 0 6667\r\n",
        ProxyHeader(1, Command.PROXY, ("198.51.100.2", 0), ("::1", 6667), 43),
    ),
    (b"PROXY UNKNOWN\r\n", ProxyHeader(1, Command.PROXY, None, None, 15)),
    (  # "the receiver must ignore anything presented before the CRLF"
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        ProxyHeader(1, Command.PROXY, None, None, 59),
    ),
    (
        encode_v2(("203.0.113.7", 5555), ("192.0.2.1", 6667)),
        ProxyHeader(2, Command.PROXY, ("203.0.113.7", 5555), ("192.0.2.1", 6667), 28),
    ),
    (
        encode_v2(("2001:db8::7", 40000), ("2001:db8::1", 6697)),
        ProxyHeader(2, Command.PROXY, ("2001:db8::7", 40000), ("2001:db8::1", 6697), 52),
    ),
    (  # TLVs (ALPN, authority, a NOOP) are skipped
        encode_v2(
            ("203.0.113.7", 5555),
            ("192.0.2.1", 6667),
            tlvs=_tlv(0x01, b"irc") + _tlv(0x02, b"chat.example.org") + _tlv(0x04, b"\0" * 9),
        ),
        ProxyHeader(2, Command.PROXY, ("203.0.113.7", 5555), ("192.0.2.1", 6667), 65),
    ),
    (encode_v2(None), ProxyHeader(2, Command.LOCAL, None, None, 16)),  # a health check
    (  # LOCAL with addresses anyway: "must be ignored"
        V2_SIGNATURE + b"\x20\x11\x00\x0c" + bytes(12),
        ProxyHeader(2, Command.LOCAL, None, None, 28),
    ),
    (  # PROXY for an unspecified family: the connection's own address
        V2_SIGNATURE + b"\x21\x00\x00\x00",
        ProxyHeader(2, Command.PROXY, None, None, 16),
    ),
    (  # a unix socket (216 bytes of paths): the connection's own address
        V2_SIGNATURE + b"\x21\x31\x00\xd8" + bytes(216),
        ProxyHeader(2, Command.PROXY, None, None, 232),
    ),
]


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_a_whole_header_parses_with_its_length_and_leaves_what_follows(data, expected):
    assert parse(data) == expected
    assert parse(data + AFTER) == expected  # what follows is not its own
    assert expected.length == len(data)


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_every_start_of_a_header_asks_for_more(data, expected):
    """Byte by byte: each proper prefix, the empty one too, is incomplete, never an
    error; so a reader may take every byte it was told None for."""
    for end in range(len(data)):
        assert parse(data[:end]) is None, data[:end]


INVALID = [
    (b"NICK alice\r\n", "not a PROXY header"),
    (b"\x16\x03\x01\x00\xa5\x01", "not a PROXY header"),  # a TLS ClientHello
    (b"GET / HTTP/1.1\r\n", "not a PROXY header"),
    (b"PROXZ TCP4", "not a PROXY header"),
    (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY header"),
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 5555 6667\n", "without CR LF"),
    (b"PROXY TCP5 203.0.113.7 192.0.2.1 5555 6667\r\n", "TCP4, TCP6 or UNKNOWN"),
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 5555\r\n", "two addresses and two ports"),
    (b"PROXY TCP4 203.0.113.7  192.0.2.1 5555 6667\r\n", "two addresses and two ports"),
    (b"PROXY TCP4 2001:db8::7 192.0.2.1 5555 6667\r\n", "not TCP4"),
    (b"PROXY TCP6 203.0.113.7 2001:db8::1 5555 6667\r\n", "not TCP6"),
    (b"PROXY TCP4 203.0.113.300 192.0.2.1 5555 6667\r\n", "not TCP4"),
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 65536 6667\r\n", "out of range"),
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 05555 6667\r\n", "not a number"),
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 -1 6667\r\n", "not a number"),
    (b"PROXY TCP4 203.0.113.\xc3\xa9 192.0.2.1 1 2\r\n", "not ASCII"),
    (b"PROXY\r\n", "not a PROXY header"),
    (b"PROXY UNKNOWN " + b"x" * (V1_MAX - 14), f"within {V1_MAX} bytes"),
    (b"PROXY UNKNOWN " + b"x" * (V1_MAX - 15) + b"\r\n", f"within {V1_MAX} bytes"),
    (b"\r\n\r\n\x00\r\nQUIX\n" + bytes(8), "not a PROXY header"),  # wrong signature
    (V2_SIGNATURE + b"\x11\x11\x00\x0c", "version 1 is not 2"),
    (V2_SIGNATURE + b"\x22\x11\x00\x0c", "neither LOCAL nor PROXY"),
    (V2_SIGNATURE + b"\x21\x41\x00\x0c", "unknown"),
    (V2_SIGNATURE + b"\x21\x13\x00\x0c", "unknown"),
    (V2_SIGNATURE + b"\x21\x12\x00\x0c" + bytes(12), "not TCP"),  # UDP over IPv4
    (V2_SIGNATURE + b"\x21\x11\x00\x08" + bytes(8), "under 12"),  # addresses cut short
    (V2_SIGNATURE + b"\x21\x21\x00\x0c" + bytes(12), "under 36"),
    (V2_SIGNATURE + b"\x21\x11" + (MAX_HEADER - 15).to_bytes(2, "big"), f"over {MAX_HEADER}"),
    (V2_SIGNATURE + b"\x21\x11\xff\xff", f"over {MAX_HEADER}"),  # the most the field says
]


@pytest.mark.parametrize(("data", "why"), INVALID)
def test_what_cannot_begin_a_header_is_an_error_that_says_why(data, why):
    with pytest.raises(ProxyHeaderError, match=why):
        parse(data)
    with pytest.raises(ProxyHeaderError):
        parse(data + AFTER)


def test_garbage_is_refused_at_its_first_byte():
    """A client that does not send a header is told so at once, not after a timeout."""
    for first in (b"N", b"\x16", b"G", b"\x00", b" "):
        with pytest.raises(ProxyHeaderError):
            parse(first)


def test_a_v2_header_at_the_size_limit_is_taken():
    data = encode_v2(("203.0.113.7", 1), ("192.0.2.1", 2), tlvs=_tlv(0x04, bytes(MAX_HEADER - 31)))
    assert len(data) == MAX_HEADER
    header = parse(data + AFTER)
    assert header is not None
    assert header.length == MAX_HEADER and header.source == ("203.0.113.7", 1)


def test_encode_v1_gives_what_haproxy_sends():
    assert encode_v1(("203.0.113.7", 5555), ("127.0.0.1", 6667)) == (
        b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 6667\r\n"
    )
    assert encode_v1(("2001:db8::7", 1), ("::1", 2)) == b"PROXY TCP6 2001:db8::7 ::1 1 2\r\n"
