"""MARKREAD (IRCv3 draft/read-marker): an account's read markers, shared by its clients;
a client not logged in has its own, for as long as it is connected."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from chatcli.server.handlers.readmarker import MAX_SESSION_MARKERS
from tests.conftest import Client, RunningServer, register_account

CAP = "draft/read-marker"
WHEN = "timestamp=2026-01-31T12:00:00.000Z"
LATER = "timestamp=2026-01-31T12:05:00.000Z"


@pytest.fixture
def marker_server(make_server: Callable[..., RunningServer], tmp_path) -> RunningServer:
    server = make_server(db=str(tmp_path / "chat.db"))
    register_account(server.port, "alice", "hunter22")
    return server


def logged_in(server: RunningServer, clients: list[Client], nick: str, caps: str = CAP) -> Client:
    """A client registered as ``nick`` and logged in to alice's account (SASL PLAIN)."""
    client = Client(server.port)
    clients.append(client)
    client.send(f"CAP REQ :sasl {caps}")
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :Real {nick}")
    client.expect("CAP", None, "ACK")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(b"alice\0alice\0hunter22").decode())
    client.expect("903")
    client.send("CAP END")
    client.collect("376", "422")
    return client


def test_set_is_seen_by_the_accounts_other_connections(marker_server, clients) -> None:
    one = logged_in(marker_server, clients, "alice")
    two = logged_in(marker_server, clients, "alice2")
    plain = logged_in(marker_server, clients, "alice3", caps="")
    one.send(f"MARKREAD #dev {WHEN}")
    assert one.expect("MARKREAD").params == ("#dev", WHEN)
    assert two.expect("MARKREAD").params == ("#dev", WHEN)
    assert [m for m in plain.sync() if m.command == "MARKREAD"] == []


def test_only_forward_and_query(marker_server, clients) -> None:
    one = logged_in(marker_server, clients, "alice")
    one.send("MARKREAD bob")
    assert one.expect("MARKREAD").params == ("bob", "*")
    one.send(f"MARKREAD bob {LATER}")
    assert one.expect("MARKREAD").params == ("bob", LATER)
    one.send(f"MARKREAD bob {WHEN}")  # backwards: the marker stays, and is said
    assert one.expect("MARKREAD").params == ("bob", LATER)
    one.send("MARKREAD BOB")
    assert one.expect("MARKREAD").params == ("BOB", LATER)
    one.send("MARKREAD bob timestamp=yesterday")
    assert one.expect("FAIL").params[:2] == ("MARKREAD", "INVALID_PARAMS")
    one.send("MARKREAD")
    assert one.expect("FAIL").params[:2] == ("MARKREAD", "NEED_MORE_PARAMS")


def test_join_sends_the_rooms_marker(marker_server, clients) -> None:
    one = logged_in(marker_server, clients, "alice")
    one.send("JOIN #new")
    assert one.expect("MARKREAD").params == ("#new", "*")
    one.send(f"MARKREAD #dev {WHEN}")
    one.expect("MARKREAD")
    one.send("JOIN #dev")
    one.expect("JOIN")
    after = [m.command for m in one.collect("366")]
    assert after.index("MARKREAD") < after.index("366")  # (before the end of NAMES)
    one.send("MARKREAD #dev")
    assert one.expect("MARKREAD").params == ("#dev", WHEN)


def guest(server: RunningServer, clients: list[Client], nick: str) -> Client:
    """A client with the capability, registered as ``nick``, not logged in."""
    client = Client(server.port)
    clients.append(client)
    client.register(nick, CAP, join=False)
    return client


