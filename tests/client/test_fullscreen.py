"""Specification of the full-screen client (``chat join`` on a terminal).

Each test runs the Textual app headless with its pilot, connected to a real server on
port 0; the other people in the chat are bare IRC clients over real sockets."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import pytest
from textual import events

from chatcli.client.app import ALIAS_TRIES, ChatView
from chatcli.client.fullscreen import ChatApp, ChatInput, Confirm, Scrollback
from chatcli.client.session import WANTED_CAPS, ClientSession
from chatcli.errors import ExitStatus
from chatcli.protocol import caps
from tests.conftest import Client

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

#: The time every line shows: the screen is the same at every run.
NOON = datetime(2026, 1, 2, 12, 0)
#: What the client asks for, less server-time (its lines show NOON).
STEADY_CAPS = tuple(cap for cap in WANTED_CAPS if cap != caps.SERVER_TIME)
#: The same, without draft/multiline: what a paste does on a server without it.
NO_MULTILINE = tuple(cap for cap in STEADY_CAPS if cap != caps.MULTILINE)


def connected(
    port: int, alias: str, caps: tuple[str, ...] = STEADY_CAPS, **options: object
) -> ChatApp:
    """The app for ``alias``, connected to the server at ``port`` as ``chat join`` does,
    asking for ``caps``."""
    session = ClientSession("127.0.0.1", port, alias, timeout=5, caps=caps)
    session.alias_tries = ALIAS_TRIES
    burst = session.connect()
    return ChatApp(session, ChatView(session, None), burst, clock=lambda: NOON, **options)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(
    port: int, alias: str = "ada", size: tuple[int, int] = (120, 40), **options: object
) -> AsyncIterator[tuple[ChatApp, object]]:
    app = connected(port, alias, **options)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: app.buffers.get("#lobby") is not None)
        yield app, pilot


async def until(pilot: object, condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Let the app run until ``condition`` holds (at most ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the app never got there"
        await pilot.pause(0.05)  # type: ignore[attr-defined]


async def type_line(pilot: object, text: str) -> None:
    await pilot.press(*text, "enter")  # type: ignore[attr-defined]


async def join(pilot: object, app: ChatApp, room: str) -> None:
    """Type ``/join room`` and wait until the room is in view."""
    await type_line(pilot, f"/join {room}")
    await until(pilot, lambda: app.buffers.current.name == room)


def people(app: ChatApp, room: str) -> set[str]:
    buffer = app.buffers.get(room)
    assert buffer is not None
    return {f"{m.prefixes}{m.nick}" for m in buffer.members.values()}


def shown(app: ChatApp, name: str) -> list[str]:
    buffer = app.buffers.get(name)
    assert buffer is not None
    return [line.plain for line in buffer.lines]


async def heard(pilot: object, watcher: Client, count: int, timeout: float = 15.0) -> list[str]:
    """The next ``count`` PRIVMSG texts ``watcher`` receives (at most ``timeout`` seconds),
    while the app goes on running."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        try:
            msg = watcher.recv(timeout=0.02)
        except TimeoutError:
            await pilot.pause(0.03)  # type: ignore[attr-defined]
            continue
        if msg is not None and msg.command == "PRIVMSG":
            got.append(msg.params[1])
    return got


# -- buffers, unread and mentions ----------------------------------------------------------


async def test_each_room_and_each_person_has_a_buffer_of_its_own(server, connect):
    async with running(server.port) as (app, pilot):
        bob = connect()
        bob.register("bob")
        bob.send("PRIVMSG #lobby :hello room")
        bob.send("PRIVMSG ada :psst")
        await until(pilot, lambda: app.buffers.get("bob") is not None)
        assert [b.name for b in app.buffers] == ["server", "#lobby", "bob"]
        assert app.buffers.current.name == "#lobby"
        await until(pilot, lambda: any("hello room" in line for line in shown(app, "#lobby")))
        assert any("psst" in line for line in shown(app, "bob"))
        assert not any("psst" in line for line in shown(app, "#lobby"))


async def test_a_direct_message_out_of_view_is_counted_as_a_mention_and_alerts(server, connect):
    async with running(server.port) as (app, pilot):
        bob = connect()
        bob.register("bob")
        bob.send("PRIVMSG ada :are you there?")
        await until(pilot, lambda: app.buffers.get("bob") is not None)
        buffer = app.buffers.get("bob")
        assert (buffer.unread, buffer.mentions) == (1, 1)
        [(title, text)] = app.alerts
        assert title == "chat: bob"
        assert text.endswith("[bob → you] are you there?")


