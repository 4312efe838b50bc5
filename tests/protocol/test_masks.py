"""Specification of :mod:`chatcli.protocol.masks`: IRC wildcard masks.

``*`` matches any run of characters (none included), ``?`` exactly one character, and
every other character itself only: ``[`` and ``]`` are nick characters, not a class, and
the metacharacters of regular expressions mean nothing. Mask and text are compared under
the casemapping. Matching takes time linear in the mask and in the text, whatever either
holds: masks come from users (WHO, bans, exceptions), and so do the names they are
matched against.
"""

from __future__ import annotations

import itertools
import operator
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatcli.protocol import CaseMapping, Mask, compile_mask, mask_match

ASCII, RFC1459 = CaseMapping.ASCII, CaseMapping.RFC1459


def reference(mask: str, text: str, casemapping: CaseMapping = ASCII) -> bool:
    """Slow but plainly right: dynamic programming over (prefix of mask, prefix of text).
    ``row[j]``: the part of the mask read so far matches ``text[:j]``."""
    mask, text = casemapping.fold(mask), casemapping.fold(text)
    row = [True] + [False] * len(text)
    for ch in mask:
        if ch == "*":  # a run: whatever a shorter prefix of the text matched
            row = list(itertools.accumulate(row, operator.or_))
        else:  # one character: this one, or any with "?"
            row = [False] + [row[j] and ch in ("?", text[j]) for j in range(len(text))]
    return row[-1]


# --------------------------------------------------------------------------------------------
# What matches what.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "text", "expected"),
    [
        ("bob!*@*", "bob!~b@127.0.0.1", True),
        ("BOB!*@*", "bob!~b@h", True),
        ("b?b!*@*", "bob!~b@h", True),
        ("[b]ob!*@*", "bob!~b@h", False),
        ("[b]ob!*@*", "[b]ob!~b@h", True),
        ("*!*@*.example.com", "alice!~a@host.example.com", True),
        ("*!*@*.example.com", "alice!~a@example.com", False),
        ("*", "", True),
        ("*", "anything at all", True),
        ("", "", True),
        ("", "a", False),
        ("a", "", False),
        ("?", "", False),
        ("?", "x", True),
        ("?", "xy", False),
        ("??", "xy", True),
        ("*?", "", False),
        ("*?", "x", True),
        ("?*?", "x", False),
        ("?*?", "xy", True),
        ("a**b", "ab", True),
        ("a***b", "axxb", True),
        ("***", "", True),
        ("a*", "a", True),
        ("*a", "a", True),
        ("*a*", "bab", True),
        ("*a*", "bbb", False),
        ("a*a", "a", False),  # the head and the tail may not share the one "a"
        ("a*a", "aa", True),
        ("*ab*ab*", "abab", True),
        ("*ab*ab*", "aba", False),
        ("*aba*", "abba", False),
        ("*a?c*", "xxabcxx", True),
        ("*a?c*", "xxacxx", False),
        ("a?c", "a\nc", True),  # "?" is any character, even a line break
        ("*", "\n", True),
    ],
)
def test_star_is_any_run_and_question_mark_any_one_character(mask, text, expected):
    assert mask_match(mask, text) is expected
    assert reference(mask, text) is expected


@pytest.mark.parametrize(
    ("mask", "text"),
    [
        ("a.b", "a.b"),
        ("a+", "a+"),
        ("(a)", "(a)"),
        ("a|b", "a|b"),
        ("$a^", "$a^"),
        ("a\\d", "a\\d"),
        ("[ab]", "[ab]"),
        ("a{2}", "a{2}"),
        ("*.*", "x.y"),
    ],
)
def test_regular_expression_metacharacters_are_literal(mask, text):
    """Only ``*`` and ``?`` are wildcards: ``.+()|$^\\[]{}`` match themselves and nothing
    else."""
    assert mask_match(mask, text)


@pytest.mark.parametrize(
    ("mask", "text"),
    [("a.b", "axb"), ("a+", "aa"), ("(a)", "a"), ("a|b", "a"), ("[ab]", "a"), ("a\\d", "a1")],
)
def test_regular_expression_metacharacters_do_not_act(mask, text):
    assert not mask_match(mask, text)


def test_case_is_folded_on_both_sides():
    assert mask_match("ALICE*", "alice!~a@h")
    assert mask_match("alice*", "ALICE!~A@H")
    assert mask_match("*!*@HOST", "x!y@host")


