"""STATUSMSG (``ISUPPORT STATUSMSG=@+``): ``PRIVMSG @#room`` reaches the room's operators,
``+#room`` its voiced members and operators, and nobody else; the sender must be able to
speak in the room. (issue 17: modern chat over IRCv3, and the last conformance gaps)"""

from __future__ import annotations

from chatcli.protocol import numerics as n
from tests.conftest import Client


def room(port: int, clients: list[Client]) -> tuple[Client, Client, Client, Client]:
    """#team: op (operator, its creator), voiced (+v), plain, and outsider (not in it)."""
    people = []
    for nick in ("op", "voiced", "plain", "outsider"):
        person = Client(port)
        clients.append(person)
        person.register(nick, join=False)
        people.append(person)
    op, voiced, plain, outsider = people
    for person in (op, voiced, plain):
        person.send("JOIN #team")
        person.expect("366")
    op.send("MODE #team +v voiced")
    voiced.expect("MODE")
    plain.expect("MODE")
    return op, voiced, plain, outsider


def test_it_is_advertised(server, clients):
    alice = Client(server.port)
    clients.append(alice)
    tokens = {t for m in alice.register("alice") if m.command == n.RPL_ISUPPORT for t in m.params}
    assert "STATUSMSG=@+" in tokens


def test_a_message_to_the_operators_reaches_them_only(server, clients):
    op, voiced, plain, _ = room(server.port, clients)
    plain.send("PRIVMSG @#team :a word for the operators")
    got = op.expect("PRIVMSG")
    assert (got.source.split("!")[0], got.params) == (
        "plain",
        ("@#team", "a word for the operators"),
    )
    plain.send("PRIVMSG #team :and now to all")  # (in order: the @ one was not seen)
    assert voiced.expect("PRIVMSG").params == ("#team", "and now to all")
    assert op.expect("PRIVMSG").params == ("#team", "and now to all")


def test_a_message_to_the_voiced_reaches_them_and_the_operators(server, clients):
    op, voiced, plain, _ = room(server.port, clients)
    op.send("NOTICE +#team :voiced and up")
    assert voiced.expect("NOTICE").params == ("+#team", "voiced and up")
    op.send("PRIVMSG #team :to all")
    assert plain.expect("PRIVMSG").params == ("#team", "to all")


def test_who_may_not_speak_in_the_room_may_not_reach_its_operators(server, clients):
    op, _, _, outsider = room(server.port, clients)
    outsider.send("PRIVMSG @#team :let me in")  # (+n: not a member)
    assert outsider.expect(n.ERR_CANNOTSENDTOCHAN).params[1] == "#team"
    outsider.send("PRIVMSG @#nowhere :hello?")
    assert outsider.expect(n.ERR_NOSUCHCHANNEL).params[1] == "#nowhere"
    op.send("PING :end")
    assert op.expect("PONG").params[-1] == "end"  # (and nothing reached the operator)
