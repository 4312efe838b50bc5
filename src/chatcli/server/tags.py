"""What the server adds to the messages it relays, per recipient: IRCv3 tags and variants.

A message relayed to many (a room's PRIVMSG, a JOIN, a QUIT) is serialised once per *form*,
never once per recipient. A recipient's form is its :func:`profile`, five bits of the
capabilities it has: ``server-time`` (a ``time`` tag), ``message-tags`` (``msgid``, the
sender's client-only ``+tags`` and ``bot``), ``extended-join`` (JOIN with account and
real name), ``account-tag`` (the sender's ``account``, if logged in) and
``draft/multiline`` with ``batch`` (a multiline message as one batch, see
:class:`MultilineRelay`; every other message is the same with it or without). A :class:`Relay`
makes the bytes of each form on demand; a room keeps its members' send queues grouped by
profile (:attr:`Channel.audience <chatcli.server.channel.Channel.audience>`), so a
broadcast costs a few serialisations and O(1) per recipient.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Mapping

from chatcli.protocol import Message, caps, escape_tag_value, server_time

TIME = 1  #: the recipient has server-time
TAGS = 2  #: the recipient has message-tags
EXTENDED_JOIN = 4  #: the recipient has extended-join
ACCOUNT = 8  #: the recipient has account-tag
MULTILINE = 16  #: the recipient has draft/multiline and batch
PROFILES = 32  #: how many profiles there are (every combination of the bits)
#: The bits an ordinary :class:`Relay` is made for (all but MULTILINE).
PLAIN_BITS = MULTILINE - 1
#: IRCv3 draft/multiline: the batch's type, and the tag of a line that continues the one
#: before it without a line break.
MULTILINE_BATCH = "draft/multiline"
MULTILINE_CONCAT = "draft/multiline-concat"

# msgids: unique within a run by the counter, across runs by the random prefix.
_RUN = os.urandom(4).hex()
_COUNTER = itertools.count(1)  # next() on it is atomic under the GIL


def profile(enabled: Iterable[str]) -> int:
    """The profile of a client with the capabilities ``enabled``."""
    have = set(enabled)
    return (
        (TIME if caps.SERVER_TIME in have else 0)
        | (TAGS if caps.MESSAGE_TAGS in have else 0)
        | (EXTENDED_JOIN if caps.EXTENDED_JOIN in have else 0)
        | (ACCOUNT if caps.ACCOUNT_TAG in have else 0)
        | (MULTILINE if caps.MULTILINE in have and caps.BATCH in have else 0)
    )


def new_msgid() -> str:
    return f"{_RUN}{next(_COUNTER):x}"


def name_run(prefix: str) -> None:
    """Make every msgid from now on start with ``prefix``: a cluster's node gives its own
    id, which no other node of the cluster has, so that msgids are unique across it."""
    global _RUN
    _RUN = prefix


def client_only(tags: Mapping[str, str]) -> str:
    """The client-only tags (``+name``) among ``tags``, serialised: what is relayed."""
    return ";".join(
        f"{key}={escape_tag_value(value)}" if value else key
        for key, value in tags.items()
        if key.startswith("+")
    )


def with_tags(line: bytes, tags: str) -> bytes:
    """``line`` (one serialised message) with ``tags`` (serialised) added in front of any
    it has."""
    if not tags:
        return line
    if line.startswith(b"@"):
        return b"@" + tags.encode() + b";" + line[1:]
    return b"@" + tags.encode() + b" " + line


class Relay:
    """One message as relayed to others, stamped once with a time and a msgid.

    Args:
        msg: the message, without tags.
        client_tags: the sender's client-only tags, serialised (see :func:`client_only`).
        bot: the sender is a bot (user mode +B): the ``bot`` tag.
        extended: the form for recipients with extended-join (a JOIN), if it differs.
        tags_only: only recipients with message-tags get it (TAGMSG).
        account: the sender's account, if logged in: the ``account`` tag for recipients
            with account-tag (IRCv3 account-tag; it needs no message-tags).
        at, msgid: when it was said (unix ms) and its msgid, for a message from history;
            a new message is stamped now.
    """

    __slots__ = (
        "_account",
        "_extended",
        "_forms",
        "_plain",
        "_tags",
        "at",
        "msgid",
        "tags_only",
    )

    def __init__(
        self,
        msg: Message,
        *,
        client_tags: str = "",
        bot: bool = False,
        extended: Message | None = None,
        tags_only: bool = False,
        account: str | None = None,
        at: int | None = None,
        msgid: str | None = None,
    ) -> None:
        self._plain = msg.to_bytes()
        self._extended = extended.to_bytes() if extended is not None else self._plain
        self.at = int(time.time() * 1000) if at is None else at  #: unix milliseconds
        self.msgid = new_msgid() if msgid is None else msgid
        self.tags_only = tags_only
        self._tags = ";".join(
            part for part in (f"msgid={self.msgid}", client_tags, "bot" if bot else "") if part
        )
        self._account = "account=" + escape_tag_value(account) if account else ""
        self._forms: list[bytes | None] = [None] * (PLAIN_BITS + 1)

    def to_wire(self) -> dict[str, object]:
        """This relay as JSON-able data, for another node of a cluster to relay the same
        message, with the same time and msgid (:meth:`from_wire`)."""
        wire: dict[str, object] = {"p": self._plain.decode("utf-8", "surrogateescape")}
        if self._extended is not self._plain:
            wire["e"] = self._extended.decode("utf-8", "surrogateescape")
        wire.update(at=self.at, id=self.msgid, t=self._tags)
        if self._account:
            wire["a"] = self._account
        if self.tags_only:
            wire["o"] = 1
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, object]) -> Relay:
        """The relay :meth:`to_wire` describes.

        Raises:
            KeyError, TypeError, ValueError: ``wire`` is not such a description.
        """
        if "m" in wire:
            return MultilineRelay.from_wire(wire)
        relay = cls.__new__(cls)
        relay._plain = str(wire["p"]).encode("utf-8", "surrogateescape")
        extended = wire.get("e")
        relay._extended = (
            relay._plain if extended is None else str(extended).encode("utf-8", "surrogateescape")
        )
        relay.at = int(wire["at"])  # type: ignore[call-overload]
        relay.msgid = str(wire["id"])
        relay._tags = str(wire["t"])
        relay._account = str(wire.get("a", ""))
        relay.tags_only = bool(wire.get("o"))
        relay._forms = [None] * (PLAIN_BITS + 1)
        return relay

    def to(self, profile: int) -> bytes:
        """The bytes for a recipient of ``profile`` (empty: it gets nothing)."""
        profile &= PLAIN_BITS  # (the same with draft/multiline or without)
        form = self._forms[profile]
        if form is None:
            form = self._forms[profile] = self._make(profile)
        return form

    def forms(self, audience: tuple[tuple[object, ...], ...]) -> tuple[bytes, ...]:
        """The bytes for each profile of ``audience`` that has anyone in it."""
        return tuple(self.to(p) if group else b"" for p, group in enumerate(audience))

    def _make(self, profile: int) -> bytes:
        if self.tags_only and not profile & TAGS:
            return b""
        line = self._extended if profile & EXTENDED_JOIN else self._plain
        parts = []
        if profile & TIME:  # made for the first recipient that wants it, once
            parts.append(f"time={server_time(self.at / 1000)}")
        if profile & ACCOUNT and self._account:
            parts.append(self._account)
        if profile & TAGS:
            parts.append(self._tags)
        return with_tags(line, ";".join(parts))


def batch(
    server: str,
    kind: str,
    params: tuple[str, ...],
    lines: list[bytes],
    *,
    ref: str | None = None,
    start_tags: str = "",
) -> bytes:
    """``lines`` (serialised messages; an item may hold several, a nested batch among
    them) in an IRCv3 batch of ``kind``. A line that is in a batch already (a nested
    batch's own lines, which begin ``@batch=``) stays in its batch: only the nested batch's
    ``BATCH +`` and ``BATCH -`` are tagged with this one, as IRCv3 batch nests them."""
    ref = ref or new_msgid()
    start = with_tags(Message("BATCH", ("+" + ref, kind, *params), server).to_bytes(), start_tags)
    end = Message("BATCH", ("-" + ref,), server).to_bytes()
    tag = f"batch={ref}"
    body = [start]
    for chunk in lines:
        if chunk.count(b"\n") == 1:  # (one line: the usual case)
            body.append(chunk if chunk.startswith(b"@batch=") else with_tags(chunk, tag))
            continue
        for line in chunk.split(b"\r\n"):
            if line:
                body.append(
                    line + b"\r\n"
                    if line.startswith(b"@batch=")
                    else with_tags(line + b"\r\n", tag)
                )
    body.append(end)
    return b"".join(body)


class MultilineRelay(Relay):
    """One multiline message (IRCv3 draft/multiline) as relayed: a recipient with
    draft/multiline and batch (:data:`MULTILINE`) gets one ``draft/multiline`` batch, its
    ``BATCH +`` carrying the message's tags (time, msgid, account, client-only tags, bot)
    and its lines only ``batch`` and ``draft/multiline-concat``; any other recipient gets
    each line that is not blank as a message of its own (the specification's fallback),
    every one with the message's tags but the msgid, which only the first has.

    Args:
        command: PRIVMSG or NOTICE.
        source: the sender's ``nick!user@host``.
        target: the lines' target, as relayed.
        lines: the lines' texts, as sent (at least one not blank).
        concat: the indexes of the lines sent with ``draft/multiline-concat`` (each
            continues the one before it without a line break).
        client_tags, bot, account, at, msgid: as for :class:`Relay`.
    """

    __slots__ = (
        "_bare",
        "_bot",
        "_client_tags",
        "_ref",
        "command",
        "concat",
        "lines",
        "source",
        "target",
    )

    def __init__(
        self,
        command: str,
        source: str,
        target: str,
        lines: tuple[str, ...],
        concat: frozenset[int],
        *,
        client_tags: str = "",
        bot: bool = False,
        account: str | None = None,
        at: int | None = None,
        msgid: str | None = None,
    ) -> None:
        first = Message.unchecked(command, (target, lines[0]), source, {})
        super().__init__(
            first, client_tags=client_tags, bot=bot, account=account, at=at, msgid=msgid
        )
        self._forms = [None] * PROFILES
        self.command = command
        self.source = source
        self.target = target
        self.lines = lines
        self.concat = concat
        self._client_tags = client_tags
        self._bot = bot
        self._ref = ""
        self._bare: tuple[bytes, ...] | None = None  # each line, untagged: made once

    @property
    def text(self) -> str:
        """The lines as the history keeps them: joined by line feeds (see
        :func:`stored_tags` for which of them are continuations)."""
        return "\n".join(self.lines)

    def stored_tags(self) -> str:
        """The tags the history keeps with the message: the client-only tags, and
        ``draft/multiline=<indexes of the continued lines>`` (see :func:`split_stored`)."""
        mark = MULTILINE_BATCH
        if self.concat:
            mark += "=" + ",".join(str(i) for i in sorted(self.concat))
        return ";".join(part for part in (self._client_tags, mark) if part)

    def to_wire(self) -> dict[str, object]:
        wire = super().to_wire()
        wire["m"] = {
            "c": self.command,
            "s": self.source,
            "r": self.target,
            "l": list(self.lines),
            "k": sorted(self.concat),
            "t": self._client_tags,
            "b": int(self._bot),
        }
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, object]) -> MultilineRelay:
        """The multiline relay :meth:`to_wire` describes.

        Raises:
            KeyError, TypeError, ValueError: ``wire`` is not such a description.
        """
        parts = wire["m"]
        if not isinstance(parts, dict):
            raise TypeError("not a multiline message")
        lines = tuple(str(text) for text in parts["l"])
        if not lines:
            raise ValueError("a multiline message without lines")
        relay = cls(
            str(parts["c"]),
            str(parts["s"]),
            str(parts["r"]),
            lines,
            frozenset(int(i) for i in parts["k"]),
            client_tags=str(parts["t"]),
            bot=bool(parts["b"]),
            at=int(wire["at"]),  # type: ignore[call-overload]
            msgid=str(wire["id"]),
        )
        relay._account = str(wire.get("a", ""))
        return relay

    def to(self, profile: int) -> bytes:
        profile &= ~EXTENDED_JOIN  # (a JOIN's matter: the same form either way)
        form = self._forms[profile]
        if form is None:
            form = self._forms[profile] = self._make(profile)
        return form

    def _lines(self) -> tuple[bytes, ...]:
        """Each line as a message without tags: the same for every recipient."""
        if self._bare is None:
            command, target, source = self.command, self.target, self.source
            self._bare = tuple(
                Message.unchecked(command, (target, text), source, {}).to_bytes()
                for text in self.lines
            )
        return self._bare

    def _make(self, profile: int) -> bytes:
        common = []
        if profile & TIME:
            common.append(f"time={server_time(self.at / 1000)}")
        if profile & ACCOUNT and self._account:
            common.append(self._account)
        if profile & MULTILINE:
            if not self._ref:
                self._ref = new_msgid()
            ref = self._ref
            head = [*common, self._tags] if profile & TAGS else common
            start = Message.unchecked(
                "BATCH", ("+" + ref, MULTILINE_BATCH, self.target), self.source, {}
            )
            out = [with_tags(start.to_bytes(), ";".join(head))]
            for i, line in enumerate(self._lines()):
                tag = f"batch={ref};{MULTILINE_CONCAT}" if i in self.concat else f"batch={ref}"
                out.append(with_tags(line, tag))
            out.append(Message.unchecked("BATCH", ("-" + ref,), self.source, {}).to_bytes())
            return b"".join(out)
        own = [self._client_tags, "bot" if self._bot else ""] if profile & TAGS else []
        rest = ";".join(part for part in (*common, *own) if part)
        first = ";".join(part for part in (*common, self._tags) if part) if profile & TAGS else rest
        out = []
        for text, line in zip(self.lines, self._lines(), strict=True):
            if text:  # (no blank line to who reads them one by one)
                out.append(with_tags(line, rest if out else first))
        return b"".join(out)


def split_stored(stored_tags: str) -> tuple[str, frozenset[int] | None]:
    """The tags the history keeps with a message, as the client-only tags, and the indexes
    of the continued lines if it is a multiline message (None if it is not); see
    :meth:`MultilineRelay.stored_tags`."""
    if MULTILINE_BATCH not in stored_tags:
        return stored_tags, None
    kept, concat = [], None
    for part in stored_tags.split(";"):
        key, _, value = part.partition("=")
        if key == MULTILINE_BATCH:
            concat = frozenset(int(i) for i in value.split(",") if i.isdigit())
        elif part:
            kept.append(part)
    return ";".join(kept), concat


def labeled_response(label: str, sent: list[bytes], batch_id: str, server: str) -> bytes:
    """What a command labeled ``label`` sent, as its IRCv3 labeled response: an ``ACK`` if
    nothing, the one line labeled, or a ``labeled-response`` batch of them all."""
    lines = [line + b"\r\n" for chunk in sent for line in chunk.split(b"\r\n") if line]
    tag = "label=" + escape_tag_value(label)
    if not lines:
        return with_tags(Message("ACK", (), server).to_bytes(), tag)
    if len(lines) == 1:
        return with_tags(lines[0], tag)
    return batch(server, "labeled-response", (), lines, ref=batch_id, start_tags=tag)
