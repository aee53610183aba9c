"""Speed benchmark: training and prediction throughput, measured side by side in one run.

    python benchmarks/speed.py [--corpora PATH] [--peers PATH] [--quick] [--model CKPT]
                               [--small-model CKPT] [--tiny-model CKPT] [--output FILE]

Prints markdown tables and (full mode only) replaces the section between
``<!-- speed-CPU:start -->`` and ``<!-- speed-CPU:end -->`` in ``benchmarks/RESULTS.md`` (created
if absent; CPU is the machine's CPU model, so runs on different CPUs are kept side by side: the
ratios depend on it), so other benchmarks can share the file. ``--quick`` is a smoke run (about
4 minutes: 1 NCRF++ epoch, time to accuracy against that epoch with at most 2 of ours) that
writes nothing unless ``--output`` is given.

What is measured (characters = real, non-padding characters):

0. NCRF++ itself, in this run (``benchmarks/ncrfpp.py``, from ``--peers``, default
   ../shared/peers; its rows say why when it is absent): 8 epochs (quick: 1) on Resume NER at
   its own configuration (batch 10), stopped at the start of each epoch while each of our runs
   of ``configs/resume_ncrfpp.yaml`` (batch 10, 32 and 64 at benchmarks/tta_lr.py's rates) trains
   one epoch with the library's real ``train_step`` and the bare padded LSTM runs over the same
   batches; training chars per CPU-second (``/proc/<pid>/stat`` for NCRF++, process time for
   us) and per wall-second of both, ours / NCRF++ per pair, ours / padded LSTM, NER decoding
   speed. Then **time to accuracy**: training CPU seconds until the Resume test F1 reaches
   NCRF++'s best test F1 of those epochs (test evaluated after each epoch, untimed).
1. Training: our real training step (``EncodedCorpus.batch`` -> ``model.loss`` -> backward ->
   gradient clipping -> Adam step -> ``loss.item()``, built through the library as
   ``bmes_tagger.train`` does) on Resume NER train, for NCRF++'s size (embedding 50, hidden 100
   per direction) and our default size (100/200), CRF and softmax heads, batch 10, 32, 64.
2. The same batches through a bare ``nn.Embedding`` + packed bidirectional ``nn.LSTM`` +
   ``sum().backward()`` (random ids with exactly the same lengths), and through the same
   without packing (one fused unidirectional ``nn.LSTM`` per direction, the backward one on
   rows reversed within their lengths: exact on real positions).
3. 1 vs 2 torch threads for two training configurations and for prediction.
4. A per-phase breakdown of the training step (batch, forward, loss head, backward, clip, step).
5. Our training step on the PKU proxy corpus with the models of configs/pku.yaml,
   configs/pku_small.yaml and configs/pku_tiny.yaml (bigram and class features included).
6. Prediction on the SIGHAN 2005 PKU test input with ``Tagger.segment`` for the default-size,
   small and tiny PKU models (trained by ``benchmarks/accuracy.py --only pku pku_small
   pku_tiny``), each eager in torch (fp32 and bf16 autocast) and exported to ONNX (fp32 and
   int8 weights) run by onnxruntime; model load time and peak RSS (each in a fresh process),
   against jieba on the same lines; F1 of all against the PKU gold.

Every variant of a group is timed in turn, repeat after repeat (interleaved), after a warm-up,
so a load spike from other processes hits all variants alike; tables show the median of the
repeats. Rates are given per second of wall time and, for 1-thread work, per second of this
process's CPU time (what the wall rate would be with a core to ourselves); ratios between
1-thread variants use the latter, because the machine this runs on is usually shared.
``cpu/wall`` shows how much CPU we actually got (1.0 = one whole core).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without `pip install -e .`

sys.path.insert(0, str(REPO / "benchmarks"))
from predict_memory import write_section  # noqa: E402

from bmes_tagger import features  # noqa: E402
from bmes_tagger.batching import EncodedCorpus, bucketed_batches  # noqa: E402
from bmes_tagger.checkpoint import load_checkpoint, make_payload, save_checkpoint  # noqa: E402
from bmes_tagger.config import Config, config_from_dict, load_config  # noqa: E402
from bmes_tagger.corpus import read_corpus, read_word_list  # noqa: E402
from bmes_tagger.evaluate import evaluate  # noqa: E402
from bmes_tagger.metrics import cws_scores  # noqa: E402
from bmes_tagger.model import build_model  # noqa: E402
from bmes_tagger.parallel import DataParallel  # noqa: E402
from bmes_tagger.predict import Tagger  # noqa: E402
from bmes_tagger.train import make_optimizer, setup, tag_set, train_step  # noqa: E402
from bmes_tagger.vocab import Vocab  # noqa: E402

SIZES = {"NCRF++ (50/100)": (50, 100), "default (100/200)": (100, 200)}
BATCH_SIZES = (10, 32, 64)
THREADS = (1, 2)


@dataclass
class Plan:
    """How much work each measurement does (full or quick run)."""

    train_chars: int        # characters per timed repeat of a training variant (whole batches)
    warmup_batches: int
    reps: int
    cap_s: float            # a timed repeat stops after this many seconds (rate = chars / wall)
    predict_lines: int | None  # None = the whole PKU test file
    predict_reps: int
    thread_lines: int       # PKU test lines for the predict 1-vs-2-threads comparison
    quick_train_lines: int  # People's Daily lines for the quick CWS model, when one is trained
    ncrfpp_epochs: int      # NCRF++ epochs (each alternated with one epoch of each of our runs)
    t2a_cap: int | None     # most epochs of our time-to-accuracy runs (None: the config's)
    ncrfpp_b32: bool        # also 1 NCRF++ epoch at batch 32 (speed only), paired with ours


FULL = Plan(train_chars=12_000, warmup_batches=4, reps=5, cap_s=4.0, predict_lines=None,
            predict_reps=2, thread_lines=300, quick_train_lines=3000,
            ncrfpp_epochs=8, t2a_cap=None, ncrfpp_b32=True)
QUICK = Plan(train_chars=2_500, warmup_batches=2, reps=2, cap_s=1.5, predict_lines=300,
             predict_reps=1, thread_lines=100, quick_train_lines=600,
             ncrfpp_epochs=1, t2a_cap=2, ncrfpp_b32=False)


@dataclass
class Measure:
    """Repeated timings of one variant.

    ``rates``: characters per wall-clock second. ``cpu_rates``: characters per second of this
    process's CPU time, which for 1-thread work is what the wall rate would be if no other
    process took our core (a busy machine deschedules us; it does not add CPU time).
    ``cpu``: CPU time / wall time.
    """

    rates: list[float] = field(default_factory=list)
    cpu_rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def cpu_rate(self) -> float:
        return statistics.median(self.cpu_rates)

    @property
    def spread(self) -> str:
        return f"{min(self.rates):,.0f}–{max(self.rates):,.0f}"

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.cpu)


def timed(fn: Callable[[], int], threads: int, into: Measure) -> None:
    """Run ``fn`` (returns characters processed) at ``threads`` threads; record its rate."""
    torch.set_num_threads(threads)
    c0, t0 = time.process_time(), time.perf_counter()
    chars = fn()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    into.rates.append(chars / wall)
    into.cpu_rates.append(chars / max(cpu, 1e-9))
    into.cpu.append(cpu / wall)


def interleave(variants: dict[str, tuple[Callable[[], int], int]], reps: int,
               warmup: Callable[[str], None]) -> dict[str, Measure]:
    """Warm every variant up, then time them in turn ``reps`` times."""
    for name, (_, threads) in variants.items():
        torch.set_num_threads(threads)
        warmup(name)
    out = {name: Measure() for name in variants}
    for _ in range(reps):
        for name, (fn, threads) in variants.items():
            timed(fn, threads, out[name])
    return out


# --- training ----------------------------------------------------------------------------------


# the heads of the training-throughput table; "crf bf16" is the CRF with train.precision bf16
HEADS = ("crf", "crf bf16", "softmax")


def ner_config(emb: int, hidden: int, head: str, batch_size: int) -> Config:
    """Resume NER config at the given size, otherwise the library's defaults (``head`` may
    end in `` bf16``: train.precision bf16)."""
    head, _, precision = head.partition(" ")
    return config_from_dict({
        "data": {"task": "ner", "format": "conll", "scheme": "bmes", "repair_gold": True},
        "model": {"embedding_dim": emb, "hidden_size": hidden, "head": head},
        "train": {"batch_size": batch_size, "precision": precision or "fp32"},
    }, source="benchmarks/speed.py")


class OurStep:
    """Our training step: :func:`bmes_tagger.train.train_step` (what the loop runs) on a batch
    built as the loop builds it, then reading the loss as the loop's log does."""

    def __init__(self, config: Config, encoded: EncodedCorpus, vocabs: dict[str, Vocab],
                 tags: Sequence[str]) -> None:
        torch.manual_seed(1)
        self.config = config
        self.encoded = encoded
        self.model = build_model(config, vocabs, tags)
        self.model.train()
        self.optimizer = make_optimizer(self.model, config)

    def __call__(self, indices: Sequence[int]) -> int:
        batch = self.encoded.batch(indices).torch()
        loss = train_step(self.model, self.optimizer, batch, self.config.train.clip_norm,
                          self.config.train.precision == "bf16")
        loss.item()
        return batch.num_tokens


