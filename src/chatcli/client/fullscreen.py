"""``chat join`` on a terminal: the full-screen client, built on Textual.

Layout: the buffers on the left (the server, each room, each direct conversation, with
unread and mention counts), the current buffer's topic and scrollback in the middle, its
members on the right (hidden on narrow terminals; F7 toggles), a status line and the input
line at the bottom.

Threads: Textual's event loop owns every widget and :class:`~chatcli.client.buffers.Buffers`.
The connection is the line client's (:func:`chatcli.client.app.chat_loop`), run on a
thread of its own, fed with what is typed through a queue; its reader thread posts what
arrives back as Textual messages (``post_message`` is thread-safe), so the loop alone
touches the screen. Reconnecting, queueing what is typed meanwhile, catching up on what
was missed: all as in line mode.

Keys: Alt-1..9 a buffer, Ctrl-N/Ctrl-P the next/previous, Alt-A the next with activity
(mentions first); PageUp/PageDown scroll, and scrolling up past the top fetches earlier
history; Tab completes aliases, commands and rooms; Ctrl-F searches the loaded scrollback;
Ctrl-C clears the line (on an empty one, twice quits), Ctrl-D on an empty line quits.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message as UIMessage
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, RichLog, Static
from textual.widgets.option_list import Option

from chatcli.client.app import (
    PASTE_ASK,
    QUIT_WINDOW,
    ChatView,
    Typed,
    chat_loop,
    paste_lines,
    tls_marker,
)
from chatcli.client.buffers import Activity, Buffer, Buffers, Kind, prefix_modes
from chatcli.client.formatting import clean, strip_formatting
from chatcli.client.history import EARLIER, NOTHING_EARLIER
from chatcli.client.input import Action, InputError, Local, command_names, parse_input
from chatcli.client.render import STYLE_ERROR, STYLE_SYSTEM, nick_style, note, render
from chatcli.client.session import ClientSession
from chatcli.errors import ExitStatus
from chatcli.protocol import Message, split_source

#: Messages asked for each time scrolling up passes the top of a buffer.
HISTORY_PAGE = 50
#: Seconds between pastes' lines: under the server's default pace (10 a second).
PASTE_PACE = 0.12
#: Seconds between the PINGs that measure the lag.
LAG_EVERY = 30.0
#: A lag shorter than this is not shown (as in irssi).
LAG_SHOWN = 1.0
#: Columns below which the member list starts hidden.
NARROW = 100
STYLE_MENTION = "on #3a2540"
MARKER = Text("──── new since you left ────", style="red")


def _read_alt_digits() -> None:
    """Most terminals send Alt-1 as ESC 1; Textual reads that as the character that
    Option-1 types on a Mac (as WezTerm sends it there), so that Alt-1..9 would never
    switch buffers. Have it read Alt-digit again (a table of Textual's own: if it goes,
    Alt-digits are what they are, and Ctrl-N/P still move)."""
    with contextlib.suppress(ImportError, AttributeError):
        from textual import _ansi_sequences

        for digit in "0123456789":
            _ansi_sequences.ANSI_SEQUENCES_KEYS.pop(f"\x1b{digit}", None)


_read_alt_digits()


class Received(UIMessage):
    """What one message from the server brought to show (from the reader thread)."""

    def __init__(self, messages: list[Message]) -> None:
        super().__init__()
        self.messages = messages


class Noted(UIMessage):
    """A line of the client's own (from the connection's threads)."""

    def __init__(self, line: Text) -> None:
        super().__init__()
        self.line = line


class Finished(UIMessage):
    """The connection's loop ended (the user quit, or the connection is gone for good)."""

    def __init__(self, status: ExitStatus) -> None:
        super().__init__()
        self.status = status


