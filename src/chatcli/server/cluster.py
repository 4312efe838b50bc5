"""Several ``chat serve`` nodes as one chat: the backbone on Redis (``--cluster URL``).

Each node keeps the whole shared state in its :class:`ClusterWorld`, as a single server
does in its :class:`~chatcli.server.state.World`: its own clients as Connections, everyone
else's as :class:`Remote` people. What one node changes or says reaches the others as
*events* on one Redis Stream, which every node reads in the same order.

Why a stream: an entry stays after it is read, so a node whose connection to Redis drops
for a moment reads on from the last entry it applied and misses nothing (PUB/SUB would
drop what was published meanwhile); and its single order is the order every member of a
room sees the room's lines in, on whichever node they are.

* **Room lines are delivered in the stream's order, on every node, the sender's own
  included**: :meth:`ClusterWorld.broadcast` publishes the line, and each node (the
  sender's too) delivers it to its own members of the room when it reads it back. A
  member on any node therefore sees one order. (The sender's echo, part of its command's
  answer, is not held back.)
* **State changes are applied at once where they are made, and replayed by the others**:
  registration and identity (a person's record: nick, user, host, real name, account,
  away, modes, rooms with ranks), joins, parts and kicks, a room's state (topic, modes,
  key, limit, lists, ranks, a registered room's founder and operators: with the MODE or
  TOPIC line that changes it), invitations, departures, a KILL for someone on another
  node, and the room's recent lines (for who joins elsewhere) (:class:`Op`). What one hold
  of the world lock changes is one entry of the stream (:class:`Entry`), applied as one
  elsewhere too. Each entry carries its node and a per-node sequence number; a node
  applies each once (a duplicate, from a publish retried after a lost reply, is skipped)
  and never its own.
* **Nicks are claimed in Redis, atomically** (:data:`CLAIM`, a Lua script), before the
  world lock is taken (:meth:`ClusterWorld.reserve_nick`): two nodes can never both give
  out one nick. A nick held by a node that is no longer alive may be taken.
* **Liveness.** Each node renews a key with a time to live every fifth of
  ``cluster_timeout`` (10 s by default; the key lives :data:`LIVENESS_TTL` of it). When a
  node's key lapses (SIGKILL, power loss), the first node to notice (a ``SET NX`` on a
  reaper key) publishes its end: every node has that node's users quit, with the reason,
  and its nicks are free, all within ``cluster_timeout``. A node that has not reached
  Redis for half of it fails /healthz; for :data:`CUT_OFF` of it, it ends its own
  clients' connections, saying why, rather than carry on alone: always before its key
  can lapse, so a nick is never held twice.
* **Coming in.** A node starting reads each live node's users (a hash each node keeps of
  its own) and the rooms' state, then the stream from a little before the moment it read
  them: events are idempotent, so the overlap does no harm and nothing falls between.
* **Redis restarted empty**: each node notices (its ``epoch`` key is gone), claims its
  users' nicks, writes their records and the rooms' state again, and publishes again
  what it published in the last RETAIN_SECONDS: a reader applies only what it had not
  read. (With Redis's own persistence on, nothing of this is needed.)

Threads (docs/concurrency.md): ``cluster publish`` writes what this node queued (in its
order: queued under the world lock), ``cluster events`` reads the stream and applies it
under the world lock, ``cluster beat`` keeps the node alive and reaps dead ones. None of
them holds the world lock across a call to Redis.

Accounts, registered rooms and history are shared through the store, PostgreSQL
(``--db postgresql://``): each message is recorded once, by the node that took it.

Not yet: an account's owner takes back its nick from someone on another node only when
that node's nick enforcement renames them (after the grace period), not at once; two
nodes that create the same room at the same instant both give its creator operator rank;
the limits per address (max_per_ip, the throttle, account registrations) are counted by
each node for itself (failed logins are counted in Redis, by all: :meth:`Cluster.failures`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatcli.errors import ChatError, ExitStatus
from chatcli.protocol import Message, caps
from chatcli.server import metadata as meta
from chatcli.server import tags
from chatcli.server.channel import LIST_MODES, Channel
from chatcli.server.errors import BackboneUnavailable, NicknameInUse
from chatcli.server.state import World
from chatcli.server.store import Stored

if TYPE_CHECKING:
    import redis

    from chatcli.config import ServerConfig
    from chatcli.protocol import CaseMapping
    from chatcli.server.connection import Connection
    from chatcli.server.metadata import Metadata
    from chatcli.server.sendq import Batch, Flusher
    from chatcli.server.tags import Relay

log = logging.getLogger("chatcli.server.cluster")
#: A kept message's fields, as a ``kept`` event carries them (each room line's: once).
_STORED = tuple(field.name for field in dataclasses.fields(Stored))

#: The most events one read of the stream takes, and the stream's length kept (about).
READ_COUNT = 500
STREAM_LENGTH = 100_000
#: How far back in the stream a starting node reads, in milliseconds, past the moment it
#: read the users: more than any node takes to write a user's record after its event.
CATCH_UP_MS = 30_000
#: How long a read of the stream blocks waiting for an event (milliseconds).
BLOCK_MS = 1_000
#: Seconds any one call to Redis may take (past BLOCK_MS, for a read).
CALL_TIMEOUT = 2.0
#: Of ``cluster_timeout``: a node's liveness key lives LIVENESS_TTL of it after each
#: beat (every fifth of it), and a node that has not renewed it for CUT_OFF of it ends
#: its clients' connections: always before its key can lapse and the others free its
#: nicks (no nick is ever held twice), and the others reap it within the timeout.
LIVENESS_TTL = 0.8
CUT_OFF = 0.6
#: How long an account's owner waits for its nick to be taken back from someone on
#: another node (their node renames them).
RECLAIM_WAIT = 2.0
#: What a node keeps of what it published, to publish again if Redis comes back empty:
#: the last RETAIN_SECONDS, at most RETAIN_ENTRIES entries.
RETAIN_SECONDS = 10.0
RETAIN_ENTRIES = 10_000

#: Claim a nick: KEYS[1] the nick's key; ARGV[1] the claimant ("<node> <uid>"), ARGV[2]
#: the prefix of the nodes' liveness keys, ARGV[3] a holder the claimant's node knows is
#: gone (its release not yet published), or "". Free, the claimant's, held by that gone
#: holder or by a node that is not alive: it is the claimant's (1). Else: who holds it.
CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and holder ~= ARGV[3] then
  local node = string.match(holder, '^(%S+) ')
  if node and redis.call('EXISTS', ARGV[2] .. node) == 1 then return holder end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
#: Let go of a nick, if the claimant still holds it: KEYS[1] the nick's key, ARGV[1] who.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
#: Let go of a nick if a node holds it: KEYS[1] the nick's key, ARGV[1] the node.
RELEASE_NODE = """
local holder = redis.call('GET', KEYS[1])
if holder and string.match(holder, '^(%S+) ') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


class ClusterError(ChatError):
    """The cluster's Redis cannot be reached or used at start-up (one line, exit 1)."""

    exit_status = ExitStatus.ERROR


# -- the people of other nodes -----------------------------------------------------------


