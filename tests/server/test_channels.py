"""Rooms: JOIN, PART, TOPIC, NAMES, LIST, KICK, INVITE, MODE, and NICK changes."""

from __future__ import annotations

import pytest

from tests.server.hosts import shown_host


def shared_room(name, op, *others):
    """``op`` creates the room ``name`` (and runs it), then ``others`` join it."""
    op.send(f"JOIN {name}")
    op.expect("366", op.nick, name)
    for other in others:
        other.send(f"JOIN {name}")
        op.expect("JOIN", name)


def test_join_creates_a_room_and_its_creator_runs_it(connect):
    alice, bob = connect("alice"), connect("bob")
    alice.send("JOIN #dev")
    alice.expect("JOIN", "#dev")
    names = alice.expect("353")
    assert names.params[2:] == ("#dev", "@alice")
    bob.send("JOIN #DEV")  # case-insensitive: the room keeps the name it was created with
    assert alice.expect("JOIN", "#dev").source.startswith("bob!")
    assert bob.expect("353").params[2:] == ("#dev", "@alice bob")


def test_default_room_has_no_automatic_operator(connect):
    burst = connect().register("alice")
    assert next(m for m in burst if m.command == "353").params[-1] == "alice"


def test_anyone_may_set_the_default_rooms_topic(connect):
    """The default room has no operator, so nothing in it is reserved to operators."""
    alice, bob = connect("alice"), connect("bob")
    bob.send("TOPIC #lobby :Welcome, all")
    assert alice.expect("TOPIC").params == ("#lobby", "Welcome, all")
    alice.send("MODE #lobby")
    assert alice.expect("324").params[2] == "+n"


def test_join_errors(connect):
    alice = connect("alice")
    alice.send("JOIN nochan")
    alice.expect("403")
    alice.send("JOIN #bad,chan")  # comma splits: '#bad' ok, 'chan' invalid
    alice.expect("JOIN", "#bad")
    alice.expect("403", "alice", "chan")


def test_part_leaves_and_others_see_it(connect):
    alice, bob = connect("alice"), connect("bob")
    alice.expect("JOIN")
    bob.send("PART #lobby :bye for now")
    part = alice.expect("PART")
    assert part.params == ("#lobby", "bye for now") and part.source.startswith("bob!")
    bob.expect("PART")
    bob.send("PART #lobby")
    bob.expect("442")
    bob.send("PART #nothere")
    bob.expect("403")


def test_join_zero_leaves_every_room(connect):
    alice = connect("alice")
    alice.send("JOIN #a,#b")
    alice.send("JOIN 0")
    parts = {alice.expect("PART").params[0] for _ in range(3)}
    assert parts == {"#lobby", "#a", "#b"}


def test_topic_set_shown_on_join_and_protected_by_t(server, connect):
    alice, bob = connect("alice"), connect("bob")
    alice.send("JOIN #dev")
    alice.expect("366")
    alice.send("TOPIC #dev :Release on Friday")
    assert alice.expect("TOPIC").params == ("#dev", "Release on Friday")
    bob.send("JOIN #dev")
    assert bob.expect("332").params == ("bob", "#dev", "Release on Friday")
    assert bob.expect("333").params[:3] == ("bob", "#dev", f"alice!~alice@{shown_host(server)}")
    bob.send("TOPIC #dev :mine now")
    bob.expect("482")  # +t: only operators
    bob.send("TOPIC #dev")
    bob.expect("332")
    alice.send("TOPIC #dev :")
    assert bob.expect("TOPIC").params == ("#dev", "")
    bob.send("TOPIC #dev")
    bob.expect("331")


def test_nick_change_is_seen_by_everyone_sharing_a_room(server, connect):
    alice, bob = connect("alice"), connect("bob")
    alice.expect("JOIN")
    bob.send("NICK robert")
    change = alice.expect("NICK")
    assert (change.source, change.params) == (f"bob!~bob@{shown_host(server)}", ("robert",))
    assert bob.expect("NICK").params == ("robert",)
    alice.send("PRIVMSG robert :hi robert")
    assert bob.expect("PRIVMSG").params == ("robert", "hi robert")
    bob.send("NICK alice")
    bob.expect("433")


