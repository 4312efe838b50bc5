"""MARKREAD (IRCv3 draft/read-marker): an account's read markers, shared by its clients."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

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


def test_not_logged_in_is_refused(marker_server, clients) -> None:
    guest = Client(marker_server.port)
    clients.append(guest)
    guest.register("guest", CAP, join=False)
    guest.send(f"MARKREAD #dev {WHEN}")
    assert guest.expect("FAIL").params[:3] == ("MARKREAD", "ACCOUNT_REQUIRED", "#dev")
