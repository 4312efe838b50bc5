"""Private files and directories (chatcli.files): what chatcli creates is its owner's alone,
whatever the umask, and the umask is left as it was; what exists is narrowed only when it is
chatcli's own, and otherwise said to be open."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatcli import files
from chatcli.files import (
    create_private,
    how_to_fix,
    open_private,
    private_dir,
    private_file,
    readable_by_others,
)
from tests.conftest import posix_only


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def current_umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The usual umask (022, which leaves new files readable by all) for the test, or the
    one it is parametrised with; the one before is back after, and the test changed none."""
    wanted = getattr(request, "param", 0o022)
    before = os.umask(wanted)
    try:
        yield wanted
        assert current_umask() == wanted, "the umask was changed"
    finally:
        os.umask(before)


@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077, 0o277], indirect=True)
def test_a_new_directory_and_its_missing_parents_are_0700_whatever_the_umask(tmp_path, umask):
    tmp_path.chmod(0o755)
    path = tmp_path / "a" / "b" / "c"
    assert private_dir(path) == path
    assert [mode(p) for p in (path, path.parent, path.parent.parent)] == [0o700] * 3
    assert mode(tmp_path) == 0o755  # what was there is not ours


@posix_only
def test_an_existing_directory_is_left_as_it_is_unless_it_is_ours(tmp_path, umask):
    chosen = tmp_path / "chosen"
    chosen.mkdir(mode=0o755)
    chosen.chmod(0o755)
    private_dir(chosen)
    assert mode(chosen) == 0o755
    assert readable_by_others(chosen)
    private_dir(chosen, tighten=True)
    assert mode(chosen) == 0o700
    assert not readable_by_others(chosen)


@posix_only
def test_tightening_keeps_the_owners_bits_and_fails_quietly(tmp_path, umask, monkeypatch):
    directory = tmp_path / "d"
    directory.mkdir()
    directory.chmod(0o575)
    private_dir(directory, tighten=True)
    assert mode(directory) == 0o500  # narrowed, never widened
    directory.chmod(0o755)

    def read_only_file_system(path: object, mode: int) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(files.os, "chmod", read_only_file_system)
    private_dir(directory, tighten=True)  # no error: readable_by_others tells
    assert readable_by_others(directory)


def test_a_file_where_a_directory_should_be_is_an_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        private_dir(tmp_path / "file")
    with pytest.raises(OSError):
        private_dir(tmp_path / "file" / "below")


@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o000], indirect=True)
def test_new_files_are_0600_and_existing_ones_keep_their_mode(tmp_path, umask):
    with open_private(tmp_path / "text", "w", encoding="utf-8") as out:
        out.write("secret\n")
    with open_private(tmp_path / "appended", "a", encoding="utf-8") as out:
        out.write("one\n")
    with open_private(tmp_path / "bytes", "xb") as out:
        out.write(b"\x00")
    assert create_private(tmp_path / "empty")
    for name in ("text", "appended", "bytes", "empty"):
        assert mode(tmp_path / name) == 0o600, name
    assert (tmp_path / "text").read_text() == "secret\n"

    shared = tmp_path / "shared"
    shared.write_text("one\n")
    shared.chmod(0o644)
    with open_private(shared, "a", encoding="utf-8") as out:
        out.write("two\n")
    assert shared.read_text() == "one\ntwo\n" and mode(shared) == 0o644
    assert not create_private(shared)
    assert shared.read_text() == "one\ntwo\n" and mode(shared) == 0o644


def test_open_private_modes(tmp_path):
    path = tmp_path / "file"
    with open_private(path, "w") as out:
        out.write("abc")
    with open_private(path, "a+") as out:
        out.seek(0)
        assert out.read() == "abc"
    with pytest.raises(FileExistsError):
        open_private(path, "x")
    for wrong in ("r", "rb", "wa", "wz", ""):
        with pytest.raises(ValueError):
            open_private(path, wrong)
    assert path.read_text() == "abc"


@posix_only
def test_private_file_narrows_an_existing_file(tmp_path, umask):
    path = tmp_path / "db"
    path.write_text("")
    path.chmod(0o664)
    assert readable_by_others(path)
    assert private_file(path)
    assert mode(path) == 0o600
    assert not readable_by_others(path)
    assert not private_file(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()


@posix_only
@pytest.mark.parametrize(
    ("bits", "open_to_others"),
    [(0o600, False), (0o400, False), (0o700, False), (0o640, True), (0o604, True), (0o602, True)],
)
def test_readable_by_others_is_any_permission_of_group_or_others(tmp_path, bits, open_to_others):
    path = tmp_path / "file"
    path.write_text("")
    path.chmod(bits)
    assert readable_by_others(path) is open_to_others
    assert not readable_by_others(tmp_path / "missing")


@posix_only
def test_how_to_fix_names_each_path_quoted(tmp_path):
    directory = tmp_path / "a dir"
    directory.mkdir()
    assert how_to_fix([directory / "chat.db", directory, directory / "x"]) == (
        f"chmod 700 '{directory}' && chmod 600 '{directory}/chat.db' '{directory}/x'"
    )
    assert how_to_fix([Path("chat.db")]) == "chmod 600 chat.db"


def test_without_permission_bits_nothing_fails_and_nothing_is_open(tmp_path, monkeypatch):
    """As on Windows: what is asked for is made, the mode work is skipped."""
    monkeypatch.setattr(files, "POSIX", False)
    path = private_dir(tmp_path / "new" / "dir", tighten=True)
    assert path.is_dir()
    with open_private(path / "file", "w") as out:
        out.write("x")
    assert private_file(path / "file")
    assert not private_file(path / "missing")
    (path / "file").chmod(0o644)
    assert not readable_by_others(path / "file")
