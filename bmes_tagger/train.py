"""The training loop: read data, build vocabularies and model, train, evaluate, checkpoint.

Read it top to bottom in :func:`train`: :func:`setup` builds everything a run needs (or
restores it from ``last.pt``), :func:`train_step` is one optimisation step, and
:func:`evaluate_and_save` scores the dev set and writes ``best.pt`` / ``last.pt``. A run
directory (:mod:`bmes_tagger.rundir`) holds ``best.pt`` (best dev F1), ``last.pt``
(everything needed to resume), ``config.yaml`` (resolved), ``metrics.jsonl`` (one line per
evaluation) and ``train.log``.

With ``train.refit``, :func:`train` goes on, once the run has chosen ``best.pt``, to the refit
phase (:func:`_refit`): a fresh model of the same config and seed trained on train + dev
together for the best epoch's number of epochs, written as ``refit.pt``; its resume state is
``refit-last.pt`` (``last.pt`` keeps the finished run's).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from . import devices, features, rundir
from .batching import Batch, EncodedCorpus, bucketed_batches, span_bounds
from .checkpoint import Checkpoint, load_checkpoint, make_payload, save_checkpoint
from .config import Config, input_paths, write_config
from .corpus import Sentence, read_corpus, read_word_list
from .devices import resolve_device, rng_state, set_rng_state
from .errors import BmesTaggerError, ConfigError, RunDirError, TrainingError, import_failure
from .evaluate import evaluate, read_eval_data
from .model import BiLSTMTagger, TorchNetwork, allocating, build_model, set_rows
from .parallel import DataParallel
from .predict import Tagger
from .tags import split_tag, tag_inventory, tags_to_words
from .vocab import Vocab

__all__ = ["RefitResult", "RunDirError", "TrainResult", "evaluate_and_save", "setup",
           "shipped_weights", "train", "train_step"]


@dataclass
class RefitResult:
    """What the refit phase (``train.refit``) produced."""

    path: Path                  # RUN_DIR/refit.pt
    epochs: int                 # trained on train + dev: the best epoch of the run
    steps: int
    dev_scores: dict[str, Any]  # refit.pt on dev, which it was trained on: NOT held out
    test_scores: dict[str, Any] | None = None       # refit.pt on data.test (when set)
    best_test_scores: dict[str, Any] | None = None  # best.pt on data.test, to compare


@dataclass
class TrainResult:
    """What a finished (or interrupted) run achieved (``best_*``: the run's selection on
    dev; ``refit``: the refit phase's model, when ``train.refit`` is on and it finished)."""

    run_dir: Path
    best_scores: dict[str, Any]
    best_epoch: int
    epochs_run: int
    steps: int
    stopped_early: bool = False
    interrupted: bool = False
    signal: int | None = None  # the signal that interrupted the run (SIGINT, SIGTERM)
    is_main: bool = True       # False on the other ranks of a data-parallel run
    history: list[dict[str, Any]] = field(default_factory=list)
    refit: RefitResult | None = None
    state_file: Path | None = None  # what --resume continues from (last.pt, refit-last.pt)


def train(
    config: Config,
    output_dir: str | Path | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    config_file: str | Path | None = None,
) -> TrainResult:
    """Train a tagger as ``config`` says and write the run directory.

    Args:
        config: resolved config (see :func:`bmes_tagger.config.load_config`).
        output_dir: run directory; default ``config.output.dir``.
        resume: continue from ``last.pt`` in the run directory (same final result as an
            uninterrupted run with the same seed on CPU).
        force: overwrite a run directory that already holds a run.
        progress: show a tqdm bar on stderr (only when it is a terminal).
        log: callback for log lines (they also go to ``train.log``).
        config_file: the config file ``config`` was read from; never deleted or replaced.

    With ``train.refit``, the run then trains ``refit.pt`` on train + dev (see
    :func:`_refit`); an interrupted refit is resumed by ``resume`` like the run itself.

    Returns:
        The best dev scores and where they were reached (and the refit's result).

    Raises:
        BmesTaggerError: bad data, bad config, a locked or already used run directory, a
            training loss that is not finite.
    """
    run_dir = Path(output_dir or config.output.dir or "runs/default")
    device = resolve_device(config.train.device)
    par = DataParallel.from_env(device)
    device = par.device(device)
    finished = False
    try:
        inputs: dict[str, str | Path | None] = {"the config file": config_file,
                                                **input_paths(config)}
        with _run_directory(run_dir, par, resume, force, inputs) as state:
            run = setup(config, run_dir, state, par, device, log)
            result = _loop(run, progress)
            if run.config.train.refit and not result.interrupted:
                main_config, plan = run.config, _refit_plan(run)
                del run  # the run's model and optimizer are not needed any more
                result = _refit(main_config, plan, result, par, device, log, progress)
            elif not result.interrupted and par.is_main:
                _drop_stale_refit(run)
            finished = True
            return result
    finally:
        par.close(finished)


@contextlib.contextmanager
def _run_directory(run_dir: Path, par: DataParallel, resume: bool, force: bool,
                   inputs: dict[str, str | Path | None]) -> Iterator[Checkpoint | None]:
    """Rank 0 locks and prepares the run directory, then every rank reads ``last.pt`` when
    resuming (the other ranks wait for rank 0's word that the directory is ready)."""
    if not par.is_main:
        if not par.broadcast_flag(False):
            raise RunDirError(f"{run_dir}: rank 0 could not prepare the run directory")
        yield _resume_state(run_dir / "last.pt") if resume else None
        return
    with rundir.opened(run_dir):
        try:
            rundir.prepare(run_dir, resume=resume, force=force, inputs=inputs)
            state = _resume_state(run_dir / "last.pt") if resume else None
        except BaseException:
            par.broadcast_flag(False)
            raise
        par.broadcast_flag(True)
        yield state


def _resume_state(path: Path) -> Checkpoint:
    """``last.pt`` (or ``refit-last.pt``) read for resuming."""
    state = load_checkpoint(path)
    if state.training is None:
        raise RunDirError(f"{path}: has no training state to resume from")
    return state


# --- setup ---------------------------------------------------------------------------------------


@dataclass
class LoopState:
    """Where the loop is; saved in ``last.pt``."""

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


@dataclass(frozen=True)
class RefitPlan:
    """The refit phase of a run (``train.refit``): what it trains, and which state of the run
    it belongs to (stored as ``scores["refit"]`` in ``refit-last.pt`` and ``refit.pt``, so a
    resumed run knows whether they are its own)."""

    epochs: int           # the run's best epoch: the refit trains this many epochs
    schedule_epochs: int  # the run's train.epochs: the length the learning-rate schedule spans
    run_steps: int        # the run's optimizer steps when it finished

    def as_dict(self) -> dict[str, Any]:
        return {"data": "train + dev", **dataclasses.asdict(self)}

    def matches(self, scores: Any) -> bool:
        stored = scores.get("refit") if isinstance(scores, dict) else None
        return isinstance(stored, dict) and all(
            stored.get(k) == v for k, v in dataclasses.asdict(self).items())


@dataclass
class Run:
    """Everything a run needs, built by :func:`setup` (a refit phase's run has ``refit``)."""

    config: Config
    run_dir: Path
    par: DataParallel
    device: torch.device
    log: Callable[[str], None]
    encoded: EncodedCorpus
    dev: list[Sentence]
    vocabs: dict[str, Vocab]
    tags: list[str]
    train_words: list[str]
    model: BiLSTMTagger
    step_model: nn.Module   # what computes the loss: the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: WeightAverage | None
    average: EpochAverage | None   # train.average_last > 1
    frozen: FrozenRows | None
    loop: LoopState
    tagger: Tagger
    board: Any = None       # a tensorboard SummaryWriter (train.tensorboard, rank 0)
    started: float = field(default_factory=time.time)
    history: list[dict[str, Any]] = field(default_factory=list)
    refit: RefitPlan | None = None

    @property
    def last_path(self) -> Path:
        """Where this run keeps what resuming it needs."""
        return self.run_dir / (rundir.REFIT_LAST if self.refit is not None else "last.pt")


def setup(config: Config, run_dir: Path, state: Checkpoint | None, par: DataParallel,
          device: torch.device, log: Callable[[str], None] | None = None,
          refit: RefitPlan | None = None) -> Run:
    """Read the data and build vocabularies, model, optimizer, schedule and averages; with a
    resume ``state``, restore all of them (and the random generators) from it.

    With ``refit``, the run is a refit phase's: it trains on train + dev together (its
    vocabularies, tag set and training word list come from both), keeps the dev sentences
    only to report a figure that is not held out, spans the learning-rate schedule over
    ``refit.schedule_epochs``, and leaves ``config.yaml``, ``metrics.jsonl`` and TensorBoard
    to the run it follows."""
    state_path = run_dir / (rundir.REFIT_LAST if refit is not None else "last.pt")
    if state is not None:
        config = _resumed_config(config, state, run_dir)
    tcfg, dcfg = config.train, config.data
    if tcfg.threads:
        torch.set_num_threads(tcfg.threads)
    logger = _Logger(run_dir / "train.log" if par.is_main else None, log)
    # logged once setup has succeeded, so a run that cannot start leaves train.log as it was
    notes: list[str] = []
    random.seed(tcfg.seed)
    torch.manual_seed(tcfg.seed)

    train_sents, dev_sents = load_training_data(config)
    if refit is not None:  # dev is training data now (and selects nothing)
        train_sents = train_sents + dev_sents
    added: dict[str, int] = {}
    if state is None:
        vocabs = features.build_vocabs([s.chars for s in train_sents], config)
        if config.model.extend_vocab:
            vocabs, added = features.extend_vocabs(vocabs, config.model)
            notes += [f"{name}: {n:,} tokens of the pretrained vectors added to the vocabulary"
                      for name, n in added.items()]
        # A label seen only in dev (a rare POS tag, say) still needs tag ids; characters and
        # everything the model learns come from train alone (train + dev for a refit).
        tags = tag_set(train_sents + dev_sents, config)
        train_words = sorted(_word_list(train_sents, config))
    else:
        vocabs, tags, train_words = state.vocabs, state.tags, state.train_words
    tag_index = {t: i for i, t in enumerate(tags)}
    by_token = dcfg.format == "conll"  # one token per line, so a tag's line is computable
    _check_tags_known(dev_sents, tag_index, dcfg.dev or dcfg.train or "dev", by_token)
    _check_tags_known(train_sents, tag_index, dcfg.train or "train", by_token)
    # sentences longer than data.max_len are encoded whole, then cut at span boundaries
    encoded = EncodedCorpus.encode([s.chars for s in train_sents], vocabs, config,
                                   [s.tags or [] for s in train_sents], tag_index).pieces(
        [span_bounds(s.tags or [], dcfg.max_len) for s in train_sents])
    notes.append((f"refit on train + dev: {len(train_sents)} sentences "
                  f"({int(encoded.lengths.sum())} chars) for {tcfg.epochs} epochs, the run's "
                  "best epoch; " if refit is not None else
                  f"train: {len(train_sents)} sentences ({int(encoded.lengths.sum())} chars), "
                  f"dev: {len(dev_sents)} sentences; ") + f"{len(vocabs['chars'])} characters, "
           f"{len(tags)} tags" + (f", {len(vocabs['bigrams'])} bigrams"
                                  if "bigrams" in vocabs else ""))

    model = build_model(config, vocabs, tags)
    frozen_rows: dict[str, torch.Tensor] = {}
    if state is None:
        for name, rows, line in init_pretrained(model, config, vocabs):
            notes.append(line)
            if config.model.freeze_vectors:
                frozen_rows[name] = rows
    else:
        assert state.weights is not None and state.training is not None
        model.load_state_dict(state.weights)
        frozen_rows = dict(state.training.get("frozen") or {})
    with allocating(config, vocabs, tags, f"the network's weights on {device}"):
        model.to(device)  # a CUDA device may have less memory than the host
    frozen = FrozenRows(model, frozen_rows) if frozen_rows else None
    optimizer = make_optimizer(model, config)
    if frozen is not None:
        optimizer.register_step_post_hook(lambda *_: frozen.restore())
    batches_per_epoch = len(bucketed_batches(encoded.lengths, tcfg.batch_size,
                                             _epoch_generator(tcfg.seed, 0)))
    scheduler = make_scheduler(optimizer, config, batches_per_epoch * (
        refit.schedule_epochs if refit is not None else tcfg.epochs))
    ema = WeightAverage(model, tcfg.ema_decay) if tcfg.ema_decay > 0 else None
    average = EpochAverage(model, tcfg.average_last) if tcfg.average_last > 1 else None
    loop = LoopState()
    if state is not None:
        training = state.training
        assert training is not None
        try:
            optimizer.load_state_dict(training["optimizer"])
            _check_optimizer_state(optimizer)
            if scheduler is not None and training.get("scheduler"):
                scheduler.load_state_dict(training["scheduler"])
            if ema is not None and training.get("ema"):
                ema.load_state_dict(training["ema"])
            if average is not None and training.get("average"):
                average.load_state_dict(training["average"])
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
            raise RunDirError(f"{state_path}: its optimizer, schedule or average "
                              f"does not fit this model ({str(exc).splitlines()[0][:160]})"
                              ) from None
        loop = LoopState(**training["loop"])
        # positions no run reaches (a hand-edited or damaged file): one line, not a run that
        # skips an epoch or refits for 999 epochs
        if loop.batch_in_epoch > batches_per_epoch or loop.best_epoch > loop.epoch + 1 \
                or loop.best_step > loop.step:
            raise RunDirError(f"{state_path}: its loop position (epoch {loop.epoch}, batch "
                              f"{loop.batch_in_epoch} of {batches_per_epoch}, step {loop.step}, "
                              f"best epoch {loop.best_epoch}, best step {loop.best_step}) is "
                              "not one this run can reach")
        stored_k = state.config.train.average_last
        if average is not None and stored_k > 1 and loop.epoch > 0 and \
                not (training.get("average") or {}).get("snapshots"):
            raise RunDirError(f"{state_path}: the run averages its last {stored_k} epochs "
                              "(train.average_last) but the file holds no snapshots")
        try:
            set_rng_state(training)
            random.setstate(_to_random_state(training["python_rng"]))
        except (ValueError, TypeError, RuntimeError) as exc:
            raise RunDirError(f"{state_path}: its random generator state is not one "
                              f"this torch and Python can restore "
                              f"({str(exc).splitlines()[0][:160]})") from None
        if par.is_main and refit is None:
            rundir.truncate_records(run_dir / "metrics.jsonl", loop.step)
        notes.append(f"resumed from {state_path} at epoch {loop.epoch + 1}, step {loop.step}")
        changed = _train_changes(state.config, config)
        if changed:
            notes.append("--resume: " + ", ".join(changed) + " from here on")
            if par.is_main and refit is None:  # config.yaml says what the run trains with now
                write_config(config, run_dir / "config.yaml")
        if loop.epoch >= tcfg.epochs and refit is None:
            notes.append(f"--resume: the run has done {loop.epoch} of train.epochs "
                         f"{tcfg.epochs}: nothing more to train (raise train.epochs to go on)")
    elif par.is_main and refit is None:
        # the new run has started (data read, model built): only now may the old one go
        rundir.clear(run_dir)
        write_config(config, run_dir / "config.yaml")
    if average is not None:
        what = "refit.pt is" if refit is not None else "dev figures and best.pt are"
        notes.append(f"averaging: {what} the mean of the weights at the last "
                     f"{tcfg.average_last} epoch ends")
    step_model = par.wrap(model, device)
    if par.enabled:
        notes.append(f"data parallel: {par.world} processes, rank 0 evaluates and writes")
    n_params = sum(p.numel() for p in model.parameters())
    n_fixed = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    notes.append(f"model: {config.model.cell} x{config.model.num_layers} "
           f"{'bi' if config.model.bidirectional else 'uni'}directional, "
           f"head {config.model.head}, {n_params:,} parameters"
           f"{f' ({n_fixed:,} of them fixed)' if n_fixed else ''}, on {device}")
    tagger = Tagger(TorchNetwork(model, device), vocabs, tags, config, frozenset(train_words),
                    source=f"the model in training ({run_dir})")
    board = _tensorboard(run_dir, loop.step + 1 if state is not None else None) \
        if tcfg.tensorboard and par.is_main and refit is None else None
    for line in notes:
        logger(line)
    return Run(config=config, run_dir=run_dir, par=par, device=device, log=logger,
               encoded=encoded, dev=dev_sents, vocabs=vocabs, tags=tags,
               train_words=train_words, model=model, step_model=step_model,
               optimizer=optimizer, scheduler=scheduler, ema=ema, average=average,
               frozen=frozen, loop=loop, tagger=tagger, board=board, refit=refit)


def _tensorboard(run_dir: Path, purge_from: int | None) -> Any:
    """A SummaryWriter on RUN_DIR/tensorboard; a resumed run purges the events from step
    ``purge_from`` on (what the killed run logged after its last.pt), as metrics.jsonl is
    truncated."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise import_failure(exc, "train.tensorboard needs the tensorboard package: pip "
                             "install 'bmes_tagger[tensorboard]'") from None
    return SummaryWriter(str(run_dir / rundir.TENSORBOARD), purge_step=purge_from)


# --- the loop ------------------------------------------------------------------------------------


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch,
               clip_norm: float, bf16: bool = False) -> torch.Tensor:
    """One optimisation step on ``batch``: loss, backward, gradient-norm clipping (``0``: off),
    optimizer step. Returns the detached loss (a device tensor: reading it is the caller's
    choice, so a GPU step needs no host synchronisation).

    ``model`` is the module whose forward is the training loss (the model or its DDP wrapper).
    ``bf16``: the forward runs under bfloat16 autocast (``train.precision: bf16``); the weights,
    their gradients, the optimizer and the loss head stay float32.
    """
    assert batch.tags is not None
    with devices.autocast(batch.lengths.device, bf16):
        loss = model(batch.inputs, batch.lengths, batch.tags, batch.mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm, foreach=True)
    optimizer.step()
    return loss.detach()


def _loop(run: Run, progress: bool) -> TrainResult:
    tcfg = run.config.train
    loop, par = run.loop, run.par
    # a resumed run that had stopped early stays stopped (unless train.patience is raised)
    stopped_early = tcfg.patience > 0 and loop.bad_evals >= tcfg.patience
    progress = progress and sys.stderr.isatty()  # a log file gets log lines, not bars
    with StopSignals() as stop:
        while loop.epoch < tcfg.epochs and not stopped_early:
            order = par.my_share(bucketed_batches(run.encoded.lengths, tcfg.batch_size,
                                                  _epoch_generator(tcfg.seed, loop.epoch)))
            bar = tqdm(total=len(order), initial=loop.batch_in_epoch, disable=not progress,
                       desc=f"epoch {loop.epoch + 1}/{tcfg.epochs}", unit="batch",
                       leave=False, dynamic_ncols=True)
            tokens_seen, epoch_started = 0, time.perf_counter()
            # (,) float64 on the device: summed without reading it back every step
            loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
            for indices in order[loop.batch_in_epoch:]:
                batch = run.encoded.batch(indices).torch(run.device)
                loss = train_step(run.step_model, run.optimizer, batch, tcfg.clip_norm,
                                  tcfg.precision == "bf16")
                if isinstance(run.scheduler, torch.optim.lr_scheduler.LambdaLR):
                    run.scheduler.step()
                if run.ema is not None:
                    run.ema.update(run.model)
                n = batch.num_tokens
                loss_sum += loss.double() * n
                loop.step += 1
                loop.batch_in_epoch += 1
                loop.loss_tokens += n
                tokens_seen += n
                bar.update()
                due = tcfg.eval_every and loop.step % tcfg.eval_every == 0
                if due or (progress and loop.step % 20 == 0):
                    _fold(loop, loss_sum)
                    speed = tokens_seen / max(time.perf_counter() - epoch_started, 1e-9)
                    bar.set_postfix(loss=f"{loop.mean_loss:.4f}", chars_s=f"{speed:,.0f}",
                                    refresh=False)
                if due:
                    stopped_early = evaluate_and_save(run, loop.mean_loss, speed,
                                                      time.perf_counter() - epoch_started)
                if stopped_early or par.any(stop.requested):
                    stop.requested = stop.requested or not stopped_early
                    break
            _fold(loop, loss_sum)
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
                    seconds = time.perf_counter() - epoch_started
                    epoch_end = _refit_epoch_end if run.refit is not None else \
                        evaluate_and_save
                    stopped_early = epoch_end(run, epoch_loss,
                                              tokens_seen / max(seconds, 1e-9), seconds)
        if stop.requested:
            if par.is_main:
                _save(run, run.last_path, with_training=True)
            # the caller says how to resume (the CLI prints the command line)
            run.log.file_only(f"interrupted{' the refit' if run.refit else ''} at epoch "
                              f"{loop.epoch + 1}, step {loop.step}; saved {run.last_path}")
    if run.board is not None:
        run.board.close()
    if stopped_early:
        run.log(f"early stop: no dev improvement in {tcfg.patience} evaluations")
    if not stop.requested and par.is_main and run.refit is None:
        run.log.file_only(f"best dev F1 {loop.best_f1:.4f} at epoch {loop.best_epoch}; "
                          f"saved {run.run_dir / 'best.pt'}")
    return TrainResult(run_dir=run.run_dir, best_scores=loop.best_scores,
                       best_epoch=loop.best_epoch, epochs_run=loop.epoch, steps=loop.step,
                       stopped_early=stopped_early, interrupted=stop.requested,
                       signal=stop.signum, is_main=par.is_main, history=run.history,
                       state_file=run.last_path)


def _fold(loop: LoopState, loss_sum: torch.Tensor) -> None:
    """Move the device-side loss sum into the loop state (one host read)."""
    loop.loss_sum += float(loss_sum)
    loss_sum.zero_()


def evaluate_and_save(run: Run, train_loss: float, chars_per_s: float,
                      epoch_seconds: float) -> bool:
    """Evaluate on dev (rank 0), log, save best/last; True when patience has run out.

    The model is scored as it is shipped: in eval mode (see :func:`bmes_tagger.predict.
    inference`), with the averaged weights when EMA or ``train.average_last`` is on (see
    :func:`shipped_weights`), so the logged dev F1 is exactly
    what ``tagger eval`` of ``best.pt`` on the dev file reports.
    """
    loop, par, tcfg = run.loop, run.par, run.config.train
    _check_finite(loop, train_loss)
    plateau = isinstance(run.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if not par.is_main:
        f1 = par.broadcast_value(0.0)
        if plateau:
            run.scheduler.step(f1)
        return par.broadcast_flag(False)
    if run.average is not None:  # an epoch end: eval_every is 0 with average_last > 1
        run.average.add(run.model)
    with shipped_weights(run):
        scores = evaluate(run.tagger, run.dev)
        shipped = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    par.broadcast_value(scores.f1)
    lr = run.optimizer.param_groups[0]["lr"]
    if plateau:
        run.scheduler.step(scores.f1)
    # Mid-epoch evaluations belong to the epoch in progress, end-of-epoch ones to the last.
    epoch = loop.epoch + 1 if loop.batch_in_epoch else loop.epoch
    improved = scores.f1 > loop.best_f1
    if improved:
        loop.best_f1, loop.best_epoch, loop.best_step = scores.f1, epoch, loop.step
        loop.best_scores = scores.to_dict()
        loop.bad_evals = 0
        # before the record, which must not say best for a best.pt never written
        _save(run, run.run_dir / "best.pt", with_training=False, weights=shipped)
    else:
        loop.bad_evals += 1
    record = {"epoch": epoch, "step": loop.step, "train_loss": round(train_loss, 6),
              "chars_per_s": round(chars_per_s, 1), "lr": lr,
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "elapsed_s": round(time.time() - run.started, 3),
              "epoch_s": round(epoch_seconds, 3), "dev": scores.to_dict(), "best": improved}
    rundir.append_record(run.run_dir / "metrics.jsonl", record)
    run.history.append(record)
    if run.board is not None:
        for name, value in (("train/loss", train_loss), ("train/lr", lr),
                            ("dev/precision", scores.precision), ("dev/recall", scores.recall),
                            ("dev/f1", scores.f1)):
            run.board.add_scalar(name, value, loop.step)
        run.board.flush()
    run.log(f"epoch {epoch} step {loop.step}: loss {train_loss:.4f}  dev "
            f"P {scores.precision:.4f} R {scores.recall:.4f} F1 {scores.f1:.4f}"
            f"{'  (best)' if improved else ''}  {chars_per_s:,.0f} chars/s")
    _save(run, run.run_dir / "last.pt", with_training=True)
    return par.broadcast_flag(tcfg.patience > 0 and loop.bad_evals >= tcfg.patience)


def _check_finite(loop: LoopState, train_loss: float) -> None:
    if not math.isfinite(train_loss):
        raise TrainingError(f"training loss became {train_loss} by epoch {loop.epoch + 1} "
                            f"(step {loop.step}): lower train.lr, or check pretrained vectors "
                            "for NaN/inf values")


def shipped_weights(run: Run) -> contextlib.AbstractContextManager[Any]:
    """Temporarily load the weights a run ships (evaluates and saves) into ``run.model``: the
    exponential average with ``train.ema_decay``, the mean of the last epoch ends with
    ``train.average_last``, else the weights as they are. Training never sees them: the
    model's own weights are restored on leaving."""
    if run.ema is not None:
        return run.ema.swapped_in(run.model)
    if run.average is not None:
        return run.average.swapped_in(run.model)
    return contextlib.nullcontext()


def _save(run: Run, path: Path, with_training: bool,
          weights: dict[str, torch.Tensor] | None = None,
          scores: dict[str, Any] | None = None) -> None:
    loop = run.loop
    if weights is None:
        weights = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    training = None
    if with_training:
        training = {
            "optimizer": run.optimizer.state_dict(), "loop": loop.as_dict(),
            "scheduler": run.scheduler.state_dict() if run.scheduler is not None else {},
            "ema": run.ema.state_dict() if run.ema is not None else {},
            "average": run.average.state_dict() if run.average is not None else {},
            "python_rng": _from_random_state(), **rng_state(),
            "frozen": run.frozen.rows if run.frozen is not None else {},
        }
    if scores is None:
        scores = {"refit": run.refit.as_dict()} if run.refit is not None else {
            "best_f1": loop.best_f1, "best_epoch": loop.best_epoch,
            "best_step": loop.best_step, "dev": loop.best_scores}
    save_checkpoint(make_payload(run.config, run.vocabs, run.tags, run.train_words, weights,
                                 scores, training), path)


# --- the refit phase (train.refit) --------------------------------------------------------------


def _refit_plan(run: Run, best_epoch: int | None = None) -> RefitPlan:
    """What the refit of a finished run trains (its best epoch, as rank 0 knows it, unless
    ``best_epoch`` is given)."""
    if best_epoch is None:  # every rank: rank 0 alone knows the best epoch
        best_epoch = int(run.par.broadcast_value(float(run.loop.best_epoch)))
        if best_epoch < 1:
            raise TrainingError("train.refit: the run has no best epoch to refit for")
    return RefitPlan(epochs=best_epoch, schedule_epochs=run.config.train.epochs,
                     run_steps=run.loop.step)


def _trained_for(path: Path, plan: RefitPlan) -> Checkpoint | None:
    """``path`` (a refit.pt) when it is readable and was trained for ``plan``, else None."""
    try:
        trained = load_checkpoint(path)
    except BmesTaggerError:
        return None
    return trained if plan.matches(trained.scores) else None


def _refit(config: Config, plan: RefitPlan, result: TrainResult, par: DataParallel,
           device: torch.device, log: Callable[[str], None] | None,
           progress: bool) -> TrainResult:
    """Train ``refit.pt``: a fresh model, same config and seed, on train + dev together for
    ``plan.epochs`` epochs (nothing is selected on dev, nothing stops early; the
    learning-rate schedule spans the run's ``train.epochs``, so each refit epoch has the rate
    that epoch had in the run). The model is shipped as the run ships ``best.pt`` (EMA or
    ``average_last`` weights when on).

    Resuming: ``refit-last.pt`` (written at every refit epoch end, and on Ctrl-C/SIGTERM) is
    continued when it belongs to this state of the run (``plan``), else the refit starts
    again; a ``refit.pt`` of this state means the refit is done. Either way a resumed run
    ends with the ``refit.pt`` an uninterrupted one writes.
    """
    run_dir = result.run_dir
    path, last = run_dir / rundir.REFIT, run_dir / rundir.REFIT_LAST
    logger = _Logger(run_dir / "train.log" if par.is_main else None, log)
    cfg = config.replace(train=dataclasses.replace(
        config.train, epochs=plan.epochs, patience=0, eval_every=0, refit=False,
        tensorboard=False))
    where, state = (_refit_state(path, last, plan, logger) if par.is_main
                    else ("new", None))
    where = ("new", "resume", "done")[int(par.broadcast_value(
        float(("new", "resume", "done").index(where))))]
    if where == "resume" and state is None:
        state = _resume_state(last)  # the other ranks of a data-parallel run
    if where == "done":
        if not par.is_main:
            return result
        logger(f"refit: {path} is already trained for this run")
        assert state is not None
        stored = state.scores["refit"]
        return _refit_report(cfg, plan, path, int(stored.get("steps", 0)),
                             dict(stored.get("dev_not_held_out") or {}), result, device, logger,
                             kept=True)
    with StopSignals() as stop:  # a signal while the refit reads its data
        run = setup(cfg, run_dir, state, par, device, log, refit=plan)
        interrupted = par.any(stop.requested)
    if interrupted:
        return dataclasses.replace(result, interrupted=True, signal=stop.signum,
                                   state_file=last if last.exists() else result.state_file)
    done = _loop(run, progress)
    if done.interrupted:
        return dataclasses.replace(result, interrupted=True, signal=done.signal,
                                   state_file=last)
    if not par.is_main:
        return result
    # refit.pt is scored and saved as best.pt is (see evaluate_and_save)
    with shipped_weights(run):
        dev = evaluate(run.tagger, run.dev).to_dict()
        shipped = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    _save(run, path, with_training=False, weights=shipped,
          scores={"refit": {**plan.as_dict(), "steps": run.loop.step, "dev_not_held_out": dev}})
    last.unlink(missing_ok=True)  # refit.pt is complete: nothing left to resume
    return _refit_report(cfg, plan, path, run.loop.step, dev, result, device, logger)


def _drop_stale_refit(run: Run) -> None:
    """A run resumed without ``train.refit`` keeps the refit files of an earlier start only
    while they are still this run's: refit.pt exists only when it was trained for the run
    as it stands (a resume that trains on can move the best epoch)."""
    path, last = run.run_dir / rundir.REFIT, run.run_dir / rundir.REFIT_LAST
    if not (path.exists() or last.exists()):
        return
    if path.exists():
        if _trained_for(path, _refit_plan(run, run.loop.best_epoch)) is not None:
            last.unlink(missing_ok=True)
            return
        path.unlink()
        run.log(f"refit: removed {path}: it was trained for an earlier state of the run "
                "(add --set train.refit=true to train it again)")
    if last.exists():
        last.unlink()
        run.log(f"refit: removed {last}: train.refit is off")


def _refit_state(path: Path, last: Path, plan: RefitPlan, log: _Logger
                 ) -> tuple[str, Checkpoint | None]:
    """Where the refit of ``plan`` stands in the run directory: ``done`` (refit.pt, returned,
    is this plan's), ``resume`` (from refit-last.pt, returned) or ``new`` (whatever refit
    files there are belong to another state of the run, or cannot be read: removed)."""
    trained = _trained_for(path, plan) if path.exists() else None
    if trained is not None:
        last.unlink(missing_ok=True)  # left by a run stopped just after refit.pt
        return "done", trained
    if last.exists():
        try:
            state = _resume_state(last)
            if plan.matches(state.scores):
                return "resume", state
            why = "it belongs to another state of the run"
        except BmesTaggerError as exc:
            why = str(exc)
        log(f"refit: starting again, {last} cannot be resumed ({why[:300]})")
    for stale in (path, last):
        if stale.exists():
            stale.unlink()
            if stale == path:
                log(f"refit: removed {path}: it could not be read, or was trained for another "
                    "state of the run")
    return "new", None


def _refit_epoch_end(run: Run, train_loss: float, chars_per_s: float,
                     epoch_seconds: float) -> bool:
    """The end of a refit epoch: no dev evaluation (dev is training data now); rank 0 logs
    the loss, keeps the averaging snapshot and saves ``refit-last.pt``. Never stops early."""
    loop = run.loop
    _check_finite(loop, train_loss)
    if run.par.is_main:
        if run.average is not None:
            run.average.add(run.model)
        run.log(f"refit epoch {loop.epoch}/{run.config.train.epochs} step {loop.step}: loss "
                f"{train_loss:.4f}  {chars_per_s:,.0f} chars/s")
        _save(run, run.last_path, with_training=True)
    return False


def _refit_report(config: Config, plan: RefitPlan, path: Path, steps: int,
                  dev: dict[str, Any], result: TrainResult, device: torch.device,
                  log: _Logger, kept: bool = False) -> TrainResult:
    """Log what the refit gave (its dev F1 is not held out; test F1 of best.pt and refit.pt
    when the config has ``data.test``) and add it to the run's result (``kept``: refit.pt
    was already there, trained for this run)."""
    log(f"refit: {'kept' if kept else 'saved'} {path}: {plan.epochs} epochs on train + dev "
        f"({steps} steps); its dev "
        f"F1 {dev.get('f1', 0.0):.4f} is NOT held out (dev was training data)")
    test = best_test = None
    d = config.data
    if d.test is not None:
        scores = []
        for model in (result.run_dir / "best.pt", path):
            tagger = Tagger.load(model, device=str(device))
            scores.append(evaluate(tagger, read_eval_data(tagger, d.test, d.format, d.scheme,
                                                          d.repair_gold)).to_dict())
        best_test, test = scores
        log(f"test F1: best.pt {best_test['f1']:.4f}, refit.pt {test['f1']:.4f} ({d.test})")
    return dataclasses.replace(result, refit=RefitResult(
        path=path, epochs=plan.epochs, steps=steps, dev_scores=dev, test_scores=test,
        best_test_scores=best_test))


# --- data preparation ----------------------------------------------------------------------------


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


def tag_set(sentences: Sequence[Sentence], config: Config) -> list[str]:
    """The task's tag inventory for the labels ``sentences`` use."""
    labels: set[str] = set()
    if config.data.task in ("ner", "pos"):
        for s in sentences:
            labels.update(split_tag(t)[1] for t in s.tags or [] if t != "O")
    return tag_inventory(config.data.task, labels)


def make_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    """The optimizer the config names.

    Fused (one kernel per update for all parameters) on CPU and CUDA: the same update as the
    per-parameter loop, measurably faster per step at this project's sizes (benchmarks/RESULTS.md,
    "CPU options tried"); ``foreach`` elsewhere.
    """
    t = config.train
    params = [p for p in model.parameters() if p.requires_grad]
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
    kind = {"fused": True} if fused else {"foreach": True}
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, **kind)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, **kind)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay,
                           **kind)


