"""TLS on the server: a TLS listener alone or beside plaintext, +Z and WHOIS 671, bulk
traffic through a full socket, certificates reloaded while running, bad clients, and
``chat serve --tls`` making its own certificate."""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from chatcli import tls
from chatcli.cli import main
from chatcli.errors import ConfigError
from chatcli.server import Server, refusals
from chatcli.server.tls_socket import RECORD_BYTES, TLSSocket
from tests import certs
from tests.certs import issue, unverified
from tests.conftest import TEST_CONFIG, Client
from tests.serve import ChatServe


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def certificate(ca, tmp_path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 issued by ``ca``: (chain file, key file)."""
    return issue(ca, tmp_path, "127.0.0.1", "localhost")


@pytest.fixture
def trusting(ca) -> ssl.SSLContext:
    return certs.trusting(ca)


def peer_fingerprint(client: Client) -> str:
    assert isinstance(client.sock, ssl.SSLSocket)
    der = client.sock.getpeercert(binary_form=True)
    assert der is not None
    return tls.fingerprint(der)


def test_a_tls_listener_speaks_irc_over_verified_tls(make_server, certificate, trusting):
    running = make_server(tls=True, tls_cert=certificate[0], tls_key=certificate[1])
    alice = Client(running.port, tls=trusting)
    try:
        burst = alice.register("alice")
        assert any(m.command == "001" for m in burst)
        assert alice.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert peer_fingerprint(alice) == running.server.tls_fingerprint
    finally:
        alice.close()


def test_tls_users_get_plus_z_and_others_see_it_in_whois(make_server, certificate, trusting):
    running = make_server(tls_port=0, tls_cert=certificate[0], tls_key=certificate[1])
    assert running.server.tls_address is not None
    tls_port = running.server.tls_address[1]
    assert tls_port != running.port
    secure, plain = Client(tls_port, tls=trusting), Client(running.port)
    try:
        burst = secure.register("secure", join=False)
        assert any(m.command == "MODE" and m.params == ("secure", "+Z") for m in burst) or (
            secure.expect("MODE").params == ("secure", "+Z")
        )
        plain.register("plain", join=False)
        plain.send("WHOIS secure")
        replies = plain.collect("318")
        assert [m.params[1:] for m in replies if m.command == "671"] == [
            ("secure", "is using a secure connection")
        ]
        secure.send("WHOIS plain")
        assert not [m for m in secure.collect("318") if m.command == "671"]
        secure.send("MODE secure -Z")  # a fact of the connection, not the user's to change
        secure.send("MODE secure")
        assert secure.expect("221").params[1] == "+Z"
        secure.send("PRIVMSG plain :over TLS")
        assert plain.expect("PRIVMSG").params == ("plain", "over TLS")
    finally:
        secure.close()
        plain.close()


def test_bulk_traffic_through_a_full_tls_socket_arrives_whole_and_in_order(
    make_server, certificate, trusting
):
    """A TLS reader that stops reading fills its socket; the flusher must retry TLS writes
    with the same bytes until it drains (OpenSSL's rule), losing and reordering nothing."""
    running = make_server(tls_port=0, tls_cert=certificate[0], tls_key=certificate[1], flood_rate=0)
    assert running.server.tls_address is not None
    reader = Client(running.server.tls_address[1], tls=trusting)
    writer = Client(running.port)
    try:
        reader.register("reader", join=False)
        writer.register("writer", join=False)
        count, filler = 2000, "x" * 300  # about 700 KB: many times the socket buffers
        for i in range(count):
            writer.send(f"PRIVMSG reader :{i} {filler}")
        writer.sync()
        time.sleep(0.2)  # the reader has read nothing meanwhile
        got = [reader.expect("PRIVMSG").params[1].split()[0] for _ in range(count)]
        assert got == [str(i) for i in range(count)]
    finally:
        reader.close()
        writer.close()


def test_a_plaintext_client_on_the_tls_port_is_dropped_and_others_go_on(
    make_server, certificate, trusting
):
    running = make_server(tls_port=0, tls_cert=certificate[0], tls_key=certificate[1])
    assert running.server.tls_address is not None
    tls_port = running.server.tls_address[1]
    confused, fine = Client(tls_port), Client(tls_port, tls=trusting)
    try:
        confused.send("NICK confused")
        confused.send("USER confused 0 * :x")
        assert confused.closed()
        fine.register("fine", join=False)
        fine.sync()
    finally:
        confused.close()
        fine.close()


def test_garbage_instead_of_a_handshake_is_dropped(make_server, certificate):
    running = make_server(tls=True, tls_cert=certificate[0], tls_key=certificate[1])
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05garbage" + bytes(range(256)) * 4)
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):  # the end, in order or not
            while sock.recv(4096):  # (an alert, maybe)
                pass
    deadline = time.monotonic() + 5
    while running.server.thread_count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.server.thread_count == 0


def test_a_client_that_never_shakes_hands_is_dropped_at_the_registration_timeout(
    make_server, certificate
):
    running = make_server(
        tls=True, tls_cert=certificate[0], tls_key=certificate[1], registration_timeout=0.3
    )
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        start = time.monotonic()
        while sock.recv(4096):  # (an alert, maybe, then the end)
            pass
        assert time.monotonic() - start < 3


def test_reloaded_certificates_serve_new_connections(make_server, ca, certificate, trusting):
    running = make_server(tls=True, tls_cert=certificate[0], tls_key=certificate[1])
    before = Client(running.port, tls=trusting)
    try:
        before.register("before", join=False)
        old = peer_fingerprint(before)
        renewed = ca.issue_cert("127.0.0.1")
        renewed.private_key_pem.write_to_path(certificate[1])
        Path(certificate[0]).write_bytes(b"".join(b.bytes() for b in renewed.cert_chain_pems))
        running.server.rehash()
        after = Client(running.port, tls=trusting)
        try:
            after.register("after", join=False)
            assert peer_fingerprint(after) == running.server.tls_fingerprint != old
            after.send("PRIVMSG before :still here?")
            assert before.expect("PRIVMSG").params[1] == "still here?"
        finally:
            after.close()
    finally:
        before.close()


def test_a_broken_certificate_on_reload_keeps_the_old_one(make_server, certificate, trusting):
    running = make_server(tls=True, tls_cert=certificate[0], tls_key=certificate[1])
    served = running.server.tls_fingerprint
    Path(certificate[0]).write_text("not a certificate")
    with pytest.raises(ConfigError):
        running.server.rehash()
    client = Client(running.port, tls=trusting)
    try:
        client.register("client", join=False)
        assert peer_fingerprint(client) == served
    finally:
        client.close()


def test_tls_without_a_certificate_or_with_a_bad_one_stops_start_up(tmp_path):
    from dataclasses import replace

    with pytest.raises(ConfigError, match="tls_cert"):
        Server(replace(TEST_CONFIG, tls=True))
    bad = tmp_path / "bad.pem"
    bad.write_text("nonsense")
    with pytest.raises(ConfigError, match=r"bad\.pem"):
        Server(replace(TEST_CONFIG, tls=True, tls_cert=str(bad), tls_key=str(bad)))
    with pytest.raises(ConfigError, match=r"missing\.pem: No such file"):
        Server(replace(TEST_CONFIG, tls_port=0, tls_cert=str(tmp_path / "missing.pem")))


def test_fingerprints_are_read_in_any_usual_form():
    plain = "ab" * 32
    expected = ":".join(["AB"] * 32)
    for form in (plain, plain.upper(), expected, "SHA256:" + expected, f" {expected.lower()} "):
        assert tls.normalise_fingerprint(form) == expected
    with pytest.raises(ConfigError):
        tls.normalise_fingerprint("ab" * 31)


@pytest.mark.skipif(sys.platform == "win32", reason="XDG_DATA_HOME and SIGHUP")
def test_chat_serve_tls_makes_a_certificate_once_and_prints_its_fingerprint(tmp_path):
    data = {"XDG_DATA_HOME": str(tmp_path / "data")}
    with ChatServe("--no-db", "--tls", env=data) as serving:
        first, made, shown = serving.banner[:3]
        assert first.endswith("--tls")
        assert made.startswith("made a self-signed TLS certificate: ")
        cert = Path(made.split(": ", 1)[1])
        printed = shown.removeprefix("TLS certificate SHA-256 fingerprint: ")
        assert printed == tls.file_fingerprint(cert)
        assert (cert.parent / "key.pem").stat().st_mode & 0o777 == 0o600
        client = Client(serving.port, tls=unverified())
        try:
            client.register("tofu", join=False)
            assert peer_fingerprint(client) == printed
            serving.signal(signal.SIGHUP)  # reloads; the server goes on
            serving.wait_for_log("TLS certificate loaded")
            client.sync()
        finally:
            client.close()
    with ChatServe("--no-db", "--tls-port", "0", env=data) as again:
        assert again.banner[1].startswith("TLS on port ")
        assert again.banner[2] == f"TLS certificate SHA-256 fingerprint: {printed}"  # the same


def test_clients_that_reset_before_tls_starts_never_stop_the_server(
    make_server, certificate, trusting
):
    """A peer may be gone between accept and the TLS wrapping: only it is lost."""
    running = make_server(tls=True, tls_cert=certificate[0], tls_key=certificate[1])
    linger = struct.pack("ii", 1, 0)  # close with a reset
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        sock.close()
    fine = Client(running.port, tls=trusting)
    try:
        fine.register("fine", join=False)
        fine.sync()
    finally:
        fine.close()
    deadline = time.monotonic() + 5
    while running.server.thread_count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.server.thread_count == 0


def test_a_tls_write_that_blocks_half_way_reports_what_it_sent(certificate):
    """Python's TLS writes are all or nothing; TLSSocket writes a record at a time, so a
    client that reads steadily but slowly is seen to keep up (a full write that blocked
    half-way would report nothing sent)."""
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(listener.getsockname(), timeout=5)
    accepted, _ = listener.accept()
    listener.close()
    accepted.setblocking(False)
    accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    server = TLSSocket(accepted, tls.server_context(*certificate))
    client_side: list[ssl.SSLSocket] = []
    shaker = threading.Thread(
        target=lambda: client_side.append(unverified().wrap_socket(peer)), daemon=True
    )
    shaker.start()
    try:
        deadline = time.monotonic() + 5
        while not server.handshake() and time.monotonic() < deadline:
            time.sleep(0.001)
        shaker.join(5)
        assert server.ready and client_side
        data = b"x" * (4 * 1024 * 1024)  # far more than the socket buffers take
        sent = server.send(data)
        assert 0 < sent < len(data) and sent % RECORD_BYTES == 0
        with pytest.raises(BlockingIOError):  # nothing read meanwhile: full
            while True:
                server.send(data[sent:])
    finally:
        server.close()
        for sock in client_side:
            sock.close()
        peer.close()


@pytest.mark.parametrize("secure", [True, False], ids=["tls", "plaintext"])
def test_a_client_past_its_sendq_reads_whole_lines_then_the_error(
    make_server, certificate, trusting, secure
):
    """What a send began is finished (the line it cut; on TLS, the record OpenSSL holds),
    then comes ERROR: nothing glued to half a line, no TLS write error instead."""
    running = make_server(
        tls_port=0,
        tls_cert=certificate[0],
        tls_key=certificate[1],
        max_sendq=64 * 1024,
        flood_rate=0,
    )
    assert running.server.tls_address is not None
    port = running.server.tls_address[1] if secure else running.port
    stalled = Client(port, tls=trusting if secure else None, rcvbuf=4096)
    writer = Client(running.port)
    try:
        stalled.register("stalled", join=False)
        writer.register("writer", join=False)
        for i in range(3000):  # little by little: the queue overflows amid a TLS record
            writer.send(f"PRIVMSG stalled :{i} " + "y" * 200)
            if i % 20 == 19:
                time.sleep(0.002)
        writer.sync()
        lines = []
        while (msg := stalled.recv()) is not None:  # every line parses: none was cut
            lines.append(msg)
        assert lines[-1].command == "ERROR" and "SendQ exceeded" in lines[-1].params[0]
        numbers = [int(m.params[1].split()[0]) for m in lines if m.command == "PRIVMSG"]
        assert numbers == list(range(len(numbers)))  # in order, no gap, then nothing
        writer.sync()  # the others go on
    finally:
        stalled.close()
        writer.close()


def test_a_certificate_without_tls_or_a_key_without_a_certificate_is_refused(certificate):
    from dataclasses import replace

    with pytest.raises(ConfigError, match="need tls, or a tls_port"):
        replace(TEST_CONFIG, tls_cert=certificate[0], tls_key=certificate[1]).validate()
    with pytest.raises(ConfigError, match="tls_key needs tls_cert"):
        replace(TEST_CONFIG, tls=True, tls_key=certificate[1]).validate()


def test_a_made_key_is_its_owners_alone_even_over_a_readable_leftover(tmp_path):
    directory = tmp_path / "tls"
    directory.mkdir()
    leftover = directory / "key.pem"
    leftover.write_text("an old key")
    leftover.chmod(0o644)  # and no cert.pem: a new pair is made
    cert, key, made = tls.ensure_self_signed(directory, ["a server name with spaces", "::1"])
    assert made and key == leftover
    assert key.stat().st_mode & 0o777 == 0o600
    assert tls.server_context(cert, key) is not None
    assert sorted(p.name for p in directory.iterdir()) == ["cert.pem", "key.pem"]


def test_tls_1_2_gets_no_session_ticket(make_server, certificate):
    running = make_server(tls=True, tls_cert=certificate[0], tls_key=certificate[1])
    context = unverified()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = socket.create_connection(("127.0.0.1", running.port), timeout=5)
    with raw, context.wrap_socket(raw) as sock:
        sock.sendall(b"PING x\r\n")
        sock.recv(4096)
        assert sock.version() == "TLSv1.2"
        assert sock.session is None or not sock.session.has_ticket


def test_tls_and_a_tls_port_together_or_the_same_port_twice_are_refused():
    from dataclasses import replace

    with pytest.raises(ConfigError, match="give one of them"):
        replace(TEST_CONFIG, tls=True, tls_port=6697, tls_cert="c.pem").validate()
    with pytest.raises(ConfigError, match="tls_port must differ from port"):
        replace(TEST_CONFIG, port=6697, tls_port=6697, tls_cert="c.pem").validate()


def test_a_key_without_its_certificate_is_refused_not_replaced(tmp_path):
    """chat serve --tls --tls-key K: no certificate is made up to go with it."""
    key = tmp_path / "key.pem"
    key.write_text("a key")
    result = CliRunner().invoke(
        main, ["serve", "--no-db", "--port", "0", "--tls", "--tls-key", str(key)]
    )
    assert result.exit_code == 2
    assert "tls_key needs tls_cert" in result.output


def test_a_busy_tls_port_is_named_as_such(certificate):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = busy.getsockname()[1]
        args = ["serve", "--no-db", "--port", "0", "--tls-port", str(taken)]
        result = CliRunner().invoke(
            main, [*args, "--tls-cert", certificate[0], "--tls-key", certificate[1]]
        )
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{taken}: " in result.output


def _ends_within(sock: socket.socket, seconds: float) -> bytes:
    """What ``sock`` receives until the server closes it, which must be within ``seconds``."""
    sock.settimeout(seconds)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            data += chunk
    return data


def test_a_client_refused_on_the_tls_port_is_told_why_over_tls(make_server, certificate, trusting):
    running = make_server(tls=True, tls_cert=certificate[0], tls_key=certificate[1], max_clients=1)
    alice, bob = Client(running.port, tls=trusting), None
    try:
        alice.register("alice")
        bob = Client(running.port, tls=trusting)  # the handshake is made, then:
        bob.send("NICK bob")  # (what it sends is read and thrown away, not reset)
        assert bob.expect("ERROR", skip=False).params == ("Closing link: 127.0.0.1 (Server full)",)
        assert bob.closed()
        alice.send("PRIVMSG alice :still here")
        assert alice.expect("PRIVMSG").params[1] == "still here"
    finally:
        alice.close()
        if bob is not None:
            bob.close()


def test_refusals_over_tls_are_bounded_and_the_thread_goes_when_done(
    make_server, certificate, trusting
):
    """Refused clients that never shake hands hold refusals.AT_ONCE places for
    refusals.TIME_EACH at most; past those, a refused connection is closed at once. Then
    the places come free, the refusing thread ends, and the next refusal is told again."""
    running = make_server(tls=True, tls_cert=certificate[0], tls_key=certificate[1], max_clients=1)
    alice = Client(running.port, tls=trusting)
    silent: list[socket.socket] = []
    try:
        alice.register("alice")
        silent = [
            socket.create_connection(("127.0.0.1", running.port), timeout=5)
            for _ in range(refusals.AT_ONCE)
        ]
        time.sleep(0.2)  # all of them accepted and being refused
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as extra:
            assert _ends_within(extra, 1.0) == b""  # no place left to tell it anything
        alice.send("PRIVMSG alice :unbothered")
        assert alice.expect("PRIVMSG").params[1] == "unbothered"
        for sock in silent:  # each one waited for its handshake, then was closed
            _ends_within(sock, refusals.TIME_EACH + 2)
        deadline = time.monotonic() + 2
        while _refusing() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _refusing()
        late = Client(running.port, tls=trusting)
        assert late.expect("ERROR", skip=False).params[0].endswith("(Server full)")
        late.close()
    finally:
        alice.close()
        for sock in silent:
            sock.close()


def _refusing() -> bool:
    return any(t.name == "tls refusals" for t in threading.enumerate())


def test_when_no_thread_can_start_a_refusal_is_closed_and_the_next_told(
    make_server, certificate, trusting, monkeypatch, caplog
):
    """Out of threads, the refusing thread cannot start: that refusal is closed without a
    word (as past AT_ONCE), the next one starts it, and nothing is left waiting."""
    start = threading.Thread.start
    failures = [RuntimeError("can't start new thread")]

    def start_or_fail(thread: threading.Thread) -> None:
        if thread.name == "tls refusals" and failures:
            raise failures.pop()
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_or_fail)
    running = make_server(tls=True, tls_cert=certificate[0], tls_key=certificate[1], max_clients=1)
    alice = Client(running.port, tls=trusting)
    try:
        alice.register("alice")
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as first:
            assert _ends_within(first, 1.0) == b""
        assert "cannot start a thread to refuse connections" in caplog.text
        late = Client(running.port, tls=trusting)
        assert late.expect("ERROR", skip=False).params[0].endswith("(Server full)")
        late.close()
    finally:
        alice.close()
