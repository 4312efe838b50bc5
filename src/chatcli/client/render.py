"""Messages as Rich text: each kind of line has its own look. Pure functions.

* room messages: ``12:01 #lobby <bob> hello`` with a stable colour per alias;
* direct messages: ``12:01 bob → you: hello`` in magenta, both directions;
* system notices (joins, parts, quits, nick changes, topics, modes, server notices):
  ``12:01 -- bob joined #lobby``, dimmed;
* errors: red.

Text from the network is made safe for the terminal: IRC formatting (bold, colours...) in
messages, topics and reasons becomes Rich styles (:mod:`chatcli.client.formatting`); any
other control character is shown as U+FFFD.

:func:`render` returns None for lines a person need not see (PING, end-of-list markers...).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text

from chatcli.client.formatting import clean, formatted, strip_formatting
from chatcli.client.history import EARLIER, NOTHING_EARLIER, message_lines
from chatcli.protocol import Message, caps, is_channel, split_source
from chatcli.protocol import numerics as n

if TYPE_CHECKING:
    from chatcli.client.buffers import Entry

#: How a person is shown, by alias: the name to show, and a colour of their choice (or None).
Names = Callable[[str], tuple[str, str | None]]
#: Where a message's further lines (and its reactions, and what it answers) start.
INDENT = "      "
#: How a deleted message is shown, and its style.
DELETED = "message deleted"
STYLE_DELETED = "dim italic"
#: The longest start of a message shown before its reply.
GIST_CHARS = 60

NICK_COLOURS = (
    "cyan", "green", "yellow", "blue", "magenta", "bright_cyan", "bright_green",
    "bright_yellow", "bright_blue", "bright_magenta", "dark_orange", "orchid",
)  # fmt: skip
STYLE_TIME = "dim"
STYLE_SYSTEM = "dim italic"
STYLE_DIRECT = "bold magenta"
STYLE_ERROR = "bold red"
STYLE_INFO = "yellow"
STYLE_MENTION = "on #3a2540"

# Numerics that carry nothing a person needs to read.
_HIDDEN = {
    n.RPL_YOURHOST, n.RPL_CREATED, n.RPL_MYINFO, n.RPL_ISUPPORT, n.RPL_ENDOFNAMES,
    n.RPL_ENDOFWHO, n.RPL_ENDOFWHOIS, n.RPL_TOPICWHOTIME, n.RPL_CREATIONTIME,
    n.RPL_LISTSTART, n.RPL_LISTEND, n.RPL_ENDOFHELP, n.RPL_ENDOFMOTD, n.RPL_MOTDSTART,
    n.RPL_LUSEROP, n.RPL_LUSERUNKNOWN, n.RPL_LUSERCHANNELS, n.RPL_LUSERME,
    n.RPL_LOCALUSERS, n.RPL_GLOBALUSERS, n.RPL_ENDOFBANLIST, n.RPL_LUSERCLIENT, n.ERR_NOMOTD,
    n.RPL_ENDOFWHOWAS, n.RPL_KEYVALUE, n.RPL_KEYNOTSET, n.RPL_METADATASUBOK,
    n.RPL_METADATAUNSUBOK, n.RPL_METADATASUBS, n.RPL_METADATASYNCLATER,
}  # fmt: skip


def nick_style(nick: str) -> str:
    """The colour of an alias: the same on every screen and every run."""
    return NICK_COLOURS[zlib.crc32(nick.lower().encode()) % len(NICK_COLOURS)]


def _stamp(when: datetime) -> Text:
    # A span, not the Text's own style: that would dim the whole line appended after it.
    return Text().append(when.strftime("%H:%M "), style=STYLE_TIME)


def _nick(nick: str) -> Text:
    return Text(nick, style=nick_style(nick))


def _person(nick: str, names: Names | None) -> Text:
    """A person in a message line: their display name and colour, if they chose them."""
    if names is None:
        return _nick(nick)
    shown, colour = names(nick)
    return Text(clean(shown), style=colour or nick_style(nick))


def _system(when: datetime, *parts: str | Text) -> Text:
    line = _stamp(when)
    line.append("-- ", style=STYLE_SYSTEM)
    for part in parts:
        line.append(part if isinstance(part, Text) else Text(part, style=STYLE_SYSTEM))
    return line


def note(text: str, when: datetime | None = None) -> Text:
    """A system line of the client's own, looking like the server's."""
    return _system(when or datetime.now(), text)


def message_time(msg: Message, default: datetime) -> datetime:
    """The message's ``server-time`` tag as local time, or ``default``."""
    stamp = msg.tags.get("time")
    if stamp:
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
        except ValueError:
            pass
    return default


