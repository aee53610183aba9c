"""The lexicon feature (SoftLexicon): matching against a brute-force matcher, the word sets'
ids and weights, cut lines, a self-contained checkpoint, export agreement."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmes_tagger import Tagger, features
from bmes_tagger.batching import EncodedCorpus, text_bounds
from bmes_tagger.config import config_from_dict, load_config
from bmes_tagger.lexicon import B, E, Lexicon, M, S, memberships
from bmes_tagger.train import train
from conftest import DATA, tiny_config

pytest.importorskip("ahocorasick", reason="the lexicon feature needs pyahocorasick")

ALPHABET = ["北", "京", "大", "学", "生", "e\u0301", "x", "👨\u200d👩"]


def brute(sentences: list[list[str]], words: list[str]) -> set[tuple[int, int, str, int]]:
    """Every (token, role, word, length) by trying every token span of every sentence."""
    out = set()
    base = 0
    for s in sentences:
        for a, b in itertools.combinations(range(len(s) + 1), 2):
            word = "".join(s[a:b])
            if word in words:
                n = b - a
                if n == 1:
                    out.add((base + a, S, word, 1))
                    continue
                out.add((base + a, B, word, n))
                out.add((base + b - 1, E, word, n))
                out.update((base + t, M, word, n) for t in range(a + 1, b - 1))
        base += len(s)
    return out


@settings(max_examples=200, deadline=None)
@given(sentences=st.lists(st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=9),
                          min_size=1, max_size=5),
       words=st.lists(st.lists(st.sampled_from(ALPHABET + ["e"]), min_size=1, max_size=4)
                      .map("".join), min_size=1, max_size=12))
def test_memberships_equal_the_brute_force_matcher(sentences: list[list[str]],
                                                   words: list[str]) -> None:
    """Aho-Corasick over the joined text finds exactly the words on token boundaries (a
    cluster is one token: 'e' must not match inside 'é'), never across sentences."""
    lexicon = Lexicon.of([(w, 1) for w in words], normalize=False)
    flat = [t for s in sentences for t in s]
    found = memberships(flat, np.array([len(s) for s in sentences]), lexicon)
    got = {(t, r, lexicon.words[w], n) for t, r, w, n in zip(
        found.token.tolist(), found.role.tolist(), found.word.tolist(), found.length.tolist())}
    assert len(got) == len(found.token)  # no duplicates
    assert got == brute(sentences, set(lexicon.words))


def config(tmp_path: Path, mode: str = "vectors", **model: object):  # type: ignore[no-untyped-def]
    words = tmp_path / "words.txt"
    words.write_text("北京 30\n北京大学 5\n大学 20\n学生 10\n大学生 3\n京 1\n", encoding="utf-8")
    return config_from_dict({"model": {"lexicon": str(words), "lexicon_mode": mode,
                                       "lexicon_max_words": 2, **model}})


def test_sets_ids_and_weights(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    train_text = [list("北京大学生在北京"), list("大学")]
    state = features.Lexicon().build_vocab(train_text, cfg)
    vocabs = {"chars": features.Characters().build_vocab(train_text, cfg), "lexicon": state}
    columns, _ = features.encode([list("北京大学生")], vocabs, cfg)
    ids = columns["lexicon"].reshape(5, 4, 2)
    weights = columns["lexicon_weights"].reshape(5, 4, 2)
    table = state.table
    assert table is not None and table.tokens[:3] == ["<pad>", "<unk>", "\x00"]
    none = table.index["\x00"]
    # 京 (index 1): Begins no word; in the middle of 北京大学; ends 北京; is 京 itself
    assert ids[1, B].tolist() == [none, 0]
    assert ids[1, M].tolist() == [table.index["北京大学"], 0]
    assert ids[1, E].tolist() == [table.index["北京"], 0]
    assert ids[1, S].tolist() == [table.index["京"], 0]
    # 大 (index 2) begins 大学 (20) and 大学生 (3): most frequent first, both kept
    assert ids[2, B].tolist() == [table.index["大学"], table.index["大学生"]]
    # weights: 4 z(w) / Z over the four sets, an empty set weighs 1
    z = np.array([1, 5, 30, 1])
    assert weights[1, :, 0] == pytest.approx(4 * z / z.sum())
    assert weights.sum((1, 2)) == pytest.approx([4.0] * 5)


def test_counts_mode_counts_per_role_and_length(tmp_path: Path) -> None:
    cfg = config(tmp_path, "counts")
    state = features.Lexicon().build_vocab([list("北京")], cfg)
    vocabs = {"chars": features.Characters().build_vocab([list("北京")], cfg), "lexicon": state}
    ids = features.encode([list("大学生")], vocabs, cfg)[0]["lexicon"]
    # 大 begins 大学 (length 2) and 大学生 (length 3): one word in each of B's first buckets
    slot = 1 + np.arange(features.COUNT_SLOTS) * (features.COUNT_CAP + 1)
    counts = ids - slot
    assert counts[0, 0] == 1 and counts[0, 1] == 1 and counts[0, 2:4].tolist() == [0, 0]
    assert counts[1, 4 + 1] == 1  # 学 is inside 大学生 (M, length 3)
    assert (counts >= 0).all() and (counts <= features.COUNT_CAP).all()


@settings(max_examples=60, deadline=None)
@given(text=st.lists(st.sampled_from(list("北京大学生，")), min_size=1, max_size=40),
       max_len=st.integers(8, 12))
def test_cut_lines_see_the_words_of_the_whole_line(tmp_path_factory: pytest.TempPathFactory,
                                                    text: list[str], max_len: int) -> None:
    """Lines are encoded whole and then cut: each piece's lexicon inputs are exactly the
    whole line's at those positions, words across the cut included."""
    cfg = config(tmp_path_factory.mktemp("lex"))
    vocabs = {"chars": features.Characters().build_vocab([text], cfg),
              "lexicon": features.Lexicon().build_vocab([text], cfg)}
    whole = EncodedCorpus.encode([text], vocabs, cfg)
    bounds = text_bounds(text, max_len)
    pieces = whole.pieces([bounds])
    for i, (a, b) in enumerate(bounds):
        batch = pieces.batch([i])
        for name in ("lexicon", "lexicon_weights"):
            assert np.array_equal(batch.inputs[name][0], whole.columns[name][a:b])


