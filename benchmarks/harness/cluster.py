"""Several ``chat serve --cluster`` nodes on one Redis, measured as one server
(``bench.py --scenarios cluster``).

* :class:`RedisServer`: a ``redis-server`` of the harness's own, on 127.0.0.1 and a free
  port, in a temporary directory, keeping nothing (``--save "" --appendonly no``); a few
  commands spoken to it directly (RESP over a socket: FLUSHALL, XINFO, INFO).
* :class:`Nodes`: K chatcli nodes and the Redis they share, with what the scenarios ask of
  a server (``cpu``: all of them together; ``cpu_parts``: each one's; ``pids``;
  ``status``: summed RSS), so that :func:`~harness.scenarios.fanout` measures the whole.
* :func:`cluster_room`: N members of #bench, member i on node i mod K.
* :func:`cluster_fanout`, :func:`cluster_direct`: the closed-loop fan-out and the direct
  messages of the single-server scenarios, with latency split between receivers on the
  sender's node ("same") and on another node ("cross"), and the stream's events counted
  in Redis, so that per-event costs can be worked out.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .loadgen import READY, Client, Generator
from .measure import cpu_seconds, proc_status
from .scenarios import Result, Settings, direct, fanout, percentiles
from .servers import HOST, RunningServer, ServerProcess, ServerSpec, free_port, terminate

REDIS_SERVER = "/usr/bin/redis-server"
#: The stream every node publishes to and reads (chatcli's default network name).
STREAM_MATCH = "chatcli:*:events"


def find_redis(given: str | None = None) -> str | None:
    """``given``, or redis-server on PATH, or Debian's."""
    if given:
        return given if os.access(given, os.X_OK) else None
    found = shutil.which("redis-server")
    if found:
        return found
    return REDIS_SERVER if os.access(REDIS_SERVER, os.X_OK) else None


# -- Redis ----------------------------------------------------------------------------------


class RespError(Exception):
    """Redis answered a command with an error."""


