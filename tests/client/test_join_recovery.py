"""`chat join` recovers where it used to give up: a taken alias, a mistyped account
password, a server that restarts, Ctrl-C to clear a line, a paste of several lines.

Real server on port 0. The line editor is prompt_toolkit fed through a pipe (the keys are
all typed at once, before the prompt shows), its drawing thrown away; what the client
shows goes to a console read back as text."""

from __future__ import annotations

import io
import itertools
import queue
import threading
import time
from collections.abc import Callable

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console
from rich.text import Text

from chatcli.client.app import Backoff, ChatView, chat_loop, paste_lines
from chatcli.client.join import run_join
from chatcli.client.session import (
    WANTED_CAPS,
    ClientSession,
    WrongAccountPassword,
    alternative_alias,
)
from chatcli.errors import ExitStatus
from tests.conftest import Client, register_account

pytestmark = pytest.mark.timeout(30)

PASSWORD = "s3cret-pass"
#: What chat join asks for, less draft/multiline: a paste on a server without it.
NO_MULTILINE = tuple(cap for cap in WANTED_CAPS if cap != "draft/multiline")


def join(
    port: int,
    alias: str,
    keys: str,
    *,
    account_password: Callable[[str], str | None] | None = None,
    ask_password: Callable[[str], str | None] | None = None,
    caps: tuple[str, ...] = WANTED_CAPS,
) -> tuple[ExitStatus, str, ClientSession]:
    """Run `chat join` as ``alias`` (asking for ``caps``) at a terminal where ``keys`` are
    typed; its exit status, what it showed, and its session."""
    screen = io.StringIO()
    console = Console(file=screen, width=200, highlight=False)
    session = ClientSession(
        "127.0.0.1", port, alias, timeout=5, account_password=account_password, caps=caps
    )
    with create_pipe_input() as keyboard:
        keyboard.send_text(keys)
        status = run_join(
            session,
            None,
            console=console,
            interactive=True,
            ask_password=ask_password,
            terminal_input=keyboard,
            terminal_output=DummyOutput(),
        )
    return status, screen.getvalue(), session


def said(watcher: Client, count: int) -> list[tuple[str, str]]:
    """The next ``count`` messages ``watcher`` sees in rooms: (who, text)."""
    seen = []
    for _ in range(count):
        msg = watcher.expect("PRIVMSG")
        seen.append((msg.source.split("!")[0], msg.params[1]))
    return seen


# -- a taken alias -----------------------------------------------------------------------------


def test_a_taken_alias_is_replaced_by_one_with_an_underscore_and_it_says_so(server, connect):
    connect("bob")
    watcher = connect("watcher")
    status, shown, _ = join(server.port, "bob", "hello\r\x04")
    assert status == ExitStatus.OK
    assert "-- bob is taken: you are bob_" in shown
    assert said(watcher, 1) == [("bob_", "hello")]


def test_while_alias_and_alias_underscore_are_taken_the_next_is_tried(server, connect):
    connect("bob")
    connect("bob_")
    status, shown, _ = join(server.port, "bob", "\x04")
    assert status == ExitStatus.OK
    assert "-- bob is taken: you are bob__" in shown


def test_alternative_aliases_keep_within_the_longest_alias_allowed():
    assert [alternative_alias("bob", i) for i in (1, 2)] == ["bob_", "bob__"]
    assert alternative_alias("x" * 30, 1) == "x" * 29 + "_"
    assert alternative_alias("abcdef", 2, nicklen=6) == "abcd__"


# -- a mistyped account password ---------------------------------------------------------------


@pytest.fixture
def accounts_server(make_server, tmp_path):
    server = make_server(db=str(tmp_path / "chat.db"), login_backoff=0)
    register_account(server.port, "bob", PASSWORD)
    return server


def test_a_wrong_account_password_is_asked_again_at_the_terminal(accounts_server):
    asked: list[str] = []
    answers = iter(["still wrong", PASSWORD])

    def terminal(alias: str) -> str:
        asked.append(alias)
        return next(answers)

    status, _, session = join(
        accounts_server.port,
        "bob",
        "\x04",
        account_password=lambda alias: "mistyped",
        ask_password=terminal,
    )
    assert status == ExitStatus.OK
    assert asked == ["bob", "bob"]  # the first wrong one, then the second
    assert session.account == "bob"


