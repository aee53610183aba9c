"""The training loop: read data, build vocabularies and model, train, evaluate, checkpoint.

Read it top to bottom in :func:`train`. A run directory holds ``best.pt`` (best dev F1),
``last.pt`` (everything needed to resume), ``config.yaml`` (resolved), ``metrics.jsonl`` (one
line per evaluation) and ``train.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .atomic import remove_stale_temporaries
from .batching import (
    bucketed_batches,
    count_bigrams,
    encode_for_model,
    split_long_sentences,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, config_from_dict, write_config
from .corpus import Sentence, read_corpus, read_word_list
from .errors import BmesTaggerError, ConfigError
from .evaluate import evaluate
from .features import load_vectors
from .model import BiLSTMTagger
from .predict import Tagger, build_model
from .tags import split_tag, tag_inventory, tags_to_words
from .vocab import Vocab, normalize_width

RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl", "train.log", "config.yaml")


class RunDirError(BmesTaggerError):
    """The run directory is locked by another run, or holds a run that must not be overwritten."""


@dataclass
class TrainResult:
    """What a finished (or interrupted) run achieved."""

    run_dir: Path
    best_scores: dict[str, Any]
    best_epoch: int
    epochs_run: int
    steps: int
    stopped_early: bool = False
    interrupted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def train(
    config: Config,
    output_dir: str | Path | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a tagger as ``config`` says and write the run directory.

    Args:
        config: resolved config (see :func:`bmes_tagger.config.load_config`).
        output_dir: run directory; default ``config.output.dir``.
        resume: continue from ``last.pt`` in the run directory (same final result as an
            uninterrupted run with the same seed on CPU).
        force: overwrite a run directory that already holds a run.
        progress: show a tqdm bar on stderr.
        log: callback for log lines (they also go to ``train.log``).

    Returns:
        The best dev scores and where they were reached.

    Raises:
        BmesTaggerError: bad data, bad config, a locked or already used run directory.
    """
    run_dir = Path(output_dir or config.output.dir or "runs/default")
    ctx = DistContext.from_env()
    finished = False
    try:
        if not ctx.is_main:
            # Rank 0 owns the run directory; the others wait until it is ready, then read it.
            if not ctx.broadcast_flag(False):
                raise RunDirError(f"{run_dir}: rank 0 could not prepare the run directory")
            state = load_checkpoint(run_dir / "last.pt") if resume else None
            if state is not None:
                config = _resumed_config(config, state["config"], run_dir)
            result = _train(config, run_dir, state, False, None, ctx)
            finished = True
            return result
        run_dir.mkdir(parents=True, exist_ok=True)
        with RunLock(run_dir):
            try:
                state = _prepare_run_dir(run_dir, config, resume=resume, force=force)
            except BaseException:
                ctx.broadcast_flag(False)
                raise
            ctx.broadcast_flag(True)
            if state is not None:
                config = _resumed_config(config, state["config"], run_dir)
            result = _train(config, run_dir, state, progress, log, ctx)
            finished = True
            return result
    finally:
        ctx.close(finished)


