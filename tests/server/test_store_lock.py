"""One server per database: a second ``chat serve`` (or a second Store in the same process)
on a file in use is refused with one line that names the file and the process holding it;
the lock goes with the store that held it, however that ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatcli.server.store import Store, StoreError

HOLD = """
import sys
from pathlib import Path
from chatcli.server.store import Store
store = Store(Path(sys.argv[1]))
store.open()
print("holding", flush=True)
sys.stdin.read()
store.close()
"""


def test_a_second_store_in_the_same_process_is_refused(tmp_path: Path):
    path = tmp_path / "chat.db"
    first = Store(path)
    first.open()
    try:
        second = Store(path)
        with pytest.raises(StoreError) as refused:
            second.open()
        assert str(refused.value).startswith(f"{path} is in use by another chat serve")
        assert f"(pid {os.getpid()})" in str(refused.value)
        assert not second.is_open
    finally:
        first.close()
    again = Store(path)  # released on close
    again.open()
    again.close()


@pytest.fixture
def holder(tmp_path: Path):
    """Another process that holds the database ``tmp_path/chat.db`` open."""
    path = tmp_path / "chat.db"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == "holding\n"
        yield path, process
    finally:
        process.kill()
        process.wait(10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def test_a_database_another_process_holds_is_refused_with_its_pid(holder):
    path, process = holder
    store = Store(path)
    with pytest.raises(StoreError) as refused:
        store.open()
    assert f"{path} is in use by another chat serve (pid {process.pid})" in str(refused.value)


def test_a_second_chat_serve_is_refused_with_one_line(holder):
    path, process = holder
    done = subprocess.run(
        [sys.executable, "-m", "chatcli", "serve", "--port", "0", "--db", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(path) in lines[0] and f"pid {process.pid}" in lines[0]


def test_the_lock_goes_with_a_process_that_is_killed(holder):
    path, process = holder
    process.kill()  # no close(): the system lets the lock go
    process.wait(10)
    store = Store(path)
    store.open()
    store.close()
