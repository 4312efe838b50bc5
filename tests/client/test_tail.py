"""`chat tail` against a real server keeping history in a real SQLite file: what it prints,
as JSON and as text, with --last, --since and --follow, and its exit statuses."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from chatcli.cli import main
from chatcli.client.oneshot import send_lines
from chatcli.client.session import ClientSession
from chatcli.client.tail import parse_since
from chatcli.errors import ConfigError, ExitStatus
from tests.conftest import Client, register_account

TEXTS = [f"m{i}" for i in range(15)]
PASSWORD = "s3cret-pass"
TAIL = [sys.executable, "-m", "chatcli", "tail", "--to", "#dev", "--alias", "tailer", "--port"]


@pytest.fixture
def history(make_server, tmp_path):
    """A server with a database and a room, #dev, where alice has said a few things."""
    yield from room_with_history(make_server, tmp_path)


def room_with_history(make_server, tmp_path, **overrides):
    server = make_server(db=str(tmp_path / "chat.db"), flood_rate=0, **overrides)
    alice = Client(server.port)
    alice.register("alice", join=False)
    alice.send("JOIN #dev")
    alice.expect("366")
    for text in TEXTS:
        alice.send(f"PRIVMSG #dev :{text}")
    alice.send("PRIVMSG #dev :\x01ACTION waves\x01")
    alice.send("NOTICE #dev :a notice")
    alice.sync()
    yield server, alice
    alice.close()


def tail(port: int, *args: str, env: dict[str, str] | None = None):
    argv = ["tail", "--port", str(port), "--timeout", "5", *args]
    return CliRunner().invoke(main, argv, catch_exceptions=False, env=env)


def records(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines()]


def test_json_lines_of_the_last_messages(history):
    server, _ = history
    result = tail(server.port, "--to", "#dev", "--json", "--last", "4")
    assert (result.exit_code, result.stderr) == (0, "")
    found = records(result.output)
    assert [(r["kind"], r["text"]) for r in found] == [
        ("message", "m13"),
        ("message", "m14"),
        ("action", "waves"),
        ("notice", "a notice"),
    ]
    assert {(r["from"], r["to"]) for r in found} == {("alice", "#dev")}
    assert len({r["msgid"] for r in found}) == 4 and all(r["msgid"] for r in found)
    for r in found:
        when = datetime.fromisoformat(r["time"].replace("Z", "+00:00"))
        assert when.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - when) < timedelta(minutes=1)


def test_ten_messages_by_default_and_none_with_last_zero(history):
    server, _ = history
    found = records(tail(server.port, "--to", "#dev", "--json").output)
    assert [r["text"] for r in found] == [*TEXTS[-8:], "waves", "a notice"]
    assert tail(server.port, "--to", "#dev", "--json", "--last", "0").output == ""


def test_since_a_time_or_a_span(history):
    server, _ = history
    everything = [*TEXTS, "waves", "a notice"]
    found = records(tail(server.port, "--to", "#dev", "--json", "--since", "1h").output)
    assert [r["text"] for r in found] == everything
    iso = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    found = records(tail(server.port, "--to", "#dev", "--json", "--since", iso).output)
    assert [r["text"] for r in found] == everything
    later = tail(server.port, "--to", "#dev", "--json", "--since", "2100-01-01T00:00:00Z")
    assert (later.exit_code, later.output) == (0, "")


def test_since_pages_through_a_server_that_answers_a_few_at_a_time(make_server, tmp_path):
    """The server's CHATHISTORY= limit (4 here) is read from its ISUPPORT: --since asks again
    after each full page until it has everything."""
    for server, _ in room_with_history(make_server, tmp_path, max_chathistory=4):
        found = records(tail(server.port, "--to", "#dev", "--json", "--since", "1h").output)
        assert [r["text"] for r in found] == [*TEXTS, "waves", "a notice"]


def test_text_output_is_rendered(history):
    server, _ = history
    result = tail(server.port, "--to", "#dev", "--last", "2")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line[6:] for line in lines] == ["#dev * alice waves", "#dev -alice- a notice"]


def test_parse_since():
    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_since("10m", now) == now - timedelta(minutes=10)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("1d", now) == now - timedelta(days=1)
    assert parse_since("2026-01-30T08:00:00Z", now) == datetime(2026, 1, 30, 8, tzinfo=UTC)
    assert parse_since("2026-01-30T08:00", now).tzinfo is not None  # local time
    with pytest.raises(ConfigError, match="--since wants a time"):
        parse_since("yesterday", now)


