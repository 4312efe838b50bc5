"""The line transport seam: a connection and its send queue use only what every stream
offers (transport.Stream), so a new transport is a new kind of stream and nothing else.
Real sockets."""

from __future__ import annotations

import ast
import select
import socket
from pathlib import Path

import pytest

from chatcli.server.tls_socket import TLSSocket
from chatcli.server.transport import PlainStream, Stream

SERVER = Path(__file__).resolve().parents[2] / "src" / "chatcli" / "server"
#: What the Stream protocol names: calls and attributes.
NEEDED = {name for name in (*vars(Stream), *Stream.__annotations__) if not name.startswith("_")}


@pytest.mark.parametrize("kind", [PlainStream, TLSSocket])
def test_every_kind_of_stream_offers_all_a_stream_must(kind):
    assert NEEDED - set(dir(kind)) == set()


@pytest.mark.parametrize("module", ["connection.py", "sendq.py", "session.py"])
def test_the_connection_and_its_queue_never_ask_which_transport_they_have(module):
    tree = ast.parse((SERVER / module).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "chatcli.server.tls_socket" not in imported and "ssl" not in imported
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & {"TLSSocket", "PlainStream"}


def test_an_adopted_socket_is_a_non_blocking_stream_of_the_same_connection():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname(), timeout=5)
    accepted, _ = listener.accept()
    listener.close()
    stream = PlainStream.adopt(accepted)
    try:
        assert accepted.fileno() == -1  # taken over
        assert stream.handshake() and not stream.secure and not stream.wants_write
        with pytest.raises(BlockingIOError):
            stream.recv(100)  # nothing yet: never waits
        client.sendall(b"PING x\r\n")
        assert select.select([stream], [], [], 5)[0] == [stream]
        assert stream.peek_raw(100) == b"PING x\r\n"  # left in place
        assert stream.recv(100) == b"PING x\r\n"
        assert stream.send(b"PONG x\r\n") == 8
        assert client.recv(100) == b"PONG x\r\n"
    finally:
        stream.close()
        client.close()
