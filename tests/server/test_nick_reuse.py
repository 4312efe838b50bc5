"""A nick is free the moment its connection is closed by the peer: a client that drops
(no QUIT) and reconnects at once with the same nick is never told 433, and those who
shared a room with it see it quit exactly once. A live holder keeps its nick."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable

import pytest
import trustme

from chatcli import tls
from chatcli.protocol import Message
from chatcli.protocol import numerics as n
from chatcli.server.connection import peer_closed, wait_ready
from chatcli.server.tls_socket import TLSSocket
from chatcli.server.transport import PlainStream
from tests import certs
from tests.certs import issue
from tests.conftest import Client

REUSES = 500
#: SO_LINGER on, with a time of zero: close() resets the connection (RST, not FIN).
RESET = struct.pack("ii", 1, 0)
#: A slow machine stops the loop here (and skips, once what ran has been checked).
TIME_BOUND = 40.0


def _hello(client: Client, nick: str) -> str:
    """Register as ``nick``, joining the default room: ``001`` once it is in the room
    (its NAMES seen), or the numeric that refused the nick."""
    client.send("CAP REQ :chatcli.local/autojoin")
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :Real {nick}")
    client.send("CAP END")
    last = client.collect("366", n.ERR_NICKNAMEINUSE, n.ERR_ERRONEUSNICKNAME)[-1]
    return n.RPL_WELCOME if last.command == "366" else last.command


def _reset(client: Client) -> None:
    """Close with a reset (RST), not a FIN: SO_LINGER on, with a time of zero."""
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
    client.sock.close()


def _nick_of(msg: Message) -> str:
    return (msg.source or "").split("!", 1)[0]


def _event(msg: Message, nick: str) -> str | None:
    """What the watcher is told of ``nick``: joins, quits and nick changes in the room,
    MONITOR's online and offline."""
    if msg.command in ("JOIN", "QUIT", "NICK") and _nick_of(msg) == nick:
        if msg.command == "QUIT":
            reason = msg.params[0]  # of a connection closed by its peer
            assert reason == "Connection closed" or reason.startswith("Read error: "), msg
        return msg.command
    if msg.command == n.RPL_MONONLINE and msg.params[1].split("!", 1)[0] == nick:
        return "online"
    if msg.command == n.RPL_MONOFFLINE and msg.params[1] == nick:
        return "offline"
    return None


def _check_watcher(watcher: Client, nick: str, expected: list[str]) -> None:
    """The watcher is told of ``nick`` exactly ``expected``, in order, and nothing more."""
    seen: list[str] = []
    while len(seen) < len(expected):
        msg = watcher.recv()
        assert msg is not None, "the watcher was disconnected"
        if (event := _event(msg, nick)) is not None:
            seen.append(event)
    assert seen == expected
    assert [e for m in watcher.quiet(0.05) if (e := _event(m, nick))] == []


def _watcher(connect: Callable[..., Client], nick: str) -> Client:
    """A client in the default room that also watches ``nick`` with MONITOR."""
    watcher = connect("watcher")
    watcher.send(f"MONITOR + {nick}")
    assert watcher.expect(n.RPL_MONOFFLINE).params[1] == nick
    return watcher


ARRIVES = ["online", "JOIN"]
DROPS = ["offline", "QUIT"]


def _reuse_loop(
    port: int,
    close: Callable[[Client], None],
    watcher: Client,
    reuses: int = REUSES,
    tls=None,
    preopen: bool = False,
) -> tuple[int, int]:
    """Register "reuse", drop the connection with ``close``, register "reuse" again at
    once, and so on; return (reuses done, 433s). The ``watcher`` shares the room and
    watches the nick; every drop must reach it once, in order. Bounded by TIME_BOUND.

    With ``preopen`` the next connection is opened (its TLS handshake done) before the
    drop, so that its NICK follows the drop closer still."""
    refused = done = 0
    started = time.monotonic()
    client = Client(port, tls=tls)
    assert _hello(client, "reuse") == n.RPL_WELCOME
    expected = list(ARRIVES)
    try:
        while done < reuses and time.monotonic() - started < TIME_BOUND:
            following = Client(port, tls=tls) if preopen else None
            close(client)
            expected += DROPS
            client = following or Client(port, tls=tls)
            answer = _hello(client, "reuse")
            done += 1
            while answer == n.ERR_NICKNAMEINUSE:  # (counted; then as soon as it is free)
                refused += 1
                client.close()
                time.sleep(0.01)
                client = Client(port, tls=tls)
                answer = _hello(client, "reuse")
            assert answer == n.RPL_WELCOME
            expected += ARRIVES
            if done % 50 == 0:  # the watcher reads as it goes (its queue stays short)
                _check_watcher(watcher, "reuse", expected)
                expected = []
    finally:
        client.close()
    expected += DROPS
    _check_watcher(watcher, "reuse", expected)
    return done, refused


