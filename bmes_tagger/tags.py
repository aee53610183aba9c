"""BMES tags: encoding, strict and lenient decoding, tag schemes and every conversion between a
scheme and BMES, tag inventories, transition constraints.

Pure Python: strings and lists only. :data:`SCHEMES` is the one table of tag schemes; readers,
writers and the CLI take their names and prefixes from it.

CWS tags are untyped (``B``, ``M``, ``E``, ``S``); NER tags are typed (``B-PER``, ...) plus
``O``. A span is ``(label, start, end)`` with ``end`` exclusive; the label is ``""`` for CWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import TagSequenceError

Span = tuple[str, int, int]

PREFIXES = frozenset("BMESO")
CWS_TAGS = ("B", "M", "E", "S")


@dataclass(frozen=True)
class Scheme:
    """A tag scheme as files spell it.

    ``prefixes`` are the prefixes a file in the scheme may use; ``to_bmes`` renames prefixes
    on reading (BIO needs more: its B/I become S/E by what follows, see :func:`to_bmes`);
    ``from_bmes`` renames BMES prefixes on writing.
    """

    name: str
    aliases: tuple[str, ...]
    prefixes: str
    to_bmes: dict[str, str]
    from_bmes: dict[str, str]

    @property
    def positional(self) -> bool:
        """Whether a prefix's BMES form depends on the next tag (BIO: B -> B or S, I -> M or E)."""
        return "E" not in self.prefixes


_SCHEME_TABLE = (
    Scheme("bmes", (), "BMESO", {}, {}),
    # BILOU's L/U read as E/S, so one scheme covers IOBES and BILOU files.
    Scheme("bioes", ("iobes", "bilou"), "BIESOLU", {"I": "M", "L": "E", "U": "S"}, {"M": "I"}),
    Scheme("bio", ("iob2",), "BIO", {}, {"M": "I", "E": "I", "S": "B"}),
)
#: Canonical scheme names, in the order shown to users.
SCHEMES: tuple[str, ...] = tuple(sc.name for sc in _SCHEME_TABLE)
_BY_NAME = {name: sc for sc in _SCHEME_TABLE for name in (sc.name, *sc.aliases)}


def get_scheme(scheme: str) -> Scheme:
    """Look up a scheme by its name or an alias (``iobes``, ``bilou``, ``iob2``), any case.

    Raises:
        ValueError: an unknown name.
    """
    found = _BY_NAME.get(scheme.lower())
    if found is None:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    return found


