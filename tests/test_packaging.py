"""What users install works on its own: the sdist and the wheel are built from this tree,
the wheel is installed into a fresh virtual environment, and the `chat` it brings runs a
server that its own `chat send` talks to. Real builds, a real install (the dependencies
from the package index, as any user gets them) and real processes on loopback."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(300)


def run(*args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, ROOT)
    assert built.returncode == 0, built.stderr[-2000:]
    return out


def test_the_sdist_and_wheel_carry_the_distribution_name_and_the_web_client(dist: Path):
    (wheel,) = dist.glob("chatcli_irc-*.whl")
    (sdist,) = dist.glob("chatcli_irc-*.tar.gz")
    assert sdist.stat().st_size > 0
    names = set(zipfile.ZipFile(wheel).namelist())
    for part in ("index.html", "app.js", "irc.js", "app.css"):
        assert f"chatcli/web/{part}" in names
    assert "chatcli/py.typed" in names


def test_the_installed_wheel_serves_and_sends_on_its_own(dist: Path, tmp_path: Path):
    (wheel,) = dist.glob("chatcli_irc-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    installed = run(bin_dir / "python", "-m", "pip", "install", "-q", wheel, timeout=240)
    assert installed.returncode == 0, installed.stderr[-2000:]
    chat = bin_dir / "chat"
    assert run(chat, "--version").stdout.startswith("chat, version ")
    server = subprocess.Popen(
        [chat, "serve", "--host", "127.0.0.1", "--port", "0", "--no-db"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,  # (not this checkout: nothing of it may be imported)
    )
    try:
        port = None
        for _ in range(20):  # its first lines say where it listens
            line = server.stdout.readline() if server.stdout else ""
            if match := re.search(r"127\.0\.0\.1:(\d+)", line):
                port = match.group(1)
                break
        assert port is not None, "chat serve did not say where it listens"
        sent = run(
            chat, "send", "--port", port, "--alias", "packaged", "from the wheel", timeout=30
        )
        assert sent.returncode == 0, sent.stderr
        where = run(bin_dir / "python", "-c", "import chatcli; print(chatcli.__file__)")
        assert str(env_dir) in where.stdout  # the wheel's chatcli, not the checkout's
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout:
            server.stdout.close()
