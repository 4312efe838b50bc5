"""The ``chat`` command's entry point.

``chat send`` in its everyday form (options and the message on the command line) runs
without importing click, which would otherwise be more than half of its start-up time:
scripts and cron jobs pay that on every message (``benchmarks/`` measures it against
``python3 -c pass``). Everything else, every unusual form of ``chat send`` included
(``--help``, a message on standard input, a value click would refuse, the TLS options,
whose checks and warnings click does), goes to
:mod:`chatcli.cli`, the one definition of the command line. A test checks that both read
every everyday form the same way.
"""

from __future__ import annotations

import os
import sys

from chatcli.defaults import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_ROOM, SEND_TIMEOUT

# ``chat send``'s options that take a value, and the parameter each sets.
_SEND_OPTIONS = {
    "--to": "target",
    "--alias": "alias",
    "-a": "alias",
    "--host": "host",
    "--port": "port",
    "--password": "password",
    "--timeout": "timeout",
}


# The environment variables ``chat send`` reads, and the parameter each sets (an option
# on the command line wins).
_SEND_ENV = {"host": "CHAT_HOST", "port": "CHAT_PORT", "alias": "CHAT_ALIAS"}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["send"] and (params := quick_send_params(argv[1:])) is not None:
        from chatcli.client.oneshot import send_command
        from chatcli.errors import fail_cleanly

        fail_cleanly(send_command)(**params)
        sys.exit(0)
    from chatcli.cli import main as cli_main

    cli_main(args=argv, prog_name="chat")


def quick_send_params(args: list[str]) -> dict[str, object] | None:
    """``chat send``'s parameters from ``args`` as click would read them, or None if
    ``args`` are not in the everyday form."""
    env = os.environ
    if env.get("CHAT_TLS"):  # (click reads its yes and no)
        return None
    given = {
        name: value
        for name, var in _SEND_ENV.items()
        if (value := env.get(var)) is not None and value != ""
    }
    given["password"] = env.get("CHAT_PASSWORD") or None
    words: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            words.extend(rest)
        elif arg.startswith("-") and arg != "-":
            option, eq, value = arg.partition("=")
            name = _SEND_OPTIONS.get(option)
            if name is None or (eq and not option.startswith("--")):
                return None
            if not eq:
                value = next(rest, None)
                if value is None:
                    return None
            given[name] = value
        else:
            words.append(arg)
    if not " ".join(words).strip():
        return None
    try:
        port = int(given.get("port", DEFAULT_PORT))
        timeout = float(given.get("timeout", SEND_TIMEOUT))
    except ValueError:
        return None
    if not 0 <= port <= 65535 or not timeout >= 0.1:
        return None
    return {
        "target": given.get("target", DEFAULT_ROOM),
        "alias": given.get("alias"),
        "host": given.get("host", DEFAULT_HOST),
        "port": port,
        "password": given["password"],
        "timeout": timeout,
        "message": tuple(words),
        "tls": False,  # any TLS option goes to click
        "tls_fingerprint": None,
        "insecure": False,
    }
