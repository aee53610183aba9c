"""`tagger debug-data`: the report on the bundled samples, and each finding on a crafted file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bmes_tagger.cli import app
from bmes_tagger.config import load_config
from bmes_tagger.debug_data import debug_data
from conftest import REPO

runner = CliRunner()


def test_sample_configs_report_counts_that_match_the_files() -> None:
    for name, unit in (("sample-cws", "words"), ("sample-ner", "entities")):
        report = debug_data(load_config(REPO / "configs" / f"{name}.yaml"))
        train = report["splits"]["train"]
        path = Path(train["file"])
        blocks = [b for b in path.read_text("utf-8").split("\n\n") if b.strip()]
        lines = [x for x in path.read_text("utf-8").splitlines() if x.strip()]
        if name == "sample-cws":
            assert train["sentences"] == len(lines)
            assert train[unit] == sum(len(x.split()) for x in lines)
            assert train["chars"] == sum(len("".join(x.split())) for x in lines)
        else:
            assert train["sentences"] == len(blocks)
            assert train["chars"] == len(lines)
            assert train[unit] == sum(x.split()[-1][0] in "BS" for x in lines)
        assert set(report["splits"]) == {"train", "dev", "test"}
        assert report["findings"] == []
    result = runner.invoke(app, ["debug-data", str(REPO / "configs" / "sample-ner.yaml"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["splits"]["dev"]["entities"] > 0


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_every_finding_on_crafted_files(tmp_path: Path) -> None:
    train = write(tmp_path / "train.txt", "我们  在  北京  工作\n今天  天气  好\n今天  天气  好\n"
                  "Ａ公司  发布  了\nA  公司\n" + "长" * 30 + "\n")
    dev = write(tmp_path / "dev.txt", "我们  在  北京  工作\n𠀀𠀁  来  了\n新词  出现\n")
    test = write(tmp_path / "test.txt", "他们  在  上海\n")
    cfg = write(tmp_path / "c.yaml", f"data:\n  train: {train}\n  dev: {dev}\n  test: {test}\n"
                "  max_len: 20\n")
    report = debug_data(load_config(cfg))
    tr, dv, ts = (report["splits"][k] for k in ("train", "dev", "test"))
    assert tr["duplicate_sentences"]["count"] == 1
    assert tr["over_max_len"]["sentences"] == 1 and tr["over_max_len"]["longest"] == 30
    assert tr["over_max_len"]["pieces_after_splitting"] == 2
    assert dv["also_in_train"]["count"] == 1 and dv["also_in_train"]["examples"] == \
        [f"{dev}:1"]
    assert dv["non_bmp_chars"]["count"] == 2
    # 𠀀 𠀁 来 新 词 出 现 never occur in train: 7 of the 15 dev characters
    assert dv["unseen_in_train"]["char_types"] == 7
    assert dv["unseen_in_train"]["char_rate"] == pytest.approx(7 / 15)
    # dev words: 我们 在 北京 工作 𠀀𠀁 来 了 新词 出现; not in train: 𠀀𠀁 来 新词 出现
    assert dv["oov_word_rate"] == pytest.approx(4 / 9)
    assert ts["unseen_in_train"]["char_types"] == 3  # 他 上 海
    assert report["width_variants"]["pairs"] == 1  # Ａ and A
    text = "\n".join(report["findings"])
    for needle in ("duplicate", "also occur in train", "longer than data.max_len",
                   "both full-width and half-width", "never occur in train"):
        assert needle in text, needle


def test_illegal_gold_is_listed_with_its_line_instead_of_stopping(tmp_path: Path) -> None:
    train = write(tmp_path / "t.bmes", "张 B-PER\n三 E-PER\n\n在 O\n京 M-LOC\n\n好 O\n\n"
                  "了 B-LOC\n")
    cfg = write(tmp_path / "c.yaml", f"data:\n  task: ner\n  format: conll\n  train: {train}\n"
                f"  dev: {train}\n")
    result = runner.invoke(app, ["debug-data", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "gold needing repair: 2" in result.stdout
    assert f"{train}:5: illegal BMES sequence: M-LOC cannot follow O" in result.stdout
    assert "training refuses them unless data.repair_gold: true" in result.stdout


def test_unreadable_data_is_the_only_failure(tmp_path: Path) -> None:
    bad = tmp_path / "t.txt"
    bad.write_bytes("我们 在\n".encode("gbk"))
    cfg = write(tmp_path / "c.yaml", f"data:\n  train: {bad}\n")
    result = runner.invoke(app, ["debug-data", str(cfg)])
    assert result.exit_code == 1 and result.stderr.startswith(f"error: {bad}:1: not valid UTF-8")
