"""A/B speed of this checkout against an earlier commit, in one process, interleaved.

    python benchmarks/ab.py --against COMMIT [--corpora PATH] [--model CKPT] [--reps N]

The package at COMMIT is extracted (``git archive``) into a temporary folder as
``bmes_tagger_<commit>`` (its imports are relative, so it runs under that name) and imported
beside the current ``bmes_tagger``. Both then time, repeat after repeat, in turn:

- the training step (batch, loss, backward, clipping, Adam step, reading the loss) on Resume
  NER train at NCRF++'s size with the CRF head, batch 10, and at the default size with the
  softmax head, batch 32 (the same batches, the same seed);
- ``Tagger.segment`` on the PKU test input with ``--model`` (a CWS checkpoint both versions
  read; default: the ``pku_tiny`` model of ``benchmarks/accuracy.py``).

Rates are characters per CPU second of this process (1 torch thread); the table shows the
median over the repeats and new / old. Prints markdown; writes nothing.
"""

from __future__ import annotations

import argparse
import importlib
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def extract(commit: str) -> str:
    """Import name of the package as it was at ``commit``."""
    sha = subprocess.run(["git", "rev-parse", "--short", commit], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.strip()
    name = f"bmes_tagger_{sha}"
    tmp = Path(tempfile.mkdtemp(prefix="bmes_ab_"))
    archive = subprocess.run(["git", "archive", "--format=tar", sha, "bmes_tagger"], cwd=REPO,
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
    (tmp / "bmes_tagger").rename(tmp / name)
    sys.path.insert(0, str(tmp))
    return name


class Version:
    """One version of the package behind the calls the benchmark makes (the API changed when
    inputs became named features: format 3)."""

    def __init__(self, package: str) -> None:
        self.name = package
        self.m = {sub: importlib.import_module(f"{package}.{sub}")
                  for sub in ("config", "corpus", "batching", "predict", "train")}
        self.named = hasattr(self.m["batching"].EncodedCorpus, "encode")

    def config(self, emb: int, hidden: int, head: str, batch: int) -> Any:
        return self.m["config"].config_from_dict({
            "data": {"task": "ner", "format": "conll", "repair_gold": True},
            "model": {"embedding_dim": emb, "hidden_size": hidden, "head": head},
            "train": {"batch_size": batch, "device": "cpu"} if self.named else
            {"batch_size": batch}})

    def training_step(self, corpus: Path, emb: int, hidden: int, head: str, batch: int
                      ) -> tuple[Callable[[list[int]], int], Any]:
        cfg = self.config(emb, hidden, head, batch)
        sents = self.m["corpus"].read_corpus(corpus, "conll", "ner", "bmes", True)
        chars = [s.chars for s in sents]
        tags_of = [s.tags or [] for s in sents]
        train = self.m["train"]
        torch.manual_seed(1)
        if self.named:
            from importlib import import_module

            features = import_module(f"{self.name}.features")
            model_mod = import_module(f"{self.name}.model")
            vocabs = features.build_vocabs(chars, cfg)
            tags = train.tag_set(sents, cfg)
            encoded = self.m["batching"].EncodedCorpus.encode(
                chars, vocabs, cfg, tags_of, {t: i for i, t in enumerate(tags)})
            model = model_mod.build_model(cfg, vocabs, tags).train()
            optimizer = train.make_optimizer(model, cfg)

            def step(indices: list[int]) -> int:
                b = encoded.batch(indices)
                b = b.torch() if hasattr(b, "torch") else b  # NumPy batches since format 3
                train.train_step(model, optimizer, b, cfg.train.clip_norm).item()
                return b.num_tokens
        else:
            vocab, tags = train.build_vocabularies(sents, cfg)
            encoded = self.m["batching"].encode_for_model(
                chars, cfg, vocab, None, {t: i for i, t in enumerate(tags)}, tags_of)
            model = self.m["predict"].build_model(cfg, len(vocab), tags).train()
            optimizer = train.make_optimizer(model, cfg)

            def step(indices: list[int]) -> int:
                b = encoded.batch(indices)
                loss = model.loss(b.chars, b.lengths, b.tags, b.mask, b.bigrams, b.classes)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_norm)
                optimizer.step()
                loss.item()
                return b.num_tokens
        return step, encoded.lengths

    def segmenter(self, model: Path) -> Callable[[list[str]], Any]:
        tagger = self.m["predict"].Tagger.load(model)
        if self.named:
            tagger = self.m["predict"].Tagger.load(model, device="cpu")
        return tagger.segment


def cpu_rate(fn: Callable[[], int]) -> float:
    c0 = time.process_time()
    chars = fn()
    return chars / max(time.process_time() - c0, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="commit to compare with")
    parser.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    parser.add_argument("--model", type=Path,
                        default=REPO / "runs" / "accuracy" / "pku_tiny-seed1" / "best.pt")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    versions = {"new": Version("bmes_tagger"), "old": Version(extract(args.against))}
    resume = args.corpora / "resume_ner" / "train.char.bmes"
    rows: dict[str, dict[str, list[float]]] = {}
    variants: dict[str, dict[str, Callable[[], int]]] = {}
    for label, (emb, hidden, head, batch) in {
            "train step, NCRF++ size (50/100), CRF, batch 10": (50, 100, "crf", 10),
            "train step, default size (100/200), softmax, batch 32": (100, 200, "softmax", 32),
    }.items():
        variants[label] = {}
        for which, version in versions.items():
            step, lengths = version.training_step(resume, emb, hidden, head, batch)
            order = versions["new"].m["batching"].bucketed_batches(
                lengths, batch, torch.Generator().manual_seed(7))[:60]
            for b in order[:5]:
                step(b)  # warm-up

            def run(step: Callable[[list[int]], int] = step, order: list = order) -> int:
                return sum(step(b) for b in order)

            variants[label][which] = run
    lines = [x for x in (args.corpora / "sighan2005_pku" / "pku_test.utf8")
             .read_text(encoding="utf-8").splitlines() if x.strip()][:1000]
    label = f"Tagger.segment, {args.model.name} ({args.model.parent.name}), 1,000 PKU lines"
    variants[label] = {}
    for which, version in versions.items():
        segment = version.segmenter(args.model)
        segment(lines[:100])
        n = sum(len(x.replace(" ", "")) for x in lines)
        variants[label][which] = lambda segment=segment, n=n: (segment(lines), n)[1]
    for _ in range(args.reps):
        for label, pair in variants.items():
            for which in ("old", "new"):
                rows.setdefault(label, {}).setdefault(which, []).append(cpu_rate(pair[which]))
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_line = next((x.split(":", 1)[1].strip() for x in cpu.splitlines()
                       if x.startswith("Model name")), platform.processor())
    flags = next((x for x in cpu.splitlines() if x.startswith("Flags")), "")
    bf16 = ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags.split()) or "none"
    print(f"A/B against {args.against} ({versions['old'].name}), {args.reps} interleaved "
          f"repeats, 1 thread, chars per CPU-s; {model_line}, bf16 flags: {bf16}\n")
    print("| measure | old | new | new / old (median; range of per-repeat ratios) |")
    print("|---|---:|---:|---:|")
    for label, r in rows.items():
        ratios = [n / o for n, o in zip(r["new"], r["old"])]
        print(f"| {label} | {statistics.median(r['old']):,.0f} | "
              f"{statistics.median(r['new']):,.0f} | {statistics.median(ratios):.3f} "
              f"({min(ratios):.3f}-{max(ratios):.3f}) |")


if __name__ == "__main__":
    main()
