"""The soak test's clients, listening: one function per command or numeric the server sends.

Each handler gets the harness, the session that read the line, the parsed line and the
time it was read. They keep the session's state (registration, rooms, batches) and tell
the ledger what arrived; they never block and never send more than a few lines.
"""

from __future__ import annotations

import base64

from .actions import HISTORY_LIMIT, REPLAY_LINES, schedule_session
from .agents import Handler, Harness, Session
from .irc import Line
from .ledger import read_text


def on_ping(h: Harness, s: Session, line: Line, now: float) -> None:
    h.send(s, f"PONG :{line.param(len(line.params) - 1)}")


def on_pong(h: Harness, s: Session, line: Line, now: float) -> None:
    token = line.params[-1] if line.params else ""
    sent_at = s.pings.pop(token, None)
    if sent_at is None:
        return
    s.certain = max(s.certain, sent_at)
    if token.startswith("a"):  # plain clients: everything before this PING is relayed
        while s.unacked and s.unacked[0][0] <= int(token[1:]):
            h.ledger.confirm(s.unacked.popleft()[1], now)
    elif token.startswith("reg") and s.logged_in:
        h.ledger.settle_kept(s.agent.id, s.started_at)
    elif token.startswith("alive"):
        h.counts["misbehaver_still_answering"] += 1
    if s.close_after_pong and token.startswith("close"):
        h.end(s, now, "vanish")


def on_welcome(h: Harness, s: Session, line: Line, now: float) -> None:
    s.registered_at = now
    s.nick = line.param(0) or s.nick
    agent = s.agent
    s.dm_stint = h.ledger.open_stint(
        agent.id, s.conn, f"@{agent.id}", now, counted=agent.well_behaved
    )
    h.counts["registrations"] += 1
    rooms = agent.likes
    if rooms:
        for room in rooms:
            s.joining[room] = now
        h.send(s, f"JOIN {','.join(rooms)}")
    if agent.traits.account and not agent.registered and "sasl" not in s.caps:
        if h.rng.random() < 0.5:
            h.send(s, f"REGISTER * * {agent.password}")
        else:
            h.send(s, f"PRIVMSG NickServ :REGISTER {agent.password}")
    schedule_session(h, s, now)


def on_nick_in_use(h: Harness, s: Session, line: Line, now: float) -> None:
    if s.registered_at is None:  # a ghost of an earlier session may still hold the nick
        s.nick = f"{s.agent.nick}_{s.conn}"
        h.send(s, f"NICK {s.nick}")
        h.counts["nick_in_use"] += 1


def on_nick(h: Harness, s: Session, line: Line, now: float) -> None:
    if line.nick == s.nick and line.params:
        s.nick = line.params[0]
        if s.agent.well_behaved:
            h.note(f"agent {s.agent.id} renamed to {s.nick}")


def on_join(h: Harness, s: Session, line: Line, now: float) -> None:
    if line.nick != s.nick or not line.params:
        return
    room = line.params[0].lower()
    sent_at = s.joining.pop(room, None)
    if sent_at is not None or room not in s.rooms:
        s.join_sent[room] = now if sent_at is None else sent_at
        counted = s.agent.well_behaved
        s.rooms[room] = h.ledger.open_stint(s.agent.id, s.conn, room, now, counted=counted)


def on_part(h: Harness, s: Session, line: Line, now: float) -> None:
    if line.nick != s.nick or not line.params:
        return
    room = line.params[0].lower()
    stint = s.rooms.pop(room, None)
    sent_at = s.parting.pop(room, now)
    if stint is not None:
        h.ledger.close_stint(stint, sent_at)


def on_join_error(h: Harness, s: Session, line: Line, now: float) -> None:
    room = line.param(1).lower()
    if s.joining.pop(room, None) is not None:
        h.counts["join_refused"] += 1
        if s.agent.well_behaved:
            h.note(f"agent {s.agent.id} could not join {room}: {line.params[-1]}")