class BareStep:
    """Embedding + packed BiLSTM + ``sum().backward()`` on random ids of the given lengths."""

    def __init__(self, num_chars: int, emb: int, hidden: int,
                 batches: Sequence[Sequence[int]], lengths: torch.Tensor) -> None:
        torch.manual_seed(1)
        lengths = torch.as_tensor(lengths)
        self.embedding = nn.Embedding(num_chars, emb, padding_idx=0)
        self.lstm = nn.LSTM(emb, hidden, batch_first=True, bidirectional=True)
        self.inputs: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        for indices in batches:
            lens = lengths[list(indices)].sort(descending=True).values
            # (batch, max_len) random ids, padding 0
            ids = torch.randint(1, num_chars, (len(lens), int(lens[0])))
            ids[torch.arange(ids.shape[1]).unsqueeze(0) >= lens.unsqueeze(1)] = 0
            self.inputs[tuple(indices)] = (ids, lens)

    def __call__(self, indices: Sequence[int]) -> int:
        ids, lens = self.inputs[tuple(indices)]
        packed = pack_padded_sequence(self.embedding(ids), lens, batch_first=True)
        out, _ = self.lstm(packed)
        out.data.sum().backward()
        for p in (*self.embedding.parameters(), *self.lstm.parameters()):
            p.grad = None
        return int(lens.sum())


