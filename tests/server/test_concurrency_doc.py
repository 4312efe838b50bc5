"""docs/concurrency.md stays honest: every thread the server starts, every lock it makes
and every supervised role is named there, and the package points to it. (issue "server
core, second design")

Read from the source with ``ast``, so a new thread or lock fails here until it is
documented. Cheap: no server is started.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "src" / "chatcli" / "server"
DOC = ROOT / "docs" / "concurrency.md"

#: The constructors of locks (and latches, conditions, events) in :mod:`threading`.
LOCKS = {"Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event"}


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(SERVER.rglob("*.py"))]


def _called(node: ast.AST) -> str | None:
    """The name a call calls (``threading.Lock()`` and ``Lock()`` both: ``Lock``)."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _thread_names() -> dict[str, str]:
    """Each ``Thread(..., name=...)`` in the server: its name (an f-string's constant
    start, such as ``conn ``) -> where it is made; an unnamed one is listed as such."""
    found: dict[str, str] = {}
    for path, tree in _modules():
        for node in ast.walk(tree):
            if _called(node) != "Thread":
                continue
            assert isinstance(node, ast.Call)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            name = next((k.value for k in node.keywords if k.arg == "name"), None)
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found[name.value] = where
            elif isinstance(name, ast.JoinedStr) and isinstance(name.values[0], ast.Constant):
                found[str(name.values[0].value)] = where
            else:
                found[f"<unnamed thread at {where}>"] = where
    return found


def _locks() -> dict[str, str]:
    """Each lock the server makes: ``Class.attribute`` (``self.x = threading.Lock()`` in a
    method) or a module-level name -> where it is made. A local variable (a lock that two
    Conditions share, say) is named by what it is stored in."""
    found: dict[str, str] = {}
    for path, tree in _modules():
        for cls in [n for n in tree.body if isinstance(n, ast.ClassDef)]:
            for node in ast.walk(cls):
                if isinstance(node, ast.Assign) and _called(node.value) in LOCKS:
                    for target in node.targets:
                        if (
                            isinstance(target, ast.Attribute)
                            and isinstance(target.value, ast.Name)
                            and target.value.id == "self"
                        ):
                            found[f"{cls.name}.{target.attr}"] = f"{path.name}:{node.lineno}"
        for node in tree.body:
            if isinstance(node, ast.Assign) and _called(node.value) in LOCKS:
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = f"{path.name}:{node.lineno}"
    return found


def _supervised_roles() -> dict[str, str]:
    """Each ``Supervisor("<role>", ...)``: its role -> where it is made."""
    found: dict[str, str] = {}
    for path, tree in _modules():
        for node in ast.walk(tree):
            if _called(node) == "Supervisor" and isinstance(node, ast.Call) and node.args:
                role = node.args[0]
                if isinstance(role, ast.Constant) and isinstance(role.value, str):
                    found[role.value] = f"{path.name}:{node.lineno}"
    return found


def test_the_source_is_read_as_expected():
    # (Else the tests below would pass on nothing found.)
    assert {"flusher", "housekeeping", "store", "tls refusals", "conn "} <= set(_thread_names())
    assert {"WorldLock._lock", "Flusher._busy", "Store._read_lock", "_QUIT_LOCK"} <= set(_locks())
    assert {"accept", "housekeeping", "flusher", "tls refusals"} <= set(_supervised_roles())


def test_every_thread_is_named_and_in_the_document():
    doc = DOC.read_text()
    unnamed = [name for name in _thread_names() if name.startswith("<unnamed")]
    assert not unnamed, "give every thread a name=, and list it in docs/concurrency.md"
    missing = {name: where for name, where in _thread_names().items() if f"`{name}" not in doc}
    assert not missing, f"threads not in docs/concurrency.md: {missing}"


def test_every_lock_is_in_the_document():
    doc = DOC.read_text()
    missing = {name: where for name, where in _locks().items() if f"`{name}`" not in doc}
    assert not missing, f"locks (and events) not in docs/concurrency.md: {missing}"


def test_every_supervised_role_is_in_the_document():
    doc = DOC.read_text()
    missing = {role: where for role, where in _supervised_roles().items() if f"`{role}`" not in doc}
    assert not missing, f"supervised roles not in docs/concurrency.md: {missing}"


def test_the_document_is_linked():
    assert "docs/concurrency.md" in (ROOT / "README.md").read_text()
    state = ast.get_docstring(ast.parse((SERVER / "state.py").read_text())) or ""
    assert "docs/concurrency.md" in state
