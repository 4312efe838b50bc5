"""IRCv3: server-time, message-tags (msgid, client-only tags, TAGMSG), echo-message,
labeled-response with batch, extended-join, away-notify, invite-notify, setname, cap-notify.

Each recipient gets a relayed message in the form its own capabilities ask for."""

from __future__ import annotations

import re

SERVER_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# -- server-time, msgid, client-only tags -------------------------------------------------


def test_server_time_stamps_relayed_messages_for_those_who_asked(connect):
    timed = connect("timed", caps="server-time")
    plain = connect("plain")
    sender = connect("sender")
    sender.send("PRIVMSG #lobby :hello")
    stamped = timed.expect("PRIVMSG")
    assert SERVER_TIME.match(stamped.tags["time"])
    assert set(stamped.tags) == {"time"}  # msgid needs message-tags
    assert plain.expect("PRIVMSG").tags == {}


def test_message_tags_carry_msgid_and_the_senders_client_only_tags(connect):
    tagged = connect("tagged", caps="message-tags")
    plain = connect("plain")
    sender = connect("sender", caps="message-tags")
    sender.send("@+draft/react=\\s:);not-client=x PRIVMSG #lobby :hello")
    got = tagged.expect("PRIVMSG")
    assert got.tags["+draft/react"] == " :)"  # unescaped again on the way in
    assert "not-client" not in got.tags  # only client-only (+) tags are relayed
    assert got.tags["msgid"]
    assert plain.expect("PRIVMSG").tags == {}


def test_every_form_of_one_broadcast_has_the_same_time_and_msgid(connect):
    both = connect("both", caps="server-time message-tags")
    tagged = connect("tagged", caps="message-tags")
    timed = connect("timed", caps="server-time")
    sender = connect("sender", caps="server-time message-tags echo-message")
    sender.send("PRIVMSG #lobby :one message")
    echo = sender.expect("PRIVMSG")
    a, b, c = both.expect("PRIVMSG"), tagged.expect("PRIVMSG"), timed.expect("PRIVMSG")
    assert a.tags["msgid"] == b.tags["msgid"] == echo.tags["msgid"]
    assert a.tags["time"] == c.tags["time"] == echo.tags["time"]
    assert a.params == b.params == c.params == echo.params == ("#lobby", "one message")


def test_msgids_differ_between_messages(connect):
    tagged = connect("tagged", caps="message-tags")
    sender = connect("sender")
    sender.send("PRIVMSG #lobby :one")
    sender.send("PRIVMSG #lobby :two")
    assert tagged.expect("PRIVMSG").tags["msgid"] != tagged.expect("PRIVMSG").tags["msgid"]


def test_direct_messages_get_tags_too(connect):
    bob = connect("bob", caps="server-time message-tags")
    alice = connect("alice")
    alice.send("@+typing=done PRIVMSG bob :hi")
    got = bob.expect("PRIVMSG")
    assert got.params == ("bob", "hi")
    assert got.tags["+typing"] == "done" and got.tags["msgid"] and got.tags["time"]


def test_capabilities_taken_after_joining_change_what_arrives(connect):
    late = connect("late")
    sender = connect("sender")
    late.send("CAP REQ :server-time")
    late.expect("CAP")
    sender.send("PRIVMSG #lobby :now with time")
    assert "time" in late.expect("PRIVMSG").tags
    late.send("CAP REQ :-server-time")
    late.expect("CAP")
    sender.send("PRIVMSG #lobby :and without")
    assert late.expect("PRIVMSG").tags == {}


def test_joins_parts_and_quits_are_stamped(connect):
    watcher = connect("watcher", caps="server-time")
    other = connect("other")
    other.send("JOIN #dev")
    watcher.send("JOIN #dev")
    watcher.expect("366")
    other.send("PART #dev")
    assert SERVER_TIME.match(watcher.expect("PART").tags["time"])
    other.send("QUIT :bye")
    assert SERVER_TIME.match(watcher.expect("QUIT").tags["time"])


# -- TAGMSG ---------------------------------------------------------------------------------


