"""The backbone: the one way every delivery and every change to shared state goes.

Handlers and the connection's thread never put a line on another client's send queue,
nor change who holds a nick, which rooms exist or who is in them, by themselves: they ask
the backbone. The in-process backbone, and the default, is the server's
:class:`~chatcli.server.state.World` (its shared state under its one lock, its send
queues and flusher); a backbone for several nodes as one chat implements the same
operations over a shared engine, each node keeping its own clients' connections.

What a backbone must do, under the world lock unless said otherwise:

* **nicks**: :meth:`claim_nick` (unique across the whole chat, or
  :class:`~chatcli.server.errors.NicknameInUse`), :meth:`release_nick`;
* **people**: :meth:`arrive` (a new connection), :meth:`forget` (it has left: out of every
  room and table, returning who shared a room with it);
* **rooms**: :meth:`add_room`, :meth:`add_member`, :meth:`remove_member`;
* **deliveries**: :meth:`broadcast` (to a room, in the order of the shared state),
  :meth:`relay_to` (a relayed message to people, the actor's own copy being part of its
  command's response), :meth:`deliver` (server lines to one person; from any thread).

A client's own command's output is not a delivery: it goes to the client's session
(:mod:`chatcli.server.session`), on its own thread.

``tests/server/test_backbone.py`` checks that the rest of the server goes through these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from chatcli.server.channel import Channel
    from chatcli.server.connection import Connection
    from chatcli.server.sendq import Batch
    from chatcli.server.store import Stored
    from chatcli.server.tags import Relay


@runtime_checkable
class Backbone(Protocol):
    """Every delivery and shared-state change of the server (see the module docstring)."""

    def claim_nick(self, conn: Connection, nick: str) -> None: ...

    def release_nick(self, conn: Connection) -> None: ...

    def reserve_nick(self, conn: Connection, nick: str) -> bool: ...

    def unreserve_nick(self, conn: Connection, nick: str) -> None: ...

    def arrive(self, conn: Connection) -> None: ...

    def register(self, conn: Connection) -> None: ...

    def person_changed(self, conn: Connection) -> None: ...

    def shared_failures(self, keys: tuple[str, ...]) -> int: ...

    def note_shared_failures(self, keys: tuple[str, ...], *, failed: bool) -> None: ...

    def room_changed(self, channel: Channel) -> None: ...

    def kept_in_room(self, channel: Channel, stored: Stored) -> None: ...

    def unkeep_in_room(self, channel: Channel, msgid: str) -> None: ...

    def invite(self, channel: Channel, conn: Connection) -> None: ...

    def forget(self, conn: Connection) -> set[Connection]: ...

    def add_room(self, channel: Channel) -> None: ...

    def add_member(self, channel: Channel, conn: Connection, prefixes: set[str]) -> None: ...

    def remove_member(self, channel: Channel, conn: Connection) -> None: ...

    def broadcast(self, channel: Channel, relay: Relay, skip: Connection | None = None) -> int: ...

    def relay_to(
        self,
        people: Iterable[Connection],
        relay: Relay,
        *,
        actor: Connection | None,
        batch: Batch | None = None,
    ) -> None: ...

    def deliver(self, person: Connection, data: bytes) -> None: ...
