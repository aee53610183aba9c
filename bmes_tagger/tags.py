"""BMES tags: encoding words and spans, strict and lenient decoding, scheme conversion and the
transition constraints of legal sequences. Pure Python: strings and lists only.

CWS tags are untyped (``B``, ``M``, ``E``, ``S``); NER tags are typed (``B-PER``, ...) plus
``O``. A span is ``(label, start, end)`` with ``end`` exclusive; the label is ``""`` for CWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .errors import TagSequenceError

Span = tuple[str, int, int]

PREFIXES = frozenset("BMESO")
_SCHEME_ALIASES = {"bmes": "bmes", "bioes": "bioes", "iobes": "bioes", "bilou": "bioes",
                   "bio": "bio", "iob2": "bio"}


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER" -> ("B", "PER")``, ``"B" -> ("B", "")``, ``"O" -> ("O", "")``.

    Raises:
        ValueError: a prefix outside B/M/E/S/O, a typed ``O`` or an empty label.
    """
    prefix, sep, label = tag.partition("-")
    if prefix not in PREFIXES or len(prefix) != 1:
        raise ValueError(f"unknown tag {tag!r}: expected a B/M/E/S/O prefix")
    if sep and not label:
        raise ValueError(f"tag {tag!r} has an empty label")
    if prefix == "O" and label:
        raise ValueError(f"tag {tag!r}: O takes no label")
    return prefix, label


def _join(prefix: str, label: str) -> str:
    return f"{prefix}-{label}" if label else prefix


def words_to_tags(words: Sequence[str]) -> list[str]:
    """CWS encoding: a one-character word is S, a longer one B M* E."""
    tags: list[str] = []
    for word in words:
        n = len(word)
        if n == 0:
            raise ValueError("empty word")
        tags.extend(["S"] if n == 1 else ["B", *(["M"] * (n - 2)), "E"])
    return tags


def tags_to_spans(tags: Sequence[str], *, strict: bool = False) -> list[Span]:
    """Spans of a BMES sequence (``O`` yields none).

    Args:
        tags: the sequence.
        strict: gold reading: an illegal sequence raises :class:`TagSequenceError` naming the
            position, the tag and its predecessor. Otherwise (predictions) decoding is lenient,
            like allennlp's ``bmes_tags_to_spans``: B and S always open a new span; M/E continue
            the open span only after B/M of the same label, else they open a new one. Every
            fragment of an illegal sequence becomes its own span, so malformed predictions cost
            precision rather than vanishing.
    """
    spans: list[Span] = []
    open_label: str | None = None  # label of the span that M/E may continue
    start = 0
    prev = "START"
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        continues = open_label is not None and open_label == label and prefix in "ME"
        if strict:
            expected_continuation = open_label is not None
            if continues != expected_continuation or (prefix in "ME" and not continues):
                what = "start a sentence" if prev == "START" else f"follow {prev}"
                raise TagSequenceError(i, f"{tag} cannot {what}")
        if continues:
            if prefix == "E":
                spans.append((label, start, i + 1))
                open_label = None
        else:
            if open_label is not None:  # lenient: close the unfinished fragment
                spans.append((open_label, start, i))
                open_label = None
            if prefix in "BM":
                open_label, start = label, i
            elif prefix in "ES":
                spans.append((label, i, i + 1))
        prev = tag
    if open_label is not None:
        if strict:
            raise TagSequenceError(len(tags) - 1,
                                   f"sentence ends inside an open span ({prev})")
        spans.append((open_label, start, len(tags)))
    return spans


def tags_to_words(chars: Sequence[str], tags: Sequence[str]) -> list[str]:
    """Lenient CWS decoding: the words of ``chars``; an ``O`` is a one-character word."""
    if len(chars) != len(tags):
        raise ValueError(f"{len(chars)} characters but {len(tags)} tags")
    words = []
    covered = 0
    for _, a, b in tags_to_spans(tags):
        words.extend(chars[covered:a])
        words.append("".join(chars[a:b]))
        covered = b
    words.extend(chars[covered:])
    return words


