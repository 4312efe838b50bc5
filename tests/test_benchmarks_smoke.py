"""benchmarks/ in a few seconds each, so that neither the benchmark nor the soak rots.

Each script runs as a subprocess with a hard timeout against chatcli alone (the peers,
ngircd, InspIRCd and miniircd, may not be installed), on 127.0.0.1, with the smallest
settings it takes; the figures it prints must parse and say that nothing was lost. The
import graph of benchmarks/ must have no cycle, and every module must import on its own.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = ("bench", "soak", "adversary", "startup")
#: The two libraries the scripts share or own; nothing in them may import a script.
PACKAGES = ("harness", "soaklib")
HARD_TIMEOUT = 30.0

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the benchmarks read /proc"
)


def modules() -> dict[str, Path]:
    """Every module of benchmarks/ by its import name (``bench``, ``harness.servers``)."""
    out = {name: BENCH / f"{name}.py" for name in SCRIPTS}
    for package in PACKAGES:
        for path in sorted((BENCH / package).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            out[name] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of benchmarks/ that ``name`` imports anywhere in it: at the top, inside
    functions, under TYPE_CHECKING (a cycle through type hints is a cycle too)."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # ``from harness import servers`` imports harness.servers.
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as a list of names, or [] if it has none."""
    state: dict[str, int] = {}  # 1: on the path being explored, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_import_graph_has_no_cycle() -> None:
    mods = modules()
    assert {"harness.servers", "harness.loadgen", "soaklib.agents", "soaklib.ledger"} <= set(mods)
    graph = {name: imports_of(name, path, set(mods)) for name, path in mods.items()}
    assert find_cycle(graph) == []
    # The scripts are the top: no module imports one (bench.py once lent soak.py and
    # adversary.py its helpers); the shared harness knows nothing of the soak's parts.
    for name, deps in graph.items():
        assert not deps & set(SCRIPTS), f"{name} imports a script: {deps & set(SCRIPTS)}"
        if name.startswith("harness"):
            assert not any(d.startswith("soaklib") for d in deps), f"{name} imports soaklib"
    assert "harness.servers" in graph["bench"] and "harness.servers" in graph["soaklib.server"]


def test_every_module_imports_alone() -> None:
    """Each module in a fresh interpreter (the order of imports cannot hide a cycle)."""
    for name in modules():
        code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); import {name}"
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=HARD_TIMEOUT,
            check=False,
        )
        assert out.returncode == 0, f"import {name}: {out.stderr[-2000:]}"


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), *args],
        capture_output=True,
        text=True,
        timeout=HARD_TIMEOUT,
        check=False,
        cwd=BENCH.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert out.returncode == 0, (
        f"{script}.py exit {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    )
    return out


def results(path: Path) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {row["scenario"]: row for row in rows}


@linux_only
def test_bench_smoke(tmp_path: Path) -> None:
    jsonl = tmp_path / "bench.jsonl"
    out = run(
        "bench",
        "--quick",
        "--servers", "chatcli",
        "--scenarios", "connect,fanout,scale",
        "--members", "30",
        "--senders", "1",
        "--duration", "1",
        "--drain", "3",
        "--max-conns", "40",
        "--quiet-wait", "0",
        "--json", str(jsonl),
    )  # fmt: skip
    rows = results(jsonl)
    assert set(rows) == {"connect/N=30", "fanout-closed/N=30/S=1", "scale"}, out.stderr
    assert not any(r.get("skipped") for r in rows.values()), rows
    connect = rows["connect/N=30"]
    assert connect["ready"] == 30 and connect["error"] == ""
    fanout = rows["fanout-closed/N=30/S=1"]
    assert isinstance(fanout["messages"], int) and fanout["messages"] > 0
    assert fanout["deliveries"] == fanout["messages"] * 29
    assert fanout["lost"] == 0 and fanout["duplicated"] == 0
    assert float(fanout["deliveries_per_s"]) > 0  # type: ignore[arg-type]
    scale = rows["scale"]
    assert scale["held"] == 40 and scale["server_limit"] == "max_clients=1040"
    # The printed report: the tables, and what chatcli's connection limit was.
    assert "Fan-out, closed loop, N=30 S=1" in out.stdout
    assert "chatcli: ran with max_clients = 1040 (chat serve --config)" in out.stdout
    assert "lost" in out.stdout and "chatcli" in out.stdout


@linux_only
def test_bench_scale_passes_max_clients(tmp_path: Path) -> None:
    """The limit the harness gives chatcli is the one it keeps: 20 of 30 get in."""
    jsonl = tmp_path / "scale.jsonl"
    run(
        "bench",
        "--quick",
        "--servers", "chatcli",
        "--scenarios", "scale",
        "--max-conns", "30",
        "--max-clients", "20",
        "--quiet-wait", "0",
        "--json", str(jsonl),
    )  # fmt: skip
    scale = results(jsonl)["scale"]
    assert scale["server_limit"] == "max_clients=20"
    assert scale["registered"] == 20 and scale["held"] == 20


@linux_only
def test_soak_smoke(tmp_path: Path) -> None:
    jsonl = tmp_path / "soak.jsonl"
    out = run(
        "soak",
        "--seconds", "5",
        "--clients", "20",
        "--interval", "1",
        "--talk-every", "1",
        "--seed", "7",
        "--json", str(jsonl),
    )  # fmt: skip
    summary = json.loads(jsonl.read_text(encoding="utf-8").splitlines()[-1])
    assert summary["sent"] > 0 and summary["delivered"] > 0 and summary["expected"] > 0
    for key in ("lost", "duplicated", "reordered", "misrouted", "stray", "corrupt"):
        assert summary[key] == 0, (key, summary)
    assert summary["failed"] == []
    assert summary["connections"] >= 20
    # The printed summary says the same.
    line = next(x for x in out.stdout.splitlines() if "lost / duplicated / reordered" in x)
    assert line.split()[-5:] == ["0", "/", "0", "/", "0"]
    assert "OK: nothing lost" in out.stdout


@linux_only
def test_startup_smoke() -> None:
    out = run("startup", "--reps", "2", "--json")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["failures"] == 0 and result["reps"] == 2
    assert result["floor_median_ms"] > 0 and result["send_median_ms"] > 0


@linux_only
def test_adversary_smoke(tmp_path: Path) -> None:
    path = tmp_path / "adversary.json"
    out = run(
        "adversary",
        "--quick",
        "--members", "10",
        "--only", "^(ping|names-big)$",
        "--no-hashes",
        "--idle", "0.5",
        "--json", str(path),
    )  # fmt: skip
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = {row["key"]: row for row in data["rows"]}
    assert set(rows) == {"ping", "names-big"}
    assert all(row["n"] >= 1 and row["error"] == "" for row in rows.values()), rows
    assert all(row["cpu_ms_median"] >= 0 for row in rows.values())
    assert "Control pair p99 over the whole attack" in out.stdout
