"""A room: its members and their prefixes, topic, modes, invitations, bans and exceptions.

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
from chatcli.server.tags import PROFILES

if TYPE_CHECKING:
    from chatcli.server.connection import Connection
    from chatcli.server.sendq import SendQueue

#: Member prefixes, highest first, as advertised in ``PREFIX=(ov)@+``.
PREFIXES = {"o": "@", "v": "+"}
#: Channel modes, grouped as in ``CHANMODES=`` (list, always-param, set-param, flag).
#: The list modes: bans, ban exceptions (``EXCEPTS=e``) and invite exceptions (``INVEX=I``).
LIST_MODES = "beI"
#: Entries one list mode may hold (``MAXLIST=beI:100``); more is ERR_BANLISTFULL.
MAX_LIST_ENTRIES = 100
#: The prefix of a mute in the ban list: ``+b m:<mask>`` lets who matches it stay in the
#: room and read, but not speak (``EXTBAN=,m``, as Ergo and InspIRCd have it).
MUTE = "m:"
PARAM_MODES = "k"
SET_PARAM_MODES = "l"
FLAG_MODES = "imnpst"


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
    # The list modes, each mask -> (setter, time set).
    bans: dict[str, tuple[str, int]] = field(default_factory=dict)  # +b: may not join or speak
    excepts: dict[str, tuple[str, int]] = field(default_factory=dict)  # +e: overrides +b
    invex: dict[str, tuple[str, int]] = field(default_factory=dict)  # +I: may join a +i room
    invited: set[Connection] = field(default_factory=set)
    permanent: bool = False  #: kept when empty (the default room, registered rooms)
    #: A registered room's founder (an account), and the accounts that run it with them.
    founder: str | None = None
    op_accounts: set[str] = field(default_factory=set)
    _audience: tuple[tuple[SendQueue, ...], ...] | None = field(default=None, repr=False)

    def add(self, conn: Connection, prefixes: set[str]) -> None:
        self.members[conn] = prefixes
        if self._audience is not None:  # grows in C, not rebuilt member by member
            groups = list(self._audience)
            groups[conn.profile] += (conn.sendq,)
            self._audience = tuple(groups)

    def remove(self, conn: Connection) -> None:
        self.members.pop(conn, None)
        self._audience = None

    def regroup(self) -> None:
        """A member's capabilities changed: group the audience again."""
        self._audience = None

    @property
    def audience(self) -> tuple[tuple[SendQueue, ...], ...]:
        """The members' send queues grouped by their profile (see :mod:`chatcli.server.tags`):
        one tuple object until the membership changes, so that the flusher can join
        consecutive broadcasts to the room."""
        if self._audience is None:
            groups: list[list[SendQueue]] = [[] for _ in range(PROFILES)]
            for member in self.members:
                groups[member.profile].append(member.sendq)
            self._audience = tuple(tuple(group) for group in groups)
        return self._audience

    def check_join(self, conn: Connection, key: str | None) -> None:
        """Raise the reason ``conn`` may not join, if any (ERR_*CHAN numerics)."""
        invited = conn in self.invited
        if self.key is not None and key != self.key:
            raise BadChannelKey(self.name)
        if self.limit is not None and len(self.members) >= self.limit and not invited:
            raise ChannelIsFull(self.name)
        if "i" in self.modes and not invited and not self._matches(self.invex, conn):
            raise InviteOnlyChan(self.name)
        if self.is_banned(conn) and not invited:
            raise BannedFromChan(self.name)

    def is_banned(self, conn: Connection) -> bool:
        """Whether a ban matches ``conn`` and no ban exception does."""
        return self._matches(self.bans, conn) and not self._matches(self.excepts, conn)

    def is_muted(self, conn: Connection) -> bool:
        """Whether a mute (``+b m:<mask>``, as on Ergo and InspIRCd) matches ``conn`` and
        no exception (``+e <mask>`` or ``+e m:<mask>``) does."""
        return self._matches(self.bans, conn, MUTE) and not (
            self._matches(self.excepts, conn) or self._matches(self.excepts, conn, MUTE)
        )

    def mask_list(self, mode: str) -> dict[str, tuple[str, int]]:
        """The masks of list mode ``mode`` (one of :data:`LIST_MODES`)."""
        return {"b": self.bans, "e": self.excepts, "I": self.invex}[mode]

    def _matches(self, masks: dict[str, tuple[str, int]], conn: Connection, kind: str = "") -> bool:
        """Whether a mask of ``masks`` with the prefix ``kind`` ("" for plain masks, or
        :data:`MUTE`) matches ``conn``."""
        if not masks:  # the usual case, and checked on every message to the room
            return False
        casemapping = conn.world.casemapping
        chosen = [
            mask[len(kind) :]
            for mask in masks
            if mask.startswith(kind) and (kind or not mask.startswith(MUTE))
        ]
        return any(
            mask_match(mask, identity, casemapping)
            for identity in _identities(conn)
            for mask in chosen
        )

    def can_speak(self, conn: Connection) -> bool:
        """Whether ``conn`` may send to the room (+n, +m, bans and mutes)."""
        prefixes = self.members.get(conn)
        if prefixes:  # ops and voiced members always may
            return True
        if prefixes is None and "n" in self.modes:
            return False
        return "m" not in self.modes and not self.is_banned(conn) and not self.is_muted(conn)

    def is_op(self, conn: Connection) -> bool:
        return "o" in self.members.get(conn, ())

    def prefix_of(self, conn: Connection, multi: bool = False) -> str:
        """The member's prefix characters: the highest only, or all with multi-prefix."""
        have = self.members.get(conn, set())
        chars = [sym for mode, sym in PREFIXES.items() if mode in have]
        return "".join(chars) if multi else "".join(chars[:1])

    @property
    def symbol(self) -> str:
        """RPL_NAMREPLY's channel status: "@" secret, "*" private, "=" public."""
        return "@" if "s" in self.modes else "*" if "p" in self.modes else "="

    def hidden_from(self, conn: Connection) -> bool:
        """Whether ``conn`` may not see that the room exists: it is secret (+s) or private
        (+p) and ``conn`` is not in it."""
        return conn not in self.members and ("s" in self.modes or "p" in self.modes)

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


def _identities(conn: Connection) -> tuple[str, ...]:
    """What a ban (or exception) mask may name ``conn`` by: ``nick!user@cloak``, as
    everyone sees it, and ``nick!user@ip``, as server operators do."""
    source = conn.source
    if conn.display_host == conn.host:
        return (source,)
    return source, f"{source.rpartition('@')[0]}@{conn.host}"
