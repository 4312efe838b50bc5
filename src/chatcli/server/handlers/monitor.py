"""MONITOR (IRCv3): be told when nicks come online and go offline.

A client keeps a list of nicks; the server answers with who of them is online now
(RPL_MONONLINE, with their full source) and who is not (RPL_MONOFFLINE), then sends the same
numerics whenever one of them registers, quits or changes nick.

With IRCv3 extended-monitor, a watcher is also told of a watched nick's AWAY, ACCOUNT and
SETNAME (for the caps it has of away-notify, account-notify and setname) as if it shared a
room with it: :func:`told_of`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatcli.protocol import Message, caps, is_valid_nick
from chatcli.protocol import numerics as n
from chatcli.server import metadata
from chatcli.server.commands import command

if TYPE_CHECKING:
    from chatcli.server.connection import Connection
    from chatcli.server.state import World

# A numeric's list of targets is cut so that each line stays within 512 bytes.
_LIST_BYTES = 400


@command("MONITOR", 1)
def monitor(conn: Connection, msg: Message) -> None:
    """MONITOR {+|-} <nick>{,<nick>} | MONITOR C | MONITOR L | MONITOR S — watch nicks."""
    sub = msg.params[0].upper()
    names = [name for name in (msg.params[1] if len(msg.params) > 1 else "").split(",") if name]
    world = conn.world
    with world.lock:
        if sub == "+":
            _add(conn, world, names)
        elif sub == "-":
            for name in names:
                world.unwatch(conn, world.fold(name))
        elif sub == "C":
            for folded in list(conn.monitoring or ()):
                world.unwatch(conn, folded)
        elif sub == "L":
            _numerics(conn, n.RPL_MONLIST, sorted(_names(conn, world)))
            conn.reply(n.RPL_ENDOFMONLIST, "End of MONITOR list")
        elif sub == "S":
            _status(conn, world, _names(conn, world))


def _add(conn: Connection, world: World, names: list[str]) -> None:
    watching = conn.monitoring or set()
    added = []
    for i, name in enumerate(names):
        if not is_valid_nick(name, conn.config.nick_len):
            continue
        folded = world.fold(name)
        if folded in watching:
            continue
        if len(watching) >= conn.config.max_monitor:
            rest = ",".join(names[i:])
            conn.reply(n.ERR_MONLISTFULL, str(conn.config.max_monitor), rest,
                       "Monitor list is full")  # fmt: skip
            break
        world.watch(conn, folded)
        watching = conn.monitoring or set()
        added.append(name)
    _status(conn, world, added)
    metadata.send_watched(conn, [p for name in added if (p := world.find_nick(name))])


def _names(conn: Connection, world: World) -> list[str]:
    """The watched nicks, spelled as their holders spell them where online."""
    out = []
    for folded in conn.monitoring or ():
        holder = world.nicks.get(folded)
        out.append(holder.name if holder is not None and holder.registered else folded)
    return out


def _status(conn: Connection, world: World, names: list[str]) -> None:
    online, offline = [], []
    for name in names:
        holder = world.find_nick(name)
        if holder is None:
            offline.append(name)
        else:
            online.append(holder.source)
    _numerics(conn, n.RPL_MONONLINE, online)
    _numerics(conn, n.RPL_MONOFFLINE, offline)


def _numerics(conn: Connection, numeric: str, targets: list[str]) -> None:
    """``numeric`` with ``targets`` comma-separated, over as many lines as they need."""
    line: list[str] = []
    size = 0
    for target in targets:
        if line and size + len(target) + 1 > _LIST_BYTES:
            conn.reply(numeric, ",".join(line))
            line, size = [], 0
        line.append(target)
        size += len(target) + 1
    if line:
        conn.reply(numeric, ",".join(line))


def announce(conn: Connection, online: bool, nick: str | None = None) -> None:
    """Tell those who watch ``nick`` (default: ``conn``'s) that it came online or went
    offline. Caller holds the world lock."""
    conn.world.assert_held()
    name = nick or conn.name
    watchers = conn.world.watchers.get(conn.world.fold(name))
    if not watchers:
        return
    # One line per watcher, differing only in its nick: made by formatting, not by
    # building and checking a Message for each (a nick watched by hundreds changes often).
    # Every part was checked when it was made: the nicks, the source, the server's name.
    numeric, about = (n.RPL_MONONLINE, conn.source) if online else (n.RPL_MONOFFLINE, name)
    head, tail = f":{conn.config.name} {numeric} ", f" :{about}\r\n"
    for watcher in watchers:
        conn.world.deliver(watcher, f"{head}{watcher.name}{tail}".encode())
    if online:
        metadata.online(conn)  # (draft/metadata-notify-2: its keys)


def told_of(conn: Connection, cap: str) -> list[Connection]:
    """Who is told of a change of ``conn``'s under ``cap`` (away-notify, account-notify,
    setname): who shares a room with it (``conn`` included) and who MONITORs its nick with
    extended-monitor, having ``cap``; each once. Caller holds the world lock."""
    world = conn.world
    world.assert_held()
    told = {peer: None for peer in world.neighbours(conn) if cap in peer.caps}
    if conn.nick is not None:
        for watcher in world.watchers.get(world.fold(conn.nick), ()):
            if cap in watcher.caps and caps.EXTENDED_MONITOR in watcher.caps:
                told.setdefault(watcher, None)
    return list(told)
