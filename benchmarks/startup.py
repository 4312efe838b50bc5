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
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.sendtime import time_send
from harness.servers import RunningServer, chatcli_spec


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
