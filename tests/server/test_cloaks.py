"""Cloaked hosts: "Users' IP addresses are not shown to other users, only to operators."

Everyone else sees a user's host as a cloak, a keyed hash of the address
(``<13 base32 characters>.<network>``, as Ergo's ip-cloaking): in every source
(``nick!user@cloak``), in WHOIS, WHO, USERHOST, WHOWAS and NAMES. The user and server
operators also get the address, in RPL_WHOISACTUALLY (338). The key is kept in the
database, so a cloak stays the same across restarts. Bans match the cloak and the address.

Every test client connects from 127.0.0.1, so all of them share one cloak.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing

import pytest

from chatcli.passwords import hash_password
from chatcli.protocol import numerics as n
from chatcli.server.cloaks import cloak
from chatcli.server.store import Store
from tests.conftest import Client, RunningServer
from tests.server.hosts import LOOPBACK, shown_host

OPER_HASH = hash_password("s3cret")
CLOAK = re.compile(r"[a-z2-7]{13}\.chatcli")
KEY = bytes(range(32))


@pytest.fixture
def running(make_server) -> RunningServer:
    return make_server(operators=(("admin", OPER_HASH),))


@pytest.fixture
def users(running):
    """Registered clients of ``running``, in #lobby; ``oper=True`` makes one an operator."""
    opened: list[Client] = []

    def open_client(nick: str, caps: str = "", oper: bool = False) -> Client:
        client = Client(running.port)
        opened.append(client)
        client.register(nick, caps)
        if oper:
            client.send("OPER admin s3cret")
            client.expect(n.RPL_YOUREOPER)
        return client

    yield open_client
    for client in opened:
        client.close()


def whois(client: Client, nick: str) -> dict[str, tuple[str, ...]]:
    """The WHOIS replies' parameters, by numeric."""
    client.send(f"WHOIS {nick}")
    return {m.command: m.params for m in client.collect(n.RPL_ENDOFWHOIS)}


def own_host(client: Client) -> str:
    """The host the server shows for ``client``, as its own WHOIS says."""
    return whois(client, client.nick)[n.RPL_WHOISUSER][3]


# -- what others see ------------------------------------------------------------------------


def test_a_cloak_is_a_keyed_hash_named_after_the_network(running, users):
    alice = users("alice")
    host = own_host(alice)
    assert CLOAK.fullmatch(host), host
    assert host == shown_host(running) != LOOPBACK


def test_others_see_the_cloak_and_never_the_address(running, users):
    """JOIN, PRIVMSG, WHOIS, WHO, WHOX, USERHOST and NAMES (with userhost-in-names)."""
    bob = users("bob", caps="userhost-in-names")
    alice = users("alice")
    host = own_host(alice)
    seen = [bob.expect("JOIN", "#lobby")]
    alice.send("PRIVMSG #lobby :hello")
    seen.append(bob.expect("PRIVMSG"))
    for query in ("WHOIS alice", "WHO alice", "WHO alice %uhn", "USERHOST alice", "NAMES #lobby"):
        bob.send(query)
        seen += bob.sync()
    lines = [m.to_line() for m in seen]
    assert not [line for line in lines if LOOPBACK in line]
    assert seen[0].source == seen[1].source == f"alice!~alice@{host}"
    replies = {m.command: m.params for m in seen}
    assert replies[n.RPL_WHOISUSER][1:4] == ("alice", "~alice", host)
    assert n.RPL_WHOISACTUALLY not in replies
    assert replies[n.RPL_WHOREPLY][3] == host
    assert replies[n.RPL_WHOSPCRPL][1:] == ("~alice", host, "alice")
    assert replies[n.RPL_USERHOST][1] == f"alice=+~alice@{host}"
    assert f"alice!~alice@{host}" in replies[n.RPL_NAMREPLY][-1].split()


def test_whowas_shows_the_cloak(users):
    alice, bob = users("alice"), users("bob")
    host = own_host(bob)
    bob.send("QUIT")
    bob.closed()
    alice.send("WHOWAS bob")
    replies = {m.command: m.params for m in alice.collect(n.RPL_ENDOFWHOWAS)}
    assert replies[n.RPL_WHOWASUSER][1:4] == ("bob", "~bob", host)
    assert n.RPL_WHOISACTUALLY not in replies


# -- what the user and operators see --------------------------------------------------------


def test_you_see_your_own_address_in_your_whois(users):
    """RPL_WHOISACTUALLY, as Ergo: '<nick> <user>@<host> <ip> :Actual user@host, Actual IP'."""
    alice = users("alice")
    actually = whois(alice, "alice")[n.RPL_WHOISACTUALLY]
    assert actually == (
        "alice",
        "alice",
        "~alice@127.0.0.1",
        LOOPBACK,
        "Actual user@host, Actual IP",
    )


def test_an_operator_sees_everyones_address(users):
    alice, admin = users("alice"), users("admin", oper=True)
    replies = whois(admin, "alice")
    assert replies[n.RPL_WHOISUSER][3] == own_host(alice)  # the host is the cloak still
    assert replies[n.RPL_WHOISACTUALLY][1:4] == ("alice", "~alice@127.0.0.1", LOOPBACK)
    admin.send("WHO alice %in")  # WHOX field i, the IP
    assert admin.expect(n.RPL_WHOSPCRPL).params[1:] == (LOOPBACK, "alice")


