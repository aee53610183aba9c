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


def test_conll_scheme_aliases(tmp_path: Path) -> None:
    # the scheme table's aliases reach the reader (iobes used to be a KeyError there)
    path = write_bytes(tmp_path, "张 B-PER\n三 L-PER\n京 U-LOC\n".encode())
    for alias in ("iobes", "BILOU", "bioes"):
        (sent,) = read_conll(path, "ner", alias)
        assert sent.tags == ["B-PER", "E-PER", "S-LOC"]
    with pytest.raises(ValueError, match="unknown tag scheme"):
        read_conll(path, "ner", "iob")


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


# --- line ends and line length -----------------------------------------------------------------


def test_cr_only_and_mixed_line_ends(tmp_path: Path) -> None:
    # old Mac files end lines with CR alone; a CR LF pair is one line end, LF CR is two
    path = write_bytes(tmp_path, "我们 在\r北京\r\r工作 了\n好\r\n\n的\n\r再见".encode())
    assert list(iter_lines(path)) == [(1, "我们 在"), (2, "北京"), (3, ""), (4, "工作 了"),
                                      (5, "好"), (6, ""), (7, "的"), (8, ""), (9, "再见")]
    sents = read_segmented(path)
    assert [("".join(s.chars), s.line) for s in sents] == [
        ("我们在", 1), ("北京", 2), ("工作了", 4), ("好", 5), ("的", 7), ("再见", 9)]
    conll = write_bytes(tmp_path, b"a B-PER\rb E-PER\r\rc S-LOC\r", "c.bmes")
    assert [(s.chars, s.line) for s in read_conll(conll)] == [(["a", "b"], 1), (["c"], 4)]


def test_cr_lf_split_across_read_chunks() -> None:
    import io

    from bmes_tagger import corpus

    # a CR at the end of one read and its LF at the start of the next are still one line end
    data = b"ab\r\ncd\r\ref\r\n\n\r\r\ng\n\r"
    want = [(1, "ab"), (2, "cd"), (3, ""), (4, "ef"), (5, ""), (6, ""), (7, ""), (8, "g"),
            (9, "")]
    assert list(corpus.iter_stream_lines(io.BytesIO(data), "x")) == want
    for size in range(1, len(data) + 1):
        stream = io.BufferedReader(io.BytesIO(data), buffer_size=size)
        assert list(corpus.iter_stream_lines(stream, "x", chunk_bytes=size)) == want, size


def test_line_length_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from bmes_tagger import corpus

    monkeypatch.setattr(corpus, "MAX_LINE_BYTES", 64)
    ok = b"x" * 64
    assert list(corpus.iter_stream_lines(io.BytesIO(ok + b"\n" + ok), "s")) == [
        (1, "x" * 64), (2, "x" * 64)]
    for sep in (b"\n", b"\r", b"\r\n"):
        with pytest.raises(CorpusFormatError) as info:
            list(corpus.iter_stream_lines(io.BytesIO(ok + sep + ok + b"y" + sep), "s"))
        assert info.value.kind == "line_too_long" and info.value.line == 2
        assert "line 2 is longer than" in str(info.value)

    class Endless(io.RawIOBase):
        """An endless stream without line ends that counts what was read from it."""

        def __init__(self) -> None:
            self.read_bytes = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            buffer[:] = b"a" * len(buffer)
            self.read_bytes += len(buffer)
            return len(buffer)

    raw = Endless()
    with pytest.raises(CorpusFormatError, match="line 1 is longer than"):
        list(corpus.iter_stream_lines(io.BufferedReader(raw), "endless"))
    assert raw.read_bytes < 64 + 2 * corpus.READ_CHUNK_BYTES + io.DEFAULT_BUFFER_SIZE


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_dev_zero_is_refused_not_read_forever() -> None:
    from bmes_tagger.corpus import MAX_LINE_BYTES

    with pytest.raises(CorpusFormatError) as info:
        list(iter_lines("/dev/zero"))
    assert info.value.kind == "line_too_long" and info.value.line == 1
    assert f"longer than {MAX_LINE_BYTES >> 20} MiB" in str(info.value)
    with pytest.raises(CorpusFormatError, match="/dev/zero:1: line 1 is longer than"):
        read_corpus("/dev/zero", "segmented", "cws")


