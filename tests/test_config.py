"""Config loading: defaults, validation errors with file:line and suggestions, overrides, paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from bmes_tagger.config import Config, config_from_dict, config_reference, load_config
from bmes_tagger.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_and_sections() -> None:
    cfg = config_from_dict({})
    assert cfg == Config()
    assert set(cfg.to_dict()) == {"data", "model", "train", "output"}
    assert cfg.model.bidirectional is True


@pytest.mark.parametrize("name", ["sample-cws", "sample-ner"])
def test_bundled_sample_configs_load(name: str) -> None:
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert Path(cfg.data.train).is_file()
    assert cfg.output.dir == f"runs/{name}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model:\n  hidden_sze: 10\n",
         ["c.yaml:2", "model.hidden_sze", "did you mean 'hidden_size'"]),
        ("modle:\n  hidden_size: 10\n", ["c.yaml:1", "unknown section 'modle'", "'model'"]),
        ("train:\n  epochs: ten\n", ["train.epochs", "expected an integer", "'ten'"]),
        ("train:\n  epochs: true\n", ["train.epochs", "got a boolean"]),
        ("model:\n  hidden_size: -3\n", ["model.hidden_size", "must be >= 1", "-3"]),
        ("model:\n  dropout: 1.0\n", ["model.dropout", "must be < 1.0"]),
        ("model:\n  cell: lstn\n", ["model.cell", "did you mean 'lstm'"]),
        ("train:\n  lr: 0\n", ["train.lr", "must be > 0.0"]),
        ("data:\n  train: nowhere.txt\n", ["c.yaml:2", "data.train", "file not found"]),
        ("data: [1, 2\n", ["YAML syntax error"]),
        ("", ["empty"]),
        ("- a\n- b\n", ["expected a mapping"]),
        ("model: 3\n", ["section 'model' must be a mapping"]),
    ],
)
def test_invalid_configs_name_the_problem(tmp_path: Path, text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message


def test_int_accepted_for_float_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  lr: 1\n")
    cfg = load_config(path, ["train.lr=0.5", "model.cell=gru", "train.epochs=3"])
    assert cfg.train.lr == 0.5 and isinstance(cfg.train.lr, float)
    assert cfg.model.cell == "gru" and cfg.train.epochs == 3


@pytest.mark.parametrize(
    ("override", "expected"),
    [("train.lrr=1", "did you mean 'lr'"), ("trian.lr=1", "did you mean 'train'"),
     ("lr=1", "SECTION.KEY=VALUE"), ("train.lr", "SECTION.KEY=VALUE")],
)
def test_bad_overrides(tmp_path: Path, override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, "train:\n  lr: 1\n"), [override])


def test_paths_resolve_against_config_folder_and_env(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "corpora").mkdir()
    (tmp_path / "corpora" / "t.txt").write_text("a b\n", encoding="utf-8")
    sub = tmp_path / "configs"
    sub.mkdir()
    path = write(sub, "data:\n  train: ${CORP:-../corpora}/t.txt\n")
    monkeypatch.delenv("CORP", raising=False)
    assert load_config(path).data.train == str((tmp_path / "corpora" / "t.txt").resolve())
    monkeypatch.setenv("CORP", str(tmp_path / "corpora"))
    assert load_config(path).data.train == str(tmp_path / "corpora" / "t.txt")
    with pytest.raises(ConfigError, match="NOPE is not set"):
        load_config(write(sub, "data:\n  train: ${NOPE}/x\n", "d.yaml"))


def test_reference_lists_every_key() -> None:
    ref = config_reference()
    for section, values in Config().to_dict().items():
        for key in values:
            assert f"`{section}.{key}`" in ref


def test_readme_config_table_is_current() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for row in config_reference().splitlines():
        assert row in readme, f"README config table is stale; regenerate it: {row}"
