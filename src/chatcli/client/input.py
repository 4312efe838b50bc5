"""What the user types, turned into protocol messages or local actions. Pure functions.

Plain text goes to the current room; a line starting with ``/`` is a command. ``//text``
sends text that starts with a slash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from chatcli.defaults import MAX_TEXT_BYTES
from chatcli.protocol import (
    CHANTYPES,
    LocalProtocolError,
    Message,
    is_channel,
    number,
    split_text,
)


class Local(Enum):
    HELP = "help"
    QUIT = "quit"
    HISTORY = "history"
    QUERY = "query"  #: open a conversation with ``target``
    REPLY = "reply"  #: send ``text`` to whoever last sent a direct message
    CLOSE = "close"  #: close the buffer ``target`` ("": the current one)
    CLEAR = "clear"  #: clear the current buffer
    IGNORE = "ignore"  #: ignore the mask ``target`` ("": list the ignores)
    UNIGNORE = "unignore"  #: stop ignoring the mask ``target``
    RECONNECT = "reconnect"  #: drop the connection and connect again
    DELETE = "delete"  #: delete (REDACT) our last message in the current conversation
    REACT = "react"  #: react with ``text`` to the last message in the current conversation
    METADATA = "metadata"  #: set our metadata key ``target`` to ``text`` ("": unset it)


@dataclass(frozen=True)
class Action:
    """The result of one input line: messages to send, a local action, a new current room."""

    messages: tuple[Message, ...] = ()
    local: Local | None = None
    room: str | None = None  #: switch the current room to this
    reason: str = ""  #: for QUIT
    count: int = 0  #: for HISTORY: how many messages
    target: str = ""  #: for QUERY, CLOSE, IGNORE, UNIGNORE: an alias, room or mask
    text: str = ""  #: for REPLY: what to send (not yet split into messages)


#: Messages ``/history`` shows without a number.
HISTORY_PAGE = 20

#: Modes with a parameter in one MODE line (the server's ``MODES=``, 4 on most servers).
MAX_MODES = 4


class InputError(ValueError):
    """The line is not a valid command; the message says how to use it."""


HELP = [
    ("/msg <alias> <text>", "send a direct message"),
    ("/query <alias> [text]", "open a conversation with someone"),
    ("/r <text>", "reply to the last direct message"),
    ("/users [#room]", "who is in the room"),
    ("/who [mask]", "who is online, with details"),
    ("/join <#room> [key]", "join (or create) a room and talk there"),
    ("/part [#room] [reason]", "leave a room"),
    ("/nick <alias>", "change your alias"),
    ("/me <action>", "describe what you do"),
    ("/topic [text]", "show or set the room topic"),
    ("/away [message]", "mark yourself away (no message: back)"),
    ("/whois <alias>", "details about someone"),
    ("/list [mask]", "list the rooms"),
    ("/invite <alias> [#room]", "invite someone to a room"),
    ("/kick <alias> [reason]", "remove someone from the room"),
    ("/rename <#new> [reason]", "give the room a new name (its operators)"),
    ("/ban <alias|mask>", "ban from the room (/unban: lift)"),
    ("/op <alias>...", "make operator (/deop: undo)"),
    ("/voice <alias>...", "give voice (/devoice: take)"),
    ("/mode [target] <modes>", "change or show modes"),
    ("/history [N]", "show N (20) earlier messages of the room"),
    ("/delete", "delete your last message here"),
    ("/react <emoji>", "react to the last message here"),
    ("/displayname [name]", "the name others see (none: your alias)"),
    ("/color [#rrggbb]", "the colour of your name (none: the usual)"),
    ("/close [buffer]", "close a conversation or room view"),
    ("/clear", "clear the screen"),
    ("/ignore [mask]", "ignore someone (no mask: list)"),
    ("/unignore <mask>", "stop ignoring"),
    ("/reconnect", "connect again"),
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


# What no alias holds (Modern IRC): whitespace, commas, wildcards, '!' and '@', controls.
_NOT_IN_ALIAS = re.compile(r"[\s,*?!@\x00-\x1f\x7f]")


def _alias(word: str) -> str:
    """``word`` when it can be someone's alias; else an :class:`InputError` saying why not."""
    if not word or word[0] in CHANTYPES + ":$" or _NOT_IN_ALIAS.search(word):
        raise InputError(
            f"not a valid alias: {word!r} (an alias holds no spaces, commas, '!', '@' or "
            "wildcards, and does not start with # or :)"
        )
    return word


