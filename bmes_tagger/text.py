"""Text -> the characters a tagger tags one by one: non-whitespace extended grapheme clusters.

A code point is not always a character: 👨‍👩‍👧 is five code points (three emoji joined by
ZWJ), ``é`` may be ``e`` plus a combining accent, 🇨🇳 is two regional indicators, ❤️ a heart
plus a variation selector. Cut into code points, a segmenter can split them into separate
words. :func:`split_graphemes` keeps each together, following UAX #29 in a simplified form (no
``regex`` module needed): a base character takes every following combining mark (Mn, Me, Mc),
variation selector, emoji modifier (U+1F3FB..U+1F3FF), tag character (U+E0020..U+E007F),
ZWNJ and half-width katakana sound mark (U+FF9E, U+FF9F); a ZWJ takes the pictograph after it
when the cluster started with one (emoji ZWJ sequences); regional indicators pair up; control
characters take nothing. Not covered: Hangul jamo sequences, prepended concatenation marks,
Indic conjuncts (Unicode 15.1's GB9c). Whitespace is never part of a character and never
joins: a combining mark after a space starts a character of its own.

Nearly all Chinese text has none of the joining code points and takes a fast path.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import cache

ZWJ = "\u200d"
# Grapheme_Extend beyond the marks: ZWNJ, and the half-width katakana (semi-)voiced sound marks.
_OTHER_EXTEND = "\u200c\uff9e\uff9f"
# Format characters that are not Control to UAX #29 (they extend, or prepend).
_NOT_CONTROL = frozenset("\u200c\u200d\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f"
                         "\u0890\u0891\u08e2\U000110bd\U000110cd")
_REGIONAL = ("\U0001f1e6", "\U0001f1ff")
_MODIFIERS = ("\U0001f3fb", "\U0001f3ff")
_TAGS = ("\U000e0020", "\U000e007f")


def split_graphemes(text: str) -> tuple[list[str], Sequence[int]]:
    r"""The non-whitespace characters (grapheme clusters) of ``text`` and their offsets.

    Args:
        text: any string.

    Returns:
        ``(tokens, offsets)``: ``text[offsets[i]:offsets[i] + len(tokens[i])] == tokens[i]``,
        and ``"".join(tokens)`` is ``text`` without its whitespace (``str.isspace``). Without
        whitespace or joining code points, ``(list(text), range(len(text)))``.

    Example:
        >>> split_graphemes("我爱 北京")
        (['我', '爱', '北', '京'], [0, 1, 3, 4])
        >>> split_graphemes("家👨\u200d👩\u200d👧好")[0]
        ['家', '👨\u200d👩\u200d👧', '好']
        >>> tokens, offsets = split_graphemes("cafe\u0301 🇨🇳")  # e + accent, a flag
        >>> [len(t) for t in tokens], offsets
        ([1, 1, 1, 2, 2], [0, 1, 2, 3, 6])
    """
    if _COMMON.fullmatch(text):  # most Chinese text: no need to build the full tables
        return list(text), range(len(text))
    plain, joining, _, astral = _patterns()
    if not _found(plain, text, astral):
        return list(text), range(len(text))
    if not _found(joining, text, astral):
        positions = [i for i, c in enumerate(text) if not c.isspace()]
        return [text[i] for i in positions], positions
    return _clusters(text)


# Code points common in Chinese text that are neither whitespace nor joining (a test checks
# every one against the full tables): printable ASCII, Latin-1's middle dot, dashes, quotes
# and the ellipsis, CJK punctuation (less the ideographic space and the tone marks
# U+302A..U+302F), CJK ideographs (extension A and the main block) and the full-width forms
# (less the half-width katakana sound marks U+FF9E, U+FF9F). Text of these alone needs no
# grapheme tables, whose construction is most of a one-line predict's first call.
_COMMON = re.compile("[!-~\u00b7\u2010-\u2027\u3001-\u3029\u3030-\u303f"
                     "\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff9d]*")


def has_joiners(text: str) -> bool:
    """Whether some character of ``text`` is more than one code point (a combining mark,
    variation selector, emoji modifier, tag character, ZWJ or regional indicator occurs), so
    that ``list(text)`` would cut it; readers keep their per-code-point path when it is not."""
    _, joining, _, astral = _patterns()
    return _found(joining, text, astral)


def _found(pattern: re.Pattern[str], text: str, astral: frozenset[str]) -> bool:
    """Whether ``pattern`` (BMP code points, plus every astral one) finds a BMP code point or
    one of ``astral`` in ``text``. A class with astral ranges is tested range by range for
    every character; BMP classes are a bitmap (30x faster on Chinese text)."""
    found = pattern.search(text)
    while found is not None:
        char = found.group()
        if char <= "\uffff" or char in astral:
            return True
        found = pattern.search(text, found.end())
    return False


def _clusters(text: str) -> tuple[list[str], list[int]]:
    extends = _patterns()[2]
    tokens: list[str] = []
    offsets: list[int] = []
    i, n = 0, len(text)
    while i < n:
        base = text[i]
        if base.isspace():
            i += 1
            continue
        start = i
        i += 1
        if _REGIONAL[0] <= base <= _REGIONAL[1] and i < n and \
                _REGIONAL[0] <= text[i] <= _REGIONAL[1]:
            i += 1  # a flag: regional indicators pair up, so a third one starts anew
        if _control(base):
            tokens.append(base)
            offsets.append(start)
            continue
        pictographic = _pictographic(base)
        while True:
            end = extends.match(text, i).end()
            if pictographic and any(unicodedata.category(c) == "Mc" for c in text[i:end]):
                pictographic = False  # a spacing mark is no Extend: GB11 no longer applies
            i = end
            if i == n or text[i] != ZWJ:
                break
            i += 1  # a ZWJ extends like a mark, and (GB11) joins pictograph to pictograph
            if pictographic and i < n and _pictographic(text[i]):
                i += 1
            else:
                pictographic = False  # GB11 wants pictograph, marks, ZWJ, pictograph: no more
        tokens.append(text[start:i])
        offsets.append(start)
    return tokens, offsets


def _control(char: str) -> bool:
    """GB4/GB5: nothing attaches to a control or format character (NUL, DEL, U+200B, BOM)."""
    category = unicodedata.category(char)
    if category == "Cf":
        return char not in _NOT_CONTROL and not _TAGS[0] <= char <= _TAGS[1]
    return category in ("Cc", "Zl", "Zp")


def _pictographic(char: str) -> bool:
    """An approximation of Extended_Pictographic (not in ``unicodedata``): symbols (So) and
    the emoji planes' code points, less regional indicators and skin-tone modifiers."""
    if _REGIONAL[0] <= char <= _REGIONAL[1] or _MODIFIERS[0] <= char <= _MODIFIERS[1]:
        return False
    return "\U0001f000" <= char <= "\U0001fffd" or char in "\u203c\u2049" or \
        unicodedata.category(char) == "So"


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], frozenset[str]]:
    """``(plain, joining, extends, astral)``: a whitespace or joining code point and a joining
    one (both as BMP classes that also match every astral code point, see :func:`_found`); a
    run of code points that extend the character before them; the astral joining code points.
    Built on first use (about 30 ms)."""
    ranges = []
    # Combining marks are in planes 0, 1 and 14 only (plane 2 and 3 are CJK ideographs).
    for plane in (range(0, 0x20000), range(0xE0000, 0xE1000)):
        start = None
        for cp in plane:
            if unicodedata.category(chr(cp)) in ("Mn", "Me", "Mc"):
                if start is None:
                    start = cp
            elif start is not None:
                ranges.append((start, cp - 1))
                start = None
        if start is not None:
            ranges.append((start, plane[-1]))
    ranges += [(ord(c), ord(c)) for c in _OTHER_EXTEND]
    ranges += [(ord(a), ord(b)) for a, b in (_MODIFIERS, _TAGS)]
    extend = _char_class(ranges)
    joining = [*ranges, (ord(ZWJ), ord(ZWJ)), (ord(_REGIONAL[0]), ord(_REGIONAL[1]))]
    bmp = _char_class([r for r in joining if r[1] <= 0xFFFF])
    astral = frozenset(chr(cp) for a, b in joining if b > 0xFFFF for cp in range(a, b + 1))
    every_astral = "\U00010000-\U0010ffff"
    return (re.compile(f"[\\s{bmp}{every_astral}]"), re.compile(f"[{bmp}{every_astral}]"),
            re.compile(f"[{extend}]*"), astral)


def _char_class(ranges: list[tuple[int, int]]) -> str:
    # none of the code points is ASCII, so none needs escaping inside [...]
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)
