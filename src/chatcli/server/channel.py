"""A room: its members and their prefixes, topic, modes, invitations, bans and exceptions.

A Channel holds no lock of its own: every read and write happens under the world lock
(see :mod:`chatcli.server.state`). It raises domain errors (:mod:`chatcli.server.errors`)
and never sends anything itself.

The list modes (bans, exceptions, invite exceptions) are checked on every JOIN and on
every message from a member without a prefix, and their masks are chosen by users: each
list keeps its masks compiled (:class:`chatcli.protocol.Mask`, linear-time matching),
made again only when the list changes, and a check folds the connection's names once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatcli.protocol import CaseMapping, Mask
from chatcli.server.errors import (
    BadChannelKey,
    BannedFromChan,
    ChannelIsFull,
    InviteOnlyChan,
)
from chatcli.server.tags import PROFILES

if TYPE_CHECKING:
    from chatcli.server.connection import Connection
    from chatcli.server.metadata import Metadata
    from chatcli.server.sendq import SendQueue
    from chatcli.server.store import Stored

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
#: The prefix of an account's mask in a list mode: ``+b a:<account>`` bans whoever is
#: logged in to an account matching ``<account>`` (IRCv3 account-extban,
#: ``ACCOUNTEXTBAN=a``); ``+e a:...`` and ``+I a:...`` except or invite them.
ACCOUNT = "a:"
PARAM_MODES = "k"
SET_PARAM_MODES = "l"
#: ``C``: no CTCP but ACTION to the room (as on InspIRCd and Ergo).
FLAG_MODES = "Cimnpst"


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
    # The list modes, each mask -> (setter, time set). Change them with add_mask and
    # remove_mask, which keep their compiled forms up to date.
    bans: dict[str, tuple[str, int]] = field(default_factory=dict)  # +b: may not join or speak
    excepts: dict[str, tuple[str, int]] = field(default_factory=dict)  # +e: overrides +b
    invex: dict[str, tuple[str, int]] = field(default_factory=dict)  # +I: may join a +i room
    invited: set[Connection] = field(default_factory=set)
    permanent: bool = False  #: kept when empty (the default room, registered rooms)
    #: A registered room's founder (an account), and the accounts that run it with them.
    founder: str | None = None
    #: The room's latest messages, oldest first, as history keeps them: what who joins is
    #: shown (see chatcli.server.history.replay), from memory, so that joining reads
    #: nothing from the disk under the world lock. None: not read from the store yet.
    recent: deque[Stored] | None = field(default=None, repr=False)
    #: When (unix ms) the room was made on this server, if it knows to the millisecond
    #: (0: it does not; ``created`` says to the second): where an unregistered room's own
    #: history begins (chatcli.server.history.since).
    born: int = 0
    op_accounts: set[str] = field(default_factory=set)
    #: IRCv3 draft/metadata-2: the room's keys and values, once it has any.
    metadata: Metadata | None = field(default=None, repr=False)
    #: When (monotonic) the room was last renamed (0: never), for RENAME's cooldown.
    renamed_at: float = 0.0
    _audience: tuple[tuple[SendQueue, ...], ...] | None = field(default=None, repr=False)
    #: list mode -> its masks compiled; absent until needed and after a change.
    _compiled: dict[str, MaskSet] = field(default_factory=dict, repr=False)

    def add(self, conn: Connection, prefixes: set[str]) -> None:
        self.members[conn] = prefixes
        if self._audience is not None and conn.sendq is not None:  # (None: on another node)
            # grows in C, not rebuilt member by member
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
                if member.sendq is not None:  # (None: someone on another node of a cluster)
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
        if "i" in self.modes and not invited and not self._invex_matches(conn):
            raise InviteOnlyChan(self.name)
        if self.bans and not invited and self._banned(conn, _identities(conn)):
            raise BannedFromChan(self.name)

    def is_banned(self, conn: Connection) -> bool:
        """Whether a ban matches ``conn`` and no ban exception does."""
        return bool(self.bans) and self._banned(conn, _identities(conn))

    def is_muted(self, conn: Connection) -> bool:
        """Whether a mute (``+b m:<mask>``, as on Ergo and InspIRCd) matches ``conn`` and
        no exception (``+e <mask>`` or ``+e m:<mask>``) does."""
        return bool(self.bans) and self._muted(conn, _identities(conn))

    def mask_list(self, mode: str) -> Mapping[str, tuple[str, int]]:
        """The masks of list mode ``mode`` (one of :data:`LIST_MODES`), each with who set
        it and when. Read only: change them with :meth:`add_mask` and :meth:`remove_mask`."""
        return self._lists()[mode]

    def add_mask(self, mode: str, mask: str, setter: str, when: int) -> None:
        """Put ``mask`` in the list of ``mode``, set by ``setter`` at ``when``."""
        self._lists()[mode][mask] = (setter, when)
        self._compiled.pop(mode, None)

    def remove_mask(self, mode: str, mask: str) -> None:
        """Take ``mask``, as it is listed, out of the list of ``mode``."""
        del self._lists()[mode][mask]
        self._compiled.pop(mode, None)

    def _lists(self) -> dict[str, dict[str, tuple[str, int]]]:
        return {"b": self.bans, "e": self.excepts, "I": self.invex}

    def _masks(self, mode: str, conn: Connection) -> MaskSet:
        """The masks of list ``mode`` compiled under ``conn``'s casemapping: made once after
        each change of the list."""
        casemapping = conn.world.casemapping
        masks = self._compiled.get(mode)
        if masks is None or masks.casemapping is not casemapping:
            masks = self._compiled[mode] = MaskSet.compile(self._lists()[mode], casemapping)
        return masks

    def _invex_matches(self, conn: Connection) -> bool:
        """Whether an invite exception (``+I <mask>``) matches ``conn``."""
        return bool(self.invex) and self._masks("I", conn).matches(_identities(conn), conn)

    def _banned(self, conn: Connection, identities: tuple[str, ...]) -> bool:
        """:meth:`is_banned`, given ``conn``'s folded :func:`_identities`."""
        bans = self._masks("b", conn)
        if not bans.matches(identities, conn):
            return False
        return not (self.excepts and self._masks("e", conn).matches(identities, conn))

    def _muted(self, conn: Connection, identities: tuple[str, ...]) -> bool:
        """:meth:`is_muted`, given ``conn``'s folded :func:`_identities`."""
        bans = self._masks("b", conn)
        if not bans.mutes_match(identities):
            return False
        if not self.excepts:
            return True
        excepts = self._masks("e", conn)
        return not (excepts.matches(identities, conn) or excepts.mutes_match(identities))

    def can_speak(self, conn: Connection) -> bool:
        """Whether ``conn`` may send to the room (+n, +m, bans and mutes)."""
        prefixes = self.members.get(conn)
        if prefixes:  # ops and voiced members always may
            return True
        if prefixes is None and "n" in self.modes:
            return False
        if "m" in self.modes:
            return False
        if not self.bans:  # the usual case, and checked on every message to the room
            return True
        identities = _identities(conn)  # folded once for both checks
        return not self._banned(conn, identities) and not self._muted(conn, identities)

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


