"""One client's protocol state between its socket and the commands, without any I/O.

A :class:`Session` is what a connection knows of the protocol apart from the shared world:

* **framing**: bytes in, lines out (:class:`~chatcli.protocol.LineBuffer`);
* **flood control**: which line may run when (:class:`~chatcli.server.flood.Backlog`),
  charged as lines are read, so that a client that keeps flooding is seen;
* **labeled responses**: what one labeled command says to its client, wrapped as one
  IRCv3 labeled response when it ends;
* **confirmations**: what the client is told after sending a message is held back until
  the store has settled that message (kept in the history, or known not to be), so that
  nothing confirms a message a crash could still lose.

Bytes go in with :meth:`Session.receive`; lines to run come out of
:meth:`Session.next_line`; the command's output to its own client goes in with
:meth:`Session.write` and comes out, in order, of :meth:`Session.take` — the **outbox**.
The session never reads a clock, a socket, a thread or the database: the caller gives it
the time, and ``settled`` (a function of a store ticket) tells it what the store has
settled. So a test drives it with bytes in and bytes out, and the connection's thread
(:class:`~chatcli.server.connection.Connection`) is a thin driver around it: it reads,
runs each line's command, waits for the store when :meth:`Session.waiting_for` says so,
and queues :meth:`Session.take` for the socket.

The outbox holds only the output of the client's own commands. What anyone else sends it
(a room's messages, a direct message, a server PING) goes straight to its send queue
(:meth:`Connection.relay <chatcli.server.connection.Connection.relay>`,
:meth:`~chatcli.server.connection.Connection.deliver`), from any thread.
"""

from __future__ import annotations

from collections.abc import Callable

from chatcli.protocol import LineBuffer, ReadQExceeded, label_of
from chatcli.server import tags
from chatcli.server.flood import Backlog, FakeLag, verb

# Commands that flood control never holds: liveness answers, and leaving.
UNLAGGED = frozenset({b"PING", b"PONG", b"QUIT"})
# Commands whose output may wait, with the messages before them, for one commit of the
# history. Before any other runs, what is held must be settled (see Session.must_settle).
GROUPED = frozenset({b"PRIVMSG", b"NOTICE", b"TAGMSG", b"PING", b"PONG"})


