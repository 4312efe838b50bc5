"""The full-screen client's layout, pinned as snapshots at 80x24 and 120x40.

A real server on port 0; the client shows a fixed time (and asks for no server-time) and
the others' lines are sent before the picture is taken, so the screen is the same at every
run. ``pytest --snapshot-update`` rewrites the pictures after a change meant to be seen;
look at them (``tests/client/__snapshots__``) before committing."""

from __future__ import annotations

import time

import pytest

from tests.client.test_fullscreen import connected
from tests.conftest import Client

pytestmark = pytest.mark.timeout(60)


def a_busy_afternoon(port: int) -> list[Client]:
    """bob and carol in #lobby and #dev, a topic, a mention, a direct message."""
    bob, carol = Client(port), Client(port)
    bob.register("bob")
    carol.register("carol")
    bob.send("JOIN #dev")
    bob.send("TOPIC #dev :Release on Friday — tests first")
    bob.sync()
    carol.send("JOIN #dev")
    carol.sync()
    return [bob, carol]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_the_layout_of_a_room_with_people_talking(server, snap_compare, size):
    people = a_busy_afternoon(server.port)
    bob, carol = people
    app = connected(server.port, "ada")

    async def run_before(pilot) -> None:
        deadline = time.monotonic() + 30  # (generous: the suite runs files side by side)

        def shown(where: str, text: str) -> bool:
            buffer = app.buffers.get(where)
            return buffer is not None and any(text in line.plain for line in buffer.lines)

        async def until(condition) -> None:
            while not condition() and time.monotonic() < deadline:
                await pilot.pause(0.05)

        await until(lambda: app.buffers.get("#lobby") is not None)
        await pilot.press(*"/join #dev", "enter")
        dev = lambda: app.buffers.get("#dev")  # noqa: E731
        # the whole join (topic and names) is in before anyone speaks
        await until(lambda: app.buffers.current.name == "#dev" and len(dev().members) == 3)
        await until(lambda: dev().topic != "")
        said = [
            (bob, "PRIVMSG #dev :ada: can you review the \x02parser\x02 change?", "#dev", "review"),
            (carol, "PRIVMSG #dev :I had a look, \x0304two\x03 small things", "#dev", "small"),
            (carol, "PRIVMSG #lobby :lunch anyone?", "#lobby", "lunch anyone?"),
            (bob, "PRIVMSG ada :psst, the demo is at 3", "bob", "the demo is at 3"),
        ]
        for person, line, where, text in said:  # one at a time: always in this order
            person.send(line)
            await until(lambda: shown(where, text))  # noqa: B023
        await pilot.press(*"half a reply")
        await until(lambda: app.query_one("#input").value == "half a reply")
        await pilot.pause(0.3)

    try:
        assert snap_compare(app, terminal_size=size, run_before=run_before)
    finally:
        for person in people:
            person.close()


@pytest.fixture
def db_server(make_server, tmp_path):
    return make_server(db=str(tmp_path / "chat.db"))


def test_the_look_of_replies_reactions_deletions_and_display_names(db_server, snap_compare):
    """A message of several lines, a reply to it, reactions, a deleted message, someone
    with a display name and colour, and a message picked (the status line says the keys)."""
    caps = "batch draft/multiline message-tags echo-message draft/message-redaction"
    bob, carol = Client(db_server.port), Client(db_server.port)
    bob.register("bob", caps + " draft/metadata-2")
    carol.register("carol", caps)
    bob.send("METADATA * SET display-name :Bob Builder")
    bob.send("METADATA * SET color #e07a5f")
    bob.sync()
    app = connected(db_server.port, "ada", room="#lobby")  # (as chat join does)

    async def run_before(pilot) -> None:
        deadline = time.monotonic() + 30
        lobby = lambda: app.buffers.get("#lobby")  # noqa: E731

        def shown(text: str) -> bool:
            return lobby() is not None and any(text in line.plain for line in lobby().lines)

        async def until(condition) -> None:
            while not condition():
                assert time.monotonic() < deadline, "the app never got there"
                await pilot.pause(0.05)

        await until(lambda: lobby() is not None and len(lobby().members) == 3)
        await until(lambda: app.buffers.shown_name("bob")[0] == "Bob Builder")
        bob.send("BATCH +p draft/multiline #lobby")
        for line in ("release checklist:", "- tests green", "- changelog written"):
            bob.send(f"@batch=p PRIVMSG #lobby :{line}")
        bob.send("BATCH -p")
        checklist = bob.expect("BATCH", None, "draft/multiline")
        await until(lambda: shown("changelog written"))
        carol.send("PRIVMSG #lobby :sorry, wrong window")
        oops = carol.expect("PRIVMSG", "#lobby", "sorry, wrong window").tags["msgid"]
        await until(lambda: shown("wrong window"))
        carol.send(f"REDACT #lobby {oops}")
        await until(lambda: shown("message deleted"))
        msgid = checklist.tags["msgid"]
        carol.send(f"@+draft/reply={msgid} PRIVMSG #lobby :tests are green here too")
        await until(lambda: shown("green here too"))
        for who, emoji in ((carol, "👍"), (bob, "👍"), (carol, "🎉")):
            who.send(f"@+draft/react={emoji};+draft/reply={msgid} TAGMSG #lobby")
        await until(lambda: shown("🎉 1"))
        await pilot.press("up", "up")  # the checklist, picked
        await pilot.pause(0.3)

    try:
        assert snap_compare(app, terminal_size=(100, 24), run_before=run_before)
    finally:
        bob.close()
        carol.close()
