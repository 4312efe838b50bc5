"""TLS in the clients: a certificate an authority vouches for is verified; a self-signed one
is trusted on first use (asked on a terminal, refused without one) and pinned in the
known-servers file; a changed one is refused loudly; ``--tls-fingerprint`` pins, and
``--insecure`` checks nothing but says so. Never a fallback to plaintext.

Real servers with real certificates on 127.0.0.1 port 0: trustme's authority (trusted
through SSL_CERT_FILE, as the system's store would be) or ``chat serve``'s self-signed ones.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from chatcli import tls
from chatcli.cli import main
from chatcli.client import trust
from chatcli.client.app import Backoff, ChatView, _reconnect, tls_marker, tls_note
from chatcli.client.session import ClientSession
from chatcli.client.trust import (
    KNOWN_SERVERS_ENV,
    TLSPolicy,
    Verified,
    find_pin,
    remember,
    server_key,
)
from chatcli.entry import quick_send_params
from chatcli.errors import ConfigError, ConnectError, ExitStatus, Untrusted
from chatcli.protocol import Message
from tests.certs import issue, trusting, unverified
from tests.conftest import Client, posix_only

NAMES = ["127.0.0.1", "localhost"]


@pytest.fixture(autouse=True)
def known_servers(tmp_path, monkeypatch) -> Path:
    """Every test's own known-servers file (never the user's), not there yet."""
    path = tmp_path / "data" / "known_servers"
    monkeypatch.setenv(KNOWN_SERVERS_ENV, str(path))
    return path


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusted_ca(ca, tmp_path, monkeypatch) -> trustme.CA:
    """``ca`` as the system's trust store sees it: through SSL_CERT_FILE."""
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    return ca


def ca_server(make_server, ca: trustme.CA, tmp_path: Path, *names: str):
    cert, key = issue(ca, tmp_path, *names)
    return make_server(tls=True, tls_cert=cert, tls_key=key, flood_rate=0)


@pytest.fixture
def self_signed(make_server, tmp_path):
    """A server with a self-signed certificate, as ``chat serve --tls`` makes one."""
    cert, key, _ = tls.ensure_self_signed(tmp_path / "server", NAMES)
    return make_server(tls=True, tls_cert=str(cert), tls_key=str(key), flood_rate=0)


def new_certificate(running) -> str:
    """Give ``running`` a new self-signed certificate; return its fingerprint."""
    cert, key = Path(running.config.tls_cert), Path(running.config.tls_key)
    tls.make_self_signed(cert, key, NAMES)
    running.server.rehash()
    return tls.file_fingerprint(cert)


def session(port: int, policy: TLSPolicy | None, nick: str = "alice", **kw) -> ClientSession:
    return ClientSession("127.0.0.1", port, nick, tls=policy, timeout=5.0, **kw)


def never_ask(server: str, fingerprint: str, why: str) -> bool:
    raise AssertionError(f"asked about {server} {fingerprint}")


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


# -- verified by an authority -----------------------------------------------------------------


def test_a_certificate_from_a_trusted_authority_is_verified(
    make_server, trusted_ca, tmp_path, known_servers
):
    running = ca_server(make_server, trusted_ca, tmp_path, *NAMES)
    alice = session(running.port, TLSPolicy(ask=never_ask))
    alice.connect()
    try:
        assert alice.tls_info is not None
        assert alice.tls_info.verified is Verified.AUTHORITY
        assert alice.tls_info.fingerprint == running.server.tls_fingerprint
        assert alice.tls_info.version in ("TLSv1.2", "TLSv1.3")
    finally:
        alice.quit()
    assert not known_servers.exists()  # nothing to pin: the authority vouches for it


def test_the_host_name_is_checked_too(make_server, trusted_ca, tmp_path):
    """A certificate the authority signed for another name is not trusted as is."""
    running = ca_server(make_server, trusted_ca, tmp_path, "chat.example.org")
    with pytest.raises(Untrusted) as refused:
        session(running.port, TLSPolicy(ask=never_ask)).connect()  # no prompt for this
    assert "(IP address mismatch, certificate is not valid for '127.0.0.1')" in str(refused.value)
    assert "failed verification" in str(refused.value)


def test_chat_send_over_verified_tls_delivers(make_server, trusted_ca, tmp_path):
    running = ca_server(make_server, trusted_ca, tmp_path, *NAMES)
    watcher = Client(running.port, tls=trusting(trusted_ca))
    try:
        watcher.register("watcher")
        result = run("send", "--tls", "--port", str(running.port), "-a", "cron", "over tls")
        assert (result.exit_code, result.stderr) == (0, "")
        assert watcher.expect("PRIVMSG").params == ("#lobby", "over tls")
    finally:
        watcher.close()


