"""A client's connection to a server: connect, register, send and receive messages.

No UI code here. :meth:`ClientSession.recv` returns the next message (answering PINGs on
the way); ``chat join`` runs it on a reader thread, ``chat send`` calls it directly.

With a :class:`~chatcli.client.trust.TLSPolicy`, the connection is TLS, checked as the
policy says before the first line is sent (:mod:`chatcli.client.trust`), and never falls
back to plaintext. The TLS modules are imported only then: ``chat send`` starts quickly.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Iterable

from chatcli.errors import AliasRejected, ChatError, ConnectError, Refused
from chatcli.protocol import (
    LineBuffer,
    Message,
    ProtocolError,
    caps,
    isupport_tokens,
    number,
    parse_line,
)
from chatcli.protocol import numerics as n

TYPE_CHECKING = False  # (importing typing costs chat send's start-up some 5 ms)
if TYPE_CHECKING:
    from typing import Protocol

    from chatcli.client.tls_stream import TLSStream
    from chatcli.client.trust import TLSInfo, TLSPolicy

    class AccountPassword(Protocol):
        """Where a session gets an account's password: called with the alias when the
        server said it is a registered account (``sure``), or, with ``sure`` False, when
        the alias was taken (by our own other device, maybe): then it answers without
        asking anyone if it can, else None. None or empty: do not log in."""

        def __call__(self, alias: str, sure: bool = True, /) -> str | None: ...


#: IRCv3 draft/metadata-2 (as :data:`chatcli.protocol.caps` names it).
#: Capabilities the client asks for when the server offers them.
WANTED_CAPS = (
    caps.AUTOJOIN,
    caps.ECHO_MESSAGE,
    caps.MULTI_PREFIX,
    caps.SERVER_TIME,
    caps.AWAY_NOTIFY,
    caps.BATCH,  # history comes in batches, with
    caps.MESSAGE_TAGS,  # the msgids that say what was seen
    caps.REDACTION,  # deleted messages shown as such
    caps.READ_MARKER,  # what another device of the account has read
    caps.MULTILINE,  # a paste of several lines as one message
    caps.METADATA,  # display names and colours
    caps.CHANNEL_RENAME,  # a room renamed stays one buffer (not a part and a join)
)
#: IRCv3 SASL: a payload is sent in pieces of this many bytes.
SASL_CHUNK = 400
#: The longest alias assumed when the server has not said (NICKLEN).
DEFAULT_NICKLEN = 30


class WrongAccountPassword(Refused):
    """The account password given for a registered alias was refused (SASL failed)."""


def alternative_alias(alias: str, attempt: int, nicklen: int = DEFAULT_NICKLEN) -> str:
    """The ``attempt``-th alias to try when ``alias`` is taken: ``alias_``, ``alias__``, ...
    cut short so as to be at most ``nicklen`` characters long."""
    tail = "_" * attempt
    return alias[: max(1, nicklen - len(tail))] + tail


def sasl_plain(account: str, password: str) -> list[str]:
    """The ``AUTHENTICATE`` parameters that send a SASL PLAIN login: the base64 payload in
    400-byte pieces, and ``+`` after a last piece of exactly 400 bytes (or for none)."""
    import base64  # only for a login: not on chat send's way

    encoded = base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode()
    pieces = [encoded[i : i + SASL_CHUNK] for i in range(0, len(encoded), SASL_CHUNK)]
    if not pieces or len(pieces[-1]) == SASL_CHUNK:
        pieces.append("+")
    return pieces


def says_registered(msg: Message) -> bool:
    """NickServ's word, before registration, that our nick is a registered account."""
    return (
        msg.command == "NOTICE"
        and (msg.source or "").lower().startswith("nickserv!")
        and "is a registered account" in msg.params[-1]
    )


