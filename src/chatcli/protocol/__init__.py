"""The IRC protocol, sans-IO: messages, framing, numerics, names, wildcard masks.

Nothing in this package imports ``socket``, ``threading`` or ``time``: it turns bytes into
typed values and back, and both the server and the client are built on it.

The wildcard masks (:mod:`chatcli.protocol.masks`: ``Mask``, ``compile_mask``,
``mask_match``) are imported on first use: only the server matches masks, and ``chat send``,
which imports this package, would otherwise pay for them (and for ``typing``) at start-up.
"""

from __future__ import annotations

from chatcli.protocol import caps, numerics
from chatcli.protocol.errors import (
    EmptyLine,
    InputTooLong,
    InvalidUtf8,
    LocalProtocolError,
    MalformedLine,
    ProtocolError,
    ReadQExceeded,
    RemoteProtocolError,
)
from chatcli.protocol.framing import MAX_LINE_BYTES, LineBuffer
from chatcli.protocol.message import (
    MAX_BODY_BYTES,
    MAX_CLIENT_TAG_BYTES,
    MAX_TAG_BYTES,
    Message,
    escape_tag_value,
    isupport_tokens,
    label_of,
    message,
    number,
    parse_line,
    server_time,
    split_text,
    unescape_tag_value,
)
from chatcli.protocol.names import (
    CHANTYPES,
    CaseMapping,
    is_channel,
    is_valid_channel,
    is_valid_nick,
    split_source,
)

# Not ``typing.TYPE_CHECKING``: importing typing costs start-up time too. Type checkers
# take any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from chatcli.protocol.masks import Mask, compile_mask, mask_match

#: The names this package takes from chatcli.protocol.masks when first asked for them.
_FROM_MASKS = frozenset({"Mask", "compile_mask", "mask_match"})


def __getattr__(name: str) -> object:
    """The names of :data:`_FROM_MASKS`, imported on first use (PEP 562)."""
    if name not in _FROM_MASKS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module("chatcli.protocol.masks"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "CHANTYPES",
    "MAX_BODY_BYTES",
    "MAX_CLIENT_TAG_BYTES",
    "MAX_LINE_BYTES",
    "MAX_TAG_BYTES",
    "CaseMapping",
    "EmptyLine",
    "InputTooLong",
    "InvalidUtf8",
    "LineBuffer",
    "LocalProtocolError",
    "MalformedLine",
    "Mask",
    "Message",
    "ProtocolError",
    "ReadQExceeded",
    "RemoteProtocolError",
    "caps",
    "compile_mask",
    "escape_tag_value",
    "is_channel",
    "is_valid_channel",
    "is_valid_nick",
    "isupport_tokens",
    "label_of",
    "mask_match",
    "message",
    "number",
    "numerics",
    "parse_line",
    "server_time",
    "split_source",
    "split_text",
    "unescape_tag_value",
]