def on_privmsg(h: Harness, s: Session, line: Line, now: float) -> None:
    if len(line.params) < 2:
        return
    text = line.params[1]
    batch = line.tags.get("batch")
    if batch is not None:
        if batch in s.batches:
            s.batches[batch][2].append(text)
        return
    if not s.agent.well_behaved:
        return
    if line.nick == "NickServ":
        if "registered." in text and "Account" in text:
            s.agent.registered = True
            h.counts["accounts_registered"] += 1
        elif "is already registered" in text:  # registered by a session that did not hear
            s.agent.registered = True
        return
    if text.startswith("["):  # history replayed on JOIN, without batch or server-time
        return
    ident = read_text(text)
    if line.nick == s.nick and ident is not None and ident.sender == s.agent.id:
        h.ledger.confirm_echo(ident, now)
        return
    target = line.params[0]
    if target.startswith("#"):
        room = target.lower()
        if room not in s.rooms:
            h.ledger.problem("stray", f"{text[:48]!r} in {room}, not joined, at {s.agent.id}")
            return
        h.ledger.receive(s.agent.id, room, text, now)
    else:
        h.ledger.receive(s.agent.id, f"@{s.agent.id}", text, now)


def on_batch(h: Harness, s: Session, line: Line, now: float) -> None:
    ref = line.param(0)
    if ref.startswith("+"):
        s.batches[ref[1:]] = (line.param(1), line.param(2), [])
        return
    found = s.batches.pop(ref[1:], None)
    if found is None or found[0] != "chathistory" or not s.agent.well_behaved:
        return
    _, target, texts = found
    if target.startswith("#"):
        room = target.lower()
        waiting = s.history_wait.get(room)
        if waiting:
            h.ledger.check_history(room, texts, waiting.popleft(), HISTORY_LIMIT)
        elif room in s.join_sent:  # replayed on JOIN: read when the JOIN was handled
            h.ledger.check_history(room, texts, s.join_sent[room], REPLAY_LINES)
        return
    for text in texts:  # direct messages kept while it was offline
        h.ledger.receive(s.agent.id, f"@{s.agent.id}", text, now, live=False)


def on_fail(h: Harness, s: Session, line: Line, now: float) -> None:
    command, code = line.param(0), line.param(1)
    h.counts[f"fail_{command}_{code}".lower()] += 1
    if command == "REGISTER" and code == "ACCOUNT_EXISTS":  # an earlier session's REGISTER
        s.agent.registered = True
    if command == "CHATHISTORY":
        room = line.param(2).lower()
        waiting = s.history_wait.get(room)
        if waiting:
            waiting.popleft()
    if s.agent.well_behaved and command != "CHATHISTORY":
        h.note(f"agent {s.agent.id}: {' '.join(line.params)}")


def on_register(h: Harness, s: Session, line: Line, now: float) -> None:
    if line.param(0) == "SUCCESS":
        s.agent.registered = True
        h.counts["accounts_registered"] += 1


def on_authenticate(h: Harness, s: Session, line: Line, now: float) -> None:
    if line.param(0) == "+":
        agent = s.agent
        raw = f"{agent.nick}\0{agent.nick}\0{agent.password}".encode()
        h.send(s, f"AUTHENTICATE {base64.b64encode(raw).decode()}")


def on_sasl_done(h: Harness, s: Session, line: Line, now: float) -> None:
    if line.command == "903":
        s.logged_in = True
        h.counts["sasl_logins"] += 1
    else:
        h.counts["sasl_failed"] += 1
        h.note(f"agent {s.agent.id}: SASL {line.command} {line.params[-1] if line.params else ''}")
    if s.registered_at is None:
        h.introduce(s, now)


def on_error(h: Harness, s: Session, line: Line, now: float) -> None:
    s.error = line.params[-1] if line.params else "ERROR"


def on_reply(h: Harness, s: Session, line: Line, now: float) -> None:
    """Numerics worth counting (answers to misbehaviour, refused messages)."""
    h.counts[f"numeric_{line.command}"] += 1
    if line.command == "401" and s.agent.well_behaved:
        h.counts["dm_no_such_nick"] += 1


HANDLERS: dict[str, Handler] = {
    "PING": on_ping,
    "PONG": on_pong,
    "001": on_welcome,
    "433": on_nick_in_use,
    "NICK": on_nick,
    "JOIN": on_join,
    "PART": on_part,
    "PRIVMSG": on_privmsg,
    "NOTICE": on_privmsg,
    "BATCH": on_batch,
    "FAIL": on_fail,
    "REGISTER": on_register,
    "AUTHENTICATE": on_authenticate,
    "903": on_sasl_done,
    "904": on_sasl_done,
    "905": on_sasl_done,
    "906": on_sasl_done,
    "907": on_sasl_done,
    "ERROR": on_error,
    **{code: on_join_error for code in ("403", "405", "471", "473", "474", "475")},
    **{code: on_reply for code in ("401", "404", "417", "421", "432", "461")},
}
