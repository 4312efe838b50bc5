"""Accounts: REGISTER, SASL PLAIN, PASS login, NickServ, nick enforcement, and the IRCv3
capabilities that show who is logged in. Against the real server and a real SQLite file."""

from __future__ import annotations

import base64
import time

import pytest

from chatcli.server.logins import FREE_FAILURES, login_delay
from tests.conftest import Client
from tests.server.hosts import shown_host

PASSWORD = "correct-horse"


@pytest.fixture
def accounts_server(make_server, tmp_path):
    return make_server(db=str(tmp_path / "chat.db"), nick_grace=0.3, login_backoff=0.3)


def open_client(server, clients, nick=None, caps="", join=True):
    client = Client(server.port)
    clients.append(client)
    if nick is not None:
        client.register(nick, caps, join)
    return client


def make_account(server, clients, nick, password=PASSWORD):
    """Register ``nick`` as an account on a connection of its own, which then quits."""
    client = open_client(server, clients, nick, join=False)
    client.send(f"REGISTER * * :{password}")
    assert client.expect("REGISTER").params[:2] == ("SUCCESS", nick)
    client.send("QUIT")
    assert client.closed()


def plain(account, password):
    return base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode()


def start_sasl(client, nick, caps="sasl"):
    client.send("CAP LS 302")
    client.send(f"CAP REQ :{caps}")
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :Real {nick}")
    client.expect("CAP", None, "ACK")
    client.send("AUTHENTICATE PLAIN")
    assert client.expect("AUTHENTICATE").params == ("+",)


# -- REGISTER -------------------------------------------------------------------------------


def test_register_creates_the_account_and_logs_in(accounts_server, clients):
    """draft/account-registration: "REGISTER SUCCESS <account> <message>" — and the
    client is logged in to it (900)."""
    bob = open_client(accounts_server, clients, "bob", join=False)
    bob.send("REGISTER * * :hunter22")
    logged_in = bob.expect("900")
    assert logged_in.params[1:3] == (f"bob!~bob@{shown_host(accounts_server)}", "bob")
    assert bob.expect("REGISTER").params[:2] == ("SUCCESS", "bob")
    bob.send("WHOIS bob")
    assert bob.expect("330").params[1:3] == ("bob", "bob")


def test_register_before_connect_is_offered_and_works(accounts_server, clients):
    client = open_client(accounts_server, clients)
    client.send("CAP LS 302")
    client.send("NICK early")
    client.send("REGISTER early * :s3cret!")
    client.send("USER early 0 * :Early")
    ls = client.expect("CAP", None, "LS")
    assert "draft/account-registration=before-connect" in ls.params[-1].split()
    assert "sasl=PLAIN" in ls.params[-1].split()
    assert client.expect("REGISTER").params[:2] == ("SUCCESS", "early")
    client.send("CAP END")
    client.expect("001")


@pytest.mark.parametrize(
    "command, code",
    [
        ("REGISTER someoneelse * :longenough", "ACCOUNT_NAME_MUST_BE_NICK"),
        ("REGISTER * * :abc", "WEAK_PASSWORD"),
    ],
)
def test_register_refusals_are_fail_replies(accounts_server, clients, command, code):
    client = open_client(accounts_server, clients, "carol", join=False)
    client.send(command)
    assert client.expect("FAIL").params[:2] == ("REGISTER", code)


def test_registering_a_taken_account_fails(accounts_server, clients):
    make_account(accounts_server, clients, "bob")
    bob = open_client(accounts_server, clients, "bob", join=False)
    bob.send("REGISTER * * :another one")
    assert bob.expect("FAIL").params[:3] == ("REGISTER", "ACCOUNT_EXISTS", "*")


@pytest.mark.single_server("registrations per address are counted per node")
def test_one_address_may_register_only_so_many_accounts(make_server, clients, tmp_path):
    limited = make_server(db=str(tmp_path / "chat.db"), account_limit=2, exempt_loopback=False)
    make_account(limited, clients, "first")
    make_account(limited, clients, "second")
    third = open_client(limited, clients, "third", join=False)
    third.send("REGISTER * * :hunter22")
    fail = third.expect("FAIL")
    assert fail.params[:2] == ("REGISTER", "TEMPORARILY_UNAVAILABLE")
    assert fail.params[-1] == "Too many accounts registered from your address lately"
    third.send("PRIVMSG NickServ :REGISTER hunter22")  # the other way in: the same limit
    assert "Too many accounts" in third.expect("NOTICE").params[-1]