def test_not_logged_in_keeps_markers_of_its_own(marker_server, clients) -> None:
    one = guest(marker_server, clients, "guest")
    one.send("MARKREAD #dev")
    assert one.expect("MARKREAD").params == ("#dev", "*")
    one.send(f"MARKREAD #dev {LATER}")
    assert one.expect("MARKREAD").params == ("#dev", LATER)
    one.send(f"MARKREAD #dev {WHEN}")  # backwards: the marker stays, and is said
    assert one.expect("MARKREAD").params == ("#dev", LATER)
    one.send("MARKREAD #DEV")
    assert one.expect("MARKREAD").params == ("#DEV", LATER)
    one.send(f"MARKREAD bob {WHEN}")  # a conversation's marker too
    assert one.expect("MARKREAD").params == ("bob", WHEN)
    one.send("MARKREAD bob")
    assert one.expect("MARKREAD").params == ("bob", WHEN)
    # ...its own: not another guest's, nor an account's
    other = guest(marker_server, clients, "other")
    other.send("MARKREAD #dev")
    assert other.expect("MARKREAD").params == ("#dev", "*")
    alice = logged_in(marker_server, clients, "alice")
    alice.send("MARKREAD #dev")
    assert alice.expect("MARKREAD").params == ("#dev", "*")
    assert [m for m in other.sync() + alice.sync() if m.command == "MARKREAD"] == []


def test_not_logged_in_join_sends_the_rooms_marker(marker_server, clients) -> None:
    one = guest(marker_server, clients, "guest")
    one.send("JOIN #new")
    one.expect("JOIN")
    after = [m for m in one.collect("366")]
    marker = [m for m in after if m.command == "MARKREAD"]
    assert [m.params for m in marker] == [("#new", "*")]
    assert after.index(marker[0]) < [m.command for m in after].index("366")
    one.send(f"MARKREAD #new {WHEN}")
    one.expect("MARKREAD")
    one.send("PART #new")
    one.expect("PART")
    one.send("JOIN #new")
    one.expect("JOIN")
    assert one.expect("MARKREAD", skip=False).params == ("#new", WHEN)


def test_not_logged_in_markers_go_with_the_connection(marker_server, clients) -> None:
    one = guest(marker_server, clients, "guest")
    one.send(f"MARKREAD #dev {WHEN}")
    one.expect("MARKREAD")
    one.send("QUIT")
    assert one.closed()
    again = guest(marker_server, clients, "guest")
    again.send("MARKREAD #dev")
    assert again.expect("MARKREAD").params == ("#dev", "*")


def test_not_logged_in_bad_timestamps_are_refused(marker_server, clients) -> None:
    one = guest(marker_server, clients, "guest")
    for bad in ("*", "timestamp=yesterday", "2026-01-31T12:00:00.000Z"):
        one.send(f"MARKREAD #dev {bad}")
        assert one.expect("FAIL").params[:3] == ("MARKREAD", "INVALID_PARAMS", bad)
    one.send("MARKREAD")
    assert one.expect("FAIL").params[:2] == ("MARKREAD", "NEED_MORE_PARAMS")
    one.send("MARKREAD #dev")
    assert one.expect("MARKREAD").params == ("#dev", "*")  # (none was kept)


def test_not_logged_in_keeps_at_most_so_many_markers(make_server, tmp_path, clients) -> None:
    running = make_server(db=str(tmp_path / "chat.db"), flood_rate=0)
    one = guest(running, clients, "guest")
    for i in range(MAX_SESSION_MARKERS):
        one.send(f"MARKREAD #room{i} {WHEN}")
    one.send(f"MARKREAD #room0 {LATER}")  # set again: the newest now
    one.send(f"MARKREAD #one-more {WHEN}")  # past the bound: #room1 is forgotten
    for _ in range(MAX_SESSION_MARKERS + 2):
        one.expect("MARKREAD")
    for room, marker in (("#room0", LATER), ("#room1", "*"), ("#room2", WHEN), ("#one-more", WHEN)):
        one.send(f"MARKREAD {room}")
        assert one.expect("MARKREAD").params == (room, marker)


def test_not_logged_in_marker_follows_a_renamed_room(marker_server, clients) -> None:
    one = guest(marker_server, clients, "guest")
    one.send("JOIN #old")
    one.collect("366")
    one.send(f"MARKREAD #old {WHEN}")
    one.expect("MARKREAD")
    one.send("RENAME #old #renamed")  # (no draft/channel-rename: PART, JOIN, MARKREAD)
    one.expect("JOIN", "#renamed")
    assert one.expect("MARKREAD", skip=False).params == ("#renamed", WHEN)
    one.expect("366")
    one.send("MARKREAD #renamed")
    assert one.expect("MARKREAD").params == ("#renamed", WHEN)
    one.send("MARKREAD #old")
    assert one.expect("MARKREAD").params == ("#old", "*")
