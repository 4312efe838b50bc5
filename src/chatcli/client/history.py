"""Which messages a client shows, each once and in order: live lines, history batches, and
what it missed while disconnected (IRCv3 draft/chathistory). No I/O: :meth:`Timeline.feed`
takes what the server sent and says what to show and what to send back.

Theory of operation:

* A ``chathistory`` batch is held until its end, then handled as one. ``BATCH`` lines are
  never shown.
* A PRIVMSG or NOTICE with a ``msgid`` is shown at most once. Each room (or person) keeps
  the msgids shown, oldest first: the last is where a catch-up starts, the first where
  ``/history`` pages back from.
* :meth:`Timeline.fetch` asks for history, then sends a PING; until its PONG, the room's
  live lines are held. The server handles a connection's lines in order, so at the PONG the
  room's last batch is the answer (a replay on JOIN came before it and is superseded), and
  each held line is either in that answer or newer. The answer, then the held lines, minus
  what was seen, are therefore the room's messages in order with no gap and no repeat. An
  ``AFTER`` answer that fills the limit is followed by the next page before any is shown.
* Joining a room again (after a reconnect) catches up with ``CHATHISTORY AFTER`` the last
  msgid shown there.
* A ``draft/multiline`` batch, live or inside a history batch, is held until its end and
  becomes one PRIVMSG: its first line as the text, all its lines in :data:`LINES_TAG`
  (read them with :func:`message_lines`), and the tags of the batch's opening line (msgid,
  time, reply...). What one batch may hold is bounded (:data:`MULTILINE_MOST_LINES`,
  :data:`MULTILINE_MOST_BYTES`); the rest is dropped.
* A ``/history`` answer comes after one local message, :data:`EARLIER`, that heads it;
  with nothing not shown yet it is told as one local message, :data:`NOTHING_EARLIER`:
  the user asked, and silence would look like a hang.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from chatcli.protocol import Message, caps, is_channel, number, server_time, split_source

#: What the client needs to read history: msgids, times and batches.
HISTORY_CAPS = (caps.BATCH, caps.SERVER_TIME, caps.MESSAGE_TAGS)
_CHAT = ("PRIVMSG", "NOTICE")
#: The command of the message :meth:`Timeline.feed` shows, without a source, when a
#: ``/history`` request (:meth:`Timeline.older`) found nothing earlier; its parameter is
#: the room. It is never sent.
NOTHING_EARLIER = "NOTHINGEARLIER"
#: The command of the message that heads a ``/history`` answer with messages (the same
#: form: no source, the room as its parameter, never sent).
EARLIER = "EARLIERIN"
_tokens = itertools.count(1)
#: The batch type of IRCv3 draft/multiline, and its tag for a line joined to the previous.
MULTILINE = "draft/multiline"
CONCAT = "draft/multiline-concat"
#: The tag, the client's own (never sent), that holds a multiline message's lines as JSON.
LINES_TAG = "chatcli.local/lines"
#: What one received multiline message may hold: more is dropped.
MULTILINE_MOST_LINES = 1000
MULTILINE_MOST_BYTES = 64 * 1024
#: Multiline batches open at once, at most: the oldest is dropped for a new one.
MULTILINE_OPEN = 16


def message_lines(msg: Message) -> list[str]:
    """The lines of a PRIVMSG or NOTICE: those of a multiline message, or its one text."""
    held = msg.tags.get(LINES_TAG)
    if held:
        try:
            lines = json.loads(held)
        except ValueError:
            lines = None
        if isinstance(lines, list) and lines and all(isinstance(x, str) for x in lines):
            return [line.replace("\n", " ") if "\n" in line else line for line in lines]
    return [msg.params[1]] if len(msg.params) > 1 else [""]


def joined_multiline(opening: Message, lines: list[Message]) -> Message | None:
    """One message for a whole multiline batch (its opening ``BATCH`` and its lines), or
    None if it holds no line."""
    if not lines or len(opening.params) < 3:
        return None
    texts: list[str] = []
    for line in lines:
        text = line.params[1] if len(line.params) > 1 else ""
        if CONCAT in line.tags and texts:
            texts[-1] += text
        else:
            texts.append(text)
    tags = {k: v for k, v in opening.tags.items() if k not in ("batch", LINES_TAG)}
    tags[LINES_TAG] = json.dumps(texts)
    first = lines[0]
    return Message(
        first.command, (opening.params[2], texts[0]), first.source or opening.source, tags
    )


def chat_key(msg: Message, me: str) -> str:
    """Whose history a PRIVMSG or NOTICE belongs to: its room, or the other person."""
    target = msg.params[0]
    if is_channel(target):
        return target.lower()
    sender = split_source(msg.source or "")[0]
    return (sender if target.lower() == me.lower() else target).lower()


def timestamp(when: datetime) -> str:
    """A draft/chathistory ``timestamp=`` reference to ``when``."""
    return "timestamp=" + server_time(when.timestamp())


@dataclass
class _Fetch:
    target: str
    token: str
    paged: bool  #: an AFTER request: a full answer is followed by the next page
    pages: list[Message] = field(default_factory=list)
    answer: list[Message] = field(default_factory=list)
    held: list[Message] = field(default_factory=list)


class Timeline:
    """The messages shown so far, and the history requests under way.

    Args:
        limit: the most messages to ask for at once...
        isupport: ...or fewer, if the server's ``CHATHISTORY=`` says so: its ISUPPORT
            tokens, as the session reads them (:attr:`ClientSession.isupport`).
    """

    def __init__(self, limit: int = 1000, isupport: Mapping[str, str] | None = None) -> None:
        self._most = limit
        self._isupport: Mapping[str, str] = {} if isupport is None else isupport
        #: Per room (folded) or person: the msgids shown, oldest first.
        self.log: dict[str, list[str]] = {}
        self._seen: set[str] = set()
        self._batches: dict[str, tuple[str, list[Message]]] = {}
        #: Multiline batches open: their opening line, their lines, and the bytes so far.
        self._multiline: dict[str, tuple[Message, list[Message], list[int]]] = {}
        self._fetching: dict[str, _Fetch] = {}
        self._older: set[str] = set()  # rooms with a /history request under way

    def _keeps_history(self) -> bool:
        """Whether the server keeps a history to catch up from: its ISUPPORT says
        ``CHATHISTORY`` (a server run with ``--no-db`` does not); without its ISUPPORT to
        go by (no session), assumed so."""
        return not self._isupport or "CHATHISTORY" in self._isupport

    def busy(self) -> bool:
        """A history request is under way."""
        return bool(self._fetching or self._older)

    def renamed(self, old: str, new: str) -> None:
        """The room ``old`` is now named ``new`` (IRCv3 draft/channel-rename): what was
        shown there, and the history requests under way for it, go with it."""
        was, now = old.lower(), new.lower()
        if was == now:
            return
        if was in self.log:
            self.log[now] = self.log.pop(was)
        fetch = self._fetching.pop(was, None)
        if fetch is not None:
            fetch.target = new
            self._fetching[now] = fetch
        if was in self._older:
            self._older.discard(was)
            self._older.add(now)

    def feed(self, msg: Message, me: str) -> tuple[list[Message], list[Message]]:
        """Take one message from the server (``me`` is our alias).

        Returns:
            The messages to show now, in order, and those to send to the server.
        """
        if msg.command == "BATCH" and msg.params:
            ref = msg.params[0]
            if ref.startswith("+") and msg.params[1:2] == (MULTILINE,) and len(msg.params) > 2:
                if len(self._multiline) >= MULTILINE_OPEN:
                    del self._multiline[next(iter(self._multiline))]
                self._multiline[ref[1:]] = (msg, [], [0])
            elif ref.startswith("-") and ref[1:] in self._multiline:
                opening, lines, _ = self._multiline.pop(ref[1:])
                whole = joined_multiline(opening, lines)
                outer = self._batches.get(opening.tags.get("batch", ""))
                if whole is None:
                    return [], []
                if outer is not None:
                    outer[1].append(whole)
                    return [], []
                return self.feed(whole, me)
            elif (
                ref.startswith("+") and msg.params[1:2] == ("chathistory",) and len(msg.params) > 2
            ):
                self._batches[ref[1:]] = (msg.params[2], [])
            elif ref.startswith("-") and ref[1:] in self._batches:
                target, lines = self._batches.pop(ref[1:])
                return self._history(target, lines, me), []
            return [], []
        multiline = self._multiline.get(msg.tags.get("batch", ""))
        if multiline is not None:
            held, size = multiline[1], multiline[2]
            size[0] += len(msg.params[-1].encode()) + 1 if msg.params else 1
            if len(held) < MULTILINE_MOST_LINES and size[0] <= MULTILINE_MOST_BYTES:
                held.append(msg)
            return [], []
        batch = self._batches.get(msg.tags.get("batch", ""))
        if batch is not None:
            batch[1].append(msg)
            return [], []
        if msg.command == "PONG":
            fetch = next(
                (f for f in self._fetching.values() if msg.params[-1:] == (f.token,)), None
            )
            return ([], []) if fetch is None else self._answered(fetch, me)
        if msg.command in _CHAT and len(msg.params) >= 2:
            fetch = self._fetching.get(chat_key(msg, me))
            if fetch is not None:
                fetch.held.append(msg)
                return [], []
            return self._show([msg], me), []
        mine = split_source(msg.source or "")[0].lower() == me.lower()
        if msg.command == "JOIN" and mine and msg.params:
            return [msg], self._catch_up(msg.params[0])
        if (msg.command == "PART" and mine) or (
            msg.command == "KICK" and msg.params[1:2] and msg.params[1].lower() == me.lower()
        ):
            self.log.pop(msg.params[0].lower(), None)  # back later: start afresh
        return [msg], []

    def fetch(self, target: str, sub: str, ref: str, count: int) -> list[Message]:
        """The lines that ask for ``target``'s history (``CHATHISTORY sub target ref
        count``); its live lines are held until the answer is complete."""
        count = min(count, self.limit)
        token = f"chat-history-{next(_tokens)}"
        self._fetching[target.lower()] = _Fetch(target, token, sub == "AFTER")
        request = Message("CHATHISTORY", (sub, target, ref, str(count)))
        return [request, Message("PING", (token,))]

    def older(self, room: str, count: int, now: datetime | None = None) -> Message:
        """The request for the ``count`` messages of ``room`` before the oldest shown."""
        shown = self.log.get(room.lower())
        ref = f"msgid={shown[0]}" if shown else timestamp(now or datetime.now(UTC))
        self._older.add(room.lower())
        return Message("CHATHISTORY", ("BEFORE", room, ref, str(min(count, self.limit))))

    def _catch_up(self, room: str) -> list[Message]:
        shown = self.log.get(room.lower())
        if not shown or room.lower() in self._fetching or not self._keeps_history():
            return []
        return self.fetch(room, "AFTER", f"msgid={shown[-1]}", self.limit)

    def _history(self, target: str, lines: list[Message], me: str) -> list[Message]:
        key = target.lower()
        fetch = self._fetching.get(key)
        if fetch is not None:
            fetch.answer = lines
            return []
        if key in self._older:
            self._older.discard(key)
            shown = self._show(lines, me, older=True)
            if not shown:
                return [Message(NOTHING_EARLIER, (target,))]
            return [Message(EARLIER, (target,)), *shown]
        return self._show(lines, me)

    def _answered(self, fetch: _Fetch, me: str) -> tuple[list[Message], list[Message]]:
        fetch.pages += fetch.answer
        last = fetch.answer[-1].tags.get("msgid") if fetch.answer else None
        if fetch.paged and last and len(fetch.answer) >= self.limit:
            fetch.answer = []
            fetch.token = f"chat-history-{next(_tokens)}"
            request = Message(
                "CHATHISTORY", ("AFTER", fetch.target, f"msgid={last}", str(self.limit))
            )
            return [], [request, Message("PING", (fetch.token,))]
        del self._fetching[fetch.target.lower()]
        return self._show(fetch.pages + fetch.held, me), []

    def _show(self, lines: list[Message], me: str, *, older: bool = False) -> list[Message]:
        out: list[Message] = []
        new: dict[str, list[str]] = {}
        for msg in lines:
            msgid = msg.tags.get("msgid")
            if msgid and msg.command in _CHAT and len(msg.params) >= 2:
                if msgid in self._seen:
                    continue
                self._seen.add(msgid)
                new.setdefault(chat_key(msg, me), []).append(msgid)
            out.append(msg)
        for key, ids in new.items():
            shown = self.log.setdefault(key, [])
            if older:
                shown[:0] = ids
            else:
                shown.extend(ids)
        return out

    @property
    def limit(self) -> int:
        """The most messages to ask for at once."""
        value = number(self._isupport.get("CHATHISTORY", ""))
        return min(self._most, value) if value else self._most
