"""The ``chat`` command line: help, version, and honest exit codes for ``chat send`` and
``chat join``, run through click against a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from chatcli import __version__
from chatcli.cli import main, send
from chatcli.entry import quick_send_params
from chatcli.errors import ExitStatus
from tests.conftest import posix_only


@pytest.fixture
def run():
    def invoke(*args: str, input: str | None = None):
        return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)

    return invoke


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0
    assert result.output == f"chat, version {__version__}\n"


@pytest.mark.parametrize("command", ["serve", "join", "send"])
def test_every_command_has_help(run, command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "--port" in result.output and "--host" in result.output


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "chatcli", "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and "serve" in out.stdout


# -- chat send --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["hello"],
        ["backup", "done"],
        ["--to", "#ops", "--alias", "cron", "backup done"],
        ["-a", "cron", "--port", "6667", "--host", "::1", "hi"],
        ["--to=bob", "--port=0", "--timeout=2.5", "hi"],
        ["--password", "s3cret", "hi", "--alias", "late-option"],
        ["--alias", "first", "--alias", "second", "hi"],
        ["--", "--not-an-option", "-5"],
        ["--alias", "-dash", "hi"],
        ["-", "hi"],
    ],
)
def test_send_quick_path_reads_arguments_as_click_does(args, monkeypatch):
    monkeypatch.setenv("CHAT_PASSWORD", "from-env")
    assert quick_send_params(args) == send.make_context("send", list(args)).params


@pytest.mark.parametrize(
    "env",
    [
        {"CHAT_HOST": "::1", "CHAT_PORT": "6697", "CHAT_ALIAS": "ci"},
        {"CHAT_HOST": "", "CHAT_PORT": "", "CHAT_ALIAS": ""},  # empty: as if unset
        {"CHAT_ALIAS": "ci"},
    ],
)
@pytest.mark.parametrize("args", [["hi"], ["--alias", "cron", "--port", "7000", "hi"]])
def test_the_environment_sets_host_port_and_alias_and_options_win(args, env, monkeypatch):
    """CHAT_HOST, CHAT_PORT and CHAT_ALIAS, for every client command; the quick path of
    chat send reads them as click does."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    params = send.make_context("send", list(args)).params
    assert quick_send_params(args) == params
    if "--port" in args:
        assert (params["port"], params["alias"]) == (7000, "cron")
    elif env.get("CHAT_PORT"):
        assert (params["host"], params["port"], params["alias"]) == ("::1", 6697, "ci")


def test_chat_tls_in_the_environment_turns_tls_on_through_click(monkeypatch):
    monkeypatch.setenv("CHAT_TLS", "1")
    assert quick_send_params(["hi"]) is None  # click reads it (and its checks apply)
    assert send.make_context("send", ["hi"]).params["tls"] is True


