"""The backbone is the one way deliveries and shared-state changes go: outside it (the
in-process backbone, ``state.py``; the cluster's, ``cluster.py``) and the person it
delivers to (``connection.py``), no
server module writes to another client's send queue, relays to a client, or changes the
nick, room or connection tables by itself. (A cluster backbone then needs to implement
only the backbone.)"""

from __future__ import annotations

import ast
from pathlib import Path

from chatcli.server.backbone import Backbone
from chatcli.server.state import World

SERVER = Path(__file__).resolve().parents[2] / "src" / "chatcli" / "server"
#: The backbone's implementation (the world and the rooms it keeps), and the client end of
#: a delivery.
INSIDE = {"state.py", "channel.py", "backbone.py", "cluster.py", "connection.py"}
DELIVERIES = {"relay", "deliver", "relay_to", "broadcast"}
TABLES = {"nicks", "channels", "connections", "members", "watchers"}


def _ends_in_world(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "world") or (
        isinstance(node, ast.Attribute) and node.attr == "world"
    )


def offences(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            func = node.func
            if func.attr in DELIVERIES and not _ends_in_world(func.value):
                found.append(f"{ast.unparse(func)}(...) outside the backbone")
            if func.attr == "put" and ast.unparse(func.value).endswith("sendq"):
                found.append(f"{ast.unparse(func)}(...): a send queue written directly")
            if (
                func.attr in {"add", "discard", "remove", "pop", "clear", "update"}
                and isinstance(func.value, ast.Attribute)
                and func.value.attr in TABLES
            ):
                found.append(f"{ast.unparse(func)}(...): a shared table changed directly")
            if func.attr in {"add", "remove"} and ast.unparse(func.value) == "channel":
                found.append(f"{ast.unparse(func)}(...): a room's members changed directly")
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else []
        for target in targets:
            if (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Attribute)
                and target.value.attr in TABLES
            ):
                found.append(f"{ast.unparse(target)}: a shared table changed directly")
    return found


def test_nothing_outside_the_backbone_delivers_or_changes_shared_tables():
    found = {}
    for path in sorted(SERVER.rglob("*.py")):
        if path.name in INSIDE:
            continue
        if problems := offences(ast.parse(path.read_text())):
            found[str(path.relative_to(SERVER))] = problems
    assert found == {}


def test_the_check_sees_what_it_forbids():
    code = """
peer.relay(relay)
conn.sendq.put(data)
world.nicks[folded] = conn
del conn.world.channels[name]
world.connections.add(conn)
channel.add(conn, set())
world.relay_to(peers, relay, actor=conn)
conn.world.deliver(conn, data)
"""
    assert len(offences(ast.parse(code))) == 6


def test_the_in_process_backbone_is_the_world():
    assert issubclass(World, Backbone)
    missing = [
        name
        for name, value in vars(Backbone).items()
        if callable(value) and not name.startswith("_") and name not in vars(World)
    ]
    assert missing == []
