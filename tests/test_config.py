"""Config loading: defaults, validation errors with file:line and suggestions, overrides, paths."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

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


SETTING_KEYS = {
    "lexicon": {"lexicon", "lexicon_dim"},
    "vectors": {"char_vectors", "bigram_vectors", "extend_vocab"},
    "lexicon_vectors": {"lexicon", "lexicon_dim", "char_vectors", "bigram_vectors",
                        "word_vectors", "extend_vocab"},
}
SETTING_CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml")
                         if any(p.stem.endswith("_" + s) for s in SETTING_KEYS))


@pytest.mark.parametrize("path", SETTING_CONFIGS, ids=lambda p: p.stem)
def test_a_setting_config_is_its_closed_config_plus_the_settings_keys(
        path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """configs/NAME_lexicon.yaml (and _vectors, _lexicon_vectors) must not drift from
    configs/NAME.yaml: the same config but for the setting's model keys and the run folder,
    so a benchmark row's setting is the only difference from the closed row."""
    for name in ("chars", "bigrams", "words"):
        (tmp_path / f"{name}.vec").write_text("", encoding="utf-8")
    monkeypatch.setenv("BMES_VECTORS", str(tmp_path))
    setting = max((s for s in SETTING_KEYS if path.stem.endswith("_" + s)), key=len)
    name = path.stem[:-len(setting) - 1]
    closed = load_config(REPO / "configs" / f"{name}.yaml").to_dict()
    variant = load_config(path).to_dict()
    assert variant["output"]["dir"] == f"runs/{name}_{setting}"
    changed = {k for k, v in variant["model"].items() if closed["model"][k] != v}
    assert changed <= SETTING_KEYS[setting]
    assert ("lexicon" in changed) == ("lexicon" in setting)
    assert ("char_vectors" in changed) == ("vectors" in setting)
    if "vectors" in setting:
        assert variant["model"]["char_vectors"] == str(tmp_path / "chars.vec")
    for section in ("data", "train"):
        assert variant[section] == closed[section], section
    if "vectors" in setting:
        # the dimensions the vectors of `tagger vectors` have (its defaults)
        assert variant["model"]["embedding_dim"] == 100
        assert variant["model"]["bigram_dim"] in (0, 50)


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


def test_environment_variables_give_numbers_and_switches_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "train:\n  epochs: ${EPOCHS:-7}\n  lr: ${LR:-0.5}\n"
                           "  tensorboard: ${TB:-false}\nmodel:\n  bigram_dim: ${BIG}\n")
    monkeypatch.setenv("BIG", "16")
    for name in ("EPOCHS", "LR", "TB"):
        monkeypatch.delenv(name, raising=False)
    cfg = load_config(path)
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.tensorboard, cfg.model.bigram_dim) == \
        (7, 0.5, False, 16)
    monkeypatch.setenv("EPOCHS", "3")
    monkeypatch.setenv("LR", "1e-3")
    monkeypatch.setenv("TB", "true")
    cfg = load_config(path)
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.tensorboard) == (3, 0.001, True)
    monkeypatch.setenv("EPOCHS", "three")
    with pytest.raises(ConfigError, match=r"c.yaml:2: train.epochs: expected an integer, got "
                                          r"a string \('three'\)"):
        load_config(path)
    monkeypatch.setenv("EPOCHS", "-1")
    with pytest.raises(ConfigError, match="train.epochs: must be >= 1"):
        load_config(path)
    monkeypatch.delenv("EPOCHS")
    monkeypatch.delenv("BIG")
    with pytest.raises(ConfigError, match="model.bigram_dim: environment variable BIG is not"):
        load_config(path)


def test_reference_lists_every_key() -> None:
    ref = config_reference()
    for section, values in Config().to_dict().items():
        for key in values:
            assert f"`{section}.{key}`" in ref


def test_readme_config_table_is_current() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for row in config_reference().splitlines():
        assert row in readme, f"README config table is stale; regenerate it: {row}"


# --- resource bombs and long values: bounded time, memory and message length -------------------


def alias_bomb() -> str:
    """A ~340-byte YAML flow mapping whose aliases expand to 9**9 strings (billion laughs)."""
    parts, prev = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"], "a"
    for name in "bcdefgh":
        parts.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
        prev = name
    parts.append(f"i: [{', '.join([f'*{prev}'] * 9)}]")
    return "{" + ", ".join(parts) + "}"


