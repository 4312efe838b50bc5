"""Telling systemd how the server is doing: the ``sd_notify`` protocol, standard library only.

Under a ``Type=notify`` unit (see ``contrib/chatcli.service``) systemd sets
``$NOTIFY_SOCKET`` and waits for ``READY=1`` before it counts the service as started (and
starts what is ordered after it); ``RELOADING=1`` with ``MONOTONIC_USEC`` when a reload
(SIGHUP) begins and ``READY=1`` when it is done let ``systemctl reload`` wait for the
reload, and ``STOPPING=1`` tells it the server is on its way down rather than failing.

Each state is one datagram of ``KEY=value`` lines to the unix socket ``$NOTIFY_SOCKET``
names: a path, or a name in Linux's abstract namespace when it starts with ``@``. Without
the variable every call does nothing. A notification that cannot be sent (the socket is
gone, systemd restarted) never fails the server: it is logged once, and the server goes
on without telling.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("chatcli.server")


class Notifier:
    """Sends states to the service manager at ``address`` (``$NOTIFY_SOCKET``'s form), or
    does nothing when it is None or empty.

    Safe in a signal handler, so it takes no lock: two threads failing at the same instant
    could each log the failure, or both send STOPPING=1, and nothing worse."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._failed = False  # a failure was logged
        self._stopping = False  # STOPPING=1 was sent

    @classmethod
    def from_environment(cls) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET``, set by systemd for a ``Type=notify`` service."""
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        """Whether there is a service manager to tell."""
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) as one notification; return
        whether it was sent. Never raises: the first failure is logged, later ones not."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(fields).encode(), target)
        except (OSError, AttributeError, ValueError) as exc:  # (no AF_UNIX: AttributeError)
            first, self._failed = not self._failed, True
            if first:
                log.warning(
                    "cannot notify systemd at NOTIFY_SOCKET=%s (%s); going on without it",
                    self.address,
                    exc,
                )
            return False
        return True

    def ready(self, status: str = "") -> bool:
        """The server accepts connections (at start-up, and after a reload)."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        """A reload (SIGHUP) begins; :meth:`ready` says when it is done."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}")

    def stopping(self) -> bool:
        """The server is stopping. Sent once, however often it is called."""
        first, self._stopping = not self._stopping, True
        return first and self.notify("STOPPING=1")


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd compares ``MONOTONIC_USEC`` to."""
    clock = getattr(time, "CLOCK_MONOTONIC", None)
    nanoseconds = time.clock_gettime_ns(clock) if clock is not None else time.monotonic_ns()
    return nanoseconds // 1000
