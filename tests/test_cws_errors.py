"""benchmarks/cws_errors.py: word-level error counts behind the PKU analysis in the README."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "cws_errors.py"


def load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("cws_errors", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_counts_missed_invented_and_listed_merges() -> None:
    errors = load()
    gold = [["提", "出", "了", "新", "建议"], ["乡", "政府", "好"]]
    pred = [["提出", "了", "新建", "议"], ["乡政府", "好"]]
    missed, invented, merged_known = errors.word_errors(gold, pred, {"提出", "新建"})
    assert missed == {"提": 1, "出": 1, "新": 1, "建议": 1, "乡": 1, "政府": 1}
    assert invented == {"提出": 1, "新建": 1, "议": 1, "乡政府": 1}
    # 新建 is listed but cuts through the gold word 建议; 乡政府 is whole gold words but unlisted
    assert merged_known == {"提出": 1}


def test_rejects_lines_with_different_characters(tmp_path: Path) -> None:
    gold, pred = tmp_path / "gold.txt", tmp_path / "pred.txt"
    gold.write_text("提 出\n好\n", encoding="utf-8")
    pred.write_text("提出\n坏\n", encoding="utf-8")
    out = subprocess.run([sys.executable, str(SCRIPT), str(gold), str(pred)],
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "line 2: gold and prediction have different characters" in out.stderr


@pytest.mark.parametrize("extra", [[], ["--top", "1"]])
def test_prints_totals(tmp_path: Path, extra: list[str]) -> None:
    gold, pred, words = tmp_path / "gold.txt", tmp_path / "pred.txt", tmp_path / "words.txt"
    gold.write_text("提 出 了\n", encoding="utf-8")
    pred.write_text("提出 了\n", encoding="utf-8")
    words.write_text("提出\n", encoding="utf-8")
    out = subprocess.run([sys.executable, str(SCRIPT), str(gold), str(pred), "--words",
                          str(words), *extra], capture_output=True, text=True, check=True).stdout
    assert "gold words 3, predicted 2; missed gold words 2, invented words 1" in out
    assert "words.txt lists and the gold splits into whole gold words: 1" in out