def spans_to_tags(spans: Iterable[Span], length: int) -> list[str]:
    """BMES tags of ``length`` positions; positions outside every span are ``O``."""
    tags = ["O"] * length
    for label, a, b in sorted(spans, key=lambda s: s[1]):
        if not 0 <= a < b <= length:
            raise ValueError(f"span {(label, a, b)} out of range for length {length}")
        if any(t != "O" for t in tags[a:b]):
            raise ValueError(f"span {(label, a, b)} overlaps another span")
        if b - a == 1:
            tags[a] = _join("S", label)
        else:
            tags[a] = _join("B", label)
            for i in range(a + 1, b - 1):
                tags[i] = _join("M", label)
            tags[b - 1] = _join("E", label)
    return tags


def is_legal_bmes(tags: Sequence[str]) -> bool:
    """Whether ``tags`` is a legal BMES sequence."""
    try:
        tags_to_spans(tags, strict=True)
    except (TagSequenceError, ValueError):
        return False
    return True


def repair_bmes(tags: Sequence[str]) -> list[str]:
    """The legal sequence with the lenient spans of ``tags``."""
    return spans_to_tags(tags_to_spans(tags), len(tags))


def bmes_to_iobes(tags: Sequence[str]) -> list[str]:
    """M -> I, everything else unchanged (seqeval has no M prefix)."""
    return [("I" + t[1:]) if t.startswith("M") else t for t in tags]


def to_bmes(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert a gold sequence from ``scheme`` (bmes, bioes/iobes/bilou, bio/iob2) to BMES.

    Raises:
        TagSequenceError: a tag outside the scheme, or an illegal sequence.
    """
    name = _SCHEME_ALIASES.get(scheme.lower())
    if name is None:
        raise ValueError(f"unknown tag scheme {scheme!r}")
    allowed = {"bmes": "BMESO", "bioes": "BIESOLU", "bio": "BIO"}[name]
    parsed = []
    for i, tag in enumerate(tags):
        prefix, sep, label = tag.partition("-")
        if len(prefix) != 1 or prefix not in allowed or (sep and not label) or (
                prefix == "O" and label):
            raise TagSequenceError(i, f"{tag} is not a {name.upper()} tag")
        parsed.append((prefix, label))
    if name == "bmes":
        out = list(tags)
    elif name == "bioes":
        mapping = {"I": "M", "L": "E", "U": "S"}
        out = [_join(mapping.get(p, p), label) for p, label in parsed]
    else:
        out = []
        for i, (p, label) in enumerate(parsed):
            if p == "I" and (i == 0 or parsed[i - 1][0] == "O" or parsed[i - 1][1] != label):
                prev = "start a sentence" if i == 0 else f"follow {tags[i - 1]}"
                raise TagSequenceError(i, f"{tags[i]} cannot {prev}")
            nxt = parsed[i + 1] if i + 1 < len(parsed) else ("O", "")
            goes_on = nxt[0] == "I" and nxt[1] == label
            if p == "B":
                out.append(_join("B" if goes_on else "S", label))
            elif p == "I":
                out.append(_join("M" if goes_on else "E", label))
            else:
                out.append("O")
    tags_to_spans(out, strict=True)
    return out


def allowed_transitions(
    tags: Sequence[str],
) -> tuple[list[bool], list[list[bool]], list[bool]]:
    """Which starts, moves and ends a legal BMES sequence over ``tags`` may make.

    Returns:
        ``(start[j], trans[i][j], end[i])``: START -> B/S/O; B-x -> M-x/E-x; M-x -> M-x/E-x;
        E/S/O -> B/S/O; only E/S/O may end a sentence.
    """
    parsed = [split_tag(t) for t in tags]
    start = [p in "BSO" for p, _ in parsed]
    end = [p in "ESO" for p, _ in parsed]
    trans = [
        [(pj in "ME" and lj == li) if pi in "BM" else pj in "BSO" for pj, lj in parsed]
        for pi, li in parsed
    ]
    return start, trans, end
