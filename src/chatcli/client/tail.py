"""``chat tail``: print a room's history (or a conversation's) and, with ``--follow``, what
is said next, as text or as one JSON object a line.

It joins the room to read it (the server serves the history of rooms one is in) and asks
with CHATHISTORY; :class:`~chatcli.client.history.Timeline` holds what is said meanwhile,
so that nothing is printed twice or out of order. Rich is imported only to print text:
``--json`` in a script pays for no more than ``chat send`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING

from chatcli.client.history import (
    HISTORY_CAPS,
    Timeline,
    chat_key,
    timestamp,
)
from chatcli.client.oneshot import connect_as, enter_room, raise_for, tls_policy
from chatcli.client.session import ClientSession
from chatcli.errors import (
    AliasRejected,
    ChatError,
    ConfigError,
    ConnectError,
    NoSuchTarget,
    Refused,
    Untrusted,
)
from chatcli.protocol import (
    Message,
    caps,
    is_channel,
    is_valid_channel,
    is_valid_nick,
    server_time,
    split_source,
)

if TYPE_CHECKING:
    from chatcli.client.session import AccountPassword
    from chatcli.client.trust import TLSPolicy

#: What ``chat tail`` asks for: history, and to come and go quietly (no join or quit line
#: for the room on chatcli's servers; it still shows in NAMES and WHO).
TAIL_CAPS = (caps.CHATHISTORY, *HISTORY_CAPS, caps.QUIET)
#: Messages printed when neither --last nor --since is given.
DEFAULT_LAST = 10
#: Following, seconds before trying a lost connection again, doubled each failure up to...
RECONNECT_BACKOFF = (1.0, 30.0)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: an ISO 8601 time (local time if it names no zone), or a span back from
    ``now`` such as ``90s``, ``10m``, ``2h``, ``1d`` or ``1w``.

    Raises:
        ConfigError: neither.
    """
    text = text.strip()
    if span := re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text):
        return now - timedelta(seconds=float(span[1]) * _UNITS[span[2]])
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since wants a time (2026-01-31T12:00) or a span (10m, 2h, 1d), not {text!r}"
        ) from None
    return when if when.tzinfo else when.astimezone()


#: The client tags (IRCv3 drafts) of a reply and of a reaction: the msgid answered, and
#: the reaction (an emoji, say), on a TAGMSG.
REPLY, REACT = caps.REPLY, caps.REACT


def as_record(msg: Message) -> dict[str, str | None] | None:
    """A PRIVMSG, NOTICE or reaction (a TAGMSG with ``+draft/react``) as ``--json`` prints
    it, with the msgid it answers (``reply_to``), if any; None for CTCP requests and
    replies, and other TAGMSGs (typing notices)."""
    if msg.command == "TAGMSG":
        if not msg.tags.get(REACT) or not msg.params:
            return None
        kind, text = "reaction", msg.tags[REACT]
    else:
        text = msg.params[1]
        kind = "notice" if msg.command == "NOTICE" else "message"
        if text.startswith("\x01"):
            verb, _, rest = text.strip("\x01").partition(" ")
            if verb.upper() != "ACTION":
                return None
            kind, text = "action", rest
    return {
        "time": msg.tags.get("time") or server_time(time.time()),
        "msgid": msg.tags.get("msgid"),
        "from": split_source(msg.source or "")[0],
        "to": msg.params[0],
        "kind": kind,
        "text": text,
        "reply_to": msg.tags.get(REPLY) or None,
    }


def _printer(out: IO[str], as_json: bool, me: str) -> Callable[[Message], None]:
    if as_json:

        def print_json(msg: Message) -> None:
            if (record := as_record(msg)) is not None:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                out.flush()

        return print_json
    from rich.console import Console

    from chatcli.client.render import render

    class TailConsole(Console):
        def on_broken_pipe(self) -> None:  # Rich would exit 1: let tail_command decide
            raise BrokenPipeError

    console = TailConsole(file=out, highlight=False)
    # A pipe or a file gets one line a message, never wrapped (at Rich's 80 columns).
    console.soft_wrap = not console.is_terminal

    def print_text(msg: Message) -> None:
        if (line := render(msg, me)) is not None:
            console.print(line)
            out.flush()

    return print_text


