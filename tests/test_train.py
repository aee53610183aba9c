"""Training loop: determinism, dev hold-out, mid-epoch evaluation, resume equivalence, locks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bmes_tagger.config import load_config
from bmes_tagger.errors import RunDirError
from bmes_tagger.predict import Tagger
from bmes_tagger.rundir import RunLock
from bmes_tagger.train import train
from conftest import tiny_config


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_same_seed_same_result(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path))
    a = train(cfg, tmp_path / "a", progress=False)
    b = train(cfg, tmp_path / "b", progress=False)
    dev_a, dev_b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert [m["dev"] for m in dev_a] == [m["dev"] for m in dev_b]
    assert a.best_scores == b.best_scores
    other = train(load_config(tiny_config(tmp_path), ["train.seed=4"]), tmp_path / "c",
                  progress=False)
    assert [m["train_loss"] for m in metrics(tmp_path / "c")] != \
        [m["train_loss"] for m in metrics(tmp_path / "a")]
    del other


def test_resume_continues_exactly(tmp_path: Path) -> None:
    path = tiny_config(tmp_path)
    straight = train(load_config(path, ["train.epochs=3"]), tmp_path / "straight",
                     progress=False)
    train(load_config(path, ["train.epochs=1"]), tmp_path / "split", progress=False)
    resumed = train(load_config(path, ["train.epochs=3"]), tmp_path / "split", resume=True,
                    progress=False)
    a, b = metrics(tmp_path / "straight"), metrics(tmp_path / "split")
    assert [m["epoch"] for m in b] == [1, 2, 3]
    for x, y in zip(a, b):
        assert x["dev"]["f1"] == pytest.approx(y["dev"]["f1"], abs=1e-6)
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-6)
    assert straight.best_scores["f1"] == pytest.approx(resumed.best_scores["f1"], abs=1e-6)


def test_dev_fraction_and_eval_every(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path), ["data.dev=null", "data.dev_fraction=0.2",
                                              "train.eval_every=10", "train.epochs=1"])
    result = train(cfg, tmp_path / "run", progress=False)
    records = metrics(tmp_path / "run")
    # 400 training sentences (a few cut at max_len 40) in batches of 16: 20 < steps < 30, so
    # evaluations at steps 10, 20 and once more at the end of the run
    assert 20 < result.steps < 30
    assert [r["step"] for r in records] == [10, 20, result.steps]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "train: 400 sentences" in log and "dev: 100 sentences" in log


def test_patience_stops_early(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path), ["train.lr=0.000001", "train.patience=1",
                                              "train.epochs=6"])
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.stopped_early and result.epochs_run < 6


def test_lock_refuses_live_owner_and_takes_over_stale(tmp_path: Path) -> None:
    import fcntl

    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text("12345")
    with open(run / ".lock") as held:  # a live owner: someone holds the flock
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RunDirError, match=r"another tagger train \(PID 12345\)"):
            train(load_config(tiny_config(tmp_path)), run, progress=False)
    assert not (run / "config.yaml").exists()  # refused before touching anything
    (run / ".lock").write_text("999999999")  # left by a dead process: nobody holds it
    with RunLock(run):
        assert (run / ".lock").read_text() == str(os.getpid())
    assert not (run / ".lock").exists()


def test_two_locks_started_together_are_never_both_held(tmp_path: Path) -> None:
    """The lock is taken atomically (flock), and released only by its owner."""
    import threading
    import time

    run = tmp_path / "run"
    run.mkdir()
    holders = 0
    most = 0
    count = threading.Lock()

    def contend(start: threading.Barrier) -> None:
        nonlocal holders, most
        start.wait()
        try:
            with RunLock(run):
                with count:
                    holders += 1
                    most = max(most, holders)
                time.sleep(0.002)
                with count:
                    holders -= 1
        except RunDirError:
            pass

    for _ in range(100):
        start = threading.Barrier(2)
        threads = [threading.Thread(target=contend, args=(start,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not (run / ".lock").exists()
    assert most == 1


def test_resume_sweeps_temporaries_of_a_killed_save(tmp_path: Path) -> None:
    path, run = tiny_config(tmp_path), tmp_path / "run"
    train(load_config(path, ["train.epochs=1"]), run, progress=False)
    # What a SIGKILL during save_checkpoint leaves: a partial temporary and a stale lock.
    torn = run / ".last.pt.k1l3d.tmp"
    torn.write_bytes(b"PK\x03\x04 half a zip")
    (run / ".lock").write_text("999999999")  # nobody holds its flock: stale
    mine = run / ".notes.tmp"  # not one of ours: must survive
    mine.write_text("user file")
    train(load_config(path, ["train.epochs=2"]), run, resume=True, progress=False)
    assert not torn.exists() and mine.read_text() == "user file"
    assert [m["epoch"] for m in metrics(run)] == [1, 2]


def test_long_lines_are_split_and_rejoined(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path), ["train.epochs=1"])  # max_len 40
    train(cfg, tmp_path / "run", progress=False)
    tagger = Tagger.load(tmp_path / "run" / "best.pt")
    text = "我们在北京工作，" * 60 + "没有标点的很长的一句话" * 20
    (words,) = tagger.segment([text])
    assert "".join(words) == text
    ((tags),) = tagger.tag_tokens([list(text)])
    assert len(tags) == len(text)


FEATURES = ["model.bigram_dim=8", "model.bigram_context=both", "model.class_dim=4",
            "model.locked_dropout=true", "model.head=crf", "train.lr_schedule=linear",
            "train.warmup_steps=5", "train.ema_decay=0.99", "data.min_bigram_freq=1"]


def test_all_features_train_deterministically_and_round_trip(tmp_path: Path) -> None:
    cfg = load_config(tiny_config(tmp_path), [*FEATURES, "train.epochs=3"])
    result = train(cfg, tmp_path / "a", progress=False)
    train(cfg, tmp_path / "b", progress=False)
    dev_a, dev_b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert [m["dev"] for m in dev_a] == [m["dev"] for m in dev_b]
    assert result.best_scores["f1"] > 0.5
    tagger = Tagger.load(tmp_path / "a" / "best.pt")
    assert "bigrams" in tagger.vocabs and tagger.model.crf is not None
    texts = ["我们在北京工作。", "ＡＢＣ公司发布了新产品", "x"]
    assert Tagger.load(tmp_path / "b" / "best.pt").segment(texts) == tagger.segment(texts)
    assert "".join(tagger.segment(texts)[1]) == texts[1]


def test_plateau_schedule_and_ema_resume_exactly(tmp_path: Path) -> None:
    path = tiny_config(tmp_path)
    opts = ["model.bigram_dim=8", "train.lr_schedule=plateau", "train.ema_decay=0.9"]
    train(load_config(path, [*opts, "train.epochs=3"]), tmp_path / "straight", progress=False)
    train(load_config(path, [*opts, "train.epochs=1"]), tmp_path / "split", progress=False)
    train(load_config(path, [*opts, "train.epochs=3"]), tmp_path / "split", resume=True,
          progress=False)
    a, b = metrics(tmp_path / "straight"), metrics(tmp_path / "split")
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        assert x["dev"]["f1"] == pytest.approx(y["dev"]["f1"], abs=1e-6)
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-6)


@pytest.mark.parametrize("task", ["cws", "ner"])
@pytest.mark.parametrize("head", ["softmax", "crf"])
@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_logged_dev_f1_is_what_eval_of_best_pt_measures(tmp_path: Path, task: str, head: str,
                                                        ema: float) -> None:
    """Oracle across the train/eval boundary: the best dev F1 that training logged (and used
    to pick best.pt) is what `tagger eval` of that best.pt on the dev file reports."""
    from typer.testing import CliRunner

    from bmes_tagger.cli import app

    cfg = load_config(tiny_config(tmp_path, task, head),
                      [f"train.ema_decay={ema}", "train.epochs=3", "model.dropout=0.5",
                       "model.embedding_dropout=0.5"])
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    logged = max(r["dev"]["f1"] for r in metrics(run))
    out = CliRunner().invoke(app, ["eval", "--model", str(run / "best.pt"), "--data",
                                   str(cfg.data.dev), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["f1"] == pytest.approx(logged, abs=1e-9)
