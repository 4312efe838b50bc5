"""Optional sampling profiles of the Python servers (chatcli, miniircd) with py-spy.

``bench.py --profile DIR`` records each measured scenario of a Python server with
``py-spy record --gil --nonblocking --format raw`` (only the thread holding the GIL is
sampled, so thousands of idle connection threads do not drown the picture) and writes,
next to each raw profile, a summary of the functions seen most often. Sampling costs the
server some CPU: figures from a profiled run are not for the results table.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

PYTHON_SERVERS = ("chatcli", "chatcli-history", "miniircd")


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """Record ``pid`` with py-spy while the block runs (nothing if ``out`` is None)."""
    exe = find_py_spy() if out is not None else None
    if exe is None or out is None:
        yield
        return
    cmd = [exe, "record", "--pid", str(pid), "--gil", "--nonblocking", "--rate", "200"]
    cmd += ["--format", "raw", "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if out.exists():
            out.with_suffix(".top.txt").write_text(summarise(out), encoding="utf-8")


def summarise(raw: Path, lines: int = 25) -> str:
    """The functions where samples were taken (self) and those on the stack (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    out = [f"{samples} samples (GIL holder only)", "", "self:"]
    out += [f"{n / samples:6.1%}  {f}" for f, n in own.most_common(lines)] if samples else []
    out += ["", "total (on the stack):"]
    out += [f"{n / samples:6.1%}  {f}" for f, n in total.most_common(lines)] if samples else []
    return "\n".join(out) + "\n"