__all__ = ["clean", "ctcp", "formatted", "note", "render"]


def render(
    msg: Message,
    me: str,
    when: datetime | None = None,
    *,
    rooms_named: bool = True,
    names: Names | None = None,
) -> Text | None:
    """The line to show for ``msg``, seen by the user whose alias is ``me``. Without
    ``rooms_named`` (where each room has a buffer of its own), a room's messages do not
    say which room.

    Everything that came from the network is cleaned of control characters first; the
    formatting of messages, topics and reasons is shown as styles, elsewhere dropped."""
    when = message_time(msg, when or datetime.now())
    nick = strip_formatting(split_source(msg.source or "")[0])
    cmd = msg.command
    raw = msg.params
    p = tuple(strip_formatting(param) for param in raw)
    if cmd in ("PRIVMSG", "NOTICE") and len(p) >= 2:
        line = _chat(
            when,
            cmd,
            nick,
            p[0],
            raw[1],
            me,
            server=msg.source is not None and "!" not in msg.source,
            room_named=rooms_named,
            names=names,
        )
        direct = not is_channel(p[0])
        for more in message_lines(msg)[1:]:  # a multiline message's further lines
            line.append(f"\n{INDENT}").append_text(formatted(more, "magenta" if direct else ""))
        return line
    if cmd == "REDACT" and len(p) >= 2:  # (the full-screen client shows the line deleted)
        return _system(when, _nick(nick), " deleted a message")
    if cmd == "TAGMSG" and msg.tags.get(caps.REACT) and p:
        return _system(when, _nick(nick), f" reacted {clean(msg.tags[caps.REACT])}")
    if cmd == "JOIN" and p:
        return _system(when, _nick(nick), f" joined {p[0]}")
    if cmd == "PART" and p:
        return _system(when, _nick(nick), f" left {p[0]}", *_reason(raw[1:]))
    if cmd == "RENAME" and len(p) >= 2:  # IRCv3 draft/channel-rename
        return _system(when, _nick(nick), f" renamed {p[0]} to {p[1]}", *_reason(raw[2:]))
    if cmd == "QUIT":
        return _system(when, _nick(nick), " quit", *_reason((quit_reason(raw[0]),) if raw else ()))
    if cmd == "NICK" and p:
        return _system(when, _nick(nick), " is now known as ", _nick(p[0]))
    if cmd == "TOPIC" and len(p) >= 2:
        return _system(when, _nick(nick), f" set the topic of {p[0]}: ", _styled(raw[1]))
    if cmd == "KICK" and len(p) >= 2:
        return _system(when, _nick(nick), f" removed {p[1]} from {p[0]}", *_reason(raw[2:]))
    if cmd == "MODE" and len(p) >= 2 and p[0] == nick == me:  # our own user modes
        return _system(when, f"your modes: {p[1]}" + (" (a TLS connection)" if "Z" in p[1] else ""))
    if cmd == "MODE" and len(p) >= 2:
        return _system(when, _nick(nick), f" set mode {' '.join(p[1:])} on {p[0]}")
    if cmd == "INVITE" and len(p) >= 2:
        return _system(when, _nick(nick), f" invites you to {p[1]} (/join {p[1]})")
    if cmd == "AWAY":  # away-notify
        if p and p[0]:
            return _system(when, _nick(nick), " is away: ", _styled(raw[0]))
        return _system(when, _nick(nick), " is back")
    if cmd == "KILL" and len(p) >= 2:
        return _system(when, "you were disconnected by server operator ", _nick(nick), f": {p[1]}")
    if cmd == "ERROR":
        return _system(when, f"disconnected: {closing_reason(p[-1] if p else '')}")
    if cmd == "REGISTER" and len(p) >= 2 and p[0] == "SUCCESS":
        return _system(when, f"the account {p[1]} is registered; you are logged in to it")
    if cmd == "FAIL" and len(p) >= 3:
        what = _FAILED.get(p[0], f"{p[0]} failed")
        return _line(when, f"{what}: {p[-1]}", STYLE_ERROR)
    if cmd == "WARN" and len(p) >= 3:  # e.g. a message delivered but not kept in history
        return _line(when, f"warning: {p[-1]}", STYLE_INFO)
    if cmd == NOTHING_EARLIER and msg.source is None and p:  # our own: see Timeline.older
        return _system(when, f"nothing earlier in {p[0]}")
    if cmd == EARLIER and msg.source is None and p:  # (the same)
        return _system(when, f"earlier in {p[0]}:")
    if cmd == n.RPL_WHOISUSER and len(p) >= 6 and names is not None:
        line = _numeric(when, cmd, p, raw)
        shown = names(p[1])[0]
        if line is not None and shown != p[1]:
            line.append(f" · shown as {clean(shown)}", style=STYLE_SYSTEM)
        return line
    if cmd.isdigit():
        return _numeric(when, cmd, p, raw)
    return None  # PING, PONG, CAP and the like


