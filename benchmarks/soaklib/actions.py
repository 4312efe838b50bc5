"""The soak test's clients, acting: what each agent does, on timers drawn from the RNG.

Well-behaved agents talk (numbered messages, see ``ledger.py``), send direct messages
(sometimes to an account that is offline, which the server keeps for it), move between
rooms, fetch history and reconnect in one of three ways. Misbehaving agents send garbage,
lines beyond the limits, invalid UTF-8 and floods, or stop reading. Every action
schedules its own next run.
"""

from __future__ import annotations

import random
import selectors
from collections import deque

from .agents import Action, Agent, Harness, Session
from .irc import Closed
from .ledger import Sent, make_text

KEEPALIVE = 15.0  #: seconds between a session's PINGs (they move its loss cutoff on)
REPLAY_LINES = 20  #: chat serve's --history-lines default: history replayed on JOIN
HISTORY_LIMIT = 50
#: Letters of message fillers: ASCII and multi-byte UTF-8, so both go through the server.
FILLER = "abcdefghij klmnopqrst uvwxyz ÄÖÜ é ß ø ж 雪 ✓ 🙂 "


def schedule_session(h: Harness, s: Session, now: float) -> None:
    agent, t = s.agent, s.agent.traits
    h.every(now, agent, "keepalive", 1.0, KEEPALIVE)
    if t.misbehave is not None:
        h.every(now, agent, "misbehave", 5.0, 30.0)
        return
    every = h.st.talk_every
    if t.talker:
        h.every(now, agent, "talk", 0.5, 1.5 * every)
    if t.dm:
        h.every(now, agent, "dm", 5.0, 20.0)
    if t.churn:
        h.every(now, agent, "churn", 15.0, 45.0)
    if t.history:
        h.every(now, agent, "history", 10.0, 40.0)
    if t.reconnect:
        h.every(now, agent, "reconnect", 40.0, 150.0)


def filler(rng: random.Random) -> str:
    size = rng.randint(5, 120)
    start = rng.randrange(len(FILLER))
    return (FILLER * 4)[start : start + size].strip() or "x"


def say(h: Harness, s: Session, target: str, key: str, now: float, to_conn: int | None) -> Sent:
    """Send one numbered message to ``target`` (a room or a nick) under ``key``."""
    sent = h.ledger.new_message(s.agent.id, s.conn, key, now, to_conn)
    h.send(s, f"PRIVMSG {target} :{make_text(sent, filler(h.rng))}")
    if "echo-message" not in s.caps:
        token = h.ping(s, now, "a")
        s.unacked.append((int(token[1:]), sent))
    return sent


def talk(h: Harness, s: Session, now: float) -> None:
    rooms = s.talkable
    if rooms and s.quit_at is None:
        room = h.rng.choice(rooms)
        say(h, s, room, room, now, None)
    h.every(now, s.agent, "talk", 0.5 * h.st.talk_every, 1.5 * h.st.talk_every)


def direct(h: Harness, s: Session, now: float) -> None:
    """A direct message to someone online or, sometimes, to an account that is away."""
    h.every(now, s.agent, "dm", 5.0, 20.0)
    if s.quit_at is not None:
        return
    if h.rng.random() < 0.25:
        away = [a for a in h.agents if a.registered and a.offline_cleanly and _gone(a)]
        if away:
            peer = h.rng.choice(away)
            say(h, s, peer.nick, f"@{peer.id}", now, None)
            h.counts["dm_kept_sent"] += 1
            return
    online = [a for a in h.agents if a.well_behaved and a.online and a is not s.agent]
    if online:
        peer = h.rng.choice(online)
        peer_session = peer.online
        assert peer_session is not None
        say(h, s, peer_session.nick, f"@{peer.id}", now, peer_session.conn)


def _gone(agent: Agent) -> bool:
    return agent.session is None or agent.session.ended


def churn(h: Harness, s: Session, now: float) -> None:
    """Leave a room or join another, staying in 3 to 10."""
    h.every(now, s.agent, "churn", 15.0, 45.0)
    if s.quit_at is not None:
        return
    rooms = s.talkable
    if len(rooms) > 3 and (len(rooms) >= 10 or h.rng.random() < 0.5):
        room = h.rng.choice(rooms)
        s.parting[room] = now
        h.send(s, f"PART {room} :moving on")
        return
    new = h.pick_rooms(1, [*s.rooms, *s.joining])
    if new:
        s.joining[new[0]] = now
        h.send(s, f"JOIN {new[0]}")


def fetch_history(h: Harness, s: Session, now: float) -> None:
    h.every(now, s.agent, "history", 10.0, 40.0)
    rooms = s.talkable
    if rooms and s.quit_at is None:
        room = h.rng.choice(rooms)
        s.history_wait.setdefault(room, deque()).append(now)
        h.send(s, f"CHATHISTORY LATEST {room} * {HISTORY_LIMIT}")