def _encode(args: Sequence[str | bytes | int]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Reader:
    """Reads one RESP reply from a blocking socket (with a timeout)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _line(self) -> bytes:
        for _ in range(10_000):  # bounded: each pass reads more, or returns
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2 :]
                return line
            self._more()
        raise RespError("reply line too long")

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("redis closed the connection")
        self.buf += data

    def reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"("):
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._more()
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data.decode(errors="replace")
        if kind in (b"*", b"%"):
            n = int(rest)
            if n < 0:
                return None
            return [self.reply() for _ in range(n * (2 if kind == b"%" else 1))]
        raise RespError(f"unexpected reply {line[:40]!r}")


class RedisServer(ServerProcess):
    """The cluster's Redis: the harness's own process; use as a context manager."""

    def __init__(self, workdir: Path, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        self.dir = workdir / f"redis-{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.version = ""

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def __enter__(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.executable,
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--protected-mode",
            "no",
        ]
        with open(self.dir / "redis.log", "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at start: {self.log_tail()}")
            try:
                if self.command("PING") == "PONG":
                    info = self.command("INFO", "server")
                    for line in str(info).splitlines():
                        if line.startswith("redis_version:"):
                            self.version = "redis " + line.split(":", 1)[1].strip()
                    return self
            except (OSError, RespError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer within 15 s")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 8.0)

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.dir / "redis.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def command(self, *args: str | int) -> Any:
        """One command on a connection of its own (a few per phase: its cost is nothing)."""
        with socket.create_connection((HOST, self.port), timeout=5.0) as sock:
            sock.sendall(_encode(args))
            return _Reader(sock).reply()

    def cpu(self) -> float:
        try:
            return cpu_seconds(self.pid)
        except (OSError, ValueError):
            return float("nan")

    def stream_counts(self) -> dict[str, int]:
        """Entries ever added to the cluster's stream, and the XADD / XREAD calls so far."""
        out = {"entries_added": 0, "xadd_calls": 0, "xread_calls": 0}
        keys = self.command("KEYS", STREAM_MATCH) or []
        for key in keys:
            info = self.command("XINFO", "STREAM", key)
            fields = dict(zip(info[::2], info[1::2], strict=False))
            out["entries_added"] += int(fields.get("entries-added", fields.get("length", 0)))
        stats = str(self.command("INFO", "commandstats"))
        for line in stats.splitlines():
            for cmd in ("xadd", "xread"):
                if line.startswith(f"cmdstat_{cmd}:"):
                    calls = line.split("calls=", 1)[1].split(",", 1)[0]
                    out[f"{cmd}_calls"] = int(calls)
        return out


# -- the nodes ------------------------------------------------------------------------------


def node_spec(spec: ServerSpec, url: str) -> ServerSpec:
    """``spec`` (chatcli) as one node of the cluster on ``url``."""
    return dataclasses.replace(spec, extra_args=(*spec.extra_args, "--cluster", url))


class Nodes:
    """K running nodes and their Redis, measured as one server."""

    def __init__(self, nodes: Sequence[RunningServer], redis: RedisServer | None) -> None:
        self.nodes = list(nodes)
        self.redis = redis

    @property
    def pid(self) -> int:
        return self.nodes[0].pid

    @property
    def pids(self) -> list[int]:
        extra = [self.redis.pid] if self.redis is not None else []
        return [n.pid for n in self.nodes] + extra

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def cpu_parts(self) -> dict[str, float]:
        parts = {f"node{i}": n.cpu() for i, n in enumerate(self.nodes)}
        if self.redis is not None:
            parts["redis"] = self.redis.cpu()
        return parts

    def cpu(self) -> float:
        return sum(self.cpu_parts().values())

    def status(self) -> dict[str, int]:
        out = {"rss_kib": 0, "threads": 0}
        for pid in self.pids:
            try:
                st = proc_status(pid)
            except OSError:
                continue
            out["rss_kib"] += st["rss_kib"]
            out["threads"] += st["threads"]
        return out

    def alive(self) -> bool:
        return all(n.alive() for n in self.nodes) and (self.redis is None or self.redis.alive())

    def log_tail(self) -> str:
        return " / ".join(n.log_tail(2) for n in self.nodes if not n.alive())


def node_of(c: Client, ports: Sequence[int]) -> int:
    return ports.index(c.port) if c.port in ports else 0


def cluster_room(gen: Generator, nodes: Nodes, n: int, settle: float = 60.0) -> Result:
    """Join ``n`` members to #bench, member i on node i mod K; then wait (at most ``settle``
    seconds) until the JOIN storm is over: nothing read for a second, every node quiet."""
    t0 = time.monotonic()
    res = gen.connect(
        n,
        "m",
        window=1000,
        accept_window=4,
        deadline=time.monotonic() + 90.0,
        ports=nodes.ports,
    )
    joined = [c for c in res.clients if c.state == READY and not c.closed]
    end = time.monotonic() + settle
    quiet_since = time.monotonic()
    last = (sum(c.nbytes for c in joined), nodes.cpu())
    while time.monotonic() < end:
        gen.poll(0.1)
        now = (sum(c.nbytes for c in joined), nodes.cpu())
        if now[0] != last[0] or now[1] - last[1] > 0.02:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 1.0:
            break
        last = now
    return {
        "members": n,
        "joined": len(joined),
        "connect_s": res.seconds,
        "settled_s": time.monotonic() - t0,
        "connect_error": res.first_error,
        "clients": joined,
    }


def _split_latency(
    probes: Sequence[Client], senders: Sequence[Client], ports: Sequence[int]
) -> Result:
    """Latency samples of ``probes``, split by whether the message's sender was on the
    probe's node (``same_``) or on another one (``cross_``)."""
    sender_node = [node_of(s, ports) for s in senders]
    same: list[int] = []
    cross: list[int] = []
    for p in probes:
        mine = node_of(p, ports)
        for lat, sid in zip(p.lat or (), p.lat_sid or (), strict=False):
            (same if 0 <= sid < len(sender_node) and sender_node[sid] == mine else cross).append(
                lat
            )
    out: Result = {}
    for name, samples in (("same", same), ("cross", cross)):
        out.update({f"{name}_{k}": v for k, v in percentiles(samples).items()})
    return out


def _events(nodes: Nodes) -> dict[str, int]:
    if nodes.redis is None:
        return {}
    try:
        return nodes.redis.stream_counts()
    except (OSError, RespError):
        return {}


def _with_costs(result: Result, nodes: Nodes, before: dict[str, int]) -> Result:
    """Add the stream's events of the phase and the per-event and per-delivery costs."""
    after = _events(nodes)
    k = len(nodes.nodes)
    node_cpu = sum(result.get(f"node{i}_cpu_s", 0.0) for i in range(k))
    redis_cpu = result.get("redis_cpu_s", 0.0)
    result["nodes"] = k
    result["nodes_cpu_s"] = node_cpu
    result["per_node_cpu"] = " / ".join(
        f"{result.get(f'node{i}_cpu_s', float('nan')):.2f}" for i in range(k)
    )
    deliveries = result.get("deliveries") or 0
    result["us_per_delivery"] = 1e6 * result["server_cpu_s"] / deliveries if deliveries else None
    if after and before:
        events = after["entries_added"] - before["entries_added"]
        result["events"] = events
        result["xadd_calls"] = after["xadd_calls"] - before["xadd_calls"]
        result["xread_calls"] = after["xread_calls"] - before["xread_calls"]
        if events > 0:
            result["redis_us_per_event"] = 1e6 * redis_cpu / events
            result["node_us_per_event"] = 1e6 * node_cpu / k / events
    return result


def cluster_fanout(
    gen: Generator,
    nodes: Nodes,
    members: Sequence[Client],
    senders: Sequence[Client],
    st: Settings,
) -> Result:
    """The closed-loop fan-out of :func:`~harness.scenarios.fanout` over the nodes: probes
    on every node (as many on each as a single server gets), latency split by whether the
    sender is on the receiver's node; every process's CPU; the stream's events."""
    ports = nodes.ports
    groups = {f"n{i}": [c for c in members if c.port == p] for i, p in enumerate(ports)}
    before = _events(nodes)
    result = fanout(gen, nodes, members, senders, "closed", st, groups=groups)  # type: ignore[arg-type]
    probes = [c for c in members if c.lat_sid is not None]
    result.update(_split_latency(probes, senders, ports))
    result["sender_nodes"] = ",".join(str(node_of(s, ports)) for s in senders)
    return _with_costs(result, nodes, before)


class _Pairs:
    """What :func:`~harness.scenarios.direct` takes its senders, then its receivers, from."""

    def __init__(self, senders: list[Client], receivers: list[Client]) -> None:
        self.lists = [senders, receivers]

    def take(self, k: int) -> list[Client]:
        return self.lists.pop(0)[:k]


def dm_pairs(
    members: Sequence[Client], ports: Sequence[int], pairs: int, skip: set[Client]
) -> tuple[list[Client], list[Client]]:
    """``pairs`` senders, and for each a receiver on the next node (the same one if there is
    only one), none of them in ``skip``."""
    k = len(ports)
    by_node: list[list[Client]] = [[] for _ in ports]
    for c in members:
        if c not in skip and not c.closed:
            by_node[node_of(c, ports)].append(c)
    senders: list[Client] = []
    receivers: list[Client] = []
    for i in range(pairs):
        a, b = i % k, (i + 1) % k
        senders.append(by_node[a].pop(0))
        receivers.append(by_node[b].pop())  # (from the end: never one of the senders)
    return senders, receivers


def cluster_direct(
    gen: Generator,
    nodes: Nodes,
    members: Sequence[Client],
    used: set[Client],
    st: Settings,
) -> Result:
    """Direct messages between pairs, each receiver on another node than its sender (with
    K = 1, the same node): :func:`~harness.scenarios.direct`, every process's CPU, and the
    stream's events."""
    ports = nodes.ports
    senders, receivers = dm_pairs(members, ports, st.pairs, used)
    used.update(senders)
    used.update(receivers)
    before = _events(nodes)
    result = direct(gen, nodes, members, _Pairs(senders, receivers), st)  # type: ignore[arg-type]
    cross = [
        lat
        for s, r in zip(senders, receivers, strict=True)
        if node_of(s, ports) != node_of(r, ports)
        for lat in r.lat or ()
    ]
    same = [
        lat
        for s, r in zip(senders, receivers, strict=True)
        if node_of(s, ports) == node_of(r, ports)
        for lat in r.lat or ()
    ]
    for name, samples in (("same", same), ("cross", cross)):
        result.update({f"{name}_{k}": v for k, v in percentiles(samples).items()})
    result["members"] = len(members)
    result["senders"] = len(senders)
    return _with_costs(result, nodes, before)