def test_tagmsg_reaches_only_those_with_message_tags(connect):
    tagged = connect("tagged", caps="message-tags")
    plain = connect("plain")
    sender = connect("sender", caps="message-tags echo-message")
    sender.send("@+draft/typing=active TAGMSG #lobby")
    got = tagged.expect("TAGMSG")
    assert got.params == ("#lobby",) and got.tags["+draft/typing"] == "active"
    assert sender.expect("TAGMSG").tags["msgid"] == got.tags["msgid"]  # echoed
    sender.send("PRIVMSG #lobby :marker")
    assert plain.expect("PRIVMSG").params[-1] == "marker"
    assert [m for m in plain.sync() if m.command == "TAGMSG"] == []


def test_tagmsg_to_a_person_and_its_errors(connect):
    tagged = connect("tagged", caps="message-tags")
    sender = connect("sender", caps="message-tags")
    sender.send("@+react=1 TAGMSG tagged")
    assert tagged.expect("TAGMSG").params == ("tagged",)
    sender.send("TAGMSG nobody")
    assert sender.expect("401").params[1] == "nobody"
    sender.send("TAGMSG")
    assert sender.expect("411").params[0] == "sender"


# -- labeled-response and batch -------------------------------------------------------------


LABELS = "labeled-response batch"


def test_a_labeled_command_with_one_reply_gets_the_label_on_it(connect):
    client = connect("alice", caps=LABELS)
    client.send("@label=abc PING token")
    pong = client.expect("PONG")
    assert pong.tags == {"label": "abc"} and pong.params[-1] == "token"


def test_a_labeled_command_with_no_reply_gets_an_ack(connect):
    client = connect("alice", caps=LABELS)
    connect("bob")
    client.send("@label=x1 PRIVMSG #lobby :no echo asked for")
    ack = client.expect("ACK")
    assert ack.tags == {"label": "x1"} and ack.params == ()


def test_a_labeled_message_is_answered_by_its_labeled_echo(connect):
    client = connect("alice", caps=LABELS + " echo-message")
    client.send("@label=m1 PRIVMSG #lobby :hi")
    echo = client.expect("PRIVMSG")
    assert echo.tags == {"label": "m1"} and echo.params == ("#lobby", "hi")


def test_a_labeled_command_with_many_replies_gets_a_batch(connect):
    client = connect("alice", caps=LABELS)
    client.send("@label=j1 JOIN #dev")
    start = client.expect("BATCH", skip=False)
    ref = start.params[0]
    assert ref.startswith("+") and start.params[1:] == ("labeled-response",)
    assert start.tags == {"label": "j1"}
    inside = client.collect("BATCH")
    end = inside.pop()
    assert end.params == ("-" + ref[1:],)
    assert [m.command for m in inside] == ["JOIN", "353", "366"]
    assert all(m.tags == {"batch": ref[1:]} for m in inside)


def test_labels_need_batch_too(connect):
    client = connect("alice", caps="labeled-response")
    client.send("@label=abc PING token")
    assert client.expect("PONG").tags == {}


def test_labeled_errors_are_labeled(connect):
    client = connect("alice", caps=LABELS)
    client.send("@label=e PRIVMSG nobody :hi")
    err = client.expect("401")
    assert err.tags == {"label": "e"}


def test_a_line_that_does_not_parse_is_answered_under_its_label(connect):
    """irctest's labeled-response case: an unknown or malformed verb still gets its label."""
    client = connect("alice", caps=LABELS)
    client.send("@label=bad1 NONEXISTENT_COMMAND")
    err = client.expect("421")
    assert err.tags == {"label": "bad1"} and err.params[1] == "NONEXISTENT_COMMAND"
    client.send("@label=bad2 NOSUCHVERB")
    assert client.expect("421").tags == {"label": "bad2"}


def test_what_others_send_meanwhile_is_never_labeled(connect):
    alice = connect("alice", caps=LABELS)
    bob = connect("bob")
    bob.send("PRIVMSG alice :from bob")
    alice.send("@label=p PING x")
    got = alice.collect("PONG")
    assert got[-1].tags == {"label": "p"}
    assert all("label" not in m.tags for m in got[:-1])


# -- extended-join, away-notify, invite-notify, setname, cap-notify -------------------------


