"""TLS pieces the server and the clients share: certificate fingerprints, the server's
context, and the self-signed certificate ``chat serve --tls`` makes when given none.

A fingerprint is the SHA-256 of a certificate's DER form, written as colon-separated
uppercase hex (``AB:CD:...``), as OpenSSL and browsers show it. What a user types is
accepted with or without colons, in either case, with or without a ``SHA256:`` prefix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import re
import ssl
import threading
from pathlib import Path

from chatcli.errors import ConfigError
from chatcli.files import private_dir

#: How long a certificate made by ``chat serve --tls`` is valid. Long: clients pin it on
#: first use (TOFU), and a new one means every client must be told to trust it again.
SELF_SIGNED_DAYS = 3650

_HEX = re.compile(r"[0-9a-f]{64}")
#: What may stand in a certificate as a DNS name: letters, digits, hyphens, dots.
_HOST_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate: ``AB:CD:...`` (32 pairs)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def normalise_fingerprint(text: str) -> str:
    """``text`` as :func:`fingerprint` writes one.

    Raises:
        ConfigError: it is not a SHA-256 fingerprint.
    """
    raw = text.strip().lower()
    raw = raw.removeprefix("sha256:").removeprefix("sha-256:")
    raw = raw.replace(":", "").replace(" ", "")
    if not _HEX.fullmatch(raw):
        raise ConfigError(f"not a SHA-256 fingerprint (64 hex digits): {text!r}")
    upper = raw.upper()
    return ":".join(upper[i : i + 2] for i in range(0, len(upper), 2))


def file_fingerprint(cert: str | Path) -> str:
    """The fingerprint of the first certificate in a PEM file.

    Raises:
        ConfigError: the file cannot be read or holds no certificate.
    """
    try:
        text = Path(cert).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read {cert}: {exc.strerror or exc}") from None
    found = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
    if found is None:
        raise ConfigError(f"{cert}: no certificate in it (PEM expected)")
    return fingerprint(ssl.PEM_cert_to_DER_cert(found.group(0)))


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """A server context for ``cert`` (a PEM chain) and its ``key``: TLS 1.2 or later, no
    renegotiation and no session tickets, in TLS 1.3 or 1.2 (nothing is written on a
    connection but replies, and no long-lived ticket key weakens forward secrecy).

    Raises:
        ConfigError: the files cannot be read, or do not make a key pair.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    context.num_tickets = 0
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS: no such file: {exc.filename}") from None
    except OSError as exc:  # ssl.SSLError included: not PEM, or the key does not match
        raise ConfigError(f"TLS: cannot use {cert} with {key}: {exc}") from None
    return context


def make_self_signed(cert: Path, key: Path, names: list[str]) -> None:
    """Write a new self-signed certificate for ``names`` (host names or IP addresses; the
    first is its subject) to ``cert``, and its private key to ``key`` (readable by its
    owner only; a directory made for it, 0700). An ECDSA P-256 key: quick to make and to
    use."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    alternatives: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if _HOST_NAME.fullmatch(name):  # (a server name may be anything; a DNS one not)
                alternatives.append(x509.DNSName(name))
    common = names[0] if _HOST_NAME.fullmatch(names[0]) and len(names[0]) <= 64 else "chatcli"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    key_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_dir(key.parent)
    _write_new(key, key_pem)
    _write_new(cert, certificate.public_bytes(serialization.Encoding.PEM))


def _write_new(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` whole or not at all, readable by its owner only: written to
    a new file beside it (never one that was there, nor through a link), then renamed."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(temporary, flags, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def ensure_self_signed(directory: Path, names: list[str]) -> tuple[Path, Path, bool]:
    """The certificate and key in ``directory`` (``cert.pem``, ``key.pem``), made first if
    either is missing. Returns ``(cert, key, made)``.

    ``directory`` is chatcli's own (``tls`` in its data directory): it is made 0700, or
    narrowed to 0700 if it was wider (see :func:`chatcli.files.private_dir`).

    Raises:
        ConfigError: the directory cannot be written.
    """
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        private_dir(directory, tighten=True)
        if cert.exists() and key.exists():
            return cert, key, False
        make_self_signed(cert, key, names)
    except OSError as exc:
        raise ConfigError(f"cannot write a certificate in {directory}: {exc.strerror}") from None
    return cert, key, True