def test_list_shows_rooms_sizes_and_topics(connect):
    alice = connect("alice")
    alice.send("JOIN #dev")
    alice.send("TOPIC #dev :dev talk")
    alice.send("LIST")
    rows = {m.params[1]: m.params[2:] for m in alice.collect("323") if m.command == "322"}
    assert rows == {"#lobby": ("1", ""), "#dev": ("1", "dev talk")}


def listed(client, line="LIST"):
    """{room: (users, topic)} from a LIST."""
    client.send(line)
    return {m.params[1]: m.params[2:] for m in client.collect("323") if m.command == "322"}


def rooms_formed(client):
    """LUSERS' count of rooms: 'RPL_LUSERCHANNELS (254) <client> <channels> :channels
    formed'."""
    client.send("LUSERS")
    return {m.command: m.params[1] for m in client.collect("266")}["254"]


def test_an_empty_default_room_is_not_listed_counted_or_named(connect):
    """The default room stays when nobody is in it (and keeps its topic), but a room with
    nobody in it is not one that LIST shows, LUSERS counts or NAMES names anyone in: it
    answers as a room that does not exist would."""
    alice = connect("alice", join=False)
    assert listed(alice) == {}
    assert listed(alice, "LIST <1") == {}
    assert listed(alice, "LIST #lobby") == {}
    assert rooms_formed(alice) == "0"
    alice.send("NAMES #lobby")
    assert [m.params for m in alice.collect("366")] == [("alice", "#lobby", "End of /NAMES list")]
    alice.send("NAMES")
    assert [m.command for m in alice.collect("366")] == ["366"]


def test_whoever_joins_the_empty_default_room_finds_its_topic(connect):
    bob = connect("bob")
    bob.send("TOPIC #lobby :Welcome, all")
    bob.expect("TOPIC")
    bob.send("PART #lobby")
    bob.expect("PART")
    alice = connect("alice", join=False)
    assert listed(alice) == {}
    alice.send("JOIN #lobby")
    assert alice.expect("332").params[1:] == ("#lobby", "Welcome, all")
    assert listed(alice) == {"#lobby": ("1", "Welcome, all")}
    assert rooms_formed(alice) == "1"


def test_kick_needs_an_operator(connect):
    alice, bob = connect("alice"), connect("bob")
    shared_room("#dev", alice, bob)
    bob.send("KICK #dev alice")
    bob.expect("482")
    alice.send("KICK #dev bob :behave")
    kick = bob.expect("KICK")
    assert kick.params == ("#dev", "bob", "behave")
    alice.send("KICK #dev bob")
    assert alice.expect("441").params[1:3] == ("bob", "#dev")


def test_a_kick_without_a_reason_or_with_an_empty_one_gives_the_kickers_nick(connect):
    alice, bob = connect("alice"), connect("bob")
    shared_room("#dev", alice, bob)
    alice.send("KICK #dev bob")
    assert bob.expect("KICK").params == ("#dev", "bob", "alice")
    bob.send("JOIN #dev")
    alice.expect("JOIN", "#dev")
    alice.send("KICK #dev bob :")  # what irssi sends for /kick bob
    assert bob.expect("KICK").params == ("#dev", "bob", "alice")


def test_invite_only_room(connect):
    alice, bob = connect("alice"), connect("bob")
    alice.send("JOIN #secret")
    alice.send("MODE #secret +i")
    assert alice.expect("MODE").params == ("#secret", "+i")
    bob.send("JOIN #secret")
    bob.expect("473")
    alice.send("INVITE bob #secret")
    assert alice.expect("341").params == ("alice", "bob", "#secret")
    invite = bob.expect("INVITE")
    assert invite.params == ("bob", "#secret") and invite.source.startswith("alice!")
    bob.send("JOIN #secret")
    bob.expect("JOIN", "#secret")
    alice.send("INVITE bob #secret")
    alice.expect("443")


