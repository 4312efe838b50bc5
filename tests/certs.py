"""Certificates and client contexts for the TLS tests: trustme's authority issues what
needs an authority; what needs none is made as ``chat serve --tls`` makes it."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme


def issue(ca: trustme.CA, directory: Path, *names: str) -> tuple[str, str]:
    """A certificate for ``names`` issued by ``ca``, written to ``directory``: (chain
    file, key file)."""
    issued = ca.issue_cert(*names)
    cert, key = directory / "cert.pem", directory / "key.pem"
    issued.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    return str(cert), str(key)


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts ``ca`` and checks the host name."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def unverified() -> ssl.SSLContext:
    """A client context that checks nothing."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