def _checked(text: str) -> str:
    """``text``, once sure it can go in a message (else :class:`LocalProtocolError`)."""
    Message("PRIVMSG", ("*", text))
    return text


def _in_room(room: str | None) -> str:
    if room is None or not is_channel(room):
        raise InputError("you are in no room: /join one, or name the #room")
    return room


def _room_and_words(rest: str, room: str | None, usage: str) -> tuple[str, list[str]]:
    """An optional leading ``#room`` (else the current room), and the words after it."""
    words = rest.split()
    target = words.pop(0) if words and is_channel(words[0]) else None
    if not words:
        raise InputError(f"usage: {usage}")
    return target or _in_room(room), words


def _mode_lines(room: str, change: str, params: list[str]) -> tuple[Message, ...]:
    """``MODE room +oo a b`` for ``change`` "+o", at most :data:`MAX_MODES` per line."""
    sign, letter = change
    chunks = [params[i : i + MAX_MODES] for i in range(0, len(params), MAX_MODES)]
    return tuple(Message("MODE", (room, sign + letter * len(c), *c)) for c in chunks)


def _msg(rest: str, room: str | None) -> Action:
    target, _, text = _need(rest, "/msg <alias> <text>").partition(" ")
    return _say(target, _need(text.strip(), "/msg <alias> <text>"))


def _query(rest: str, room: str | None) -> Action:
    alias, _, text = _need(rest, "/query <alias> [text]").partition(" ")
    alias, text = _alias(alias), text.strip()
    messages = _say(alias, text).messages if text else ()
    return Action(messages=messages, local=Local.QUERY, target=alias)


def _reply(rest: str, room: str | None) -> Action:
    return Action(local=Local.REPLY, text=_checked(_need(rest, "/r <text>")))


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


def _list(rest: str, room: str | None) -> Action:
    return Action(messages=(Message("LIST", tuple(rest.split()[:1])),))


def _invite(rest: str, room: str | None) -> Action:
    usage = "/invite <alias> [#room]"
    words = _need(rest, usage).split()
    if len(words) > 1 and not is_channel(words[1]):
        raise InputError(f"usage: {usage}")
    target = words[1] if len(words) > 1 else _in_room(room)
    return Action(messages=(Message("INVITE", (_alias(words[0]), target)),))


def _kick(rest: str, room: str | None) -> Action:
    usage = "/kick [#room] <alias> [reason]"
    first, _, after = rest.partition(" ")
    target = first if is_channel(first) else None
    if target:
        rest = after.strip()
    alias, _, reason = _need(rest, usage).partition(" ")
    alias, reason, target = _alias(alias), reason.strip(), target or _in_room(room)
    params = (target, alias, reason) if reason else (target, alias)
    return Action(messages=(Message("KICK", params),))


def _rename(rest: str, room: str | None) -> Action:
    """``/rename <#new> [reason]``: the current room's new name (IRCv3 draft/channel-rename)."""
    usage = "/rename <#new name> [reason]"
    new, _, reason = _need(rest, usage).partition(" ")
    if not is_channel(new):
        raise InputError(f"usage: {usage} (a room's name starts with #)")
    target, reason = _in_room(room), reason.strip()
    return Action(messages=(Message("RENAME", (target, new, reason) if reason else (target, new)),))


def _ban_mask(word: str) -> str:
    if word[0] == ":" or "," in word:
        raise InputError(f"not a valid alias or mask: {word!r}")
    return word if "!" in word or "@" in word else f"{word}!*@*"


