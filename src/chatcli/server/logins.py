"""What a password check may cost the server, and how guessing is slowed down.

Every operation that hashes a password (logging in by SASL, PASS or NickServ, registering,
changing or checking a password, OPER) goes through :func:`guarded`, on the connection's
own thread and never under the world lock. Before it hashes, it is counted against two
throttles, each keyed per address and per account (or operator name):

* **Failures.** After :data:`FREE_FAILURES` recent failures under any of its keys, an
  attempt first waits, twice as long with each further failure, up to
  ``ServerConfig.login_backoff_max`` seconds. A success forgets its keys' failures. On a
  cluster's node the failures are counted in Redis too, by every node
  (``World.shared_failures``): guessing a password over several nodes is slowed as on
  one.
* **Hashes.** Every key may spend ``ServerConfig.hash_burst`` hashes at once, then one
  each ``hash_interval`` seconds, successes included (a generic cell rate: each key keeps
  the time at which its budget is whole again). Past it, the attempt waits for its turn. This
  bounds the CPU and memory one address, or one account, can make the server spend on
  scrypt, whatever it sends. Loopback addresses are spared the per-address budget when
  ``exempt_loopback`` is on, as they are the other per-address limits.

Waiting is sleeping on the connection's own thread (it wakes if the connection ends and
then hashes nothing); :data:`chatcli.passwords.AT_ONCE` bounds the hashes in flight for the
whole server. A name that has no password (an unknown account or operator) is checked
against a dummy hash (:func:`chatcli.passwords.check_nothing`), so that unknown names and
wrong passwords look the same, in the reply and in the time it takes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatcli.server.connection import Connection
    from chatcli.server.state import World

#: Failed logins (per key) that cost nothing; later ones wait first.
FREE_FAILURES = 3
#: A count of failures is forgotten after this long without another.
FAILURE_MEMORY = 15 * 60.0
#: Keys kept at most by each throttle (about 170 bytes each); past it the oldest go first.
MAX_KEYS = 50_000


def login_delay(failures: int, base: float, limit: float) -> float:
    """How long an attempt waits after ``failures`` recent failures: nothing for the first
    :data:`FREE_FAILURES`, then ``base`` doubling with each, at most ``limit``."""
    if failures < FREE_FAILURES or base <= 0:
        return 0.0
    return float(min(limit, base * 2 ** (failures - FREE_FAILURES)))


def address_key(conn: Connection) -> str:
    return "ip " + conn.host


def account_key(folded: str) -> str:
    return "account " + folded


def operator_key(name: str) -> str:
    return "oper " + name


def guarded(
    conn: Connection, keys: tuple[str, ...], check: Callable[[], bool], *, hashes: int = 1
) -> bool:
    """Run ``check`` (work that hashes ``hashes`` passwords and says whether it succeeded)
    once the throttles under ``keys`` let it, and note its outcome. Returns False, hashing
    nothing, if the connection ends while it waits. Never hold the world lock."""
    world, config = conn.world, conn.config
    now = time.monotonic()
    budgeted = tuple(k for k in keys if not (conn.exempt and k == address_key(conn)))
    shared = world.shared_failures(keys)  # (a cluster's, counted by all its nodes)
    with world.lock:
        failures = max(shared, _failures(world.failed_logins, keys, now))
        turn = _spend(
            world.hash_budget, budgeted, now, hashes, config.hash_burst, config.hash_interval
        )
    wait = max(login_delay(failures, config.login_backoff, config.login_backoff_max), turn)
    if wait and not _pause(conn, wait):
        return False
    ok = check()
    note(world, keys, failed=not ok)
    return ok


def note(world: World, keys: tuple[str, ...], *, failed: bool, now: float | None = None) -> None:
    """Count a failure under each of ``keys`` (or forget them, after a success) at ``now``
    (monotonic seconds; default: now), without hashing anything: a name taken is slowed
    down as a wrong password is."""
    now = time.monotonic() if now is None else now
    world.note_shared_failures(keys, failed=failed)
    with world.lock:
        counts = world.failed_logins
        for key in keys:
            count, last = counts.pop(key, (0, now))
            if failed:  # to the end, as the newest
                counts[key] = (count + 1 if now - last < FAILURE_MEMORY else 1, now)
        while counts:  # oldest first: each one is dropped once, whatever the rate
            _, last = next(iter(counts.values()))
            if now - last < FAILURE_MEMORY and len(counts) <= MAX_KEYS:
                break
            counts.popitem(last=False)


def wait_after_failures(conn: Connection, keys: tuple[str, ...]) -> bool:
    """Wait as :func:`guarded` would after recent failures, for work that hashes nothing;
    False if the connection ended meanwhile."""
    config = conn.config
    shared = conn.world.shared_failures(keys)
    with conn.world.lock:
        failures = max(shared, _failures(conn.world.failed_logins, keys, time.monotonic()))
    wait = login_delay(failures, config.login_backoff, config.login_backoff_max)
    return _pause(conn, wait) if wait else True


def _failures(
    counts: OrderedDict[str, tuple[int, float]], keys: tuple[str, ...], now: float
) -> int:
    found = [counts.get(key) for key in keys]
    return max(
        (count for count, last in filter(None, found) if now - last < FAILURE_MEMORY),
        default=0,
    )


def _spend(
    budget: OrderedDict[str, float],
    keys: tuple[str, ...],
    now: float,
    cost: int,
    burst: int,
    interval: float,
) -> float:
    """Charge ``cost`` hashes to each of ``keys``; return how long to wait for the turn.
    Each key holds the time its budget is whole again, the latest charged last."""
    wait = 0.0
    for key in keys:
        whole = max(budget.pop(key, now), now) + cost * interval
        budget[key] = whole
        wait = max(wait, whole - now - burst * interval)
    while budget:  # whole budgets need no entry; at most MAX_KEYS, the oldest first
        oldest = next(iter(budget.values()))
        if oldest > now and len(budget) <= MAX_KEYS:
            break
        budget.popitem(last=False)
    return max(0.0, wait)


def _pause(conn: Connection, seconds: float) -> bool:
    """Sleep ``seconds`` on the connection's thread; False if it ended meanwhile."""
    deadline = time.monotonic() + seconds
    while conn.quit_reason is None and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))
    return conn.quit_reason is None
