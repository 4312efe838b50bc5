"""Refusals on a TLS port: a client refused there (server full, too many connections from
its address, connecting too fast) is told why over TLS, as it would be in plaintext.

Saying so takes a handshake, which waits for the client: not on the accept thread, and
not on a thread of its own, which is what a connection storm must never get. One thread,
started when there is a refusal to make and gone when there is none, makes at most
:data:`AT_ONCE` of them, each within :data:`TIME_EACH` seconds; past that, a refused
connection is closed without a word, as a plaintext one never is.

Each refusal: the handshake, the ERROR line, close_notify, then what the client still
sends is read until it hangs up (closing with its bytes unread would reset the
connection, and the client might lose the ERROR line).

The thread is supervised (:mod:`chatcli.server.supervise`): after an unexpected error the
refusals it was making are closed without a word, and it starts again with those still to
begin. Its restart budget is kept from one thread to the next; past it the server stops.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable

from chatcli.server.supervise import Supervisor
from chatcli.server.tls_socket import TLSSocket

log = logging.getLogger("chatcli.server")

AT_ONCE = 16  #: refusals being made at once; more are closed at once
TIME_EACH = 3.0  #: seconds one refusal may take, from accept to close
_POLL = 0.05  # how soon a new refusal is taken up


class _Refusal:
    __slots__ = ("deadline", "line", "stream", "told")

    def __init__(self, stream: TLSSocket, line: bytes, deadline: float) -> None:
        self.stream = stream
        self.line = line
        self.deadline = deadline
        self.told = False  # the ERROR line is sent and TLS shut down for writing


class TLSRefusals:
    """Refusals under way on TLS ports, and the one thread that makes them.

    Args:
        on_fatal: stops the server with a reason, when the thread fails too often.
    """

    def __init__(self, on_fatal: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._new: list[_Refusal] = []
        self._count = 0  # under way, new ones included
        self._thread: threading.Thread | None = None
        self._stop = False
        self._stopping = threading.Event()  # (ends a restart's backoff)
        self.supervisor = Supervisor("tls refusals", on_fatal or _no_server, stop=self._stopping)

    def refuse(self, sock: socket.socket, line: bytes, context: ssl.SSLContext) -> None:
        """Tell the client on ``sock`` (accepted, non-blocking) ``line`` over TLS, then
        close it; or close it now if :data:`AT_ONCE` refusals are under way already."""
        with self._lock:
            if self._stop or self._count >= AT_ONCE:
                hang_up(sock)
                return
            try:
                stream = TLSSocket(sock, context)
            except (OSError, ValueError):  # gone already
                sock.close()
                return
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="tls refusals")
                try:
                    thread.start()  # (it waits for the lock, and then for this refusal)
                except RuntimeError as exc:  # no more threads: no word, as past AT_ONCE
                    log.error("cannot start a thread to refuse connections: %s", exc)
                    stream.close()
                    return
                self._thread = thread
            self._new.append(_Refusal(stream, line, time.monotonic() + TIME_EACH))
            self._count += 1

    def stop(self) -> None:
        """Close every refusal under way, and wait for the thread to end."""
        with self._lock:
            self._stop = True
            thread = self._thread
        self._stopping.set()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        left: list[_Refusal] = []
        try:
            self.supervisor.run(self._session)
        finally:  # stopped, or failed for good: what is still to begin is closed
            with self._lock:
                if self._thread is threading.current_thread():  # (else the next thread's)
                    self._thread = None
                    left, self._new = self._new, []
                    self._count -= len(left)
            for refusal in left:
                with contextlib.suppress(OSError):
                    refusal.stream.close()

    def _session(self) -> None:
        """Make refusals until there are none, or the server stops. Whatever way it ends,
        the refusals it was making are closed: a bug here must not leave them, or
        :meth:`stop`, hanging."""
        selector = selectors.DefaultSelector()
        try:
            self._serve(selector)
        finally:
            left = [key.data for key in selector.get_map().values()]
            with self._lock:
                self._count -= len(left)
            for refusal in left:
                with contextlib.suppress(OSError):
                    refusal.stream.close()
            selector.close()

    def _serve(self, selector: selectors.BaseSelector) -> None:
        while True:
            with self._lock:
                for refusal in self._new:
                    selector.register(refusal.stream, selectors.EVENT_READ, refusal)
                self._new.clear()
                if self._stop:
                    return  # (_run closes what is left)
                if not self._count:
                    self._thread = None  # with the check: a refusal from now on starts anew
                    return
            for key, _ in selector.select(_POLL):
                self._step(selector, key.data)
            now = time.monotonic()
            for key in list(selector.get_map().values()):
                if key.data.deadline <= now:
                    self._end(selector, key.data)

    def _step(self, selector: selectors.BaseSelector, refusal: _Refusal) -> None:
        """Take ``refusal`` as far as its socket lets it go now."""
        stream = refusal.stream
        try:
            if refusal.told:
                if stream.recv_raw(4096):
                    return  # more to read before the client hangs up
            elif not stream.ready and not stream.handshake():
                events = selectors.EVENT_WRITE if stream.wants_write else selectors.EVENT_READ
                selector.modify(stream, events, refusal)
                return
            else:
                try:
                    stream.send(refusal.line)  # one short line: a new socket takes it whole
                except BlockingIOError:
                    selector.modify(stream, selectors.EVENT_WRITE, refusal)
                    return
                stream.shutdown(socket.SHUT_WR)  # close_notify, then FIN
                refusal.told = True
                selector.modify(stream, selectors.EVENT_READ, refusal)
                return
        except BlockingIOError:
            return  # woken for nothing: wait on
        except (OSError, ValueError):  # a failed handshake, a reset: nothing more to say
            pass
        self._end(selector, refusal)

    def _end(self, selector: selectors.BaseSelector, refusal: _Refusal) -> None:
        selector.unregister(refusal.stream)
        with contextlib.suppress(OSError):
            refusal.stream.close()
        with self._lock:
            self._count -= 1


def _no_server(reason: str) -> None:
    """The fatal end of refusals made without a server (tests): the log says it all."""


def hang_up(sock: socket.socket) -> None:
    """Close ``sock`` (non-blocking) after reading what its client sent already: closed
    with bytes unread, it would be reset, and the client might lose what it was sent."""
    with contextlib.suppress(OSError):
        sock.recv(4096)
    sock.close()