def follow_json(port: int, meanwhile: Callable[[dict], None]) -> tuple[dict, list[dict]]:
    """``chat tail --json --last 1 --follow --duration 3``: its first record (the history),
    then, once ``meanwhile`` (given that record) has run, the records it printed until it
    ended, which it must do with status 0 and nothing on stderr."""
    proc = subprocess.Popen(
        [*TAIL, str(port), "--json", "--last", "1", "--follow", "--duration", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = records(proc.stdout.readline())[0]  # the history is printed: now follow
        meanwhile(first)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, err) == (0, "")
    return first, records(out)


def test_follow_prints_new_messages_until_the_duration_ends(history):
    server, alice = history

    def say(_: dict) -> None:
        alice.send("PRIVMSG #dev :live one")
        alice.sync()

    first, later = follow_json(server.port, say)
    assert [r["text"] for r in [first, *later]] == ["a notice", "live one"]


def test_following_as_json_says_what_a_message_answers_and_shows_reactions(history):
    server, alice = history

    def answer_and_react(first: dict) -> None:
        alice.send(f"@+draft/reply={first['msgid']} PRIVMSG #dev :noted")
        alice.send(f"@+draft/react=\U0001f44d;+draft/reply={first['msgid']} TAGMSG #dev")
        alice.send("@+typing=active TAGMSG #dev")  # (no reaction: not printed)
        alice.sync()

    first, (answer, reaction) = follow_json(server.port, answer_and_react)
    assert (answer["kind"], answer["text"], answer["reply_to"]) == (
        "message",
        "noted",
        first["msgid"],
    )
    assert (reaction["kind"], reaction["text"], reaction["reply_to"]) == (
        "reaction",
        "\U0001f44d",
        first["msgid"],
    )
    assert first["reply_to"] is None


def test_a_closed_output_ends_it_quietly(history):
    """`chat tail -f | head -1`: once head has gone, the next line ends tail, silently."""
    server, alice = history
    proc = subprocess.Popen(
        [*TAIL, str(server.port), "--last", "1", "--follow", "--duration", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert b"a notice" in proc.stdout.readline()
        proc.stdout.close()
        alice.send("PRIVMSG #dev :nobody reads this")
        alice.sync()
        started = time.monotonic()
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 10  # not the --duration
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


# -- exit statuses ----------------------------------------------------------------------------


def test_an_empty_rooms_history_is_read_and_a_room_never_used_has_none(history):
    """A room nobody is in is gone, but its history is not: chat tail reads it as it reads
    any other room's; a room never used has nothing to print."""
    server, alice = history
    alice.send("PART #dev")
    alice.sync()
    result = tail(server.port, "--to", "#dev", "--json", "--last", "2")
    assert (result.exit_code, result.stderr) == (0, "")
    assert [r["text"] for r in records(result.output)] == ["waves", "a notice"]
    result = tail(server.port, "--to", "#nowhere")
    assert (result.exit_code, result.output, result.stderr) == (0, "", "")


def test_exit_status_for_no_such_room_on_a_server_without_history(make_server):
    server = make_server()
    result = tail(server.port, "--to", "#nowhere", "--follow", "--duration", "1")
    assert result.exit_code == ExitStatus.NO_SUCH_TARGET
    assert result.stderr.endswith("chat: no such room: #nowhere\n")


def test_exit_status_for_an_unreachable_server():
    from tests.test_cli import free_port

    result = tail(free_port(), "--to", "#dev")
    assert result.exit_code == ExitStatus.CONNECT
    assert result.stderr.startswith("chat: cannot connect to 127.0.0.1:")


def test_exit_status_for_a_taken_alias(history):
    server, _ = history
    result = tail(server.port, "--alias", "alice")
    assert result.exit_code == ExitStatus.ALIAS_REJECTED
    assert result.stderr == "chat: alias 'alice' is already in use\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--last", "3", "--since", "1h"], "give --last or --since, not both"),
        (["--since", "soon"], "--since wants a time (2026-01-31T12:00) or a span"),
        (["--to", "a b"], "--to must be a room (#name) or an alias, not 'a b'"),
        (["--to", "alice"], "only accounts keep their conversations"),
    ],
)
def test_usage_errors(history, args, message):
    server, _ = history
    result = tail(server.port, *args)
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr.startswith("chat: " + message)


def test_a_server_without_history_says_so(server):
    result = tail(server.port)
    assert result.exit_code == ExitStatus.ERROR
    assert result.stderr == "chat: this server keeps no history\n"


# -- a conversation, for an account -----------------------------------------------------------