class BarePaddedStep(BareStep):
    """Like :class:`BareStep` without packing: one unidirectional ``nn.LSTM`` per direction on
    the padded batch, the backward one reading each row reversed within its length.

    Same outputs on real positions as the packed BiLSTM (padding only ever follows real
    positions in both directions), but it runs torch's fused CPU kernel instead of the packed
    per-time-step path. A measure of what packing costs, not something the library does.
    """

    def __init__(self, num_chars: int, emb: int, hidden: int,
                 batches: Sequence[Sequence[int]], lengths: torch.Tensor) -> None:
        super().__init__(num_chars, emb, hidden, batches, lengths)
        self.forward_lstm = nn.LSTM(emb, hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(emb, hidden, batch_first=True)
        self.reverse: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        for key, (ids, lens) in self.inputs.items():
            steps = torch.arange(ids.shape[1]).unsqueeze(0)
            real = steps < lens.unsqueeze(1)
            # (batch, seq_len): row b reads position lens[b]-1-i at i < lens[b], else i
            self.reverse[key] = (torch.where(real, lens.unsqueeze(1) - 1 - steps, steps), real)

    def __call__(self, indices: Sequence[int]) -> int:
        key = tuple(indices)
        ids, lens = self.inputs[key]
        rev, real = self.reverse[key]
        # (batch, seq_len, emb)
        x = self.embedding(ids)
        ahead, _ = self.forward_lstm(x)
        back, _ = self.backward_lstm(x.gather(1, rev.unsqueeze(2).expand_as(x)))
        back = back.gather(1, rev.unsqueeze(2).expand_as(back))
        # (batch, seq_len, 2 * hidden)
        out = torch.cat([ahead, back], dim=2)
        out[real].sum().backward()
        for module in (self.embedding, self.forward_lstm, self.backward_lstm):
            for p in module.parameters():
                p.grad = None
        return int(lens.sum())


def pick_batches(lengths: torch.Tensor, batch_size: int, chars: int) -> list[list[int]]:
    """Batches of the first epoch's bucketed order, evenly spaced over the epoch, ~``chars``."""
    lengths = torch.as_tensor(lengths)
    order = bucketed_batches(lengths, batch_size, torch.Generator().manual_seed(1_000_003))
    per_batch = float(lengths.float().mean()) * batch_size
    n = max(1, min(len(order), round(chars / per_batch)))
    stride = len(order) / n
    return [order[int(i * stride)] for i in range(n)]


def bench_training(corpora: Path, plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    """Our step vs the bare LSTM at both sizes, both heads and both batch sizes (1 thread);
    1 vs 2 threads for NCRF++ size CRF batch 10 and default size softmax batch 32."""
    path = corpora / "resume_ner" / "train.char.bmes"
    base = ner_config(50, 100, "crf", 10)
    sents = read_corpus(path, "conll", "ner", "bmes", repair=True)
    vocabs = features.build_vocabs([s.chars for s in sents], base)
    tags = tag_set(sents, base)
    tag_index = {t: i for i, t in enumerate(tags)}
    encoded = EncodedCorpus.encode([s.chars for s in sents], vocabs, base,
                                   [s.tags or [] for s in sents], tag_index)
    rows: dict[tuple[str, int], dict[str, Measure]] = {}
    steps: dict[tuple[str, str, int], OurStep] = {}
    for size, (emb, hidden) in SIZES.items():
        for bs in BATCH_SIZES:
            batches = pick_batches(encoded.lengths, bs, plan.train_chars)
            # the shortest batches of the epoch: warm-up at 2 threads can be very slow
            warm = sorted(pick_batches(encoded.lengths, bs, 10**9),
                          key=lambda b: int(encoded.lengths[b].sum()))[:plan.warmup_batches]
            runners: dict[str, Callable[[Sequence[int]], int]] = {}
            for head in HEADS:
                step = OurStep(ner_config(emb, hidden, head, bs), encoded, vocabs, tags)
                steps[(size, head, bs)] = step
                runners[head] = step
            num_chars = len(vocabs["chars"])
            runners["bare"] = BareStep(num_chars, emb, hidden, batches + warm, encoded.lengths)
            runners["padded"] = BarePaddedStep(num_chars, emb, hidden, batches + warm,
                                               encoded.lengths)
            threaded = ("crf" if size.startswith("NCRF") and bs == 10
                        else "softmax" if bs == 32 and size.startswith("default") else None)
            variants = {f"{name}@{t}": (_loop(fn, batches, plan.cap_s), t)
                        for name, fn in runners.items() for t in THREADS
                        if t == 1 or name in (threaded, "bare") and threaded}

            def warmup(name: str, runners: dict = runners, warm: list = warm) -> None:
                # One batch starts a 2-thread pool; more would only cost time on a busy machine.
                for b in warm if name.endswith("@1") else warm[:1]:
                    runners[name.split("@")[0]](b)

            log(f"training: {size}, batch {bs}: {len(batches)} batches x {plan.reps} repeats")
            rows[(size, bs)] = interleave(variants, plan.reps, warmup)
    breakdown = {
        (size, head, bs): step_breakdown(steps[(size, head, bs)],
                                         pick_batches(encoded.lengths, bs, plan.train_chars))
        for size, head, bs in (("NCRF++ (50/100)", "crf", 10),
                               ("default (100/200)", "softmax", 32),
                               ("default (100/200)", "crf", 32))
    }
    return {"rows": rows, "breakdown": breakdown, "sentences": len(sents),
            "chars": int(encoded.lengths.sum()), "vocab": len(vocabs["chars"]), "tags": len(tags),
            "batches": {bs: len(pick_batches(encoded.lengths, bs, plan.train_chars))
                        for bs in BATCH_SIZES}}


def _loop(fn: Callable[[Sequence[int]], int], batches: list[list[int]], cap_s: float
          ) -> Callable[[], int]:
    """Run ``fn`` over ``batches`` (stopping after ``cap_s`` seconds); characters processed."""
    def run() -> int:
        chars, t0 = 0, time.perf_counter()
        for b in batches:
            chars += fn(b)
            if time.perf_counter() - t0 > cap_s:
                break
        return chars
    return run


def step_breakdown(step: OurStep, batches: list[list[int]]) -> dict[str, float]:
    """CPU seconds per phase of the training step at 1 thread, summed over ``batches``.

    The phases are the pieces of :func:`bmes_tagger.train.train_step` and of the model's loss.
    """
    torch.set_num_threads(1)
    model, optimizer, clip = step.model, step.optimizer, step.config.train.clip_norm
    phases = dict.fromkeys(("batch building", "embedding + LSTM + linear (forward)",
                            "loss head (forward)", "backward", "clip_grad_norm_",
                            "optimizer step", "loss.item()"), 0.0)
    names = list(phases)
    for indices in batches:
        marks = [time.process_time()]
        batch = step.encoded.batch(indices).torch()
        marks.append(time.process_time())
        scores = model.emissions(batch.inputs, batch.lengths)
        marks.append(time.process_time())
        assert batch.tags is not None
        if model.crf is not None:
            loss = -model.crf(scores, batch.tags, batch.mask, reduction="token_mean")
        else:
            loss = F.cross_entropy(scores[batch.mask], batch.tags[batch.mask])
        marks.append(time.process_time())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(time.process_time())
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        marks.append(time.process_time())
        optimizer.step()
        marks.append(time.process_time())
        loss.item()
        marks.append(time.process_time())
        for i, name in enumerate(names):
            phases[name] += marks[i + 1] - marks[i]
    return phases


PKU_CONFIGS = ("pku", "pku_small", "pku_tiny")


def bench_training_pku(corpora: Path, plan: Plan, log: Callable[[str], None]) -> dict[str, Any]:
    """Our training step with the model and batch size of each of ``PKU_CONFIGS`` (bigram and
    class features included) on the PKU proxy corpus."""
    source = corpora / "peoples_daily_1998_pos" / "RMRB.seg.utf8"
    with source.open(encoding="utf-8") as f:
        head = [line for _, line in zip(range(plan.quick_train_lines), f)]
    tmp = Path(tempfile.mkdtemp(prefix="bmes_speed_pku_"))
    subset = tmp / "train.txt"
    subset.write_text("".join(head), encoding="utf-8")
    sents = [s for s in read_corpus(subset, "segmented", "cws") if s.chars]
    steps: dict[str, OurStep] = {}
    batches: dict[str, list[list[int]]] = {}
    desc: dict[str, str] = {}
    for name in PKU_CONFIGS:
        spec = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text(encoding="utf-8"))
        config = config_from_dict({
            "data": {"task": "cws", "format": "segmented",
                     "normalize_width": spec["data"].get("normalize_width", True)},
            "model": spec.get("model", {}), "train": spec.get("train", {}),
        }, source=f"configs/{name}.yaml")
        vocabs = features.build_vocabs([s.chars for s in sents], config)
        tags = tag_set(sents, config)
        encoded = EncodedCorpus.encode([s.chars for s in sents], vocabs, config,
                                       [s.tags or [] for s in sents],
                                       {t: i for i, t in enumerate(tags)})
        steps[name] = OurStep(config, encoded, vocabs, tags)
        batches[name] = pick_batches(encoded.lengths, config.train.batch_size, plan.train_chars)
        m = config.model
        desc[name] = (f"embedding {m.embedding_dim}, BiLSTM {m.hidden_size}, bigrams "
                      f"{m.bigram_dim} ({m.bigram_context}), classes {m.class_dim}, "
                      f"{m.head}, batch {config.train.batch_size}")
    variants = {name: (_loop(step, batches[name], plan.cap_s), 1) for name, step in steps.items()}

    def warmup(name: str) -> None:
        for b in batches[name][:plan.warmup_batches]:
            steps[name](b)

    log(f"training: PKU proxy, {len(variants)} configs x {plan.reps} repeats")
    measures = interleave(variants, plan.reps, warmup)
    return {"measures": measures, "desc": desc, "sentences": len(sents),
            "chars": sum(len(s.chars) for s in sents)}


# --- NCRF++ side by side, time to accuracy -----------------------------------------------------

# configs/resume_ncrfpp.yaml at batch 10, 32 and 64 (--set overrides), each at the learning rate
# benchmarks/tta_lr.py picks on mean dev F1 over 8 epochs (RESULTS.md, "tta-lr" section: above
# the config's 0.002, which is tuned for 20 epochs), and each again with bfloat16 training
# (train.precision=bf16). Keys are the runs' labels.
_BATCHES = {"10": ("train.lr=0.006",), "32": ("train.batch_size=32", "train.lr=0.012"),
            "64": ("train.batch_size=64", "train.lr=0.016")}
OUR_RUNS: dict[str, tuple[str, ...]] = {
    **_BATCHES, **{f"{bs} bf16": (*o, "train.precision=bf16") for bs, o in _BATCHES.items()}}
NCRFPP_CONFIG = REPO / "configs" / "resume_ncrfpp.yaml"


@dataclass
class EpochTime:
    """One timed pass: characters, process CPU seconds, wall seconds."""

    chars: int
    cpu_s: float
    wall_s: float

    @property
    def rate(self) -> float:
        return self.chars / self.wall_s

    @property
    def cpu_rate(self) -> float:
        return self.chars / self.cpu_s


def _timed_pass(fn: Callable[[], int]) -> EpochTime:
    c0, t0 = time.process_time(), time.perf_counter()
    chars = fn()
    return EpochTime(chars, time.process_time() - c0, time.perf_counter() - t0)


class OurRun:
    """``configs/resume_ncrfpp.yaml`` (with ``overrides``) trained epoch by epoch the way
    :mod:`bmes_tagger.train`'s loop does it: the same seeding before ``build_model``, the same
    per-epoch length-bucketed batch order, and per batch ``EncodedCorpus.batch`` ->
    :func:`bmes_tagger.train.train_step` (the real step) -> schedule/EMA update -> summed loss,
    read once per epoch. Only the epoch is timed; the test evaluation after it is not (as
    NCRF++'s printed epoch time excludes its evaluation). Each run keeps its own torch random
    state, so interleaving runs does not change what any of them computes.
    """

    def __init__(self, overrides: Sequence[str], corpora: Path) -> None:
        old = os.environ.get("BMES_CORPORA")
        os.environ["BMES_CORPORA"] = str(corpora)
        try:
            config = load_config(NCRFPP_CONFIG, ["train.threads=1", *overrides])
        finally:
            if old is None:
                del os.environ["BMES_CORPORA"]
            else:
                os.environ["BMES_CORPORA"] = old
        t, d = config.train, config.data
        if t.lr_schedule == "plateau" or t.eval_every:
            raise ValueError("benchmarks/speed.py: a plateau schedule or eval_every is not "
                             "reproduced by the time-to-accuracy loop")
        assert d.train and d.dev and d.test
        self.config, self.batch_size = config, t.batch_size
        # the library's own setup (data, vocabularies, model, optimizer, schedule, EMA,
        # seeding), into a scratch run directory
        run = setup(config, Path(tempfile.mkdtemp(prefix="bmes_speed_run_")), None,
                    DataParallel(), torch.device("cpu"))
        self.test = read_corpus(d.test, d.format, d.task, d.scheme, d.repair_gold)
        self.encoded, self.model, self.optimizer = run.encoded, run.model, run.optimizer
        self.dev = run.dev
        self.scheduler, self.ema, self.tagger = run.scheduler, run.ema, run.tagger
        self.rng = torch.get_rng_state()
        self.epochs_done = 0
        self.times: list[EpochTime] = []
        self.test_f1: list[float] = []
        self.last_order: list[list[int]] = []
        self.num_chars = len(run.vocabs["chars"])

    def _generator(self, epoch: int) -> torch.Generator:
        # bmes_tagger.train._epoch_generator's formula: the loop's batch order of that epoch
        return torch.Generator().manual_seed(self.config.train.seed * 1_000_003 + epoch)

    def train_epoch(self) -> EpochTime:
        """One epoch, timed (process CPU and wall)."""
        torch.set_num_threads(1)
        torch.set_rng_state(self.rng)
        lengths, bs, clip = self.encoded.lengths, self.batch_size, self.config.train.clip_norm
        bf16 = self.config.train.precision == "bf16"
        model, optimizer, scheduler, ema = self.model, self.optimizer, self.scheduler, self.ema
        step_scheduler = isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
        orders: list[list[list[int]]] = []

        def epoch() -> int:
            order = bucketed_batches(lengths, bs, self._generator(self.epochs_done))
            orders.append(order)
            loss_sum = torch.zeros((), dtype=torch.float64)
            chars = 0
            for indices in order:
                batch = self.encoded.batch(indices).torch()
                loss = train_step(model, optimizer, batch, clip, bf16)
                if step_scheduler:
                    scheduler.step()  # type: ignore[union-attr]
                if ema is not None:
                    ema.update(model)
                n = batch.num_tokens
                loss_sum += loss.double() * n
                chars += n
            float(loss_sum)
            return chars

        took = _timed_pass(epoch)
        self.rng = torch.get_rng_state()
        self.epochs_done += 1
        self.times.append(took)
        self.last_order = orders[0]
        return took

    def scored(self) -> Any:
        """The model as shipped (EMA weights if on), for evaluation."""
        return self.ema.swapped_in(self.model) if self.ema is not None \
            else contextlib.nullcontext()

    def evaluate_test(self) -> float:
        """Test F1 of the model now (untimed; the library's evaluate at its default batch)."""
        with self.scored():
            f1 = evaluate(self.tagger, self.test).f1
        self.test_f1.append(f1)
        return f1

    def time_decoding(self, sentences: Sequence[Any], batch_size: int) -> EpochTime:
        """Timed ``evaluate`` (``Tagger.tag_tokens`` + scoring) of ``sentences``."""
        torch.set_num_threads(1)
        n = sum(len(s.chars) for s in sentences)

        def run() -> int:
            evaluate(self.tagger, sentences, batch_size=batch_size)
            return n

        with self.scored():
            return _timed_pass(run)


def _padded_epoch(run: OurRun, emb: int, hidden: int) -> EpochTime:
    """The bare padded LSTM (fused kernel) fwd+bwd over the batches of ``run``'s last epoch,
    under bfloat16 autocast when the run trains in bf16 (the same kernel as that run's)."""
    order = run.last_order
    step = BarePaddedStep(run.num_chars, emb, hidden, order, run.encoded.lengths)
    bf16 = run.config.train.precision == "bf16"
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for b in order[:2]:  # warm-up
            step(b)

    def epoch() -> int:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return sum(step(b) for b in order)

    torch.set_num_threads(1)
    return _timed_pass(epoch)


def bench_ncrfpp(corpora: Path, peers: Path, plan: Plan, log: Callable[[str], None]
                 ) -> dict[str, Any]:
    """NCRF++'s epochs alternated with ours, in one run; then time to accuracy.

    NCRF++ (``benchmarks/ncrfpp.py``) is stopped at the start of each of its epochs; while it
    is stopped, each of our runs (``OUR_RUNS``) trains one epoch (timed), the bare padded LSTM
    runs over the same batches (timed), and the runs are evaluated on test (untimed). After
    NCRF++'s last epoch our runs continue, one epoch at a time, until their test F1 reaches
    NCRF++'s best (or ``plan.t2a_cap`` / the config's epochs).
    """
    import ncrfpp

    reason = ncrfpp.missing(peers)
    if reason:
        log(f"NCRF++: skipped ({reason})")
        return {"skipped": reason}
    runs = {label: OurRun(overrides, corpora) for label, overrides in OUR_RUNS.items()}
    emb, hidden = runs["10"].config.model.embedding_dim, runs["10"].config.model.hidden_size
    padded: dict[str, list[EpochTime]] = {label: [] for label in runs}
    decode: dict[str, list[EpochTime]] = {"dev@10": [], "test@10": [], "test@64": []}
    loads: list[float] = []

    def round_of_ours(k: int) -> None:
        loads.append(os.getloadavg()[0])
        for bs, run in runs.items():
            took = run.train_epoch()
            padded[bs].append(_padded_epoch(run, emb, hidden))
            log(f"  ours batch {bs}, epoch {run.epochs_done}: {took.cpu_rate:,.0f} chars/CPU-s "
                f"({took.rate:,.0f}/s wall); padded LSTM {padded[bs][-1].cpu_rate:,.0f}")
        first = runs["10"]
        for bs in (10, 64):  # the first prediction calls are slow: warm up, untimed
            first.time_decoding(first.dev[:50], bs)
        decode["dev@10"].append(first.time_decoding(first.dev, 10))
        decode["test@10"].append(first.time_decoding(first.test, 10))
        decode["test@64"].append(first.time_decoding(first.test, 64))
        for run in runs.values():
            run.evaluate_test()
        log("  test F1 " + ", ".join(f"batch {bs} {r.test_f1[-1]:.4f}" for bs, r in runs.items()))
        log(f"NCRF++: epoch {k + 1}/{plan.ncrfpp_epochs}")

    log(f"NCRF++: {plan.ncrfpp_epochs} epochs, each after one epoch of each of our runs "
        f"(batch {', '.join(map(str, runs))})")
    result = ncrfpp.run(plan.ncrfpp_epochs, peers, corpora, on_epoch_start=round_of_ours)
    for e in result.epochs:
        log(f"  NCRF++ epoch {e.index + 1}: {e.chars_per_cpu_s:,.0f} chars/CPU-s "
            f"({e.chars_per_s:,.0f}/s wall), test F1 {e.test.f1 if e.test else float('nan'):.4f}")
    paired = len(result.epochs)
    target = max(e.test.f1 for e in result.epochs if e.test is not None)
    for bs, run in runs.items():
        cap = min(plan.t2a_cap or run.config.train.epochs, run.config.train.epochs)
        while max(run.test_f1) < target and run.epochs_done < cap:
            took = run.train_epoch()
            f1 = run.evaluate_test()
            log(f"  ours batch {bs}, epoch {run.epochs_done}: {took.cpu_rate:,.0f} chars/CPU-s, "
                f"test F1 {f1:.4f} (target {target:.4f})")
    b32: dict[str, Any] | None = None
    if plan.ncrfpp_b32:
        # Is NCRF++ faster at a larger batch? One epoch at 32 (speed only: its summed loss and
        # learning rate are tuned for 10), paired with the first epoch of a fresh run of ours.
        fresh = OurRun(OUR_RUNS["32"], corpora)
        mine: list[EpochTime] = []

        def pair(k: int) -> None:
            loads.append(os.getloadavg()[0])
            mine.append(fresh.train_epoch())

        log("NCRF++: 1 epoch at batch 32 (speed check), after one epoch of a fresh run of ours")
        b32 = {"ncrfpp": ncrfpp.run(1, peers, corpora, batch_size=32, on_epoch_start=pair),
               "ours": mine}
        e = b32["ncrfpp"].epochs[0]
        log(f"  NCRF++ batch 32: {e.chars_per_cpu_s:,.0f} chars/CPU-s; ours "
            f"{mine[0].cpu_rate:,.0f}")
    return {"ncrfpp": result, "runs": runs, "padded": padded, "decode": decode, "b32": b32,
            "paired": paired, "target": target, "loads": loads, "emb": emb, "hidden": hidden,
            "cap": plan.t2a_cap}


def _reached(f1s: Sequence[float], target: float) -> int | None:
    """1-based epoch at which ``f1s`` first reaches ``target``."""
    return next((i + 1 for i, f in enumerate(f1s) if f >= target), None)


def _mid_range(values: Sequence[float], fmt: str) -> str:
    """'median (min–max)' of ``values``."""
    if len(values) == 1:
        return fmt.format(values[0])
    return (f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–"
            f"{fmt.format(max(values))})")


# --- prediction --------------------------------------------------------------------------------


def _first_existing(*paths: Path) -> Path | None:
    return next((p for p in paths if p.exists()), None)


def get_cws_model(args: argparse.Namespace, corpora: Path, plan: Plan,
                  log: Callable[[str], None]) -> tuple[Path, str]:
    """The default-size CWS checkpoint: ``--model``, else the one ``benchmarks/accuracy.py
    --only pku`` trained, else ``runs/pku/best.pt``, else a quickly trained one."""
    if args.model:
        return Path(args.model), f"`{args.model}` (given with --model)"
    found = _first_existing(REPO / "runs" / "accuracy" / "pku-seed1" / "best.pt",
                            REPO / "runs" / "pku" / "best.pt")
    if found is not None and not args.train_quick_model:
        return found, f"`{found.relative_to(REPO)}` (configs/pku.yaml)"
    from bmes_tagger.train import train

    tmp = Path(tempfile.mkdtemp(prefix="bmes_speed_"))
    source = corpora / "peoples_daily_1998_pos" / "RMRB.seg.utf8"
    with source.open(encoding="utf-8") as f:
        head = [line for _, line in zip(range(plan.quick_train_lines), f)]
    subset = tmp / "train.txt"
    subset.write_text("".join(head), encoding="utf-8")
    config = config_from_dict({
        "data": {"task": "cws", "format": "segmented", "train": str(subset), "dev_fraction": 0.05,
                 "train_words": str(corpora / "sighan2005_pku" / "pku_training_words.utf8")},
        "train": {"epochs": 1, "threads": 1},
    }, source="benchmarks/speed.py")
    log(f"predict: no PKU model found; training a quick CWS model on {len(head)} lines")
    t0 = time.perf_counter()
    train(config, tmp / "run", progress=False)
    took = time.perf_counter() - t0
    return tmp / "run" / "best.pt", (
        f"a quick model trained here ({took:.0f} s, 1 epoch on the first {len(head)} lines of "
        "People's Daily 1998-01)")


def get_pku_model(args: argparse.Namespace, name: str = "small"
                    ) -> tuple[Path, str] | None:
    """The ``name`` CWS checkpoint (configs/pku_<name>.yaml: small or tiny), if there is
    one; ``--small-model`` / ``--tiny-model`` override."""
    given = getattr(args, f"{name}_model", None)
    if given:
        return Path(given), f"`{given}` (given with --{name}-model)"
    found = _first_existing(REPO / "runs" / "accuracy" / f"pku_{name}-seed1" / "best.pt",
                            REPO / "runs" / f"pku_{name}" / "best.pt")
    return (found, f"`{found.relative_to(REPO)}` (configs/pku_{name}.yaml)") if found else None


def _describe(tagger: Tagger) -> str:
    m = tagger.config.model
    text = (f"embedding {m.embedding_dim}, {m.num_layers} x "
            f"{'bidirectional ' if m.bidirectional else ''}{m.cell.upper()} {m.hidden_size}"
            + (f", bigrams {m.bigram_dim}" if m.bigram_dim else "")
            + (f", classes {m.class_dim}" if m.class_dim else "") + f", {m.head} head")
    best = tagger.scores
    if best.get("best_epoch"):
        text += f", best dev F1 {best.get('best_f1', 0):.4f} at epoch {best['best_epoch']}"
    return text


BACKENDS = ("eager fp32", "eager bf16", "onnx fp32", "onnx int8")


def bench_predict(args: argparse.Namespace, corpora: Path, plan: Plan,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """Each model (default size, small) on each backend (eager torch, onnxruntime fp32 and
    int8) vs jieba on the PKU test input; 1 vs 2 threads for the eager default model."""
    from bmes_tagger.export import export_model

    pku = corpora / "sighan2005_pku"
    lines = _read_lines(pku / "pku_test.utf8", plan.predict_lines)
    gold = [g.split() for g in _read_lines(pku / "pku_test_gold.utf8", plan.predict_lines)]
    train_words = read_word_list(pku / "pku_training_words.utf8")
    n_chars = sum(len("".join(line.split())) for line in lines)
    models = {"default": get_cws_model(args, corpora, plan, log)}
    for size in ("small", "tiny"):
        found = get_pku_model(args, size)
        if found is not None:
            models[size] = found
        else:
            log(f"predict: no {size} model (train it with python benchmarks/accuracy.py --only "
                f"pku_{size}); skipping its rows")

    torch.set_num_threads(1)  # also the onnxruntime sessions' thread count (set at load)
    tmp = Path(tempfile.mkdtemp(prefix="bmes_speed_onnx_"))
    files: dict[str, Path] = {}
    descriptions: dict[str, str] = {}
    for label, (path, desc) in models.items():
        # re-saved, so the load time is that of the current checkpoint format
        current = tmp / f"{label}.pt"
        ckpt = load_checkpoint(path)
        save_checkpoint(make_payload(ckpt.config, ckpt.vocabs, ckpt.tags, ckpt.train_words,
                                     ckpt.weights or {}, ckpt.scores), current)
        files[f"{label} eager fp32"] = current
        files[f"{label} eager bf16"] = current  # the same file, loaded with bf16=True
        for quantize in (False, True):
            log(f"predict: exporting the {label} model to ONNX"
                + (" with int8 weights" if quantize else ""))
            files[f"{label} onnx {'int8' if quantize else 'fp32'}"] = export_model(
                path, tmp / f"{label}{'.int8' if quantize else ''}.onnx", "onnx",
                quantize=quantize)
        descriptions[label] = f"{desc}: {_describe(Tagger.load(path))}"
    taggers: dict[str, Tagger] = {}
    load_times: dict[str, list[float]] = {}
    for name, path in files.items():
        load_times[name] = []
        for _ in range(3):
            t0 = time.perf_counter()
            taggers[name] = Tagger.load(path, bf16=name.endswith("bf16"))
            load_times[name].append(time.perf_counter() - t0)

    import jieba

    jieba.setLogLevel(logging.WARNING)
    t0 = time.perf_counter()
    jieba.initialize()
    jieba_load = time.perf_counter() - t0

    outputs: dict[str, list[list[str]]] = {}

    def seg(t: Tagger, name: str) -> Callable[[], int]:
        def run() -> int:
            outputs[name] = t.segment(lines, batch_size=64)
            return n_chars
        return run

    def jieba_run() -> int:
        outputs["jieba"] = [[w for w in jieba.lcut(line) if w.strip()] for line in lines]
        return n_chars

    variants: dict[str, tuple[Callable[[], int], int]] = {
        name: (seg(t, name), 1) for name, t in taggers.items()}
    variants["jieba"] = (jieba_run, 1)
    warm = lines[:100]

    def warmup(name: str) -> None:
        if name == "jieba":
            [jieba.lcut(line) for line in warm]
        else:
            taggers[name].segment(warm, batch_size=64)

    log(f"predict: {len(lines)} lines ({n_chars:,} chars) x {plan.predict_reps} repeats, "
        f"{len(variants)} variants, 1 thread")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        measures = interleave(variants, plan.predict_reps, warmup)
    f1 = {name: cws_scores(gold, words, train_words) for name, words in outputs.items()}

    # Threads: blocks of 100 lines so a repeat can stop after cap_s; same blocks for both.
    # (Eager torch only: an onnxruntime session's thread count is fixed when it is created.)
    sub = lines[:plan.thread_lines]
    blocks = [sub[i:i + 100] for i in range(0, len(sub), 100)]
    eager = taggers["default eager fp32"]

    def blockwise() -> int:
        chars, t0 = 0, time.perf_counter()
        for block in blocks:
            eager.segment(block, batch_size=64)
            chars += sum(len("".join(line.split())) for line in block)
            if time.perf_counter() - t0 > plan.cap_s:
                break
        return chars

    log(f"predict: 1 vs 2 threads on {len(sub)} lines")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        threads = interleave({f"fp32@{n}": (blockwise, n) for n in THREADS}, min(plan.reps, 3),
                             lambda name: eager.segment(lines[:10], batch_size=64))

    log("predict: where the time goes")
    breakdown = {name: predict_breakdown(taggers[name], lines) for name in taggers
                 if name.endswith(("eager fp32", "eager bf16", "onnx int8"))}

    log("predict: peak RSS, each in a fresh process")
    rss = {"baseline": _rss_worker("baseline", None, plan.predict_lines, corpora),
           "jieba": _rss_worker("jieba", None, plan.predict_lines, corpora)}
    for name, path in files.items():
        if name.endswith(("eager fp32", "onnx int8")):
            rss[name] = _rss_worker("segment", path, plan.predict_lines, corpora)
    return {"lines": len(lines), "chars": n_chars, "models": descriptions,
            "bytes": {name: path.stat().st_size for name, path in files.items()},
            "load": load_times, "jieba_load": jieba_load, "measures": measures, "scores": f1,
            "rss": rss, "threads": threads, "breakdown": breakdown,
            "thread_chars": sum(len("".join(x.split())) for x in sub)}


# phase -> the library functions whose cumulative time it is (module path suffix, name)
PREDICT_PHASES = {
    "text -> characters": [("bmes_tagger/text.py", "split_graphemes")],
    "chunking": [("bmes_tagger/batching.py", "text_bounds")],
    "encode (ids, bigrams, classes)": [("bmes_tagger/features.py", "encode")],
    "batch building (padding)": [("bmes_tagger/batching.py", "batch")],
    "network (emissions)": [("bmes_tagger/model.py", "emissions"),
                            ("bmes_tagger/exported.py", "emissions")],
    "decoding (Viterbi)": [("bmes_tagger/decoding.py", "viterbi")],
    "words from the text": [("bmes_tagger/predict.py", "_cut_words")],
}


def predict_breakdown(tagger: Tagger, lines: list[str], batch_size: int = 64
                      ) -> dict[str, float]:
    """CPU seconds per phase of one ``Tagger.segment`` call over ``lines`` at 1 thread.

    Measured with cProfile on the real call: each phase is the cumulative time of the library
    functions listed in ``PREDICT_PHASES`` (coarse calls, per batch or per line, so the
    profiler's overhead is small); "the rest" is everything else in ``segment`` (word starts
    from tag ids, chunk bookkeeping, glue). Shares, not absolute times, are what to read.
    """
    import cProfile
    import pstats

    torch.set_num_threads(1)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    tagger.segment(lines, batch_size=batch_size)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in stats.values())
    phases = {}
    for phase, functions in PREDICT_PHASES.items():
        # per listed function, the outermost of the same-named ones in that file (model.py's
        # TorchNetwork.emissions calls BiLSTMTagger.emissions: counting both would double it)
        phases[phase] = sum(
            max((ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                 if file.endswith(f) and name == n), default=0.0)
            for f, n in functions)
    phases["the rest (word starts from tag ids, bookkeeping)"] = max(
        0.0, total - sum(phases.values()))
    return phases


def _read_lines(path: Path, limit: int | None) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[:limit] if limit else lines


def _rss_worker(kind: str, model: Path | None, limit: int | None, corpora: Path) -> float:
    """Peak RSS (MiB) of a fresh process doing ``kind`` (baseline, jieba or segment with
    ``model``, a checkpoint or an exported file) over the PKU test input."""
    cmd = [sys.executable, __file__, "--rss-worker", kind, "--corpora", str(corpora)]
    if model is not None:
        cmd += ["--model", str(model)]
    if limit:
        cmd.append("--quick")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["maxrss_mib"]


def rss_worker(args: argparse.Namespace) -> None:
    """Child process: load and segment once, then report the peak RSS."""
    torch.set_num_threads(1)
    limit = QUICK.predict_lines if args.quick else None
    lines = _read_lines(Path(args.corpora) / "sighan2005_pku" / "pku_test.utf8", limit)
    kind = args.rss_worker
    if kind == "jieba":
        import jieba

        jieba.setLogLevel(logging.WARNING)
        [jieba.lcut(line) for line in lines]
    elif kind == "segment":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Tagger.load(args.model).segment(lines, batch_size=64)
    print(json.dumps({"maxrss_mib": round(peak_rss_mib(), 1)}))


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB.

    Linux keeps ``getrusage().ru_maxrss`` across ``execve``, so a child started from a large
    parent would report the parent's peak; ``VmHWM`` in ``/proc/self/status`` is this process's
    own high-water mark. ``ru_maxrss`` is the fallback elsewhere.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- machine and report ------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores, torch version and the load other processes put on the machine."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lscpu_model, flags = _lscpu()
    return {"cpu": cpu, "lscpu_model": lscpu_model, "bf16_flags": flags,
            "cores": os.cpu_count(), "usable": len(os.sched_getaffinity(0)),
            "code": _code_version(),
            "torch": torch.__version__, "python": platform.python_version(),
            "default_threads": torch.get_num_threads(), "load": os.getloadavg(),
            "busy": _busy_processes()}


BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _lscpu() -> tuple[str, list[str] | None]:
    """``lscpu``'s model name and which of ``BF16_FLAGS`` its flags list (None: no lscpu)."""
    try:
        out = subprocess.run(["lscpu"], check=True, capture_output=True, text=True,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no lscpu)", None
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    return fields.get("Model name", "unknown").strip(), [f for f in BF16_FLAGS if f in flags]


def _code_version() -> str:
    """Commit of the checkout and whether the package has uncommitted changes (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bmes_tagger"], cwd=REPO,
                               check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    changed = len(dirty.splitlines())
    return f"commit {head}" + (f" with uncommitted changes to {changed} files in bmes_tagger/"
                               if changed else "")


def _busy_processes() -> list[str]:
    """Other processes using >= 20% CPU right now (``ps``), as 'name (cpu%)'."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    busy = []
    for line in out.splitlines()[1:]:
        pid, pcpu, cmd = line.split(None, 2)
        if int(pid) == os.getpid() or float(pcpu) < 20:
            continue
        words = cmd.split()
        name = " ".join(w.rsplit("/", 1)[-1] for w in words[:4])
        busy.append(f"`{name[:60]}` ({float(pcpu):.0f}%)")
    return busy


def side_ratios(side: dict[str, Any]) -> dict[str, Any]:
    """Per paired round: ours / NCRF++ (per CPU-s and wall) and ours / padded LSTM, per batch."""
    ncrf = side["ncrfpp"].epochs
    n = side["paired"]
    out: dict[str, Any] = {}
    for bs, run in side["runs"].items():
        ours = run.times[:n]
        out[bs] = {
            "cpu": [o.cpu_rate / e.chars_per_cpu_s for o, e in zip(ours, ncrf)],
            "wall": [o.rate / e.chars_per_s for o, e in zip(ours, ncrf)],
            "padded": [o.cpu_rate / p.cpu_rate for o, p in zip(ours, side["padded"][bs])],
        }
    return out


def time_to_accuracy(side: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows: who, batch, epoch reaching the target, cumulative training CPU and wall seconds."""
    target, rows = side["target"], []
    ncrf = side["ncrfpp"]
    f1s = [e.test.f1 if e.test else float("nan") for e in ncrf.epochs]
    k = _reached(f1s, target)
    assert k is not None  # the target is NCRF++'s own best
    rows.append({"who": "NCRF++", "batch": ncrf.batch_size, "epoch": k, "f1s": f1s,
                 "cpu_s": sum(e.cpu_s for e in ncrf.epochs[:k]),
                 "wall_s": sum(e.wall_s for e in ncrf.epochs[:k])})
    for bs, run in side["runs"].items():
        k = _reached(run.test_f1, target)
        upto = run.times[:k] if k else run.times
        rows.append({"who": "ours", "batch": bs, "epoch": k, "f1s": run.test_f1,
                     "cpu_s": sum(t.cpu_s for t in upto), "wall_s": sum(t.wall_s for t in upto),
                     "lr": run.config.train.lr})
    return rows


def render_side_headline(side: dict[str, Any], w: Callable[[str], None]) -> None:
    """Headline rows: ours / NCRF++ measured in this run, ours / padded LSTM, time to accuracy."""
    if "skipped" in side:
        w(f"| our training / NCRF++ | not measured: {side['skipped']} | >= 20x |")
        return
    ratios, n = side_ratios(side), side["paired"]
    for bs, r in ratios.items():
        w(f"| our training epoch (batch {bs}) / NCRF++'s epoch (its batch "
          f"{side['ncrfpp'].batch_size}), NCRF++ size, CRF, measured alternately here "
          f"({n} pairs): per CPU-s; wall clock | {_mid_range(r['cpu'], '{:.1f}x')}; "
          f"{_mid_range(r['wall'], '{:.1f}x')} | >= 20x |")
    if side.get("b32"):
        e, mine = side["b32"]["ncrfpp"].epochs[0], side["b32"]["ours"][0]
        w(f"| the same with NCRF++ also at batch 32 (1 epoch each, speed only): per CPU-s; wall "
          f"| {mine.cpu_rate / e.chars_per_cpu_s:.1f}x; {mine.rate / e.chars_per_s:.1f}x | |")
    w("| our training step / bare *padded* LSTM fwd+bwd (fused kernel) over the same epoch's "
      "batches, batch " + " / ".join(str(bs) for bs in ratios) + " | "
      + " / ".join(_mid_range(r["padded"], "{:.0%}") for r in ratios.values()) + " | |")
    t2a = time_to_accuracy(side)
    ncrf_cpu = t2a[0]["cpu_s"]
    cells = []
    for row in t2a[1:]:
        cells.append(f"{ncrf_cpu / row['cpu_s']:.1f}x" if row["epoch"] else
                     f"not reached in {len(row['f1s'])} epochs")
    w(f"| time to accuracy (training CPU s until Resume test F1 >= {side['target']:.4f}, "
      f"NCRF++'s best in {len(t2a[0]['f1s'])} epochs): NCRF++ / ours at batch "
      + " / ".join(str(r["batch"]) for r in t2a[1:]) + f" | {' / '.join(cells)} | |")
    dec = side["decode"]
    ncrf_dev = [e.dev.chars_per_cpu_s for e in side["ncrfpp"].epochs
                if e.dev is not None and e.dev.chars_per_cpu_s]
    if ncrf_dev:
        ours = [t.cpu_rate for t in dec["dev@10"][:n]]
        w(f"| NER decoding + scoring (Resume dev, both batch 10) ours / NCRF++, per CPU-s | "
          f"{_mid_range([o / e for o, e in zip(ours, ncrf_dev)], '{:.1f}x')} | |")


def render_side(side: dict[str, Any], w: Callable[[str], None]) -> None:
    """The NCRF++ section: per-epoch tables, ratios, time to accuracy, decoding."""
    if "skipped" in side:
        w("### NCRF++ side by side")
        w("")
        w(f"Not measured: {side['skipped']}.")
        w("")
        return
    import ncrfpp

    res, n, runs = side["ncrfpp"], side["paired"], side["runs"]
    w(f"### NCRF++ side by side (Resume NER at NCRF++'s size: embedding {side['emb']}, BiLSTM "
      f"{side['hidden']} per direction, CRF; 1 thread each)")
    w("")
    loads = side["loads"]
    w(f"NCRF++ (`../shared/peers/NCRFpp`, unmodified, run by `benchmarks/ncrfpp.py`: "
      f"{res.command}; its configuration `ncrfpp-resume.config.tmpl`: random embeddings, SGD "
      f"lr 0.015 decay 0.05, dropout 0.5, summed loss) trained {len(res.epochs)} epochs in this "
      "run. It was stopped (SIGSTOP) at the start of each of its epochs; while it was stopped, "
      f"each of our runs trained one epoch (`configs/resume_ncrfpp.yaml`, Adam, at batch "
      f"{', '.join(str(b) for b in runs)}: "
      + ", ".join(f"`{' '.join(OUR_RUNS[b])}`" for b in runs if OUR_RUNS[b])
      + "; learning rates from `benchmarks/tta_lr.py`) and the bare padded LSTM ran over the "
      "same batches, so epoch i of NCRF++ is paired "
      "with the epochs i of ours timed just before it, and load from other processes hits both "
      f"alike (1-minute load average during these rounds: {min(loads):.1f}–{max(loads):.1f}). "
      "NCRF++'s wall time is its own printed training time minus the time we kept it stopped; "
      "its CPU time is utime + stime of its process from `/proc/<pid>/stat` at its `Epoch: k/N` "
      "line (read while stopped) and at its `training finished` line. Both exclude its dev/test "
      "evaluation; ours are process CPU and wall time around the epoch (batch order, "
      "`EncodedCorpus.batch`, the library's `train_step`, summed loss), the test evaluation "
      "after it untimed. NCRF++ trains at its batch 10 in all pairs.")
    worst = max((abs(e.cpu_s - e.cpu_clock_s) for e in res.epochs if e.cpu_clock_s is not None),
                default=None)
    w("")
    w("CPU-time accuracy: `/proc` counts whole clock ticks (10 ms), so each NCRF++ epoch's CPU "
      "time is good to about +-0.01 s (~0.03% of an epoch)"
      + (f"; the process CPU clock (ns, `clock_getcpuclockid`) read at the same moments differs "
         f"from it by at most {worst:.3f} s" if worst is not None else "")
      + f"; the stop took at most {max(e.stop_latency_s for e in res.epochs) * 1e3:.1f} ms to "
      "take effect (bounds what the pause subtraction over-subtracts from the wall time).")
    w("")
    ratios = side_ratios(side)
    ncrf_cpu = [e.chars_per_cpu_s for e in res.epochs]
    ncrf_wall = [e.chars_per_s for e in res.epochs]
    w(f"Training, chars/s: median (min–max) over the {n} paired epochs of "
      f"{res.train_chars:,} characters each; ratios are per pair.")
    w("")
    w("| who | batch | per CPU-s | wall | cpu/wall | / NCRF++ per CPU-s | / NCRF++ wall | "
      "/ bare padded LSTM per CPU-s |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    w(f"| NCRF++ | {res.batch_size} | {_mid_range(ncrf_cpu, '{:,.0f}')} | "
      f"{_mid_range(ncrf_wall, '{:,.0f}')} | "
      f"{_mid_range([e.cpu_s / e.wall_s for e in res.epochs], '{:.2f}')} | 1 | 1 | |")
    for bs, run in runs.items():
        ours = run.times[:n]
        w(f"| ours | {bs} | {_mid_range([t.cpu_rate for t in ours], '{:,.0f}')} | "
          f"{_mid_range([t.rate for t in ours], '{:,.0f}')} | "
          f"{_mid_range([t.cpu_s / t.wall_s for t in ours], '{:.2f}')} | "
          f"{_mid_range(ratios[bs]['cpu'], '{:.1f}x')} | "
          f"{_mid_range(ratios[bs]['wall'], '{:.1f}x')} | "
          f"{_mid_range(ratios[bs]['padded'], '{:.0%}')} |")
    if side.get("b32"):
        e, mine = side["b32"]["ncrfpp"].epochs[0], side["b32"]["ours"][0]
        w(f"| NCRF++, 1 epoch at batch 32 (speed only) | 32 | {e.chars_per_cpu_s:,.0f} | "
          f"{e.chars_per_s:,.0f} | {e.cpu_s / e.wall_s:.2f} | "
          f"{e.chars_per_cpu_s / statistics.median(ncrf_cpu):.2f}x its batch 10 | | |")
        w(f"| ours, epoch 1 of a fresh run, paired with it | 32 | {mine.cpu_rate:,.0f} | "
          f"{mine.rate:,.0f} | {mine.cpu_s / mine.wall_s:.2f} | "
          f"{mine.cpu_rate / e.chars_per_cpu_s:.1f}x NCRF++ at 32 | "
          f"{mine.rate / e.chars_per_s:.1f}x NCRF++ at 32 | |")
    for bs, times in side["padded"].items():
        w(f"| bare padded LSTM fwd+bwd (no optimizer) | {bs} | "
          f"{_mid_range([t.cpu_rate for t in times], '{:,.0f}')} | "
          f"{_mid_range([t.rate for t in times], '{:,.0f}')} | "
          f"{_mid_range([t.cpu_s / t.wall_s for t in times], '{:.2f}')} | | | |")
    w("")
    w("NCRF++ per epoch (as `python benchmarks/ncrfpp.py` prints it; decode chars/s from its "
      "printed decoding speed, in brackets per CPU-s of the whole dev evaluation):")
    w("")
    w(ncrfpp.table(res))
    w("")
    t2a = time_to_accuracy(side)
    w(f"**Time to accuracy**: training CPU seconds until the Resume test F1 (after an epoch) "
      f"first reaches {side['target']:.4f}, NCRF++'s best test F1 in its {len(res.epochs)} "
      "epochs; evaluation not counted on either side. Our runs go on after NCRF++'s last epoch "
      "until they reach it (at most "
      + (f"{side['cap']} epochs" if side.get("cap") else "the config's epochs") + ").")
    w("")
    w("| who | batch | epochs to reach | training CPU s | wall s | NCRF++ CPU s / this | "
      "test F1 after each epoch |")
    w("|---|---:|---:|---:|---:|---:|---|")
    for row in t2a:
        reached = row["epoch"] is not None
        who = row["who"] + (f" (Adam lr {row['lr']:g})" if "lr" in row else " (SGD)")
        epochs = row["epoch"] if reached else f"not in {len(row['f1s'])}"
        w(f"| {who} | {row['batch']} | {epochs} | "
          f"{row['cpu_s']:.1f}{'' if reached else '+'} | {row['wall_s']:.1f} | "
          f"{t2a[0]['cpu_s'] / row['cpu_s']:.2f}{'x' if reached else 'x+'} | "
          + ", ".join(f"{f:.4f}" for f in row["f1s"]) + " |")
    w("")
    dec = side["decode"]
    w("NER decoding (prediction + scoring of the whole file, 1 thread), chars/s: ours = the "
      "library's `evaluate` (`Tagger.tag_tokens`, Viterbi, span F1) of the batch-10 run after "
      f"each of the {n} paired epochs; NCRF++ = its printed decoding speed (its timer excludes "
      "scoring) and, for dev, its CPU time from the `training finished` to the `Dev:` line "
      "(decoding and scoring). Median (min–max).")
    w("")
    w("| who | file | batch | per CPU-s | wall |")
    w("|---|---|---:|---:|---:|")
    dev_cpu = [e.dev.chars_per_cpu_s for e in res.epochs if e.dev and e.dev.chars_per_cpu_s]
    for name in ("dev", "test"):
        evs = [getattr(e, name) for e in res.epochs if getattr(e, name) is not None]
        cpu = _mid_range(dev_cpu, "{:,.0f}") if name == "dev" and dev_cpu else "-"
        w(f"| NCRF++ | {name} | {res.batch_size} | {cpu} | "
          f"{_mid_range([x.chars_per_s for x in evs], '{:,.0f}')} |")
    for key, times in dec.items():
        name, bs = key.split("@")
        w(f"| ours | {name} | {bs} | {_mid_range([t.cpu_rate for t in times], '{:,.0f}')} | "
          f"{_mid_range([t.rate for t in times], '{:,.0f}')} |")
    w("")


def render(info: dict[str, Any], train: dict[str, Any], pred: dict[str, Any],
           side: dict[str, Any], plan: Plan, quick: bool, seconds: float,
           after: dict[str, Any]) -> str:
    """The markdown section."""
    out: list[str] = []
    w = out.append
    rows = train["rows"]
    small = rows[("NCRF++ (50/100)", 10)]
    ours_small_cpu = small["crf@1"].cpu_rate
    load0, load1 = info["load"], after["load"]
    during = side.get("loads") or []
    busy = max([load0[0], load1[0], *during]) > 0.5 * info["cores"]
    w("## Speed (`python benchmarks/speed.py" + (" --quick" if quick else "") + "`)")
    w("")
    w(f"Measured {info['date']} on {info['cpu']}, {info['cores']} cores "
      f"({info['usable']} usable), torch {info['torch']} (default {info['default_threads']} "
      f"threads), Python {info['python']}; code: {info['code']}; whole run "
      f"{seconds / 60:.1f} min. Tables are at "
      "1 thread (`torch.set_num_threads(1)`) unless they say otherwise. `lscpu`: model name "
      f"{info['lscpu_model']}, bf16 flags: "
      + ("not known (no lscpu)" if info["bf16_flags"] is None else
         ", ".join(f"`{f}`" for f in info["bf16_flags"]) or
         "none (neither `avx512_bf16` nor `amx_bf16`)") + ".")
    w("")
    w(f"**Machine load:** 1-minute load average {load0[0]:.1f} at the start and "
      f"{load1[0]:.1f} at the end"
      + (f" ({min(during):.1f}–{max(during):.1f} during the NCRF++ rounds)" if during else "")
      + f", on {info['cores']} cores"
      + (f"; other processes using CPU at the start: {', '.join(info['busy'][:6])}"
         if info["busy"] else "; no other busy process at the start")
      + ". `cpu/wall` is the CPU time this process got per second of wall time (1.0 = one "
        "whole core). Besides chars/s of wall time, 1-thread rates are also given per second "
        "of our own CPU time (`per CPU-s`): that is what the wall rate would be with the core "
        "to ourselves, so it is much less disturbed by other processes; **ratios between "
        "1-thread variants are computed from it**. Variants of a table were timed "
        "interleaved, repeat after repeat."
      + (" **The machine was busy while we measured: wall-clock rates are lower bounds.**"
         if busy else ""))
    w("")
    w("### Headline")
    w("")
    w("| measure | value | goal |")
    w("|---|---:|---:|")
    render_side_headline(side, w)
    w(f"| our training step / bare packed `nn.LSTM` fwd+bwd (NCRF++ size, CRF, batch 10) "
      f"| {ours_small_cpu / small['bare@1'].cpu_rate:.0%} | >= 70% |")
    w(f"| our training step / bare *padded* LSTM fwd+bwd (same, the ~{plan.train_chars:,}-char "
      f"sample of the table below) | {ours_small_cpu / small['padded@1'].cpu_rate:.0%} | |")
    w(f"| bare *padded* LSTM (fused kernel, exact) / bare packed LSTM, same batches | "
      f"{small['padded@1'].cpu_rate / small['bare@1'].cpu_rate:.1f}x | |")
    pm, sc = pred["measures"], pred["scores"]
    for name in pm:
        if name.endswith(("eager fp32", "eager bf16", "onnx int8")):
            w(f"| predict, {name} model (`Tagger.segment`, batch 64; F1 {sc[name].f1:.4f}) / "
              f"jieba `lcut` (F1 {sc['jieba'].f1:.4f}), per CPU-s | "
              f"{pm[name].cpu_rate / pm['jieba'].cpu_rate:.2f}x | >= 2x at F1 >= 0.945 |")
    slowest = max(statistics.median(v) for v in pred["load"].values())
    w(f"| slowest model load (`Tagger.load`, median of 3) | {slowest:.2f} s | <= 1 s |")
    w("")
    render_side(side, w)
    w(f"### Training throughput, chars/s (Resume NER train: {train['sentences']:,} sentences, "
      f"{train['chars']:,} chars)")
    w("")
    w(f"Median of {plan.reps} repeats, each over the same ~{plan.train_chars:,} characters "
      f"({', '.join(f'{n} batches of {bs}' for bs, n in train['batches'].items())}, taken evenly "
      f"from the first epoch's length-bucketed order), after {plan.warmup_batches} warm-up "
      "batches. **Ours** = the real step (`EncodedCorpus.batch`, `model.loss`, backward, "
      "`clip_grad_norm_` 5.0, fused Adam step, `loss.item()`), model from `build_model`, in "
      "training mode (dropout 0.2/0.3); **crf bf16** = the same with `train.precision: bf16` "
      "(the network under bfloat16 autocast, the CRF in float32; its bare columns are the "
      "float32 kernels). **Bare** = `nn.Embedding` + packed bidirectional "
      "`nn.LSTM` + `sum().backward()` on random ids with the same lengths, no optimizer. "
      "**Padded** = the same without packing: one unidirectional `nn.LSTM` per direction on "
      "the padded batch, the backward one reading each row reversed within its length "
      "(same outputs on real positions as the packed BiLSTM, but torch's fused CPU kernel "
      "instead of the packed per-time-step path).")
    w("")
    w("| size (emb/hidden) | head | batch | ours chars/s (min–max) | ours per CPU-s | "
      "bare packed per CPU-s | ours/bare | bare padded per CPU-s | ours/padded | "
      "cpu/wall |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (size, bs), m in rows.items():
        for head in HEADS:
            o, b, p = m[f"{head}@1"], m["bare@1"], m["padded@1"]
            w(f"| {size} | {head} | {bs} | {o.rate:,.0f} ({o.spread}) | {o.cpu_rate:,.0f} | "
              f"{b.cpu_rate:,.0f} | {o.cpu_rate / b.cpu_rate:.0%} | {p.cpu_rate:,.0f} | "
              f"{o.cpu_rate / p.cpu_rate:.0%} | {o.cpu_ratio:.2f} |")
    w("")
    w("### 1 vs 2 threads")
    w("")
    w(f"Wall-clock chars/s. Training as above; predict = `Tagger.segment` (batch 64) on the "
      f"first {plan.thread_lines} PKU test lines ({pred['thread_chars']:,} chars) in blocks "
      f"of 100 lines, median of {min(plan.reps, 3)} repeats. A repeat stops after "
      f"{plan.cap_s:g} s (rate = chars done / wall time).")
    w("")
    w("| what | 1 thread | 2 threads | 2 thr / 1 thr | cpu/wall at 2 threads |")
    w("|---|---:|---:|---:|---:|")
    pairs: list[tuple[str, Measure, Measure]] = []
    for (size, bs), m in rows.items():
        for name in ("crf", "softmax", "bare"):
            if f"{name}@2" in m:
                label = "bare packed LSTM" if name == "bare" else f"ours, {name}"
                pairs.append((f"train: {label}, {size}, batch {bs}", m[f"{name}@1"],
                              m[f"{name}@2"]))
    pairs.append(("predict: default model, eager fp32, batch 64", pred["threads"]["fp32@1"],
                  pred["threads"]["fp32@2"]))
    for label, one, two in pairs:
        w(f"| {label} | {one.rate:,.0f} | {two.rate:,.0f} | {two.rate / one.rate:.2f} | "
          f"{two.cpu_ratio:.2f} |")
    w("")
    w(f"### Where the training step's time goes (1 thread, the same ~{plan.train_chars:,} "
      "chars; process CPU time around each phase)")
    w("")
    keys = list(train["breakdown"])
    w("| phase | " + " | ".join(f"{s}, {h}, batch {b}" for s, h, b in keys) + " |")
    w("|---|" + "---:|" * len(keys))
    totals = {k: sum(v.values()) for k, v in train["breakdown"].items()}
    for phase in next(iter(train["breakdown"].values())):
        w(f"| {phase} | " + " | ".join(
            f"{train['breakdown'][k][phase] / totals[k]:.0%}" for k in keys) + " |")
    w("| **ms per batch** | " + " | ".join(
        f"{1000 * totals[k] / train['batches'][k[2]]:.1f}" for k in keys) + " |")
    w("")
    pku = train["pku"]
    w(f"### Training throughput on the PKU proxy (People's Daily 1998-01, first "
      f"{pku['sentences']:,} sentences, {pku['chars']:,} chars; 1 thread)")
    w("")
    w("Our real training step (as above) with each config's model, features and batch size; "
      f"median of {plan.reps} repeats over ~{plan.train_chars:,} characters.")
    w("")
    w("| config | model | chars/s (min–max) | per CPU-s | cpu/wall |")
    w("|---|---|---:|---:|---:|")
    for name, m in pku["measures"].items():
        w(f"| `configs/{name}.yaml` | {pku['desc'][name]} | {m.rate:,.0f} ({m.spread}) | "
          f"{m.cpu_rate:,.0f} | {m.cpu_ratio:.2f} |")
    w("")
    rss = pred["rss"]
    w(f"### Prediction (SIGHAN 2005 PKU test input: {pred['lines']:,} lines, "
      f"{pred['chars']:,} chars; median of {plan.predict_reps} repeats, 1 thread)")
    w("")
    for label, desc in pred["models"].items():
        w(f"- **{label}** model: {desc}.")
    w("")
    w("Backends: **eager fp32** = the checkpoint in torch; **eager bf16** = the same with "
      "`Tagger.load(path, bf16=True)` (`tagger predict --bf16`: the network under bfloat16 "
      "autocast, decoding in float32); **onnx fp32** / **onnx int8** = "
      "`tagger export --format onnx [--quantize]` run by onnxruntime (int8: dynamic "
      "quantisation of the LSTM and linear weights); decoding is the same Python code for all. "
      "`load` = `Tagger.load` of that file (median of 3; checkpoints re-saved in the current "
      "format). "
      f"jieba 0.42 `initialize()` (dictionary from its cache file): "
      f"{pred['jieba_load'] * 1000:.0f} ms. Peak RSS: high-water mark (`VmHWM`) of a fresh "
      "process that imports, loads and segments the whole input once (importing torch + "
      f"bmes_tagger alone: {rss['baseline']:,.0f} MiB). F1 against `pku_test_gold.utf8` with "
      "`bmes_tagger.metrics.cws_scores` (counted as the SIGHAN scorer does); OOV recall "
      "against the official PKU training word list. `vs jieba` compares per-CPU-s rates.")
    w("")
    w("| model | backend | chars/s | per CPU-s | vs jieba | cpu/wall | F1 | OOV recall | "
      "load ms | file MiB | peak RSS MiB |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    jieba_rate = pm["jieba"].cpu_rate
    for name, m in pm.items():
        if name == "jieba":
            model, backend, load, size = "jieba `lcut` (HMM on)", "-", "", ""
        else:
            model, backend = name.split(" ", 1)
            load = f"{statistics.median(pred['load'][name]) * 1000:,.0f}"
            size = f"{pred['bytes'][name] / 2**20:.1f}"
        s = sc[name]
        ref = sc.get(f"{model} eager fp32")
        f1 = f"{s.f1:.4f}" + (f" ({s.f1 - ref.f1:+.4f})" if ref is not None
                              and backend != "eager fp32" else "")
        oov = "" if s.oov_recall is None else f"{s.oov_recall:.4f}"
        mem = f"{rss[name]:,.0f}" if name in rss else ""
        w(f"| {model} | {backend} | {m.rate:,.0f} | {m.cpu_rate:,.0f} | "
          f"{m.cpu_rate / jieba_rate:.2f}x | {m.cpu_ratio:.2f} | {f1} | {oov} | {load} | "
          f"{size} | {mem} |")
    w("")
    w("### Where the predict time goes (1 thread, the whole input; process CPU time per phase "
      "of `Tagger.segment`)")
    w("")
    bd = pred["breakdown"]
    keys = list(bd)
    w("| phase | " + " | ".join(keys) + " |")
    w("|---|" + "---:|" * len(keys))
    totals = {k: sum(v.values()) for k, v in bd.items()}
    for phase in next(iter(bd.values())):
        w(f"| {phase} | " + " | ".join(f"{bd[k][phase] / totals[k]:.0%}" for k in keys) + " |")
    w("| **chars/s over these phases** | " + " | ".join(
        f"{pred['chars'] / totals[k]:,.0f}" for k in keys) + " |")
    return "\n".join(out) + "\n"


def section_name(cpu: str) -> str:
    """RESULTS.md section of a run on ``cpu``: ``speed-`` and the CPU model as a slug."""
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)", "", cpu.lower())).strip("-")
    return f"speed-{slug or 'unknown'}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the tables, update RESULTS.md (full mode)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", default=os.environ.get(
        "BMES_CORPORA", str(REPO.parent / "shared" / "corpora")),
        help="folder of the public corpora (default $BMES_CORPORA or ../shared/corpora)")
    parser.add_argument("--quick", action="store_true", help="smoke run (~2 min), writes nothing")
    parser.add_argument("--model", help="CWS checkpoint for the predict benchmark (default "
                        "runs/accuracy/pku-seed1/best.pt or runs/pku/best.pt if present, else a "
                        "quick model trained here)")
    parser.add_argument("--small-model", help="small CWS checkpoint (default runs/accuracy/"
                        "pku_small-seed1/best.pt or runs/pku_small/best.pt if present)")
    parser.add_argument("--tiny-model", help="tiny CWS checkpoint (default runs/accuracy/"
                        "pku_tiny-seed1/best.pt or runs/pku_tiny/best.pt if present)")
    parser.add_argument("--train-quick-model", action="store_true",
                        help="train the quick CWS model even if runs/pku/best.pt exists")
    parser.add_argument("--output", help="results file to update (default benchmarks/"
                        "RESULTS.md; --quick writes only when this is given)")
    parser.add_argument("--peers", default=str(REPO.parent / "shared" / "peers"),
                        help="folder holding NCRFpp/ and ncrfpp-resume.config.tmpl (default "
                        "../shared/peers); without it the NCRF++ rows say why they are missing")
    parser.add_argument("--rss-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_worker:
        rss_worker(args)
        return 0
    corpora = Path(args.corpora)
    if not (corpora / "resume_ner").is_dir():
        parser.error(f"--corpora {corpora}: no resume_ner folder there")
    try:
        import jieba  # noqa: F401
    except ImportError:
        parser.error("the comparison needs jieba: pip install jieba (or pip install -e '.[bench]')")
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    info = machine()
    info["date"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    log(f"{info['cpu']}, {info['cores']} cores, load {info['load'][0]:.1f}, torch "
        f"{info['torch']}")
    side = bench_ncrfpp(corpora, Path(args.peers), plan, log)
    train = bench_training(corpora, plan, log)
    train["pku"] = bench_training_pku(corpora, plan, log)
    pred = bench_predict(args, corpora, plan, log)
    after = {"load": os.getloadavg()}
    torch.set_num_threads(info["default_threads"])
    section = render(info, train, pred, side, plan, args.quick, time.perf_counter() - started,
                     after)
    print(section)
    if args.output or not args.quick:
        path = Path(args.output) if args.output else REPO / "benchmarks" / "RESULTS.md"
        write_section(path, section_name(info["cpu"]), section)
        log(f"wrote the {section_name(info['cpu'])} section of {path}")
    else:
        log("quick run: benchmarks/RESULTS.md left unchanged (give --output FILE to write one)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
