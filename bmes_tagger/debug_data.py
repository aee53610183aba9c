"""`tagger debug-data CONFIG`: what is in the data before training on it.

The questions behind "why is my F1 ten points lower" are usually about the data, not the
model: dev sentences that are also in train, gold that needed repair, characters the model
never saw, width variants of the same character, sentences that will be cut. This reads the
config's corpora exactly as training does and reports those, per split. It only reads.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .batching import span_bounds
from .config import Config
from .corpus import Sentence, read_corpus, read_word_list
from .features import bigram_keys, first_bigram
from .tags import split_tag, tags_to_spans, tags_to_words
from .vocab import WIDTH_TABLE, normalize_width

SPLITS = ("train", "dev", "test")
EXAMPLES = 5  # file:line examples kept per finding
LONGEST = 10  # length histograms put everything from this length on in one bucket


def debug_data(config: Config) -> dict[str, Any]:
    """Read the config's train, dev and test corpora and describe them.

    Gold sequences that are illegal are repaired for the report (and listed), whatever
    ``data.repair_gold`` says, so one bad sentence does not hide the rest.

    Returns:
        A JSON-ready report: ``{"task", "splits": {name: stats}, "findings": [...]}``.

    Raises:
        CorpusFormatError: a corpus cannot be read at all (missing, not UTF-8, malformed).
    """
    d = config.data
    read: dict[str, tuple[str, list[Sentence], list[tuple[int, str]]]] = {}
    for name in SPLITS:
        path = getattr(d, name)
        if path is None:
            continue
        repairs: list[tuple[int, str]] = []
        sentences = read_corpus(path, d.format, d.task, d.scheme, repair=True, repairs=repairs)
        read[name] = (path, sentences, repairs)
    report: dict[str, Any] = {"task": d.task, "format": d.format, "splits": {},
                              "findings": []}
    train = read.get("train")
    train_chars = Counter(_normalized(c, d.normalize_width) for s in (train[1] if train else ())
                          for c in s.chars)
    train_bigrams = _bigrams(train[1], d.normalize_width) if train else Counter()
    train_sentences = Counter("".join(s.chars) for s in (train[1] if train else ()))
    train_words: set[str] = set()
    if d.task == "cws" and train:
        train_words = (read_word_list(d.train_words) if d.train_words is not None else
                       {w for s in train[1] for w in tags_to_words(s.chars, s.tags or [])})
    for name, (path, sentences, repairs) in read.items():
        stats = _split_stats(sentences, config)
        stats["file"] = str(path)
        stats["repaired_gold"] = {"count": len(repairs),
                                  "examples": [f"{path}:{line}: {reason}"
                                               for line, reason in repairs[:EXAMPLES]]}
        texts = Counter("".join(s.chars) for s in sentences)
        stats["duplicate_sentences"] = {
            "count": sum(n - 1 for n in texts.values() if n > 1),
            "examples": [f"{path}:{s.line}" for s in _repeated(sentences)][:EXAMPLES]}
        if name != "train" and train:
            chars = Counter(_normalized(c, d.normalize_width) for s in sentences for c in s.chars)
            unseen = {c: n for c, n in chars.items() if c not in train_chars}
            bigrams = _bigrams(sentences, d.normalize_width)
            unseen_bigrams = sum(n for b, n in bigrams.items() if b not in train_bigrams)
            leaked = [s for s in sentences if "".join(s.chars) in train_sentences]
            stats["unseen_in_train"] = {
                "char_types": len(unseen), "chars": sum(unseen.values()),
                "char_rate": sum(unseen.values()) / max(1, sum(chars.values())),
                "examples": sorted(unseen, key=lambda c: -unseen[c])[:EXAMPLES],
                "bigrams": unseen_bigrams,
                "bigram_rate": unseen_bigrams / max(1, sum(bigrams.values()))}
            stats["also_in_train"] = {"count": len(leaked),
                                      "examples": [f"{path}:{s.line}" for s in leaked][:EXAMPLES]}
            if d.task == "cws":
                words = [w for s in sentences for w in tags_to_words(s.chars, s.tags or [])]
                oov = sum(w not in train_words for w in words)
                stats["oov_word_rate"] = oov / max(1, len(words))
        report["splits"][name] = stats
    report["width_variants"] = _width_variants([s for _, ss, _ in read.values() for s in ss])
    report["findings"] = _findings(report, d.repair_gold)
    return report


def _normalized(token: str, normalize: bool) -> str:
    return normalize_width(token) if normalize else token


def _bigrams(sentences: Sequence[Sentence], normalize: bool) -> Counter[str]:
    counts: Counter[str] = Counter()
    for s in sentences:
        tokens = [_normalized(c, normalize) for c in s.chars]
        counts.update(bigram_keys(tokens))
        counts[first_bigram(tokens)] += 1
    return counts


def _repeated(sentences: Sequence[Sentence]) -> list[Sentence]:
    """Every sentence whose text occurred before in the same split."""
    seen: set[str] = set()
    out = []
    for s in sentences:
        text = "".join(s.chars)
        if text in seen:
            out.append(s)
        seen.add(text)
    return out


def _histogram(lengths: Sequence[int]) -> dict[str, int]:
    counts = Counter(min(n, LONGEST) for n in lengths)
    return {(f"{n}+" if n == LONGEST else str(n)): counts[n] for n in sorted(counts)}


def _split_stats(sentences: Sequence[Sentence], config: Config) -> dict[str, Any]:
    d = config.data
    tags = Counter(t for s in sentences for t in s.tags or [])
    stats: dict[str, Any] = {
        "sentences": len(sentences),
        "chars": sum(len(s.chars) for s in sentences),
        "tags": dict(tags.most_common()),
    }
    if d.task == "cws":
        lengths = [len(w) for s in sentences for w in tags_to_words(s.chars, s.tags or [])]
        stats["words"] = len(lengths)
        stats["word_lengths"] = _histogram(lengths)
    else:
        spans = [(label, b - a) for s in sentences for label, a, b in tags_to_spans(s.tags or [])]
        unit = "words" if d.task == "pos" else "entities"
        stats[unit] = len(spans)
        stats["types"] = dict(Counter(label for label, _ in spans).most_common())
        stats[f"{unit[:-1] if unit == 'words' else 'entity'}_lengths"] = _histogram(
            [n for _, n in spans])
    long = [s for s in sentences if len(s.chars) > d.max_len]
    pieces = [b for s in long for b in span_bounds(s.tags or [], d.max_len)]
    stats["over_max_len"] = {"max_len": d.max_len, "sentences": len(long),
                             "pieces_after_splitting": len(pieces),
                             "longest": max((len(s.chars) for s in sentences), default=0),
                             "examples": [f"line {s.line} ({len(s.chars)} chars)"
                                          for s in long][:EXAMPLES]}
    non_bmp = Counter(c for s in sentences for c in s.chars for ch in c if ord(ch) > 0xFFFF)
    stats["non_bmp_chars"] = {"count": sum(non_bmp.values()),
                              "examples": [c for c, _ in non_bmp.most_common(EXAMPLES)]}
    labels = {split_tag(t)[1] for t in tags if t != "O"}
    if labels:
        stats["labels"] = sorted(labels)
    return stats


def _width_variants(sentences: Sequence[Sentence]) -> dict[str, Any]:
    """Characters that occur both full-width (U+FF01-FF5E, U+3000) and half-width: the same
    character to a reader, two to a model unless ``data.normalize_width`` folds them."""
    counts = Counter(c for s in sentences for c in s.chars if len(c) == 1)
    pairs = []
    for full, half in WIDTH_TABLE.items():
        a, b = chr(full), chr(half)
        if counts[a] and counts[b]:
            pairs.append({"full": a, "half": b, "full_count": counts[a], "half_count": counts[b],
                          "name": unicodedata.name(b, "").lower()})
    pairs.sort(key=lambda p: -(p["full_count"] + p["half_count"]))
    full_total = sum(counts[chr(cp)] for cp in WIDTH_TABLE)
    return {"pairs": len(pairs), "full_width_chars": full_total, "examples": pairs[:EXAMPLES]}


def _findings(report: dict[str, Any], repair_on: bool) -> list[str]:
    """The things worth a look, one line each (empty when nothing stands out)."""
    out = []
    for name, stats in report["splits"].items():
        if stats["repaired_gold"]["count"]:
            fix = "data.repair_gold repairs them" if repair_on else \
                "training refuses them unless data.repair_gold: true"
            out.append(f"{name}: {stats['repaired_gold']['count']} gold sequences are illegal; "
                       f"{fix} (first: {stats['repaired_gold']['examples'][0]})")
        if stats.get("also_in_train", {}).get("count"):
            leak = stats["also_in_train"]
            out.append(f"{name}: {leak['count']} sentences also occur in train (leakage; "
                       f"first: {leak['examples'][0]})")
        if stats["duplicate_sentences"]["count"]:
            out.append(f"{name}: {stats['duplicate_sentences']['count']} duplicate sentences")
        if stats["over_max_len"]["sentences"]:
            over = stats["over_max_len"]
            out.append(f"{name}: {over['sentences']} sentences are longer than data.max_len "
                       f"{over['max_len']} (up to {over['longest']}) and are cut into "
                       f"{over['pieces_after_splitting']} pieces")
        unseen = stats.get("unseen_in_train")
        if unseen and unseen["char_rate"] > 0.01:
            out.append(f"{name}: {unseen['char_rate']:.1%} of the characters never occur in "
                       f"train ({unseen['char_types']} types, e.g. "
                       f"{' '.join(unseen['examples'])})")
    variants = report["width_variants"]
    if variants["pairs"]:
        ex = ", ".join(f"{p['full']}/{p['half']}" for p in variants["examples"])
        out.append(f"{variants['pairs']} characters occur both full-width and half-width "
                   f"({ex}); data.normalize_width folds them")
    return out


def format_report(report: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    lines = [f"task {report['task']}, format {report['format']}", ""]
    for name, s in report["splits"].items():
        lines.append(f"== {name}: {s['file']}")
        unit = "words" if "words" in s else "entities"
        lines.append(f"   {s['sentences']:,} sentences, {s['chars']:,} characters, "
                     f"{s.get(unit, 0):,} {unit}")
        if "types" in s:
            lines.append("   types: " + ", ".join(f"{k} {v:,}" for k, v in s["types"].items()))
        hist = next((v for k, v in s.items() if k.endswith("_lengths")), {})
        lines.append("   lengths: " + ", ".join(f"{k}: {v:,}" for k, v in hist.items()))
        tag_items = list(s["tags"].items())
        lines.append("   tags: " + ", ".join(f"{k} {v:,}" for k, v in tag_items[:12])
                     + (" ..." if len(tag_items) > 12 else ""))
        over = s["over_max_len"]
        lines.append(f"   longer than max_len {over['max_len']}: {over['sentences']:,} "
                     f"(-> {over['pieces_after_splitting']:,} pieces; longest "
                     f"{over['longest']:,})")
        lines.append(f"   gold needing repair: {s['repaired_gold']['count']:,}"
                     + "".join(f"\n      {x}" for x in s["repaired_gold"]["examples"]))
        lines.append(f"   duplicate sentences: {s['duplicate_sentences']['count']:,}")
        if "unseen_in_train" in s:
            u = s["unseen_in_train"]
            lines.append(f"   unseen in train: {u['char_types']:,} character types "
                         f"({u['chars']:,} = {u['char_rate']:.2%} of characters), bigrams "
                         f"{u['bigram_rate']:.2%}")
            lines.append(f"   also in train: {s['also_in_train']['count']:,} sentences")
        if "oov_word_rate" in s:
            lines.append(f"   OOV word rate: {s['oov_word_rate']:.2%}")
        if s["non_bmp_chars"]["count"]:
            lines.append(f"   non-BMP characters: {s['non_bmp_chars']['count']:,} ("
                         + " ".join(s["non_bmp_chars"]["examples"]) + ")")
        lines.append("")
    v = report["width_variants"]
    lines.append(f"full-width forms: {v['full_width_chars']:,} characters; {v['pairs']} "
                 "characters occur in both widths")
    lines.append("")
    lines.append("findings:" if report["findings"] else "findings: none")
    lines.extend(f"  - {f}" for f in report["findings"])
    return "\n".join(lines)
