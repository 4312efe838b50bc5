"""The per-client session, driven as the connection's thread drives it, with no socket,
clock or store: bytes in, lines to run out; a command's output in, bytes for the socket
out (its outbox)."""

from __future__ import annotations

import pytest

from chatcli.protocol import parse_line
from chatcli.server.flood import ExcessFlood, FakeLag
from chatcli.server.session import Session, verb

WARNING = b":srv WARN * HISTORY_NOT_CONFIRMED :not in time\r\n"


def make(
    *, burst: int = 5, rate: float = 10.0, kill: float = 30.0, max_recvq: int = 16_384
) -> tuple[Session, set[int]]:
    """A session and the set of store tickets settled so far (the test settles them)."""
    settled: set[int] = set()
    session = Session(
        FakeLag(burst, rate, now=0.0),
        kill=kill,
        max_recvq=max_recvq,
        settled=lambda ticket: all(t in settled for t in range(1, ticket + 1)),
    )
    return session, settled


def run_all(session: Session, now: float) -> list[bytes]:
    lines = []
    while (line := session.next_line(now)) is not None:
        lines.append(line)
    return lines


# -- bytes in, lines out --------------------------------------------------------------------


def test_lines_come_out_whole_however_the_bytes_were_cut():
    session, _ = make()
    assert session.receive(b"NICK al", now=0.0) == 0
    assert session.receive(b"ice\r\nUSER a 0 * :A\nPI", now=0.0) == 2
    assert run_all(session, 0.0) == [b"NICK alice", b"USER a 0 * :A"]
    assert session.receive(b"NG x\r\n", now=0.0) == 1
    assert run_all(session, 0.0) == [b"PING x"]
    assert session.next_due() is None


def test_past_the_burst_lines_wait_their_turn_and_liveness_never_waits():
    session, _ = make(burst=2, rate=10.0)
    session.receive(b"PRIVMSG #a :1\r\nPRIVMSG #a :2\r\nPRIVMSG #a :3\r\n", now=0.0)
    assert run_all(session, 0.0) == [b"PRIVMSG #a :1", b"PRIVMSG #a :2"]
    assert session.next_due() == pytest.approx(0.1)
    assert run_all(session, 0.1) == [b"PRIVMSG #a :3"]
    # PING, PONG and QUIT take no token (but keep their place in line).
    session.receive(b"PING a\r\nPONG b\r\nQUIT\r\n", now=0.1)
    assert run_all(session, 0.1) == [b"PING a", b"PONG b", b"QUIT"]


def test_a_client_too_far_behind_is_excess_flood():
    session, _ = make(burst=1, rate=10.0, kill=1.0)
    with pytest.raises(ExcessFlood):
        session.receive(b"PRIVMSG #a :x\r\n" * 20, now=0.0)


def test_a_line_past_the_readq_ends_the_client_after_the_lines_before_it():
    session, _ = make(max_recvq=10_000)
    session.receive(b"PING a\r\n" + b"x" * 10_001, now=0.0)
    assert session.closing == "ReadQ exceeded"
    assert not session.finished()  # PING a is still to run
    assert run_all(session, 0.0) == [b"PING a"]
    assert session.finished()


def test_the_end_of_input_ends_the_client_once_what_it_sent_has_run():
    session, _ = make(burst=1, rate=10.0)
    session.receive(b"PRIVMSG #a :1\r\nPRIVMSG #a :2\r\n", now=0.0)
    session.end_of_input()
    assert session.closing == "Connection closed"
    assert run_all(session, 0.0) == [b"PRIVMSG #a :1"] and not session.finished()
    assert run_all(session, 0.1) == [b"PRIVMSG #a :2"] and session.finished()


def test_the_verb_is_read_past_tags_and_a_prefix():
    assert verb(b"@label=1;+x=y :me!u@h privmsg #a :hi") == b"PRIVMSG"
    assert verb(b"   ") == b"" and verb(b"@a=b") == b""


# -- a command's output, out -----------------------------------------------------------------


