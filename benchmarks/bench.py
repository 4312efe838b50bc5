"""Run chatcli's server and the established IRC servers side by side under the same load.

    .venv/bin/python benchmarks/bench.py [--servers chatcli,ngircd,inspircd,miniircd] [--quick]

See benchmarks/README.md for what each scenario measures. Every server runs alone, one after
the other, on 127.0.0.1 and a free port; each group of scenarios gets a fresh server process.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.cluster import (
    Nodes,
    RedisServer,
    cluster_direct,
    cluster_fanout,
    cluster_room,
    find_redis,
    node_spec,
)
from harness.loadgen import Generator
from harness.machine import machine, raise_nofile
from harness.profiling import PYTHON_SERVERS, find_py_spy, profiled
from harness.report import KINDS, behind, markdown, table
from harness.scenarios import (
    QUIET_WAIT,
    Result,
    Room,
    SenderPool,
    Settings,
    chat_send,
    connect_members,
    direct,
    fanout,
    scale,
    scale_max_clients,
    setup_senders,
    stalled_member,
    websocket_fanout,
    websocket_room,
)
from harness.servers import (
    HOST,
    RunningServer,
    ServerSpec,
    chatcli_version_at,
    extract_revision,
    find_servers,
)

ALL_SERVERS = ("chatcli", "chatcli-history", "ngircd", "inspircd", "miniircd")
ALL_SCENARIOS = ("connect", "fanout", "rate", "dm", "stall", "scale", "send")
#: Scenarios run only when asked for by name (``--scenarios websocket``).
EXTRA_SCENARIOS = ("websocket", "cluster")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark chatcli's IRC server against ngircd, InspIRCd and miniircd.",
        epilog="A full run takes about 10 minutes on 2 cores; --quick about 2.",
    )
    p.add_argument("--servers", default=",".join(ALL_SERVERS), help="comma-separated list")
    p.add_argument("--quick", action="store_true", help="short phases, N=100 only, cap 2000")
    p.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help="any of " + ",".join(ALL_SCENARIOS + EXTRA_SCENARIOS) + " (default: all but "
        "websocket and cluster)",
    )
    p.add_argument("--members", type=int_list, help="room sizes N (default 100,1000)")
    p.add_argument("--senders", type=int_list, help="sender counts S (default 1,10)")
    p.add_argument("--duration", type=float, help="closed-loop phase seconds (default 5)")
    p.add_argument("--rate", type=float, default=100_000, help="fixed-rate deliveries/s")
    p.add_argument("--window", type=int, default=100, help="closed loop: messages in flight")
    p.add_argument("--max-conns", type=int, help="scale cap (default 10000; --quick 2000)")
    p.add_argument(
        "--max-clients",
        type=int,
        default=0,
        help="chatcli's max_clients in the scale test (default: the cap + 1000; chatcli's "
        "own default, 4096, would cap the row)",
    )
    p.add_argument("--drain", type=float, help="longest wait for a phase's last deliveries")
    p.add_argument(
        "--ws-members",
        type=int,
        help="websocket: WebSocket members of the mixed room (default 1000; --quick 100)",
    )
    p.add_argument(
        "--ws-tcp-members",
        type=int,
        help="websocket: TCP members beside them (default 1000; --quick 100); the baseline "
        "room has both counts of members, all TCP",
    )
    p.add_argument("--ws-senders", type=int, default=10, help="websocket: TCP senders")
    p.add_argument(
        "--ws-subprotocol",
        choices=("text", "binary"),
        default="text",
        help="websocket: text.ircv3.net (what chatcli's browser client asks for first; the "
        "default) or binary.ircv3.net",
    )
    p.add_argument(
        "--cluster-nodes",
        type=int_list,
        default=[1, 2, 3],
        help="cluster: the node counts K to run, one after the other (default 1,2,3)",
    )
    p.add_argument(
        "--cluster-members",
        type=int,
        help="cluster: members of the room, member i on node i mod K (default 1000; --quick 100)",
    )
    p.add_argument("--cluster-senders", type=int, default=10, help="cluster: senders (default 10)")
    p.add_argument(
        "--no-cluster-dm",
        action="store_true",
        help="cluster: skip the direct messages between nodes",
    )
    p.add_argument("--redis", help="cluster: the redis-server executable")
    p.add_argument("--send-reps", type=int, help="chat send repetitions (default 15)")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each phase, wait up to this many seconds for other processes to stop "
        "using the CPU (default 30)",
    )
    p.add_argument("--json", type=Path, help="write one JSON object per result to this file")
    p.add_argument("--markdown", type=Path, help="write the tables as Markdown to this file")
    p.add_argument("--miniircd", help="path of the miniircd executable")
    p.add_argument(
        "--profile",
        type=Path,
        help="record the Python servers (chatcli, miniircd) with py-spy during each scenario "
        "into this directory (slows them: not for the results table)",
    )
    p.add_argument(
        "--chatcli-rev",
        help="run chatcli as committed at this git revision (extracted with `git archive` "
        "into the temporary directory) instead of the working tree",
    )
    p.add_argument(
        "--chatcli-src",
        help="run chatcli from this directory (holding the chatcli package) instead of the "
        "installed one, e.g. a `git archive` of another commit, for A/B comparisons",
    )
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    scenarios = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    unknown = scenarios - set(ALL_SCENARIOS + EXTRA_SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.quick:
        st = Settings(
            members=args.members or [100],
            senders=args.senders or [1, 10],
            scenarios=scenarios,
            duration=args.duration or 2.0,
            rate_duration=2.0,
            dm_duration=2.0,
            drain=5.0,
            max_conns=args.max_conns or 2000,
            scale_time=15.0,
            send_reps=args.send_reps or 5,
        )
    else:
        st = Settings(
            members=args.members or [100, 1000],
            senders=args.senders or [1, 10],
            scenarios=scenarios,
            duration=args.duration or 5.0,
            max_conns=args.max_conns or 10_000,
            send_reps=args.send_reps or 15,
        )
    st.rate = args.rate
    st.window = args.window
    small = 100 if args.quick else 1000
    st.ws_members = small if args.ws_members is None else args.ws_members
    st.ws_tcp_members = small if args.ws_tcp_members is None else args.ws_tcp_members
    st.ws_senders = args.ws_senders
    st.ws_subprotocol = args.ws_subprotocol
    st.max_clients = args.max_clients
    st.cluster_nodes = args.cluster_nodes
    st.cluster_members = small if args.cluster_members is None else args.cluster_members
    st.cluster_senders = args.cluster_senders
    st.cluster_dm = not args.no_cluster_dm
    st.redis = args.redis
    if args.drain is not None:
        st.drain = args.drain
    QUIET_WAIT[0] = args.quiet_wait
    return st


class Recorder:
    """Collects results; writes JSON lines as they come."""

    def __init__(
        self, json_file: TextIO | None, versions: dict[str, str], profile_dir: Path | None
    ) -> None:
        self.profile_dir = profile_dir
        self.results: list[Result] = []
        self.json_file = json_file
        self.versions = versions
        self.started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")

    def emit(self, kind: str, scenario: str, server: str, result: Result) -> None:
        r: Result = {"kind": kind, "scenario": scenario, "server": server, **result}
        r["version"] = self.versions.get(server, "")
        r["run_started"] = self.started
        self.results.append(r)
        if self.json_file is not None:
            self.json_file.write(json.dumps(clean(r)) + "\n")
            self.json_file.flush()
        log(f"  {scenario:<28} {summary(r)}")

    def skip(self, kind: str, scenario: str, server: str, why: str, extra: Result) -> None:
        self.emit(kind, scenario, server, {**extra, "skipped": why})


def clean(r: Result) -> Result:
    """NaN is not JSON: make it null."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}


