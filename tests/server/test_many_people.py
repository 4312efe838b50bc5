"""What one person's change tells many people at once (a QUIT, a NICK change seen by a
big room) reaches each of them once, in the form each asked for, and in order with the
room's lines. Real server on port 0, more people than the few a relay sends to one by
one (state.MANY)."""

from __future__ import annotations

import pytest

from chatcli.server.state import MANY
from tests.conftest import Client

pytestmark = pytest.mark.timeout(60)

PEOPLE = MANY + 4


@pytest.fixture
def crowd(server, clients) -> list[Client]:
    """PEOPLE clients in #lobby and #two; every other one with server-time."""
    crowd = []
    for i in range(PEOPLE):
        client = Client(server.port)
        clients.append(client)
        client.register(f"p{i}", "server-time" if i % 2 else "")
        client.send("JOIN #two")
        client.expect("366")
        crowd.append(client)
    for client in crowd:
        client.sync()  # (every JOIN heard)
    return crowd


def heard(client: Client, command: str) -> list:
    """What ``client`` got up to a round trip, of ``command``."""
    return [msg for msg in client.sync() if msg.command == command]


def test_a_quit_reaches_everyone_who_shared_a_room_once_in_their_form(crowd):
    leaver, *rest = crowd
    leaver.send("QUIT :bye all")
    assert leaver.closed()
    for i, client in enumerate(rest, start=1):
        quits = heard(client, "QUIT")
        assert [(q.source.split("!")[0], q.params) for q in quits] == [("p0", ("Quit: bye all",))]
        assert ("time" in quits[0].tags) == bool(i % 2)  # server-time only to who asked


def test_a_nick_change_reaches_the_room_once_and_before_the_rooms_next_line(crowd):
    renamer, speaker, *rest = crowd
    renamer.send("NICK renamed")
    speaker.expect("NICK")  # the rename is done...
    speaker.send("PRIVMSG #two :after the rename")  # ...and this comes after it
    for client in [renamer, *rest]:
        seen = [
            msg.command
            for msg in client.collect("PRIVMSG")
            if msg.command == "NICK" or msg.command == "PRIVMSG"
        ]
        assert seen == ["NICK", "PRIVMSG"]