def run_command(session: Session, raw: bytes, *replies: bytes, labels: bool = True) -> None:
    """What the connection's thread does for one line: begin, the handler's output, end."""
    session.begin(raw, labels=labels)
    for reply in replies:
        session.write(reply)
    session.end("srv")


def test_output_leaves_in_order_and_once():
    session, _ = make()
    run_command(session, b"PING a", b":srv PONG srv :a\r\n")
    run_command(session, b"PING b", b":srv PONG srv :b\r\n")
    assert session.take() == b":srv PONG srv :a\r\n:srv PONG srv :b\r\n"
    assert session.take() == b""


def test_a_labeled_command_answers_in_one_batch_under_its_label():
    session, _ = make()
    run_command(session, b"@label=w1 WHOIS bob", b":srv 311 a bob\r\n", b":srv 318 a bob\r\n")
    lines = session.take().decode().splitlines()
    start, end = parse_line(lines[0].encode()), parse_line(lines[-1].encode())
    assert start.command == "BATCH" and start.tags["label"] == "w1"
    assert start.params[1] == "labeled-response"
    ref = start.params[0][1:]
    assert [parse_line(line.encode()).tags["batch"] for line in lines[1:-1]] == [ref, ref]
    assert end.params == (f"-{ref}",)


def test_a_labeled_command_with_one_line_or_none_gets_it_labeled_or_an_ack():
    session, _ = make()
    run_command(session, b"@label=p PING x", b":srv PONG srv :x\r\n")
    run_command(session, b"@label=q PONG x")
    assert session.take() == b"@label=p :srv PONG srv :x\r\n@label=q :srv ACK\r\n"


def test_a_label_counts_only_for_a_client_that_negotiated_labels():
    session, _ = make()
    run_command(session, b"@label=p PING x", b":srv PONG srv :x\r\n", labels=False)
    assert session.take() == b":srv PONG srv :x\r\n"


# -- held for the store ------------------------------------------------------------------------


def test_what_follows_a_message_waits_until_the_store_settles_it():
    session, settled = make()
    session.confirm_after(1)
    run_command(session, b"PRIVMSG #a :hi", b":me PRIVMSG #a :hi\r\n")  # the echo
    run_command(session, b"PING x", b":srv PONG srv :x\r\n")
    assert session.take() == b""  # nothing confirms a message a crash could lose
    assert session.waiting_for() == 1
    settled.add(1)
    session.release(in_time=True)
    assert session.take() == b":me PRIVMSG #a :hi\r\n:srv PONG srv :x\r\n"
    assert session.waiting_for() == 0 and session.unconfirmed == 0


def test_once_settled_meanwhile_what_was_held_goes_before_what_is_new():
    session, settled = make()
    session.confirm_after(1)
    run_command(session, b"PRIVMSG #a :hi", b"echo\r\n")
    settled.add(1)
    run_command(session, b"PING x", b"pong\r\n")
    assert session.take() == b"echo\r\npong\r\n"
    assert session.waiting_for() == 0


def test_not_settled_in_time_the_client_is_warned_before_what_was_held():
    session, _ = make()
    session.confirm_after(3)
    run_command(session, b"PRIVMSG #a :hi", b"echo\r\n")
    session.release(in_time=False, warning=WARNING)
    assert session.take() == WARNING + b"echo\r\n"


def test_a_labeled_response_is_held_like_any_other_output():
    session, settled = make()
    session.confirm_after(1)
    run_command(session, b"@label=m PRIVMSG #a :hi", b"echo\r\n")
    assert session.take() == b""
    settled.add(1)
    session.release(in_time=True)
    assert session.take() == b"@label=m echo\r\n"


def test_a_command_that_changes_the_client_waits_for_what_came_before_it():
    session, _ = make()
    assert not session.must_settle(b"JOIN #a")  # nothing unsettled
    session.confirm_after(1)
    assert session.must_settle(b"JOIN #a") and session.must_settle(b"@label=x NICK b")
    assert not session.must_settle(b"PRIVMSG #a :more") and not session.must_settle(b"PING x")
    # With nothing held, only `always` waits for the unsettled message.
    assert session.waiting_for() == 0 and session.waiting_for(always=True) == 1