def test_key_and_limit(connect):
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    alice.send("JOIN #k")
    alice.send("MODE #k +kl sesame 2")
    assert alice.expect("MODE").params == ("#k", "+kl", "sesame", "2")
    bob.send("JOIN #k")
    bob.expect("475")
    bob.send("JOIN #k sesame")
    bob.expect("JOIN", "#k")
    carol.send("JOIN #k sesame")
    carol.expect("471")
    alice.send("MODE #k")
    mode = alice.expect("324")
    assert mode.params == ("alice", "#k", "+ntkl", "sesame", "2")
    alice.expect("329")
    carol.send("MODE #k")
    assert carol.expect("324").params[3] == "*"  # the key is not shown to outsiders


@pytest.mark.parametrize(
    ("change", "mode", "text"),
    [("+k :two words", "k", "Invalid key"), ("+l :1 2", "l", "Invalid limit")],
)
def test_a_refused_parameter_with_a_space_is_echoed_as_a_star(connect, change, mode, text):
    """'ERR_INVALIDMODEPARAM (696) <client> <target chan/user> <mode char> <parameter>
    :<description>': a parameter with a space in it cannot be sent back as one; "*" stands
    for it (as irctest expects of a key), and the room is unchanged."""
    alice = connect("alice")
    alice.send("JOIN #k")
    alice.send(f"MODE #k {change}")
    assert alice.expect("696").params == ("alice", "#k", mode, "*", text)
    alice.send("MODE #k")
    assert alice.expect("324").params[2:] == ("+nt",)


def test_moderated_room_and_voice(connect):
    alice, bob = connect("alice"), connect("bob")
    shared_room("#m", alice, bob)
    alice.send("MODE #m +m")
    bob.expect("MODE")
    bob.send("PRIVMSG #m :can I talk?")
    assert bob.expect("404").params[:2] == ("bob", "#m")
    alice.send("MODE #m +v bob")
    assert bob.expect("MODE").params == ("#m", "+v", "bob")
    bob.send("PRIVMSG #m :now I can")
    assert alice.expect("PRIVMSG").params == ("#m", "now I can")


def test_no_external_messages(connect):
    alice, bob = connect("alice"), connect("bob")
    alice.send("JOIN #n")
    alice.expect("366", "alice", "#n")
    bob.send("PRIVMSG #n :from outside")
    bob.expect("404")
    alice.send("MODE #n -n")
    alice.expect("MODE")
    bob.send("PRIVMSG #n :from outside")
    assert alice.expect("PRIVMSG").params == ("#n", "from outside")


def test_operator_status_and_errors(connect):
    alice, bob = connect("alice"), connect("bob")
    shared_room("#o", alice, bob)
    bob.send("MODE #o +t")
    bob.expect("482")
    alice.send("MODE #o +o bob")
    bob.expect("MODE", "#o", "+o", "bob")
    bob.send("MODE #o -o alice")
    alice.expect("MODE", "#o", "-o", "alice")
    alice.send("MODE #o +o ghost")
    alice.expect("482")
    bob.send("MODE #o +o ghost")  # nobody by that name
    bob.expect("401")
    connect("carol")
    bob.send("MODE #o +o carol")  # someone, but not in the room
    bob.expect("441")
    bob.send("MODE #o +z")
    bob.expect("472")
    bob.send("MODE #nope")
    bob.expect("403")


def test_bans(connect):
    alice, bob = connect("alice"), connect("bob")
    alice.send("JOIN #b")
    alice.send("MODE #b +b bob")
    assert alice.expect("MODE").params == ("#b", "+b", "bob!*@*")
    alice.send("MODE #b b")
    assert alice.expect("367").params[1:3] == ("#b", "bob!*@*")
    alice.expect("368")
    bob.send("JOIN #b")
    bob.expect("474")
    alice.send("MODE #b -b bob!*@*")
    alice.expect("MODE", "#b", "-b")
    bob.send("JOIN #b")
    bob.expect("JOIN", "#b")


@pytest.mark.parametrize("modes", ["+i", "-i"])
def test_user_mode_invisible(connect, modes):
    alice = connect("alice")
    alice.send(f"MODE alice {modes}")
    if modes == "+i":
        assert alice.expect("MODE").params == ("alice", "+i")
    alice.send("MODE alice")
    assert alice.expect("221").params[-1] == ("+i" if modes == "+i" else "+")
    alice.send("MODE bob +i")
    alice.expect("401")


def test_changing_someone_elses_user_mode_is_refused(connect):
    alice, _ = connect("alice"), connect("bob")
    alice.send("MODE bob +i")
    alice.expect("502")