def _train(
    config: Config, run_dir: Path, state: dict[str, Any] | None, progress: bool,
    log: Callable[[str], None] | None, ctx: DistContext,
) -> TrainResult:
    tcfg, dcfg = config.train, config.data
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    logger = _Logger(run_dir / "train.log" if ctx.is_main else None, log)
    random.seed(tcfg.seed)
    torch.manual_seed(tcfg.seed)

    # --- data --------------------------------------------------------------------------------
    train_sents, dev_sents = load_training_data(config)
    bigram_vocab: Vocab | None = None
    if state is None:
        vocab, tags = build_vocabularies(train_sents, config)
        # A label seen only in dev (a rare POS tag, say) still needs tag ids; characters and
        # everything the model learns come from train alone.
        tags = build_vocabularies(train_sents + dev_sents, config)[1]
        train_words = sorted(_word_list(train_sents, config))
        if config.model.bigram_dim > 0:
            counts = count_bigrams([s.chars for s in train_sents], dcfg.normalize_width)
            bigram_vocab = Vocab.build(counts, dcfg.min_bigram_freq)
    else:
        vocab, tags, train_words = Vocab(state["chars"]), list(state["tags"]), state["train_words"]
        bigram_vocab = Vocab(state["bigrams"]) if state.get("bigrams") else None
    tag_index = {t: i for i, t in enumerate(tags)}
    by_token = dcfg.format == "conll"  # one token per line, so a tag's line is computable
    _check_tags_known(dev_sents, tag_index, dcfg.dev or dcfg.train or "dev", by_token)
    _check_tags_known(train_sents, tag_index, dcfg.train or "train", by_token)
    pieces = split_long_sentences(train_sents, dcfg.max_len)
    encoded = encode_for_model([s.chars for s in pieces], config, vocab, bigram_vocab, tag_index,
                               [s.tags or [] for s in pieces])
    logger(f"train: {len(train_sents)} sentences ({int(encoded.lengths.sum())} chars), "
           f"dev: {len(dev_sents)} sentences; {len(vocab)} characters, {len(tags)} tags"
           + (f", {len(bigram_vocab)} bigrams" if bigram_vocab is not None else ""))

    # --- model and optimiser -----------------------------------------------------------------
    model = build_model(config, len(vocab), tags, len(bigram_vocab) if bigram_vocab else 0)
    if state is None:
        for line in init_pretrained(model, config, vocab, bigram_vocab):
            logger(line)
    optimizer = make_optimizer(model, config)
    batches_per_epoch = len(bucketed_batches(encoded.lengths, tcfg.batch_size,
                                             _epoch_generator(tcfg.seed, 0)))
    scheduler = make_scheduler(optimizer, config, batches_per_epoch * tcfg.epochs)
    ema = WeightAverage(model, tcfg.ema_decay) if tcfg.ema_decay > 0 else None
    loop = _LoopState()
    if state is not None:
        model.load_state_dict(state["model"])
        training = state["training"]
        optimizer.load_state_dict(training["optimizer"])
        if scheduler is not None and training.get("scheduler"):
            scheduler.load_state_dict(training["scheduler"])
        if ema is not None and training.get("ema"):
            ema.load_state_dict(training["ema"])
        loop = _LoopState(**training["loop"])
        torch.set_rng_state(training["torch_rng"])
        random.setstate(_to_random_state(training["python_rng"]))
        if ctx.is_main:
            _truncate_metrics(run_dir / "metrics.jsonl", loop.step)
        logger(f"resumed from {run_dir / 'last.pt'} at epoch {loop.epoch + 1}, step {loop.step}")
    elif ctx.is_main:
        write_config(config, run_dir / "config.yaml")
    ctx.broadcast_parameters(model)
    if ctx.enabled:
        logger(f"data parallel: {ctx.world} processes, rank 0 evaluates and writes")
    n_params = sum(p.numel() for p in model.parameters())
    logger(f"model: {config.model.cell} x{config.model.num_layers} "
           f"{'bi' if config.model.bidirectional else 'uni'}directional, "
           f"head {config.model.head}, {n_params:,} parameters")
    tagger = Tagger(model, vocab, tags, config, frozenset(train_words), bigram_vocab=bigram_vocab)

    def checkpoint(path: Path, with_training: bool, weights: dict[str, Any] | None = None
                   ) -> None:
        payload = {
            "config": config.to_dict(), "chars": vocab.tokens, "tags": tags,
            "bigrams": bigram_vocab.tokens if bigram_vocab is not None else [],
            "train_words": train_words, "model": weights or model.state_dict(),
            "scores": {"best_f1": loop.best_f1, "best_epoch": loop.best_epoch,
                       "best_step": loop.best_step, "dev": loop.best_scores},
        }
        if with_training:
            payload["training"] = {
                "optimizer": optimizer.state_dict(), "loop": loop.as_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "ema": ema.state_dict() if ema is not None else {},
                "torch_rng": torch.get_rng_state(), "python_rng": _from_random_state(),
            }
        save_checkpoint(payload, path)

    def run_evaluation(train_loss: float, chars_per_s: float) -> bool:
        """Evaluate on dev (rank 0), log, save best/last; True when patience has run out."""
        if not ctx.is_main:
            f1 = ctx.broadcast_value(0.0)
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(f1)
            return ctx.broadcast_flag(False)
        stop = _evaluate_and_save(train_loss, chars_per_s)
        return ctx.broadcast_flag(stop)

    def _evaluate_and_save(train_loss: float, chars_per_s: float) -> bool:
        # With EMA, the averaged weights are the ones evaluated and shipped in best.pt.
        with ema.swapped_in(model) if ema is not None else contextlib.nullcontext():
            scores = evaluate(tagger, dev_sents)
            shipped = {k: v.clone() for k, v in model.state_dict().items()}
        model.train()
        ctx.broadcast_value(scores.f1)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(scores.f1)
        # Mid-epoch evaluations belong to the epoch in progress, end-of-epoch ones to the last.
        epoch = loop.epoch + 1 if loop.batch_in_epoch else loop.epoch
        improved = scores.f1 > loop.best_f1
        if improved:
            loop.best_f1, loop.best_epoch, loop.best_step = scores.f1, epoch, loop.step
            loop.best_scores = scores.to_dict()
            loop.bad_evals = 0
        else:
            loop.bad_evals += 1
        record = {"epoch": epoch, "step": loop.step, "train_loss": round(train_loss, 6),
                  "chars_per_s": round(chars_per_s, 1), "dev": scores.to_dict(), "best": improved}
        with (run_dir / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        history.append(record)
        logger(f"epoch {epoch} step {loop.step}: loss {train_loss:.4f}  dev "
               f"P {scores.precision:.4f} R {scores.recall:.4f} F1 {scores.f1:.4f}"
               f"{'  (best)' if improved else ''}  {chars_per_s:,.0f} chars/s")
        if improved:
            checkpoint(run_dir / "best.pt", with_training=False, weights=shipped)
        checkpoint(run_dir / "last.pt", with_training=True)
        return tcfg.patience > 0 and loop.bad_evals >= tcfg.patience

    # --- loop ----------------------------------------------------------------------------------
    history: list[dict[str, Any]] = []
    stopped_early = interrupted = False
    model.train()
    with _StopFlag() as stop:
        while loop.epoch < tcfg.epochs and not stopped_early:
            order = ctx.my_share(bucketed_batches(encoded.lengths, tcfg.batch_size,
                                                  _epoch_generator(tcfg.seed, loop.epoch)))
            bar = tqdm(total=len(order), initial=loop.batch_in_epoch, disable=not progress,
                       desc=f"epoch {loop.epoch + 1}/{tcfg.epochs}", unit="batch",
                       leave=False, dynamic_ncols=True,
                       # a log file (not a terminal) gets an update every 30 s, not a flood
                       mininterval=0.1 if sys.stderr.isatty() else 30.0)
            tokens_seen, started = 0, time.perf_counter()
            for indices in order[loop.batch_in_epoch:]:
                batch = encoded.batch(indices)
                assert batch.tags is not None
                loss = model.loss(batch.chars, batch.lengths, batch.tags, batch.mask,
                                  batch.bigrams, batch.classes)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                ctx.average_gradients(model)
                if tcfg.clip_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.clip_norm)
                optimizer.step()
                if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                    scheduler.step()
                if ema is not None:
                    ema.update(model)
                loop.step += 1
                loop.batch_in_epoch += 1
                n = batch.num_tokens
                # kept in the loop state so a run resumed mid-epoch logs the same mean loss
                loop.loss_sum += loss.item() * n
                loop.loss_tokens += n
                tokens_seen += n
                speed = tokens_seen / max(time.perf_counter() - started, 1e-9)
                bar.update()
                bar.set_postfix(loss=f"{loop.mean_loss:.4f}", chars_s=f"{speed:,.0f}",
                                refresh=False)
                if tcfg.eval_every and loop.step % tcfg.eval_every == 0:
                    stopped_early = run_evaluation(loop.mean_loss, speed)
                if stopped_early or ctx.any(stop.requested):
                    stop.requested = stop.requested or not stopped_early
                    break
            bar.close()
            if stop.requested:
                break
            if not stopped_early:
                loop.epoch += 1
                loop.batch_in_epoch = 0
                epoch_loss = loop.mean_loss
                loop.loss_sum, loop.loss_tokens = 0.0, 0
                if not tcfg.eval_every or (loop.epoch == tcfg.epochs
                                           and loop.step % tcfg.eval_every):
                    speed = tokens_seen / max(time.perf_counter() - started, 1e-9)
                    stopped_early = run_evaluation(epoch_loss, speed)
        if stop.requested:
            interrupted = True
            if ctx.is_main:
                checkpoint(run_dir / "last.pt", with_training=True)
            logger(f"interrupted at epoch {loop.epoch + 1}, step {loop.step}; saved "
                   f"{run_dir / 'last.pt'}. Resume with: tagger train CONFIG --output {run_dir} "
                   "--resume")
    if stopped_early:
        logger(f"early stop: no dev improvement in {tcfg.patience} evaluations")
    if not interrupted:
        logger(f"best dev F1 {loop.best_f1:.4f} at epoch {loop.best_epoch}; "
               f"saved {run_dir / 'best.pt'}")
    return TrainResult(run_dir=run_dir, best_scores=loop.best_scores, best_epoch=loop.best_epoch,
                       epochs_run=loop.epoch, steps=loop.step, stopped_early=stopped_early,
                       interrupted=interrupted, history=history)