# -- trust on first use -----------------------------------------------------------------------


def test_first_use_shows_the_fingerprint_and_a_yes_pins_it(self_signed, known_servers):
    asked: list[tuple[str, str]] = []
    alice = session(self_signed.port, TLSPolicy(ask=lambda *q: asked.append(q) or True))
    alice.connect()
    try:
        fingerprint = self_signed.server.tls_fingerprint
        assert asked == [(f"127.0.0.1:{self_signed.port}", fingerprint, "self-signed certificate")]
        assert alice.tls_info is not None and alice.tls_info.verified is Verified.PINNED
        assert known_servers.read_text() == f"127.0.0.1:{self_signed.port} {fingerprint}\n"
    finally:
        alice.quit()


def test_a_pinned_server_is_trusted_again_without_asking(self_signed, known_servers):
    first = session(self_signed.port, TLSPolicy(ask=lambda *q: True))
    first.connect()
    first.quit()
    again = session(self_signed.port, TLSPolicy(ask=never_ask), nick="alice2")
    again.connect()
    try:
        assert again.tls_info is not None
        assert again.tls_info.fingerprint == self_signed.server.tls_fingerprint
        assert len(known_servers.read_text().splitlines()) == 1
    finally:
        again.quit()


def test_a_no_leaves_nothing_pinned_and_connects_not(self_signed, known_servers):
    with pytest.raises(Untrusted) as refused:
        session(self_signed.port, TLSPolicy(ask=lambda *q: False)).connect()
    assert refused.value.exit_status == ExitStatus.CONNECT
    assert self_signed.server.tls_fingerprint in str(refused.value)
    assert not known_servers.exists()


def test_without_a_terminal_an_unknown_certificate_is_refused_with_how_to_pin_it(
    self_signed, known_servers
):
    watcher = Client(self_signed.port, tls=unverified())
    try:
        watcher.register("watcher")
        port, fingerprint = str(self_signed.port), self_signed.server.tls_fingerprint
        result = run("send", "--tls", "--port", port, "-a", "cron", "should not arrive")
        assert result.exit_code == ExitStatus.CONNECT
        assert result.stderr.startswith(
            f"chat: the TLS certificate of 127.0.0.1:{port} is not trusted (self-signed "
            f"certificate): refusing to connect.\n"
        )
        assert f"\n  {fingerprint}\n" in result.stderr
        assert f"--tls-fingerprint {fingerprint}" in result.stderr
        assert f"`chat join --tls --port {port}` on a terminal" in result.stderr
        assert f"127.0.0.1:{port} {fingerprint}" in result.stderr  # the line to add
        assert watcher.quiet() == []  # no one came in: nothing was sent
        tailed = run("tail", "--tls", "--port", port, "--timeout", "5")
        assert tailed.exit_code == ExitStatus.CONNECT
        assert f"--tls-fingerprint {fingerprint}" in tailed.stderr
    finally:
        watcher.close()
    assert not known_servers.exists()


def test_chat_join_without_a_terminal_does_not_ask_either(self_signed):
    result = run("join", "--tls", "--port", str(self_signed.port), "-a", "bob", input="hi\n")
    assert result.exit_code == ExitStatus.CONNECT
    assert "is not trusted (self-signed certificate)" in result.stderr


# -- a changed certificate --------------------------------------------------------------------


def test_a_changed_certificate_is_refused_loudly(self_signed, known_servers):
    first = session(self_signed.port, TLSPolicy(ask=lambda *q: True))
    first.connect()
    first.quit()
    pinned = self_signed.server.tls_fingerprint
    now = new_certificate(self_signed)
    result = run("send", "--tls", "--port", str(self_signed.port), "-a", "cron", "hi")
    assert result.exit_code == ExitStatus.CONNECT
    line = f"127.0.0.1:{self_signed.port} {pinned}"
    assert result.stderr == (
        f"chat: the TLS certificate of 127.0.0.1:{self_signed.port} HAS CHANGED: refusing to "
        "connect.\n"
        f"{'@' * 63}\n"
        "@    WARNING: THE SERVER'S IDENTIFICATION HAS CHANGED!          @\n"
        f"{'@' * 63}\n"
        "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n"
        "Someone could be eavesdropping on you right now (a man-in-the-middle attack),\n"
        "or the server's certificate was replaced.\n"
        f"  pinned:   {pinned}\n"
        f"  received: {now}\n"
        f"The pin is line 1 of {known_servers}:\n"
        f"  {line}\n"
        "If the change is expected (ask the server's operator), remove that line and connect "
        "again.\n"
    )
    assert known_servers.read_text() == line + "\n"  # kept: only the user removes it


