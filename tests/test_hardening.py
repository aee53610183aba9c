"""Hostile and careless use, found by testing from outside: each case failed once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bmes_tagger import Tagger
from bmes_tagger.config import load_config
from bmes_tagger.errors import BmesTaggerError
from bmes_tagger.predict import UserDict
from bmes_tagger.train import train
from conftest import DATA, tiny_config

runner = CliRunner()


@pytest.fixture(scope="module")
def cws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hardening")
    train(load_config(tiny_config(tmp, head="crf"), ["train.epochs=1"]), tmp / "run",
          progress=False)
    return tmp / "run" / "best.pt"


def test_a_huge_dictionary_entry_costs_nothing_per_line() -> None:
    """A 20,000-character entry made a 3,000-character line take 45 s (every position tried
    every length up to the longest word); the trie walks only prefixes that exist."""
    text = "我们在北京工作，" * 375
    words = UserDict(["北" * 20_000, "北京", "工作"])
    started = time.process_time()
    spans = words.matches(list(text))
    assert time.process_time() - started < 2.0  # a bomb guard, not a speed target
    assert len(spans) == 750 and spans[:2] == [(3, 5), (5, 7)]


def test_user_dict_matches_longest_first_like_the_brute_force() -> None:
    vocab = ["北京", "北京大学", "大学生", "学生", "生活"]
    text = list("北京大学生活在北京")
    got = UserDict(vocab).matches(text)
    # brute force: at each position the longest word (2+ tokens), left to right
    want, i = [], 0
    while i < len(text):
        hit = max((j for j in range(i + 2, len(text) + 1) if "".join(text[i:j]) in vocab),
                  default=None)
        if hit:
            want.append((i, hit))
            i = hit
        else:
            i += 1
    assert got == want == [(0, 4), (4, 6), (7, 9)]


def test_nbest_is_bounded(cws: Path) -> None:
    raw = str(DATA / "sample-cws" / "raw.txt")
    result = runner.invoke(app(), ["predict", raw, "--model", str(cws), "--nbest", "1000000"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    with pytest.raises(ValueError, match="between 1 and 100"):
        Tagger.load(cws).nbest(["好"], k=101)


def test_a_str_where_texts_are_expected_is_a_type_error(cws: Path) -> None:
    tagger = Tagger.load(cws)
    for call in (tagger.segment, tagger.tag, tagger.confidence, tagger.pos_tag):
        with pytest.raises(TypeError, match=r"pass \[text\]"):
            call("一句话")
    with pytest.raises(BmesTaggerError, match="entities\\(\\) needs a NER model; this one is "
                                              "word segmentation"):
        tagger.entities(["一句话"])


def test_info_json_is_the_checkpoint(cws: Path) -> None:
    result = runner.invoke(app(), ["info", str(cws), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["task"] == "cws" and info["tags"] == ["B", "M", "E", "S"]
    assert info["parameters"] > 0 and info["config"]["model"]["head"] == "crf"
    assert info["vocabularies"]["chars"] == len(Tagger.load(cws).vocabs["chars"])


def test_resume_after_a_torn_metrics_line(tmp_path: Path) -> None:
    path = tiny_config(tmp_path)
    run = tmp_path / "run"
    train(load_config(path, ["train.epochs=1"]), run, progress=False)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 2, "step": 5')  # a write cut short by a kill
    train(load_config(path, ["train.epochs=2"]), run, resume=True, progress=False)
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]


def test_a_log_file_gets_lines_not_progress_bars(tmp_path: Path) -> None:
    """stderr redirected to a file: log lines only (no tqdm bars with carriage returns), and
    the result once, on stdout."""
    log = tmp_path / "train.err"
    with log.open("w") as err:
        proc = subprocess.run([sys.executable, "-m", "bmes_tagger", "train",
                               str(tiny_config(tmp_path)), "--set", "train.epochs=2"],
                              stdout=subprocess.PIPE, stderr=err, text=True, timeout=300)
    assert proc.returncode == 0
    text = log.read_text()
    assert "\r" not in text and "it/s" not in text and "batch/s" not in text
    assert text.count("epoch ") >= 2 and "best dev F1" not in text
    assert proc.stdout.count("best dev F1") == 1


def app():  # type: ignore[no-untyped-def]
    from bmes_tagger.cli import app as cli

    return cli


# --- model sizes (F8) --------------------------------------------------------------------------


def _sized(tmp_path: Path, **model: int):  # type: ignore[no-untyped-def]
    """A tiny CWS config with the given model sizes, its vocabularies and tags."""
    import dataclasses

    from bmes_tagger.vocab import Vocab

    config = load_config(tiny_config(tmp_path))
    config = config.replace(model=dataclasses.replace(config.model, **model))
    return config, {"chars": Vocab(["<pad>", "<unk>", *"我们在北京工作"])}, ["B", "M", "E", "S"]


def test_an_oversized_model_names_the_key_that_makes_it_large(tmp_path: Path) -> None:
    """Checked on the meta device before anything is allocated; the error names the keys
    that make the network large (not every size key), and the size."""
    from bmes_tagger.errors import ConfigError
    from bmes_tagger.model import build_model, check_model_size

    config, vocabs, tags = _sized(tmp_path, hidden_size=100_000, embedding_dim=200)
    with pytest.raises(ConfigError) as info:
        check_model_size(config, vocabs, tags, limit=10 << 30)
    message = str(info.value)
    assert message.startswith("model.hidden_size=100000: the network would have 80,")
    assert "embedding_dim" not in message and "GB as float32" in message
    assert "more than this machine's 10.7 GB of memory" in message
    # beyond 64-bit sizes (torch refuses even meta tensors): still one line, both keys
    config, vocabs, tags = _sized(tmp_path, hidden_size=10**9, embedding_dim=10**9)
    with pytest.raises(ConfigError, match=r"^model\.(hidden_size|embedding_dim)=1000000000, "
                                          r"model\.\w+=1000000000: .*too many parameters"):
        build_model(config, vocabs, tags)
    small, vocabs, tags = _sized(tmp_path)
    check_model_size(small, vocabs, tags, limit=1 << 20)  # 16-unit model: a few kB


@pytest.mark.parametrize("failure", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                 "allocate memory: you tried to allocate 160000000000 bytes. Error code 12 "
                 "(Cannot allocate memory)"),
    MemoryError(),
], ids=["cpu-allocator", "MemoryError"])
def test_a_failed_allocation_is_one_line_naming_the_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException) -> None:
    """A model the pre-check lets through (it fits the memory, just not the memory free) can
    still fail to allocate: torch's multi-line report becomes one line naming the keys."""
    import torch

    from bmes_tagger import model

    real = model.CELLS["lstm"]

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        if torch.get_default_device().type != "meta":  # the size count still works
            raise failure
        return real(*args, **kwargs)

    monkeypatch.setitem(model.CELLS, "lstm", failing)
    path = tiny_config(tmp_path)
    result = runner.invoke(app(), ["train", str(path), "--quiet", "--set",
                                   "model.hidden_size=300"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}: model.hidden_size=300: could not allocate "
                               "the network's weights ("), lines[0]
    assert "make the model smaller" in lines[0] and not (tmp_path / "run").exists()