def summary(r: Result) -> str:
    if r.get("skipped"):
        return f"skipped: {r['skipped']}"
    k = r["kind"]
    if k == "websocket":
        return (
            f"{r['deliveries_per_s']:,.0f}/s  {r['deliveries_per_cpu_s']:,.0f}/CPU-s  "
            f"TCP p99 {r['tcp_p99_ms']:.2f} ms  WS p99 {r.get('ws_p99_ms', float('nan')):.2f}"
            f" ms  lost {r['lost']}  gen CPU {r['gen_cpu_s']:.2f}s "
            f"srv CPU {r['server_cpu_s']:.2f}s"
        )
    if k in ("cluster", "cluster-dm"):
        return (
            f"{r['deliveries_per_s']:,.0f}/s  {r['deliveries_per_cpu_s']:,.0f}/CPU-s (all)  "
            f"same p99 {r.get('same_p99_ms', float('nan')):.2f} ms  cross p99 "
            f"{r.get('cross_p99_ms', float('nan')):.2f} ms  lost {r['lost']}  nodes CPU "
            f"{r.get('per_node_cpu', '')} s  Redis CPU {r.get('redis_cpu_s', 0.0):.2f} s  "
            f"events {r.get('events', '-')}"
        )
    if k in ("fanout-closed", "fanout-rate", "dm"):
        return (
            f"{r['deliveries_per_s']:,.0f}/s  {r['deliveries_per_cpu_s']:,.0f}/CPU-s  "
            f"p99 {r['p99_ms']:.2f} ms  lost {r['lost']}  gen CPU {r['gen_cpu_s']:.2f}s "
            f"srv CPU {r['server_cpu_s']:.2f}s"
        )
    if k == "connect":
        return f"{r['ready']} joined in {r['seconds']:.2f} s, {r['kib_per_conn']:.1f} KiB/conn" + (
            f"  ({r['error']})" if r["error"] else ""
        )
    if k == "stall":
        return (
            f"kept {r['rate_kept']:.0%}, lost {r['lost']}, dropped {r['victim_dropped']} "
            f"{r['victim_reason']}"
        )
    if k == "scale":
        return f"held {r['held']} of {r['opened']}, RSS {r['rss_kib'] / 1024:.0f} MiB {r['error']}"
    if k == "send":
        return f"{r['send_median_ms']:.0f} ms vs {r['floor_median_ms']:.0f} ms"
    return ""


