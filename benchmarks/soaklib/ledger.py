"""The soak test's bookkeeping: what was sent, who was where, what arrived. Sans-IO.

Theory of operation. Every message a well-behaved client sends is numbered per sender and
target (a room, or ``@<agent>`` for direct messages to that agent), and its text carries
its identity: ``soak <sender>.<connection>.<seq>.<send time µs>.<target> <filler>``.

Whether a member *must* receive a message is decided from times the harness sees, with no
guesswork about the server's internal order:

* A member's *stint* in a room starts when it reads its own JOIN back: the server added it
  to the room before that, so a message *sent* after that moment reaches it.
* A message is *confirmed* when its sender reads it back (echo-message), or reads the PONG
  of a PING sent right after it (clients without echo-message): the server had relayed it
  to every member by then.
* A stint ends at a *cutoff*: when the member sent its PART or QUIT (it reads on until
  the PART comes back or the server closes), or, for a connection that vanishes without a
  word, when it sent the last PING that was answered (everything relayed to it before that
  PING arrived before the PONG).

So a message is expected by a member iff it was sent after the stint started and confirmed
before the stint's cutoff. Every delivery is checked against the sender's numbering:
a number seen twice is a duplicate, a number below the last one from the same sender's
connection is a reordering. Losses are settled as the cutoff advances: a member's last
answered PING is a cutoff for everything sent before it, so a long stint is checked as it
goes, not only at its end.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from dataclasses import dataclass, field

MARK = "soak"
MAX_EXAMPLES = 20


def now_us() -> int:
    return time.monotonic_ns() // 1000


@dataclass(slots=True)
class Sent:
    """One message a well-behaved client sent."""

    sender: int  #: the agent
    conn: int  #: which of its connections
    target: str  #: "#room" (lower case) or "@<agent>"
    seq: int
    t_us: int  #: when it was queued, monotonic µs (also in its text)
    sent_at: float  #: the same, monotonic seconds
    #: Direct messages: the recipient's connection number, or None if it was offline (the
    #: server keeps it for the recipient's account).
    to_conn: int | None = None
    confirmed_at: float | None = None
    failed: bool = False  #: the server refused it (no such nick)


@dataclass(frozen=True, slots=True)
class TextId:
    sender: int
    conn: int
    seq: int
    t_us: int
    target: str


def make_text(sent: Sent, filler: str) -> str:
    return f"{MARK} {sent.sender}.{sent.conn}.{sent.seq}.{sent.t_us}.{sent.target} {filler}"


def read_text(text: str) -> TextId | None:
    """The identity in a soak message's text; None for any other text."""
    if not text.startswith(MARK + " "):
        return None
    ident = text[len(MARK) + 1 :].split(" ", 1)[0]
    parts = ident.split(".", 4)
    if len(parts) != 5:
        return None
    try:
        return TextId(int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]), parts[4])
    except ValueError:
        return None


class Seqs:
    """A set of sequence numbers, kept as sorted inclusive ranges (deliveries are mostly in
    order, so a member's whole history from one sender is usually one range)."""

    __slots__ = ("highs", "lows")

    def __init__(self) -> None:
        self.lows: list[int] = []
        self.highs: list[int] = []

    def __contains__(self, seq: int) -> bool:
        i = bisect.bisect_right(self.lows, seq) - 1
        return i >= 0 and seq <= self.highs[i]

    def add(self, seq: int) -> bool:
        """Add ``seq``; False if it was there already."""
        lows, highs = self.lows, self.highs
        i = bisect.bisect_right(lows, seq) - 1
        if i >= 0 and seq <= highs[i]:
            return False
        left = i >= 0 and highs[i] == seq - 1
        right = i + 1 < len(lows) and lows[i + 1] == seq + 1
        if left and right:
            highs[i] = highs[i + 1]
            del lows[i + 1], highs[i + 1]
        elif left:
            highs[i] = seq
        elif right:
            lows[i + 1] = seq
        else:
            lows.insert(i + 1, seq)
            highs.insert(i + 1, seq)
        return True


