"""Promises of `tagger predict` and the Python API that an outside tester found broken: shards
of any file concatenate to the whole, every output format reads whitespace the same way,
n-best answers are distinct and honour forced boundaries, user-dictionary words survive the
max_len chunking, the API takes any iterable of texts, and `-` means standard output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bmes_tagger import Tagger
from bmes_tagger.batching import text_bounds
from bmes_tagger.cli import app
from bmes_tagger.config import load_config
from bmes_tagger.corpus import count_lines, iter_lines
from bmes_tagger.output import file_lines, predict_lines
from bmes_tagger.predict import UserDict
from bmes_tagger.tags import is_legal_bmes, tags_to_words
from bmes_tagger.train import train
from conftest import DATA, tiny_config

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-epoch models on the bundled samples (a few seconds in all): CWS with a softmax
    and with a CRF head, NER with a CRF head."""
    out = {}
    for task, head in (("cws", "softmax"), ("cws", "crf"), ("ner", "crf")):
        tmp = tmp_path_factory.mktemp(f"contract-{task}-{head}")
        cfg = load_config(tiny_config(tmp, task, head), ["train.epochs=1"])
        train(cfg, tmp / "run", progress=False)
        out[f"{task}-{head}"] = tmp / "run" / "best.pt"
    return out


# --- F13: --shard and the lines of a file --------------------------------------------------

# lines of a few characters, joined by every kind of line end, with or without a final one
_line = st.text(alphabet="我们在北京工作。 a", max_size=4)
_end = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def texts_with_line_ends(draw: st.DrawFn) -> str:
    lines = draw(st.lists(_line, max_size=8))
    ends = [draw(_end) for _ in lines]
    text = "".join(line + end for line, end in zip(lines, ends))
    if lines and draw(st.booleans()):
        text = text[:-len(ends[-1])]  # no final line end
    return text


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts_with_line_ends(), count=st.integers(1, 6))
def test_shards_of_any_file_concatenate_to_its_lines(tmp_path: Path, text: str,
                                                     count: int) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(text.encode("utf-8"))
    whole = [line for _, line in iter_lines(path)]
    assert count_lines(path) == len(whole)
    shards = [list(file_lines(path, (i, count))) for i in range(count)]
    assert [line for shard in shards for line in shard] == whole
    assert list(file_lines(path)) == whole


def test_predict_shards_of_lone_cr_and_no_final_newline(models: dict[str, Path],
                                                        tmp_path: Path) -> None:
    """Through the command line: a lone CR ends a line for the reader, and so for the shard
    split; the last line needs no line end."""
    raw = tmp_path / "in.txt"
    raw.write_bytes("我们在北京\r工作。\r\n\r\r好的\n北京\r我们".encode())
    model = str(models["cws-softmax"])
    code, whole, err = invoke("predict", str(raw), "--model", model)
    assert code == 0, err
    assert whole.count("\n") == 7
    for n in (2, 3, 4, 7, 9):
        parts = []
        for i in range(n):
            code, out, err = invoke("predict", str(raw), "--model", model, "--shard", f"{i}/{n}")
            assert code == 0, err
            parts.append(out)
        assert "".join(parts) == whole, n


# --- F14: whitespace is a word boundary in every output format, and in n-best -----------------

RAW = [line for line in (DATA / "sample-cws" / "raw.txt").read_text("utf-8").splitlines()
       if line][:30]


def spaced_inside_words(tagger: Tagger, texts: list[str]) -> list[str]:
    """The texts with a space inside every word of two or more characters the model makes of
    them (after its first character), so the spaces cut what the model would join."""
    out = []
    for words in tagger.segment(texts):
        out.append("".join(w[0] + " " + w[1:] if len(w) > 1 else w for w in words))
    return out


def conll_words(record: str) -> list[str]:
    pairs = [line.split(" ") for line in record.splitlines()]
    return tags_to_words([c for c, _ in pairs], [t for _, t in pairs])


