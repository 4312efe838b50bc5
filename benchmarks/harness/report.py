"""Tables: one per scenario, one row per server, with ratios against chatcli."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Result = dict[str, Any]


def si(x: float) -> str:
    """1234567 -> '1.23M'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def num(fmt: str) -> Callable[[Any], str]:
    def show(x: Any) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "-"
        return format(x, fmt)

    return show


def pct(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:.0f}%"


def text(x: Any) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    return "" if x is None else str(x)


def kib_as_mib(x: Any) -> str:
    return "-" if x is None else f"{x / 1024:.1f}"


@dataclass(frozen=True)
class Column:
    title: str
    key: str
    show: Callable[[Any], str]


@dataclass(frozen=True)
class Headline:
    """A metric worth a ratio column: ``peer / chatcli``; ``higher`` says which way is better."""

    title: str
    key: str
    higher: bool


@dataclass(frozen=True)
class Kind:
    title: str
    columns: tuple[Column, ...]
    headlines: tuple[Headline, ...]


LAT = (
    Column("p50 ms", "p50_ms", num(".2f")),
    Column("p99 ms", "p99_ms", num(".2f")),
    Column("max ms", "max_ms", num(".1f")),
)
CPU = (
    Column("srv CPU s", "server_cpu_s", num(".2f")),
    Column("gen CPU s", "gen_cpu_s", num(".2f")),
    Column("box busy", "box_busy", pct),
)

