"""METADATA (IRCv3 draft/metadata-2): keys and values on users and rooms, subscriptions,
notifications, the bursts on connection and JOIN, and what is kept for accounts and rooms."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable

import pytest

from chatcli.protocol import Message
from chatcli.server import metadata as meta
from tests.conftest import Client, RunningServer, register_account

CAP = "draft/metadata-2 batch"


def batch_of(client: Client, target: str | None = None) -> list[Message]:
    """The lines of the next ``metadata`` batch (the BATCH lines left out), whose one
    parameter is its target (``target``, if given)."""
    start = client.expect("BATCH")
    assert start.params[0].startswith("+") and start.params[1] == "metadata", start
    assert len(start.params) == 3, start
    assert target is None or start.params[2] == target, start
    ref = start.params[0][1:]
    lines = []
    while (msg := client.recv()) is not None:
        if msg.command == "BATCH":
            assert msg.params == ("-" + ref,)
            return lines
        assert msg.tags.get("batch") == ref, msg
        lines.append(msg)
    raise AssertionError("connection closed inside a batch")


def fails(client: Client) -> tuple[str, ...]:
    """The next FAIL's code and context (its text left out)."""
    msg = client.expect("FAIL")
    assert msg.params[0] == "METADATA", msg
    return msg.params[1:-1]


def metadata_lines(lines: list[Message]) -> list[tuple[str, ...]]:
    return [m.params for m in lines if m.command == "METADATA"]


@pytest.fixture
def people(connect: Callable[..., Client]) -> tuple[Client, Client]:
    """alice and bob, both with the capability, in the default room."""
    return connect("alice", CAP), connect("bob", CAP)


# -- the capability -------------------------------------------------------------------------


def test_the_capability_says_its_limits(connect: Callable[..., Client]) -> None:
    client = connect()
    client.send("CAP LS 302")
    offered = " ".join(m.params[-1] for m in client.collect("CAP") if m.command == "CAP")
    value = f"draft/metadata-2=before-connect,max-subs={meta.MAX_SUBS},max-keys={meta.MAX_KEYS}"
    assert value + f",max-value-bytes={meta.MAX_VALUE_BYTES}" in offered.split()


def test_connecting_with_the_capability_sends_an_empty_batch(connect) -> None:
    client = connect()
    client.send("CAP REQ :draft/metadata-2 batch")
    client.send("NICK carol")
    client.send("USER carol 0 * :Carol")
    client.send("CAP END")
    client.expect("376")
    assert batch_of(client, "carol") == []


def test_without_the_capability_metadata_needs_registration(connect) -> None:
    client = connect()
    client.send("METADATA * LIST")
    client.expect("451")


# -- SET, GET, LIST, CLEAR --------------------------------------------------------------------


@pytest.mark.parametrize("target", ["*", "alice"])
def test_set_then_get_and_list(people, target: str) -> None:
    alice, _ = people
    alice.send(f"METADATA {target} SET display-name :Alice A.")
    assert alice.expect("761").params == ("alice", "alice", "display-name", "*", "Alice A.")
    alice.send("METADATA * SET color :#ff8800")
    alice.expect("761")
    alice.send(f"METADATA {target} GET color display-name status")
    assert [(m.command, *m.params[1:3]) for m in batch_of(alice)] == [
        ("761", "alice", "color"),
        ("761", "alice", "display-name"),
        ("766", "alice", "status"),
    ]
    alice.send("METADATA alice LIST")
    assert [m.params[1:] for m in batch_of(alice)] == [
        ("alice", "display-name", "*", "Alice A."),
        ("alice", "color", "*", "#ff8800"),
    ]


def test_each_answers_batch_names_its_target(people) -> None:
    alice, bob = people
    alice.send("JOIN #den")
    alice.expect("366")
    alice.send("METADATA #den SET color :#0a0b0c")
    alice.expect("761")
    for target, name in [("*", "bob"), ("Alice", "alice"), ("#DEN", "#den")]:
        bob.send(f"METADATA {target} GET color")
        batch_of(bob, name)
        bob.send(f"METADATA {target} LIST")
        batch_of(bob, name)
        bob.send(f"METADATA {target} SYNC")
        batch_of(bob, name)
    alice.send("METADATA * CLEAR")
    batch_of(alice, "alice")