def test_an_operator_sees_the_address_of_who_has_left(users):
    admin, bob = users("admin", oper=True), users("bob")
    bob.send("QUIT")
    bob.closed()
    admin.send("WHOWAS bob")
    replies = {m.command: m.params for m in admin.collect(n.RPL_ENDOFWHOWAS)}
    assert replies[n.RPL_WHOISACTUALLY][1:4] == ("bob", "~bob@127.0.0.1", LOOPBACK)


# -- bans -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", ["bob!*@{cloak}", "*!*@*.chatcli", "bob!*@127.0.0.1"])
def test_a_ban_on_the_cloak_or_on_the_address_keeps_a_user_out(users, mask):
    """A user can ban the cloak they see; an operator who knows the address can ban it."""
    alice, bob = users("alice"), users("bob")
    alice.send("JOIN #r")
    alice.expect("366", "alice", "#r")
    alice.send(f"MODE #r +b {mask.format(cloak=own_host(bob))}")
    alice.expect("MODE", "#r", "+b")
    bob.send("JOIN #r")
    assert bob.expect(n.ERR_BANNEDFROMCHAN).params[:2] == ("bob", "#r")


@pytest.mark.parametrize("mask", ["bob!*@{cloak}", "bob!*@127.0.0.1"])
def test_a_ban_exception_on_the_cloak_or_on_the_address_lets_a_user_in(users, mask):
    alice, bob = users("alice"), users("bob")
    alice.send("JOIN #r")
    alice.expect("366", "alice", "#r")
    alice.send(f"MODE #r +be *!*@* {mask.format(cloak=own_host(bob))}")
    alice.expect("MODE", "#r", "+be")
    bob.send("JOIN #r")
    bob.expect("366", "bob", "#r")


# -- the key --------------------------------------------------------------------------------


def test_the_cloak_is_the_same_after_a_restart_on_the_same_database(make_server, tmp_path):
    db = str(tmp_path / "chat.db")
    hosts = []
    for _ in range(2):
        running = make_server(db=db)
        client = Client(running.port)
        client.register("alice", join=False)
        hosts.append(own_host(client))
        client.close()
        running.stop()
    other = make_server(db=str(tmp_path / "other.db"))  # another database, another key
    assert hosts[0] == hosts[1] != shown_host(other)


def test_without_a_database_the_key_is_new_each_run(make_server):
    assert make_server().config.db is None
    assert shown_host(make_server()) != shown_host(make_server())


def test_the_key_is_random_and_kept_in_the_database(tmp_path):
    keys = []
    for name in ("chat.db", "chat.db", "other.db"):
        store = Store(tmp_path / name)
        store.open()
        keys.append(store.secret("cloak"))
        store.close()
    assert keys[0] == keys[1] != keys[2]
    assert len(keys[0]) == 32
    with closing(sqlite3.connect(tmp_path / "chat.db")) as db:
        assert db.execute("SELECT value FROM secrets WHERE name = 'cloak'").fetchone()[0] == keys[0]


# -- turned off -----------------------------------------------------------------------------


def test_with_cloak_hosts_off_everyone_sees_the_address(make_server):
    running = make_server(cloak_hosts=False)
    alice, bob = Client(running.port), Client(running.port)
    try:
        bob.register("bob")
        alice.register("alice")
        assert bob.expect("JOIN", "#lobby").source == "alice!~alice@127.0.0.1"
        assert whois(bob, "alice")[n.RPL_WHOISUSER][3] == LOOPBACK
        alice.send("JOIN #r")
        alice.expect("366", "alice", "#r")
        alice.send("MODE #r +b bob!*@127.0.0.1")
        alice.expect("MODE", "#r", "+b")
        bob.send("JOIN #r")
        bob.expect(n.ERR_BANNEDFROMCHAN)
    finally:
        alice.close()
        bob.close()


# -- the cloak itself (pure) ----------------------------------------------------------------


def test_one_address_one_cloak_per_key():
    assert cloak("192.0.2.1", KEY, "chatcli") == cloak("192.0.2.1", KEY, "chatcli")
    assert cloak("192.0.2.1", KEY, "chatcli") != cloak("192.0.2.2", KEY, "chatcli")
    assert cloak("192.0.2.1", KEY, "chatcli") != cloak("192.0.2.1", KEY[::-1], "chatcli")


def test_an_ipv6_address_is_cloaked_by_its_64_bit_prefix():
    """One user usually holds a whole /64 (Ergo's cidr-len-ipv6 default): a ban on the
    cloak must hold for all of it."""
    assert cloak("2001:db8::1", KEY, "x") == cloak("2001:db8::ffff:1", KEY, "x")
    assert cloak("2001:db8::1", KEY, "x") != cloak("2001:db8:0:1::1", KEY, "x")
    assert cloak("::ffff:192.0.2.1", KEY, "x") == cloak("192.0.2.1", KEY, "x")
    assert cloak("fe80::1%eth0", KEY, "x") == cloak("fe80::1", KEY, "x")


@pytest.mark.parametrize(
    ("network", "suffix"),
    [("chatcli", "chatcli"), ("My Net", "mynet"), ("Café-Net!", "caf-net"), ("***", "chatcli")],
)
def test_the_suffix_is_the_network_name_as_a_host_name_label(network, suffix):
    assert cloak("192.0.2.1", KEY, network).split(".", 1)[1] == suffix