def load_in_subprocess(path: Path, overrides: list[str], limit_s: float = 5.0) -> str:
    """The ConfigError message of ``load_config(path, overrides)``, run in a child with a
    timeout and a 2 GB address-space cap, so that a regression fails instead of hanging or
    swapping the machine."""
    code = ("import sys, json\n"
            "from bmes_tagger.config import load_config\n"
            "from bmes_tagger.errors import ConfigError\n"
            "try:\n"
            "    load_config(sys.argv[1], json.loads(sys.argv[2]))\n"
            "except ConfigError as exc:\n"
            "    print(exc)\n")

    def cap_memory() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-c", code, str(path), json.dumps(overrides)],
                                capture_output=True, text=True, timeout=limit_s + 10,
                                preexec_fn=cap_memory, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"load_config did not answer within {limit_s + 10} s")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert elapsed < limit_s, elapsed
    return result.stdout.rstrip("\n")


@pytest.mark.parametrize("where", ["file", "set"])
def test_alias_bomb_is_refused_quickly(tmp_path: Path, where: str) -> None:
    bomb = alias_bomb()
    assert len(bomb) < 428
    if where == "file":
        message = load_in_subprocess(write(tmp_path, f"train:\n  lr: {bomb}\n"), [])
        assert message.startswith(f"{tmp_path / 'c.yaml'}:2: ")
    else:
        message = load_in_subprocess(write(tmp_path, "train:\n  lr: 1\n"), [f"train.lr={bomb}"])
        assert message.startswith("--set train.lr={a: &a [lol")
    assert "too many values for a config" in message
    assert len(message) <= 300 and "\n" not in message


def test_merge_bomb_is_refused_quickly(tmp_path: Path) -> None:
    # ninefold << merges, nine levels: PyYAML's merge flattening alone would build 9**9 pairs
    lines = ["x0: &x0 {k: 1}"]
    lines += [f"x{i}: &x{i} {{<<: [{', '.join([f'*x{i - 1}'] * 9)}]}}" for i in range(1, 10)]
    text = "train:\n  lr:\n" + "".join(f"    {line}\n" for line in lines)
    message = load_in_subprocess(write(tmp_path, text), [])
    assert "for a config" in message and len(message) <= 300


def test_a_value_that_contains_itself_is_previewed_briefly() -> None:
    # config_from_dict takes any Python value; plain repr() would print [[...]] but a preview
    # must not recurse forever on such a value either
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ConfigError, match=r"expected a number, got a list \(\[\[\[") as info:
        config_from_dict({"train": {"lr": loop}})
    assert len(str(info.value)) <= 300


LONG = "x" * 200_000


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        # a string key gets a "too long" error; a number key a type error with a preview
        pytest.param(f"data:\n  task: {LONG}\n", [],
                     "c.yaml:2: data.task: too long: 200000 characters", id="choice-key"),
        pytest.param(f"data:\n  train: {LONG}\n", [],
                     "c.yaml:2: data.train: too long: 200000 characters", id="path-key"),
        pytest.param(f"train:\n  lr: {LONG}\n", [],
                     "c.yaml:2: train.lr: expected a number, got a string ('xxxx", id="number-key"),
        pytest.param("data:\n  task: ${BIG}\n", [],
                     "c.yaml:2: data.task: too long after expanding ${BIG}", id="env-choice"),
        pytest.param("data:\n  train: ${BIG}\n", [],
                     "data.train: too long after expanding ${BIG}", id="env-path"),
        pytest.param("output:\n  dir: ${BIG}\n", [],
                     "output.dir: too long after expanding ${BIG}", id="env-dir"),
        # 500 x ${SMALL} (3 kB each) would be 1.5 MB: cut off as it grows
        pytest.param("output:\n  dir: " + "${SMALL}" * 500 + "\n", [],
                     "too long after expanding ${SMALL}", id="env-repeated"),
        pytest.param("data:\n  task: cws\n", ["data.task=${BIG}"],
                     "--set data.task=${BIG}: data.task: too long after expanding ${BIG}",
                     id="set-env"),
        pytest.param("data:\n  task: cws\n", [f"data.task={LONG}"], "--set data.task=xxx",
                     id="set-long"),
        pytest.param("output:\n  ? " + "k" * 200_000 + "\n  : 1\n", [],
                     "c.yaml:2: output.kkk", id="long-key"),
        pytest.param("train:\n  seed: " + "9" * 4000 + "\n", [],
                     "c.yaml:2: train.seed: must be at most", id="4000-digit-int"),
        pytest.param("data:\n  task: !" + "t" * 200_000 + " x\n", [],
                     "c.yaml:2: YAML syntax error: could not determine a constructor",
                     id="long-tag"),
    ],
)
def test_long_values_give_short_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         text: str, overrides: list[str], expected: str) -> None:
    monkeypatch.setenv("BIG", "y" * 120_000)
    monkeypatch.setenv("SMALL", "z" * 3000)
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), overrides)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert expected in message
    assert len(message) <= 300 and "\n" not in message, (len(message), message[:400])