def test_anyone_reads_a_users_metadata(people) -> None:
    alice, bob = people
    alice.send("METADATA * SET avatar :https://example.org/a.png")
    alice.expect("761")
    bob.send("METADATA ALICE GET avatar")
    assert [m.params[1:] for m in batch_of(bob)] == [
        ("alice", "avatar", "*", "https://example.org/a.png")
    ]


def test_a_value_with_utf8_and_spaces(people) -> None:
    alice, _ = people
    alice.send("METADATA * SET status :->\U0001f49c<- at lunch, back soon")
    assert alice.expect("761").params[-1] == "->\U0001f49c<- at lunch, back soon"


def test_set_without_a_value_removes_the_key(people) -> None:
    alice, bob = people
    alice.send("METADATA * SET status :busy")
    alice.expect("761")
    alice.send("METADATA * SET status")
    assert alice.expect("766").params[1:3] == ("alice", "status")
    bob.send("METADATA alice GET status")
    assert [m.command for m in batch_of(bob)] == ["766"]


def test_removing_a_key_not_set_is_err_keynotset(people) -> None:
    alice, bob = people
    bob.send("METADATA * SUB status")
    bob.expect("770")
    alice.send("METADATA * SET status")
    assert alice.expect("768").params[:3] == ("alice", "alice", "status")
    alice.send("JOIN #den")
    alice.expect("366")
    alice.send("METADATA #den SET status")
    assert alice.expect("768").params[:3] == ("alice", "#den", "status")
    assert bob.quiet() == []


def test_clear_removes_every_key(people) -> None:
    alice, bob = people
    bob.send("METADATA * SUB status color")
    bob.expect("770")
    alice.send("METADATA * SET status :here")
    alice.send("METADATA * SET color :#112233")
    alice.sync()
    bob.sync()
    alice.send("METADATA * CLEAR")
    assert [(m.command, m.params[2]) for m in batch_of(alice)] == [
        ("766", "status"),
        ("766", "color"),
    ]
    assert [m.params for m in bob.collect("METADATA") + bob.collect("METADATA")] == [
        ("alice", "status", "*"),
        ("alice", "color", "*"),
    ]
    alice.send("METADATA * LIST")
    assert batch_of(alice) == []


# -- failures ---------------------------------------------------------------------------------


def test_too_few_parameters(people) -> None:
    alice, _ = people
    alice.send("METADATA *")
    assert fails(alice) == ("NEED_MORE_PARAMS",)
    alice.send("METADATA * SET")
    assert fails(alice) == ("NEED_MORE_PARAMS",)
    alice.send("METADATA * GET")
    assert fails(alice) == ("NEED_MORE_PARAMS",)
    alice.send("METADATA * SUB")
    assert fails(alice) == ("NEED_MORE_PARAMS",)


def test_unknown_subcommand(people) -> None:
    alice, _ = people
    alice.send("METADATA * FROB x")
    assert fails(alice) == ("INVALID_SUBCOMMAND", "FROB")


@pytest.mark.parametrize("sub", ["LIST", "GET status", "SET status :x", "SYNC"])
def test_no_such_target(people, sub: str) -> None:
    alice, _ = people
    alice.send(f"METADATA nobody {sub}")
    assert fails(alice) == ("INVALID_TARGET", "nobody")
    assert alice.quiet() == []


@pytest.mark.parametrize("key", ["a=b", "é", "K\u212a", "x" * 65, "*", "a$b"])
def test_invalid_keys(people, key: str) -> None:
    alice, _ = people
    alice.send(f"METADATA * SET {key} :v")
    assert fails(alice) == ("INVALID_KEY", key)
    alice.send(f"METADATA * GET {key} status")
    lines = batch_of(alice, "alice")
    assert [(m.command, m.params[1]) for m in lines] == [("FAIL", "INVALID_KEY"), ("766", "alice")]
    alice.send(f"METADATA * SUB {key} status")
    assert fails(alice) == ("INVALID_KEY", key)
    assert alice.expect("770").params[1:] == ("status",)


def test_a_key_may_not_start_with_a_colon(people) -> None:
    alice, _ = people
    alice.send("METADATA * SET ::status")  # (as the last parameter: the key ":status")
    assert fails(alice) == ("INVALID_KEY", "*")  # (it could not be a middle parameter)
    alice.send("METADATA * SUB ::status")
    assert fails(alice) == ("INVALID_KEY", "*")
    alice.send("METADATA * GET ::status")
    assert [m.params[:3] for m in batch_of(alice, "alice")] == [("METADATA", "INVALID_KEY", "*")]
    assert alice.quiet() == []


