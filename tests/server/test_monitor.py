"""MONITOR (IRCv3): lists of nicks to watch, and notices when they come and go."""

from __future__ import annotations

from chatcli.protocol import numerics as n
from tests.server.hosts import shown_host


def test_adding_nicks_reports_who_is_online_now(server, connect):
    connect("bob")
    watcher = connect("watcher")
    watcher.send("MONITOR + bob,carol")
    online = watcher.expect(n.RPL_MONONLINE)
    assert online.params == ("watcher", f"bob!~bob@{shown_host(server)}")
    assert watcher.expect(n.RPL_MONOFFLINE).params == ("watcher", "carol")


def test_watchers_hear_of_registrations_quits_and_nick_changes(connect):
    watcher = connect("watcher")
    watcher.send("MONITOR + carol,dave")
    watcher.expect(n.RPL_MONOFFLINE)
    carol = connect("carol")
    assert watcher.expect(n.RPL_MONONLINE).params[1].startswith("carol!")
    carol.send("NICK dave")
    assert watcher.expect(n.RPL_MONOFFLINE).params[1] == "carol"
    assert watcher.expect(n.RPL_MONONLINE).params[1].startswith("dave!")
    carol.send("QUIT")
    assert watcher.expect(n.RPL_MONOFFLINE).params[1] == "dave"


def test_a_connection_that_drops_without_quit_is_reported_offline(connect):
    watcher = connect("watcher")
    carol = connect("carol")
    watcher.send("MONITOR + carol")
    watcher.expect(n.RPL_MONONLINE)
    carol.close()
    assert watcher.expect(n.RPL_MONOFFLINE).params[1] == "carol"


def test_list_remove_clear_and_status(connect):
    connect("bob")
    watcher = connect("watcher")
    watcher.send("MONITOR + bob,carol,erin")
    watcher.sync()
    watcher.send("MONITOR - erin")
    watcher.send("MONITOR L")
    assert sorted(watcher.expect(n.RPL_MONLIST).params[1].split(",")) == ["bob", "carol"]
    watcher.expect(n.RPL_ENDOFMONLIST)
    watcher.send("MONITOR S")
    replies = watcher.sync()
    assert [(m.command, m.params[1].split("!")[0]) for m in replies] == [
        (n.RPL_MONONLINE, "bob"),
        (n.RPL_MONOFFLINE, "carol"),
    ]
    watcher.send("MONITOR C")
    watcher.send("MONITOR L")
    assert [m.command for m in watcher.collect(n.RPL_ENDOFMONLIST)] == [n.RPL_ENDOFMONLIST]


def test_the_list_has_a_limit(make_server):
    from tests.conftest import Client

    server = make_server(max_monitor=2)
    watcher = Client(server.port)
    watcher.register("watcher")
    watcher.send("MONITOR + a1,a2,a3,a4")
    full = watcher.expect(n.ERR_MONLISTFULL)
    assert full.params[1:3] == ("2", "a3,a4")
    watcher.close()


def test_bad_nicks_are_ignored_and_the_server_carries_on(connect):
    watcher = connect("watcher")
    watcher.send("MONITOR + #room,,9lives,ok")
    assert watcher.expect(n.RPL_MONOFFLINE).params[1] == "ok"
    watcher.send("MONITOR")
    assert watcher.expect(n.ERR_NEEDMOREPARAMS).params[1] == "MONITOR"
    watcher.send("MONITOR X")
    watcher.sync()