def test_ban_masks_are_irc_wildcards_not_character_classes(connect):
    """'[' and ']' are nick characters; only '*' and '?' are wildcards in a mask."""
    alice, bob, brackets = connect("alice"), connect("bob"), connect("[b]ob")
    alice.send("JOIN #w")
    alice.send("MODE #w +b [b]ob")
    alice.expect("MODE", "#w", "+b")
    bob.send("JOIN #w")
    bob.expect("JOIN", "#w")
    brackets.send("JOIN #W")
    brackets.expect("474")
    alice.send("MODE #w +b B?B*")  # the casemapping folds case
    bob.expect("MODE", "#w", "+b")  # (in force before bob comes back)
    bob.send("PART #w")
    bob.send("JOIN #w")
    bob.expect("474")


def test_kick_of_someone_not_online_is_401(connect):
    alice = connect("alice")
    alice.send("JOIN #k")
    alice.send("KICK #k ghost")
    alice.expect("401")


def test_names_of_a_big_room_is_split_into_whole_names_within_the_line_limit(server, connect):
    members = [f"member{i:02d}-with-a-long-nick"[:20] for i in range(40)]
    for nick in members:
        connect(nick)
    viewer = connect("viewer", caps="userhost-in-names")
    viewer.send("NAMES #lobby")
    replies = viewer.collect("366")[:-1]
    assert len(replies) > 1 and all(m.command == "353" for m in replies)
    assert all(len(m.to_bytes()) <= 512 for m in replies)
    entries = [entry for m in replies for entry in m.params[-1].split(" ")]
    assert sorted(entry.split("!")[0] for entry in entries) == sorted([*members, "viewer"])
    assert all(entry.endswith(f"@{shown_host(server)}") for entry in entries)


# -- user modes +w, +B and +o ---------------------------------------------------------------


@pytest.mark.parametrize("flag", ["w", "B"])
def test_wallops_and_bot_user_modes_are_set_shown_and_removed(connect, flag):
    """'RPL_UMODEIS (221) <client> <user modes>'; +B is the IRCv3 bot mode (BOT=B)."""
    alice = connect("alice")
    alice.send(f"MODE alice +{flag}")
    assert alice.expect("MODE").params == ("alice", f"+{flag}")
    alice.send("MODE alice")
    assert alice.expect("221").params == ("alice", f"+{flag}")
    alice.send(f"MODE alice -{flag}")
    assert alice.expect("MODE").params == ("alice", f"-{flag}")
    alice.send("MODE alice")
    assert alice.expect("221").params == ("alice", "+")


def test_several_user_modes_in_one_change(connect):
    alice = connect("alice")
    alice.send("MODE alice +iwB")
    assert alice.expect("MODE").params == ("alice", "+iwB")
    alice.send("MODE alice")
    assert alice.expect("221").params == ("alice", "+Biw")


def test_making_yourself_an_operator_is_ignored_silently(connect):
    """RFC 2812 3.1.5: 'If a user attempts to make themselves an operator using the "+o"
    flag, the attempt SHOULD be ignored'."""
    alice = connect("alice")
    alice.send("MODE alice +o")
    alice.send("MODE alice -o")
    assert alice.sync() == []
    alice.send("MODE alice")
    assert alice.expect("221").params == ("alice", "+")


def test_an_unknown_user_mode_is_err_umodeunknownflag_and_the_rest_still_applies(connect):
    """'ERR_UMODEUNKNOWNFLAG (501) <client> :Unknown MODE flag'."""
    alice = connect("alice")
    alice.send("MODE alice +Bz")
    assert alice.expect("501").params == ("alice", "Unknown MODE flag")
    assert alice.expect("MODE").params == ("alice", "+B")


def test_kick_from_several_rooms_pairs_rooms_and_nicks(connect):
    op, a, b = connect("op"), connect("a"), connect("b")
    shared_room("#one", op, a)
    shared_room("#two", op, b)
    op.send("KICK #one,#two a,b :out")
    assert a.expect("KICK").params == ("#one", "a", "out")
    assert b.expect("KICK").params == ("#two", "b", "out")
    op.send("KICK #one,#two a")
    assert op.expect("461").params[1] == "KICK"


