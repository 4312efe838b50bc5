"""The ISUPPORT (005) tokens: what this server tells clients it supports, and what changed
on a rehash."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatcli.protocol import numerics as n
from chatcli.server.channel import (
    FLAG_MODES,
    LIST_MODES,
    MAX_LIST_ENTRIES,
    PARAM_MODES,
    PREFIXES,
    SET_PARAM_MODES,
)

if TYPE_CHECKING:
    from chatcli.config import ServerConfig
    from chatcli.server.connection import Speaker


def isupport(config: ServerConfig) -> list[str]:
    """The ISUPPORT (005) tokens; every one of them is true of this server."""
    if config.db is not None:
        history = [f"CHATHISTORY={config.max_chathistory}", "MSGREFTYPES=msgid,timestamp"]
    else:
        history = []
    return [
        *history,
        "ACCOUNTEXTBAN=a",  # +b a:<account>: see chatcli.server.channel.ACCOUNT
        f"AWAYLEN={config.away_len}",
        "BOT=B",
        f"CASEMAPPING={config.casemapping}",
        f"CHANLIMIT=#:{config.max_channels}",
        f"CHANMODES={LIST_MODES},{PARAM_MODES},{SET_PARAM_MODES},{FLAG_MODES}",
        f"CHANNELLEN={config.channel_len}",
        "CHANTYPES=#",
        "ELIST=CMNTU",
        "EXCEPTS=e",
        "EXTBAN=,am",  # accounts, +b a:<account>; mutes, +b m:<mask> (no prefix, as Ergo)
        "INVEX=I",
        f"KICKLEN={config.kick_len}",
        f"MAXLIST={LIST_MODES}:{MAX_LIST_ENTRIES}",
        f"MAXTARGETS={config.max_targets}",
        "MODES=4",
        f"MONITOR={config.max_monitor}",
        f"NETWORK={config.network}",
        f"NICKLEN={config.nick_len}",
        "PREFIX=({}){}".format("".join(PREFIXES), "".join(PREFIXES.values())),
        "STATUSMSG=" + "".join(PREFIXES.values()),
        f"TARGMAX=PRIVMSG:{config.max_targets},NOTICE:{config.max_targets},"
        f"TAGMSG:{config.max_targets},JOIN:,PART:,KICK:{config.max_targets},"
        f"NAMES:{config.max_targets},LIST:,WHOIS:1,WHOWAS:{config.max_targets},"
        f"MONITOR:{config.max_monitor}",
        f"TOPICLEN={config.topic_len}",
        "UTF8ONLY",
        "WHOX",
    ]


def send_isupport(conn: Speaker, tokens: list[str]) -> None:
    """RPL_ISUPPORT lines with ``tokens``, twelve a line."""
    for i in range(0, len(tokens), 12):
        conn.reply(n.RPL_ISUPPORT, *tokens[i : i + 12], "are supported by this server")


def changed_isupport(old: ServerConfig, new: ServerConfig) -> list[str]:
    """The ISUPPORT tokens that differ between ``old`` and ``new``: new or changed ones,
    and ``-NAME`` for those gone (as Ergo tells its clients on a rehash)."""
    before, after = isupport(old), isupport(new)
    names = {token.partition("=")[0] for token in after}
    gone = [token.partition("=")[0] for token in before]
    return [t for t in after if t not in before] + [
        "-" + name for name in gone if name not in names
    ]
