"""Connection registration, capabilities, PING/PONG and liveness (modern IRC client protocol,
"Connection Registration"; IRCv3 capability negotiation)."""

from __future__ import annotations

import time

import pytest

from chatcli.protocol import numerics as n
from tests.server.hosts import shown_host


def test_welcome_burst_then_default_room(server, connect):
    """'Upon successful completion of the registration process, the server MUST send, in
    this order: RPL_WELCOME, RPL_YOURHOST, RPL_CREATED, RPL_MYINFO, at least one
    RPL_ISUPPORT, [LUSERS], RPL_MOTD or ERR_NOMOTD.' Then a client that asked for it (as
    ``chat join`` does) lands in #lobby."""
    burst = connect().register("alice")
    commands = [m.command for m in burst if m.command != "CAP"]
    assert commands[:5] == ["001", "002", "003", "004", "005"]
    assert commands.index("251") < commands.index("375") < commands.index("376")
    source = f"alice!~alice@{shown_host(server)}"
    welcome = next(m for m in burst if m.command == "001")
    assert welcome.params == ("alice", f"Welcome to the chatcli IRC Network {source}")
    join = next(m for m in burst if m.command == "JOIN")
    assert join.params == ("#lobby",) and join.source == source
    assert burst[-2].command == "353" and burst[-2].params[-1] == "alice"


def test_without_the_autojoin_capability_a_client_joins_no_room(connect):
    """As on any IRC server; the default MOTD says where everyone meets."""
    client = connect()
    burst = client.register("plain", join=False)
    assert "JOIN" not in [m.command for m in burst]
    motd = [m.params[-1] for m in burst if m.command == n.RPL_MOTD]
    assert motd == ["- Welcome to chatcli. Everyone meets in #lobby:", "- /join #lobby"]


def test_no_autojoin_capability_keeps_a_script_out_of_the_room(connect):
    watcher = connect("watcher")
    bot = connect()
    burst = bot.register("bot", join=False)
    assert "JOIN" not in [m.command for m in burst]
    bot.send("PRIVMSG watcher :direct, no fuss")
    assert watcher.expect("PRIVMSG").params == ("watcher", "direct, no fuss")
    bot.send("QUIT")
    bot.closed()
    assert watcher.sync() == []  # saw no JOIN and no QUIT


def test_isupport_is_truthful(connect):
    tokens = set()
    for msg in connect().register("alice"):
        if msg.command == n.RPL_ISUPPORT:
            assert msg.params[-1] == "are supported by this server"
            tokens.update(msg.params[1:-1])
    assert {
        "CASEMAPPING=ascii",
        "CHANTYPES=#",
        "CHANMODES=beI,k,l,Cimnpst",
        "PREFIX=(ov)@+",
        "NICKLEN=30",
        "CHANNELLEN=64",
        "TOPICLEN=390",
        "MAXTARGETS=4",
        "MODES=4",
        "MONITOR=100",
        "NETWORK=chatcli",
        "UTF8ONLY",
        "BOT=B",
        "ELIST=CMNTU",
        "EXCEPTS=e",
        "ACCOUNTEXTBAN=a",
        "EXTBAN=,am",
        "INVEX=I",
        "MAXLIST=beI:100",
        "WHOX",
    } <= tokens


def test_motd_is_sent_when_configured(make_server):
    from tests.conftest import Client

    running = make_server(motd=("Be kind.", "Have fun."))
    client = Client(running.port)
    try:
        burst = client.register("alice")
        motd = [m.params[-1] for m in burst if m.command in ("375", "372", "376")]
        assert motd == [
            "- chatcli.local Message of the day - ",
            "- Be kind.",
            "- Have fun.",
            "End of /MOTD command.",
        ]
    finally:
        client.close()


