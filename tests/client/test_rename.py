"""Specification of a room's rename in ``chat join`` (IRCv3 draft/channel-rename).

The client asks for the capability; a room renamed keeps its buffer (its lines, members,
counts and place in the list) under the new name, with a line that says so, whether it is
in view or not; ``/rename <#new> [reason]`` renames the room in view. As in
test_fullscreen.py: the Textual app runs headless with its pilot against a real server;
the others are bare IRC clients over real sockets. Line mode runs the line client's loop
with what it shows read back as text."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import pytest

from chatcli.client.app import ChatView, chat_loop
from chatcli.client.buffers import Buffers
from chatcli.client.fullscreen import _readdressed
from chatcli.client.input import HELP, Action, InputError, parse_input
from chatcli.client.session import WANTED_CAPS, ClientSession
from chatcli.protocol import Message, caps, message, parse_line
from tests.client.test_fullscreen import join, people, running, shown, type_line, until
from tests.conftest import Client

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


def op_of(connect: Callable[..., Client], nick: str, room: str, caps_wanted: str = "") -> Client:
    """A bare client ``nick`` who made ``room`` (and so runs it)."""
    client = connect(nick, caps_wanted)
    client.send(f"JOIN {room}")
    client.expect("366")
    return client


def sidebar(app: object) -> list[str]:
    """The names in the list of buffers, as drawn (without their numbers and counts)."""
    listing = app._list  # type: ignore[attr-defined]
    return [
        str(listing.get_option_at_index(i).prompt).split()[1] for i in range(listing.option_count)
    ]


def has(app: object, room: str, text: str) -> bool:
    return app.buffers.get(room) is not None and any(text in line for line in shown(app, room))  # type: ignore[attr-defined]


# -- the capability ------------------------------------------------------------------------


async def test_chat_join_asks_for_channel_rename(server):
    assert caps.CHANNEL_RENAME in WANTED_CAPS
    async with running(server.port) as (app, _pilot):
        assert caps.CHANNEL_RENAME in app.session.caps


# -- a rename seen -------------------------------------------------------------------------


async def test_a_renamed_room_keeps_its_buffer_and_lines_under_the_new_name(server, connect):
    bob = op_of(connect, "bob", "#dev")
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#dev")
        bob.send("PRIVMSG #dev :said before the rename")
        await until(pilot, lambda: has(app, "#dev", "said before the rename"))
        before = app.buffers.get("#dev")
        bob.send("RENAME #dev #devs :clearer name")
        await until(pilot, lambda: app.buffers.get("#devs") is not None)
        assert app.buffers.get("#devs") is before  # the same buffer, renamed in place
        assert app.buffers.get("#dev") is None
        assert [b.name for b in app.buffers] == ["server", "#lobby", "#devs"]
        assert app.buffers.current is before
        lines = shown(app, "#devs")
        assert any("said before the rename" in line for line in lines)
        assert lines[-1].endswith("-- bob renamed #dev to #devs (clearer name)")
        assert not any(" left #dev" in line or " joined #devs" in line for line in lines)
        assert people(app, "#devs") == {"@bob", "ada"}
        await until(pilot, lambda: "#devs" in sidebar(app))
        assert sidebar(app) == ["server", "#lobby", "#devs"]
        assert str(app._topic.content).startswith("#devs:")
        assert app.view.rooms == ["#lobby", "#devs"]


async def test_typing_after_a_rename_goes_to_the_new_name(server, connect):
    bob = op_of(connect, "bob", "#dev")
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#dev")
        bob.send("RENAME #dev #devs")
        await until(pilot, lambda: app.buffers.current.name == "#devs")
        assert shown(app, "#devs")[-1].endswith("-- bob renamed #dev to #devs")
        await type_line(pilot, "hello new name")
        seen = bob.expect("PRIVMSG")
        assert seen.params == ("#devs", "hello new name")
        await until(pilot, lambda: has(app, "#devs", "<ada> hello new name"))


async def test_a_room_renamed_out_of_view_is_renamed_with_its_unread_count(server, connect):
    bob = op_of(connect, "bob", "#dev")
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#dev")
        await join(pilot, app, "#lobby")
        bob.send("PRIVMSG #dev :while you were away")
        await until(pilot, lambda: app.buffers.get("#dev").unread == 1)
        bob.send("RENAME #dev #devs :clearer name")
        await until(pilot, lambda: has(app, "#devs", "renamed #dev to #devs"))
        assert app.buffers.current.name == "#lobby"  # the view stays where it was
        renamed = app.buffers.get("#devs")
        assert renamed.unread == 1  # (the note is an event: not counted)
        assert [b.name for b in app.buffers] == ["server", "#lobby", "#devs"]
        await until(pilot, lambda: "#devs" in sidebar(app))
        await pilot.press("alt+3")
        assert app.buffers.current is renamed
        await type_line(pilot, "caught up")
        assert bob.expect("PRIVMSG").params == ("#devs", "caught up")


async def test_a_rename_that_only_changes_case_renames_the_buffer(server, connect):
    bob = op_of(connect, "bob", "#dev")
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#dev")
        before = app.buffers.current
        bob.send("RENAME #dev #DEV :shouting")
        await until(pilot, lambda: before.name == "#DEV")
        assert [b.name for b in app.buffers] == ["server", "#lobby", "#DEV"]
        assert shown(app, "#DEV")[-1].endswith("-- bob renamed #dev to #DEV (shouting)")
        await until(pilot, lambda: "#DEV" in sidebar(app))
        await type_line(pilot, "loud")
        assert bob.expect("PRIVMSG").params == ("#DEV", "loud")


async def test_a_buffer_left_of_a_room_of_the_new_name_gives_way(server, connect):
    bob = op_of(connect, "bob", "#dev")
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#devs")
        await type_line(pilot, "/part #devs")
        await until(pilot, lambda: not app.buffers.get("#devs").joined)
        await join(pilot, app, "#dev")
        bob.send("RENAME #dev #devs")
        await until(pilot, lambda: app.buffers.get("#dev") is None)
        assert [b.name for b in app.buffers] == ["server", "#lobby", "#devs"]
        assert app.buffers.current.joined
        assert app.buffers.current.name == "#devs"


# -- /rename -------------------------------------------------------------------------------


async def test_rename_command_renames_the_room_in_view(server, connect):
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#dev")  # made by ada: she runs it
        bob = connect("bob", "draft/channel-rename")
        bob.send("JOIN #dev")
        bob.expect("366")
        await until(pilot, lambda: "bob" in people(app, "#dev"))
        await type_line(pilot, "/rename #devs clearer name")
        renamed = bob.expect("RENAME")
        assert renamed.params == ("#dev", "#devs", "clearer name")
        await until(pilot, lambda: app.buffers.get("#devs") is not None)
        assert shown(app, "#devs")[-1].endswith("-- ada renamed #dev to #devs (clearer name)")
        assert app.buffers.current.name == "#devs"


async def test_rename_by_someone_not_an_operator_shows_the_servers_refusal(server, connect):
    bob = op_of(connect, "bob", "#dev")
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#dev")
        await type_line(pilot, "/rename #devs")
        await until(pilot, lambda: has(app, "#dev", "not channel operator"))
        [line] = [line for line in shown(app, "#dev") if "not channel operator" in line]
        assert line.endswith("#dev: You're not channel operator")
        assert [b.name for b in app.buffers] == ["server", "#lobby", "#dev"]
        bob.sync()


async def test_rename_to_a_name_in_use_shows_the_servers_refusal(server, connect):
    op_of(connect, "carol", "#taken")
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#dev")
        await type_line(pilot, "/rename #taken")
        await until(pilot, lambda: has(app, "#dev", "could not rename the room"))
        assert app.buffers.get("#dev") is app.buffers.current


async def test_rename_usage_errors_are_shown(server):
    async with running(server.port) as (app, pilot):
        await join(pilot, app, "#dev")
        await type_line(pilot, "/rename devs")
        await until(pilot, lambda: has(app, "#dev", "usage: /rename <#new name>"))
        await type_line(pilot, "/rename")
        await until(pilot, lambda: len([x for x in shown(app, "#dev") if "usage:" in x]) == 2)


async def test_rename_is_parsed_and_listed_in_help():
    assert parse_input("/rename #devs", "#dev").messages == (Message("RENAME", ("#dev", "#devs")),)
    assert parse_input("/rename #devs  a clearer name ", "#dev").messages == (
        Message("RENAME", ("#dev", "#devs", "a clearer name")),
    )
    for line, room in [("/rename", "#dev"), ("/rename devs", "#dev"), ("/rename #x", None)]:
        with pytest.raises(InputError):
            parse_input(line, room)
    with pytest.raises(InputError, match="no room"):
        parse_input("/rename #x", "bob")  # a conversation with a person is no room
    assert ("/rename <#new> [reason]", "give the room a new name (its operators)") in HELP


# -- what is kept by a room's name -----------------------------------------------------------


class _Session:
    nick = "me"
    isupport: dict[str, str] = {}


async def test_the_view_follows_a_rename_rooms_keys_and_what_was_shown():
    view = ChatView(_Session(), None)  # type: ignore[arg-type]
    view.observe(message("JOIN", "#lobby", source="me!u@h"))
    view.observe(message("JOIN", "#dev", source="me!u@h"))
    view.keys["#dev"] = "sesame"
    view.room = "#dev"
    said = Message("PRIVMSG", ("#dev", "hi"), "bob!u@h", {"msgid": "m1"})
    view.observe(said)
    view.timeline.feed(said, "me")
    view.observe(message("RENAME", "#dev", "#Devs", "why", source="bob!u@h"))
    assert (view.rooms, view.room) == (["#lobby", "#Devs"], "#Devs")
    assert view.keys == {"#devs": "sesame"}  # (a reconnection rejoins with it)
    assert view.last_msgid == {"#devs": "m1"}  # (/react acts on it)
    assert view.timeline.log == {"#devs": ["m1"]}  # (history pages on from it)
    assert view.timeline.older("#Devs", 10).params[:3] == ("BEFORE", "#Devs", "msgid=m1")
    assert view.prompt() == "#Devs me> "


# -- line mode -----------------------------------------------------------------------------


async def test_in_line_mode_a_rename_is_said_and_text_goes_to_the_new_name(server, connect):
    bob = op_of(connect, "bob", "#dev")
    session = ClientSession("127.0.0.1", server.port, "ada", timeout=5)
    burst = session.connect()
    view = ChatView(session, None)
    typed: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []
    loop = threading.Thread(
        target=chat_loop,
        args=(session, view, "#dev", burst, lambda line: seen.append(line.plain), typed.get),
        daemon=True,
    )
    loop.start()
    try:
        bob.expect("JOIN", "#dev")
        bob.send("RENAME #dev #devs :clearer name")
        deadline = time.monotonic() + 10
        while not any("renamed" in line for line in seen):
            assert time.monotonic() < deadline, "the rename was never shown"
            time.sleep(0.05)
        [line] = [line for line in seen if "renamed" in line]
        assert line.endswith("-- bob renamed #dev to #devs (clearer name)")
        assert not any(" left #dev" in line for line in seen)
        typed.put("hello new name")
        assert bob.expect("PRIVMSG").params == ("#devs", "hello new name")
        assert view.prompt() == "#devs ada> "
    finally:
        typed.put(None)
        loop.join(10)
    assert not loop.is_alive()


async def test_pasted_lines_still_to_send_to_a_renamed_room_go_to_its_new_name():
    batch = Action(
        messages=(
            Message("BATCH", ("+ml1", "draft/multiline", "#dev")),
            Message("PRIVMSG", ("#dev", "#dev"), tags={"batch": "ml1"}),
            Message("BATCH", ("-ml1",)),
        )
    )
    moved = _readdressed(batch, "#dev", "#devs")
    assert moved is not None
    assert [m.params for m in moved.messages] == [
        ("+ml1", "draft/multiline", "#devs"),
        ("#devs", "#dev"),  # (the text is the text)
        ("-ml1",),
    ]
    assert moved.messages[1].tags == {"batch": "ml1"}
    assert _readdressed(None, "#dev", "#devs") is None


@pytest.mark.parametrize(
    "rename",
    [
        "@batch=h1 :bob!u@h RENAME #dev #devs :replayed from the history",
        ":bob!u@h RENAME #dev bob :to a name that is no room's",
        ":bob!u@h RENAME #dev #lobby :to another room we are in",
        ":bob!u@h RENAME #nowhere #devs :of a room we are not in",
    ],
)
async def test_a_rename_that_cannot_be_followed_changes_nothing(rename):
    buffers = Buffers()
    view = ChatView(_Session(), None)  # type: ignore[arg-type]
    for line in (":me!u@h JOIN #lobby", ":me!u@h JOIN #dev"):
        buffers.route(parse_line(line), "me")
        view.observe(parse_line(line))
    msg = parse_line(rename)
    assert buffers.route(msg, "me") == []
    view.observe(msg)
    assert [b.name for b in buffers] == ["server", "#lobby", "#dev"]
    assert (view.rooms, view.room) == (["#lobby", "#dev"], "#lobby")
