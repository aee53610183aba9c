"""Shared fixtures: tiny configs over the bundled samples, written into tmp_path."""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

# A suite started in the background of a script (`pytest &`, `setsid sh -c '...' &`) inherits
# SIGINT ignored; the commands rightly keep an ignored signal ignored, so the tests that send
# Ctrl-C (to this process or to the commands they start, which inherit it) would see nothing.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# The same for a suite run under nohup (SIGHUP ignored) or with SIGTERM ignored: the tests
# that send them would wait for commands that, rightly, go on.
for _stop in (signal.SIGHUP, signal.SIGTERM):
    if signal.getsignal(_stop) is signal.SIG_IGN:
        signal.signal(_stop, signal.SIG_DFL)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
CORPORA = REPO.parent / "shared" / "corpora"

TINY = """\
data:
  task: {task}
  format: {format}
  train: {train}
  dev: {dev}
  test: {test}
  max_len: 40
model:
  embedding_dim: 16
  hidden_size: 16
  head: {head}
train:
  epochs: 2
  batch_size: 16
  lr: 0.01
  seed: 3
  threads: 1
output:
  dir: {out}
"""


def tiny_config(tmp_path: Path, task: str = "cws", head: str = "softmax") -> Path:
    """A 2-epoch config on the bundled sample of ``task``; the run goes to tmp_path/run."""
    if task == "cws":
        files = {s: DATA / "sample-cws" / f"{s}.txt" for s in ("train", "dev", "test")}
        fmt = "segmented"
    else:
        files = {s: DATA / "sample-ner" / f"{s}.bmes" for s in ("train", "dev", "test")}
        fmt = "conll"
    path = tmp_path / f"tiny-{task}.yaml"
    path.write_text(TINY.format(task=task, format=fmt, head=head, out=tmp_path / "run",
                                **{k: str(v) for k, v in files.items()}), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # Tests share 2 cores with other work; one thread avoids OpenMP spinning stalls.
    torch.set_num_threads(1)


def require_corpora() -> Path:
    if not CORPORA.is_dir():
        pytest.skip(f"needs the public corpora at {CORPORA} (not part of the repository)")
    return CORPORA


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` as module ``NAME`` (registered in ``sys.modules``, where its
    dataclasses look their module up), with ``benchmarks/`` on the path for its own imports."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