def test_file_over_1mib_is_refused_unread(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too large for a config file"):
        load_config(write(tmp_path, "# " + "x" * (1 << 20) + "\n"))


def test_deep_but_parsable_nesting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.yaml:2: nested too deeply for a config"):
        load_config(write(tmp_path, "train:\n  lr: " + "[" * 40 + "]" * 40 + "\n"))
    # a wrong but shallow value still gets the ordinary type error
    with pytest.raises(ConfigError, match="expected a number, got a list"):
        load_config(write(tmp_path, "train:\n  lr: [[[1]]]\n"))


# --- duplicate keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n",
         "c.yaml:4: train.lr: key given twice, on lines 2 and 4"),
        ("train:\n  lr: 0.1\nmodel:\n  cell: gru\ntrain:\n  epochs: 2\n",
         "c.yaml:5: train: section given twice, on lines 1 and 5"),
        ("train: {lr: 0.1, 'lr': 0.2}\n", "c.yaml:1: train.lr: key given twice, on lines 1 and 1"),
    ],
)
def test_duplicate_keys_name_both_lines(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert expected in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "c.yaml"))


def test_merge_keys_may_override_without_being_duplicates(tmp_path: Path) -> None:
    text = ("model: &m\n  cell: gru\n  hidden_size: 8\n"
            "train: {epochs: 2}\n"
            "data:\n  task: cws\n")
    assert load_config(write(tmp_path, text)).model.cell == "gru"
    # the same key from a merge and written out: the written one wins, as YAML says
    text = "model:\n  <<: {cell: gru, hidden_size: 8}\n  cell: rnn\n"
    cfg = load_config(write(tmp_path, text))
    assert (cfg.model.cell, cfg.model.hidden_size) == ("rnn", 8)


# --- YAML 1.2 floats -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "key", "value"),
    [("1e-3", "lr", 1e-3), ("5E4", "weight_decay", 5e4), (".5", "momentum", 0.5),
     ("+.5", "momentum", 0.5), ("-.5e1", "weight_decay", None), ("+1.0e+2", "clip_norm", 100.0),
     ("1.0e2", "clip_norm", 100.0), ("1.e-2", "lr", 0.01), ("3E+0", "clip_norm", 3.0)],
)
def test_yaml12_float_forms_are_numbers(tmp_path: Path, written: str, key: str,
                                        value: float | None) -> None:
    for path, overrides in ((write(tmp_path, f"train:\n  {key}: {written}\n"), []),
                            (write(tmp_path, "train: {}\n", "d.yaml"), [f"train.{key}={written}"])):
        if value is None:  # negative: a range error, so it was read as a number
            with pytest.raises(ConfigError, match=f"train.{key}: must be >= 0.0, got -5.0"):
                load_config(path, overrides)
            continue
        got = getattr(load_config(path, overrides).train, key)
        assert got == value and type(got) is float


def test_yaml12_float_forms_stay_text_for_string_keys(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "output:\n  dir: 1e3\n"))
    assert cfg.output.dir == "1e3"
    with pytest.raises(ConfigError, match="data.task: '1e3' is not one of"):
        load_config(write(tmp_path, "data:\n  task: 1e3\n"))
    # the loader change is the project's own: plain yaml.safe_load is untouched
    assert yaml.safe_load("x: 1e-3") == {"x": "1e-3"}


