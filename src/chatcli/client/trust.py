"""Which TLS certificates the clients (``chat join``, ``chat send``, ``chat tail``) accept.

Theory of operation. A TLS connection is checked in the first of these ways that applies:

1. ``--insecure``: not at all. The command line warns; the connection is still encrypted.
2. ``--tls-fingerprint FP``: the certificate must be the one with that fingerprint, whoever
   signed it; no authority is asked.
3. A pin for ``host:port`` in the known-servers file: the same, and a different certificate
   is refused loudly, as SSH does when a host key changes ("REMOTE HOST IDENTIFICATION HAS
   CHANGED"): the pin names the file and the line to remove if the change is expected.
4. Otherwise, the system's trusted authorities and the host name
   (:func:`ssl.create_default_context`, which honours ``SSL_CERT_FILE``). A certificate they
   do not vouch for (a self-signed one, as ``chat serve --tls`` makes) is trusted on first
   use, like an SSH host key: the connection is made again without verification to read the
   certificate, and with someone to ask (``chat join`` on a terminal) its fingerprint is
   shown and, on a yes, pinned in the known-servers file; without (``chat send``,
   ``chat tail``), it is refused, with the fingerprint and how to pin it.

Every refusal is :class:`~chatcli.errors.Untrusted`; a failed handshake is
:class:`~chatcli.errors.ConnectError`. There is no fallback to plaintext, and all of this
happens before the first IRC line (PASS, SASL) is sent.

The known-servers file holds one ``host:port FINGERPRINT`` a line (``[::1]:6697`` for an
IPv6 address; ``#`` starts a comment), the host as it was given: ``localhost`` and
``127.0.0.1`` are different servers to it, as to SSH. It is made 0600, in a directory made
0700 (chatcli's data directory, by default, is narrowed to 0700 if it was wider): whoever
may change it may slip their own certificate in. If others may read or change it, each
command says so once, on stderr, with the ``chmod`` that fixes it.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from chatcli.defaults import DEFAULT_HOST, DEFAULT_PORT, data_dir
from chatcli.errors import ConfigError, ConnectError, Untrusted
from chatcli.files import how_to_fix, open_private, private_dir, readable_by_others
from chatcli.tls import fingerprint, normalise_fingerprint

#: Names the file of pinned certificates instead of the default.
KNOWN_SERVERS_ENV = "CHAT_KNOWN_SERVERS"

#: Opens a new TCP connection to the server (or raises ConnectError).
Dial = Callable[[], socket.socket]
#: ``ask(server, fingerprint, why)``: may this certificate, which no authority vouches for
#: (``why``: "self-signed certificate", say), be trusted from now on?
Ask = Callable[[str, str, str], bool]
#: OpenSSL's verify codes that mean "no authority this system trusts vouches for it": the
#: one failure trust on first use may get past. (A certificate from a trusted authority
#: but expired, or for another name, is refused: no prompt for that.)
NO_TRUSTED_ISSUER = frozenset({18, 19, 20, 21})  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT...


def default_known_servers() -> Path:
    """``$CHAT_KNOWN_SERVERS``, else ``known_servers`` in the user's data directory for
    chatcli (where ``chat serve`` keeps chat.db)."""
    if path := os.environ.get(KNOWN_SERVERS_ENV):
        return Path(path)
    return data_dir() / "known_servers"


@dataclass(frozen=True)
class TLSPolicy:
    """How a client checks the server's certificate (see the module docstring).

    Attributes:
        fingerprint: the certificate pinned with ``--tls-fingerprint``, normalised.
        insecure: check nothing (``--insecure``).
        known_servers: the file of certificates trusted on first use.
        ask: asks the user whether to trust a certificate no authority vouches for; None
            when there is nobody to ask: refuse it.

    Raises:
        ConfigError: both a fingerprint and ``insecure``, or a fingerprint that is not one.
    """

    fingerprint: str | None = None
    insecure: bool = False
    known_servers: Path = field(default_factory=default_known_servers)
    ask: Ask | None = None

    def __post_init__(self) -> None:
        if self.fingerprint is not None:
            if self.insecure:
                raise ConfigError("give --tls-fingerprint or --insecure, not both")
            object.__setattr__(self, "fingerprint", normalise_fingerprint(self.fingerprint))


class Verified(Enum):
    """How the certificate of a connection was checked."""

    AUTHORITY = "verified by an authority this system trusts"
    PINNED = "pinned"
    UNVERIFIED = "NOT verified (--insecure)"


@dataclass(frozen=True)
class TLSInfo:
    """What the user may want to know about a TLS connection."""

    fingerprint: str  #: the server certificate's SHA-256 fingerprint
    verified: Verified
    version: str  #: the protocol agreed on, ``TLSv1.3`` say


@dataclass(frozen=True)
class Pin:
    """A line of the known-servers file."""

    server: str  #: ``host:port``
    fingerprint: str
    path: Path
    line: int  #: counted from 1

    def __str__(self) -> str:
        return f"{self.server} {self.fingerprint}"


def server_key(host: str, port: int) -> str:
    """How the known-servers file names a server: ``host:port``, ``[::1]:6697``."""
    host = host.strip("[]").lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def secure(dial: Dial, host: str, port: int, policy: TLSPolicy) -> tuple[ssl.SSLSocket, TLSInfo]:
    """A TLS connection to ``host:port`` whose certificate ``policy`` accepts; blocking,
    with the timeout of the sockets ``dial`` makes.

    Raises:
        Untrusted: the certificate is refused.
        ConnectError: the server cannot be reached, or the handshake failed.
        ConfigError: the known-servers file cannot be read or written.
    """
    server = server_key(host, port)
    if policy.insecure:
        return _handshake(dial, host, port, _unverified(), Verified.UNVERIFIED)
    if policy.fingerprint is not None:
        return _pinned(dial, host, port, policy.fingerprint, None)
    pin = find_pin(policy.known_servers, server)
    if pin is not None:
        return _pinned(dial, host, port, pin.fingerprint, pin)
    try:
        return _handshake(dial, host, port, ssl.create_default_context(), Verified.AUTHORITY)
    except ssl.SSLCertVerificationError as exc:
        reason = (exc.verify_message or str(exc)).rstrip(".")
        if exc.verify_code not in NO_TRUSTED_ISSUER:
            raise Untrusted(
                f"the TLS certificate of {server} failed verification ({reason}): refusing "
                "to connect. If you know this certificate is the server's, pin it with "
                "--tls-fingerprint."
            ) from None
    return _first_use(dial, host, port, policy, reason)


def _first_use(
    dial: Dial, host: str, port: int, policy: TLSPolicy, reason: str
) -> tuple[ssl.SSLSocket, TLSInfo]:
    """A certificate no authority vouches for: read it, ask, pin it on a yes."""
    server = server_key(host, port)
    sock, info = _handshake(dial, host, port, _unverified(), Verified.PINNED)
    # Nothing is sent on this connection: the user may take a while to decide, longer
    # than the server waits for a client to register. A yes connects again, pinned.
    sock.close()
    if policy.ask is None or not policy.ask(server, info.fingerprint, reason):
        raise Untrusted(not_trusted(host, port, info.fingerprint, reason, policy.known_servers))
    pin = remember(policy.known_servers, server, info.fingerprint)
    return _pinned(dial, host, port, pin.fingerprint, pin)


def _pinned(
    dial: Dial, host: str, port: int, expected: str, pin: Pin | None
) -> tuple[ssl.SSLSocket, TLSInfo]:
    """A connection whose certificate must be ``expected`` (from ``pin``, or the command
    line when None)."""
    sock, info = _handshake(dial, host, port, _unverified(), Verified.PINNED)
    if info.fingerprint == expected:
        return sock, info
    sock.close()
    server = server_key(host, port)
    if pin is None:
        raise Untrusted(
            f"the TLS certificate of {server} is not the one given with --tls-fingerprint: "
            f"refusing to connect.\n  expected: {expected}\n  received: {info.fingerprint}"
        )
    raise Untrusted(changed(pin, info.fingerprint))


def _handshake(
    dial: Dial, host: str, port: int, context: ssl.SSLContext, verified: Verified
) -> tuple[ssl.SSLSocket, TLSInfo]:
    """Connect and complete the TLS handshake.

    Raises:
        ssl.SSLCertVerificationError: ``context`` does not accept the certificate.
        ConnectError: anything else went wrong.
    """
    server = server_key(host, port)
    hint = "does it speak TLS on that port?"
    raw = dial()
    try:
        sock = context.wrap_socket(raw, server_hostname=host.strip("[]"))
    except ssl.SSLCertVerificationError:
        raise
    except ssl.SSLError as exc:
        if exc.reason == "WRONG_VERSION_NUMBER":  # what a plaintext answer looks like to TLS
            raise ConnectError(
                f"{server} answered in plaintext, not TLS (leave out --tls, or use its TLS "
                "port: 6697 by convention)"
            ) from None
        reason = exc.reason or exc
        raise ConnectError(f"TLS handshake with {server} failed: {reason} ({hint})") from None
    except TimeoutError:
        raise ConnectError(f"no TLS handshake from {server} in time ({hint})") from None
    except OSError as exc:
        raise ConnectError(
            f"TLS handshake with {server} failed: {exc.strerror or exc} ({hint})"
        ) from None
    finally:
        raw.close()  # a no-op once wrap_socket has taken its descriptor
    der = sock.getpeercert(binary_form=True)
    if der is None:  # pragma: no cover - a TLS server always sends its certificate
        sock.close()
        raise ConnectError(f"{server} sent no TLS certificate")
    return sock, TLSInfo(fingerprint(der), verified, sock.version() or "TLS")


def _unverified() -> ssl.SSLContext:
    """A client context that checks neither the certificate nor the host name: the caller
    compares the certificate's fingerprint, or was told not to check (--insecure)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# -- the known-servers file -------------------------------------------------------------------


