"""Grapheme clusters: properties (hypothesis), hand-picked sequences, and the ``regex`` module's
``\\X`` (full UAX #29) as an oracle where the simplified rules claim to agree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmes_tagger.text import _clusters, has_joiners, split_graphemes

SETTINGS = settings(max_examples=300, deadline=None)

# Pieces that exercise every rule: CJK, ASCII, whitespace (incl. U+3000, NBSP, CR LF),
# combining marks (Mn, Me, Mc), variation selectors, skin tones, ZWJ, pictographs, regional
# indicators, tag characters, and a lone mark or ZWJ where they cannot attach.
PIECES = ["中", "国", "a", "1", " ", "\t", "\u3000", "\u00a0", "\r\n", "\n", "\u0301", "\u0308",
          "\u20dd", "\u0903", "\ufe0f", "\ufe0e", "\U000e0100", "\U0001f3fd", "\u200d", "😀",
          "👨", "👩", "❤", "🔥", "🏳", "🌈", "\U0001f1e8", "\U0001f1f3", "\U000e0067",
          "\U000e007f", "🏴", "é", "𠀀", "\x7f", "\x00", "\u200b", "\ufeff", "\u00ad",
          "\u200c", "ｶ", "\uff9e", "\u2028"]
texts = st.lists(st.sampled_from(PIECES), max_size=20).map("".join)


@SETTINGS
@given(st.one_of(texts, st.text(max_size=30)))
def test_tokens_rebuild_the_text_without_whitespace(text: str) -> None:
    tokens, offsets = split_graphemes(text)
    assert "".join(tokens) == "".join(c for c in text if not c.isspace())
    assert len(tokens) == len(offsets)
    assert all(tokens) and not any(c.isspace() for t in tokens for c in t)
    for token, offset in zip(tokens, offsets):
        assert text[offset:offset + len(token)] == token
    assert list(offsets) == sorted(set(offsets))
    # the fast paths and the cluster loop agree
    assert (tokens, list(offsets)) == _clusters(text)


@SETTINGS
@given(st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=50))
def test_plain_cjk_is_one_token_per_character(text: str) -> None:
    tokens, offsets = split_graphemes(text)
    assert tokens == list(text) and offsets == range(len(text))
    assert not has_joiners(text)


@SETTINGS
@given(st.text(st.sampled_from("中国人 \u3000的，。ab1\t"), max_size=30))
def test_whitespace_is_dropped_and_offsets_skip_it(text: str) -> None:
    tokens, offsets = split_graphemes(text)
    assert tokens == [c for c in text if not c.isspace()]
    assert list(offsets) == [i for i, c in enumerate(text) if not c.isspace()]


@SETTINGS
@given(texts)
def test_has_joiners_says_when_code_points_are_not_enough(text: str) -> None:
    if not has_joiners(text):
        assert split_graphemes(text)[0] == [c for c in text if not c.isspace()]


def _oracle(text: str) -> list[str]:
    """UAX #29 clusters by the regex module, whitespace removed (a mark after a space is then
    a character of its own, as in split_graphemes)."""
    regex = pytest.importorskip("regex")
    out = []
    for cluster in regex.findall(r"\X", text):
        kept = cluster.lstrip()
        if kept and not any(c.isspace() for c in kept):
            out.append(kept)
        elif kept:  # a whitespace character inside: split like whitespace would
            out.extend(t for t in split_graphemes(kept)[0])
    return out


# Indic conjuncts (GB9c) and Hangul jamo are not in PIECES: the simplified rules skip them.
@SETTINGS
@given(texts)
def test_agrees_with_full_uax29_on_these_pieces(text: str) -> None:
    assert split_graphemes(text)[0] == _oracle(text)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("我👨\u200d👩\u200d👧们", ["我", "👨\u200d👩\u200d👧", "们"]),  # family: one character
        ("e\u0301t\u00e9", ["e\u0301", "t", "\u00e9"]),  # decomposed and precomposed é
        ("❤\ufe0f\u200d🔥好", ["❤\ufe0f\u200d🔥", "好"]),  # VS16 then ZWJ
        ("👋\U0001f3fd👋", ["👋\U0001f3fd", "👋"]),  # skin tone
        ("\U0001f1e8\U0001f1f3\U0001f1fa\U0001f1f8\U0001f1ef",
         ["\U0001f1e8\U0001f1f3", "\U0001f1fa\U0001f1f8", "\U0001f1ef"]),  # flags pair up
        ("🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
         ["🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"]),  # tag sequence
        ("中\u200d国", ["中\u200d", "国"]),  # ZWJ joins pictographs only
        ("\u0301中 \u0301", ["\u0301", "中", "\u0301"]),  # a mark with nothing to attach to
        ("葛\U000e0100亮", ["葛\U000e0100", "亮"]),  # ideographic variation selector
        ("a\r\nb", ["a", "b"]),
        ("\x7f\u0301", ["\x7f", "\u0301"]),  # a control takes no mark
        ("🏴\u0903\u200d😀", ["🏴\u0903\u200d", "😀"]),  # a spacing mark ends GB11
        ("ｶ\uff9eｷ", ["ｶ\uff9e", "ｷ"]),  # half-width katakana with its voiced sound mark
    ],
)
def test_hand_picked_sequences(text: str, tokens: list[str]) -> None:
    assert split_graphemes(text)[0] == tokens


def test_the_common_characters_fast_path_holds_no_whitespace_or_joining_code_point() -> None:
    """Every code point the fast path lets through is one character on its own by the full
    tables (checked for this Python's Unicode version), and the tables' own cases are not let
    through."""
    from bmes_tagger.text import _COMMON, _found, _patterns

    plain, _, _, astral = _patterns()
    common = [chr(cp) for cp in range(0x10000) if _COMMON.fullmatch(chr(cp))]
    assert len(common) > 27_000  # the CJK block alone is 20,992
    for char in common:
        assert not char.isspace() and not _found(plain, char, astral), hex(ord(char))
    for char in " \u3000\u0301\u302a\u200d\ufe0f\uff9e\U0001f600\n":
        assert not _COMMON.fullmatch(char), hex(ord(char))
