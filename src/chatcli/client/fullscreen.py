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

Messages: a paste of several lines goes as one message where the server takes IRCv3
draft/multiline (several, each as big as it allows, if it is too big for one); a
message's lines are shown together under one header. Up on an empty input line picks a
message (the latest; Up/Down move): R replies to it, D deletes it (after a yes), 1-6 or E
react to it, Esc is done. A reply shows first what it answers; reactions are counted under
their message; a deleted message says so. A buffer in view is marked read on the server
(IRCv3 draft/read-marker), and one read on another device of the account loses its
unread count. People's display names and colours (IRCv3 draft/metadata-2) are shown.

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
    help_text,
    multiline_limits,
    multiline_paste,
    paste_lines,
    reaction,
    tls_marker,
)
from chatcli.client.buffers import (
    REPLY_TAG,
    Activity,
    Buffer,
    Buffers,
    Entry,
    Kind,
    prefix_modes,
)
from chatcli.client.formatting import clean, strip_formatting
from chatcli.client.history import EARLIER, NOTHING_EARLIER
from chatcli.client.input import (
    Action,
    InputError,
    Local,
    Multiline,
    command_names,
    parse_input,
)
from chatcli.client.render import (
    STYLE_ERROR,
    STYLE_MENTION,
    STYLE_SYSTEM,
    compose,
    gist,
    nick_style,
    note,
    render,
)
from chatcli.client.session import ClientSession
from chatcli.errors import ExitStatus
from chatcli.protocol import Message, caps, split_source
from chatcli.protocol import numerics as n

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
#: The columns of a name in the member list (its width, less border, scrollbar, padding).
MEMBER_COLUMNS = 14
#: The reactions 1 to 6 send on a message picked.
QUICK_REACTIONS = ("👍", "❤", "😂", "😮", "😢", "🎉")
#: The style of the message picked.
STYLE_PICKED = "reverse"
#: Seconds a buffer in view waits before saying it is read (MARKREAD), so that a burst of
#: lines is one marker.
MARK_READ_AFTER = 1.0
#: What the status line says while a message is picked.
PICKING = (
    "↑↓ move · R reply · D delete · 1-6 react "
    + " ".join(QUICK_REACTIONS)
    + " · E other reaction · Esc done"
)
#: The keys of the full-screen client, as /help lists them.
KEYS = [
    ("Alt-1..9, Ctrl-N/P", "go to a buffer, the next, the previous"),
    ("Alt-A", "the next buffer where something happened (mentions first)"),
    ("PageUp/PageDown", "scroll (past the top: earlier history)"),
    ("Tab", "complete an alias, a /command, a #room"),
    ("Ctrl-F", "search the scrollback"),
    ("F7", "show or hide the member list"),
    ("↑ (empty line)", "pick a message: ↑↓ move, then"),
    ("  R", "reply to it (type the reply, Enter)"),
    ("  D or Delete", "delete it (after a yes)"),
    ("  1-6", "react " + " ".join(QUICK_REACTIONS)),
    ("  E", "react with anything (type it, Enter)"),
    ("  Esc", "done"),
    ("Ctrl-C, Ctrl-D", "clear the line; on an empty line, quit"),
]
#: METADATA numerics (IRCv3 draft/metadata-2): the answers to SUB, UNSUB and SUBS and a
#: sync put off, none of them shown.
_METADATA_QUIET = {
    n.RPL_METADATASUBOK, n.RPL_METADATAUNSUBOK, n.RPL_METADATASUBS, n.RPL_METADATASYNCLATER,
}  # fmt: skip
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
    """Several lines were pasted into the input line (blank ones too)."""

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
        self.post_message(Pasted(paste_lines(text)))


