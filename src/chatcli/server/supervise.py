"""Supervised threads: a background thread of the server never dies silently.

Each background loop (the accept loop, the flusher, housekeeping, the TLS refusals) runs
under a :class:`Supervisor`. An unexpected exception is logged with its traceback and the
loop is started again after a short backoff (:data:`FIRST_BACKOFF`, doubling up to
:data:`MAX_BACKOFF`), as long as the loop says a restart is safe and the role has failed
at most :data:`RESTARTS` times in the last :data:`WINDOW` seconds. Past that budget, or
when a restart would not be safe, the supervisor calls ``on_fatal`` with a one-line reason
(:meth:`chatcli.server.Server.fatal`): the server stops, and ``serve_forever`` raises
:class:`ServerFailed`, so that ``chat serve`` exits with a non-zero status. The server is
never left up but broken.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from chatcli.errors import ChatError, ExitStatus

log = logging.getLogger("chatcli.server")

#: Restarts allowed per role within :data:`WINDOW` seconds; one failure more is fatal.
RESTARTS = 5
#: Seconds over which restarts are counted.
WINDOW = 60.0
#: The wait before the first restart (doubled for each failure still in the window).
FIRST_BACKOFF = 0.05
#: The longest wait before a restart.
MAX_BACKOFF = 1.0


class ServerFailed(ChatError):
    """The server stopped because one of its threads failed beyond repair."""

    exit_status = ExitStatus.ERROR


def describe(exc: BaseException) -> str:
    """``exc`` in one line: its type, and its message if it has one."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Supervisor:
    """Runs one role's loop (:meth:`run`), restarting it after a failure; see the module
    docstring. The budget belongs to the role, not to one thread: a role whose thread comes
    and goes (the TLS refusals) keeps counting.

    Args:
        name: the role, as the log and the fatal reason name it ("flusher").
        on_fatal: stops the server with a reason (any thread; must not wait).
        stop: set when the server stops: no restart then, and the backoff ends early.
        safe: whether a restart is safe now (default: always); if not, a failure is fatal.
        recover: run before each restart, to put the loop's state right.
    """

    def __init__(
        self,
        name: str,
        on_fatal: Callable[[str], None],
        *,
        stop: threading.Event | None = None,
        safe: Callable[[], bool] | None = None,
        recover: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.on_fatal = on_fatal
        self._stop = stop
        self._safe = safe
        self._recover = recover
        self._lock = threading.Lock()
        self._failures: deque[float] = deque()  # monotonic times, within WINDOW
        self.restarts = 0  #: restarts so far (for tests and operators)
        self.failed: str | None = None  #: the fatal reason, once it gave up

    def run(self, loop: Callable[[], None]) -> None:
        """Run ``loop`` until it returns; restart it after an unexpected exception, or stop
        the server. (KeyboardInterrupt is not caught: it stops the server as it should.)"""
        restarting = False
        while True:
            try:
                if restarting and self._recover is not None:
                    self._recover()
                loop()
                return
            except (Exception, SystemExit) as exc:
                backoff = self._failed(exc)
            if backoff is None:
                return
            if self._stop is not None:
                if self._stop.wait(backoff):
                    return
            else:
                time.sleep(backoff)
            self.restarts += 1
            restarting = True

    def _failed(self, exc: BaseException) -> float | None:
        """Log the failure ``exc``; return how long to wait before the restart, or None if
        there is none (stopping, or fatal)."""
        name = self.name
        if self._stop is not None and self._stop.is_set():
            log.error("the %s thread failed while the server stops", name, exc_info=exc)
            return None
        now = time.monotonic()
        with self._lock:
            failures = self._failures
            failures.append(now)
            while failures and failures[0] <= now - WINDOW:
                failures.popleft()
            count = len(failures)
        reason = None
        if self._safe is not None and not self._safe():
            reason = f"the {name} thread failed and cannot safely restart ({describe(exc)})"
        elif count > RESTARTS:
            reason = (
                f"the {name} thread failed {count} times within {WINDOW:g} seconds "
                f"(last: {describe(exc)})"
            )
        if reason is not None:
            log.critical("%s", reason, exc_info=exc)
            self.failed = reason
            self.on_fatal(reason)
            return None
        backoff = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (count - 1))
        log.error("the %s thread failed; restarting it in %g s", name, backoff, exc_info=exc)
        return backoff