@pytest.mark.parametrize("written", ["1e1", "1E1", "1.0e1", "10.0"])
def test_integer_keys_take_integers_only(tmp_path: Path, written: str) -> None:
    # documented choice: 1e1 is a float in YAML 1.2, as 10.0 is; the error says what to write
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"train:\n  epochs: {written}\n"))
    assert str(info.value).endswith(f"train.epochs: expected an integer, got a number "
                                    f"({written}); write 10")
    with pytest.raises(ConfigError, match="expected an integer, got a number"):
        load_config(write(tmp_path, "train:\n  epochs: 2.5e0\n"))


# --- --set provenance and structured errors ------------------------------------------------------


def test_set_errors_name_the_flag_not_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "data:\n  task: cws\ntrain:\n  epochs: 2\n  lr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["train.lr=abc"])
    exc = info.value
    assert str(exc) == "--set train.lr=abc: train.lr: expected a number, got a string ('abc')"
    assert (exc.source, exc.line, exc.key) == ("--set train.lr=abc", None, "train.lr")
    assert exc.reason == "expected a number, got a string ('abc')"
    # the last --set of a key is the one that counts, and the one named
    with pytest.raises(ConfigError, match=r"^--set train\.lr=-1: train\.lr: must be > 0\.0"):
        load_config(path, ["train.lr=abc", "train.lr=-1"])
    # a bad value in the file is still reported at its line when --set changes another key
    bad = write(tmp_path, "train:\n  epochs: 2\n  lr: abc\n", "bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(bad, ["train.epochs=3"])
    assert (info.value.source, info.value.line, info.value.key) == (str(bad), 3, "train.lr")
    # ... and a --set that fixes the file's bad value is accepted
    assert load_config(bad, ["train.lr=1e-3"]).train.lr == 1e-3


def test_config_error_fields_and_message() -> None:
    exc = ConfigError("must be >= 1, got -3", source="c.yaml", line=2, key="model.hidden_size")
    assert str(exc) == "c.yaml:2: model.hidden_size: must be >= 1, got -3"
    assert str(ConfigError("required", key="data.train")) == "data.train: required"
    assert str(ConfigError("config file not found", source="c.yaml")) == \
        "c.yaml: config file not found"
    # a reason given alone (as train() raises them) gets a source from whoever knows it
    legacy = ConfigError("data.train: required for training")
    assert legacy.source is None and str(legacy.located("c.yaml")) == \
        "c.yaml: data.train: required for training"
    assert exc.located("other.yaml") is exc
    # one line whatever the key holds; fields survive pickling (multiprocessing, spawn)
    odd = ConfigError("unknown key", source="c.yaml", key="a\nb\u2028c")
    assert str(odd) == "c.yaml: a\\nb\\u2028c: unknown key"
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.source, copy.line, copy.key, copy.reason, str(copy)) == \
        (exc.source, exc.line, exc.key, exc.reason, str(exc))


def test_config_from_dict_origins() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"train": {"lr": "x"}}, source="c.yaml", lines={"train.lr": 4},
                         origins={"train.lr": "train.lr=x"})
    assert str(info.value).startswith("--set train.lr=x: train.lr: expected a number")


@pytest.mark.parametrize(
    ("text", "sets", "expected"),
    [
        ("train:\n  average_last: 3\n  ema_decay: 0.99\n", [],
         "c.yaml:2: train.average_last: 3 does not combine with train.ema_decay 0.99"),
        ("train:\n  eval_every: 50\n", ["train.average_last=2"],
         "--set train.average_last=2: train.average_last: 2 averages the weights of epoch "
         "ends, so it needs train.eval_every 0 (got 50)"),
        ("train:\n  lr_schedule: plateau\n  refit: true\n", [],
         "c.yaml:3: train.refit: does not combine with train.lr_schedule plateau"),
    ],
)
def test_training_regimes_that_do_not_combine_are_one_line(tmp_path: Path, text: str,
                                                           sets: list[str], expected: str
                                                           ) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), sets)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_training_regimes_that_combine_load(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "train:\n  average_last: 3\n  refit: true\n"
                                      "  lr_schedule: linear\n"))
    assert (cfg.train.average_last, cfg.train.refit) == (3, True)
    # 1 is off, so it combines with everything
    cfg = load_config(write(tmp_path, "train:\n  average_last: 1\n  ema_decay: 0.9\n"
                                      "  eval_every: 5\n", "d.yaml"))
    assert cfg.train.average_last == 1
    with pytest.raises(ConfigError, match="train.average_last: must be >= 1, got 0"):
        load_config(write(tmp_path, "train:\n  average_last: 0\n", "e.yaml"))