@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_cws_output_formats_agree_on_whitespace(models: dict[str, Path], head: str) -> None:
    tagger = Tagger.load(models[f"cws-{head}"])
    texts = [*spaced_inside_words(tagger, RAW[:15]), *RAW[15:], "我 们", "  北京  ", ""]
    assert any(" " in t for t in texts)
    segmented = [r.split("  ") if r else [] for r in predict_lines(tagger, texts, "segmented")]
    jsonl = [json.loads(r)["words"] for r in predict_lines(tagger, texts, "jsonl")]
    conll = [conll_words(r) for r in predict_lines(tagger, texts, "conll")]
    assert segmented == jsonl == conll
    for text, words in zip(texts, conll):
        assert _crosses_no_gap(words, text.split()), text
    # tag() reads whitespace the same way: no word of the tags crosses it
    for text, pairs in zip(texts, tagger.tag(texts)):
        chunks = text.split()
        words = tags_to_words([c for c, _ in pairs], [t for _, t in pairs])
        assert _crosses_no_gap(words, chunks), text


def _crosses_no_gap(words: list[str], chunks: list[str]) -> bool:
    """Whether the words, read in order, tile the whitespace-separated chunks."""
    i = 0
    for chunk in chunks:
        got = ""
        while got != chunk:
            if i == len(words) or len(got) + len(words[i]) > len(chunk):
                return False
            got += words[i]
            i += 1
    return i == len(words)


def test_crf_nbest_answers_are_distinct_and_honour_whitespace(models: dict[str, Path]) -> None:
    tagger = Tagger.load(models["cws-crf"])
    texts = spaced_inside_words(tagger, RAW[:10])
    records = [json.loads(r) for r in predict_lines(tagger, texts, nbest=8)]
    for text, record, analyses in zip(texts, records, tagger.nbest(texts, k=8)):
        words = [tuple(a["words"]) for a in record["nbest"]]
        assert len(set(words)) == len(words), text  # distinct analyses
        assert all(_crosses_no_gap(list(w), text.split()) for w in words)
        for pairs, _ in analyses:  # the tags themselves honour the boundaries
            tags_words = tags_to_words([c for c, _ in pairs], [t for _, t in pairs])
            assert _crosses_no_gap(tags_words, text.split()), text
        probs = [a["prob"] for a in record["nbest"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    # the best analysis is the one-best output (of lines that the one-best does not cut at
    # data.max_len; n-best decodes every line whole)
    short = [i for i, text in enumerate(texts)
             if len("".join(text.split())) <= tagger.config.data.max_len]
    assert len(short) >= 5
    one_best = tagger.segment([texts[i] for i in short])
    assert [records[i]["nbest"][0]["words"] for i in short] == one_best


def test_ner_whitespace_is_skipped_not_a_boundary(models: dict[str, Path]) -> None:
    """What the README says: for NER whitespace is not a character and not a boundary; the
    model reads the text without it, and an entity may span it (its text keeps it)."""
    ner = Tagger.load(models["ner-crf"])
    text = "张伟在北京大学工作。"
    spaced = "张 伟在北 京大学 工作。"
    assert [t for _, t in ner.tag([spaced])[0]] == [t for _, t in ner.tag([text])[0]]
    plain, with_spaces = ner.entities([text, spaced])
    assert [(e.type, e.text.replace(" ", "")) for e in with_spaces] == \
        [(e.type, e.text) for e in plain]
    assert all(spaced[e.start:e.end] == e.text for e in with_spaces)
    conll = next(iter(predict_lines(ner, [spaced], "conll")))
    assert [line.split(" ")[1] for line in conll.splitlines()] == \
        [t for _, t in ner.tag([text])[0]]


# --- F16: the API takes any iterable of str, once; a bare str is a TypeError ------------------


def test_api_takes_any_iterable_of_texts(models: dict[str, Path]) -> None:
    cws = Tagger.load(models["cws-crf"])
    ner = Tagger.load(models["ner-crf"])
    texts = ["我们在北京工作。", "", "张伟 在上海"]
    calls = {"segment": cws.segment, "tag": cws.tag, "confidence": cws.confidence,
             "nbest": cws.nbest, "pos_tag": cws.pos_tag, "entities": ner.entities,
             "ner confidence": ner.confidence}
    for name, call in calls.items():
        expected = call(list(texts))
        assert len(expected) == len(texts), name
        assert call(tuple(texts)) == expected, name
        assert call(t for t in texts) == expected, name  # a generator, consumed once
        assert call(iter(texts)) == expected, name
        assert call(dict.fromkeys(texts)) == expected, name  # any iterable: dict keys
        with pytest.raises(TypeError, match=r"got one str; pass \[text\]"):
            call(texts[0])
        with pytest.raises(TypeError, match=r"texts\[1\]: expected str, got int"):
            call(["好", 3])
    assert cws.tag_tokens(list(t) for t in texts) == cws.tag_tokens([list(t) for t in texts])


# --- F15: user-dictionary words survive the data.max_len chunking ---------------------------

# a long line without punctuation: chunks are cut at exactly max_len (40 in the tiny config)
LONG = "".join(c for c in "".join(RAW) if c not in "，。！？、：；")[:130]


@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_dict_words_across_a_chunk_boundary_and_longer_than_max_len(
        models: dict[str, Path], head: str) -> None:
    tagger = Tagger.load(models[f"cws-{head}"])
    max_len = tagger.config.data.max_len
    assert max_len == 40 and len(LONG) > 3 * max_len
    straddling = LONG[max_len - 3:max_len + 3]  # across the first cut
    longer = LONG[60:60 + max_len + 15]  # longer than a chunk
    assert LONG.count(straddling) == LONG.count(longer) == 1
    for words in ([straddling], [longer], [straddling, longer]):
        (got,) = tagger.segment([LONG], user_dict=UserDict(words))
        assert "".join(got) == LONG
        for word in words:
            assert word in got, (word, got)


def test_predict_dict_words_across_chunks_on_the_command_line(models: dict[str, Path],
                                                              tmp_path: Path) -> None:
    raw, words = tmp_path / "in.txt", tmp_path / "words.txt"
    raw.write_text(LONG + "\n" + LONG[:50] + "\n", encoding="utf-8")
    straddling, longer = LONG[37:43], LONG[60:115]
    words.write_text(f"{straddling}\n{longer} 3 n\n", encoding="utf-8")
    code, out, err = invoke("predict", str(raw), "--model", str(models["cws-crf"]),
                            "--dict", str(words))
    assert code == 0, err
    first, second = (line.split("  ") for line in out.splitlines())
    assert straddling in first and longer in first and straddling in second


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 120), max_len=st.integers(2, 30), data=st.data())
def test_text_bounds_never_cut_a_kept_span(n: int, max_len: int, data: st.DataObject) -> None:
    cuts = sorted(set(data.draw(st.lists(st.integers(0, n), max_size=12))) | {0, n})
    spans = [(a, b) for a, b in zip(cuts, cuts[1:]) if data.draw(st.booleans())]
    tokens = data.draw(st.lists(st.sampled_from("我们。，好"), min_size=n, max_size=n))
    bounds = text_bounds(tokens, max_len, keep=spans)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a < b for a, b in bounds) and all(
        b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))
    for a, b in bounds:
        assert not any(x < a < y for x, y in spans)  # no cut inside a kept span
        # longer than max_len only to hold a kept span that is itself longer
        assert b - a <= max_len or any(x == a and y == b and y - x > max_len for x, y in spans)