class Scrollback(RichLog):
    """The current buffer's lines; scrolling up past the top asks for earlier history.
    While a message is picked, it has the focus and these keys act on that message."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "app.pick(-1)", "previous", show=False),
        Binding("down,j", "app.pick(1)", "next", show=False),
        Binding("r", "app.pick_reply", "reply", show=False),
        Binding("d,delete", "app.pick_delete", "delete", show=False),
        Binding("e,plus", "app.pick_react", "react", show=False),
        *(
            Binding(str(i), f"app.pick_quick({i})", show=False)
            for i in range(1, len(QUICK_REACTIONS) + 1)
        ),
        Binding("escape,q,enter", "app.pick_done", "done", show=False),
    ]

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
        Binding("up", "pick_start", show=False),
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
        # Pasted lines (or multiline batches) still to send.
        self._paste: list[tuple[str, str | None, Action | None]] = []
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
        self._picked: Entry | None = None  #: the message picked, in the current buffer
        #: A reply (or a reaction) being typed: what to, and to which message.
        self._composing: tuple[str, Entry] | None = None
        self._mark_due = False  # a MARKREAD for the buffer in view is to be sent
        self._redraw_due = False  # the buffer in view is to be drawn again
        self._restyle: set[str] = set()  # (folded) aliases whose lines are to be composed again
        self._focused = True  # the terminal has the focus (where it says)
        self._picked_y: int | None = None  # the log's row of the message picked, drawn

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept: the main screen's widgets (a question on top is a screen of its own).
        self._list = OptionList(id="buffers")
        self._topic = Static(id="topic")
        # (min_width: RichLog's own, 78 columns, would cut lines in a narrower log)
        self._log = Scrollback(id="log", wrap=True, markup=False, highlight=False, min_width=1)
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
                "history · Tab: complete · Ctrl-F: search · F7: members · ↑: pick a message "
                "(reply, react, delete) · /help · Ctrl-D: quit",
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
        if self._changes(msg, me):
            return
        before = self.buffers.current
        shown = self.buffers.route(msg, me)
        if msg.command == "RENAME" and shown:
            self._renamed(msg.params[0], msg.params[1], before)
        said = _said(msg)  # (a person's message: its line is composed for each buffer)
        names = self.buffers.shown_name
        line = None if said else render(msg, me, self.clock(), rooms_named=False, names=names)
        if msg.command == NOTHING_EARLIER and shown and line is not None:
            shown[0].buffer.prepend([line])
            if shown[0].buffer is self.buffers.current:
                self._redraw()
            return
        for where in shown:
            if said is not None:
                entry = Entry(msg, said, mention=where.mention)
                composed = self._compose(where.buffer, entry)
                self._add(where.buffer, composed, where.mention, where.chat, entry)
                continue
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

    def _renamed(self, old: str, new: str, before: Buffer) -> None:
        """The room ``old`` is now named ``new`` (its buffer is renamed already): a room
        asked for, and pasted lines still to send there, follow it; if the buffer in view
        gave way to it, it comes in view."""
        was = old.lower()
        if self._wanted == was:
            self._wanted = new.lower()
        self._paste = [
            (line, new, _readdressed(action, was, new))
            if here is not None and here.lower() == was
            else (line, here, action)
            for line, here, action in self._paste
        ]
        if self.buffers.current is not before:
            self._switched()
        self._later()

    def _changes(self, msg: Message, me: str) -> bool:
        """Follow what changes lines shown, counts or names (a deletion, a reaction, a
        read marker, metadata); True if ``msg`` is nothing more to show."""
        cmd, params, buffers = msg.command, msg.params, self.buffers
        if cmd == "REDACT":
            if (found := buffers.redacted(msg, me)) is not None:
                if self._picked is found[0].entries[found[1]]:
                    self._pick_done()
                self._changed(*found)
            return True
        if cmd == "TAGMSG":
            if (found := buffers.reacted(msg, me)) is not None:
                self._changed(*found)
            return True
        if cmd == "MARKREAD":
            buffers.marked_read(msg, me)
            self._later()
            return True
        if cmd == "METADATA" and len(params) >= 3:
            self._metadata(params[0], params[1], params[3] if len(params) > 3 else None)
            return True
        if cmd in (n.RPL_KEYVALUE, n.RPL_KEYNOTSET) and len(params) >= 3:
            value = params[4] if cmd == n.RPL_KEYVALUE and len(params) > 4 else None
            self._metadata(params[1], params[2], value)
            return True
        return cmd in _METADATA_QUIET

    def _metadata(self, target: str, key: str, value: str | None) -> None:
        """Someone's display name or colour changed: their lines are drawn again, once the
        messages waiting are handled (a room's burst of names is one pass)."""
        if not self.buffers.metadata(target, key, value):
            return
        if not self._restyle:
            self.call_later(self._restyled)
        self._restyle.add(target.lower())
        self._later()

    def _restyled(self) -> None:
        """Compose again the lines of those whose names or colours changed."""
        folded, self._restyle = self._restyle, set()
        for buffer in self.buffers:
            for index, entry in enumerate(buffer.entries):
                if entry is not None and entry.nick.lower() in folded:
                    buffer.lines[index] = self._compose(buffer, entry)
                    if buffer is self.buffers.current:
                        self._redraw_soon()

    def _compose(self, buffer: Buffer, entry: Entry) -> Text:
        """The line of a person's message, with what it answers (if shown in ``buffer``)."""
        parent = None
        if entry.reply_to is not None and (index := buffer.find(entry.reply_to)) is not None:
            parent = buffer.entries[index]
        with self.view.lock:
            me = self.view.nick
        return compose(entry, me, self.clock(), parent=parent, names=self.buffers.shown_name)

    def _changed(self, buffer: Buffer, index: int) -> None:
        """The message at ``index`` changed (deleted, reacted to): draw it again, and the
        replies to it."""
        entry = buffer.entries[index]
        assert entry is not None
        buffer.lines[index] = self._compose(buffer, entry)
        for at in range(index + 1, len(buffer.entries)):
            other = buffer.entries[at]
            if other is not None and entry.msgid and other.reply_to == entry.msgid:
                buffer.lines[at] = self._compose(buffer, other)
        if buffer is self.buffers.current:
            self._redraw_soon()

    def _redraw_soon(self) -> None:
        """Draw the current buffer again once the messages waiting are handled (a burst
        of reactions or of names is one drawing)."""
        if not self._redraw_due:
            self._redraw_due = True
            self.call_later(self._redraw_in_place)

    def _redraw_in_place(self) -> None:
        """Draw the current buffer again where it is scrolled to (at its end if there)."""
        self._redraw_due = False
        log = self._log
        y, end = log.scroll_y, log.scroll_y >= log.max_scroll_y - 1
        self._redraw(bottom=end)
        if not end:
            log.scroll_to(y=y, animate=False, immediate=True)

    def _add(
        self, buffer: Buffer, line: Text, mention: bool, chat: bool, entry: Entry | None = None
    ) -> None:
        if mention and entry is None:
            line.stylize(STYLE_MENTION)
        activity = Activity.MENTION if mention else Activity.MESSAGES if chat else Activity.EVENTS
        self.buffers.note(buffer, line, activity, entry)
        if buffer is self.buffers.current:
            if entry is not None:
                self._mark_read_soon()
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
        lines: list[Text] = []
        entries: list[Entry | None] = []
        reactions = []  # counted under their messages once those are in
        for msg in messages:
            if msg.command in ("TAGMSG", "REDACT"):
                reactions.append(msg)
                continue
            said = _said(msg)
            if said is not None:  # (composed below, once what it answers is in too)
                lines.append(Text())
                entries.append(Entry(msg, said))
                continue
            line = render(msg, me, when, rooms_named=False, names=self.buffers.shown_name)
            if line is not None:
                lines.append(line)
                entries.append(None)
        log = self._log
        after = len(log.lines) - int(log.scroll_y)  # rows from the top line shown to the end
        buffer.prepend(lines, entries)
        for msg in reactions:
            if msg.command == "REDACT":
                self.buffers.redacted(msg, me)
            else:
                self.buffers.reacted(msg, me)
        for index, entry in enumerate(buffer.entries[: len(lines)]):
            if entry is not None:
                buffer.lines[index] = self._compose(buffer, entry)
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
        if self._composing is not None:
            self._send_composed(typed)
            return
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
            buffers.current.clear()
            self._picked = None
            self._redraw()
            return True
        if action.local is Local.HISTORY:
            self._fetch_earlier(action.count)
            return True
        if action.local is Local.HELP:
            keys = Text("Keys:\n", style=STYLE_SYSTEM)
            for key, what in KEYS:
                keys.append(f"  {key:<24}", style="bold").append(f"{what}\n")
            self._show_line(buffers.current, help_text().append_text(keys))
            return True
        if action.room is not None:
            found = buffers.get(action.room)
            if found is not None and found.joined:
                self._switch(found)
            else:
                self._wanted = action.room.lower()
        return False

    def on_pasted(self, event: Pasted) -> None:
        here = self._here()
        limits = multiline_limits(self.session)
        if here is not None and limits is not None:
            self._paste_multiline(event.lines, here, limits)
            return
        lines = [line for line in event.lines if line.strip()]
        if not lines:
            return
        if len(lines) <= PASTE_ASK:
            self._send_paste(lines, here)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._send_paste(lines, here)
            else:
                self._show_line(self.buffers.current, note("paste not sent", self.clock()))

        self.push_screen(Confirm(f"Send the {len(lines)} lines pasted, one a message?"), answered)

    def _paste_multiline(self, lines: list[str], here: str, limits: Multiline) -> None:
        """A paste as one multiline message (IRCv3 draft/multiline), a reply if one is
        being typed; if the server's limits cannot hold it, as several, once the user says
        yes."""
        batches = multiline_paste(self.session, here, lines, self._reply_tags()) or []
        if not batches:
            return
        count = len([line for line in lines if line.strip()])
        heading = f"(paste of {count} lines)"
        actions: list[tuple[str, str | None, Action | None]] = [
            (heading, here, batch) for batch in batches
        ]
        if len(batches) == 1:
            self._send_paste_actions(actions)
            return
        most = f"{limits.max_bytes} bytes" + (
            f" or {limits.max_lines} lines" if limits.max_lines else ""
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._send_paste_actions(actions)
            else:
                self._show_line(self.buffers.current, note("paste not sent", self.clock()))

        self.push_screen(
            Confirm(
                f"The server takes at most {most} in one message. "
                f"Send the {count} lines pasted as {len(batches)} messages?"
            ),
            answered,
        )

    def _send_paste_actions(self, actions: list[tuple[str, str | None, Action | None]]) -> None:
        start = not self._paste
        self._paste.extend(actions)
        if self._composing is not None and self._composing[0] == "reply":
            self._compose_done()
        if start:
            self._paste_next()

    def _send_paste(self, lines: list[str], here: str | None) -> None:
        """Send a paste's lines in order, paced under the server's flood limit; pasted
        text is text: a "/" in it runs no command."""
        start = not self._paste
        self._paste.extend(
            ("/" + line if line.startswith("/") else line, here, None) for line in lines
        )
        if start:
            self._paste_next()

    def _paste_next(self) -> None:
        if not self._paste:
            self._refresh_panels()
            return
        line, here, action = self._paste.pop(0)
        if action is not None:
            self._typed.put(Typed(line, here, action))
        else:
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
        if self._composing is not None and not search.has_class("shown"):
            self._compose_done()
            return
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
        if self._picked is not None:
            self._pick_done()
        if self._composing is not None:
            self._compose_done()
        self._place_members()
        self._redraw()
        self._refresh_panels()
        self._mark_read_soon()

    # -- read markers -----------------------------------------------------------------------

    def _mark_read_soon(self) -> None:
        """The buffer in view is read: say so to the server shortly (IRCv3 read-marker)."""
        if self._mark_due or caps.READ_MARKER not in self.session.caps:
            return
        if self.session.account is None:  # (markers are an account's)
            return
        self._mark_due = True
        self.set_timer(MARK_READ_AFTER, self._mark_read)

    def on_app_blur(self, event: events.AppBlur) -> None:
        """The terminal lost the focus (where it says so): lines in view are not read."""
        self._focused = False

    def on_app_focus(self, event: events.AppFocus) -> None:
        self._focused = True
        self._mark_read_soon()

    def _mark_read(self) -> None:
        self._mark_due = False
        buffer = self.buffers.current
        if buffer.kind is Kind.SERVER or self.finished or not self._focused:
            return
        latest = next(
            (e for e in reversed(buffer.entries) if e is not None and e.when is not None), None
        )
        if latest is None or latest.when is None:
            return
        if buffer.read_at is not None and latest.when <= buffer.read_at:
            return
        buffer.read_at = latest.when
        stamp = latest.msg.tags["time"]
        with contextlib.suppress(Exception):
            self.session.send(Message("MARKREAD", (buffer.name, f"timestamp={stamp}")))

    # -- a message picked -------------------------------------------------------------------

    def _pickable(self) -> list[Entry]:
        """The messages of the buffer in view that can be acted on (with a msgid)."""
        return [
            e for e in self.buffers.current.entries if e is not None and e.msgid and not e.deleted
        ]

    def action_pick_start(self) -> None:
        """Up on an empty input line: pick the latest message of the buffer in view."""
        if self.focused is not self._input or self._input.value or self._searching:
            return
        pickable = self._pickable()
        if not pickable:
            self._show_line(self.buffers.current, note("no message here to pick", self.clock()))
            return
        self._picked = pickable[-1]
        self._log.can_focus = True
        self._log.focus()
        self._show_picked()

    def action_pick(self, by: int) -> None:
        pickable = self._pickable()
        if self._picked is None or self._picked not in pickable:
            self._pick_done()
            return
        index = pickable.index(self._picked) + by
        if index >= len(pickable):
            self._pick_done()
            return
        self._picked = pickable[max(0, index)]
        self._show_picked()

    def _show_picked(self) -> None:
        self._redraw(bottom=False)
        log = self._log
        y = self._picked_y
        if y is not None:
            log.scroll_to(y=max(0, y - log.size.height // 2), animate=False, immediate=True)
        self._statusbar.update(self._status())

    def action_pick_done(self) -> None:
        self._pick_done()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """A click elsewhere (the input line...) while a message is picked ends the pick."""
        if self._picked is not None and event.widget is not self._log:
            self._pick_done()

    def _pick_done(self) -> None:
        had = self._picked is not None
        self._picked = None
        self._log.can_focus = False
        if had:
            self._input.focus()
            self._redraw()
            self._statusbar.update(self._status())

    def action_pick_reply(self) -> None:
        self._start_composing("reply")

    def action_pick_react(self) -> None:
        self._start_composing("react")

    def _start_composing(self, what: str) -> None:
        """Type a reply to (or a reaction to) the message picked, on the input line."""
        picked = self._picked
        if picked is None:
            return
        self._pick_done()
        self._composing = (what, picked)
        to = f"{picked.nick}: {gist(picked.text, 40)}"
        self._input.placeholder = (
            f"reply to {to} (Esc: cancel)" if what == "reply" else f"react to {to} (Esc: cancel)"
        )
        self._statusbar.update(self._status())

    def _compose_done(self) -> None:
        self._composing = None
        self._input.placeholder = "type a message, /help"
        self._statusbar.update(self._status())

    def _reply_tags(self) -> dict[str, str] | None:
        """The tag that makes what is sent now a reply, if one is being typed."""
        if self._composing is None or self._composing[0] != "reply":
            return None
        msgid = self._composing[1].msgid
        return {REPLY_TAG: msgid} if msgid else None

    def _send_composed(self, typed: str) -> None:
        """Enter while a reply or reaction is typed: send it as that."""
        assert self._composing is not None
        what, entry = self._composing
        here = self._here()
        if not typed.strip():
            return
        if what == "react":
            self._compose_done()
            self._react(entry, typed.strip()[:32])
            return
        tags = self._reply_tags()
        self._compose_done()
        if typed.startswith("/") and not typed.startswith("//"):
            self._submit(typed)  # a command: not a reply
            return
        try:
            action = parse_input(typed, here)
        except InputError:
            self._submit(typed)  # (the connection's loop says what is wrong)
            return
        tagged = tuple(
            Message(m.command, m.params, m.source, {**m.tags, **(tags or {})})
            if m.command == "PRIVMSG"
            else m
            for m in action.messages
        )
        self._typed.put(Typed(typed, here, Action(messages=tagged)))

    def action_pick_quick(self, number: int) -> None:
        picked = self._picked
        if picked is None or not 1 <= number <= len(QUICK_REACTIONS):
            return
        self._react(picked, QUICK_REACTIONS[number - 1])
        self._pick_done()

    def _react(self, entry: Entry, text: str) -> None:
        buffer = self.buffers.current
        if caps.MESSAGE_TAGS not in self.session.caps or entry.msgid is None:
            self._show_line(buffer, note("this server cannot carry reactions", self.clock()))
            return
        action = Action(messages=(reaction(buffer.name, entry.msgid, text),))
        self._typed.put(Typed(f"(reaction {text})", buffer.name, action))

    def action_pick_delete(self) -> None:
        picked, buffer = self._picked, self.buffers.current
        if picked is None or picked.msgid is None:
            return
        if caps.REDACTION not in self.session.caps:
            self._show_line(buffer, note("this server cannot delete messages", self.clock()))
            return
        msgid = picked.msgid
        with self.view.lock:
            mine = picked.nick.lower() == self.view.nick.lower()
        whose = "your message" if mine else f"{picked.nick}'s message"

        def answered(yes: bool | None) -> None:
            if yes:
                action = Action(messages=(Message("REDACT", (buffer.name, msgid)),))
                self._typed.put(Typed("(delete)", buffer.name, action))
            self._pick_done()

        self.push_screen(
            Confirm(f"Delete {whose} “{gist(picked.text, 40)}” for everyone?"), answered
        )

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
        picked = self._picked
        self._picked_y = None
        for index, line in enumerate(buffer.lines):
            if index == marker:
                log.write(MARKER, scroll_end=False)
            if picked is not None and buffer.entries[index] is picked:
                self._picked_y = len(log.lines)
                line = line.copy()
                line.stylize(STYLE_PICKED)
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
                Option(self._member(m.prefixes, m.nick, m.away), id=m.nick)
                for m in current.sorted_members(order)
            ]
        )
        self._statusbar.update(self._status())
        self._place_members()

    def _member(self, prefixes: str, nick: str, away: bool) -> Text:
        """A member in the list: their display name in their colour, then the alias
        (dimmed) where the two differ."""
        shown, colour = self.buffers.shown_name(nick)
        line = Text(prefixes[:1] or " ")
        line.append(clean(shown), style="dim" if away else colour or nick_style(nick))
        if shown != nick and len(line) + 1 + len(nick) <= MEMBER_COLUMNS:
            line.append(f" {nick}", style="dim")
        line.truncate(MEMBER_COLUMNS, overflow="ellipsis")
        return line

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
        if self._picked is not None:
            return Text(PICKING, style="bold")
        if self._composing is not None:
            what, entry = self._composing
            doing = "replying to" if what == "reply" else "reacting to"
            return Text(f"{doing} {entry.nick} · Enter: send · Esc: cancel", style="bold")
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


def _readdressed(action: Action | None, was: str, new: str) -> Action | None:
    """``action`` (a paste's messages, or None) sent to ``new``, where it went to the room
    ``was`` (folded): the target of its messages and of its multiline batch."""
    if action is None:
        return None
    messages = []
    for msg in action.messages:
        at = 2 if msg.command == "BATCH" else 0
        params = list(msg.params)
        if len(params) > at and params[at].lower() == was and (at == 0 or params[0][:1] == "+"):
            params[at] = new
        messages.append(Message(msg.command, tuple(params), msg.source, msg.tags))
    return Action(messages=tuple(messages))


def _said(msg: Message) -> str | None:
    """The alias of whoever said ``msg``, if it is a person's message (not an event, nor
    the server's or a service's notice)."""
    if msg.command not in ("PRIVMSG", "NOTICE") or len(msg.params) < 2:
        return None
    if msg.source is None or "!" not in msg.source:
        return None
    return split_source(msg.source)[0]


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