def init_pretrained(model: BiLSTMTagger, config: Config, vocabs: dict[str, Vocab]
                    ) -> list[tuple[str, torch.Tensor, str]]:
    """Copy pretrained vectors into the embedding tables of the features that have them.

    Returns:
        ``(feature name, rows that got a vector (num_found,), log line)`` per table.
    """
    out = []
    for name, path in features.feature_vectors(config.model).items():
        table = model.embedding.tables[name]
        vectors, coverage = features.load_vectors(
            path, features.BY_NAME[name].vectors_vocab(vocabs[name]), table.embedding_dim)
        # (vocab, dim)
        values = torch.from_numpy(vectors)
        # load_vectors refuses non-finite values (file:line): NaN rows mean "no vector"
        found = ~torch.isnan(values).any(dim=1)
        rows = found.nonzero().squeeze(1)
        set_rows(table, rows, values[rows])
        # the trained rows that got a vector (a fixed tail is fixed anyway)
        rows = rows[rows < table.num_embeddings]
        out.append((name, rows, f"{name} vectors: {path} covers "
                    f"{coverage:.1%} of the vocabulary"
                    f"{' (those rows frozen)' if config.model.freeze_vectors else ''}"))
    return out


class FrozenRows:
    """Embedding rows kept fixed (pretrained vectors with ``model.freeze_vectors``): their
    gradient is zeroed, so clipping and the optimizer's statistics never see it, and their
    values are restored after every optimizer step (weight decay would move them otherwise).
    The table stays one parameter, so the optimizer's state has the same layout when resumed.
    """

    def __init__(self, model: BiLSTMTagger, rows: dict[str, torch.Tensor]) -> None:
        self.rows = {name: r.to(torch.long) for name, r in rows.items()}
        self.weights = {name: model.embedding.tables[name].weight for name in rows}
        self.values = {name: w.detach()[self.rows[name].to(w.device)].clone()
                       for name, w in self.weights.items()}
        for name, weight in self.weights.items():
            index = self.rows[name].to(weight.device)
            weight.register_hook(lambda grad, index=index: grad.index_fill(0, index, 0.0))

    @torch.no_grad()
    def restore(self) -> None:
        for name, weight in self.weights.items():
            weight.index_copy_(0, self.rows[name].to(weight.device), self.values[name])


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
        # parameters that take no gradient (a fixed embedding tail) never change: not averaged
        fixed = {k for k, p in model.named_parameters() if not p.requires_grad}
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()
                       if v.is_floating_point() and k not in fixed}

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
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()
                  if k in self.shadow}
        model.load_state_dict(self.shadow, strict=False)
        try:
            yield
        finally:
            model.load_state_dict(backup, strict=False)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("the averaged weights are for another model")
        device = next(iter(self.shadow.values())).device
        self.updates = int(state["updates"])
        self.shadow = {k: v.to(device).clone() for k, v in state["shadow"].items()}