def test_three_wrong_account_passwords_in_all_and_it_gives_up(accounts_server):
    asked: list[str] = []
    with pytest.raises(WrongAccountPassword, match="wrong password for 'bob'") as refusal:
        join(
            accounts_server.port,
            "bob",
            "\x04",  # (were it let in)
            account_password=lambda alias: "mistyped",
            ask_password=lambda alias: asked.append(alias) or "wrong again",
        )
    assert refusal.value.exit_status == ExitStatus.REFUSED
    assert len(asked) == 2


# -- the line editor ---------------------------------------------------------------------------


def test_ctrl_c_clears_the_line_being_typed(server, connect):
    watcher = connect("watcher")
    status, _, _ = join(server.port, "typist", "oops\x03hello\r\x04")
    assert status == ExitStatus.OK
    assert said(watcher, 1) == [("typist", "hello")]


def test_ctrl_c_on_an_empty_line_asks_and_a_second_quits(server):
    status, shown, _ = join(server.port, "typist", "\x03\x03")
    assert status == ExitStatus.INTERRUPTED
    assert "press Ctrl-C again to quit" in shown


def paste(text: str) -> str:
    """What a terminal sends when ``text`` is pasted (bracketed paste)."""
    return f"\x1b[200~{text}\x1b[201~"


def test_without_multiline_a_paste_of_three_lines_is_three_messages_in_order(server, connect):
    watcher = connect("watcher")
    keys = paste("one\ntwo\nthree\n") + "\x04"
    status, shown, _ = join(server.port, "paster", keys, caps=NO_MULTILINE)
    assert status == ExitStatus.OK
    assert said(watcher, 3) == [("paster", "one"), ("paster", "two"), ("paster", "three")]
    assert "line breaks" not in shown


def test_pasted_lines_are_text_even_when_they_start_with_a_slash(server, connect):
    """A paste of a shell session or a path must not run /quit or /nick."""
    watcher = connect("watcher")
    keys = paste("/quit now\n/usr/bin/env\n") + "still here\r\x04"
    status, _, _ = join(server.port, "paster", keys, caps=NO_MULTILINE)
    assert status == ExitStatus.OK
    assert said(watcher, 3) == [
        ("paster", "/quit now"),
        ("paster", "/usr/bin/env"),
        ("paster", "still here"),
    ]


def test_one_pasted_line_loses_its_line_break_and_waits_for_enter(server, connect):
    watcher = connect("watcher")
    keys = "I said: " + paste("hello\r\n") + " again\r\x04"
    status, _, _ = join(server.port, "paster", keys)
    assert status == ExitStatus.OK
    assert said(watcher, 1) == [("paster", "I said: hello again")]


def test_without_multiline_a_paste_of_more_than_five_lines_asks_first(server, connect):
    watcher = connect("watcher")
    six = "".join(f"line {i}\n\n" for i in range(6))  # the empty lines are skipped
    keys = paste(six) + "n\r" + paste(six) + "y\r" + "done\r\x04"
    status, shown, _ = join(server.port, "paster", keys, caps=NO_MULTILINE)
    assert status == ExitStatus.OK
    assert "-- paste not sent" in shown
    expected = [("paster", f"line {i}") for i in range(6)] + [("paster", "done")]
    assert said(watcher, 7) == expected


def test_reconnecting_at_a_terminal_never_gives_up_and_waits_a_minute_at_most():
    delays = list(itertools.islice(Backoff().delays(lambda: 1.0), 1000))
    assert delays[:7] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert len(delays) == 1000 and max(delays) == 60.0
    assert next(Backoff().delays(lambda: 0.0)) == 0.5  # jitter: half of it, at the least


def test_paste_lines_splits_on_any_line_break_and_drops_the_last():
    assert paste_lines("one\r\ntwo\rthree\n") == ["one", "two", "three"]
    assert paste_lines("single\n") == ["single"]
    assert paste_lines("a\n\nb") == ["a", "", "b"]


