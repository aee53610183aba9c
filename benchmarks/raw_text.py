"""Collect every raw text of ../shared/corpora that is not a test set, one sentence per line,
for `tagger vectors` (and `tagger lexicon`):

    python benchmarks/raw_text.py [--corpora PATH] [--out runs/raw/raw.txt]

Sentences are read with the library's readers and written without their annotation (word
boundaries, tags). Left out: every test set (SIGHAN PKU/MSR/AS test and gold files, the MSRA
test, Resume test, UD test, the People's Daily NER test) and CLUENER's dev.json, which is the
set the CLUENER rows report on. Prints what went in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bmes_tagger.atomic import atomic_write  # noqa: E402
from bmes_tagger.corpus import read_corpus  # noqa: E402

# (path under the corpora, format, task): training and dev texts only
SOURCES = [
    ("peoples_daily_1998_pos/RMRB.seg.utf8", "segmented", "cws"),
    ("msra_ner/msra_train.seg.utf8", "segmented", "cws"),
    ("resume_ner/train.char.bmes", "conll", "ner"),
    ("resume_ner/dev.char.bmes", "conll", "ner"),
    ("cluener2020/train.json", "jsonl", "ner"),
    ("peoples_daily_1998_ner_devtest/example.dev", "conll", "ner"),
    ("ud_chinese_gsd_r1.4/zh-ud-train.conllu", "conllu", "cws"),
    ("ud_chinese_gsd_r1.4/zh-ud-dev.conllu", "conllu", "cws"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "raw" / "raw.txt")
    args = parser.parse_args()
    if not args.corpora.is_dir():
        sys.exit(f"error: corpora not found at {args.corpora} (use --corpora PATH)")
    total = 0
    with atomic_write(args.out) as f:
        for name, fmt, task in SOURCES:
            scheme = "bio" if name.endswith("example.dev") else "bmes"
            sentences = read_corpus(args.corpora / name, fmt, task, scheme, repair=True)
            chars = sum(len(s.chars) for s in sentences)
            for s in sentences:
                f.write("".join(s.chars) + "\n")
            total += chars
            print(f"{name}: {len(sentences):,} sentences, {chars:,} characters")
    print(f"{args.out}: {total:,} characters")


if __name__ == "__main__":
    main()
