"""The client and accounts: `chat join` logs in to a registered alias, `/register` makes one."""

from __future__ import annotations

import base64

import pytest
from click.testing import CliRunner

from chatcli.cli import main
from chatcli.client.input import parse_input
from chatcli.client.session import ClientSession, sasl_plain
from chatcli.errors import AliasRejected, ExitStatus, Refused
from chatcli.protocol import Message
from tests.conftest import register_account

PASSWORD = "s3cret-pass"


@pytest.fixture
def accounts_server(make_server, tmp_path):
    server = make_server(db=str(tmp_path / "chat.db"))
    register_account(server.port, "bob", PASSWORD)
    return server


def test_sasl_plain_pieces_follow_the_400_byte_rule():
    short = sasl_plain("bob", "pw")
    assert short == [base64.b64encode(b"bob\0bob\0pw").decode()]
    exact = sasl_plain("bob", "p" * 292)  # 300 bytes: 400 in base64
    assert [len(p) for p in exact] == [400, 1] and exact[-1] == "+"
    longer = sasl_plain("bob", "p" * 400)
    assert [len(p) for p in longer[:-1]] == [400] and 0 < len(longer[-1]) < 400


def test_register_command_sends_register():
    action = parse_input("/register hunter22", "#lobby")
    assert action.messages == (Message("REGISTER", ("*", "*", "hunter22")),)


def test_session_logs_in_when_the_alias_is_registered(accounts_server):
    asked = []
    session = ClientSession(
        "127.0.0.1",
        accounts_server.port,
        "bob",
        account_password=lambda nick: asked.append(nick) or PASSWORD,
    )
    session.connect()
    try:
        assert session.account == "bob" and asked == ["bob"]  # once, for its alias
    finally:
        session.quit()


def test_session_logs_in_to_its_alias_where_the_server_keeps_nicks_strictly(make_server, tmp_path):
    """With nick_reservation = "strict" a registered nick is only had by logging in as one
    connects: chat join does, with SASL, and without the password it is told why."""
    server = make_server(db=str(tmp_path / "chat.db"), nick_reservation="strict")
    register_account(server.port, "bob", PASSWORD)
    session = ClientSession("127.0.0.1", server.port, "bob", account_password=lambda n: PASSWORD)
    session.connect()
    try:
        assert session.nick == "bob" and session.account == "bob"
    finally:
        session.quit()
    without = ClientSession("127.0.0.1", server.port, "bob", account_password=lambda n: None)
    with pytest.raises(AliasRejected, match="'bob' is a registered account: give its password"):
        without.connect()
    without.close()


def test_a_second_device_on_the_same_alias_logs_in_to_the_account_under_another(
    accounts_server,
):
    """Two `chat join --alias bob` with bob's password, on two machines: the second is
    bob_, logged in to bob's account all the same (its read markers are bob's), and its
    password was had without a prompt."""
    first = ClientSession(
        "127.0.0.1", accounts_server.port, "bob", account_password=lambda n: PASSWORD
    )
    first.connect()
    asked: list[tuple[str, bool]] = []

    def quietly(alias: str, sure: bool = True) -> str:
        asked.append((alias, sure))
        return PASSWORD

    second = ClientSession("127.0.0.1", accounts_server.port, "bob", account_password=quietly)
    second.alias_tries = 3
    second.connect()
    try:
        assert (second.nick, second.account) == ("bob_", "bob")
        assert asked == [("bob", False)]
    finally:
        second.quit()
        first.quit()


def test_an_alias_taken_by_someone_else_is_no_login_and_no_error(accounts_server, clients):
    from tests.conftest import Client

    holder = Client(accounts_server.port)  # "carol": no account
    clients.append(holder)
    holder.register("carol", join=False)
    session = ClientSession(
        "127.0.0.1", accounts_server.port, "carol", account_password=lambda n, sure=True: "any"
    )
    session.alias_tries = 3
    session.connect()
    try:
        assert (session.nick, session.account) == ("carol_", None)
    finally:
        session.quit()


def test_session_with_a_wrong_password_is_refused_clearly(accounts_server):
    session = ClientSession(
        "127.0.0.1", accounts_server.port, "bob", account_password=lambda nick: "wrong"
    )
    with pytest.raises(Refused, match="wrong password for 'bob'"):
        session.connect()


def test_session_does_not_ask_for_an_unregistered_alias(accounts_server):
    def never(nick: str) -> str:
        raise AssertionError("asked for a password")

    session = ClientSession("127.0.0.1", accounts_server.port, "carol", account_password=never)
    session.connect()
    try:
        assert session.account is None
    finally:
        session.quit()


def test_chat_join_logs_in_with_the_environment_password(accounts_server):
    runner = CliRunner()
    args = ["join", "--port", str(accounts_server.port), "--alias", "bob"]
    result = runner.invoke(
        main, args, input="/whois bob\n", env={"CHAT_ACCOUNT_PASSWORD": PASSWORD}
    )
    assert result.exit_code == 0, result.output
    assert "logged in as bob" in result.output

    wrong = runner.invoke(main, args, input="", env={"CHAT_ACCOUNT_PASSWORD": "nope"})
    assert wrong.exit_code == ExitStatus.REFUSED
    assert "wrong password for 'bob'" in wrong.stderr


def test_join_logging_in_with_sasl_does_not_show_the_log_in_notice(accounts_server):
    """NickServ's "bob is a registered account: log in with SASL…" is what makes chat join
    log in; once it has, the notice would only be noise."""
    result = CliRunner().invoke(
        main,
        ["join", "--port", str(accounts_server.port), "--alias", "bob"],
        input="",
        env={"CHAT_ACCOUNT_PASSWORD": PASSWORD},
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    assert "You are now logged in as bob" in result.output
    assert "is a registered account" not in result.output
