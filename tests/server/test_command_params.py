"""Every command in the server's command table, given parameters no client should send, is
answered as the protocol says: never with ``400`` (ERR_UNKNOWNERROR, "Internal error"), and
never with a traceback in the server's log. Nothing a client sends is a server bug.

One server, with a database and an operator, runs for the whole module. A registered client
sends command lines, a batch at a time, each batch in a room of its own that it runs, beside
a peer it can kick, invite, op or kill; if a QUIT or a KILL ends either, it connects again.
The parameters are the ones that have broken servers: digits that are not ASCII (``²``,
``٣``), huge and negative numbers, empty strings, ``*``, masks, commas, hundreds of targets,
lines as long as a line may be, dates that do not exist, odd room names; the services
(NickServ, ChanServ) and every subcommand (CAP, CHATHISTORY, MONITOR, STATS, SASL) are
reached too. Two ways, both deterministic:

* the sweep puts each of a list of nasty values in each parameter of each command, through
  templates that reach the branches that read them;
* Hypothesis draws batches of lines from each command's parameter shapes, and scripts of
  lines that only mean something together, from a registered client and from one that has
  not registered.

Beyond the replies and the log, the server's threads must not die of an exception, and its
database must go on taking writes.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatcli.config import ServerConfig
from chatcli.passwords import hash_password
from chatcli.protocol import MAX_BODY_BYTES, Message
from chatcli.protocol import numerics as n
from chatcli.server.commands import COMMANDS
from chatcli.server.store import Store
from tests.conftest import TEST_CONFIG, Client, RunningServer, start_server

OPER_PASSWORD = "s3cret"
OPER = "OPER admin " + OPER_PASSWORD
CAPS = (
    "batch labeled-response message-tags draft/chathistory echo-message server-time "
    "extended-join multi-prefix userhost-in-names account-notify away-notify invite-notify "
    "setname account-tag cap-notify draft/multiline"
)
REPLY_TIMEOUT = 15.0  # password hashing (scrypt) is slow on purpose; a busy machine, slower

# --------------------------------------------------------------------------------------------
# What parameters are made of. "{nick}", "{peer}" and "{room}" stand for the client's nick,
# the peer's, and the room of the batch; they are filled in as each line is sent.
# --------------------------------------------------------------------------------------------

NUMBERS = [
    "0", "1", "5", "-1", "-0", "+1", "²", "٣", "٣٠٢", "\uff11", "1.5", "1e3", "0x10", "302",
    "2147483648", "99999999999999999999", "-99999999999999999999", "9" * 60, "00000000001",
]  # fmt: skip
ODD = ["*", "**", ",", ",,", ":", "::", "=", "-", "+", "!", "@", "$", "%", "0", "\\", "~"]
MASKS = [
    "*!*@*", "*", "{peer}!*@*", "*@*", "a?b*", "m:*!*@*", "M:{peer}", "m:", "!", "@", "!@",
    "*!*@*,x", "\\*", "[*]", "{nick}*", "*" * 100, "?" * 50, "*a*b*c*d*e*f*g*h*i*j*k*",
]  # fmt: skip
ROOMS = [
    "{room}", "#lobby", "#", "##", "#a,#b", "#" + "y" * 80, "#é", "#\u200b", "#*", "#?",
    "&local", "+plus", "!bang", "#a:b", "#,", "#lobby,{room}", "0", "#{room}", "{room},{room}",
]  # fmt: skip
NICKS = [
    "{nick}", "{peer}", "NickServ", "ChanServ", "nickserv@services", "ChanServ@x",
    "Guest00001", "a" * 40, "-dash", "0", "[]\\`^{}|", "é", "nick!user@host", "$*",
    "$chatcli.local", "$nope.example", "{peer},{nick}",
]  # fmt: skip
TARGET_LISTS = [
    ",".join(["{peer}"] * 5),
    ",".join(f"#r{i}" for i in range(120)),
    ",".join(["a"] * 250),
    "{room},{peer},{nick},#lobby,NickServ",
    ",".join(["{room}"] * 60),
]
TIMES = [
    "timestamp=2026-13-45T99:99:99Z", "timestamp=2026-01-01T00:00:00Z", "timestamp=",
    "timestamp=2026-01-01T00:00:00.123456Z", "timestamp=²", "timestamp=٢٠٢٦-01-01T00:00:00Z",
    "timestamp=0000-01-01T00:00:00Z", "timestamp=9999-12-31T23:59:59Z", "msgid=",
    "timestamp=2016-12-31T23:59:60Z", "msgid=x", "msgid=" + "a" * 200, "*", "timestamp",
]  # fmt: skip
MODES = [
    "+", "-", "+-+-", "+ovbeIklimnst", "-ovbeIklimnst", "+bbbb", "+b", "-b", "+e", "+I", "+l",
    "-l", "+k", "-k", "+o", "-o", "+v", "+Z", "-Z", "+iwB", "-iwB", "+x", "xyz", "+" + "b" * 60,
    "+lkov", "+lll", "+kl", "+m", "+s", "+t", "+n", "+i", "+O", "+ooooo", "+beI", "+w", "-w",
]  # fmt: skip
LONG = ["x" * 450, "é" * 220, "\U0001f600" * 110, " ".join(["w"] * 200)]
PASSWORDS = ["hunter22", "x", "*", "pa ss", OPER_PASSWORD, "é" * 10]


def _sasl(*parts: bytes) -> str:
    return base64.b64encode(b"\0".join(parts)).decode()


SASL = [
    "PLAIN", "EXTERNAL", "*", "+", "=", "AAAA", "A" * 400, "A" * 399, "not base64!",
    _sasl(b"", b"{nick}", b"hunter22"), _sasl(b"a", b"b"), _sasl(b"x", b"y", b"z", b"w"),
    _sasl(b"", b"\xff", b"\xfe"), _sasl(b"other", b"{nick}", b"hunter22"),
]  # fmt: skip
CAP_SUBS = ["LS", "LIST", "REQ", "END", "ACK", "NAK", "NEW", "DEL", "ls", "req", "FOO", "²"]
CAP_ARGS = [
    "302", "301", "²", "٣٠٢", "-1", "labeled-response", "-batch", "unknown", "sasl=PLAIN",
    "batch -batch", "-", "", "echo-message draft/chathistory", "99999999999999999999",
]  # fmt: skip
HISTORY_SUBS = ["LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN", "TARGETS", "latest", "FOO"]
MONITOR_SUBS = ["+", "-", "C", "L", "S", "c", "l", "X", "+-", ""]
STATS_QUERIES = ["u", "l", "y", "", "uu", "²", "L", "*", "y" * 40]
WHO_OPTIONS = [
    "o", "%tcuihsnfdlaor,123", "%n,²", "%,", "%t,9999", "%", "o%afl,1", "%n,-1", "%,٣",
    "%tcuihsnfdlaorxyz", "%%%",
]  # fmt: skip
LIST_FILTERS = [">1", "<²", ">-1", "<99999999999999999999", ">", "<", ">٣", "<0", ">1,<5"]
LIST_FILTERS += ["C>1", "T<x", "C<", "!#*", "#l*", "!", "*,*,*,*,*", "#a*,!#b?,C<9,T>0"]
NICKSERV = [
    "HELP", "REGISTER hunter22", "REGISTER", "IDENTIFY hunter22", "IDENTIFY {nick} hunter22",
    "IDENTIFY a b c", "LOGIN {nick} wrong", "INFO", "INFO {peer}", "INFO ²", "INFO " + "a" * 300,
    "SET PASSWORD newpass1", "SET PASSWORD x", "SET", "SET PASSWORD", "DROP", "FOO", "",
]  # fmt: skip
CHANSERV = [
    "HELP", "REGISTER {room}", "REGISTER #nope", "INFO {room}", "INFO #lobby", "DROP {room}",
    "REGISTER", "INFO", "DROP #", "REGISTER notaroom", "INFO #" + "x" * 300,
]  # fmt: skip

_TEXT = st.text(st.characters(exclude_characters="\r\n\0", exclude_categories=("Cs",)), max_size=24)
_POOL = [*NUMBERS, *ODD, *MASKS, *ROOMS, *NICKS, *TIMES, *MODES, *PASSWORDS, ""]
ATOM = st.sampled_from(_POOL) | _TEXT | st.sampled_from(LONG + TARGET_LISTS)
NUMBER = st.sampled_from(NUMBERS) | st.integers().map(str) | ATOM
ROOM = st.sampled_from(ROOMS + TARGET_LISTS) | ATOM
NICK = st.sampled_from(NICKS + TARGET_LISTS) | ATOM
TEXT = st.sampled_from([*LONG, "", " ", ":", "\x01ACTION waves\x01"]) | _TEXT
SERVICE = st.sampled_from(["NickServ", "ChanServ", "nickserv@services", "CHANSERV"])
SERVICE_TEXT = st.sampled_from(NICKSERV + CHANSERV)


def one(values: list[str]) -> st.SearchStrategy[str]:
    """One of ``values`` mostly, anything now and then."""
    return st.sampled_from(values) | ATOM


#: Each command's parameters, position by position; a line gets the first few (from none
#: to one more than listed: too few, enough and too many), every later one any ATOM.
SHAPES: dict[str, list[st.SearchStrategy[str]]] = {
    "ADMIN": [NICK],
    "AUTHENTICATE": [one(SASL)],
    "AWAY": [TEXT],
    "BATCH": [one(["+b", "-b", "+", "-", "b", "+" + "r" * 80]), one(["draft/multiline"]), ROOM],
    "CAP": [one(CAP_SUBS), one(CAP_ARGS)],
    "CHATHISTORY": [one(HISTORY_SUBS), ROOM | NICK, one(TIMES), one(TIMES) | NUMBER, NUMBER],
    "HELP": [one(sorted(COMMANDS))],
    "HELPOP": [one([*sorted(COMMANDS), "CMODES", "UMODES"])],
    "INFO": [NICK],
    "INVITE": [NICK, ROOM],
    "MARKREAD": [ROOM | NICK, one(TIMES)],
    "METADATA": [
        ROOM | NICK | one(["*"]),
        one(["GET", "LIST", "SET", "CLEAR", "SUB", "UNSUB", "SUBS", "SYNC", "get"]),
        one(["display-name", "avatar", "color", "status", "Bad-Key", "a" * 65]),
        TEXT,
        ATOM,
    ],
    "ISON": [NICK, NICK, NICK],
    "JOIN": [ROOM, ATOM],
    "KICK": [ROOM, NICK, TEXT],
    "KILL": [NICK, TEXT],
    "LINKS": [ATOM, ATOM],
    "LIST": [ROOM | one(LIST_FILTERS), one(LIST_FILTERS)],
    "LUSERS": [ATOM],
    "MODE": [ROOM | NICK, one(MODES), NICK | ATOM, NUMBER, one(MASKS), ATOM, ATOM],
    "MONITOR": [one(MONITOR_SUBS), NICK],
    "MOTD": [ATOM],
    "NAMES": [ROOM],
    "NICK": [NICK],
    "NICKSERV": [SERVICE_TEXT, one(PASSWORDS), ATOM],
    "NOTICE": [NICK | ROOM | SERVICE, TEXT | SERVICE_TEXT],
    "NS": [SERVICE_TEXT, one(PASSWORDS), ATOM],
    "OPER": [one(["admin"]), one(PASSWORDS)],
    "PART": [ROOM, TEXT],
    "PASS": [one(PASSWORDS)],
    "PING": [ATOM],
    "PONG": [ATOM],
    "PRIVMSG": [NICK | ROOM | SERVICE, TEXT | SERVICE_TEXT],
    "QUIT": [TEXT],
    "REDACT": [ROOM | NICK, ATOM, TEXT],
    "REGISTER": [one(["*", "{nick}"]), one(["*", "a@b.example"]), one(PASSWORDS)],
    "REHASH": [ATOM],
    "RENAME": [ROOM, ROOM, TEXT],
    "SETNAME": [TEXT],
    "STATS": [one(STATS_QUERIES), NICK],
    "TAGMSG": [NICK | ROOM | SERVICE],
    "TIME": [ATOM],
    "TOPIC": [ROOM, TEXT],
    "USER": [ATOM, NUMBER, ATOM, TEXT],
    "USERHOST": [NICK, NICK, NICK, NICK, NICK, NICK],
    "VERSION": [NICK],
    "WALLOPS": [TEXT],
    "WHO": [ROOM | NICK | one(MASKS), one(WHO_OPTIONS)],
    "WHOIS": [NICK, NICK],
    "WHOWAS": [NICK, NUMBER, ATOM],
}
#: Lines that only mean something together.
SCRIPTS = [
    [OPER],
    ["AUTHENTICATE PLAIN", "AUTHENTICATE {sasl}"],
    ["AUTHENTICATE PLAIN", "AUTHENTICATE " + "A" * 400, "AUTHENTICATE +"],
    ["REGISTER * * hunter22"],
    ["NS DROP"],
    ["PRIVMSG ChanServ :REGISTER {room}", "MODE {room} +o {peer}", "KICK {room} {peer}"],
    ["MODE {room} +b {peer}", "MODE {room} +l 1", "INVITE {peer} {room}"],
]
TAGS = st.sampled_from(["", "", "", "@label=L1", "@+draft/reply=abc;+typing=active", "@a=b"])

#: Values for the sweep: each goes in every position of every template below.
NASTY = [
    "²", "٣", "-1", "0", "99999999999999999999", "9" * 300, "", "*", ",", "*!*@*", ":", "é",
    "x" * 450, "#", "$*", "a b", "timestamp=2026-13-45T99:99:99Z", "msgid=" + "a" * 300,
    ",".join(["a"] * 200), ",".join(["{room}"] * 50), "{peer}", "{room}",
]  # fmt: skip
#: Each command's lines for the sweep, ``{x}`` where a NASTY value goes: together they
#: reach every parameter the command reads, in every branch that reads it. A template's
#: lines run in order (``|`` between them), in a room the client runs; those before ``||``
#: set the scene, once for all the values.
SWEEP: dict[str, list[str]] = {
    "ADMIN": ["ADMIN {x}"],
    "AUTHENTICATE": ["AUTHENTICATE {x}", "AUTHENTICATE PLAIN|AUTHENTICATE {x}"],
    "AWAY": ["AWAY {x}", "AWAY :{x}"],
    "BATCH": [
        "BATCH {x}",
        "BATCH +b {x}",
        "BATCH +b draft/multiline {x}",
        "BATCH -{x}",
        "BATCH +b draft/multiline {room}|@batch=b PRIVMSG {room} :{x}|BATCH -b",
        "BATCH +b draft/multiline {peer}|@batch=b;draft/multiline-concat PRIVMSG {peer} {x}|"
        "BATCH -b",
        "@batch={x} PRIVMSG {room} :hi",
    ],
    "CAP": ["CAP {x}", "CAP LS {x}", "CAP REQ {x}", "CAP LIST {x}", "CAP END {x}", "CAP {x} {x}"],
    "CHATHISTORY": [
        "CHATHISTORY {x}",
        "CHATHISTORY LATEST {x} * 10",
        "CHATHISTORY LATEST {room} {x} 10",
        "CHATHISTORY LATEST {room} * {x}",
        "CHATHISTORY LATEST {peer} * {x}",
        "CHATHISTORY BEFORE {room} {x} 10",
        "CHATHISTORY AFTER {room} timestamp=2026-01-01T00:00:00Z {x}",
        "CHATHISTORY AROUND {room} {x} {x}",
        "CHATHISTORY BETWEEN {room} timestamp=2026-01-01T00:00:00Z {x} 10",
        "CHATHISTORY BETWEEN {room} {x} msgid=x {x}",
        "CHATHISTORY TARGETS {x} timestamp=2026-01-01T00:00:00Z 10",
        "CHATHISTORY TARGETS timestamp=2026-01-01T00:00:00Z timestamp=2027-01-01T00:00:00Z {x}",
    ],
    "HELP": ["HELP {x}"],
    "HELPOP": ["HELPOP {x}"],
    "INFO": ["INFO {x}"],
    "INVITE": ["INVITE {x}", "INVITE {x} {room}", "INVITE {peer} {x}", "INVITE {x} {x}"],
    "MARKREAD": ["MARKREAD {x}", "MARKREAD {room} {x}", "MARKREAD {peer} {x}"],
    "METADATA": [
        "METADATA {x}",
        "METADATA {x} LIST",
        "METADATA * {x}",
        "METADATA * GET {x} status",
        "METADATA {peer} GET status {x}",
        "METADATA * SET {x} :v",
        "METADATA * SET status {x}",
        "METADATA * SET status :{x}",
        "METADATA {room} SET color :{x}",
        "METADATA {room} SET {x}",
        "METADATA {x} SET status :v",
        "METADATA {x} CLEAR",
        "METADATA * SUB {x} color",
        "METADATA * UNSUB {x}",
        "METADATA * SUBS {x}",
        "METADATA {x} SYNC",
        "METADATA * SUB color|METADATA * SET color :#fff||JOIN {room}|METADATA {room} SYNC {x}",
    ],
    "ISON": ["ISON {x}", "ISON {peer} {x} {x}"],
    "JOIN": ["JOIN {x}", "JOIN {x} {x}", "MODE {room} +k key|PART {room}||JOIN {room} {x}"],
    "KICK": ["KICK {x} {peer}", "KICK {room} {x}", "KICK {room} {peer} {x}", "KICK {x} {x}"],
    "KILL": ["KILL {x}", OPER + "||KILL {x}", OPER + "||KILL {peer} {x}"],
    "LIST": ["LIST {x}", "LIST >{x}", "LIST <{x}", "LIST {room} {x}", "LIST {x},>{x}"],
    "LINKS": ["LINKS {x}", "LINKS {x} {x}"],
    "LUSERS": ["LUSERS {x}"],
    "MODE": [
        "MODE {x}",
        "MODE {x} +l 5",
        "MODE {room} {x}",
        "MODE {room} {x} {x}",
        "MODE {room} +l {x}",
        "MODE {room} +k {x}",
        "MODE {room} -k {x}",
        "MODE {room} +b {x}",
        "MODE {room} -b {x}",
        "MODE {room} +e {x}",
        "MODE {room} +I {x}",
        "MODE {room} +o {x}",
        "MODE {room} +v {x}",
        "MODE {room} +lkbov {x} {x} {x} {x} {x}",
        "MODE {nick} {x}",
        "MODE {peer} {x}",
        # A room ChanServ keeps: its modes, key, limit and topic are saved to the database.
        "NS REGISTER hunter22|PRIVMSG ChanServ :REGISTER {room}||MODE {room} +l {x}",
        "NS REGISTER hunter22|PRIVMSG ChanServ :REGISTER {room}||MODE {room} +k {x}",
        "NS REGISTER hunter22|PRIVMSG ChanServ :REGISTER {room}||TOPIC {room} {x}",
        "NS REGISTER hunter22|PRIVMSG ChanServ :REGISTER {room}||MODE {room} +b {x}",
    ],
    "MONITOR": ["MONITOR {x}", "MONITOR + {x}", "MONITOR - {x}", "MONITOR {x} {x}"],
    "MOTD": ["MOTD {x}"],
    "NAMES": ["NAMES {x}", "NAMES {room},{x}"],
    "NICK": ["NICK {x}"],
    "NICKSERV": ["NICKSERV {x}", "NICKSERV INFO {x}", "NICKSERV IDENTIFY {x}"],
    "NOTICE": ["NOTICE {x} :hello", "NOTICE {room} {x}", "NOTICE NickServ {x}"],
    "NS": [
        "NS {x}",
        "NS REGISTER {x}",
        "NS IDENTIFY {x}",
        "NS IDENTIFY {x} {x}",
        "NS LOGIN {peer} {x}",
        "NS INFO {x}",
        "NS SET PASSWORD {x}",
        "NS SET {x} {x}",
    ],
    "OPER": ["OPER {x} " + OPER_PASSWORD, "OPER admin {x}"],
    "PART": ["PART {x}", "PART {room} {x}", "PART {x},{room} :bye"],
    "PASS": ["PASS {x}"],
    "PING": ["PING {x}"],
    "PONG": ["PONG {x}"],
    "PRIVMSG": [
        "PRIVMSG {x} :hello",
        "PRIVMSG {room} {x}",
        "PRIVMSG {peer},{x} :hello",
        "PRIVMSG NickServ {x}",
        "PRIVMSG NickServ :INFO {x}",
        "PRIVMSG NickServ :IDENTIFY {x}",
        "PRIVMSG ChanServ {x}",
        "PRIVMSG ChanServ :REGISTER {x}",
        "PRIVMSG ChanServ :INFO {x}",
        "PRIVMSG ChanServ :DROP {x}",
        OPER + "||PRIVMSG {x} :to everyone",
    ],
    "QUIT": ["QUIT {x}"],
    "REDACT": ["REDACT {x} x", "REDACT {room} {x}", "REDACT {peer} x :{x}"],
    "REGISTER": ["REGISTER {x} * hunter22", "REGISTER * {x} hunter22", "REGISTER * * {x}"],
    "REHASH": ["REHASH {x}", OPER + "||REHASH {x}"],
    "RENAME": ["RENAME {x} #new", "RENAME {room} {x}", "RENAME {room} #new :{x}"],
    "SETNAME": ["SETNAME {x}"],
    "STATS": ["STATS {x}", "STATS u {x}", OPER + "||STATS {x}"],
    "TAGMSG": ["TAGMSG {x}", "@+typing=active TAGMSG {x}"],
    "TIME": ["TIME {x}"],
    "TOPIC": ["TOPIC {x}", "TOPIC {room} {x}", "TOPIC {x} {x}"],
    "USER": ["USER {x} 0 * :real", "USER u {x} {x} {x}"],
    "USERHOST": ["USERHOST {x}", "USERHOST {peer} {x} {x} {x} {x} {x}"],
    "VERSION": ["VERSION {x}"],
    "WALLOPS": ["WALLOPS {x}", OPER + "||WALLOPS {x}"],
    "WHO": ["WHO {x}", "WHO {x} {x}", "WHO {room} %{x}", "WHO {room} %n,{x}", "WHO {x} o"],
    "WHOIS": ["WHOIS {x}", "WHOIS {x} {x}", "WHOIS {peer} {x}"],
    "WHOWAS": ["WHOWAS {x}", "WHOWAS {peer} {x}", "WHOWAS {x} {x} {x}"],
}


def sweep_line(template: str, value: str) -> str:
    """One line of a template with ``value`` in place of ``{x}``. A ``{x}`` word is a middle
    parameter where ``value`` can be one, else the trailing one (the words after it are
    then not sent); in a template's own trailing part, ``value`` is just text."""
    tags, _, rest = template.partition(" ") if template.startswith("@") else ("", "", template)
    head, colon, trailing = rest.partition(" :")
    command, *words = head.split(" ")
    params = [value if word == "{x}" else word.replace("{x}", value) for word in words]
    if colon:
        params.append(trailing.replace("{x}", value))
    body = _body(command, params, colon=bool(colon))
    return f"{tags} {body}" if tags else body