def test_nick_in_use_is_refused_and_registration_can_go_on(connect):
    connect("alice")
    bob = connect()
    bob.send("NICK ALICE")  # casemapping: the same nick
    bob.send("USER bob 0 * :Bob")
    assert bob.expect("433").params == ("*", "ALICE", "Nickname is already in use")
    bob.send("NICK bob")
    bob.expect("001")


def test_erroneous_and_missing_nick(connect):
    client = connect()
    client.send("NICK 1abc")
    assert client.expect("432").params[:2] == ("*", "1abc")
    client.send("NICK")
    client.expect("431")
    client.send("NICK #chan")
    client.expect("432")
    client.send("NICK " + "a" * 31)
    client.expect("432")


def test_commands_before_registration_get_451(connect):
    client = connect()
    client.send("PRIVMSG #lobby :hi")
    assert client.expect("451").params == ("*", "You have not registered")
    client.send("JOIN #x")
    client.expect("451")


def test_user_needs_four_params_and_only_once(connect):
    client = connect()
    client.send("USER bob 0 *")
    assert client.expect("461").params[:2] == ("*", "USER")
    client.register("bob")
    client.send("USER bob 0 * :again")
    client.expect("462")
    client.send("PASS secret")
    client.expect("462")


def test_unknown_command_gets_421_and_connection_goes_on(connect):
    client = connect("alice")
    client.send("FROBNICATE now")
    assert client.expect("421").params == ("alice", "FROBNICATE", "Unknown command")
    client.sync()


def test_cap_negotiation_holds_registration_until_end(connect):
    client = connect()
    offered = client.cap_ls()
    client.send("NICK alice")
    client.send("USER alice 0 * :Alice")
    assert set(offered) == {
        "account-notify",
        "account-tag",
        "draft/account-registration=before-connect",
        "sasl=PLAIN",
        "away-notify",
        "batch",
        "cap-notify",
        "chatcli.local/autojoin",
        "chatcli.local/quiet",
        "draft/channel-rename",
        "draft/event-playback",
        "draft/metadata-2=before-connect,max-subs=50,max-keys=20,max-value-bytes=300",
        "draft/metadata-notify-2",
        "draft/multiline=max-bytes=4096,max-lines=100",
        "echo-message",
        "extended-join",
        "extended-monitor",
        "invite-notify",
        "labeled-response",
        "message-tags",
        "multi-prefix",
        "server-time",
        "setname",
        "userhost-in-names",
    }
    client.send("CAP REQ :multi-prefix bogus-cap")
    assert client.expect("CAP").params == ("alice", "NAK", "multi-prefix bogus-cap")
    client.send("CAP REQ :multi-prefix echo-message")
    assert client.expect("CAP").params == ("alice", "ACK", "multi-prefix echo-message")
    assert client.quiet() == []  # not registered yet: still negotiating
    client.send("CAP LIST")
    # cap-notify comes with CAP LS 302 (IRCv3): it is enabled without a REQ
    assert client.expect("CAP").params == ("alice", "LIST", "cap-notify echo-message multi-prefix")
    client.send("CAP END")
    client.expect("001")
    client.send("CAP REQ :-echo-message")
    client.expect("CAP", "alice", "ACK")
    client.send("CAP FOO")
    client.expect("410")


def test_a_long_cap_ls_goes_over_several_lines_and_offers_everything(make_server, tmp_path):
    from tests.conftest import Client

    running = make_server(db=str(tmp_path / "chat.db"), name="a." + "n" * 60 + ".example")
    client = Client(running.port)
    offered = client.cap_ls()
    assert len(offered) == len(set(offered))
    names = {cap.split("=")[0] for cap in offered}
    assert {"chatcli.local/autojoin", "chatcli.local/quiet", "userhost-in-names"} <= names
    assert {"draft/chathistory", "draft/read-marker", "draft/message-redaction"} <= names
    client.send("CAP LS")  # (no values: shorter, still whole)
    plain: list[str] = []
    while (line := client.expect("CAP")).params[2] == "*":
        plain += line.params[3].split()
    assert set(plain + line.params[2].split()) == names
    client.close()