def test_names_of_several_rooms_ends_once(connect):
    alice = connect("alice")
    alice.send("JOIN #one,#two")
    alice.expect("366", "alice", "#two")
    alice.send("NAMES #one,#two,#none")
    replies = alice.collect("366")
    assert [(m.command, m.params[2] if m.command == "353" else m.params[1]) for m in replies] == [
        ("353", "#one"),
        ("353", "#two"),
        ("366", "#one,#two,#none"),
    ]


def test_names_and_kick_take_at_most_max_targets_and_say_so(server, connect):
    """Each target costs a room's names or a broadcast to it: TARGMAX bounds them (a room
    named twice counts once for NAMES)."""
    limit = server.config.max_targets
    op = connect("op")
    op.send("JOIN #one")
    op.expect("366")
    op.send("NAMES " + ",".join(["#one", "#ONE"] * 20))
    assert [m.command for m in op.collect("366")] == ["353", "366"]
    op.send("NAMES " + ",".join(f"#r{i}" for i in range(limit + 1)))
    refused = op.expect("407")
    assert refused.params[-1] == f"Too many targets for NAMES (at most {limit})"
    op.send("KICK #one " + ",".join(f"n{i}" for i in range(limit + 1)))
    assert op.expect("407").params[-1] == f"Too many targets for KICK (at most {limit})"
    op.sync()  # and the server goes on


def test_an_invitation_lets_one_past_the_user_limit(connect):
    op, guest = connect("op"), connect("guest")
    op.send("JOIN #full")
    op.expect("366")
    op.send("MODE #full +l 1")
    op.expect("MODE")
    guest.send("JOIN #full")
    guest.expect("471")
    op.send("INVITE guest #full")
    guest.expect("INVITE")
    guest.send("JOIN #full")
    assert guest.expect("JOIN").params == ("#full",)


def test_user_needs_a_real_name(connect):
    client = connect()
    client.send("NICK x")
    client.send("USER x 0 * :")
    assert client.expect("461").params[1] == "USER"


def test_invite_alone_lists_ones_invitations(connect):
    op, guest = connect("op"), connect("guest")
    op.send("JOIN #b,#a")
    op.expect("366", "op", "#a")
    op.send("INVITE guest #b")
    op.send("INVITE guest #a")
    op.sync()
    guest.send("INVITE")
    replies = guest.collect("337")
    assert [m.params[1] for m in replies[:-1] if m.command == "336"] == ["#a", "#b"]
    guest.send("INVITE guest")
    guest.expect("461")


def test_invitations_end_with_the_room_or_the_invitee(server, connect):
    """An invitation lasts until it is used, the invitee leaves the server, or the room is
    gone: a room never keeps someone who left, and nobody is invited into a room no more."""
    op, guest, passer = connect("op"), connect("guest"), connect("passer")
    op.send("JOIN #stays,#goes")
    op.expect("366", "op", "#goes")
    for invite in ("INVITE guest #goes", "INVITE passer #stays"):
        op.send(invite)
    op.sync()
    passer.send("QUIT")
    assert passer.closed()
    op.send("PART #goes")  # empty: gone
    op.sync()
    guest.send("INVITE")
    assert [m for m in guest.collect("337") if m.command == "336"] == []  # none left
    with server.server.world.lock:
        stays = server.server.world.find_channel("#stays")
        assert stays is not None and stays.invited == set()


def test_a_private_room_is_hidden_like_a_secret_one_but_named_with_a_star(connect):
    op, outsider = connect("op"), connect("outsider")
    op.send("JOIN #priv")
    op.expect("366")
    op.send("MODE #priv +p")
    op.expect("MODE")
    op.send("NAMES #priv")
    assert op.expect("353").params[1] == "*"
    outsider.send("LIST")
    assert "#priv" not in [m.params[1] for m in outsider.collect("323") if m.command == "322"]
    outsider.send("WHOIS op")
    rooms = [m.params[-1] for m in outsider.collect("318") if m.command == "319"]
    assert rooms == ["#lobby"]  # not #priv
    outsider.send("NAMES #priv")
    assert [m.command for m in outsider.collect("366")] == ["366"]