class Remote:
    """Someone connected to another node: what a Connection shows of itself to others
    (nick, user, host, real name, account, modes, rooms), read from that node's events.
    Anything said to them is published for their node to deliver (:class:`ClusterWorld`).
    Written under the world lock, like a Connection's identity."""

    registered = True
    sendq = None  # (a room's audience holds only this node's own send queues)
    profile = 0
    idle = True
    secure = False
    exempt = False
    quit_reason = None
    password = None
    sasl = None
    monitoring = None
    cap_negotiating = False
    left = False
    #: IRCv3 draft/metadata-2: their keys and subscriptions, from their record.
    metadata: Metadata | None = None
    meta_subs: frozenset[str] = frozenset()

    def __init__(self, world: ClusterWorld, uid: str, node: str) -> None:
        self.world = world
        self.config = world.config
        self.uid = uid
        self.node = node
        self.nick: str | None = None
        self.folded_nick = ""
        self.user: str | None = None
        self.host = ""
        self.display_host = ""
        self.realname = ""
        self.account: str | None = None
        self.account_id: int | None = None
        self.away: str | None = None
        self.modes: frozenset[str] = frozenset()
        self.caps: frozenset[str] = frozenset()
        self.channels: frozenset[Channel] = frozenset()
        self.invited_to: set[Channel] | None = None
        self.signon = 0
        self.nick_deadline: float | None = None
        self.server_name = node  # (its node's name, from its record)
        self.connected_at = self.last_seen = self.last_spoke = time.monotonic()

    def __repr__(self) -> str:
        return f"<Remote {self.nick or '*'} on {self.node}>"

    @property
    def source(self) -> str:
        return f"{self.nick}!{self.user or '~u'}@{self.display_host}"

    @property
    def idle_seconds(self) -> int:
        """Seconds since they last said something in a room (every node reads every
        room's lines), or since this node learned of them."""
        return int(time.monotonic() - self.last_spoke)

    @property
    def name(self) -> str:
        return self.nick or "*"

    @property
    def delivery(self) -> Any:
        from chatcli.server.connection import Delivery

        return Delivery(self)  # type: ignore[arg-type]

    def told_by(self, actor: object) -> Any:
        return self.delivery

    def end_if_closed(self) -> None:
        """(Its own node notices a closed connection.)"""

    def disconnect(self, reason: str) -> None:
        """End their connection (a KILL): their own node does it."""
        self.world.end_remote(self, reason)

    def update(self, record: dict[str, Any]) -> None:
        """Take the identity in ``record`` (see :func:`record_of`)."""
        self.user = record.get("user")
        self.host = record.get("host", "")
        self.display_host = record.get("shown", "")
        self.realname = record.get("real", "")
        self.account = record.get("account")
        self.world.log_in(self, record.get("account_id"))  # type: ignore[arg-type]
        self.away = record.get("away")
        self.modes = frozenset(record.get("modes", ""))
        self.caps = frozenset(record.get("caps", ()))
        self.signon = int(record.get("signon", 0))
        self.server_name = str(record.get("server", self.server_name))
        # (For accounts.holds_for_another: the nick is held for its owner's account.)
        self.nick_deadline = 0.0 if record.get("held") else None
        meta.from_record(self, record)


def record_of(conn: Connection | Remote) -> dict[str, Any]:
    """What others are shown of ``conn``, and its rooms, as JSON-able data."""
    rooms = {}
    for channel in conn.channels:
        prefixes = channel.members.get(conn)  # type: ignore[call-overload]
        rooms[channel.name] = "".join(sorted(prefixes or ()))
    return {
        "nick": conn.nick,
        "user": conn.user,
        "host": conn.host,
        "shown": conn.display_host,
        "real": conn.realname,
        "account": conn.account,
        "account_id": conn.account_id,
        "away": conn.away,
        "modes": "".join(sorted(conn.modes)),
        "caps": sorted(conn.caps),
        "signon": conn.signon,
        "server": conn.server_name,
        "held": conn.nick_deadline is not None,
        "rooms": rooms,
        **meta.to_record(conn),
    }


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Op:
    """One thing queued for Redis by this node, in its order: an event for the stream
    (``kind`` and ``data``), and what it changes in this node's records and claims."""

    kind: str  #: user, gone, nick, join, part, room, relay, raw, down; "" for none
    data: dict[str, Any]
    record: tuple[str, str | None] | None = None  #: (uid, record JSON or None: delete)
    release: tuple[str, str] | None = None  #: (nick key, claimant): let go of it
    room: tuple[str, str | None] | None = None  #: (folded room, its state JSON or None)


class Entry:
    """Ops queued together (one hold of the world lock): one entry of the stream, with
    this node's sequence number once it is first sent."""

    __slots__ = ("ops", "seq")

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        self.seq: int | None = None