class Pasted(UIMessage):
    """Several lines were pasted into the input line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines


class Confirm(ModalScreen[bool]):
    """A yes/no question (Y or Enter: yes; N or Escape: no)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Label { border: round $accent; padding: 1 2; background: $panel; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Label(f"{self.question}  [y/N]")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ChatInput(Input):
    """The input line: Tab completes; a paste of several lines is handed to the app."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "complete", show=False, priority=True),
    ]

    def __init__(self, complete: Callable[[ChatInput], None], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._complete = complete

    def action_complete(self) -> None:
        self._complete(self)

    def _on_paste(self, event: events.Paste) -> None:
        event.prevent_default()
        event.stop()
        lines = paste_lines(event.text)
        if len(lines) <= 1:
            self.insert_text_at_cursor(lines[0] if lines else "")
            return
        text = self.value[: self.cursor_position] + event.text + self.value[self.cursor_position :]
        self.value = ""
        self.post_message(Pasted([line for line in paste_lines(text) if line.strip()]))


class Scrollback(RichLog):
    """The current buffer's lines; scrolling up past the top asks for earlier history."""

    class AtTop(UIMessage):
        pass

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self.scroll_y <= 0:
            self.post_message(self.AtTop())


class Completion:
    """Where Tab is in cycling through the candidates for one word."""

    def __init__(self, start: int, candidates: list[str], suffix: str) -> None:
        self.start, self.candidates, self.suffix = start, candidates, suffix
        self.index = -1
        self.produced = ""  #: the input's value after the last completion


class ChatApp(App[ExitStatus]):
    """The full-screen client, for one session that is connected already."""

    TITLE = "chat"
    ENABLE_COMMAND_PALETTE = False  # Ctrl-P is the previous buffer
    CSS = """
    Screen { layout: vertical; }
    #main { height: 1fr; }
    #buffers { width: 18; height: 100%; border: none; border-right: solid $primary-darken-2; }
    #centre { width: 1fr; }
    #topic { height: 1; background: $boost; padding: 0 1; }
    #log { height: 1fr; border: none; scrollbar-size-vertical: 1; }
    #members { width: 18; height: 100%; border: none; border-left: solid $primary-darken-2; }
    #search { display: none; height: 1; border: none; padding: 0 1; }
    #search.shown { display: block; }
    #status { height: 1; background: $primary-darken-3; padding: 0 1; }
    #input { height: 1; border: none; padding: 0 1; }
    OptionList { scrollbar-size-vertical: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "ctrl_c", show=False, priority=True),
        Binding("ctrl+d", "ctrl_d", show=False, priority=True),
        Binding("ctrl+n", "step(1)", show=False, priority=True),
        Binding("ctrl+p", "step(-1)", show=False, priority=True),
        Binding("alt+a", "active", show=False, priority=True),
        *(
            Binding(f"alt+{i}", f"go({i if i else 10})", show=False, priority=True)
            for i in range(10)
        ),
        Binding("pageup", "page(-1)", show=False, priority=True),
        Binding("pagedown", "page(1)", show=False, priority=True),
        Binding("ctrl+f", "search", show=False, priority=True),
        Binding("escape", "end_search", show=False),
        Binding("f7", "members", show=False, priority=True),
    ]

    def __init__(
        self,
        session: ClientSession,
        view: ChatView,
        burst: list[Message],
        *,
        room: str | None = None,
        rooms: Sequence[str] = (),
        bell: bool = True,
        desktop: bool = True,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        super().__init__()
        self.session, self.view = session, view
        self._burst, self._room, self._rooms = burst, room, tuple(rooms)
        self.want_bell, self.want_desktop = bell, desktop
        self.clock = clock
        self.buffers = Buffers(session.isupport)
        self.status = ExitStatus.OK
        self.finished = False  #: the connection's loop ended
        self.alerts: list[tuple[str, str]] = []  #: notifications raised (title, text)
        self._typed: queue.Queue[Typed | None] = queue.Queue()
        self._loop_thread: threading.Thread | None = None
        self._paste: list[tuple[str, str | None]] = []  # pasted lines still to send
        self._interrupted = float("-inf")
        self._completion: Completion | None = None
        #: A room asked for (typed, or given to chat join): show it once joined.
        asked = room or (rooms[-1] if rooms else None)
        self._wanted: str | None = asked.lower() if asked else None
        self._members_shown: bool | None = None  # None: as wide as the terminal allows
        self._lag: float | None = None
        self._ping_sent: dict[str, float] = {}
        self._searching = ""
        self._dirty = False
        self._width = NARROW  # the terminal's, at the last resize

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept: the main screen's widgets (a question on top is a screen of its own).
        self._list = OptionList(id="buffers")
        self._topic = Static(id="topic")
        self._log = Scrollback(id="log", wrap=True, markup=False, highlight=False)
        self._search = Input(id="search", placeholder="search the scrollback (Esc: done)")
        self._members = OptionList(id="members")
        self._statusbar = Static(id="status")
        self._input = ChatInput(self._complete, id="input", placeholder="type a message, /help")
        with Horizontal(id="main"):
            yield self._list
            with Vertical(id="centre"):
                yield self._topic
                yield self._log
                yield self._search
            yield self._members
        yield self._statusbar
        yield self._input

    def on_mount(self) -> None:
        self._list.can_focus = False
        self._members.can_focus = False
        self._log.can_focus = False
        self._input.focus()
        self._show_line(
            self.buffers.server,
            note(
                "Alt-1..9 or Ctrl-N/P: buffers · Alt-A: where something happened · PgUp: "
                "history · Tab: complete · Ctrl-F: search · F7: members · /help · Ctrl-D: quit",
                self.clock(),
            ),
        )
        self._loop_thread = threading.Thread(target=self._converse, name="chat", daemon=True)
        self._loop_thread.start()
        self.set_interval(LAG_EVERY, self._measure_lag)
        self._refresh_panels()

    def _converse(self) -> None:
        """The connection's loop (on its own thread); what it shows is posted to the app."""
        status = chat_loop(
            self.session,
            self.view,
            self._room,
            self._burst,
            lambda line: self.post_message(Noted(line)),
            self._typed.get,
            lambda: self._typed.put(None),
            batch=False,
            rooms=self._rooms,
            deliver=lambda messages: self.post_message(Received(messages)),
        )
        self.post_message(Finished(status))

    def on_unmount(self) -> None:
        """Leaving by any way (a key, an error): the connection's loop quits too."""
        thread = self._loop_thread
        if thread is not None and thread.is_alive():
            self._typed.put(Typed("/quit", None))
            thread.join(5.0)

    def on_resize(self, event: events.Resize) -> None:
        self._width = event.size.width
        self._place_members()
        # Once the new layout is known: lines wrap again at the log's new width.
        self.call_after_refresh(self._redraw)

    def _place_members(self) -> None:
        members = self._members
        shown = self._members_shown
        if shown is None:
            shown = self._width >= NARROW
        members.display = shown and self.buffers.current.kind is Kind.ROOM

    # -- what arrives -----------------------------------------------------------------------

    def on_received(self, event: Received) -> None:
        with self.view.lock:
            me = self.view.nick
        messages = event.messages
        if messages[0].command == EARLIER and messages[0].source is None:
            self._earlier(messages[0].params[0], messages[1:], me)
        else:
            for msg in messages:
                self._receive(msg, me)
        self._later()

    def _receive(self, msg: Message, me: str) -> None:
        if msg.command == "PONG" and msg.params and msg.params[-1] in self._ping_sent:
            self._lag = time.monotonic() - self._ping_sent.pop(msg.params[-1])
            return
        shown = self.buffers.route(msg, me)
        line = render(msg, me, self.clock(), rooms_named=False)
        if msg.command == NOTHING_EARLIER and shown and line is not None:
            shown[0].buffer.prepend([line])
            if shown[0].buffer is self.buffers.current:
                self._redraw()
            return
        for where in shown:
            if line is None:
                break
            self._add(where.buffer, line.copy(), where.mention, where.chat)
        joined = msg.command == "JOIN" and msg.params and split_source(msg.source or "")[0]
        if not joined or joined.lower() != me.lower():
            return
        # The room asked for, or the first room (the default one) while nothing else is.
        first = self._wanted is None and self.buffers.current.kind is Kind.SERVER
        if msg.params[0].lower() == self._wanted or first:
            self._wanted = None
            found = self.buffers.get(msg.params[0])
            if found is not None:
                self._switch(found)

    def _add(self, buffer: Buffer, line: Text, mention: bool, chat: bool) -> None:
        if mention:
            line.stylize(STYLE_MENTION)
        activity = Activity.MENTION if mention else Activity.MESSAGES if chat else Activity.EVENTS
        self.buffers.note(buffer, line, activity)
        if buffer is self.buffers.current:
            if not self._searching:
                log = self._log  # (followed only by a reader at the end of it)
                log.write(line, scroll_end=log.scroll_y >= log.max_scroll_y - 1)
        elif mention:
            self._alert(buffer, line)

    def _earlier(self, name: str, messages: list[Message], me: str) -> None:
        """A /history answer: its lines go before the buffer's first."""
        buffer = self.buffers.get(name)
        if buffer is None:
            return
        when = self.clock()
        lines = [
            line
            for msg in messages
            if (line := render(msg, me, when, rooms_named=False)) is not None
        ]
        log = self._log
        after = len(log.lines) - int(log.scroll_y)  # rows from the top line shown to the end
        buffer.prepend(lines)
        if buffer is self.buffers.current:
            self._redraw(bottom=False)
            # The same lines stay in view; the new ones are above, to scroll up to.
            log.scroll_to(y=max(0, len(log.lines) - after), animate=False, immediate=True)

    def _alert(self, buffer: Buffer, line: Text) -> None:
        """A mention or direct message out of view: the bell, and a desktop notification
        (OSC 777 and OSC 9, which many terminals turn into a system notification)."""
        title = f"chat: {buffer.name}"
        body = clean(strip_formatting(line.plain))[:200]
        self.alerts.append((title, body))
        if self.want_bell:
            self.bell()
        if self.want_desktop and not self.is_headless and self._driver is not None:
            safe = body.replace(";", ",")
            self._driver.write(f"\x1b]777;notify;{title};{safe}\x1b\\\x1b]9;{title}: {body}\x07")

    def on_noted(self, event: Noted) -> None:
        self._show_line(self.buffers.current, event.line)
        self._later()

    def _show_line(self, buffer: Buffer, line: Text) -> None:
        self._add(buffer, line, mention=False, chat=False)

    def on_finished(self, event: Finished) -> None:
        self.finished = True
        self.status = event.status
        if self.session.quitting:
            self.exit(event.status)
            return
        self._show_line(
            self.buffers.current,
            Text("disconnected for good: Ctrl-D or /quit leaves", style=STYLE_ERROR),
        )
        self._refresh_panels()

    # -- what is typed ----------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "search":
            return
        typed = event.value
        event.input.value = ""
        self._completion = None
        self._submit(typed)

    def _here(self) -> str | None:
        """Where plain text typed now goes: the current room or person."""
        buffer = self.buffers.current
        return None if buffer.kind is Kind.SERVER else buffer.name

    def _submit(self, typed: str, here: str | None = None, *, pasted: bool = False) -> None:
        here = self._here() if here is None and not pasted else here
        if self.finished:
            if typed.strip().lower().split(" ")[0] in ("/quit", "/exit"):
                self.exit(self.status)
            else:
                self._show_line(self.buffers.current, note("not connected: Ctrl-D leaves"))
            return
        if not pasted and typed.startswith("/") and not typed.startswith("//"):
            try:
                action = parse_input(typed, here)
            except InputError:
                action = None  # the connection's loop says what is wrong
            if action is not None and self._local(action, typed):
                return
        self._typed.put(Typed(typed, here))

    def _local(self, action: Action, typed: str) -> bool:
        """Act on what only the full-screen client does; True if done."""
        buffers = self.buffers
        if action.local is Local.QUERY:
            buffer = buffers.open(action.target)
            self._switch(buffer)
            text = typed.split(None, 2)[2] if len(typed.split(None, 2)) > 2 else ""
            if text:
                self._typed.put(Typed("/" + text if text.startswith("/") else text, buffer.name))
            return True
        if action.local is Local.CLOSE:
            buffer = buffers.get(action.target) if action.target else buffers.current
            if buffer is None or buffer.kind is Kind.SERVER:
                self._show_line(buffers.current, note("the server's buffer stays open"))
                return True
            if buffer.kind is Kind.ROOM and buffer.joined:
                self._typed.put(Typed(f"/part {buffer.name}", buffer.name))
            buffers.close(buffer)
            self._switched()
            return True
        if action.local is Local.CLEAR:
            buffers.current.lines.clear()
            buffers.current.marker = None
            self._redraw()
            return True
        if action.local is Local.HISTORY:
            self._fetch_earlier(action.count)
            return True
        if action.room is not None:
            found = buffers.get(action.room)
            if found is not None and found.joined:
                self._switch(found)
            else:
                self._wanted = action.room.lower()
        return False

    def on_pasted(self, event: Pasted) -> None:
        lines, here = event.lines, self._here()
        if not lines:
            return
        if len(lines) <= PASTE_ASK:
            self._send_paste(lines, here)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._send_paste(lines, here)
            else:
                self._show_line(self.buffers.current, note("paste not sent"))

        self.push_screen(Confirm(f"Send the {len(lines)} lines pasted, one a message?"), answered)

    def _send_paste(self, lines: list[str], here: str | None) -> None:
        """Send a paste's lines in order, paced under the server's flood limit; pasted
        text is text: a "/" in it runs no command."""
        start = not self._paste
        self._paste.extend(("/" + line if line.startswith("/") else line, here) for line in lines)
        if start:
            self._paste_next()

    def _paste_next(self) -> None:
        if not self._paste:
            self._refresh_panels()
            return
        line, here = self._paste.pop(0)
        self._submit(line, here, pasted=True)
        self._refresh_panels()
        self.set_timer(PASTE_PACE, self._paste_next)

    # -- keys -------------------------------------------------------------------------------

    def action_ctrl_c(self) -> None:
        field = self.focused if isinstance(self.focused, Input) else None
        if field is not None and field.value:
            field.value = ""
            self._completion = None
        elif time.monotonic() - self._interrupted < QUIT_WINDOW:
            self._quit()
        else:
            self._interrupted = time.monotonic()
            self._show_line(
                self.buffers.current, note("press Ctrl-C again to quit (or Ctrl-D, or /quit)")
            )

    def action_ctrl_d(self) -> None:
        field = self.focused if isinstance(self.focused, Input) else None
        if field is not None and field.value:
            field.action_delete_right()
        else:
            self._quit()

    def _quit(self) -> None:
        if self.finished:
            self.exit(self.status)
        else:
            self._paste.clear()
            self._typed.put(Typed("/quit", None))

    def action_step(self, by: int) -> None:
        self.buffers.step(by)
        self._switched()

    def action_go(self, number: int) -> None:
        if self.buffers.switch_to(number) is not None:
            self._switched()

    def action_active(self) -> None:
        buffer = self.buffers.next_active()
        if buffer is not None:
            self._switch(buffer)

    def action_page(self, by: int) -> None:
        log = self._log
        if by < 0 and log.scroll_y <= 0:
            self._fetch_earlier(HISTORY_PAGE)
        elif by < 0:
            log.scroll_page_up(animate=False)
        else:
            log.scroll_page_down(animate=False)

    def on_scrollback_at_top(self, event: Scrollback.AtTop) -> None:
        self._fetch_earlier(HISTORY_PAGE)

    def action_members(self) -> None:
        members = self._members
        self._members_shown = not members.display
        self._place_members()

    def action_search(self) -> None:
        search = self._search
        search.add_class("shown")
        search.focus()

    def action_end_search(self) -> None:
        search = self._search
        if not search.has_class("shown"):
            return
        search.value = ""
        search.remove_class("shown")
        self._searching = ""
        self._redraw()
        self._input.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "search":
            self._searching = event.value
            self._redraw()
        elif self._completion is not None and event.value != self._completion.produced:
            self._completion = None

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "buffers":
            self.action_go(event.option_index + 1)
        elif event.option_list.id == "members" and event.option.id:
            self._switch(self.buffers.open(event.option.id))
        self._input.focus()

    # -- completion -------------------------------------------------------------------------

    def _complete(self, field: ChatInput) -> None:
        """Tab: the next candidate for the word before the cursor (aliases, ``/commands``,
        ``#rooms``); an alias at the start of the line gets ``: ``."""
        done = self._completion
        if done is None or field.value != done.produced:
            before = field.value[: field.cursor_position]
            start = len(before) - len(re.split(r"\s", before)[-1])
            word = before[start:]
            done = Completion(start, self._candidates(word, start == 0), "")
            done.suffix = ": " if start == 0 and not word.startswith(("/", "#")) else " "
            if not done.candidates:
                self.bell()
                return
            self._completion = done
        done.index = (done.index + 1) % len(done.candidates)
        rest = field.value[field.cursor_position :]
        head = field.value[: done.start] + done.candidates[done.index] + done.suffix
        done.produced = head + rest
        field.value = done.produced
        field.cursor_position = len(head)

    def _candidates(self, word: str, first: bool) -> list[str]:
        low = word.lower()
        if word.startswith("/") and first:
            names = [f"/{name}" for name in command_names()]
        elif word.startswith("#"):
            names = [b.name for b in self.buffers if b.kind is Kind.ROOM]
        else:
            current = self.buffers.current
            names = [m.nick for m in current.members.values()]
            names += [b.name for b in self.buffers if b.kind is Kind.QUERY]
            with self.view.lock:
                me = self.view.nick.lower()
            names = [name for name in names if name.lower() != me]
        return sorted({name for name in names if name.lower().startswith(low)}, key=str.lower)

    # -- moving around ----------------------------------------------------------------------

    def _switch(self, buffer: Buffer) -> None:
        self.buffers.switch(buffer)
        self._switched()

    def _switched(self) -> None:
        self._place_members()
        self._redraw()
        self._refresh_panels()

    def _fetch_earlier(self, count: int) -> None:
        buffer = self.buffers.current
        if buffer.kind is Kind.SERVER or buffer.history_done:
            return
        if "CHATHISTORY" not in self.session.isupport:
            buffer.history_done = True
            self._show_line(buffer, note("this server keeps no history to scroll back to"))
            return
        self._typed.put(Typed(f"/history {count}", buffer.name))

    def _measure_lag(self) -> None:
        with self.view.queue_lock:
            down = self.view.down
        if down or self.finished:
            return
        token = f"lag-{time.monotonic_ns()}"
        self._ping_sent = {token: time.monotonic()}
        with contextlib.suppress(Exception):
            self.session.send(Message("PING", (token,)))

    # -- drawing ----------------------------------------------------------------------------

    def _redraw(self, *, bottom: bool = True) -> None:
        """Draw the current buffer's lines again (after a switch, a resize, a search), and
        show its end (with ``bottom``)."""
        log = self._log
        buffer = self.buffers.current
        log.clear()
        if self._searching:
            wanted = self._searching.lower()
            found = [line for line in buffer.lines if wanted in line.plain.lower()]
            holds = "line holds" if len(found) == 1 else "lines hold"
            heading = Text(f"{len(found)} {holds} {self._searching!r}", style=STYLE_SYSTEM)
            for line in [heading, *found]:
                log.write(line, scroll_end=False)
            return
        marker = buffer.marker
        for index, line in enumerate(buffer.lines):
            if index == marker:
                log.write(MARKER, scroll_end=False)
            log.write(line, scroll_end=False)
        if bottom:
            log.scroll_end(animate=False, immediate=True)

    def _later(self) -> None:
        """Refresh the panels once the messages waiting are handled."""
        if not self._dirty:
            self._dirty = True
            self.call_later(self._refresh_panels)

    def _refresh_panels(self) -> None:
        self._dirty = False
        buffers = self.buffers
        listing = self._list
        listing.clear_options()
        listing.add_options([Option(self._entry(i, b)) for i, b in enumerate(buffers, 1)])
        listing.highlighted = buffers.index(buffers.current)
        current = buffers.current
        topic = self._topic
        if current.kind is Kind.ROOM:
            topic.update(Text(f"{current.name}: ").append(clean(strip_formatting(current.topic))))
        elif current.kind is Kind.QUERY:
            topic.update(Text(f"talking with {current.name}"))
        else:
            topic.update(Text(self.session.server_name or self.session.host))
        members = self._members
        members.clear_options()
        _, order = prefix_modes(self.session.isupport)
        members.add_options(
            [
                Option(
                    Text(
                        f"{m.prefixes[:1] or ' '}{m.nick}",
                        style="dim" if m.away else nick_style(m.nick),
                    ),
                    id=m.nick,
                )
                for m in current.sorted_members(order)
            ]
        )
        self._statusbar.update(self._status())
        self._place_members()

    def _entry(self, number: int, buffer: Buffer) -> Text:
        style = {
            Activity.MENTION: "bold magenta",
            Activity.MESSAGES: "bold",
            Activity.EVENTS: "",
            Activity.NONE: "dim" if buffer.kind is Kind.ROOM and not buffer.joined else "",
        }[buffer.activity]
        entry = Text(f"{number:>2} ", style="dim").append(buffer.name, style=style)
        if buffer.mentions:
            entry.append(f" @{buffer.mentions}", style="bold magenta")
        if buffer.unread:
            entry.append(f" {buffer.unread}", style="bold")
        return entry

    def _status(self) -> Text:
        with self.view.lock:
            nick = self.view.nick
        with self.view.queue_lock:
            down, pending = self.view.down, len(self.view.queue)
        state = "disconnected" if self.finished else "reconnecting" if down else "connected"
        line = Text()
        line.append(f"[{nick}] ", style="bold")
        line.append(tls_marker(self.session))
        line.append(state, style=STYLE_ERROR if down or self.finished else "")
        if self._lag is not None and self._lag >= LAG_SHOWN:
            line.append(f" · lag {self._lag:.1f}s")
        if pending:
            line.append(f" · {pending} pending", style="yellow")
        if self._paste:
            line.append(f" · pasting, {len(self._paste)} to go", style="yellow")
        if (current := self.buffers.current).kind is Kind.ROOM:
            line.append(f" · {current.name} ({len(current.members)})")
        return line


def run_full_screen(
    session: ClientSession,
    view: ChatView,
    burst: list[Message],
    room: str | None,
    rooms: Sequence[str] = (),
    *,
    bell: bool = True,
    desktop: bool = True,
) -> ExitStatus:
    """Chat full-screen until the user quits."""
    app = ChatApp(session, view, burst, room=room, rooms=rooms, bell=bell, desktop=desktop)
    status = app.run()
    return app.status if status is None else status