@pytest.mark.parametrize("subcommand", [":", "::X"])
def test_a_subcommand_that_is_no_middle_parameter_is_shown_as_a_star(people, subcommand) -> None:
    alice, _ = people
    alice.send(f"METADATA * {subcommand}")
    assert fails(alice) == ("INVALID_SUBCOMMAND", "*")


def test_keys_are_letters_digits_and_some_punctuation(people) -> None:
    alice, _ = people
    for key in ["a", "x" * 64, "im.xmpp", "chat:web", "a/b_c-d.e", "0"]:
        alice.send(f"METADATA * SET {key} :v")
        assert alice.expect("761").params[2] == key


def test_keys_are_case_insensitive(people) -> None:
    alice, bob = people
    bob.send("METADATA * SUB Display-NAME")
    assert bob.expect("770").params[1:] == ("display-name",)
    alice.send("METADATA * SET Display-Name :Alice A.")
    assert alice.expect("761").params[1:] == ("alice", "display-name", "*", "Alice A.")
    assert bob.expect("METADATA").params == ("alice", "display-name", "*", "Alice A.")
    bob.send("METADATA alice GET DISPLAY-NAME")
    assert [m.params[1:] for m in batch_of(bob, "alice")] == [
        ("alice", "display-name", "*", "Alice A.")
    ]
    bob.send("METADATA * UNSUB display-NAME")
    assert bob.expect("771").params[1:] == ("display-name",)
    alice.send("METADATA * SET DISPLAY-name")
    assert alice.expect("766").params[1:3] == ("alice", "display-name")


def test_anothers_metadata_may_not_be_set(people) -> None:
    _, bob = people
    bob.send("METADATA alice SET display-name :Not Alice")
    assert fails(bob) == ("KEY_NO_PERMISSION", "alice", "display-name")
    bob.send("METADATA alice CLEAR")
    assert fails(bob) == ("KEY_NO_PERMISSION", "alice", "*")