#: Scenarios that can simply be run again (they leave the server as they found it).
REPEATABLE = ("fanout-closed", "fanout-rate", "dm", "websocket", "cluster", "cluster-dm")


def disturbed(r: Result) -> bool:
    """Whether other processes used more than a quarter of a core during the phase."""
    wall = r.get("wall_s", 0.0)
    return bool(wall > 0.5 and r.get("other_cpu_s", 0.0) > 0.25 * wall)


def guarded(
    rec: Recorder,
    kind: str,
    scenario: str,
    server: str,
    extra: Result,
    fn: Callable[[], Result],
    *,
    pid: int,
) -> bool:
    """Run one scenario (profiled, with --profile); on failure record it as skipped. True if
    it ran."""
    out = None
    if rec.profile_dir is not None and server.split(" ")[0] in PYTHON_SERVERS:
        name = f"{server}-{scenario}".replace("/", "-").replace(" ", "-").replace("=", "")
        out = rec.profile_dir / f"{name}.txt"
    try:
        with profiled(pid, out):
            result = fn()
            if kind in REPEATABLE and disturbed(result):
                # Someone else took the CPU: measure again (the phase waits for quiet first).
                log(f"  {scenario:<28} other load ({result['other_processes']}): once more")
                result = {**fn(), "repeated": True}
        rec.emit(kind, scenario, server, result)
        return True
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        rec.skip(kind, scenario, server, f"{type(exc).__name__}: {exc}"[:120], extra)
        return False


