"""A long soak of ``chat serve`` with a realistic, messy mix of clients: does anything leak,
and is anything lost?

    .venv/bin/python benchmarks/soak.py [--minutes M] [--clients N] [--tls] [--seed S]
                                        [--json FILE]

It starts ``chat serve`` itself (127.0.0.1, a free port, a database in a temporary
directory), runs N clients on one event loop for M minutes, samples the server process
every interval, and prints a row per interval and a summary. Exit status: 0 if nothing
was lost, duplicated, reordered or misrouted and no well-behaved client was dropped; 1
otherwise; 130 after Ctrl-C. See benchmarks/README.md, "Soak".

The parts, in ``soaklib/``: ``server.py`` (the server process and /proc), ``irc.py`` (one
connection), ``agents.py`` (the clients and the loop), ``actions.py`` (what they do),
``replies.py`` (what they make of what the server says) and ``ledger.py`` (what was sent,
what must arrive, what did). The server helpers they share with the benchmark are in
``harness/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.machine import raise_nofile
from harness.servers import HOST, REPO, extract_revision
from soaklib.actions import ACTIONS
from soaklib.agents import MISBEHAVIOURS, Harness, Settings
from soaklib.irc import tls_context
from soaklib.ledger import Ledger
from soaklib.replies import HANDLERS
from soaklib.server import ChatServer, Sample, probe, sample

#: Counts that must be zero (from the ledger, and from the harness).
FAILURES = (
    "lost",
    "duplicated",
    "reordered",
    "misrouted",
    "stray",
    "corrupt",
    "history_missing",
    "history_duplicated",
    "history_reordered",
    "history_corrupt",
    "invalid_utf8_delivered",
)
HARNESS_FAILURES = ("connect_failed", "fingerprint_mismatch", "stuck")
#: Growth below this (KiB of RSS per minute, after warm-up) is not called a leak; see
#: leak_verdict() and the README for why.
LEAK_KIB_PER_MIN = 100.0
#: Growth that caches still filling after warm-up may explain, in all (KiB); see there.
CACHE_ALLOWANCE_KIB = 4096.0
WIND_DOWN = 15.0  #: seconds for every client to quit and see the server close
SETTLE = 20.0  #: seconds for the server's threads and fds to go back to the baseline
Row = dict[str, Any]
#: Events counted per interval (shown after each row, by their first letter).
EVENTS = {
    "flood": ("misbehaviour_flood",),
    "stall": ("stalls",),
    "overlong": ("misbehaviour_overlong",),
    "garbage": ("misbehaviour_garbage", "misbehaviour_badutf8"),
    "password": ("sasl_logins", "sasl_failed", "accounts_registered"),
    "reconnect": ("reconnect_quit", "reconnect_ping-close", "reconnect_vanish"),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Soak chat serve: a long run with a messy mix of clients, checking that "
        "no message is lost, duplicated or reordered and that nothing leaks.",
    )
    p.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    p.add_argument(
        "--seconds", type=float, help="how long, in seconds (instead of --minutes; a smoke run)"
    )
    p.add_argument("--clients", type=int, default=200, help="agents (default 200)")
    p.add_argument("--tls", action="store_true", help="chat serve --tls; clients speak TLS")
    p.add_argument("--seed", type=int, help="RNG seed of the mix (default: random, printed)")
    p.add_argument("--json", type=Path, help="write one JSON object per interval + summary")
    p.add_argument("--interval", type=float, default=10.0, help="seconds per row (default 10)")
    p.add_argument(
        "--talk-every",
        type=float,
        default=7.0,
        help="mean seconds between one talker's messages (default 7)",
    )
    p.add_argument(
        "--flood-rate",
        type=float,
        default=0.0,
        help="chat serve --flood-rate (default 0: flood control off)",
    )
    p.add_argument(
        "--chat",
        help="the chat executable to run as the server (default: chat beside this Python)",
    )
    p.add_argument(
        "--rev",
        help="run chat serve as committed at this git revision (git archive into the "
        "temporary directory), not the working tree: for runs while src/ changes",
    )
    args = p.parse_args(argv)
    if args.seconds is not None:
        args.minutes = args.seconds / 60
    if args.minutes <= 0 or args.clients < 1 or args.interval < 1 or args.talk_every <= 0:
        p.error(
            "--minutes, --seconds, --talk-every must be positive, --clients and --interval >= 1"
        )
    return args


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Run:
    """What one soak saw as it went: its rows, and the counters at the last row."""

    args: argparse.Namespace
    server: ChatServer
    harness: Harness
    ledger: Ledger
    json_file: TextIO | None
    started: float
    baseline: Sample
    rows: list[Row]
    last: Sample
    last_counts: dict[str, int]
    last_cpu: float
    last_events: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    server_died: bool = False

    def interval_row(self, now: float) -> Row:
        """Sample the server, settle what can be settled, and make this interval's row."""
        h, ledger = self.harness, self.ledger
        h.settle_open()
        h.count_stuck(now)
        s = sample(self.server.pid)
        dt = max(1e-9, s.at - self.last.at)
        counts = ledger.counts
        lat = ledger.latencies_ms
        cpu = None
        if s.cpu_s is not None and self.last.cpu_s is not None:
            cpu = (s.cpu_s - self.last.cpu_s) / dt
        mine = own_cpu()
        row: Row = {
            "kind": "interval",
            "t_s": round(now - self.started, 1),
            "clients": sum(1 for x in h.live_sessions() if x.registered_at is not None),
            "msgs_per_s": (counts["sent"] - self.last_counts.get("sent", 0)) / dt,
            "deliveries_per_s": (counts["delivered"] - self.last_counts.get("delivered", 0)) / dt,
            "p50_ms": percentile(lat, 0.5),
            "p99_ms": percentile(lat, 0.99),
            "max_ms": max(lat) if lat else None,
            **s.as_dict(),
            "server_cpu": cpu,
            "soak_cpu": (mine - self.last_cpu) / dt,
            "db_kib": self.server.db_kib(),
            "bad": sum(counts[k] for k in FAILURES),
            "dropped_well_behaved": sum(h.drops.get("well-behaved", {}).values()),
            "events": self.events(),
        }
        lat.clear()
        self.last, self.last_counts, self.last_cpu = s, dict(counts), mine
        self.rows.append(row)
        self.emit(row)
        print(format_row(row), flush=True)
        return row

    def events(self) -> dict[str, int]:
        """What happened in this interval that may explain a latency or memory jump."""
        c = self.harness.counts
        now = {name: sum(c[key] for key in keys) for name, keys in EVENTS.items()}
        diff = {name: n - self.last_events.get(name, 0) for name, n in now.items()}
        self.last_events = now
        return {name: n for name, n in diff.items() if n}

    def emit(self, obj: Row) -> None:
        if self.json_file is not None:
            self.json_file.write(json.dumps(obj) + "\n")
            self.json_file.flush()


