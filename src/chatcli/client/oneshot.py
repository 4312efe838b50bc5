"""``chat send``: deliver lines to a room or a person and say honestly whether it worked.

The server handles a connection's lines in order, and paces them (flood control: a burst,
then a few a second). So ``chat send`` keeps at most :data:`WINDOW` messages unconfirmed
and sends the next only as the server confirms one, reading its answers as they come:
where it labels responses (IRCv3 labeled-response), each message is labeled and its
labeled answer (the echo, an ``ACK`` or an error) confirms it; elsewhere a ``PING`` with a
unique token follows each message and its ``PONG`` confirms it. A confirmation of a
message also confirms every one before it, and any error about them has arrived by then.
How long it waits counts from the last confirmation, not from the start: a long input
takes as long as the server's pace needs.

A server that keeps history confirms a message once it is on disk; one it could not keep
(its disk is full...) it delivers all the same and says so with ``WARN ... HISTORY_NOT_KEPT``
(before the confirmation). ``chat send`` then sends the rest (they are delivered, and may
be kept once the disk is back), and exits 1 at the end, saying how many were not kept:
a script that relies on the history must know.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from chatcli.client.session import ClientSession
from chatcli.defaults import MAX_TEXT_BYTES, default_alias
from chatcli.errors import (
    AliasRejected,
    ChatError,
    ConfigError,
    ConnectError,
    ExitStatus,
    NoSuchTarget,
    Refused,
)
from chatcli.protocol import Message, caps, is_channel, is_valid_channel, is_valid_nick, split_text
from chatcli.protocol import numerics as n

# Not ``typing.TYPE_CHECKING``: ``chat send`` would pay for importing typing (type checkers
# take any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from chatcli.client.session import AccountPassword
    from chatcli.client.trust import Ask, TLSPolicy

#: What ``chat send`` asks for: labeled responses, so that an error says which message it
#: is about (the server answers a message's labeled echo or error); and to be quiet: it
#: joins no room but the one it sends to, and on chatcli's servers that shows no join and
#: quit to anyone there either.
SEND_CAPS = (caps.LABELED_RESPONSE, caps.BATCH, caps.ECHO_MESSAGE, caps.QUIET)
_NO_TARGET = {n.ERR_NOSUCHNICK, n.ERR_NOSUCHCHANNEL}
_REFUSED = {
    n.ERR_CANNOTSENDTOCHAN, n.ERR_INPUTTOOLONG, n.ERR_TOOMANYTARGETS, n.ERR_NOTEXTTOSEND,
    n.ERR_CHANNELISFULL, n.ERR_INVITEONLYCHAN, n.ERR_BANNEDFROMCHAN, n.ERR_BADCHANNELKEY,
    n.ERR_TOOMANYCHANNELS, n.ERR_UNKNOWNERROR,
}  # fmt: skip


#: The server's standard replies (IRCv3) that a message was not kept in its history.
NOT_KEPT_WARNINGS = {"HISTORY_NOT_KEPT", "HISTORY_NOT_CONFIRMED"}


class NotKept(ChatError):
    """Messages were delivered, but the server did not keep them all in its history (or a
    message for someone offline, who would have read it there, could not be kept)."""

    exit_status = ExitStatus.ERROR


def tls_policy(
    tls: bool, fingerprint: str | None, insecure: bool, ask: Ask | None = None
) -> TLSPolicy | None:
    """The policy for the options ``--tls``, ``--tls-fingerprint`` and ``--insecure`` (each
    of the last two implies the first); None for plaintext.

    Raises:
        ConfigError: a fingerprint that is not one, or both it and ``insecure``.
    """
    if not (tls or fingerprint or insecure):
        return None
    from chatcli.client.trust import TLSPolicy

    return TLSPolicy(fingerprint=fingerprint, insecure=insecure, ask=ask)


def connect_as(
    alias: str | None,
    *,
    role: str,
    host: str,
    port: int,
    password: str | None,
    timeout: float,
    wanted_caps: Iterable[str] = SEND_CAPS,
    account_password: AccountPassword | None = None,
    tls: TLSPolicy | None = None,
) -> ClientSession:
    """Register as ``alias`` or, without one, as ``<login name>-<role>``, trying
    ``...2``, ``...3`` when that is taken; over TLS if ``tls`` says so."""
    retry = alias is None
    alias = alias or default_alias()[:24] + "-" + role
    for attempt in range(1, 10 if retry else 2):
        nick = alias if attempt == 1 else f"{alias}{attempt}"
        session = ClientSession(
            host,
            port,
            nick,
            password=password,
            caps=wanted_caps,
            timeout=timeout,
            account_password=account_password,
            tls=tls,
        )
        try:
            session.connect()
            return session
        except AliasRejected:
            if not retry:
                raise
    raise AliasRejected(f"aliases {alias!r} to {alias}9 are all in use")


#: The most messages ``chat send`` has sent and the server has not yet confirmed: the next
#: waits for a confirmation. Well within a server's flood burst (20 by default), so a
#: server never holds more than a second or so of them (it disconnects a client too far
#: behind), and a refusal stops the sending within a few messages.
WINDOW = 10


def send_lines(session: ClientSession, target: str, lines: Iterable[str], timeout: float) -> int:
    """Send each line to ``target``, paced by the server's confirmations (see the module's
    docstring), and return once the server has confirmed all of them. Lines are read from
    ``lines`` only as they are sent, so a slow source streams.

    Returns:
        The number of messages sent (a line too long for one is sent as several).

    Raises:
        NoSuchTarget: no such room or person.
        Refused: the server would not take a message (moderated room, ban, too long...).
        ConnectError: the connection failed, or ``timeout`` seconds passed, while
            messages were unconfirmed, without a confirmation.
    """
    if is_channel(target):
        enter_room(session, target, time.monotonic() + timeout)
    window = _Window(session, timeout)
    for line in lines:
        for piece in split_text(line, MAX_TEXT_BYTES):
            if piece:
                window.send(Message("PRIVMSG", (target, piece)))
    while window.unconfirmed:
        window.wait()
    if window.not_kept:
        raise NotKept(
            f"{window.not_kept} of {window.sent} messages were delivered but not kept in the "
            f"server's history: {window.why_not_kept}"
        )
    return window.sent


class _Window:
    """The messages sent and not yet confirmed, and the reading of confirmations.

    Where the server labels responses (it has agreed to both labeled-response and batch),
    message ``n`` is labeled ``n``; its answer is one line with that label or a
    ``labeled-response`` batch that starts with it (confirmed at the batch's end, after
    whatever is in it). Elsewhere a ``PING`` follows each message, confirmed by its ``PONG``.
    """

    def __init__(self, session: ClientSession, timeout: float) -> None:
        self.session = session
        self.timeout = timeout
        self.labeled = {caps.LABELED_RESPONSE, caps.BATCH} <= session.caps
        self.token = f"chat-send-{time.monotonic_ns()}-"  # + the message's number
        self.sent = 0
        self.unconfirmed: deque[str] = deque()  # the numbers of messages, oldest first
        self.batches: dict[str, str] = {}  # labeled-response batches open: ref -> label
        self.told: set[str] = set()  # people said to be away or offline
        self.not_kept = 0  # messages the server said it did not keep in its history
        self.why_not_kept = ""  # what it said the first time

    def send(self, msg: Message) -> None:
        """Send ``msg`` once fewer than :data:`WINDOW` messages are unconfirmed."""
        while len(self.unconfirmed) >= WINDOW:
            self.wait()
        self.sent += 1
        key = str(self.sent)
        if self.labeled:
            self.session.send(Message(msg.command, msg.params, tags={"label": key}))
        else:
            self.session.send(msg)
            self.session.send(Message("PING", (self.token + key,)))
        self.unconfirmed.append(key)

    def wait(self) -> None:
        """Read until the server confirms at least one more message.

        Raises:
            ConnectError: ``timeout`` seconds without one, or the connection ended.
            NoSuchTarget, Refused: the server's error about a message.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                msg = _next(self.session, deadline)
            except TimeoutError:
                confirmed = self.sent - len(self.unconfirmed)
                raise ConnectError(
                    f"the server did not confirm in time: nothing for {self.timeout:g} s, "
                    f"{confirmed} of {self.sent} messages confirmed"
                ) from None
            raise_for(msg, self.batches.get(msg.tags.get("batch", "")))
            self._note_not_kept(msg)
            self._tell_away(msg)
            key = self._confirms(msg)
            if key is not None and key in self.unconfirmed:
                while self.unconfirmed.popleft() != key:
                    pass  # the server answers in order: those before are confirmed too
                return

    def _confirms(self, msg: Message) -> str | None:
        """The number of the message that ``msg`` confirms, if any."""
        if self.labeled:
            if msg.command == "BATCH" and msg.params:
                ref = msg.params[0][1:]
                if msg.params[0][:1] == "+" and "label" in msg.tags:
                    self.batches[ref] = msg.tags["label"]
                elif msg.params[0][:1] == "-":
                    return self.batches.pop(ref, None)
                return None
            return msg.tags.get("label") if "batch" not in msg.tags else None
        if msg.command == "PONG" and msg.params and msg.params[-1].startswith(self.token):
            return msg.params[-1][len(self.token) :]
        return None

    def _note_not_kept(self, msg: Message) -> None:
        """``WARN <command> HISTORY_NOT_KEPT <target> :<why>``: a message delivered but not
        kept (it comes before that message's confirmation)."""
        if msg.command == "WARN" and len(msg.params) >= 3 and msg.params[1] in NOT_KEPT_WARNINGS:
            self.not_kept += 1
            self.why_not_kept = self.why_not_kept or msg.params[-1]

    def _tell_away(self, msg: Message) -> None:
        """RPL_AWAY: away, or offline (or someone else holds the nick) and the message
        waits for them: worth a word on stderr, once; the send still succeeded."""
        if msg.command == n.RPL_AWAY and len(msg.params) > 2 and msg.params[1] not in self.told:
            self.told.add(msg.params[1])
            print(f"chat: {msg.params[1]}: {msg.params[-1]}", file=sys.stderr)


