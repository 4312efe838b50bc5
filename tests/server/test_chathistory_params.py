"""CHATHISTORY parameters are checked before they are used (IRCv3 draft/chathistory and
standard replies): a limit, a timestamp or a msgid that is not one is answered with
``FAIL CHATHISTORY INVALID_PARAMS``, never with ``400`` and a traceback in the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

import pytest

from chatcli.server.handlers.chathistory import MAX_LIMIT_DIGITS, MAX_MSGID_CHARS
from tests.conftest import TEST_CONFIG, Client, RunningServer, start_server

V = pytest.param
CAPS = "draft/chathistory batch server-time message-tags"


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RunningServer]:
    """One server with a database for the whole module; #dev holds ten messages."""
    db = tmp_path_factory.mktemp("history") / "chat.db"
    server = start_server(replace(TEST_CONFIG, db=str(db)), request)
    writer = Client(server.port)
    try:
        writer.register("writer", join=False)
        writer.send("JOIN #dev")
        writer.expect("366")
        for i in range(10):
            writer.send(f"PRIVMSG #dev :m{i}")
        writer.sync()
        yield server
    finally:
        writer.close()
        server.stop()


@pytest.fixture
def alice(running: RunningServer, caplog: pytest.LogCaptureFixture) -> Iterator[Client]:
    """A client in #dev; after the test, nothing was logged with a traceback."""
    caplog.set_level(logging.ERROR, logger="chatcli.server")
    client = Client(running.port)
    try:
        client.register("alice", CAPS, join=False)
        client.send("JOIN #dev")
        client.expect("366")
        yield client
    finally:
        client.close()
    assert not [r for r in caplog.records if r.exc_info], caplog.text


def answer(client: Client, request: str) -> list[str]:
    """The commands of what ``CHATHISTORY <request>`` is answered with (a FAIL, or the
    messages of its batch)."""
    client.send(f"CHATHISTORY {request}")
    replies = client.sync()
    fails = [" ".join(m.params[:2]) for m in replies if m.command == "FAIL"]
    if fails:
        return fails
    return [m.params[-1] for m in replies if m.command == "PRIVMSG"]


INVALID = ["CHATHISTORY INVALID_PARAMS"]


@pytest.mark.parametrize(
    "limit",
    [
        V("²", id="superscript-two"),  # str.isdigit() says yes; int() says no
        V("٣", id="arabic-indic-three"),  # int() would take it: still not ASCII
        V("\uff11\uff10", id="fullwidth-ten"),
        V("0", id="zero"),
        V("00", id="zeros"),
        V("-1", id="negative"),
        V("+5", id="plus-sign"),
        V("5.0", id="decimal"),
        V("1e3", id="exponent"),
        V("0x10", id="hex"),
        V("*", id="star"),
        V("9" * (MAX_LIMIT_DIGITS + 1), id="too-many-digits"),
        V("9" * 400, id="hundreds-of-digits"),
    ],
)
def test_a_limit_is_ascii_digits_and_positive(alice, limit):
    assert answer(alice, f"LATEST #dev * {limit}") == INVALID
    assert answer(alice, f"TARGETS timestamp=2000-01-01T00:00:00Z timestamp=2100-01-01T00:00:00Z "
                         f"{limit}") == INVALID  # fmt: skip


def test_a_large_limit_is_capped_not_refused(alice):
    assert answer(alice, "LATEST #dev * " + "9" * MAX_LIMIT_DIGITS) == [f"m{i}" for i in range(10)]
    assert answer(alice, "LATEST #dev * 0002") == ["m8", "m9"]


@pytest.mark.parametrize(
    "stamp",
    [
        V("2026-13-45T99:99:99Z", id="no-such-anything"),
        V("2026-13-01T00:00:00Z", id="month-13"),
        V("2026-00-10T00:00:00Z", id="month-0"),
        V("2026-02-30T00:00:00Z", id="february-30"),
        V("2025-02-29T00:00:00Z", id="february-29-not-leap"),
        V("2026-01-01T24:00:00Z", id="hour-24"),
        V("2026-01-01T23:60:00Z", id="minute-60"),
        V("2016-12-31T23:59:60Z", id="leap-second"),
        V("0000-01-01T00:00:00Z", id="year-0"),
        V("٢٠٢٦-01-01T00:00:00Z", id="arabic-indic-year"),
        V("2026-01-01T00:00:00", id="no-Z"),
        V("2026-01-01T00:00:00+00:00", id="offset"),
        V("2026-01-01 00:00:00Z", id="no-T"),
        V("2026-01-01T00:00:00.Z", id="empty-fraction"),
        V("2026-01-01T00:00:00.1234567Z", id="fraction-too-long"),
        V("2026-1-1T0:0:0Z", id="short-fields"),
        V("", id="empty"),
        V("x" * 400, id="long-junk"),
    ],
)
def test_a_timestamp_is_a_real_utc_date_and_time(alice, stamp):
    assert answer(alice, f"BEFORE #dev timestamp={stamp} 10") == INVALID
    assert answer(alice, f"BETWEEN #dev timestamp=2000-01-01T00:00:00Z timestamp={stamp} 10") == (
        INVALID
    )
    assert answer(alice, f"TARGETS timestamp={stamp} timestamp=2000-01-01T00:00:00Z 10") == INVALID


@pytest.mark.parametrize(
    ("request_", "found"),
    [
        V("AFTER #dev timestamp=2024-02-29T12:00:00Z 1", ["m0"], id="leap-day"),
        V("AFTER #dev timestamp=1970-01-01T00:00:00Z 1", ["m0"], id="epoch"),
        V("BEFORE #dev timestamp=9999-12-31T23:59:59.999999Z 1", ["m9"], id="last-instant"),
        V("BEFORE #dev timestamp=2100-01-01T00:00:00.5Z 1", ["m9"], id="one-fraction-digit"),
        V("BEFORE #dev timestamp=1970-01-01T00:00:00Z 1", [], id="nothing-before"),
    ],
)
def test_real_timestamps_are_answered(alice, request_, found):
    assert answer(alice, request_) == found


@pytest.mark.parametrize(
    ("reference", "code"),
    [
        V("msgid=", "INVALID_PARAMS", id="empty-msgid"),
        V("msgid=" + "a" * (MAX_MSGID_CHARS + 1), "INVALID_PARAMS", id="msgid-too-long"),
        V("msgid=" + "a" * MAX_MSGID_CHARS, "INVALID_MSGREFTYPE", id="unknown-msgid"),
        V("msgid=²", "INVALID_MSGREFTYPE", id="odd-msgid"),
        V("*", "INVALID_PARAMS", id="star-is-for-LATEST-only"),
        V("=", "INVALID_PARAMS", id="no-kind"),
        V("id=1", "INVALID_PARAMS", id="unknown-kind"),
    ],
)
def test_a_msgid_reference_is_bounded(alice, reference, code):
    for sub in ("BEFORE", "AFTER", "AROUND"):
        assert answer(alice, f"{sub} #dev {reference} 10") == [f"CHATHISTORY {code}"], sub


def test_the_connection_goes_on_after_every_refusal(alice):
    for request in ("LATEST #dev * ²", "BEFORE #dev timestamp=2026-13-45T99:99:99Z 10"):
        alice.send(f"CHATHISTORY {request}")
    assert [m.command for m in alice.sync()] == ["FAIL", "FAIL"]
    assert answer(alice, "LATEST #dev * 3") == ["m7", "m8", "m9"]
