"""Details of the protocol that IRC clients and bots rely on, each as the specifications
(Modern IRC, IRCv3) describe it: found by comparing chatcli with other servers."""

from __future__ import annotations

import pytest

from tests.conftest import Client, RunningServer

PASSWORD = "correct-horse"
HISTORY_CAPS = "batch draft/chathistory server-time echo-message message-tags"


@pytest.fixture
def db_server(make_server, tmp_path) -> RunningServer:
    return make_server(db=str(tmp_path / "chat.db"))


def connect(server: RunningServer, clients: list[Client], nick: str, caps: str = "") -> Client:
    client = Client(server.port)
    clients.append(client)
    client.register(nick, caps, join=False)
    return client


def account(server: RunningServer, clients: list[Client], nick: str, caps: str = "") -> Client:
    """A connection logged in to a new account ``nick``."""
    client = connect(server, clients, nick, caps)
    client.send(f"REGISTER * * :{PASSWORD}")
    assert client.expect("REGISTER").params[0] == "SUCCESS"
    return client


def latest(client: Client, target: str) -> list[str]:
    """The texts CHATHISTORY LATEST gives ``client`` for ``target``."""
    client.send(f"CHATHISTORY LATEST {target} * 50")
    opened = client.expect("BATCH")
    assert opened.params[0].startswith("+")
    return [msg.params[-1] for msg in client.collect("BATCH")[:-1]]


def test_an_account_reads_back_its_conversation_with_someone_not_logged_in(db_server, clients):
    """Both sides' lines of a conversation between an account and a nick are kept; the
    account reads them back by the nick, in order."""
    alice = account(db_server, clients, "alice", HISTORY_CAPS)
    guest = connect(db_server, clients, "guest", HISTORY_CAPS)
    alice.send("PRIVMSG guest :hello guest")
    guest.expect("PRIVMSG")
    assert latest(alice, "guest") == ["hello guest"]
    guest.send("PRIVMSG alice :hello alice")
    alice.expect("PRIVMSG", "alice")
    # (The guest reads nothing back; asking, it waits for its own line to be kept.)
    assert latest(guest, "alice") == []
    assert latest(alice, "guest") == ["hello guest", "hello alice"]
    assert latest(alice, "GUEST") == ["hello guest", "hello alice"]


def test_the_nick_side_never_reads_the_conversation_back(db_server, clients):
    """Whoever holds the nick later, logged in or not, is not given what was said to the
    nick before: not by the nick, and not once it is an account of that name."""
    alice = account(db_server, clients, "alice", HISTORY_CAPS)
    guest = connect(db_server, clients, "guest", HISTORY_CAPS)
    alice.send("PRIVMSG guest :for the guest of the moment")
    guest.expect("PRIVMSG")
    alice.sync()
    assert latest(guest, "alice") == []
    guest.send("QUIT")
    assert guest.closed()
    owner = account(db_server, clients, "guest", HISTORY_CAPS)
    assert latest(owner, "alice") == []


# -- IRCv3 account-extban: list-mode masks that name an account --------------------------


def isupport(client: Client) -> dict[str, str]:
    client.send("VERSION")
    tokens: dict[str, str] = {}
    for msg in client.sync():
        if msg.command == "005":
            for token in msg.params[1:-1]:
                name, _, value = token.partition("=")
                tokens[name] = value
    return tokens


def room_of(server: RunningServer, clients: list[Client], room: str, *modes: str) -> Client:
    """An operator who made ``room`` and set each of ``modes`` on it."""
    chanop = connect(server, clients, "chanop")
    chanop.send(f"JOIN {room}")
    chanop.expect("366")
    for mode in modes:
        chanop.send(f"MODE {room} {mode}")
        chanop.expect("MODE", room)
    return chanop


def test_account_masks_are_advertised_as_an_extban(db_server, clients):
    """ACCOUNTEXTBAN names the type, and EXTBAN (no prefix) lists it."""
    tokens = isupport(connect(db_server, clients, "asker"))
    assert tokens["ACCOUNTEXTBAN"] == "a"
    prefix, _, types = tokens["EXTBAN"].partition(",")
    assert prefix == ""
    assert "a" in types