def test_extended_join_shows_account_and_real_name(connect):
    watcher = connect("watcher", caps="extended-join")
    plain = connect("plain")
    connect("carol")
    joins = {m.source.split("!")[0]: m.params for m in watcher.sync() if m.command == "JOIN"}
    assert joins["carol"] == ("#lobby", "*", "Real carol")
    assert plain.expect("JOIN").params == ("#lobby",)


def test_away_notify_tells_neighbours_who_asked(connect):
    watcher = connect("watcher", caps="away-notify")
    plain = connect("plain")
    bob = connect("bob")
    bob.send("AWAY :lunch")
    away = watcher.expect("AWAY")
    assert away.source.startswith("bob!") and away.params == ("lunch",)
    bob.send("AWAY")
    assert watcher.expect("AWAY").params == ()
    plain.sync()
    assert [m for m in plain.sync() if m.command == "AWAY"] == []


def test_away_notify_after_an_away_user_joins(connect):
    watcher = connect("watcher", caps="away-notify")
    watcher.send("JOIN #dev")
    watcher.expect("366")
    bob = connect("bob")
    bob.send("AWAY :gone")
    bob.send("JOIN #dev")
    watcher.expect("JOIN", "#dev")
    assert watcher.expect("AWAY", skip=False).params == ("gone",)


def test_invite_notify_tells_the_rooms_operators(connect):
    op = connect("op", caps="invite-notify")
    member = connect("member")
    op.send("JOIN #dev")
    op.expect("366")
    member.send("JOIN #dev")
    op.expect("JOIN", "#dev")
    op.send("MODE #dev +o member")
    op.expect("MODE")
    guest = connect("guest")
    member.send("INVITE guest #dev")
    assert guest.expect("INVITE").params == ("guest", "#dev")
    seen = op.expect("INVITE")
    assert seen.source.startswith("member!") and seen.params == ("guest", "#dev")


def test_setname_changes_the_real_name_and_tells_who_asked(connect):
    watcher = connect("watcher", caps="setname")
    alice = connect("alice", caps="setname")
    alice.send("SETNAME :Alice Liddell")
    assert alice.expect("SETNAME").params == ("Alice Liddell",)
    assert watcher.expect("SETNAME").source.startswith("alice!")
    watcher.send("WHOIS alice")
    assert watcher.expect("311").params[-1] == "Alice Liddell"


def test_setname_refuses_an_empty_or_long_name(connect):
    alice = connect("alice", caps="setname")
    alice.send("SETNAME :")
    assert alice.expect("FAIL").params[:2] == ("SETNAME", "INVALID_REALNAME")
    alice.send("SETNAME :" + "x" * 101)
    assert alice.expect("FAIL").params[:2] == ("SETNAME", "INVALID_REALNAME")


def test_cap_ls_302_enables_cap_notify(connect):
    client = connect()
    assert "cap-notify" in client.cap_ls()
    client.send("CAP LIST")
    assert "cap-notify" in client.expect("CAP", None, "LIST").params[-1].split()


def test_a_bots_messages_carry_the_bot_tag(connect):
    tagged = connect("tagged", caps="message-tags")
    bot = connect("helper")
    bot.send("MODE helper +B")
    bot.expect("MODE")
    bot.send("PRIVMSG #lobby :beep")
    assert tagged.expect("PRIVMSG").tags.get("bot") == ""


def test_a_clients_tags_may_take_4096_bytes_and_no_more(connect):
    tagged = connect("tagged", caps="message-tags")
    sender = connect("sender", caps="message-tags")
    fits = "+x=" + "a" * 4091  # with the '@' and the space after: 4096 bytes
    sender.send(f"@{fits} TAGMSG tagged")
    assert len(tagged.expect("TAGMSG").tags["+x"]) == 4091
    sender.send(f"@{fits}a TAGMSG tagged")
    assert sender.expect("417").params[0] == "sender"
    sender.send("PING still-here")
    assert sender.expect("PONG").params[-1] == "still-here"


def test_a_labeled_message_to_oneself_is_answered_by_the_echo_alone(connect):
    client = connect("alice", caps=LABELS + " echo-message")
    client.send("@label=self PRIVMSG alice :note to self")
    got = [client.expect("PRIVMSG"), client.expect("PRIVMSG")]
    assert sorted(m.tags.get("label", "") for m in got) == ["", "self"]
    assert all(m.params == ("alice", "note to self") for m in got)
