"""Channel list modes: bans (+b), ban exceptions (+e) and invite exceptions (+I).

Modern IRC client protocol, "Channel Modes": "Ban Exception (+e): ... If a user matches
an entry in the ban exception list, they are able to join the channel even if they also
match an entry in the ban list." "Invite Exception (+I): ... If a user matches an entry
in the invite-exception list, they are able to join an invite-only channel without being
explicitly invited."
"""

from __future__ import annotations

import pytest

from chatcli.server.channel import MAX_LIST_ENTRIES
from tests.server.hosts import shown_host

#: mode -> (entry numeric, end numeric)
LISTS = {"b": ("367", "368"), "e": ("348", "349"), "I": ("346", "347")}


def room(op, name, *modes):
    """``op`` creates ``name`` (and runs it), then sets ``modes`` one by one."""
    op.send(f"JOIN {name}")
    op.expect("366", op.nick, name)
    for change in modes:
        op.send(f"MODE {name} {change}")
        op.expect("MODE", name)


def listing(client, name, mode):
    """The entries of one list, as (mask, setter) pairs, and the end reply."""
    entry, end = LISTS[mode]
    client.send(f"MODE {name} {mode}")
    replies = client.collect(end)
    assert all(m.command == entry for m in replies[:-1])
    for m in replies[:-1]:
        assert m.params[1] == name and m.params[4].isdigit()  # "<setter> <time set>"
    return [(m.params[2], m.params[3]) for m in replies[:-1]], replies[-1]


@pytest.mark.parametrize("mode", ["e", "I"])
def test_an_operator_sets_lists_and_removes_an_entry(server, connect, mode):
    """'RPL_EXCEPTLIST (348) <client> <channel> <mask>' and 'RPL_INVEXLIST (346)',
    each list ending with its own end numeric; like the ban list they also say who set
    each mask and when."""
    alice = connect("alice")
    room(alice, "#r")
    alice.send(f"MODE #r +{mode} bob")
    assert alice.expect("MODE").params == ("#r", f"+{mode}", "bob!*@*")
    entries, end = listing(alice, "#r", mode)
    assert entries == [("bob!*@*", f"alice!~alice@{shown_host(server)}")]
    assert end.params[:2] == ("alice", "#r")
    alice.send(f"MODE #r -{mode} BOB!*@*")  # the same mask in another case
    assert alice.expect("MODE").params == ("#r", f"-{mode}", "bob!*@*")
    assert listing(alice, "#r", mode)[0] == []


def test_one_mode_line_can_set_and_list_several_lists(connect):
    alice = connect("alice")
    room(alice, "#r")
    alice.send("MODE #r +beI bad good!*@* friend")
    change = alice.expect("MODE")
    assert change.params == ("#r", "+beI", "bad!*@*", "good!*@*", "friend!*@*")
    alice.send("MODE #r eIb")
    ends = [m.command for m in alice.collect("368") if m.command in ("349", "347", "368")]
    assert ends == ["349", "347", "368"]


@pytest.mark.parametrize("mode", ["e", "I"])
def test_only_operators_change_the_lists_but_members_may_read_them(server, connect, mode):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    room(alice, "#r", f"+{mode} friend")
    bob.send("JOIN #r")
    bob.expect("366", "bob", "#r")
    bob.send(f"MODE #r +{mode} bob")
    assert bob.expect("482").params[:2] == ("bob", "#r")
    assert listing(bob, "#r", mode)[0] == [("friend!*@*", f"alice!~alice@{shown_host(server)}")]
    carol.send(f"MODE #r {mode}")  # not a member
    assert carol.expect("442").params[:2] == ("carol", "#r")
    carol.sync()


def test_a_ban_exception_lets_a_banned_user_join_and_speak(connect):
    alice, bob = connect("alice"), connect("bob")
    room(alice, "#r", "+b b*")
    bob.send("JOIN #r")
    bob.expect("474")
    alice.send("MODE #r +e bob!*@127.0.0.1")
    alice.expect("MODE", "#r", "+e")
    bob.send("JOIN #r")
    bob.expect("JOIN", "#r")
    bob.send("PRIVMSG #r :thanks")
    assert alice.expect("PRIVMSG").params == ("#r", "thanks")


def test_a_banned_member_without_an_exception_may_not_speak(connect):
    alice, bob = connect("alice"), connect("bob")
    room(alice, "#r", "+e bob")
    bob.send("JOIN #r")
    alice.expect("JOIN", "#r")
    alice.send("MODE #r +b b*")
    bob.expect("MODE", "#r", "+b")
    bob.send("PRIVMSG #r :still here")  # excepted
    assert alice.expect("PRIVMSG").params == ("#r", "still here")
    alice.send("MODE #r -e bob!*@*")
    bob.expect("MODE", "#r", "-e")
    bob.send("PRIVMSG #r :and now?")
    assert bob.expect("404").params[:2] == ("bob", "#r")


def test_an_invite_exception_lets_a_matching_user_into_an_invite_only_room(connect):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    room(alice, "#r", "+i", "+I bob")
    bob.send("JOIN #r")
    bob.expect("JOIN", "#r")
    carol.send("JOIN #r")
    carol.expect("473")