def test_an_account_reads_its_conversation(history):
    server, _ = history
    for nick in ("bob", "carol"):  # each gone once registered: the nick is free again
        register_account(server.port, nick, PASSWORD)
    carol = ClientSession("127.0.0.1", server.port, "carol", account_password=lambda nick: PASSWORD)
    carol.connect()
    try:
        send_lines(carol, "bob", ["hello bob", "are you there?"], 5)
    finally:
        carol.quit()
    env = {"CHAT_ACCOUNT_PASSWORD": PASSWORD}
    result = tail(server.port, "--to", "carol", "--alias", "bob", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    found = records(result.output)
    assert [(r["from"], r["to"], r["text"]) for r in found] == [
        ("carol", "bob", "hello bob"),
        ("carol", "bob", "are you there?"),
    ]


# -- a pipe, a server without history, a server that restarts ---------------------------------


def test_a_long_message_is_one_line_in_a_pipe(history):
    """Into a pipe (or a file), a message is never wrapped at 80 columns, nor coloured."""
    server, alice = history
    long = " ".join(["word"] * 59) + " " + "x" * 5  # 300 characters
    alice.send(f"PRIVMSG #dev :{long}")
    alice.sync()
    done = subprocess.run(
        [*TAIL, str(server.port), "--last", "1"], capture_output=True, text=True, timeout=15
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [done.stdout[:6] + f"#dev <alice> {long}"]
    assert "\x1b" not in done.stdout


@contextlib.contextmanager
def following(port: int, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``chat tail --follow --json`` in a process of its own, killed if still there after."""
    proc = subprocess.Popen(
        [*TAIL, str(port), "--json", "--follow", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """What the tail printed once its --duration has ended (in 15 s at most)."""
    return proc.communicate(timeout=15)


def joined(client: Client, nick: str, room: str = "#dev") -> None:
    """Wait (a bounded time) until ``nick`` is in ``room``. chat tail comes in quietly (no
    JOIN line for the room): ask NAMES until it is there."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        client.send(f"NAMES {room}")
        names = client.collect("366")
        if any(nick in m.params[-1].split() for m in names if m.command == "353"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{nick} did not join {room}")


def test_follow_a_server_without_history(server):
    """No history to print: a note on stderr says so, and new messages are printed."""
    alice = rejoin(server.port)
    try:
        with following(server.port, "--duration", "2") as proc:
            joined(alice, "tailer")
            alice.send("PRIVMSG #dev :live one")
            alice.sync()
            out, err = finish(proc)
    finally:
        alice.close()
    assert proc.returncode == 0
    assert err == "chat: this server keeps no history: earlier messages are not available\n"
    assert [r["text"] for r in records(out)] == ["live one"]


def restart(make_server, old, db: str):
    """Stop the server ``old`` and start another on its port, with the same database."""
    old.stop()
    return make_server(db=db, flood_rate=0, port=old.port)


def rejoin(port: int) -> Client:
    alice = Client(port)
    alice.register("alice", join=False)
    alice.send("JOIN #dev")
    alice.expect("366")
    return alice


def test_follow_comes_back_after_a_restart_and_misses_nothing(make_server, tmp_path):
    """Like tail -F: the server restarts, the tail reconnects and prints what was said
    while it was away, then what is said next, each message once."""
    db = str(tmp_path / "chat.db")
    for server, alice in room_with_history(make_server, tmp_path):
        with following(server.port, "--last", "1", "--duration", "6") as proc:
            assert proc.stdout is not None and proc.stderr is not None
            assert records(proc.stdout.readline())[0]["text"] == "a notice"
            alice.send("PRIVMSG #dev :before")
            alice.sync()
            assert records(proc.stdout.readline())[0]["text"] == "before"
            alice.close()
            again = rejoin(restart(make_server, server, db).port)
            try:
                again.send("PRIVMSG #dev :while away")  # most likely before the tail is back
                again.sync()
                assert "reconnecting" in proc.stderr.readline()
                assert proc.stderr.readline() == "chat: reconnected\n"
                joined(again, "tailer")
                again.send("PRIVMSG #dev :after")
                again.sync()
                out, err = finish(proc)
            finally:
                again.close()
        assert (proc.returncode, err) == (0, "")
        assert [r["text"] for r in records(out)] == ["while away", "after"]


def test_follow_without_history_comes_back_with_new_messages(make_server):
    """Without history, what was said while it was away is lost: it goes on from then."""
    server = make_server()
    alice = rejoin(server.port)
    try:
        with following(server.port, "--duration", "4") as proc:
            assert proc.stdout is not None and proc.stderr is not None
            assert "keeps no history" in proc.stderr.readline()
            joined(alice, "tailer")
            alice.send("PRIVMSG #dev :first")
            alice.sync()
            assert records(proc.stdout.readline())[0]["text"] == "first"
            alice.close()
            server.stop()
            alice = rejoin(make_server(port=server.port).port)
            assert "reconnecting" in proc.stderr.readline()
            assert proc.stderr.readline() == "chat: reconnected\n"
            joined(alice, "tailer")
            alice.send("PRIVMSG #dev :back again")
            alice.sync()
            out, err = finish(proc)
    finally:
        alice.close()
    assert (proc.returncode, err) == (0, "")
    assert [r["text"] for r in records(out)] == ["back again"]


def test_follow_waits_for_a_server_that_is_not_up_yet(make_server, tmp_path):
    """As tail -F waits for a file not there yet: a note, then the messages once it is."""
    from tests.test_cli import free_port

    port = free_port()
    with following(port, "--duration", "6") as proc:
        assert proc.stderr is not None
        assert "waiting for the server" in proc.stderr.readline()
        server = make_server(db=str(tmp_path / "chat.db"), flood_rate=0, port=port)
        alice = rejoin(server.port)
        try:
            joined(alice, "tailer")
            alice.send("PRIVMSG #dev :you made it")
            alice.sync()
            out, _ = finish(proc)
        finally:
            alice.close()
    assert proc.returncode == 0
    assert [r["text"] for r in records(out)] == ["you made it"]
