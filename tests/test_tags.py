"""BMES tags: round trips (hypothesis), strict and lenient decoding tables, scheme conversion,
and the transition constraints checked against brute-force enumeration."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmes_tagger.errors import TagSequenceError
from bmes_tagger.tags import (
    allowed_transitions,
    bmes_to_iobes,
    from_bmes,
    is_legal_bmes,
    repair_bmes,
    repair_to_bmes,
    spans_to_tags,
    split_tag,
    tags_to_spans,
    tags_to_words,
    to_bmes,
    words_to_tags,
)

CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x4E50)
WORDS = st.lists(st.text(CJK, min_size=1, max_size=5), min_size=0, max_size=12)
LABELS = st.sampled_from(["PER", "LOC", "ORG", "组织", "ORG-x"])
SETTINGS = settings(max_examples=200, deadline=None)


@st.composite
def span_sets(draw: st.DrawFn) -> tuple[list[tuple[str, int, int]], int]:
    """Random non-overlapping typed spans over a random length."""
    length = draw(st.integers(0, 15))
    spans, i = [], 0
    while i < length:
        if draw(st.booleans()):
            end = draw(st.integers(i + 1, min(length, i + 5)))
            spans.append((draw(LABELS), i, end))
            i = end
        else:
            i += 1
    return spans, length


def encode_bio(spans: list[tuple[str, int, int]], length: int) -> list[str]:
    tags = ["O"] * length
    for label, a, b in spans:
        tags[a] = f"B-{label}"
        for i in range(a + 1, b):
            tags[i] = f"I-{label}"
    return tags


def encode_bioes(spans: list[tuple[str, int, int]], length: int) -> list[str]:
    tags = ["O"] * length
    for label, a, b in spans:
        if b - a == 1:
            tags[a] = f"S-{label}"
            continue
        tags[a], tags[b - 1] = f"B-{label}", f"E-{label}"
        for i in range(a + 1, b - 1):
            tags[i] = f"I-{label}"
    return tags


# --- round trips -------------------------------------------------------------------------------


@SETTINGS
@given(WORDS)
def test_words_round_trip(words: list[str]) -> None:
    tags = words_to_tags(words)
    chars = list("".join(words))
    assert len(tags) == len(chars)
    assert tags_to_words(chars, tags) == words
    assert is_legal_bmes(tags)


@SETTINGS
@given(span_sets())
def test_spans_round_trip_and_scheme_conversion(case: tuple[list, int]) -> None:
    spans, length = case
    tags = spans_to_tags(spans, length)
    assert tags_to_spans(tags, strict=True) == spans
    assert to_bmes(encode_bio(spans, length), "bio") == tags
    assert to_bmes(encode_bioes(spans, length), "bioes") == tags
    assert to_bmes(tags, "bmes") == tags
    assert bmes_to_iobes(tags) == encode_bioes(spans, length)


ANY_TAG = st.sampled_from(["O", "B-PER", "M-PER", "E-PER", "S-PER", "B-LOC", "M-LOC", "E-LOC",
                           "S-LOC"])


@SETTINGS
@given(st.lists(ANY_TAG, max_size=12))
def test_lenient_decoding_never_fails_and_repair_is_legal(tags: list[str]) -> None:
    spans = tags_to_spans(tags)
    covered = [i for _, a, b in spans for i in range(a, b)]
    assert len(covered) == len(set(covered))  # disjoint
    assert all(0 <= i < len(tags) for i in covered)
    repaired = repair_bmes(tags)
    assert is_legal_bmes(repaired)
    assert tags_to_spans(repaired, strict=True) == spans
    if is_legal_bmes(tags):
        assert repaired == tags and tags_to_spans(tags, strict=True) == spans
    else:
        with pytest.raises(TagSequenceError):
            tags_to_spans(tags, strict=True)


@SETTINGS
@given(st.lists(st.sampled_from("BMES"), max_size=12))
def test_cws_lenient_words_cover_every_character(tags: list[str]) -> None:
    chars = [chr(0x4E00 + i) for i in range(len(tags))]
    words = tags_to_words(chars, tags)
    assert "".join(words) == "".join(chars)
    assert all(words)


# --- tables --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "position", "message"),
    [
        (["B", "B"], 1, "B cannot follow B"),
        (["O", "M-PER"], 1, "M-PER cannot follow O"),
        (["B-LOC", "E-PER"], 1, "E-PER cannot follow B-LOC"),
        (["B-PER"], 0, "sentence ends inside an open span"),
        (["S", "B", "M"], 2, "sentence ends inside an open span"),
        (["M"], 0, "M cannot start a sentence"),
        (["E-PER", "O"], 0, "E-PER cannot start a sentence"),
        (["B", "S"], 1, "S cannot follow B"),
        (["B-PER", "O"], 1, "O cannot follow B-PER"),
        (["S", "E"], 1, "E cannot follow S"),
    ],
)
def test_strict_errors(tags: list[str], position: int, message: str) -> None:
    with pytest.raises(TagSequenceError) as info:
        tags_to_spans(tags, strict=True)
    assert info.value.position == position
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B", "B", "E"], [("", 0, 1), ("", 1, 3)]),
        (["M", "E", "S"], [("", 0, 2), ("", 2, 3)]),
        (["E", "E"], [("", 0, 1), ("", 1, 2)]),
        (["B-PER", "O", "E-PER"], [("PER", 0, 1), ("PER", 2, 3)]),
        (["B-LOC", "E-PER"], [("LOC", 0, 1), ("PER", 1, 2)]),
        (["B-PER", "M-PER"], [("PER", 0, 2)]),
        (["O", "M-ORG", "E-ORG", "B-PER"], [("ORG", 1, 3), ("PER", 3, 4)]),
        (["S-PER", "M-PER", "E-PER"], [("PER", 0, 1), ("PER", 1, 3)]),
    ],
)
def test_lenient_decoding_table(tags: list[str], spans: list[tuple[str, int, int]]) -> None:
    assert tags_to_spans(tags) == spans


@pytest.mark.parametrize(
    ("tags", "scheme", "message"),
    [
        (["I-PER"], "bio", "I-PER cannot start a sentence"),
        (["B-PER", "I-LOC"], "bio", "I-LOC cannot follow B-PER"),
        (["O", "I-PER"], "bio", "I-PER cannot follow O"),
        (["M-PER"], "bio", "not a BIO tag"),
        (["B-PER", "B-PER"], "bioes", "B-PER cannot follow B-PER"),
        # errors quote the input tags, not their BMES conversion (I-PER, not M-PER)
        (["B-PER", "I-PER", "O"], "bioes", "O cannot follow I-PER"),
        (["O", "L-PER"], "iobes", "L-PER cannot follow O"),
        (["B-PER", "I-PER"], "BIOES", r"open span \(I-PER\)"),
        (["E-PER"], "bio", "not a BIO tag"),
        (["X-PER"], "bmes", "not a BMES tag"),
    ],
)
def test_to_bmes_rejects_illegal_gold(tags: list[str], scheme: str, message: str) -> None:
    with pytest.raises(TagSequenceError, match=message):
        to_bmes(tags, scheme)


def test_bilou_aliases_and_untyped() -> None:
    assert to_bmes(["B-X", "L-X", "U-Y", "O"], "bioes") == ["B-X", "E-X", "S-Y", "O"]
    assert to_bmes(["B", "I", "I", "B"], "bio") == ["B", "M", "E", "S"]


@pytest.mark.parametrize("bad", ["X", "B-", "O-PER", "", "BB-PER"])
def test_split_tag_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        split_tag(bad)


def test_split_tag_labels() -> None:
    assert split_tag("B-ORG-x") == ("B", "ORG-x")
    assert split_tag("E-组织") == ("E", "组织")
    assert split_tag("S") == ("S", "")


def test_spans_to_tags_rejects_overlap_and_range() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags([("A", 0, 2), ("B", 1, 3)], 4)
    with pytest.raises(ValueError, match="out of range"):
        spans_to_tags([("A", 2, 5)], 4)
    with pytest.raises(ValueError):
        words_to_tags(["a", ""])


@pytest.mark.parametrize("inventory", [["B", "M", "E", "S"],
                                       ["O", "B-A", "M-A", "E-A", "S-A", "B-B", "M-B", "E-B",
                                        "S-B"]])
def test_allowed_transitions_match_brute_force(inventory: list[str]) -> None:
    start, trans, end = allowed_transitions(inventory)
    index = {t: i for i, t in enumerate(inventory)}
    for n in range(1, 5):
        for seq in itertools.product(inventory, repeat=n):
            ids = [index[t] for t in seq]
            by_table = start[ids[0]] and end[ids[-1]] and all(
                trans[a][b] for a, b in zip(ids, ids[1:]))
            assert by_table == is_legal_bmes(list(seq)), seq


# --- the scheme table ----------------------------------------------------------------------------


def test_one_scheme_table() -> None:
    from bmes_tagger import corpus, formats
    from bmes_tagger.tags import SCHEMES, get_scheme

    assert SCHEMES == ("bmes", "bioes", "bio") and formats.SCHEMES is SCHEMES
    from bmes_tagger import tags

    # formats and corpus keep no copy of the schemes: they use this module's
    assert formats.from_bmes is tags.from_bmes and not hasattr(corpus, "_SCHEME_PREFIXES")
    for alias, name in (("IOBES", "bioes"), ("bilou", "bioes"), ("iob2", "bio"), ("BMES", "bmes")):
        assert get_scheme(alias).name == name
    with pytest.raises(ValueError, match="unknown tag scheme 'iob'"):
        get_scheme("iob")
    with pytest.raises(ValueError, match="unknown tag scheme"):
        from_bmes(["S"], "bilou")  # reads as BIOES, but would not write L/U


@SETTINGS
@given(span_sets(), st.sampled_from(["bmes", "bioes", "bio"]))
def test_from_bmes_and_repair_to_bmes_round_trip(case: tuple[list, int], scheme: str) -> None:
    spans, length = case
    tags = spans_to_tags(spans, length)
    written = from_bmes(tags, scheme)
    assert to_bmes(written, scheme) == tags == repair_to_bmes(written, scheme)


@pytest.mark.parametrize(
    ("tags", "scheme", "repaired"),
    [
        (["O", "I-ORG", "I-ORG", "B-PER"], "bio", ["O", "B-ORG", "E-ORG", "S-PER"]),
        (["B-PER", "I-LOC", "I-LOC"], "bio", ["S-PER", "B-LOC", "E-LOC"]),
        (["I", "I", "B"], "bio", ["B", "E", "S"]),
        (["B-PER", "B-PER", "L-PER"], "bioes", ["S-PER", "B-PER", "E-PER"]),
        (["O", "M-ORG", "E-ORG", "B-PER"], "bmes", ["O", "B-ORG", "E-ORG", "S-PER"]),
    ],
)
def test_repair_to_bmes_table(tags: list[str], scheme: str, repaired: list[str]) -> None:
    assert repair_to_bmes(tags, scheme) == repaired
    with pytest.raises(TagSequenceError):
        to_bmes(tags, scheme)


def test_repair_to_bmes_still_refuses_unknown_tags() -> None:
    with pytest.raises(TagSequenceError) as info:
        repair_to_bmes(["O", "M-PER"], "bio")
    assert info.value.kind == "unknown_tag"


def test_tag_inventory() -> None:
    from bmes_tagger.tags import tag_inventory

    assert tag_inventory("cws", ["x"]) == ["B", "M", "E", "S"]
    assert tag_inventory("ner", ["PER", "LOC", "PER"]) == [
        "O", "B-LOC", "M-LOC", "E-LOC", "S-LOC", "B-PER", "M-PER", "E-PER", "S-PER"]