class ClusterWorld(World):
    """The shared state of one node of a cluster (see the module docstring): a World
    whose changes and deliveries also go to the other nodes."""

    def __init__(self, casemapping: CaseMapping, flusher: Flusher, config: ServerConfig) -> None:
        super().__init__(casemapping, flusher)
        self.config = config
        self.node = secrets.token_hex(4)
        self.cluster: Cluster | None = None  # set by Cluster
        self._serial = itertools.count(1)
        self.uids: dict[Connection | Remote, str] = {}  # this node's people and remotes
        self.people: dict[str, Connection | Remote] = {}  # uid -> person
        self._forgetting: Connection | None = None
        self._group: list[Op] = []  # what the current hold of the world lock queued
        self._applying = False  # an event of another node is being applied (events thread)
        self._registering: list[Connection] = []  # who registered in the current hold
        self.lock.before_release = self._end_hold

    # -- helpers ------------------------------------------------------------------------

    def claimant(self, conn: Connection) -> str:
        return f"{self.node} {self.uids[conn]}"

    def _queue(self, op: Op, *, applying: bool = False) -> None:
        """Queue ``op`` for the other nodes: with what else this lock hold changes, if the
        world lock is held (they are applied together elsewhere too: a KICK's line and the
        removal it makes), else on its own. Nothing is queued while another node's event is
        applied (what it changes, its node told already) unless ``applying`` says so."""
        if self.cluster is None or (self._applying and not applying):
            return
        if self.lock.held():
            self._group.append(op)
        else:
            self.cluster.queue([op])

    def _end_hold(self) -> None:
        """The world lock is about to be released: queue what its hold changed, as one."""
        if self._registering:
            arrived, self._registering = self._registering, []
            for conn in arrived:  # first: whatever else the hold did is about them
                self._group.insert(0, self._user_op(conn))
        if self._group:
            group, self._group = self._group, []
            if self.cluster is not None:
                self.cluster.queue(group)

    def _record(self, conn: Connection) -> tuple[str, str]:
        return (self.uids[conn], json.dumps(record_of(conn)))

    def _user_op(self, conn: Connection) -> Op:
        """``conn``'s whole record, for the others to take, and for its node's hash."""
        uid, rec = self.uids[conn], record_of(conn)
        return Op("user", {"uid": uid, "rec": rec}, (uid, json.dumps(rec)))

    # -- nicks --------------------------------------------------------------------------

    def reserve_nick(self, conn: Connection, nick: str) -> bool:
        """Claim ``nick`` for ``conn`` in Redis, before taking the world lock; whether it
        was newly claimed (to let go of it if the change does not happen after all).

        Raises:
            NicknameInUse: someone on a live node holds it.
            BackboneUnavailable: Redis cannot be reached now.
        """
        self.assert_not_held()
        cluster = self.cluster
        folded = self.fold(nick)
        if cluster is None or folded == conn.folded_nick or cluster.holds(folded, conn):
            return False
        claimant = self.claimant(conn)
        holder = cluster.claim(folded, claimant)
        if holder is not None and self._gone(holder):  # ours, gone: its release is on its way
            holder = cluster.claim(folded, claimant, gone=holder)
        if holder is not None and conn.account is not None and self.fold(conn.account) == folded:
            # The account's owner, logged in, takes its nick back from someone on another
            # node: their node renames them; meanwhile this waits, a moment at most.
            self._queue(Op("reclaim", {"uid": holder.partition(" ")[2], "nick": nick}))
            deadline = time.monotonic() + RECLAIM_WAIT
            while holder is not None and time.monotonic() < deadline:
                time.sleep(0.05)
                holder = cluster.claim(folded, claimant)
        if holder is not None:
            raise NicknameInUse(nick)
        cluster.note_claim(folded, conn)
        return True

    def _gone(self, holder: str) -> bool:
        """Whether ``holder`` ("<node> <uid>") is one of this node's that is no longer
        here (a glance, without the lock)."""
        node, _, uid = holder.partition(" ")
        return node == self.node and uid not in self.people

    def unreserve_nick(self, conn: Connection, nick: str) -> None:
        """Let go of a claim :meth:`reserve_nick` made, unless ``conn`` has the nick now."""
        folded = self.fold(nick)
        if self.cluster is not None and folded != conn.folded_nick:
            self.cluster.drop_claim(folded, conn)
            self.cluster.release(folded, self.claimant(conn))

    def claim_nick(self, conn: Connection, nick: str) -> None:
        if isinstance(conn, Remote):  # (only its own node renames it)
            raise NicknameInUse(nick)
        old = conn.folded_nick
        had = conn.nick
        folded = self.fold(nick)
        cluster = self.cluster
        fresh = False
        if (
            cluster is not None
            and conn in self.uids
            and folded != old
            and not cluster.holds(folded, conn)
        ):
            # (Not claimed before the lock, as NICK does: a guest name, say. Claimed here,
            # under the lock: rare, and bounded by CALL_TIMEOUT.)
            try:
                claimed = cluster.claim(folded, self.claimant(conn)) is None
            except BackboneUnavailable:
                claimed = False
            if not claimed:
                raise NicknameInUse(nick)
            fresh = True
        try:
            super().claim_nick(conn, nick)
        except NicknameInUse:
            if fresh and cluster is not None:
                cluster.release(folded, self.claimant(conn))
            raise
        if cluster is None or conn not in self.uids:
            return
        cluster.set_claims(conn, {folded})
        release = (old, self.claimant(conn)) if old and old != folded else None
        if conn.registered:
            self._queue(
                Op(
                    "nick",
                    {"uid": self.uids[conn], "nick": nick, "was": had},
                    self._record(conn),
                    release,
                )
            )
        elif release is not None:
            self._queue(Op("", {}, release=release))

    def release_nick(self, conn: Connection) -> None:
        old = conn.folded_nick
        super().release_nick(conn)
        if old and conn in self.uids:
            self._queue(Op("", {}, release=(old, self.claimant(conn))))

    # -- people -------------------------------------------------------------------------

    def arrive(self, conn: Connection) -> None:
        super().arrive(conn)
        uid = f"{self.node}.{next(self._serial):x}"
        self.uids[conn] = uid
        self.people[uid] = conn

    def register(self, conn: Connection) -> None:
        super().register(conn)
        self._registering.append(conn)  # (told as this hold ends, as it is by then)

    def forget(self, conn: Connection) -> set[Connection]:
        self._forgetting = conn
        try:
            peers = super().forget(conn)
        finally:
            self._forgetting = None
        uid = self.uids.pop(conn, None)
        if uid is None:
            return peers
        self.people.pop(uid, None)
        if self.cluster is not None:
            self.cluster.forget_claims(conn)
        release = (conn.folded_nick, f"{self.node} {uid}") if conn.folded_nick else None
        if conn.registered:
            self._queue(Op("gone", {"uid": uid}, (uid, None), release))
        elif release is not None:
            self._queue(Op("", {}, release=release))
        return peers

    # -- rooms --------------------------------------------------------------------------

    def add_member(self, channel: Channel, conn: Connection, prefixes: set[str]) -> None:
        super().add_member(channel, conn, prefixes)
        if conn in self.uids and conn.registered:
            data = {"uid": self.uids[conn], "room": channel.name, "prefixes": "".join(prefixes)}
            self._queue(Op("join", data, self._record(conn)))

    def remove_member(self, channel: Channel, conn: Connection) -> None:
        super().remove_member(channel, conn)
        if self._forgetting is conn or not conn.registered:
            return  # (its departure says it all)
        if isinstance(conn, Remote):
            # Someone else's member (a KICK): every node, its own included, applies it;
            # its node writes its record again.
            self._queue(Op("part", {"uid": conn.uid, "room": channel.name}))
        elif conn in self.uids:
            uid = self.uids[conn]
            for op in self._group:  # its room's line of this hold (a KICK) still reaches it
                same_room = op.kind == "room" and op.data["room"] == channel.name
                if same_room and op.data.get("skip") != uid:
                    op.data.setdefault("also", []).append(uid)
            self._queue(Op("part", {"uid": uid, "room": channel.name}, self._record(conn)))

    def room_changed(self, channel: Channel) -> None:
        state = self._room_state(channel)
        room = (self.fold(channel.name), json.dumps(state))
        self._queue(Op("roomstate", {"room": channel.name, "state": state}, room=room))

    def _room_state(self, channel: Channel) -> dict[str, Any]:
        return {
            "name": channel.name,
            "created": channel.created,
            "topic": channel.topic,
            "topic_by": channel.topic_by,
            "topic_at": channel.topic_at,
            "modes": "".join(sorted(channel.modes)),
            "key": channel.key,
            "limit": channel.limit,
            "lists": {
                mode: {mask: list(set_by) for mask, set_by in channel.mask_list(mode).items()}
                for mode in LIST_MODES
            },
            "founder": channel.founder,
            "op_accounts": sorted(channel.op_accounts),
            "permanent": channel.permanent,
            "meta": meta.items_of(channel),
            "prefixes": {
                uid: "".join(sorted(prefixes))
                for member, prefixes in channel.members.items()
                if (uid := self.uids.get(member)) is not None
            },
        }

    def person_changed(self, conn: Connection) -> None:
        if conn in self.uids and conn.registered and not isinstance(conn, Remote):
            self._queue(self._user_op(conn))

    def kept_in_room(self, channel: Channel, stored: Stored) -> None:
        kept = {name: getattr(stored, name) for name in _STORED}  # (asdict deep-copies)
        self._queue(Op("kept", {"room": channel.name, "stored": kept}))

    def unkeep_in_room(self, channel: Channel, msgid: str) -> None:
        super().unkeep_in_room(channel, msgid)
        self._queue(Op("unkept", {"room": channel.name, "msgid": msgid}))

    def rename_room(self, channel: Channel, name: str) -> None:
        old = channel.name
        super().rename_room(channel, name)
        if self.fold(old) != self.fold(name):
            self._queue(Op("", {}, room=(self.fold(old), None)))
        room = (self.fold(name), json.dumps(self._room_state(channel)))
        self._queue(Op("rename", {"old": old, "new": name}, room=room))

    def tell_renamed(
        self,
        channel: Channel,
        line: Message,
        account: str | None,
        skip: Connection | None = None,
        markers: dict[int, int | None] | None = None,
    ) -> None:
        """Every node, this one too, tells its own members when it reads this back: in
        the room's order, as its lines."""
        if self.cluster is None:
            super().tell_renamed(channel, line, account, skip, markers)
            return
        skipped = self.uids.get(skip) if skip is not None else None
        data = {
            "room": channel.name,
            "skip": skipped,
            "source": line.source,
            "params": list(line.params),
            "account": account,
            "markers": [[key, at] for key, at in (markers or {}).items()],
        }
        self._queue(Op("renamed", data))

    def invite(self, channel: Channel, conn: Connection) -> None:
        super().invite(channel, conn)
        if isinstance(conn, Remote):  # (its node must let it in)
            self._queue(Op("invite", {"room": channel.name, "uid": conn.uid}))

    # -- deliveries ---------------------------------------------------------------------

    def broadcast(self, channel: Channel, relay: Relay, skip: Connection | None = None) -> int:
        """Publish ``relay`` for the room: every node, this one too, delivers it to its own
        members when it reads it back, so that all see the room in one order."""
        self.assert_held()
        if self.cluster is None:
            return super().broadcast(channel, relay, skip)
        skipped = self.uids.get(skip) if skip is not None else None
        data = {"room": channel.name, "skip": skipped, "relay": relay.to_wire()}
        self._queue(Op("room", data))
        return len(channel.members) - (skip is not None and skip in channel.members)

    def relay_to(
        self,
        people: Iterable[Connection],
        relay: Relay,
        *,
        actor: Connection | None,
        batch: Batch | None = None,
    ) -> None:
        """Under the world lock (a QUIT, a NICK, an away-notify), this node's people get
        it as the room's lines come, when it is read back from the stream, so that it keeps
        its place among them (the actor's copy, its command's answer, at once). Outside the
        lock (a direct message), at once, and to other nodes through the stream."""
        local: list[Connection] = []
        remote: list[str] = []
        for person in people:
            if isinstance(person, Remote):
                remote.append(person.uid)
            elif person is actor or not self._in_order():
                local.append(person)
            else:
                remote.append(self.uids[person])  # (read back here, in the stream's order)
        if local:
            super().relay_to(local, relay, actor=actor, batch=batch)
        if remote:
            self._queue(Op("relay", {"uids": remote, "relay": relay.to_wire()}))

    def shared_failures(self, keys: tuple[str, ...]) -> int:
        """Failed logins under ``keys`` counted by every node (Redis); 0 when Redis does
        not answer (this node's own count still holds)."""
        return self.cluster.failures(keys) if self.cluster is not None else 0

    def note_shared_failures(self, keys: tuple[str, ...], *, failed: bool) -> None:
        if self.cluster is not None:
            self.cluster.note_failures(keys, failed=failed)

    def share_cloak_key(self, key: bytes) -> None:
        """Cloak with the cluster's key (without a store to keep one): the same address
        gets the same cloak on every node, so a ban on it holds on all."""
        self._cloak_key = key

    def _in_order(self) -> bool:
        """Whether a delivery to this node's own people goes through the stream: under
        the world lock, not while applying another node's event."""
        return self.cluster is not None and self.lock.held() and not self._applying

    def deliver(self, person: Connection, data: bytes) -> None:
        if isinstance(person, Remote) or (self._in_order() and person in self.uids):
            raw = data.decode("utf-8", "surrogateescape")
            self._queue(Op("raw", {"uid": self.uids[person], "data": raw}))
        else:
            super().deliver(person, data)

    def end_remote(self, person: Remote, reason: str) -> None:
        """Have ``person``'s node end their connection with ``reason`` (any thread)."""
        self._queue(Op("end", {"uid": person.uid, "reason": reason}))

    def registered(self) -> Iterable[Connection]:
        """Everyone registered, on every node (WALLOPS, ``NOTICE $*``)."""
        yield from super().registered()
        yield from (p for p in list(self.people.values()) if isinstance(p, Remote))  # type: ignore[misc]

    # -- what the other nodes did (the ``cluster events`` thread, under the lock) ---------

    def apply(self, origin: str, kind: str, data: dict[str, Any]) -> None:
        """Apply one event of the stream. Caller holds the lock. Idempotent."""
        self.assert_held()
        self._applying = True
        try:
            self._apply(origin, kind, data)
        finally:
            self._applying = False

    def _apply(self, origin: str, kind: str, data: dict[str, Any]) -> None:
        mine = origin == self.node
        catching_up = self.cluster is not None and not self.cluster.live
        if catching_up and kind in ("room", "relay", "raw", "renamed"):
            return  # (catching up at start: what was said before is not ours to show)
        if kind == "room":
            self._deliver_room(data)
        elif kind == "relay":
            self._relay(data["uids"], tags.Relay.from_wire(data["relay"]))
        elif kind == "raw":
            person = self.people.get(data["uid"])
            if person is not None and not isinstance(person, Remote):
                World.deliver(self, person, str(data["data"]).encode("utf-8", "surrogateescape"))
        elif kind == "renamed":
            self._renamed(data)
        elif kind == "down":
            if data["node"] != self.node:
                self.node_down(data["node"], data.get("reason", "Its server left the chat"))
        elif mine:
            return  # (done already, as it was made)
        elif kind == "user":
            self._upsert(data["uid"], data["rec"])
        elif kind == "gone":
            self._remove(data["uid"])
        elif kind == "nick":
            self._rename(data["uid"], data["nick"])
        elif kind == "join":
            self._join(data["uid"], data["room"], data.get("prefixes", ""))
        elif kind == "part":
            self._part(data["uid"], data["room"])
        elif kind == "roomstate":
            self._room_state_of(data["room"], data["state"])
        elif kind == "kept":
            channel = self.find_channel(data["room"])
            if channel is not None and channel.recent is not None:
                channel.recent.append(Stored(**data["stored"]))
        elif kind == "end":
            person = self.people.get(data["uid"])
            if person is not None and not isinstance(person, Remote):
                person.disconnect(str(data["reason"]))
        elif kind == "unkept":
            channel = self.find_channel(data["room"])
            if channel is not None:
                World.unkeep_in_room(self, channel, str(data["msgid"]))
        elif kind == "reclaim":
            self._reclaim(data["uid"], str(data["nick"]))
        elif kind == "rename":
            channel = self.find_channel(data["old"])
            if channel is not None and self.find_channel(data["new"]) in (None, channel):
                World.rename_room(self, channel, str(data["new"]))
        elif kind == "invite":
            channel = self.find_channel(data["room"])
            person = self.people.get(data["uid"])
            if channel is not None and person is not None:
                World.invite(self, channel, person)  # type: ignore[arg-type]
        elif kind == "accmeta":
            self._account_metadata(int(data["account"]), str(data["key"]), data.get("value"))

    def account_metadata_changed(self, account_id: int, key: str, value: str | None) -> None:
        self._queue(Op("accmeta", {"account": account_id, "key": key, "value": value}))

    def _account_metadata(self, account_id: int, key: str, value: str | None) -> None:
        """Another node changed an account's metadata ``key``: so do the account's
        connections here (their records are written again) and its people of other nodes
        here. Its node told the subscribers who share a room with them; this node's
        watchers (draft/metadata-notify-2) are told here."""
        if not meta.valid_key(key) or (value is not None and not isinstance(value, str)):
            return
        holders = list(self.by_account.get(account_id, ()))
        before = [(person, dict(meta.items_of(person))) for person in holders]
        changed: set[int] = set()
        for person in holders:
            kept = meta.of(person)
            if id(kept) not in changed:  # (an account's connections here share theirs)
                changed.add(id(kept))
                if value is None:
                    kept.delete(key)
                else:
                    kept.merge(meta.Metadata({key: value}))
        for person, had in before:
            meta.tell_watchers(self, person, had)  # (draft/metadata-notify-2)
            if not isinstance(person, Remote):
                self._queue(self._user_op(person), applying=True)

    def _deliver_room(self, data: dict[str, Any]) -> None:
        channel = self.find_channel(data["room"])
        if channel is None:
            return
        skip = self.people.get(data["skip"]) if data.get("skip") else None
        if isinstance(skip, Remote) and str(data["relay"]["p"]).split(" ", 2)[1:2] in (
            ["PRIVMSG"],
            ["NOTICE"],
        ):
            skip.last_spoke = time.monotonic()  # (their message: the sender is skipped)
        relay = tags.Relay.from_wire(data["relay"])
        World.broadcast(self, channel, relay, None if isinstance(skip, Remote) else skip)  # type: ignore[arg-type]
        if data.get("also"):  # (members of ours who left it in the same hold: a KICK)
            self._relay(data["also"], relay)

    def _renamed(self, data: dict[str, Any]) -> None:
        """A room renamed (on any node): this node's members of it are told, and their
        records, which name their rooms, written again."""
        from chatcli.server.handlers import rename

        channel = self.find_channel(data["room"])
        if channel is None:
            return
        skip = self.people.get(data["skip"]) if data.get("skip") else None
        ours = [m for m in channel.members if not isinstance(m, Remote)]
        line = Message("RENAME", tuple(data["params"]), data["source"])
        told = [m for m in ours if m is not skip]
        markers = {int(key): at for key, at in data.get("markers") or ()}  # (read-marker)
        rename.tell(self, channel, line, data.get("account"), told, markers=markers)
        for member in ours:
            if member in self.uids:
                self._queue(Op("", {}, self._record(member)), applying=True)

    def _relay(self, uids: list[str], relay: Relay) -> None:
        local = [p for uid in uids if (p := self.people.get(uid)) and not isinstance(p, Remote)]
        if local:
            World.relay_to(self, local, relay, actor=None)  # type: ignore[arg-type]

    def _upsert(self, uid: str, record: dict[str, Any]) -> None:
        person = self.people.get(uid)
        arrived = person is None
        if person is None:
            node = uid.split(".", 1)[0]
            person = Remote(self, uid, node)
            self.people[uid] = person
            self.uids[person] = uid
        if not isinstance(person, Remote):
            return  # (our own, read back at start: never)
        if not arrived:
            self._count(person, -1)
        before = (person.away, person.realname, person.account)
        had = dict(meta.items_of(person))
        person.update(record)
        self._count(person, +1)
        self._rename(uid, record["nick"])
        if arrived:
            _announce(person, online=True)
        else:
            self._tell_watchers(person, before)
            meta.tell_watchers(self, person, had)
        rooms = record.get("rooms", {})
        for channel in list(person.channels):
            if channel.name not in rooms and self.fold(channel.name) not in {
                self.fold(r) for r in rooms
            }:
                World.remove_member(self, channel, person)  # type: ignore[arg-type]
        for room, prefixes in rooms.items():
            self._join(uid, room, prefixes)

    def _tell_watchers(self, person: Remote, before: tuple[Any, ...]) -> None:
        """extended-monitor: this node's watchers of ``person`` who share no room with
        them hear of a change of their away message, real name or account here (those who
        do share one were told by ``person``'s node, as neighbours)."""
        watching = self.watchers.get(person.folded_nick)
        if not watching:
            return
        away, realname, account = before
        changes = []
        if person.away != away:
            params = (person.away,) if person.away else ()
            changes.append((caps.AWAY_NOTIFY, Message("AWAY", params, person.source)))
        if person.realname != realname:
            changes.append((caps.SETNAME, Message("SETNAME", (person.realname,), person.source)))
        if person.account != account:
            name = person.account or "*"
            changes.append((caps.ACCOUNT_NOTIFY, Message("ACCOUNT", (name,), person.source)))
        for cap, line in changes:
            told = [  # (who shares a room with them was told as a neighbour)
                w
                for w in watching
                if cap in w.caps
                and caps.EXTENDED_MONITOR in w.caps
                and w.channels.isdisjoint(person.channels)
            ]
            if told:
                relay = tags.Relay(line, account=person.account)
                World.relay_to(self, told, relay, actor=None)

    def _count(self, person: Remote, sign: int) -> None:
        """Count ``person`` in (+1) or out (-1) of the other nodes' users, for LUSERS."""
        self.others += sign
        self.others_invisible += sign * ("i" in person.modes)
        self.others_operators += sign * ("o" in person.modes)
        self.max_global = max(self.max_global, self.users + self.others)

    def _rename(self, uid: str, nick: str) -> None:
        person = self.people.get(uid)
        if not isinstance(person, Remote) or nick is None:
            return
        folded = self.fold(nick)
        if folded == person.folded_nick and person.nick == nick:
            return
        if person.folded_nick and self.nicks.get(person.folded_nick) is person:
            del self.nicks[person.folded_nick]
            if person.nick and folded != person.folded_nick:
                self.remember(person, person.nick)  # type: ignore[arg-type]  # (WHOWAS)
                _announce(person, online=False, nick=person.nick)
                announce_new = True
            else:
                announce_new = False
        else:
            announce_new = False
        holder = self.nicks.get(folded)
        if isinstance(holder, Remote) and holder is not person:
            holder.folded_nick = ""  # (a stale copy: the claim in Redis decided)
        self.nicks[folded] = person  # type: ignore[assignment]
        person.nick, person.folded_nick = nick, folded
        if announce_new:
            _announce(person, online=True)

    def _join(self, uid: str, room: str, prefixes: str) -> None:
        person = self.people.get(uid)
        if not isinstance(person, Remote):
            return
        channel = self.find_channel(room)
        if channel is None:
            channel = Channel(room, int(time.time()))
            self.add_room(channel)
        if person in channel.members:
            channel.members[person] = set(prefixes)  # type: ignore[index]
            return
        World.add_member(self, channel, person, set(prefixes))  # type: ignore[arg-type]

    def _part(self, uid: str, room: str) -> None:
        person = self.people.get(uid)
        channel = self.find_channel(room)
        if person is None or channel is None or person not in channel.members:
            return
        if isinstance(person, Remote):
            World.remove_member(self, channel, person)  # type: ignore[arg-type]
        else:  # one of ours, removed by another node (a KICK): ours to record again
            World.remove_member(self, channel, person)
            self._queue(Op("", {}, self._record(person)), applying=True)

    def _remove(self, uid: str) -> set[Connection]:
        person = self.people.pop(uid, None)
        if not isinstance(person, Remote):
            return set()
        self.uids.pop(person, None)
        self._count(person, -1)
        self.remember(person)  # type: ignore[arg-type]  # (WHOWAS: they were here)
        peers = World.forget(self, person)  # type: ignore[arg-type]
        _announce(person, online=False)
        return {p for p in peers if not isinstance(p, Remote)}

    def _reclaim(self, uid: str, nick: str) -> None:
        """An account's owner, on another node, takes back its nick from one of ours who
        holds it without being logged in to it: renamed, as on a single server."""
        from chatcli.server.handlers import accounts

        person = self.people.get(uid)
        folded = self.fold(nick)
        if person is None or isinstance(person, Remote) or person.folded_nick != folded:
            return
        if person.account is not None and self.fold(person.account) == folded:
            return  # (the owner itself: nothing to take back)
        accounts.service_notice(person.delivery, f"{nick} is taken back by its owner.")
        self._applying = False  # (the rename is this node's own change: the others hear it)
        try:
            accounts.to_guest(person, actor=None)
        finally:
            self._applying = True

    def _room_state_of(self, room: str, state: dict[str, Any], *, create: bool = False) -> None:
        """Take a room's topic, modes, lists and prefixes from another node."""
        channel = self.find_channel(room)
        if channel is None:
            if not create:
                return  # (nobody here knows it: it comes with its first member)
            channel = Channel(room, int(state.get("created", time.time())))
            self.add_room(channel)
        channel.topic = state.get("topic", "")
        channel.topic_by = state.get("topic_by", "")
        channel.topic_at = int(state.get("topic_at", 0))
        channel.modes = set(state.get("modes", ""))
        channel.key = state.get("key")
        channel.limit = state.get("limit")
        channel.founder = state.get("founder")
        channel.op_accounts = set(state.get("op_accounts", ()))
        kept = [(str(k), str(v)) for k, v in state.get("meta") or ()][: meta.MAX_KEYS]
        had = dict(meta.items_of(channel))
        channel.metadata = meta.Metadata(dict(kept)) if kept else None
        for key in had.keys() | dict(kept).keys():  # (its node told its own members)
            if had.get(key) != (value := dict(kept).get(key)):
                meta.notify_room(self, None, channel, key, value)
        lobby = self.fold(channel.name) == self.fold(self.config.room)
        channel.permanent = bool(state.get("permanent")) or lobby
        for mode, masks in state.get("lists", {}).items():
            if mode not in LIST_MODES:
                continue
            for mask in list(channel.mask_list(mode)):
                if mask not in masks:
                    channel.remove_mask(mode, mask)
            for mask, (setter, when) in masks.items():
                if channel.mask_list(mode).get(mask) != (setter, when):
                    channel.add_mask(mode, mask, setter, int(when))
        for uid, prefixes in state.get("prefixes", {}).items():
            person = self.people.get(uid)
            if person is not None and person in channel.members:
                channel.members[person] = set(prefixes)  # type: ignore[index]

    def node_down(self, node: str, reason: str) -> None:
        """Every user of ``node`` quits, with ``reason``, as each node's own members see
        it. Caller holds the lock."""
        for uid, person in list(self.people.items()):
            if isinstance(person, Remote) and person.node == node:
                source = person.source
                account = person.account
                peers = self._remove(uid)
                relay = tags.Relay(_quit(source, reason), account=account)
                World.relay_to(self, peers, relay, actor=None)