def run_server(spec: ServerSpec, st: Settings, workdir: Path, rec: Recorder) -> None:
    name = spec.name
    room_scenarios = {"connect", "fanout", "rate", "dm", "stall"} & st.scenarios
    for n in st.members if room_scenarios else []:
        with RunningServer(spec, workdir) as srv:
            gen = Generator(HOST, srv.port)
            try:
                conn, members = connect_members(gen, srv, n, st)
                if "connect" in st.scenarios:
                    rec.emit("connect", f"connect/N={n}", name, conn)
                if len(members) < n:
                    log(f"  only {len(members)} of {n} joined: skipping the rest for N={n}")
                    continue
                # Every phase gets fresh senders (see SenderPool): enough for all of them.
                pool = SenderPool(members, min(len(members) - 20, 80))
                problem = setup_senders(gen, spec, pool.members)
                if problem:
                    log(f"  sender setup: {problem}")
                for s in st.senders if "fanout" in st.scenarios else []:
                    extra = {"members": n, "senders": s, "window": st.window}
                    guarded(
                        rec,
                        "fanout-closed",
                        f"fanout-closed/N={n}/S={s}",
                        name,
                        extra,
                        partial(fanout, gen, srv, members, pool.take(s), "closed", st),
                        pid=srv.pid,
                    )
                for s in st.senders if "rate" in st.scenarios else []:
                    extra = {"members": n, "senders": s, "rate_target": st.rate}
                    guarded(
                        rec,
                        "fanout-rate",
                        f"fanout-rate/N={n}/S={s}",
                        name,
                        extra,
                        partial(fanout, gen, srv, members, pool.take(s), "rate", st),
                        pid=srv.pid,
                    )
                if "dm" in st.scenarios and n == st.members[0]:
                    extra = {"pairs": st.pairs, "window": st.dm_window}
                    guarded(
                        rec,
                        "dm",
                        "dm",
                        name,
                        extra,
                        partial(direct, gen, srv, members, pool, st),
                        pid=srv.pid,
                    )
                if "stall" in st.scenarios:
                    s = max(st.senders)
                    extra = {"members": n, "senders": s}
                    guarded(
                        rec,
                        "stall",
                        f"stall/N={n}/S={s}",
                        name,
                        extra,
                        partial(stalled_member, gen, srv, members, pool, s, st),
                        pid=srv.pid,
                    )
                if not srv.alive():
                    log(f"  {name} died: {srv.log_tail()}")
            finally:
                gen.close_all()
    if "scale" in st.scenarios:
        # chatcli turns away connections past max_clients (4,096 by default): raise it.
        with RunningServer(spec, workdir, max_clients=scale_max_clients(st)) as srv:
            gen = Generator(HOST, srv.port)
            try:
                guarded(
                    rec,
                    "scale",
                    "scale",
                    name,
                    {"cap": st.max_conns},
                    partial(scale, gen, srv, spec, st),
                    pid=srv.pid,
                )
            finally:
                gen.close_all()
    if "websocket" in st.scenarios:
        run_websocket(spec, st, workdir, rec)
    if "cluster" in st.scenarios and name == "chatcli":
        run_cluster(spec, st, workdir, rec)
    if "send" in st.scenarios and name == "chatcli":
        with RunningServer(spec, workdir) as srv:
            guarded(
                rec,
                "send",
                "send",
                name,
                {},
                partial(chat_send, spec, srv, st.send_reps),
                pid=srv.pid,
            )


def websocket_phase(
    gen: Generator,
    srv: RunningServer,
    room: Room,
    pool: SenderPool,
    st: Settings,
    label: str,
    base_per_cpu: float | None,
) -> Result:
    """One fan-out phase of the WebSocket scenario, fresh senders; against the baseline's
    deliveries per CPU second when given."""
    r = websocket_fanout(gen, srv, room, pool.take(st.ws_senders), st)
    r["room"] = label
    if base_per_cpu is not None:
        r["vs_tcp_only"] = r["deliveries_per_cpu_s"] / base_per_cpu
    return r