KINDS: dict[str, Kind] = {
    "connect": Kind(
        "Connect: register and join N clients to #bench",
        (
            Column("joined", "ready", text),
            Column("seconds", "seconds", num(".2f")),
            Column("srv CPU s", "server_cpu_s", num(".2f")),
            Column("gen CPU s", "gen_cpu_s", num(".2f")),
            Column("RSS MiB", "rss_after_kib", kib_as_mib),
            Column("KiB/conn", "kib_per_conn", num(".1f")),
            Column("threads", "threads", text),
        ),
        (Headline("seconds", "seconds", False), Headline("KiB/conn", "kib_per_conn", False)),
    ),
    "fanout-closed": Kind(
        "Fan-out, closed loop",
        (
            Column("msgs", "messages", si),
            Column("deliv/s", "deliveries_per_s", si),
            Column("deliv/CPU-s", "deliveries_per_cpu_s", si),
            *CPU,
            *LAT,
            Column("lost", "lost", text),
        ),
        (
            Headline("deliv/CPU-s", "deliveries_per_cpu_s", True),
            Headline("deliv/s", "deliveries_per_s", True),
        ),
    ),
    "fanout-rate": Kind(
        "Fan-out at a fixed rate",
        (
            Column("deliv/s", "deliveries_per_s", si),
            Column("deliv/CPU-s", "deliveries_per_cpu_s", si),
            Column("srv CPU", "server_cpu_share", pct),
            Column("gen CPU s", "gen_cpu_s", num(".2f")),
            *LAT,
            Column("lost", "lost", text),
        ),
        (
            Headline("p99", "p99_ms", False),
            Headline("deliv/CPU-s", "deliveries_per_cpu_s", True),
        ),
    ),
    "dm": Kind(
        "Direct messages between pairs, closed loop",
        (
            Column("msgs/s", "deliveries_per_s", si),
            Column("msgs/CPU-s", "deliveries_per_cpu_s", si),
            *CPU,
            *LAT,
            Column("lost", "lost", text),
        ),
        (
            Headline("msgs/CPU-s", "deliveries_per_cpu_s", True),
            Headline("p99", "p99_ms", False),
        ),
    ),
    "websocket": Kind(
        "Fan-out to WebSocket members beside TCP members, closed loop",
        (
            Column("TCP", "tcp_members", text),
            Column("WS", "ws_members", text),
            Column("msgs", "messages", si),
            Column("deliv/s", "deliveries_per_s", si),
            Column("deliv/CPU-s", "deliveries_per_cpu_s", si),
            Column("/CPU-s vs TCP only", "vs_tcp_only", num(".2f")),
            *CPU,
            Column("TCP p50 ms", "tcp_p50_ms", num(".2f")),
            Column("TCP p99 ms", "tcp_p99_ms", num(".2f")),
            Column("WS p50 ms", "ws_p50_ms", num(".2f")),
            Column("WS p99 ms", "ws_p99_ms", num(".2f")),
            Column("WS KiB/conn", "ws_kib_per_conn", num(".1f")),
            Column("lost", "lost", text),
        ),
        (
            Headline("deliv/CPU-s", "deliveries_per_cpu_s", True),
            Headline("/CPU-s vs TCP only", "vs_tcp_only", True),
        ),
    ),
    "cluster": Kind(
        "Several nodes on one Redis: fan-out in one room, closed loop",
        (
            Column("nodes", "nodes", text),
            Column("msgs", "messages", si),
            Column("events", "events", si),
            Column("deliv/s", "deliveries_per_s", si),
            Column("deliv/CPU-s", "deliveries_per_cpu_s", si),
            Column("vs K=1", "vs_k1", num(".2f")),
            Column("CPU s", "server_cpu_s", num(".2f")),
            Column("each node CPU s", "per_node_cpu", text),
            Column("Redis CPU s", "redis_cpu_s", num(".2f")),
            Column("Redis µs/event", "redis_us_per_event", num(".1f")),
            Column("node µs/event", "node_us_per_event", num(".0f")),
            Column("gen CPU s", "gen_cpu_s", num(".2f")),
            Column("box busy", "box_busy", pct),
            Column("same p50", "same_p50_ms", num(".2f")),
            Column("same p99", "same_p99_ms", num(".2f")),
            Column("cross p50", "cross_p50_ms", num(".2f")),
            Column("cross p99", "cross_p99_ms", num(".2f")),
            Column("lost", "lost", text),
            Column("dup", "duplicated", text),
        ),
        (Headline("deliv/CPU-s", "deliveries_per_cpu_s", True),),
    ),
    "cluster-dm": Kind(
        "Several nodes on one Redis: direct messages, each pair across two nodes",
        (
            Column("nodes", "nodes", text),
            Column("msgs/s", "deliveries_per_s", si),
            Column("msgs/CPU-s", "deliveries_per_cpu_s", si),
            Column("CPU s", "server_cpu_s", num(".2f")),
            Column("each node CPU s", "per_node_cpu", text),
            Column("Redis CPU s", "redis_cpu_s", num(".2f")),
            Column("Redis µs/event", "redis_us_per_event", num(".1f")),
            Column("events", "events", si),
            Column("gen CPU s", "gen_cpu_s", num(".2f")),
            Column("same p99", "same_p99_ms", num(".2f")),
            Column("cross p50", "cross_p50_ms", num(".2f")),
            Column("cross p99", "cross_p99_ms", num(".2f")),
            Column("lost", "lost", text),
        ),
        (Headline("msgs/CPU-s", "deliveries_per_cpu_s", True),),
    ),
    "stall": Kind(
        "Stalled member: the others' delivery rate without and with one member not reading",
        (
            Column("base deliv/s", "base_deliveries_per_s", si),
            Column("stalled deliv/s", "stalled_deliveries_per_s", si),
            Column("kept", "rate_kept", pct),
            Column("stalled p99 ms", "stalled_p99_ms", num(".1f")),
            Column("lost", "lost", text),
            Column("dropped", "victim_dropped", text),
            Column("backlog KiB", "victim_backlog_kib", num(".0f")),
            Column("how", "victim_reason", text),
        ),
        (Headline("kept", "rate_kept", True),),
    ),
    "scale": Kind(
        "Scale: concurrent registered connections held (answering PING)",
        (
            Column("opened", "opened", text),
            Column("registered", "registered", text),
            Column("held", "held", text),
            Column("seconds", "seconds", num(".1f")),
            Column("PING all s", "ping_all_s", num(".2f")),
            Column("RSS MiB", "rss_kib", kib_as_mib),
            Column("KiB/conn", "kib_per_conn", num(".1f")),
            Column("threads", "threads", text),
            Column("alive", "server_alive", text),
            Column("limit set", "server_limit", text),
            Column("note", "error", text),
        ),
        (Headline("held", "held", True), Headline("KiB/conn", "kib_per_conn", False)),
    ),
    "send": Kind(
        "chat send: one scripted send, process start to exit",
        (
            Column("median ms", "send_median_ms", num(".0f")),
            Column("min ms", "send_min_ms", num(".0f")),
            Column("python -c pass ms", "floor_median_ms", num(".0f")),
            Column("x floor", "ratio", num(".2f")),
            Column("failures", "failures", text),
        ),
        (),
    ),
}


