"""Where a segmenter's word errors come from: which gold words it misses, which words it
invents, and how many invented words are training-vocabulary words that the gold splits.

    python benchmarks/cws_errors.py GOLD PRED [--words WORDS] [--top N]

GOLD and PRED are segmented files (words separated by whitespace, one sentence per line, the
same characters per line). WORDS is a word list such as the official
``pku_training_words.utf8``. A predicted word that the gold splits into several whole gold words,
and that WORDS lists, is a disagreement between the test's segmentation and the training
vocabulary rather than a boundary the model could not see (``提出`` is one word 587 times in
People's Daily 1998-01 and is in the official PKU training list; the PKU test splits all 55 of
its occurrences).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def spans(words: list[str]) -> set[tuple[int, int, str]]:
    """(start, end, word) character spans of one segmented sentence."""
    out, start = set(), 0
    for word in words:
        out.add((start, start + len(word), word))
        start += len(word)
    return out


def word_errors(gold: list[list[str]], pred: list[list[str]], vocab: set[str]
                ) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Missed gold words, invented (spurious) predicted words, and the invented words that
    ``vocab`` lists and that the gold splits into whole gold words."""
    missed: Counter[str] = Counter()
    invented: Counter[str] = Counter()
    merged_known: Counter[str] = Counter()
    for line, (g, p) in enumerate(zip(gold, pred, strict=True), 1):
        if "".join(g) != "".join(p):
            raise SystemExit(f"error: line {line}: gold and prediction have different characters")
        gold_spans, pred_spans = spans(g), spans(p)
        starts = {a for a, _, _ in gold_spans}
        ends = {b for _, b, _ in gold_spans}
        missed.update(w for _, _, w in gold_spans - pred_spans)
        for a, b, w in pred_spans - gold_spans:
            invented[w] += 1
            if a in starts and b in ends and w in vocab:
                merged_known[w] += 1
    return missed, invented, merged_known


def read_segmented(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gold", type=Path)
    parser.add_argument("pred", type=Path)
    parser.add_argument("--words", type=Path, help="training word list, one word per line")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    gold, pred = read_segmented(args.gold), read_segmented(args.pred)
    if len(gold) != len(pred):
        raise SystemExit(f"error: {args.gold} has {len(gold)} lines, {args.pred} {len(pred)}")
    vocab = set()
    if args.words:
        vocab = {w.strip() for w in args.words.read_text(encoding="utf-8").splitlines()}
    missed, invented, merged_known = word_errors(gold, pred, vocab)
    total_gold = sum(len(g) for g in gold)
    total_pred = sum(len(p) for p in pred)
    print(f"gold words {total_gold:,}, predicted {total_pred:,}; missed gold words "
          f"{sum(missed.values()):,}, invented words {sum(invented.values()):,}")
    if args.words:
        print(f"invented words that {args.words.name} lists and the gold splits into whole "
              f"gold words: {sum(merged_known.values()):,}")
    for title, table in (("most missed", missed), ("most invented", invented),
                         ("listed words the gold splits", merged_known)):
        if table:
            print(f"{title}: " + ", ".join(f"{w} {n}" for w, n in table.most_common(args.top)))


if __name__ == "__main__":
    main()