def _finish(done: int, refused: int, started: float, reuses: int = REUSES) -> None:
    took = time.monotonic() - started
    print(f"{done} immediate reuses in {took:.1f} s, {refused} told 433")
    assert refused == 0, f"{refused} of {done} immediate reuses were told 433"
    if done < reuses:
        pytest.skip(f"only {done} reuses in {took:.0f} s (a slow machine)")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("preopen", [False, True], ids=["reconnect", "second-connection"])
def test_a_nick_is_free_as_soon_as_its_connection_closes(server, connect, preopen):
    """A plain close (FIN), no QUIT: 500 immediate reuses, not one 433; the room and the
    nick's watcher hear of each drop once. Also with the next connection open already."""
    watcher = _watcher(connect, "reuse")
    started = time.monotonic()
    done, refused = _reuse_loop(server.port, Client.close, watcher, preopen=preopen)
    _finish(done, refused, started)


@pytest.mark.timeout(120)
def test_a_nick_is_free_as_soon_as_its_connection_is_reset(server, connect):
    """The same with a reset (SO_LINGER 0: RST instead of FIN)."""
    watcher = _watcher(connect, "reuse")
    started = time.monotonic()
    done, refused = _reuse_loop(server.port, _reset, watcher)
    _finish(done, refused, started)


@pytest.mark.timeout(120)
def test_over_tls_a_nick_is_free_as_soon_as_its_connection_closes(make_server, tmp_path):
    """Over TLS, a client that closes without close_notify (as Python's does) and comes
    back at once is not told 433 either. (The next connection's handshake is done before
    the drop; even so, decrypting its first lines usually takes longer than the old
    connection's own end: the peek under TLS is checked on its own below.)"""
    cert, key = issue(trustme.CA(), tmp_path, "127.0.0.1")
    running = make_server(tls=True, tls_cert=cert, tls_key=key)
    context = certs.unverified()
    watcher = Client(running.port, tls=context)
    try:
        watcher.register("watcher")
        watcher.send("MONITOR + reuse")
        watcher.expect(n.RPL_MONOFFLINE)
        started = time.monotonic()
        done, refused = _reuse_loop(running.port, Client.close, watcher, 100, context, preopen=True)
        _finish(done, refused, started, 100)
    finally:
        watcher.close()


def test_a_live_holder_keeps_its_nick(server, connect):
    """A holder whose socket is open, idle, keeps its nick: the newcomer is told 433, and
    the holder is not disturbed."""
    watcher = _watcher(connect, "reuse")
    holder = connect("reuse")
    _check_watcher(watcher, "reuse", ARRIVES)
    for _ in range(20):
        newcomer = Client(server.port)
        try:
            assert _hello(newcomer, "reuse") == n.ERR_NICKNAMEINUSE
        finally:
            newcomer.close()
    assert [m for m in holder.sync() if m.command in ("ERROR", "QUIT")] == []
    holder.send("WHOIS reuse")
    assert holder.expect(n.RPL_WHOISUSER).params[1] == "reuse"
    _check_watcher(watcher, "reuse", [])


def test_a_holder_closed_with_commands_still_held_runs_them_first(make_server, clients):
    """A holder that closed with commands still held by flood control is not cut short:
    they all run, then it quits, once; the newcomer gets the nick after that (or, if
    those commands take longer than a moment, is told 433)."""
    running = make_server(flood_burst=2, flood_rate=20.0)
    watcher = Client(running.port)
    clients.append(watcher)
    watcher.register("watcher")
    holder = Client(running.port)
    clients.append(holder)
    room = holder.register("reuse")[-1].params[1]
    _check_watcher(watcher, "reuse", ["JOIN"])
    holder.send("".join(f"PRIVMSG {room} :line {i}\r\n" for i in range(6)))
    holder.close()
    newcomer = Client(running.port)
    clients.append(newcomer)
    answer = _hello(newcomer, "reuse")
    said = []
    while len(said) < 6:
        msg = watcher.recv()
        assert msg is not None
        assert msg.command != "QUIT", f"quit after {len(said)} of 6 lines"
        if msg.command == "PRIVMSG":
            said.append(msg.params[1])
    assert said == [f"line {i}" for i in range(6)]
    later = [m.command for m in watcher.collect("QUIT") if _nick_of(m) == "reuse"]
    assert later == ["QUIT"]
    if answer == n.RPL_WELCOME:
        assert watcher.expect("JOIN").source.startswith("reuse!")
    assert answer in (n.RPL_WELCOME, n.ERR_NICKNAMEINUSE)


