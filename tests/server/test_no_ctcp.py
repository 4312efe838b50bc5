"""Room mode +C: no CTCP to the room but ACTION (``/me``), as on InspIRCd and Ergo."""

from __future__ import annotations

from chatcli.protocol import numerics as n


def _room(connect):
    op = connect("op", join=False)
    op.send("JOIN #quiet")
    op.collect("366")
    member = connect("member", join=False)
    member.send("JOIN #quiet")
    member.collect("366")
    op.sync()
    op.quiet()
    return op, member


def test_operators_set_and_unset_it_and_it_shows(connect):
    op, member = _room(connect)
    member.send("MODE #quiet +C")
    assert member.expect(n.ERR_CHANOPRIVSNEEDED).params[1] == "#quiet"
    op.send("MODE #quiet +C")
    assert member.expect("MODE").params == ("#quiet", "+C")
    op.send("MODE #quiet")
    assert "C" in op.expect(n.RPL_CHANNELMODEIS).params[2]
    op.send("MODE #quiet -C")
    assert member.expect("MODE").params == ("#quiet", "-C")
    op.send("MODE #quiet")
    assert "C" not in op.expect(n.RPL_CHANNELMODEIS).params[2]


def test_ctcp_is_refused_and_action_passes(connect):
    op, member = _room(connect)
    op.send("MODE #quiet +C")
    member.expect("MODE")
    op.sync()
    member.send("PRIVMSG #quiet :\x01VERSION\x01")
    refused = member.expect(n.ERR_CANNOTSENDTOCHAN)
    assert refused.params[1:] == ("#quiet", "Cannot send CTCP to channel (+C)")
    member.send("NOTICE #quiet :\x01PING 1\x01")
    assert [m for m in member.sync() if m.command == n.ERR_CANNOTSENDTOCHAN] == []
    member.send("PRIVMSG #quiet :\x01ACTION waves\x01")
    member.send("PRIVMSG #quiet :plain words")
    member.sync()
    heard = [m.params[1] for m in op.collect("PRIVMSG")] + [op.expect("PRIVMSG").params[1]]
    assert heard == ["\x01ACTION waves\x01", "plain words"]
    assert [m for m in op.quiet() if m.command in ("PRIVMSG", "NOTICE")] == []


def test_without_it_ctcp_passes(connect):
    op, member = _room(connect)
    member.send("PRIVMSG #quiet :\x01VERSION\x01")
    assert op.expect("PRIVMSG").params[1] == "\x01VERSION\x01"
