"""What the user types, turned into protocol messages or local actions. Pure functions.

Plain text goes to the current room; a line starting with ``/`` is a command. ``//text``
sends text that starts with a slash.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from chatcli.defaults import MAX_TEXT_BYTES
from chatcli.protocol import LocalProtocolError, Message, is_channel, number, split_text


class Local(Enum):
    HELP = "help"
    QUIT = "quit"
    HISTORY = "history"


@dataclass(frozen=True)
class Action:
    """The result of one input line: messages to send, a local action, a new current room."""

    messages: tuple[Message, ...] = ()
    local: Local | None = None
    room: str | None = None  #: switch the current room to this
    reason: str = ""  #: for QUIT
    count: int = 0  #: for HISTORY: how many messages


#: Messages ``/history`` shows without a number.
HISTORY_PAGE = 20


class InputError(ValueError):
    """The line is not a valid command; the message says how to use it."""


HELP = [
    ("/msg <alias> <text>", "send a direct message"),
    ("/users [#room]", "who is in the room"),
    ("/who [mask]", "who is online, with details"),
    ("/join <#room> [key]", "join (or create) a room and talk there"),
    ("/part [#room] [reason]", "leave a room"),
    ("/nick <alias>", "change your alias"),
    ("/me <action>", "describe what you do"),
    ("/topic [text]", "show or set the room topic"),
    ("/away [message]", "mark yourself away (no message: back)"),
    ("/whois <alias>", "details about someone"),
    ("/history [N]", "show N (20) earlier messages of the room"),
    ("/register <password>", "register your alias as an account (log in next time)"),
    ("/quote <line>", "send a raw IRC line"),
    ("/quit [reason]", "leave"),
    ("/help", "this list"),
]


def parse_input(line: str, room: str | None) -> Action:
    """Turn one typed line into an :class:`Action`.

    Args:
        line: the text typed (without newline).
        room: the current room, where plain text goes.

    Raises:
        InputError: unknown command or missing arguments (the message is the usage).
    """
    if not line.strip():
        return Action()
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("that line cannot be sent: it is not valid text (UTF-8)") from None
    if not line.startswith("/") or line.startswith("//"):
        text = line[1:] if line.startswith("//") else line
        if room is None:
            raise InputError("you are in no room: /join a room or /msg someone")
        try:
            return _say(room, text)
        except LocalProtocolError:
            raise InputError(
                "that cannot be sent: a message may not hold line breaks or NUL characters"
            ) from None
    name, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    handler = _COMMANDS.get(name.lower())
    if handler is None:
        raise InputError(f"unknown command /{name}; /help lists the commands")
    try:
        return handler(rest, room)
    except LocalProtocolError:
        raise InputError(f"/{name}: that cannot be sent (control characters?)") from None


def _say(target: str, text: str, verb: str = "PRIVMSG") -> Action:
    msgs = tuple(Message(verb, (target, piece)) for piece in split_text(text, MAX_TEXT_BYTES))
    return Action(messages=msgs)


def _need(rest: str, usage: str) -> str:
    if not rest:
        raise InputError(f"usage: {usage}")
    return rest


def _msg(rest: str, room: str | None) -> Action:
    target, _, text = _need(rest, "/msg <alias> <text>").partition(" ")
    return _say(target, _need(text.strip(), "/msg <alias> <text>"))


def _users(rest: str, room: str | None) -> Action:
    target = rest.split()[0] if rest else room
    return Action(messages=(Message("NAMES", (target,) if target else ()),))


def _who(rest: str, room: str | None) -> Action:
    mask = rest.split()[0] if rest else (room or "*")
    return Action(messages=(Message("WHO", (mask,)),))


def _join(rest: str, room: str | None) -> Action:
    words = _need(rest, "/join <#room> [key]").split()
    name = words[0] if is_channel(words[0]) else "#" + words[0]
    return Action(messages=(Message("JOIN", (name, *words[1:2])),), room=name)


def _part(rest: str, room: str | None) -> Action:
    words = rest.split(" ", 1)
    if rest and is_channel(words[0]):
        target, reason = words[0], words[1] if len(words) > 1 else ""
    else:
        target, reason = room, rest
    if target is None:
        raise InputError("usage: /part [#room] [reason]")
    return Action(messages=(Message("PART", (target, reason) if reason else (target,)),))


def _nick(rest: str, room: str | None) -> Action:
    return Action(messages=(Message("NICK", (_need(rest, "/nick <alias>").split()[0],)),))


def _me(rest: str, room: str | None) -> Action:
    if room is None:
        raise InputError("you are in no room")
    text = _need(rest, "/me <action>")
    pieces = split_text(text, MAX_TEXT_BYTES - len("\x01ACTION \x01"))
    return Action(messages=tuple(Message("PRIVMSG", (room, f"\x01ACTION {t}\x01")) for t in pieces))


def _topic(rest: str, room: str | None) -> Action:
    if room is None:
        raise InputError("you are in no room")
    return Action(messages=(Message("TOPIC", (room, rest) if rest else (room,)),))


def _away(rest: str, room: str | None) -> Action:
    return Action(messages=(Message("AWAY", (rest,) if rest else ()),))


def _whois(rest: str, room: str | None) -> Action:
    return Action(messages=(Message("WHOIS", (_need(rest, "/whois <alias>").split()[0],)),))


def _register(rest: str, room: str | None) -> Action:
    # IRCv3 draft/account-registration: the account is named after the current alias.
    password = _need(rest, "/register <password>")
    return Action(messages=(Message("REGISTER", ("*", "*", password)),))


def _quote(rest: str, room: str | None) -> Action:
    from chatcli.protocol import ProtocolError, parse_line

    try:
        return Action(messages=(parse_line(_need(rest, "/quote <raw IRC line>")),))
    except ProtocolError as exc:
        raise InputError(f"/quote: {exc}") from None


def _history(rest: str, room: str | None) -> Action:
    count = number(rest) if rest else HISTORY_PAGE
    if not count:
        raise InputError("usage: /history [N], N a number of messages")
    return Action(local=Local.HISTORY, count=count)


def _quit(rest: str, room: str | None) -> Action:
    if rest:
        Message("QUIT", (rest,))  # the reason is sent later: check now that it can be
    return Action(local=Local.QUIT, reason=rest)


def _help(rest: str, room: str | None) -> Action:
    return Action(local=Local.HELP)


_COMMANDS = {
    "msg": _msg,
    "query": _msg,
    "dm": _msg,
    "users": _users,
    "names": _users,
    "who": _who,
    "join": _join,
    "part": _part,
    "leave": _part,
    "nick": _nick,
    "me": _me,
    "topic": _topic,
    "away": _away,
    "whois": _whois,
    "register": _register,
    "quote": _quote,
    "raw": _quote,
    "history": _history,
    "quit": _quit,
    "exit": _quit,
    "help": _help,
}