def run_websocket(spec: ServerSpec, st: Settings, workdir: Path, rec: Recorder) -> None:
    """Fan-out to WebSocket members beside TCP members: first the baseline, a room of as
    many members all on TCP, then the mixed room; each in a fresh server process with its
    WebSocket listener open. The mixed room's result carries its deliveries per server CPU
    second over the baseline's ("/CPU-s vs TCP only")."""
    name = spec.name
    n_tcp, n_ws, s = st.ws_tcp_members, st.ws_members, st.ws_senders
    rooms = (("baseline", n_tcp + n_ws, 0), ("mixed", n_tcp, n_ws))
    base_per_cpu = float("nan")
    for label, tcp, ws in rooms:
        scenario = f"websocket/N={tcp}+{ws}ws/S={s}" if ws else f"websocket/N={tcp}/S={s}"
        extra: Result = {
            "members": tcp + ws,
            "tcp_members": tcp,
            "ws_members": ws,
            "senders": s,
            "window": st.window,
            "subprotocol": st.ws_subprotocol,
        }
        if not spec.websocket:
            rec.skip("websocket", scenario, name, spec.no_websocket, extra)
            continue
        text = st.ws_subprotocol == "text"
        with RunningServer(spec, workdir, web=True, ws_text=text) as srv:
            gen = Generator(HOST, srv.port, srv.web_port, st.ws_subprotocol)
            try:
                room = websocket_room(gen, srv, tcp, ws)
                if len(room.tcp) < tcp or len(room.ws) < ws:
                    why = (
                        f"only {len(room.tcp)} of {tcp} TCP and {len(room.ws)} of {ws} "
                        f"WebSocket members joined: {room.connect}"
                    )
                    log(f"  {why}")
                    rec.skip("websocket", scenario, name, why[:160], extra)
                    continue
                pool = SenderPool(room.tcp, max(st.ws_senders, min(len(room.tcp) - 20, 80)))
                problem = setup_senders(gen, spec, pool.members)
                if problem:
                    log(f"  sender setup: {problem}")
                base = base_per_cpu if label == "mixed" else None
                phase = partial(websocket_phase, gen, srv, room, pool, st, label, base)
                ran = guarded(rec, "websocket", scenario, name, extra, phase, pid=srv.pid)
                if ran and label == "baseline":
                    base_per_cpu = rec.results[-1]["deliveries_per_cpu_s"]
                if not srv.alive():
                    log(f"  {name} died: {srv.log_tail()}")
            finally:
                gen.close_all()


def cluster_phases(
    rec: Recorder,
    label: str,
    gen: Generator,
    nodes: Nodes,
    st: Settings,
    base_per_cpu: float | None,
) -> float | None:
    """Fill the room over ``nodes``, then the closed-loop fan-out and the direct messages;
    return the fan-out's deliveries per CPU second."""
    n, s = st.cluster_members, st.cluster_senders
    k = len(nodes.nodes)
    scenario = f"cluster/N={n}/S={s}"
    extra: Result = {"members": n, "senders": s, "nodes": k, "window": st.window}
    room = cluster_room(gen, nodes, n)
    members = room.pop("clients")
    log(
        f"  {label}: {room['joined']} of {n} joined in {room['connect_s']:.1f} s, settled "
        f"after {room['settled_s']:.1f} s"
    )
    if len(members) < n:
        why = f"only {len(members)} of {n} joined: {room['connect_error']}"
        rec.skip("cluster", scenario, label, why[:160], extra)
        return None
    pool = SenderPool(members, max(s, min(len(members) - 20, 80)))
    per_cpu: float | None = None

    def phase() -> Result:
        r = cluster_fanout(gen, nodes, members, pool.take(s), st)
        r.update(room)
        if base_per_cpu:
            r["vs_k1"] = r["deliveries_per_cpu_s"] / base_per_cpu
        return r

    if guarded(rec, "cluster", scenario, label, extra, phase, pid=nodes.pid):
        per_cpu = rec.results[-1]["deliveries_per_cpu_s"]
        if base_per_cpu is None and label.endswith("K=1"):
            rec.results[-1]["vs_k1"] = 1.0
    if st.cluster_dm:
        # Pairs among the members that did not send in the fan-out, if there are enough of
        # them on every node (flood control is off: a sender may be used again).
        spare = len(members) - len(pool.members)
        used = set(pool.members) if spare >= 2 * (st.pairs + k) else set()
        extra = {"pairs": st.pairs, "window": st.dm_window, "nodes": k}
        guarded(
            rec,
            "cluster-dm",
            "cluster-dm",
            label,
            extra,
            partial(cluster_direct, gen, nodes, members, used, st),
            pid=nodes.pid,
        )
    if not nodes.alive():
        log(f"  a node died: {nodes.log_tail()}")
    return per_cpu