@dataclass(slots=True)
class Stint:
    """A connection's time in a room (or, for direct messages, on the server)."""

    agent: int
    conn: int
    target: str
    joined_at: float
    checked: int  #: messages to the target (by index) settled so far
    cutoff: float | None = None
    counted: bool = True  #: False for a misbehaving client: nothing is expected of it


@dataclass
class Ledger:
    """Every message sent and every delivery, and the counts the report shows."""

    sent: dict[str, list[Sent]] = field(default_factory=dict)  #: by target, send order
    sent_times: dict[str, list[float]] = field(default_factory=dict)
    by_sender: dict[tuple[int, str], list[Sent]] = field(default_factory=dict)  #: [seq-1]
    got: dict[tuple[int, str, int], Seqs] = field(default_factory=dict)
    last: dict[tuple[int, str, int, int], int] = field(default_factory=dict)
    offline: dict[int, list[Sent]] = field(default_factory=dict)  #: kept for an account
    counts: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)  #: this interval's

    # -- sending ------------------------------------------------------------------------------

    def new_message(
        self, sender: int, conn: int, target: str, now: float, to_conn: int | None = None
    ) -> Sent:
        numbered = self.by_sender.setdefault((sender, target), [])
        sent = Sent(sender, conn, target, len(numbered) + 1, now_us(), now, to_conn)
        numbered.append(sent)
        self.sent.setdefault(target, []).append(sent)
        self.sent_times.setdefault(target, []).append(now)
        if target.startswith("@") and to_conn is None:
            self.offline.setdefault(int(target[1:]), []).append(sent)
        self.counts["sent"] += 1
        return sent

    def find(self, sender: int, target: str, seq: int) -> Sent | None:
        numbered = self.by_sender.get((sender, target))
        if numbered is None or not 0 < seq <= len(numbered):
            return None
        return numbered[seq - 1]

    def confirm(self, sent: Sent, now: float) -> None:
        if sent.confirmed_at is None and not sent.failed:
            sent.confirmed_at = now
            self.counts["confirmed"] += 1

    def confirm_echo(self, ident: TextId, now: float) -> None:
        sent = self.find(ident.sender, ident.target, ident.seq)
        if sent is not None:
            self.confirm(sent, now)

    # -- receiving ----------------------------------------------------------------------------

    def receive(
        self, receiver: int, target: str, text: str, now: float, *, live: bool = True
    ) -> None:
        """Count one delivery of ``text`` to ``receiver`` addressed to ``target``.
        ``live``: relayed as it was said (not from history), so its latency counts."""
        ident = read_text(text)
        if ident is None:
            self.counts["foreign"] += 1  # a misbehaving client's text
            return
        if ident.target != target:
            self.problem("misrouted", f"{text[:60]!r} arrived for {target} at agent {receiver}")
            return
        sent = self.find(ident.sender, ident.target, ident.seq)
        if sent is None or sent.t_us != ident.t_us:
            self.problem("corrupt", f"{text[:60]!r} at agent {receiver}: no such message")
            return
        if not self.got.setdefault((receiver, target, ident.sender), Seqs()).add(ident.seq):
            self.problem("duplicated", f"{text[:48]!r} twice at agent {receiver}")
            return
        last_key = (receiver, target, ident.sender, ident.conn)
        if ident.seq < self.last.get(last_key, 0):
            self.problem(
                "reordered", f"{text[:48]!r} after seq {self.last[last_key]} at {receiver}"
            )
        else:
            self.last[last_key] = ident.seq
        self.counts["delivered" if live else "delivered_kept"] += 1
        if live:
            self.latencies_ms.append((now_us() - ident.t_us) / 1000)

    def problem(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{kind}: {detail}")

    # -- expectations -------------------------------------------------------------------------

    def open_stint(
        self, agent: int, conn: int, target: str, now: float, *, counted: bool = True
    ) -> Stint:
        times = self.sent_times.get(target, [])
        return Stint(agent, conn, target, now, bisect.bisect_right(times, now), counted=counted)

    def settle(self, stint: Stint, bound: float) -> None:
        """Decide, for every message to the stint's target sent before ``bound``, whether
        the member had to receive it, and count those it did not. Call with a time by which
        everything confirmed has reached it: a cutoff, or the member's last answered PING."""
        if not stint.counted:
            return
        if stint.cutoff is not None:
            bound = min(bound, stint.cutoff)
        messages = self.sent.get(stint.target, [])
        i = stint.checked
        while i < len(messages) and messages[i].sent_at < bound:
            sent = messages[i]
            i += 1
            if not self._expected(stint, sent, bound):
                continue
            self.counts["expected"] += 1
            got = self.got.get((stint.agent, stint.target, sent.sender))
            if got is None or sent.seq not in got:
                self.problem(
                    "lost",
                    f"{sent.target} seq {sent.seq} from agent {sent.sender} never reached "
                    f"agent {stint.agent} (connection {stint.conn})",
                )
        stint.checked = i

    @staticmethod
    def _expected(stint: Stint, sent: Sent, bound: float) -> bool:
        if sent.sender == stint.agent or sent.failed or sent.sent_at <= stint.joined_at:
            return False
        if sent.confirmed_at is None or sent.confirmed_at >= bound:
            return False
        return not sent.target.startswith("@") or sent.to_conn == stint.conn

    def close_stint(self, stint: Stint, cutoff: float) -> None:
        stint.cutoff = max(cutoff, stint.joined_at)
        self.settle(stint, stint.cutoff)

    def settle_kept(self, agent: int, since: float) -> None:
        """``agent`` logged in on a connection opened at ``since``: every direct message
        kept for it and confirmed before then must have come with the login."""
        waiting = self.offline.get(agent, [])
        rest = [sent for sent in waiting if sent.sent_at >= since]
        for sent in waiting:
            if sent.sent_at >= since or sent.confirmed_at is None or sent.confirmed_at >= since:
                continue
            self.counts["expected_kept"] += 1
            got = self.got.get((agent, sent.target, sent.sender))
            if got is None or sent.seq not in got:
                self.problem(
                    "lost",
                    f"kept direct message {sent.seq} from agent {sent.sender} never reached "
                    f"agent {agent} at its next login",
                )
        self.offline[agent] = rest

    # -- history ------------------------------------------------------------------------------

    def check_history(self, target: str, texts: list[str], requested_at: float, limit: int) -> None:
        """Check a batch of a room's history (the latest ``limit`` messages, oldest first,
        asked for at ``requested_at``): no message twice, each sender's in order, and none
        missing between a sender's first confirmed message in it and the request. With
        fewer lines than the limit, the batch is the whole history: nothing may be missing."""
        self.counts["history_batches"] += 1
        seen: set[tuple[int, int]] = set()
        highest: dict[int, int] = {}
        first: dict[int, int] = {}  # sender -> lowest confirmed seq in the batch
        for text in texts:
            ident = read_text(text)
            if ident is None:
                continue
            self.counts["history_lines"] += 1
            sent = self.find(ident.sender, ident.target, ident.seq)
            if ident.target != target or sent is None or sent.t_us != ident.t_us:
                self.problem("history_corrupt", f"{text[:60]!r} in the history of {target}")
                continue
            if (ident.sender, ident.seq) in seen:
                self.problem("history_duplicated", f"{text[:48]!r} twice in one batch")
                continue
            seen.add((ident.sender, ident.seq))
            if ident.seq < highest.get(ident.sender, 0):
                self.problem("history_reordered", f"{text[:48]!r} out of order in a batch")
            highest[ident.sender] = max(highest.get(ident.sender, 0), ident.seq)
            if sent.confirmed_at is not None and sent.confirmed_at < requested_at:
                first[ident.sender] = min(first.get(ident.sender, ident.seq), ident.seq)
        if len(texts) < limit:
            candidates = [s for s in self.sent.get(target, []) if s.sent_at < requested_at]
        else:
            candidates = [
                sent
                for sender, low in first.items()
                for sent in self.by_sender.get((sender, target), [])[low:]
            ]
        for sent in candidates:
            if (
                sent.confirmed_at is not None
                and sent.confirmed_at < requested_at
                and (sent.sender, sent.seq) not in seen
            ):
                self.problem(
                    "history_missing",
                    f"{target} seq {sent.seq} from agent {sent.sender}, confirmed before the "
                    f"request, is not in a batch of {len(texts)}",
                )