@pytest.mark.single_server("registrations per address are counted per node")
def test_registrations_at_once_from_one_address_are_held_to_the_limit(
    make_server, clients, tmp_path
):
    """Each is counted before the database is asked: none slips in between."""
    limited = make_server(db=str(tmp_path / "chat.db"), account_limit=2, exempt_loopback=False)
    racers = [open_client(limited, clients, f"racer{i}", join=False) for i in range(6)]
    for racer in racers:
        racer.send("REGISTER * * :hunter22")
    outcomes = [racer.collect("REGISTER", "FAIL")[-1].command for racer in racers]
    assert sorted(outcomes) == ["FAIL"] * 4 + ["REGISTER"] * 2


def test_loopback_is_spared_the_account_limit_by_default(make_server, clients, tmp_path):
    local = make_server(db=str(tmp_path / "chat.db"), account_limit=1)
    for nick in ("one", "two", "three"):
        make_account(local, clients, nick)


@pytest.mark.single_server("failed attempts per address are counted per node")
def test_repeatedly_registering_a_taken_name_is_slowed_down(accounts_server, clients):
    """A name taken is a failed attempt, per address and per account, as a wrong password
    is: after a few, each attempt waits first."""
    make_account(accounts_server, clients, "bob")
    took = 0.0
    for attempt in range(FREE_FAILURES + 1):
        bob = open_client(accounts_server, clients, f"bob{attempt}", join=False)
        bob.send("NICK bob")  # (a registered nick may be held until enforcement)
        bob.expect("NICK")
        started = time.monotonic()
        bob.send("REGISTER * * :another one")
        assert bob.expect("FAIL").params[:2] == ("REGISTER", "ACCOUNT_EXISTS")
        took = time.monotonic() - started
        bob.send("QUIT")  # the nick is free for the next attempt
        assert bob.closed()
    assert took >= accounts_server.config.login_backoff


def test_without_a_database_accounts_say_why(make_server, clients):
    server = make_server()
    client = open_client(server, clients, "dana", join=False)
    client.send("REGISTER * * :hunter22")
    fail = client.expect("FAIL")
    assert fail.params[:2] == ("REGISTER", "TEMPORARILY_UNAVAILABLE")
    assert "database" in fail.params[-1]
    client.send("AUTHENTICATE PLAIN")
    assert "database" in client.expect("904").params[-1]


# -- SASL and PASS --------------------------------------------------------------------------


def test_sasl_plain_logs_in_before_registration(accounts_server, clients):
    """SASL 3.1: AUTHENTICATE PLAIN, '+', the base64 payload; then 900 and 903."""
    make_account(accounts_server, clients, "bob")
    bob = open_client(accounts_server, clients)
    start_sasl(bob, "bob")
    bob.send(f"AUTHENTICATE {plain('bob', PASSWORD)}")
    assert bob.expect("900").params[2] == "bob"
    bob.expect("903")
    bob.send("CAP END")
    bob.expect("001")
    notices = [m for m in bob.sync() if m.command == "NOTICE" and "NickServ" in (m.source or "")]
    assert not notices  # the owner is not warned about its own nick


def test_a_client_logging_in_with_sasl_is_not_told_its_nick_is_registered(accounts_server, clients):
    make_account(accounts_server, clients, "bob")
    bob = open_client(accounts_server, clients)
    bob.send("CAP LS 302")
    bob.send("CAP REQ :sasl")
    bob.send("NICK bob")
    bob.send("USER bob 0 * :Bob")
    bob.send("AUTHENTICATE PLAIN")
    said = bob.collect("AUTHENTICATE")
    bob.send(f"AUTHENTICATE {plain('bob', PASSWORD)}")
    said += bob.collect("903")
    bob.send("CAP END")
    said += bob.collect("001") + bob.sync()
    assert not [m for m in said if m.command == "NOTICE" and "NickServ" in (m.source or "")]


