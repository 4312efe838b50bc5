"""What wildcard masks chosen by users cost the server: little, whatever the mask.

A mask is matched against names the users choose too (their nicks), and the matching used
to backtrack polynomially: ``WHO *a*a*a*a*a*a*a*a*a*a*a*a*a*b`` (28 bytes) against a nick
of 30 ``a`` kept the server busy for seconds, under the lock every command waits for, and
a ban or a mute with such a mask did the same on every JOIN or message. Here each of those
costs the server a few milliseconds of CPU at most, and the others talk on meanwhile.

The server runs in this process, on threads: ``time.process_time`` counts its CPU time
(and the test clients', which is small). The bounds are generous, so as never to flake;
the old matcher took seconds for *one* of these commands.
"""

from __future__ import annotations

import time

import pytest

from tests.server.hosts import shown_host
from tests.server.test_list_modes import room

#: The nick the masks are aimed at: as long as a nick may be, all ``a``.
LONG_NICK = "a" * 30
#: Matches no nick (it ends with ``b``), after trying every way to place 13 ``a``.
WHO_MASK = "*a" * 13 + "*b"
#: A ban that names no one here (no host ends with ``b``) the same way, and a mute.
BAN_MASK = "*a" * 8 + "*!*@*b"
MUTE_MASK = "m:" + BAN_MASK
#: CPU seconds all the commands of one test may cost, in all.
CPU_BUDGET = 1.0
#: Seconds a direct message between two bystanders may take meanwhile.
LATENCY_BUDGET = 1.0
REPEATS = 5


def direct_message_delay(sender, receiver) -> float:
    """Seconds a direct message from ``sender`` takes to reach ``receiver``."""
    sent = time.monotonic()
    sender.send(f"PRIVMSG {receiver.nick} :still here")
    assert receiver.expect("PRIVMSG", receiver.nick).params[-1] == "still here"
    return time.monotonic() - sent


def test_who_with_a_backtracking_mask_costs_little_and_blocks_no_one(connect):
    """WHO matches its mask against every nick: five adversarial WHOs cost well under a
    second in all, and a direct message between two others goes through meanwhile."""
    connect(LONG_NICK)
    mallory, alice, bob = connect("mallory"), connect("alice"), connect("bob")
    before = time.process_time()
    for _ in range(REPEATS):
        mallory.send(f"WHO {WHO_MASK}")
    time.sleep(0.05)  # the WHOs are being answered
    delay = direct_message_delay(alice, bob)
    for _ in range(REPEATS):
        replies = mallory.collect("315")
        assert not [m for m in replies if m.command == "352"]  # no nick ends with "b"
        assert replies[-1].params[1] == WHO_MASK
    cpu = time.process_time() - before
    assert delay < LATENCY_BUDGET, f"a direct message took {delay:.2f} s"
    assert cpu < CPU_BUDGET, f"{REPEATS} WHOs cost {cpu:.2f} s of CPU"


def test_who_with_a_long_mask_still_finds_whom_it_names(connect):
    """The same kind of mask, when it matches, answers as before: the one nick it names."""
    connect(LONG_NICK)
    connect("anna")
    mallory = connect("mallory")
    mallory.send("WHO " + "*a" * 13 + "*")
    replies = mallory.collect("315")
    assert [m.params[5] for m in replies if m.command == "352"] == [LONG_NICK]
    mallory.send("WHO AN?A")  # case folded, "?" one character: "anna" only
    replies = mallory.collect("315")
    assert [m.params[5] for m in replies if m.command == "352"] == ["anna"]


def test_a_backtracking_ban_costs_little_on_join(server, connect):
    """A ban is matched against each JOIN (by host and by address): five JOINs of the
    long nick under an adversarial ban cost well under a second, and the ban list still
    works when it changes (compiled masks made again)."""
    assert not shown_host(server).endswith("b")  # the ban names no one here
    op, victim, alice, bob = connect("op"), connect(LONG_NICK), connect("alice"), connect("bob")
    room(op, "#evil", f"+b {BAN_MASK}")
    before = time.process_time()
    for _ in range(REPEATS):
        victim.send("JOIN #evil")
        victim.send("PART #evil")
    time.sleep(0.05)
    delay = direct_message_delay(alice, bob)
    for _ in range(REPEATS):
        victim.expect("366", LONG_NICK, "#evil")
        victim.expect("PART", "#evil")
    cpu = time.process_time() - before
    assert delay < LATENCY_BUDGET, f"a direct message took {delay:.2f} s"
    assert cpu < CPU_BUDGET, f"{REPEATS} JOINs cost {cpu:.2f} s of CPU"
    op.send("MODE #evil +b " + "*a" * 8 + "*!*@*")  # now a ban that names the victim
    op.expect("MODE", "#evil")
    victim.send("JOIN #evil")
    assert victim.expect("474").params[:2] == (LONG_NICK, "#evil")
    op.send("MODE #evil -b " + "*A" * 8 + "*!*@*")  # the same mask in another case
    op.expect("MODE", "#evil")
    victim.send("JOIN #evil")
    victim.expect("366", LONG_NICK, "#evil")


@pytest.mark.parametrize("exception", [None, "+e m:nobody"])
def test_a_backtracking_mute_costs_little_per_message(server, connect, exception):
    """A mute is matched against every message from a member without a prefix: five
    messages from the long nick under an adversarial mute (and a ban exception list to
    look at too) cost well under a second, and arrive."""
    op, victim, alice, bob = connect("op"), connect(LONG_NICK), connect("alice"), connect("bob")
    room(op, "#evil", f"+b {MUTE_MASK}", *([exception] if exception else []))
    victim.send("JOIN #evil")
    victim.expect("366", LONG_NICK, "#evil")
    before = time.process_time()
    for i in range(REPEATS):
        victim.send(f"PRIVMSG #evil :message {i}")
    time.sleep(0.05)
    delay = direct_message_delay(alice, bob)
    for i in range(REPEATS):
        assert op.expect("PRIVMSG", "#evil").params[1] == f"message {i}"
    cpu = time.process_time() - before
    assert delay < LATENCY_BUDGET, f"a direct message took {delay:.2f} s"
    assert cpu < CPU_BUDGET, f"{REPEATS} messages cost {cpu:.2f} s of CPU"
    op.send("MODE #evil +b m:" + "*a" * 8 + "*!*@*")  # now a mute that names the victim
    op.expect("MODE", "#evil")
    victim.send("PRIVMSG #evil :muted now")
    assert victim.expect("404").params[:2] == (LONG_NICK, "#evil")