def test_reconnecting_to_a_changed_certificate_refuses_and_does_not_ask(self_signed):
    asked: list[tuple[str, str]] = []
    alice = session(self_signed.port, TLSPolicy(ask=lambda *q: asked.append(q) or True))
    alice.connect()
    try:
        new_certificate(self_signed)
        alice.close()
        with pytest.raises(Untrusted, match="HAS CHANGED"):
            alice.reconnect()
        assert len(asked) == 1  # at the first connection only
    finally:
        alice.close()


def test_chat_join_stops_reconnecting_when_the_certificate_changes(self_signed):
    """The reader thread gets Untrusted at its reconnect: it says so and gives up."""
    alice = session(self_signed.port, TLSPolicy(ask=lambda *q: True))
    alice.connect()
    try:
        new_certificate(self_signed)
        alice.close()
        view = ChatView(alice, None)
        view.backoff = Backoff(first=0.01, attempts=3)
        shown = []
        assert _reconnect(alice, view, lambda text: shown.append(str(text))) is False
        assert "HAS CHANGED" in shown[-1] and len(shown) == 2  # one wait, then the refusal
    finally:
        alice.close()


# -- pinned on the command line, or not checked -----------------------------------------------


def test_tls_fingerprint_pins_explicitly(self_signed, known_servers):
    watcher = Client(self_signed.port, tls=unverified())
    try:
        watcher.register("watcher")
        typed = self_signed.server.tls_fingerprint.replace(":", "").lower()  # as typed
        port = str(self_signed.port)
        result = run("send", "--tls-fingerprint", typed, "--port", port, "-a", "cron", "pinned")
        assert (result.exit_code, result.stderr) == (0, "")
        assert watcher.expect("PRIVMSG").params == ("#lobby", "pinned")
    finally:
        watcher.close()
    assert not known_servers.exists()


def test_a_wrong_tls_fingerprint_refuses(self_signed):
    wrong = "AB:" * 31 + "AB"
    result = run("send", "--tls-fingerprint", wrong, "--port", str(self_signed.port), "hi")
    assert result.exit_code == ExitStatus.CONNECT
    assert result.stderr == (
        f"chat: the TLS certificate of 127.0.0.1:{self_signed.port} is not the one given "
        f"with --tls-fingerprint: refusing to connect.\n"
        f"  expected: {wrong}\n"
        f"  received: {self_signed.server.tls_fingerprint}\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-fingerprint", "12:34"], "not a SHA-256 fingerprint"),
        (["--tls-fingerprint", "AB" * 32, "--insecure"], "not both"),
    ],
)
def test_tls_option_usage_errors(args, message):
    result = run("send", *args, "--port", "1", "hi")
    assert result.exit_code == ExitStatus.USAGE
    assert message in result.stderr


def test_insecure_connects_without_checking_and_warns(self_signed, known_servers):
    watcher = Client(self_signed.port, tls=unverified())
    try:
        watcher.register("watcher")
        port = str(self_signed.port)
        result = run("send", "--insecure", "--port", port, "-a", "cron", "unchecked")
        assert result.exit_code == 0
        assert result.stderr == (
            "chat: warning: --insecure: the server's certificate is not checked; anyone "
            "between you and the server could read and change what is said\n"
        )
        assert watcher.expect("PRIVMSG").params == ("#lobby", "unchecked")
    finally:
        watcher.close()
    assert not known_servers.exists()


# -- what chat join shows ---------------------------------------------------------------------


def test_the_client_shows_how_its_connection_is_secured(self_signed):
    pinned = session(self_signed.port, TLSPolicy(fingerprint=self_signed.server.tls_fingerprint))
    unchecked = session(self_signed.port, TLSPolicy(insecure=True), nick="bob")
    pinned.connect()
    unchecked.connect()
    try:
        assert tls_marker(pinned) == "[TLS] "
        assert tls_marker(unchecked) == "[TLS unverified] "
        assert tls_marker(ClientSession("127.0.0.1", 1, "x")) == ""
        assert str(tls_note(pinned)).endswith(
            f"secure connection: {pinned.tls_info.version}, certificate pinned "
            f"(SHA-256 {self_signed.server.tls_fingerprint})"
        )
        assert "WITHOUT checking the certificate" in str(tls_note(unchecked))
    finally:
        pinned.quit()
        unchecked.quit()


