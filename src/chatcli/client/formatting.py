"""IRC text formatting (bold, colours...) as Rich styles, every other control made visible.
A pure function: :func:`formatted`.

The codes, as modern.ircdocs.horse/formatting describes them:

* toggles: bold ``\\x02``, italic ``\\x1d``, underline ``\\x1f``, strikethrough ``\\x1e``,
  monospace ``\\x11`` (a terminal has nothing else: it changes nothing), reverse ``\\x16``;
* colour ``\\x03``: up to two digits of foreground, then optionally a comma and up to two
  digits of background. 0-15 are the classic colours, 16-98 the extended ones, 99 the
  default. A bare ``\\x03`` resets both colours; a comma not followed by a digit is text,
  and so is a third digit. ``\\x03,5`` resets the colours, then shows ``,5``.
* hex colour ``\\x04``: ``RRGGBB``, optionally ``,RRGGBB`` of background, by the same rules;
* reset ``\\x0f``: back to plain text.

The codes become styles and are never shown. Any other control character (C0, DEL, C1,
ESC included) is replaced with U+FFFD, a tab with a space: text from the network never
drives the terminal.
"""

from __future__ import annotations

import re

from rich.color import Color
from rich.style import Style
from rich.text import Text

# C0 and C1 control characters, DEL included, but for the \x01 that frames CTCP. Text from
# the network must never reach the terminal with ESC in it: a peer could clear the screen,
# retitle the window or write the clipboard (OSC 52) of everyone in the room.
_CONTROLS = {c: "\ufffd" for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if c != 0x01}
_CONTROLS[0x09] = " "
# Inside formatted text CTCP framing is gone already: \x01 is replaced as well.
_ALL_CONTROLS = {**_CONTROLS, 0x01: "\ufffd"}


def clean(text: str) -> str:
    """``text`` with every terminal control character replaced (tabs become spaces)."""
    return text.translate(_CONTROLS)


BOLD, COLOUR, HEX, MONOSPACE, REVERSE = "\x02", "\x03", "\x04", "\x11", "\x16"
STRIKE, ITALIC, UNDERLINE, RESET = "\x1e", "\x1d", "\x1f", "\x0f"

#: The 16 classic colours as the terminal's own 16, so that they follow its theme.
CLASSIC = (
    "bright_white", "black", "blue", "green", "bright_red", "red", "magenta", "yellow",
    "bright_yellow", "bright_green", "cyan", "bright_cyan", "bright_blue", "bright_magenta",
    "bright_black", "white",
)  # fmt: skip
_EXTENDED_RGB = (
    "470000 472100 474700 324700 004700 00472c 004747 002747 000047 2e0047 470047 47002a "
    "740000 743a00 747400 517400 007400 007449 007474 004074 000074 4b0074 740074 740045 "
    "b50000 b56300 b5b500 7db500 00b500 00b571 00b5b5 0063b5 0000b5 7500b5 b500b5 b5006b "
    "ff0000 ff8c00 ffff00 b2ff00 00ff00 00ffa0 00ffff 008cff 0000ff a500ff ff00ff ff0098 "
    "ff5959 ffb459 ffff71 cfff60 6fff6f 65ffc9 6dffff 59b4ff 5959ff c459ff ff66ff ff59bc "
    "ff9c9c ffd39c ffff9c e2ff9c 9cff9c 9cffdb 9cffff 9cd3ff 9c9cff dc9cff ff9cff ff94d3 "
    "000000 131313 282828 363636 4d4d4d 656565 818181 9f9f9f bcbcbc e2e2e2 ffffff"
)
#: Colours 16 to 98 of the extended palette, as RGB.
EXTENDED = tuple(_EXTENDED_RGB.split())

_CODES = re.compile(
    r"\x03(?:([0-9]{1,2})(?:,([0-9]{1,2}))?)?"
    r"|\x04(?:([0-9a-fA-F]{6})(?:,([0-9a-fA-F]{6}))?)?"
    r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
_TOGGLES = {BOLD: "bold", ITALIC: "italic", UNDERLINE: "underline", STRIKE: "strike"}


def irc_colour(number: int) -> Color | None:
    """Colour ``number`` of an ``\\x03`` code (0-98); None for 99 and beyond: the default."""
    if number < len(CLASSIC):
        return Color.parse(CLASSIC[number])
    if number < len(CLASSIC) + len(EXTENDED):
        return Color.parse("#" + EXTENDED[number - len(CLASSIC)])
    return None


class _State:
    """The formatting in force at one point of the text."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.flags: set[str] = set()
        self.fg: Color | None = None
        self.bg: Color | None = None

    def style(self) -> Style | None:
        if not self.flags and self.fg is None and self.bg is None:
            return None
        fg, bg = self.fg, self.bg
        if "reverse" in self.flags:  # explicit colours are swapped; default ones by the terminal
            fg, bg = bg, fg
        return Style(
            color=fg,
            bgcolor=bg,
            bold="bold" in self.flags or None,
            italic="italic" in self.flags or None,
            underline="underline" in self.flags or None,
            strike="strike" in self.flags or None,
            reverse=("reverse" in self.flags and fg is None and bg is None) or None,
        )

    def apply(self, match: re.Match[str]) -> None:
        code = match.group()[0]
        if code in _TOGGLES:
            self.flags ^= {_TOGGLES[code]}
        elif code == REVERSE:
            self.flags ^= {"reverse"}
        elif code == RESET:
            self.reset()
        elif code == COLOUR and match.group(1) is None:
            self.fg = self.bg = None
        elif code == COLOUR:
            self.fg = irc_colour(int(match.group(1)))
            if match.group(2) is not None:
                self.bg = irc_colour(int(match.group(2)))
        elif code == HEX and match.group(3) is None:
            self.fg = self.bg = None
        elif code == HEX:
            self.fg = Color.parse("#" + match.group(3))
            if match.group(4) is not None:
                self.bg = Color.parse("#" + match.group(4))
        # MONOSPACE: a terminal's text is monospaced already.


def formatted(text: str, style: str | Style = "") -> Text:
    """``text`` with its IRC formatting codes turned into spans, on top of ``style``.

    Never raises, whatever ``text`` holds. The result's plain text holds no formatting
    code and no control character at all: each is replaced with U+FFFD (a tab with a
    space), CTCP's ``\\x01`` included."""
    out = Text(style=style)
    state = _State()
    at = 0
    for match in _CODES.finditer(text):
        if match.start() > at:
            out.append(text[at : match.start()].translate(_ALL_CONTROLS), state.style())
        state.apply(match)
        at = match.end()
    if at < len(text):
        out.append(text[at:].translate(_ALL_CONTROLS), state.style())
    return out


def strip_formatting(text: str) -> str:
    """``text`` without its formatting codes, and :func:`clean`: the CTCP ``\\x01`` kept."""
    return clean(_CODES.sub("", text))