def tail_command(
    tls: bool = False, tls_fingerprint: str | None = None, insecure: bool = False, **params: object
) -> None:
    """``chat tail``, stopping quietly when the reader of standard output goes away. Over
    TLS with any of the TLS options, with no one to ask about a certificate."""
    policy = tls_policy(tls, tls_fingerprint, insecure)
    try:
        run_tail(tls=policy, **params)  # type: ignore[arg-type]
    except BrokenPipeError:
        # `chat tail | head`: head has what it wants. Point stdout at nothing, so that
        # Python's last flush at exit does not complain about the pipe either.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


def run_tail(
    *,
    target: str,
    alias: str | None,
    host: str,
    port: int,
    password: str | None,
    timeout: float,
    last: int | None,
    since: str | None,
    follow: bool,
    duration: float | None,
    as_json: bool,
    account_password: AccountPassword | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    tls: TLSPolicy | None = None,
    backoff: tuple[float, float] = RECONNECT_BACKOFF,
) -> None:
    """Print ``target``'s last messages (or those since a time) and, with ``follow``, the
    new ones until ``duration`` seconds have passed (or forever).

    Following, a server that keeps no history gives only what is said from then on (a note
    on ``err`` says so); a connection lost after the first one is tried again, ``backoff``
    seconds later (doubled each failure, up to ``backoff[1]``), forever or until the
    ``duration`` ends, and the messages resume after the last one printed: none twice and,
    where the server keeps history, none missed.

    Raises:
        ConfigError: a bad ``target`` or ``since``, both ``last`` and ``since``, or a
            conversation asked for without an account.
        ChatError: not following, and the server keeps no history.
        ConnectError, AliasRejected, NoSuchTarget, Refused: as ``chat send`` (a lost
            connection only when not following).
    """
    if not (is_valid_channel(target) or is_valid_nick(target)):
        raise ConfigError(f"--to must be a room (#name) or an alias, not {target!r}")
    if last is not None and since is not None:
        raise ConfigError("give --last or --since, not both")
    now = datetime.now(UTC)
    start = parse_since(since, now) if since is not None else None
    err = err or sys.stderr

    def connect() -> ClientSession:
        return connect_as(
            alias,
            role="tail",
            host=host,
            port=port,
            password=password,
            timeout=timeout,
            wanted_caps=TAIL_CAPS,
            account_password=account_password,
            tls=tls,
        )

    entered = False
    end = end_of(duration)  # (waiting for the server counts)
    try:
        session = connect()
    except ConnectError as exc:  # following, a server not up yet is waited for, as tail -F
        if not follow or isinstance(exc, Untrusted):
            raise
        print(f"chat: {exc}: waiting for the server", file=err, flush=True)
        found = _reconnect(connect, target, timeout, backoff, end)
        if found is None:
            return
        session, entered = found, True
    try:
        kept = caps.CHATHISTORY in session.caps
        if not kept and not follow:
            raise ChatError("this server keeps no history")
        if not kept:
            print(NO_HISTORY, file=err, flush=True)
        deadline = time.monotonic() + timeout
        if not entered:
            _enter(session, target, deadline)
        timeline = Timeline(isupport=session.isupport)
        if not kept:
            requests = []
        elif start is not None:
            requests = timeline.fetch(target, "AFTER", timestamp(start), timeline.limit)
        elif (count := DEFAULT_LAST if last is None else last) > 0:
            requests = timeline.fetch(target, "LATEST", "*", count)
        else:
            requests = []
        for request in requests:
            session.send(request)
        resume = _Resume(timestamp(start or now))
        show = resume.track(_printer(out or sys.stdout, as_json, session.nick))
        if not follow:
            if _read(session, timeline, target, show, deadline, time.monotonic()):
                raise ConnectError("the server closed the connection")
            return
        while True:
            try:
                if not _read(session, timeline, target, show, deadline, end):
                    return
            except ConnectError:  # lost (or answered nothing): like tail -F, try again
                pass
            session.close()
            print("chat: the connection to the server was lost: reconnecting", file=err, flush=True)
            found = _reconnect(connect, target, timeout, backoff, end)
            if found is None:
                return
            session, deadline = found, time.monotonic() + timeout
            print("chat: reconnected", file=err, flush=True)
            timeline = Timeline(isupport=session.isupport)
            if caps.CHATHISTORY in session.caps:
                for request in timeline.fetch(target, "AFTER", resume.ref, timeline.limit):
                    session.send(request)
    finally:
        session.quit()


