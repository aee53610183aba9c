"""Predict streams: output has exactly as many lines as the input, and memory does not grow
with the input size (the 1 GB measurement is `benchmarks/predict_memory.py`)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def load_benchmark():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "predict_memory", REPO / "benchmarks" / "predict_memory.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_streamed_predict_keeps_every_line_in_constant_memory(tmp_path: Path) -> None:
    bench = load_benchmark()
    model = bench.train_tiny_model(tmp_path)
    results = []
    for size in (1, 4):
        # a fresh interpreter per size, so each peak RSS is its own
        out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "predict_memory.py"),
                              "--model", str(model), "--one", str(size)],
                             check=True, capture_output=True, text=True)
        results.append({k: float(v) for k, v in (kv.split("=") for kv in out.stdout.split())})
    for r in results:
        assert r["lines_out"] == r["lines_in"] > 10_000
    small, large = results
    # four times the input must not need noticeably more memory (bounded read buffer)
    assert large["peak_rss_mb"] < small["peak_rss_mb"] + 40
