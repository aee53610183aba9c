"""Data-parallel training with torchrun: 2 CPU processes (gloo) on a tiny corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bmes_tagger.checkpoint import load_checkpoint
from bmes_tagger.config import load_config
from bmes_tagger.parallel import DataParallel
from bmes_tagger.predict import Tagger
from bmes_tagger.train import train
from conftest import tiny_config

pytestmark = pytest.mark.slow

SETS = ["--set", "train.epochs=4", "--set", "model.hidden_size=32", "--set", "train.lr=0.02"]


def test_my_share_splits_batches_evenly() -> None:
    batches = [[i] for i in range(7)]
    shares = [DataParallel(rank, 3).my_share(batches) for rank in range(3)]
    assert shares == [[[0], [3]], [[1], [4]], [[2], [5]]]
    assert DataParallel().my_share(batches) == batches


def test_torchrun_two_processes(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "bmes_tagger", "train", str(config), "--output", str(tmp_path / "ddp"),
         "--quiet", *SETS],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the result once, from rank 0 (rank 1 used to print a bogus 'best dev F1 0.0000')
    assert proc.stdout.count("best dev F1") == 1 and "0.0000" not in proc.stdout
    run = tmp_path / "ddp"
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]  # written once, by rank 0 only
    log = (run / "train.log").read_text()
    assert "data parallel: 2 processes" in log
    assert log.count("model: lstm") == 1
    assert not (run / ".lock").exists()
    # same model quality as one process (each rank sees half the batches of an epoch)
    single = train(load_config(config, [s for s in SETS if s != "--set"]), tmp_path / "single",
                   progress=False)
    ddp_f1 = max(r["dev"]["f1"] for r in records)
    assert ddp_f1 > single.best_scores["f1"] - 0.05
    assert ddp_f1 > 0.8
    tagger = Tagger.load(run / "best.pt")
    assert "".join(tagger.segment(["我们在北京工作。"])[0]) == "我们在北京工作。"


# Run under torchrun by the test below: trains through the library and, on every rank, saves
# the weights the rank ends with (wrapping the loop from outside; nothing in the product).
RANK_WEIGHTS = """
import os, sys, torch
import bmes_tagger.train as t
import pytest

from bmes_tagger.checkpoint import load_checkpoint
from bmes_tagger.config import load_config
loop = t._loop
def keep(run, progress):
    result = loop(run, progress)
    torch.save(run.model.state_dict(), sys.argv[2] + f"/rank{os.environ['RANK']}.pt")
    return result
t._loop = keep
t.train(load_config(sys.argv[1], ["train.epochs=2", "model.hidden_size=16"]),
        sys.argv[2] + "/run", progress=False)
"""


def test_data_parallel_ranks_end_with_identical_weights(tmp_path: Path) -> None:
    script = tmp_path / "ranks.py"
    script.write_text(RANK_WEIGHTS)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(tiny_config(tmp_path)), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import torch

    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and training changed them: they are not just the broadcast initial weights
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["dev"]["f1"] > 0.3


def test_torchrun_refit(tmp_path: Path) -> None:
    """train.refit under torchrun: every rank trains the refit, rank 0 alone writes and
    reports refit.pt."""
    config = tiny_config(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "bmes_tagger", "train", str(config), "--output", str(run), "--quiet",
         "--set", "train.epochs=2", "--set", "model.hidden_size=16",
         "--set", "train.refit=true"],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("refit on train + dev for") == 1
    log = (run / "train.log").read_text()
    assert log.count("refit on train + dev: 580 sentences") == 1
    epochs = load_checkpoint(run / "best.pt").scores["best_epoch"]
    assert log.count("refit epoch ") == epochs and log.count("refit: saved") == 1
    assert load_checkpoint(run / "refit.pt").scores["refit"]["epochs"] == epochs
    assert not (run / "refit-last.pt").exists() and not (run / ".lock").exists()
    tagger = Tagger.load(run / "refit.pt")
    assert "".join(tagger.segment(["我们在北京工作。"])[0]) == "我们在北京工作。"
