"""``chat backup``: a consistent copy of the server's database, taken while it runs.

The copy is made with SQLite's online backup API, which reads the database as SQLite
itself does (through its WAL), never as a half-written file: what ``cp`` of a live
database can give is a file that does not open. It is read in pages, with a pause between
steps, so that a busy server is not held up; a server that writes all the while makes
SQLite start the copy again, so after a few restarts the rest is copied in one step (in
WAL mode a reader does not block the server's writes, so even that holds nothing up). The
whole is bounded by a timeout.

The copy is written to a hidden file beside the destination, made private (0600: it holds
password hashes, the cloak key and direct messages, as the database does), checked with
``PRAGMA integrity_check``, and only then renamed into place: a failed backup leaves no
file behind, and an existing one is only replaced when asked (``--force``).

Restoring is copying the file back while the server is stopped (see the README).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from chatcli.defaults import BACKUP_TIMEOUT
from chatcli.errors import ChatError
from chatcli.files import create_private

#: Pages copied per step (with SQLite's default 4 KiB pages, 1 MiB).
PAGES = 256
#: Seconds to pause between steps, so that the server gets its turn.
PAUSE = 0.005
#: How many times the copy may restart because the server wrote meanwhile before the
#: rest is copied in one step.
RESTARTS = 3
#: Seconds to wait for a lock the server holds (SQLite's busy timeout).
BUSY_TIMEOUT = 5.0


class BackupError(ChatError):
    """The backup could not be made; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class Backup:
    """A backup made and checked."""

    source: Path  #: the database copied
    dest: Path  #: where the copy is
    size: int  #: its size in bytes
    restarts: int  #: how often the server's writes made the copy start again


class _Restart(Exception):
    """Raised from the progress callback: the copy restarted too often, finish in one step."""


class _TimedOut(Exception):
    """Raised from the progress callback: the backup took longer than its timeout."""


def backup(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    force: bool = False,
    pages: int = PAGES,
    pause: float = PAUSE,
    timeout: float = BACKUP_TIMEOUT,
) -> Backup:
    """Copy the database ``source`` to ``dest`` (a file, or a directory to put it in under
    its own name), check the copy, and return what was made.

    Args:
        source: the database, in use by a server or not.
        dest: where the copy goes. An existing file is refused unless ``force``.
        force: replace an existing ``dest``.
        pages: pages copied per step.
        pause: seconds between steps.
        timeout: seconds the whole may take.

    Raises:
        BackupError: the source cannot be read, ``dest`` exists (without ``force``) or
            cannot be written, the copy fails its integrity check, or time ran out.
            Nothing is left at ``dest`` then (an existing file there is untouched).
    """
    source = Path(source)
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / source.name
    _check_paths(source, dest, force)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        try:
            create_private(partial)
        except OSError as exc:
            raise BackupError(f"cannot write {dest}: {exc.strerror or exc}") from None
        restarts = _copy(source, partial, pages, pause, timeout)
        _check(partial, dest)
        size = partial.stat().st_size
        try:
            os.replace(partial, dest)
        except OSError as exc:
            raise BackupError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        for leftover in (partial, *_companions(partial)):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return Backup(source, dest, size, restarts)


def _check_paths(source: Path, dest: Path, force: bool) -> None:
    """Refuse what cannot be, or must not be, done before anything is written."""
    if not source.is_file():
        why = "it is not a file" if source.exists() else "no such file"
        raise BackupError(f"cannot back up {source}: {why}")
    if dest.exists() or dest.is_symlink():
        if dest.is_dir() or not dest.is_file():
            raise BackupError(f"{dest} exists and is not a file")
        if os.path.samefile(source, dest):
            raise BackupError(f"{dest} is the database itself: give another destination")
        if not force:
            raise BackupError(f"{dest} exists: give another destination, or --force to replace it")
    # A -wal or -shm beside the destination belongs to a database in use (or left by a
    # crash): SQLite would read that journal into the copy as if it were the copy's own.
    found = [path for path in _companions(dest) if path.exists()]
    if found:
        raise BackupError(
            f"{found[0]} exists beside {dest}: is a server using it? Stop it, or give "
            "another destination"
        )
    if not dest.parent.is_dir():
        raise BackupError(f"cannot write {dest}: no such directory {dest.parent}")


def _companions(path: Path) -> list[Path]:
    """The files SQLite keeps beside a database while it is open."""
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def _copy(source: Path, dest: Path, pages: int, pause: float, timeout: float) -> int:
    """Copy ``source`` into the (empty) database ``dest`` with the backup API, in steps of
    ``pages``; return how often the copy restarted.

    Raises:
        BackupError: the source cannot be read or ``dest`` written, or time ran out.
    """
    deadline = time.monotonic() + timeout
    restarts = 0
    last_remaining: int | None = None

    def progress(status: int, remaining: int, total: int) -> None:
        """After each step: stop at the deadline; count restarts (a step that left as
        many pages to copy as the one before, or more); pause, for the server."""
        nonlocal restarts, last_remaining
        if time.monotonic() > deadline:
            raise _TimedOut
        if status != sqlite3.SQLITE_OK:  # busy or locked: SQLite waits and tries again
            return
        if remaining and last_remaining is not None and remaining >= last_remaining:
            restarts += 1
            if restarts >= RESTARTS:
                raise _Restart
        last_remaining = remaining
        if remaining:
            time.sleep(pause)

    # Read and write, never create: a read-only connection to a WAL database makes a -wal
    # and -shm beside it that it cannot remove, where the last connection to close does.
    uri = f"{source.absolute().as_uri()}?mode=rw"
    try:
        with (
            contextlib.closing(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT)) as src,
            contextlib.closing(sqlite3.connect(dest, timeout=BUSY_TIMEOUT)) as dst,
        ):
            try:
                src.backup(dst, pages=pages, progress=progress, sleep=pause)
            except _Restart:
                # The server writes faster than a paged copy goes: take the rest at once,
                # in one read transaction (which, in WAL mode, does not block the writer).
                src.backup(dst, pages=-1)
    except _TimedOut:
        raise BackupError(
            f"backing up {source} took more than {timeout:g} seconds: nothing written"
        ) from None
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source}: {exc}") from None
    return restarts


def _check(copy: Path, dest: Path) -> None:
    """Check the copy as SQLite can: every page, index and constraint.

    Raises:
        BackupError: the check found something wrong, or could not run.
    """
    try:
        with contextlib.closing(sqlite3.connect(copy, timeout=BUSY_TIMEOUT)) as db:
            found = [row[0] for row in db.execute("PRAGMA integrity_check")]
    except sqlite3.Error as exc:
        raise BackupError(
            f"the copy for {dest} cannot be checked: {exc}: nothing written"
        ) from None
    if found != ["ok"]:
        raise BackupError(
            f"the copy for {dest} fails its integrity check ({found[0]}): nothing written"
        )


def human_size(size: int) -> str:
    """``size`` bytes as people read it: ``812 bytes``, ``48.0 KiB``, ``1.4 MiB``."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"
