"""RENAME (IRCv3 draft/channel-rename): a room's operator gives it a new name; everything
else about it stays, its history and registration follow it, and members without the
capability see the specification's fallback (PART, then JOIN with topic and names)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Client, RunningServer, in_room, register_account

RENAME = "draft/channel-rename"
MODERN = "message-tags server-time batch echo-message"


@pytest.fixture
def history_server(make_server: Callable[..., RunningServer], tmp_path) -> RunningServer:
    return make_server(db=str(tmp_path / "chat.db"), replay_lines=5)


@pytest.fixture
def person(history_server: RunningServer, clients: list[Client]):
    def connect(nick: str, caps: str = f"{MODERN} {RENAME}", room: str | None = "#bar") -> Client:
        return in_room(history_server.port, clients, nick, caps, room)

    return connect


def test_the_capability_is_offered(person) -> None:
    alice = person("alice", caps="", room=None)
    assert RENAME in alice.cap_ls()


def test_members_with_the_capability_see_the_rename_and_the_room_keeps_its_state(person):
    alice = person("alice")  # made #bar: its operator
    bob = person("bob")
    alice.send("TOPIC #bar :the plan")
    alice.send("MODE #bar +v bob")
    bob.expect("MODE", "#bar", "+v")
    alice.sync()
    alice.send("RENAME #bar #qux :a better name")
    echo = alice.expect("RENAME")
    assert echo.params == ("#bar", "#qux", "a better name")
    assert echo.source.startswith("alice!")
    seen = bob.expect("RENAME")
    assert seen.params == ("#bar", "#qux", "a better name")
    assert "time" in seen.tags
    bob.send("NAMES #qux")
    assert set(bob.expect("353").params[-1].split()) == {"@alice", "+bob"}
    bob.send("TOPIC #qux")
    assert bob.expect("332").params[-1] == "the plan"
    bob.send("PRIVMSG #qux :hello from the new name")
    assert alice.expect("PRIVMSG").params == ("#qux", "hello from the new name")


def test_members_without_the_capability_part_the_old_name_and_join_the_new(person):
    alice = person("alice")
    carol = person("carol", caps="")
    alice.send("TOPIC #bar :the plan")
    carol.expect("TOPIC")
    alice.send("RENAME #bar #qux :no reason")
    alice.expect("RENAME")
    lines = carol.collect("366")
    assert [(m.command, m.params[0]) for m in lines] == [
        ("PART", "#bar"),
        ("JOIN", "#qux"),
        ("332", "carol"),
        ("333", "carol"),
        ("353", "carol"),
        ("366", "carol"),
    ]
    part, join = lines[0], lines[1]
    assert part.params == ("#bar", "no reason")
    assert part.source.startswith("carol!") and join.source.startswith("carol!")
    assert join.params == ("#qux",)
    assert lines[2].params[1:] == ("#qux", "the plan")
    assert set(lines[4].params[-1].split()) == {"@alice", "carol"}


def test_the_fallback_join_is_followed_by_the_read_marker_before_the_end_of_names(
    history_server: RunningServer, person
):
    register_account(history_server.port, "erin", "hunter22")
    alice = person("alice")
    erin = person("erin", caps="draft/read-marker")  # an account's marker
    erin.send("PRIVMSG NickServ :IDENTIFY erin hunter22")
    erin.expect("900")
    frank = person("frank", caps="draft/read-marker")  # not logged in: its own
    when = "timestamp=2026-01-31T12:00:00.000Z"
    earlier = "timestamp=2026-01-30T12:00:00.000Z"
    for reader in (erin, frank):
        reader.send(f"MARKREAD #bar {when}")
        assert reader.expect("MARKREAD").params == ("#bar", when)
    alice.send("RENAME #bar #qux")
    alice.expect("RENAME")
    for reader in (erin, frank):
        lines = reader.collect("366")
        assert [m.command for m in lines] == ["PART", "JOIN", "MARKREAD", "353", "366"]
        assert lines[2].params == ("#qux", when)
        reader.send(f"MARKREAD #qux {earlier}")  # the room's marker under its new name...
        assert reader.expect("MARKREAD").params == ("#qux", when)  # ...does not go back


def test_the_fallback_join_is_in_extended_join_form_for_who_asked(person):
    alice = person("alice")
    dave = person("dave", caps="extended-join")
    alice.send("RENAME #bar #qux")
    alice.expect("RENAME")
    dave.expect("PART", "#bar")
    join = dave.expect("JOIN", skip=False)
    assert join.params == ("#qux", "*", "Real dave")  # (not logged in)


def test_a_rename_that_changes_only_the_case_is_not_a_part_for_anyone(person):
    alice = person("alice")
    carol = person("carol", caps="")
    alice.send("RENAME #bar #BAR")
    echo = alice.expect("RENAME")
    assert echo.params == ("#bar", "#BAR", "")
    assert carol.quiet() == []
    carol.send("NAMES #bar")
    assert carol.expect("353").params[2] == "#BAR"


def test_the_old_name_is_free_at_once(person):
    alice = person("alice")
    person("bob")
    alice.send("RENAME #bar #qux")
    alice.expect("RENAME")
    eve = person("eve", room=None)
    eve.send("JOIN #bar")
    names = eve.expect("353")
    assert names.params[-1] == "@eve"  # a new room, hers
    eve.send("MODE #bar +k beer")
    assert eve.expect("MODE").params[:2] == ("#bar", "+k")


def test_history_follows_the_room_and_its_lines_carry_the_new_name(person):
    alice = person("alice")
    alice.send("PRIVMSG #bar :said before")
    alice.expect("PRIVMSG")
    alice.send("RENAME #bar #qux")
    alice.expect("RENAME")
    alice.send("CHATHISTORY LATEST #qux * 10")
    alice.expect("BATCH")
    line = alice.expect("PRIVMSG")
    assert line.params == ("#qux", "said before")
    alice.expect("BATCH")  # (its end)
    alice.send("CHATHISTORY LATEST #bar * 10")
    assert alice.expect("FAIL").params[:2] == ("CHATHISTORY", "INVALID_TARGET")  # none left
    newcomer = person("newcomer", room=None)
    newcomer.send("JOIN #qux")
    replayed = newcomer.expect("PRIVMSG")
    assert replayed.params == ("#qux", "said before")


def test_what_an_emptied_room_of_the_new_name_said_is_not_taken_for_this_rooms(person):
    eve = person("eve", room="#qux")
    eve.send("PRIVMSG #qux :an old room's secret")
    eve.expect("PRIVMSG")
    eve.send("PART #qux")
    eve.expect("PART")
    alice = person("alice")
    alice.send("RENAME #bar #qux")
    alice.expect("RENAME")
    alice.send("CHATHISTORY LATEST #qux * 10")
    alice.expect("BATCH")
    assert alice.recv().command == "BATCH"


def test_only_an_operator_of_the_room_may_rename_it(person):
    person("alice")
    bob = person("bob")
    bob.send("RENAME #bar #qux")
    assert bob.expect("482").params[1] == "#bar"


def test_one_must_be_in_the_room(person):
    person("alice")
    outsider = person("outsider", room=None)
    outsider.send("RENAME #bar #qux")
    assert outsider.expect("442").params[1] == "#bar"
    outsider.send("RENAME #nowhere #qux")
    assert outsider.expect("403").params[1] == "#nowhere"


def test_a_name_in_use_is_refused(person):
    alice = person("alice")
    person("bob", room="#taken")
    alice.send("RENAME #bar #taken :mine now")
    fail = alice.expect("FAIL")
    assert fail.params[:4] == ("RENAME", "CHANNEL_NAME_IN_USE", "#bar", "#taken")


@pytest.mark.parametrize(
    ("new", "why"),
    [("qux", "not a valid room name"), ("#a,b", "not a valid"), ("#" + "x" * 80, "not a valid")],
)
def test_names_that_cannot_be_given(person, new, why):
    alice = person("alice")
    alice.send(f"RENAME #bar {new}")
    fail = alice.expect("FAIL")
    assert fail.params[:3] == ("RENAME", "CANNOT_RENAME", "#bar")
    assert why in fail.params[-1]
    alice.send("NAMES #bar")
    assert alice.expect("353").params[2] == "#bar"  # unchanged


def test_the_default_room_keeps_its_name(history_server, clients):
    alice = Client(history_server.port)
    clients.append(alice)
    alice.register("alice", RENAME)  # joins the default room
    alice.send("RENAME #lobby #hall")
    fail = alice.expect("FAIL")
    assert fail.params[:4] == ("RENAME", "CANNOT_RENAME", "#lobby", "#hall")
    assert "default room" in fail.params[-1]


def test_a_room_renamed_a_moment_ago_waits(person):
    alice = person("alice")
    alice.send("RENAME #bar #qux")
    alice.expect("RENAME")
    alice.send("RENAME #qux #quux")
    fail = alice.expect("FAIL")
    assert fail.params[:4] == ("RENAME", "CANNOT_RENAME", "#qux", "#quux")
    assert "renamed less than a minute ago" in fail.params[-1]


def test_missing_parameters(person):
    alice = person("alice")
    alice.send("RENAME #bar")
    assert alice.expect("461").params[1] == "RENAME"


def test_a_registered_room_keeps_its_registration_and_metadata_under_the_new_name(
    make_server, tmp_path, clients
):
    db = str(tmp_path / "chat.db")
    first = make_server(db=db)
    alice = Client(first.port)
    clients.append(alice)
    alice.register("alice", f"{RENAME} draft/metadata-2 batch", join=False)
    alice.send("REGISTER * * :correct-horse")
    alice.expect("REGISTER")
    alice.send("JOIN #team")
    alice.expect("366")
    alice.send("PRIVMSG ChanServ :REGISTER #team")
    assert "registered" in alice.expect("NOTICE").params[-1]
    alice.send("TOPIC #team :kept")
    alice.send("METADATA #team SET color :#0000ff")
    alice.expect("761")
    alice.send("RENAME #team #crew")
    alice.expect("RENAME")
    alice.sync()
    assert first.server.store is not None and first.server.store.sync()
    first.stop()

    second = make_server(db=db)
    guest = Client(second.port)
    clients.append(guest)
    guest.register("guest", "draft/metadata-2 batch", join=False)
    guest.send("METADATA #crew GET color")
    assert guest.expect("761").params[2:] == ("color", "*", "#0000ff")
    guest.send("JOIN #crew")
    assert guest.expect("332").params[-1] == "kept"
    guest.expect("366")
    guest.send("JOIN #team")
    assert guest.expect("353").params[-1] == "@guest"  # a new room: the name is free
