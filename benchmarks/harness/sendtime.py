"""Timing ``chat send``: process start to exit, one message accepted, next to the floor of
starting the same interpreter with ``-c pass``. ``startup.py`` runs it on its own and
``bench.py --scenarios send`` as a scenario; benchmarks/README.md, "chat send's start-up",
says what the figure includes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from .servers import HOST

#: What ``chat send`` sends (to the server's default room, which always exists).
SEND_ARGS = ("benchmark message",)


def cached_env(env: dict[str, str], cache_dir: str) -> dict[str, str]:
    """``env`` with Python's bytecode cache in ``cache_dir`` and writable there."""
    out = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out["PYTHONPYCACHEPREFIX"] = cache_dir
    return out


def time_send(
    send_head: list[str], port: int, reps: int, env: dict[str, str], *, cached: bool = True
) -> dict[str, Any]:
    """Wall times of ``send_head send --host 127.0.0.1 --port PORT ...`` and of
    ``python -c pass`` (this interpreter), ``reps`` runs of each in turn after 2 warm-up
    runs of each; medians in ms, and their ratio. ``cached``: with a bytecode cache of their
    own (see the module's docstring)."""
    send_cmd = [*send_head, "send", "--host", HOST, "--port", str(port), *SEND_ARGS]
    floor_cmd = [sys.executable, "-c", "pass"]
    sends: list[float] = []
    floors: list[float] = []
    failures = 0
    error = ""
    with tempfile.TemporaryDirectory(prefix="chat-startup-") as cache_dir:
        run_env = cached_env(env, cache_dir) if cached else env
        for i in range(2 + reps):
            for cmd, into in ((send_cmd, sends), (floor_cmd, floors)):
                t = time.perf_counter()
                proc = subprocess.run(
                    cmd, capture_output=True, timeout=30, check=False, env=run_env
                )
                elapsed = time.perf_counter() - t
                if i < 2:
                    continue  # warm-up (and, cached, the compiling)
                into.append(elapsed)
                if proc.returncode != 0 and cmd is send_cmd:
                    failures += 1
                    error = error or proc.stderr.decode(errors="replace").strip()[:120]
    send_ms = statistics.median(sends) * 1000
    floor_ms = statistics.median(floors) * 1000
    return {
        "reps": reps,
        "bytecode": "cached" if cached else "as-is",
        "send_median_ms": send_ms,
        "send_min_ms": min(sends) * 1000,
        "floor_median_ms": floor_ms,
        "ratio": send_ms / floor_ms if floor_ms else float("nan"),
        "failures": failures,
        "error": error,
    }