class EpochAverage:
    """``train.average_last``: the element-wise mean of a model's floating-point state at the
    last ``size`` epoch ends (checkpoint averaging), fewer at the start.

    The snapshots are kept in host memory (``size`` copies of the state), oldest first; the
    mean is summed in float64 in that order, so it is the same number whenever it is computed
    from the same snapshots (a resumed run restores them from ``last.pt``). Parameters that
    take no gradient (a fixed embedding tail) are not averaged, as in :class:`WeightAverage`.
    """

    def __init__(self, model: torch.nn.Module, size: int) -> None:
        self.size = size
        fixed = {k for k, p in model.named_parameters() if not p.requires_grad}
        self.shapes = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()
                       if v.is_floating_point() and k not in fixed}
        self.snapshots: list[dict[str, torch.Tensor]] = []

    @torch.no_grad()
    def add(self, model: torch.nn.Module) -> None:
        """Keep the model's current weights as the newest snapshot (dropping the oldest
        beyond ``size``)."""
        state = model.state_dict()
        self.snapshots.append({k: state[k].detach().to("cpu", copy=True) for k in self.shapes})
        del self.snapshots[:-self.size]

    @torch.no_grad()
    def mean(self) -> dict[str, torch.Tensor]:
        """The element-wise mean of the snapshots (CPU tensors of the weights' dtype)."""
        if not self.snapshots:
            raise RuntimeError("no snapshot to average yet")
        out = {}
        for k, (_, dtype) in self.shapes.items():
            total = self.snapshots[0][k].to(torch.float64, copy=True)
            for snapshot in self.snapshots[1:]:
                total.add_(snapshot[k])
            out[k] = total.div_(len(self.snapshots)).to(dtype)
        return out

    @contextlib.contextmanager
    def swapped_in(self, model: torch.nn.Module) -> Iterator[None]:
        """Temporarily load the mean into ``model``."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()
                  if k in self.shapes}
        model.load_state_dict(self.mean(), strict=False)
        try:
            yield
        finally:
            model.load_state_dict(backup, strict=False)

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": [dict(s) for s in self.snapshots]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the snapshots of ``last.pt`` (the newest ``size`` of them, should the run
        be resumed with a smaller ``train.average_last``)."""
        snapshots = state.get("snapshots")
        if not isinstance(snapshots, list):
            raise ValueError("the averaged snapshots are not a list")
        for snapshot in snapshots:
            if not isinstance(snapshot, dict) or set(snapshot) != set(self.shapes):
                raise ValueError("the averaged snapshots are for another model")
            for k, (shape, dtype) in self.shapes.items():
                v = snapshot[k]
                if not isinstance(v, torch.Tensor) or tuple(v.shape) != shape \
                        or v.dtype != dtype or not bool(torch.isfinite(v).all()):
                    raise ValueError(f"the averaged snapshot of {k} does not fit the model")
        self.snapshots = [{k: v.clone() for k, v in s.items()} for s in snapshots[-self.size:]]


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