def split_tag(tag: str) -> tuple[str, str]:
    """Split a tag into prefix and label: ``"B-PER" -> ("B", "PER")``, ``"B" -> ("B", "")``.

    Args:
        tag: a BMES tag; the label is everything after the first hyphen (``"B-ORG-x"`` has
            label ``"ORG-x"``).

    Returns:
        ``(prefix, label)``, the label ``""`` for untyped tags and ``O``.

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


def words_to_tags(words: Sequence[Sequence[str]]) -> list[str]:
    """Encode a segmentation as CWS tags: a one-character word is S, a longer one B M* E.

    Args:
        words: the words of one sentence: strings (a code point per character), or lists of
            their characters (e.g. grapheme clusters from :func:`bmes_tagger.text.split_graphemes`).

    Returns:
        One untyped tag per character, ``sum(len(w) for w in words)`` in all.

    Raises:
        ValueError: an empty word.

    Example:
        >>> words_to_tags(["我们", "在", "北京市"])
        ['B', 'E', 'S', 'B', 'M', 'E']
    """
    tags: list[str] = []
    for word in words:
        n = len(word)
        if n == 0:
            raise ValueError("empty word")
        tags.extend(["S"] if n == 1 else ["B", *(["M"] * (n - 2)), "E"])
    return tags


def tags_to_spans(tags: Sequence[str], *, strict: bool = False) -> list[Span]:
    """Decode a BMES sequence into spans (``O`` yields none).

    Args:
        tags: the sequence, length ``seq_len``.
        strict: gold reading: an illegal sequence raises :class:`TagSequenceError` naming the
            position, the tag and its predecessor. Otherwise (predictions) decoding is lenient,
            like allennlp's ``bmes_tags_to_spans``: B and S always open a new span; M/E continue
            the open span only after B/M of the same label, else they open a new one. Every
            fragment of an illegal sequence becomes its own span, so malformed predictions cost
            precision rather than vanishing.

    Returns:
        Disjoint ``(label, start, end)`` spans (end exclusive), sorted by start.

    Raises:
        TagSequenceError: ``strict`` and the sequence is illegal.
        ValueError: a malformed tag (see :func:`split_tag`).

    Example:
        >>> tags_to_spans(["B-PER", "E-PER", "O", "S-LOC"])
        [('PER', 0, 2), ('LOC', 3, 4)]
        >>> tags_to_spans(["B-PER", "B-PER", "E-PER"])  # lenient: the fragment is its own span
        [('PER', 0, 1), ('PER', 1, 3)]
        >>> tags_to_spans(["O", "M-PER"], strict=True)
        Traceback (most recent call last):
        bmes_tagger.errors.TagSequenceError: tag 1: M-PER cannot follow O
    """
    return _decode(tags, strict, tags)


def _decode(tags: Sequence[str], strict: bool, names: Sequence[str]) -> list[Span]:
    """:func:`tags_to_spans`, with error messages naming ``names[i]`` instead of ``tags[i]``.

    ``to_bmes`` passes the original (BIO/BIOES) tags as ``names`` so that its errors quote what
    the user's file actually says.
    """
    spans: list[Span] = []
    open_label: str | None = None  # label of the span that M/E may continue
    start = 0
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        continues = open_label is not None and open_label == label and prefix in "ME"
        if strict and (continues != (open_label is not None) or (prefix in "ME" and not continues)):
            what = "start a sentence" if i == 0 else f"follow {names[i - 1]}"
            raise TagSequenceError(i, f"{names[i]} cannot {what}")
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
    if open_label is not None:
        if strict:
            raise TagSequenceError(
                len(tags) - 1, f"sentence ends inside an open span ({names[-1]})")
        spans.append((open_label, start, len(tags)))
    return spans


def tags_to_words(chars: Sequence[str], tags: Sequence[str]) -> list[str]:
    """Join characters into words by lenient CWS decoding; an ``O`` is a one-character word.

    Args:
        chars: the characters, length ``seq_len``.
        tags: their tags, length ``seq_len``; illegal sequences are decoded leniently.

    Returns:
        The words; their concatenation is ``"".join(chars)``.

    Raises:
        ValueError: ``chars`` and ``tags`` differ in length, or a malformed tag.

    Example:
        >>> tags_to_words(list("我们在北京"), ["B", "E", "S", "B", "E"])
        ['我们', '在', '北京']
    """
    if len(chars) != len(tags):
        raise ValueError(f"{len(chars)} characters but {len(tags)} tags")
    words: list[str] = []
    covered = 0
    for _, a, b in tags_to_spans(tags):
        words.extend(chars[covered:a])
        words.append("".join(chars[a:b]))
        covered = b
    words.extend(chars[covered:])
    return words


def spans_to_tags(spans: Iterable[Span], length: int) -> list[str]:
    """Encode spans as a legal BMES sequence; positions outside every span are ``O``.

    Args:
        spans: disjoint ``(label, start, end)`` spans, end exclusive; label ``""`` gives
            untyped (CWS) tags.
        length: the sequence length.

    Returns:
        ``length`` tags.

    Raises:
        ValueError: an empty, out-of-range or overlapping span.
    """
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
    """Check whether ``tags`` is a legal BMES sequence.

    Args:
        tags: the sequence; a malformed tag makes it illegal.

    Returns:
        True iff ``tags_to_spans(tags, strict=True)`` would succeed.
    """
    try:
        tags_to_spans(tags, strict=True)
    except (TagSequenceError, ValueError):
        return False
    return True


def repair_bmes(tags: Sequence[str]) -> list[str]:
    """Make a sequence legal, keeping its lenient spans (for ``data.repair_gold``).

    Args:
        tags: any BMES sequence.

    Returns:
        ``spans_to_tags(tags_to_spans(tags), len(tags))``; equal to ``tags`` if it is legal.

    Example:
        >>> repair_bmes(["O", "M-ORG", "E-ORG", "B-PER"])
        ['O', 'B-ORG', 'E-ORG', 'S-PER']
    """
    return spans_to_tags(tags_to_spans(tags), len(tags))


def bmes_to_iobes(tags: Sequence[str]) -> list[str]:
    """Rename M to I, leaving everything else unchanged (seqeval has no M prefix).

    Args:
        tags: any sequence; it is not validated.

    Returns:
        The IOBES sequence.
    """
    return [("I" + t[1:]) if t.startswith("M") else t for t in tags]


def to_bmes(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert a gold sequence from ``scheme`` to BMES, strictly.

    Args:
        tags: the gold tags, typed or untyped.
        scheme: ``bmes``, ``bioes`` (alias ``iobes``; BILOU's L/U are accepted as E/S, and
            ``bilou`` names it too) or ``bio`` (alias ``iob2``); case-insensitive.

    Returns:
        The legal BMES sequence with the same spans.

    Raises:
        TagSequenceError: a tag outside the scheme (``kind`` ``"unknown_tag"``), or an illegal
            sequence; the message quotes the input tags.
        ValueError: an unknown scheme name.

    Example:
        >>> to_bmes(["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"], "bio")
        ['B-ORG', 'M-ORG', 'E-ORG', 'O', 'S-PER']
    """
    out = _map_to_bmes(tags, get_scheme(scheme), strict=True)
    _decode(out, True, tags)
    return out


