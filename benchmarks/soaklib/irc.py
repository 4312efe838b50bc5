"""The soak test's wire: one non-blocking IRC connection (plain or TLS) and line parsing.

No behaviour lives here: a :class:`Wire` takes bytes to send and hands back complete lines;
:func:`parse` splits one line into tags, source, command and parameters. The soak's event
loop (``soak.py``) owns every wire and decides when each is read or written.

TLS on a non-blocking socket, the two things that differ from plain TCP:

* a read must go on until OpenSSL says it wants more (``SSLWantReadError``): decrypted
  bytes may wait inside the SSL object, where ``select`` cannot see them;
* a write refused with ``SSLWantWriteError`` must be retried with the same bytes (at least
  as many), so a refused chunk's length is remembered.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
from dataclasses import dataclass

RECV_BYTES = 65536
WRITE_CHUNK = 16384
#: Reads per readiness event at most; a wire with more waiting is read again next round.
READS_PER_EVENT = 64
#: A partial line longer than this from the server is a protocol error.
MAX_PARTIAL = 64 * 1024
CONNECT_TIMEOUT = 5.0


class Closed(Exception):
    """The connection ended (the server closed it, or it failed); ``str()`` says how."""


def tls_context() -> ssl.SSLContext:
    """A client context that accepts any certificate: the soak pins the server's
    fingerprint itself (:attr:`Wire.fingerprint`)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as ``AB:CD:...``, the form ``chat serve`` prints."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


class Wire:
    """One connection to the server: bytes out, complete lines in (without CR LF).

    Args:
        host, port: where the server listens (connected at once, blocking, with a timeout:
            on loopback the kernel completes the handshake from the listen backlog).
        tls: a context to speak TLS with, or None.
        rcvbuf: a small SO_RCVBUF, for a client meant to fall behind quickly.

    Raises:
        OSError: the connection could not be made.
    """

    def __init__(
        self, host: str, port: int, tls: ssl.SSLContext | None, rcvbuf: int | None = None
    ) -> None:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            raw.settimeout(CONNECT_TIMEOUT)
            raw.connect((host, port))
            raw.setblocking(False)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            raw.close()
            raise
        self.sock: socket.socket = raw
        self.handshaking = False
        self._handshake_wants_write = True  # the first step sends the ClientHello
        if tls is not None:
            self.sock = tls.wrap_socket(raw, do_handshake_on_connect=False)
            self.handshaking = True
        self.fingerprint = ""  #: the server certificate's, once the TLS handshake is done
        self.out = bytearray()
        self._refused = 0  # TLS: the length of a write to retry as it was
        self._rest = b""
        self.more = False  #: read() stopped with bytes still waiting: read again soon
        self.closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def wants_write(self) -> bool:
        if self.handshaking:
            return self._handshake_wants_write
        return bool(self.out)

    def queue(self, data: bytes) -> None:
        """Add ``data`` to what is to be sent (by :meth:`flush`)."""
        self.out += data

    def handshake(self) -> bool:
        """Drive the TLS handshake; True once done (at once for plain TCP).

        Raises:
            Closed: it failed.
        """
        if not self.handshaking:
            return True
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._handshake_wants_write = False
            return False
        except ssl.SSLWantWriteError:
            self._handshake_wants_write = True
            return False
        except (OSError, ValueError) as exc:
            raise Closed(f"TLS handshake: {exc}") from None
        self.handshaking = False
        der = self.sock.getpeercert(binary_form=True)
        self.fingerprint = fingerprint(der) if der else "none"
        return True

    def flush(self) -> None:
        """Send what the kernel takes now.

        Raises:
            Closed: the connection failed.
        """
        while self.out and not self.handshaking:
            size = self._refused or min(len(self.out), WRITE_CHUNK)
            try:
                sent = self.sock.send(self.out[:size])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                if isinstance(self.sock, ssl.SSLSocket):
                    self._refused = size
                return
            except OSError as exc:
                raise Closed(f"send: {exc.strerror or exc}") from None
            self._refused = 0
            del self.out[:sent]

    def read(self) -> tuple[list[bytes], str | None]:
        """Read what is waiting: (complete lines, how the connection ended or None).

        Lines that arrived before an end or a failure are returned with it.

        Raises:
            Closed: a line from the server without an end.
        """
        chunks: list[bytes] = []
        end: str | None = None
        self.more = False
        for _ in range(READS_PER_EVENT):
            try:
                data = self.sock.recv(RECV_BYTES)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except ssl.SSLZeroReturnError:
                data = b""
            except (OSError, ValueError) as exc:
                end = f"recv: {getattr(exc, 'strerror', None) or exc}"
                break
            if not data:
                end = "closed by server"
                break
            chunks.append(data)
        else:
            self.more = True
        return self._lines(b"".join(chunks)), end

    def _lines(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        data = self._rest + data
        *lines, self._rest = data.split(b"\n")
        if len(self._rest) > MAX_PARTIAL:
            raise Closed("a line from the server without an end")
        return [line[:-1] if line.endswith(b"\r") else line for line in lines]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass(frozen=True, slots=True)
class Line:
    """One parsed line from the server."""

    tags: dict[str, str]
    nick: str  #: the source's nick (or server name); "" without a source
    command: str
    params: list[str]

    def param(self, i: int) -> str:
        return self.params[i] if i < len(self.params) else ""


def parse(text: str) -> Line:
    """Split a line (decoded, without CR LF) into its parts. Lenient: a line the soak
    does not understand still parses, into something no handler looks at."""
    tags: dict[str, str] = {}
    if text.startswith("@"):
        raw, _, text = text.partition(" ")
        for item in raw[1:].split(";"):
            key, _, value = item.partition("=")
            tags[key] = value
    nick = ""
    if text.startswith(":"):
        source, _, text = text.partition(" ")
        nick = source[1:].split("!", 1)[0]
    head, sep, trailing = text.partition(" :")
    params = head.split()
    command = params.pop(0).upper() if params else ""
    if sep:
        params.append(trailing)
    return Line(tags, nick, command, params)