class Session:
    """The sans-IO state of one client's side of the protocol (see the module docstring).

    Args:
        lag: the client's flood bucket (its ``burst`` and ``rate`` may change on a rehash).
        kill: seconds behind its flood allowance a client may be (0: no limit).
        max_recvq: bytes a client may have read and not yet run, and the longest line it
            may send (a longer one is dropped and answered; one past this ends it).
        settled: whether the store has settled a ticket (kept it, or told its sender it
            could not); tickets are increasing, so one settled means all before it are.
    """

    __slots__ = (
        "_backlog",
        "_buffer",
        "_label",
        "_labeled",
        "_out",
        "closing",
        "held",
        "lag",
        "settled",
        "unconfirmed",
    )

    def __init__(
        self, lag: FakeLag, *, kill: float, max_recvq: int, settled: Callable[[int], bool]
    ) -> None:
        self.lag = lag
        self.settled = settled
        self._buffer = LineBuffer(max_dropped=max_recvq)
        self._backlog = Backlog(lag, kill, max_recvq)
        #: Why the client is done (it closed its end, or sent a line past max_recvq): the
        #: lines held still run, then the connection ends. None while it goes on.
        self.closing: str | None = None
        # While a labeled command runs: its label, and what it says meanwhile.
        self._label: str | None = None
        self._labeled: list[bytes] | None = None
        #: The client's messages not yet settled by the store, as its latest ticket (0:
        #: none), and what it is told meanwhile, held back until they are.
        self.unconfirmed = 0
        self.held: list[bytes] = []
        self._out: list[bytes] = []  # what is ready for the socket, in order

    # -- input ------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> int:
        """Frame ``data``, read at ``now``, and hold its lines until flood control lets them
        run; returns how many lines it completed. A line past ``max_recvq`` without an end
        sets :attr:`closing` (the lines before it still run).

        Raises:
            ExcessFlood: the client is more than ``kill`` seconds or ``max_recvq`` bytes
                behind its allowance: disconnect it.
        """
        try:
            lines = self._buffer.feed(data)
        except ReadQExceeded as exc:
            lines, self.closing = exc.lines, "ReadQ exceeded"
        for raw in lines:
            self._backlog.add(raw, lagged=verb(raw) not in UNLAGGED, now=now)
        return len(lines)

    def end_of_input(self) -> None:
        """The client closed its end: what it sent still runs, then the connection ends."""
        if self.closing is None:
            self.closing = "Connection closed"

    def next_due(self) -> float | None:
        """When the next line held may run (None: none is held)."""
        return self._backlog.next_due()

    def next_line(self, now: float) -> bytes | None:
        """The next line to run at ``now``, if flood control lets one run."""
        return self._backlog.pop(now)

    def finished(self) -> bool:
        """Whether the connection should end now: the client is done and nothing is held."""
        return self.closing is not None and self._backlog.next_due() is None

    def must_settle(self, raw: bytes) -> bool:
        """Whether, before ``raw`` runs, the client's messages must be settled and what is
        held sent: a command that changes what the client is (JOIN, PART, NICK...) must not
        change it while the client has not heard of what came before it, or others' lines
        would reach it before it hears of the change (a room's messages before its JOIN)."""
        return bool(self.held or self.unconfirmed) and verb(raw) not in GROUPED

    # -- a command's output -----------------------------------------------------------------

    def begin(self, raw: bytes, *, labels: bool) -> None:
        """A command is about to run ``raw``; with ``labels`` (the client has
        labeled-response and batch) a ``label`` on it collects what the command says."""
        label = label_of(raw) if labels and raw[:1] == b"@" else None
        if label is not None:
            self._label, self._labeled = label, []

    def end(self, server: str) -> None:
        """The command has run: a labeled one's output becomes its labeled response."""
        if self._label is None:
            return
        label, sent = self._label, self._labeled or []
        self._label = self._labeled = None
        self._emit(tags.labeled_response(label, sent, tags.new_msgid(), server))

    def take_label(self) -> str | None:
        """The running command's label, which the command answers itself later (a
        multiline message's opening BATCH, answered with the message's echo once the batch
        is closed): no labeled response is made for it when it ends."""
        label, self._label, self._labeled = self._label, None, None
        return label

    def give_label(self, label: str | None) -> None:
        """Answer ``label`` (one :meth:`take_label` took) with what the running command
        says, as its labeled response: a multiline message that fails when a later line
        or its end runs. The command's own label, if it has one, comes first."""
        if label is not None and self._label is None:
            self._label, self._labeled = label, []

    def write(self, data: bytes) -> None:
        """What the running command says to its own client (whole lines)."""
        if self._labeled is not None:
            self._labeled.append(data)
        else:
            self._emit(data)

    def confirm_after(self, ticket: int) -> None:
        """Hold what the client is told until the store's write ``ticket`` is settled."""
        self.unconfirmed = max(self.unconfirmed, ticket)

    def waiting_for(self, *, always: bool = False) -> int:
        """The ticket to wait for before :meth:`release`: something is held (or, with
        ``always``, a message is unsettled) and its message may not be settled yet; 0 when
        there is nothing to wait for."""
        if self.held or (always and self.unconfirmed):
            return self.unconfirmed
        return 0

    def release(self, *, in_time: bool, warning: bytes = b"") -> None:
        """The store has answered for :meth:`waiting_for`'s ticket (``in_time``), or the
        wait for it ended first: what was held goes to the outbox, after ``warning`` if
        not in time (the client must not think its messages kept)."""
        self.unconfirmed = 0
        if not in_time and warning:
            self.held.insert(0, warning)
        self._out.extend(self.held)
        self.held.clear()

    def take(self) -> bytes:
        """Everything ready for the socket, in order (b"" if nothing), and forget it."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def _emit(self, data: bytes) -> None:
        if self.unconfirmed and not self.settled(self.unconfirmed):
            self.held.append(data)
            return
        if self.held:  # settled meanwhile: what was held goes first
            self._out.extend(self.held)
            self.held.clear()
        self.unconfirmed = 0
        self._out.append(data)
