"""The benchmark's scenarios (``bench.py``). Each returns one result: a flat dict of numbers
and labels.

Accounting, the same for every server:

* A *delivery* is one message line arriving at one member. A room message to N members
  from one of them makes N - 1 deliveries (no server here echoes a message to its sender).
* Wall time and CPU time of a phase run from its first send until every expected delivery
  has arrived (or the drain limit passed): the server's backlog is part of its work.
* Server CPU is utime + stime of the server process from /proc/PID/stat; the generator's
  is this process's own (getrusage). ``box_busy`` is the share of both cores that was busy
  (/proc/stat), to show when the machine itself was the limit.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .loadgen import READY, Client, Generator, now_us
from .measure import box_cpu, command_of, own_cpu, process_cpu
from .sendtime import time_send
from .servers import RunningServer, ServerSpec

Result = dict[str, Any]
ROOM = b"#bench"


@dataclass
class Settings:
    """What to run and for how long; see ``bench.py --help``."""

    members: list[int]
    senders: list[int]
    scenarios: set[str]
    duration: float = 5.0  #: closed-loop fan-out and the stalled-member phases, seconds
    rate_duration: float = 4.0  #: fixed-rate fan-out, seconds
    dm_duration: float = 4.0
    rate: float = 100_000.0  #: fixed-rate target, deliveries per second
    window: int = 100  #: closed loop: messages in flight, all senders together
    probes: int = 4  #: closed loop: members that time every message (the last one is D)
    rate_probes: int = 16  #: fixed rate: members that time every message
    pairs: int = 10  #: direct messages: sender/receiver pairs
    dm_window: int = 4  #: direct messages: in flight per pair
    drain: float = 10.0  #: longest wait for the last deliveries of a phase, seconds
    connect_window: int = 1000  #: clients connecting (not yet joined) at once
    accept_window: int = 4  #: clients opened that the server has not answered yet
    max_conns: int = 10_000
    #: chatcli's ``max_clients`` for the scale test (``chat serve --config``): its default,
    #: 4,096, would cap the row below ``max_conns`` and nothing would say so.
    max_clients: int = 0  #: 0: max_conns + SCALE_HEADROOM
    scale_window: int = 1000
    scale_time: float = 45.0
    send_reps: int = 15
    #: WebSocket beside TCP: TCP members, WebSocket members and (TCP) senders of the mixed
    #: room; the baseline room has as many members, all TCP
    ws_tcp_members: int = 1000
    ws_members: int = 1000
    ws_senders: int = 10
    ws_subprotocol: str = "text"  #: "text" (what chatcli's browser client asks for) or "binary"
    #: Several nodes on one Redis: the node counts K, the room's members (member i on node
    #: i mod K) and senders; whether to run the direct messages between nodes too
    cluster_nodes: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 3])
    cluster_members: int = 1000
    cluster_senders: int = 10
    cluster_dm: bool = True
    redis: str | None = None  #: the redis-server executable (None: looked for)


gen_cpu = own_cpu  #: the load generator's CPU: this process's


#: Longest wait for the machine to be quiet before a phase (set from Settings).
QUIET_WAIT = [30.0]


def wait_quiet(srv: RunningServer, limit: float, share: float = 0.2) -> float:
    """Wait (at most ``limit`` seconds) until processes other than the server and this one
    use less than ``share`` of a core; return how long it waited. Another engineer's test
    run on a 2-core machine would otherwise take CPU from the phase being measured."""
    start = time.monotonic()
    while True:
        busy0, _ = box_cpu()
        mine0 = srv.cpu() + gen_cpu()
        t = time.monotonic()
        time.sleep(0.25)
        busy1, _ = box_cpu()
        others = (busy1 - busy0) - (srv.cpu() + gen_cpu() - mine0)
        if others < share * (time.monotonic() - t) or time.monotonic() - start >= limit:
            return time.monotonic() - start
        time.sleep(0.75)


class Meter:
    """Server CPU, generator CPU, machine CPU and wall time over one phase."""

    def __init__(self, srv: RunningServer) -> None:
        self.srv = srv
        self.waited = wait_quiet(srv, QUIET_WAIT[0])
        self.t0 = time.monotonic()
        self.cpu0 = srv.cpu()
        self.gen0 = gen_cpu()
        self.box0 = box_cpu()
        self.procs0 = process_cpu()
        #: several processes measured as one (a cluster's nodes and its Redis): each's CPU
        self.parts0: dict[str, float] = getattr(srv, "cpu_parts", dict)()

    def others(self) -> str:
        """The processes other than the server and this one that used the most CPU."""
        skip = {*getattr(self.srv, "pids", (self.srv.pid,)), os.getpid()}
        used = []
        for pid, (name, cpu) in process_cpu().items():
            if pid not in skip:
                before = self.procs0.get(pid, (name, 0.0))[1]
                if cpu - before >= 0.05:
                    used.append((cpu - before, f"{command_of(pid, name)} {cpu - before:.1f}s"))
        return ", ".join(text for _, text in sorted(used, reverse=True)[:3])

    def stop(self) -> Result:
        wall = time.monotonic() - self.t0
        busy1, total1 = box_cpu()
        busy = busy1 - self.box0[0]
        total = total1 - self.box0[1]
        server = self.srv.cpu() - self.cpu0
        gen = gen_cpu() - self.gen0
        parts: dict[str, float] = getattr(self.srv, "cpu_parts", dict)()
        return {
            **{f"{k}_cpu_s": v - self.parts0.get(k, 0.0) for k, v in parts.items()},
            "wall_s": wall,
            "server_cpu_s": server,
            "gen_cpu_s": gen,
            "box_busy": busy / total if total > 0 else float("nan"),
            # CPU that neither the server nor the generator used: other processes, or the
            # kernel's work that no process is charged for. Much of it spoils a result.
            "other_cpu_s": max(0.0, busy - server - gen),
            "other_processes": self.others() if busy - server - gen > 0.25 * wall else "",
            "waited_quiet_s": self.waited,
        }


def percentiles(samples_us: Sequence[int]) -> Result:
    if not samples_us:
        nan = float("nan")
        return {"p50_ms": nan, "p99_ms": nan, "max_ms": nan, "samples": 0}
    s = sorted(samples_us)
    n = len(s)
    return {
        "p50_ms": s[n // 2] / 1000,
        "p99_ms": s[min(n - 1, (n * 99) // 100)] / 1000,
        "max_ms": s[-1] / 1000,
        "samples": n,
    }


def spread(items: Sequence[Client], k: int) -> list[Client]:
    """``k`` items evenly spread over ``items``, always including the last."""
    if k >= len(items):
        return list(items)
    if k <= 1:
        return [items[-1]]
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


# -- connect --------------------------------------------------------------------------------


def connect_members(
    gen: Generator, srv: RunningServer, n: int, st: Settings
) -> tuple[Result, list[Client]]:
    """Register and join ``n`` clients to #bench; time it and the server's memory per client."""
    before = srv.status()
    meter = Meter(srv)
    res = gen.connect(
        n,
        "m",
        window=st.connect_window,
        accept_window=st.accept_window,
        deadline=time.monotonic() + 60.0,
    )
    m = meter.stop()
    # Let the JOIN storm settle (everyone hears about everyone), then read the memory.
    settle_end = time.monotonic() + 1.0
    while time.monotonic() < settle_end:
        gen.poll(0.05)
    after = srv.status()
    delta = after["rss_kib"] - before["rss_kib"]
    result: Result = {
        "members": n,
        "ready": res.ready,
        "failed": res.failed,
        "seconds": res.seconds,
        "server_cpu_s": m["server_cpu_s"],
        "gen_cpu_s": m["gen_cpu_s"],
        "rss_before_kib": before["rss_kib"],
        "rss_after_kib": after["rss_kib"],
        "kib_per_conn": delta / max(1, res.ready),
        "threads": after["threads"],
        "error": res.first_error,
        "wall_s": m["wall_s"],
        "other_cpu_s": m["other_cpu_s"],
        "other_processes": m["other_processes"],
    }
    members = [c for c in res.clients if c.state == READY and not c.closed]
    return result, members