# --- data preparation --------------------------------------------------------------------------


def load_training_data(config: Config) -> tuple[list[Sentence], list[Sentence]]:
    """Read train and dev; without a dev file, hold out ``data.dev_fraction`` of train."""
    d = config.data
    if d.train is None:
        raise ConfigError("data.train: required for training (set it in the config or with "
                          "--set data.train=PATH)")
    train_sents = read_corpus(d.train, d.format, d.task, d.scheme, d.repair_gold)
    if d.dev is not None:
        return train_sents, read_corpus(d.dev, d.format, d.task, d.scheme, d.repair_gold)
    if d.dev_fraction <= 0 or len(train_sents) < 2:
        raise ConfigError("data.dev: no dev file and data.dev_fraction is 0 (or train has one "
                          "sentence); model selection needs dev data")
    generator = torch.Generator().manual_seed(config.train.seed)
    perm = torch.randperm(len(train_sents), generator=generator).tolist()
    n_dev = max(1, round(len(train_sents) * d.dev_fraction))
    dev_ids = set(perm[:n_dev])
    return ([s for i, s in enumerate(train_sents) if i not in dev_ids],
            [s for i, s in enumerate(train_sents) if i in dev_ids])


def build_vocabularies(sentences: Sequence[Sentence], config: Config) -> tuple[Vocab, list[str]]:
    """Character vocabulary (normalised if configured) and the task's tag inventory."""
    normalize = config.data.normalize_width
    counts: Counter[str] = Counter()
    labels: set[str] = set()
    for s in sentences:
        counts.update(normalize_width(c) for c in s.chars) if normalize else counts.update(s.chars)
        if config.data.task in ("ner", "pos"):
            labels.update(split_tag(t)[1] for t in s.tags or [] if t != "O")
    return Vocab.build(counts, config.data.min_char_freq), tag_inventory(config.data.task, labels)


