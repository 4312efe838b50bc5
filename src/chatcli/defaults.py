"""Defaults the server and the clients share.

Constants and one small function, with no imports of their own to speak of: ``chat send``
reads them on its way to the network, and its start-up time is mostly imports.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 55555
DEFAULT_ROOM = "#lobby"
#: Seconds ``chat send`` waits for the server at each step.
SEND_TIMEOUT = 10.0
#: The most text bytes one PRIVMSG may carry, leaving room for the longest prefix the
#: server may add (nick!user@host) inside the 512-byte line.
MAX_TEXT_BYTES = 350


def data_dir() -> Path:
    """chatcli's data directory, as each OS has it: the database, the self-signed
    certificate, the known servers."""
    from pathlib import Path

    from platformdirs import user_data_dir

    return Path(user_data_dir("chatcli", appauthor=False))


def default_alias() -> str:
    """The login name, made into a valid alias (``guest`` when there is none)."""
    name = next(
        (os.environ[v] for v in ("LOGNAME", "USER", "LNAME", "USERNAME") if os.environ.get(v)),
        "",
    )
    if not name:
        import getpass

        try:
            name = getpass.getuser()
        except Exception:  # no login name (some containers, Windows services)
            name = ""
    name = re.sub(r"[^A-Za-z0-9_\-\[\]\\`^{|}]", "", name)
    if not name or not re.match(r"[A-Za-z_\[\]\\`^{|}]", name):
        name = "guest"
    return name[:20]
