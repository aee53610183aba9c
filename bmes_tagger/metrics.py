"""Span-level scores: CWS words as the SIGHAN 2005 scorer counts them, NER entities as exact
``(type, start, end)`` matches.

Plain functions over strings and lists (no torch, no seqeval). NER scores equal seqeval's
strict mode (its ``classification_report``) on well-formed sequences, which the tests check,
but are counted here: seqeval strips hyphens around a type name, so it scored ``S-PER-``
against ``S-PER`` as correct.

How the official scorer (``icwb2-data/scripts/score``, Perl) counts. For each line (sentence)
with at least one gold word, it writes the gold words and the system words one per line to two
files and reads ``diff -y`` of them. Every gold word on a changed line (marker ``|`` or ``<``)
is missed, every system word on a changed line (``|`` or ``>``) is wrong; all other words are
correct. RECALL = (gold words - missed) / gold words, PRECISION = (system words - wrong) /
system words, F = 2PR / (P + R), all summed over lines (micro). A gold word is out of
vocabulary (OOV) when it is not in the training word list (whose whole lines are its words:
:func:`bmes_tagger.corpus.read_word_list` reads a list file the same way); OOV Rate = OOV gold
words / gold words, OOV Recall = 1 - missed OOV / OOV gold words, IV Recall likewise for the
other gold words ("--" when there are none; we return None).

So a word is correct when diff leaves it unchanged, which is not simply "same word at the same
character offset": diff aligns word sequences, so a word can be matched at a shifted offset
(gold ``a b ab``, system ``ab a b``: diff matches ``a`` and ``b``), and GNU diff's edit script is
not always the shortest (``discard_confusing_lines`` drops a word that occurs more than 5 times in
the other line when it sits in a run of words with no match at all), so it can also miss a word
a longest common subsequence would keep. On the PKU test set with 10% random merges and splits
(seed 0), offset matching is off on 5 lines and an LCS on 1. :func:`_diff_changed` therefore
ports GNU diff 3.8's matching (identical ends, ``discard_confusing_lines``, Myers'
``compareseq``); it was checked against ``/usr/bin/diff`` on random inputs, including the
non-minimal cases.

Smaller quirks reproduced, because the scorer's numbers depend on them: lines are split on ASCII
whitespace after replacing U+3000 and the bytes ``A1 40`` with a space and deleting CRs; an empty
word (from a line starting with U+3000) is never missed or wrong and has no OOV status; a word
spelt ``|``, ``<`` or ``>`` counts as missed even when matched (its diff line looks changed), so
recall and precision can have different numerators (``correct_words`` is recall's); the OOV
lookup uses the word as ``diff -y`` prints it, cut to 61 display columns (CJK characters count
2), and a changed gold word that fills all 61 columns is not counted as missed (only one space
is left before the marker, and the scorer's regex wants two). Not reproduced: such a word paired
on a ``|`` line with a system word spelt ``|``, ``<`` or ``>`` does count as missed. The display
widths are those of a UTF-8 locale; run under another locale, or with a diff other than GNU
diffutils 3.8, the scorer itself can differ on words of 31+ characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import TagSequenceError
from .tags import tags_to_spans, tags_to_words


@dataclass(frozen=True)
class CWSScores:
    """Word segmentation scores (fractions in [0, 1]); OOV figures need a word list."""

    precision: float
    recall: float
    f1: float
    gold_words: int
    pred_words: int
    correct_words: int
    oov_rate: float | None = None
    oov_recall: float | None = None
    iv_recall: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


@dataclass(frozen=True)
class NERScores:
    """Strict entity-level scores with a per-type table (fractions in [0, 1])."""

    precision: float
    recall: float
    f1: float
    gold_entities: int
    pred_entities: int
    correct_entities: int
    per_type: dict[str, dict[str, float | int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def cws_scores(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    train_words: Collection[str] | None = None,
) -> CWSScores:
    """Word-level P/R/F1 (and OOV/IV recall) exactly as the SIGHAN 2005 scorer computes them.

    Args:
        gold: gold words, one list per sentence.
        pred: predicted words, one list per sentence, with the same characters as gold.
        train_words: training word list for the OOV figures; None leaves them None.

    Returns:
        The scores; ``oov_recall``/``iv_recall`` are None when no gold word is OOV/IV, and
        everything is 0 (OOV rate None) when there is no gold word.

    Raises:
        ValueError: different sentence counts, or a sentence whose characters differ.

    Example:
        >>> s = cws_scores([["共同", "创造", "美好"]], [["共同", "创", "造美好"]], {"共同"})
        >>> round(s.f1, 4), s.correct_words, s.oov_rate, s.iv_recall
        (0.3333, 1, 0.6666666666666666, 1.0)
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    vocab = None
    if train_words is not None:
        vocab = train_words if isinstance(train_words, set | frozenset) else set(train_words)
    n_gold = n_pred = missed = wrong = 0
    oov = iv = oov_missed = iv_missed = 0
    for i, (g, p) in enumerate(zip(gold, pred)):
        g_text, p_text = "".join(g).strip(), "".join(p).strip()
        if g_text != p_text:
            raise ValueError(f"sentence {i}: gold and predicted characters differ: "
                             f"gold {g_text!r}, predicted {p_text!r}")
        g_words, p_words = _scorer_words(g), _scorer_words(p)
        if not g_words:
            continue  # the scorer skips lines without gold words
        n_gold += len(g_words)
        n_pred += len(p_words)
        g_changed, p_changed = _diff_changed(g_words, p_words)
        wrong += sum(changed for word, changed in zip(p_words, p_changed) if word)
        for word, changed in zip(g_words, g_changed):
            if not word:
                continue  # an empty diff line: the scorer's regexes never see a word there
            shown, full = _left_column(word)
            # The scorer finds a change marker by whitespace on both sides: a matched | < or >
            # looks like one, and a column-filling word leaves only one space before the real
            # marker, too few for its regex.
            is_missed = (not full) if changed else word in _DIFF_MARKERS
            missed += is_missed
            if vocab is not None:
                if shown.decode("utf-8", "surrogateescape") in vocab:
                    iv += 1
                    iv_missed += is_missed
                else:
                    oov += 1
                    oov_missed += is_missed
    correct = n_gold - missed
    recall = correct / n_gold if n_gold else 0.0
    precision = (n_pred - wrong) / n_pred if n_pred else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    if vocab is None or not n_gold:
        return CWSScores(precision, recall, f1, n_gold, n_pred, correct)
    # 1 - missed / total, in the scorer's order of operations, so the rounded figures agree.
    return CWSScores(
        precision, recall, f1, n_gold, n_pred, correct,
        oov_rate=oov / n_gold,
        oov_recall=1 - oov_missed / oov if oov else None,
        iv_recall=1 - iv_missed / iv if iv else None,
    )


