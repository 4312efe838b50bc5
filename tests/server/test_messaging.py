"""The everyday commands end to end with three clients: broadcast, direct messages, who is
online, help and quit (PRIVMSG, NOTICE, NAMES, WHO, LUSERS, HELP, AWAY)."""

from __future__ import annotations

import pytest

from tests.server.hosts import shown_host


def three(connect):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    alice.expect("JOIN", "#lobby")
    alice.expect("JOIN", "#lobby")
    bob.expect("JOIN", "#lobby")
    return alice, bob, carol


def test_broadcast_reaches_everyone_else_in_the_room(server, connect):
    alice, bob, carol = three(connect)
    alice.send("PRIVMSG #lobby :hello, everyone")
    for other in (bob, carol):
        msg = other.expect("PRIVMSG")
        assert msg.source == f"alice!~alice@{shown_host(server)}"
        assert msg.params == ("#lobby", "hello, everyone")
    assert alice.sync() == []  # no echo without echo-message


def test_echo_message_returns_the_senders_own_message(connect):
    alice = connect("alice", caps="echo-message")
    alice.send("PRIVMSG #lobby :hi")
    assert alice.expect("PRIVMSG").params == ("#lobby", "hi")


def test_direct_messages_both_ways_reach_only_the_recipient(server, connect):
    alice, bob, carol = three(connect)
    alice.send("PRIVMSG bob :psst, bob")
    msg = bob.expect("PRIVMSG")
    assert (msg.source, msg.params) == (f"alice!~alice@{shown_host(server)}", ("bob", "psst, bob"))
    bob.send("PRIVMSG ALICE :hi alice")  # nicks are case-insensitive
    assert alice.expect("PRIVMSG").params == ("alice", "hi alice")
    assert carol.sync() == []


def test_message_to_several_targets(connect):
    alice, bob, carol = three(connect)
    alice.send("PRIVMSG bob,carol :to you both")
    assert bob.expect("PRIVMSG").params == ("bob", "to you both")
    assert carol.expect("PRIVMSG").params == ("carol", "to you both")
    alice.send("PRIVMSG a,b,c,d,e :too many")
    alice.expect("407")


def test_message_errors(connect):
    alice = connect("alice")
    alice.send("PRIVMSG nobody :hello?")
    assert alice.expect("401").params == ("alice", "nobody", "No such nick/channel")
    alice.send("PRIVMSG #nowhere :hello?")
    assert alice.expect("403").params[:2] == ("alice", "#nowhere")
    alice.send("PRIVMSG")
    alice.expect("411")
    alice.send("PRIVMSG bob")
    alice.expect("412")
    alice.send("PRIVMSG alice :")
    alice.expect("412")


def test_notice_is_never_answered_with_an_error(connect):
    alice, bob, _ = three(connect)
    alice.send("NOTICE nobody :hello?")
    alice.send("NOTICE #lobby :a notice")
    assert bob.expect("NOTICE").params == ("#lobby", "a notice")
    assert alice.sync() == []


def test_away_is_reported_to_whoever_messages_you(connect):
    alice, bob, _ = three(connect)
    bob.send("AWAY :at lunch")
    assert bob.expect("306").params[-1] == "You have been marked as being away"
    alice.send("PRIVMSG bob :are you there?")
    assert alice.expect("301").params == ("alice", "bob", "at lunch")
    bob.expect("PRIVMSG")  # still delivered
    alice.send("WHO bob")
    assert alice.expect("352").params[6] == "G"
    alice.expect("315")
    bob.send("AWAY")
    bob.expect("305")
    alice.send("PRIVMSG bob :back?")
    assert alice.sync() == []


@pytest.mark.single_server("LUSERS' 255 and 265 count the node's own clients")
def test_names_who_and_lusers_list_who_is_online(server, connect):
    alice, _bob, _carol = three(connect)
    alice.send("NAMES #lobby")
    names = alice.expect("353")
    assert names.params[:3] == ("alice", "=", "#lobby")
    assert set(names.params[3].split()) == {"alice", "bob", "carol"}
    alice.expect("366", "alice", "#lobby")

    alice.send("WHO #lobby")
    rows = [m for m in alice.collect("315") if m.command == "352"]
    assert sorted(r.params[5] for r in rows) == ["alice", "bob", "carol"]
    row = next(r for r in rows if r.params[5] == "bob")
    assert row.params == (
        "alice", "#lobby", "~bob", shown_host(server), "chatcli.local", "bob", "H", "0 Real bob",
    )  # fmt: skip

    alice.send("LUSERS")
    assert alice.expect("251").params[-1] == "There are 3 users and 0 invisible on 1 servers"
    assert alice.expect("255").params[-1] == "I have 3 clients and 0 servers"
    assert alice.expect("265").params[1:] == ("3", "3", "Current local users 3, max 3")


def test_whowas_remembers_who_left_and_who_renamed(server, connect):
    alice, bob, carol = three(connect)
    bob.send("QUIT")
    bob.closed()
    carol.send("NICK caroline")
    alice.expect("NICK")
    alice.send("WHOWAS bob")
    replies = alice.collect("369")
    assert replies[0].command == "314"
    assert replies[0].params == ("alice", "bob", "~bob", shown_host(server), "*", "Real bob")
    alice.send("WHOWAS carol")
    assert alice.expect("314").params[1] == "carol"
    alice.send("WHOWAS nobody")
    assert alice.expect("406").params[1] == "nobody"
    alice.expect("369")


def test_whois_and_ison(server, connect):
    alice, _bob, _ = three(connect)
    alice.send("WHOIS bob")
    replies = {m.command: m for m in alice.collect("318")}
    assert replies["311"].params == ("alice", "bob", "~bob", shown_host(server), "*", "Real bob")
    assert replies["319"].params == ("alice", "bob", "#lobby")
    assert "317" in replies
    alice.send("WHOIS ghost")
    alice.expect("401")
    alice.expect("318")
    alice.send("ISON bob ghost CAROL")
    assert alice.expect("303").params == ("alice", "bob carol")


def test_help_lists_the_commands_and_explains_one(connect):
    alice = connect("alice")
    alice.send("HELP")
    lines = alice.collect("706")
    assert lines[0].command == "704"
    text = "\n".join(m.params[-1] for m in lines)
    for verb in ("PRIVMSG", "NAMES", "WHO", "QUIT", "JOIN", "HELP"):
        assert verb in text
    alice.send("HELP privmsg")
    first = alice.expect("704")
    assert first.params[1] == "PRIVMSG" and first.params[2].startswith("PRIVMSG <target>")
    alice.send("HELP nonsense")
    alice.expect("524")


def test_help_works_before_registration(connect):
    client = connect()
    client.send("HELP")
    client.expect("706")


def test_a_refused_nick_change_is_not_remembered_by_whowas(connect):
    alice, _bob, _ = three(connect)
    alice.send("NICK bob")
    alice.expect("433")
    alice.send("WHOWAS alice")
    alice.expect("406")


@pytest.mark.single_server("LUSERS' 265 counts the node's own clients")
def test_lusers_counts_follow_arrivals_departures_and_invisibility(connect):
    alice, bob, carol = three(connect)
    bob.send("MODE bob +i")
    bob.expect("MODE")
    carol.send("QUIT")
    carol.closed()
    alice.expect("QUIT")
    alice.send("LUSERS")
    assert alice.expect("251").params[-1] == "There are 1 users and 1 invisible on 1 servers"
    assert alice.expect("265").params[1:] == ("2", "3", "Current local users 2, max 3")