HEADER = (
    f"{'t s':>6} {'conns':>5} {'msg/s':>6} {'deliv/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
    f"{'RSS MiB':>7} {'thr':>4} {'fds':>4} {'srv CPU':>7} {'soak CPU':>8} {'DB MiB':>6} "
    f"{'bad':>4}  events"
)


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def format_row(r: Row) -> str:
    rss = None if r["rss_kib"] is None else r["rss_kib"] / 1024
    cpu = None if r["server_cpu"] is None else 100 * r["server_cpu"]
    return (
        f"{r['t_s']:>6.0f} {r['clients']:>5} {r['msgs_per_s']:>6.1f} "
        f"{r['deliveries_per_s']:>7.0f} {fmt(r['p50_ms'], '7.2f')} {fmt(r['p99_ms'], '7.2f')} "
        f"{fmt(rss, '7.1f')} {fmt(r['threads'], '4d')} {fmt(r['fds'], '4d')} "
        f"{fmt(cpu, '6.0f')}% {100 * r['soak_cpu']:>7.0f}% {r['db_kib'] / 1024:>6.1f} "
        f"{r['bad']:>4}  " + " ".join(f"{k[0]}{n}" for k, n in r["events"].items())
    )


# -- the run --------------------------------------------------------------------------------


def soak(args: argparse.Namespace, server: ChatServer, json_file: TextIO | None) -> Run:
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    args.seed = seed
    ledger = Ledger()
    settings = Settings(
        host=HOST,
        port=server.port,
        tls=tls_context() if args.tls else None,
        fingerprint=server.fingerprint,
        clients=args.clients,
        rooms=max(6, args.clients // 5),
        talk_every=args.talk_every,
        ramp=min(30.0, max(2.0, args.minutes * 6)),
    )
    harness = Harness(settings, random.Random(seed), ledger, ACTIONS, HANDLERS)
    if not probe(server.port, args.tls):
        log("the probe client did not get through; going on")
    time.sleep(1.0)  # let its connection thread end
    base = sample(server.pid)
    now = time.monotonic()
    run = Run(args, server, harness, ledger, json_file, now, base, [], base, {}, own_cpu())
    log(
        f"soak: {args.clients} clients, {settings.rooms} rooms, {args.minutes:g} min, "
        f"seed {seed}, {'TLS' if args.tls else 'plaintext'}, port {server.port}"
    )
    print(HEADER, flush=True)
    harness.start(now)
    try:
        loop(run, now + args.minutes * 60)
    except KeyboardInterrupt:
        run.interrupted = True
        log("interrupted: winding down")
    wind_down(run)
    return run


def loop(run: Run, end_at: float) -> None:
    h = run.harness
    next_row = run.started + run.args.interval
    while (now := time.monotonic()) < end_at:
        due = h.next_timer()
        timeout = min(0.05, max(0.0, (due if due is not None else now + 0.05) - now))
        h.poll(timeout)
        now = time.monotonic()
        h.run_timers(now)
        if now >= next_row:
            next_row += run.args.interval
            run.interval_row(now)
            if not run.server.alive():
                run.server_died = True
                log(f"chat serve died: {run.server.stderr_tail()}")
                return


def wind_down(run: Run) -> None:
    """Every client quits and reads to the end; then the server should let go of them."""
    h = run.harness
    try:
        now = time.monotonic()
        h.quit_all(now)
        deadline = now + (2.0 if run.interrupted else WIND_DOWN)
        while h.live_sessions() and time.monotonic() < deadline:
            h.poll(0.05)
        left = len(h.live_sessions())
        if left:
            h.note(f"{left} sessions had not seen the server close within {WIND_DOWN:.0f} s")
        h.close_all(time.monotonic())
    except KeyboardInterrupt:
        run.interrupted = True
        h.close_all(time.monotonic())


def settle_server(run: Run) -> Sample:
    """Wait (bounded) for the server's threads and fds to come back to the baseline."""
    base = run.baseline
    deadline = time.monotonic() + (2.0 if run.interrupted else SETTLE)
    s = sample(run.server.pid)
    while time.monotonic() < deadline and run.server.alive():
        s = sample(run.server.pid)
        if s.threads is None or (s.threads <= base.threads and s.fds <= base.fds):  # type: ignore[operator]
            break
        time.sleep(0.5)
    return s


# -- the verdicts ---------------------------------------------------------------------------


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares slope (per unit of x) and R² of ``points``."""
    n = len(points)
    if n < 3:
        return 0.0, 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    syy = sum((y - my) ** 2 for _, y in points)
    if sxx == 0:
        return 0.0, 0.0
    slope = sxy / sxx
    r2 = 0.0 if syy == 0 else sxy * sxy / (sxx * syy)
    return slope, r2


def leak_verdict(rows: list[Row], minutes: float) -> Row:
    """RSS growth after warm-up, and whether it looks like a leak.

    Warm-up is the first fifth of the run, at least 60 s (at most half). After it the
    samples are cut into thirds by time, and the median RSS of each is taken (a median:
    one burst does not move it). A leak grows all the time: it is suspected when RSS grows
    faster than the threshold from the first third to the second *and* from the second to
    the third, the second time at least half as fast as the first (linear, not levelling
    off). Growth that halves from one third to the next, or that comes in one step (a
    burst the allocator keeps, a cache filling once), is reported as such. The threshold
    is the larger of LEAK_KIB_PER_MIN (a leak smaller than that, 140 MiB a day, needs a
    longer run to be told from noise) and CACHE_ALLOWANCE_KIB spread over the time
    measured: SQLite's page caches (2,000 KiB per connection, the server has two) may
    still be filling after warm-up, and less growth than that in all is no sign of a leak.
    """
    warm = min(max(60.0, minutes * 60 * 0.2), minutes * 60 / 2)
    points = [(r["t_s"] / 60, r["rss_kib"]) for r in rows if r["rss_kib"] is not None]
    after = [(t, kib) for t, kib in points if t * 60 >= warm]
    out: Row = {"warmup_s": warm, "rss_samples_after_warmup": len(after)}
    if len(after) < 6:
        return {**out, "verdict": "too short to tell (fewer than 6 samples after warm-up)"}
    first, last = after[0], after[-1]
    span = last[0] - first[0]
    threshold = max(LEAK_KIB_PER_MIN, CACHE_ALLOWANCE_KIB / span)
    third = span / 3
    cuts = [first[0] + third, first[0] + 2 * third]
    parts = [
        [kib for t, kib in after if t < cuts[0]],
        [kib for t, kib in after if cuts[0] <= t < cuts[1]],
        [kib for t, kib in after if t >= cuts[1]],
    ]
    medians = [statistics.median(p) for p in parts]
    steps = [(medians[1] - medians[0]) / third, (medians[2] - medians[1]) / third]
    slope, r2 = fit(after)
    out.update(
        rss_first_kib=first[1],
        rss_last_kib=last[1],
        rss_growth_kib=last[1] - first[1],
        rss_growth_kib_per_min=(last[1] - first[1]) / span,
        rss_slope_kib_per_min=slope,
        rss_fit_r2=r2,
        rss_third_medians_kib=medians,
        rss_third_growth_kib_per_min=steps,
        leak_threshold_kib_per_min=threshold,
    )
    if min(steps) > threshold and steps[1] >= steps[0] / 2:
        verdict = "leak suspected: RSS kept growing at a steady rate"
    elif min(steps) > threshold:
        verdict = "still growing, but slowing down: no steady rate yet (run longer)"
    elif max(steps) > threshold:
        verdict = "grew in a step, then levelled off: no steady growth (run longer to be sure)"
    else:
        verdict = f"no leak seen (under {threshold:.0f} KiB/min after warm-up)"
    return {**out, "verdict": verdict}


def summary(run: Run, end: Sample, exit_status: int | None) -> Row:
    counts = run.ledger.counts
    h = run.harness
    base = run.baseline
    load = [r for r in run.rows if r["p99_ms"] is not None]
    drops = {kind: dict(c) for kind, c in sorted(h.drops.items())}
    misbehaved = {k: h.counts[f"misbehaviour_{k}"] for k in MISBEHAVIOURS}
    misbehaved["stall"] = h.counts["stalls"]
    server_errors = [line for line in run.server.stderr_lines() if line.strip()]
    out: Row = {
        "kind": "summary",
        "seed": run.args.seed,
        "clients": run.args.clients,
        "minutes": run.args.minutes,
        "tls": run.args.tls,
        "interrupted": run.interrupted,
        "server_died": run.server_died,
        "sent": counts["sent"],
        "confirmed": counts["confirmed"],
        "expected": counts["expected"] + counts["expected_kept"],
        "delivered": counts["delivered"],
        "delivered_kept": counts["delivered_kept"],
        **{k: counts[k] for k in FAILURES},
        "history_batches": counts["history_batches"],
        "history_lines": counts["history_lines"],
        **{k: h.counts[k] for k in HARNESS_FAILURES},
        "connections": h.counts["connections"],
        "tls_handshakes": h.counts["tls_handshakes"],
        "sasl_logins": h.counts["sasl_logins"],
        "sasl_failed": h.counts["sasl_failed"],
        "accounts_registered": h.counts["accounts_registered"],
        "dm_kept_sent": h.counts["dm_kept_sent"],
        "misbehaviours": misbehaved,
        "drops": drops,
        "p99_ms_worst_interval": max((r["p99_ms"] for r in load), default=None),
        "p50_ms_median_interval": percentile([r["p50_ms"] for r in load], 0.5),
        "threads_start": base.threads,
        "threads_end": end.threads,
        "fds_start": base.fds,
        "fds_end": end.fds,
        "rss_start_kib": base.rss_kib,
        "rss_end_kib": end.rss_kib,
        "server_cpu_s": None if end.cpu_s is None else end.cpu_s - (base.cpu_s or 0.0),
        "soak_cpu_s": own_cpu(),
        "server_stderr_lines": len(server_errors),
        "server_stderr_first": server_errors[:5],
        "server_exit_status": exit_status,
        **leak_verdict(run.rows, run.args.minutes),
        "examples": run.ledger.examples,
        "notes": h.notes,
        "counts": dict(sorted(h.counts.items())),
    }
    return out


def failed(s: Row) -> list[str]:
    """Why the soak failed (empty: it passed)."""
    why = [f"{k} {s[k]}" for k in (*FAILURES, *HARNESS_FAILURES) if s[k]]
    well = sum(s["drops"].get("well-behaved", {}).values())
    if well:
        why.append(f"{well} well-behaved clients dropped")
    if s["server_died"]:
        why.append("the server died")
    if s["threads_end"] is not None and not s["interrupted"]:
        extra_threads = s["threads_end"] - s["threads_start"]
        extra_fds = s["fds_end"] - s["fds_start"]
        if extra_threads > 0 or extra_fds > 0:
            why.append(
                f"{SETTLE:.0f} s after every client left the server still had {extra_threads} "
                f"threads and {extra_fds} fds more than before they came"
            )
    return why


def print_summary(s: Row, version: str) -> None:
    def line(label: str, value: object) -> None:
        print(f"  {label:<34} {value}")

    print(
        f"\nsoak summary ({version}, seed {s['seed']}, {s['clients']} clients, "
        f"{s['minutes']:g} min, {'TLS' if s['tls'] else 'plaintext'})"
    )
    line("messages sent / confirmed", f"{s['sent']} / {s['confirmed']}")
    line(
        "deliveries expected / delivered",
        f"{s['expected']} / {s['delivered']} live, {s['delivered_kept']} kept for offline accounts",
    )
    line("lost / duplicated / reordered", f"{s['lost']} / {s['duplicated']} / {s['reordered']}")
    line("misrouted / stray / corrupt", f"{s['misrouted']} / {s['stray']} / {s['corrupt']}")
    line("history batches (lines)", f"{s['history_batches']} ({s['history_lines']})")
    line(
        "history missing / dup / reordered",
        f"{s['history_missing']} / {s['history_duplicated']} / {s['history_reordered']}",
    )
    line("invalid UTF-8 delivered", s["invalid_utf8_delivered"])
    line("connections / TLS handshakes", f"{s['connections']} / {s['tls_handshakes']}")
    line(
        "accounts registered / SASL ok / failed",
        f"{s['accounts_registered']} / {s['sasl_logins']} / {s['sasl_failed']}",
    )
    line("misbehaviours", ", ".join(f"{k} {v}" for k, v in s["misbehaviours"].items()))
    for kind, reasons in s["drops"].items():
        total = sum(reasons.values())
        detail = ", ".join(f"{r} x{n}" for r, n in sorted(reasons.items(), key=lambda x: -x[1]))
        line(f"dropped: {kind}", f"{total} ({detail})")
    if not s["drops"].get("well-behaved"):
        line("dropped: well-behaved", 0)
    line("latency p50 (median interval)", fmt(s["p50_ms_median_interval"], ".2f") + " ms")
    line("latency p99 (worst interval)", fmt(s["p99_ms_worst_interval"], ".2f") + " ms")
    line("threads start / end", f"{s['threads_start']} / {s['threads_end']}")
    line("fds start / end", f"{s['fds_start']} / {s['fds_end']}")
    if s.get("rss_first_kib") is not None:
        line(
            "RSS after warm-up / last (MiB)",
            f"{s['rss_first_kib'] / 1024:.1f} / {s['rss_last_kib'] / 1024:.1f}",
        )
        line(
            "RSS growth KiB/min (ends; fit)",
            f"{s['rss_growth_kib_per_min']:.0f}; {s['rss_slope_kib_per_min']:.0f} "
            f"(R² {s['rss_fit_r2']:.2f})",
        )
        thirds = ", ".join(f"{x:.0f}" for x in s["rss_third_growth_kib_per_min"])
        limit = s["leak_threshold_kib_per_min"]
        line("RSS growth by thirds KiB/min", f"{thirds} (threshold {limit:.0f})")
    line("RSS verdict", s["verdict"])
    line("server CPU s / soak CPU s", f"{fmt(s['server_cpu_s'], '.1f')} / {s['soak_cpu_s']:.1f}")
    line("server stderr lines", s["server_stderr_lines"])
    for text in s["server_stderr_first"]:
        print(f"      {text[:150]}")
    for text in s["examples"][:10]:
        print(f"    example: {text}")
    for text in s["notes"][:15]:
        print(f"    note: {text}")


def git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def version(rev: str | None) -> str:
    """The commit under test; ``-dirty`` if it is the working tree and src/ has changes."""
    if rev is not None:
        return f"chatcli {git('rev-parse', '--short', rev) or rev} (git archive of {rev})"
    dirty = "-dirty" if git("status", "--porcelain", "--", "src") else ""
    return f"chatcli {git('rev-parse', '--short', 'HEAD') or '?'}{dirty}"


def make_server(args: argparse.Namespace, tmp: Path) -> ChatServer:
    """chat serve from the working tree's venv, from --chat, or as committed at --rev."""
    if args.rev is None:
        return ChatServer(tmp, tls=args.tls, flood_rate=args.flood_rate, chat=args.chat)
    src = extract_revision(args.rev, tmp / "rev")
    return ChatServer(
        tmp,
        tls=args.tls,
        flood_rate=args.flood_rate,
        chat=[sys.executable, "-m", "chatcli"],
        env={"PYTHONPATH": src},
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    note = raise_nofile(args.clients)  # a socket per client here, and one in the server
    if note:
        log(note.replace("the scale test needs", "the soak needs"))
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    ver = version(args.rev)
    log(
        f"{started}  {ver}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    json_file = open(args.json, "w", encoding="utf-8") if args.json else None  # noqa: SIM115
    try:
        with tempfile.TemporaryDirectory(prefix="chatsoak-") as tmp:
            with make_server(args, Path(tmp)) as server:
                server.start()
                run = soak(args, server, json_file)
                end = settle_server(run)
                status = server.stop()
            s = summary(run, end, status)
            s["started"] = started
            s["version"] = ver
            s["failed"] = failed(s)
            run.emit(s)
    finally:
        if json_file is not None:
            json_file.close()
    print_summary(s, ver)
    if run.interrupted:
        print("\nINTERRUPTED: the figures cover the run up to Ctrl-C")
    if s["failed"]:
        print(f"\nFAILED: {'; '.join(s['failed'])}")
    else:
        print("\nOK: nothing lost, duplicated or reordered; no well-behaved client dropped")
    if run.interrupted:
        return 130
    return 1 if s["failed"] else 0


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # wind down as for Ctrl-C, and stop the server


def _run() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    # Ctrl-C winds down even when started with SIGINT ignored (a background job of a shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before or after the run itself: the server is stopped
        sys.exit(130)


if __name__ == "__main__":
    _run()