def _is_middle(param: str) -> bool:
    return bool(param) and " " not in param and not param.startswith(":")


def _body(command: str, params: list[str], colon: bool) -> str:
    """``command`` and ``params`` as IRC: the first parameter that cannot be a middle one
    (or, with ``colon``, the last) is the trailing one; any after it are not sent."""
    words = [command]
    for i, param in enumerate(params):
        if _is_middle(param) and not (colon and i == len(params) - 1):
            words.append(param)
        else:
            words.append(":" + param)
            break
    return " ".join(words)


@st.composite
def command_lines(draw: st.DrawFn) -> str:
    """One line: a command of the table and parameters in its shape (placeholders kept)."""
    command = draw(st.sampled_from(sorted(SHAPES)))
    shape = SHAPES[command]
    count = draw(st.integers(0, len(shape) + 1))
    params = [draw(shape[i] if i < len(shape) else ATOM) for i in range(count)]
    body = _body(command, params, draw(st.booleans()))
    tags = draw(TAGS)
    return f"{tags} {body}" if tags else body


@st.composite
def scripts(draw: st.DrawFn) -> list[str]:
    lines = draw(st.sampled_from(SCRIPTS))
    sasl = draw(st.sampled_from(SASL))
    return [line.replace("{sasl}", sasl) for line in lines]