@pytest.mark.parametrize(
    ("mask", "text"),
    [("{b}ob", "[B]OB"), ("[b]ob", "{b}ob"), ("a|b", "A\\B"), ("a^", "a~"), ("*\\*", "x|y")],
)
def test_rfc1459_folds_brackets_backslash_and_tilde(mask, text):
    """Under ``rfc1459`` ``[]\\~`` are the capitals of ``{}|^``; under ``ascii`` they are
    other characters."""
    assert mask_match(mask, text, RFC1459)
    assert not mask_match(mask, text, ASCII)
    assert not mask_match(mask, text)  # ascii is the default


def test_every_small_mask_against_every_small_text():
    """Masks of up to 5 characters of ``ab*?`` against texts of up to 5 of ``ab``: the same
    answers as the reference, every one."""
    for mask_length in range(6):
        for mask in map("".join, itertools.product("ab*?", repeat=mask_length)):
            compiled = Mask.compile(mask)
            for text_length in range(6):
                for text in map("".join, itertools.product("ab", repeat=text_length)):
                    assert compiled.matches(text) is reference(mask, text), (mask, text)


@settings(max_examples=500)
@given(st.text("ab*?", max_size=12), st.text("ab", max_size=12))
def test_agrees_with_the_reference(mask, text):
    assert mask_match(mask, text) is reference(mask, text)


@settings(max_examples=300)
@given(
    st.sampled_from(list(CaseMapping)),
    st.text("aAbB[{|\\~^*?.", max_size=10),
    st.text("aAbB[{|\\~^.", max_size=10),
)
def test_agrees_with_the_reference_under_each_casemapping(casemapping, mask, text):
    assert mask_match(mask, text, casemapping) is reference(mask, text, casemapping)


# --------------------------------------------------------------------------------------------
# Compiled masks.
# --------------------------------------------------------------------------------------------


def test_a_compiled_mask_matches_folded_texts():
    """``Mask.compile`` folds the mask; ``matches`` takes texts folded already (folded once
    by the caller, for every mask of a list)."""
    mask = Mask.compile("Nick[A]*", RFC1459)
    assert mask.text == "Nick[A]*"
    assert mask.matches("nick{a}!~u@h")
    assert mask.matches(RFC1459.fold("NICK[A]!~U@H"))
    assert mask.matches_any(["alice!~a@h", "nick{a}"])
    assert not mask.matches_any(["alice!~a@h"])
    assert not mask.matches_any([])


@pytest.mark.parametrize(
    ("mask", "literal", "min_length"),
    [("Alice", "alice", 5), ("a?c", None, 3), ("a*c", None, 2), ("", "", 0), ("**", None, 0)],
)
def test_a_mask_without_wildcards_names_one_text(mask, literal, min_length):
    compiled = Mask.compile(mask)
    assert compiled.literal == literal
    assert compiled.min_length == min_length


def test_compilations_are_remembered():
    assert compile_mask("*!*@Host", ASCII) is compile_mask("*!*@Host", ASCII)
    assert compile_mask("a[", ASCII) is not compile_mask("a[", RFC1459)


# --------------------------------------------------------------------------------------------
# Cost: no backtracking.
# --------------------------------------------------------------------------------------------

#: CPU seconds one match may take: generous, so as never to flake. The regular expression
#: this replaced took 5 s for the first mask below against 30 "a", and more than a minute
#: for 8 repetitions against 60.
MATCH_BUDGET = 0.05


def adversarial_masks(repeats: int) -> list[str]:
    """Masks that make a backtracking matcher try every way to place ``repeats`` pieces
    in a text of ``a`` before failing at the end, or in the middle."""
    return [
        "*a" * repeats + "*b",
        "*a" * repeats + "*b*",
        "*a" * repeats + "*ab*a",
        "*a?" * repeats + "*b",
        "*?a" * repeats + "*b*",
        "*" + "a?" * repeats + "*b",
        "*aa" * repeats + "?" * repeats + "b*",
        "a*" * repeats + "!*@*b",
    ]


@pytest.mark.parametrize("repeats", [10, 20, 30])
@pytest.mark.parametrize("length", [60, 120, 200])
def test_adversarial_masks_match_in_linear_time(repeats, length):
    text = "a" * length
    for mask in adversarial_masks(repeats):
        compiled = Mask.compile(mask)
        calls = 5
        started = time.process_time()
        for _ in range(calls):
            result = compiled.matches(text)
        spent = (time.process_time() - started) / calls
        assert spent < MATCH_BUDGET, f"{mask!r} against {length} 'a': {spent:.3f} s"
        assert result is reference(mask, text)


def test_a_long_mask_against_a_long_text_costs_little():
    """The longest mask a line can carry, against a long text that it nearly matches."""
    mask = "*a" * 250 + "*b"
    text = "a" * 400 + "c"
    started = time.process_time()
    assert not mask_match(mask, text)
    assert mask_match(mask[:-1], text)
    assert time.process_time() - started < MATCH_BUDGET