def ner_scores(
    gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]
) -> NERScores:
    """Strict entity P/R/F1, overall (micro) and per type: an entity is correct when a gold one
    has the same type, start and end.

    Predicted sequences are decoded leniently (:func:`~bmes_tagger.tags.tags_to_spans`: every
    fragment of an illegal sequence is an entity), so an ill-formed prediction costs precision
    instead of disappearing. Types are compared as they are spelt: nothing is normalised.

    Args:
        gold_tags: legal BMES tag sequences, one per sentence.
        pred_tags: predicted BMES tag sequences, same lengths as gold.

    Returns:
        The scores; ``per_type`` maps each entity type seen in gold or predictions (sorted) to
        its precision, recall, f1 and support (gold count); empty when there is no entity.

    Raises:
        ValueError: different sentence counts or lengths, a malformed tag, or an illegal gold
            sequence.

    Example:
        >>> s = ner_scores([["B-PER", "E-PER", "O", "S-LOC"]], [["B-PER", "E-PER", "O", "O"]])
        >>> s.precision, s.recall, s.per_type["LOC"]["recall"]
        (1.0, 0.5, 0.0)
    """
    if len(gold_tags) != len(pred_tags):
        raise ValueError(f"{len(gold_tags)} gold sentences but {len(pred_tags)} predicted")
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    n_correct: Counter[str] = Counter()
    for i, (gold, pred) in enumerate(zip(gold_tags, pred_tags)):
        if len(gold) != len(pred):
            raise ValueError(f"sentence {i}: {len(gold)} gold tags but {len(pred)} predicted")
        try:
            gold_spans = set(tags_to_spans(gold, strict=True))
        except TagSequenceError as exc:
            raise ValueError(f"sentence {i}: gold tags are not a legal BMES sequence: {exc}"
                             ) from None
        pred_spans = tags_to_spans(pred)
        n_gold.update(label for label, _, _ in gold_spans)
        n_pred.update(label for label, _, _ in pred_spans)
        n_correct.update(span[0] for span in pred_spans if span in gold_spans)
    per_type: dict[str, dict[str, float | int]] = {}
    for label in sorted(n_gold.keys() | n_pred.keys()):
        precision, recall, f1 = _prf(n_correct[label], n_pred[label], n_gold[label])
        per_type[label] = {"precision": precision, "recall": recall, "f1": f1,
                           "support": n_gold[label]}
    total_gold, total_pred = sum(n_gold.values()), sum(n_pred.values())
    total_correct = sum(n_correct.values())
    precision, recall, f1 = _prf(total_correct, total_pred, total_gold)
    return NERScores(precision, recall, f1, total_gold, total_pred, total_correct, per_type)


