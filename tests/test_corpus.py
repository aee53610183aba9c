"""Corpus readers: formats, scheme conversion, strict gold, and errors with path:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bmes_tagger.corpus import iter_lines, read_conll, read_corpus, read_segmented
from bmes_tagger.errors import CorpusFormatError


def write_bytes(tmp_path: Path, data: bytes, name: str = "f.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_segmented_whitespace_kinds_crlf_bom(tmp_path: Path) -> None:
    text = "\ufeff共同  创造\u3000美好 的\r\n\r\n新\t世纪\r\n"
    sents = read_segmented(write_bytes(tmp_path, text.encode("utf-8")))
    assert [s.chars for s in sents] == [list("共同创造美好的"), list("新世纪")]
    assert sents[0].tags == ["B", "E", "B", "E", "B", "E", "S"]
    assert sents[1].tags == ["S", "B", "E"]
    assert [s.line for s in sents] == [1, 3]


def test_conll_bio_and_bioes_convert_to_bmes(tmp_path: Path) -> None:
    bio = "张 B-PER\n三 I-PER\n在 O\n京 B-LOC\n\n"
    bioes = "张 B-PER\n三 E-PER\n在 O\n京 S-LOC\n"
    for text, scheme in ((bio, "bio"), (bioes, "bioes")):
        (sent,) = read_conll(write_bytes(tmp_path, text.encode()), "ner", scheme)
        assert sent.tags == ["B-PER", "E-PER", "O", "S-LOC"]


def test_conll_extra_columns_and_tabs(tmp_path: Path) -> None:
    (sent,) = read_conll(write_bytes(tmp_path, "高\tx\tB-NAME\n勇 y  E-NAME\n".encode()), "ner")
    assert sent.chars == ["高", "勇"] and sent.tags == ["B-NAME", "E-NAME"]


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"a B-PER\nb\n", 2, "missing tag"),
        (b"a X-PER\n", 1, "unknown tag 'X-PER'"),
        (b"a BM-PER\n", 1, "unknown tag 'BM-PER'"),
        (b"a B-PER\nb B-PER\n\n", 2, "illegal BMES sequence"),
        (b"a O\nb M-PER\n", 2, "M-PER"),
        (b"a B-LOC\nb E-PER\n", 2, "E-PER"),
        (b"a B-PER\n", 1, "illegal BMES sequence"),
        (b"a B\nb E\n", 1, "has no entity type"),
        (b"a B-PER\nb E-PER\n", -1, "not a word-segmentation tag"),
        (b"a O\n" + "中 O\n".encode("gbk"), 2, "not valid UTF-8"),
        (b"a O\nb\x00 O\n", 2, "NUL byte"),
        (b"", None, "no sentences"),
        (b"\n\n  \n", None, "no sentences"),
    ],
)
def test_conll_errors_name_file_and_line(tmp_path: Path, data: bytes, line: int | None,
                                         reason: str) -> None:
    path = write_bytes(tmp_path, data)
    task = "ner"
    if line == -1:  # NER tags in a CWS corpus
        task, line = "cws", 1
    with pytest.raises(CorpusFormatError) as info:
        read_conll(path, task)
    assert info.value.line == line
    assert reason in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}" if line else str(path))


def test_conll_repair_gold(tmp_path: Path) -> None:
    path = write_bytes(tmp_path, b"a O\nb M-ORG\nc E-ORG\nd B-PER\n")
    with pytest.raises(CorpusFormatError):
        read_conll(path, "ner")
    (sent,) = read_conll(path, "ner", repair=True)
    assert sent.tags == ["O", "B-ORG", "E-ORG", "S-PER"]
    bio = write_bytes(tmp_path, b"a O\nb I-ORG\nc I-ORG\nd B-PER\n", "bio.txt")
    (sent,) = read_conll(bio, "ner", "bio", repair=True)
    assert sent.tags == ["O", "B-ORG", "E-ORG", "S-PER"]


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CorpusFormatError, match="file not found"):
        list(iter_lines(tmp_path / "nope.txt"))
    with pytest.raises(CorpusFormatError, match="is a directory"):
        read_segmented(tmp_path)


def test_segmented_is_cws_only(tmp_path: Path) -> None:
    with pytest.raises(CorpusFormatError, match="use format: conll"):
        read_corpus(write_bytes(tmp_path, b"a b\n"), "segmented", "ner")


def test_non_bmp_and_long_line(tmp_path: Path) -> None:
    long_line = "  ".join(["中国"] * 300_000)
    path = write_bytes(tmp_path, ("😀𠀀  好\n" + long_line + "\n").encode())
    sents = read_segmented(path)
    assert sents[0].chars == ["😀", "𠀀", "好"] and sents[0].tags == ["B", "E", "S"]
    assert len(sents[1].chars) == 600_000


# --- one reading path, structured errors ------------------------------------------------------


def test_corpus_does_not_import_formats() -> None:
    # formats builds on corpus; the other direction was an import cycle
    import ast
    import subprocess
    import sys

    import bmes_tagger.corpus as corpus

    tree = ast.parse(Path(corpus.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    assert "formats" not in imported and "bmes_tagger.formats" not in imported
    code = ("import sys, bmes_tagger.corpus; "
            "sys.exit('bmes_tagger.formats' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize(
    ("fmt", "task", "data", "kind"),
    [
        ("conll", "ner", b"a B-PER\nb\n", "missing_tag"),
        ("conll", "ner", b"a X-PER\n", "unknown_tag"),
        ("conll", "ner", b"a B-PER\nb B-PER\n\n", "illegal_sequence"),
        ("conll", "ner", b"a B\nb E\n", "wrong_task"),
        ("conll", "cws", b"a B-PER\nb E-PER\n", "wrong_task"),
        ("conll", "pos", b"a O\n", "wrong_task"),
        ("segmented", "ner", b"a b\n", "wrong_task"),
        ("jsonl", "cws", b'{"text": "a", "label": {}}\n', "wrong_task"),
        ("conll", "ner", "中 O\n".encode("gbk"), "encoding"),
        ("conll", "ner", b"a\x00 O\n", "binary"),
        ("conll", "ner", b"\n\n", "empty"),
        ("segmented", "cws", b"", "empty"),
        ("jsonl", "ner", b'{"text": "ab"}\n', "unlabelled"),
        ("jsonl", "ner", b'{"text": "ab", "label": {"X": {"b": [[0, 0]]}}}\n', "bad_span"),
        ("jsonl", "ner", b'{"text": "abc", "label": {"X": {"ab": [[0, 1]], "bc": [[1, 2]]}}}\n',
         "overlap"),
        ("jsonl", "ner", b'{"text": "ab", "label": {"X": {"a": [[0]]}}}\n', "format"),
        ("jsonl", "ner", b"{oops\n", "format"),
        ("pos", "pos", "北京\n".encode(), "missing_tag"),
    ],
)
def test_errors_carry_a_kind(tmp_path: Path, fmt: str, task: str, data: bytes, kind: str
                             ) -> None:
    from bmes_tagger.errors import CORPUS_ERROR_KINDS

    with pytest.raises(CorpusFormatError) as info:
        read_corpus(write_bytes(tmp_path, data), fmt, task)
    assert info.value.kind == kind and kind in CORPUS_ERROR_KINDS


def test_missing_file_kinds(tmp_path: Path) -> None:
    with pytest.raises(CorpusFormatError) as info:
        read_corpus(tmp_path / "nope", "conll", "ner")
    assert info.value.kind == "not_found"
    with pytest.raises(CorpusFormatError) as info:
        read_corpus(tmp_path, "conll", "ner")
    assert info.value.kind == "not_a_file"


def test_errors_survive_pickling() -> None:
    import pickle

    from bmes_tagger.errors import TagSequenceError

    exc = CorpusFormatError("f.txt", 3, "bad", kind="unknown_tag")
    again = pickle.loads(pickle.dumps(exc))
    assert (again.path, again.line, again.reason, again.kind, str(again)) == \
        ("f.txt", 3, "bad", "unknown_tag", "f.txt:3: bad")
    seq = pickle.loads(pickle.dumps(TagSequenceError(2, "x", "unknown_tag")))
    assert (seq.position, seq.reason, seq.kind) == (2, "x", "unknown_tag")


def test_read_eval_data_uses_the_kind_not_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from bmes_tagger import evaluate

    tagger = SimpleNamespace(task="ner", tags=["O", "B-PER"],
                             config=SimpleNamespace(data=SimpleNamespace(format="conll",
                                                                         scheme="bmes")))

    def fail(kind: str):  # type: ignore[no-untyped-def]
        def read(*args: object) -> None:
            raise CorpusFormatError("d.txt", 4, "some new wording", kind=kind)
        return read

    for kind, hint in (("wrong_task", "the model was trained for NER"),
                       ("unknown_tag", "read as conll"), ("missing_tag", "read as conll")):
        monkeypatch.setattr(evaluate, "read_corpus", fail(kind))
        with pytest.raises(CorpusFormatError) as info:
            evaluate.read_eval_data(tagger, "d.txt")  # type: ignore[arg-type]
        assert hint in str(info.value) and info.value.kind == kind
        assert str(info.value).startswith("d.txt:4: some new wording")
    monkeypatch.setattr(evaluate, "read_corpus", fail("encoding"))
    with pytest.raises(CorpusFormatError) as info:
        evaluate.read_eval_data(tagger, "d.txt")  # type: ignore[arg-type]
    assert str(info.value) == "d.txt:4: some new wording"
