"""IRC wildcard masks, matched in time linear in the mask and the text.

Sans-IO. A mask names nicks, hosts or ``nick!user@host`` sources: ``*`` matches any run of
characters (none included), ``?`` any one character, and every other character only
itself (``[`` and ``]`` are nick characters, not classes; ``.`` and ``\\`` are literal),
compared under the server's casemapping.

Masks come from other users (WHO, bans, exceptions), so matching must not cost what they
choose: a translation to a regular expression (``*`` -> ``.*``) backtracks polynomially,
with the number of ``*`` as the exponent. A :class:`Mask` instead splits the folded mask
on ``*`` into segments of fixed length and places them left to right, each at its
leftmost possible place. That is a correct glob match (a segment placed further left
leaves every later segment more room, never less) and costs at most
O(len(mask) * len(text)) with no backtracking, most of it in C: a segment without ``?``
is searched with :meth:`str.find`, one with ``?`` with a regular expression of literals
and ``.`` only, which has no quantifier to backtrack over.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import NamedTuple

from chatcli.protocol.names import CaseMapping

#: One piece of a mask between two ``*``: a plain string, or for a piece with ``?`` a
#: pattern of literals and ``.`` only. Either matches exactly as many characters as the
#: piece has.
Segment = str | re.Pattern[str]

#: How many (mask, casemapping) compilations :func:`mask_match` keeps. A compiled mask
#: takes up to some 20 KiB (a 500-character mask with a ``?`` in every segment).
CACHE_SIZE = 256


class Mask(NamedTuple):  # (not a dataclass: chat send's start-up loads this module)
    """A wildcard mask compiled for matching. Build with :meth:`compile`.

    ``head`` must match at the start of the text, ``tail`` at its end, and each of
    ``middle`` in order between them, none overlapping; without a ``*`` (``exact``) the
    head is the whole mask and must match the whole text.
    """

    text: str  #: the mask as given
    casemapping: CaseMapping
    exact: bool  #: no ``*``: the text must have exactly ``min_length`` characters
    min_length: int  #: the characters the mask needs: its length without the ``*``
    head: Segment
    middle: tuple[Segment, ...]
    tail: Segment
    head_length: int
    tail_length: int

    @classmethod
    def compile(cls, mask: str, casemapping: CaseMapping = CaseMapping.ASCII) -> Mask:
        """``mask`` folded under ``casemapping`` and split for matching, in O(len(mask))
        (plus compiling a small pattern per segment that holds a ``?``)."""
        parts = casemapping.fold(mask).split("*")
        exact = len(parts) == 1
        head, tail = parts[0], "" if exact else parts[-1]
        middle = tuple(_segment(part) for part in parts[1:-1] if part)  # "**" is "*"
        return cls(
            text=mask,
            casemapping=casemapping,
            exact=exact,
            min_length=sum(map(len, parts)),
            head=_segment(head),
            middle=middle,
            tail=_segment(tail),
            head_length=len(head),
            tail_length=len(tail),
        )

    @property
    def literal(self) -> str | None:
        """The one (folded) text the mask matches, if it has no ``*`` and no ``?``."""
        return self.head if self.exact and isinstance(self.head, str) else None

    def matches(self, folded: str) -> bool:
        """Whether the text ``folded``, already folded under :attr:`casemapping`, matches
        the mask. O(len(mask) * len(folded)) at worst, without backtracking."""
        size = len(folded)
        if size < self.min_length or (self.exact and size != self.min_length):
            return False
        if not _fits(self.head, folded, 0):
            return False
        if self.exact:
            return True
        end = size - self.tail_length  # the tail's place; >= head_length, by min_length
        if not _fits(self.tail, folded, end):
            return False
        pos = self.head_length
        for segment in self.middle:
            if isinstance(segment, str):
                found = folded.find(segment, pos, end)
                if found < 0:
                    return False
                pos = found + len(segment)
            else:
                hit = segment.search(folded, pos, end)
                if hit is None:
                    return False
                pos = hit.end()
        return True

    def matches_any(self, folded_texts: Iterable[str]) -> bool:
        """Whether any of ``folded_texts`` (each folded under :attr:`casemapping`)
        matches."""
        return any(map(self.matches, folded_texts))


def mask_match(mask: str, text: str, casemapping: CaseMapping = CaseMapping.ASCII) -> bool:
    """Whether ``text`` matches the IRC wildcard ``mask``: ``*`` any run, ``?`` any one
    character, everything else literal (``[`` and ``]`` are nick characters, not classes),
    compared under ``casemapping``. In time linear in each; the last :data:`CACHE_SIZE`
    masks stay compiled."""
    return compile_mask(mask, casemapping).matches(casemapping.fold(text))


@functools.lru_cache(maxsize=CACHE_SIZE)
def compile_mask(mask: str, casemapping: CaseMapping = CaseMapping.ASCII) -> Mask:
    """:meth:`Mask.compile`, remembered for the masks used most recently."""
    return Mask.compile(mask, casemapping)


def _segment(part: str) -> Segment:
    """A folded piece of a mask without ``*``, ready to be found in a text."""
    if "?" not in part:
        return part
    literal = "".join("." if ch == "?" else re.escape(ch) for ch in part)
    return re.compile(literal, re.DOTALL)


def _fits(segment: Segment, text: str, pos: int) -> bool:
    """Whether ``segment`` matches ``text`` at ``pos`` (the text is long enough)."""
    if isinstance(segment, str):
        return text.startswith(segment, pos)
    return segment.match(text, pos) is not None
