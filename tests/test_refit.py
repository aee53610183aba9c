"""train.refit: after the run has chosen best.pt on dev, a fresh model of the same config and
seed is trained on train + dev for the best epoch's number of epochs and saved as refit.pt."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

import pytest
import torch

import bmes_tagger.train as train_module
from bmes_tagger.checkpoint import load_checkpoint
from bmes_tagger.config import load_config
from bmes_tagger.corpus import read_corpus
from bmes_tagger.evaluate import evaluate
from bmes_tagger.predict import Tagger
from bmes_tagger.train import train
from conftest import DATA, tiny_config

# a line only dev has: its characters and its word occur nowhere in train
DEV_ONLY = "龘靐  在  北京  。"
# with scripted_dev_f1 the run peaks at epoch 3 and patience stops it at epoch 5, so the
# refit's epoch count (3) is neither train.epochs nor the epochs run
PEAKS_EARLY = ["train.epochs=6", "train.patience=2"]
DEV_F1 = [0.5, 0.7, 0.9, 0.6, 0.6, 0.6, 0.6, 0.6]


@pytest.fixture
def scripted_dev_f1(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's dev F1 at the end of epoch N is DEV_F1[N - 1], whatever the model scores,
    so when the run peaks and stops does not hang on the numerics of training (another
    torch, a fused optimizer). Only the run's own evaluations are scripted: refit.pt's dev
    and test figures are real."""
    evaluate_and_save, real = train_module.evaluate_and_save, train_module.evaluate

    def scripted(run, *args):  # noqa: ANN001, ANN002
        f1 = DEV_F1[run.loop.epoch - 1]
        with monkeypatch.context() as patch:
            patch.setattr(train_module, "evaluate", lambda *a, **k: dataclasses.replace(
                real(*a, **k), f1=f1))
            return evaluate_and_save(run, *args)

    monkeypatch.setattr(train_module, "evaluate_and_save", scripted)


