"""HELP's topics (room and user modes) and HELPOP, its other name.
(issue 17: modern chat over IRCv3, and the last conformance gaps)"""

from __future__ import annotations

from chatcli.protocol import numerics as n
from chatcli.server.channel import FLAG_MODES, LIST_MODES, PARAM_MODES, PREFIXES, SET_PARAM_MODES
from chatcli.server.handlers.modes import USER_MODES
from tests.conftest import Client


def topic(client: Client, line: str) -> list[str]:
    client.send(line)
    answer = client.collect(n.RPL_ENDOFHELP)
    assert answer[0].command == n.RPL_HELPSTART
    return [m.params[-1] for m in answer[:-1]]


def explained(text: str, mode: str) -> bool:
    return f"  {mode} " in text or f";  {mode} " in text


def test_help_lists_the_topics_and_each_explains_every_mode(server, clients):
    alice = Client(server.port)
    clients.append(alice)
    alice.register("alice", join=False)
    assert any("HELP CMODES" in line for line in topic(alice, "HELP"))
    rooms = "\n".join(topic(alice, "HELP cmodes"))
    for mode in LIST_MODES + PARAM_MODES + SET_PARAM_MODES + FLAG_MODES + "".join(PREFIXES):
        assert explained(rooms, mode), mode
    users = "\n".join(topic(alice, "HELPOP UMODES"))  # (HELPOP: HELP's other name)
    for mode in USER_MODES:
        assert explained(users, mode), mode
    assert topic(alice, "HELPOP privmsg")[0].startswith("PRIVMSG <target>")
    alice.send("HELPOP nonsense")
    assert alice.expect(n.ERR_HELPNOTFOUND).params[1] == "NONSENSE"
