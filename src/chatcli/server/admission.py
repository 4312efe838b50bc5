"""Admission decisions as pure functions of the time they are asked at.

The server's throttles count recent events per key (an address) in a sliding window:
connections per address (``throttle_connects`` in ``throttle_window``) and account
registrations per address (``account_limit`` in ``account_window``). What they decide
depends only on the times given, never on a clock read here, so tests drive them with
any clock (:attr:`chatcli.server.listener.Server.clock`)."""

from __future__ import annotations

from collections import deque
from collections.abc import MutableMapping


def take_slot(
    windows: MutableMapping[str, deque[float]], key: str, now: float, limit: int, window: float
) -> bool:
    """Count one event for ``key`` at ``now`` if fewer than ``limit`` were counted in the
    ``window`` seconds before it; False, counting nothing, if not. Keys whose events all
    fell out of the window are forgotten, so the table is bounded by the keys active in
    one window."""
    since = now - window
    for quiet in [k for k, times in windows.items() if not times or times[-1] <= since]:
        del windows[quiet]
    recent = windows.setdefault(key, deque())
    while recent and recent[0] <= since:
        recent.popleft()
    if len(recent) >= limit:
        return False
    recent.append(now)
    return True


def give_back(windows: MutableMapping[str, deque[float]], key: str, slot: float) -> None:
    """Uncount the event counted at ``slot`` for ``key`` (what it was for did not happen)."""
    recent = windows.get(key)
    if recent is not None and slot in recent:
        recent.remove(slot)