def test_server_password(make_server):
    from tests.conftest import Client

    running = make_server(password="s3cret")
    wrong, right = Client(running.port), Client(running.port)
    try:
        wrong.send("PASS nope")
        wrong.send("NICK mallory")
        wrong.send("USER m 0 * :M")
        assert wrong.expect("464").params[-1] == "Password incorrect"
        assert wrong.expect("ERROR").params[0].endswith("(Bad password)")
        assert wrong.closed()
        right.send("PASS s3cret")
        right.register("alice")
    finally:
        wrong.close()
        right.close()


def test_ping_is_answered_with_pong(connect):
    client = connect("alice")
    client.send("PING :some token")
    assert client.expect("PONG").params == ("chatcli.local", "some token")
    client.send("PING")
    client.expect("461")


def test_idle_client_is_pinged_and_stays_if_it_answers(make_server):
    from tests.conftest import Client

    running = make_server(ping_interval=0.2, ping_timeout=0.5)
    client = Client(running.port)
    try:
        client.register("alice")
        for _ in range(3):
            ping = client.expect("PING", timeout=2)
            client.send(f"PONG :{ping.params[0]}")
        client.sync()
    finally:
        client.close()


def test_dead_peer_is_dropped_after_ping_timeout(make_server):
    from tests.conftest import Client

    running = make_server(ping_interval=0.2, ping_timeout=0.3)
    alice, dead = Client(running.port), Client(running.port)
    try:
        alice.register("alice")
        dead.register("dead")
        start = time.monotonic()
        # alice keeps talking; dead never answers its PING
        while time.monotonic() - start < 5:
            alice.send("PONG :x")
            try:
                msg = alice.recv(0.1)
            except TimeoutError:
                continue
            if msg is not None and msg.command == "QUIT":
                assert msg.source.startswith("dead!")
                assert msg.params[0].startswith("Ping timeout")
                break
        else:
            raise AssertionError("the dead peer was never dropped")
        assert dead.closed()
    finally:
        alice.close()
        dead.close()


def test_silent_connection_is_dropped_after_registration_timeout(make_server):
    from tests.conftest import Client

    running = make_server(registration_timeout=0.3)
    client = Client(running.port)
    try:
        assert client.expect("ERROR", timeout=3).params[0].endswith("(Registration timeout)")
        assert client.closed()
    finally:
        client.close()


def test_quit_is_seen_by_others_with_its_reason(server, connect):
    alice, bob = connect("alice"), connect("bob")
    alice.expect("JOIN", "#lobby")  # bob's arrival
    bob.send("QUIT :off to lunch")
    assert bob.expect("ERROR").params[0].endswith("(Quit: off to lunch)")
    assert bob.closed()
    quit_ = alice.expect("QUIT")
    assert quit_.source == f"bob!~bob@{shown_host(server)}"
    assert quit_.params == ("Quit: off to lunch",)


def test_nick_is_released_when_connection_drops_without_quit(connect):
    bob = connect("bob")
    bob.close()
    alice = connect("alice")
    alice.sync()
    deadline = time.monotonic() + 3
    while True:
        alice.send("ISON bob")
        if alice.expect("303").params[-1] == "":
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    connect("bob")


def _has_ipv6() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback on this machine")
def test_serves_ipv6(make_server):
    import socket

    running = make_server(host="::1", cloak_hosts=False)  # shown as it is: "::1"
    assert running.host == "::1"
    sock = socket.create_connection(("::1", running.port), timeout=5)
    try:
        sock.sendall(b"NICK six\r\nUSER six 0 * :Six\r\n")
        data = b""
        while b" 001 " not in data:
            chunk = sock.recv(4096)
            assert chunk
            data += chunk
        assert b"six!~six@::1" in data
    finally:
        sock.close()