@pytest.mark.single_server("a holder on the other node is gone once its node saw the drop")
def test_a_nick_change_onto_a_dropped_holders_nick(make_server, clients):
    """NICK while registered, onto the nick of a connection just closed by its peer:
    never 433. The one changing nick, in the same room, sees the QUIT first. (No flood
    control: the one changing nick sends two commands a round.)"""
    server = make_server(flood_rate=0)
    watcher, mover = Client(server.port), Client(server.port)
    clients += [watcher, mover]
    watcher.register("watcher")
    mover.register("mover")
    started = time.monotonic()
    rounds = 100
    for i in range(rounds):
        holder = Client(server.port)
        try:
            assert _hello(holder, "target") == n.RPL_WELCOME
        finally:
            holder.close()
        mover.send("NICK target")
        events = [
            (m.command, _nick_of(m))
            for m in mover.collect("NICK", n.ERR_NICKNAMEINUSE)
            if m.command in ("QUIT", "NICK", n.ERR_NICKNAMEINUSE)
        ]
        assert events[-2:] == [("QUIT", "target"), ("NICK", "mover")], f"round {i}: {events}"
        mover.send("NICK mover")
        mover.expect("NICK")
        if time.monotonic() - started > TIME_BOUND:
            break
    # (and "target" becoming "mover" again: a NICK from "target")
    _check_watcher(watcher, "target", ["JOIN", "QUIT", "NICK"] * (i + 1))


def test_a_nick_taken_before_registration_is_free_once_its_connection_closes(server, connect):
    """A connection that gave NICK but not yet USER holds the nick too; once its peer has
    closed, the nick is free at once (and nobody is told of a QUIT: it never arrived)."""
    watcher = _watcher(connect, "reuse")
    for _ in range(50):
        holder = Client(server.port)
        holder.send("NICK reuse")
        holder.sync()
        holder.close()
        newcomer = Client(server.port)
        try:
            assert _hello(newcomer, "reuse") == n.RPL_WELCOME
        finally:
            newcomer.close()
        _check_watcher(watcher, "reuse", ARRIVES + DROPS)


# -- peer_closed: how the end of a connection is seen without reading ------------------------


def _tcp_pair() -> tuple[PlainStream, socket.socket]:
    """(server side, a non-blocking stream as the server's are; client side) of a real TCP
    pair."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname(), timeout=5)
    accepted, _ = listener.accept()
    listener.close()
    return PlainStream.adopt(accepted), client


def _until(check: Callable[[], object]) -> object:
    """``check()`` once it is true (the end of a connection takes a moment to arrive)."""
    deadline = time.monotonic() + 5
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.005)
    return result


def test_peer_closed_sees_an_end_or_a_reset_and_never_takes_a_byte():
    accepted, client = _tcp_pair()
    try:
        assert peer_closed(accepted) is None  # open, nothing sent
        client.sendall(b"PING x\r\n")
        assert _until(lambda: wait_ready(accepted, 0))
        assert peer_closed(accepted) is None  # open, bytes waiting: they stay
        client.close()
        assert peer_closed(accepted) is None  # closed, but the bytes come first
        assert accepted.recv(100) == b"PING x\r\n"
        assert _until(lambda: peer_closed(accepted)) == "Connection closed"
    finally:
        accepted.close()
        client.close()
    accepted, client = _tcp_pair()
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        client.close()
        assert str(_until(lambda: peer_closed(accepted))).startswith("Read error: ")
    finally:
        accepted.close()
    # A socket in blocking mode is looked at, never waited on.
    accepted, client = _tcp_pair()
    try:
        accepted.setblocking(True)
        started = time.monotonic()
        assert peer_closed(accepted) is None
        assert time.monotonic() - started < 1
    finally:
        accepted.close()
        client.close()
    assert peer_closed(accepted) == "Connection closed"  # closed on our side meanwhile


@pytest.mark.parametrize("notify", [False, True], ids=["close", "close-notify"])
def test_peer_closed_over_tls_sees_an_end_without_close_notify_only(tmp_path, notify):
    """Over TLS the raw socket is peeked: the end of a client that closes without a TLS
    close_notify (as Python's does) is seen; one that sends close_notify leaves bytes that
    only OpenSSL can read, and is seen only once they have been read (the old behaviour)."""
    cert, key = issue(trustme.CA(), tmp_path, "127.0.0.1")
    accepted, peer = _tcp_pair()
    server = TLSSocket(accepted, tls.server_context(cert, key))
    client_side: list[ssl.SSLSocket] = []
    shaker = threading.Thread(
        target=lambda: client_side.append(certs.unverified().wrap_socket(peer)), daemon=True
    )
    shaker.start()
    try:
        assert _until(server.handshake)
        shaker.join(5)
        (client,) = client_side
        assert peer_closed(server) is None
        client.sendall(b"PING x\r\n")
        assert _until(lambda: wait_ready(server, 0))
        assert peer_closed(server) is None  # a record waits
        assert _until(lambda: _read(server)) == b"PING x\r\n"
        assert peer_closed(server) is None
        if notify:
            client.setblocking(False)
            with contextlib.suppress(ssl.SSLError, OSError):
                client.unwrap()  # close_notify, without waiting for the answer
        client.close()
        peer.close()
        if notify:
            time.sleep(0.05)
            assert peer_closed(server) is None  # cannot tell
            assert _until(lambda: _read(server) == b"")  # its own thread reads the end
        assert _until(lambda: peer_closed(server)) == "Connection closed"
    finally:
        server.close()
        peer.close()


def _read(sock: TLSSocket) -> bytes | None:
    try:
        return sock.recv(100)
    except BlockingIOError:
        return None
