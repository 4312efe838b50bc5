"""The shared state of one server: who is connected, which nicks are taken, which rooms exist.

Concurrency design (every thread, lock and the lock order: docs/concurrency.md):

* Each connection's socket is read, and in the end closed, by its own thread only. It is
  written by whoever holds the flusher's ``_busy`` lock: the server's one flusher thread
  (:mod:`chatcli.server.sendq`), or a thread that queues a line while nothing else waits
  to be sent, outside the world lock (:meth:`~chatcli.server.sendq.Flusher.write_now`).
  Any thread may shut it down for reading (``disconnect``), and a newcomer's thread may
  peek at it (``Connection.end_if_closed``); its own thread closes it once the flusher is
  done with it. Over TLS every call on the one OpenSSL object takes that socket's own
  lock (:mod:`chatcli.server.tls_socket`): a leaf lock, never held while waiting.
* :attr:`World.lock` guards everything here: the nick table, the channel table, and every
  Channel's members, modes and topic, and every Connection's nick and channel set. Hold it
  briefly, and never across disk or network I/O or any wait: reading the database (a
  room's history on JOIN, say) happens before taking it or after releasing it. It is not
  re-entrant (:class:`WorldLock`: taking it twice on one thread is a bug, and raises);
  functions that need it say so and check with :meth:`World.assert_held`.
* Queueing a line under the world lock (``SendQueue.put``, :meth:`World.broadcast`) only
  appends to the flusher's log (and wakes it): no client socket is written there, so handlers
  queue room traffic while holding the world lock and every member of a room sees the room's
  messages in one and the same order, the order of the shared state. A direct message is
  queued after the lock is released, where its sender's thread may write it itself.
  (When the flusher, or the store's writer, is far behind, whoever queued waits, but only
  once it has released the world lock: backpressure on whoever floods, never on everyone.)
* The flusher never takes the world lock, so it can always make progress.
* A rehash (:meth:`Server.rehash`, on the accepting thread or an operator's) gives every
  connection its new ``config`` and flood rate under the world lock; attribute writes, read
  by the connection's thread without it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from threading import get_ident
from typing import TYPE_CHECKING

from chatcli.protocol import CaseMapping
from chatcli.server.backbone import Backbone
from chatcli.server.channel import Channel
from chatcli.server.errors import NicknameInUse
from chatcli.server.tags import PROFILES

if TYPE_CHECKING:
    from chatcli.protocol import Message
    from chatcli.server.connection import Connection
    from chatcli.server.sendq import Batch, Flusher, SendQueue
    from chatcli.server.store import Store, Stored
    from chatcli.server.tags import Relay


#: From how many people on, a relay to people is one broadcast (see World.relay_to).
MANY = 8
#: How many departed users WHOWAS remembers.
WHOWAS_SIZE = 200
#: The messages counted for metrics (World.messages): their kinds, and where they went
#: (to a room, to someone online, or kept for an account's owner who is not).
MESSAGE_KINDS = ("PRIVMSG", "NOTICE", "TAGMSG")
MESSAGE_TARGETS = ("room", "direct", "offline")


@dataclass(frozen=True)
class Departed:
    """What WHOWAS tells of someone who has left."""

    nick: str
    user: str
    host: str  #: as others saw it (a cloak)
    realname: str
    left_at: float
    ip: str  #: the real address, for server operators


class MessageCounts:
    """The messages the server took, and the copies of them it delivered, by kind and
    target (:data:`MESSAGE_KINDS`, :data:`MESSAGE_TARGETS`): counters for metrics.

    Written under the world lock; read without it: the keys are fixed, so copying either
    dict while a handler counts is a glance on the GIL, never a dict changing size."""

    __slots__ = ("delivered", "received")

    def __init__(self) -> None:
        keys = [(kind, target) for kind in MESSAGE_KINDS for target in MESSAGE_TARGETS]
        self.received = dict.fromkeys(keys, 0)
        self.delivered = dict.fromkeys(keys, 0)

    def note(self, kind: str, target: str, copies: int) -> None:
        """One message of ``kind`` (its command) to ``target``, delivered to ``copies``
        people. Caller holds the world lock."""
        key = (kind, target)
        self.received[key] += 1
        self.delivered[key] += copies


class WorldLock:
    """The world lock: a plain lock that knows its holder. Not re-entrant: taking it on
    the thread that holds it raises RuntimeError (a bug, which would otherwise deadlock).
    On release, a thread that queued lines while the flusher was far behind waits for it
    (:meth:`chatcli.server.sendq.Flusher.settle`), with the lock released, and so does one
    that queued writes while the store's writer was far behind (:meth:`Store.settle`)."""

    __slots__ = ("_flusher", "_lock", "_owner", "before_release", "store")

    def __init__(self, flusher: Flusher | None = None) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._flusher = flusher
        self.store: Store | None = None
        #: Called, still held, before each release: a cluster queues what the hold changed.
        self.before_release: Callable[[], None] | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = get_ident()
        if self._owner == me:
            raise RuntimeError("the world lock is not re-entrant: this thread holds it")
        if not self._lock.acquire(blocking, timeout):
            return False
        self._owner = me
        return True

    def release(self) -> None:
        if self._owner != get_ident():
            raise RuntimeError("the world lock is released by a thread that does not hold it")
        try:
            if self.before_release is not None:
                self.before_release()
        finally:  # (released whatever happens: a lock left held stops the whole server)
            self._owner = None
            self._lock.release()
        flusher = self._flusher
        if flusher is not None and (flusher.behind or flusher.wake_owed):
            flusher.settle()
        store = self.store
        if store is not None and store.behind:
            store.settle()

    __enter__ = acquire  # (one call less per hold)

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._owner == get_ident()

    def locked(self) -> bool:
        """Whether any thread holds the lock (a moment's view)."""
        return self._lock.locked()


