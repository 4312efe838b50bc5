"""WHO with IRCv3 WHOX fields, and how WHO and WHOIS show bots (IRCv3 bot mode).

IRCv3 WHOX: "WHO <mask> [%<fields>[,<token>]] ... The server will reply with zero, one or
more RPL_WHOSPCRPL replies, followed by a final RPL_ENDOFWHO reply. Servers MUST NOT send
RPL_WHOREPLY replies." "Exactly the fields requested by the client MUST be returned".
"""

from __future__ import annotations

import pytest

from tests.server.hosts import shown_host


def pair(connect):
    """alice and bob, both in #lobby (and so visible to each other)."""
    alice, bob = connect("alice"), connect("bob")
    alice.expect("JOIN", "#lobby")
    return alice, bob


def whox(client, line):
    """The RPL_WHOSPCRPL replies' parameters after <client>, and RPL_ENDOFWHO."""
    client.send(line)
    replies = client.collect("315")
    assert all(m.command == "354" for m in replies[:-1]), [m.command for m in replies]
    return [m.params[1:] for m in replies[:-1]], replies[-1]


def test_every_field_in_the_standard_order(server, connect):
    """Fields come back in the order t c u i h s n f d l a o r, whatever the order asked."""
    alice, _ = pair(connect)
    for fields in ("tcuihsnfdlaor", "roaldfnshiuct"):
        rows, end = whox(alice, f"WHO bob %{fields},123")
        assert rows == [
            (
                "123",  # t: the token
                "*",  # c: a nick query names no room
                "~bob",  # u
                "255.255.255.255",  # i: not disclosed to others
                shown_host(server),  # h: the cloak
                "chatcli.local",  # s
                "bob",  # n
                "H",  # f
                "0",  # d: hops
                rows[0][9],  # l: idle seconds
                "0",  # a: "0 is used for [account] when the user is logged out"
                "*",  # o: no op levels (as Ergo)
                "Real bob",  # r
            )
        ]
        assert rows[0][9].isdigit()
        assert end.params == ("alice", "bob", "End of WHO list")


def test_only_the_fields_asked_for(connect):
    alice, _ = pair(connect)
    rows, _ = whox(alice, "WHO bob %tn,321")
    assert rows == [("321", "bob")]
    rows, _ = whox(alice, "WHO bob %an")
    assert rows == [("bob", "0")]


def test_a_room_query_names_the_room_and_member_prefixes(connect):
    alice, bob = pair(connect)
    alice.send("JOIN #dev")
    alice.expect("366", "alice", "#dev")
    bob.send("JOIN #dev")
    alice.expect("JOIN", "#dev")
    rows, end = whox(alice, "WHO #dev %cnf")
    assert sorted(rows) == [("#dev", "alice", "H@"), ("#dev", "bob", "H")]
    assert end.params[1] == "#dev"


def test_you_see_your_own_ip_address(connect):
    alice = connect("alice")
    rows, _ = whox(alice, "WHO alice %in")
    assert rows == [("127.0.0.1", "alice")]


def test_a_token_without_t_and_t_without_a_token(connect):
    """The token is only echoed as field t; with no token, t is "0" (as Ergo)."""
    alice, _ = pair(connect)
    assert whox(alice, "WHO bob %n,7")[0] == [("bob",)]
    assert whox(alice, "WHO bob %tn")[0] == [("0", "bob")]


def test_unsupported_fields_are_ignored(connect):
    """'Servers MUST ignore any non-standard field they don't support.' (IRCnet's S and U
    are such fields, so letters are case-sensitive.)"""
    alice, _ = pair(connect)
    assert whox(alice, "WHO bob %nxyzSU")[0] == [("bob",)]


def test_no_fields_gives_bare_replies(connect):
    alice, _ = pair(connect)
    assert whox(alice, "WHO bob %")[0] == [()]


@pytest.mark.parametrize("token", ["1234", "abc", "-1", "٣"])
def test_a_token_that_is_not_one_to_three_digits_is_refused(connect, token):
    """'The token MUST contain only digit characters and MUST contain at most 3
    characters.' The server says so with ERR_UNKNOWNERROR and goes on."""
    alice, _ = pair(connect)
    alice.send(f"WHO bob %tn,{token}")
    error = alice.expect("400")
    assert error.params[:2] == ("alice", "WHO")
    assert alice.sync() == []


def test_the_operators_only_filter_finds_no_one(connect):
    """RFC 2812 3.6.1 'o': only operators; this server has none."""
    alice, _ = pair(connect)
    alice.send("WHO * o")
    assert [m.command for m in alice.collect("315")] == ["315"]
    assert whox(alice, "WHO * o%n")[0] == []


def test_plain_who_is_unchanged(server, connect):
    alice, _ = pair(connect)
    alice.send("WHO bob")
    row = alice.expect("352")
    assert row.params == (
        "alice", "*", "~bob", shown_host(server), "chatcli.local", "bob", "H", "0 Real bob",
    )  # fmt: skip
    alice.expect("315")


# -- invisible users (+i) -------------------------------------------------------------------


def invisible_stranger(connect):
    """alice, and bob with user mode +i in no room with her."""
    alice, bob = connect("alice", join=False), connect("bob", join=False)
    bob.send("MODE bob +i")
    bob.expect("MODE")
    return alice


def who_nicks(client, line):
    """The nicks of the RPL_WHOREPLY rows WHO ``line`` answers."""
    client.send(line)
    return [m.params[5] for m in client.collect("315") if m.command == "352"]


@pytest.mark.parametrize("nick", ["bob", "BOB"])
def test_an_invisible_user_is_found_by_their_exact_nick(connect, nick):
    """Invisibility hides someone from masks (RFC 2812 3.6.1 'WHO ... visible users'),
    not from whoever already knows their nick: WHO <nick> answers as WHOIS <nick> does."""
    alice = invisible_stranger(connect)
    assert who_nicks(alice, f"WHO {nick}") == ["bob"]
    assert whox(alice, f"WHO {nick} %n")[0] == [("bob",)]


@pytest.mark.parametrize("mask", ["b*", "bo?", "*", "0"])
def test_an_invisible_user_is_hidden_from_masks(connect, mask):
    alice = invisible_stranger(connect)
    assert "bob" not in who_nicks(alice, f"WHO {mask}")
    assert ("bob",) not in whox(alice, f"WHO {mask} %n")[0]


# -- bots -----------------------------------------------------------------------------------


def test_who_flags_show_a_bot(connect):
    """Ergo's flags: H or G, then the room prefix, then B for a bot."""
    alice, bob = pair(connect)
    bob.send("MODE bob +B")
    bob.expect("MODE")
    alice.send("WHO #lobby")
    rows = {m.params[5]: m.params[6] for m in alice.collect("315") if m.command == "352"}
    assert rows == {"alice": "H", "bob": "HB"}
    assert whox(alice, "WHO bob %nf")[0] == [("bob", "HB")]


def test_whois_says_a_bot_is_a_bot(connect):
    """IRCv3 bot mode: 'RPL_WHOISBOT (335) <client> <nick> :is a bot'."""
    alice, bob = pair(connect)
    alice.send("WHOIS bob")
    assert "335" not in {m.command for m in alice.collect("318")}
    bob.send("MODE bob +B")
    bob.expect("MODE")
    alice.send("WHOIS bob")
    replies = {m.command: m for m in alice.collect("318")}
    assert replies["335"].params == ("alice", "bob", "is a bot")