@st.composite
def templated(draw: st.DrawFn) -> list[str]:
    """The lines of one SWEEP template, with a value drawn from far more than NASTY."""
    template = draw(st.sampled_from([t for ts in SWEEP.values() for t in ts]))
    value = draw(st.sampled_from(NASTY) | NUMBER | ATOM)
    setup, _, each = template.rpartition("||")
    lines = setup.split("|") if setup else []
    return lines + [sweep_line(line, value) for line in each.split("|")]


BATCHES = st.lists(
    command_lines().map(lambda line: [line]) | scripts() | templated(), min_size=1, max_size=6
)


# --------------------------------------------------------------------------------------------
# The server, the client and its peer.
# --------------------------------------------------------------------------------------------


class ErrorLog(logging.Handler):
    """Keeps what the server logs at ERROR and above."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def crashes(records: list[logging.LogRecord]) -> list[str]:
    """Those of ``records`` that are a command's or a connection's unexpected exception,
    traceback included."""
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    return [
        formatter.format(r) for r in records if r.exc_info or "traceback left out" in r.getMessage()
    ]


def internal_errors(replies: list[Message]) -> list[str]:
    """The ``400 Internal error`` replies. (A 400 with a reason of its own is a refusal, as
    WHOX's for a bad token.)"""
    return [
        m.to_line()
        for m in replies
        if m.command == n.ERR_UNKNOWNERROR and m.params[-1].startswith("Internal error")
    ]


def exchange(client: Client, lines: list[str]) -> tuple[list[Message], bool]:
    """Send ``lines``, then PING: every reply up to the PONG, and whether the connection
    is still open (if not, the replies end with the server's ERROR)."""
    token = f"sync{time.monotonic_ns()}"
    # Closed already (a KILL, say)? What it was told is still to be read.
    with contextlib.suppress(OSError):
        client.send("".join(line + "\r\n" for line in [*lines, f"PING {token}"]))
    replies: list[Message] = []
    deadline = time.monotonic() + REPLY_TIMEOUT
    while True:
        msg = client.recv(max(0.0, deadline - time.monotonic()))
        if msg is None:
            return replies, False
        if msg.command == "PONG" and msg.params[-1] == token:
            return replies, True
        replies.append(msg)


def closed_on_request(replies: list[Message]) -> bool:
    """Whether the server closed the connection because it was told to (QUIT, KILL), or
    for a login refused at registration (PASS <account>:<password>)."""
    errors = [msg.params[-1] for msg in replies if msg.command == "ERROR"]
    reason = errors[0].partition(" (")[2] if errors else ""
    return reason.startswith(("Quit", "Client Quit", "Killed", "Invalid account or password"))


def fit(line: str) -> str:
    """``line`` cut to the 512-byte line (its tags aside): longer lines are framing's
    business, tested elsewhere, and would not reach the commands."""
    tags, body = line.partition(" ")[::2] if line.startswith("@") else ("", line)
    body = body.encode()[: MAX_BODY_BYTES - 2].decode("utf-8", "ignore")
    return f"{tags} {body}" if tags else body


_SERIAL = itertools.count(1)  # for nicks and rooms unique in the module


@dataclass
class Party:
    """The client that sends the lines, and its peer; (re)connected as needed."""

    port: int
    errors: ErrorLog
    store: Store
    me: Client | None = None
    peer: Client | None = None
    room: str = "#none"
    clients: list[Client] = field(default_factory=list)
    stuck: bool = False  #: the database writer stopped: nothing more is worth trying

    def _connect(self, stem: str) -> Client:
        client = Client(self.port)
        self.clients.append(client)
        client.register(f"{stem}{next(_SERIAL)}", CAPS)
        return client

    def _ready(self) -> Client:
        """The client, connected and registered (again, if a QUIT or KILL ended it), in a
        new room that it runs and the peer is in (the peer, too, connected again if
        need be)."""
        if self.me is None:
            self.me = self._connect("fz")
        self.room = f"#fz{next(_SERIAL)}"
        exchange(self.me, [f"JOIN {self.room}"])
        while True:
            if self.peer is None:
                self.peer = self._connect("peer")
            if exchange(self.peer, [f"JOIN {self.room}"])[1]:
                return self.me
            self.peer = None

    def _fill(self, line: str) -> str:
        assert self.me is not None and self.peer is not None
        filled = (
            line.replace("{nick}", self.me.nick)
            .replace("{peer}", self.peer.nick)
            .replace("{room}", self.room)
        )
        return fit(filled)

    def attempt(self, lines: list[str]) -> tuple[list[str], bool]:
        """Send ``lines`` (with placeholders) from the client, in a room of its own. Returns
        what went wrong (400 Internal error, a crash logged, a connection closed unasked),
        each with the lines sent, and whether the connection is still open."""
        me = self._ready()
        sent = [self._fill(line) for line in lines]
        logged = len(self.errors.records)
        replies, still_open = exchange(me, sent)
        settled = self.store.sync()  # what the lines made the server write is written
        problems = internal_errors(replies) + crashes(self.errors.records[logged:])
        if not settled:
            self.stuck = True
            problems.append("the database takes no more writes (its writer is stuck)")
        if not still_open:
            self.me = None
            if not closed_on_request(replies):
                problems += ["closed: " + " | ".join(m.to_line() for m in replies[-3:])]
        else:
            for msg in replies:  # follow the client's nick, whatever renamed it
                if msg.command == "NICK" and (msg.source or "").split("!")[0] == me.nick:
                    me.nick = msg.params[0]
            for client in (me, self.peer):  # leave every room, for the next to start afresh
                if client is not None:
                    exchange(client, ["JOIN 0"])
        return (["\n".join([*sent, "->", *problems])] if problems else []), still_open

    def close(self) -> None:
        for client in self.clients:
            client.close()


class Fuzzed:
    """The module's server, and what went wrong in it: what it logged at ERROR, and what
    escaped its threads."""

    def __init__(self, config: ServerConfig, request: pytest.FixtureRequest) -> None:
        self.config = config
        self.request = request
        self.errors = ErrorLog()
        self.server = self._start()

    def _start(self) -> RunningServer:
        server = start_server(self.config, self.request)
        first = Client(server.port)  # the server's own threads are all up once it answers
        try:
            first.register("first", join=False)
        finally:
            first.close()
        return server

    def _escaped(self, args: threading.ExceptHookArgs) -> None:
        """threading.excepthook: a thread of the server died of an exception."""
        record = logging.LogRecord(
            "thread", logging.CRITICAL, __file__, 0, "thread %r died", (args.thread,), None
        )
        record.exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
        self.errors.records.append(record)

    @contextlib.contextmanager
    def party(self) -> Iterator[Party]:
        """A client and its peer, for one test. If the server was left broken (its database
        writer stuck), it is started again for the next test."""
        hook, threading.excepthook = threading.excepthook, self._escaped
        store = self.server.server.store
        assert store is not None
        players = Party(self.server.port, self.errors, store)
        try:
            yield players
        finally:
            players.close()
            threading.excepthook = hook
            if players.stuck or not store.sync():  # (that test's threads then seem leaked)
                self.server.stop()
                self.server = self._start()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Fuzzed]:
    """One server for the module, with a database and an operator, and nothing that would
    slow the test down on purpose: no flood control, no login backoff, no hash budget."""
    config = replace(
        TEST_CONFIG,
        db=str(tmp_path_factory.mktemp("params") / "chat.db"),
        operators=(("admin", hash_password(OPER_PASSWORD)),),
        flood_rate=0.0,
        login_backoff=0.0,
        hash_burst=1_000_000,
        hash_interval=0.001,
        nick_grace=3600.0,
        replay_lines=0,
    )
    fuzzed = Fuzzed(config, request)
    logger = logging.getLogger("chatcli")
    logger.addHandler(fuzzed.errors)
    try:
        yield fuzzed
    finally:
        logger.removeHandler(fuzzed.errors)
        fuzzed.stop()