@pytest.fixture(scope="module")
def lexicon_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("lexicon-run")
    words = tmp / "lexicon.txt"
    text = (DATA / "sample-ner" / "train.bmes").read_text("utf-8")
    chars = "".join(line.split()[0] for line in text.splitlines() if line.strip())
    words.write_text("".join(f"{chars[i:i + n]} {i % 7 + 1}\n" for n in (2, 3)
                             for i in range(0, 3000, 5)), encoding="utf-8")
    cfg = load_config(tiny_config(tmp, "ner", "crf"), [f"model.lexicon={words}",
                                                       "model.lexicon_dim=8",
                                                       "train.epochs=1"])
    train(cfg, tmp / "run", progress=False)
    return tmp / "run" / "best.pt", words


def test_the_checkpoint_carries_its_lexicon(lexicon_run: tuple[Path, Path]) -> None:
    model, words = lexicon_run
    texts = ["张伟在北京大学工作。", "李明是上海人"]
    before = Tagger.load(model).entities(texts)
    words.rename(words.with_suffix(".gone"))
    try:
        assert Tagger.load(model).entities(texts) == before
    finally:
        words.with_suffix(".gone").rename(words)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_lexicon_models_predict_like_the_checkpoint(
        lexicon_run: tuple[Path, Path], tmp_path: Path, fmt: str) -> None:
    pytest.importorskip("onnxruntime")
    from bmes_tagger.export import export_model

    model, _ = lexicon_run
    eager = Tagger.load(model)
    exported = Tagger.load(export_model(model, tmp_path / ("m.onnx" if fmt == "onnx" else
                                                           "m.ts"), fmt), trust_code=True)
    texts = [line for line in (DATA / "sample-cws" / "raw.txt").read_text("utf-8")
             .splitlines() if line][:30]
    encoded = EncodedCorpus.encode([list(t.replace(" ", "")) for t in texts], eager.vocabs,
                                   eager.config)
    batch = encoded.batch(list(range(len(texts))))
    np.testing.assert_allclose(exported.network.emissions(batch.inputs, batch.lengths)
                               [batch.mask],
                               eager.network.emissions(batch.inputs, batch.lengths)[batch.mask],
                               atol=1e-4)
    assert exported.entities(texts) == eager.entities(texts)