def enter_room(session: ClientSession, room: str, deadline: float) -> None:
    """Join ``room``, so that a message to it is accepted and its history can be read.

    A room nobody is in does not exist: on a server that keeps history, joining makes it,
    and what is said there is kept for whoever comes next (a CI job's message to an empty
    ``#ci``, say). Without history that would say it to nobody, so the room must exist:
    asking for its modes tells, secret or not (JOIN alone would create it).

    Raises:
        NoSuchTarget: no such room, and the server keeps no history.
    """
    session.send(Message("MODE", (room,)))
    try:
        _await(session, deadline, lambda m: m.command == n.RPL_CHANNELMODEIS)
    except NoSuchTarget:
        # The answer comes after the welcome, so its ISUPPORT tokens have been read.
        if "CHATHISTORY" not in session.isupport:
            raise NoSuchTarget(f"no such room: {room}") from None
    session.send(Message("JOIN", (room,)))


def _await(session: ClientSession, deadline: float, done: Callable[[Message], bool]) -> None:
    """Read until ``done(msg)``; raise on the first error reply."""
    while True:
        try:
            msg = _next(session, deadline)
        except TimeoutError:
            raise ConnectError("the server did not confirm in time") from None
        raise_for(msg)
        if done(msg):
            return


def _next(session: ClientSession, deadline: float) -> Message:
    """The next message from the server.

    Raises:
        TimeoutError: none came before ``deadline`` (a :func:`time.monotonic` time).
        ConnectError: the connection ended.
    """
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        session.settimeout(left)
        try:
            msg = session.recv()
        except TimeoutError:
            continue
        if msg is None:
            raise ConnectError("the server closed the connection")
        return msg


