"""Flood control by fake lag: a burst, then a steady rate; excess is delayed, not dropped.

A token bucket per client, as a pure function of the time it is given: every command
takes a token; tokens come back at ``rate`` a second up to ``burst``. A command that
finds the bucket empty is held until a token is due. Only the flooder waits; everyone
else's commands run as before, and what it sends to others arrives at a pace their send
queues can take.

Commands are charged when they are *read*, not when they run, so the bucket knows how far
behind a client is: the connection keeps reading while it holds commands (its
:class:`Backlog`), and a client whose commands are due more than ``kill`` seconds from now,
or whose held lines pass ``max_bytes``, keeps flooding past any paste: it is disconnected
(:class:`ExcessFlood`, "Excess Flood" as IRC servers say). Both bounds also bound the
memory a flooder costs.

A line of a multiline message (IRCv3 draft/multiline: one tagged ``batch``) takes
:data:`BATCHED_COST` of a token, not a whole one: a message of 100 lines, the most one may
have (:data:`chatcli.server.multiline.MAX_LINES`), then costs its two BATCH commands and
20 tokens, a short wait after a burst, not an "Excess Flood". It stays bounded: such a
line is delivered only within an open batch, whose lines and bytes are limited, and a
batch's text is at most 4096 bytes, what eight full lines carry.
"""

from __future__ import annotations

from collections import deque


class ExcessFlood(Exception):
    """A client is too far behind its flood allowance: disconnect it."""


#: The share of a token a line of a multiline message (a PRIVMSG or NOTICE tagged
#: ``batch``) takes.
BATCHED_COST = 0.2
_BATCHABLE = (b"PRIVMSG", b"NOTICE")


def verb(raw: bytes) -> bytes:
    """The command of a raw line, uppercased, without parsing it all (for flood control;
    a malformed line is charged or not, and answered when it runs)."""
    words = raw.split(None, 3)
    if words and words[0].startswith(b"@"):
        words = words[1:]
    if words and words[0].startswith(b":"):
        words = words[1:]
    return words[0].upper() if words else b""


def cost(line: bytes) -> float:
    """The tokens ``line`` takes: :data:`BATCHED_COST` for a PRIVMSG or NOTICE with a
    ``batch`` tag (any other command costs a whole token, tagged or not), else 1."""
    if line[:1] != b"@" or verb(line) not in _BATCHABLE:
        return 1.0
    tag_part = line[1 : line.find(b" ")]
    if tag_part.startswith(b"batch=") or b";batch=" in tag_part:
        return BATCHED_COST
    return 1.0


class FakeLag:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self.burst = float(burst)
        self.rate = rate  #: tokens a second; 0 turns flood control off
        self.tokens = float(burst)
        self.stamp = now

    def delay(self, now: float, tokens: float = 1.0) -> float:
        """Take ``tokens`` at ``now``; return how long to wait before running the command."""
        if self.rate <= 0:
            return 0.0
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= tokens
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class Backlog:
    """Lines read from one client and not yet run, in order, each with when it is due.

    Args:
        lag: the client's bucket; lagged lines take a token when added.
        kill: seconds behind (the wait of the last line added) allowed; 0: no limit.
        max_bytes: bytes of lines held at once allowed.
    """

    __slots__ = ("kill", "lag", "lines", "max_bytes", "size")

    def __init__(self, lag: FakeLag, kill: float, max_bytes: int) -> None:
        self.lag = lag
        self.kill = kill
        self.max_bytes = max_bytes
        # Made for the first line held and dropped once empty: an empty deque costs about
        # 700 bytes, and most of the time (every idle connection) nothing is held.
        self.lines: deque[tuple[float, bytes]] | None = None
        self.size = 0

    def __len__(self) -> int:
        return len(self.lines) if self.lines is not None else 0

    def add(self, line: bytes, *, lagged: bool, now: float) -> None:
        """Hold ``line``, read at ``now``; a ``lagged`` one takes its :func:`cost`.

        Raises:
            ExcessFlood: the client is more than ``kill`` seconds or ``max_bytes`` behind.
        """
        wait = self.lag.delay(now, cost(line)) if lagged else 0.0
        # In order: a line is never due before the one read ahead of it.
        lines = self.lines
        if lines is None:
            lines = self.lines = deque()
        due = max(now + wait, lines[-1][0]) if lines else now + wait
        lines.append((due, line))
        self.size += len(line)
        if (self.kill and wait > self.kill) or self.size > self.max_bytes:
            raise ExcessFlood

    def next_due(self) -> float | None:
        """When the first line held is due; None when none is."""
        return self.lines[0][0] if self.lines else None

    def pop(self, now: float) -> bytes | None:
        """The first line held, if it is due at ``now``; else None."""
        lines = self.lines
        if not lines or lines[0][0] > now:
            return None
        line = lines.popleft()[1]
        if not lines:
            self.lines = None
        self.size -= len(line)
        return line