def run_cluster(spec: ServerSpec, st: Settings, workdir: Path, rec: Recorder) -> None:
    """The same room on one ordinary ``chat serve`` (the baseline: what cluster mode costs),
    then on K = 1, 2, 3 ``chat serve --cluster`` nodes sharing one Redis of the harness's
    own (FLUSHALL between them); see "Several nodes on one Redis" in the README."""
    redis_exe = find_redis(st.redis)
    if redis_exe is None:
        extra = {"members": st.cluster_members, "senders": st.cluster_senders}
        why = "redis-server not found (apt-get install redis-server)"
        rec.skip(
            "cluster",
            f"cluster/N={st.cluster_members}/S={st.cluster_senders}",
            "chatcli",
            why,
            extra,
        )
        return
    with RunningServer(spec, workdir) as srv:
        gen = Generator(HOST, srv.port)
        try:
            cluster_phases(rec, "chatcli", gen, Nodes([srv], None), st, None)
        finally:
            gen.close_all()
    with RedisServer(workdir, redis_exe) as redis:
        base: float | None = None
        for k in st.cluster_nodes:
            label = f"chatcli K={k}"
            rec.versions[label] = f"{spec.version}, {redis.version}"
            redis.command("FLUSHALL")
            member_spec = node_spec(spec, redis.url)
            started: list[RunningServer] = []
            gen = None
            try:
                for _ in range(k):
                    node = RunningServer(member_spec, workdir)
                    node.start()
                    started.append(node)
                nodes = Nodes(started, redis)
                gen = Generator(HOST, started[0].port)
                per_cpu = cluster_phases(rec, label, gen, nodes, st, base)
                if k == 1 and per_cpu:
                    base = per_cpu
            finally:
                if gen is not None:
                    gen.close_all()
                for node in started:
                    node.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    st = settings_from(args)
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    scratch = tempfile.TemporaryDirectory(prefix="chatbench-")
    chatcli_src = args.chatcli_src
    if args.chatcli_rev:
        chatcli_src = extract_revision(args.chatcli_rev, Path(scratch.name) / "rev")
    specs = find_servers(args.miniircd, chatcli_src)
    if args.chatcli_rev:
        for name in ("chatcli", "chatcli-history"):
            specs[name].version = chatcli_version_at(args.chatcli_rev)
    unknown = [w for w in wanted if w not in specs]
    if unknown:
        raise SystemExit(f"unknown servers: {', '.join(unknown)}")
    note = raise_nofile(st.max_conns) if "scale" in st.scenarios else ""
    if note:
        log(note)
    versions = {name: spec.version for name, spec in specs.items()}
    json_file = open(args.json, "w", encoding="utf-8") if args.json else None  # noqa: SIM115
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        if find_py_spy() is None:
            log("--profile: py-spy not found (pip install py-spy); not profiling")
            args.profile = None
    rec = Recorder(json_file, versions, args.profile)
    skipped: list[str] = []
    log(f"{rec.started}  {machine()}, load average {os.getloadavg()[0]:.2f}")
    t_start = time.monotonic()
    try:
        with scratch as tmp:
            for name in wanted:
                spec = specs[name]
                if not spec.available:
                    msg = f"{name}: not installed, skipped (install: {spec.install_hint})"
                    log(msg)
                    skipped.append(msg)
                    continue
                log(f"{name} ({spec.version}) {' '.join(spec.extra_args)}".rstrip())
                t = time.monotonic()
                run_server(spec, st, Path(tmp), rec)
                log(f"  ({time.monotonic() - t:.0f} s)")
    finally:
        if json_file is not None:
            json_file.close()
    print_report(rec, skipped, st, time.monotonic() - t_start, args)
    return 0


