"""IRC messages as frozen values: parsing and serialising one line.

Sans-IO: this module never touches sockets, threads or clocks.

Grammar (modern IRC client protocol document, IRCv3 message-tags)::

    message  ::= ['@' tags SPACE] [':' source SPACE] command {SPACE param} [SPACE ':' trailing]
    tags     ::= tag {';' tag}
    tag      ::= key ['=' escaped-value]

A :class:`Message` is checked once, when it is made, so a message that exists can always be
serialised: no parameter can smuggle CR, LF or NUL, and no middle parameter holds a space.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from chatcli.protocol.errors import (
    EmptyLine,
    InputTooLong,
    InvalidUtf8,
    LocalProtocolError,
    MalformedLine,
)

#: Bytes allowed for the message body, CRLF included (RFC 1459 section 2.3).
MAX_BODY_BYTES = 512
#: Bytes allowed for the tag section, the leading '@' and trailing space included (IRCv3):
#: what a server may send, and what a client may send (only its own tags: less room).
MAX_TAG_BYTES = 8191
MAX_CLIENT_TAG_BYTES = 4096
#: The longest line there can be, without its CRLF: a full tag section and a full body.
#: (What :class:`~chatcli.protocol.framing.LineBuffer` holds at most, as MAX_LINE_BYTES.)
_MAX_LINE = MAX_TAG_BYTES + MAX_BODY_BYTES

# \Z, not $: "$" also matches before a trailing newline, which would let "PING\n" through.
_COMMAND = re.compile(r"^(?:[A-Za-z]+|[0-9]{3})\Z")
_TAG_KEY = re.compile(r"^\+?(?:[A-Za-z0-9.\-]+/)?[A-Za-z0-9\-]+\Z")
_FORBIDDEN = frozenset("\r\n\0")

# IRCv3 message-tags: "escaped value" table.
_ESCAPES = {";": r"\:", " ": r"\s", "\\": "\\\\", "\r": r"\r", "\n": r"\n"}
_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


def server_time(seconds: float) -> str:
    """Unix time ``seconds`` as IRCv3 server-time writes it: UTC, milliseconds, 'Z'."""
    millis = int(seconds * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def escape_tag_value(value: str) -> str:
    """Escape a tag value for the wire (IRCv3 message-tags, "Escaping values")."""
    return "".join(_ESCAPES.get(ch, ch) for ch in value)


def unescape_tag_value(raw: str) -> str:
    """Undo :func:`escape_tag_value`. An unknown escape drops the backslash; a lone trailing
    backslash is dropped, as the specification requires."""
    out: list[str] = []
    chars = iter(raw)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, "")
        out.append(_UNESCAPES.get(nxt, nxt))
    return "".join(out)


# What no part of a message may hold: CR, LF, NUL, and lone surrogates (which to_bytes()
# could not encode). One regex search per part: Message() is on every message's path.
_BAD_TEXT = re.compile("[\r\n\0\ud800-\udfff]")
_EMPTY_TAGS: Mapping[str, str] = MappingProxyType({})
_set = object.__setattr__  # how Message sets its own (otherwise read-only) fields


def _check_text(what: str, text: str) -> None:
    bad = _BAD_TEXT.search(text)
    if bad is None:
        return
    if bad.group() in "\r\n\0":
        raise LocalProtocolError(f"{what} may not contain CR, LF or NUL: {text!r}")
    raise LocalProtocolError(f"{what} is not valid Unicode: {text!r}")


class Message:
    """One IRC message: an immutable value, equal to another with the same parts.

    Args:
        command: a verb of letters (kept as given; parsing upper-cases it) or a 3-digit numeric.
        params: the parameters; only the last may be empty, start with ':' or hold spaces.
        source: the prefix (``nick!user@host`` or a server name), or None.
        tags: IRCv3 tags, unescaped; an empty string means a tag without a value.

    Raises:
        LocalProtocolError: if any part could not be put on the wire unambiguously.
    """

    # A hand-written class, not a dataclass: ``chat send`` imports this module, and the
    # dataclasses module alone costs it a sixth of its start-up time.
    __slots__ = ("command", "params", "source", "tags")

    command: str
    params: tuple[str, ...]
    source: str | None
    tags: Mapping[str, str]

    def __init__(
        self,
        command: str,
        params: Iterable[str] = (),
        source: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        if not _COMMAND.match(command):
            raise LocalProtocolError(f"invalid command: {command!r}")
        params = params if type(params) is tuple else tuple(params)
        last = len(params) - 1
        for i, param in enumerate(params):
            _check_text("a parameter", param)
            if i < last and (not param or " " in param or param[0] == ":"):
                raise LocalProtocolError(f"invalid middle parameter: {param!r}")
        if source is not None:
            _check_text("the source", source)
            if not source or " " in source:
                raise LocalProtocolError(f"invalid source: {source!r}")
        for key, value in (tags or {}).items():
            if not _TAG_KEY.match(key):
                raise LocalProtocolError(f"invalid tag key: {key!r}")
            _check_text("a tag value", value)
        _set(self, "command", command)
        _set(self, "params", params)
        _set(self, "source", source)
        _set(self, "tags", MappingProxyType(dict(tags)) if tags else _EMPTY_TAGS)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Message is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Message is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not Message:
            return NotImplemented
        return (
            self.command == other.command
            and self.params == other.params
            and self.source == other.source
            and self.tags == other.tags
        )

    def __hash__(self) -> int:
        return hash((self.command, self.params, self.source, tuple(self.tags.items())))

    def __repr__(self) -> str:
        return f"Message({self.to_line()!r})"

    def to_line(self) -> str:
        """The message as one line, without CRLF."""
        return f"{self._tag_part()} {self._body()}" if self.tags else self._body()

    def to_bytes(self) -> bytes:
        """The message encoded as UTF-8 with CRLF, as a server sends it.

        A body longer than a line may be (:data:`MAX_BODY_BYTES` with CRLF, the tags
        aside) is cut at the edge of a character, as Ergo does: a relayed message gains
        its sender's prefix, so one that was within the limit as sent may not be as
        received, and a reader may drop a longer line whole.
        """
        body = self._body().encode("utf-8")
        if len(body) > MAX_BODY_BYTES - 2:
            body = body[: MAX_BODY_BYTES - 2].decode("utf-8", "ignore").encode("utf-8")
        if self.tags:
            return self._tag_part().encode("utf-8") + b" " + body + b"\r\n"
        return body + b"\r\n"

    def _tag_part(self) -> str:
        return "@" + ";".join(
            f"{key}={escape_tag_value(value)}" if value else key for key, value in self.tags.items()
        )

    def _body(self) -> str:
        parts: list[str] = []
        if self.source is not None:
            parts.append(":" + self.source)
        parts.append(self.command)
        if self.params:
            parts.extend(self.params[:-1])
            last = self.params[-1]
            needs_colon = not last or " " in last or last[0] == ":"
            parts.append(":" + last if needs_colon else last)
        return " ".join(parts)

    @classmethod
    def unchecked(
        cls, command: str, params: tuple[str, ...], source: str | None, tags: Mapping[str, str]
    ) -> Message:
        """A Message from parts that are already known to be valid: the parser's, which
        reads only what the checks would let through, and a relay's, made of parts of
        checked Messages. Skips the checks: both are on every line's path. Anything
        else must use the constructor."""
        msg = object.__new__(cls)
        _set(msg, "command", command)
        _set(msg, "params", params)
        _set(msg, "source", source)
        _set(msg, "tags", MappingProxyType(tags) if tags else _EMPTY_TAGS)
        return msg

    def with_tags(self, tags: Mapping[str, str]) -> Message:
        """A copy of this message with ``tags`` instead of its own."""
        return Message(self.command, self.params, self.source, tags)


def message(command: str, *params: str, source: str | None = None, **tags: str) -> Message:
    """Shorthand: ``message("PRIVMSG", "#lobby", "hi", source="bob!b@h")``."""
    return Message(command, params, source, tags)


def _split_tags(raw: str) -> dict[str, str]:
    """Tags from the wire. A tag whose key is not valid is dropped, not fatal: a peer's
    odd tag must not cost it the whole message."""
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        key, _, value = item.partition("=")
        if _TAG_KEY.match(key):
            value = unescape_tag_value(value)
            if _FORBIDDEN.isdisjoint(value):
                tags[key] = value
    return tags


def number(text: str, digits: int = 9) -> int | None:
    """The whole number ``text`` spells, if it is 1 to ``digits`` ASCII digits; else None.
    (``str.isdigit`` alone also admits ``²`` and ``٣``, which ``int`` refuses or reads, and
    any length.) For every count, limit and version a peer sends."""
    if 0 < len(text) <= digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def label_of(line: bytes) -> str | None:
    """The ``label`` tag of a raw line, read from its tags alone: a line that does not
    parse is still answered under its label (IRCv3 labeled-response)."""
    if not line.startswith(b"@"):
        return None
    tag_part = line[1:].split(b" ", 1)[0].decode("utf-8", "replace")
    return _split_tags(tag_part).get("label") or None


def isupport_tokens(msg: Message) -> dict[str, str]:
    """The tokens of one ISUPPORT (005) reply, by name: ``{"CHATHISTORY": "100", ...}``
    (a token without a value maps to "", one withdrawn, ``-NAME``, keeps its dash)."""
    return dict(token.partition("=")[::2] for token in msg.params[1:-1])


def parse_line(data: bytes | str, *, limit: bool = True) -> Message:
    """Parse one line (without its CRLF or LF) into a :class:`Message`.

    Args:
        data: the raw line as bytes (decoded here as strict UTF-8) or text.
        limit: enforce :data:`MAX_BODY_BYTES` and :data:`MAX_CLIENT_TAG_BYTES`, and refuse
            any line longer than a full tag section and a full body together (however
            much of it is spaces: such is the stand-in for an over-long line that
            :class:`~chatcli.protocol.framing.LineBuffer` dropped), as a server reading a
            client does (a client reading a server turns it off).

    Raises:
        EmptyLine: the line holds only spaces.
        InputTooLong: the body or the tags exceed the limits, or the line the most any
            line may hold.
        InvalidUtf8: the line is not UTF-8.
        MalformedLine: the line has no command or a malformed part.
    """
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate that stands for no byte: never valid UTF-8
            raw = data.encode("utf-8", "surrogatepass")
    else:
        raw = data
    if limit and len(raw) > _MAX_LINE:  # first: the stand-in of a dropped line may end in CR
        raise InputTooLong("line too long")
    if b"\0" in raw or b"\r" in raw or b"\n" in raw:
        raise MalformedLine("a line may not contain CR, LF or NUL")
    raw = raw.lstrip(b" ")
    if not raw:
        raise EmptyLine("empty line")
    tag_part = b""
    body = raw
    if raw.startswith(b"@"):
        tag_part, _, body = raw.partition(b" ")
        body = body.lstrip(b" ")
    if limit:
        if len(tag_part) + 1 > MAX_CLIENT_TAG_BYTES:
            raise InputTooLong("tag data too long")
        if len(body) + 2 > MAX_BODY_BYTES:
            raise InputTooLong("line too long")
    try:
        text = body.decode("utf-8")
        tag_text = tag_part.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidUtf8(_command_of(body)) from None
    return _parse_text(tag_text[1:] if tag_text else None, text)


def _command_of(body: bytes) -> str:
    words = body.decode("utf-8", "replace").split()
    if words and words[0].startswith(":"):
        words = words[1:]
    command = words[0].upper() if words else "*"
    return command if _COMMAND.match(command) else "*"


def _parse_text(tag_text: str | None, text: str) -> Message:
    tags = _split_tags(tag_text) if tag_text else {}
    source = None
    if text.startswith(":"):
        prefix, _, text = text.partition(" ")
        source = prefix[1:] or None
        text = text.lstrip(" ")
    head, sep, trailing = text.partition(" :")
    if text.startswith(":"):  # no command at all, only a trailing parameter
        raise MalformedLine("missing command")
    words = [word for word in head.split(" ") if word]  # SPACE only: not tabs, not NBSP
    if not words:
        raise MalformedLine("missing command")
    command, params = words[0], words[1:]
    if not _COMMAND.match(command):
        raise MalformedLine(f"invalid command: {command!r}", command[:32])
    if sep:
        params.append(trailing)
    # Everything here passed the checks Message() would make: the raw line held no CR, LF
    # or NUL and was strict UTF-8; words were split on spaces, so no middle parameter is
    # empty, holds a space or starts with ':'; the command matched; tags were sifted.
    return Message.unchecked(command.upper(), tuple(params), source, tags)


def split_text(text: str, max_bytes: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes each, at spaces where
    possible and never inside a character, so that a long message fits the line limit."""
    pieces: list[str] = []
    while len(text.encode("utf-8")) > max_bytes:
        cut = len(text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore"))
        if cut == 0:
            raise ValueError(f"max_bytes={max_bytes} cannot hold the character {text[0]!r}")
        space = text.rfind(" ", 0, cut + 1)
        if space > cut // 2:
            cut = space
        pieces.append(text[:cut])
        text = text[cut:].lstrip(" ")
    if text or not pieces:
        pieces.append(text)
    return pieces