# --- `-` as an output means standard output (convert, predict), or is refused ----------------


def test_dash_output_is_standard_output(models: dict[str, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    corpus = DATA / "sample-cws" / "test.txt"
    code, out, err = invoke("convert", str(corpus), str(tmp_path / "test.bmes"),
                            "--from", "segmented", "--to", "conll")
    assert code == 0, err
    code, out, err = invoke("convert", str(corpus), "-", "--from", "segmented", "--to", "conll")
    assert code == 0, err
    assert out == (tmp_path / "test.bmes").read_text(encoding="utf-8")  # data only
    assert "sentences" in err and "<stdout>" in err  # the summary goes to stderr
    raw = DATA / "sample-cws" / "raw.txt"
    code, plain, _ = invoke("predict", str(raw), "--model", str(models["cws-softmax"]))
    code, dashed, err = invoke("predict", str(raw), "--model", str(models["cws-softmax"]),
                               "--output", "-")
    assert code == 0 and dashed == plain, err
    for args in (["export", str(models["cws-softmax"]), "--output", "-"],
                 ["plot", str(models["cws-softmax"].parent), "--output", "-"],
                 ["lexicon", str(raw), "--model", str(models["cws-softmax"]), "--out", "-"],
                 ["vectors", str(raw), "--out", "-"]):
        code, _, err = invoke(*args)
        assert code == 2 and "standard output" in err, (args, err)
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("text", ["我 们", "北京", "x我", "我们 在北京", "在 北 京 工"])
def test_nbest_and_confidence_are_probabilities_over_the_taggings_decoding_considers(
        models: dict[str, Path], text: str) -> None:
    """Oracle: brute force over every tag sequence, scored by the CRF, kept when it is legal
    BMES and puts no word across whitespace. The n-best probabilities are those sequences'
    shares (so all of them sum to 1), and confidence is the marginal among them (an outside
    tester found both normalised over illegal taggings: a forced 'S S' got 0.44)."""
    import itertools

    import numpy as np

    tagger = Tagger.load(models["cws-crf"])
    tokens = [c for c in text if not c.isspace()]
    gaps, seen = set(), 0  # token indices with whitespace before them
    for c in text:
        if c.isspace():
            gaps.add(seen)
        else:
            seen += 1
    emissions, transitions = tagger._one_scores(tokens, list(range(len(tokens))))
    start, trans, end = tagger.network.transitions()
    legal, scores = [], []
    for path in itertools.product(range(len(tagger.tags)), repeat=len(tokens)):
        tags = [tagger.tags[t] for t in path]
        words = tags_to_words(tokens, tags)
        bounds = set(itertools.accumulate(len(w) for w in words))
        if not is_legal_bmes(tags) or not gaps <= bounds:
            continue
        legal.append(path)
        scores.append(start[path[0]] + end[path[-1]] + sum(
            emissions[i, t] for i, t in enumerate(path)) + sum(
            trans[a, b] for a, b in zip(path, path[1:])))
    shares = np.exp(np.array(scores) - np.logaddexp.reduce(scores))
    got = {tuple(tagger.tags.index(t) for _, t in pairs): p
           for pairs, p in tagger.nbest([text], k=len(legal))[0]}
    assert set(got) == set(legal)
    for path, share in zip(legal, shares):
        assert got[path] == pytest.approx(share, abs=1e-5)
    best = legal[int(np.argmax(shares))]
    for j, (_, tag, p) in enumerate(tagger.confidence([text])[0]):
        assert tag == tagger.tags[best[j]]
        assert p == pytest.approx(sum(s for path, s in zip(legal, shares)
                                      if path[j] == best[j]), abs=1e-5)


def test_dict_with_nbest_is_refused_not_ignored(models: dict[str, Path], tmp_path: Path) -> None:
    words = tmp_path / "dict.txt"
    words.write_text("北京大学\n", encoding="utf-8")
    text = tmp_path / "in.txt"
    text.write_text("北京大学工作\n", encoding="utf-8")
    code, out, err = invoke("predict", str(text), "--model", str(models["cws-crf"]),
                            "--dict", str(words), "--nbest", "2")
    assert code == 1 and out == "" and "without --nbest" in err, err


def test_train_output_dash_is_a_usage_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # where a run directory named - would appear
    code, _, err = invoke("train", str(tiny_config(tmp_path)), "--output", "-")
    assert code == 2 and "--output" in err
    assert not (tmp_path / "-").exists()


# --- decoding many batches at once ------------------------------------------------------------


@pytest.mark.parametrize("model", ["cws-softmax", "cws-crf", "ner-crf"])
def test_decoding_batches_together_equals_decoding_each_alone(
        models: dict[str, Path], model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prediction decodes groups of batches in one Viterbi pass; the tags, words and entities
    are those of decoding every batch on its own (DECODE_CELLS 1) and of every line alone,
    with spaces (forced boundaries), a user dictionary and lines longer than max_len."""
    import bmes_tagger.predict as predict_module

    tagger = Tagger.load(models[model])
    lines = [line for line in (DATA / "sample-cws" / "raw.txt").read_text(
        encoding="utf-8").splitlines() if line.strip()][:120]
    lines += ["我们 在北京 工作。", "好", "他说：" + "我们在北京工作。" * 40]
    user_dict = UserDict(["北京工作", "我们在"]) if model.startswith("cws") else None

    def run(texts: list[str]) -> list:
        if model.startswith("cws"):
            return [tagger.segment(texts, 4, user_dict), tagger.tag(texts, 4)]
        return [tagger.entities(texts, 4), tagger.tag(texts, 4)]

    together = run(lines)
    one_by_one = [sum((run([line])[k] for line in lines), []) for k in range(2)]
    assert together == one_by_one
    monkeypatch.setattr(predict_module, "DECODE_CELLS", 1)
    assert run(lines) == together
    assert len(together[1]) == len(lines)