def reconnect(h: Harness, s: Session, now: float) -> None:
    """Leave, one of three ways; the agent comes back a few seconds later (:meth:`end`)."""
    if s.quit_at is not None:
        return
    how = h.rng.choices(("quit", "ping-close", "vanish"), (50, 25, 25))[0]
    h.counts[f"reconnect_{how}"] += 1
    if how == "quit":
        s.quit_at = now
        h.send(s, "QUIT :be right back")
    elif how == "ping-close":
        s.close_after_pong = True
        h.ping(s, now, "close")
    else:
        h.end(s, now, "vanish")


def keepalive(h: Harness, s: Session, now: float) -> None:
    if s.quit_at is None and not s.stalled:
        h.ping(s, now)
    h.every(now, s.agent, "keepalive", 0.8 * KEEPALIVE, 1.2 * KEEPALIVE)


# -- misbehaviour ---------------------------------------------------------------------------


def misbehave(h: Harness, s: Session, now: float) -> None:
    kind = s.agent.traits.misbehave
    rooms = list(s.rooms) or [h.room_names[0]]
    room = h.rng.choice(rooms).encode()
    h.counts[f"misbehaviour_{kind}"] += 1
    if kind == "garbage":
        data = garbage(h.rng, room)
    elif kind == "overlong":
        data = overlong(h.rng, room)
    elif kind == "badutf8":
        data = bad_utf8(h.rng, room)
    elif kind == "flood":
        data = b"".join(
            b"PRIVMSG %s :flood %d %s\r\n" % (room, i, b"z" * h.rng.randint(10, 200))
            for i in range(h.rng.randint(200, 500))
        )
    else:
        stall(h, s, now, rooms)
        return
    s.wire.queue(data)
    h.ping(s, now, "alive")
    h.every(now, s.agent, "misbehave", 20.0, 60.0)


def garbage(rng: random.Random, room: bytes) -> bytes:
    templates = (
        b":",
        b"@",
        b"@;;;=== ",
        b": : :",
        b"PRIVMSG",
        b"PRIVMSG " + room,
        b"PRIVMSG " + room + b" :\x01ACTION dances\x01",
        b"JOIN #",
        b"NICK",
        b"MODE " + room + b" +zzzz",
        b"CAP REQ :no-such-cap " + b"x" * 300,
        b"AUTHENTICATE " + b"A" * 500,
        b" " * 100,
        b"\x00\x00\x00",
        b"CHATHISTORY LATEST " + room + b" * -5",
        b"WHO " + b"*" * 400,
    )
    lines = []
    for _ in range(rng.randint(5, 20)):
        if rng.random() < 0.5:
            size = rng.randint(1, 300)
            lines.append(bytes(rng.choice(range(1, 256)) for _ in range(size)))
        else:
            lines.append(rng.choice(templates))
    cleaned = [line.replace(b"\n", b"?").replace(b"\r", b"?") for line in lines]
    return b"\r\n".join(cleaned) + b"\r\n"


def overlong(rng: random.Random, room: bytes) -> bytes:
    """Lines beyond the limits: a long body (417), long tags (417), or a line without end
    beyond the read limit (the server must drop us: ReadQ exceeded)."""
    choice = rng.random()
    if choice < 0.4:
        return b"PRIVMSG " + room + b" :" + b"x" * rng.randint(520, 8000) + b"\r\n"
    if choice < 0.7:
        return b"@+tag=" + b"y" * rng.randint(4200, 8000) + b" PRIVMSG " + room + b" :hi\r\n"
    return b"PRIVMSG " + room + b" :" + b"w" * rng.randint(9000, 100_000) + b"\r\n"


def bad_utf8(rng: random.Random, room: bytes) -> bytes:
    bad = (b"caf\xe9", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80")
    lines = [
        b"PRIVMSG " + room + b" :" + rng.choice(bad) + b" bad bytes " + rng.choice(bad),
        b"NOTICE " + room + b" :" + rng.choice(bad),
        b"TOPIC " + room + b" :" + rng.choice(bad),
        b"JOIN #" + rng.choice(bad),
        b"PRIVMSG " + room + b" :ok, then " + rng.choice(bad),
    ]
    return b"\r\n".join(lines) + b"\r\n"


def stall(h: Harness, s: Session, now: float, rooms: list[str]) -> None:
    """Ask for lots of history, then stop reading: the server must stop queueing for us
    at its send-queue limit, and drop us, without holding anybody else up."""
    for i in range(40):
        h.send(s, f"CHATHISTORY LATEST {rooms[i % len(rooms)]} * 1000")
    try:
        s.wire.flush()
    except Closed as exc:
        h.end(s, now, str(exc))
        return
    h.sel.unregister(s.wire)
    s.stalled = True
    h.counts["stalls"] += 1
    h.every(now, s.agent, "resume", 30.0, 90.0)


def resume(h: Harness, s: Session, now: float) -> None:
    if not s.stalled:
        return
    s.stalled = False
    s.pings.clear()
    h.sel.register(s.wire, selectors.EVENT_READ, s)
    h.retry_reads.add(s)
    if not h.winding_down:
        h.every(now, s.agent, "misbehave", 20.0, 60.0)


ACTIONS: dict[str, Action] = {
    "talk": talk,
    "dm": direct,
    "churn": churn,
    "history": fetch_history,
    "reconnect": reconnect,
    "keepalive": keepalive,
    "misbehave": misbehave,
    "resume": resume,
}