@dataclass(frozen=True, slots=True)
class MaskSet:
    """One list mode's masks, compiled and split by kind, for matching many times."""

    casemapping: CaseMapping
    plain: tuple[Mask, ...]  #: the masks that name whom they ban, except or invite
    mutes: tuple[Mask, ...]  #: the masks of mutes, ``m:<mask>``, without the ``m:``
    accounts: tuple[Mask, ...] = ()  #: the masks of accounts, ``a:<mask>``, without ``a:``

    @classmethod
    def compile(cls, masks: Iterable[str], casemapping: CaseMapping) -> MaskSet:
        """``masks`` as a list mode holds them (mutes with their :data:`MUTE` prefix,
        accounts with :data:`ACCOUNT`)."""
        plain: list[Mask] = []
        mutes: list[Mask] = []
        accounts: list[Mask] = []
        for mask in masks:
            if mask.startswith(MUTE):
                mutes.append(Mask.compile(mask[len(MUTE) :], casemapping))
            elif mask.startswith(ACCOUNT):
                accounts.append(Mask.compile(mask[len(ACCOUNT) :], casemapping))
            else:
                plain.append(Mask.compile(mask, casemapping))
        return cls(casemapping, tuple(plain), tuple(mutes), tuple(accounts))

    def matches(self, identities: tuple[str, ...], conn: Connection | None = None) -> bool:
        """Whether a plain mask matches one of ``identities`` (folded), or an account's
        mask matches the account ``conn`` is logged in to."""
        if any(mask.matches(who) for mask in self.plain for who in identities):
            return True
        if not self.accounts or conn is None or conn.account is None:
            return False
        account = conn.world.fold(conn.account)
        return any(mask.matches(account) for mask in self.accounts)

    def mutes_match(self, identities: tuple[str, ...]) -> bool:
        """Whether a mute's mask matches one of ``identities`` (folded)."""
        return any(mask.matches(who) for mask in self.mutes for who in identities)


def _identities(conn: Connection) -> tuple[str, ...]:
    """What a ban (or exception) mask may name ``conn`` by, folded under its world's
    casemapping: ``nick!user@cloak``, as everyone sees it, and ``nick!user@ip``, as server
    operators do."""
    source = conn.world.fold(conn.source)
    if conn.display_host == conn.host:
        return (source,)
    return source, f"{source.rpartition('@')[0]}@{conn.world.fold(conn.host)}"
