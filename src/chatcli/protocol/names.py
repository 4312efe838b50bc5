"""Nicknames, channel names and case mapping.

Sans-IO. IRC compares names case-insensitively under a *casemapping* that the server
advertises in ISUPPORT (``CASEMAPPING=``). ``ascii`` folds A-Z only; ``rfc1459`` also folds
``[]\\~`` to ``{}|^``, because of IRC's Scandinavian origin. Wildcard masks over names
(``mask_match``) are in :mod:`chatcli.protocol.masks`.
"""

from __future__ import annotations

import re
from enum import StrEnum


class CaseMapping(StrEnum):
    ASCII = "ascii"
    RFC1459 = "rfc1459"

    def fold(self, name: str) -> str:
        """The canonical (lower-case) form of ``name`` under this mapping."""
        table = _ASCII_TABLE if self is CaseMapping.ASCII else _RFC1459_TABLE
        return name.translate(table)


_ASCII_TABLE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_RFC1459_TABLE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~", "abcdefghijklmnopqrstuvwxyz{}|^")

#: Channel name prefixes this server supports (``CHANTYPES``).
CHANTYPES = "#"
NICKLEN = 30
CHANNELLEN = 64

# Modern IRC: nicks must not contain space, comma, '*', '?', '!', '@'; must not start with
# '$', ':', a channel type or a membership prefix. We are stricter, like RFC 2812 and Ergo's
# ascii mode: a letter or special first, then letters, digits, specials and '-'.
_NICK = re.compile(r"^[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}\-]*\Z")
_CHANNEL_FORBIDDEN = re.compile(r"[\s,\x07:\x00]")


def is_valid_nick(nick: str, max_len: int = NICKLEN) -> bool:
    """Whether ``nick`` can be used as a nickname."""
    return 0 < len(nick) <= max_len and _NICK.match(nick) is not None


def is_channel(target: str) -> bool:
    """Whether ``target`` names a channel rather than a user."""
    return bool(target) and target[0] in CHANTYPES


def is_valid_channel(name: str, max_len: int = CHANNELLEN) -> bool:
    """Whether ``name`` can be used as a channel name (``#`` then no space, comma, BEL, ':',
    NUL)."""
    return is_channel(name) and 1 < len(name) <= max_len and _CHANNEL_FORBIDDEN.search(name) is None


def split_source(source: str) -> tuple[str, str, str]:
    """``nick!user@host`` -> ``(nick, user, host)``; missing parts are empty strings."""
    nick_user, _, host = source.partition("@")  # ``nick@host`` has a host but no user
    nick, _, user = nick_user.partition("!")
    return nick, user, host
