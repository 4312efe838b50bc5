"""The server's log on stderr: lines for people, or JSON lines for log collectors.

``chat serve --log-format text`` (the default) writes ``time LEVEL logger: message``;
``--log-format json`` writes one JSON object a line, which journald, Loki, Elasticsearch
and ``jq`` read without a parser written for us:

    {"time": "2026-01-31T12:00:00.123Z", "level": "warning", "logger": "chatcli.server",
     "event": "rehashed the settings", ...}

with every ``extra=`` field of the call besides, and ``exc`` (the traceback, as text)
when there is one. Standard library only: the server installs no logging package.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

#: The text format: what ``chat serve`` has always written.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The attributes every LogRecord has: anything else on one came from ``extra=``.
_STANDARD = frozenset(
    [*vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)), "message", "asctime"]
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (ISO 8601, UTC, milliseconds),
    ``level`` (lower case, as ``--log-level`` takes it), ``logger``, ``event`` (the
    message, its arguments filled in), each ``extra=`` field (those named as one of
    these are left out rather than hide it), ``exc`` with the traceback of an exception
    and ``stack`` with ``stack_info``. A value JSON has no form for is written as its
    ``str()``; non-ASCII text is escaped, so that any stderr encoding takes the line."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def configure(level: str, log_format: str = "text") -> None:
    """Send the log to stderr at ``level`` (``debug``, ``info``, ``warning``, ``error``),
    in ``log_format``: ``text`` or ``json``."""
    handler = logging.StreamHandler()
    json_lines = log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
