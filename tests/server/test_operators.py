"""Server operators: OPER with a hashed password, KILL, WALLOPS, and how others see them."""

from __future__ import annotations

import pytest

from chatcli.passwords import hash_password, verify_password
from chatcli.protocol import numerics as n
from tests.conftest import Client
from tests.server.hosts import shown_host

OPER_HASH = hash_password("s3cret")


@pytest.fixture
def oper_server(make_server):
    return make_server(operators=(("admin", OPER_HASH),))


@pytest.fixture
def join(oper_server):
    clients: list[Client] = []

    def open_client(nick: str) -> Client:
        client = Client(oper_server.port)
        clients.append(client)
        client.register(nick)
        return client

    yield open_client
    for client in clients:
        client.close()


def test_password_hashes_are_salted_and_checked():
    assert hash_password("pw") != hash_password("pw")
    assert verify_password("pw", hash_password("pw"))
    assert not verify_password("PW", hash_password("pw"))
    assert not verify_password("pw", "not a hash")
    assert not verify_password("pw", "scrypt$x$y$z$00$00")


def test_oper_with_the_right_password(join):
    alice = join("alice")
    alice.send("OPER admin s3cret")
    assert alice.expect(n.RPL_YOUREOPER).params[0] == "alice"
    assert alice.expect("MODE").params == ("alice", "+o")
    alice.send("MODE alice")
    assert "o" in alice.expect(n.RPL_UMODEIS).params[1]


def test_oper_refusals(join):
    alice = join("alice")
    alice.send("OPER admin wrong")
    assert alice.expect(n.ERR_PASSWDMISMATCH).params[0] == "alice"
    alice.send("OPER nobody s3cret")  # an unknown name is refused as a wrong password is
    assert alice.expect(n.ERR_PASSWDMISMATCH).params == ("alice", "Password incorrect")
    alice.send("OPER admin")
    alice.expect(n.ERR_NEEDMOREPARAMS)
    alice.send("MODE alice +o")  # cannot be taken by MODE
    alice.send("MODE alice")
    assert "o" not in alice.expect(n.RPL_UMODEIS).params[1]


def test_others_see_an_operator_in_whois_who_lusers_and_userhost(join, oper_server):
    alice, bob = join("alice"), join("bob")
    alice.send("OPER admin s3cret")
    alice.expect(n.RPL_YOUREOPER)
    bob.send("WHOIS alice")
    assert bob.expect(n.RPL_WHOISOPERATOR).params[1] == "alice"
    bob.send("WHO alice")
    assert "*" in bob.expect(n.RPL_WHOREPLY).params[6]
    bob.send("LUSERS")
    assert bob.expect(n.RPL_LUSEROP).params[1] == "1"
    bob.send("USERHOST alice bob")
    assert bob.expect(n.RPL_USERHOST).params[1].split() == [
        f"alice*=+~alice@{shown_host(oper_server)}", f"bob=+~bob@{shown_host(oper_server)}",
    ]  # fmt: skip


def test_kill_disconnects_and_tells_the_room(join):
    alice, bob, carol = join("alice"), join("bob"), join("carol")
    bob.send("KILL carol :spam")
    assert bob.expect(n.ERR_NOPRIVILEGES).params[0] == "bob"
    alice.send("OPER admin s3cret")
    alice.expect(n.RPL_YOUREOPER)
    alice.send("KILL nobody :x")
    alice.expect(n.ERR_NOSUCHNICK)
    alice.send("KILL carol :spam")
    kill = carol.expect("KILL", skip=False)  # first: a client knows not to reconnect
    assert kill.source.startswith("alice!") and kill.params == ("carol", "spam")
    assert "Killed (alice (spam))" in carol.expect("ERROR", skip=False).params[0]
    assert carol.closed()
    quit_ = bob.expect("QUIT")
    assert quit_.source.startswith("carol!") and quit_.params == ("Killed (alice (spam))",)


def test_kill_without_a_reason_says_so(join):
    alice, bob = join("alice"), join("bob")
    alice.send("OPER admin s3cret")
    alice.expect(n.RPL_YOUREOPER)
    alice.send("KILL bob :")
    assert bob.expect("KILL").params == ("bob", "no reason given")
    assert bob.closed()


def test_wallops_reach_those_with_user_mode_w(join):
    alice, bob, carol = join("alice"), join("bob"), join("carol")
    bob.send("MODE bob +w")
    bob.expect("MODE")
    carol.send("WALLOPS :hello")
    carol.expect(n.ERR_NOPRIVILEGES)
    alice.send("OPER admin s3cret")
    alice.expect(n.RPL_YOUREOPER)
    alice.send("WALLOPS :server restarts at noon")
    got = bob.expect("WALLOPS")
    assert got.source.startswith("alice!") and got.params == ("server restarts at noon",)
    assert [m for m in carol.sync() if m.command == "WALLOPS"] == []
