"""``chat serve --log-format json``: one JSON object a line, for log collectors; and the
text lines people read, as they have always been."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from chatcli.logs import JsonFormatter
from tests.conftest import Client
from tests.serve import ChatServe


def parsed(line: str) -> dict[str, object]:
    """``line`` as a JSON object, its fields there and its time ISO 8601 in UTC."""
    entry = json.loads(line)
    assert isinstance(entry, dict), line
    assert {"time", "level", "logger", "event"} <= entry.keys(), line
    assert isinstance(entry["time"], str) and entry["time"].endswith("Z"), line
    when = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert when.utcoffset() == timedelta(0), line
    return entry


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGHUP")
def test_every_line_chat_serve_logs_in_json_is_a_json_object(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    args = ("--db", str(db), "--log-format", "json", "--log-level", "info")
    with ChatServe(*args) as serving:
        client = Client(serving.port)
        try:
            client.register("alice", join=False)
            client.send("QUIT :done")
            assert client.closed()
        finally:
            client.close()
        serving.signal(signal.SIGHUP)
        entries = []
        for _ in range(50):
            entries.append(parsed(serving.stderr.readline()))
            if entries[-1]["event"] == "rehashed the settings":
                break
        serving.signal(signal.SIGTERM)
        assert serving.proc.wait(timeout=5) == 0
        entries += [parsed(line) for line in serving.stderr.read().splitlines()]
    events = [e["event"] for e in entries]
    assert f"database {db} migrated to schema 1" in events
    assert "alice disconnected: Quit: done" in events
    assert "rehashed the settings" in events
    assert {e["logger"] for e in entries} == {"chatcli.server"}
    assert {e["level"] for e in entries} == {"info", "warning"}


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGHUP")
def test_the_text_log_is_as_it_was() -> None:
    with ChatServe("--no-db") as serving:
        serving.signal(signal.SIGHUP)
        line = serving.stderr.readline().rstrip("\n")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING chatcli.server: rehashed the settings",
        line,
    ), line


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own whose records go, as JSON lines, to a string."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.json_log")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)


def test_a_record_s_extra_fields_are_in_its_object(json_log) -> None:
    logger, out = json_log
    logger.warning(
        "refused %s", "10.0.0.1", extra={"host": "10.0.0.1", "count": 3, "at": Path("/x")}
    )
    entry = parsed(out.getvalue())
    assert entry["event"] == "refused 10.0.0.1"
    assert entry["level"] == "warning"
    assert entry["logger"] == "tests.json_log"
    assert (entry["host"], entry["count"], entry["at"]) == ("10.0.0.1", 3, "/x")
    assert "exc" not in entry


def test_an_extra_field_never_hides_one_of_the_four(json_log) -> None:
    logger, out = json_log
    logger.info("the real event", extra={"event": "a fake one", "level": "critical"})
    entry = parsed(out.getvalue())
    assert (entry["event"], entry["level"]) == ("the real event", "info")


def test_a_traceback_is_in_exc_and_the_record_stays_one_line(json_log) -> None:
    logger, out = json_log
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logger.exception("accepting a connection failed")
    assert out.getvalue().count("\n") == 1
    entry = parsed(out.getvalue())
    assert entry["level"] == "error"
    assert str(entry["exc"]).startswith("Traceback (most recent call last):")
    assert str(entry["exc"]).endswith("ValueError: bad\nvalue")


def test_text_in_any_language_goes_through_any_stderr_encoding(json_log) -> None:
    logger, out = json_log
    logger.info("%s disconnected", "zoë 🙂")
    assert out.getvalue().isascii()
    assert parsed(out.getvalue())["event"] == "zoë 🙂 disconnected"
