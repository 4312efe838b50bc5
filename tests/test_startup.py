"""What ``chat send`` imports on its quick path, the everyday form that scripts run.

Its start-up time is mostly imports, and a stray one (click, the full-screen client, TLS)
undoes the work of keeping them few without any test noticing. So these tests pin the
modules it must not import; the time itself is measured by ``benchmarks/startup.py``, not
here (a test that times would fail on a busy machine).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chatcli.defaults import default_alias

#: Modules ``chat send`` and ``chat tail`` have no use for: the command-line library, the
#: full-screen client and its settings, the server, TLS, and standard modules only those
#: need (``dataclasses`` pulls in ``inspect``; ``getpass`` pulls in ``termios``).
HEAVY = (
    "asyncio",
    "base64",
    "encodings.idna",
    "typing",
    "click",
    "dataclasses",
    "getpass",
    "inspect",
    "platformdirs",
    "prompt_toolkit",
    "rich",
    "sqlite3",
    "ssl",
    "textual",
    "tomlkit",
    "tomllib",
    "chatcli.cli",
    "chatcli.client.app",
    "chatcli.client.fullscreen",
    "chatcli.client.input",
    "chatcli.client.render",
    "chatcli.client.trust",
    "chatcli.config",
    "chatcli.protocol.masks",
    "chatcli.server",
    "chatcli.settings",
)


def imported_by(code: str) -> set[str]:
    """The modules in ``sys.modules`` after a fresh interpreter runs ``code``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    script = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    return set(out.split())


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_the_quick_path_imports_nothing_heavy() -> None:
    modules = imported_by("import chatcli.entry, chatcli.client.oneshot")
    assert "chatcli.client.session" in modules  # (the check itself works)
    assert heavy_in(modules) == []


def test_a_whole_quick_send_imports_nothing_heavy() -> None:
    """``chat send`` run to its end: here a refused connection (port 1 on the loopback),
    which goes through parsing, the alias, connecting and the error message."""
    modules = imported_by(
        "from chatcli.entry import main\n"
        "try:\n"
        "    main(['send', '--port', '1', '--to', '#x', 'hi'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 3, exc.code\n"
    )
    assert "chatcli.client.oneshot" in modules
    assert heavy_in(modules) == []


def test_chat_tail_imports_no_full_screen_client() -> None:
    """``chat tail`` goes through click (unlike ``chat send``'s quick path), and rich is
    imported only once it prints text; the rest of :data:`HEAVY` it must not import."""
    modules = imported_by("import chatcli.cli, chatcli.client.tail")
    assert "chatcli.client.tail" in modules
    allowed = ("click", "chatcli.cli", "chatcli.config", "dataclasses", "inspect", "typing")
    heavy = [m for m in heavy_in(modules) if not any(m.startswith(a) for a in allowed)]
    assert heavy == []


def test_the_mask_names_load_on_first_use() -> None:
    """chatcli.protocol loads its wildcard masks when first asked for them."""
    import chatcli.protocol as protocol
    from chatcli.protocol import masks

    assert protocol.Mask is masks.Mask
    assert protocol.compile_mask is masks.compile_mask
    assert protocol.mask_match is masks.mask_match
    assert {"Mask", "compile_mask", "mask_match"} <= set(dir(protocol))
    for name in protocol.__all__:
        assert getattr(protocol, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = protocol.no_such_name


@pytest.mark.parametrize(
    ("login", "alias"),
    [
        ("alice", "alice"),
        ("Bob_the-[1]", "Bob_the-[1]"),
        ("jean.dupont@example", "jeandupontexample"),
        ("élodie", "lodie"),
        ("1st", "guest"),  # an alias does not start with a digit
        ("-x", "guest"),  # nor with '-'
        ("...", "guest"),
        ("a" * 30, "a" * 20),
        ("`^{|}\\", "`^{|}\\"),
    ],
)
def test_the_default_alias_is_the_login_name_made_valid(
    monkeypatch: pytest.MonkeyPatch, login: str, alias: str
) -> None:
    for var in ("USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LOGNAME", login)
    assert default_alias() == alias