async def test_a_mention_in_a_room_out_of_view_is_counted_apart_from_other_lines(server, connect):
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#dev")
        bob = connect()
        bob.register("bob")
        bob.send("PRIVMSG #lobby :just chatting")
        bob.send("PRIVMSG #lobby :ada: have a look")
        bob.send("PRIVMSG #lobby :adamant is not a mention")
        await until(pilot, lambda: app.buffers.get("#lobby").unread == 3)
        lobby = app.buffers.get("#lobby")
        assert lobby.mentions == 1
        assert [title for title, _ in app.alerts] == ["chat: #lobby"]


async def test_switching_to_a_buffer_reads_it_and_leaves_a_marker_where_reading_stopped(
    server, connect
):
    async with running(server.port) as (app, pilot):
        bob = connect()
        bob.register("bob")
        bob.send("PRIVMSG ada :one")
        await until(pilot, lambda: app.buffers.get("bob") is not None)
        await pilot.press("alt+3")
        assert app.buffers.current.name == "bob"
        assert (app.buffers.current.unread, app.buffers.current.mentions) == (0, 0)
        lobby = app.buffers.get("#lobby")
        assert lobby.marker == len(lobby.lines)
        await pilot.press("ctrl+p")
        assert app.buffers.current.name == "#lobby"
        await pilot.press("ctrl+n", "ctrl+n")
        assert app.buffers.current.name == "server"


async def test_alt_a_goes_where_something_happened_mentions_first(server, connect):
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#dev")
        await pilot.press("alt+1")
        bob = connect()
        bob.register("bob")
        bob.send("JOIN #dev")
        bob.send("PRIVMSG #lobby :chatter")
        bob.send("PRIVMSG #dev :ada, a question")
        await until(pilot, lambda: app.buffers.get("#dev").mentions == 1)
        await pilot.press("alt+a")
        assert app.buffers.current.name == "#dev"
        await pilot.press("alt+a")
        assert app.buffers.current.name == "#lobby"


# -- members -------------------------------------------------------------------------------


async def test_the_member_list_follows_joins_parts_nick_changes_and_quits(server, connect):
    async with running(server.port) as (app, pilot):
        assert people(app, "#lobby") == {"@ada"} or people(app, "#lobby") == {"ada"}
        bob, carol = connect(), connect()
        bob.register("bob")
        carol.register("carol")
        await until(
            pilot, lambda: {"bob", "carol"} <= {p.lstrip("@+") for p in people(app, "#lobby")}
        )
        bob.send("NICK robert")
        await until(pilot, lambda: "robert" in people(app, "#lobby"))
        assert "bob" not in people(app, "#lobby")
        carol.send("PART #lobby")
        await until(pilot, lambda: "carol" not in people(app, "#lobby"))
        bob.send("QUIT :bye")
        await until(pilot, lambda: "robert" not in people(app, "#lobby"))
        members = app.query_one("#members")
        assert [
            str(members.get_option_at_index(i).prompt).strip() for i in range(members.option_count)
        ] == [p for p in sorted(people(app, "#lobby"))]


# -- typing --------------------------------------------------------------------------------


async def test_tab_completes_an_alias_a_command_and_a_room(server, connect):
    async with running(server.port) as (app, pilot):
        bob = connect()
        bob.register("bobby")
        await until(pilot, lambda: "bobby" in people(app, "#lobby"))
        field = app.query_one(ChatInput)
        await pilot.press("b", "o", "tab")
        assert field.value == "bobby: "
        field.value = ""
        await pilot.press("/", "j", "o", "tab")
        assert field.value == "/join "
        await pilot.press("#", "l", "tab")
        assert field.value == "/join #lobby "


async def test_without_multiline_a_paste_of_three_lines_is_three_messages_in_order(server, connect):
    watcher = connect()
    watcher.register("watcher")
    async with running(server.port, caps=NO_MULTILINE) as (app, pilot):
        app.query_one(ChatInput).post_message(events.Paste("one\ntwo\n/three\n"))
        assert await heard(pilot, watcher, 3) == ["one", "two", "/three"]
        assert app.query_one(ChatInput).value == ""


async def test_without_multiline_a_paste_of_thirty_lines_asks_first_then_sends_them_all(
    server, connect
):
    watcher = connect()
    watcher.register("watcher")
    lines = [f"line {i}" for i in range(1, 31)]
    async with running(server.port, caps=NO_MULTILINE) as (app, pilot):
        app.query_one(ChatInput).post_message(events.Paste("\n".join(lines)))
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        assert await heard(pilot, watcher, 30, timeout=20) == lines