def make_optimizer(model: BiLSTMTagger, config: Config) -> torch.optim.Optimizer:
    """The optimizer the config names."""
    t = config.train
    # foreach: one multi-tensor update instead of a Python loop over parameters (faster on CPU)
    params = [p for p in model.parameters() if p.requires_grad]
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, foreach=True)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay,
                           foreach=True)


def init_pretrained(
    model: BiLSTMTagger, config: Config, vocab: Vocab, bigram_vocab: Vocab | None
) -> list[str]:
    """Copy pretrained vectors into the embeddings; returns log lines with coverage."""
    lines = []
    m = config.model
    targets = [(m.char_vectors, model.embedding, vocab, m.embedding_dim, "character")]
    if bigram_vocab is not None and model.bigram_embedding is not None:
        targets.append((m.bigram_vectors, model.bigram_embedding, bigram_vocab, m.bigram_dim,
                        "bigram"))
    for path, embedding, table, dim, name in targets:
        if path is None:
            continue
        vectors, coverage = load_vectors(path, table, dim)
        found = ~torch.isnan(vectors).any(dim=1)
        with torch.no_grad():
            embedding.weight[found] = vectors[found]
        if m.freeze_vectors:
            embedding.weight.requires_grad_(False)
        lines.append(f"{name} vectors: {path} covers {coverage:.1%} of the vocabulary"
                     f"{' (frozen)' if m.freeze_vectors else ''}")
    return lines


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: Config, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """The learning-rate schedule the config names (None for a constant rate)."""
    t = config.train
    if t.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5,
                                                          patience=1)
    if t.lr_schedule == "linear":
        warmup = t.warmup_steps

        def factor(step: int) -> float:
            if warmup and step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return None


