"""The demo configs learn: after their full run, dev F1 clears a floor far above chance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bmes_tagger.config import load_config
from bmes_tagger.train import train
from conftest import REPO

# Floors well above what per-character majority tagging reaches on the same dev sets
# (see data/README.md for those baselines), and well below what the demo runs reach.
FLOORS = {"sample-cws": 0.95, "sample-ner": 0.90}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_demo_config_learns(tmp_path: Path, name: str) -> None:
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    result = train(cfg, tmp_path / name, progress=False)
    assert result.best_scores["f1"] >= FLOORS[name]
    first = json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[0])
    assert result.best_scores["f1"] > first["dev"]["f1"]  # it improved while training
