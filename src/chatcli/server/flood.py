"""Flood control by fake lag: a burst, then a steady rate; excess is delayed, not dropped.

A token bucket per client, as a pure function of the time it is given: every command
takes a token; tokens come back at ``rate`` a second up to ``burst``. A command that
finds the bucket empty is held (its connection's thread sleeps) until a token is due.
Only the flooder waits; everyone else's commands run as before, and what it sends to
others arrives at a pace their send queues can take.
"""

from __future__ import annotations


class FakeLag:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self.burst = float(burst)
        self.rate = rate  #: tokens a second; 0 turns flood control off
        self.tokens = float(burst)
        self.stamp = now

    def delay(self, now: float) -> float:
        """Take a token at ``now``; return how long to wait before running the command."""
        if self.rate <= 0:
            return 0.0
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate
