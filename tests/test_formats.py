"""More corpus formats: CLUENER JSON lines, CoNLL-U, People's Daily word/POS text, conversion.

Oracles: round trips (write then read gives the same sentences; read, write, read again gives
the same file), hand-written files with hand-computed tags, and the documented counts of the
public corpora.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bmes_tagger.cli import app
from bmes_tagger.corpus import (
    Sentence,
    read_conll,
    read_conllu,
    read_corpus,
    read_jsonl_spans,
    read_pos_text,
    read_segmented,
    untyped,
)
from bmes_tagger.errors import ConversionError, CorpusFormatError
from bmes_tagger.formats import (
    convert,
    sentences_task,
    write_conll,
    write_conllu,
    write_corpus,
    write_jsonl_spans,
    write_pos_text,
)
from bmes_tagger.metrics import pos_scores
from bmes_tagger.tags import (
    from_bmes,
    spans_to_tags,
    tag_inventory,
    tags_to_spans,
    tags_to_words,
    to_bmes,
)
from conftest import require_corpora

runner = CliRunner()
FAST = settings(max_examples=60, deadline=None)


def write(tmp_path: Path, text: str, name: str = "f.txt", crlf: bool = False) -> Path:
    path = tmp_path / name
    data = text.replace("\n", "\r\n") if crlf else text
    path.write_bytes(data.encode("utf-8"))
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    err = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        err += f"{type(result.exception).__name__}: {result.exception}"
    return result.exit_code, result.stdout, err


def same(a: list[Sentence], b: list[Sentence]) -> bool:
    """Same characters and tags (line numbers may differ between formats)."""
    return [(s.chars, s.tags) for s in a] == [(s.chars, s.tags) for s in b]


# --- strategies ---------------------------------------------------------------------------------

# "/" and "]" inside words exercise the word/POS parser; "[" would open a bracket there.
ALPHABET = "中国人民北京大学我爱你的了在ab1２，。/]_"
WORD = st.text(alphabet=ALPHABET, min_size=1, max_size=4)
LABELS = st.sampled_from(["NOUN", "v", "nr", "PER", "X-Y", "ns"])


@st.composite
def pos_sentence(draw: st.DrawFn) -> Sentence:
    """Joint segmentation + POS: typed words covering every character."""
    words = draw(st.lists(st.tuples(WORD, LABELS), min_size=1, max_size=6))
    spans, start = [], 0
    for word, label in words:
        spans.append((label, start, start + len(word)))
        start += len(word)
    return Sentence(chars=[c for w, _ in words for c in w], tags=spans_to_tags(spans, start))


@st.composite
def ner_sentence(draw: st.DrawFn) -> Sentence:
    """Typed spans with gaps (O) between them."""
    pieces = draw(st.lists(st.tuples(WORD, st.one_of(st.none(), LABELS)), min_size=1,
                           max_size=6))
    chars: list[str] = []
    spans = []
    for text, label in pieces:
        if label is not None:
            spans.append((label, len(chars), len(chars) + len(text)))
        chars.extend(text)
    return Sentence(chars=chars, tags=spans_to_tags(spans, len(chars)))


@st.composite
def cws_sentence(draw: st.DrawFn) -> Sentence:
    s = draw(pos_sentence())
    return untyped([s])[0]


def corpus(kind: st.SearchStrategy[Sentence]) -> st.SearchStrategy[list[Sentence]]:
    return st.lists(kind, min_size=1, max_size=4)


# --- round trips -------------------------------------------------------------------------------


@FAST
@given(st.one_of(corpus(cws_sentence()), corpus(ner_sentence()), corpus(pos_sentence())),
       st.sampled_from(["bmes", "bioes", "bio"]))
def test_conll_round_trip_every_scheme(tmp_path_factory: pytest.TempPathFactory,
                                       sents: list[Sentence], scheme: str) -> None:
    path = tmp_path_factory.mktemp("conll") / "x.conll"
    write_conll(sents, path, scheme)
    assert same(read_conll(path, task=sentences_task(sents), scheme=scheme), sents)


@FAST
@given(st.one_of(cws_sentence(), ner_sentence(), pos_sentence()),
       st.sampled_from(["bmes", "bioes", "bio"]))
def test_from_bmes_inverts_to_bmes(sent: Sentence, scheme: str) -> None:
    converted = from_bmes(sent.tags or [], scheme)
    assert to_bmes(converted, scheme) == sent.tags
    if scheme == "bio":
        assert all(t[0] in "BIO" for t in converted)


@FAST
@given(corpus(ner_sentence()))
def test_jsonl_round_trip(tmp_path_factory: pytest.TempPathFactory,
                          sents: list[Sentence]) -> None:
    path = tmp_path_factory.mktemp("jsonl") / "x.json"
    write_jsonl_spans(sents, path)
    again = read_jsonl_spans(path)
    assert same(again, sents)
    # offsets in the file are inclusive and name the mention
    for line, sent in zip(path.read_text(encoding="utf-8").splitlines(), sents):
        obj = json.loads(line)
        for kind, mentions in obj["label"].items():
            for mention, offsets in mentions.items():
                for a, e in offsets:
                    assert obj["text"][a:e + 1] == mention
                    assert (kind, a, e + 1) in tags_to_spans(sent.tags or [])


@FAST
@given(st.one_of(corpus(cws_sentence()), corpus(pos_sentence())),
       st.sampled_from(["upos", "xpos"]))
def test_conllu_round_trip(tmp_path_factory: pytest.TempPathFactory, sents: list[Sentence],
                           column: str) -> None:
    path = tmp_path_factory.mktemp("conllu") / "x.conllu"
    write_conllu(sents, path, pos_column=column)
    task = sentences_task(sents)
    assert same(read_conllu(path, tags=column if task == "pos" else "none"), sents)
    assert same(read_conllu(path, tags="none"), untyped(sents))


@FAST
@given(corpus(pos_sentence()))
def test_pos_text_round_trip(tmp_path_factory: pytest.TempPathFactory,
                             sents: list[Sentence]) -> None:
    path = tmp_path_factory.mktemp("pos") / "x.pos"
    write_pos_text(sents, path)
    assert same(read_pos_text(path), sents)
    assert same(read_corpus(path, "pos", "cws"), untyped(sents))


@FAST
@given(corpus(cws_sentence()))
def test_segmented_round_trip(tmp_path_factory: pytest.TempPathFactory,
                              sents: list[Sentence]) -> None:
    path = tmp_path_factory.mktemp("seg") / "x.txt"
    write_corpus(sents, path, "segmented")
    assert same(read_segmented(path), sents)


CHAINS = {
    "cws": ["segmented", "conll", "conllu", "conll", "segmented"],
    "ner": ["jsonl", "conll", "jsonl"],
    "pos": ["pos", "conll", "conllu", "pos"],
}


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(CHAINS)), st.data())
def test_convert_chains_are_exact(tmp_path_factory: pytest.TempPathFactory, task: str,
                                  data: st.DataObject) -> None:
    kind = {"cws": cws_sentence(), "ner": ner_sentence(), "pos": pos_sentence()}[task]
    sents = data.draw(corpus(kind))
    scheme = data.draw(st.sampled_from(["bmes", "bioes", "bio"]))
    tmp = tmp_path_factory.mktemp("chain")
    chain = CHAINS[task]
    paths = [tmp / f"{i}.{fmt}" for i, fmt in enumerate(chain)]
    write_corpus(sents, paths[0], chain[0], scheme, task=task)
    for i in range(1, len(chain)):
        convert(paths[i - 1], paths[i], chain[i - 1], chain[i], scheme=scheme, task=task)
        assert same(read_corpus(paths[i], chain[i], task, scheme), sents)
    assert paths[-1].read_bytes() == paths[0].read_bytes()


# --- hand-written files: CLUENER JSON lines ----------------------------------------------------

CLUENER = (
    '{"text": "浙商银行企业信贷部叶老桂博士则从另一个角度", "label": {"name": {"叶老桂": '
    '[[9, 11]]}, "company": {"浙商银行": [[0, 3]]}}}\n'
    '\n'
    '{"text": "生生不息CSOL生化狂潮", "label": {"game": {"CSOL": [[4, 7]]}}}\n'
    '{"id": 7, "text": "那不勒斯vs锡耶纳", "label": {"organization": {"那不勒斯": [[0, 3]], '
    '"锡耶纳": [[6, 8]]}}}\n'
    '{"text": "没有实体", "label": {}}\n'
)


@pytest.mark.parametrize("crlf", [False, True])
def test_jsonl_cluener_sample_inclusive_offsets(tmp_path: Path, crlf: bool) -> None:
    sents = read_jsonl_spans(write(tmp_path, CLUENER, "c.json", crlf))
    assert [s.line for s in sents] == [1, 3, 4, 5]
    assert "".join(sents[0].chars) == "浙商银行企业信贷部叶老桂博士则从另一个角度"
    assert sents[0].tags[:5] == ["B-company", "M-company", "M-company", "E-company", "O"]
    assert sents[0].tags[9:13] == ["B-name", "M-name", "E-name", "O"]
    assert sents[1].tags == ["O"] * 4 + ["B-game", "M-game", "M-game", "E-game"] + ["O"] * 4
    assert tags_to_spans(sents[2].tags or []) == [("organization", 0, 4),
                                                  ("organization", 6, 9)]
    assert sents[3].tags == ["O"] * 4
    assert read_corpus(write(tmp_path, CLUENER, "c.json"), "jsonl", "ner") == \
        read_jsonl_spans(write(tmp_path, CLUENER, "c.json"))


def test_jsonl_whitespace_in_text_is_dropped_and_offsets_mapped(tmp_path: Path) -> None:
    line = '{"text": "在 北京 大学", "label": {"ORG": {"北京 大学": [[2, 6]]}}}\n'
    (sent,) = read_jsonl_spans(write(tmp_path, line))
    assert sent.chars == list("在北京大学")
    assert sent.tags == ["O", "B-ORG", "M-ORG", "M-ORG", "E-ORG"]


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        # an exclusive end where an inclusive one is expected
        ('{"text": "x", "label": {}}\n{"text": "北京大学", "label": {"ORG": {"北京": [[0, 2]]}}}\n',
         2, "offsets are inclusive"),
        ('{"text": "北京大学", "label": {"LOC": {"北京": [[0, 1]]}, "ORG": {"北京大学": '
         '[[0, 3]]}}}\n', 1, "overlapping mentions"),
        ('{"id": 0, "text": "北京"}\n', 1, "unlabelled"),
        ('{"text": "北京", "label": {"LOC": {"北京": [[0, 1]]}}\n', 1, "invalid JSON"),
        ('["北京"]\n', 1, "expected a JSON object"),
        ('{"label": {}}\n', 1, "\"text\""),
        ('{"text": "北京", "label": {"LOC": {"北京": [[0, 5]]}}}\n', 1, "does not match"),
        ('{"text": "北京", "label": {"LOC": {"北京": [0, 1]}}}\n', 1, "[start, end]"),
        ('{"text": "北京", "label": {"L C": {"北京": [[0, 1]]}}}\n', 1, "whitespace"),
        ('{"text": "  ", "label": {}}\n', 1, "empty"),
    ],
)
def test_jsonl_errors_name_path_and_line(tmp_path: Path, text: str, line: int,
                                         expected: str) -> None:
    path = write(tmp_path, text, "bad.json")
    with pytest.raises(CorpusFormatError) as info:
        read_jsonl_spans(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert expected in info.value.reason


def test_jsonl_repair_keeps_the_longest_mention(tmp_path: Path) -> None:
    text = ('{"text": "刊发《招商银行：浮亏》的", "label": {"book": {"《招商银行：浮亏》": '
            '[[2, 10]]}, "company": {"招商银行": [[3, 6]]}}}\n')
    (sent,) = read_jsonl_spans(write(tmp_path, text), repair=True)
    assert tags_to_spans(sent.tags or []) == [("book", 2, 11)]
    assert read_corpus(write(tmp_path, text), "jsonl", "ner", repair=True) == [sent]
    # the same mention listed twice is not an overlap
    dup = '{"text": "北京", "label": {"LOC": {"北京": [[0, 1], [0, 1]]}}}\n'
    assert read_jsonl_spans(write(tmp_path, dup, "d.json"))[0].tags == ["B-LOC", "E-LOC"]


# --- hand-written files: CoNLL-U ---------------------------------------------------------------

CONLLU = """\
# sent_id = 1
# text = 看似簡單,
1\t看似\t_\tVERB\tVV\t_\t2\tcop\t_\t_
2\t簡單\t_\tADJ\tJJ\t_\t0\troot\t_\t_
3\t,\t_\tPUNCT\t,\t_\t2\tpunct\t_\t_

# a multiword token and an empty node are skipped
1-2\t他們\t_\t_\t_\t_\t_\t_\t_\t_
1\t他\t_\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2\t們\t_\tPART\tSFN\t_\t1\tcase\t_\t_
2.1\t去\t_\tVERB\tVV\t_\t_\t_\t3:conj\t_
3\t來\t_\tVERB\tVV\t_\t0\troot\t_\t_
"""


@pytest.mark.parametrize("crlf", [False, True])
def test_conllu_comments_multiword_and_empty_nodes(tmp_path: Path, crlf: bool) -> None:
    path = write(tmp_path, CONLLU, "x.conllu", crlf)
    upos = read_conllu(path, "upos")
    assert [s.chars for s in upos] == [list("看似簡單,"), list("他們來")]
    assert upos[0].tags == ["B-VERB", "E-VERB", "B-ADJ", "E-ADJ", "S-PUNCT"]
    assert upos[1].tags == ["S-PRON", "S-PART", "S-VERB"]
    assert [s.line for s in upos] == [3, 9]
    assert read_conllu(path, "xpos")[0].tags == ["B-VV", "E-VV", "B-JJ", "E-JJ", "S-,"]
    assert read_conllu(path, "none")[0].tags == ["B", "E", "B", "E", "S"]
    assert same(read_corpus(path, "conllu", "cws"), read_conllu(path, "none"))
    assert same(read_corpus(path, "conllu", "pos"), upos)


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("1\t看\t_\tVERB\tVV\t_\t0\troot\t_\n", 1, "expected 10 tab-separated columns"),
        ("1\t看 似\t_\tVERB\n", 1, "got 4"),
        ("1\t看\t_\t_\tVV\t_\t0\troot\t_\t_\n", 1, "no UPOS"),
        ("1\t看\t_\tVERB\tVV\t_\t0\troot\t_\t_\n1\t他\t_\tPRON\tPRP\t_\t0\troot\t_\t_\n", 2,
         "missing blank line"),
        ("x\t看\t_\tVERB\tVV\t_\t0\troot\t_\t_\n", 1, "token ID 'x'"),
        ("1\t \t_\tVERB\tVV\t_\t0\troot\t_\t_\n", 1, "empty FORM"),
    ],
)
def test_conllu_errors_name_path_and_line(tmp_path: Path, text: str, line: int,
                                          expected: str) -> None:
    path = write(tmp_path, text, "bad.conllu")
    with pytest.raises(CorpusFormatError) as info:
        read_conllu(path, "upos")
    assert info.value.line == line and str(info.value).startswith(f"{path}:{line}: ")
    assert expected in info.value.reason


# --- hand-written files: People's Daily word/POS text -------------------------------------------

# RMRB.txt lines end with two spaces
RMRB = (
    "19980101-01-001-001/m  迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w  \n"
    "19980101-01-001-002/m  [中央/n  人民/n  广播/vn  电台/n]nt  记者/n  \n"
    "\n"
    "１/m  [中国/ns]ns  １/２/m  ]/w  [/w\n"
)


@pytest.mark.parametrize("crlf", [False, True])
def test_pos_text_ids_brackets_and_slashes(tmp_path: Path, crlf: bool) -> None:
    sents = read_pos_text(write(tmp_path, RMRB, "r.txt", crlf))
    assert [s.line for s in sents] == [1, 2, 4]
    words = [tags_to_words(s.chars, s.tags or []) for s in sents]
    assert words[0] == ["迈向", "充满", "希望", "的", "新", "世纪", "——"]
    assert words[1] == ["中央", "人民", "广播", "电台", "记者"]
    assert sents[1].tags == ["B-n", "E-n", "B-n", "E-n", "B-vn", "E-vn", "B-n", "E-n",
                             "B-n", "E-n"]
    # no id on the last line; a one-word bracket; a word with "/"; literal "]" and "["
    assert words[2] == ["１", "中国", "１/２", "]", "["]
    assert [t for t in sents[2].tags or [] if t[0] in "BS"] == ["S-m", "B-ns", "B-m", "S-w",
                                                                 "S-w"]
    cws = read_corpus(write(tmp_path, RMRB, "r.txt", crlf), "pos", "cws")
    assert cws[1].tags == ["B", "E"] * 5


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("迈向/v  充满/v\n\n希望  的/u\n", 3, "has no /POS"),
        ("[中央/n  人民/n\n", 1, "never closed"),
        ("中央/n  人民/n]nt\n", 1, "without '['"),
        ("[中央/n  [人民/n]nt\n", 1, "nested"),
        ("迈向/v  /w\n", 1, "empty word"),
        ("迈向/\n", 1, "empty POS"),
    ],
)
def test_pos_text_errors_name_path_and_line(tmp_path: Path, text: str, line: int,
                                            expected: str) -> None:
    path = write(tmp_path, text, "bad.txt")
    with pytest.raises(CorpusFormatError) as info:
        read_pos_text(path)
    assert info.value.line == line and str(info.value).startswith(f"{path}:{line}: ")
    assert expected in info.value.reason


# --- read_corpus hook and task checks ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "task", "content", "expected"),
    [("jsonl", "cws", CLUENER, "holds ner data, not cws"),
     ("conllu", "ner", CONLLU, "not ner"),
     ("pos", "ner", RMRB, "not ner"),
     ("segmented", "pos", "北京 大学\n", "only holds word segmentation"),
     ("conll", "pos", "北 B-ns\n京 E-ns\n的 O\n", r"not a joint segmentation\+POS tag")],
)
def test_read_corpus_refuses_tasks_a_format_cannot_hold(tmp_path: Path, fmt: str, task: str,
                                                        content: str, expected: str) -> None:
    with pytest.raises(CorpusFormatError, match=expected):
        read_corpus(write(tmp_path, content), fmt, task)


def test_conll_reads_joint_pos_tags(tmp_path: Path) -> None:
    (sent,) = read_conll(write(tmp_path, "北 B-ns\n京 I-ns\n的 B-u\n"), "pos", "bio")
    assert sent.tags == ["B-ns", "E-ns", "S-u"]
    assert tag_inventory("pos", ["u", "ns"]) == ["B-ns", "M-ns", "E-ns", "S-ns",
                                                 "B-u", "M-u", "E-u", "S-u"]
    assert tag_inventory("ner", ["u"])[0] == "O"


def test_pos_scores_joint_and_segmentation() -> None:
    chars = [list("北京的")]
    gold = [["B-ns", "E-ns", "S-u"]]
    # right words, one wrong POS: segmentation perfect, joint 1 of 2
    scores = pos_scores(chars, gold, [["B-nr", "E-nr", "S-u"]])
    assert (scores.precision, scores.recall, scores.f1) == (0.5, 0.5, 0.5)
    assert (scores.seg_precision, scores.seg_recall, scores.seg_f1) == (1.0, 1.0, 1.0)
    assert scores.gold_entities == 2 and set(scores.per_type) == {"ns", "nr", "u"}
    wrong_seg = pos_scores(chars, gold, [["S-ns", "S-ns", "S-u"]])
    assert wrong_seg.seg_precision == pytest.approx(1 / 3) and wrong_seg.seg_recall == 0.5
    assert "seg_f1" in wrong_seg.to_dict()


# --- writers refuse what they cannot hold ------------------------------------------------------


def test_writers_refuse_lossy_or_ambiguous_output(tmp_path: Path) -> None:
    ner = [Sentence(list("在北京"), ["O", "B-LOC", "E-LOC"])]
    pos = [Sentence(list("北京"), ["B-ns", "E-ns"])]
    cws = untyped(pos)
    for sents, fmt, expected in ((ner, "segmented", "entity annotation would be lost"),
                                 (ner, "conllu", "entity"), (ner, "pos", "entity"),
                                 (pos, "segmented", "POS tags would be lost"),
                                 (pos, "jsonl", "not POS-tagged words"),
                                 (cws, "pos", "needs a POS"), (cws, "jsonl", "no types")):
        with pytest.raises(ConversionError, match=expected):
            write_corpus(sents, tmp_path / "out", fmt)
        assert not (tmp_path / "out").exists()
    for word, label, expected in (("[北", "n", "opening bracket"), ("北", "n/v", "'/'"),
                                  ("19980101-01-001-001", "m", "paragraph id")):
        sent = Sentence(list(word), spans_to_tags([(label, 0, len(word))], len(word)))
        with pytest.raises(ConversionError, match=expected):
            write_pos_text([sent], tmp_path / "out")
    with pytest.raises(ConversionError, match="POS '_'"):
        write_conllu([Sentence(["北"], ["S-_"])], tmp_path / "out")
    with pytest.raises(ConversionError, match="single non-space"):
        write_corpus([Sentence(["2013", "年"], ["B", "E"])], tmp_path / "out", "segmented")
    write_conll([Sentence(["2013", "年"], ["B", "E"])], tmp_path / "ok.conll")
    assert (tmp_path / "ok.conll").read_text() == "2013 B\n年 E\n\n"


# --- tagger convert ----------------------------------------------------------------------------


def test_convert_cli_jsonl_to_bio_and_back(tmp_path: Path) -> None:
    src = write(tmp_path, CLUENER, "in.json")
    bio = tmp_path / "out.bio"
    code, out, err = invoke("convert", src, bio, "--from", "jsonl", "--to", "conll",
                            "--scheme", "bio")
    assert code == 0, err
    assert "4 sentences" in out
    assert bio.read_text(encoding="utf-8").startswith("浙 B-company\n商 I-company\n")
    back = tmp_path / "back.json"
    code, _, err = invoke("convert", bio, back, "--from", "conll", "--to", "jsonl",
                          "--scheme", "bio")
    assert code == 0, err
    assert same(read_jsonl_spans(back), read_jsonl_spans(src))
    # BIO -> BIOES through --to-scheme
    code, _, err = invoke("convert", bio, tmp_path / "x.bioes", "--from", "conll", "--to",
                          "conll", "--scheme", "bio", "--to-scheme", "bioes")
    assert code == 0, err
    assert same(read_conll(tmp_path / "x.bioes", "ner", "bioes"), read_jsonl_spans(src))


def test_convert_cli_refuses_overwrite_and_lossy_conversions(tmp_path: Path) -> None:
    src = write(tmp_path, CLUENER, "in.json")
    out = tmp_path / "out.txt"
    out.write_text("keep me", encoding="utf-8")
    code, _, err = invoke("convert", src, out, "--from", "jsonl", "--to", "conll")
    assert code == 1 and "already exists" in err and "--force" in err
    assert out.read_text(encoding="utf-8") == "keep me"
    code, _, err = invoke("convert", src, out, "--from", "jsonl", "--to", "conll", "--force")
    assert code == 0, err
    code, _, err = invoke("convert", src, tmp_path / "seg.txt", "--from", "jsonl", "--to",
                          "segmented")
    assert code == 1 and "cannot convert ner data" in err and "lost" in err
    assert not (tmp_path / "seg.txt").exists()
    code, _, err = invoke("convert", src, tmp_path / "y", "--from", "json", "--to", "conll")
    assert code == 2 and "--from: 'json' is not one of" in err  # usage
    unlabelled = write(tmp_path, '{"id": 0, "text": "北京"}\n', "test.json")
    code, _, err = invoke("convert", unlabelled, tmp_path / "z", "--from", "jsonl", "--to",
                          "conll")
    assert code == 1 and "test.json:1" in err and "unlabelled" in err


def test_convert_cli_pos_needs_task_cws_to_drop_pos(tmp_path: Path) -> None:
    src = write(tmp_path, RMRB, "r.txt")
    seg = tmp_path / "seg.txt"
    code, _, err = invoke("convert", src, seg, "--from", "pos", "--to", "segmented")
    assert code == 1 and "POS tags would be lost" in err and "--task cws" in err
    code, _, err = invoke("convert", src, seg, "--from", "pos", "--to", "segmented",
                          "--task", "cws")
    assert code == 0, err
    assert seg.read_text(encoding="utf-8").splitlines()[1] == "中央  人民  广播  电台  记者"
    # conllu: UPOS detected; with --task cws only FORM survives and UPOS is written as _
    conllu = write(tmp_path, CONLLU, "x.conllu")
    code, _, err = invoke("convert", conllu, tmp_path / "p.txt", "--from", "conllu", "--to",
                          "pos")
    assert code == 0, err
    assert (tmp_path / "p.txt").read_text(encoding="utf-8").splitlines()[0] == \
        "看似/VERB  簡單/ADJ  ,/PUNCT"
    code, _, err = invoke("convert", conllu, tmp_path / "c.conllu", "--from", "conllu", "--to",
                          "conllu", "--task", "cws")
    assert code == 0, err
    lines = (tmp_path / "c.conllu").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "1\t看似\t_\t_\t_\t_\t_\t_\t_\t_"
    # ... and that file reads back as word segmentation without --task
    code, _, err = invoke("convert", tmp_path / "c.conllu", tmp_path / "c.txt", "--from",
                          "conllu", "--to", "segmented")
    assert code == 0, err
    assert (tmp_path / "c.txt").read_text(encoding="utf-8") == "看似  簡單  ,\n他  們  來\n"


# --- training on the new formats ---------------------------------------------------------------

TINY_JSONL = [
    ('张伟在北京大学工作。', {"PER": {"张伟": [[0, 1]]}, "ORG": {"北京大学": [[3, 6]]}}),
    ('李娜去上海了。', {"PER": {"李娜": [[0, 1]]}, "LOC": {"上海": [[3, 4]]}}),
    ('王芳住在广州。', {"PER": {"王芳": [[0, 1]]}, "LOC": {"广州": [[4, 5]]}}),
]
TINY_WORDS = [["我们", "在", "北京", "工作", "。"], ["他", "喜欢", "上海", "。"],
              ["今天", "天气", "很", "好", "。"]]
TINY_POS = [["r", "p", "ns", "v", "w"], ["r", "v", "ns", "w"], ["t", "n", "d", "a", "w"]]


def tiny_run(tmp_path: Path, task: str, fmt: str, train: Path) -> tuple[Path, Path]:
    tmp_path.mkdir(exist_ok=True)
    cfg = tmp_path / f"{task}.yaml"
    cfg.write_text(f"data:\n  task: {task}\n  format: {fmt}\n  train: {train}\n  dev: {train}\n"
                   f"  test: {train}\n", encoding="utf-8")
    code, out, err = invoke("train", cfg, "--quiet", "--output", tmp_path / "run",
                            "--set", "train.epochs=1", "--set", "model.embedding_dim=8",
                            "--set", "model.hidden_size=8", "--set", "train.threads=1",
                            "--set", "train.batch_size=4")
    assert code == 0, err
    assert "best dev F1" in out
    return cfg, tmp_path / "run" / "best.pt"


def test_train_and_eval_on_tiny_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text("".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) + "\n"
                            for t, lab in TINY_JSONL * 4), encoding="utf-8")
    cfg, model = tiny_run(tmp_path, "ner", "jsonl", path)
    code, out, err = invoke("eval", "--model", model, "--data", path, "--json")
    assert code == 0, err
    assert {"PER", "LOC", "ORG"} <= set(json.loads(out)["per_type"])


def test_train_on_tiny_conllu_cws_and_pos(tmp_path: Path) -> None:
    sents = [Sentence([c for w in ws for c in w],
                      spans_to_tags([(p, sum(map(len, ws[:i])), sum(map(len, ws[:i + 1])))
                                     for i, p in enumerate(ps)], sum(map(len, ws))))
             for ws, ps in zip(TINY_WORDS * 4, TINY_POS * 4)]
    path = tmp_path / "train.conllu"
    write_conllu(sents, path)
    _, model = tiny_run(tmp_path / "cws", "cws", "conllu", path)
    code, out, err = invoke("eval", "--model", model, "--data", path, "--json")
    assert code == 0, err
    assert "oov_rate" in json.loads(out)
    cfg, model = tiny_run(tmp_path / "pos", "pos", "conllu", path)
    code, out, err = invoke("eval", cfg, "--model", model, "--json")
    assert code == 0, err
    scores = json.loads(out)
    assert {"precision", "recall", "f1", "seg_precision", "seg_recall", "seg_f1",
            "per_type"} <= set(scores)
    assert 0.0 <= scores["f1"] <= scores["seg_f1"] + 1e-9 <= 1.0 + 1e-9
    code, text, err = invoke("eval", cfg, "--model", model)
    assert code == 0 and "segmentation only" in text and "POS" in text
    raw = tmp_path / "raw.txt"
    raw.write_text("我们在上海工作。\n\n他 喜欢\n", encoding="utf-8")
    code, out, err = invoke("predict", raw, "--model", model)
    assert code == 0, err
    lines = out.split("\n")[:-1]
    assert len(lines) == 3 and lines[1] == ""
    for line, src in zip(lines, ["我们在上海工作。", "", "他喜欢"]):
        tokens = line.split("  ") if line else []
        assert "".join(t.rpartition("/")[0] for t in tokens) == src
        assert all(t.rpartition("/")[2] in {"r", "p", "ns", "v", "w", "t", "n", "d", "a"}
                   for t in tokens)
    code, out, err = invoke("predict", raw, "--model", model, "--format", "conll")
    assert code == 0 and out.startswith("我 ")


# --- the public corpora (slow) -----------------------------------------------------------------


@pytest.mark.slow
def test_cluener_counts() -> None:
    root = require_corpora() / "cluener2020"
    # README: 10,748 / 1,343 sentences, 401,764 / 50,260 characters; train line 1507 nests
    # two companies inside a book title (overlaps, read with repair)
    with pytest.raises(CorpusFormatError) as info:
        read_jsonl_spans(root / "train.json")
    assert info.value.line == 1507
    train = read_corpus(root / "train.json", "jsonl", "ner", repair=True)
    dev = read_corpus(root / "dev.json", "jsonl", "ner")
    assert (len(train), len(dev)) == (10_748, 1_343)
    assert sum(len(s.chars) for s in train) == 401_764
    assert sum(len(s.chars) for s in dev) == 50_260
    counts: dict[str, int] = {}
    for s in train:
        for label, _, _ in tags_to_spans(s.tags or [], strict=True):
            counts[label] = counts.get(label, 0) + 1
    # README mention counts, minus the two companies nested in the book title at line 1507
    assert counts == {"name": 3_755, "organization": 3_210, "position": 3_141,
                      "company": 2_980 - 2, "address": 2_891, "game": 2_376,
                      "government": 1_835, "scene": 1_521, "book": 1_139, "movie": 1_123}
    with pytest.raises(CorpusFormatError, match="unlabelled"):
        read_jsonl_spans(root / "test.json")


@pytest.mark.slow
@pytest.mark.parametrize(("split", "n_sent", "n_words", "n_chars"),
                         [("train", 3_997, 98_608, 156_309), ("dev", 500, 12_663, 20_000),
                          ("test", 500, 12_012, 19_206)])
def test_ud_gsd_counts(split: str, n_sent: int, n_words: int, n_chars: int) -> None:
    path = require_corpora() / "ud_chinese_gsd_r1.4" / f"zh-ud-{split}.conllu"
    sents = read_conllu(path, "upos")
    assert len(sents) == n_sent
    assert sum(len(s.chars) for s in sents) == n_chars
    assert sum(len(tags_to_spans(s.tags or [])) for s in sents) == n_words
    labels = {t.partition("-")[2] for s in sents for t in s.tags or []}
    assert len(labels) <= 15 and "NOUN" in labels
    assert same(read_corpus(path, "conllu", "cws"), untyped(sents))


@pytest.mark.slow
def test_rmrb_pos_counts_and_agreement_with_the_segmented_twin() -> None:
    root = require_corpora() / "peoples_daily_1998_pos"
    sents = read_pos_text(root / "RMRB.txt")
    # README: 19,484 paragraphs, 1,121,444 words, 1,841,653 characters, 44 tags
    assert len(sents) == 19_484
    assert sum(len(s.chars) for s in sents) == 1_841_653
    assert sum(len(tags_to_spans(s.tags or [])) for s in sents) == 1_121_444
    assert len({t.partition("-")[2] for s in sents for t in s.tags or []}) == 44
    assert same(untyped(sents), read_segmented(root / "RMRB.seg.utf8"))


# --- grapheme clusters are characters -----------------------------------------------------------

FAMILY = "👨\u200d👩\u200d👧"  # five code points, one character
E_ACUTE = "e\u0301"  # decomposed é
FLAG = "\U0001f1e8\U0001f1f3"


def test_readers_keep_grapheme_clusters_whole(tmp_path: Path) -> None:
    seg = write(tmp_path, f"我们 {FAMILY} 在\ncaf{E_ACUTE}  好{FLAG}\n", "s.txt")
    sents = read_corpus(seg, "segmented", "cws")
    assert sents[0].chars == ["我", "们", FAMILY, "在"] and sents[0].tags == ["B", "E", "S", "S"]
    assert sents[1].chars == ["c", "a", "f", E_ACUTE, "好", FLAG]
    assert sents[1].tags == ["B", "M", "M", "E", "B", "E"]
    pos = write(tmp_path, f"👍\U0001f3fd/w  caf{E_ACUTE}/n\n", "p.txt")
    (sent,) = read_corpus(pos, "pos", "pos")
    assert sent.chars == ["👍\U0001f3fd", "c", "a", "f", E_ACUTE]
    assert sent.tags == ["S-w", "B-n", "M-n", "M-n", "E-n"]
    conllu = write(tmp_path, f"1\t{FAMILY}\t_\tSYM\t_\t_\t_\t_\t_\t_\n"
                             f"2\tcaf{E_ACUTE}\t_\tNOUN\t_\t_\t_\t_\t_\t_\n\n", "u.conllu")
    (sent,) = read_corpus(conllu, "conllu", "pos")
    assert sent.chars == [FAMILY, "c", "a", "f", E_ACUTE]
    assert sent.tags == ["S-SYM", "B-NOUN", "M-NOUN", "M-NOUN", "E-NOUN"]


def test_jsonl_offsets_are_code_points_and_clusters_are_characters(tmp_path: Path) -> None:
    # offsets count code points (Python and CLUENER alike): the family spans 2..6
    text = f"我爱{FAMILY}张三 {E_ACUTE}"
    label = {"name": {"张三": [[7, 8]]}, "x": {FAMILY: [[2, 6]]}}
    path = write(tmp_path, json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n",
                 "c.json")
    (sent,) = read_jsonl_spans(path)
    assert sent.chars == ["我", "爱", FAMILY, "张", "三", E_ACUTE]
    assert sent.tags == ["O", "O", "S-x", "B-name", "E-name", "O"]
    # a mention that ends inside a cluster: the annotation wins and cuts it
    path = write(tmp_path, json.dumps({"text": f"{E_ACUTE}x", "label": {"X": {"e": [[0, 0]]}}})
                 + "\n", "d.json")
    (sent,) = read_jsonl_spans(path)
    assert sent.chars == ["e", "\u0301", "x"] and sent.tags == ["S-X", "O", "O"]


def test_grapheme_sentences_round_trip_through_every_format(tmp_path: Path) -> None:
    pos = [Sentence(["我", FAMILY, "c", E_ACUTE, FLAG], ["B-n", "E-n", "B-x", "E-x", "S-w"])]
    ner = [Sentence(["我", FAMILY, "c", E_ACUTE, FLAG], ["O", "S-PER", "B-x", "E-x", "O"])]
    cws = untyped(pos)
    for sents, fmt, task in ((cws, "segmented", "cws"), (cws, "conll", "cws"),
                             (cws, "conllu", "cws"), (pos, "pos", "pos"),
                             (pos, "conllu", "pos"), (pos, "conll", "pos"),
                             (ner, "jsonl", "ner"), (ner, "conll", "ner")):
        path = tmp_path / f"{task}.{fmt}"
        write_corpus(sents, path, fmt, task=task)
        assert same(read_corpus(path, fmt, task), sents), (fmt, task)
    line = (tmp_path / "ner.jsonl").read_text(encoding="utf-8")
    assert json.loads(line)["label"] == {"PER": {FAMILY: [[1, 5]]}, "x": {f"c{E_ACUTE}": [[6, 8]]}}


def test_writers_refuse_tokens_that_would_read_back_as_other_characters(tmp_path: Path) -> None:
    # 'e' and a lone accent are two tokens in conll, but one character in a word
    split = [Sentence(["e", "\u0301", "x"], ["B", "E", "S"])]
    for fmt in ("segmented", "conllu"):
        with pytest.raises(ConversionError, match="single non-space characters"):
            write_corpus(split, tmp_path / "out", fmt)
    write_conll(split, tmp_path / "ok.conll")
    assert same(read_conll(tmp_path / "ok.conll", "cws"), split)
    # in jsonl the accent may stand alone only where a mention boundary cuts the cluster
    ner = [Sentence(["e", "\u0301", "x"], ["S-X", "O", "O"])]
    write_corpus(ner, tmp_path / "cut.json", "jsonl")
    assert same(read_jsonl_spans(tmp_path / "cut.json"), ner)
    with pytest.raises(ConversionError, match="single non-space characters"):
        write_corpus([Sentence(["e", "\u0301", "x"], ["O", "O", "S-X"])], tmp_path / "o", "jsonl")