class ClientSession:
    """One connection to a chat server.

    Args:
        host, port: the server.
        nick: the alias to register.
        password: the server password (PASS), if it has one.
        caps: capabilities to request when offered.
        timeout: seconds allowed to connect and register.
        account_password: asked for the alias's account password when the server says the
            alias is a registered account (None from it: do not log in), and, without
            asking anyone, when the alias is taken (see ``AccountPassword``). The
            session then logs in with SASL PLAIN before registering.
        tls: connect with TLS, checking the certificate as this says; None: plaintext.
            Only the first connection may ask the user: reconnecting never does.
    """

    def __init__(
        self,
        host: str,
        port: int,
        nick: str,
        *,
        password: str | None = None,
        username: str | None = None,
        realname: str = "chatcli user",
        caps: Iterable[str] = WANTED_CAPS,
        timeout: float = 10.0,
        account_password: AccountPassword | None = None,
        tls: TLSPolicy | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.nick = nick
        self.password = password
        self.username = username or "chat"
        self.realname = realname
        self.wanted_caps = tuple(caps)
        self.timeout = timeout
        self.caps: set[str] = set()
        #: The values of the capabilities the server offers (``max-bytes=4096,...``), by name.
        self.cap_values: dict[str, str] = {}
        self.isupport: dict[str, str] = {}  #: the server's ISUPPORT tokens, read so far
        self.server_name = ""
        self.tls = tls
        self.tls_info: TLSInfo | None = None  #: how the connection is secured, with TLS
        self._sock: socket.socket | TLSStream | None = None
        self._buffer = LineBuffer()
        self._pending: deque[Message] = deque()
        self._send_lock = threading.Lock()
        self.account_password = account_password
        self.account: str | None = None  #: the account logged in to (900)
        self._alias_registered = False  # NickServ said so, during registration
        #: The alias asked for, taken by someone (our own other device, maybe): logged in
        #: to as an account if we have its password (a failure is no error then).
        self._login_as: str | None = None
        self._sasl: list[str] = []  # AUTHENTICATE pieces still to send
        self._trying = False  # logging in to _login_as: its failure is no error
        self._secret: str | None = None  # the account password, once given: asked once
        #: How many other aliases (``alias_``, ``alias__``, ...) to try when the alias is
        #: taken at connection; 0: none, the connection fails (AliasRejected).
        self.alias_tries = 0
        self.taken: str | None = None  #: the alias asked for, if it was taken and replaced
        self._tries_left = 0
        self.closed = False
        self.quitting = False  #: QUIT was sent: the end of the connection is expected

    # -- connecting -------------------------------------------------------------------------

    def connect(self) -> list[Message]:
        """Connect and register. Returns the messages received up to and including 001.

        Raises:
            ConnectError: the server cannot be reached or closed the connection.
            Untrusted: (a ConnectError) the server's TLS certificate is refused.
            AliasRejected: the alias is invalid, or taken (and so are the
                :attr:`alias_tries` alternatives tried).
            Refused: the server password was wrong; WrongAccountPassword (a Refused): the
                account password was.
            ConfigError: the known-servers file cannot be read or written.
        """
        self.taken = None
        self._tries_left = self.alias_tries
        return self._register()

    def _register(self) -> list[Message]:
        self._sock = self._open()
        if self.password:
            self.send(Message("PASS", (self.password,)))
        self.send(Message("CAP", ("LS", "302")))
        self.send(Message("NICK", (self.nick,)))
        self.send(Message("USER", (self.username, "0", "*", self.realname)))
        seen: list[Message] = []
        try:
            while True:
                msg = self.recv()
                if msg is None:
                    # Nothing at all, without TLS: a TLS port, maybe, hanging up on us.
                    hint = "" if seen or self.tls else " (if it speaks TLS there, use --tls)"
                    raise ConnectError(
                        f"the server closed the connection during registration{hint}"
                    )
                seen.append(msg)
                if self._registration_step(msg):
                    break
        except TimeoutError:
            self.close()
            raise ConnectError(f"{self.host}:{self.port} did not answer in time") from None
        except WrongAccountPassword:
            self._hang_up()  # so that the alias is free for another try at once
            raise
        except ChatError:
            self.close()
            raise
        self._sock.settimeout(None)
        return seen

    def _dial(self) -> socket.socket:
        # An ASCII name as bytes: as text, getaddrinfo would load the idna codec first.
        host = self.host.encode("ascii") if self.host.isascii() else self.host
        try:
            sock = socket.create_connection((host, self.port), self.timeout)
        except OSError as exc:
            raise ConnectError(
                f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _open(self) -> socket.socket | TLSStream:
        """A new connection to the server, TLS if the policy says so."""
        if self.tls is None:
            return self._dial()
        from chatcli.client.tls_stream import TLSStream
        from chatcli.client.trust import secure

        sock, self.tls_info = secure(self._dial, self.host, self.port, self.tls)
        return TLSStream(sock, self.timeout)

    def _registration_step(self, msg: Message) -> bool:
        """React to one message during registration; True once registered."""
        cmd = msg.command
        if cmd == "CAP" and len(msg.params) >= 3:
            sub = msg.params[1]
            if sub == "LS":
                for offer in msg.params[-1].split():
                    name, _, value = offer.partition("=")
                    self.cap_values[name] = value
            if sub == "LS" and msg.params[2] != "*":  # the last (or only) LS line
                offered = set(self.cap_values)
                wanted = [c for c in self.wanted_caps if c in offered]
                if self.account_password is not None and caps.SASL in offered:
                    wanted.append(caps.SASL)
                if wanted:
                    self.send(Message("CAP", ("REQ", " ".join(wanted))))
                else:
                    self.send(Message("CAP", ("END",)))
            elif sub in ("ACK", "NAK"):
                if sub == "ACK":
                    self.caps.update(msg.params[-1].split())
                if not self._start_login():
                    self.send(Message("CAP", ("END",)))
        elif says_registered(msg):
            self._alias_registered = True
        elif cmd == "AUTHENTICATE" and msg.params == ("+",) and self._sasl:
            for piece in self._sasl:
                self.send(Message("AUTHENTICATE", (piece,)))
            self._sasl = []
        elif cmd == n.RPL_LOGGEDIN and len(msg.params) >= 3:
            self.account = msg.params[2]
        elif cmd in (n.RPL_SASLSUCCESS, n.ERR_SASLALREADY):
            self.send(Message("CAP", ("END",)))
        elif cmd in (n.ERR_SASLFAIL, n.ERR_SASLTOOLONG, n.ERR_SASLABORTED) and self._trying:
            self._trying = False  # (not our account, or not that password: go on without)
            self.send(Message("CAP", ("END",)))
        elif cmd in (n.ERR_SASLFAIL, n.ERR_SASLTOOLONG, n.ERR_SASLABORTED):
            raise WrongAccountPassword(
                f"wrong password for {self.nick!r}: that alias is a registered account "
                "(give its password, or choose another alias)"
            )
        elif cmd == n.RPL_WELCOME:
            self.nick = msg.params[0]
            self.server_name = msg.source or ""
            return True
        elif cmd in (n.ERR_NICKNAMEINUSE, n.ERR_ERRONEUSNICKNAME, n.ERR_NONICKNAMEGIVEN):
            reason = "is already in use" if cmd == n.ERR_NICKNAMEINUSE else "is not a valid alias"
            if cmd == n.ERR_NICKNAMEINUSE and "registered account" in msg.params[-1]:
                reason = (  # a server that keeps registered nicks strictly
                    "is a registered account: give its password (--account-password-file, "
                    "CHAT_ACCOUNT_PASSWORD or at the prompt), or choose another alias"
                )
            elif cmd == n.ERR_NICKNAMEINUSE and self._tries_left > 0:
                self.taken = self.taken or self.nick
                self._login_as = self.taken if self.account_password is not None else None
                attempt = self.alias_tries - self._tries_left + 1
                self._tries_left -= 1
                nicklen = number(self.isupport.get("NICKLEN", "")) or DEFAULT_NICKLEN
                self.nick = alternative_alias(self.taken, attempt, nicklen)
                self.send(Message("NICK", (self.nick,)))
                return False
            raise AliasRejected(f"alias {self.nick!r} {reason}")
        elif cmd == n.ERR_PASSWDMISMATCH:
            raise Refused("the server password is wrong (use --password)")
        elif cmd == "ERROR":
            raise ConnectError(f"the server closed the connection: {msg.params[-1]}")
        return False

    def _start_login(self) -> bool:
        """Begin SASL PLAIN if the alias is a registered account and we have its password;
        or, the alias taken (by our other device, say), as the account of that name if we
        have a password for it without asking."""
        sure = self._alias_registered
        account = self.nick if sure else self._login_as
        if caps.SASL not in self.caps or account is None:
            return False
        if self._secret is None and self.account_password is not None:
            asked = self.account_password
            self._secret = (asked(account) if sure else asked(account, False)) or ""
        password = self._secret
        if not password:
            return False
        self._trying = not sure
        self._sasl = sasl_plain(account, password)
        self.send(Message("AUTHENTICATE", ("PLAIN",)))
        return True

    def reconnect(self) -> list[Message]:
        """Connect and register again, as :attr:`nick`, after the connection was lost; an
        account password given before is used again without asking, and no other alias is
        tried (our old self may hold it yet). Same return value and errors as
        :meth:`connect`."""
        self._reset()
        self._tries_left = 0
        return self._register()

    def retry_login(self, password: str | None) -> list[Message]:
        """Connect and register again, as the alias that was refused, after
        :class:`WrongAccountPassword`, logging in with ``password`` (None or empty: not at
        all); other aliases are tried as :meth:`connect` had left to. Same return value and
        errors as :meth:`connect`."""
        self._reset()
        self._secret = password or ""
        return self._register()

    def _hang_up(self) -> None:
        """Say QUIT and close once the server has (at most :attr:`timeout` seconds):
        before the session is registered, without the end of it being wanted."""
        with contextlib.suppress(ConnectError, OSError):
            self.send(Message("QUIT", ()))
            while self.recv() is not None:
                pass
        self.close()

    def _reset(self) -> None:
        """Forget the connection that ended, before connecting again."""
        self.close()
        self._sock = None
        self._buffer = LineBuffer()
        self._pending.clear()
        self.caps = set()
        self.cap_values = {}
        self.isupport.clear()  # (the same dict: a Timeline reads it)
        self.account = None
        self._alias_registered = False
        self._login_as = None
        self._trying = False
        self._sasl = []
        self.closed = False
        if self.tls is not None:  # no one to ask now: a new certificate is refused
            from dataclasses import replace  # not at the top: `chat send` starts without it

            self.tls = replace(self.tls, ask=None)

    # -- I/O --------------------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        """Send one message (thread-safe).

        Raises:
            ConnectError: the connection is gone.
        """
        if self._sock is None:
            raise ConnectError("not connected")
        try:
            with self._send_lock:
                # As written: never cut (as to_bytes would), so that a line too long is
                # the server's to refuse (417), and the user hears of it.
                self._sock.sendall(msg.to_line().encode("utf-8") + b"\r\n")
        except OSError as exc:
            raise ConnectError(f"connection lost: {exc.strerror or exc}") from None

    def recv(self) -> Message | None:
        """The next message from the server, or None when the connection has ended.

        PINGs are answered here, and also returned. Lines that do not parse are skipped.

        Raises:
            TimeoutError: the socket timeout (if set) passed with nothing received.
        """
        assert self._sock is not None
        while not self._pending:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                raise
            except OSError:
                return None
            if not data:
                return None
            try:
                lines = self._buffer.feed(data)
            except ProtocolError:
                return None
            for line in lines:
                try:
                    self._pending.append(parse_line(line, limit=False))
                except ProtocolError:
                    continue
        msg = self._pending.popleft()
        if msg.command == "PING":
            self.send(Message("PONG", msg.params))
        elif msg.command == n.RPL_ISUPPORT:
            self.isupport.update(isupport_tokens(msg))
        return msg

    def settimeout(self, timeout: float | None) -> None:
        if self._sock is not None:
            self._sock.settimeout(timeout)

    def close(self) -> None:
        """Close the socket (after QUIT, if the caller sent one). Idempotent."""
        self.closed = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()

    def send_quit(self, reason: str = "") -> None:
        """Send QUIT; the server answers with ERROR and closes. Marks the end as wanted."""
        self.quitting = True
        with contextlib.suppress(ConnectError):
            self.send(Message("QUIT", (reason,) if reason else ()))

    def quit(self, reason: str = "", wait: float = 2.0) -> None:
        """Send QUIT, read until the server closes (at most ``wait`` seconds), then close.
        Only for a session that has no reader thread."""
        try:
            self.send_quit(reason)
            self.settimeout(wait)
            while self.recv() is not None:
                pass
        except (ChatError, OSError):
            pass
        self.close()