def _edited_onnx(model: Path, out: Path, edit: Any) -> Path:
    """The ONNX export of ``model`` with its bmes_tagger metadata changed by ``edit``."""
    import json

    onnx = pytest.importorskip("onnx")
    from bmes_tagger.export import export_model

    graph = onnx.load(export_model(model, out.with_name("plain.onnx"), "onnx"))
    prop = graph.metadata_props[0]
    meta = json.loads(prop.value)
    edit(meta)
    prop.value = json.dumps(meta)
    onnx.save(graph, out)
    return out


def _one_line_refusal(model: Path, *needles: str) -> None:
    from typer.testing import CliRunner

    from bmes_tagger.cli import app

    for argv in (["info", str(model)], ["predict", str(DATA / "sample-cws" / "raw.txt"),
                                        "--model", str(model)]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 1, result.output
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert all(n in result.stderr for n in needles), result.stderr


def test_a_model_file_asking_for_huge_lexicon_sets_is_refused(
        lexicon_run: tuple[Path, Path], tmp_path: Path) -> None:
    """An outside tester: model.lexicon_max_words = 10**9 in a .pt or .onnx passed `tagger
    info` and made predict allocate 477 GiB (a MemoryError traceback)."""
    import torch

    model, _ = lexicon_run
    ckpt = torch.load(model, weights_only=True)
    ckpt["config"]["model"]["lexicon_max_words"] = 10**9
    torch.save(ckpt, tmp_path / "huge.pt")
    _one_line_refusal(tmp_path / "huge.pt", "lexicon_max_words", "must be <= 64")
    pytest.importorskip("onnxruntime")

    def huge(meta: dict) -> None:
        meta["config"]["model"]["lexicon_max_words"] = 10**9

    _one_line_refusal(_edited_onnx(model, tmp_path / "huge.onnx", huge),
                      "lexicon_max_words", "must be <= 64")


@pytest.mark.parametrize("freq", ["9" * 40, "9007199254740993", "0", "-3", "1.5", "٣"])
def test_lexicon_frequencies_a_model_file_cannot_hold_are_refused(
        lexicon_run: tuple[Path, Path], tmp_path: Path, freq: str) -> None:
    """Frequencies past int64 in a model file were an OverflowError traceback (tagger info,
    predict); anything but a whole number from 1 to 2**53 is refused in one line."""
    pytest.importorskip("onnxruntime")
    model, _ = lexicon_run

    def bad(meta: dict) -> None:
        lexicon = meta["vocabs"]["lexicon"]
        n = len(lexicon["freqs"].split("\n"))
        lexicon["freqs"] = "\n".join(["5"] * (n - 1) + [freq])

    _one_line_refusal(_edited_onnx(model, tmp_path / "f.onnx", bad), "freqs must be whole")


@pytest.mark.parametrize(("line", "ok"), [
    ("北京 12 ns", 12), ("北京 ns", None), ("北京", None), ("北京 0", 0),
    (f"北京 {2**53}", 2**53), (f"北京 {2**53 + 1}", False), ("北京 " + "9" * 30, False),
    ("北京 -5", False), ("北京 nan", False), ("北京 inf", False), ("北京 1e3", False),
    ("北京 1_000", False), ("北京 0x10", False), ("北京 2.5", False), ("北京 ²", None)])
def test_a_word_lists_frequency_column(tmp_path: Path, line: str, ok: int | None | bool) -> None:
    """A second field that reads as a number must be a whole number from 0 to 2**53 (else an
    error naming the file and line); one that does not (a POS tag) is no frequency."""
    from bmes_tagger.errors import CorpusFormatError
    from bmes_tagger.lexicon import read_lexicon

    path = tmp_path / "words.txt"
    path.write_text(f"上海 3\n{line}\n", encoding="utf-8")
    if ok is False:
        with pytest.raises(CorpusFormatError) as caught:
            read_lexicon(path)
        assert caught.value.line == 2 and "whole number from 0" in str(caught.value)
    else:
        assert read_lexicon(path) == [("上海", 3), ("北京", ok)]


def test_duplicate_words_sum_within_the_float_range() -> None:
    """The same word twice at 2**53 summed past int64's reach in training (OverflowError)."""
    from bmes_tagger.lexicon import MAX_FREQ

    lexicon = Lexicon.of([("北京", MAX_FREQ), ("北京", MAX_FREQ), ("上海", 2)], normalize=False)
    assert lexicon.words == ["上海", "北京"] and lexicon.freqs.tolist() == [2, MAX_FREQ]
