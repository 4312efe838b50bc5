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
from chatcli.errors import ChatError, ConfigError, ConnectError, Refused
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
    from chatcli.client.trust import TLSPolicy

TAIL_CAPS = (caps.CHATHISTORY, *HISTORY_CAPS)
#: Messages printed when neither --last nor --since is given.
DEFAULT_LAST = 10
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


def as_record(msg: Message) -> dict[str, str | None] | None:
    """A PRIVMSG or NOTICE as ``--json`` prints it; None for CTCP requests and replies."""
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
    account_password: Callable[[str], str | None] | None = None,
    out: IO[str] | None = None,
    tls: TLSPolicy | None = None,
) -> None:
    """Print ``target``'s last messages (or those since a time) and, with ``follow``, the
    new ones until ``duration`` seconds have passed (or forever).

    Raises:
        ConfigError: a bad ``target`` or ``since``, both ``last`` and ``since``, or a
            conversation asked for without an account.
        ConnectError, AliasRejected, NoSuchTarget, Refused: as ``chat send``.
    """
    if not (is_valid_channel(target) or is_valid_nick(target)):
        raise ConfigError(f"--to must be a room (#name) or an alias, not {target!r}")
    if last is not None and since is not None:
        raise ConfigError("give --last or --since, not both")
    start = parse_since(since, datetime.now(UTC)) if since is not None else None
    session = connect_as(
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
    try:
        if caps.CHATHISTORY not in session.caps:
            raise ChatError("this server keeps no history")
        deadline = time.monotonic() + timeout
        if is_channel(target):
            enter_room(session, target, deadline)
        elif session.account is None:
            raise ConfigError(
                f"only accounts keep their conversations: to read yours with {target}, "
                "log in with --alias <your account> (its password in CHAT_ACCOUNT_PASSWORD "
                "or --account-password-file)"
            )
        timeline = Timeline(isupport=session.isupport)
        if start is not None:
            requests = timeline.fetch(target, "AFTER", timestamp(start), timeline.limit)
        elif (count := DEFAULT_LAST if last is None else last) > 0:
            requests = timeline.fetch(target, "LATEST", "*", count)
        else:
            requests = []
        for request in requests:
            session.send(request)
        show = _printer(out or sys.stdout, as_json, session.nick)
        end = None if duration is None else time.monotonic() + duration
        _read(session, timeline, target, show, deadline, end if follow else time.monotonic())
    finally:
        session.quit()


def _read(
    session: ClientSession,
    timeline: Timeline,
    target: str,
    show: Callable[[Message], None],
    deadline: float,
    end: float | None,
) -> None:
    """Print ``target``'s messages as they come: the history (due by ``deadline``), then
    live ones until ``end`` (None: until the connection ends)."""
    key = target.lower()
    while True:
        busy = timeline.busy()
        until = deadline if busy else end
        left = None if until is None else until - time.monotonic()
        if left is not None and left <= 0:
            if busy:
                raise ConnectError("the server did not send the history in time")
            return
        session.settimeout(left)
        try:
            msg = session.recv()
        except TimeoutError:
            continue
        if msg is None:
            raise ConnectError("the server closed the connection")
        if msg.command == "FAIL":
            raise Refused(f"the server refused: {msg.params[-1]}")
        raise_for(msg)
        shown, requests = timeline.feed(msg, session.nick)
        for request in requests:
            session.send(request)
        for each in shown:
            chat = each.command in ("PRIVMSG", "NOTICE") and len(each.params) >= 2
            if chat and chat_key(each, session.nick) == key:
                show(each)
