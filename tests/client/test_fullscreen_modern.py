"""Specification of the full-screen client's modern chat (IRCv3): messages of several
lines, deleting, replies, reactions, read markers, display names and colours.

As in test_fullscreen.py: the Textual app runs headless with its pilot, connected to a
real server (with a database: history, deletions and read markers need one); the other
people are bare IRC clients over real sockets."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from textual import events

from chatcli.client.app import ALIAS_TRIES, ChatView
from chatcli.client.buffers import Activity, Buffers, Entry
from chatcli.client.fullscreen import ChatApp, ChatInput, Confirm
from chatcli.client.render import gist, render
from chatcli.client.session import WANTED_CAPS, ClientSession, sasl_plain
from chatcli.protocol import Message, parse_line, server_time
from tests.client.test_fullscreen import NOON, STEADY_CAPS, shown, type_line, until
from tests.conftest import Client, register_account

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

#: What a bare client asks for to see everything the app sends.
ALL = "batch draft/multiline message-tags echo-message draft/message-redaction server-time"
PASSWORD = "correct-horse-battery"


@pytest.fixture
def db_server(make_server, tmp_path):
    return make_server(db=str(tmp_path / "chat.db"))


@contextlib.asynccontextmanager
async def app_for(
    port: int,
    alias: str = "ada",
    caps: tuple[str, ...] = STEADY_CAPS,
    password: str | None = None,
) -> AsyncIterator[tuple[ChatApp, object]]:
    """The app for ``alias`` (logged in to its account with ``password``), in #lobby."""
    session = ClientSession(
        "127.0.0.1",
        port,
        alias,
        timeout=5,
        caps=caps,
        account_password=(lambda nick, sure=True: password) if password else None,
    )
    session.alias_tries = ALIAS_TRIES
    burst = session.connect()
    # (#lobby named, as with --room: the test needs no autojoin)
    app = ChatApp(session, ChatView(session, None), burst, room="#lobby", clock=lambda: NOON)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.buffers.current.name == "#lobby")
        yield app, pilot