class WeightAverage:
    """Exponential moving average of a model's floating-point state (parameters and buffers).

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` so early averages are not
    dominated by the random initialisation.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()
                       if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold the model's current weights into the average."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)

    @contextlib.contextmanager
    def swapped_in(self, model: torch.nn.Module) -> Iterator[None]:
        """Temporarily load the averaged weights into ``model``."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict({**backup, **self.shadow})
        try:
            yield
        finally:
            model.load_state_dict(backup)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}


def _word_list(sentences: Sequence[Sentence], config: Config) -> set[str]:
    if config.data.task != "cws":
        return set()
    if config.data.train_words is not None:
        return read_word_list(config.data.train_words)
    return {w for s in sentences for w in tags_to_words(s.chars, s.tags or [])}


def _check_tags_known(
    sentences: Sequence[Sentence], tag_index: dict[str, int], source: str, by_token: bool
) -> None:
    for s in sentences:
        for k, t in enumerate(s.tags or []):
            if t not in tag_index:
                line = s.line + k if by_token else s.line
                raise BmesTaggerError(f"{source}:{line}: tag {t!r} is not in the model's "
                                      "tag set (the training data has no such entity type)")


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # One generator per epoch, so a resumed run rebuilds the same batch order.
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


# --- run directory -----------------------------------------------------------------------------


def _prepare_run_dir(
    run_dir: Path, config: Config, *, resume: bool, force: bool
) -> dict[str, Any] | None:
    """Check the run directory; return the ``last.pt`` payload when resuming.

    Called with the run lock held, so half-written checkpoints left by a killed run (which
    never replaced the complete file under its name) can be swept away safely.
    """
    for name in RUN_FILES:
        remove_stale_temporaries(run_dir / name)
    existing = [name for name in RUN_FILES if (run_dir / name).exists()]
    if resume:
        last = run_dir / "last.pt"
        if not last.exists():
            raise RunDirError(f"{run_dir}: nothing to resume (no last.pt); start without "
                              "--resume")
        payload = load_checkpoint(last)
        if "training" not in payload:
            raise RunDirError(f"{last}: has no training state to resume from")
        return payload
    if existing and not force:
        raise RunDirError(f"{run_dir}: already holds a run ({', '.join(existing)}); use --resume "
                          "to continue it, --force to overwrite it, or --output DIR")
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    return None


def _resumed_config(given: Config, stored: dict[str, Any], run_dir: Path) -> Config:
    """The stored config, with the given ``train`` section (so epochs can be extended)."""
    stored_cfg = config_from_dict(stored, source=f"{run_dir / 'last.pt'} (stored config)")
    for section in ("data", "model"):
        if getattr(given, section) != getattr(stored_cfg, section):
            raise ConfigError(f"--resume: the {section} section differs from the run being "
                              f"resumed in {run_dir}; resume with the same config")
    return stored_cfg.replace(train=given.train)


