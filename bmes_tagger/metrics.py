"""Span-level scores: CWS words as the SIGHAN 2005 scorer counts them, NER entities with seqeval.

Plain functions over strings and lists (no torch), in the style of seqeval.

How the official scorer (``icwb2-data/scripts/score``, Perl) counts, and how we match it: for
each line it writes the gold words and the system words one per line and runs ``diff -y``; a
gold word on a changed line (``|``, ``<``) is missed, a system word on a changed line (``|``,
``>``) is wrong. GNU diff finds a minimal edit script, so the number of correct words of a line
is the length of the longest common subsequence (LCS) of the two word sequences. Recall =
correct / gold words, precision = correct / system words, F = 2PR/(P+R), all summed over
lines. OOV rate = gold words not in the training word list / gold words; OOV recall = matched
OOV gold words / OOV gold words; IV recall likewise for in-vocabulary words. Lines with no gold
word are skipped, as the scorer does.

When both sides have the same characters, words at the same character offsets form a common
subsequence; we use that alignment whenever it is a longest one (practically always), and a
DP alignment otherwise, so both the counts and which gold words are matched follow the scorer.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .tags import bmes_to_iobes, repair_bmes


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

    def to_dict(self) -> dict[str, Any]:
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


def prf(correct: int, gold: int, pred: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (0 where undefined)."""
    p = correct / pred if pred else 0.0
    r = correct / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def cws_scores(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    train_words: Collection[str] | None = None,
) -> CWSScores:
    """Word-level P/R/F1 (and OOV/IV recall) as the SIGHAN 2005 scorer computes them.

    Args:
        gold: gold words, one list per sentence.
        pred: predicted words, one list per sentence (same characters as gold).
        train_words: training word list for OOV figures; None leaves them out.

    Raises:
        ValueError: different sentence counts, or a sentence whose characters differ.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    n_gold = n_pred = n_correct = 0
    oov = oov_hit = iv = iv_hit = 0
    for i, (g, p) in enumerate(zip(gold, pred)):
        if "".join(g) != "".join(p):
            raise ValueError(f"sentence {i}: characters differ: gold {''.join(g)!r}, "
                             f"predicted {''.join(p)!r}")
        if not g:
            continue
        matched = _matched_gold_words(g, p)
        n_gold += len(g)
        n_pred += len(p)
        n_correct += len(matched)
        if train_words is not None:
            for j, word in enumerate(g):
                if word in train_words:
                    iv += 1
                    iv_hit += j in matched
                else:
                    oov += 1
                    oov_hit += j in matched
    precision, recall, f1 = prf(n_correct, n_gold, n_pred)
    if train_words is None:
        return CWSScores(precision, recall, f1, n_gold, n_pred, n_correct)
    return CWSScores(
        precision, recall, f1, n_gold, n_pred, n_correct,
        oov_rate=oov / n_gold if n_gold else 0.0,
        oov_recall=oov_hit / oov if oov else 0.0,
        iv_recall=iv_hit / iv if iv else 0.0,
    )


def ner_scores(
    gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]
) -> NERScores:
    """Strict entity P/R/F1 with seqeval (BMES mapped to IOBES), overall and per type.

    Illegal predicted sequences are first made legal by lenient decoding (every fragment is an
    entity), so an ill-formed prediction costs precision instead of disappearing.
    """
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOBES

    if len(gold_tags) != len(pred_tags):
        raise ValueError(f"{len(gold_tags)} gold sentences but {len(pred_tags)} predicted")
    y_true = [bmes_to_iobes(t) for t in gold_tags]
    y_pred = [bmes_to_iobes(repair_bmes(t)) for t in pred_tags]
    for i, (a, b) in enumerate(zip(y_true, y_pred)):
        if len(a) != len(b):
            raise ValueError(f"sentence {i}: {len(a)} gold tags but {len(b)} predicted")
    n_gold, n_pred, n_correct = _entity_counts(y_true, y_pred)
    per_type: dict[str, dict[str, float | int]] = {}
    if n_gold or n_pred:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zero-division and "not NE tag" warnings
            report = classification_report(y_true, y_pred, mode="strict", scheme=IOBES,
                                           output_dict=True, zero_division=0)
        per_type = {
            label: {"precision": float(row["precision"]), "recall": float(row["recall"]),
                    "f1": float(row["f1-score"]), "support": int(row["support"])}
            for label, row in report.items() if not label.endswith(" avg")
        }
    precision, recall, f1 = prf(n_correct, n_gold, n_pred)
    return NERScores(precision, recall, f1, n_gold, n_pred, n_correct, per_type)


# --- internals ---------------------------------------------------------------------------------


def _matched_gold_words(gold: Sequence[str], pred: Sequence[str]) -> set[int]:
    """Indices of gold words aligned to an identical predicted word by a longest alignment."""
    gold_spans = _offsets(gold)
    pred_spans = set(_offsets(pred))
    by_offset = {j for j, span in enumerate(gold_spans) if span in pred_spans}
    if len(by_offset) == min(len(gold), len(pred)) or len(by_offset) == _lcs_length(gold, pred):
        return by_offset
    return _lcs_alignment(gold, pred)


def _offsets(words: Sequence[str]) -> list[tuple[int, int]]:
    spans, start = [], 0
    for w in words:
        spans.append((start, start + len(w)))
        start += len(w)
    return spans


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _lcs_alignment(a: Sequence[str], b: Sequence[str]) -> set[int]:
    """Indices of ``a`` in one longest common subsequence with ``b``."""
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = (table[i + 1][j + 1] + 1 if a[i] == b[j]
                           else max(table[i + 1][j], table[i][j + 1]))
    matched, i, j = set(), 0, 0
    while i < n and j < m:
        if a[i] == b[j] and table[i][j] == table[i + 1][j + 1] + 1:
            matched.add(i)
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return matched


def _entity_counts(y_true: list[list[str]], y_pred: list[list[str]]) -> tuple[int, int, int]:
    from seqeval.scheme import IOBES, Entities

    true = Entities(y_true, IOBES, suffix=False).entities
    pred = Entities(y_pred, IOBES, suffix=False).entities
    n_gold = sum(len(s) for s in true)
    n_pred = sum(len(s) for s in pred)
    correct = sum(len(set(t) & set(p)) for t, p in zip(true, pred))
    return n_gold, n_pred, correct
