"""Quiet clients (``chatcli.local/quiet``): scripts such as ``chat send`` and ``chat tail``
come into a room and go without a join or quit line for everyone in it, and are otherwise
members like any other: seen in NAMES, held to keys, bans, invite-only and moderation."""

from __future__ import annotations

from chatcli.protocol import numerics as n
from tests.conftest import Client

QUIET = "chatcli.local/quiet"


def room(client: Client, name: str) -> None:
    client.send(f"JOIN {name}")
    client.expect("366", client.nick, name)


def test_a_quiet_client_comes_speaks_and_goes_without_a_join_or_quit_line(connect):
    alice = connect("alice", caps="extended-join away-notify")
    room(alice, "#dev")
    script = connect("script", caps=QUIET, join=False)
    room(script, "#dev")  # its own JOIN still comes back to it, as to anyone
    script.send("PRIVMSG #dev :build 7 passed")
    script.sync()
    alice.send("NAMES #dev")
    seen = alice.collect(n.RPL_ENDOFNAMES)
    assert [(m.command, m.params[-1]) for m in seen[:1]] == [("PRIVMSG", "build 7 passed")]
    assert seen[0].source.startswith("script!")
    names = next(m for m in seen if m.command == n.RPL_NAMREPLY).params[-1].split()
    assert sorted(names) == ["@alice", "script"]  # seen by whoever asks
    script.send("PART #dev")
    script.expect("PART")
    room(script, "#dev")
    script.send("QUIT :done")
    assert script.closed()
    assert alice.sync() == []  # no JOIN, PART, AWAY or QUIT line ever came


def test_a_quiet_client_is_held_to_bans_invite_only_and_moderation(connect):
    op = connect("op")
    room(op, "#locked")
    op.send("MODE #locked +b script!*@*")
    op.expect("MODE")
    script = connect("script", caps=QUIET, join=False)
    script.send("JOIN #locked")
    script.expect(n.ERR_BANNEDFROMCHAN)
    op.send("MODE #locked -b+i script!*@*")
    op.expect("MODE")
    script.send("JOIN #locked")
    script.expect(n.ERR_INVITEONLYCHAN)
    op.send("MODE #locked -i+m")
    op.expect("MODE")
    room(script, "#locked")
    script.send("PRIVMSG #locked :let me speak")
    script.expect(n.ERR_CANNOTSENDTOCHAN)
    assert [m.command for m in op.sync()] == []


def test_being_quiet_is_chosen_before_registration_and_kept(connect, make_server):
    loud = connect("loud")
    loud.send(f"CAP REQ :{QUIET}")
    assert loud.expect("CAP").params == ("loud", "NAK", QUIET)  # no quiet exit after a loud entry
    quiet = connect("quiet", caps=QUIET, join=False)
    quiet.send(f"CAP REQ :-{QUIET}")
    assert quiet.expect("CAP").params == ("quiet", "NAK", f"-{QUIET}")
    running = make_server(quiet_clients=False)
    other = Client(running.port)
    try:
        assert QUIET not in other.cap_ls()
    finally:
        other.close()