def test_a_client_without_sasl_is_told_at_once_how_to_log_in(accounts_server, clients):
    make_account(accounts_server, clients, "bob")
    bob = open_client(accounts_server, clients)
    bob.send("CAP LS 302")
    bob.send("NICK bob")
    bob.send("USER bob 0 * :Bob")
    told = bob.expect("NOTICE")
    assert told.source.startswith("NickServ") and "PASS bob:<password>" in told.params[-1]


def test_sasl_payload_of_exactly_400_bytes_ends_with_plus(accounts_server, clients):
    """SASL 3.1: a payload of exactly 400 bytes is followed by 'AUTHENTICATE +'."""
    password = "p" * (300 - len("\0bob\0bob"))
    make_account(accounts_server, clients, "bob", password)
    encoded = plain("bob", password)
    assert len(encoded) == 400
    bob = open_client(accounts_server, clients)
    start_sasl(bob, "bob")
    bob.send(f"AUTHENTICATE {encoded}")
    assert bob.quiet(0.2) == []
    bob.send("AUTHENTICATE +")
    bob.expect("903")


def test_sasl_wrong_password_is_904_and_repeated_failures_wait(accounts_server, clients):
    make_account(accounts_server, clients, "bob")
    bob = open_client(accounts_server, clients)
    start_sasl(bob, "bob")
    for attempt in range(FREE_FAILURES + 1):
        if attempt:
            bob.send("AUTHENTICATE PLAIN")
            bob.expect("AUTHENTICATE")
        started = time.monotonic()
        bob.send(f"AUTHENTICATE {plain('bob', 'wrong')}")
        assert "invalid" in bob.expect("904").params[-1]
        took = time.monotonic() - started
    assert took >= accounts_server.config.login_backoff  # the last one waited first
    bob.send("AUTHENTICATE PLAIN")
    bob.expect("AUTHENTICATE")
    bob.send(f"AUTHENTICATE {plain('bob', PASSWORD)}")
    bob.expect("903")


def test_login_delay_grows_and_is_bounded():
    delays = [login_delay(failures, 1.0, 5.0) for failures in range(FREE_FAILURES + 5)]
    assert delays[:FREE_FAILURES] == [0.0] * FREE_FAILURES
    assert delays[FREE_FAILURES:] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_sasl_abort_already_and_unknown_mechanism(accounts_server, clients):
    make_account(accounts_server, clients, "bob")
    bob = open_client(accounts_server, clients)
    start_sasl(bob, "bob")
    bob.send("AUTHENTICATE *")
    bob.expect("906")
    bob.send("AUTHENTICATE EXTERNAL")
    assert bob.expect("908").params[1] == "PLAIN"
    bob.expect("904")
    bob.send("AUTHENTICATE PLAIN")
    bob.expect("AUTHENTICATE")
    bob.send(f"AUTHENTICATE {plain('bob', PASSWORD)}")
    bob.expect("903")
    bob.send("AUTHENTICATE PLAIN")
    bob.expect("907")


def test_pass_account_password_logs_in(accounts_server, clients):
    make_account(accounts_server, clients, "bob")
    bob = open_client(accounts_server, clients)
    bob.send(f"PASS :bob:{PASSWORD}")
    bob.register("bob", join=False)
    bob.send("WHOIS bob")
    assert bob.expect("330").params[2] == "bob"


def test_pass_with_a_wrong_password_is_refused(accounts_server, clients):
    make_account(accounts_server, clients, "bob")
    bob = open_client(accounts_server, clients)
    bob.send("PASS bob:wrong")
    bob.send("NICK bob")
    bob.send("USER bob 0 * :Bob")
    bob.expect("464")
    assert bob.closed()


# -- NickServ -------------------------------------------------------------------------------


def nickserv(client, text):
    """NickServ's answer to ``text`` (its warnings about a registered nick skipped)."""
    client.send(f"PRIVMSG NickServ :{text}")
    while True:
        notice = client.expect("NOTICE")
        assert notice.source == "NickServ!NickServ@services"
        if "is a registered account" not in notice.params[-1]:
            return notice.params[-1]