def test_a_value_too_long(people) -> None:
    alice, _ = people
    alice.send("METADATA * SET status :" + "x" * (meta.MAX_VALUE_BYTES + 1))
    assert fails(alice) == ("VALUE_INVALID",)
    alice.send("METADATA * SET status :" + "\U0001f49c" * (meta.MAX_VALUE_BYTES // 4 + 1))
    assert fails(alice) == ("VALUE_INVALID",)
    alice.send("METADATA * SET status :" + "x" * meta.MAX_VALUE_BYTES)
    alice.expect("761")


def test_a_value_that_is_not_utf8(people) -> None:
    alice, _ = people
    alice.send(b"METADATA * SET status :bad \xc3 byte\r\n")
    code, *_ = fails(alice)
    assert code in ("VALUE_INVALID", "INVALID_UTF8")  # (the server's check of every line)
    alice.send("METADATA * LIST")
    assert batch_of(alice) == []


def test_too_many_keys(people) -> None:
    alice, _ = people
    for i in range(meta.MAX_KEYS):
        alice.send(f"METADATA * SET k{i} :v")
    alice.sync()
    alice.send("METADATA * SET one-more :v")
    assert fails(alice) == ("LIMIT_REACHED", "alice")
    alice.send("METADATA * SET k0 :changed")  # an existing key may still change
    assert alice.expect("761").params[-1] == "changed"


def test_get_takes_a_bounded_number_of_keys(people) -> None:
    alice, _ = people
    keys = " ".join(f"k{i}" for i in range(meta.MAX_GET_KEYS + 1))
    alice.send(f"METADATA * GET {keys}")
    assert fails(alice) == ("LIMIT_REACHED", "*")
    assert alice.quiet() == []


def test_bad_input_never_stops_the_server(people, connect) -> None:
    alice, bob = people
    for line in [
        "METADATA",
        "METADATA * SET :",
        "METADATA :* GET :",
        "METADATA #nope SET x :y",
        "METADATA * SUB " + " ".join(["-"] * 200),
        b"METADATA \xff\xfe SET k :v\r\n",
        "METADATA * GET " + "x" * 400,
        "METADATA * SYNC extra params here",
    ]:
        alice.send(line)
    alice.sync()
    carol = connect("carol", CAP)
    carol.send("PRIVMSG #lobby :still here")
    assert bob.expect("PRIVMSG").params == ("#lobby", "still here")


# -- subscriptions and notifications ----------------------------------------------------------


def test_sub_unsub_and_subs(people) -> None:
    alice, _ = people
    alice.send("METADATA * SUB display-name avatar Bad=Key color")
    assert fails(alice) == ("INVALID_KEY", "Bad=Key")
    assert alice.expect("770").params[1:] == ("display-name", "avatar", "color")
    alice.send("METADATA * SUBS")
    assert alice.expect("772").params[1:] == ("avatar", "color", "display-name")
    alice.send("METADATA * UNSUB avatar status")
    assert alice.expect("771").params[1:] == ("avatar", "status")
    alice.send("METADATA * SUBS")
    assert alice.expect("772").params[1:] == ("color", "display-name")


def test_too_many_subscriptions(people) -> None:
    alice, _ = people
    keys = [f"k{i}" for i in range(meta.MAX_SUBS + 2)]
    alice.send("METADATA * SUB " + " ".join(keys[: meta.MAX_SUBS - 1]))
    alice.sync()
    alice.send(f"METADATA * SUB {keys[-3]} {keys[-2]} {keys[-1]}")
    assert alice.expect("770").params[1:] == (keys[-3],)
    assert fails(alice) == ("TOO_MANY_SUBS", keys[-2])
    alice.send("METADATA * SUBS")
    listed = [k for m in alice.sync() if m.command == "772" for k in m.params[1:]]
    assert len(listed) == meta.MAX_SUBS and keys[-2] not in listed


def test_a_subscriber_in_a_shared_room_is_told(people, connect) -> None:
    alice, bob = people
    plain = connect("dave")  # without the capability: never told
    bob.send("METADATA * SUB display-name")
    bob.expect("770")
    alice.send("METADATA * SET display-name :Alice A.")
    alice.expect("761")
    msg = bob.expect("METADATA")
    assert msg.params == ("alice", "display-name", "*", "Alice A.")
    assert msg.source is not None and "!" not in msg.source  # (the server's line)
    alice.send("METADATA * SET status :not subscribed to")
    alice.sync()
    assert metadata_lines(bob.sync()) == []
    assert [m for m in plain.sync() if m.command == "METADATA"] == []
    assert metadata_lines(alice.sync()) == []  # (its own change: its answer says it)


def test_no_notice_without_a_shared_room(connect) -> None:
    alice = connect("alice", CAP, join=False)
    bob = connect("bob", CAP, join=False)
    bob.send("METADATA * SUB color")
    bob.expect("770")
    alice.send("METADATA * SET color :#000000")
    alice.expect("761")
    assert metadata_lines(bob.sync()) == []


def test_room_metadata_needs_an_operator(people) -> None:
    alice, bob = people
    alice.send("JOIN #den")
    alice.expect("366")
    bob.send("JOIN #den")
    bob.expect("366")
    bob.send("METADATA * SUB topic-url")
    bob.expect("770")
    bob.send("METADATA #den SET topic-url :https://example.org")
    assert fails(bob) == ("KEY_NO_PERMISSION", "#den", "topic-url")
    alice.send("METADATA #den SET topic-url :https://example.org")
    assert alice.expect("761").params[1:] == ("#den", "topic-url", "*", "https://example.org")
    assert bob.expect("METADATA").params == ("#den", "topic-url", "*", "https://example.org")
    bob.send("METADATA #den GET topic-url")
    assert [m.params[-1] for m in batch_of(bob)] == ["https://example.org"]


def test_a_secret_rooms_metadata_is_for_its_members(people, connect) -> None:
    alice, bob = people
    alice.send("JOIN #hidden")
    alice.expect("366")
    alice.send("MODE #hidden +s")
    alice.send("METADATA #hidden SET color :#123456")
    alice.expect("761")
    bob.send("METADATA #hidden LIST")
    assert fails(bob) == ("INVALID_TARGET", "#hidden")
    bob.send("METADATA #hidden GET color")
    assert fails(bob) == ("INVALID_TARGET", "#hidden")
    alice.send("METADATA #hidden LIST")
    assert [m.params[2:] for m in batch_of(alice)] == [("color", "*", "#123456")]


def test_a_public_rooms_metadata_is_read_by_anyone(people) -> None:
    alice, bob = people
    alice.send("JOIN #open")
    alice.expect("366")
    alice.send("METADATA #open SET avatar :https://example.org/r.png")
    alice.expect("761")
    bob.send("METADATA #open LIST")
    assert [m.params[2] for m in batch_of(bob)] == ["avatar"]


def test_sync_of_a_user_and_of_a_room(people) -> None:
    alice, bob = people
    alice.send("JOIN #den")
    alice.expect("366")
    bob.send("JOIN #den")
    bob.expect("366")
    alice.send("METADATA * SET color :#aa0000")
    alice.send("METADATA * SET status :hidden from sync")
    alice.send("METADATA #den SET color :#00aa00")
    alice.sync()
    bob.send("METADATA * SUB color")
    bob.expect("770")
    assert sorted(metadata_lines(batch_of(bob))) == [  # (what it subscribed to, as it is)
        ("#den", "color", "*", "#00aa00"),
        ("alice", "color", "*", "#aa0000"),
    ]
    bob.send("METADATA alice SYNC")
    assert metadata_lines(batch_of(bob, "alice")) == [("alice", "color", "*", "#aa0000")]
    bob.send("METADATA #den SYNC")
    assert sorted(metadata_lines(batch_of(bob, "#den"))) == [
        ("#den", "color", "*", "#00aa00"),
        ("alice", "color", "*", "#aa0000"),
    ]


# -- the JOIN burst -----------------------------------------------------------------------------


def test_join_burst_has_the_room_and_its_members(people, connect) -> None:
    alice, bob = people
    alice.send("JOIN #den")
    alice.expect("366")
    alice.send("METADATA #den SET color :#00ff00")
    alice.send("METADATA * SET display-name :Alice A.")
    alice.send("METADATA * SET status :not asked for")
    alice.sync()
    bob.send("METADATA * SUB color display-name")
    bob.expect("770")
    bob.send("JOIN #den")
    bob.expect("366")
    assert sorted(metadata_lines(batch_of(bob, "#den"))) == [
        ("#den", "color", "*", "#00ff00"),
        ("alice", "display-name", "*", "Alice A."),
    ]


def test_members_hear_of_a_newcomers_keys(connect) -> None:
    alice = connect("alice", CAP, join=False)
    bob = connect("bob", CAP, join=False)
    bob.send("METADATA * SUB display-name")
    bob.expect("770")
    bob.send("JOIN #den")
    bob.expect("366")
    alice.send("METADATA * SET display-name :Alice A.")
    alice.expect("761")
    assert metadata_lines(bob.sync()) == []  # (no room shared yet)
    alice.send("JOIN #den")
    alice.expect("366")
    assert bob.expect("METADATA").params == ("alice", "display-name", "*", "Alice A.")


def test_a_big_join_burst_says_sync_later(people, connect) -> None:
    alice, bob = people
    alice.send("JOIN #big")
    alice.expect("366")
    for i in range(meta.MAX_KEYS):
        alice.send(f"METADATA #big SET k{i} :v")
        alice.send(f"METADATA * SET k{i} :v")
    alice.sync()
    keys = [f"k{i}" for i in range(meta.MAX_KEYS)]
    bob.send("METADATA * SUB " + " ".join(keys))
    bob.expect("770")
    bob.send("METADATA * SUB " + " ".join(keys[10:]))
    bob.sync()
    limit = meta.MAX_SYNC_LINES
    meta.MAX_SYNC_LINES = 2 * meta.MAX_KEYS - 1  # (one line more than this)
    try:
        bob.send("JOIN #big")
        bob.expect("366")
        assert bob.expect("774").params[1:] == ("#big", str(meta.SYNC_RETRY))
    finally:
        meta.MAX_SYNC_LINES = limit
    bob.send("METADATA #big SYNC")
    assert len(metadata_lines(batch_of(bob))) == 2 * meta.MAX_KEYS


# -- before connecting ------------------------------------------------------------------------


def test_metadata_set_before_connecting_applies(connect) -> None:
    bob = connect("bob", CAP)
    bob.send("METADATA * SUB display-name")
    bob.expect("770")
    client = connect()
    client.send("CAP REQ :draft/metadata-2 batch chatcli.local/autojoin")
    client.send("METADATA * SET display-name :Early Bird")
    assert client.expect("761").params == ("*", "*", "display-name", "*", "Early Bird")
    client.send("METADATA bob GET display-name")
    assert fails(client) == ("INVALID_TARGET", "bob")
    client.send("NICK early")
    client.send("USER early 0 * :Early")
    client.send("CAP END")
    client.expect("376")
    assert metadata_lines(batch_of(client, "early")) == [
        ("early", "display-name", "*", "Early Bird")
    ]
    assert bob.expect("METADATA").params == ("early", "display-name", "*", "Early Bird")
    bob.send("METADATA early GET display-name")
    assert [m.params[-1] for m in batch_of(bob)] == ["Early Bird"]


# -- accounts and rooms kept ----------------------------------------------------------------


def login(server: RunningServer, clients: list[Client], nick: str, caps: str = CAP) -> Client:
    """A client registered as ``nick``, logged in to alice's account (SASL PLAIN)."""
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


def test_an_accounts_metadata_survives_reconnects_and_restarts(
    make_server: Callable[..., RunningServer], tmp_path, clients: list[Client]
) -> None:
    db = str(tmp_path / "chat.db")
    server = make_server(db=db)
    register_account(server.port, "alice", "hunter22")
    one = login(server, clients, "alice")
    assert batch_of(one) == []
    one.send("METADATA * SET display-name :Alice A.")
    one.expect("761")
    one.send("QUIT")
    assert one.closed()
    two = login(server, clients, "alice")
    assert metadata_lines(batch_of(two)) == [("alice", "display-name", "*", "Alice A.")]
    two.send("QUIT")
    assert two.closed()
    server.stop()
    again = make_server(db=db)
    three = login(again, clients, "alice")
    assert metadata_lines(batch_of(three)) == [("alice", "display-name", "*", "Alice A.")]


def test_an_accounts_connections_share_its_metadata(
    make_server: Callable[..., RunningServer], tmp_path, clients: list[Client]
) -> None:
    server = make_server(db=str(tmp_path / "chat.db"))
    register_account(server.port, "alice", "hunter22")
    one = login(server, clients, "alice")
    two = login(server, clients, "alice2")
    batch_of(one), batch_of(two)
    two.send("METADATA * SUB color")
    two.expect("770")
    one.send("METADATA * SET color :#abcdef")
    one.expect("761")
    assert two.expect("METADATA").params == ("alice2", "color", "*", "#abcdef")
    two.send("METADATA * GET color")
    assert [m.params[-1] for m in batch_of(two)] == ["#abcdef"]


def test_a_guest_keeps_nothing(make_server, tmp_path, clients) -> None:
    db = str(tmp_path / "chat.db")
    server = make_server(db=db)
    guest = Client(server.port)
    clients.append(guest)
    guest.register("guest", CAP)
    guest.send("METADATA * SET status :gone soon")
    guest.expect("761")
    guest.send("QUIT")
    assert guest.closed()
    again = Client(server.port)
    clients.append(again)
    again.register("guest", CAP)
    again.send("METADATA * LIST")
    assert batch_of(again) == []


def test_a_registered_rooms_metadata_survives_a_restart(
    make_server: Callable[..., RunningServer], tmp_path, clients: list[Client]
) -> None:
    db = str(tmp_path / "chat.db")
    server = make_server(db=db)
    register_account(server.port, "alice", "hunter22")
    one = login(server, clients, "alice")
    one.send("JOIN #kept")
    one.expect("366")
    one.send("METADATA #kept SET avatar :https://example.org/before.png")
    one.expect("761")
    one.send("PRIVMSG ChanServ :REGISTER #kept")
    one.expect("NOTICE", None, "#kept is registered to alice.")
    one.send("METADATA #kept SET color :#0000ff")
    one.expect("761")
    one.send("QUIT")
    assert one.closed()
    server.stop()
    again = make_server(db=db)
    reader = Client(again.port)
    clients.append(reader)
    reader.register("reader", CAP)
    reader.send("METADATA #kept LIST")
    assert sorted(m.params[2:] for m in batch_of(reader)) == [
        ("avatar", "*", "https://example.org/before.png"),
        ("color", "*", "#0000ff"),
    ]


def test_an_unregistered_rooms_metadata_goes_with_the_room(people) -> None:
    alice, bob = people
    alice.send("JOIN #brief")
    alice.expect("366")
    alice.send("METADATA #brief SET color :#111111")
    alice.expect("761")
    alice.send("PART #brief")
    alice.expect("PART")
    bob.send("JOIN #brief")
    bob.expect("366")
    bob.send("METADATA #brief LIST")
    assert batch_of(bob) == []


def test_the_capability_asked_for_once_connected_sends_the_own_keys(connect) -> None:
    client = connect("carol", "batch")
    client.send("CAP REQ :draft/metadata-2")
    client.expect("CAP", None, "ACK")
    assert batch_of(client) == []
    client.send("METADATA * SET color :#010203")
    client.expect("761")
    client.send("CAP REQ :-draft/metadata-2")
    client.send("CAP REQ :draft/metadata-2")
    assert metadata_lines(batch_of(client)) == [("carol", "color", "*", "#010203")]


def test_dropping_the_capability_ends_the_subscriptions(people) -> None:
    alice, bob = people
    bob.send("METADATA * SUB color status")
    bob.expect("770")
    bob.send("CAP REQ :-draft/metadata-2")
    bob.expect("CAP", None, "ACK")
    bob.send("CAP REQ :draft/metadata-2")
    bob.expect("CAP", None, "ACK")
    batch_of(bob, "bob")
    bob.send("METADATA * SUBS")
    assert [m for m in bob.sync() if m.command == "772"] == []
    alice.send("METADATA * SET color :#101010")
    alice.expect("761")
    assert metadata_lines(bob.sync()) == []


def test_subscribing_past_the_burst_bound_says_sync_later(people) -> None:
    alice, bob = people
    alice.send("METADATA * SET k1 :v")
    alice.send("METADATA * SET k2 :v")
    alice.sync()
    limit = meta.MAX_SYNC_LINES
    meta.MAX_SYNC_LINES = 1
    try:
        bob.send("METADATA * SUB k1 k2")
        bob.expect("770")
        assert bob.expect("774").params[1:] == ("#lobby", str(meta.SYNC_RETRY))
    finally:
        meta.MAX_SYNC_LINES = limit


@pytest.mark.single_server("the failing disk is one node's store, as the test reaches it")
def test_a_change_the_store_could_not_keep_is_warned_of(
    make_server: Callable[..., RunningServer],
    tmp_path,
    clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = make_server(db=str(tmp_path / "chat.db"))
    register_account(server.port, "alice", "hunter22")
    one = login(server, clients, "alice")
    batch_of(one)
    store = server.server.store

    def full_disk(db: sqlite3.Connection, jobs: list) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_run", full_disk)
    one.send("METADATA * SET status :not kept")
    assert one.expect("WARN", skip=False).params[:4] == ("METADATA", "NOT_KEPT", "alice", "status")
    assert one.expect("761", skip=False).params[-1] == "not kept"  # (it holds meanwhile)
    one.send("METADATA * GET status")
    assert [m.params[-1] for m in batch_of(one)] == ["not kept"]


# -- draft/metadata-notify-2: MONITORed users ---------------------------------------------------

NOTIFY = "draft/metadata-2 draft/metadata-notify-2 batch"


def test_a_watcher_with_metadata_notify_hears_of_a_monitored_users_keys(connect) -> None:
    alice = connect("alice", CAP, join=False)
    carol = connect("carol", NOTIFY, join=False)  # (no room shared with alice)
    plain = connect("dave", CAP, join=False)  # (MONITORs without metadata-notify-2)
    alice.send("METADATA * SET display-name :Alice A.")
    alice.expect("761")
    for watcher in (carol, plain):
        watcher.send("METADATA * SUB display-name status")
        watcher.expect("770")
    carol.send("MONITOR + alice")
    carol.expect("730")
    assert metadata_lines(batch_of(carol, "alice")) == [("alice", "display-name", "*", "Alice A.")]
    plain.send("MONITOR + alice")
    plain.expect("730")
    alice.send("METADATA * SET status :lunch")
    alice.expect("761")
    assert carol.expect("METADATA").params == ("alice", "status", "*", "lunch")
    assert metadata_lines(plain.sync()) == []


def test_a_monitored_user_coming_online_brings_its_keys(connect) -> None:
    carol = connect("carol", NOTIFY, join=False)
    carol.send("METADATA * SUB color")
    carol.expect("770")
    carol.send("MONITOR + early")
    carol.expect("731")
    early = connect()
    early.send("CAP REQ :draft/metadata-2 batch")
    early.send("METADATA * SET color :#ffffff")
    early.send("NICK early")
    early.send("USER early 0 * :Early")
    early.send("CAP END")
    early.expect("376")
    carol.expect("730")
    assert carol.expect("METADATA").params == ("early", "color", "*", "#ffffff")
