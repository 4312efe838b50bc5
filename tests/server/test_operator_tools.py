"""What operators run a server with: REHASH (and SIGHUP), a notice to everyone (``$*``),
and STATS l and y, their view of the connections and the limits."""

from __future__ import annotations

import signal
import sys
from dataclasses import replace

import pytest

from chatcli.errors import ConfigError
from chatcli.passwords import hash_password
from chatcli.protocol import numerics as n
from tests.conftest import Client
from tests.serve import ChatServe

OPER_HASH = hash_password("s3cret")


@pytest.fixture
def running(make_server):
    return make_server(operators=(("admin", OPER_HASH),), motd=("the old motd",))


@pytest.fixture
def users(running):
    clients: list[Client] = []

    def open_client(nick: str, oper: bool = False) -> Client:
        client = Client(running.port)
        clients.append(client)
        client.register(nick, join=False)
        if oper:
            client.send("OPER admin s3cret")
            client.expect(n.RPL_YOUREOPER)
        return client

    yield open_client
    for client in clients:
        client.close()


def test_an_operator_can_notice_everyone_and_nobody_else_can(users):
    admin, alice, bob = users("admin", oper=True), users("alice"), users("bob")
    admin.send("NOTICE $* :restarting at noon")
    for user in (alice, bob):
        got = user.expect("NOTICE")
        assert got.source.startswith("admin!")
        assert got.params == ("$*", "restarting at noon")
    assert [m for m in admin.sync() if m.command == "NOTICE"] == []  # no echo unasked
    admin.send("PRIVMSG $chatcli.* :by server name")
    assert bob.expect("PRIVMSG").params == ("$chatcli.*", "by server name")
    admin.send("PRIVMSG $elsewhere.example :no")
    assert admin.expect(n.ERR_NOSUCHSERVER).params[1] == "$elsewhere.example"
    alice.send("PRIVMSG $* :me too")
    alice.expect(n.ERR_NOPRIVILEGES)
    assert [m for m in bob.sync() if m.params[-1] == "me too"] == []


@pytest.mark.single_server("STATS L lists the node's own connections")
def test_stats_l_lists_every_connection_for_operators_only(users):
    admin, alice = users("admin", oper=True), users("alice")
    alice.send("PRIVMSG admin :" + "x" * 300)
    admin.expect("PRIVMSG")
    unregistered = Client(admin.sock.getpeername()[1])
    try:
        alice.send("STATS l")
        alice.expect(n.ERR_NOPRIVILEGES)
        admin.send("STATS l")
        replies = admin.collect(n.RPL_ENDOFSTATS)
        links = {m.params[1]: m.params[2:] for m in replies if m.command == n.RPL_STATSLINKINFO}
        assert set(links) == {
            "admin[~admin@127.0.0.1]",
            "alice[~alice@127.0.0.1]",
            "*[*@127.0.0.1]",
        }
        sendq, lines_out, kib_sent, lines_in, kib_in, seconds, secure = links[
            "alice[~alice@127.0.0.1]"
        ]
        assert int(lines_out) > 10  # its welcome burst
        assert int(lines_in) >= 4  # NICK, USER, CAP..., PRIVMSG, STATS
        assert int(kib_sent) >= 1 and int(sendq) >= 0 and int(seconds) >= 0
        assert kib_in == "0" and secure == "plaintext"
    finally:
        unregistered.close()


@pytest.mark.single_server("STATS Y counts the node's own connections")
def test_stats_y_shows_each_limit_and_how_close_it_is(users):
    admin = users("admin", oper=True)
    users("alice")
    admin.send("STATS y")
    rows = {
        m.params[2]: m.params[3:]
        for m in admin.collect(n.RPL_ENDOFSTATS)
        if m.command == n.RPL_STATSYLINE
    }
    assert rows["max_clients"] == ("4096", "2 connected")
    assert rows["max_per_ip"] == ("10", "most from one address: 2 (127.0.0.1)")
    assert rows["flood_burst"][0] == "20"
    assert rows["max_sendq"][0] == "1048576"  # as in the settings file, not 1.04858e+06
    assert rows["flood_kill"][0] == "30"
    assert {"max_sendq", "max_recvq", "flood_kill", "ping_interval"} <= set(rows)


@pytest.mark.single_server("a rehash reloads one node's settings")
def test_rehash_applies_new_settings_and_names_those_that_take_a_restart(running, users):
    admin, alice = users("admin", oper=True), users("alice")
    alice.send("REHASH")
    alice.expect(n.ERR_NOPRIVILEGES)
    old = running.server.config
    running.server.reload_config = lambda: replace(
        old, motd=("the new motd",), flood_burst=3, port=old.port + 1, max_targets=2
    )
    admin.send("REHASH")
    assert admin.expect(n.RPL_REHASHING).params[1:] == ("*", "Rehashing")
    told = admin.expect("NOTICE").params[-1]
    assert told == "These settings changed but take a restart: port"
    alice.send("MOTD")  # a connection made before the rehash sees the new settings too
    assert alice.expect(n.RPL_MOTD).params[-1].endswith("the new motd")
    alice.send("PRIVMSG a,b,c :too many targets now")
    alice.expect(n.ERR_TOOMANYTARGETS)
    assert running.server.config.port == old.port  # kept until a restart


def test_a_rehash_that_fails_changes_nothing(running, users):
    admin = users("admin", oper=True)

    def broken():
        raise ConfigError("settings.toml: flood_rate: must be a number")

    running.server.reload_config = broken
    before = running.server.config
    admin.send("REHASH")
    admin.expect(n.RPL_REHASHING)
    told = admin.expect("NOTICE").params[-1]
    assert told == "REHASH failed, nothing changed: settings.toml: flood_rate: must be a number"
    assert running.server.config is before
    admin.sync()


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGHUP")
def test_sighup_rereads_the_config_file_and_motd(tmp_path):
    motd = tmp_path / "motd.txt"
    motd.write_text("first words\n")
    settings = tmp_path / "chat.toml"
    settings.write_text("max_targets = 4\n")
    args = ("--no-db", "--config", str(settings), "--motd", str(motd))
    with ChatServe(*args) as serving:
        motd.write_text("second words\n")
        settings.write_text("max_targets = 1\n")
        serving.signal(signal.SIGHUP)
        serving.wait_for_log("rehashed")
        client = Client(serving.port)
        try:
            burst = client.register("late", join=False)
            assert any(m.params[-1].endswith("second words") for m in burst)
            client.send("PRIVMSG a,b :x")
            client.expect(n.ERR_TOOMANYTARGETS)
        finally:
            client.close()