def test_chat_join_says_the_connection_is_tls(self_signed):
    fingerprint = self_signed.server.tls_fingerprint
    port = str(self_signed.port)
    result = run(
        "join", "--tls-fingerprint", fingerprint, "--port", port, "-a", "bob", input="hi\n"
    )
    assert result.exit_code == 0, result.stderr
    assert "secure connection: TLSv1" in result.output
    shown = "".join(result.output.split())  # as the console folded it
    assert f"certificatepinned(SHA-256{fingerprint})" in shown


# -- the wrong kind of port -------------------------------------------------------------------


def test_a_plaintext_client_on_a_tls_port_fails_quickly_with_a_hint(self_signed):
    started = time.monotonic()
    with pytest.raises(ConnectError) as failed:
        session(self_signed.port, None).connect()
    assert time.monotonic() - started < 4.0
    assert str(failed.value) == (
        "the server closed the connection during registration (if it speaks TLS there, use --tls)"
    )


def test_a_full_server_says_so_over_tls(make_server, tmp_path):
    cert, key, _ = tls.ensure_self_signed(tmp_path / "server", NAMES)
    full = make_server(tls=True, tls_cert=str(cert), tls_key=str(key), max_clients=1)
    holder = Client(full.port, tls=unverified())
    try:
        holder.register("holder")
        pin = full.server.tls_fingerprint
        result = run("send", "--port", str(full.port), "--tls-fingerprint", pin, "-a", "x", "hi")
        assert result.exit_code == ExitStatus.CONNECT
        assert "Closing link: 127.0.0.1 (Server full)" in result.output
    finally:
        holder.close()


def test_a_tls_client_on_a_plaintext_port_fails_cleanly(server, known_servers):
    started = time.monotonic()
    alice = ClientSession("127.0.0.1", server.port, "alice", tls=TLSPolicy(), timeout=1.0)
    with pytest.raises(ConnectError) as failed:
        alice.connect()
    assert not isinstance(failed.value, Untrusted)
    assert "answered in plaintext, not TLS" in str(failed.value)
    assert time.monotonic() - started < 4.0
    assert not known_servers.exists()


# -- two threads on one TLS connection --------------------------------------------------------


def test_a_reader_thread_and_a_sender_share_the_tls_connection(self_signed):
    """``chat join`` reads on one thread and sends on another; OpenSSL allows one at a
    time: every message sent comes back (echo-message), in order, and closing from the
    sending thread ends the reader's wait."""
    alice = session(self_signed.port, TLSPolicy(fingerprint=self_signed.server.tls_fingerprint))
    alice.connect()
    echoes: list[str] = []

    def read() -> None:
        while (msg := alice.recv()) is not None:
            if msg.command == "PRIVMSG":
                echoes.append(msg.params[1])

    reader = threading.Thread(target=read, name="test-reader")
    reader.start()
    try:
        count = 300
        for i in range(count):
            alice.send(Message("PRIVMSG", ("#lobby", f"{i} {'x' * 200}")))
        deadline = time.monotonic() + 10
        while len(echoes) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [e.split()[0] for e in echoes] == [str(i) for i in range(count)]
    finally:
        alice.close()
        reader.join(5)
    assert not reader.is_alive()


# -- the known-servers file -------------------------------------------------------------------


def test_server_keys_are_host_and_port_with_ipv6_in_brackets():
    assert server_key("127.0.0.1", 6697) == "127.0.0.1:6697"
    assert server_key("Chat.Example.org", 6697) == "chat.example.org:6697"
    assert server_key("::1", 6697) == "[::1]:6697"
    assert server_key("[::1]", 6697) == "[::1]:6697"


def test_pins_are_found_by_server_with_comments_and_any_spelling(tmp_path):
    fingerprint = "AB:" * 31 + "CD"
    path = tmp_path / "known_servers"
    path.write_text(
        "# chatcli known servers\n"
        "\n"
        f"other:1 {'00' * 32}\n"
        f"[::1]:6697 {fingerprint.replace(':', '').lower()}  # the test box\n"
    )
    pin = find_pin(path, "[::1]:6697")
    assert pin is not None and (pin.fingerprint, pin.line) == (fingerprint, 4)
    assert find_pin(path, "[::1]:6698") is None
    assert find_pin(tmp_path / "missing", "[::1]:6697") is None


def test_a_broken_pin_for_the_server_is_a_config_error(tmp_path):
    path = tmp_path / "known_servers"
    path.write_text("host:1 not-a-fingerprint\n")
    with pytest.raises(ConfigError, match="line 1"):
        find_pin(path, "host:1")


