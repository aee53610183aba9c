"""`tagger lexicon` and `tagger vectors`: resources from raw text that the features read."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bmes_tagger import Tagger
from bmes_tagger.cli import app
from bmes_tagger.config import load_config
from bmes_tagger.train import train
from conftest import DATA, tiny_config

runner = CliRunner()
RAW = DATA / "sample-cws" / "raw.txt"


@pytest.fixture(scope="module")
def cws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("resources")
    train(load_config(tiny_config(tmp), ["train.epochs=1"]), tmp / "run", progress=False)
    return tmp / "run" / "best.pt"


def test_lexicon_counts_the_words_the_model_segments(cws: Path, tmp_path: Path) -> None:
    out = tmp_path / "words.txt"
    result = runner.invoke(app, ["lexicon", str(RAW), "--model", str(cws), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [x for x in RAW.read_text("utf-8").splitlines() if x.strip()]
    want = Counter(w for words in Tagger.load(cws).segment(lines) for w in words)
    got = {w: int(n) for w, n in (x.split() for x in out.read_text("utf-8").splitlines())}
    assert got == dict(want)
    counts = list(got.values())
    assert counts == sorted(counts, reverse=True)
    # never over an input, never over a file without --force
    again = runner.invoke(app, ["lexicon", str(RAW), "--model", str(cws), "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.stderr
    onto = runner.invoke(app, ["lexicon", str(RAW), "--model", str(cws), "--out", str(RAW),
                               "--force"])
    assert onto.exit_code == 1 and RAW.read_text("utf-8").strip()
    neither = runner.invoke(app, ["lexicon", str(RAW), "--out", str(tmp_path / "x.txt")])
    assert neither.exit_code == 2 and "--model" in neither.stderr  # usage


def test_vectors_are_found_by_the_features_that_read_them(cws: Path, tmp_path: Path) -> None:
    pytest.importorskip("gensim", reason="tagger vectors needs gensim")
    vectors = tmp_path / "vec"
    lexicon = tmp_path / "words.txt"
    # the training text itself, unsegmented: every token the vocabularies hold occurs in it
    raw = tmp_path / "raw.txt"
    raw.write_text("".join(line.replace(" ", "") + "\n" for line in
                           (DATA / "sample-cws" / "train.txt").read_text("utf-8").splitlines()),
                   encoding="utf-8")
    assert runner.invoke(app, ["lexicon", str(raw), "--model", str(cws), "--out",
                               str(lexicon)]).exit_code == 0
    result = runner.invoke(app, ["vectors", str(raw), "--out", str(vectors), "--model",
                                 str(cws), "--char-dim", "16", "--bigram-dim", "8",
                                 "--word-dim", "8", "--min-count", "1", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    cfg = load_config(tiny_config(tmp_path), [
        "train.epochs=1", "model.bigram_dim=8", "data.min_bigram_freq=1",
        f"model.char_vectors={vectors / 'chars.vec'}",
        f"model.bigram_vectors={vectors / 'bigrams.vec'}", f"model.lexicon={lexicon}",
        "model.lexicon_dim=8", f"model.word_vectors={vectors / 'words.vec'}"])
    train(cfg, tmp_path / "run", progress=False)
    log = (tmp_path / "run" / "train.log").read_text()
    coverage = {name: float(line.split("covers ")[1].split("%")[0])
                for line in log.splitlines() for name in ("chars", "bigrams", "lexicon")
                if f"{name} vectors:" in line}
    # every token has a vector: tokens are spelled as the vocabularies spell them
    assert coverage["chars"] == coverage["bigrams"] == 100.0
    assert coverage["lexicon"] > 99.5  # all but the NONE row of empty word sets
