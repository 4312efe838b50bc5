"""Cloaked hosts: what other users see instead of a user's IP address.

As Ergo's ``ip-cloaking`` does, a cloak is a keyed hash of the address, in base32, followed
by the network's name: ``2a3v7pwbqkv6e.chatcli``. The key is the server's secret (kept in
its database, so a cloak stays the same across restarts; random each run without one), so
that nobody can work an address out from its cloak by trying addresses, yet one address
always shows as one cloak, which bans can name. An IPv6 address is cloaked by its /64,
which one user usually holds whole (Ergo's default too): a ban on the cloak holds for it.

This module is pure: no sockets, no clock, no state.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re

#: The cloak's hash, in bytes: 64 bits, 13 base32 characters (Ergo's ``num-bits``).
HASH_BYTES = 8
#: The prefix length an IPv6 address is cloaked by (Ergo's ``cidr-len-ipv6``).
IPV6_PREFIX = 64
#: The suffix when the network's name has nothing a host name may hold.
DEFAULT_SUFFIX = "chatcli"


def cloak(host: str, key: bytes, network: str) -> str:
    """The cloak of the address ``host``: ``<hash>.<network>``.

    Args:
        host: the real address, as the socket gave it (a scoped IPv6 address may carry
            ``%<zone>``); anything that is not an address is hashed as it is.
        key: the server's secret, up to 64 bytes (BLAKE2b's longest key).
        network: the network's name; what a host name may not hold is left out.
    """
    digest = hashlib.blake2b(_address_bytes(host), key=key, digest_size=HASH_BYTES).digest()
    label = base64.b32encode(digest).decode("ascii").rstrip("=").lower()
    return f"{label}.{suffix(network)}"


def suffix(network: str) -> str:
    """The network's name as the last label of a host name: lowercase letters, digits
    and hyphens."""
    return re.sub(r"[^a-z0-9-]", "", network.lower()).strip("-") or DEFAULT_SUFFIX


def _address_bytes(host: str) -> bytes:
    """What is hashed: the packed address (IPv4, or an IPv6 /64; an IPv4-mapped IPv6
    address counts as its IPv4 one), or the text of something else."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return b"host " + host.encode("utf-8", "replace")
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped.packed
        network = ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False)
        return network.network_address.packed
    return address.packed