async def received(pilot: object, client: Client, command: str, timeout: float = 10.0) -> Message:
    """The next ``command`` ``client`` receives, while the app goes on running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = client.recv(timeout=0.02)
        except TimeoutError:
            await pilot.pause(0.03)  # type: ignore[attr-defined]
            continue
        assert msg is not None, "the connection closed"
        if msg.command == command:
            return msg
    raise AssertionError(f"no {command} within {timeout}s")


def person(port: int, nick: str, clients: list[Client], caps: str = ALL) -> Client:
    client = Client(port)
    clients.append(client)
    client.register(nick, caps)
    return client


def said(client: Client, text: str, target: str = "#lobby") -> str:
    """Send ``text`` from ``client`` (with echo-message); the msgid the server gave it."""
    client.send(f"PRIVMSG {target} :{text}")
    echo = client.expect("PRIVMSG", target, text)
    return echo.tags["msgid"]


def lines_with(app: ChatApp, text: str, buffer: str = "#lobby") -> list[str]:
    return [line for line in shown(app, buffer) if text in line]


# -- messages of several lines -------------------------------------------------------------


async def test_a_paste_of_several_lines_goes_as_one_multiline_message(db_server, clients):
    watcher = person(db_server.port, "watcher", clients)
    async with app_for(db_server.port) as (app, pilot):
        paste = "def hello():\n    print('hi')\n\n# done\n"
        app.query_one(ChatInput).post_message(events.Paste(paste))
        opening = await received(pilot, watcher, "BATCH")
        assert opening.params[1:] == ("draft/multiline", "#lobby")
        texts = [m.params[1] for m in watcher.collect("BATCH")[:-1]]
        assert texts == ["def hello():", "    print('hi')", "", "# done"]
        # Shown once, as one message: one header, its lines under it.
        await until(pilot, lambda: lines_with(app, "def hello():"))
        [line] = lines_with(app, "def hello():")
        assert line == "12:00 <ada> def hello():\n          print('hi')\n      \n      # done"
        assert not isinstance(app.screen, Confirm)  # one message: nothing to ask


async def test_a_multiline_message_received_is_shown_as_one_message(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port) as (app, pilot):
        bob.send("BATCH +m1 draft/multiline #lobby")
        bob.send("@batch=m1 PRIVMSG #lobby :roses are red")
        bob.send("@batch=m1 PRIVMSG #lobby :violets are ")
        bob.send("@batch=m1;draft/multiline-concat PRIVMSG #lobby :blue")
        bob.send("BATCH -m1")
        await until(pilot, lambda: lines_with(app, "roses are red"))
        [line] = lines_with(app, "roses are red")
        assert line == "12:00 <bob> roses are red\n      violets are blue"
        assert app.buffers.get("#lobby").entries[-1].text == "roses are red\nviolets are blue"


async def test_a_multiline_message_from_history_is_one_message_too(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    bob.send("BATCH +m1 draft/multiline #lobby")
    bob.send("@batch=m1 PRIVMSG #lobby :first of two")
    bob.send("@batch=m1 PRIVMSG #lobby :second of two")
    bob.send("BATCH -m1")
    bob.expect("BATCH")
    bob.sync()
    async with app_for(db_server.port) as (app, pilot):
        await type_line(pilot, "/history 10")
        await until(pilot, lambda: lines_with(app, "first of two"))
        [line] = lines_with(app, "first of two")  # (dated: no server-time here)
        assert line.startswith("12:00 <bob> ")
        assert line.endswith("first of two\n      second of two")


async def test_a_paste_too_big_for_one_message_asks_then_goes_as_several(db_server, clients):
    watcher = person(db_server.port, "watcher", clients)
    async with app_for(db_server.port) as (app, pilot):
        lines = [f"row {i}" for i in range(150)]  # the server takes 100 lines in one
        app.query_one(ChatInput).post_message(events.Paste("\n".join(lines)))
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        assert "as 2 messages" in str(app.screen.question)  # type: ignore[attr-defined]
        await pilot.press("y")
        got: list[str] = []
        for _ in range(2):
            await received(pilot, watcher, "BATCH")
            got += [m.params[1] for m in watcher.collect("BATCH")[:-1]]
        assert got == lines


async def test_without_multiline_from_the_server_a_paste_is_a_message_a_line(make_server, clients):
    plain = make_server()
    watcher = person(plain.port, "watcher", clients, caps="")
    no_multiline = tuple(cap for cap in STEADY_CAPS if cap != "draft/multiline")
    async with app_for(plain.port, caps=no_multiline) as (app, pilot):
        app.query_one(ChatInput).post_message(events.Paste("one\ntwo\n"))
        first = await received(pilot, watcher, "PRIVMSG")
        second = await received(pilot, watcher, "PRIVMSG")
        assert (first.params[1], second.params[1]) == ("one", "two")


# -- deleting ------------------------------------------------------------------------------


async def test_delete_takes_back_your_last_message_and_it_shows_as_deleted(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port) as (app, pilot):
        await type_line(pilot, "oops, wrong room")
        echo = await received(pilot, bob, "PRIVMSG")
        await type_line(pilot, "/delete")
        redact = await received(pilot, bob, "REDACT")
        assert redact.params[:2] == ("#lobby", echo.tags["msgid"])
        await until(pilot, lambda: lines_with(app, "message deleted"))
        assert lines_with(app, "message deleted") == ["12:00 ada message deleted"]
        assert not lines_with(app, "oops")


async def test_a_message_deleted_by_its_author_shows_as_deleted(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port) as (app, pilot):
        msgid = said(bob, "my password is hunter2")
        await until(pilot, lambda: lines_with(app, "hunter2"))
        bob.send(f"REDACT #lobby {msgid}")
        await until(pilot, lambda: lines_with(app, "message deleted"))
        assert not lines_with(app, "hunter2")
        assert lines_with(app, "bob message deleted")


async def test_up_picks_a_message_and_d_deletes_it_after_a_yes(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port) as (app, pilot):
        await type_line(pilot, "first thought")
        first = await received(pilot, bob, "PRIVMSG")
        await type_line(pilot, "second thought")
        await received(pilot, bob, "PRIVMSG")
        await pilot.press("up")  # the latest
        assert app._picked is not None and app._picked.text == "second thought"
        assert "R reply" in str(app._status())
        await pilot.press("up")  # the one before
        assert app._picked.text == "first thought"
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        redact = await received(pilot, bob, "REDACT")
        assert redact.params[1] == first.tags["msgid"]
        await until(pilot, lambda: lines_with(app, "message deleted"))
        assert lines_with(app, "second thought")
        assert app._picked is None and app.focused is app.query_one(ChatInput)


async def test_deleting_someone_elses_message_is_refused_with_a_clear_note(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port) as (app, pilot):
        said(bob, "not yours to delete")
        await until(pilot, lambda: lines_with(app, "not yours to delete"))
        await pilot.press("up", "d")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: lines_with(app, "could not delete the message"))
        assert lines_with(app, "not yours to delete")


async def test_escape_leaves_the_picking_and_typing_works_again(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port) as (app, pilot):
        said(bob, "hello")
        await until(pilot, lambda: lines_with(app, "hello"))
        await pilot.press("up")
        assert app._picked is not None
        await pilot.press("escape")
        assert app._picked is None
        await type_line(pilot, "typed after")
        assert (await received(pilot, bob, "PRIVMSG")).params[1] == "typed after"


# -- replies and reactions -----------------------------------------------------------------


async def test_r_replies_to_the_message_picked(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port) as (app, pilot):
        msgid = said(bob, "are we meeting today at the usual place?")
        await until(pilot, lambda: lines_with(app, "are we meeting"))
        await pilot.press("up", "r")
        assert "replying to bob" in str(app._status())
        await type_line(pilot, "yes, at noon")
        reply = await received(pilot, bob, "PRIVMSG")
        assert reply.params[1] == "yes, at noon"
        assert reply.tags["+draft/reply"] == msgid
        await until(pilot, lambda: lines_with(app, "yes, at noon"))
        [line] = lines_with(app, "yes, at noon")
        assert line == (
            "      ↪ bob: are we meeting today at the usual place?\n12:00 <ada> yes, at noon"
        )
        assert "replying" not in str(app._status())


async def test_a_reply_received_shows_what_it_answers(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port) as (app, pilot):
        await type_line(pilot, "lunch? " + "there is a new place on the corner " * 3)
        asked = await received(pilot, bob, "PRIVMSG")
        bob.send(f"@+draft/reply={asked.tags['msgid']} PRIVMSG #lobby :sure")
        await until(pilot, lambda: lines_with(app, "<bob> sure"))
        [line] = lines_with(app, "<bob> sure")
        top, bottom = line.split("\n")
        assert top.startswith("      ↪ ada: lunch? there is a new place")
        assert top.endswith("…") and len(top) < 80
        assert bottom == "12:00 <bob> sure"


async def test_reactions_are_counted_under_their_message_and_sent_from_a_pick(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    carl = person(db_server.port, "carl", clients)
    async with app_for(db_server.port) as (app, pilot):
        await type_line(pilot, "ship it?")
        msgid = (await received(pilot, bob, "PRIVMSG")).tags["msgid"]
        for who in (bob, carl):
            who.send(f"@+draft/react=👍;+draft/reply={msgid} TAGMSG #lobby")
        await until(pilot, lambda: any("👍 2" in line for line in lines_with(app, "ship it?")))
        await pilot.press("up", "2")  # the second quick reaction: ❤
        tagmsg = await received(pilot, bob, "TAGMSG")
        while not (tagmsg.source or "").startswith("ada!"):  # (carl's, before)
            tagmsg = await received(pilot, bob, "TAGMSG")
        assert (tagmsg.tags["+draft/react"], tagmsg.tags["+draft/reply"]) == ("❤", msgid)
        await until(pilot, lambda: any("❤ 1" in line for line in lines_with(app, "ship it?")))
        [line] = lines_with(app, "ship it?")
        assert line == "12:00 <ada> ship it?\n      👍 2  ❤ 1"


async def test_react_command_reacts_to_the_last_message(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port) as (app, pilot):
        msgid = said(bob, "we won")
        await until(pilot, lambda: lines_with(app, "we won"))
        app.query_one(ChatInput).value = "/react 🎉"  # (the pilot types no emoji)
        await pilot.press("enter")
        tagmsg = await received(pilot, bob, "TAGMSG")
        assert (tagmsg.tags["+draft/react"], tagmsg.tags["+draft/reply"]) == ("🎉", msgid)


# -- read markers ----------------------------------------------------------------------------


def logged_in(port: int, nick: str, clients: list[Client]) -> Client:
    """A bare client logged in to the account ``ada`` (SASL PLAIN) as ``nick``."""
    client = Client(port)
    clients.append(client)
    client.send("CAP REQ :sasl draft/read-marker server-time message-tags")
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :{nick}")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    for piece in sasl_plain("ada", PASSWORD):
        client.send(f"AUTHENTICATE {piece}")
    client.expect("903")
    client.send("CAP END")
    client.expect("001")
    client.sync()
    return client


async def test_read_on_another_device_clears_the_unread_count(db_server, clients):
    register_account(db_server.port, "ada", PASSWORD)
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port, caps=WANTED_CAPS, password=PASSWORD) as (app, pilot):
        assert app.session.account == "ada"
        other = logged_in(db_server.port, "ada_phone", clients)
        bob.send("PRIVMSG ada :are you there?")
        bob.send("PRIVMSG ada :hello?")
        await until(pilot, lambda: (b := app.buffers.get("bob")) is not None and b.unread == 2)
        now = datetime.now(UTC).timestamp()
        other.send(f"MARKREAD bob timestamp={server_time(now)}")
        await until(pilot, lambda: app.buffers.get("bob").unread == 0)
        assert app.buffers.get("bob").mentions == 0


async def test_a_buffer_in_view_is_marked_read_on_the_server(db_server, clients):
    register_account(db_server.port, "ada", PASSWORD)
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port, caps=WANTED_CAPS, password=PASSWORD) as (app, pilot):
        other = logged_in(db_server.port, "ada_phone", clients)
        msgid = said(bob, "read me")
        del msgid
        marker = await received(pilot, other, "MARKREAD")
        while marker.params[0].lower() != "#lobby":
            marker = await received(pilot, other, "MARKREAD")
        latest = app.buffers.get("#lobby").entries[-1]
        assert marker.params[1] == f"timestamp={latest.msg.tags['time']}"


# -- display names and colours -------------------------------------------------------------


async def test_display_names_and_colours_are_shown_with_the_alias_kept(db_server, clients):
    bob = person(db_server.port, "bob", clients, caps=ALL + " draft/metadata-2")
    async with app_for(db_server.port) as (app, pilot):
        bob.send("METADATA * SET display-name :Bobby Tables")
        bob.send("METADATA * SET color #ff8800")
        await until(pilot, lambda: app.buffers.shown_name("bob") == ("Bobby Tables", "#ff8800"))
        said(bob, "hi all")
        await until(pilot, lambda: lines_with(app, "hi all"))
        [line] = lines_with(app, "hi all")
        assert line == "12:00 <Bobby Tables> hi all"
        entry = app.buffers.get("#lobby").lines[-1]
        assert any(str(span.style) == "#ff8800" for span in entry.spans)
        members = [str(o.prompt) for o in app._members._options]
        assert " Bobby Tables" in members  # (the alias too where the list has room)
        await type_line(pilot, "/whois bob")
        await until(pilot, lambda: lines_with(app, "shown as Bobby Tables"))


async def test_a_colour_that_is_not_a_plain_colour_is_not_used():
    buffers = Buffers()
    assert buffers.metadata("bob", "color", "#12abEF")
    assert buffers.shown_name("bob") == ("bob", "#12abEF")
    buffers.metadata("bob", "color", "red on white blink")  # a style, not a colour
    buffers.metadata("bob", "display-name", "\x02Bob\x02   the   builder" + "!" * 50)
    assert buffers.shown_name("bob") == ("Bob the builder" + "!" * 17, None)
    buffers.metadata("bob", "display-name", None)
    assert buffers.shown_name("bob") == ("bob", None)


async def test_displayname_and_color_set_your_own(db_server, clients):
    bob = person(db_server.port, "bob", clients, caps=ALL + " draft/metadata-2")
    bob.send("METADATA * SUB display-name color")
    bob.expect("770")
    async with app_for(db_server.port) as (app, pilot):
        await type_line(pilot, "/displayname Ada Lovelace")
        change = await received(pilot, bob, "METADATA")
        assert (change.params[0], change.params[1], change.params[-1]) == (
            "ada",
            "display-name",
            "Ada Lovelace",
        )
        await type_line(pilot, "/color #3a7bd5")
        change = await received(pilot, bob, "METADATA")
        assert (change.params[1], change.params[-1]) == ("color", "#3a7bd5")
        await type_line(pilot, "/color red")
        await until(pilot, lambda: lines_with(app, "usage: /color"))


async def test_help_lists_the_new_commands_and_the_keys_to_pick_a_message(db_server):
    async with app_for(db_server.port) as (app, pilot):
        await type_line(pilot, "/help")
        await until(pilot, lambda: lines_with(app, "Keys:"))
        [help_shown] = lines_with(app, "Keys:")
        for wanted in ("/delete", "/react <emoji>", "/displayname", "/color", "pick a message"):
            assert wanted in help_shown
        assert "D or Delete" in help_shown and "reply to it" in help_shown


async def test_a_reply_quotes_the_start_of_a_multiline_message_on_one_line():
    assert gist("def hello():\n    print('hi')\n\nhello()") == "def hello(): print('hi') hello()"
    assert gist("\x02bold\x02 " + "word " * 30).startswith("bold word")
    assert gist("word " * 30).endswith("…") and len(gist("word " * 30)) == 60


async def test_in_the_line_client_deletions_and_reactions_are_said():
    source = "bob!b@h"
    redact = Message("REDACT", ("#lobby", "abc"), source)
    react = Message("TAGMSG", ("#lobby",), source, {"+draft/react": "👍", "+draft/reply": "abc"})
    assert render(redact, "ada", NOON).plain == "12:00 -- bob deleted a message"
    assert render(react, "ada", NOON).plain == "12:00 -- bob reacted 👍"


async def test_a_marker_from_another_device_moves_new_since_you_left_after_what_was_read():
    buffers = Buffers()
    room = buffers.open("#dev")
    buffers.switch(room)
    buffers.switch(buffers.server)  # left: "new since you left" at the end
    for second in (1, 2, 3):
        msg = Message(
            "PRIVMSG",
            ("#dev", f"line {second}"),
            "bob!b@h",
            {"time": f"2026-01-02T12:00:0{second}.000Z", "msgid": f"m{second}"},
        )
        buffers.note(room, render(msg, "ada", NOON), Activity.MESSAGES, Entry(msg, "bob"))
    assert (room.marker, room.unread) == (0, 3)
    buffers.marked_read(Message("MARKREAD", ("#dev", "timestamp=2026-01-02T12:00:02.000Z")), "ada")
    assert (room.marker, room.unread) == (2, 1)  # before line 3, the one not read
    buffers.marked_read(Message("MARKREAD", ("#dev", "timestamp=2026-01-02T12:00:09.000Z")), "ada")
    assert (room.marker, room.unread, room.activity) == (3, 0, Activity.NONE)


async def test_escape_gives_up_a_reply_being_typed(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port) as (app, pilot):
        said(bob, "question?")
        await until(pilot, lambda: lines_with(app, "question?"))
        await pilot.press("up", "r")
        assert app._composing is not None
        await pilot.press("escape")
        assert app._composing is None
        await type_line(pilot, "not a reply")
        sent = await received(pilot, bob, "PRIVMSG")
        assert sent.params[1] == "not a reply" and "+draft/reply" not in sent.tags


async def test_in_the_line_client_metadata_answers_are_not_shown_as_lines():
    for line in (
        ":s 770 ada display-name color",
        ":s 761 ada bob display-name * :Bobby",
        ":s 766 ada bob color :key not set",
    ):
        assert render(parse_line(line), "ada", NOON) is None
    told = render(parse_line(":s 768 ada ada color :key not set"), "ada", NOON)
    assert told.plain == "12:00 -- color was not set"


async def test_a_reaction_sent_to_another_room_does_not_touch_a_message(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    bob.send("JOIN #elsewhere")
    bob.expect("366")
    async with app_for(db_server.port) as (app, pilot):
        msgid = said(bob, "only here")
        await until(pilot, lambda: lines_with(app, "only here"))
        bob.send(f"@+draft/react=💩;+draft/reply={msgid} TAGMSG #elsewhere")
        bob.send(f"@+draft/react=👍;+draft/reply={msgid} TAGMSG #lobby")
        await until(pilot, lambda: any("👍 1" in line for line in lines_with(app, "only here")))
        assert not any("💩" in line for line in lines_with(app, "only here"))


async def test_in_the_line_client_a_reply_is_shown_after_a_quote_of_what_it_answers():
    view = ChatView(ClientSession("127.0.0.1", 1, "ada"), "#lobby")
    asked = parse_line("@msgid=a1 :ada!a@h PRIVMSG #lobby :lunch at noon?")
    answer = parse_line("@msgid=b1;+draft/reply=a1 :bob!b@h PRIVMSG #lobby :sure")
    stray = parse_line("@msgid=c1;+draft/reply=zz :bob!b@h PRIVMSG #lobby :what?")
    assert view.quoted(asked) is None
    assert view.quoted(answer).plain == "      ↪ ada: lunch at noon?"
    assert view.quoted(stray).plain == "      ↪ a message not shown"


async def test_reactions_kept_in_the_history_are_counted_under_their_message(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    carol = person(db_server.port, "carol", clients)
    msgid = said(bob, "said before you came")
    carol.send(f"@+draft/react=👀;+draft/reply={msgid} TAGMSG #lobby")
    carol.sync()
    async with app_for(db_server.port) as (app, pilot):
        await type_line(pilot, "/history 10")
        await until(pilot, lambda: lines_with(app, "said before you came"))
        [line] = lines_with(app, "said before you came")
        assert line.endswith("said before you came\n      👀 1")
        assert not lines_with(app, "reacted")


async def test_a_click_on_the_input_line_ends_the_pick(db_server, clients):
    bob = person(db_server.port, "bob", clients)
    async with app_for(db_server.port) as (app, pilot):
        said(bob, "pick me")
        await until(pilot, lambda: lines_with(app, "pick me"))
        await pilot.press("up")
        assert app._picked is not None
        await pilot.click("#input")
        assert app._picked is None and app.focused is app.query_one(ChatInput)
        assert "connected" in str(app._status())
