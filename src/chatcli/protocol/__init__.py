"""The IRC protocol, sans-IO: messages, framing, numerics, names, wildcard masks.

Nothing in this package imports ``socket``, ``threading`` or ``time``: it turns bytes into
typed values and back, and both the server and the client are built on it.
"""

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
from chatcli.protocol.masks import Mask, compile_mask, mask_match
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