def _bans(change: str, name: str) -> Callable[[str, str | None], Action]:
    def handler(rest: str, room: str | None) -> Action:
        target, words = _room_and_words(rest, room, f"/{name} [#room] <alias|mask>...")
        return Action(messages=_mode_lines(target, change, [_ban_mask(w) for w in words]))

    return handler


def _member_modes(change: str, name: str) -> Callable[[str, str | None], Action]:
    def handler(rest: str, room: str | None) -> Action:
        target, words = _room_and_words(rest, room, f"/{name} [#room] <alias>...")
        return Action(messages=_mode_lines(target, change, [_alias(w) for w in words]))

    return handler


def _mode(rest: str, room: str | None) -> Action:
    words = rest.split()
    if not words or words[0][0] in "+-":
        words.insert(0, _in_room(room))
    return Action(messages=(Message("MODE", tuple(words)),))


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


def _close(rest: str, room: str | None) -> Action:
    return Action(local=Local.CLOSE, target=_checked(rest.split()[0]) if rest else "")


def _clear(rest: str, room: str | None) -> Action:
    return Action(local=Local.CLEAR)


def _ignore(rest: str, room: str | None) -> Action:
    return Action(local=Local.IGNORE, target=_checked(rest.split()[0]) if rest else "")


def _unignore(rest: str, room: str | None) -> Action:
    mask = _need(rest, "/unignore <mask>").split()[0]
    return Action(local=Local.UNIGNORE, target=_checked(mask))


def _reconnect(rest: str, room: str | None) -> Action:
    return Action(local=Local.RECONNECT)


def _quit(rest: str, room: str | None) -> Action:
    if rest:
        Message("QUIT", (rest,))  # the reason is sent later: check now that it can be
    return Action(local=Local.QUIT, reason=rest)


def _help(rest: str, room: str | None) -> Action:
    return Action(local=Local.HELP)


def _delete(rest: str, room: str | None) -> Action:
    return Action(local=Local.DELETE)


def _react(rest: str, room: str | None) -> Action:
    text = _need(rest, "/react <emoji or word>")
    if len(text) > REACTION_CHARS:
        raise InputError(f"a reaction is at most {REACTION_CHARS} characters")
    return Action(local=Local.REACT, text=_checked(text))


def _display_name(rest: str, room: str | None) -> Action:
    if len(rest) > DISPLAY_NAME_CHARS:
        raise InputError(f"a display name is at most {DISPLAY_NAME_CHARS} characters")
    return Action(local=Local.METADATA, target="display-name", text=_checked(rest))


def _colour(rest: str, room: str | None) -> Action:
    if rest and not SAFE_COLOUR.fullmatch(rest):
        raise InputError("usage: /color #rrggbb (or #rgb), e.g. /color #3a7bd5; none: the usual")
    return Action(local=Local.METADATA, target="color", text=rest)


#: Reactions at most this long (in characters) are sent.
REACTION_CHARS = 32
#: The longest display name sent.
DISPLAY_NAME_CHARS = 32
#: A colour of one's name: ``#rgb`` or ``#rrggbb``.
SAFE_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
#: IRCv3 draft/multiline: the batch type, and the tag of a line joined to the previous.
MULTILINE = "draft/multiline"
CONCAT = "draft/multiline-concat"


@dataclass(frozen=True)
class Multiline:
    """The limits of IRCv3 draft/multiline, from the capability's value."""

    max_bytes: int
    max_lines: int | None = None

    @classmethod
    def parse(cls, value: str) -> Multiline | None:
        """From ``max-bytes=4096,max-lines=100``; None without a valid max-bytes."""
        tokens = dict(token.partition("=")[::2] for token in value.split(",") if token)
        most = number(tokens.get("max-bytes", ""))
        lines = number(tokens.get("max-lines", ""))
        if not most or most < 0:
            return None
        return cls(most, lines if lines and lines > 0 else None)


