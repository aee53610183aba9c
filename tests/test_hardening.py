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
