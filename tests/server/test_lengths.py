"""Lengths: of nicks, room names, topics, away messages and kick reasons.

Each is a ServerConfig field, advertised in ISUPPORT with the value set (NICKLEN,
CHANNELLEN, TOPICLEN, AWAYLEN, KICKLEN). As on Ergo, a name too long is refused — a nick
with 432, a room name with 403 — and a text too long is cut at its length and passed on.
The tests set them shorter than the defaults (one longer), so that what they show is the
setting's doing and not a constant's.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from chatcli.protocol import Message
from chatcli.protocol import numerics as n
from tests.conftest import Client

SHORT = {
    "nick_len": 12,
    "channel_len": 10,
    "topic_len": 16,
    "away_len": 14,
    "kick_len": 12,
    "max_channels": 5,
    "max_targets": 2,
    "max_monitor": 7,
}


@pytest.fixture
def server(make_server):
    """The ``connect`` fixture's server, here with the SHORT limits."""
    return make_server(**SHORT)


def isupport(burst: list[Message]) -> set[str]:
    return {token for msg in burst if msg.command == n.RPL_ISUPPORT for token in msg.params[1:-1]}


def test_isupport_advertises_the_configured_limits(connect):
    tokens = isupport(connect().register("alice"))
    assert {
        "NICKLEN=12",
        "CHANNELLEN=10",
        "TOPICLEN=16",
        "AWAYLEN=14",
        "KICKLEN=12",
        "CHANLIMIT=#:5",
        "MAXTARGETS=2",
        "MONITOR=7",
    } <= tokens
    (targmax,) = [token for token in tokens if token.startswith("TARGMAX=")]
    limits = dict(pair.split(":") for pair in targmax.removeprefix("TARGMAX=").split(","))
    assert (limits["PRIVMSG"], limits["NOTICE"], limits["MONITOR"]) == ("2", "2", "7")


def test_a_nick_longer_than_nick_len_is_refused_with_432(connect):
    """Modern IRC, ERR_ERRONEUSNICKNAME (432): "Returned when a NICK command cannot be
    successfully completed". NICKLEN: "the maximum length of a nickname that a client may
    set"."""
    bob = connect("bob")
    alice = connect()
    alice.send("NICK " + "a" * 13)  # 13 would do under the default 30
    assert alice.expect("432").params == ("*", "a" * 13, "Erroneous nickname")
    alice.register("a" * 12)  # exactly nick_len: fine
    alice.send("NICK " + "b" * 13)
    assert alice.expect("432").params[:2] == ("a" * 12, "b" * 13)
    alice.send(f"PRIVMSG bob :still {alice.nick}")
    assert bob.expect("PRIVMSG").params == ("bob", "still " + "a" * 12)


def test_a_room_name_longer_than_channel_len_is_refused_with_403(connect):
    """Modern IRC, CHANNELLEN: "the maximum length of a channel name that a client may join".
    Ergo answers a longer one with ERR_NOSUCHCHANNEL (403), and so do we."""
    alice, bob = connect("alice"), connect("bob")
    alice.send("JOIN #abcdefghij")  # 11 characters
    assert alice.expect("403").params == ("alice", "#abcdefghij", "No such channel")
    alice.send("JOIN #abcdefghi")  # 10: exactly channel_len
    alice.expect("JOIN", "#abcdefghi")
    bob.send("PRIVMSG #abcdefghij :anyone?")  # it was never made
    assert bob.expect("403").params[1] == "#abcdefghij"
    bob.send("JOIN #abcdefghi")
    alice.expect("JOIN", "#abcdefghi")


def test_a_topic_longer_than_topic_len_is_cut_at_it(connect):
    """Modern IRC, TOPICLEN: "the maximum length of a topic that a client may set on a
    channel". Ergo truncates a longer one; everyone sees the same, shorter topic."""
    alice, bob = connect("alice"), connect("bob")
    alice.send("TOPIC #lobby :0123456789abcdef and then some")
    assert bob.expect("TOPIC").params == ("#lobby", "0123456789abcdef")
    assert alice.expect("TOPIC").params == ("#lobby", "0123456789abcdef")
    carol = connect()
    burst = carol.register("carol")
    assert [m.params[2] for m in burst if m.command == n.RPL_TOPIC] == ["0123456789abcdef"]


