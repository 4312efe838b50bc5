"""IRC formatting as Rich styles (modern.ircdocs.horse/formatting): codes become styles and
are never shown; every other control character stays visible, never reaching the terminal."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.color import Color
from rich.console import Console
from rich.style import Style
from rich.text import Text

from chatcli.client.formatting import CLASSIC, EXTENDED, formatted, irc_colour, strip_formatting


def styles(text: Text) -> list[tuple[str, Style]]:
    """Each styled run of ``text``: its characters and its style."""
    return [
        (text.plain[span.start : span.end], Style.parse(str(span.style))) for span in text.spans
    ]


def terminal(text: Text) -> str:
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="truecolor")
    console.print(text, end="")
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_plain_text_is_left_alone():
    text = formatted("hello, world")
    assert text.plain == "hello, world"
    assert text.spans == []


@pytest.mark.parametrize(
    ("code", "style"),
    [
        ("\x02", Style(bold=True)),
        ("\x1d", Style(italic=True)),
        ("\x1f", Style(underline=True)),
        ("\x1e", Style(strike=True)),
        ("\x16", Style(reverse=True)),
    ],
)
def test_each_toggle_styles_the_text_up_to_the_next_same_code(code, style):
    text = formatted(f"a{code}b{code}c")
    assert text.plain == "abc"
    assert styles(text) == [("b", style)]


def test_toggles_combine_and_reset_ends_them_all():
    text = formatted("\x02bold \x1dboth\x0f plain")
    assert text.plain == "bold both plain"
    assert styles(text) == [("bold ", Style(bold=True)), ("both", Style(bold=True, italic=True))]


def test_monospace_is_consumed_without_a_style():
    assert formatted("\x11code\x11").plain == "code"


def test_colour_foreground_and_background():
    text = formatted("\x0304red\x03 plain \x0302,08blue on yellow")
    assert text.plain == "red plain blue on yellow"
    assert styles(text) == [
        ("red", Style(color="bright_red")),
        ("blue on yellow", Style(color="blue", bgcolor="bright_yellow")),
    ]


def test_the_red_of_the_issue_is_red_on_a_terminal():
    assert terminal(formatted("\x0304red")) == "\x1b[91mred\x1b[0m"


def test_one_digit_colours_and_a_third_digit_is_text():
    assert styles(formatted("\x034x")) == [("x", Style(color="bright_red"))]
    text = formatted("\x03123")
    assert text.plain == "3"
    assert styles(text) == [("3", Style(color="bright_blue"))]


def test_a_comma_not_followed_by_a_digit_is_text():
    text = formatted("\x0304,hi")
    assert text.plain == ",hi"
    assert styles(text) == [(",hi", Style(color="bright_red"))]


def test_a_background_alone_is_not_a_colour_code():
    """``\\x03,5``: a bare colour code (a reset), then the text ``,5``."""
    text = formatted("\x0304a\x03,5b")
    assert text.plain == "a,5b"
    assert styles(text) == [("a", Style(color="bright_red"))]


def test_a_later_code_keeps_the_background_unless_it_gives_one():
    text = formatted("\x0304,02a\x0308b")
    assert styles(text) == [
        ("a", Style(color="bright_red", bgcolor="blue")),
        ("b", Style(color="bright_yellow", bgcolor="blue")),
    ]


def test_99_is_the_default_colour():
    assert styles(formatted("\x0304,02a\x0399,99b")) == [
        ("a", Style(color="bright_red", bgcolor="blue"))
    ]


def test_the_palette_has_99_colours_extended_ones_in_rgb():
    assert len(CLASSIC) == 16 and len(EXTENDED) == 83
    assert irc_colour(52) == Color.parse("#ff0000")
    assert irc_colour(98) == Color.parse("#ffffff")
    assert irc_colour(99) is None
    assert styles(formatted("\x0352,88x")) == [("x", Style(color="#ff0000", bgcolor="#000000"))]


def test_hex_colours():
    text = formatted("\x04FF8800orange\x04 \x04000000,ffffffblack on white\x04zz")
    assert text.plain == "orange black on whitezz"
    assert styles(text) == [
        ("orange", Style(color="#ff8800")),
        ("black on white", Style(color="#000000", bgcolor="#ffffff")),
    ]


def test_a_short_hex_colour_is_a_reset_then_text():
    text = formatted("\x0304a\x04ff00b")
    assert text.plain == "aff00b"
    assert styles(text) == [("a", Style(color="bright_red"))]


def test_reverse_swaps_explicit_colours():
    assert styles(formatted("\x0303,13\x16x")) == [
        ("x", Style(color="bright_magenta", bgcolor="green"))
    ]


@pytest.mark.parametrize(
    ("odd", "shown"),
    [
        ("\x03", ""),
        ("\x0304,", ","),
        ("\x04", ""),
        ("\x04abcdef,", ","),
        ("\x02", ""),
        ("\x0f", ""),
    ],
)
def test_a_code_at_the_end_is_consumed_and_never_raises(odd, shown):
    assert formatted("x" + odd).plain == "x" + shown


def test_other_controls_stay_visible():
    text = formatted("a\x1b[2Jb\x07c\x9bd\x01e\x7ff\tg")
    assert text.plain == "a\ufffd[2Jb\ufffdc\ufffdd\ufffde\ufffdf g"
    assert "\x1b[2J" not in terminal(text)


def test_the_base_style_is_kept_under_the_formatting():
    text = formatted("\x02x", "magenta")
    assert text.style == "magenta"
    assert "\x1b[1;35mx" in terminal(text)


def test_strip_formatting_drops_codes_and_keeps_ctcp_framing():
    assert strip_formatting("\x01ACTION \x0304waves\x0f\x1b\x01") == "\x01ACTION waves\ufffd\x01"


SGR = re.compile(r"\x1b\[[0-9;]*m")
_CONTROL = [chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]]


@given(st.text(alphabet=st.sampled_from([*_CONTROL, "0", "5", "9", ",", "a", "F", "é"])))
def test_any_text_is_safe_dense_in_codes(raw):
    text = formatted(raw)
    assert not any(ch in _CONTROL for ch in text.plain)
    assert "\x1b" not in SGR.sub("", terminal(text))  # styles, never another sequence
    assert all(span.end <= len(text.plain) for span in text.spans)


@given(st.text())
def test_any_text_never_raises_and_yields_no_control(raw):
    text = formatted(raw)
    assert not any(ch in _CONTROL for ch in text.plain)
    assert not any(ch in _CONTROL for ch in strip_formatting(raw).replace("\x01", ""))
    assert "\x1b" not in SGR.sub("", terminal(text))