def scenario_title(r: Result) -> str:
    kind = KINDS[r["kind"]]
    if r["kind"] in ("connect",):
        return f"{kind.title}, N={r['members']}"
    if r["kind"] == "fanout-closed":
        return f"{kind.title}, N={r['members']} S={r['senders']} (window {r['window']})"
    if r["kind"] == "fanout-rate":
        rate = si(r["rate_target"])
        return f"{kind.title} of {rate} deliveries/s, N={r['members']} S={r['senders']}"
    if r["kind"] == "dm":
        return f"{kind.title}: {r['pairs']} pairs, {r['window']} in flight each"
    if r["kind"] == "stall":
        return f"{kind.title}, N={r['members']} S={r['senders']}"
    if r["kind"] == "cluster":
        return (
            f"{kind.title}, N={r['members']} (member i on node i mod K) S={r['senders']} "
            f"(window {r.get('window')}); the chatcli row: one ordinary chat serve; CPU: "
            f"every node and Redis together"
        )
    if r["kind"] == "cluster-dm":
        return f"{kind.title}: {r.get('pairs')} pairs, {r.get('window')} in flight each"
    if r["kind"] == "websocket":
        ws = r.get("ws_members") or 0
        room = f"{r['members'] - ws} TCP + {ws} WS" if ws else f"{r['members']} TCP only"
        return (
            f"{kind.title}: {room}, S={r['senders']} TCP senders (window {r['window']}), "
            f"{r.get('subprotocol', '?')} messages"
        )
    if r["kind"] == "scale":
        return f"{kind.title}, cap {r['cap']}"
    return kind.title


def ratio(value: Any, base: Any) -> float:
    try:
        v, b = float(value), float(base)
    except (TypeError, ValueError):
        return float("nan")
    if math.isnan(v) or math.isnan(b) or b == 0:
        return float("nan")
    return v / b


def table(rows: Sequence[Result]) -> str:
    """A plain-text table for the results of one scenario (one row per server)."""
    kind = KINDS[rows[0]["kind"]]
    base = next((r for r in rows if r["server"] == "chatcli"), None)
    head = ["server", *(c.title for c in kind.columns)]
    if base is not None:
        head += [f"{h.title} X/chatcli" for h in kind.headlines]
    body: list[list[str]] = []
    for r in rows:
        if r.get("skipped"):
            body.append([r["server"], f"skipped: {r['skipped']}"])
            continue
        line = [r["server"], *(c.show(r.get(c.key)) for c in kind.columns)]
        if base is not None:
            for h in kind.headlines:
                x = ratio(r.get(h.key), base.get(h.key))
                line.append("-" if math.isnan(x) else f"{x:.2f}")
        body.append(line)
    # A skipped row's one long cell (why) runs over the columns rather than widening one.
    full = [head, *(row for row in body if len(row) == len(head))]
    widths = [max(len(row[i]) for row in full) for i in range(len(head))]
    out = [scenario_title(rows[0])]
    out.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for row in body:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
    return "\n".join(out)


def markdown(rows: Sequence[Result]) -> str:
    """The same table in Markdown, for the README."""
    kind = KINDS[rows[0]["kind"]]
    base = next((r for r in rows if r["server"] == "chatcli"), None)
    head = ["server", *(c.title for c in kind.columns)]
    if base is not None:
        head += [f"{h.title} X/chatcli" for h in kind.headlines]
    out = [f"**{scenario_title(rows[0])}**", "", "| " + " | ".join(head) + " |"]
    out.append("|" + "---|" * len(head))
    for r in rows:
        if r.get("skipped"):
            out.append(f"| {r['server']} | skipped: {r['skipped']} |")
            continue
        line = [r["server"], *(c.show(r.get(c.key)) for c in kind.columns)]
        if base is not None:
            for h in kind.headlines:
                x = ratio(r.get(h.key), base.get(h.key))
                line.append("-" if math.isnan(x) else f"{x:.2f}")
        out.append("| " + " | ".join(line) + " |")
    return "\n".join(out)


def behind(groups: Sequence[Sequence[Result]], margin: float = 0.10) -> list[str]:
    """Plain sentences for every headline metric on which a peer beats chatcli by more
    than ``margin``."""
    notes: list[str] = []
    for rows in groups:
        kind = KINDS[rows[0]["kind"]]
        base = next((r for r in rows if r["server"] == "chatcli" and not r.get("skipped")), None)
        if base is None:
            continue
        for h in kind.headlines:
            for r in rows:
                if r is base or r.get("skipped"):
                    continue
                x = ratio(r.get(h.key), base.get(h.key))
                if math.isnan(x):
                    continue
                better = x > 1 + margin if h.higher else x < 1 - margin
                if better:
                    notes.append(
                        f"{scenario_title(rows[0])}: {h.title} chatcli {fmt(base.get(h.key))}"
                        f" vs {r['server']} {fmt(r.get(h.key))} ({r['server']}/chatcli {x:.2f})"
                    )
    return notes


def fmt(x: Any) -> str:
    if isinstance(x, float) and abs(x) < 1000:
        return f"{x:.3g}"
    return si(x) if isinstance(x, int | float) else str(x)