def _resumed_config(given: Config, state: Checkpoint, run_dir: Path) -> Config:
    """The stored config, with the given ``train`` section (so epochs can be extended), but
    never another seed: it fixes every epoch's batch order, so a resume with another seed
    would silently be another run."""
    stored = state.config
    for section in ("data", "model"):
        if getattr(given, section) != getattr(stored, section):
            raise ConfigError(f"--resume: the {section} section differs from the run being "
                              f"resumed in {run_dir}; resume with the same config")
    if given.train.seed != stored.train.seed:
        raise ConfigError(f"--resume: train.seed {given.train.seed} differs from the run being "
                          f"resumed in {run_dir} (seed {stored.train.seed}); resume with "
                          f"--set train.seed={stored.train.seed}")
    return stored.replace(train=given.train)


def _train_changes(stored: Config, resumed: Config) -> list[str]:
    """``train.KEY old -> new`` for every train setting a resume changes."""
    old, new = stored.to_dict()["train"], resumed.to_dict()["train"]
    return [f"train.{k} {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]


# --- small helpers -------------------------------------------------------------------------------


class _Logger:
    """Log lines to ``train.log`` (rank 0 only) and to the caller's sink."""

    def __init__(self, path: Path | None, sink: Callable[[str], None] | None) -> None:
        self.path, self.sink = path, sink

    def __call__(self, message: str) -> None:
        if self.file_only(message) and self.sink is not None:
            self.sink(message)

    def file_only(self, message: str) -> bool:
        """Write to ``train.log`` only; False on ranks that do not log."""
        if self.path is None:
            return False
        rundir.append_line(self.path, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        return True


class StopSignals(contextlib.AbstractContextManager["StopSignals"]):
    """The first Ctrl-C, SIGTERM or SIGHUP asks the loop to stop after the current batch
    (which then saves ``last.pt``); a second one aborts. Signals ignored when training
    starts stay ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum

    def __enter__(self) -> StopSignals:
        for signum in self.SIGNALS:
            # a signal the parent set to be ignored (nohup: SIGHUP; `cmd &` in a script:
            # SIGINT) stays ignored: that is what the user asked for
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue
            with contextlib.suppress(ValueError):  # not in the main thread: leave them alone
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


def _check_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """What ``load_state_dict`` takes on trust and the first step would trip over (a
    traceback mid-run): hyperparameters that are numbers, moment buffers shaped like their
    parameters."""
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for i, group in enumerate(optimizer.param_groups):
        for key in ("lr", "weight_decay", "eps", "momentum"):
            if not number(group.get(key, 0.0)):
                raise ValueError(f"param group {i}: {key} is {type(group[key]).__name__}, "
                                 "not a number")
        betas = group.get("betas", (0.9, 0.999))
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2
                and all(map(number, betas))):
            raise ValueError(f"param group {i}: betas is not two numbers")
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if name != "step" and isinstance(value, torch.Tensor) \
                        and value.shape != param.shape:
                    raise ValueError(f"{name} of shape {tuple(value.shape)} for a parameter "
                                     f"of shape {tuple(param.shape)}")


def _from_random_state() -> list[Any]:
    # Python's random state is a nested tuple; checkpoints hold lists (weights_only-safe).
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _to_random_state(state: Sequence[Any]) -> tuple[Any, ...]:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
