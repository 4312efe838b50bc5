"""The soak test's clients: who does what, when, driven by one seeded RNG and one loop.

An *agent* is a person at a client: it keeps its identity (number, nick, account, rooms it
likes, its message numbering) across *sessions*, its connections one after the other. The
:class:`Harness` runs every session on one ``selectors`` loop (no threads), with a heap of
timed actions, and feeds what it reads to the :class:`~soaklib.ledger.Ledger`. What the
agents do is in ``actions.py``; how they take what the server says, in ``replies.py``. The
harness gets both as tables (``ACTIONS``, ``HANDLERS``) when it is made, so that this module
imports neither and they can import it: no cycle.

Well-behaved agents talk in 3 to 10 rooms; some also send direct messages, move between
rooms, reconnect (with QUIT, or vanishing without a word), keep an account (REGISTER or
NickServ, then SASL PLAIN), or fetch history. Misbehaving agents (``MISBEHAVIOURS``) send
garbage, over-long lines, invalid UTF-8, floods, or stop reading; they are left out of
every loss count, and the server may drop them but nobody else.
"""

from __future__ import annotations

import heapq
import itertools
import random
import selectors
import ssl
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .irc import Closed, Line, Wire, parse
from .ledger import Ledger, Sent, Stint

STUCK_AFTER = 30.0  #: a PING unanswered this long: the server is stuck for this client
MISBEHAVIOURS = ("garbage", "overlong", "badutf8", "flood", "stall")
MODERN_CAPS = ("echo-message", "batch", "server-time", "message-tags")


@dataclass
class Traits:
    """What an agent does, drawn once from the RNG."""

    caps: str  #: "plain" (no CAP), "echo" (echo-message only) or "modern"
    talker: bool = True
    dm: bool = False
    churn: bool = False
    reconnect: bool = False
    account: bool = False
    history: bool = False
    misbehave: str | None = None

    def describe(self) -> str:
        flags = ("talker", "dm", "churn", "reconnect", "account", "history")
        on = [name for name in flags if getattr(self, name)]
        return f"{self.misbehave or self.caps}: {','.join(on)}"


@dataclass
class Settings:
    host: str
    port: int
    tls: ssl.SSLContext | None
    fingerprint: str  #: expected server certificate fingerprint (TLS)
    clients: int
    rooms: int
    talk_every: float  #: mean seconds between a talker's messages
    ramp: float  #: seconds over which the agents first connect


@dataclass(eq=False)
class Session:
    """One connection of an agent."""

    agent: Agent
    wire: Wire
    conn: int
    started_at: float
    nick: str
    caps: tuple[str, ...]
    registered_at: float | None = None
    logged_in: bool = False
    rooms: dict[str, Stint] = field(default_factory=dict)  #: joined (own JOIN seen)
    joining: dict[str, float] = field(default_factory=dict)  #: JOIN sent at
    join_sent: dict[str, float] = field(default_factory=dict)  #: of the rooms joined
    parting: dict[str, float] = field(default_factory=dict)  #: PART sent at
    dm_stint: Stint | None = None
    pings: dict[str, float] = field(default_factory=dict)  #: token -> sent at
    certain: float = 0.0  #: when the last answered PING was sent
    unacked: deque[tuple[int, Sent]] = field(default_factory=deque)  #: plain clients
    quit_at: float | None = None
    close_after_pong: bool = False
    history_wait: dict[str, deque[float]] = field(default_factory=dict)
    batches: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)
    stalled: bool = False
    error: str = ""  #: the server's ERROR line, if any
    ended: bool = False
    tokens: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def talkable(self) -> list[str]:
        return [room for room in self.rooms if room not in self.parting]


@dataclass(eq=False)
class Agent:
    id: int
    traits: Traits
    nick: str
    likes: list[str]  #: rooms it joins on connecting
    password: str
    registered: bool = False  #: it has an account (REGISTER confirmed)
    session: Session | None = None
    sessions: int = 0
    offline_cleanly: bool = False  #: its last session ended with QUIT, seen through

    @property
    def well_behaved(self) -> bool:
        return self.traits.misbehave is None

    @property
    def online(self) -> Session | None:
        s = self.session
        if s is None or s.ended or s.registered_at is None or s.quit_at is not None:
            return None
        return s