def setup_senders(gen: Generator, spec: ServerSpec, senders: Sequence[Client]) -> str:
    """Run the server's sender setup (ngircd: OPER and +F); return a problem, or ''."""
    if not spec.sender_setup:
        return ""
    ok = gen.sync(senders, spec.sender_setup, timeout=15.0)
    if not ok:
        return "sender setup timed out"
    if spec.name == "ngircd" and not all(c.oper for c in senders):
        return "OPER failed for some senders"
    return ""


# -- fan-out --------------------------------------------------------------------------------


class SenderPool:
    """Hands out members to send, each to one phase only, in join order (wrapping round).

    A server with flood control may hold back a client that has just sent a lot (ngircd does,
    even to operators with +F): a phase with fresh senders is not slowed by the one before.
    """

    def __init__(self, members: Sequence[Client], size: int) -> None:
        self.members = [c for c in members if not c.closed][:size]
        self.next = 0

    def take(self, k: int) -> list[Client]:
        live = [c for c in self.members if not c.closed]
        out = [live[(self.next + i) % len(live)] for i in range(min(k, len(live)))]
        self.next = (self.next + k) % max(1, len(live))
        return out


def fanout(
    gen: Generator,
    srv: RunningServer,
    members: Sequence[Client],
    senders: Sequence[Client],
    mode: str,
    st: Settings,
    *,
    victim: Client | None = None,
    stall: bool = False,
    duration: float | None = None,
    groups: Mapping[str, Sequence[Client]] | None = None,
) -> Result:
    """One fan-out phase in #bench: ``mode`` is "closed" (a bounded number of messages in
    flight) or "rate" (a fixed number of deliveries per second). ``senders`` are members.

    Closed loop: sender i may have ``window // senders`` messages not yet received by the
    designated receiver D (the last member to have joined that is not a sender) in flight.
    Deliveries to ``victim`` are not counted (the stalled-member test); with ``stall`` it is
    not read at all.

    With ``groups`` (name: members, e.g. the TCP and the WebSocket members of one room),
    each group gets probes of its own, as many as the phase would have in all, and its
    latency, deliveries and losses are reported apart too (``<name>_p99_ms`` and so on).
    """
    live = [c for c in members if not c.closed]
    n_senders = len(senders)
    chosen = set(senders)
    nonsenders = [c for c in live if c not in chosen and c is not victim]
    designated = nonsenders[-1]
    n_probes = st.probes if mode == "closed" else st.rate_probes
    group_probes: dict[str, list[Client]] = {}
    if groups:
        for name, group in groups.items():
            mine = [c for c in group if not c.closed and c not in chosen and c is not victim]
            group_probes[name] = spread(mine, n_probes) if mine else []
        probes = list(dict.fromkeys(c for g in group_probes.values() for c in g))
    else:
        probes = spread(nonsenders, n_probes)
    gen.new_phase(live)
    for i, s in enumerate(senders):
        s.sid = i
    for p in probes:
        p.lat = []
        p.lat_sid = []  # (who sent each: a cluster tells same-node from cross-node)
        p.parse = True
    acks = [0] * n_senders
    designated.acks = acks
    designated.parse = True
    n = len(live)
    window = max(1, st.window // n_senders)
    msg_rate = st.rate / max(1, n - 1) / n_senders  # per sender, messages per second
    length = (
        duration
        if duration is not None
        else (st.duration if mode == "closed" else st.rate_duration)
    )
    if stall and victim is not None:
        gen.stall(victim)
    message = gen.message

    gc.collect()
    gc.disable()
    try:
        meter = Meter(srv)
        t0 = meter.t0
        end = t0 + length
        if mode == "closed":
            while (now := time.monotonic()) < end:
                ts = now_us()
                for s in senders:
                    room = window - (s.seq - acks[s.sid])
                    if room > 0:
                        gen.send(s, message(ROOM, s.sid, range(s.seq, s.seq + room), ts))
                        s.seq += room
                gen.poll(min(0.01, end - now))
        else:
            offsets = [i / n_senders for i in range(n_senders)]
            while (now := time.monotonic()) < end:
                ts = now_us()
                elapsed = (now - t0) * msg_rate
                wake = end
                for s, off in zip(senders, offsets, strict=True):
                    due = int(elapsed + off) + 1
                    if due > s.seq:
                        gen.send(s, message(ROOM, s.sid, range(s.seq, due), ts))
                        s.seq = due
                    wake = min(wake, t0 + (s.seq - off) / msg_rate)
                gen.poll(max(0.0, min(0.01, wake - time.monotonic())))
        send_s = time.monotonic() - t0
        sent = [s.seq for s in senders]
        total_sent = sum(sent)
        excluded = [victim] if victim is not None else []
        counted = [c for c in live if c is not victim]
        expected = {c: total_sent - (c.seq if c.sid >= 0 else 0) for c in counted}
        target = sum(expected.values())

        def done() -> bool:
            return gen.total - sum(c.count for c in excluded) >= target

        gen.run_until(time.monotonic() + st.drain, done)
        m = meter.stop()
    finally:
        gc.enable()
    got = sum(min(c.count, exp) for c, exp in expected.items())
    lost = sum(max(0, exp - c.count) for c, exp in expected.items())
    dup = sum(max(0, c.count - exp) for c, exp in expected.items())
    samples: list[int] = []
    for p in probes:
        samples.extend(p.lat or ())
    wall = m["wall_s"]
    cpu = m["server_cpu_s"]
    result: Result = {
        "members": n,
        "senders": n_senders,
        "mode": mode,
        "window": window * n_senders if mode == "closed" else None,
        "rate_target": st.rate if mode == "rate" else None,
        "messages": total_sent,
        "deliveries": got,
        "send_s": send_s,
        **m,
        "deliveries_per_s": got / wall if wall > 0 else 0.0,
        "deliveries_per_cpu_s": got / cpu if cpu > 0 else float("nan"),
        "server_cpu_share": cpu / wall if wall > 0 else float("nan"),
        **percentiles(samples),
        "lost": lost,
        "duplicated": dup,
        "rss_kib": srv.status()["rss_kib"],
        "closed_members": sum(1 for c in counted if c.closed),
    }
    for name, group in (groups or {}).items():
        mine = [c for c in group if c in expected]
        lat: list[int] = []
        for p in group_probes[name]:
            lat.extend(p.lat or ())
        result.update({f"{name}_{k}": v for k, v in percentiles(lat).items()})
        result[f"{name}_members"] = len(mine)
        result[f"{name}_deliveries"] = sum(min(c.count, expected[c]) for c in mine)
        result[f"{name}_lost"] = sum(max(0, expected[c] - c.count) for c in mine)
    return result


def stalled_member(
    gen: Generator,
    srv: RunningServer,
    members: Sequence[Client],
    pool: SenderPool,
    n_senders: int,
    st: Settings,
) -> Result:
    """The same closed-loop fan-out twice, the second time with one member not reading.

    The victim is a member three quarters down the join order (never a sender, nor a
    probe); each run has fresh senders. Its deliveries are not counted in either run, so
    both rates are over the same members.
    After the stalled run it reads again, until the server closes it or 1 s of quiet.
    """
    live = [c for c in members if not c.closed]
    victim = next(c for c in live[(len(live) * 3) // 4 :] if c not in pool.members)
    base = fanout(gen, srv, live, pool.take(n_senders), "closed", st, victim=victim)
    stalled = fanout(gen, srv, live, pool.take(n_senders), "closed", st, victim=victim, stall=True)
    # Did the server drop it? Read what it has; stop at close, or after 1 s of silence.
    gen.unstall(victim)
    read_before = victim.nbytes
    deadline = time.monotonic() + 10.0
    quiet_since = time.monotonic()
    last = victim.nbytes
    while not victim.closed and time.monotonic() < deadline:
        gen.poll(0.05)
        if victim.nbytes != last:
            last = victim.nbytes
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.0:
            break
    error = victim.error or ""
    base_rate = base["deliveries_per_s"]
    return {
        "members": base["members"],
        "senders": n_senders,
        "base_deliveries_per_s": base_rate,
        "stalled_deliveries_per_s": stalled["deliveries_per_s"],
        "rate_kept": stalled["deliveries_per_s"] / base_rate if base_rate else float("nan"),
        "base_deliveries_per_cpu_s": base["deliveries_per_cpu_s"],
        "stalled_deliveries_per_cpu_s": stalled["deliveries_per_cpu_s"],
        "base_p99_ms": base["p99_ms"],
        "stalled_p99_ms": stalled["p99_ms"],
        "lost": base["lost"] + stalled["lost"],
        "victim_dropped": victim.closed,
        "victim_reason": error[:80],
        "victim_backlog_kib": (victim.nbytes - read_before) / 1024,
        "rss_kib": srv.status()["rss_kib"],
        "wall_s": base["wall_s"] + stalled["wall_s"],
        "other_cpu_s": base["other_cpu_s"] + stalled["other_cpu_s"],
        "other_processes": base["other_processes"] or stalled["other_processes"],
    }


# -- direct messages ------------------------------------------------------------------------


def direct(
    gen: Generator, srv: RunningServer, members: Sequence[Client], pool: SenderPool, st: Settings
) -> Result:
    """Pairs of members exchange direct messages (sender i -> receiver i), closed loop with
    ``dm_window`` messages in flight per pair; receivers time every message."""
    live = [c for c in members if not c.closed]
    pairs = min(st.pairs, len(live) // 2)
    senders, receivers = pool.take(pairs), pool.take(pairs)
    gen.new_phase(live)
    for i, (s, r) in enumerate(zip(senders, receivers, strict=True)):
        s.sid = i
        r.acks = [0] * pairs
        r.lat = []
        r.parse = True
    gc.collect()
    gc.disable()
    try:
        meter = Meter(srv)
        end = meter.t0 + st.dm_duration
        while (now := time.monotonic()) < end:
            ts = now_us()
            for s, r in zip(senders, receivers, strict=True):
                assert r.acks is not None
                room = st.dm_window - (s.seq - r.acks[s.sid])
                if room > 0:
                    gen.send(s, gen.message(r.nickb, s.sid, range(s.seq, s.seq + room), ts))
                    s.seq += room
            gen.poll(min(0.01, end - now))
        sent = sum(s.seq for s in senders)
        gen.run_until(time.monotonic() + st.drain, lambda: gen.total >= sent)
        m = meter.stop()
    finally:
        gc.enable()
    got = sum(min(r.count, s.seq) for s, r in zip(senders, receivers, strict=True))
    samples: list[int] = []
    for r in receivers:
        samples.extend(r.lat or ())
    wall, cpu = m["wall_s"], m["server_cpu_s"]
    return {
        "pairs": pairs,
        "window": st.dm_window,
        "messages": sent,
        "deliveries": got,
        **m,
        "deliveries_per_s": got / wall if wall > 0 else 0.0,
        "deliveries_per_cpu_s": got / cpu if cpu > 0 else float("nan"),
        **percentiles(samples),
        "lost": sent - got,
    }


# -- WebSocket beside TCP -------------------------------------------------------------------


@dataclass
class Room:
    """#bench as the WebSocket scenario filled it: its TCP and WebSocket members (senders are
    TCP members), and what joining them cost."""

    tcp: list[Client]
    ws: list[Client]
    connect: Result


def websocket_room(gen: Generator, srv: RunningServer, n_tcp: int, n_ws: int) -> Room:
    """Join ``n_tcp`` TCP members, then ``n_ws`` WebSocket members (of the server's web
    port) to #bench; the server's memory before, between and after (1 s after each group,
    once its JOIN storm has settled)."""
    result: Result = {}
    groups: dict[str, list[Client]] = {}
    for name, count, ws in (("tcp", n_tcp, False), ("ws", n_ws, True)):
        if not count:
            groups[name] = []
            continue
        before = srv.status()["rss_kib"]
        res = gen.connect(
            count,
            "m" if name == "tcp" else "w",  # one width: every message line is as long
            window=1000,
            accept_window=4,
            deadline=time.monotonic() + 90.0,
            ws=ws,
        )
        settle_end = time.monotonic() + 1.0
        while time.monotonic() < settle_end:
            gen.poll(0.05)
        joined = [c for c in res.clients if c.state == READY and not c.closed]
        after = srv.status()["rss_kib"]
        groups[name] = joined
        result[f"{name}_joined"] = len(joined)
        result[f"{name}_connect_s"] = res.seconds
        result[f"{name}_kib_per_conn"] = (after - before) / max(1, len(joined))
        if res.first_error:
            result[f"{name}_connect_error"] = res.first_error
    return Room(groups["tcp"], groups["ws"], result)


def websocket_fanout(
    gen: Generator, srv: RunningServer, room: Room, senders: Sequence[Client], st: Settings
) -> Result:
    """The closed-loop fan-out in ``room`` (see :func:`fanout`), with latency probes among
    its TCP members and among its WebSocket members, each group reported apart. The
    designated receiver, whose acknowledgements pace the loop, is the last member to have
    joined: a WebSocket member when there are any."""
    members = [*room.tcp, *room.ws]
    groups = {"tcp": room.tcp, "ws": room.ws} if room.ws else {"tcp": room.tcp}
    result = fanout(gen, srv, members, senders, "closed", st, groups=groups)
    result.update(room.connect)
    result["tcp_members"] = len(room.tcp)
    result["ws_members"] = len(room.ws)
    result["subprotocol"] = st.ws_subprotocol
    return result


# -- scale ----------------------------------------------------------------------------------


#: Connections allowed over the scale test's cap (the start-up probe, a late close).
SCALE_HEADROOM = 1000


def scale_max_clients(st: Settings) -> int:
    """chatcli's max_clients for the scale test."""
    return st.max_clients or st.max_conns + SCALE_HEADROOM


def scale(gen: Generator, srv: RunningServer, spec: ServerSpec, st: Settings) -> Result:
    """Open as many registered connections (in no room) as the server holds, up to the cap;
    then PING every one at once and count the answers that come within 20 s. Memory per
    connection is over the connections registered (and still open)."""
    before = srv.status()
    meter = Meter(srv)
    res = gen.connect(
        st.max_conns,
        "s",
        window=st.scale_window,
        accept_window=st.accept_window,
        deadline=time.monotonic() + st.scale_time,
        join=False,
    )
    m = meter.stop()
    ready = [c for c in res.clients if c.state == READY and not c.closed]
    t_ping = time.monotonic()
    answered = gen.sync(ready, (), timeout=20.0)
    live = any(not c.closed for c in ready)
    ping_s = time.monotonic() - t_ping if answered and live else float("nan")
    held = sum(1 for c in ready if c.pong and not c.closed)
    after = srv.status()
    alive = srv.alive()
    raised = srv.max_clients if spec.max_clients_settable else None
    return {
        "cap": st.max_conns,
        #: the server's own connection limit as run (chatcli: max_clients), or "" if the
        #: harness did not set one
        "server_limit": "" if raised is None else f"max_clients={raised}",
        "opened": len(res.clients),
        "registered": res.ready,
        "held": held if alive else 0,
        "seconds": res.seconds,
        "server_cpu_s": m["server_cpu_s"],
        "gen_cpu_s": m["gen_cpu_s"],
        "rss_kib": after["rss_kib"],
        "ping_all_s": ping_s,
        "kib_per_conn": (after["rss_kib"] - before["rss_kib"]) / len(ready)
        if ready
        else float("nan"),
        "threads": after["threads"],
        "server_alive": alive,
        "wall_s": m["wall_s"],
        "other_cpu_s": m["other_cpu_s"],
        "other_processes": m["other_processes"],
        "error": res.first_error or ("" if alive else "server died: " + srv.log_tail(2)),
    }


# -- chat send ------------------------------------------------------------------------------


def chat_send(spec: ServerSpec, srv: RunningServer, reps: int) -> Result:
    """Wall time of one ``chat send`` (process start to exit, message accepted) next to the
    floor of starting the same interpreter with ``-c pass``; medians of ``reps`` runs,
    alternating the two, with bytecode cached as an installed chatcli has it (see
    ``startup.py``, which runs this measurement on its own)."""
    assert spec.executable is not None
    exe = spec.executable
    head = [exe, "-m", "chatcli"] if Path(exe).name.startswith("python") else [exe]
    return time_send(head, srv.port, reps, {**os.environ, **spec.env})