def test_lines_before_a_bad_line_are_yielded_first(tmp_path: Path) -> None:
    # predict streams: what precedes a broken line is still tagged before the error
    path = write_bytes(tmp_path, b"ok\r\nfine\n\xff\nlater\n")
    got = []
    with pytest.raises(CorpusFormatError) as info:
        for item in iter_lines(path):
            got.append(item)
    assert got == [(1, "ok"), (2, "fine")] and info.value.line == 3


def test_a_pipe_is_read_line_by_line_as_it_arrives() -> None:
    import os
    import threading

    from bmes_tagger.corpus import iter_stream_lines

    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader:
        lines = iter_stream_lines(reader, "<pipe>")
        os.write(write_fd, "第一行\r\n".encode())
        got: list[tuple[int, str]] = []
        thread = threading.Thread(target=lambda: got.append(next(lines)), daemon=True)
        thread.start()
        thread.join(timeout=10)  # the writer is still open: no EOF, no full block
        assert got == [(1, "第一行")]
        os.write(write_fd, b"\nsecond")  # the LF after CR LF: an empty line
        os.close(write_fd)
        assert list(lines) == [(2, ""), (3, "second")]


# --- word lists (as the SIGHAN scorer reads them) and user dictionaries -------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("中国\n北京\n".encode(), {"中国", "北京"}),
        # the whole line is the key: a frequency column makes a word no gold word equals
        ("中国 12\n北京\n".encode(), {"中国 12", "北京"}),
        # only ASCII whitespace is stripped; U+3000 and NBSP belong to the word
        (" \t上海 \r\n\u3000天津\n南\u00a0京\n\n".encode(), {"上海", "\u3000天津", "南\u00a0京"}),
        # chop: a last line without line end loses its last character
        ("中国\nab".encode(), {"中国", "a"}),
        ("中国\n北京".encode(), {"中国"}),
        ("中国\n北京 ".encode(), {"中国", "北京"}),
        ("中国\r\n北京\r".encode(), {"中国", "北京"}),
        # a BOM is no whitespace to Perl: the first word keeps it
        ("\ufeff中国\n北京\n".encode(), {"\ufeff中国", "北京"}),
        (b"", set()),
    ],
)
def test_read_word_list_like_the_sighan_scorer(tmp_path: Path, data: bytes, words: set[str]
                                               ) -> None:
    from bmes_tagger.corpus import read_word_list

    assert read_word_list(write_bytes(tmp_path, data)) == words


def test_read_dictionary_takes_the_first_field(tmp_path: Path) -> None:
    from bmes_tagger.corpus import read_dictionary
    from bmes_tagger.predict import UserDict

    path = write_bytes(tmp_path, "北京大学 3 nt\n\n  云计算\t5\r创新办 n\n".encode())
    assert read_dictionary(path) == {"北京大学", "云计算", "创新办"}
    assert UserDict.load(path).words == {"北京大学", "云计算", "创新办"}


# --- type names the scorers could merge ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "task", "data", "line"),
    [
        ("conll", "ner", "a O\nb S-PER-\n", 2),
        ("conll", "ner", "a B--PER\nb E--PER\n", 1),
        ("conll", "ner", "a S--\n", 1),
        ("conll", "pos", "a S-n\n\nb B-v-\nc E-v-\n", 3),
        ("jsonl", "ner", '{"text": "ab", "label": {}}\n'
                         '{"text": "ab", "label": {"PER-": {"a": [[0, 0]]}}}\n', 2),
        ("conllu", "pos", "1\t北京\t_\t-PROPN\t_\t_\t_\t_\t_\t_\n", 1),
        ("pos", "pos", "北京/ns  的/u-\n", 1),
    ],
)
def test_type_names_edged_with_hyphens_are_refused(tmp_path: Path, fmt: str, task: str,
                                                   data: str, line: int) -> None:
    # seqeval strips them (PER- scores as PER); conll keeps the rest of the tag as the type
    path = write_bytes(tmp_path, data.encode())
    with pytest.raises(CorpusFormatError) as info:
        read_corpus(path, fmt, task)
    assert info.value.kind == "bad_label" and info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ") and "'-'" in info.value.reason


def test_hyphens_inside_type_names_are_fine(tmp_path: Path) -> None:
    (sent,) = read_conll(write_bytes(tmp_path, b"a B-ORG-x\nb E-ORG-x\nc S-X--Y\n"), "ner")
    assert sent.tags == ["B-ORG-x", "E-ORG-x", "S-X--Y"]