def test_chat_send_reaches_the_server_the_environment_names(server, connect):
    watcher = connect("watcher")
    env = {**os.environ, "CHAT_PORT": str(server.port), "CHAT_ALIAS": "envbot"}
    done = subprocess.run(
        [sys.executable, "-m", "chatcli", "send", "from the environment"],
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    said = watcher.expect("PRIVMSG")
    assert said.source.startswith("envbot!") and said.params[-1] == "from the environment"


@pytest.mark.parametrize(
    "args",
    [
        [],  # standard input
        ["  "],  # an empty message: click says so
        ["--help"],
        ["-h"],
        ["--verbose", "hi"],
        ["-5"],
        ["-a=cron", "hi"],
        ["-acron", "hi"],
        ["--port", "http", "hi"],
        ["--port", "70000", "hi"],
        ["--timeout", "0", "hi"],
        ["--port", "", "hi"],
        ["hi", "--alias"],
    ],
)
def test_send_leaves_every_other_form_to_click(args):
    assert quick_send_params(args) is None


def test_send_quick_path_end_to_end(server, connect):
    watcher = connect("watcher")
    chat = [sys.executable, "-m", "chatcli", "send", "--port", str(server.port)]
    done = subprocess.run([*chat, "-a", "cron", "all", "good"], capture_output=True, timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert watcher.expect("PRIVMSG").params == ("#lobby", "all good")
    taken = subprocess.run([*chat, "-a", "watcher", "hi"], capture_output=True, timeout=30)
    assert taken.returncode == ExitStatus.ALIAS_REJECTED
    assert taken.stderr.decode().startswith("chat: ") and taken.stderr.count(b"\n") == 1


def test_send_delivers_and_is_quiet(run, server, connect):
    watcher = connect("watcher")
    result = run("send", "--port", str(server.port), "--alias", "cron", "backup", "done")
    assert (result.exit_code, result.output) == (0, "")
    msg = watcher.expect("PRIVMSG")
    assert msg.source.startswith("cron!") and msg.params == ("#lobby", "backup done")


def test_send_reads_one_message_per_line_of_stdin(run, server, connect):
    watcher = connect("watcher")
    result = run("send", "--port", str(server.port), input="one\n\ntwo\nthree\n")
    assert result.exit_code == 0
    texts = [watcher.expect("PRIVMSG").params[1] for _ in range(3)]
    assert texts == ["one", "two", "three"]


def test_send_direct_message_and_other_room(run, server, connect):
    alice = connect("alice")
    alice.send("JOIN #ops")
    alice.expect("366", "alice", "#ops")
    assert run("send", "--port", str(server.port), "--to", "alice", "hi alice").exit_code == 0
    assert alice.expect("PRIVMSG").params == ("alice", "hi alice")
    assert run("send", "--port", str(server.port), "--to", "#ops", "deploy").exit_code == 0
    assert alice.expect("PRIVMSG", "#ops").params[1] == "deploy"


def test_send_to_an_away_or_offline_person_succeeds_and_says_so(run, make_server, tmp_path):
    from tests.conftest import Client

    running = make_server(db=str(tmp_path / "chat.db"))
    bob = Client(running.port)
    bob.register("bob", join=False)
    bob.send("REGISTER * * :correct-horse")
    bob.expect("REGISTER")
    bob.send("QUIT")
    assert bob.closed()
    bob.close()
    result = CliRunner().invoke(
        main, ["send", "--port", str(running.port), "--to", "bob", "see you"]
    )
    assert result.exit_code == 0
    assert result.stderr == "chat: bob: Offline: your message is kept for their return\n"


def test_send_splits_a_long_message_instead_of_failing(run, server, connect):
    watcher = connect("watcher")
    text = ("word " * 300).strip()
    assert run("send", "--port", str(server.port), text).exit_code == 0
    got = []
    while sum(len(t) + 1 for t in got) < len(text.strip()):
        got.append(watcher.expect("PRIVMSG").params[1])
    assert " ".join(got) == text


def test_send_exit_code_when_server_is_unreachable(run):
    result = run("send", "--port", str(free_port()), "hello")
    assert result.exit_code == ExitStatus.CONNECT
    assert result.stderr.startswith("chat: cannot connect to 127.0.0.1:")


def test_send_exit_code_when_alias_is_taken(run, server, connect):
    connect("cron")
    result = run("send", "--port", str(server.port), "--alias", "cron", "hello")
    assert result.exit_code == ExitStatus.ALIAS_REJECTED
    assert result.stderr == "chat: alias 'cron' is already in use\n"


def test_send_without_alias_picks_a_free_one(run, server, connect):
    watcher = connect("watcher")
    first = run("send", "--port", str(server.port), "one")
    assert first.exit_code == 0
    assert watcher.expect("PRIVMSG").source.split("!")[0].endswith("-send")


def test_send_to_an_empty_room_keeps_the_message_for_who_comes_next(run, make_server, tmp_path):
    """On a server with history, a room nobody is in (a CI job's #ci) takes the message
    into its history; without history the room must exist (below)."""
    from tests.conftest import Client

    running = make_server(db=str(tmp_path / "chat.db"))
    result = run("send", "--port", str(running.port), "--to", "#ci", "build 7 passed")
    assert (result.exit_code, result.stderr) == (0, "")
    dev = Client(running.port)
    try:
        dev.register("dev", join=False)
        dev.send("JOIN #ci")
        dev.expect("366")
        assert dev.expect("PRIVMSG").params[-1].endswith("build 7 passed")  # the replay
    finally:
        dev.close()


def test_send_to_a_room_shows_no_join_or_quit_to_the_people_in_it(run, server, connect):
    alice = connect("alice")
    alice.send("JOIN #ops")
    alice.expect("366", "alice", "#ops")
    assert run("send", "--port", str(server.port), "--to", "#ops", "deploy done").exit_code == 0
    said = alice.expect("PRIVMSG", skip=False)
    assert said.params == ("#ops", "deploy done")
    assert alice.sync() == []


def test_send_exit_code_for_no_such_recipient(run, server):
    result = run("send", "--port", str(server.port), "--to", "ghost", "hello")
    assert result.exit_code == ExitStatus.NO_SUCH_TARGET
    assert result.stderr == "chat: no such recipient: ghost\n"
    result = run("send", "--port", str(server.port), "--to", "#nowhere", "hello")
    assert result.exit_code == ExitStatus.NO_SUCH_TARGET
    assert result.stderr == "chat: no such room: #nowhere\n"


def test_send_exit_code_when_the_server_refuses(run, server, connect):
    alice = connect("alice")
    alice.send("JOIN #quiet")
    alice.send("MODE #quiet +m")
    alice.expect("MODE")
    result = run("send", "--port", str(server.port), "--to", "#quiet", "may I?")
    assert result.exit_code == ExitStatus.REFUSED
    assert "Cannot send to channel" in result.stderr
    assert "message 1: " in result.stderr  # labeled-response names the message


def test_send_exit_code_for_a_wrong_server_password(run, make_server):
    running = make_server(password="s3cret")
    result = run("send", "--port", str(running.port), "--password", "nope", "hi")
    assert result.exit_code == ExitStatus.REFUSED
    assert result.stderr == "chat: the server password is wrong (use --password)\n"
    assert run("send", "--port", str(running.port), "--password", "s3cret", "hi").exit_code == 0


def test_send_to_a_person_leaves_the_room_undisturbed(run, server, connect):
    alice, watcher = connect("alice"), connect("watcher")
    alice.sync()
    watcher.sync()
    assert run("send", "--port", str(server.port), "--to", "alice", "for you").exit_code == 0
    assert alice.expect("PRIVMSG").params == ("alice", "for you")
    assert watcher.sync() == []  # no join, no quit in #lobby


@pytest.mark.parametrize("target", ["a b", "#a b", "", "#"])
def test_send_to_an_impossible_target_is_a_usage_error(run, server, target):
    result = run("send", "--port", str(server.port), "--to", target, "hello")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr == f"chat: --to must be a room (#name) or an alias, not {target!r}\n"


def test_send_usage_errors(run, server):
    assert run("send", "--port", "99999", "x").exit_code == ExitStatus.USAGE
    result = run("send", "--port", str(server.port), input="")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr == "chat: no message: give it as arguments or on standard input\n"
    result = run("send", "--port", str(server.port), "")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr == "chat: no message: the message is empty\n"


# -- chat join without a terminal -------------------------------------------------------------


def test_join_sends_stdin_lines_and_quits_at_end(run, server, connect):
    watcher = connect("watcher")
    result = run(
        "join", "--port", str(server.port), "--alias", "bob", input="hello all\n/msg watcher psst\n"
    )
    assert result.exit_code == 0, result.output
    assert watcher.expect("PRIVMSG").params == ("#lobby", "hello all")
    assert watcher.expect("PRIVMSG").params == ("watcher", "psst")
    quit_ = watcher.expect("QUIT")
    assert quit_.source.startswith("bob!")
    assert "#lobby <bob> hello all" in result.output
    assert "[you → watcher] psst" in result.output


def test_join_takes_another_alias_when_its_own_is_taken_and_says_so(run, server, connect):
    connect("bob")
    result = run("join", "--port", str(server.port), "--alias", "bob", input="")
    assert result.exit_code == 0
    assert "bob is taken: you are bob_" in result.output


def test_join_explains_an_invalid_alias(run, server):
    result = run("join", "--port", str(server.port), "--alias", "9lives", input="")
    assert result.exit_code == ExitStatus.ALIAS_REJECTED
    assert "9lives" in result.stderr


def test_join_explains_an_unreachable_server(run):
    result = run("join", "--port", str(free_port()), "--alias", "bob", input="")
    assert result.exit_code == ExitStatus.CONNECT
    assert "cannot connect" in result.stderr


def test_join_waits_until_it_is_in_the_room_before_sending(run, make_server):
    """A long MOTD arrives in many pieces; the first line of input must still reach the
    room rather than fail with 'you are in no room'."""
    running = make_server(motd=tuple(f"line {i} of the rules" for i in range(3000)))
    from tests.conftest import Client

    watcher = Client(running.port)
    try:
        watcher.register("watcher")
        result = run("join", "--port", str(running.port), "--alias", "p", input="hello\n")
        assert result.exit_code == 0
        assert watcher.expect("PRIVMSG").params == ("#lobby", "hello")
    finally:
        watcher.close()


def test_join_room_option_talks_in_that_room(run, server, connect):
    alice = connect("alice")
    alice.send("JOIN #dev")
    alice.expect("366", "alice", "#dev")
    result = run(
        "join", "--port", str(server.port), "--alias", "bob", "--room", "dev", input="hi dev\n"
    )
    assert result.exit_code == 0
    assert alice.expect("PRIVMSG").params == ("#dev", "hi dev")


def test_join_exit_status_when_a_line_of_input_cannot_be_sent(run, server):
    result = run("join", "--port", str(server.port), "--alias", "bob", input="/frobnicate\n")
    assert result.exit_code == ExitStatus.ERROR
    assert "unknown command /frobnicate" in result.output


# -- chat hash-password, chat serve --oper ------------------------------------------------------


def test_hash_password_prints_a_hash_the_server_accepts(run):
    from chatcli.passwords import verify_password

    result = run("hash-password", input="s3cret\n")
    assert result.exit_code == 0
    assert verify_password("s3cret", result.output.strip())


def test_hash_password_refuses_an_empty_one(run):
    result = run("hash-password", input="\n")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr == "chat: no password given\n"


def test_serve_refuses_an_operator_without_a_hash(run):
    result = run("serve", "--port", "0", "--oper", "admin:plaintext")
    assert result.exit_code == ExitStatus.USAGE
    assert "--oper wants NAME:HASH" in result.stderr


# -- chat tail (more in tests/client/test_tail.py) ----------------------------------------------


def test_tail_has_help(run):
    result = run("tail", "--help")
    assert result.exit_code == 0
    for option in ("--to", "--last", "--since", "--follow", "--json", "--port", "--timeout"):
        assert option in result.output


def test_tail_keeps_its_imports_light():
    code = (
        "import sys, chatcli.client.tail;"
        "print('prompt_toolkit' in sys.modules, 'rich' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["False", "False"]


@posix_only
def test_an_account_password_file_open_to_others_is_used_with_a_warning(tmp_path, capsys):
    from chatcli.cli import account_password

    secret = tmp_path / "password"
    secret.write_text("correct-horse\n")
    secret.chmod(0o600)
    assert account_password(secret)("bob") == "correct-horse"
    assert capsys.readouterr().err == ""
    secret.chmod(0o644)
    assert account_password(secret)("bob") == "correct-horse"
    warning = capsys.readouterr().err
    assert "is open to other users" in warning and f"chmod 600 {secret}" in warning
