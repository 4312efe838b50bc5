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
