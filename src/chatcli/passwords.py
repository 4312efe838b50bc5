"""Password hashes: scrypt (memory-hard), from the standard library.

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``, so that its cost can be
raised later without breaking hashes already stored. Passwords are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

# 16 MiB of memory per hash (128 * r * n bytes): slow to guess offline, fast enough to log in.
_N, _R, _P = 2**14, 8, 1
_LENGTH = 32
#: Hashes computed at once; more wait. Each takes 16 MiB and a core for about 50 ms: a burst
#: of logins must not take the server's memory (32 at once were 390 MiB) or every core, so
#: one core is always left to the chat (at most 4 at once, on a machine of 5 cores or more).
AT_ONCE = max(1, min(4, (os.cpu_count() or 2) - 1))
_AT_ONCE = threading.BoundedSemaphore(AT_ONCE)
_dummy: list[str] = []  # a hash of nothing anyone knows, made once: see check_nothing


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = _scrypt(password, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a :func:`hash_password` result). A malformed
    ``stored`` matches nothing."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        got = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def check_nothing(password: str) -> bool:
    """Spend the time and memory of checking ``password``, against a hash of a random
    secret; always False. For a name that has no password (an unknown account or operator),
    so that it takes as long as a wrong password does and cannot be told apart by time."""
    if not _dummy:
        _dummy.append(hash_password(os.urandom(16).hex()))
    verify_password(password, _dummy[0])
    return False


def is_password_hash(text: str) -> bool:
    parts = text.split("$")
    return len(parts) == 6 and parts[0] == "scrypt" and all(parts[1:])


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    with _AT_ONCE:
        return hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * r * n, dklen=_LENGTH
        )