#: What a FAIL of these commands means to the user.
_FAILED = {
    "REDACT": "could not delete the message",
    "MARKREAD": "could not mark as read",
    "METADATA": "could not do that (display name, colour)",
    "BATCH": "the message of several lines was refused",
    "RENAME": "could not rename the room",
}


def _styled(text: str) -> Text:
    """Text from the network in a system line: its formatting on top of the system look."""
    return formatted(text, STYLE_SYSTEM)


def _reason(given: tuple[str, ...]) -> tuple[Text, ...]:
    """`` (reason)`` after a PART, QUIT, KICK or RENAME, if a reason was given and is not empty."""
    if not given or not strip_formatting(given[0]):
        return ()
    return (Text(" (", style=STYLE_SYSTEM), _styled(given[0]), Text(")", style=STYLE_SYSTEM))


def quit_reason(reason: str) -> str:
    """A QUIT reason as a person would say it: 'Quit: lunch' -> 'lunch', 'Client Quit' -> ''."""
    if reason == "Client Quit":
        return ""
    return reason.removeprefix("Quit: ")


def closing_reason(text: str) -> str:
    """The reason inside ``ERROR :Closing link: <host> (<reason>)``, or the whole text."""
    if text.startswith("Closing link:") and text.endswith(")") and "(" in text:
        return quit_reason(text[text.index("(") + 1 : -1]) or "you quit"
    return text or "connection closed"


def ctcp(text: str) -> tuple[str, str] | None:
    """``(VERB, argument)`` of a CTCP message (``\\x01VERB arg\\x01``), else None."""
    if len(text) < 2 or text[0] != "\x01":
        return None
    verb, _, arg = text.strip("\x01").partition(" ")
    return verb.upper(), arg