# --- exporting onto a full disk (F12) -----------------------------------------------------------


@pytest.mark.parametrize("quantize", [False, True], ids=["onnx", "int8"])
def test_an_onnx_export_onto_a_full_disk_names_the_output(cws: Path, tmp_path: Path,
                                                          quantize: bool) -> None:
    """A real failed write (RLIMIT_FSIZE, as a full disk or a quota stops it): the exporter
    builds the file in the system's temporary folder first, and its error named neither the
    output nor anything else ("error: File too large")."""
    import os

    pytest.importorskip("onnx", reason="needs the onnx extra")
    out = tmp_path / "m.onnx"
    repo = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "bmes_tagger", "export", str(cws), "--output", str(out)]
    proc = subprocess.run(["bash", "-c", 'ulimit -f 20; exec "$@"', "bash", *argv,
                           *(["--quantize"] if quantize else [])],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {out}: could not write the exported model: File "
                                  "too large"), proc.stderr
    assert proc.stderr.count("\n") == 1 and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_no_space_while_exporting_is_one_line_naming_the_output(
        cws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC from the exporter's own write (which a test cannot cause for real without a
    full file system): reported against the output, never the temporary."""
    import errno

    import torch

    pytest.importorskip("onnx", reason="needs the onnx extra")

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/tmpabc/model.onnx")

    monkeypatch.setattr(torch.onnx, "export", full)
    out = tmp_path / "m.onnx"
    result = runner.invoke(app(), ["export", str(cws), "--output", str(out)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {out}: could not write the exported model: No "
                                    "space left on device (in "), result.stderr
    assert "tmpabc" not in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize(("key", "value"), [("hidden_size", 10**9), ("hidden_size", 2**31 - 1),
                                            ("num_layers", 20000), ("embedding_dim", 10**9)])
def test_a_checkpoint_declaring_huge_sizes_is_refused_before_building(
        cws: Path, tmp_path: Path, key: str, value: int) -> None:
    """Even on the meta device, 10**9 overflowed torch's size arithmetic (a traceback) and
    20,000 layers took half a minute: the stored sizes are bounded by the stored weights."""
    import torch

    payload = torch.load(cws, weights_only=True)
    payload["config"]["model"][key] = value
    hostile = tmp_path / "huge.pt"
    torch.save(payload, hostile)
    start = time.monotonic()
    with pytest.raises(BmesTaggerError, match=rf"model\.{key}={value} does not fit the weights"):
        Tagger.load(hostile)
    assert time.monotonic() - start < 10  # no network of that size was built, even on meta
    result = runner.invoke(app(), ["info", str(hostile)])
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.stderr


def test_crf_scores_beyond_float32_in_a_model_file_are_one_line(cws: Path, tmp_path: Path
                                                                 ) -> None:
    """Read into float32, 1e300 overflowed with a numpy RuntimeWarning (source path and
    all) before the error line (second outside tester, on an exported model's metadata)."""
    import warnings

    from bmes_tagger.checkpoint import _crf

    crf = {"start_transitions": [1e300] * 4, "end_transitions": [0.0] * 4,
           "transitions": [[0.0] * 4] * 4}
    config = load_config(tiny_config(tmp_path, head="crf"))
    # a warning would be an exception here
    with warnings.catch_warnings(), pytest.raises(BmesTaggerError, match="NaN or infinite"):
        warnings.simplefilter("error")
        _crf(crf, 4, config)