def find_pin(path: Path, server: str) -> Pin | None:
    """The pin for ``server`` in the known-servers file at ``path``, if there is one.

    Raises:
        ConfigError: the file cannot be read, or the fingerprint pinned for ``server`` is
            not one.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a known-servers file (not UTF-8 text)") from None
    warn_if_open(path)
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0].lower() == server:
            try:
                return Pin(server, normalise_fingerprint(fields[1]), path, number)
            except ConfigError as exc:
                raise ConfigError(f"{path}, line {number}: {exc}") from None
    return None


def remember(path: Path, server: str, pinned: str) -> Pin:
    """Add the pin ``server pinned`` to the known-servers file at ``path`` (made 0600, with
    its directories 0700, if need be).

    Raises:
        ConfigError: the file cannot be written.
    """
    try:
        directory = path.parent
        private_dir(directory, tighten=directory.resolve() == data_dir().resolve())
        before = path.read_text(encoding="utf-8") if path.exists() else ""
        warn_if_open(path)
        with open_private(path, "a", encoding="utf-8") as out:
            if before and not before.endswith("\n"):
                out.write("\n")
            out.write(f"{server} {pinned}\n")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return Pin(server, pinned, path, len(before.splitlines()) + 1)


#: The known-servers files :func:`warn_if_open` has warned about, in this process.
_warned: set[Path] = set()


def warn_if_open(path: Path) -> None:
    """Say on stderr, once per file and process, that others may read or change the
    known-servers file at ``path``, and how to make it private."""
    if path in _warned or not readable_by_others(path):
        return
    _warned.add(path)
    print(
        f"chat: warning: {path} (the certificates you trust) is open to other users: make "
        f"it private with {how_to_fix([path])}",
        file=sys.stderr,
    )


# -- what the user is told --------------------------------------------------------------------


def not_trusted(host: str, port: int, seen: str, reason: str, known_servers: Path) -> str:
    """Why a certificate no authority vouches for was refused, and how to trust it."""
    server = server_key(host, port)
    where = "" if host == DEFAULT_HOST else f" --host {host}"
    where += "" if port == DEFAULT_PORT else f" --port {port}"
    return (
        f"the TLS certificate of {server} is not trusted ({reason}): refusing to connect.\n"
        f"Its SHA-256 fingerprint is\n"
        f"  {seen}\n"
        f"If that is the server's certificate (ask its operator: `chat serve --tls` prints "
        f"its fingerprint), pin it with\n"
        f"  --tls-fingerprint {seen}\n"
        f"or trust it once and for all: run `chat join --tls{where}` on a "
        f"terminal and answer yes,\n"
        f"or add this line to {known_servers}:\n"
        f"  {server} {seen}"
    )


def changed(pin: Pin, seen: str) -> str:
    """The loud refusal of a certificate that is not the one pinned before."""
    bar = "@" * 63
    return (
        f"the TLS certificate of {pin.server} HAS CHANGED: refusing to connect.\n"
        f"{bar}\n"
        f"@    WARNING: THE SERVER'S IDENTIFICATION HAS CHANGED!          @\n"
        f"{bar}\n"
        f"IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n"
        f"Someone could be eavesdropping on you right now (a man-in-the-middle attack),\n"
        f"or the server's certificate was replaced.\n"
        f"  pinned:   {pin.fingerprint}\n"
        f"  received: {seen}\n"
        f"The pin is line {pin.line} of {pin.path}:\n"
        f"  {pin}\n"
        f"If the change is expected (ask the server's operator), remove that line and "
        f"connect again."
    )
