"""Doctest support: docstring examples that need a trained model get small sample models.

`pytest` collects the examples in bmes_tagger/ (see --doctest-modules in pyproject.toml); the
names `cws_model` and `ner_model` in those examples are checkpoints trained here once per session
(one epoch on the bundled samples, a few seconds); `tmp` is a fresh folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def sample_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from bmes_tagger.config import load_config
    from bmes_tagger.train import train

    out = {}
    for task in ("cws", "ner"):
        cfg = load_config(ROOT / "configs" / f"sample-{task}.yaml",
                          ["train.epochs=2", "train.threads=1", "model.hidden_size=32"])
        run = tmp_path_factory.mktemp(f"doctest-{task}")
        train(cfg, run, progress=False)
        out[f"{task}_model"] = str(run / "best.pt")
    return out


@pytest.fixture(autouse=True)
def _doctest_models(request: pytest.FixtureRequest) -> None:
    if isinstance(request.node, pytest.DoctestItem) and (
            "Tagger" in request.node.name or "export_model" in request.node.name):
        namespace = request.getfixturevalue("doctest_namespace")
        namespace.update(request.getfixturevalue("sample_models"))
        namespace["tmp"] = request.getfixturevalue("tmp_path")