def test_nickserv_register_identify_info_set_password_drop(accounts_server, clients):
    erin = open_client(accounts_server, clients, "erin", join=False)
    assert "registered" in nickserv(erin, "REGISTER first-pass")
    assert nickserv(erin, "INFO").startswith("Account erin, registered ")
    assert nickserv(erin, "SET PASSWORD first-pass second-pass") == "Password changed."
    erin.send("QUIT")
    assert erin.closed()

    erin = open_client(accounts_server, clients, "erin", join=False)
    assert nickserv(erin, "IDENTIFY first-pass") == "Invalid account or password."
    assert nickserv(erin, "IDENTIFY erin second-pass") == "You are now logged in as erin."
    assert "dropped" in nickserv(erin, "DROP second-pass")
    assert nickserv(erin, "INFO erin") == "erin was dropped; the name stays reserved."


def test_nickserv_nick_is_reserved(accounts_server, clients):
    client = open_client(accounts_server, clients, "frank", join=False)
    client.send("NICK nickserv")
    client.expect("432")


# -- nick enforcement -----------------------------------------------------------------------


def test_a_registered_nick_is_taken_from_who_does_not_log_in(accounts_server, clients):
    """Who takes a registered nick is warned, then renamed after the grace period."""
    make_account(accounts_server, clients, "bob")
    squatter = open_client(accounts_server, clients, "bob", join=False)
    warning = squatter.expect("NOTICE", "bob", timeout=2)
    assert "registered" in warning.params[-1]
    renamed = squatter.expect("NICK", timeout=3)
    assert renamed.source.startswith("bob!") and renamed.params[0].startswith("Guest")


def test_logging_in_within_the_grace_period_keeps_the_nick(accounts_server, clients):
    make_account(accounts_server, clients, "bob")
    bob = open_client(accounts_server, clients, "bob", join=False)
    assert nickserv(bob, f"IDENTIFY {PASSWORD}") == "You are now logged in as bob."
    time.sleep(accounts_server.config.nick_grace + 0.2)
    assert not [m for m in bob.sync() if m.command == "NICK"]


def test_the_owner_takes_its_nick_back(accounts_server, clients):
    make_account(accounts_server, clients, "bob")
    squatter = open_client(accounts_server, clients, "bob", join=False)
    owner = open_client(accounts_server, clients)
    start_sasl(owner, "bob2")
    owner.send(f"AUTHENTICATE {plain('bob', PASSWORD)}")
    owner.expect("903")
    owner.send("CAP END")
    owner.expect("001")
    owner.send("NICK bob")
    assert owner.expect("NICK").params == ("bob",)
    assert squatter.expect("NICK").params[0].startswith("Guest")


# -- who is logged in, as others see it -----------------------------------------------------


def test_account_tag_extended_join_and_account_notify(accounts_server, clients):
    make_account(accounts_server, clients, "bob")
    watcher = open_client(
        accounts_server, clients, "watcher", caps="account-tag account-notify extended-join"
    )
    bob = open_client(accounts_server, clients)
    start_sasl(bob, "bob", caps="sasl chatcli.local/autojoin")
    bob.send(f"AUTHENTICATE {plain('bob', PASSWORD)}")
    bob.expect("903")
    bob.send("CAP END")
    bob.expect("366")
    join = watcher.expect("JOIN")
    assert join.params == ("#lobby", "bob", "Real bob")  # extended-join: account, realname
    bob.send("PRIVMSG #lobby :hello")
    said = watcher.expect("PRIVMSG")
    assert said.tags.get("account") == "bob"
    assert nickserv(bob, f"DROP {PASSWORD}") == "Account bob dropped; the name stays reserved."
    assert watcher.expect("ACCOUNT").params == ("*",)

    carol = open_client(accounts_server, clients, "carol")
    assert watcher.expect("JOIN").params[1] == "*"
    carol.send("PRIVMSG #lobby :hi")
    assert "account" not in (watcher.expect("PRIVMSG").tags or {})
    carol.send("REGISTER * * :carols-pass")
    assert watcher.expect("ACCOUNT").params == ("carol",)


def test_whox_shows_the_account(accounts_server, clients):
    make_account(accounts_server, clients, "bob")
    bob = open_client(accounts_server, clients)
    bob.send(f"PASS :bob:{PASSWORD}")
    bob.register("bob", join=False)
    other = open_client(accounts_server, clients, "other", join=False)
    other.send("WHO bob %na")
    assert other.expect("354").params[1:] == ("bob", "bob")
