"""Data-parallel training with torchrun: 2 CPU processes (gloo) on a tiny corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bmes_tagger.config import load_config
from bmes_tagger.predict import Tagger
from bmes_tagger.train import DistContext, train
from conftest import tiny_config

SETS = ["--set", "train.epochs=4", "--set", "model.hidden_size=32", "--set", "train.lr=0.02"]


def test_my_share_splits_batches_evenly() -> None:
    batches = [[i] for i in range(7)]
    shares = [DistContext(rank, 3).my_share(batches) for rank in range(3)]
    assert shares == [[[0], [3]], [[1], [4]], [[2], [5]]]
    assert DistContext().my_share(batches) == batches


def test_torchrun_two_processes(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "bmes_tagger", "train", str(config), "--output", str(tmp_path / "ddp"),
         "--quiet", *SETS],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
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
