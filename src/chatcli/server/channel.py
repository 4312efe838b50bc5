"""A room: its members and their prefixes, topic, modes, invitations and bans.

A Channel holds no lock of its own: every read and write happens under the world lock
(see :mod:`chatcli.server.state`). It raises domain errors (:mod:`chatcli.server.errors`)
and never sends anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatcli.protocol import mask_match
from chatcli.server.errors import (
    BadChannelKey,
    BannedFromChan,
    ChannelIsFull,
    InviteOnlyChan,
)

if TYPE_CHECKING:
    from chatcli.server.connection import Connection
    from chatcli.server.sendq import SendQueue

#: Member prefixes, highest first, as advertised in ``PREFIX=(ov)@+``.
PREFIXES = {"o": "@", "v": "+"}
#: Channel modes, grouped as in ``CHANMODES=`` (list, always-param, set-param, flag).
LIST_MODES = "b"
PARAM_MODES = "k"
SET_PARAM_MODES = "l"
FLAG_MODES = "imnst"


@dataclass(eq=False)
class Channel:
    name: str
    created: int
    members: dict[Connection, set[str]] = field(default_factory=dict)
    modes: set[str] = field(default_factory=lambda: {"n", "t"})
    key: str | None = None
    limit: int | None = None
    topic: str = ""
    topic_by: str = ""
    topic_at: int = 0
    bans: dict[str, tuple[str, int]] = field(default_factory=dict)  # mask -> (setter, time)
    invited: set[Connection] = field(default_factory=set)
    permanent: bool = False  #: kept when empty (the default room)
    _queues: tuple[SendQueue, ...] | None = field(default=None, repr=False)

    def add(self, conn: Connection, prefixes: set[str]) -> None:
        self.members[conn] = prefixes
        if self._queues is not None:  # grows in C, not rebuilt member by member
            self._queues += (conn.sendq,)

    def remove(self, conn: Connection) -> None:
        self.members.pop(conn, None)
        self.invited.discard(conn)
        self._queues = None

    @property
    def queues(self) -> tuple[SendQueue, ...]:
        """The members' send queues: one tuple object until the membership changes, so
        that the flusher can join consecutive broadcasts to the room."""
        if self._queues is None:
            self._queues = tuple(member.sendq for member in self.members)
        return self._queues

    def check_join(self, conn: Connection, key: str | None) -> None:
        """Raise the reason ``conn`` may not join, if any (ERR_*CHAN numerics)."""
        invited = conn in self.invited
        if self.key is not None and key != self.key:
            raise BadChannelKey(self.name)
        if self.limit is not None and len(self.members) >= self.limit:
            raise ChannelIsFull(self.name)
        if "i" in self.modes and not invited:
            raise InviteOnlyChan(self.name)
        if self.is_banned(conn) and not invited:
            raise BannedFromChan(self.name)

    def is_banned(self, conn: Connection) -> bool:
        source, casemapping = conn.source, conn.world.casemapping
        return any(mask_match(ban, source, casemapping) for ban in self.bans)

    def can_speak(self, conn: Connection) -> bool:
        """Whether ``conn`` may send to the room (+n, +m and bans)."""
        prefixes = self.members.get(conn)
        if prefixes is None:
            return "n" not in self.modes and "m" not in self.modes and not self.is_banned(conn)
        if prefixes:  # ops and voiced members always may
            return True
        return "m" not in self.modes and not self.is_banned(conn)

    def is_op(self, conn: Connection) -> bool:
        return "o" in self.members.get(conn, ())

    def prefix_of(self, conn: Connection, multi: bool = False) -> str:
        """The member's prefix characters: the highest only, or all with multi-prefix."""
        have = self.members.get(conn, set())
        chars = [sym for mode, sym in PREFIXES.items() if mode in have]
        return "".join(chars) if multi else "".join(chars[:1])

    @property
    def symbol(self) -> str:
        """RPL_NAMREPLY's channel status: "@" secret, "=" public."""
        return "@" if "s" in self.modes else "="

    def mode_string(self, show_key: bool) -> list[str]:
        """The current modes and their arguments, for RPL_CHANNELMODEIS."""
        flags = "".join(sorted(self.modes))
        args: list[str] = []
        if self.key is not None:
            flags += "k"
            args.append(self.key if show_key else "*")
        if self.limit is not None:
            flags += "l"
            args.append(str(self.limit))
        return ["+" + flags, *args]
