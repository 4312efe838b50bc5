"""Defaults the server and the clients share.

Constants and one small function, with no imports of their own to speak of: ``chat send``
reads them on its way to the network, and its start-up time is mostly imports.
"""

from __future__ import annotations

import os

# Not ``typing.TYPE_CHECKING``: importing typing would cost ``chat send`` a few ms.
# Type checkers take any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 55555
DEFAULT_ROOM = "#lobby"
#: Seconds ``chat send`` waits for the server at each step.
SEND_TIMEOUT = 10.0
#: Seconds ``chat backup`` may take in all.
BACKUP_TIMEOUT = 300.0
#: The most text bytes one PRIVMSG may carry, leaving room for the longest prefix the
#: server may add (nick!user@host) inside the 512-byte line.
MAX_TEXT_BYTES = 350


def data_dir() -> Path:
    """chatcli's data directory, as each OS has it: the database, the self-signed
    certificate, the known servers."""
    from pathlib import Path

    from platformdirs import user_data_dir

    return Path(user_data_dir("chatcli", appauthor=False))


# What an alias may start with, and may hold (as chatcli.protocol.names checks a nick).
# Sets, not regular expressions: compiling two costs ``chat send`` a millisecond.
_ALIAS_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_[]\\`^{|}")
_ALIAS_CHARS = _ALIAS_FIRST | frozenset("0123456789-")


def default_alias() -> str:
    """The login name, made into a valid alias (``guest`` when there is none)."""
    name = next(
        (os.environ[v] for v in ("LOGNAME", "USER", "LNAME", "USERNAME") if os.environ.get(v)),
        "",
    )
    if not name:
        # What getpass.getuser() does once those variables are empty, without importing
        # getpass (and with it termios, warnings and contextlib, for its password prompt).
        try:
            import pwd

            name = pwd.getpwuid(os.getuid()).pw_name
        except Exception:  # no login name (some containers, Windows: no pwd)
            name = ""
    name = "".join(c for c in name if c in _ALIAS_CHARS)
    if not name or name[0] not in _ALIAS_FIRST:
        name = "guest"
    return name[:20]
