"""IRCv3 extended-monitor: who MONITORs a nick hears of its AWAY, ACCOUNT and SETNAME (with
the caps for them) as if it shared a room with it, and only once if it does."""

from __future__ import annotations

from chatcli.protocol import numerics as n
from tests.conftest import Client, register_account

NOTIFY = "extended-monitor away-notify account-notify setname"
#: A node knows only its own clients' MONITOR lists: a watcher on another node than the
#: watched is not told (yet) of anything but MONONLINE/MONOFFLINE.


def _watch(client, nick):
    client.send(f"MONITOR + {nick}")
    client.expect(n.RPL_MONONLINE)


def test_the_cap_is_offered(connect):
    client = connect()
    client.send("CAP LS 302")
    offered = " ".join(m.params[-1] for m in client.collect("CAP") if m.command == "CAP")
    assert "extended-monitor" in offered.split()


def test_a_watcher_outside_the_rooms_hears_away_and_setname(connect):
    bob = connect("bob", caps="setname")
    watcher = connect("watcher", caps=NOTIFY, join=False)
    _watch(watcher, "bob")
    bob.send("AWAY :lunch")
    bob.expect(n.RPL_NOWAWAY)
    away = watcher.expect("AWAY")
    assert away.source.startswith("bob!")
    assert away.params == ("lunch",)
    bob.send("AWAY")
    assert watcher.expect("AWAY").params == ()
    bob.send("SETNAME :Robert")
    bob.sync()
    assert watcher.expect("SETNAME").params == ("Robert",)


def test_a_watcher_hears_of_a_login(make_server, tmp_path, clients):
    server = make_server(db=str(tmp_path / "chat.db"))
    register_account(server.port, "bob", "bobs-password")
    watcher = Client(server.port)
    clients.append(watcher)
    watcher.register("watcher", NOTIFY, join=False)
    bob = Client(server.port)
    clients.append(bob)
    bob.register("bob", join=False)
    _watch(watcher, "bob")
    bob.send("PRIVMSG NickServ :IDENTIFY bobs-password")
    bob.expect(n.RPL_LOGGEDIN)
    account = watcher.expect("ACCOUNT")
    assert account.source.startswith("bob!")
    assert account.params == ("bob",)


def test_without_extended_monitor_nothing_is_told(connect):
    bob = connect("bob")
    watcher = connect("watcher", caps="away-notify setname", join=False)
    _watch(watcher, "bob")
    bob.send("AWAY :lunch")
    bob.send("SETNAME :Robert")
    bob.sync()
    watcher.sync()
    assert [m for m in watcher.quiet() if m.command in ("AWAY", "SETNAME")] == []


def test_a_watcher_sharing_a_room_is_told_once(connect):
    bob = connect("bob")
    watcher = connect("watcher", caps=NOTIFY)
    _watch(watcher, "bob")
    bob.send("AWAY :lunch")
    bob.expect(n.RPL_NOWAWAY)
    bob.send("SETNAME :Robert")
    bob.sync()
    told = watcher.sync()
    assert [m.command for m in told if m.command in ("AWAY", "SETNAME")] == ["AWAY", "SETNAME"]
    assert [m for m in watcher.quiet() if m.command in ("AWAY", "SETNAME")] == []
