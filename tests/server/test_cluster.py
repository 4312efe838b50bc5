"""Several servers as one chat (``--cluster redis://...``): two nodes on a real
``redis-server`` of the test's own, with real clients on each, see one set of people,
nicks and rooms, and one order of each room's lines. Nodes are servers in this process
(quick to start, and their state can be looked at), or ``chat serve`` processes where a
node must die as a process dies (SIGKILL).
(issue 16: several ``chat serve`` nodes as one chat, on Redis and PostgreSQL)
"""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from chatcli.passwords import hash_password
from tests.components import Redis
from tests.conftest import TIMEOUT, Client, RunningServer, register_account
from tests.serve import ChatServe

pytestmark = pytest.mark.timeout(60)
#: How long a node may be out of touch before it counts as gone (the tests' bound).
LIVENESS = 2.0

Nodes = tuple[RunningServer, RunningServer]


@pytest.fixture
def redis_url(redis_server: Redis) -> str:
    """The session's redis-server, emptied: what one test left, the next does not see."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def nodes(make_server: Callable[..., RunningServer], redis_url: str) -> Nodes:
    url = redis_url
    return (  # (no flood control: some tests talk fast; it is the same on a cluster)
        make_server(cluster=url, cluster_timeout=LIVENESS, name="a.chat", flood_rate=0),
        make_server(cluster=url, cluster_timeout=LIVENESS, name="b.chat", flood_rate=0),
    )


def person(port: int, nick: str, clients: list[Client], caps: str = "") -> Client:
    client = Client(port)
    clients.append(client)
    client.register(nick, caps)
    return client


def wait_until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.02)


def joined(client: Client, nick: str) -> None:
    """Wait until ``client`` sees ``nick`` come into a room it is in."""
    while True:
        msg = client.expect("JOIN")
        if msg.source.split("!")[0] == nick:
            return


def test_a_room_and_direct_messages_go_both_ways_between_nodes(nodes, clients):
    a, b = nodes
    alice = person(a.port, "alice", clients)
    bob = person(b.port, "bob", clients)
    joined(alice, "bob")
    alice.send("PRIVMSG #lobby :hello from node a")
    said = bob.expect("PRIVMSG")
    assert (said.source.split("!")[0], said.params) == ("alice", ("#lobby", "hello from node a"))
    bob.send("PRIVMSG #lobby :and back from b")
    assert alice.expect("PRIVMSG").params == ("#lobby", "and back from b")
    bob.send("PRIVMSG alice :just to you")
    assert alice.expect("PRIVMSG").params == ("alice", "just to you")
    alice.send("PRIVMSG bob :likewise")
    assert bob.expect("PRIVMSG").params == ("bob", "likewise")


def test_names_and_whois_see_people_on_the_other_node(nodes, clients):
    a, b = nodes
    alice = person(a.port, "alice", clients)
    person(b.port, "bob", clients)
    joined(alice, "bob")
    alice.send("NAMES #lobby")
    names = alice.expect("353").params[-1].split()
    assert {name.lstrip("@+") for name in names} == {"alice", "bob"}
    alice.send("WHOIS bob")
    whois = alice.expect("311")
    assert whois.params[1:3] == ("bob", "~bob")
    assert alice.expect("312").params[2] == "b.chat"  # (the server bob is on)
    assert alice.expect("318")


def test_a_nick_held_on_one_node_is_refused_on_the_other_until_it_is_free(nodes, clients):
    a, b = nodes
    alice = person(a.port, "alice", clients)
    other = Client(b.port)
    clients.append(other)
    other.send("NICK alice")
    other.send("USER x 0 * :X")
    assert other.expect("433").params[1] == "alice"
    alice.send("QUIT :bye")
    assert alice.closed()
    deadline = time.monotonic() + TIMEOUT
    while True:  # (the claim is let go of once node a has told Redis)
        other.send("NICK alice")
        reply = other.collect("001", "433")[-1]
        if reply.command == "001":
            break
        assert time.monotonic() < deadline, "alice was never free again"
        time.sleep(0.05)


def test_of_many_racing_for_one_nick_on_two_nodes_exactly_one_wins(nodes, clients):
    a, b = nodes
    racers = []
    for i in range(12):
        racer = Client((a, b)[i % 2].port)
        clients.append(racer)
        racer.send(f"USER r{i} 0 * :Racer")
        racers.append(racer)
    start = threading.Barrier(len(racers))

    def race(racer: Client) -> None:
        start.wait(TIMEOUT)
        racer.send("NICK prize")

    threads = [threading.Thread(target=race, args=(r,)) for r in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    outcomes = [racer.collect("001", "433")[-1].command for racer in racers]
    assert sorted(outcomes) == ["001"] + ["433"] * (len(racers) - 1)


def test_a_nick_change_join_part_and_kick_are_seen_on_the_other_node(nodes, clients):
    a, b = nodes
    alice = person(a.port, "alice", clients)
    bob = person(b.port, "bob", clients)
    joined(alice, "bob")
    bob.send("NICK robert")
    changed = alice.expect("NICK")
    assert (changed.source.split("!")[0], changed.params) == ("bob", ("robert",))
    alice.send("JOIN #team")
    alice.expect("366")
    bob.send("JOIN #team")
    joined(alice, "robert")
    bob.expect("366")
    bob.send("NAMES #team")
    assert {n.lstrip("@+") for n in bob.expect("353").params[-1].split()} == {"alice", "robert"}
    alice.send("KICK #team robert :out you go")  # (alice made the room: she runs it)
    kick = bob.expect("KICK")
    assert kick.params == ("#team", "robert", "out you go")
    alice.expect("KICK")
    bob.send("PRIVMSG #team :am I still here?")
    assert bob.expect("404").params[1] == "#team"  # (not a member: cannot send)
    bob.send("JOIN #team")
    joined(alice, "robert")
    bob.send("PART #team :enough")
    part = alice.expect("PART")
    assert (part.source.split("!")[0], part.params) == ("robert", ("#team", "enough"))


def test_every_member_on_either_node_sees_one_order_of_a_rooms_lines(nodes, clients):
    a, b = nodes
    senders = [person((a, b)[i % 2].port, f"s{i}", clients) for i in range(4)]
    readers = [person((a, b)[i % 2].port, f"r{i}", clients) for i in range(2)]
    wait_until(
        lambda: all(len(node.server.world.find_channel("#lobby").members) == 6 for node in nodes)
    )
    per_sender = 25

    def talk(sender: Client) -> None:
        for i in range(per_sender):
            sender.send(f"PRIVMSG #lobby :{sender.nick} {i}")

    threads = [threading.Thread(target=talk, args=(s,)) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    seen = []
    for reader in readers:
        lines = []
        while len(lines) < per_sender * len(senders):
            msg = reader.expect("PRIVMSG")
            lines.append(msg.params[1])
        seen.append(lines)
    assert seen[0] == seen[1]
    for sender in senders:  # each sender's own lines in the order it said them
        own = [line for line in seen[0] if line.split()[0] == sender.nick]
        assert own == [f"{sender.nick} {i}" for i in range(per_sender)]


def test_when_a_node_dies_its_users_quit_everywhere_and_their_nicks_are_free(
    make_server, redis_url: str, clients, tmp_path
):
    url = redis_url
    a = make_server(cluster=url, cluster_timeout=LIVENESS, flood_rate=0)
    settings = tmp_path / "node.toml"
    settings.write_text(f'cluster = "{url}"\ncluster_timeout = {LIVENESS}\nname = "doomed.chat"\n')
    with ChatServe("--config", str(settings), "--no-db", "--log-level", "error") as doomed:
        carol = person(a.port, "carol", clients, "echo-message")
        erin = person(a.port, "erin", clients)
        dave = person(doomed.port, "dave", clients)
        joined(carol, "dave")
        sent = 60

        def talk() -> None:  # (in mid-traffic)
            for i in range(sent):
                carol.send(f"PRIVMSG #lobby :n{i}")
                time.sleep(0.005)

        talker = threading.Thread(target=talk)
        talker.start()
        time.sleep(0.1)
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait(5)
        started = time.monotonic()
        talker.join(TIMEOUT)
        seen = carol.collect("QUIT", timeout=LIVENESS * 3 + 5)
        took = time.monotonic() - started
        assert took < LIVENESS + 1  # (its key lapses, it is reaped: within the timeout)
        quit_ = seen[-1]
        assert quit_.source.split("!")[0] == "dave"
        assert quit_.params[0] == "doomed.chat left the chat"
        confirmed = [m.params[1] for m in seen if m.command == "PRIVMSG"]
        confirmed += [m.params[1] for m in carol.quiet(0.3) if m.command == "PRIVMSG"]
        assert confirmed == [f"n{i}" for i in range(sent)]  # (each echoed: confirmed)
        got = [erin.expect("PRIVMSG").params[1] for _ in range(sent)]
        assert got == confirmed  # nothing confirmed to a sender on a live node is lost
        dave.close()
        person(a.port, "dave", clients)  # the nick is free again


def test_a_redis_that_cannot_be_reached_stops_start_up_with_one_line():
    serve = [sys.executable, "-m", "chatcli", "serve", "--port", "0", "--no-db"]
    done = subprocess.run(
        [*serve, "--cluster", "redis://127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("chat: cannot use the cluster's Redis at 127.0.0.1:1/0: ")
    assert done.stderr.count("\n") == 1


def test_topics_modes_and_ranks_set_on_one_node_hold_on_the_other(nodes, clients):
    a, b = nodes
    alice = person(a.port, "alice", clients)
    bob = person(b.port, "bob", clients)
    alice.send("JOIN #team")
    alice.expect("366")
    wait_until(lambda: b.server.world.find_channel("#team") is not None)  # (see below)
    bob.send("JOIN #team")
    bob.expect("366")
    joined(alice, "bob")
    alice.send("TOPIC #team :ship it on friday")
    alice.expect("TOPIC")
    assert bob.expect("TOPIC").params == ("#team", "ship it on friday")
    bob.send("TOPIC #team")
    assert bob.expect("332").params[-1] == "ship it on friday"
    bob.send("TOPIC #team :not allowed")  # (+t: only operators, and bob is none)
    assert bob.expect("482").params[1] == "#team"
    alice.send("MODE #team +m")
    assert bob.expect("MODE").params == ("#team", "+m")
    bob.send("PRIVMSG #team :can I talk?")
    assert bob.expect("404").params[1] == "#team"
    alice.send("MODE #team +o bob")
    assert bob.expect("MODE").params == ("#team", "+o", "bob")
    bob.send("TOPIC #team :ship it on monday")  # (an operator now, on his own node)
    assert alice.expect("TOPIC").params == ("#team", "ship it on monday")
    bob.send("PRIVMSG #team :and now I may talk")
    assert alice.expect("PRIVMSG").params == ("#team", "and now I may talk")


def test_away_monitor_and_invitations_reach_across_nodes(nodes, clients):
    a, b = nodes
    alice = person(a.port, "alice", clients)
    alice.send("MONITOR + bob")
    alice.expect("731")  # (bob is offline)
    bob = person(b.port, "bob", clients)
    assert alice.expect("730").params[1].startswith("bob!")
    bob.send("AWAY :at lunch")
    bob.expect("306")
    wait_until(lambda: getattr(a.server.world.find_nick("bob"), "away", None) == "at lunch")
    alice.send("WHOIS bob")
    assert alice.expect("301").params[-1] == "at lunch"
    alice.send("JOIN #secret")
    alice.expect("366")
    alice.send("MODE #secret +i")
    alice.expect("MODE")
    secret = lambda: b.server.world.find_channel("#secret")  # noqa: E731
    wait_until(lambda: secret() is not None and "i" in secret().modes)  # (a moment's lag)
    bob.send("JOIN #secret")
    assert bob.expect("473").params[1] == "#secret"
    alice.send("INVITE bob #secret")
    assert bob.expect("INVITE").params == ("bob", "#secret")
    bob.send("JOIN #secret")
    bob.expect("366")
    joined(alice, "bob")
    bob.send("QUIT :bye")
    assert alice.expect("731").params[1] == "bob"


def test_a_node_that_comes_later_sees_the_people_and_rooms_already_there(
    make_server, redis_url: str, clients
):
    a = make_server(cluster=redis_url, cluster_timeout=LIVENESS)
    alice = person(a.port, "alice", clients)
    alice.send("JOIN #early")
    alice.expect("366")
    alice.send("TOPIC #early :set before b came")
    alice.expect("TOPIC")
    wait_until(lambda: not a.server.cluster._ops)
    trim = redis.Redis.from_url(redis_url)  # (as if it were long ago: nothing to replay)
    trim.xtrim("chatcli:chatcli:events", maxlen=0)
    trim.close()
    b = make_server(cluster=redis_url, cluster_timeout=LIVENESS)
    bob = person(b.port, "bob", clients)
    bob.send("JOIN #early")
    assert bob.expect("332").params[-1] == "set before b came"
    names = bob.expect("353").params[-1].split()
    assert {name.lstrip("@+") for name in names} == {"alice", "bob"}
    bob.send("NICK alice")
    assert bob.expect("433").params[1] == "alice"


def test_lusers_counts_everyone_on_every_node(nodes, clients):
    a, b = nodes
    alice = person(a.port, "alice", clients)
    person(b.port, "bob", clients)
    person(b.port, "carol", clients)
    wait_until(lambda: a.server.world.others == 2 and a.server.world.servers == 2)
    alice.send("LUSERS")
    lines = {m.command: m.params[-1] for m in alice.collect("266")}
    assert lines["251"] == "There are 3 users and 0 invisible on 2 servers"
    assert lines["255"] == "I have 1 clients and 1 servers"
    assert lines["266"].startswith("Current global users 3,")


def test_stats_c_and_the_metrics_show_the_cluster(make_server, redis_url: str, clients):
    opers = (("admin", hash_password("s3cret")),)
    a = make_server(cluster=redis_url, cluster_timeout=LIVENESS, web_port=0, operators=opers)
    b = make_server(cluster=redis_url, cluster_timeout=LIVENESS)
    admin = person(a.port, "admin", clients)
    person(b.port, "bob", clients)
    person(b.port, "carol", clients)
    wait_until(lambda: a.server.world.others == 2 and a.server.world.servers == 2)
    admin.send("OPER admin s3cret")
    admin.expect("381")
    admin.send("STATS c")
    lines = [m.params[-1] for m in admin.collect("219") if m.command == "249"]
    assert f"node {a.server.cluster.node}, 2 nodes alive, lag" in lines[0]
    assert " events/s, " in lines[0]
    assert sorted(lines[1:]) == sorted(
        [
            f"node {a.server.cluster.node} (this one): 1 users",
            f"node {b.server.cluster.node}: 2 users",
        ]
    )
    host, port = a.server.web_address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=TIMEOUT) as answer:
        text = answer.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples["chatcli_cluster_nodes", ()] == 2
    assert samples["chatcli_cluster_users", (("node", b.server.cluster.node),)] == 2
    assert samples["chatcli_cluster_connected", ()] == 1
    assert ("chatcli_cluster_events_per_second", ()) in samples
    assert samples["chatcli_cluster_events_applied_total", ()] > 0


def test_a_redis_restarted_empty_in_mid_traffic_loses_and_repeats_nothing(
    nodes, redis_server: Redis, clients
):
    a, b = nodes
    alice = person(a.port, "alice", clients)
    bob = person(b.port, "bob", clients)
    joined(alice, "bob")
    count = 150

    def talk() -> None:
        for i in range(count):
            alice.send(f"PRIVMSG #lobby :m{i}")
            time.sleep(0.006)

    talker = threading.Thread(target=talk)
    talker.start()
    time.sleep(0.3)
    redis_server.stop()  # (it keeps nothing: back empty, on the same port)
    time.sleep(0.4)
    redis_server.start()
    talker.join(TIMEOUT)
    got = [bob.expect("PRIVMSG", timeout=10).params[1] for _ in range(count)]
    assert got == [f"m{i}" for i in range(count)]
    assert not [m for m in bob.quiet(0.5) if m.command == "PRIVMSG"]  # (none twice)
    assert a.server.cluster.republished > 0  # (what it had published lately, again)
    alice.send("NICK bob")  # and the nicks are claimed again
    assert alice.expect("433").params[1] == "bob"


def test_nodes_cut_off_from_redis_too_long_end_their_clients_then_serve_again(
    nodes, redis_server: Redis, clients
):
    a, b = nodes
    alice = person(a.port, "alice", clients)
    person(b.port, "bob", clients)
    redis_server.stop()
    try:
        wait_until(lambda: a.server.cluster.health().startswith("not reaching Redis for"))
        notice = alice.expect("NOTICE", timeout=LIVENESS * 4)
        assert "lost contact with the rest of the chat" in notice.params[-1]
        assert alice.expect("ERROR").params[-1].endswith("reconnect)")
    finally:
        redis_server.start()
    wait_until(lambda: not a.server.cluster.cut and a.server.cluster.health() == "ok")
    person(a.port, "alice", clients)  # served again, the nick free


HISTORY = "draft/chathistory batch server-time message-tags"


def test_on_a_shared_postgresql_accounts_history_and_waiting_messages_cross_nodes(
    make_server, redis_url: str, pg_url: str, clients
):
    a = make_server(cluster=redis_url, cluster_timeout=LIVENESS, db=pg_url, flood_rate=0)
    b = make_server(cluster=redis_url, cluster_timeout=LIVENESS, db=pg_url, flood_rate=0)
    dave = person(a.port, "dave", clients)  # registers an account on node a...
    dave.send("REGISTER * * :correct-horse")
    dave.expect("REGISTER")
    dave.send("QUIT")
    assert dave.closed()
    alice = person(a.port, "alice", clients, HISTORY)
    alice.send("PRIVMSG #lobby :said on node a")
    alice.send("PRIVMSG dave :for when you are back")  # (kept: dave is offline)
    alice.expect("301")
    alice.sync()
    reader = person(b.port, "reader", clients, HISTORY)  # ...history read on node b
    reader.send("CHATHISTORY LATEST #lobby * 10")
    start = reader.expect("BATCH")
    lines = reader.collect("BATCH")
    assert start.params[1] == "chathistory"
    assert [m.params[1] for m in lines if m.command == "PRIVMSG"] == ["said on node a"]
    back = Client(b.port)  # ...and dave logs in on node b, with his waiting message
    clients.append(back)
    back.send("CAP REQ :sasl")
    back.send("NICK dave")
    back.send("USER dave 0 * :Dave")
    back.expect("CAP")
    back.send("AUTHENTICATE PLAIN")
    back.expect("AUTHENTICATE")
    back.send("AUTHENTICATE " + base64.b64encode(b"dave\0dave\0correct-horse").decode())
    back.expect("903")
    back.send("CAP END")
    said = back.expect("PRIVMSG")
    assert said.source.split("!")[0] == "alice"
    assert said.params[1].endswith("] for when you are back")  # (its time, without server-time)
    seen = lambda: a.server.world.find_nick("dave")  # noqa: E731
    wait_until(lambda: seen() is not None and seen().account == "dave")  # (node a applied it)
    alice.send("WHOIS dave")
    assert alice.expect("330").params[2] == "dave"  # (logged in, as seen from node a)


def test_an_operator_kills_someone_on_the_other_node_and_whowas_remembers_them(
    make_server, redis_url: str, clients
):
    opers = (("admin", hash_password("s3cret")),)
    a = make_server(cluster=redis_url, cluster_timeout=LIVENESS, operators=opers)
    b = make_server(cluster=redis_url, cluster_timeout=LIVENESS)
    admin = person(a.port, "admin", clients)
    bob = person(b.port, "bob", clients)
    joined(admin, "bob")
    admin.send("OPER admin s3cret")
    admin.expect("381")
    admin.send("KILL bob :spamming")
    assert bob.expect("ERROR").params[-1].startswith("Closing link")
    quit_ = admin.expect("QUIT")
    assert quit_.source.startswith("bob!") and "Killed (admin (spamming))" in quit_.params[0]
    admin.send("WHOWAS bob")
    assert admin.expect("314").params[1:3] == ("bob", "~bob")


def test_a_kick_reaches_who_is_kicked_and_a_quit_keeps_its_place_among_room_lines(nodes, clients):
    a, _ = nodes
    op = person(a.port, "op", clients)
    kicked = person(a.port, "kicked", clients)  # (on the kicker's own node)
    watcher = person(a.port, "watcher", clients)
    op.send("JOIN #one")
    op.expect("366")
    kicked.send("JOIN #one")
    kicked.expect("366")
    op.send("KICK #one kicked :out")
    assert kicked.expect("KICK").params == ("#one", "kicked", "out")
    watcher.send("MONITOR + brief")
    watcher.expect("731")
    brief = person(a.port, "brief", clients)  # joins #lobby, and leaves at once
    brief.close()
    seen = [m.command for m in watcher.collect("QUIT") if m.command in ("JOIN", "QUIT")]
    assert seen == ["JOIN", "QUIT"]  # (its JOIN first, as the room saw it)


def test_wallops_and_notices_to_everyone_reach_every_node_and_cloaks_agree(
    make_server, redis_url: str, clients
):
    opers = (("admin", hash_password("s3cret")),)
    a = make_server(cluster=redis_url, cluster_timeout=LIVENESS, operators=opers)
    b = make_server(cluster=redis_url, cluster_timeout=LIVENESS)
    admin = person(a.port, "admin", clients)
    bob = person(b.port, "bob", clients)
    bob.send("MODE bob +w")
    bob.expect("MODE")
    wait_until(lambda: "w" in getattr(a.server.world.find_nick("bob"), "modes", ""))
    admin.send("OPER admin s3cret")
    admin.expect("381")
    admin.send("WALLOPS :maintenance at noon")
    assert bob.expect("WALLOPS").params == ("maintenance at noon",)
    admin.send("NOTICE $* :hello, everyone")
    assert bob.expect("NOTICE").params == ("$*", "hello, everyone")
    admin.send("WHO bob")
    seen_from_a = admin.expect("352").params[3]
    bob.send("WHO bob")
    assert bob.expect("352").params[3] == seen_from_a  # one address, one cloak everywhere


def test_an_accounts_owner_takes_its_nick_back_from_someone_on_another_node(
    make_server, redis_url: str, pg_url: str, clients
):
    config = {"cluster": redis_url, "cluster_timeout": LIVENESS, "db": pg_url, "nick_grace": 30}
    a, b = make_server(**config), make_server(**config)
    register_account(a.port, "bob", "correct-horse")
    squatter = person(b.port, "bob", clients)
    owner = Client(a.port)
    clients.append(owner)
    owner.send("PASS bob:correct-horse")
    owner.register("bob2")
    owner.send("NICK bob")
    changes = {m.source.split("!")[0]: m.params[0] for m in owner.collect("NICK", "NICK")}
    while "bob2" not in changes:  # (the squatter's rename, then its own, or the other way)
        msg = owner.expect("NICK")
        changes[msg.source.split("!")[0]] = msg.params[0]
    assert changes["bob2"] == "bob"
    renamed = squatter.expect("NICK")
    assert renamed.source.startswith("bob!") and renamed.params[0].startswith("Guest")


def test_failed_logins_on_one_node_slow_down_guesses_on_the_other(
    make_server, redis_url: str, pg_url: str, clients
):
    config = {"cluster": redis_url, "cluster_timeout": LIVENESS, "db": pg_url}
    config |= {"login_backoff": 0.2, "login_backoff_max": 1.0}
    a, b = make_server(**config), make_server(**config)
    register_account(a.port, "dave", "correct-horse")
    guesser = person(a.port, "guesser", clients)
    for _ in range(4):  # (three are free; the fourth is counted and waited for)
        guesser.send("PRIVMSG NickServ :IDENTIFY dave wrong-guess")
        guesser.expect("NOTICE")
    assert b.server.world.shared_failures(("account dave",)) == 4
    elsewhere = person(b.port, "elsewhere", clients)
    started = time.monotonic()
    elsewhere.send("PRIVMSG NickServ :IDENTIFY dave another-guess")
    elsewhere.expect("NOTICE", timeout=10)
    assert time.monotonic() - started >= 0.9 * a.config.login_backoff * 2  # (waited there)


def test_a_message_redacted_on_one_node_is_not_replayed_on_the_other(
    make_server, redis_url: str, pg_url: str, clients
):
    config = {"cluster": redis_url, "cluster_timeout": LIVENESS, "db": pg_url}
    a, b = make_server(**config), make_server(**config)
    caps = "draft/message-redaction message-tags echo-message"
    alice = person(a.port, "alice", clients, caps)
    alice.send("PRIVMSG #lobby :oops, a password")
    msgid = alice.expect("PRIVMSG").tags["msgid"]
    alice.send("PRIVMSG #lobby :kept")
    alice.expect("PRIVMSG")
    wait_until(lambda: len(b.server.world.find_channel("#lobby").recent or ()) == 2)
    alice.send(f"REDACT #lobby {msgid}")
    alice.expect("REDACT")
    wait_until(lambda: len(b.server.world.find_channel("#lobby").recent or ()) == 1)
    late = person(b.port, "late", clients)  # joins #lobby on node b: its replay
    replayed = [m.params[-1] for m in late.quiet(0.5) if m.command == "PRIVMSG"]
    assert [line.endswith("] kept") for line in replayed] == [True]  # (with its time)


def test_a_room_renamed_on_one_node_is_renamed_on_every_node_for_who_comes_later_too(
    make_server, redis_url: str, clients
):
    config = {"cluster": redis_url, "cluster_timeout": LIVENESS}
    a, b = make_server(**config), make_server(**config)
    alice = person(a.port, "alice", clients, "draft/channel-rename")
    bob = person(b.port, "bob", clients, "draft/channel-rename")
    carol = person(b.port, "carol", clients)  # (without the capability: the fallback)
    alice.send("JOIN #bar")
    alice.expect("366")
    for member in (bob, carol):
        member.send("JOIN #bar")
        member.expect("366")
    alice.send("TOPIC #bar :the plan")
    carol.expect("TOPIC")
    alice.send("RENAME #bar #qux :a better name")
    assert alice.expect("RENAME").params == ("#bar", "#qux", "a better name")
    assert bob.expect("RENAME").params == ("#bar", "#qux", "a better name")
    assert carol.expect("PART").params == ("#bar", "a better name")
    assert carol.expect("JOIN").params == ("#qux",)
    assert carol.expect("332").params[-1] == "the plan"
    bob.send("PRIVMSG #qux :said under the new name")
    assert alice.expect("PRIVMSG").params == ("#qux", "said under the new name")
    wait_until(lambda: not a.server.cluster._ops and not b.server.cluster._ops)
    trim = redis.Redis.from_url(redis_url)  # (a node that comes long after: no replay)
    trim.xtrim("chatcli:chatcli:events", maxlen=0)
    trim.close()
    c = make_server(**config)
    dave = person(c.port, "dave", clients)
    dave.send("JOIN #qux")
    assert dave.expect("332").params[-1] == "the plan"
    names = dave.expect("353").params[-1].split()
    assert {name.lstrip("@+") for name in names} == {"alice", "bob", "carol", "dave"}
    dave.send("JOIN #bar")  # the old name is free: a new room
    assert dave.expect("353").params[-1] == "@dave"


def test_a_read_marker_moved_on_one_node_reaches_the_accounts_connection_on_the_other(
    make_server, redis_url: str, pg_url: str, clients
):
    config = {"cluster": redis_url, "cluster_timeout": LIVENESS, "db": pg_url}
    a, b = make_server(**config), make_server(**config)
    laptop = person(a.port, "ada", clients, "draft/read-marker")
    laptop.send("REGISTER * * :correct-horse")
    laptop.expect("REGISTER")
    phone = Client(b.port)  # the same account, logged in on node b under another nick
    clients.append(phone)
    phone.send("CAP REQ :sasl draft/read-marker")
    phone.send("NICK ada_phone")
    phone.send("USER ada 0 * :Ada")
    phone.expect("CAP")
    phone.send("AUTHENTICATE PLAIN")
    phone.expect("AUTHENTICATE")
    phone.send("AUTHENTICATE " + base64.b64encode(b"ada\0ada\0correct-horse").decode())
    phone.expect("903")
    phone.send("CAP END")
    phone.expect("001")
    phone.sync()
    wait_until(lambda: a.server.world.find_nick("ada_phone") is not None)
    laptop.send("MARKREAD #lobby timestamp=2026-01-31T12:00:00.000Z")
    assert laptop.expect("MARKREAD").params == ("#lobby", "timestamp=2026-01-31T12:00:00.000Z")
    moved = phone.expect("MARKREAD")
    assert moved.params == ("#lobby", "timestamp=2026-01-31T12:00:00.000Z")
    phone.send("MARKREAD #lobby")  # asked on node b: the shared store's answer
    assert phone.expect("MARKREAD").params[1] == "timestamp=2026-01-31T12:00:00.000Z"


def test_a_node_whose_liveness_key_ran_out_ends_its_clients_then_serves_again(
    make_server, redis_url: str, clients
):
    """A node that stalled past its key's lifetime may have been reaped by the others
    (its users quit, its nicks freed): it must not carry on as if nothing happened."""
    config = {"cluster": redis_url, "cluster_timeout": LIVENESS}
    a, b = make_server(**config), make_server(**config)
    alice = person(a.port, "alice", clients)
    bob = person(b.port, "bob", clients)
    wait_until(lambda: b.server.world.find_nick("alice") is not None)
    cluster = a.server.cluster
    gone = redis.Redis.from_url(redis_url)  # (as if the node had stalled that long)
    gone.delete(cluster._node_key(a.server.world.node))
    gone.close()
    ended = alice.expect("ERROR")
    assert "lost contact" in ended.params[-1]
    wait_until(lambda: b.server.world.find_nick("alice") is None)
    carol = person(a.port, "carol", clients)  # the node serves again, known to the others
    joined(bob, "carol")
    carol.send("PRIVMSG #lobby :back again")
    assert bob.expect("PRIVMSG").params[-1] == "back again"
