"""``chat join``: connect, then chat full-screen on a terminal, or in line mode.

Above both clients: :mod:`chatcli.client.app` (the line client and the connection loop
they share) and :mod:`chatcli.client.fullscreen` (the Textual application), which is
imported only when it runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich.console import Console

from chatcli.client.app import (
    ALIAS_TRIES,
    ChatView,
    ask_password_again,
    connect_asking,
    run_line_editor,
    run_lines,
)
from chatcli.client.session import ClientSession
from chatcli.defaults import DEFAULT_ROOM
from chatcli.errors import ExitStatus
from chatcli.protocol import caps

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output

    from chatcli.client.profiles import ClientConfig


def run_join(
    session: ClientSession,
    room: str | None,
    *,
    plain: bool = False,
    config: ClientConfig | None = None,
    rooms: Sequence[str] = (),
    console: Console | None = None,
    interactive: bool | None = None,
    ask_password: Callable[[str], str | None] | None = None,
    terminal_input: Input | None = None,
    terminal_output: Output | None = None,
) -> ExitStatus:
    """Connect, then chat until the user quits or the connection ends.

    An alias that is taken is replaced by ``alias_`` (then ``alias__``, ...,
    :data:`ALIAS_TRIES` times at most). A wrong account password is asked again with
    ``ask_password`` (given the alias; None or empty: do not log in), :data:`PASSWORD_TRIES`
    times in all; without it, on a terminal, the terminal asks; otherwise it is not asked.

    Args:
        console: where lines are shown (default: standard output).
        interactive: use the line editor (default: if standard input and output are a
            terminal); else each line of standard input is sent.
        terminal_input, terminal_output: the line editor's (default: the terminal).

    Raises:
        ChatError: connecting or registering failed.
    """
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if ask_password is None and sys.stdin is not None and sys.stdin.isatty():
        ask_password = ask_password_again
    session.alias_tries = ALIAS_TRIES
    burst = connect_asking(session, ask_password)
    if room is None and caps.AUTOJOIN not in session.caps:
        room = DEFAULT_ROOM  # another IRC server: go where chatcli would have put us
    view = ChatView(session, None, config)
    if interactive and not plain and os.environ.get("TERM") != "dumb" and console is None:
        from chatcli.client.fullscreen import run_full_screen  # (Textual: only here)

        return run_full_screen(
            session,
            view,
            burst,
            room,
            rooms,
            bell=config.bell if config else True,
            desktop=config.desktop if config else True,
        )
    if interactive:
        return run_line_editor(
            session, view, room, burst, console, terminal_input, terminal_output, rooms
        )
    if console is None:
        console = Console(file=sys.stdout, highlight=False)
        # A pipe or a file gets one line a message, never wrapped (at Rich's 80 columns).
        console.soft_wrap = not console.is_terminal
    return run_lines(session, view, room, burst, console, sys.stdin, rooms)