def test_a_ban_on_an_account_keeps_it_out_until_lifted(db_server, clients):
    chanop = room_of(db_server, clients, "#den", "+b A:bob")
    chanop.send("MODE #den +b")
    assert chanop.expect("367").params[2] == "a:bob"
    bob = account(db_server, clients, "bob")
    bob.send("JOIN #den")
    assert bob.expect("474").params[1] == "#den"
    chanop.send("MODE #den -b a:BOB")
    assert chanop.expect("MODE").params == ("#den", "-b", "a:bob")
    bob.send("JOIN #den")
    bob.expect("JOIN", "#den")


def test_a_ban_on_an_account_spares_a_nick_of_that_name_not_logged_in(db_server, clients):
    room_of(db_server, clients, "#den", "+b a:bob")
    bob = connect(db_server, clients, "bob")
    bob.send("JOIN #den")
    bob.expect("JOIN", "#den")


def test_an_account_exception_lets_its_owner_past_a_ban_on_everyone(db_server, clients):
    room_of(db_server, clients, "#den", "+b *!*@*", "+e a:bob")
    carol = connect(db_server, clients, "carol")
    carol.send("JOIN #den")
    carol.expect("474")
    bob = account(db_server, clients, "bob")
    bob.send("JOIN #den")
    bob.expect("JOIN", "#den")


def test_an_account_invite_exception_lets_its_owner_into_an_invite_only_room(db_server, clients):
    room_of(db_server, clients, "#den", "+i", "+I a:b*")
    carol = connect(db_server, clients, "carol")
    carol.send("JOIN #den")
    carol.expect("473")
    bob = account(db_server, clients, "bob")
    bob.send("JOIN #den")
    bob.expect("JOIN", "#den")


# -- IRCv3 draft/event-playback: topic changes and TAGMSGs in CHATHISTORY ------------------

EVENTS = HISTORY_CAPS + " draft/event-playback"


def history_lines(client: Client, request: str) -> list[tuple[str, str, str]]:
    """(command, msgid, last parameter) of each line of the batch answering ``request``."""
    client.send(request)
    opened = client.expect("BATCH")
    assert opened.params[0].startswith("+")
    lines = client.collect("BATCH")[:-1]
    return [(m.command, m.tags["msgid"], m.params[-1]) for m in lines]


def test_event_playback_is_offered(db_server, clients):
    client = Client(db_server.port)
    clients.append(client)
    assert "draft/event-playback" in client.cap_ls()


def test_topic_changes_come_back_in_order_with_event_playback_only(db_server, clients):
    alice = connect(db_server, clients, "alice", EVENTS)
    alice.send("JOIN #den")
    alice.expect("366")
    seen = []
    for i in range(2):
        alice.send(f"TOPIC #den :topic {i}")
        topic = alice.expect("TOPIC")
        alice.send(f"PRIVMSG #den :line {i}")
        line = alice.expect("PRIVMSG")
        seen += [
            ("TOPIC", topic.tags["msgid"], f"topic {i}"),
            ("PRIVMSG", line.tags["msgid"], f"line {i}"),
        ]
    assert history_lines(alice, "CHATHISTORY LATEST #den * 10") == seen
    assert history_lines(alice, "CHATHISTORY LATEST #den * 2") == seen[2:]
    bob = connect(db_server, clients, "bob", HISTORY_CAPS)
    bob.send("JOIN #den")
    bob.expect("366")
    # Without the capability: the messages only, and the limit counts messages.
    assert history_lines(bob, "CHATHISTORY LATEST #den * 2") == [seen[1], seen[3]]
    assert history_lines(bob, f"CHATHISTORY BEFORE #den msgid={seen[3][1]} 1") == [seen[1]]


