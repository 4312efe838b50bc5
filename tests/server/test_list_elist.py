"""LIST's search conditions beyond user counts (ELIST=CMNTU): masks (M), negated masks
(N), creation time (C) and topic time (T), as https://modern.ircdocs.horse/#elist-parameter
documents them; several in one parameter, comma-separated, all of which must hold."""

from __future__ import annotations

import time

import pytest


def rooms(client, line):
    """The rooms a LIST names, as a set."""
    client.send(line)
    replies = client.collect("323")
    assert replies[0].command == "321"
    return {m.params[1] for m in replies if m.command == "322"}


def age(server, name, *, created_minutes, topic_minutes=None):
    """Make room ``name`` look made ``created_minutes`` ago, its topic set
    ``topic_minutes`` ago (None: no topic)."""
    world = server.server.world
    now = int(time.time())
    with world.lock:
        channel = world.find_channel(name)
        channel.created = now - created_minutes * 60
        if topic_minutes is None:
            channel.topic, channel.topic_at = "", 0
        else:
            channel.topic, channel.topic_at = f"{name} topic", now - topic_minutes * 60


@pytest.fixture
def aged(server, connect):
    """#dev (10 minutes old, topic 1 minute ago), #dev-old (100 minutes, topic 50),
    #Devops (1000 minutes, no topic), #lobby (topic 500 minutes ago, made 2000 ago);
    returns a client to ask with."""
    alice = connect("alice")
    alice.send("JOIN #dev,#dev-old,#Devops")
    alice.sync()
    age(server, "#dev", created_minutes=10, topic_minutes=1)
    age(server, "#dev-old", created_minutes=100, topic_minutes=50)
    age(server, "#Devops", created_minutes=1000)
    age(server, "#lobby", created_minutes=2000, topic_minutes=500)
    return alice


@pytest.mark.parametrize(
    "line, found",
    [
        # M: a mask, matched under the casemapping
        ("LIST #dev*", {"#dev", "#dev-old", "#Devops"}),
        ("LIST #DEV?", set()),
        ("LIST #dev-???", {"#dev-old"}),
        ("LIST #dev,#lob*", {"#dev", "#lobby"}),  # names and masks: any of them
        # N: not matching
        ("LIST !#dev*", {"#lobby"}),
        ("LIST !*old,!#lobby", {"#dev", "#Devops"}),
        # C: created less / more than N minutes ago
        ("LIST C<50", {"#dev"}),
        ("LIST C>50", {"#dev-old", "#Devops", "#lobby"}),
        ("LIST C>50,C<1500", {"#dev-old", "#Devops"}),
        # T: topic set less / more than N minutes ago (no topic: neither)
        ("LIST T<60", {"#dev", "#dev-old"}),
        ("LIST T>10", {"#dev-old", "#lobby"}),
        # combined, in one parameter or two
        ("LIST #dev*,!#devops,C>5,T>10", {"#dev-old"}),
        ("LIST #dev* C<5000,>0,<2", {"#dev", "#dev-old", "#Devops"}),
        ("LIST #*,T<100 C>20", {"#dev-old"}),
        # plain names as before
        ("LIST #dev,#Devops", {"#dev", "#Devops"}),
        ("LIST #dev,#nowhere C>5", {"#dev"}),
    ],
)
def test_list_conditions(aged, line, found):
    assert rooms(aged, line) == found


@pytest.mark.parametrize("condition", ["C<", "C>x", "T<-1", "T>1x", "C>9999999999"])
def test_a_bad_time_condition_is_refused_and_the_server_goes_on(aged, condition):
    aged.send(f"LIST {condition}")
    error = aged.expect("400", skip=False)
    assert error.params[:2] == ("alice", "LIST")
    assert condition in error.params[-1]
    assert "#lobby" in rooms(aged, "LIST")


def test_masks_are_bounded_in_number_and_length(make_server, connect):
    server = make_server(max_targets=2)
    alice = connect("alice", port=server.port)
    assert rooms(alice, "LIST #l*,!#x*") == {"#lobby"}
    alice.send("LIST #l*,!#x*,#y*")
    assert "at most 2" in alice.expect("400", skip=False).params[-1]
    alice.send("LIST #" + "*" * 200)
    assert "Bad mask" in alice.expect("400", skip=False).params[-1]
    alice.send("LIST !")
    alice.expect("400", skip=False)
    assert rooms(alice, "LIST #l" + "*?" * 2 + "*" * 140) == {"#lobby"}  # 146: fine


def test_a_mask_costs_linear_time(aged):
    """A mask of many stars against a long room name: no backtracking."""
    name = "#" + "a" * 150
    aged.send(f"JOIN {name}")
    aged.sync()
    started = time.monotonic()
    assert rooms(aged, "LIST #" + "a*" * 70 + "b") == set()
    assert time.monotonic() - started < 2


def test_isupport_says_elist_cmntu(connect):
    alice = connect()
    alice.send("NICK alice")
    alice.send("USER alice 0 * :Alice")
    tokens = [p for m in alice.collect("376") if m.command == "005" for p in m.params]
    assert "ELIST=CMNTU" in tokens