#: What an agent does on a timer (``actions.ACTIONS``), and how a session takes a line
#: from the server (``replies.HANDLERS``).
Action = Callable[["Harness", Session, float], None]
Handler = Callable[["Harness", Session, Line, float], None]


class Harness:
    """Every agent and session, the selector loop, the timer heap, and the counts."""

    def __init__(
        self,
        settings: Settings,
        rng: random.Random,
        ledger: Ledger,
        actions: Mapping[str, Action],
        handlers: Mapping[str, Handler],
    ) -> None:
        self.st = settings
        self.actions = actions
        self.handlers = handlers
        self.rng = rng
        self.ledger = ledger
        self.sel = selectors.DefaultSelector()
        self.timers: list[tuple[float, int, Agent, int, str]] = []
        self._order = itertools.count()
        self.room_names = [f"#soak-{i:02d}" for i in range(settings.rooms)]
        self.room_weights = [1 / (i + 1) ** 0.8 for i in range(settings.rooms)]
        self.agents = [self._make_agent(i) for i in range(settings.clients)]
        self.drops: dict[str, Counter[str]] = {}
        self.counts: Counter[str] = Counter()
        self.notes: list[str] = []
        self.winding_down = False
        self.retry_reads: set[Session] = set()

    # -- agents -------------------------------------------------------------------------------

    def _make_agent(self, i: int) -> Agent:
        rng = self.rng
        # A few misbehave: one of each kind per 100 agents (at least one each from N = 20).
        bad = max(1, self.st.clients // 100) * len(MISBEHAVIOURS) if self.st.clients >= 20 else 0
        misbehave = MISBEHAVIOURS[i % len(MISBEHAVIOURS)] if i < bad else None
        caps = rng.choices(("plain", "echo", "modern"), (20, 15, 65))[0]
        traits = Traits(
            caps=caps,
            talker=rng.random() < 0.85,
            dm=rng.random() < 0.15,
            churn=rng.random() < 0.15,
            reconnect=rng.random() < 0.2,
            account=rng.random() < 0.12,
            history=rng.random() < 0.15,
            misbehave=misbehave,
        )
        if traits.account or traits.history:
            traits.caps = "modern"
        if misbehave is not None:
            traits = Traits(caps="modern" if misbehave == "stall" else "plain", misbehave=misbehave)
        count = rng.randint(1, 3) if misbehave else rng.randint(3, min(10, self.st.rooms))
        likes = self.pick_rooms(count, [])
        return Agent(i, traits, f"s{i:04d}", likes, f"pw-{rng.getrandbits(48):012x}")

    def pick_rooms(self, count: int, have: list[str]) -> list[str]:
        """``count`` rooms not in ``have``, favouring the popular ones (a few big rooms,
        many small ones)."""
        picked: list[str] = []
        for _ in range(count * 20):  # bounded: duplicates are drawn again
            if len(picked) >= count:
                break
            room = self.rng.choices(self.room_names, self.room_weights)[0]
            if room not in picked and room not in have:
                picked.append(room)
        return picked

    # -- timers -------------------------------------------------------------------------------

    def at(self, when: float, agent: Agent, action: str) -> None:
        """Run ``action`` for ``agent``'s current session at ``when`` (not if it has
        another session by then)."""
        conn = agent.sessions
        heapq.heappush(self.timers, (when, next(self._order), agent, conn, action))

    def every(self, now: float, agent: Agent, action: str, low: float, high: float) -> None:
        self.at(now + self.rng.uniform(low, high), agent, action)

    def next_timer(self) -> float | None:
        return self.timers[0][0] if self.timers else None

    def run_timers(self, now: float, limit: int = 2000) -> None:
        for _ in range(limit):
            if not self.timers or self.timers[0][0] > now:
                return
            _, _, agent, conn, action = heapq.heappop(self.timers)
            if self.winding_down:
                continue
            if action == "connect":
                self.connect(agent, now)
                continue
            session = agent.session
            if session is None or session.conn != conn or session.ended:
                continue
            self.actions[action](self, session, now)

    def start(self, now: float) -> None:
        """Schedule every agent's first connection, spread over the ramp."""
        for agent in self.agents:
            self.at(now + self.rng.uniform(0, self.st.ramp), agent, "connect")

    # -- sessions -----------------------------------------------------------------------------

    def connect(self, agent: Agent, now: float) -> None:
        if agent.session is not None and not agent.session.ended:
            return
        traits = agent.traits
        rcvbuf = 4096 if traits.misbehave == "stall" else None
        try:
            wire = Wire(self.st.host, self.st.port, self.st.tls, rcvbuf)
        except OSError as exc:
            self.counts["connect_failed" if agent.well_behaved else "bad_connect_failed"] += 1
            self.note(f"agent {agent.id} could not connect: {exc}")
            self.at(now + 5.0, agent, "connect")
            return
        agent.sessions += 1
        caps = self._caps_for(agent)
        session = Session(agent, wire, agent.sessions, now, agent.nick, caps)
        agent.session = session
        agent.offline_cleanly = False
        self.sel.register(wire, selectors.EVENT_READ | selectors.EVENT_WRITE, session)
        self.counts["connections"] += 1
        if caps:
            self.send(session, f"CAP REQ :{' '.join(caps)}")
        if "sasl" in caps:
            self.send(session, "AUTHENTICATE PLAIN")
        else:
            self.introduce(session, now)

    def _caps_for(self, agent: Agent) -> tuple[str, ...]:
        t = agent.traits
        if t.caps == "plain":
            return ()
        if t.caps == "echo":
            return ("echo-message",)
        extra: list[str] = []
        if t.account:
            extra.append("sasl" if agent.registered else "draft/account-registration")
        if t.history or t.misbehave == "stall":
            extra.append("draft/chathistory")
        return (*MODERN_CAPS, *extra)

    def introduce(self, session: Session, now: float) -> None:
        """NICK, USER, CAP END and a PING that comes back once registration is done."""
        self.send(session, f"NICK {session.nick}")
        self.send(session, f"USER {session.agent.nick} 0 * :soak agent {session.agent.id}")
        if session.caps:
            self.send(session, "CAP END")
        self.ping(session, now, "reg")

    def send(self, session: Session, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode()
        session.wire.queue(data + b"\r\n")
        self._want_write(session)

    def _want_write(self, session: Session) -> None:
        if session.stalled or session.ended:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if session.wire.wants_write else 0)
        self.sel.modify(session.wire, events, session)

    def ping(self, session: Session, now: float, kind: str = "k") -> str:
        token = f"{kind}{next(session.tokens)}"
        session.pings[token] = now
        self.send(session, f"PING :{token}")
        return token

    def end(self, session: Session, now: float, how: str) -> None:
        """The session is over: ``how`` is "quit" (we quit and the server closed), "vanish"
        (we closed without a word) or the reason the server ended it."""
        if session.ended:
            return
        session.ended = True
        agent = session.agent
        cutoff = session.quit_at if how == "quit" and session.quit_at else session.certain
        for room, stint in session.rooms.items():
            self.ledger.close_stint(stint, session.parting.get(room, cutoff))
        if session.dm_stint is not None:
            self.ledger.close_stint(session.dm_stint, cutoff)
        if not session.stalled:
            self.sel.unregister(session.wire)
        self.retry_reads.discard(session)
        session.wire.close()
        agent.offline_cleanly = how == "quit"
        if how not in ("quit", "vanish"):
            self._dropped(session, how)
        if not self.winding_down:
            delay = self.rng.uniform(1.0, 8.0) if agent.well_behaved else self.rng.uniform(5, 15)
            self.at(now + delay, agent, "connect")

    def _dropped(self, session: Session, how: str) -> None:
        agent = session.agent
        kind = agent.traits.misbehave or "well-behaved"
        reason = session.error or how
        if ":" in reason and reason.startswith("Closing link"):
            reason = reason.rsplit("(", 1)[-1].rstrip(")")
        self.drops.setdefault(kind, Counter())[reason[:60]] += 1
        if agent.well_behaved:
            self.note(
                f"well-behaved agent {agent.id} ({agent.traits.describe()}) dropped: {reason}"
            )

    def note(self, text: str) -> None:
        self.counts["notes"] += 1
        if len(self.notes) < 40:
            self.notes.append(f"{time.strftime('%H:%M:%S')} {text}")

    # -- I/O ----------------------------------------------------------------------------------

    def poll(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            session: Session = key.data
            self._io(session, mask, time.monotonic())
        for session in list(self.retry_reads):
            self.retry_reads.discard(session)
            self._io(session, selectors.EVENT_READ, time.monotonic())

    def _io(self, session: Session, mask: int, now: float) -> None:
        if session.ended or session.stalled:
            return
        wire = session.wire
        try:
            if wire.handshaking:
                if not wire.handshake():
                    return
                self._check_certificate(session)
            if mask & selectors.EVENT_WRITE or wire.out:
                wire.flush()
            lines, end = wire.read()
        except Closed as exc:
            self.end(session, now, str(exc))
            return
        for raw in lines:
            self._line(session, raw, now)
            if session.ended:
                return
        if end is not None:
            self.end(session, now, "quit" if session.quit_at is not None else end)
            return
        if wire.more:
            self.retry_reads.add(session)
        self._want_write(session)

    def _check_certificate(self, session: Session) -> None:
        got = session.wire.fingerprint
        if self.st.fingerprint and got != self.st.fingerprint:
            self.counts["fingerprint_mismatch"] += 1
            self.note(f"TLS fingerprint {got} is not the one chat serve printed")
        else:
            self.counts["tls_handshakes"] += 1

    def _line(self, session: Session, raw: bytes, now: float) -> None:
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            if session.agent.well_behaved:
                self.ledger.problem("invalid_utf8_delivered", f"{raw[:60]!r}")
            text = raw.decode(errors="replace")
        line = parse(text)
        handler = self.handlers.get(line.command)
        if handler is not None:
            handler(self, session, line, now)

    # -- ending -------------------------------------------------------------------------------

    def quit_all(self, now: float) -> None:
        """Wind down: every session quits (a stalled one reads again first)."""
        self.winding_down = True
        for agent in self.agents:
            session = agent.session
            if session is None or session.ended:
                continue
            if session.stalled:
                self.actions["resume"](self, session, now)
            if session.registered_at is None:
                self.end(session, now, "vanish")
                continue
            if session.quit_at is None:
                session.quit_at = now
                self.send(session, "QUIT :soak over")

    def live_sessions(self) -> list[Session]:
        return [a.session for a in self.agents if a.session is not None and not a.session.ended]

    def close_all(self, now: float) -> None:
        for session in self.live_sessions():
            self.end(session, now, "vanish")
        self.sel.close()

    def settle_open(self) -> None:
        """Settle every open stint up to its session's last answered PING."""
        for session in self.live_sessions():
            for stint in session.rooms.values():
                self.ledger.settle(stint, session.certain)
            if session.dm_stint is not None:
                self.ledger.settle(session.dm_stint, session.certain)

    def count_stuck(self, now: float) -> None:
        """Count (and note) the sessions the server has not answered for a while."""
        for session in self.stuck(now):
            self.counts["stuck"] += 1
            self.note(f"agent {session.agent.id}: a PING unanswered for over {STUCK_AFTER:.0f} s")
            session.pings.clear()

    def stuck(self, now: float) -> list[Session]:
        """Sessions whose PING has been unanswered for STUCK_AFTER seconds (not stalled)."""
        return [
            s
            for s in self.live_sessions()
            if s.agent.well_behaved
            and not s.stalled
            and any(now - at > STUCK_AFTER for at in s.pings.values())
        ]