def corpora(tmp_path: Path) -> tuple[Path, Path]:
    """A dev file with a line whose characters train lacks, and train + dev in one file."""
    train_text = (DATA / "sample-cws" / "train.txt").read_text(encoding="utf-8")
    dev_text = (DATA / "sample-cws" / "dev.txt").read_text(encoding="utf-8") + DEV_ONLY + "\n"
    assert "龘" not in train_text
    dev = tmp_path / "dev.txt"
    dev.write_text(dev_text, encoding="utf-8")
    both = tmp_path / "train+dev.txt"
    both.write_text(train_text + dev_text, encoding="utf-8")
    return dev, both


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def same_weights(a: Path, b: Path) -> bool:
    x, y = weights(a), weights(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.usefixtures("scripted_dev_f1")
def test_refit_trains_on_train_and_dev_for_the_best_epochs(tmp_path: Path) -> None:
    """refit.pt is, bit for bit, what a plain run on one file holding train and dev ends with
    after the best epoch's number of epochs; its vocabulary and word list have what only dev
    has; the CLI reports it, and its dev (not held out) and test F1 are what `tagger eval`
    of refit.pt says."""
    from typer.testing import CliRunner

    from bmes_tagger.cli import app

    dev, both = corpora(tmp_path)
    config = tiny_config(tmp_path)
    run = tmp_path / "run"
    sets = [f"data.dev={dev}", *PEAKS_EARLY, "train.refit=true"]
    argv = ["train", str(config), "--output", str(run), "--quiet", "--threads", "1"]
    out = CliRunner().invoke(app, [*argv, *(x for s in sets for x in ("--set", s))])
    assert out.exit_code == 0, out.output
    best = load_checkpoint(run / "best.pt")
    epoch = best.scores["best_epoch"]
    assert (epoch, len(records(run))) == (3, 5)  # stopped early, after its best epoch
    refit = load_checkpoint(run / "refit.pt")
    assert refit.scores["refit"]["epochs"] == epoch
    assert refit.config.train.epochs == epoch and not refit.config.train.refit
    assert "龘" in refit.vocabs["chars"].index and "龘" not in best.vocabs["chars"].index
    assert "龘靐" in refit.train_words and "龘靐" not in best.train_words
    assert not (run / "refit-last.pt").exists()  # nothing left to resume
    # what a plain run on train + dev in one file gives after `epoch` epochs
    plain = tmp_path / "plain"
    train(load_config(config, [f"data.train={both}", f"data.dev={dev}", *PEAKS_EARLY,
                               f"train.epochs={epoch}", "train.patience=0"]),
          plain, progress=False)
    assert same_weights(run / "refit.pt", plain / "last.pt")
    # the summary, the log and the figures
    lines = out.stdout.splitlines()
    assert lines[1].startswith(f"refit on train + dev for {epoch} epochs: {run / 'refit.pt'} "
                               "(its dev F1 ") and lines[1].endswith("is not held out)")
    assert lines[2].startswith("test F1: best.pt ")
    log = (run / "train.log").read_text(encoding="utf-8")
    assert "refit on train + dev: 581 sentences" in log and "is NOT held out" in log
    tagger = Tagger.load(run / "refit.pt")
    dev_f1 = evaluate(tagger, read_corpus(dev, "segmented", "cws")).f1
    assert refit.scores["refit"]["dev_not_held_out"]["f1"] == pytest.approx(dev_f1, abs=1e-9)
    assert f"(its dev F1 {dev_f1:.4f} is not held out)" in lines[1]
    scored = CliRunner().invoke(app, ["eval", "--model", str(run / "refit.pt"), "--data",
                                      str(DATA / "sample-cws" / "test.txt"), "--json"])
    assert scored.exit_code == 0, scored.output
    assert lines[2].endswith(f"refit.pt {json.loads(scored.stdout)['f1']:.4f}")
    assert "".join(tagger.segment(["龘靐在北京"])[0]) == "龘靐在北京"
    # metrics.jsonl is the run's alone, and `tagger info` says what refit.pt is
    assert [r["epoch"] for r in records(run)] == list(range(1, len(records(run)) + 1))
    info = CliRunner().invoke(app, ["info", str(run / "refit.pt")])
    assert f"trained on train + dev for {epoch} epochs" in info.stdout
    assert "is not held out" in info.stdout


@pytest.mark.usefixtures("scripted_dev_f1")
def test_an_interrupted_refit_resumes_to_the_same_refit_pt(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """Ctrl-C during the refit saves refit-last.pt (last.pt keeps the finished run's state);
    --resume continues the refit, not the run (which had stopped early), and writes the
    refit.pt an uninterrupted run writes, bit for bit (with average_last, whose snapshots
    travel in refit-last.pt too)."""
    dev, _ = corpora(tmp_path)
    path = tiny_config(tmp_path)
    cfg = load_config(path, [f"data.dev={dev}", *PEAKS_EARLY, "train.refit=true",
                             "train.average_last=2", "model.bigram_dim=8"])
    straight = train(cfg, tmp_path / "straight", progress=False)
    assert straight.stopped_early and straight.epochs_run < cfg.train.epochs
    assert straight.refit is not None and straight.refit.epochs == 3

    epoch_end = train_module._refit_epoch_end

    def interrupt_after_the_first(run, *args):  # noqa: ANN001, ANN002
        stopped = epoch_end(run, *args)
        if run.loop.epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)  # lands in the next batch of epoch 2
        return stopped

    run = tmp_path / "split"
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "_refit_epoch_end", interrupt_after_the_first)
        cut = train(cfg, run, progress=False)
    assert cut.interrupted and cut.signal == signal.SIGINT and cut.refit is None
    assert cut.state_file == run / "refit-last.pt" and cut.state_file.exists()
    assert not (run / "refit.pt").exists()
    resumed_at = load_checkpoint(run / "refit-last.pt").training["loop"]
    assert resumed_at["epoch"] == 1 and resumed_at["batch_in_epoch"] >= 1
    run_records = records(run)
    resumed = train(cfg, run, resume=True, progress=False)
    assert resumed.refit is not None and not resumed.interrupted
    assert resumed.refit.steps == straight.refit.steps
    assert same_weights(run / "refit.pt", tmp_path / "straight" / "refit.pt")
    assert same_weights(run / "best.pt", tmp_path / "straight" / "best.pt")
    assert records(run) == run_records  # the run did not train on
    assert resumed.refit.test_scores == straight.refit.test_scores
    log = (run / "train.log").read_text(encoding="utf-8")
    assert f"resumed from {run / 'refit-last.pt'} at epoch 2" in log
    assert not (run / "refit-last.pt").exists()