def test_an_away_message_longer_than_away_len_is_cut_at_it(connect):
    """Modern IRC, AWAYLEN: "If an AWAY <reason> has more characters than this parameter, it
    may be silently truncated by the server before being passed on to other clients"."""
    alice, bob = connect("alice", caps="away-notify"), connect("bob")
    bob.send("AWAY :gone fishing, back at six")
    assert alice.expect("AWAY").params == ("gone fishing, ",)
    alice.send("PRIVMSG bob :dinner?")
    assert alice.expect("301").params == ("alice", "bob", "gone fishing, ")


def test_a_kick_reason_longer_than_kick_len_is_cut_at_it(connect):
    """Modern IRC, KICKLEN: "If a KICK <reason> has more characters than this parameter, it
    may be silently truncated by the server before being passed on to other clients"."""
    alice, bob = connect("alice"), connect("bob")
    alice.send("JOIN #ops")  # alice makes the room, so she runs it
    alice.expect("JOIN", "#ops")
    bob.send("JOIN #ops")
    alice.expect("JOIN", "#ops")
    alice.send("KICK #ops bob :that is quite enough now")
    assert bob.expect("KICK").params == ("#ops", "bob", "that is quit")
    assert alice.expect("KICK").params == ("#ops", "bob", "that is quit")
    bob.send("PRIVMSG #lobby :fair enough")  # kicked from one room, not from the server
    assert alice.expect("PRIVMSG").params == ("#lobby", "fair enough")


def test_lengths_longer_than_the_defaults_are_allowed_when_configured(make_server):
    running = make_server(nick_len=40, channel_len=80, topic_len=450)
    nick, room, topic = "n" * 35, "#" + "r" * 70, "t" * 400
    client = Client(running.port)
    try:
        assert {"NICKLEN=40", "CHANNELLEN=80", "TOPICLEN=450"} <= isupport(client.register(nick))
        client.send(f"JOIN {room}")
        client.expect("JOIN", room)
        client.send("JOIN #r")  # (a short name: the TOPIC line must fit in 512 bytes too)
        client.expect("JOIN", "#r")
        client.send(f"TOPIC #r :{topic}")
        assert client.expect("TOPIC").params == ("#r", topic)
    finally:
        client.close()


def test_a_message_to_an_offline_account_with_a_long_nick_is_kept(make_server, tmp_path):
    running = make_server(nick_len=40, db=str(tmp_path / "chat.db"))
    owner, alice = Client(running.port), Client(running.port)
    try:
        owner.register("o" * 35, join=False)
        owner.send("REGISTER * * :hunter22")
        owner.expect("REGISTER")
        owner.send("QUIT")
        assert owner.closed()
        alice.register("alice", join=False)
        alice.send("PRIVMSG " + "o" * 35 + " :are you there?")
        reply = alice.collect("301", "401")[-1]
        assert (reply.command, reply.params[1]) == ("301", "o" * 35)  # kept for their return
    finally:
        owner.close()
        alice.close()


def test_a_rehash_tells_connected_clients_the_new_lengths(server, connect):
    alice = connect("alice")
    server.server.reload_config = lambda: replace(server.config, topic_len=20)
    server.server.rehash()
    told = isupport(alice.sync())
    alice.send("TOPIC #lobby :" + "t" * 30)
    assert alice.expect("TOPIC").params[1] == "t" * 20  # the new length applies at once...
    assert "TOPICLEN=20" in told  # ...but the client is not told


def test_a_topic_and_a_kick_reason_at_the_default_lengths_are_relayed_within_512_bytes(
    make_server,
):
    """RFC 1459 2.3: "IRC messages are always lines of characters terminated with a CR-LF
    pair, and these messages shall not exceed 512 characters in length, counting all
    characters including the trailing CR-LF"."""
    running = make_server()  # the default lengths
    nick, room, longest = "n" * 30, "#" + "r" * 63, "t" * 390
    op, bob = Client(running.port), Client(running.port)
    try:
        op.send(f"NICK {nick}")
        op.send("USER " + "u" * 10 + " 0 * :Real")
        op.expect("376")
        bob.register("bob", join=False)
        op.send(f"JOIN {room}")
        op.expect("JOIN", room)
        bob.send(f"JOIN {room}")
        bob.expect("366")
        op.send(f"TOPIC {room} :{longest}")
        op.send(f"KICK {room} bob :{longest}")
        sizes = [len(bob.expect(command).to_bytes()) for command in ("TOPIC", "KICK")]
        assert max(sizes) <= 512, sizes
    finally:
        op.close()
        bob.close()