def test_remember_makes_the_file_and_appends_one_line(tmp_path):
    path = tmp_path / "new" / "dir" / "known_servers"
    first = remember(path, "[::1]:6697", "AB:" * 31 + "CD")
    path.write_text(path.read_text() + "# no newline at the end")
    second = remember(path, "host:1", "00:" * 31 + "00")
    assert (first.line, second.line) == (1, 3)
    assert path.read_text().splitlines() == [
        "[::1]:6697 " + "AB:" * 31 + "CD",
        "# no newline at the end",
        "host:1 " + "00:" * 31 + "00",
    ]


# -- private files ----------------------------------------------------------------------------


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@posix_only
def test_a_pin_on_first_use_is_kept_in_a_private_file(self_signed, known_servers, usual_umask):
    """Whoever may change the file may slip their own certificate in."""
    alice = session(self_signed.port, TLSPolicy(ask=lambda *q: True))
    alice.connect()
    alice.quit()
    assert known_servers.read_text().count("\n") == 1
    assert (mode(known_servers), mode(known_servers.parent)) == (0o600, 0o700)


@posix_only
def test_a_known_servers_file_others_may_read_is_used_with_one_warning(
    tmp_path, capsys, usual_umask
):
    path = tmp_path / "known_servers"
    path.write_text(f"host:1 {'AB:' * 31}CD\n")
    path.chmod(0o644)
    assert find_pin(path, "host:1") is not None
    assert find_pin(path, "host:1") is not None
    remember(path, "host:2", "00:" * 31 + "00")
    assert capsys.readouterr().err == (
        f"chat: warning: {path} (the certificates you trust) is open to other users: make it "
        f"private with chmod 600 {path}\n"
    )
    assert mode(path) == 0o644  # told, not changed: the fix is its owner's
    assert find_pin(path, "host:2") is not None


@posix_only
def test_chatclis_data_directory_is_narrowed_and_one_the_user_chose_is_not(
    tmp_path, monkeypatch, usual_umask
):
    ours, chosen = tmp_path / "chatcli", tmp_path / "chosen"
    for directory in (ours, chosen):
        directory.mkdir()
        directory.chmod(0o755)
    monkeypatch.setattr(trust, "data_dir", lambda: ours)
    for directory in (ours, chosen):
        remember(directory / "known_servers", "host:1", "00:" * 31 + "00")
        assert mode(directory / "known_servers") == 0o600
    assert (mode(ours), mode(chosen)) == (0o700, 0o755)


@posix_only
def test_the_self_signed_key_is_kept_in_a_private_directory(tmp_path, usual_umask):
    data = tmp_path / "data"
    cert, key, made = tls.ensure_self_signed(data / "tls", NAMES)
    assert made and (mode(key), mode(cert)) == (0o600, 0o600)
    assert (mode(data / "tls"), mode(data)) == (0o700, 0o700)
    (data / "tls").chmod(0o755)  # as an older chatcli left it: chatcli's own, so narrowed
    assert tls.ensure_self_signed(data / "tls", NAMES) == (cert, key, False)
    assert mode(data / "tls") == 0o700


# -- the command, end to end ------------------------------------------------------------------


def test_chat_send_with_a_fingerprint_end_to_end(self_signed):
    watcher = Client(self_signed.port, tls=unverified())
    try:
        watcher.register("watcher")
        chat = [sys.executable, "-m", "chatcli", "send", "--port", str(self_signed.port)]
        good = [*chat, "--tls", "--tls-fingerprint", self_signed.server.tls_fingerprint]
        done = subprocess.run([*good, "-a", "cron", "over tls"], capture_output=True, timeout=30)
        assert (done.returncode, done.stderr) == (0, b"")
        assert watcher.expect("PRIVMSG").params == ("#lobby", "over tls")
        bad = [*chat, "--tls-fingerprint", "00" * 32, "-a", "cron", "no"]
        refused = subprocess.run(bad, capture_output=True, timeout=30)
        assert refused.returncode == ExitStatus.CONNECT
        assert b"is not the one given with --tls-fingerprint" in refused.stderr
    finally:
        watcher.close()


@pytest.mark.parametrize(
    "args",
    [["--tls", "hi"], ["--tls-fingerprint", "AB" * 32, "hi"], ["--insecure", "hi"]],
)
def test_chat_sends_quick_path_leaves_the_tls_options_to_click(args):
    """click checks the fingerprint and prints the --insecure warning."""
    assert quick_send_params(args) is None


def test_plaintext_chat_send_loads_nothing_of_tls():
    code = (
        "import sys, chatcli.entry, chatcli.client.oneshot;"
        "print('ssl' in sys.modules, 'dataclasses' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["False", "False"]
