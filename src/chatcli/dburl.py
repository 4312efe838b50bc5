"""What ``--db`` names: a SQLite file, or a PostgreSQL database by its URL.

A ``postgresql://`` (or ``postgres://``) URL, as libpq takes it, is PostgreSQL; anything
else is the path of a SQLite file. Light on purpose (no database driver): the command line
and the settings use it before anything is opened.
"""

from __future__ import annotations

import os

#: How ``--db`` names a PostgreSQL database (libpq's URL schemes).
URL_SCHEMES = ("postgresql", "postgres")


def is_url(db: str | os.PathLike[str]) -> bool:
    """Whether ``db`` names a PostgreSQL database rather than a SQLite file. A URL that
    went through :class:`~pathlib.Path` (which makes ``//`` one ``/``) still counts."""
    text = os.fspath(db)
    return any(text.startswith(f"{scheme}:/") for scheme in URL_SCHEMES)


def normalised(url: str) -> str:
    """``url`` with a part between ``//`` and the path even where it names no host
    (``postgresql:///chat`` is ``postgresql://@/chat``, which libpq reads the same), so
    that a :class:`~pathlib.Path` made of it can be turned back into it (:func:`url_of`)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://@{rest}" if rest.startswith("/") else url


def url_of(db: str | os.PathLike[str]) -> str:
    """The URL ``db``, with the ``//`` that :class:`~pathlib.Path` makes one ``/`` put
    back (``postgresql:/user@host/db`` is ``postgresql://user@host/db``)."""
    text = os.fspath(db)
    scheme, _, rest = text.partition(":")
    if not rest.startswith("//"):
        rest = "/" + rest
    return f"{scheme}:{rest}"


def shown(db: str | os.PathLike[str]) -> str:
    """``db`` as messages and the log show it: a URL without its password."""
    if not is_url(db):
        return os.fspath(db)
    from urllib.parse import parse_qsl, urlencode, urlsplit

    parts = urlsplit(url_of(db))
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"], safe="/")
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