# -- a server that goes away and comes back ----------------------------------------------------


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Chatting:
    """``chat join``'s loop, as at a terminal, on a thread of its own, as ``steady``:
    what it shows is in :attr:`screen`, what it is typed goes in :attr:`typed`."""

    def __init__(self, running, backoff: Backoff) -> None:
        self.running = running
        self.session = ClientSession("127.0.0.1", running.port, "steady", timeout=5)
        burst = self.session.connect()
        self.view = ChatView(self.session, None)
        self.view.backoff = backoff
        self.screen: list[Text] = []
        self.typed: queue.Queue[str | None] = queue.Queue()
        self.status: list[ExitStatus] = []

        def run() -> None:
            self.status.append(
                chat_loop(
                    self.session, self.view, None, burst, self.screen.append, self.typed.get,
                    batch=False,
                )
            )  # fmt: skip

        self.thread = threading.Thread(target=run, name="chat-steady")
        self.thread.start()

    def lines(self) -> list[str]:
        return [line.plain for line in list(self.screen)]

    def stop_the_server(self) -> None:
        wait_for(self.view.ready.is_set)
        self.running.server.shutdown()
        self.running.thread.join(10)
        self.running.server.close()

    def end(self, last: str | None) -> None:
        self.typed.put(last)
        self.thread.join(10)


def test_it_reconnects_when_the_server_is_back_and_sends_what_was_typed_meanwhile(make_server):
    first = make_server()
    chat = Chatting(first, Backoff(first=0.1, cap=0.3))  # forever, as at a terminal
    lines = chat.lines
    try:
        chat.stop_the_server()
        wait_for(lambda: sum("reconnecting in" in line for line in lines()) >= 3)
        chat.typed.put("anyone?")
        chat.typed.put("hello again")
        wait_for(lambda: any("(pending) hello again" in line for line in lines()))
        assert any(line.endswith("queued: will be sent after reconnecting") for line in lines())
        assert not any("giving up" in line for line in lines())

        make_server(port=first.port)
        wait_for(lambda: any(line.endswith("reconnected") for line in lines()))
        wait_for(lambda: any(line.endswith("<steady> hello again") for line in lines()))
        echoed = [line for line in lines() if "<steady>" in line]  # as the server echoes
        assert [line.split("<steady> ")[1] for line in echoed] == ["anyone?", "hello again"]
    finally:
        chat.end("/quit")
    assert chat.status == [ExitStatus.OK]


def test_lines_typed_while_down_are_listed_when_reconnecting_ends_for_good(make_server):
    """Nothing typed is lost without a word: if the connection never comes back, what
    waited for it is shown, to be copied."""
    chat = Chatting(make_server(), Backoff(first=0.2, cap=0.2, attempts=3))
    lines = chat.lines
    try:
        chat.stop_the_server()
        wait_for(lambda: any("reconnecting in" in line for line in lines()))
        chat.typed.put("/msg alice see you tomorrow")
        wait_for(lambda: any("giving up" in line for line in lines()))
        wait_for(lambda: any("see you tomorrow" in line and "pending" not in line
                             for line in lines()))  # fmt: skip
        shown = lines()
        assert "not sent, typed while the connection was down:" in shown
        assert "  alice: see you tomorrow" in shown
    finally:
        chat.end(None)


def test_a_paste_of_several_lines_is_one_multiline_message(server, clients):
    watcher = Client(server.port)
    clients.append(watcher)
    watcher.register("watcher", "batch draft/multiline message-tags")
    keys = paste("first\n\n/third, a path\n") + "\x04"
    status, shown, _ = join(server.port, "paster", keys)
    assert status == ExitStatus.OK
    opening = watcher.expect("BATCH")
    assert opening.params[1:] == ("draft/multiline", "#lobby")
    assert [m.params[1] for m in watcher.collect("BATCH")[:-1]] == ["first", "", "/third, a path"]
    # Its echo is shown as one message: one header, then its lines.
    assert "<paster> first\n      \n      /third, a path" in shown