def grouped(results: list[Result]) -> list[list[Result]]:
    order = list(ALL_SERVERS)
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(r["scenario"], []).append(r)
    kinds = list(KINDS)
    out = sorted(groups.values(), key=lambda rows: kinds.index(rows[0]["kind"]))
    for rows in out:
        rows.sort(key=lambda r: order.index(r["server"]) if r["server"] in order else 99)
    return out


#: The peers' connection limits as configured here (harness/servers.py).
PEER_LIMITS = {
    "ngircd": "MaxConnections = 0 (none)",
    "inspircd": "limit, localmax, globalmax 100000; softlimit 20000",
    "miniircd": "none (select(): about 1,016 connections at most)",
}


def scale_limits(results: list[Result]) -> list[str]:
    """What limited each server's connections in the scale test, said under its table."""
    out: list[str] = []
    for r in results:
        if r["kind"] != "scale" or r.get("skipped"):
            continue
        name = r["server"]
        if name.startswith("chatcli"):
            limit = r.get("server_limit") or ""
            if limit:
                value = int(limit.split("=", 1)[1])
                where = "above" if value >= r["cap"] else "BELOW"
                out.append(
                    f"  {name}: ran with max_clients = {value} (chat serve --config), {where} "
                    f"the cap of {r['cap']}; its default, 4096, would cap a row of 10,000"
                )
            else:
                out.append(
                    f"  {name}: max_clients could not be raised (no --config): its default, "
                    f"4096, caps this row"
                )
        elif name in PEER_LIMITS:
            out.append(f"  {name}: connection limit {PEER_LIMITS[name]}")
    return ["", "Server connection limits in the scale test:", *out] if out else []


def print_report(
    rec: Recorder, skipped: list[str], st: Settings, elapsed: float, args: argparse.Namespace
) -> None:
    groups = grouped(rec.results)
    print(f"\nchatcli benchmark, {rec.started}, {machine()}, {elapsed:.0f} s")
    for name in dict.fromkeys(r["server"] for r in rec.results):
        print(f"  {name}: {rec.versions.get(name, '')}")
    for line in skipped:
        print(f"  {line}")
    for rows in groups:
        print()
        print(table(rows))
    for line in scale_limits(rec.results):
        print(line)
    busy = [
        f"{r['scenario']} on {r['server']}: {r['other_cpu_s']:.1f} s of CPU in {r['wall_s']:.1f} s"
        + (f" ({r['other_processes']})" if r.get("other_processes") else "")
        for r in rec.results
        if disturbed(r)
    ]
    if busy:
        print("\nOther load on the machine (more than a quarter of a core, not the server's or")
        print("the generator's): these results are suspect; run again on a quiet machine:")
        for line in busy:
            print(f"  - {line}")
    notes = behind(groups)
    print("\nWhere chatcli is behind (a peer better by more than 10%):")
    for line in notes or ["nowhere"]:
        print(f"  - {line}")
    if args.markdown:
        md = [markdown(rows) for rows in groups]
        args.markdown.write_text("\n\n".join(md) + "\n", encoding="utf-8")
    if not args.json:
        print("\nJSON lines:")
        for r in rec.results:
            print(json.dumps(clean(r)))


def _terminated(signum: int, frame: object) -> None:
    # Unwind (stopping the server being measured, which runs in its own session) rather
    # than die at once and leave it running.
    raise SystemExit(128 + signum)


def _run() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    _run()