def test_resuming_a_finished_refit_or_adding_one_to_a_finished_run(tmp_path: Path) -> None:
    """--resume of a run whose refit.pt is trained keeps it; a run trained without refit
    gets one with --resume --set train.refit=true; a refit-last.pt that cannot be resumed
    (damaged) makes the refit start again, to the same refit.pt."""
    path = tiny_config(tmp_path)
    run = tmp_path / "run"
    train(load_config(path, ["train.epochs=2"]), run, progress=False)
    assert not (run / "refit.pt").exists()
    added = train(load_config(path, ["train.epochs=2", "train.refit=true"]), run,
                  resume=True, progress=False)
    assert added.refit is not None and added.refit.epochs == added.best_epoch
    first = (run / "refit.pt").read_bytes()
    again = train(load_config(path, ["train.epochs=2", "train.refit=true"]), run,
                  resume=True, progress=False)
    assert (run / "refit.pt").read_bytes() == first  # not retrained
    assert again.refit is not None and again.refit.dev_scores == added.refit.dev_scores
    assert "is already trained for this run" in (run / "train.log").read_text()
    # a damaged resume state: started again (and said so), same model in the end
    (run / "refit.pt").unlink()
    (run / "refit-last.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    train(load_config(path, ["train.epochs=2", "train.refit=true"]), run, resume=True,
          progress=False)
    assert "refit: starting again" in (run / "train.log").read_text()
    other = tmp_path / "other"
    train(load_config(path, ["train.epochs=2", "train.refit=true"]), other, progress=False)
    assert same_weights(run / "refit.pt", other / "refit.pt")
    # a run resumed to train on makes its old refit.pt stale: it is trained again
    longer = train(load_config(path, ["train.epochs=3", "train.refit=true"]), run,
                   resume=True, progress=False)
    assert longer.epochs_run == 3 and longer.refit is not None
    assert load_checkpoint(run / "refit.pt").scores["refit"]["run_steps"] == longer.steps
    assert "could not be read, or was trained for another state of the run" in \
        (run / "train.log").read_text()


def test_force_removes_the_old_runs_refit_files(tmp_path: Path) -> None:
    path = tiny_config(tmp_path)
    run = tmp_path / "run"
    train(load_config(path, ["train.epochs=1", "train.refit=true"]), run, progress=False)
    (run / "refit-last.pt").write_bytes((run / "refit.pt").read_bytes())
    train(load_config(path, ["train.epochs=1"]), run, force=True, progress=False)
    assert not (run / "refit.pt").exists() and not (run / "refit-last.pt").exists()


@pytest.mark.usefixtures("scripted_dev_f1")
def test_the_refit_has_the_learning_rate_each_epoch_had_in_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A linear schedule spans the run's train.epochs in the refit too (it stops after the
    best epoch, before the rate reaches 0): at the end of each refit epoch the rate is the
    one the run logged at the end of that epoch."""
    epoch_end = train_module._refit_epoch_end
    rates = []

    def keep_the_rate(run, *args):  # noqa: ANN001, ANN002
        rates.append(run.optimizer.param_groups[0]["lr"])
        return epoch_end(run, *args)

    monkeypatch.setattr(train_module, "_refit_epoch_end", keep_the_rate)
    cfg = load_config(tiny_config(tmp_path), [*PEAKS_EARLY, "train.lr_schedule=linear",
                                              "train.epochs=8", "train.refit=true"])
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.refit is not None and result.refit.epochs == result.best_epoch
    assert result.best_epoch < result.epochs_run < cfg.train.epochs
    logged = [r["lr"] for r in records(tmp_path / "run")][:result.best_epoch]
    assert len(rates) == result.best_epoch
    assert rates == pytest.approx(logged, rel=1e-9) and rates[-1] > 0.005


@pytest.mark.usefixtures("scripted_dev_f1")
def test_a_resume_without_refit_removes_a_refit_pt_it_made_stale(tmp_path: Path) -> None:
    """An outside tester: a resume that trained on without train.refit kept the refit.pt of
    the shorter run. It stays only while it is still this run's."""
    path = tiny_config(tmp_path)
    run = tmp_path / "run"
    train(load_config(path, ["train.epochs=3", "train.patience=0", "train.refit=true"]), run,
          progress=False)
    assert (run / "refit.pt").exists()
    # nothing more to train: the same run, so its refit.pt stays
    train(load_config(path, ["train.epochs=3", "train.patience=0"]), run, resume=True,
          progress=False)
    assert (run / "refit.pt").exists()
    train(load_config(path, ["train.epochs=5", "train.patience=0"]), run, resume=True,
          progress=False)
    assert not (run / "refit.pt").exists()
    assert "refit: removed" in (run / "train.log").read_text(encoding="utf-8")