def repair_to_bmes(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert a gold sequence from ``scheme`` to legal BMES, repairing illegal spans.

    The lenient counterpart of :func:`to_bmes`, for ``data.repair_gold``: a BIO ``I`` that
    continues nothing opens a span, and the result goes through :func:`repair_bmes` (every
    fragment becomes its own span). Equal to ``to_bmes(tags, scheme)`` when that succeeds.

    Raises:
        TagSequenceError: a tag outside the scheme (repair only fixes the order of tags).
        ValueError: an unknown scheme name.

    Example:
        >>> repair_to_bmes(["O", "I-ORG", "I-ORG", "B-PER"], "bio")
        ['O', 'B-ORG', 'E-ORG', 'S-PER']
    """
    return repair_bmes(_map_to_bmes(tags, get_scheme(scheme), strict=False))


def from_bmes(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert a legal BMES sequence to ``scheme`` (the inverse of :func:`to_bmes`).

    Args:
        tags: a legal BMES sequence, typed or untyped.
        scheme: one of :data:`SCHEMES`: ``bmes``, ``bioes`` (M becomes I) or ``bio`` (S
            becomes B, M and E become I). Aliases are refused: ``bilou`` reads as BIOES, but
            writing it would not give the L/U its name promises.

    Returns:
        The sequence in ``scheme``.

    Raises:
        TagSequenceError: ``tags`` is not legal BMES.
        ValueError: an unknown scheme.

    Example:
        >>> from_bmes(["B-ORG", "M-ORG", "E-ORG", "O", "S-PER"], "bio")
        ['B-ORG', 'I-ORG', 'I-ORG', 'O', 'B-PER']
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    tags_to_spans(tags, strict=True)
    mapping = _BY_NAME[scheme].from_bmes
    out = []
    for tag in tags:
        prefix, label = split_tag(tag)
        out.append(_join(mapping.get(prefix, prefix), label))
    return out


def _map_to_bmes(tags: Sequence[str], sc: Scheme, strict: bool) -> list[str]:
    """Prefix-wise conversion to BMES. Only BIO's sequence rule is checked here (an ``I`` must
    continue a span: strict raises, lenient opens a span); the BMES result is checked or
    repaired by the caller."""
    parsed = []
    for i, tag in enumerate(tags):
        prefix, sep, label = tag.partition("-")
        if len(prefix) != 1 or prefix not in sc.prefixes or (sep and not label) or (
                prefix == "O" and label):
            raise TagSequenceError(i, f"{tag} is not a {sc.name.upper()} tag", "unknown_tag")
        parsed.append((prefix, label))
    if not sc.positional:
        return [_join(sc.to_bmes.get(p, p), label) for p, label in parsed]
    out = []
    for i, (p, label) in enumerate(parsed):
        if p == "O":
            out.append("O")
            continue
        continues = i > 0 and parsed[i - 1][0] != "O" and parsed[i - 1][1] == label
        if p == "I" and not continues:
            if strict:
                prev = "start a sentence" if i == 0 else f"follow {tags[i - 1]}"
                raise TagSequenceError(i, f"{tags[i]} cannot {prev}")
            p = "B"
        nxt = parsed[i + 1] if i + 1 < len(parsed) else ("O", "")
        goes_on = nxt[0] == "I" and nxt[1] == label
        if p == "B":
            out.append(_join("B" if goes_on else "S", label))
        else:
            out.append(_join("M" if goes_on else "E", label))
    return out


def tag_inventory(task: str, labels: Iterable[str] = ()) -> list[str]:
    """The tag list of a task: B/M/E/S for CWS; ``O`` plus B/M/E/S-X for each NER label;
    B/M/E/S-X for each POS label (joint segmentation + POS: every character is in a word, so
    there is no ``O``).

    Every prefix is included for every label, even if unseen in training, so constrained
    decoding has a complete transition table.
    """
    if task == "cws":
        return list(CWS_TAGS)
    typed = [f"{p}-{label}" for label in sorted(set(labels)) for p in CWS_TAGS]
    return typed if task == "pos" else ["O", *typed]


def label_problem(label: str) -> str | None:
    """Why ``label`` cannot be an entity type or POS name, or None if it can.

    A name that begins or ends with a hyphen (``B-PER-``, ``B--PER``, ``S--``) is refused:
    seqeval and conlleval strip those hyphens, so they would score ``PER-`` and ``PER`` as one
    type. Hyphens inside a name (``ORG-x``) are fine.

    Example:
        >>> label_problem("PER-") is not None, label_problem("ORG-x") is None
        (True, True)
    """
    if label.startswith("-") or label.endswith("-"):
        return (f"type name {label!r} begins or ends with '-' (scorers that strip hyphens, "
                f"like seqeval, would merge it with {label.strip('-') or '_'!r})")
    return None


def allowed_transitions(
    tags: Sequence[str],
) -> tuple[list[bool], list[list[bool]], list[bool]]:
    """Compute which starts, moves and ends a legal BMES sequence over ``tags`` may make.

    Args:
        tags: the tag inventory (``num_tags`` names), e.g. ``["O", "B-PER", ...]``.

    Returns:
        ``(start[j], trans[i][j], end[i])``, of sizes ``num_tags``, ``(num_tags, num_tags)``
        (from ``i`` to ``j``) and ``num_tags``: START -> B/S/O; B-x -> M-x/E-x; M-x -> M-x/E-x;
        E/S/O -> B/S/O; only E/S/O may end a sentence.

    Raises:
        ValueError: a name in ``tags`` is not a BMES tag (see :func:`split_tag`).
    """
    parsed = [split_tag(t) for t in tags]
    start = [p in "BSO" for p, _ in parsed]
    end = [p in "ESO" for p, _ in parsed]
    trans = [
        [(pj in "ME" and lj == li) if pi in "BM" else pj in "BSO" for pj, lj in parsed]
        for pi, li in parsed
    ]
    return start, trans, end