def _announce(person: Remote, *, online: bool, nick: str | None = None) -> None:
    """MONITOR: tell this node's watchers that ``person`` came or went."""
    from chatcli.server.handlers import monitor

    monitor.announce(person, online, nick)  # type: ignore[arg-type]


def _quit(source: str, reason: str) -> Any:
    return Message("QUIT", (reason,), source)


# -- the node's link to Redis ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What :meth:`Cluster.view` shows."""

    node: str  #: this node's id
    where: str  #: its Redis, without a password
    alive: int  #: nodes alive, this one included
    users: dict[str, int]  #: registered users by node, this one's included
    lag: float  #: seconds from an event's publication to its application here, lately
    rate: float  #: events applied here per second, over the last beat
    published: int  #: events this node has published
    applied: int  #: events of other nodes (and its own room lines) applied here
    backlog: int  #: entries queued here and not yet published
    cut: bool  #: Redis has been out of reach long enough to end its clients (CUT_OFF)


class Cluster:
    """This node's link to the cluster's Redis: its three threads (module docstring)."""

    def __init__(
        self,
        url: str,
        world: ClusterWorld,
        config: ServerConfig,
        on_fatal: Callable[[str], None],
        cut_off: Callable[[str], None],
    ) -> None:
        try:
            import redis
        except ImportError:
            raise ClusterError(
                "a cluster needs the redis package: pip install 'chatcli-irc[cluster]'"
            ) from None

        self.url = url
        #: Where its Redis is, for people: the URL without its password.
        self.where = url.split("@")[-1].split("://")[-1]
        self.world = world
        self.config = config
        self.timeout = config.cluster_timeout
        self.prefix = f"chatcli:{config.network}:"
        self.stream = self.prefix + "events"
        self._fatal = on_fatal
        self._cut_off = cut_off
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.redis: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=CALL_TIMEOUT + BLOCK_MS / 1000,
            socket_connect_timeout=CALL_TIMEOUT,
            decode_responses=True,
            # No retries, nor their backoff (seconds, growing), inside redis-py: each of
            # our threads tries again itself, at its own pace, and tells of a failure.
            retry=Retry(NoBackoff(), 0),
        )
        self._claim = self.redis.register_script(CLAIM)
        self._release = self.redis.register_script(RELEASE)
        self._release_node = self.redis.register_script(RELEASE_NODE)
        self._ops: deque[Entry] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seq = itertools.count(1)
        self._claims: dict[Connection, set[str]] = {}  # what each of ours holds in Redis
        self._claims_lock = threading.Lock()
        self.last_id = "0-0"
        self._seen: dict[str, int] = {}  # origin node -> the last sequence number applied
        self._epoch = ""
        self._suspect = False  # a publish failed: check the epoch before the next
        self._trouble: set[str] = set()  # what fails now, told once (see _failing)
        self.republished = 0  # entries published again after Redis lost its data
        self._retained: deque[tuple[float, Entry]] = deque()  # published lately
        self.alive_since = time.monotonic()  # the last time Redis answered the beat
        self.cut = False
        #: Whether events are read as they come (not caught up at start): only then are
        #: their lines delivered.
        self.live = False
        self._live_from = 0  # the first stream id's milliseconds that are live
        # Figures, for STATS and metrics.
        self.published = 0
        self.applied = 0
        self.lag = 0.0  # seconds between an event's publication and its application here
        self.rate = 0.0  # events applied here per second, over the last beat
        self.started = False
        self._stopped = False
        world.cluster = self
        tags.name_run(world.node)

    # -- start and stop -------------------------------------------------------------------

    def start(self) -> None:
        """Reach Redis, claim this node's id, read everyone, and start the threads.

        Raises:
            ClusterError: Redis cannot be reached or used (one line).
        """
        import redis

        self.started = True
        where = self.where
        try:
            self.redis.ping()
            while not self.redis.set(
                self._node_key(self.world.node), "1", nx=True, px=self._ttl_ms()
            ):
                self.world.node = secrets.token_hex(4)  # (taken: very unlikely)
                tags.name_run(self.world.node)
            self.redis.sadd(self.prefix + "nodes", self.world.node)
            self.redis.hset(self.prefix + "names", self.world.node, self.config.name)
            self.redis.set(self.prefix + "epoch", secrets.token_hex(8), nx=True)
            self._epoch = self.redis.get(self.prefix + "epoch") or ""
            if self.world.store is None:  # (with a store, its secret is the cluster's)
                self.redis.set(self.prefix + "cloak", secrets.token_hex(32), nx=True)
                self.world.share_cloak_key(bytes.fromhex(self.redis.get(self.prefix + "cloak")))
            self._load()
        except redis.RedisError as exc:
            raise ClusterError(f"cannot use the cluster's Redis at {where}: {exc}") from None
        self._threads = [  # (the reader first: see stop)
            threading.Thread(
                target=self._guard,
                args=("cluster events", self._events_loop),
                name="cluster events",
                daemon=True,
            ),
            threading.Thread(
                target=self._guard,
                args=("cluster publish", self._publish_loop),
                name="cluster publish",
                daemon=True,
            ),
            threading.Thread(
                target=self._guard,
                args=("cluster beat", self._beat_loop),
                name="cluster beat",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Publish what is queued (briefly), say this node is gone, stop the threads.
        Idempotent."""
        if not self.started or self._stopped:
            return
        self._stopped = True
        self._wake.set()
        deadline = time.monotonic() + CALL_TIMEOUT
        while self._ops and time.monotonic() < deadline and not self.cut:
            time.sleep(0.01)
        self._stop.set()
        self._wake.set()
        reader, *others = self._threads  # (the events thread first: see start)
        for thread in others:
            thread.join(CALL_TIMEOUT + 1)
        with contextlib.suppress(Exception):
            # The last entry: the others' users of ours quit (none are left, normally),
            # and it wakes our own reader from its wait for the next entry.
            down = Op("down", {"node": self.world.node, "reason": "Server shutting down"})
            self._publish([Entry([down])])
            self.redis.delete(self._node_key(self.world.node), self._users_key(self.world.node))
            self.redis.srem(self.prefix + "nodes", self.world.node)
        reader.join(CALL_TIMEOUT + BLOCK_MS / 1000 + 1)
        with contextlib.suppress(Exception):
            self.redis.close()

    def _guard(self, name: str, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception:
            log.exception("the %s thread failed", name)
            self._fatal(f"the {name} thread failed")

    @property
    def node(self) -> str:
        """This node's id in the cluster (the start of its msgids)."""
        return self.world.node

    def health(self) -> str:
        """For /healthz: "ok" while this node has reached Redis lately (within half of
        ``cluster_timeout``: before it cuts itself off, CUT_OFF), else how long it has
        not: a balancer should then send new clients elsewhere."""
        if self.cut:
            return "cut off from Redis: this node has ended its clients' connections"
        away = time.monotonic() - self.alive_since
        if away > self.timeout / 2:
            return f"not reaching Redis for {away:.0f} s"
        return "ok"

    def view(self) -> ClusterView:
        """A moment's view of the cluster, for STATS c and /metrics. Without the world
        lock (the metrics never take it): glances, on the GIL (``list()`` of a dict's
        values is one call that no other thread interleaves)."""
        world = self.world
        users = {world.node: world.users}
        for person in list(world.people.values()):
            if isinstance(person, Remote):
                users[person.node] = users.get(person.node, 0) + 1
        return ClusterView(
            node=world.node,
            where=self.where,
            alive=world.servers,
            users=users,
            lag=self.lag,
            rate=self.rate,
            published=self.published,
            applied=self.applied,
            backlog=len(self._ops),
            cut=self.cut,
        )

    # -- keys -----------------------------------------------------------------------------

    def _node_key(self, node: str) -> str:
        return f"{self.prefix}node:{node}"

    def _users_key(self, node: str) -> str:
        return f"{self.prefix}users:{node}"

    def _nick_key(self, folded: str) -> str:
        return f"{self.prefix}nick:{folded}"

    def _ttl_ms(self) -> int:
        """The liveness key's time to live: LIVENESS_TTL of the timeout, so that with the
        reapers' check every fifth of it a dead node's users are gone within the timeout."""
        return int(self.timeout * LIVENESS_TTL * 1000)

    # -- claims (connection threads) ------------------------------------------------------

    def claim(self, folded: str, claimant: str, gone: str = "") -> str | None:
        """Claim a nick in Redis (see :data:`CLAIM`); None if it is the claimant's now,
        else who holds it ("<node> <uid>"). ``gone``: a holder of this node's that has
        left, whose release may not be published yet (it does not count).

        Raises:
            BackboneUnavailable: Redis cannot be reached now, or this node is cut off.
        """
        import redis

        if self.cut:
            raise BackboneUnavailable("this server has lost the rest of the chat")
        try:
            got = self._claim(
                keys=[self._nick_key(folded)], args=[claimant, self.prefix + "node:", gone]
            )
        except redis.RedisError as exc:
            raise BackboneUnavailable(str(exc)) from None
        return None if got == 1 else str(got)

    def failures(self, keys: tuple[str, ...]) -> int:
        """The most failed logins counted under any of ``keys`` by the cluster's nodes
        (keys that live FAILURE_MEMORY after the last); 0 if Redis does not answer."""
        import redis

        if not keys:
            return 0
        try:
            counts = self.redis.mget([self._failure_key(key) for key in keys])
        except redis.RedisError:
            return 0
        return max((int(count) for count in counts if count is not None), default=0)

    def note_failures(self, keys: tuple[str, ...], *, failed: bool) -> None:
        """Count a failed login under each of ``keys``, for every node to see, or forget
        them after a success. (Redis not answering: this node's own count holds.)"""
        import redis

        from chatcli.server.logins import FAILURE_MEMORY

        with contextlib.suppress(redis.RedisError):  # (told by the beat thread's log)
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                if failed:
                    pipe.incr(self._failure_key(key))
                    pipe.expire(self._failure_key(key), int(FAILURE_MEMORY))
                else:
                    pipe.delete(self._failure_key(key))
            pipe.execute()

    def _failure_key(self, key: str) -> str:
        return f"{self.prefix}failed:{key}"

    def release(self, folded: str, claimant: str) -> None:
        self.queue([Op("", {}, release=(folded, claimant))])

    def holds(self, folded: str, conn: Connection) -> bool:
        with self._claims_lock:
            return folded in self._claims.get(conn, ())

    def note_claim(self, folded: str, conn: Connection) -> None:
        with self._claims_lock:
            self._claims.setdefault(conn, set()).add(folded)

    def drop_claim(self, folded: str, conn: Connection) -> None:
        with self._claims_lock:
            self._claims.get(conn, set()).discard(folded)

    def set_claims(self, conn: Connection, claims: set[str]) -> None:
        with self._claims_lock:
            self._claims[conn] = claims

    def forget_claims(self, conn: Connection) -> None:
        with self._claims_lock:
            self._claims.pop(conn, None)

    # -- publishing (queued from any thread; sent by ``cluster publish``) ----------------

    def queue(self, ops: list[Op]) -> None:
        """Queue ``ops`` to be published as one entry of the stream (any thread)."""
        self._ops.append(Entry(ops))
        self._wake.set()

    def _publish_loop(self) -> None:
        import redis

        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self._suspect:  # (Redis was away, or its epoch changed: see _beat)
                try:
                    self._check_epoch()
                    self._suspect = False
                except redis.RedisError:
                    self._stop.wait(0.2)
                    continue
            while self._ops and not self._stop.is_set():
                batch = []
                while self._ops and len(batch) < READ_COUNT:
                    batch.append(self._ops.popleft())
                try:
                    if self._suspect:  # (Redis was away: did it come back empty?)
                        self._check_epoch()
                        self._suspect = False
                    self._publish(batch)
                except redis.RedisError as exc:  # kept, and tried again: never lost
                    self._failing("publish to the cluster", exc)
                    self._ops.extendleft(reversed(batch))
                    self._suspect = True
                    self._stop.wait(0.2)
                    continue
                self._failing("publish to the cluster", None)
                self._retain(batch)

    def _failing(self, what: str, error: Exception | None) -> None:
        """Log that ``what`` fails (``error``), once until it works again (None), and
        then that it does: a Redis away for a minute is two lines per thread, not hundreds."""
        if error is not None:
            if what not in self._trouble:
                self._trouble.add(what)
                log.warning("cannot %s: %s", what, error)
        elif what in self._trouble:
            self._trouble.discard(what)
            log.warning("can %s again", what)

    def _retain(self, batch: list[Entry]) -> None:
        """Keep what was just published for a while (RETAIN_SECONDS, RETAIN_ENTRIES): if
        Redis loses its data, it is published again (:meth:`_restore`), and each reader
        applies what it had not read yet (what it had, its sequence number skips)."""
        now = time.monotonic()
        retained = self._retained
        retained.extend((now, entry) for entry in batch if entry.seq is not None)
        while retained and (
            len(retained) > RETAIN_ENTRIES or now - retained[0][0] > RETAIN_SECONDS
        ):
            retained.popleft()

    def _publish(self, batch: list[Entry]) -> None:
        """Send ``batch`` in one round trip. Each entry gets this node's next sequence
        number once: an entry sent again (its answer lost) is skipped by the readers."""
        pipe = self.redis.pipeline(transaction=False)
        users = self._users_key(self.world.node)
        for entry in batch:
            events = [[op.kind, op.data] for op in entry.ops if op.kind]
            if events:
                if entry.seq is None:
                    entry.seq = next(self._seq)
                fields = {"o": self.world.node, "s": entry.seq, "d": json.dumps(events)}
                pipe.xadd(self.stream, fields, maxlen=STREAM_LENGTH, approximate=True)  # type: ignore[arg-type]
                self.published += 1
            for op in entry.ops:
                if op.record is not None:
                    uid, record = op.record
                    if record is None:
                        pipe.hdel(users, uid)
                    else:
                        pipe.hset(users, uid, record)
                if op.room is not None:
                    folded_room, state = op.room
                    if state is None:
                        pipe.hdel(self.prefix + "rooms", folded_room)
                    else:
                        pipe.hset(self.prefix + "rooms", folded_room, state)
                if op.release is not None:
                    folded, claimant = op.release
                    key = self._nick_key(folded)
                    self._release(keys=[key], args=[claimant], client=pipe)
        # A connection error raises (the batch is sent again); an error of one command
        # (a bug) must not hold up everything after it: told to the log, and passed.
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, Exception):
                log.error("the cluster's Redis refused a command: %s", result)

    # -- reading the stream (``cluster events``) ----------------------------------------

    def _load(self) -> None:
        """Read every live node's users, then start the stream a little before now."""
        seconds, micros = self.redis.time()  # (Redis's clock: the stream's ids are by it)
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        world = self.world
        users = {  # (read first: the world lock is never held across a call to Redis)
            node: self.redis.hgetall(self._users_key(node))
            for node in self.redis.smembers(self.prefix + "nodes")
            if node != world.node and self.redis.exists(self._node_key(node))
        }
        rooms = self.redis.hgetall(self.prefix + "rooms")
        with world.lock:
            for node, records in users.items():
                for uid, record in records.items():
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        world.apply(node, "user", {"uid": uid, "rec": json.loads(record)})
            for state in rooms.values():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    state = json.loads(state)
                    world.apply("", "roomstate", {"room": state["name"], "state": state})
        self.last_id = f"{max(0, now_ms - CATCH_UP_MS)}-0"
        self._live_from = now_ms

    def _events_loop(self) -> None:
        import redis

        while not self._stop.is_set():
            try:
                got = self.redis.xread(
                    {self.stream: self.last_id}, count=READ_COUNT, block=BLOCK_MS
                )
            except redis.RedisError as exc:
                self._failing("read the cluster's events", exc)
                self._stop.wait(0.2)
                continue
            self._failing("read the cluster's events", None)
            for _, entries in got or ():
                self._apply(entries)

    def _apply(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        world = self.world
        now = time.time()
        with world.lock:
            for entry_id, fields in entries:
                self.last_id = entry_id
                if not self.live and int(entry_id.split("-")[0]) >= self._live_from:
                    self.live = True
                try:
                    origin, seq, events = fields["o"], int(fields["s"]), json.loads(fields["d"])
                except (KeyError, ValueError, TypeError):
                    log.warning("an entry of the cluster could not be read: %r", fields)
                    continue
                if seq <= self._seen.get(origin, 0):
                    continue  # (published twice: a retried batch)
                self._seen[origin] = seq
                for kind, data in events:
                    try:
                        world.apply(origin, kind, data)
                    except (KeyError, ValueError, TypeError):
                        log.exception("an event of the cluster could not be applied: %r", data)
                    self.applied += 1
                with contextlib.suppress(ValueError):
                    self.lag = max(0.0, now - int(entry_id.split("-")[0]) / 1000)

    # -- liveness (``cluster beat``) ------------------------------------------------------

    def _beat_loop(self) -> None:
        import redis

        interval = self.timeout / 5
        counted, at = self.applied, time.monotonic()
        while not self._stop.wait(interval):
            now = time.monotonic()
            self.rate = (self.applied - counted) / max(now - at, 1e-3)  # (events/s, lately)
            counted, at = self.applied, now
            try:
                self._beat()
                self.alive_since = time.monotonic()
                self._failing("reach the cluster's Redis", None)
            except redis.RedisError as exc:
                self._failing("reach the cluster's Redis", exc)
                away = time.monotonic() - self.alive_since
                if not self.cut and away >= self.timeout * CUT_OFF:
                    self.cut = True
                    self._cut_off("This server lost contact with the rest of the chat; reconnect")

    def _beat(self) -> None:
        node = self.world.node
        known = self._epoch  # (before: the publisher may restore meanwhile)
        if not self.redis.set(self._node_key(node), "1", px=self._ttl_ms(), xx=True):
            self._lapsed(known)
        if self.cut:  # back: take new connections again
            self.cut = False
        if self.redis.get(self.prefix + "epoch") != self._epoch:
            self._suspect = True  # (the publisher restores: it alone publishes, in order)
            self._wake.set()
        self._reap()

    def _lapsed(self, known: str) -> None:
        """Our liveness key was gone when the beat came to renew it. Redis lost its data
        (its epoch changed): the publisher restores what we had. Else the key ran out (a
        stalled process, a slow Redis) and the others may have reaped us, our users quit
        and their nicks freed: our clients' connections end, as after a cut-off, and we
        are a node again (alive, among the nodes, named) for whoever connects now."""
        node = self.world.node
        if self.redis.get(self.prefix + "epoch") == known:
            log.warning("this server's liveness key ran out; the others may have reaped it")
            if not self.cut:
                self.cut = True
                self._cut_off("This server lost contact with the rest of the chat; reconnect")
            self.redis.sadd(self.prefix + "nodes", node)
            self.redis.hset(self.prefix + "names", node, self.config.name)
        self.redis.set(self._node_key(node), "1", px=self._ttl_ms())

    def _check_epoch(self) -> None:
        """If Redis lost what it held (restarted without its data; its ``epoch`` key is
        gone or another), write ours again (:meth:`_restore`). On the publisher's thread
        only: what it publishes again must go before anything newer."""
        if self.redis.get(self.prefix + "epoch") != self._epoch:
            self._restore()

    def _restore(self) -> None:
        """Redis lost what it held (restarted without its data): write again our users,
        their nicks, the rooms' state as this node knows it, and what this node published
        lately (readers skip what they had). On the publisher's thread."""
        log.warning("the cluster's Redis lost its data; writing this server's users again")
        self.redis.set(self.prefix + "epoch", secrets.token_hex(8), nx=True)
        # Our key before the epoch we know: a beat that finds the key gone, while the
        # epoch is the one we know, takes it for our key having run out (_lapsed).
        self.redis.set(self._node_key(self.world.node), "1", px=self._ttl_ms())
        self._epoch = self.redis.get(self.prefix + "epoch") or ""
        self.redis.sadd(self.prefix + "nodes", self.world.node)
        self.redis.hset(self.prefix + "names", self.world.node, self.config.name)
        world = self.world
        with world.lock:
            ours = [
                (c, world.claimant(c), c.folded_nick, json.dumps(record_of(c)), c.registered)
                for c in world.connections
                if c in world.uids
            ]
            rooms = {
                world.fold(channel.name): json.dumps(world._room_state(channel))
                for channel in world.channels.values()
            }
        pipe = self.redis.pipeline(transaction=False)
        for conn, claimant, folded, record, registered in ours:
            if folded:
                pipe.set(self._nick_key(folded), claimant, nx=True)
            if registered:
                pipe.hset(self._users_key(self.world.node), world.uids.get(conn, ""), record)
        for folded_room, state in rooms.items():
            pipe.hsetnx(self.prefix + "rooms", folded_room, state)
        pipe.execute()
        again = [entry for _, entry in self._retained]
        if again:
            self._publish(again)  # (with their sequence numbers: no reader applies twice)
            self.republished += len(again)

    def _reap(self) -> None:
        """Publish the end of every node whose liveness key has lapsed (one node does);
        count those alive."""
        alive = 1
        for node in self.redis.smembers(self.prefix + "nodes"):
            if node == self.world.node:
                continue
            if self.redis.exists(self._node_key(node)):
                alive += 1
                continue
            if not self.redis.set(
                self.prefix + "reaping:" + node, self.world.node, nx=True, px=self._ttl_ms()
            ):
                continue
            log.warning("cluster node %s is gone; its users quit", node)
            users = self.redis.hgetall(self._users_key(node))
            # (Queued, not sent from here: one thread sends, so entries keep their order.)
            name = self.redis.hget(self.prefix + "names", node) or node
            self.queue([Op("down", {"node": node, "reason": f"{name} left the chat"})])
            pipe = self.redis.pipeline(transaction=False)
            for record in users.values():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    nick = json.loads(record)["nick"]
                    if nick:
                        key = self._nick_key(self.world.fold(nick))
                        self._release_node(keys=[key], args=[node], client=pipe)
            pipe.delete(self._users_key(node))
            pipe.srem(self.prefix + "nodes", node)
            pipe.hdel(self.prefix + "names", node)
            pipe.execute()
        self.world.servers = alive  # (an int: read by LUSERS and metrics at a glance)