def _pieces(text: str, most: int) -> list[str]:
    """``text`` cut into pieces of at most ``most`` UTF-8 bytes that join back into it
    exactly: after a space where possible (the space stays at the end of its piece),
    never inside a character."""
    pieces: list[str] = []
    while len(text.encode("utf-8")) > most:
        cut = len(text.encode("utf-8")[:most].decode("utf-8", "ignore"))
        space = text.rfind(" ", 0, cut)
        if space >= cut // 2:
            cut = space + 1
        pieces.append(text[: max(cut, 1)])
        text = text[max(cut, 1) :]
    return [*pieces, text] if text or not pieces else pieces


def multiline_batches(
    target: str,
    lines: list[str],
    limits: Multiline,
    refs: Callable[[], str],
    tags: dict[str, str] | None = None,
) -> list[tuple[Message, ...]]:
    """The IRCv3 draft/multiline batches that send ``lines`` to ``target``: one if they
    fit the server's limits, else as few as they fit in, each line whole where it can be.
    A line longer than a protocol line goes in pieces joined with ``draft/multiline-concat``.
    Blank lines at the start and end are left out; ``tags`` (a reply...) go on the first
    batch's opening. ``refs`` gives each batch's reference tag."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    # Each line as its protocol lines: (text, joined to the previous), and its bytes.
    units: list[list[tuple[str, bool]]] = []
    for line in lines:
        for chunk in _pieces(line, limits.max_bytes) if line else [""]:
            parts = _pieces(chunk, MAX_TEXT_BYTES) if chunk else [""]
            units.append([(part, i > 0) for i, part in enumerate(parts)])
    batches: list[list[list[tuple[str, bool]]]] = []
    size = count = 0
    for unit in units:
        cost = sum(len(text.encode("utf-8")) for text, _ in unit)
        over_bytes = size + 1 + cost > limits.max_bytes
        over_lines = limits.max_lines is not None and count + len(unit) > limits.max_lines
        if not batches or over_bytes or over_lines:
            batches.append([])
            size, count = cost, 0
        else:
            size += 1 + cost
        batches[-1].append(unit)
        count += len(unit)
    out = []
    for number_, batch in enumerate(batches):
        ref = refs()
        opening = Message(
            "BATCH", (f"+{ref}", MULTILINE, target), tags=tags if number_ == 0 else None
        )
        body = [
            Message(
                "PRIVMSG", (target, text), tags={"batch": ref, **({CONCAT: ""} if joined else {})}
            )
            for unit in batch
            for text, joined in unit
        ]
        if all(not m.params[1].strip() for m in body):
            continue
        out.append((opening, *body, Message("BATCH", (f"-{ref}",))))
    return out


_COMMANDS = {
    "msg": _msg,
    "dm": _msg,
    "query": _query,
    "q": _query,
    "r": _reply,
    "reply": _reply,
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
    "list": _list,
    "invite": _invite,
    "kick": _kick,
    "k": _kick,
    "rename": _rename,
    "ban": _bans("+b", "ban"),
    "unban": _bans("-b", "unban"),
    "ub": _bans("-b", "unban"),
    "op": _member_modes("+o", "op"),
    "deop": _member_modes("-o", "deop"),
    "voice": _member_modes("+v", "voice"),
    "devoice": _member_modes("-v", "devoice"),
    "mode": _mode,
    "register": _register,
    "quote": _quote,
    "raw": _quote,
    "history": _history,
    "close": _close,
    "wc": _close,
    "clear": _clear,
    "c": _clear,
    "cl": _clear,
    "ignore": _ignore,
    "unignore": _unignore,
    "reconnect": _reconnect,
    "quit": _quit,
    "exit": _quit,
    "help": _help,
    "delete": _delete,
    "del": _delete,
    "react": _react,
    "displayname": _display_name,
    "color": _colour,
    "colour": _colour,
}


def command_names() -> list[str]:
    """Every command's name (without its slash), for completion."""
    return sorted(_COMMANDS)