class RunLock:
    """An exclusive lock on a run directory: a ``.lock`` file holding the owner's PID.

    A lock left by a dead process is detected and taken over.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"

    def __enter__(self) -> RunLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = _read_pid(self.path)
                if pid is not None and pid != os.getpid() and _alive(pid):
                    raise RunDirError(f"{self.path.parent}: another tagger train (PID {pid}) "
                                      f"is using this run directory") from None
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise RunDirError(f"{self.path}: could not take the run directory lock")

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop evaluations logged after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


# --- small helpers -----------------------------------------------------------------------------


@dataclass
class _LoopState:
    epoch: int = 0            # epochs completed
    batch_in_epoch: int = 0   # batches completed in the current epoch
    step: int = 0             # optimizer steps overall
    best_f1: float = -1.0
    best_epoch: int = 0
    best_step: int = 0
    bad_evals: int = 0
    best_scores: dict[str, Any] = field(default_factory=dict)
    loss_sum: float = 0.0     # training loss summed over the characters of the current epoch
    loss_tokens: int = 0

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.loss_tokens, 1)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Logger:
    def __init__(self, path: Path | None, sink: Callable[[str], None] | None) -> None:
        self.path, self.sink = path, sink

    def __call__(self, message: str) -> None:
        if self.path is None:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        if self.sink is not None:
            self.sink(message)


class _StopFlag(contextlib.AbstractContextManager["_StopFlag"]):
    """First Ctrl-C asks the loop to stop after the current batch; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopFlag:
        with contextlib.suppress(ValueError):  # not in the main thread: leave SIGINT alone
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _from_random_state() -> list[Any]:
    # Python's random state is a nested tuple; checkpoints hold lists (weights_only-safe).
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _to_random_state(state: Sequence[Any]) -> tuple[Any, ...]:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


class DistContext:
    """Data-parallel training under ``torchrun`` (one process per core or GPU).

    Every rank sees the same batch order and takes every ``world``-th batch; gradients are
    averaged across ranks after each backward pass, so all ranks keep identical weights. Rank 0
    alone evaluates, logs and writes files, and broadcasts its decisions (early stop, dev F1).
    Without ``WORLD_SIZE`` > 1 every method is a no-op.
    """

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.rank, self.world = rank, world
        self.enabled = world > 1
        self._owns_group = False

    @classmethod
    def from_env(cls) -> DistContext:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        ctx = cls(int(os.environ.get("RANK", "0")), world)
        if not dist.is_initialized():
            # gloo: training runs on the CPU (nccl would refuse CPU tensors on a GPU machine)
            dist.init_process_group("gloo")
            ctx._owns_group = True
        return ctx

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def my_share(self, batches: list[list[int]]) -> list[list[int]]:
        """This rank's batches; every rank gets the same number (the remainder is dropped)."""
        if not self.enabled:
            return batches
        usable = len(batches) // self.world * self.world
        return batches[self.rank:usable:self.world]

    def average_gradients(self, model: torch.nn.Module) -> None:
        if not self.enabled:
            return
        import torch.distributed as dist

        for p in model.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(self.world)

    def broadcast_parameters(self, model: torch.nn.Module) -> None:
        if not self.enabled:
            return
        import torch.distributed as dist

        for v in model.state_dict().values():
            dist.broadcast(v, src=0)

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank."""
        return bool(self.broadcast_value(float(flag)))

    def broadcast_value(self, value: float) -> float:
        if not self.enabled:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(t, src=0)
        return float(t)

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any (e.g. Ctrl-C reached one process)."""
        if not self.enabled:
            return flag
        import torch.distributed as dist

        t = torch.tensor([float(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t)

    def close(self, finished: bool = False) -> None:
        """Leave the process group; after a finished run, only once every rank is done
        (tearing gloo down while a peer is still in its last collective aborted a process
        with 'terminate called without an active exception' on a loaded machine)."""
        if self._owns_group:
            import torch.distributed as dist

            if finished:
                dist.barrier()
            dist.destroy_process_group()
            self._owns_group = False