def test_an_invite_exception_does_not_lift_a_ban(connect):
    """As in Ergo: +I stands in for an INVITE to a +i room, not for a ban exception."""
    alice, bob = connect("alice"), connect("bob")
    room(alice, "#r", "+i", "+I bob", "+b bob")
    bob.send("JOIN #r")
    bob.expect("474")


def test_an_invite_exception_matters_only_while_the_room_is_invite_only(connect):
    alice, bob = connect("alice"), connect("bob")
    room(alice, "#r", "+I nobody")
    bob.send("JOIN #r")
    bob.expect("JOIN", "#r")


@pytest.mark.parametrize("mode", ["b", "e", "I"])
def test_a_full_list_is_refused_with_err_banlistfull(connect, mode):
    """'ERR_BANLISTFULL (478) <client> <channel> <char> :Channel list is full'; the
    limit is MAXLIST in ISUPPORT."""
    alice = connect("alice")
    room(alice, "#r")
    for i in range(0, MAX_LIST_ENTRIES, 4):  # four a line (MODES=4): within flood limits
        alice.send(f"MODE #r +{mode * 4} " + " ".join(f"user{j}" for j in range(i, i + 4)))
    alice.sync()
    alice.send(f"MODE #r +{mode} one-too-many")
    full = alice.expect("478")
    assert full.params == ("alice", "#r", mode, "Channel list is full")
    entries, _ = listing(alice, "#r", mode)
    assert len(entries) == MAX_LIST_ENTRIES


@pytest.mark.parametrize("mode", ["e", "I"])
def test_a_mask_with_a_space_is_refused_and_the_server_goes_on(connect, mode):
    alice = connect("alice")
    room(alice, "#r")
    alice.send(f"MODE #r +{mode} :a b")
    assert alice.expect("696").params[:3] == ("alice", "#r", mode)
    assert listing(alice, "#r", mode)[0] == []


def test_a_mask_longer_than_a_whole_source_is_refused(connect):
    """Every mask is kept compiled: its length, and so its memory, has a bound."""
    alice = connect("alice")
    room(alice, "#r")
    alice.send(f"MODE #r +b {'a?' * 60}!*@*")  # 124 characters: a long but real source
    alice.expect("MODE", "#r")
    alice.send(f"MODE #r +b m:{'a?' * 80}!*@*")  # 166
    refused = alice.expect("696")
    assert refused.params[:3] == ("alice", "#r", "b") and "Mask too long" in refused.params[-1]
    assert len(listing(alice, "#r", "b")[0]) == 1


def test_setting_a_mask_twice_or_removing_an_absent_one_changes_nothing(connect):
    alice = connect("alice")
    room(alice, "#r", "+e bob")
    alice.send("MODE #r +e bob!*@*")
    alice.send("MODE #r -I nobody")
    assert alice.sync() == []


def test_list_modes_are_not_unknown_modes(connect):
    alice = connect("alice")
    room(alice, "#r")
    alice.send("MODE #r +eIz x y")
    assert alice.expect("472").params[1] == "z"
    assert alice.expect("MODE").params == ("#r", "+eI", "x!*@*", "y!*@*")


def test_a_mute_keeps_someone_in_the_room_but_silent(connect):
    """Ergo's mute extban, '+b m:<mask>': who matches it may join and read, not speak;
    voice lifts it, as does an exception."""
    alice, bob = connect("alice"), connect("bob")
    room(alice, "#r", "+b M:bob")  # the prefix in any case, the mask completed
    listed, _ = listing(alice, "#r", "b")
    assert [mask for mask, _ in listed] == ["m:bob!*@*"]
    bob.send("JOIN #r")
    bob.expect("366", "bob", "#r")  # a mute is no ban
    bob.send("PRIVMSG #r :can anyone hear me?")
    assert bob.expect("404").params[1] == "#r"
    alice.send("PRIVMSG #r :you are muted")
    assert bob.expect("PRIVMSG").params == ("#r", "you are muted")
    alice.send("MODE #r +v bob")
    bob.expect("MODE", "#r")
    bob.send("PRIVMSG #r :voiced now")
    assert alice.expect("PRIVMSG").params == ("#r", "voiced now")
    alice.send("MODE #r -v+e bob bob")
    bob.expect("MODE", "#r")
    bob.send("PRIVMSG #r :excepted now")
    assert alice.expect("PRIVMSG").params == ("#r", "excepted now")
    alice.send("MODE #r -e+b bob m:*!*@*")
    bob.expect("MODE", "#r")
    bob.send("PRIVMSG #r :and now?")
    bob.expect("404")
    assert [m for m in alice.sync() if m.command == "PRIVMSG"] == []


def test_a_mute_on_someone_else_changes_nothing_for_the_rest(connect):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    room(alice, "#r", "+b m:carol")
    for member in (bob, carol):
        member.send("JOIN #r")
        member.expect("366", member.nick, "#r")
    bob.send("PRIVMSG #r :fine")
    assert alice.expect("PRIVMSG").params == ("#r", "fine")
    assert [m for m in bob.sync() if m.command == "404"] == []
    carol.send("PRIVMSG #r :and me?")
    carol.expect("404")