def _prf(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    """Precision, recall and F1, each 0.0 where its denominator is 0 (seqeval's zero_division=0)."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@dataclass(frozen=True)
class POSScores(NERScores):
    """Joint segmentation + POS scores: ``precision/recall/f1`` count a word correct when its
    span and POS are both right (``*_entities`` count words; ``per_type`` is per POS), and
    ``seg_*`` score the segmentation alone, as the SIGHAN scorer counts words."""

    seg_precision: float = 0.0
    seg_recall: float = 0.0
    seg_f1: float = 0.0


def pos_scores(
    chars: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]],
    pred_tags: Sequence[Sequence[str]],
) -> POSScores:
    """Joint segmentation + POS F1 (typed word spans) and segmentation F1 (untyped words).

    Args:
        chars: the characters of each sentence.
        gold_tags: legal typed BMES sequences (``B-NOUN`` ...), one per sentence.
        pred_tags: predicted sequences, same lengths as gold; decoded leniently.

    Returns:
        :func:`ner_scores` of the tags plus :func:`cws_scores` of their words.

    Raises:
        ValueError: different sentence counts or lengths, or a malformed tag.
    """
    joint = ner_scores(gold_tags, pred_tags)
    seg = cws_scores([tags_to_words(c, t) for c, t in zip(chars, gold_tags)],
                     [tags_to_words(c, t) for c, t in zip(chars, pred_tags)])
    return POSScores(**asdict(joint), seg_precision=seg.precision, seg_recall=seg.recall,
                     seg_f1=seg.f1)


# --- the SIGHAN scorer's reading of a line -------------------------------------------------------

_PERL_SPACE = re.compile(rb"[ \t\n\x0b\f\r]+")  # Perl's \s on byte strings
_FULL_WIDTH_SPACE = re.compile(rb"\xe3\x80\x80|\xa1\x40")  # U+3000 in UTF-8; GBK/Big5 space
_DIFF_MARKERS = frozenset((b"|", b"<", b">"))
# diff -y's default width 130 leaves 61 columns per side.
_SDIFF_COLUMN = 61


def _scorer_words(words: Sequence[str]) -> list[bytes]:
    """The words of a sentence as the scorer splits its line (UTF-8 bytes, as Perl reads them)."""
    line = "  ".join(words).encode("utf-8", "surrogateescape").strip(b" \t\n\x0b\f\r")
    line = _FULL_WIDTH_SPACE.sub(b" ", line).replace(b"\r", b"")
    parts = _PERL_SPACE.split(line)
    while parts and not parts[-1]:  # Perl's split drops trailing (not leading) empty fields
        parts.pop()
    return parts


def _left_column(word: bytes) -> tuple[bytes, bool]:
    """``word`` as ``diff -y`` prints it in the left column, and whether it fills the column.

    The printed word is the scorer's OOV lookup key. diff cuts a line before the first
    character that would end past column 61, counting display widths as glibc's ``wcwidth``
    does in a UTF-8 locale (2 for wide CJK characters and full-width forms).
    """
    if len(word) < _SDIFF_COLUMN:
        return word, False  # no character is wider than its UTF-8 bytes
    text = word.decode("utf-8", "surrogateescape")
    width = 0
    for i, char in enumerate(text):
        char_width = _char_width(char)
        if width + char_width > _SDIFF_COLUMN:
            return text[:i].encode("utf-8", "surrogateescape"), width == _SDIFF_COLUMN
        width += char_width
    return word, width == _SDIFF_COLUMN


def _char_width(char: str) -> int:
    if " " <= char <= "~":
        return 1
    if unicodedata.category(char) in ("Mn", "Me", "Cc", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


# --- GNU diff 3.8's line matching (src/analyze.c, src/io.c, gnulib lib/diffseq.h) ---------------

_OFFSET_MAX = 1 << 62


def _diff_changed(a: Sequence[bytes], b: Sequence[bytes]) -> tuple[list[bool], list[bool]]:
    """Which lines GNU ``diff`` (no options) marks as deleted from ``a`` / inserted into ``b``.

    Args:
        a: lines of the first file (gold words).
        b: lines of the second file (system words).

    Returns:
        One flag per line of ``a`` and one per line of ``b``; True means changed.
    """
    n, m = len(a), len(b)
    a_changed, b_changed = [False] * n, [False] * m
    if a == b:
        return a_changed, b_changed
    # The identical prefix and suffix lines never enter the analysis (find_identical_ends; with
    # horizon 0 its byte-level scan comes down to whole lines).
    start = 0
    while start < n and start < m and a[start] == b[start]:
        start += 1
    end = 0
    while end < n - start and end < m - start and a[n - 1 - end] == b[m - 1 - end]:
        end += 1
    a_mid, b_mid = range(start, n - end), range(start, m - end)
    classes: dict[bytes, int] = {}
    a_eq = [classes.setdefault(a[i], len(classes)) for i in a_mid]
    b_eq = [classes.setdefault(b[i], len(classes)) for i in b_mid]
    a_discard, b_discard = _discard_confusing_lines(a_eq, b_eq)
    a_kept = [i for i, d in zip(a_mid, a_discard) if not d]
    b_kept = [i for i, d in zip(b_mid, b_discard) if not d]
    for i, d in zip(a_mid, a_discard):
        a_changed[i] = bool(d)
    for i, d in zip(b_mid, b_discard):
        b_changed[i] = bool(d)
    deleted, inserted = _compareseq([classes[a[i]] for i in a_kept],
                                    [classes[b[i]] for i in b_kept])
    for x in deleted:
        a_changed[a_kept[x]] = True
    for y in inserted:
        b_changed[b_kept[y]] = True
    return a_changed, b_changed


def _discard_confusing_lines(a_eq: list[int], b_eq: list[int]) -> tuple[list[int], list[int]]:
    """diff's pre-pass: 1 = discard (changed, not analysed), 0 = keep; a line-by-line port."""
    counts = (Counter(a_eq), Counter(b_eq))
    result = []
    for f, eqs in enumerate((a_eq, b_eq)):
        end = len(eqs)
        many = 5 << (0 if end < 64 else ((end.bit_length() - 1) >> 1) - 3)
        other = counts[1 - f]
        # 1: no match in the other file; 2: so many matches that it is provisionally discardable
        result.append([1 if other[e] == 0 else 2 if other[e] > many else 0 for e in eqs])
    for d in result:
        end = len(d)
        i = 0
        while i < end:
            if d[i] == 2:
                d[i] = 0  # a provisional discard only stands inside a run of discards
            elif d[i]:
                provisional = 0
                j = i
                while j < end and d[j]:
                    provisional += d[j] == 2
                    j += 1
                while j > i and d[j - 1] == 2:
                    j -= 1
                    d[j] = 0
                    provisional -= 1
                length = j - i
                if (length >> 2) < provisional:
                    for k in range(i, j):
                        if d[k] == 2:
                            d[k] = 0
                else:
                    minimum = (2 if length < 4
                               else (1 << (((length.bit_length() - 1) >> 1) - 1)) + 1)
                    consec = 0
                    k = 0
                    while k < length:
                        if d[i + k] != 2:
                            consec = 0
                        else:
                            consec += 1
                            if consec == minimum:
                                k -= consec  # back to the subrun's start to cancel all of it
                            elif consec > minimum:
                                d[i + k] = 0
                        k += 1
                    _cancel_run_end(d, i, length, 1)
                    i += length - 1
                    _cancel_run_end(d, i, length, -1)
            i += 1
    return result[0], result[1]


def _cancel_run_end(d: list[int], start: int, length: int, step: int) -> None:
    """Cancel provisional discards from one end of a run up to 3 firm discards in a row."""
    consec = 0
    for k in range(length):
        pos = start + step * k
        if k >= 8 and d[pos] == 1:
            break
        if d[pos] == 2:
            consec = 0
            d[pos] = 0
        elif d[pos] == 0:
            consec = 0
        else:
            consec += 1
        if consec == 3:
            break


def _compareseq(xv: list[int], yv: list[int]) -> tuple[list[int], list[int]]:
    """Myers' divide-and-conquer diff as gnulib's ``compareseq`` runs it (no ``--minimal``).

    Returns:
        Indices of ``xv`` deleted and of ``yv`` inserted.
    """
    n, m = len(xv), len(yv)
    offset = m + 1  # fdiag/bdiag are indexed by diagonal x - y, from -(m + 1) to n + 1
    fd = [0] * (n + m + 3)
    bd = [0] * (n + m + 3)
    # Past this many steps diag gives up on a minimal script (never for sentence-sized input).
    too_expensive = max(4096, 1 << (((n + m + 3).bit_length() - 1 >> 1) + 1))
    deleted: list[int] = []
    inserted: list[int] = []
    stack = [(0, n, 0, m, False)]
    while stack:
        xoff, xlim, yoff, ylim, minimal = stack.pop()
        while xoff < xlim and yoff < ylim and xv[xoff] == yv[yoff]:
            xoff += 1
            yoff += 1
        while xoff < xlim and yoff < ylim and xv[xlim - 1] == yv[ylim - 1]:
            xlim -= 1
            ylim -= 1
        if xoff == xlim:
            inserted.extend(range(yoff, ylim))
        elif yoff == ylim:
            deleted.extend(range(xoff, xlim))
        else:
            xmid, ymid, lo_minimal, hi_minimal = _diag(
                xv, yv, xoff, xlim, yoff, ylim, minimal, fd, bd, offset, too_expensive)
            stack.append((xmid, xlim, ymid, ylim, hi_minimal))
            stack.append((xoff, xmid, yoff, ymid, lo_minimal))
    return deleted, inserted


def _diag(
    xv: list[int], yv: list[int], xoff: int, xlim: int, yoff: int, ylim: int,
    find_minimal: bool, fd: list[int], bd: list[int], offset: int, too_expensive: int,
) -> tuple[int, int, bool, bool]:
    """Midpoint of the shortest edit script of ``xv[xoff:xlim]`` and ``yv[yoff:ylim]``.

    Searches forward from the top-left and backward from the bottom-right, one edit at a time,
    until the two searches meet (gnulib ``diag`` without the ``-H`` heuristic).

    Returns:
        ``(xmid, ymid, lo_minimal, hi_minimal)``.
    """
    dmin, dmax = xoff - ylim, xlim - yoff
    fmid, bmid = xoff - yoff, xlim - ylim
    fmin = fmax = fmid
    bmin = bmax = bmid
    odd = (fmid - bmid) & 1
    fd[offset + fmid] = xoff
    bd[offset + bmid] = xlim
    cost = 1
    while True:
        if fmin > dmin:
            fmin -= 1
            fd[offset + fmin - 1] = -1
        else:
            fmin += 1
        if fmax < dmax:
            fmax += 1
            fd[offset + fmax + 1] = -1
        else:
            fmax -= 1
        for d in range(fmax, fmin - 1, -2):
            tlo, thi = fd[offset + d - 1], fd[offset + d + 1]
            x = thi if tlo < thi else tlo + 1
            y = x - d
            while x < xlim and y < ylim and xv[x] == yv[y]:
                x += 1
                y += 1
            fd[offset + d] = x
            if odd and bmin <= d <= bmax and bd[offset + d] <= x:
                return x, y, True, True
        if bmin > dmin:
            bmin -= 1
            bd[offset + bmin - 1] = _OFFSET_MAX
        else:
            bmin += 1
        if bmax < dmax:
            bmax += 1
            bd[offset + bmax + 1] = _OFFSET_MAX
        else:
            bmax -= 1
        for d in range(bmax, bmin - 1, -2):
            tlo, thi = bd[offset + d - 1], bd[offset + d + 1]
            x = tlo if tlo < thi else thi - 1
            y = x - d
            while xoff < x and yoff < y and xv[x - 1] == yv[y - 1]:
                x -= 1
                y -= 1
            bd[offset + d] = x
            if not odd and fmin <= d <= fmax and x <= fd[offset + d]:
                return x, y, True, True
        if not find_minimal and cost >= too_expensive:
            return _give_up(fd, bd, offset, fmin, fmax, bmin, bmax, xoff, xlim, yoff, ylim)
        cost += 1


def _give_up(
    fd: list[int], bd: list[int], offset: int, fmin: int, fmax: int, bmin: int, bmax: int,
    xoff: int, xlim: int, yoff: int, ylim: int,
) -> tuple[int, int, bool, bool]:
    """diag's TOO_EXPENSIVE exit: split at the furthest-reaching forward or backward point."""
    fxybest, fxbest = -1, 0
    for d in range(fmax, fmin - 1, -2):
        x = min(fd[offset + d], xlim)
        y = x - d
        if ylim < y:
            x, y = ylim + d, ylim
        if fxybest < x + y:
            fxybest, fxbest = x + y, x
    bxybest, bxbest = _OFFSET_MAX, 0
    for d in range(bmax, bmin - 1, -2):
        x = max(xoff, bd[offset + d])
        y = x - d
        if y < yoff:
            x, y = yoff + d, yoff
        if x + y < bxybest:
            bxybest, bxbest = x + y, x
    if (xlim + ylim) - bxybest < fxybest - (xoff + yoff):
        return fxbest, fxybest - fxbest, True, False
    return bxbest, bxybest - bxbest, False, True
