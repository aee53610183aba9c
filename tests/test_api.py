"""The Python API: Tagger.load / segment / entities / tag, user dictionary, n-best, confidence."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bmes_tagger import Tagger
from bmes_tagger.config import load_config
from bmes_tagger.predict import UserDict
from bmes_tagger.train import train
from conftest import DATA, tiny_config

TEXTS = [line for line in (DATA / "sample-cws" / "raw.txt").read_text("utf-8").splitlines()
         if line][:40]


@pytest.fixture(scope="module")
def crf_tagger(tmp_path_factory: pytest.TempPathFactory) -> Tagger:
    tmp = tmp_path_factory.mktemp("api")
    cfg = load_config(tiny_config(tmp, head="crf"), ["train.epochs=1"])
    train(cfg, tmp / "run", progress=False)
    return Tagger.load(tmp / "run" / "best.pt")


def spans(words: list[str]) -> list[tuple[int, int]]:
    out, i = [], 0
    for w in words:
        out.append((i, i + len(w)))
        i += len(w)
    return out


def test_user_dictionary_keeps_a_split_word_whole_and_nothing_else_changes(
        crf_tagger: Tagger) -> None:
    before = crf_tagger.segment(TEXTS)
    tried = 0
    for text, words in zip(TEXTS, before):
        for k in range(len(words) - 1):
            merged = words[k] + words[k + 1]
            if len(merged) > 4 or not all("\u4e00" <= c <= "\u9fff" for c in merged):
                continue
            if merged in text.replace(merged, "", 1):
                continue  # occurs twice: keep the check simple
            tried += 1
            (after,) = crf_tagger.segment([text], user_dict=UserDict([merged]))
            assert merged in after
            start = len("".join(words[:k]))
            region = (start, start + len(merged))
            far = [s for s in spans(words) if s[1] <= region[0] - 1 or s[0] >= region[1] + 1]
            assert set(far) <= set(spans(after))
            break
        if tried >= 5:
            break
    assert tried >= 3


def test_user_dictionary_longest_match_first() -> None:
    d = UserDict(["北京", "北京大学", "大学生"])
    assert d.matches(list("在北京大学生活")) == [(1, 5)]
    assert d.matches(list("好")) == []


def test_nbest_and_confidence(crf_tagger: Tagger) -> None:
    (best,) = crf_tagger.nbest([TEXTS[0]], k=4)
    assert 1 <= len(best) <= 4
    probs = [p for _, p in best]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert [t for _, t in best[0][0]] == [t for _, t in crf_tagger.tag([TEXTS[0]])[0]]
    (conf,) = crf_tagger.confidence([TEXTS[0]])
    assert len(conf) == len(TEXTS[0].replace(" ", ""))
    assert all(0.0 <= p <= 1.0 for _, _, p in conf)
    assert crf_tagger.nbest([""]) == [[([], 1.0)]]


def test_nbest_needs_crf(tmp_path: Path) -> None:
    train(load_config(tiny_config(tmp_path), ["train.epochs=1"]), tmp_path / "run",
          progress=False)
    with pytest.raises(ValueError, match="model.head: crf"):
        Tagger.load(tmp_path / "run" / "best.pt").nbest(["好"])


def test_cli_dict_and_nbest(crf_tagger: Tagger, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from bmes_tagger.checkpoint import make_payload, save_checkpoint
    from bmes_tagger.cli import app

    model = tmp_path / "m.pt"
    save_checkpoint(make_payload(crf_tagger.config, crf_tagger.vocabs, crf_tagger.tags, [],
                                 crf_tagger.network.module.state_dict()), model)
    raw = tmp_path / "in.txt"
    raw.write_text(TEXTS[0] + "\n\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(raw), "--model", str(model), "--nbest", "3"])
    assert result.exit_code == 0, result.stderr
    first, empty = (json.loads(x) for x in result.stdout.splitlines())
    assert first["text"] == TEXTS[0] and 1 <= len(first["nbest"]) <= 3
    assert "".join(first["nbest"][0]["words"]) == TEXTS[0].replace(" ", "")
    assert empty == {"text": "", "nbest": [{"words": [], "prob": 1.0}]}
    words = tmp_path / "dict.txt"
    words.write_text(TEXTS[0][:4] + "\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", str(raw), "--model", str(model), "--dict",
                                 str(words)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].split("  ")[0] == TEXTS[0][:4]
    result = runner.invoke(app, ["predict", str(raw), "--model", str(model), "--dict",
                                 str(words), "--format", "conll"])
    assert result.exit_code == 1 and "--dict works with" in result.stderr


def test_info_and_plot(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bmes_tagger.cli import app

    train(load_config(tiny_config(tmp_path), ["train.epochs=2"]), tmp_path / "run",
          progress=False)
    runner = CliRunner()
    result = runner.invoke(app, ["info", str(tmp_path / "run" / "last.pt")])
    assert result.exit_code == 0, result.stderr
    assert "task         cws" in result.stdout and "tags         4: B M E S" in result.stdout
    assert "resumable    yes: 2 epochs" in result.stdout and "parameters" in result.stdout
    pytest.importorskip("matplotlib", reason="tagger plot needs the plot extra")
    result = runner.invoke(app, ["plot", str(tmp_path / "run")])
    assert result.exit_code == 0, result.stderr
    png = tmp_path / "run" / "training.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = runner.invoke(app, ["plot", str(tmp_path)])
    assert result.exit_code == 1 and "no metrics.jsonl" in result.stderr


def test_bf16_predict_agrees_with_float32(crf_tagger: Tagger, tmp_path: Path) -> None:
    import torch

    from bmes_tagger.checkpoint import make_payload, save_checkpoint

    model = tmp_path / "m.pt"
    save_checkpoint(make_payload(crf_tagger.config, crf_tagger.vocabs, crf_tagger.tags, [],
                                 crf_tagger.network.module.state_dict()), model)
    fp32, bf16 = Tagger.load(model), Tagger.load(model, bf16=True)
    a, b = fp32.tag(TEXTS), bf16.tag(TEXTS)
    same = sum(x == y for sa, sb in zip(a, b) for x, y in zip(sa, sb))
    total = sum(len(s) for s in a)
    assert [len(s) for s in a] == [len(s) for s in b]
    assert same / total > 0.97  # bf16 rounding may flip a rare near-tie
    assert not torch.is_autocast_enabled("cpu")  # the context does not leak


def test_nbest_output_treats_whitespace_as_a_word_boundary(crf_tagger: Tagger) -> None:
    import json

    from bmes_tagger.output import predict_lines

    text = TEXTS[0][:3] + " " + TEXTS[0][3:]
    (record,) = (json.loads(x) for x in predict_lines(crf_tagger, [text], nbest=3))
    parts = text.split()
    for analysis in record["nbest"]:
        assert "".join(analysis["words"]) == "".join(parts)
        assert all(any(w in p for p in parts) for w in analysis["words"])
    assert record["nbest"][0]["words"] == crf_tagger.segment([text])[0]


@pytest.fixture(scope="module")
def unconstrained_tagger(crf_tagger: Tagger) -> Tagger:
    """The CRF tagger decoding without BMES constraints (so ill-formed tag sequences, even
    across chunk joins, occur) and with chunks of at most 4 characters."""
    import dataclasses

    from bmes_tagger.model import TorchNetwork

    config = crf_tagger.config
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, max_len=4),
                                 model=dataclasses.replace(config.model, constrained=False))
    module = copy.deepcopy(crf_tagger.network.module)
    with torch.no_grad():  # random transitions: more ill-formed paths
        module.crf.transitions.normal_(0.0, 3.0)
    return Tagger(TorchNetwork(module), crf_tagger.vocabs, crf_tagger.tags, config)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.text(st.sampled_from(sorted(set("".join(TEXTS[:5])))
                                               + [" ", " ", "\u3000"]), max_size=14),
                      max_size=6))
def test_segment_words_equal_the_general_word_assembly_of_the_tags(
        unconstrained_tagger: Tagger, texts: list[str]) -> None:
    # segment reads word starts off tag ids per batch; it must give the words of the lenient
    # reading of the tag strings (tags_to_spans), including ill-formed tags, chunk joins and
    # whitespace gaps (which decoding takes as forced boundaries, in both)
    from bmes_tagger.predict import _gaps, _words
    from bmes_tagger.text import split_graphemes

    tagger = unconstrained_tagger
    prepared = [split_graphemes(t) for t in texts]
    tags = tagger.tag_tokens([tok for tok, _ in prepared], batch_size=3,
                             breaks=[_gaps(tok, pos) for tok, pos in prepared])
    expected = [[w for w, _ in _words(tok, pos, t)] for (tok, pos), t in zip(prepared, tags)]
    assert tagger.segment(texts, batch_size=3) == expected


def test_predicting_never_changes_the_modules_mode_and_always_runs_it_as_shipped(
        crf_tagger: Tagger) -> None:
    """A Tagger around a module in training mode (as during dev evaluation) predicts with
    dropout off and hands the module back in training mode."""
    from bmes_tagger.model import TorchNetwork

    model = copy.deepcopy(crf_tagger.network.module)
    model.train()
    live = Tagger(TorchNetwork(model), crf_tagger.vocabs, crf_tagger.tags, crf_tagger.config)
    assert all(m.training for m in model.modules())
    expected = crf_tagger.segment(TEXTS)
    for call in (lambda: live.segment(TEXTS), lambda: live.tag(TEXTS[:3]),
                 lambda: live.confidence(TEXTS[:3]), lambda: live.nbest(TEXTS[:3], 2)):
        call()
        assert all(m.training for m in model.modules())
    assert live.segment(TEXTS) == expected
    assert live.confidence(TEXTS[:3]) == crf_tagger.confidence(TEXTS[:3])


def test_grapheme_clusters_are_never_cut(crf_tagger: Tagger) -> None:
    """A ZWJ emoji sequence, a flag, a base with a combining accent: each one character, so
    no word boundary falls inside it, and offsets still index the original text."""
    family, flag, accented = "👨\u200d👩\u200d👧", "🇨🇳", "e\u0301"
    texts = [f"我们{family}在北京", f"{flag}好 {accented}工作", family, f"{accented}{accented}"]
    for text, words in zip(texts, crf_tagger.segment(texts)):
        assert "".join(words) == text.replace(" ", "")
        for cluster in (family, flag, accented):
            for word in words:
                part = cluster in text and cluster not in word and any(
                    cluster.startswith(word[-k:]) for k in range(1, len(cluster)) if
                    len(word) >= k)
                assert not part, (cluster, words)
    pairs = crf_tagger.tag([texts[0]])[0]
    assert [c for c, _ in pairs] == ["我", "们", family, "在", "北", "京"]


def test_eval_scores_the_text_a_user_would_predict(crf_tagger: Tagger, tmp_path: Path) -> None:
    """Oracle across eval/predict: evaluating a gold file equals predicting its raw text (the
    CoNLL-U '# text' line, with its spaces) and scoring that with the SIGHAN-exact scorer.
    Spaces are word boundaries in predict; eval used to glue 'he said to me' together."""
    from bmes_tagger.corpus import read_corpus
    from bmes_tagger.evaluate import evaluate
    from bmes_tagger.metrics import cws_scores

    sentences = [(["he", "said", "to", "me"], [True, True, True, False]),
                 (["我们", "在", "北京", "work", "ing", "。"],
                  [False, False, True, False, False, False]),
                 (["今天", "iPhone", "7", "发布"], [False, True, False, False])]
    lines = []
    raw = []
    for words, after in sentences:
        raw.append("".join(w + (" " if a else "") for w, a in zip(words, after)).strip())
        lines.append(f"# text = {raw[-1]}")
        for i, (w, a) in enumerate(zip(words, after), start=1):
            lines.append(f"{i}\t{w}\t_\tX\t_\t_\t_\t_\t_\t{'_' if a else 'SpaceAfter=No'}")
        lines.append("")
    path = tmp_path / "gold.conllu"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    gold = read_corpus(path, "conllu", "cws")
    via_eval = evaluate(crf_tagger, gold)
    via_predict = cws_scores([w for w, _ in sentences], crf_tagger.segment(raw),
                             crf_tagger.train_words or None)
    assert via_eval == via_predict
    # segmented gold: its spaces are annotation; where two words meet with ASCII letters or
    # digits, the raw text had a space too
    seg = tmp_path / "gold.txt"
    seg.write_text("he  said  to  me\n", encoding="utf-8")
    got = evaluate(crf_tagger, read_corpus(seg, "segmented", "cws"))
    assert got == cws_scores([["he", "said", "to", "me"]], crf_tagger.segment(["he said to me"]),
                             crf_tagger.train_words or None)
