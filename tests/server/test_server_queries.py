"""Questions about the server: INFO, ADMIN, STATS and VERSION's <server>, and LIST's
user-count filters (ELIST=U)."""

from __future__ import annotations

import pytest


def test_info_is_rpl_info_lines_then_rpl_endofinfo(connect):
    """'Upon receiving an INFO command, the given server will respond with zero or more
    RPL_INFO replies, followed by one RPL_ENDOFINFO numeric' (Modern, INFO)."""
    alice = connect("alice")
    alice.send("INFO")
    *lines, end = alice.collect("374")
    assert lines and all(m.command == "371" and len(m.params) == 2 for m in lines)
    assert "chatcli" in lines[0].params[1]
    assert end.params == ("alice", "End of INFO list")


def test_admin_names_the_server(connect):
    """'RPL_ADMINME (256) <client> [<server>] :Administrative info', then RPL_ADMINLOC1
    (257), RPL_ADMINLOC2 (258) and RPL_ADMINEMAIL (259)."""
    alice = connect("alice")
    alice.send("ADMIN")
    replies = alice.collect("259")
    assert [m.command for m in replies] == ["256", "257", "258", "259"]
    assert replies[0].params == ("alice", "chatcli.local", "Administrative info")
    assert replies[1].params == ("alice", "chatcli.local is a chatcli IRC server")


def test_stats_u_is_the_uptime(connect):
    """'RPL_STATSUPTIME (242) <client> :Server Up <days> days <hours>:<minutes>:<seconds>',
    then 'RPL_ENDOFSTATS (219) <client> <stats letter> :End of /STATS report'."""
    alice = connect("alice")
    alice.send("STATS u")
    uptime = alice.expect("242", skip=False)
    assert uptime.params[1].startswith("Server Up 0 days 0:00:")
    assert alice.expect("219", skip=False).params == ("alice", "u", "End of /STATS report")


@pytest.mark.parametrize("query, letter", [("m", "m"), ("k", "k"), ("xyz", "x")])
def test_every_other_stats_query_just_ends(connect, query, letter):
    alice = connect("alice")
    alice.send(f"STATS {query}")
    assert alice.expect("219", skip=False).params == ("alice", letter, "End of /STATS report")


@pytest.mark.parametrize("line", ["STATS", "STATS :"])
def test_stats_without_a_query_needs_more_params(connect, line):
    alice = connect("alice")
    alice.send(line)
    assert alice.expect("461").params[:2] == ("alice", "STATS")
    assert alice.sync() == []


@pytest.mark.parametrize(
    "line, end", [("INFO", "374"), ("ADMIN", "259"), ("STATS u", "219"), ("VERSION", "351")]
)
@pytest.mark.parametrize("target", ["chatcli.local", "CHATCLI.LOCAL", "*.local", "bob"])
def test_a_target_server_may_be_this_server_its_mask_or_a_nick_on_it(connect, line, end, target):
    alice, _ = connect("alice"), connect("bob")
    alice.send(f"{line} {target}")
    alice.expect(end)


@pytest.mark.parametrize("line", ["INFO", "ADMIN", "STATS u", "VERSION"])
def test_another_server_is_err_nosuchserver(connect, line):
    """'ERR_NOSUCHSERVER (402) <client> <server name> :No such server'."""
    alice = connect("alice")
    alice.send(f"{line} irc.example.org")
    error = alice.expect("402", skip=False)
    assert error.params == ("alice", "irc.example.org", "No such server")
    assert alice.sync() == []


# -- LIST filters ---------------------------------------------------------------------------


def rooms(client, line):
    """{room: users} from a LIST."""
    client.send(line)
    replies = client.collect("323")
    assert replies[0].command == "321"
    return {m.params[1]: int(m.params[2]) for m in replies if m.command == "322"}


@pytest.fixture
def sized_rooms(connect):
    """#lobby with 3 people, #two with 2, #one with 1; returns a client to ask with."""
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    for client, names in ((alice, "#one,#two"), (bob, "#two")):
        client.send(f"JOIN {names}")
        client.sync()
    return carol


@pytest.mark.parametrize(
    "line, found",
    [
        ("LIST", {"#lobby": 3, "#two": 2, "#one": 1}),
        ("LIST >0", {"#lobby": 3, "#two": 2, "#one": 1}),
        ("LIST >1", {"#lobby": 3, "#two": 2}),
        ("LIST <2", {"#one": 1}),
        ("LIST <1", {}),
        ("LIST <100", {"#lobby": 3, "#two": 2, "#one": 1}),
        ("LIST >1,<3", {"#two": 2}),
        ("LIST >1 <3", {"#two": 2}),
        ("LIST #one,#two >1", {"#two": 2}),
        ("LIST #two", {"#two": 2}),
        ("LIST #nowhere", {}),
    ],
)
def test_list_filters_rooms_by_how_many_are_in_them(sized_rooms, line, found):
    """ELIST 'U: Searching based on user count within the channel, via the "<val" and
    ">val" modifiers to search for a channel that has less or more than val users,
    respectively.'"""
    assert rooms(sized_rooms, line) == found


@pytest.mark.parametrize("condition", [">", "<x", ">-1", ">1x"])
def test_a_bad_list_filter_is_refused_and_the_server_goes_on(connect, condition):
    alice = connect("alice")
    alice.send(f"LIST {condition}")
    error = alice.expect("400", skip=False)
    assert error.params[:2] == ("alice", "LIST")
    assert condition in error.params[-1]
    assert rooms(alice, "LIST") == {"#lobby": 1}
