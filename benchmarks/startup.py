"""``chat send``'s start-up: one scripted send, process start to exit, against the floor of
starting the same interpreter with ``python -c pass``.

The issue's target is ``chat send`` within 4x that floor. A send is mostly start-up (its
imports) plus one connection to a local server: connect, register, one message confirmed,
QUIT. Both commands run in turn (send, floor, send, floor, ...) after warm-up runs, and the
figures are medians.

Bytecode: an installed chatcli has its modules compiled (pip does it at install time), so
by default both commands run with a bytecode cache of their own (``PYTHONPYCACHEPREFIX``, a
temporary directory, filled by the warm-up runs), whatever the environment says. With
``--as-is`` they run in the environment as it is: under ``PYTHONDONTWRITEBYTECODE`` and
without ``__pycache__`` in the source tree, every ``chat send`` compiles chatcli's modules
again, which costs it about 20 ms more.

    .venv/bin/python benchmarks/startup.py                  # 21 runs of each, cached
    .venv/bin/python benchmarks/startup.py --as-is          # the environment as it is
    .venv/bin/python benchmarks/startup.py --chatcli-src DIR    # python -m chatcli from DIR

``bench.py --scenarios send`` runs the same measurement (:func:`time_send`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import HOST, RunningServer, chatcli_spec

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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=21, help="runs of each command (default 21)")
    p.add_argument(
        "--as-is", action="store_true", help="no bytecode cache of their own: the environment"
    )
    p.add_argument("--chatcli-src", help="time the chatcli package in this directory")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = p.parse_args()
    spec = chatcli_spec(args.chatcli_src)
    assert spec.executable is not None
    exe = spec.executable
    head = [exe, "-m", "chatcli"] if Path(exe).name.startswith("python") else [exe]
    env = {**os.environ, **spec.env}
    with (
        tempfile.TemporaryDirectory(prefix="chat-startup-srv-") as workdir,
        RunningServer(spec, Path(workdir)) as srv,
    ):
        result = time_send(head, srv.port, args.reps, env, cached=not args.as_is)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"chat send {result['send_median_ms']:.0f} ms (min {result['send_min_ms']:.0f}), "
            f"python -c pass {result['floor_median_ms']:.0f} ms: {result['ratio']:.2f}x; "
            f"medians of {result['reps']} runs, bytecode {result['bytecode']}, "
            f"{result['failures']} failed {result['error']}".rstrip()
        )
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