async def test_without_multiline_a_paste_refused_at_the_question_sends_nothing(server, connect):
    watcher = connect()
    watcher.register("watcher")
    async with running(server.port, caps=NO_MULTILINE) as (app, pilot):
        app.query_one(ChatInput).post_message(events.Paste("\n".join("x" * 8)))
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("n")
        await until(pilot, lambda: any("paste not sent" in line for line in shown(app, "#lobby")))
        assert await heard(pilot, watcher, 1, timeout=0.5) == []


async def test_ctrl_c_clears_the_line_and_twice_on_an_empty_line_quits(server):
    async with running(server.port) as (app, pilot):
        field = app.query_one(ChatInput)
        await pilot.press(*"half a thought")
        await pilot.press("ctrl+c")
        assert field.value == ""
        assert app.is_running
        await pilot.press("ctrl+c")
        assert any("press Ctrl-C again" in line for line in shown(app, "#lobby"))
        await pilot.press("ctrl+c")
        await until(pilot, lambda: app.finished)
    assert app.return_value == ExitStatus.OK


async def test_a_taken_alias_becomes_alias_underscore_and_it_says_so(server, connect):
    holder = connect()
    holder.register("ada")
    async with running(server.port) as (app, pilot):
        assert app.session.nick == "ada_"
        await until(
            pilot,
            lambda: any("ada is taken: you are ada_" in line for line in shown(app, "server")),
        )


async def test_lines_typed_while_the_connection_is_down_are_pending_then_sent(make_server):
    first = make_server()
    async with running(first.port) as (app, pilot):
        app.view.backoff = type(app.view.backoff)(first=0.2, cap=0.5)
        first.stop()
        await until(pilot, lambda: app.view.down)
        await type_line(pilot, "said while down")
        assert any("(pending) said while down" in line for line in shown(app, "#lobby"))
        assert "1 pending" in app.query_one("#status").render().plain
        again = make_server(port=first.port)
        watcher = Client(again.port)
        watcher.register("watcher")
        assert await heard(pilot, watcher, 1) == ["said while down"]
        await until(pilot, lambda: not app.view.down)
        watcher.close()


async def test_scrolling_up_past_the_top_fetches_earlier_history(make_server, tmp_path, connect):
    server = make_server(db=str(tmp_path / "chat.db"), flood_rate=0)
    bob = Client(server.port)
    bob.register("bob")
    bob.send("JOIN #dev")
    for i in range(1, 121):
        bob.send(f"PRIVMSG #dev :message {i}")
    bob.sync()
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#dev")
        await until(pilot, lambda: any("message 120" in line for line in shown(app, "#dev")))

        def first() -> int:
            numbers = [
                int(line.rsplit(" ", 1)[1]) for line in shown(app, "#dev") if "message " in line
            ]
            return numbers[0]

        before = first()
        assert before > 1
        app.query_one(Scrollback).scroll_home(animate=False)
        await pilot.press("pageup")
        await until(pilot, lambda: first() < before)
        numbers = [int(line.rsplit(" ", 1)[1]) for line in shown(app, "#dev") if "message " in line]
        assert numbers == list(range(numbers[0], 121))
    bob.close()


async def test_query_opens_a_conversation_and_close_closes_it(server, connect):
    bob = connect()
    bob.register("bob")
    async with running(server.port) as (app, pilot):
        await type_line(pilot, "/query bob hi there")
        assert app.buffers.current.name == "bob"
        assert await heard(pilot, bob, 1) == ["hi there"]
        await type_line(pilot, "and more")
        assert await heard(pilot, bob, 1) == ["and more"]
        await type_line(pilot, "/close")
        assert [b.name for b in app.buffers] == ["server", "#lobby"]


async def test_ctrl_f_shows_only_the_lines_that_hold_the_words_searched(server, connect):
    bob = connect()
    bob.register("bob")
    async with running(server.port) as (app, pilot):
        for word in ("apple pie", "banana", "apple tart"):
            bob.send(f"PRIVMSG #lobby :{word}")
        await until(pilot, lambda: any("apple tart" in line for line in shown(app, "#lobby")))
        await pilot.press("ctrl+f", *"apple")
        log = app.query_one(Scrollback)
        plain = [strip.text for strip in log.lines]
        assert any("2 lines hold 'apple'" in line for line in plain)
        assert not any("banana" in line for line in plain)
        await pilot.press("escape")
        assert any("banana" in strip.text for strip in log.lines)