def test_a_join_replays_messages_but_no_topic_changes(db_server, clients):
    alice = connect(db_server, clients, "alice")
    alice.send("JOIN #den")
    alice.expect("366")
    alice.send("TOPIC #den :a topic")
    alice.send("PRIVMSG #den :hello")
    alice.sync()
    carol = connect(db_server, clients, "carol")
    carol.send("JOIN #den")
    carol.expect("366")
    replayed = carol.quiet()
    assert [m.command for m in replayed] == ["PRIVMSG"]
    assert replayed[0].params[-1].endswith("hello")


def test_tagmsgs_with_client_tags_are_kept_for_event_playback_but_typing_is_not(db_server, clients):
    alice = connect(db_server, clients, "alice", EVENTS)
    bob = connect(db_server, clients, "bob", HISTORY_CAPS)
    for client in (alice, bob):
        client.send("JOIN #den")
        client.expect("366")
    bob.send("@+example/pin=yes TAGMSG #den")
    kept = bob.expect("TAGMSG")
    assert kept.tags["+example/pin"] == "yes"
    bob.send("@+typing=active TAGMSG #den")
    bob.expect("TAGMSG")
    bob.send("PRIVMSG #den :after")
    after = bob.expect("PRIVMSG")
    assert history_lines(bob, "CHATHISTORY LATEST #den * 10") == [
        ("PRIVMSG", after.tags["msgid"], "after")
    ]
    assert history_lines(alice, "CHATHISTORY LATEST #den * 10") == [
        ("TAGMSG", kept.tags["msgid"], "#den"),
        ("PRIVMSG", after.tags["msgid"], "after"),
    ]


# -- WHOWAS of several nicks ----------------------------------------------------------------


def left(server: RunningServer, clients: list[Client], nick: str, user: str) -> None:
    """``nick`` (with user name ``user``) comes and goes."""
    client = Client(server.port)
    clients.append(client)
    client.send(f"NICK {nick}")
    client.send(f"USER {user} 0 * :Real {nick}")
    client.expect("001")
    client.send("QUIT :bye")
    assert client.closed()


def test_whowas_of_several_nicks_gives_the_latest_first_then_one_end(server, clients):
    asker = connect(server, clients, "asker")
    left(server, clients, "dora", "first")
    left(server, clients, "emil", "second")
    left(server, clients, "dora", "third")
    asker.send("WHOWAS emil,dora,nobody")
    replies = asker.collect("369")
    assert [(m.params[1], m.params[2]) for m in replies if m.command == "314"] == [
        ("dora", "~third"),
        ("emil", "~second"),
        ("dora", "~first"),
    ]
    assert [m.params[1] for m in replies if m.command == "406"] == ["nobody"]
    assert replies[-1].params[1] == "emil,dora,nobody"


def test_whowas_count_bounds_the_entries_of_each_nick(server, clients):
    asker = connect(server, clients, "asker")
    for user in ("one", "two", "three"):
        left(server, clients, "dora", user)
    left(server, clients, "emil", "four")
    asker.send("WHOWAS dora,emil 2")
    replies = asker.collect("369")
    assert [m.params[2] for m in replies if m.command == "314"] == ["~four", "~three", "~two"]


def test_targmax_says_how_many_nicks_whowas_takes(server, clients):
    tokens = isupport(connect(server, clients, "asker"))
    limits = dict(pair.split(":") for pair in tokens["TARGMAX"].split(","))
    assert int(limits["WHOWAS"]) > 1


def test_kept_tagmsgs_take_no_place_among_the_lines_a_join_replays(make_server, tmp_path, clients):
    server = make_server(db=str(tmp_path / "chat.db"), replay_lines=2)
    alice = connect(server, clients, "alice", "message-tags")
    alice.send("JOIN #den")
    alice.expect("366")
    alice.send("PRIVMSG #den :one")
    alice.send("PRIVMSG #den :two")
    alice.send("@+example/pin=yes TAGMSG #den")
    alice.sync()
    carol = connect(server, clients, "carol")
    carol.send("JOIN #den")
    carol.expect("366")
    assert [m.params[-1].rpartition(" ")[2] for m in carol.quiet()] == ["one", "two"]
