"""The machine the benchmarks run on: a description for the reports, and the open-file limit."""

from __future__ import annotations

import os
import platform
import resource


def raise_nofile(need: int) -> str:
    """Raise RLIMIT_NOFILE to the hard limit (servers started later inherit it); a note if
    that is still short of ``need`` sockets, else ''."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        new = hard if hard != resource.RLIM_INFINITY else max(soft, need + 1000)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft < need + 200:
        return (
            f"RLIMIT_NOFILE is {soft}: the scale test needs about {need + 200} open files "
            "in this process and as many in the server's"
        )
    return ""


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                "?",
            )
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )
