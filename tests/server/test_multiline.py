"""IRCv3 draft/multiline: a message of several lines sent as one batch, delivered as one
batch to who has the capability and line by line to who has not, limited, kept in the
history as one message, and redacted whole."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from chatcli.protocol import Message
from chatcli.server import multiline
from tests.conftest import Client, RunningServer, in_room, register_account

BASE = "message-tags batch echo-message server-time labeled-response"
CAPS = BASE + " draft/multiline"


@pytest.fixture
def chat(make_server: Callable[..., RunningServer], tmp_path) -> RunningServer:
    return make_server(db=str(tmp_path / "chat.db"), replay_lines=10)


@pytest.fixture
def open_client(chat: RunningServer, clients: list[Client]):
    def open_one(nick: str, caps: str = CAPS, room: str | None = "#dev") -> Client:
        return in_room(chat.port, clients, nick, caps, room)

    return open_one


def send_batch(client: Client, target: str, *lines: str, ref: str = "b1", head: str = "") -> None:
    """Send ``lines`` (each ``[concat]text``: a leading "+" marks a continuation) as one
    multiline batch to ``target``."""
    client.send(f"{head}BATCH +{ref} draft/multiline {target}")
    for line in lines:
        tag = f"batch={ref};draft/multiline-concat" if line.startswith("+") else f"batch={ref}"
        client.send(f"@{tag} PRIVMSG {target} :{line.removeprefix('+')}")
    client.send(f"BATCH -{ref}")


def read_batch(client: Client, timeout: float = 5.0) -> tuple[Message, list[Message]]:
    """A draft/multiline batch: its opening BATCH and its lines (its end read too)."""
    start = client.expect("BATCH", timeout=timeout)
    assert start.params[1] == "draft/multiline"
    ref = start.params[0][1:]
    lines = []
    while (msg := client.recv()) is not None and msg.command != "BATCH":
        assert msg.tags.get("batch") == ref
        lines.append(msg)
    assert msg is not None and msg.params == ("-" + ref,)
    return start, lines


def test_the_cap_is_offered_with_its_limits(open_client) -> None:
    alice = open_client("alice", caps="", room=None)
    offered = alice.cap_ls()
    assert f"draft/multiline=max-bytes={multiline.MAX_BYTES},max-lines={multiline.MAX_LINES}" in (
        offered
    )
    assert multiline.CAP_VALUE == "max-bytes=4096,max-lines=100"


def test_a_batch_reaches_who_has_the_cap_as_one_and_others_line_by_line(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    carol = open_client("carol", caps=BASE)
    dave = open_client("dave", caps="")
    alice.sync()
    send_batch(alice, "#dev", "hello", "how is ", "+everyone?", "", "bye", head="@+x=1 ")
    start, lines = read_batch(bob)
    assert start.source.startswith("alice!")
    assert start.params == (start.params[0], "draft/multiline", "#dev")
    msgid, when = start.tags["msgid"], start.tags["time"]
    assert start.tags["+x"] == "1"
    assert [m.params for m in lines] == [
        ("#dev", "hello"),
        ("#dev", "how is "),
        ("#dev", "everyone?"),
        ("#dev", ""),
        ("#dev", "bye"),
    ]
    assert all("msgid" not in m.tags and "time" not in m.tags for m in lines)
    assert ["draft/multiline-concat" in m.tags for m in lines] == [False, False, True, False, False]
    # Without the cap: the lines one by one, no blank one; the msgid only on the first.
    fallback = [carol.expect("PRIVMSG") for _ in range(4)]
    assert [m.params[-1] for m in fallback] == ["hello", "how is ", "everyone?", "bye"]
    assert [m.tags.get("msgid") for m in fallback] == [msgid, None, None, None]
    assert all(m.tags["time"] == when and m.tags["+x"] == "1" for m in fallback)
    assert all("draft/multiline-concat" not in m.tags and "batch" not in m.tags for m in fallback)
    plain = [dave.expect("PRIVMSG") for _ in range(4)]
    assert [m.params[-1] for m in plain] == ["hello", "how is ", "everyone?", "bye"]
    assert all(not m.tags for m in plain)
    assert not carol.quiet() and not dave.quiet()


def test_the_sender_gets_its_echo_as_one_batch_with_the_label(open_client) -> None:
    alice = open_client("alice")
    alice.sync()
    send_batch(alice, "#dev", "one", "two", head="@label=L1 ")
    start, lines = read_batch(alice)
    assert start.tags["label"] == "L1"
    assert "msgid" in start.tags
    assert [m.params[-1] for m in lines] == ["one", "two"]
    assert not [m for m in alice.sync() if m.command in ("ACK", "PRIVMSG")]


def test_a_labeled_batch_without_echo_message_is_acknowledged(open_client) -> None:
    alice = open_client("alice", caps="message-tags batch labeled-response draft/multiline")
    send_batch(alice, "#dev", "one", head="@label=L2 ")
    ack = alice.expect("ACK")
    assert ack.tags["label"] == "L2"


def test_a_direct_message_and_one_kept_for_an_offline_account(open_client, chat) -> None:
    alice = open_client("alice", room=None)
    bob = open_client("bob", room=None)
    send_batch(alice, "bob", "hi", "there")
    start, lines = read_batch(bob)
    assert start.params[2] == "bob"
    assert [m.params for m in lines] == [("bob", "hi"), ("bob", "there")]
    register_account(chat.port, "erin", "secret-pass")
    send_batch(alice, "erin", "while you", "+ were out", ref="b2")
    alice.expect("301", "alice", "erin")  # RPL_AWAY: kept for their return
    erin = Client(chat.port)
    try:
        erin.send("CAP REQ :" + CAPS + " sasl")
        erin.send("AUTHENTICATE PLAIN")
        erin.expect("AUTHENTICATE", "+")
        erin.send("AUTHENTICATE " + base64.b64encode(b"erin\0erin\0secret-pass").decode())
        erin.expect("903")
        erin.send("NICK erin")
        erin.send("USER erin 0 * :Erin")
        erin.send("CAP END")
        outer = erin.expect("BATCH")
        assert outer.params[1] == "chathistory"
        start, lines = read_batch(erin)
        assert start.tags["batch"] == outer.params[0][1:]  # nested in the history's batch
        assert [m.params[-1] for m in lines] == ["while you", " were out"]
        assert "draft/multiline-concat" in lines[1].tags
        end = erin.expect("BATCH")
        assert end.params == ("-" + outer.params[0][1:],)
    finally:
        erin.close()


def test_to_a_rank_of_a_room_statusmsg(open_client) -> None:
    alice = open_client("alice")  # (first in: the room's operator)
    bob = open_client("bob")
    carol = open_client("carol")
    alice.send("MODE #dev +v bob")
    bob.expect("MODE")
    carol.send("MODE #dev +v carol")  # (not an operator: refused)
    carol.sync()
    send_batch(carol, "+#dev", "to the", "voiced")  # (carol may speak: the room is open)
    start, lines = read_batch(bob)
    assert start.params[2] == "+#dev"
    assert [m.params for m in lines] == [("+#dev", "to the"), ("+#dev", "voiced")]
    start, _ = read_batch(alice)
    assert start.params[2] == "+#dev"


def test_notices_in_a_batch(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    alice.send("BATCH +n draft/multiline #dev")
    alice.send("@batch=n NOTICE #dev :first")
    alice.send("@batch=n NOTICE #dev :second")
    alice.send("BATCH -n")
    _, lines = read_batch(bob)
    assert [(m.command, m.params[-1]) for m in lines] == [("NOTICE", "first"), ("NOTICE", "second")]


def fail_of(client: Client) -> Message:
    fail = client.expect("FAIL")
    assert fail.params[0] == "BATCH"
    return fail


def test_a_line_for_another_target_fails_the_batch(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    alice.send("BATCH +t draft/multiline #dev")
    alice.send("@batch=t PRIVMSG #dev :fine")
    alice.send("@batch=t PRIVMSG #elsewhere :wrong")
    assert fail_of(alice).params[1:4] == ("MULTILINE_INVALID_TARGET", "#dev", "#elsewhere")
    alice.send("@batch=t PRIVMSG #dev :dropped, silently")
    alice.send("BATCH -t")
    assert not [m for m in alice.sync() if m.command in ("FAIL", "BATCH", "PRIVMSG")]
    assert not [m for m in bob.sync() if m.command in ("BATCH", "PRIVMSG")]


def test_a_line_of_another_batch_is_invalid(open_client) -> None:
    alice = open_client("alice")
    alice.send("BATCH +123 draft/multiline #dev")
    alice.send("@batch=231 PRIVMSG #dev :hi")
    assert fail_of(alice).params[1] == "MULTILINE_INVALID"


def test_a_blank_continuation_is_invalid(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    send_batch(alice, "#dev", "hi", "+")
    assert fail_of(alice).params[1] == "MULTILINE_INVALID"
    assert not [m for m in bob.sync() if m.command in ("BATCH", "PRIVMSG")]


def test_a_message_of_blank_lines_only_is_invalid(open_client) -> None:
    alice = open_client("alice")
    send_batch(alice, "#dev", "", "")
    assert fail_of(alice).params[1] == "MULTILINE_INVALID"
    send_batch(alice, "#dev", ref="empty")
    assert fail_of(alice).params[1] == "MULTILINE_INVALID"


def test_privmsg_and_notice_do_not_mix(open_client) -> None:
    alice = open_client("alice")
    alice.send("BATCH +m draft/multiline #dev")
    alice.send("@batch=m PRIVMSG #dev :one")
    alice.send("@batch=m NOTICE #dev :two")
    assert fail_of(alice).params[1] == "MULTILINE_INVALID"


def test_too_many_lines(open_client) -> None:
    alice = open_client("alice")
    alice.send("BATCH +l draft/multiline #dev")
    for _ in range(multiline.MAX_LINES + 1):
        alice.send("@batch=l PRIVMSG #dev :x")
    fail = fail_of(alice)
    assert fail.params[1:3] == ("MULTILINE_MAX_LINES", str(multiline.MAX_LINES))


def test_too_many_bytes(open_client) -> None:
    alice = open_client("alice")
    alice.send("BATCH +y draft/multiline #dev")
    for _ in range(11):
        alice.send("@batch=y PRIVMSG #dev :" + "x" * 400)
    fail = fail_of(alice)
    assert fail.params[1:3] == ("MULTILINE_MAX_BYTES", str(multiline.MAX_BYTES))


def test_exactly_the_limits_pass(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    # 100 lines: 99 line feeds and 3997 bytes of text, 4096 in all.
    texts = ["x" * 40] * 97 + ["y" * 39] * 3
    assert sum(map(len, texts)) + 99 == multiline.MAX_BYTES == 4096
    assert len(texts) == multiline.MAX_LINES
    send_batch(alice, "#dev", *texts)
    _, lines = read_batch(bob)
    assert [m.params[-1] for m in lines] == texts


def test_a_full_batch_does_not_flood_the_sender_off(
    make_server: Callable[..., RunningServer], clients: list[Client]
) -> None:
    # A line a token, the batch (102 lines) would be 24 s behind: past flood_kill, cut off.
    # A batch's line takes a fifth of a token: 22 tokens, a wait of about 4 s.
    chat = make_server(flood_burst=5, flood_rate=4.0, flood_kill=10.0)
    alice, bob = Client(chat.port), Client(chat.port)
    clients += [alice, bob]
    alice.register("alice", CAPS)
    bob.register("bob", CAPS)
    alice.sync()
    send_batch(alice, "#lobby", *(f"line {i}" for i in range(100)))
    _, lines = read_batch(bob, timeout=15.0)
    assert len(lines) == 100


def test_batch_errors(open_client) -> None:
    alice = open_client("alice")
    alice.send("BATCH +x example.com/other #dev")
    assert fail_of(alice).params[1] == "MULTILINE_INVALID"
    alice.send("BATCH -nothing")
    assert fail_of(alice).params[1] == "MULTILINE_INVALID"
    alice.send("@batch=nothing PRIVMSG #dev :hi")
    assert fail_of(alice).params[1] == "MULTILINE_INVALID"
    alice.send("BATCH +a draft/multiline #dev,#ops")
    assert fail_of(alice).params[1] == "MULTILINE_INVALID_TARGET"
    alice.send("BATCH +" + "r" * 65 + " draft/multiline #dev")
    assert fail_of(alice).params[1] == "MULTILINE_INVALID"
    alice.send("BATCH +one draft/multiline #dev")
    alice.send("BATCH +two draft/multiline #dev")
    assert fail_of(alice).params[1] == "MULTILINE_INVALID"
    without = open_client("bob", caps=BASE)
    without.send("BATCH +b draft/multiline #dev")
    assert fail_of(without).params[1] == "MULTILINE_INVALID"


def test_delivery_errors_are_the_usual_numerics(open_client) -> None:
    alice = open_client("alice")
    send_batch(alice, "#nowhere", "hi")
    alice.expect("403", "alice", "#nowhere")
    send_batch(alice, "nobody", "hi", ref="n2")
    alice.expect("401", "alice", "nobody")


def test_an_unterminated_batch_is_dropped_with_its_connection(open_client) -> None:
    alice = open_client("alice")
    bob = open_client("bob")
    alice.send("BATCH +u draft/multiline #dev")
    alice.send("@batch=u PRIVMSG #dev :never sent")
    alice.sync()
    alice.send("QUIT")
    assert alice.closed()
    seen = bob.collect("QUIT")
    assert not [m for m in seen if m.command in ("BATCH", "PRIVMSG")]


def history(client: Client, target: str) -> list[Message]:
    client.send(f"CHATHISTORY LATEST {target} * 50")
    start = client.expect("BATCH")
    assert start.params[1] == "chathistory"
    found = []
    while (msg := client.recv()) is not None:
        if msg.command == "BATCH" and msg.params[0] == "-" + start.params[0][1:]:
            return found
        found.append(msg)
    raise AssertionError("the history's batch did not end")


def test_history_keeps_it_as_one_message_and_replays_both_forms(open_client) -> None:
    alice = open_client("alice", caps=CAPS + " draft/chathistory")
    send_batch(alice, "#dev", "first", "sec", "+ond", "", "last")
    start, _ = read_batch(alice)
    msgid = start.tags["msgid"]
    replayed = history(alice, "#dev")
    outer = replayed[0].tags["batch"]
    assert replayed[0].command == "BATCH" and replayed[0].params[1:] == ("draft/multiline", "#dev")
    assert replayed[0].tags["msgid"] == msgid
    inner = replayed[0].params[0][1:]
    assert [(m.params[-1], m.tags["batch"]) for m in replayed[1:-1]] == [
        ("first", inner),
        ("sec", inner),
        ("ond", inner),
        ("", inner),
        ("last", inner),
    ]
    assert "draft/multiline-concat" in replayed[3].tags
    assert replayed[-1].params == ("-" + inner,) and replayed[-1].tags["batch"] == outer
    # Without the cap (replayed on JOIN): line by line, with the time in the text.
    bob = open_client("bob", caps="", room=None)
    bob.send("JOIN #dev")
    seen = bob.collect("366") + bob.quiet()
    said = [m.params[-1] for m in seen if m.command == "PRIVMSG"]
    assert len(said) == 4
    assert said[0].endswith("first") and said[0].startswith("[")
    assert said[1:] == ["sec", "ond", "last"]
    # With it (replayed on JOIN): the batch, nested.
    carol = open_client("carol", room=None)
    carol.send("JOIN #dev")
    carol.expect("BATCH")
    start, lines = read_batch(carol)
    assert start.tags["msgid"] == msgid
    assert [m.params[-1] for m in lines] == ["first", "sec", "ond", "", "last"]


def test_redacting_it_deletes_it_whole(open_client) -> None:
    caps = CAPS + " draft/chathistory draft/message-redaction"
    alice = open_client("alice", caps=caps)
    send_batch(alice, "#dev", "keep me")
    read_batch(alice)
    send_batch(alice, "#dev", "take", "me back", ref="b2")
    start, _ = read_batch(alice)
    alice.send(f"REDACT #dev {start.tags['msgid']}")
    alice.expect("REDACT")
    texts = [m.params[-1] for m in history(alice, "#dev") if m.command == "PRIVMSG"]
    assert texts == ["keep me"]
    bob = open_client("bob", caps="", room=None)
    bob.send("JOIN #dev")
    seen = bob.collect("366") + bob.quiet()
    said = [m.params[-1] for m in seen if m.command == "PRIVMSG"]
    assert len(said) == 1 and said[0].endswith("keep me")


def test_over_websocket_both_ways(make_server: Callable[..., RunningServer], clients) -> None:
    from tests.server.test_websocket import TEXT, lines, open_ws

    running = make_server(web_port=0)
    tcp = Client(running.port)
    clients.append(tcp)
    tcp.register("tcpuser", CAPS)
    with open_ws(running, TEXT) as ws:
        for line in (
            f"CAP REQ :{CAPS} chatcli.local/autojoin",
            "NICK webuser",
            "USER webuser 0 * :W",
            "CAP END",
        ):
            ws.send(line)
        lines(ws, "366")
        tcp.expect("JOIN")
        ws.send("BATCH +w draft/multiline #lobby")
        ws.send("@batch=w PRIVMSG #lobby :from the")
        ws.send("@batch=w;draft/multiline-concat PRIVMSG #lobby : browser")
        ws.send("BATCH -w")
        start, got = read_batch(tcp)
        assert start.source.startswith("webuser!")
        assert [m.params[-1] for m in got] == ["from the", " browser"]
        send_batch(tcp, "#lobby", "and from", "a terminal")
        seen = lines(ws, "BATCH")  # (its echo first)
        seen += lines(ws, "BATCH")
        seen += lines(ws, "BATCH")
        seen += lines(ws, "BATCH")
        batch = [m for m in seen if m.source and m.source.startswith("tcpuser!")]
        assert [m.command for m in batch] == ["BATCH", "PRIVMSG", "PRIVMSG", "BATCH"]
        assert [m.params[-1] for m in batch[1:3]] == ["and from", "a terminal"]


def test_a_room_without_ctcp_refuses_a_ctcp_on_any_line(open_client) -> None:
    alice = open_client("alice")  # (the room's operator)
    bob = open_client("bob")
    alice.send("MODE #dev +C")
    bob.expect("MODE")
    send_batch(bob, "#dev", "hello", "\x01VERSION\x01")
    assert bob.expect("404", "bob", "#dev").params[-1] == "Cannot send CTCP to channel (+C)"
    assert not [m for m in alice.sync() if m.command in ("BATCH", "PRIVMSG")]


def test_a_label_on_the_closing_batch_nests_the_echo_in_the_labeled_response(
    open_client,
) -> None:
    alice = open_client("alice")
    alice.sync()
    alice.send("BATCH +c draft/multiline #dev")
    alice.send("@batch=c PRIVMSG #dev :one")
    alice.send("@batch=c PRIVMSG #dev :two")
    alice.send("@label=L3 BATCH -c")
    outer = alice.expect("BATCH")
    assert outer.params[1] == "labeled-response" and outer.tags["label"] == "L3"
    ref = outer.params[0][1:]
    start, lines = read_batch(alice)
    assert start.tags["batch"] == ref
    assert [m.params[-1] for m in lines] == ["one", "two"]
    assert alice.expect("BATCH").params == ("-" + ref,)


def test_a_line_of_a_batch_costs_a_fifth_of_a_flood_token() -> None:
    from chatcli.server.flood import BATCHED_COST, cost

    assert BATCHED_COST == 0.2
    assert cost(b"@batch=b1 PRIVMSG #dev :hi") == BATCHED_COST
    assert cost(b"@+x=1;batch=b1;draft/multiline-concat PRIVMSG #dev :hi") == BATCHED_COST
    assert cost(b"@+batch=b1 PRIVMSG #dev :hi") == 1.0  # (a client-only tag of that name)
    assert cost(b"PRIVMSG #dev :batch=b1") == 1.0
    assert cost(b"BATCH +b1 draft/multiline #dev") == 1.0
    assert cost(b"@batch=b1 JOIN #a") == 1.0  # (no other command is cheaper for the tag)
    assert cost(b"@batch=b1 WHO *") == 1.0


def test_a_labeled_batch_that_fails_is_answered_with_its_label(open_client) -> None:
    alice = open_client("alice")
    alice.send("@label=L7 BATCH +b7 draft/multiline #dev")
    alice.send("@batch=b7 PRIVMSG #elsewhere :wrong room")
    fail = alice.expect("FAIL")
    assert fail.params[:2] == ("BATCH", "MULTILINE_INVALID_TARGET")
    assert fail.tags.get("label") == "L7"
    alice.send("BATCH -b7")
    alice.send("@label=L8 BATCH +b8 draft/multiline #dev")
    alice.send("@batch=b8 PRIVMSG #dev :")
    alice.send("BATCH -b8")  # (blank lines only)
    fail = alice.expect("FAIL")
    assert fail.params[:2] == ("BATCH", "MULTILINE_INVALID")
    assert fail.tags.get("label") == "L8"
    alice.send("@label=L9 BATCH +b9 draft/multiline #closed")  # a room it may not speak in
    alice.send("@batch=b9 PRIVMSG #closed :hello")
    alice.send("BATCH -b9")
    refused = alice.expect("403")
    assert refused.tags.get("label") == "L9"