# --------------------------------------------------------------------------------------------
# The specification.
# --------------------------------------------------------------------------------------------


def test_every_command_of_the_table_is_fuzzed():
    """A command added to the table is added here too: the shape of its parameters, and
    templates that reach every parameter it reads."""
    assert sorted(SHAPES) == sorted(COMMANDS)
    assert sorted(SWEEP) == sorted(COMMANDS)
    for templates in SWEEP.values():
        assert all("{x}" in template.rpartition("||")[2] for template in templates)


@pytest.mark.parametrize("command", sorted(SWEEP))
def test_every_nasty_value_in_every_parameter_is_answered(fuzzed, command):
    """The sweep: each NASTY value in each place of each template of ``command``. A batch
    holds a template's lines for every value; one that goes wrong (or ends the
    connection, as QUIT does) is run again a value at a time, to name the line at fault."""
    failures: list[str] = []
    with fuzzed.party() as players:
        for template in SWEEP[command]:
            setup, _, each = template.rpartition("||")
            scene = setup.split("|") if setup else []
            groups = [[sweep_line(t, value) for t in each.split("|")] for value in NASTY]
            found, still_open = players.attempt(scene + [line for g in groups for line in g])
            if (found or not still_open) and not players.stuck:
                found = [f for group in groups for f in players.attempt(scene + group)[0]]
            failures += found
            if players.stuck:  # every later write would wait for it in vain
                break
    assert not failures, "\n\n".join(failures)