class World(Backbone):
    """The in-process backbone (:mod:`chatcli.server.backbone`): the shared state of this
    server, under :attr:`lock`, and deliveries through its send queues and flusher."""

    def __init__(self, casemapping: CaseMapping, flusher: Flusher) -> None:
        self.lock = WorldLock(flusher)
        flusher.holding_lock = self.lock.held  # (no backpressure wait under the lock)
        self.flusher = flusher
        self._store: Store | None = None  # the server's database, if it keeps one
        self._cloak_key = secrets.token_bytes(32)  # see cloak_key
        self.casemapping = casemapping
        self.nicks: dict[str, Connection] = {}  # folded nick -> its connection
        self.channels: dict[str, Channel] = {}  # folded name -> channel
        self.connections: set[Connection] = set()  # every open connection
        self.whowas: deque[Departed] = deque(maxlen=WHOWAS_SIZE)  # newest last
        # MONITOR: folded nick -> who watches it; each watcher's own list is its
        # Connection.monitoring.
        self.watchers: dict[str, set[Connection]] = {}
        # Account id -> who is logged in to it (a cluster's people of other nodes too):
        # kept by log_in and forget, so that finding an account's connections (a read
        # marker moved, metadata set) is not a scan of everyone.
        self.by_account: dict[int, set[Connection]] = {}
        self.users = 0  # registered connections
        self.invisible = 0  # registered connections with user mode +i
        self.operators = 0  # registered connections with user mode +o
        self.max_users = 0  # the most registered users at once, for LUSERS
        self.messages = MessageCounts()  # what was said and delivered, for metrics
        # A cluster's other nodes (chatcli.server.cluster): their registered users, of them
        # the invisible ones and the operators, how many nodes are alive (this one too),
        # and the most users at once across them all, for LUSERS.
        self.others = self.others_invisible = self.others_operators = 0
        self.servers = 1
        self.max_global = 0
        # The password throttles (chatcli.server.logins), each keyed "ip <host>",
        # "account <folded>" or "oper <name>": recent failed logins -> (count, monotonic
        # time of the last), and hash budgets -> the monotonic time each is whole again.
        self.failed_logins: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.hash_budget: OrderedDict[str, float] = OrderedDict()
        # When accounts were registered lately, per address (for config.account_limit).
        self.registrations: dict[str, deque[float]] = {}

    @property
    def store(self) -> Store | None:
        """The server's database, if it keeps one."""
        return self._store

    @store.setter
    def store(self, store: Store | None) -> None:
        # Backpressure from its writer waits only once the world lock is released.
        self._store = self.lock.store = store
        if store is not None:
            store.holding_lock = self.lock.held

    @property
    def cloak_key(self) -> bytes:
        """The key of the hosts' cloaks (:mod:`chatcli.server.cloaks`): the database's, so
        that a cloak stays the same across restarts; without one, new each run."""
        return self.store.secret("cloak") if self.store is not None else self._cloak_key

    def fold(self, name: str) -> str:
        return self.casemapping.fold(name)

    def assert_held(self) -> None:
        """Check (in debug runs: an assert) that the calling thread holds the lock."""
        assert self.lock.held(), "the world lock must be held here"

    def assert_not_held(self) -> None:
        """Check (in debug runs: an assert) that the calling thread does not hold the lock:
        before disk or network I/O, or a wait."""
        assert not self.lock.held(), "the world lock must not be held here (I/O or a wait)"

    def claim_nick(self, conn: Connection, nick: str) -> None:
        """Give ``nick`` to ``conn``, releasing its old one. Caller holds the lock.

        Raises:
            NicknameInUse: another connection holds it.
        """
        self.assert_held()
        folded = self.fold(nick)
        holder = self.nicks.get(folded)
        if holder is not None and holder is not conn:
            raise NicknameInUse(nick)
        if conn.nick is not None:
            self.nicks.pop(conn.folded_nick, None)
        self.nicks[folded] = conn
        conn.nick = nick
        conn.folded_nick = folded

    def release_nick(self, conn: Connection) -> None:
        """Free ``conn``'s nick, which it no longer has. Caller holds the lock."""
        self.assert_held()
        if conn.nick is not None and self.nicks.get(conn.folded_nick) is conn:
            del self.nicks[conn.folded_nick]
        conn.nick, conn.folded_nick = None, ""

    def reserve_nick(self, conn: Connection, nick: str) -> bool:
        """Before the lock is taken to give ``conn`` the nick ``nick``: whether it was
        claimed for it elsewhere (a cluster's Redis), to be let go of with
        :meth:`unreserve_nick` if the change does not happen. A single server claims
        nothing elsewhere."""
        return False

    def unreserve_nick(self, conn: Connection, nick: str) -> None:
        """Let go of what :meth:`reserve_nick` claimed, unless ``conn`` has ``nick`` now."""

    def shared_failures(self, keys: tuple[str, ...]) -> int:
        """Failed logins under ``keys`` that other servers counted (a cluster's nodes):
        the most under any. Not under the lock (it may ask Redis). A single server: 0."""
        return 0

    def note_shared_failures(self, keys: tuple[str, ...], *, failed: bool) -> None:
        """Count a failed login under ``keys`` where other servers see it (or forget
        them, after a success). Not under the lock. A single server: nothing."""

    def person_changed(self, conn: Connection) -> None:
        """``conn``'s identity changed (away, modes, real name, account): a cluster tells
        its other nodes. Caller holds the lock."""

    def account_metadata_changed(self, account_id: int, key: str, value: str | None) -> None:
        """An account's metadata ``key`` changed to ``value`` (None: removed), and with it
        that of every connection logged in to it: a cluster tells its other nodes, which
        change theirs. Caller holds the lock."""

    def room_changed(self, channel: Channel) -> None:
        """``channel``'s topic or modes (its members' prefixes too) changed: a cluster
        tells its other nodes. Caller holds the lock."""

    def kept_in_room(self, channel: Channel, stored: Stored) -> None:
        """``stored`` is among ``channel``'s recent lines now (see history.record_room):
        a cluster's other nodes keep it among theirs. Caller holds the lock."""

    def unkeep_in_room(self, channel: Channel, msgid: str) -> None:
        """The message ``msgid`` is gone from ``channel``'s recent lines (redacted), and the
        reactions to it with it: a cluster's other nodes drop them from theirs too. Caller
        holds the lock."""
        self.assert_held()
        if channel.recent is not None and any(
            s.msgid == msgid or (s.command == "TAGMSG" and s.text == msgid) for s in channel.recent
        ):
            kept = [
                s
                for s in channel.recent
                if s.msgid != msgid and not (s.command == "TAGMSG" and s.text == msgid)
            ]
            channel.recent.clear()
            channel.recent.extend(kept)

    def rename_room(self, channel: Channel, name: str) -> None:
        """``channel`` is called ``name`` from now on (IRCv3 draft/channel-rename), its recent
        lines too. Caller holds the lock."""
        self.assert_held()
        if self.channels.get(self.fold(channel.name)) is channel:
            del self.channels[self.fold(channel.name)]
        channel.name = name
        self.channels[self.fold(name)] = channel
        if channel.recent is not None:
            key = self.fold(name)
            moved = [replace(s, target=key, recipient=name) for s in channel.recent]
            channel.recent.clear()
            channel.recent.extend(moved)

    def tell_renamed(
        self,
        channel: Channel,
        line: Message,
        account: str | None,
        skip: Connection | None = None,
        markers: dict[int, int | None] | None = None,
    ) -> None:
        """Tell ``channel``'s members (but ``skip``) of its rename, ``line``, or its fallback
        (:func:`chatcli.server.handlers.rename.tell`, with ``markers``). Caller holds the
        lock."""
        from chatcli.server.handlers import rename  # (the handlers sit above the world)

        members = [m for m in channel.members if m is not skip]
        rename.tell(self, channel, line, account, members, markers=markers)

    def arrive(self, conn: Connection) -> None:
        """A new connection, not yet registered. Caller holds the lock."""
        self.assert_held()
        self.connections.add(conn)

    def register(self, conn: Connection) -> None:
        """``conn`` has completed registration: others may see it now. Caller holds the
        lock."""
        self.assert_held()
        conn.registered = True
        self.users += 1
        self.max_users = max(self.max_users, self.users)
        self.max_global = max(self.max_global, self.users + self.others)

    def find_nick(self, nick: str) -> Connection | None:
        conn = self.nicks.get(self.fold(nick))
        return conn if conn is not None and conn.registered else None

    def find_channel(self, name: str) -> Channel | None:
        return self.channels.get(self.fold(name))

    def neighbours(self, conn: Connection) -> set[Connection]:
        """Everyone who shares a room with ``conn``, ``conn`` included."""
        seen = {conn}
        for channel in conn.channels:
            seen.update(channel.members)
        return seen

    def add_room(self, channel: Channel) -> None:
        """A room comes to be (its first JOIN, a registered room loaded, the default room).
        Caller holds the lock, or the server has not started."""
        self.channels[self.fold(channel.name)] = channel

    def add_member(self, channel: Channel, conn: Connection, prefixes: set[str]) -> None:
        """``conn`` joins ``channel`` with ``prefixes`` (``{"o"}``: an operator of it); its
        invitation, if any, is used up. Caller holds the lock."""
        self.assert_held()
        channel.add(conn, prefixes)
        self.uninvite(channel, conn)
        conn.channels = conn.channels | {channel}

    def broadcast(self, channel: Channel, relay: Relay, skip: Connection | None = None) -> int:
        """Queue ``relay`` for every member of ``channel`` (but ``skip``), each in its form;
        return to how many (a member whose form is nothing, a TAGMSG without
        message-tags, gets none). Caller holds the lock (the room's order is the order of
        the shared state)."""
        self.assert_held()
        audience = channel.audience
        forms = relay.forms(audience)
        self.flusher.broadcast(audience, forms, skip.sendq if skip else None)
        reached = sum(len(group) for group, form in zip(audience, forms, strict=True) if form)
        if skip is not None and forms[skip.profile] and skip in channel.members:
            reached -= 1
        return reached

    def relay_to(
        self,
        people: Iterable[Connection],
        relay: Relay,
        *,
        actor: Connection | None,
        batch: Batch | None = None,
    ) -> None:
        """Queue ``relay`` for each of ``people``, each in its form. ``actor``, the
        connection whose command caused it (None: a server thread), gets its copy as that
        command's output (so in its labeled response); everyone else's is delivered, into
        ``batch`` if given (see :class:`~chatcli.server.sendq.Batch`; not under the lock).

        To many people at once (a QUIT, a NICK change seen by a big room) it is one
        broadcast for the flusher, as to a room, not a queued event per person: when a
        thousand members leave at once, each of their QUITs to the others costs the
        flusher's log one entry, not a thousand."""
        others = []
        for person in people:
            if person is actor:
                actor.echo(relay)
            elif batch is not None:
                if data := relay.to(person.profile):
                    batch.add(person.sendq, data)
            else:
                others.append(person)
        if len(others) < MANY:
            for person in others:
                person.relay(relay)
            return
        groups: list[list[SendQueue]] = [[] for _ in range(PROFILES)]
        for person in others:
            groups[person.profile].append(person.sendq)
        audience = tuple(tuple(group) for group in groups)
        self.flusher.broadcast(audience, relay.forms(audience))

    def deliver(self, person: Connection, data: bytes) -> None:
        """Queue ``data`` (whole lines, made for ``person``) for ``person``, from any
        thread: a server's numeric or notice, not part of a command of its own."""
        person.deliver(data)

    def remove_member(self, channel: Channel, conn: Connection) -> None:
        """Take ``conn`` out of ``channel`` (gone when empty, unless permanent). Caller holds
        the lock."""
        self.assert_held()
        channel.remove(conn)
        self.uninvite(channel, conn)
        conn.channels = conn.channels - {channel}
        if not channel.members and not channel.permanent:
            self.channels.pop(self.fold(channel.name), None)
            for invitee in list(channel.invited):  # invitations to a room gone go too
                self.uninvite(channel, invitee)

    def invite(self, channel: Channel, conn: Connection) -> None:
        """Note that ``conn`` is invited into ``channel`` (until it joins, leaves the
        server, or the room is gone)."""
        channel.invited.add(conn)
        if conn.invited_to is None:
            conn.invited_to = set()
        conn.invited_to.add(channel)

    def uninvite(self, channel: Channel, conn: Connection) -> None:
        channel.invited.discard(conn)
        if conn.invited_to is not None:
            conn.invited_to.discard(channel)

    def log_in(self, person: Connection, account_id: int | None) -> None:
        """``person`` is logged in to the account ``account_id`` now (None: to none).
        Caller holds the lock."""
        self.assert_held()
        self._unindex(person)
        person.account_id = account_id
        if account_id is not None:
            self.by_account.setdefault(account_id, set()).add(person)

    def logged_in(self, account_id: int) -> list[Connection]:
        """Everyone registered and logged in to ``account_id`` (on a cluster: on every
        node). Caller holds the lock."""
        return [p for p in self.by_account.get(account_id, ()) if p.registered]

    def _unindex(self, person: Connection) -> None:
        if (old := person.account_id) is not None and (held := self.by_account.get(old)):
            held.discard(person)
            if not held:
                del self.by_account[old]

    def forget(self, conn: Connection) -> set[Connection]:
        """Remove ``conn`` from every room and table; return who shared a room with it.
        Caller holds the lock."""
        self.assert_held()
        self._unindex(conn)
        peers = self.neighbours(conn)
        peers.discard(conn)
        for channel in list(conn.channels):
            self.remove_member(channel, conn)
        for channel in list(conn.invited_to or ()):  # else the room would keep it alive
            self.uninvite(channel, conn)
        if conn.nick is not None and self.nicks.get(conn.folded_nick) is conn:
            del self.nicks[conn.folded_nick]
        if conn.registered and conn in self.connections:
            self.remember(conn)
            self.users -= 1
            self.invisible -= "i" in conn.modes
            self.operators -= "o" in conn.modes
        self.connections.discard(conn)
        for folded in list(conn.monitoring or ()):
            self.unwatch(conn, folded)
        return peers

    def watch(self, conn: Connection, folded: str) -> None:
        if conn.monitoring is None:
            conn.monitoring = set()
        conn.monitoring.add(folded)
        self.watchers.setdefault(folded, set()).add(conn)

    def unwatch(self, conn: Connection, folded: str) -> None:
        if conn.monitoring is not None:
            conn.monitoring.discard(folded)
        watching = self.watchers.get(folded)
        if watching is not None:
            watching.discard(conn)
            if not watching:
                del self.watchers[folded]

    def remember(self, conn: Connection, nick: str | None = None) -> None:
        """Note ``conn``'s identity for WHOWAS (on quit, and with its old nick on a change)."""
        self.whowas.append(
            Departed(
                nick or conn.name,
                conn.user or "~u",
                conn.display_host,
                conn.realname,
                time.time(),
                conn.host,
            )
        )

    def registered(self) -> Iterable[Connection]:
        return (c for c in self.connections if c.registered)