def raise_for(msg: Message, label: str | None = None) -> None:
    """Raise the error that ``msg`` is, if it is one; an error about a labeled message
    (labeled itself, or in a batch labeled ``label``) names the message."""
    detail = " ".join(p for p in msg.params[1:-1])
    text = f"{detail}: {msg.params[-1]}" if detail else (msg.params[-1] if msg.params else "")
    label = msg.tags.get("label", label)
    if label:
        text = f"message {label}: {text}"
    if msg.command in _NO_TARGET:
        raise NoSuchTarget(f"no such recipient: {msg.params[1] if len(msg.params) > 1 else ''}")
    if msg.command in _REFUSED:
        raise Refused(f"the server refused the message: {text}")
    if msg.command == "FAIL" and len(msg.params) > 2 and msg.params[1] == "MESSAGE_NOT_KEPT":
        raise NotKept(f"the message was not delivered: {msg.params[-1]}")
    if msg.command == "FAIL":
        raise Refused(f"the server refused the message: {msg.params[-1]}")
    if msg.command == "ERROR":
        raise ConnectError(f"the server closed the connection: {text}")


def send_command(
    *,
    target: str,
    alias: str | None,
    host: str,
    port: int,
    password: str | None,
    timeout: float,
    message: tuple[str, ...],
    tls: bool = False,
    tls_fingerprint: str | None = None,
    insecure: bool = False,
) -> None:
    """``chat send``: the ``message`` words as one message or, with none, each line of
    standard input as one, streamed as it is read. Over TLS with any of the TLS options,
    with no one to ask about a certificate (see :func:`tls_policy`)."""
    policy = tls_policy(tls, tls_fingerprint, insecure)
    if message:
        text = " ".join(message)
        if not text.strip():
            raise ConfigError("no message: the message is empty")
        lines: Iterator[str] = iter([text])
    else:
        # Lines are sent as they are read (``tail -f log | chat send`` streams), but there
        # must be at least one before connecting.
        lines = (line.rstrip("\r\n") for line in sys.stdin or () if line.strip())
        first = None if sys.stdin is None or sys.stdin.isatty() else next(lines, None)
        if first is None:
            raise ConfigError("no message: give it as arguments or on standard input")
        lines = itertools.chain([first], lines)
    run_send(
        host=host,
        port=port,
        alias=alias,
        target=target,
        lines=lines,
        password=password,
        timeout=timeout,
        tls=policy,
    )


def run_send(
    *,
    host: str,
    port: int,
    alias: str | None,
    target: str,
    lines: Iterable[str],
    password: str | None,
    timeout: float,
    tls: TLSPolicy | None = None,
) -> int:
    """Connect, send, confirm, quit. Returns how many messages were sent.

    Without an ``alias``, sends as ``<login name>-send``, with a number added if taken.

    Raises:
        ConfigError: ``target`` is neither a room nor an alias.
    """
    if not (is_valid_channel(target) or is_valid_nick(target)):
        raise ConfigError(f"--to must be a room (#name) or an alias, not {target!r}")
    session = connect_as(
        alias,
        role="send",
        host=host,
        port=port,
        password=password,
        timeout=timeout,
        tls=tls,
    )
    try:
        return send_lines(session, target, lines, timeout)
    finally:
        session.quit()