def _chat(
    when: datetime,
    cmd: str,
    nick: str,
    target: str,
    text: str,
    me: str,
    *,
    server: bool,
    room_named: bool = True,
    names: Names | None = None,
) -> Text:
    """A PRIVMSG or NOTICE; ``text`` as sent, with its formatting and any control."""
    line = _stamp(when)
    if server:
        line.append("-!- ", style=STYLE_INFO)
        return line.append_text(formatted(text, STYLE_INFO))
    request = ctcp(text)
    action = request is not None and request[0] == "ACTION"
    if request is not None and not action:
        verb, arg = strip_formatting(request[0]), strip_formatting(request[1])
        if cmd == "NOTICE":
            return _system(when, f"CTCP {verb} reply from ", _nick(nick), f": {arg}")
        return _system(when, _nick(nick), f" sent a CTCP {verb} request")
    if request is not None:
        text = request[1]
    if is_channel(target):
        if room_named:
            line.append(f"{target} ", style="dim")
        if action:
            line.append("* ").append_text(_person(nick, names)).append(" ")
        else:
            brackets = ("-", "-") if cmd == "NOTICE" else ("<", ">")
            line.append(brackets[0]).append_text(_person(nick, names)).append(f"{brackets[1]} ")
        return line.append_text(formatted(text))
    # A direct message: to me from someone, or (echoed) from me to someone; or an
    # operator's to everyone on the server ($*).
    outgoing = nick.lower() == me.lower()
    who = target if outgoing else nick
    arrow = f"you → {who}" if outgoing else f"{who} → you"
    if target.startswith("$"):
        arrow = f"{'you' if outgoing else nick} → everyone"
    marks = "--" if cmd == "NOTICE" else "[]"
    line.append(f"{marks[0]}{arrow}{marks[1]} ", style=STYLE_DIRECT)
    if action:
        line.append(f"* {nick} ", style="magenta")
    return line.append_text(formatted(text, "magenta"))


def _line(when: datetime, text: str, style: str) -> Text:
    line = _stamp(when)
    line.append(text, style=style)
    return line


def _numeric(
    when: datetime, code: str, params: tuple[str, ...], given: tuple[str, ...]
) -> Text | None:
    """A numeric reply; ``params`` cleaned, ``given`` as sent (for the text in styles)."""
    if code == n.RPL_WELCOME:
        return _system(when, "connected as ", _nick(params[0] if params else ""))
    p = params[1:]  # without the first parameter, our own nick
    raw = given[1:]
    if code in _HIDDEN:
        return None
    if code == n.RPL_NAMREPLY and len(p) >= 3:
        line = _system(when, f"in {p[1]}: ")
        for i, entry in enumerate(p[2].split()):
            bare = entry.lstrip("@+%&~")
            line.append(("" if i == 0 else ", ") + entry[: len(entry) - len(bare)])
            line.append_text(_nick(bare.split("!")[0]))
        return line
    if code == n.RPL_WHOREPLY and len(p) >= 7:
        away = " (away)" if p[5].startswith("G") else ""
        where = f" in {p[0]}" if p[0] != "*" else ""
        return _system(when, _nick(p[4]), f" {p[1]}@{p[2]}{where}{away}: {p[6].partition(' ')[2]}")
    if code == n.RPL_TOPIC and len(p) >= 2:
        return _system(when, f"topic of {p[0]}: ", _styled(raw[1]))
    if code == n.RPL_NOTOPIC and p:
        return _system(when, f"{p[0]} has no topic")
    if code == n.RPL_AWAY and len(p) >= 2:
        return _system(when, _nick(p[0]), " is away: ", _styled(raw[1]))
    if code == n.RPL_WHOISUSER and len(p) >= 5:
        return _system(when, _nick(p[0]), f" is {p[1]}@{p[2]} ({p[4]})")
    if code == n.RPL_WHOISCHANNELS and len(p) >= 2:
        return _system(when, _nick(p[0]), f" is in {p[1]}")
    if code == n.RPL_WHOISIDLE and len(p) >= 3:
        return _system(when, _nick(p[0]), f" has been idle {p[1]}s")
    if code == n.RPL_WHOISSERVER:
        return None
    if code == n.RPL_WHOISSECURE and p:
        return _system(when, _nick(p[0]), " is connected over TLS")
    if code == n.RPL_WHOISACTUALLY and len(p) >= 3:
        return _system(when, _nick(p[0]), f" really is {p[1]}, from {p[2]}")
    if code == n.RPL_WHOISOPERATOR and p:
        return _system(when, _nick(p[0]), " is a server operator")
    if code == n.RPL_WHOISBOT and p:
        return _system(when, _nick(p[0]), " is a bot")
    if code == n.RPL_WHOISACCOUNT and len(p) >= 2:
        return _system(when, _nick(p[0]), f" is logged in as {p[1]}")
    if code == n.RPL_STATSYLINE and len(p) >= 4:  # STATS y: "Y <setting> <value> :<note>"
        return _system(when, f"{p[1]} = {p[2]} ({p[3]})")
    if code == n.RPL_STATSLINKINFO and len(p) >= 8:  # STATS l: one connection
        sendq, lines_out, kib_out, lines_in, kib_in, seconds = p[1:7]
        return _system(
            when,
            f"{p[0]}: {seconds}s, {p[7]}, sendq {sendq} B, out {lines_out} lines/{kib_out} KiB,"
            f" in {lines_in} lines/{kib_in} KiB",
        )
    if code == n.RPL_LIST and len(p) >= 3:
        return _system(when, f"{p[0]} ({p[1]} here) {p[2]}")
    if code == n.ERR_KEYNOTSET and len(p) >= 2:  # METADATA SET of nothing, to unset
        return _system(when, f"{p[1].replace('-', ' ')} was not set")
    if code == n.RPL_INVITING and len(p) >= 2:
        return _system(when, f"invited {p[0]} to {p[1]}")
    if code[0] in "45":
        detail = " ".join(x for x in p[:-1] if x != "*")
        return _line(when, (f"{detail}: " if detail else "") + (p[-1] if p else code), STYLE_ERROR)
    if code in (n.RPL_MOTD, n.RPL_HELPTXT, n.RPL_HELPSTART):
        return _stamp(when).append_text(formatted(raw[-1] if raw else "", "dim"))
    return _line(when, " ".join(p[-1:]), STYLE_INFO) if p else None