def test_no_parameters_make_any_command_fail(fuzzed):
    """Generated batches of lines, from a registered client in a room it runs, with a peer
    beside it."""
    with fuzzed.party() as players:

        @settings(max_examples=200, deadline=None, derandomize=True, database=None)
        @given(BATCHES)
        def run(batch: list[list[str]]) -> None:
            found, _ = players.attempt([line for script in batch for line in script])
            assert not found, found[0]

        run()


def test_no_parameters_make_any_command_fail_before_registration(fuzzed):
    """Generated batches of lines from a client that has not registered (yet: some lines
    may register it)."""
    fill = {"{nick}": "early", "{peer}": "nobody", "{room}": "#early"}
    with fuzzed.party() as players:

        @settings(max_examples=60, deadline=None, derandomize=True, database=None)
        @given(BATCHES)
        def run(batch: list[list[str]]) -> None:
            lines = []
            for line in (line for script in batch for line in script):
                for placeholder, value in fill.items():
                    line = line.replace(placeholder, value)
                lines.append(fit(line))
            logged = len(players.errors.records)
            client = Client(fuzzed.server.port)
            try:
                replies, still_open = exchange(client, lines)
            finally:
                client.close()
            settled = players.store.sync()
            problems = internal_errors(replies) + crashes(players.errors.records[logged:])
            if not still_open and not closed_on_request(replies):
                problems.append("closed: " + " | ".join(m.to_line() for m in replies[-3:]))
            if not settled:
                problems.append("the database takes no more writes (its writer is stuck)")
            assert not problems, "\n".join([*lines, "->", *problems])

        run()
