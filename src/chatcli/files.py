"""Files for their owner's eyes only: the server's database (password hashes, the cloak key,
direct messages), its TLS key, the clients' pinned certificates.

The rules, on POSIX systems:

- A file chatcli creates is made 0600 (``rw-------``) from the start, by ``os.open`` with
  that mode: never created wider and narrowed afterwards, and the process's umask is
  neither needed nor changed (a umask only ever removes permissions; changing it would
  change it for every thread).
- A directory chatcli creates is made 0700, and so is each missing directory above it
  (as the XDG base directory specification asks of ``~/.local/share`` and its like).
- An existing directory is narrowed to 0700 only when the caller says it is chatcli's
  own (``tighten=True``: chatcli's data directory, made 0755 by an older chatcli, and
  ``tls`` in it) and this user owns it. A directory the user chose (the one ``--db``
  names a file in, say) is left as it is: other programs may need it as it is.
- An existing file keeps its mode: chatcli says when it is open to others
  (:func:`readable_by_others`, :func:`how_to_fix`) and leaves the fix to its owner.

On Windows (``os.name == "nt"``) permission bits mean next to nothing (access control
lists decide, and a user's profile is private to them by default): the functions create
what they are asked to, skip the mode work and never fail because of it, and
:func:`readable_by_others` is always False.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

#: The mode of a private file: read and write for its owner, nothing for anyone else.
PRIVATE_FILE = 0o600
#: The mode of a private directory: its owner may list, enter and change it; nobody else.
PRIVATE_DIR = 0o700
#: The permission bits of the group and of others.
_OTHERS = 0o077

#: Whether permission bits are worth setting and checking here.
POSIX = os.name != "nt"


def readable_by_others(path: str | os.PathLike[str]) -> bool:
    """Whether users other than its owner have any permission on ``path``: a permission
    bit of its group or of others is set (read, write, or for a directory, entering it).

    Follows symbolic links (the target is what counts). False when ``path`` does not exist
    or cannot be examined, and always on Windows; never raises.
    """
    if not POSIX:
        return False
    try:
        return bool(os.stat(path).st_mode & _OTHERS)
    except (OSError, ValueError):
        return False


def private_dir(path: str | os.PathLike[str], *, tighten: bool = False) -> Path:
    """The directory ``path``, made private if chatcli makes it. Returns it as a Path.

    - Missing: it is created 0700, and each missing directory above it too, whatever the
      umask.
    - Existing and ``tighten``: if this user owns it, the group's and others' permissions
      are removed (``chmod 700``); if someone else owns it, or the change fails (a
      read-only file system), it is left as it is: :func:`readable_by_others` tells. Pass
      ``tighten`` only for a directory that is chatcli's alone (its data directory).
    - Existing otherwise: left as it is.

    Raises:
        OSError: it cannot be created, or it is not a directory (FileExistsError).
    """
    path = Path(path)
    missing: list[Path] = []
    for directory in (path, *path.parents):
        if directory.is_dir():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # made meanwhile by someone else: theirs, not ours to change
        if POSIX:
            os.chmod(directory, PRIVATE_DIR)  # the umask may have taken the owner's bits
    if tighten and path not in missing and POSIX:
        info = os.stat(path)
        if info.st_uid == os.geteuid() and info.st_mode & _OTHERS:
            with contextlib.suppress(OSError):
                os.chmod(path, stat.S_IMODE(info.st_mode) & ~_OTHERS)
    return path


def private_file(path: str | os.PathLike[str]) -> bool:
    """Make the file ``path`` readable and writable by its owner only (``chmod 600``) if it
    exists. Returns whether it exists (always True when it was changed); does nothing but
    that on Windows.

    Raises:
        OSError: it exists but its mode cannot be changed (someone else owns it).
    """
    try:
        if POSIX:
            os.chmod(path, PRIVATE_FILE)
        else:
            os.stat(path)
    except FileNotFoundError:
        return False
    return True


def create_private(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` as an empty file, 0600, unless something is there already (which is
    left untouched, mode and all). Returns whether it was made.

    Raises:
        OSError: it cannot be created (a missing or read-only directory...).
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    os.close(descriptor)
    return True


def open_private(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    encoding: str | None = None,
) -> IO[Any]:
    """Open ``path`` as :func:`open` does with ``mode`` (``w``, ``a`` or ``x``, with ``b``
    and ``+`` as usual), creating it 0600 if it does not exist. A file that exists keeps
    its mode (see :func:`readable_by_others`).

    Raises:
        ValueError: ``mode`` does not create files (``r``), or is not a mode.
        OSError: as :func:`open`.
    """
    kinds = {"w": os.O_CREAT | os.O_TRUNC, "a": os.O_CREAT | os.O_APPEND, "x": os.O_CREAT}
    kind = [c for c in mode if c in "rwax"]
    if len(kind) != 1 or kind[0] not in kinds or set(mode) - set("waxbt+"):
        raise ValueError(f"open_private: not a mode that creates a file: {mode!r}")
    flags = kinds[kind[0]] | (os.O_EXCL if kind[0] == "x" else 0)
    flags |= os.O_RDWR if "+" in mode else os.O_WRONLY
    flags |= getattr(os, "O_BINARY", 0)  # (Windows: no newline translation below Python's)
    descriptor = os.open(path, flags, PRIVATE_FILE)
    try:
        return os.fdopen(descriptor, mode, encoding=encoding)
    except BaseException:
        os.close(descriptor)
        raise


def how_to_fix(paths: Iterable[str | os.PathLike[str]]) -> str:
    """The shell command that makes ``paths`` private: ``chmod 600`` for files, ``chmod 700``
    for directories, joined by ``&&``; each path quoted for the shell."""
    files: list[str] = []
    directories: list[str] = []
    for path in paths:
        (directories if os.path.isdir(path) else files).append(shlex.quote(os.fspath(path)))
    commands = [f"chmod 700 {' '.join(directories)}"] if directories else []
    commands += [f"chmod 600 {' '.join(files)}"] if files else []
    return " && ".join(commands)