#: Said on stderr when following a server that keeps no history.
NO_HISTORY = "chat: this server keeps no history: earlier messages are not available"


class _Resume:
    """Where to resume after a reconnection: after the last message printed (its msgid, or
    else its time), or, before any, the time the tail started from."""

    def __init__(self, ref: str) -> None:
        self.ref = ref

    def track(self, show: Callable[[Message], None]) -> Callable[[Message], None]:
        """``show``, noting each message shown as the place to resume after."""

        def shown(msg: Message) -> None:
            show(msg)
            if msg.command == "TAGMSG":
                return  # (not every server keeps reactions: resume after what it keeps)
            if msgid := msg.tags.get("msgid"):
                self.ref = f"msgid={msgid}"
            elif when := msg.tags.get("time"):
                self.ref = f"timestamp={when}"

        return shown


def end_of(duration: float | None) -> float | None:
    """The monotonic time ``duration`` seconds from now (None: never)."""
    return None if duration is None else time.monotonic() + duration


def _enter(session: ClientSession, target: str, deadline: float) -> None:
    """Join the room ``target`` or check that one can read the conversation with it.

    Raises:
        NoSuchTarget: no such room.
        ConfigError: a conversation, and the session has no account.
    """
    if is_channel(target):
        enter_room(session, target, deadline)
    elif session.account is None:
        raise ConfigError(
            f"only accounts keep their conversations: to read yours with {target}, "
            "log in with --alias <your account> (its password in CHAT_ACCOUNT_PASSWORD "
            "or --account-password-file)"
        )


def _reconnect(
    connect: Callable[[], ClientSession],
    target: str,
    timeout: float,
    backoff: tuple[float, float],
    end: float | None,
) -> ClientSession | None:
    """A new session, in ``target`` again: tried ``backoff[0]`` seconds from now, then after
    twice as long each time (at most ``backoff[1]``) while the server cannot be reached,
    the alias is still held or the room is not there (yet). None: ``end`` came first.

    Raises:
        ChatError: the server refused for good (a ban, a wrong password...).
    """
    delay, most = backoff
    while True:
        if end is not None and time.monotonic() + delay >= end:
            time.sleep(max(0.0, end - time.monotonic()))
            return None
        time.sleep(delay)
        delay = min(delay * 2, most)
        try:
            session = connect()
        except Untrusted:  # another certificate: waiting will not make it ours
            raise
        except (ConnectError, AliasRejected):
            continue
        try:
            _enter(session, target, time.monotonic() + timeout)
        except (ConnectError, NoSuchTarget):
            session.close()
            continue
        except BaseException:
            session.quit()
            raise
        return session


def _read(
    session: ClientSession,
    timeline: Timeline,
    target: str,
    show: Callable[[Message], None],
    deadline: float,
    end: float | None,
) -> None:
    """Print ``target``'s messages as they come: the history (due by ``deadline``), then
    live ones until ``end`` (None: until the connection ends).

    Returns:
        True if the connection ended, False if ``end`` came.

    Raises:
        ConnectError: the history did not come in time, or the connection failed.
    """
    key = target.lower()
    while True:
        busy = timeline.busy()
        until = deadline if busy else end
        left = None if until is None else until - time.monotonic()
        if left is not None and left <= 0:
            if busy:
                raise ConnectError("the server did not send the history in time")
            return False
        session.settimeout(left)
        try:
            msg = session.recv()
        except TimeoutError:
            continue
        if msg is None:
            return True
        if msg.command == "FAIL":
            raise Refused(f"the server refused: {msg.params[-1]}")
        raise_for(msg)
        shown, requests = timeline.feed(msg, session.nick)
        for request in requests:
            session.send(request)
        for each in shown:
            chat = each.command in ("PRIVMSG", "NOTICE") and len(each.params) >= 2
            reaction = each.command == "TAGMSG" and bool(each.params) and REACT in each.tags
            if (chat or reaction) and chat_key(each, session.nick) == key:
                show(each)
