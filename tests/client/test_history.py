"""The client's history logic without a network: the Timeline (batches, catch-up, paging,
dedupe), /history, and the reconnect backoff."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chatcli.client.app import Backoff
from chatcli.client.history import EARLIER, NOTHING_EARLIER, Timeline, timestamp
from chatcli.client.input import HISTORY_PAGE, Action, InputError, Local, parse_input
from chatcli.protocol import Message, isupport_tokens


def chat(n: int, batch: str | None = None, room: str = "#dev") -> Message:
    tags = {"msgid": f"id{n}", "time": "2026-01-31T12:00:00.000Z"}
    if batch:
        tags["batch"] = batch
    return Message("PRIVMSG", (room, f"m{n}"), "bob!b@h", tags)


def batch(ref: str, room: str, *numbers: int) -> list[Message]:
    return [
        Message("BATCH", ("+" + ref, "chathistory", room), "srv"),
        *(chat(n, ref, room) for n in numbers),
        Message("BATCH", ("-" + ref,), "srv"),
    ]


def feed_all(timeline: Timeline, lines: list[Message]) -> tuple[list[str], list[Message]]:
    shown, sent = [], []
    for line in lines:
        out, requests = timeline.feed(line, "me")
        shown += [m.params[1] if m.command == "PRIVMSG" else m.command for m in out]
        sent += requests
    return shown, sent


def test_a_batch_is_shown_whole_at_its_end_and_its_lines_are_hidden():
    timeline = Timeline()
    lines = batch("r1", "#dev", 1, 2)
    shown, _ = feed_all(timeline, lines[:-1])
    assert shown == []
    assert feed_all(timeline, lines[-1:])[0] == ["m1", "m2"]
    assert timeline.log["#dev"] == ["id1", "id2"]


def test_a_message_is_shown_once():
    timeline = Timeline()
    assert feed_all(timeline, [chat(1), chat(1), *batch("r", "#dev", 1, 2)])[0] == ["m1", "m2"]


def test_rejoining_catches_up_after_the_last_msgid_in_order():
    timeline = Timeline()
    feed_all(timeline, [chat(1), chat(2)])
    join = Message("JOIN", ("#dev",), "me!u@h")
    shown, sent = feed_all(timeline, [join])
    assert shown == ["JOIN"]
    assert sent[0] == Message("CHATHISTORY", ("AFTER", "#dev", "msgid=id2", "1000"))
    token = sent[1].params[0]
    # The replay on JOIN, a live line, then the answer, then a newer live line.
    lines = [*batch("a", "#dev", 4, 5), chat(5), *batch("b", "#dev", 3, 4, 5), chat(6)]
    assert feed_all(timeline, lines)[0] == []  # held until the answer is complete
    shown, _ = feed_all(timeline, [Message("PONG", ("srv", token), "srv")])
    assert shown == ["m3", "m4", "m5", "m6"]
    assert timeline.log["#dev"] == [f"id{n}" for n in range(1, 7)]


def test_rejoining_a_server_that_keeps_no_history_asks_it_for_none():
    timeline = Timeline(isupport={"CASEMAPPING": "ascii"})  # (no CHATHISTORY=: --no-db)
    feed_all(timeline, [chat(1), chat(2)])
    shown, sent = feed_all(timeline, [Message("JOIN", ("#dev",), "me!u@h")])
    assert (shown, sent) == (["JOIN"], [])


def test_a_full_answer_is_followed_by_the_next_page():
    timeline = Timeline(limit=2)
    sent = timeline.fetch("#dev", "AFTER", "msgid=id0", 10)
    assert sent[0] == Message("CHATHISTORY", ("AFTER", "#dev", "msgid=id0", "2"))
    first = [*batch("a", "#dev", 1, 2), Message("PONG", ("srv", sent[-1].params[0]))]
    shown, follow = feed_all(timeline, first)
    assert shown == []
    assert follow[0] == Message("CHATHISTORY", ("AFTER", "#dev", "msgid=id2", "2"))
    rest = [*batch("b", "#dev", 3), Message("PONG", ("srv", follow[1].params[0]))]
    assert feed_all(timeline, rest)[0] == ["m1", "m2", "m3"]


def test_older_pages_back_from_the_oldest_shown():
    timeline = Timeline()
    now = datetime(2026, 1, 31, 12, 0, 1, 250000, tzinfo=UTC)
    assert timeline.older("#dev", 5, now).params[2] == "timestamp=2026-01-31T12:00:01.250Z"
    feed_all(timeline, batch("r", "#dev", 5, 6))
    request = timeline.older("#dev", 5)
    assert request == Message("CHATHISTORY", ("BEFORE", "#dev", "msgid=id5", "5"))
    assert feed_all(timeline, batch("o", "#dev", 3, 4))[0] == [EARLIER, "m3", "m4"]  # headed
    assert timeline.log["#dev"] == ["id3", "id4", "id5", "id6"]


def test_history_with_nothing_earlier_says_so():
    timeline = Timeline()
    timeline.older("#dev", 20)
    shown, sent = feed_all(timeline, batch("o", "#dev"))  # an empty answer
    assert shown == [NOTHING_EARLIER] and sent == []


def test_history_with_only_what_is_shown_already_says_nothing_earlier():
    timeline = Timeline()
    feed_all(timeline, [chat(1), chat(2)])
    timeline.older("#dev", 20)
    assert feed_all(timeline, batch("o", "#dev", 1))[0] == [NOTHING_EARLIER]
    assert timeline.log["#dev"] == ["id1", "id2"]


def test_an_empty_replay_that_nobody_asked_for_shows_nothing():
    assert feed_all(Timeline(), batch("j", "#dev"))[0] == []


def test_the_server_limit_is_read_from_isupport():
    tokens: dict[str, str] = {}  # as the session fills them
    timeline = Timeline(isupport=tokens)
    tokens.update(isupport_tokens(Message("005", ("me", "CHATHISTORY=50", "are supported"))))
    assert timeline.limit == 50
    tokens.update(isupport_tokens(Message("005", ("me", "CHATHISTORY=²", "are supported"))))
    assert timeline.limit == Timeline().limit  # not a number: our own default


def test_timestamp_reference():
    assert (
        timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "timestamp=2026-01-02T03:04:05.000Z"
    )


def test_history_command():
    assert parse_input("/history", "#dev") == Action(local=Local.HISTORY, count=HISTORY_PAGE)
    assert parse_input("/history 50", "#dev").count == 50
    for bad in ("lots", "0", "²", "1" * 12):  # "²".isdigit() is true, but no count
        with pytest.raises(InputError, match="usage: /history"):
            parse_input(f"/history {bad}", "#dev")


def test_backoff_doubles_up_to_the_cap_with_jitter_and_ends():
    backoff = Backoff(first=1.0, cap=8.0, attempts=6)
    assert list(backoff.delays(lambda: 1.0)) == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert list(backoff.delays(lambda: 0.0)) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