def gist(text: str, most: int = GIST_CHARS) -> str:
    """The start of a message, on one line: its first words, cut with an ellipsis."""
    flat = clean(strip_formatting(" ".join(text.split())))
    return flat if len(flat) <= most else flat[: most - 1].rstrip() + "…"


def compose(
    entry: Entry,
    me: str,
    when: datetime,
    *,
    parent: Entry | None = None,
    names: Names | None = None,
) -> Text:
    """The line of a person's message in its buffer (as :func:`render` without room
    names): what it answers first (``parent``, when shown; dimmed), then the message with
    all its lines (or "message deleted" once deleted), then its reactions, counted."""
    msg = entry.msg
    out = Text()
    if entry.reply_to is not None and not entry.deleted:
        if parent is None:
            out.append(f"{INDENT}↪ a message not shown\n", style="dim")
        else:
            shown = names(parent.nick)[0] if names is not None else parent.nick
            said = DELETED if parent.deleted else gist(parent.text)
            out.append(f"{INDENT}↪ {clean(shown)}: {said}\n", style="dim")
    if entry.deleted:
        line = _stamp(message_time(msg, when)).append_text(_person(entry.nick, names))
        line.append(f" {DELETED}", style=STYLE_DELETED)
    else:
        line = render(msg, me, when, rooms_named=False, names=names) or Text()
    if entry.mention:
        line.stylize(STYLE_MENTION)
    out.append_text(line)
    if entry.reactions:
        out.append(f"\n{INDENT}")
        for i, (text, who) in enumerate(entry.reactions.items()):
            mine = any(nick.lower() == me.lower() for nick in who)
            out.append("  " if i else "")
            out.append(f"{clean(text)} {len(who)}", style="bold" if mine else "dim")
    return out
