"""Tests for bmes_tagger.metrics: CWS against the SIGHAN 2005 scorer, NER against seqeval."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmes_tagger.metrics import _diff_changed, _scorer_words, cws_scores, ner_scores
from bmes_tagger.tags import bmes_to_iobes, spans_to_tags, tags_to_spans

# --- CWS: a hand-made example scored by the official scorer -------------------------------------
#
# Every number below came from the SIGHAN 2005 scorer (icwb2-data ``scripts/score``), run on files
# written from these lists (words joined by two spaces, one sentence per line, empty sentence as
# an empty line) with
#     perl score words.utf8 gold.utf8 pred.utf8
# plus, for the raw counts, a copy of it that also prints its counters ($RawRecall,
# $RawPrecision, $OOV, $IV, $OOVMISSED, $IVMISSED). The SIGHAN_SCORE test re-runs it on them.

EXAMPLE_GOLD = [
    ["我们", "都", "喜欢", "北京", "烤鸭"],
    ["他", "说", "看", "看", "看看"],
    ["新华社", "记者", "报道", "今天", "下午"],
    [],
    ["中华", "人民", "共和", "的", "国家", "统计", "数据", "的的的的的的"],
    ["这", "是", "张三丰", "的", "太极拳"],
    ["２００１年", "新年", "钟声", "即将", "敲响"],
]
EXAMPLE_PRED = [
    ["我们", "都", "喜", "欢", "北京烤鸭"],  # a split and a merge
    ["他", "说", "看看", "看", "看"],  # diff matches 看 看 at shifted offsets: 4 correct, not 2
    ["新华社记者", "报道", "今天", "下", "午"],
    [],
    # GNU diff discards the gold 的 (it occurs 7 times here, amid words that match nothing), so
    # nothing is correct although a longest common subsequence would match one 的.
    ["中", "华人", "民共", "和", "的", "国", "家统", "计数", "据", *["的"] * 6],
    ["这是", "张三丰", "的", "太极", "拳"],  # 张三丰 is out of vocabulary and matched
    ["２００１年", "新年", "钟声", "即将", "敲响"],
]
EXAMPLE_WORDS = {
    "我们", "都", "喜欢", "北京", "他", "说", "看", "看看", "记者", "报道", "今天", "下午",
    "中华", "人民", "的", "国家", "统计", "数据", "这", "是", "太极拳", "新年", "钟声", "即将",
    "敲响", "太极",
}

# Scorer quirks, in a second example scored the same way.
_URL = "http://www.example.com/" + "a" * 47  # 70 ASCII characters: diff shows the first 61
_ID = "ID" + "0123456789" * 7  # 72 ASCII characters
QUIRK_GOLD = [
    ["甲", "|", "乙"],  # a matched "|" looks like a change marker: missed, but not wrong
    ["\u3000", "丙", "丁"],  # U+3000 opens the line: an empty first word, never missed
    ["网址", _URL, "。"],  # OOV lookup of the URL's first 61 characters, which are listed
    ["编号", _ID, "戊"],  # _ID changed, but it fills diff's column: not counted as missed
    ["<", "己", ">"],
]
QUIRK_PRED = [
    ["甲", "|", "乙"],
    ["\u3000", "丙丁"],
    ["网址", _URL, "。"],
    ["编号" + _ID, "戊"],
    ["<", "己>"],
]
QUIRK_WORDS = {"甲", "乙", "丙", "丁", "网址", _URL[:61], "编号", _ID, "己", ">"}


def test_example_matches_the_perl_scorer() -> None:
    s = cws_scores(EXAMPLE_GOLD, EXAMPLE_PRED, EXAMPLE_WORDS)
    # === TOTAL TRUE WORD COUNT: 33, === TOTAL TEST WORD COUNT: 40; raw: correct 15 (recall and
    # precision), oov=6 iv=27 oov_missed=4 iv_missed=14
    assert (s.gold_words, s.pred_words, s.correct_words) == (33, 40, 15)
    assert s.recall == 15 / 33 and s.precision == 15 / 40
    assert s.oov_rate == 6 / 33
    assert s.oov_recall == 1 - 4 / 6 and s.iv_recall == 1 - 14 / 27
    # RECALL 0.455, PRECISION 0.375, F 0.411, OOV Rate 0.182, OOV Recall 0.333, IV Recall 0.481
    assert _printed(s) == ["0.455", "0.375", "0.411", "0.182", "0.333", "0.481"]


@pytest.mark.parametrize(
    ("line", "correct"),
    # the scorer's per-line TRUE WORDS RECALL: 0.400, 0.800, 0.400, 0.000, 0.400, 1.000
    [(0, 2), (1, 4), (2, 2), (4, 0), (5, 2), (6, 5)],
)
def test_example_lines_match_the_perl_scorer(line: int, correct: int) -> None:
    s = cws_scores([EXAMPLE_GOLD[line]], [EXAMPLE_PRED[line]])
    assert s.correct_words == correct
    assert s.precision == correct / len(EXAMPLE_PRED[line])


def test_quirks_match_the_perl_scorer() -> None:
    s = cws_scores(QUIRK_GOLD, QUIRK_PRED, QUIRK_WORDS)
    # TRUE WORD COUNT 15, TEST WORD COUNT 12; raw: correct 8 for recall but 9 for precision,
    # oov=5 iv=9 (the empty word has neither) oov_missed=2 iv_missed=5
    assert (s.gold_words, s.pred_words, s.correct_words) == (15, 12, 8)
    assert s.precision == 9 / 12
    assert s.oov_rate == 5 / 15 and s.oov_recall == 1 - 2 / 5 and s.iv_recall == 1 - 5 / 9
    # RECALL 0.533, PRECISION 0.750, F 0.623, OOV Rate 0.333, OOV Recall 0.600, IV Recall 0.444
    assert _printed(s) == ["0.533", "0.750", "0.623", "0.333", "0.600", "0.444"]


def _printed(s) -> list[str]:
    """The six figures as the scorer prints them (sprintf "%2.3f")."""
    return [f"{x:.3f}" for x in (s.recall, s.precision, s.f1, s.oov_rate, s.oov_recall,
                                 s.iv_recall)]


# --- CWS: behaviour and invariants ---------------------------------------------------------------


def test_perfect_segmentation() -> None:
    s = cws_scores(EXAMPLE_GOLD, EXAMPLE_GOLD, EXAMPLE_WORDS)
    assert (s.precision, s.recall, s.f1, s.oov_recall, s.iv_recall) == (1, 1, 1, 1, 1)
    assert s.correct_words == s.gold_words == s.pred_words == 33


def test_without_word_list_and_without_oov_words() -> None:
    s = cws_scores([["a", "bc"]], [["ab", "c"]])
    assert (s.oov_rate, s.oov_recall, s.iv_recall) == (None, None, None)
    assert (s.precision, s.recall, s.f1, s.correct_words) == (0, 0, 0, 0)
    # every gold word in the list: OOV rate 0, OOV recall undefined (the scorer prints "--")
    s = cws_scores([["a", "bc"]], [["a", "b", "c"]], ["a", "bc"])
    assert (s.oov_rate, s.oov_recall, s.iv_recall) == (0.0, None, 0.5)
    assert s.to_dict()["oov_recall"] is None


def test_no_gold_words() -> None:
    s = cws_scores([[], []], [[], []], {"a"})
    assert (s.precision, s.recall, s.f1, s.gold_words, s.oov_rate) == (0, 0, 0, 0, None)


def test_character_mismatch_names_the_sentence() -> None:
    with pytest.raises(ValueError, match=r"sentence 1: .*'abc'.*'abd'"):
        cws_scores([["a"], ["ab", "c"]], [["a"], ["a", "bd"]])
    with pytest.raises(ValueError, match="2 gold sentences but 1"):
        cws_scores([["a"], ["b"]], [["a"]])


def test_surrounding_whitespace_is_not_a_mismatch() -> None:
    s = cws_scores([["ab", "c"]], [[" ab", "c\n"]])
    assert s.correct_words == 2 and s.precision == 1


def test_scorer_words_split_like_perl() -> None:
    assert _scorer_words(["a", "", "b c"]) == [b"a", b"b", b"c"]
    assert _scorer_words(["\u3000", "a\u3000"]) == [b"", b"a"]  # leading field kept
    assert _scorer_words(["a\rb", " "]) == [b"ab"]
    assert _scorer_words([]) == []


def test_to_dict_round_trip() -> None:
    s = cws_scores(EXAMPLE_GOLD, EXAMPLE_PRED, EXAMPLE_WORDS)
    d = s.to_dict()
    assert d["correct_words"] == 15 and type(s)(**d) == s


def _lcs(a: list, b: list) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


_tokens = st.lists(st.sampled_from([b"a", b"b", b"c", b"d", b"e"]), max_size=40)


@settings(max_examples=200, deadline=None)
@given(_tokens, _tokens)
def test_diff_matches_a_common_subsequence(a: list[bytes], b: list[bytes]) -> None:
    a_changed, b_changed = _diff_changed(a, b)
    kept_a = [w for w, c in zip(a, a_changed) if not c]
    kept_b = [w for w, c in zip(b, b_changed) if not c]
    assert kept_a == kept_b  # the unchanged lines pair up in order
    lcs = _lcs(a, b)
    assert len(kept_a) <= lcs
    # Only diff's discarding of lines with more than 5 matches can cost a match.
    if max(Counter(a + b).values(), default=0) <= 5:
        assert len(kept_a) == lcs


@pytest.mark.skipif(shutil.which("diff") is None, reason="needs GNU diff on PATH")
def test_diff_port_agrees_with_gnu_diff(tmp_path: Path) -> None:
    version = subprocess.run(["diff", "--version"], capture_output=True, text=True).stdout
    if "GNU diffutils" not in version:
        pytest.skip("diff on PATH is not GNU diff")
    rng = random.Random(7)
    for case in range(60):
        # frequent words amid words that match nothing: the pattern diff discards
        frequent = [b"f%d" % i for i in range(rng.choice([1, 2, 3]))]
        fresh = iter(range(10**6))
        a = [rng.choice(frequent) if rng.random() < 0.4 else b"u%d" % next(fresh)
             for _ in range(rng.choice([10, 40, 120]))]
        b = []
        for w in a:
            r = rng.random()
            b += ([b"x%d" % next(fresh)] if r < 0.25 else [] if r < 0.3
                  else [w, rng.choice(frequent)] if r < 0.35 else [w])
        changed = _gnu_diff_changed(tmp_path, a, b)
        a_changed, b_changed = _diff_changed(a, b)
        assert (sum(a_changed), sum(b_changed)) == changed[:2], case
        assert Counter(w for w, c in zip(a, a_changed) if not c) == changed[2], case


def _gnu_diff_changed(tmp: Path, a: list[bytes], b: list[bytes]) -> tuple[int, int, Counter]:
    """Changed line counts of both files, and the unchanged lines of the first, by real diff."""
    (tmp / "a").write_bytes(b"".join(w + b"\n" for w in a))
    (tmp / "b").write_bytes(b"".join(w + b"\n" for w in b))
    out = subprocess.run(["diff", str(tmp / "a"), str(tmp / "b")], capture_output=True).stdout
    changed_a: set[int] = set()
    changed_b = 0
    for m in re.finditer(rb"^(\d+)(?:,(\d+))?([acd])(\d+)(?:,(\d+))?$", out, re.M):
        a1, a2, op, b1, b2 = m.groups()
        if op != b"a":
            changed_a.update(range(int(a1), int(a2 or a1) + 1))
        if op != b"d":
            changed_b += int(b2 or b1) - int(b1) + 1
    kept = Counter(w for i, w in enumerate(a, 1) if i not in changed_a)
    return len(changed_a), changed_b, kept


# --- CWS: the real scorer, when available --------------------------------------------------------

SIGHAN_SCORE = os.environ.get("SIGHAN_SCORE")


@pytest.mark.skipif(
    not SIGHAN_SCORE or not Path(SIGHAN_SCORE).is_file() or shutil.which("perl") is None,
    reason="set SIGHAN_SCORE to a copy of icwb2-data/scripts/score (and have perl) to compare "
           "with the official scorer",
)
def test_agrees_with_the_perl_scorer(tmp_path: Path) -> None:
    rng = random.Random(2005)
    chars = list("中国人民的一是了不在有大年上")
    cases = [(EXAMPLE_GOLD, EXAMPLE_PRED, EXAMPLE_WORDS), (QUIRK_GOLD, QUIRK_PRED, QUIRK_WORDS)]
    for markers in (False, True):
        # Column-filling words and lone | < > words are kept apart: metrics.py does not
        # reproduce a "|" diff line that pairs the two.
        if markers:
            gold = [_random_words(rng, [*chars, "|", "<", ">"], 25) for _ in range(40)]
        else:
            gold = [_random_words(rng, chars, 70) for _ in range(40)]
            gold += [[_ID if rng.random() < 0.5 else "ab" * 31, *_random_words(rng, chars, 40)]
                     for _ in range(5)]
        pred = [_perturb(rng, g) for g in gold]
        vocab = {w for g in gold for w in g if rng.random() < 0.7}
        cases.append((gold, pred, vocab))
    for k, (gold, pred, vocab) in enumerate(cases):
        files = {}
        for name, lines in (("gold", gold), ("pred", pred), ("words", [[w] for w in vocab])):
            files[name] = tmp_path / f"{k}_{name}.utf8"
            files[name].write_text("".join("  ".join(ws) + "\n" for ws in lines), "utf-8")
        out = subprocess.run(["perl", SIGHAN_SCORE, str(files["words"]), str(files["gold"]),
                              str(files["pred"])], capture_output=True, text=True,
                             check=True, cwd=tmp_path).stdout
        s = cws_scores(gold, pred, vocab)
        summary = dict(re.findall(r"^=== ([A-Za-z ]+):\t(\S+)$", out, re.M))
        assert int(summary["TOTAL TRUE WORD COUNT"]) == s.gold_words, k
        assert int(summary["TOTAL TEST WORD COUNT"]) == s.pred_words, k
        assert [summary[f] for f in ("TOTAL TRUE WORDS RECALL", "TOTAL TEST WORDS PRECISION",
                                     "F MEASURE", "OOV Rate")] == _printed(s)[:4], k
        for figure, ours in (("OOV Recall Rate", s.oov_recall), ("IV Recall Rate", s.iv_recall)):
            assert summary[figure] == ("--" if ours is None else f"{ours:.3f}"), (k, figure)
        # per line: 3 decimals of correct/words pin the count on lines this short
        per_line = re.findall(r"TRUE WORDS RECALL:\t(\S+)\nTEST WORDS PRECISION:\t(\S+)", out)
        lines = [(g, p) for g, p in zip(gold, pred) if _scorer_words(g)]
        assert len(per_line) == len(lines), k
        for (g, p), figures in zip(lines, per_line):
            line = cws_scores([g], [p])
            assert (f"{line.recall:.3f}", f"{line.precision:.3f}") == figures, (k, g, p)


def _random_words(rng: random.Random, alphabet: list[str], max_chars: int) -> list[str]:
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, max_chars)))
    cuts = sorted(rng.sample(range(1, len(text)), k=rng.randint(0, len(text) - 1)))
    return [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]


def _perturb(rng: random.Random, words: list[str]) -> list[str]:
    """Random merges of neighbours and splits of words, keeping the characters."""
    out: list[str] = []
    for w in words:
        parts = [w]
        if len(w) > 1 and rng.random() < 0.3:
            k = rng.randrange(1, len(w))
            parts = [w[:k], w[k:]]
        for part in parts:
            if out and rng.random() < 0.3:
                out[-1] += part
            else:
                out.append(part)
    return out


# --- NER ----------------------------------------------------------------------------------------

NER_GOLD = [
    ["B-PER", "E-PER", "O", "B-LOC", "E-LOC"],
    ["S-ORG", "O", "B-PER", "M-PER", "E-PER"],
]
NER_PRED = [
    ["B-PER", "E-PER", "O", "B-LOC", "O"],  # LOC fragment (3, 4): wrong
    ["S-ORG", "O", "B-PER", "E-LOC", "E-PER"],  # illegal: fragments PER(2,3) LOC(3,4) PER(4,5)
]


def test_ner_hand_computed() -> None:
    s = ner_scores(NER_GOLD, NER_PRED)
    # gold PER(0,2) LOC(3,5) ORG(0,1) PER(2,5); predicted PER(0,2) LOC(3,4) ORG(0,1)
    # PER(2,3) LOC(3,4) PER(4,5); correct PER(0,2) ORG(0,1)
    assert (s.gold_entities, s.pred_entities, s.correct_entities) == (4, 6, 2)
    assert s.precision == pytest.approx(2 / 6) and s.recall == pytest.approx(2 / 4)
    assert s.f1 == pytest.approx(0.4)
    assert s.per_type == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "ORG": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
        "PER": {"precision": pytest.approx(1 / 3), "recall": 0.5, "f1": pytest.approx(0.4),
                "support": 2},
    }


def test_ner_illegal_prediction_still_counts() -> None:
    # M-PER E-PER decodes leniently to one span that matches; a lone M is a wrong fragment
    s = ner_scores([["B-PER", "E-PER", "O"]], [["M-PER", "E-PER", "M-LOC"]])
    assert (s.gold_entities, s.pred_entities, s.correct_entities) == (1, 2, 1)
    assert s.per_type["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_ner_perfect_empty_and_errors() -> None:
    s = ner_scores(NER_GOLD, NER_GOLD)
    assert (s.precision, s.recall, s.f1) == (1, 1, 1)
    s = ner_scores([["O", "O"]], [["O", "O"]])
    assert (s.precision, s.recall, s.f1, s.gold_entities, s.per_type) == (0, 0, 0, 0, {})
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1"):
        ner_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="1 gold sentences but 0"):
        ner_scores([["O"]], [])


def test_ner_no_warnings_leak() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ner_scores([["O", "O"]], [["S-PER", "O"]])  # precision of a type without gold: 0/1
        ner_scores([["S-PER", "O"]], [["O", "O"]])


_labels = st.sampled_from(["PER", "LOC", "ORG"])


@st.composite
def _legal(draw: st.DrawFn, length: int) -> list[str]:
    spans, i = [], 0
    while i < length:
        n = draw(st.integers(1, 4))
        if draw(st.booleans()) and i + n <= length:
            spans.append((draw(_labels), i, i + n))
        i += n
    return spans_to_tags(spans, length)


@st.composite
def _legal_pairs(draw: st.DrawFn) -> tuple[list[list[str]], list[list[str]]]:
    lengths = draw(st.lists(st.integers(0, 12), min_size=1, max_size=5))
    return ([draw(_legal(n)) for n in lengths], [draw(_legal(n)) for n in lengths])


@settings(max_examples=200, deadline=None)
@given(_legal_pairs())
def test_ner_equals_seqeval_report(pair: tuple[list[list[str]], list[list[str]]]) -> None:
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOBES

    gold, pred = pair
    s = ner_scores(gold, pred)
    y_true = [bmes_to_iobes(t) for t in gold]
    y_pred = [bmes_to_iobes(t) for t in pred]
    if not s.gold_entities and not s.pred_entities:
        assert s.per_type == {}
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(y_true, y_pred, mode="strict", scheme=IOBES,
                                       output_dict=True, zero_division=0)
    micro = report.pop("micro avg")
    assert (s.precision, s.recall, s.f1) == pytest.approx(
        (micro["precision"], micro["recall"], micro["f1-score"]))
    assert s.gold_entities == micro["support"]
    assert s.per_type == {
        label: {"precision": pytest.approx(r["precision"]), "recall": pytest.approx(r["recall"]),
                "f1": pytest.approx(r["f1-score"]), "support": r["support"]}
        for label, r in report.items() if not label.endswith(" avg")}


_any_tag = st.sampled_from(["O", "B-PER", "M-PER", "E-PER", "S-PER", "B-LOC", "M-LOC", "E-LOC"])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_ner_counts_equal_lenient_span_sets(data: st.DataObject) -> None:
    lengths = data.draw(st.lists(st.integers(0, 10), min_size=1, max_size=4))
    gold = [data.draw(_legal(n)) for n in lengths]
    pred = [data.draw(st.lists(_any_tag, min_size=n, max_size=n)) for n in lengths]
    s = ner_scores(gold, pred)
    gold_spans = [set(tags_to_spans(t, strict=True)) for t in gold]
    pred_spans = [set(tags_to_spans(t)) for t in pred]
    assert s.gold_entities == sum(map(len, gold_spans))
    assert s.pred_entities == sum(map(len, pred_spans))
    assert s.correct_entities == sum(len(g & p) for g, p in zip(gold_spans, pred_spans))


@pytest.mark.skipif(
    not SIGHAN_SCORE or not Path(SIGHAN_SCORE).is_file() or shutil.which("perl") is None,
    reason="set SIGHAN_SCORE to a copy of icwb2-data/scripts/score (and have perl) to compare "
           "with the official scorer",
)
@pytest.mark.parametrize("final_newline", [True, False])
def test_word_list_file_reads_like_the_perl_scorer(tmp_path: Path, final_newline: bool) -> None:
    from bmes_tagger.corpus import read_word_list

    # frequency columns, U+3000, NBSP, tabs, CR LF, blank lines, a BOM, maybe no final newline
    lines = ["\ufeff我们", "中国 12", "北京\t3 ns", "\u3000人民", "日\u00a0报", "  喜欢  ", "",
             "今天\r", "a", "下午"]
    words = tmp_path / "words.utf8"
    words.write_bytes(("\n".join(lines) + ("\n" if final_newline else "")).encode("utf-8"))
    gold = [["我们", "中国", "北京", "人民", "日\u00a0报", "喜欢", "今天", "a", "下午"],
            ["下午", "我们", "今天", "喜", "欢"]]
    pred = [["我们", "中", "国", "北京", "人民", "日\u00a0报", "喜欢", "今天", "a", "下午"],
            ["下午", "我们今天", "喜欢"]]
    files = {}
    for name, sentences in (("gold", gold), ("pred", pred)):
        files[name] = tmp_path / f"{name}.utf8"
        files[name].write_text("".join("  ".join(ws) + "\n" for ws in sentences), "utf-8")
    out = subprocess.run(["perl", SIGHAN_SCORE, str(words), str(files["gold"]),
                          str(files["pred"])], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    summary = dict(re.findall(r"^=== ([A-Za-z ]+):\t(\S+)$", out, re.M))
    s = cws_scores(gold, pred, read_word_list(words))
    assert summary["OOV Rate"] == f"{s.oov_rate:.3f}"
    assert summary["OOV Recall Rate"] == f"{s.oov_recall:.3f}"
    assert summary["IV Recall Rate"] == f"{s.iv_recall:.3f}"


def test_ner_types_that_differ_only_by_hyphens_stay_apart() -> None:
    # seqeval strips the hyphens around a type: it scored S-PER- against S-PER as correct
    s = ner_scores([["S-PER-", "O", "B--LOC", "E--LOC"]], [["S-PER", "O", "B-LOC", "E-LOC"]])
    assert (s.gold_entities, s.pred_entities, s.correct_entities) == (2, 2, 0)
    assert set(s.per_type) == {"PER-", "PER", "-LOC", "LOC"}
    assert s.per_type["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_ner_scores_do_not_need_seqeval() -> None:
    code = ("import sys; from bmes_tagger.metrics import ner_scores; "
            "s = ner_scores([['B-PER', 'E-PER']], [['B-PER', 'E-PER']]); "
            "sys.exit(('seqeval' in sys.modules) + 2 * (s.f1 != 1.0))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_ner_illegal_gold_is_refused() -> None:
    with pytest.raises(ValueError, match="sentence 1: gold tags"):
        ner_scores([["O"], ["O", "M-PER"]], [["O"], ["O", "O"]])


_types = st.sampled_from(["PER", "LOC", "ORG", "组织", "X-Y", "a"])


@st.composite
def _legal_typed(draw: st.DrawFn, length: int) -> list[str]:
    spans, i = [], 0
    while i < length:
        n = draw(st.integers(1, 4))
        if draw(st.booleans()) and i + n <= length:
            spans.append((draw(_types), i, i + n))
        i += n
    return spans_to_tags(spans, length)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_ner_equals_seqeval_on_random_well_formed_sequences(data: st.DataObject) -> None:
    """seqeval as the oracle: exact span matches per type, micro totals, per-type table."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOBES, Entities

    lengths = data.draw(st.lists(st.integers(0, 15), min_size=1, max_size=6))
    gold = [data.draw(_legal_typed(n)) for n in lengths]
    pred = [data.draw(_legal_typed(n)) for n in lengths]
    s = ner_scores(gold, pred)
    y_true = [bmes_to_iobes(t) for t in gold]
    y_pred = [bmes_to_iobes(t) for t in pred]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        true = Entities(y_true, IOBES).entities
        found = Entities(y_pred, IOBES).entities
        assert s.gold_entities == sum(map(len, true))
        assert s.pred_entities == sum(map(len, found))
        assert s.correct_entities == sum(len(set(t) & set(p)) for t, p in zip(true, found))
        if not s.gold_entities and not s.pred_entities:
            assert s.per_type == {}
            return
        report = classification_report(y_true, y_pred, mode="strict", scheme=IOBES,
                                       output_dict=True, zero_division=0)
    micro = report.pop("micro avg")
    assert (s.precision, s.recall, s.f1) == pytest.approx(
        (micro["precision"], micro["recall"], micro["f1-score"]))
    assert s.per_type == {
        label: {"precision": pytest.approx(r["precision"]), "recall": pytest.approx(r["recall"]),
                "f1": pytest.approx(r["f1-score"]), "support": r["support"]}
        for label, r in report.items() if not label.endswith(" avg")}
