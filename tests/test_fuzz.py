"""Property tests: random bytes and structured-but-wrong input for every reader and the config
loader. The only allowed outcomes are a parsed result (checked against a small reference
reading of the same input) or one of the project's own ``BmesTaggerError`` subclasses.

Run with ``-s`` to see how many examples ran in total (the last test prints it).
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
import tempfile
import typing
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmes_tagger.config import SECTIONS, Config, config_from_dict, load_config
from bmes_tagger.corpus import (
    iter_lines,
    iter_stream_lines,
    read_conll,
    read_dictionary,
    read_segmented,
    read_word_list,
)
from bmes_tagger.errors import BmesTaggerError, ConfigError, CorpusFormatError
from bmes_tagger.tags import tags_to_spans
from bmes_tagger.text import split_graphemes

EXAMPLES: Counter[str] = Counter()
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BOM = b"\xef\xbb\xbf"


@contextmanager
def written(data: bytes, name: str = "f.txt") -> Iterator[Path]:
    # A fresh directory per example: pytest's tmp_path is shared by all hypothesis examples.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        yield path


# --- strategies --------------------------------------------------------------------------------

# Byte soup biased towards what breaks readers: line ends, BOMs, NULs, cut UTF-8 sequences.
byte_soup = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from([b"\n", b"\r\n", b"\r", BOM, b"\x00", b"\xff", b"\xe4\xb8",
                              "中".encode(), "𠀀".encode(), b"a", b" ", b"\t", b"B-PER", b"O",
                              "\u3000".encode(), "我们 在".encode("gbk"), b"\xe9"]),
             max_size=40).map(b"".join),
)

# Tokens without whitespace (so the reference can keep fields apart); odd code points included.
TOKENS = ["张", "伟", "京", "a", "Ｂ", "😀", "𠀀", "é", "\u0301", "\x7f", "-", "B", "O", "#",
          "中国"]
PREFIXES = ["B", "M", "E", "S", "O", "I", "L", "U"]
LABELS = ["", "PER", "LOC", "X-Y"]
JUNK_TAGS = ["-", "B-", "O-PER", "b-per", "BB", "BM-PER", "Ｂ", "X", "S--", "E-PER-"]
tags = st.one_of(
    st.builds(lambda p, lab: f"{p}-{lab}" if lab else p, st.sampled_from(PREFIXES),
              st.sampled_from(LABELS)),
    st.sampled_from(JUNK_TAGS),
)
# Strategies are built once here: building them inside composites costs most of the run time.
token = st.sampled_from(TOKENS)
separators = st.sampled_from([" ", "\t", "  ", "\u3000", " \t "])
blank_text = st.sampled_from(["", " ", "\t"])
line_ends = st.sampled_from(["\n", "\r\n"])
middle_columns = st.sampled_from([[], [], [], ["x"]])
damages = st.sampled_from(["none", "none", "tag", "valid-tag", "no-tag"])
SPANS = {task: st.lists(st.tuples(st.sampled_from(labels), st.integers(1, 4)), min_size=1,
                        max_size=4)
         for task, labels in (("cws", [""]), ("ner", ["PER", "LOC", "O"]))}

# A CoNLL line: None is a blank line, else its fields (char, middle columns..., tag).
conll_line = st.one_of(
    st.none(),
    st.tuples(token, tags).map(list),
    st.tuples(token, token, tags).map(list),
    st.tuples(token).map(list),  # no tag
)


def encode_span(label: str, length: int, scheme: str, alt: bool) -> list[str]:
    """Gold tags of one span (label ``O``: outside) in ``scheme``; ``alt`` uses BILOU's L/U."""
    if label == "O":
        return ["O"] * length
    suffix = f"-{label}" if label else ""
    inside = "M" if scheme == "bmes" else "I"
    if scheme == "bio":
        return [f"B{suffix}"] + [f"I{suffix}"] * (length - 1)
    single, end = ("U", "L") if alt and scheme == "bioes" else ("S", "E")
    if length == 1:
        return [f"{single}{suffix}"]
    return [f"B{suffix}"] + [f"{inside}{suffix}"] * (length - 2) + [f"{end}{suffix}"]


@st.composite
def conll_sentence(draw: st.DrawFn, task: str, scheme: str) -> list[list[str] | None]:
    """Tag lines of one sentence: legal, or with one tag replaced or dropped."""
    alt = draw(st.booleans())
    seq = [t for label, n in draw(SPANS[task]) for t in encode_span(label, n, scheme, alt)]
    lines: list[list[str] | None] = [[draw(token), *draw(middle_columns), tag] for tag in seq]
    damage = draw(damages)
    at = draw(st.integers(0, len(lines) - 1))
    line = lines[at]
    assert line is not None
    if damage == "tag":
        line[-1] = draw(tags)
    elif damage == "valid-tag":
        line[-1] = draw(st.sampled_from(PREFIXES)) + ("-PER" if task == "ner" else "")
    elif damage == "no-tag":
        lines[at] = line[:1]
    return lines


@st.composite
def conll_files(draw: st.DrawFn, task: str, scheme: str
                ) -> tuple[list[list[str] | None], bytes]:
    """Sentences separated by one or more blank lines; sometimes a random line in between."""
    lines: list[list[str] | None] = []
    for sentence in draw(st.lists(conll_sentence(task, scheme), max_size=4)):
        lines += sentence + [None] * draw(st.integers(1, 2))
    if lines and draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(conll_line))
    return lines, draw(rendered(lines))


@st.composite
def rendered(draw: st.DrawFn, lines: list[list[str] | None]) -> bytes:
    """Lines of fields joined by random separators and line ends, maybe with a BOM."""
    out = []
    for fields in lines:
        if fields is None:
            out.append(draw(blank_text))
        else:
            out.append(draw(blank_text) + draw(separators).join(fields) + draw(blank_text))
    ending = draw(line_ends)
    text = ending.join(out) + draw(st.sampled_from([ending, ""]))
    return (BOM if draw(st.booleans()) else b"") + text.encode("utf-8")


segmented_lines = st.lists(st.lists(st.lists(token, min_size=1, max_size=4).map("".join),
                                    max_size=5), max_size=8)


@st.composite
def segmented_files(draw: st.DrawFn) -> tuple[list[list[str]], bytes]:
    lines = draw(segmented_lines)
    return lines, draw(rendered([ws or None for ws in lines]))


# --- reference readings ------------------------------------------------------------------------

SCHEME_PREFIXES = {"bmes": "BMESO", "bioes": "BIESOLU", "bio": "BIO"}


def tag_ok(tag: str, task: str, scheme: str) -> bool:
    prefix, sep, label = tag.partition("-")
    if len(prefix) != 1 or prefix not in SCHEME_PREFIXES[scheme] or (sep and not label):
        return False
    if prefix == "O":
        return not label and task == "ner"
    # a type name edged with '-' (PER-, -PER) is refused: seqeval would merge it with PER
    return bool(label) == (task == "ner") and label.strip("-") == label


def ref_spans(seq: list[str], scheme: str) -> tuple[list[tuple[str, int, int]] | None, int]:
    """Spans of a strict gold sequence, or ``(None, index of the offending tag)``."""
    spans: list[tuple[str, int, int]] = []
    open_label: str | None = None
    start = 0
    for i, tag in enumerate(seq):
        prefix, _, label = tag.partition("-")
        if scheme == "bio":
            if prefix == "I":
                if open_label != label:
                    return None, i
                continue
            if open_label is not None:
                spans.append((open_label, start, i))
                open_label = None
            if prefix == "B":
                open_label, start = label, i
            continue
        prefix = {"I": "M", "L": "E", "U": "S"}.get(prefix, prefix)
        if prefix in "ME":
            if open_label != label:
                return None, i
            if prefix == "E":
                spans.append((label, start, i + 1))
                open_label = None
            continue
        if open_label is not None:
            return None, i
        if prefix == "B":
            open_label, start = label, i
        elif prefix == "S":
            spans.append((label, i, i + 1))
    if open_label is not None:
        if scheme == "bio":
            spans.append((open_label, start, len(seq)))
        else:
            return None, len(seq) - 1
    return spans, -1


def ref_conll(lines: list[list[str] | None], task: str, scheme: str, repair: bool
              ) -> tuple[list[tuple[list[str], Any]] | None, int | None]:
    """Expected ``(chars, spans)`` per sentence, or ``(None, error line)``."""
    sentences: list[tuple[list[str], Any]] = []
    chars: list[str] = []
    seq: list[str] = []
    numbers: list[int] = []

    def flush() -> int | None:
        if chars:
            spans, bad = ref_spans(seq, scheme)
            if spans is None and not repair:
                return numbers[bad]
            sentences.append((list(chars), spans))
        chars.clear(), seq.clear(), numbers.clear()
        return None

    for number, fields in enumerate(lines, start=1):
        if fields is None:
            if (bad_line := flush()) is not None:
                return None, bad_line
            continue
        if len(fields) < 2 or not tag_ok(fields[-1], task, scheme):
            return None, number
        chars.append(fields[0])
        seq.append(fields[-1])
        numbers.append(number)
    if (bad_line := flush()) is not None:
        return None, bad_line
    return (sentences, None) if sentences else (None, None)


def ref_iter_lines(data: bytes) -> list[tuple[int, str]] | int:
    """Lines as a UTF-8 file reader should yield them, or the number of the first bad line.

    LF, CR LF and a lone CR each end a line."""
    pieces = re.split(b"\r\n|\r|\n", data)
    raw_lines = [p + b"\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    out = []
    for number, raw in enumerate(raw_lines, start=1):
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM):]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return number
        if "\x00" in text:
            return number
        out.append((number, text.rstrip("\r\n")))
    return out


def chars_of(word: str) -> list[str]:
    return split_graphemes(word)[0]


def bmes_of(word: Sequence[str]) -> list[str]:
    n = len(word)
    return ["S"] if n == 1 else ["B"] + ["M"] * (n - 2) + ["E"]


# --- readers -------------------------------------------------------------------------------------


@FUZZ
@given(data=byte_soup)
def test_iter_lines_random_bytes(data: bytes) -> None:
    EXAMPLES["iter_lines"] += 1
    expected = ref_iter_lines(data)
    with written(data) as path:
        try:
            got = list(iter_lines(path))
        except CorpusFormatError as exc:
            assert exc.line == expected and str(path) in str(exc), (exc, expected)
            return
    assert got == expected


@FUZZ
@given(data=byte_soup, size=st.integers(1, 9))
def test_iter_stream_lines_any_read_size(data: bytes, size: int) -> None:
    """Lines and errors do not depend on where the reads cut the stream (a CR LF, a UTF-8
    sequence or a BOM split between two reads)."""
    EXAMPLES["iter_stream_lines"] += 1
    expected = ref_iter_lines(data)
    stream = io.BufferedReader(io.BytesIO(data), buffer_size=size)
    got: list[tuple[int, str]] = []
    try:
        for item in iter_stream_lines(stream, "s", chunk_bytes=size):
            got.append(item)
    except CorpusFormatError as exc:
        assert isinstance(expected, int) and exc.line == expected, (exc, expected)
        return
    assert got == expected


@FUZZ
@given(data=byte_soup, task=st.sampled_from(["cws", "ner"]),
       scheme=st.sampled_from(["bmes", "bioes", "bio"]), repair=st.booleans())
def test_readers_random_bytes(data: bytes, task: str, scheme: str, repair: bool) -> None:
    EXAMPLES["readers_random_bytes"] += 1
    with written(data) as path:
        for read in (lambda: read_segmented(path), lambda: read_word_list(path),
                     lambda: read_dictionary(path),
                     lambda: read_conll(path, task, scheme, repair)):
            try:
                result = read()
            except BmesTaggerError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc)
                continue
            assert isinstance(result, (list, set))


@FUZZ
@given(file=segmented_files())
def test_read_segmented_structured(file: tuple[list[list[str]], bytes]) -> None:
    EXAMPLES["read_segmented"] += 1
    lines, data = file
    # a word's characters are its grapheme clusters ("张" + U+0301 is one; see test_text.py)
    expected = [(number, [c for w in ws for c in chars_of(w)],
                 [t for w in ws for t in bmes_of(chars_of(w))])
                for number, ws in enumerate(lines, start=1) if ws]
    with written(data) as path:
        try:
            sentences = read_segmented(path)
        except CorpusFormatError as exc:
            assert not expected and exc.line is None, exc
            return
    assert [(s.line, s.chars, s.tags) for s in sentences] == expected


@pytest.mark.parametrize("scheme", ["bmes", "bioes", "bio"])
@pytest.mark.parametrize("task", ["cws", "ner"])
@settings(FUZZ, max_examples=100)  # x 6 parametrizations
@given(data=st.data(), repair=st.booleans())
def test_read_conll_structured(task: str, scheme: str, data: st.DataObject, repair: bool
                               ) -> None:
    lines, content = data.draw(conll_files(task, scheme))
    EXAMPLES[f"read_conll[{task}-{scheme}]"] += 1
    expected, bad_line = ref_conll(lines, task, scheme, repair)
    with written(content) as path:
        try:
            sentences = read_conll(path, task, scheme, repair)
        except CorpusFormatError as exc:
            assert expected is None and exc.line == bad_line, (exc, bad_line)
            assert str(path) in str(exc) and "\n" not in str(exc)
            return
    assert expected is not None, f"accepted, but line {bad_line} is wrong"
    assert [s.chars for s in sentences] == [chars for chars, _ in expected]
    for sentence, (_, spans) in zip(sentences, expected):
        assert sentence.tags is not None and len(sentence.tags) == len(sentence.chars)
        got = tags_to_spans(sentence.tags, strict=True)  # always legal BMES, even repaired
        if spans is not None:
            assert got == spans
        for tag in sentence.tags:
            assert (tag == "O" or "-" in tag) == (task == "ner") and tag[0] in "BMESO"


@FUZZ
@given(file=segmented_files())
def test_read_dictionary_structured(file: tuple[list[list[str]], bytes]) -> None:
    EXAMPLES["read_dictionary"] += 1
    lines, data = file
    with written(data) as path:
        assert read_dictionary(path) == {ws[0] for ws in lines if ws}


def scorer_word_keys(data: bytes) -> set[str]:
    """The keys of the SIGHAN scorer's %dict for a word-list file (its loop ported literally:
    records end at LF; chop; strip Perl's byte-string \\s), as the UTF-8 words they can match."""
    pieces = data.split(b"\n")
    records = [p + b"\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    keys = set()
    for record in records:
        key = record[:-1].strip(b" \t\n\r\f\x0b")
        try:
            keys.add(key.decode("utf-8"))
        except UnicodeDecodeError:
            continue  # a multibyte character cut by chop: equal to no word
    keys.discard("")  # never looked up: the scorer's diff-line regex needs a non-space word
    return keys


word_list_fields = st.lists(st.sampled_from(["中国", "北京", "a", "ab1", "12", "n", "é",
                                             "😀", "\u3000", "\xa0", " ", "\t", "\x0b",
                                             "\f", "\r"]), max_size=5).map("".join)


@FUZZ
@given(lines=st.lists(word_list_fields, max_size=8), crlf=st.booleans(),
       final=st.booleans(), bom=st.booleans())
def test_read_word_list_reads_like_the_scorer(lines: list[str], crlf: bool, final: bool,
                                               bom: bool) -> None:
    """LF or CR LF files (a lone CR is a line end for us, not for the scorer)."""
    EXAMPLES["read_word_list"] += 1
    lines = [line.replace("\r", "") for line in lines]
    end = "\r\n" if crlf else "\n"
    text = end.join(lines) + (end if final and lines else "")
    data = (BOM if bom else b"") + text.encode("utf-8")
    with written(data) as path:
        assert read_word_list(path) == scorer_word_keys(data)


# --- config --------------------------------------------------------------------------------------

FIELDS = {section: {f.name: f for f in dataclasses.fields(cls)}
          for section, cls in SECTIONS.items()}
KEY_NAMES = sorted({k for fields in FIELDS.values() for k in fields})
NEAR_MISSES = ["modle", "hiden_size", "epoch", "Data", "train ", "lr.x", "", "?", "1", "true"]
SCALARS = ["1", "0", "-3", "2.5", "1e400", ".nan", ".inf", "-.inf", "true", "yes", "null", "~",
           "''", "'abc", '"a\\0b"', "[1, 2", "[1, 2]", "{a: 1}", "{", "&x 3", "*x", "*nope",
           "!!python/object/apply:os.system ['true']", "!!int x", "!!float y", "!!binary x",
           "!!timestamp 2001-13-45", "2001-13-45", "2001-01-01", "${HOME}", "${BMES_UNSET_X}",
           "${BMES_UNSET_X:-3}", "|", ">", "# c", "0x1F", "0o17", "1_000", "+1", "数据", "\t",
           "-", "- a", ":", "%YAML 1.1", "---", "...", "?", "\x00", "\x85", "\ufeff",
           # YAML 1.2 floats, too-long and exponentially aliased values
           "1e-3", "5E4", "-.5", "1e1", "1.0e2", "1e999", "y" * 5000, "'" + "z" * 5000 + "'",
           "{a: &a [l, l, l, l], b: &b [*a, *a, *a, *a], c: &c [*b, *b, *b, *b], "
           "d: &d [*c, *c, *c, *c], e: &e [*d, *d, *d, *d], f: &f [*e, *e, *e, *e], "
           "g: [*f, *f, *f, *f]}"]


def _typical(f: dataclasses.Field[Any]) -> list[str]:
    """YAML values near the edge of what ``f`` accepts."""
    meta, kind = f.metadata, type(f.default)
    if "choices" in meta:
        return [*meta["choices"], meta["choices"][0].upper(), meta["choices"][0][:-1]]
    if meta.get("path"):
        return ["f.txt", "nope.txt", "'  '", '"a\\0b"', "~no_such_user_x/f", "null",
                "${BMES_UNSET_X:-f.txt}", "x" * 300]
    if kind is bool:
        return ["true", "false", "no", "1"]
    values = ["0", "1", "3", "-1", "0.5", "1.0", "99999999999999999999"]
    if kind is float:
        values += [".nan", ".inf", "-.inf", "1e400", "1e-300"]
    return values


TYPICAL = {(section, name): _typical(f) for section, fields in FIELDS.items()
           for name, f in fields.items()}


@st.composite
def yaml_configs(draw: st.DrawFn) -> str:
    """Mostly well-shaped configs with edge values; one in four is damaged in one place."""
    lines = []
    for section in draw(st.lists(st.sampled_from([*SECTIONS, *SECTIONS, "modle"]), min_size=1,
                                 max_size=4, unique=True)):
        lines.append(f"{section}:")
        names = list(FIELDS.get(section, FIELDS["data"]))
        for key in draw(st.lists(st.sampled_from([*names, *names, "hiden_size", "epoch"]),
                                 max_size=3, unique=True)):
            pool = TYPICAL.get((section, key), SCALARS)
            value = draw(st.one_of(*[st.sampled_from(pool)] * 4, st.sampled_from(SCALARS)))
            lines.append(f"  {key}: {value}")
    damage = draw(st.sampled_from(["none"] * 6 + ["indent", "insert", "repeat"]))
    if damage == "repeat":  # a section or key given twice must be an error, never ignored
        lines.append(lines[draw(st.integers(0, len(lines) - 1))])
    if damage == "indent":
        at = draw(st.integers(0, len(lines) - 1))
        lines[at] = draw(st.sampled_from(["\t", " ", "   ", "- "])) + lines[at].lstrip()
    text = "\n".join(lines)
    if damage == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["\n", ":", " ", "[", "'", "-"])) + text[at:]
    return text


yaml_text = st.one_of(yaml_configs(), yaml_configs(), yaml_configs(),
                      st.lists(st.builds(lambda k, sep, v: f"{k}{sep}{v}",
                                         st.sampled_from([*SECTIONS, *KEY_NAMES, *NEAR_MISSES]),
                                         st.sampled_from([":", ": ", " : ", "="]),
                                         st.sampled_from(SCALARS)), max_size=6).map("\n".join),
                      st.text(max_size=60))
overrides = st.lists(st.one_of(
    st.sampled_from(list(TYPICAL)).flatmap(lambda key: st.sampled_from(TYPICAL[key]).map(
        lambda v: f"{key[0]}.{key[1]}={v}")),
    st.builds(lambda section, key, sep, value: f"{section}.{key}{sep}{value}",
              st.sampled_from([*SECTIONS, "modle", ""]), st.sampled_from([*KEY_NAMES, "x", ""]),
              st.sampled_from(["=", "", "=="]), st.sampled_from(SCALARS))), max_size=3)


def check_config(cfg: Config) -> None:
    """Every value has its declared type and lies within its declared range."""
    assert isinstance(cfg, Config)
    for section, fields in FIELDS.items():
        hints = typing.get_type_hints(SECTIONS[section])
        for name, f in fields.items():
            value = getattr(getattr(cfg, section), name)
            allowed = typing.get_args(hints[name]) or (hints[name],)
            assert type(value) in allowed, (section, name, value)
            meta = f.metadata
            if "choices" in meta:
                assert value in meta["choices"]
            if type(value) in (int, float):
                # NaN would slip through every range check; huge ints overflow torch.
                assert math.isfinite(value) and (type(value) is float or abs(value) < 2**31)
                if "min" in meta:
                    assert value > meta["min"] if meta.get("min_exclusive") else \
                        value >= meta["min"]
                if "max" in meta:
                    assert value < meta["max"] if meta.get("max_exclusive") else \
                        value <= meta["max"]


@FUZZ
@given(text=yaml_text, sets=overrides)
def test_load_config_yamlish_text(text: str, sets: list[str]) -> None:
    EXAMPLES["load_config"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "f.txt").write_text("x\n")  # so that `train: f.txt` can be valid
        path = Path(tmp) / "c.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            cfg = load_config(path, sets)
        except ConfigError as exc:
            assert "\n" not in str(exc), str(exc)
            # every echoed value, key and path is clipped, whatever the input holds
            assert len(exc.reason) <= 300, exc.reason
            assert exc.source is not None and (exc.source == str(path)
                                               or exc.source.startswith("--set ")), str(exc)
            return
        check_config(cfg)
        for section, name, value in (("data", f.name, getattr(cfg.data, f.name))
                                     for f in dataclasses.fields(SECTIONS["data"])
                                     if f.metadata.get("path")):
            assert value is None or Path(value).is_absolute() and Path(value).is_file(), \
                (section, name, value)


keys = st.one_of(st.sampled_from([*KEY_NAMES, *NEAR_MISSES]), st.text(max_size=5),
                 st.integers(-2, 2), st.none(), st.booleans())
leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                   st.integers(-(2**70), 2**70), st.text(max_size=8))
values = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)), max_leaves=6)


def _typed(f: dataclasses.Field[Any]) -> st.SearchStrategy[Any]:
    """Python values of the field's own kind, edges included (nan, inf, huge ints)."""
    meta, kind = f.metadata, type(f.default)
    if "choices" in meta:
        return st.sampled_from([*meta["choices"], meta["choices"][0].title(),
                                f"${{BMES_UNSET_X:-{meta['choices'][-1]}}}", "${BMES_UNSET_X}"])
    if meta.get("path"):
        return st.one_of(st.none(), st.text(max_size=6), st.just("a\x00b"))
    if kind is bool:
        return st.booleans()
    if kind is float:
        return st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 0.25, 1e300]),
                         st.floats(), st.floats(-2, 2), st.integers(-3, 3))
    return st.one_of(st.sampled_from([1, 8, 200, 2**31, 2**63, 10**30, -1, 0]),
                     st.integers(-3, 300), st.integers(), st.floats(0, 9))


@st.composite
def raw_sections(draw: st.DrawFn) -> dict[Any, Any]:
    raw: dict[Any, Any] = {}
    for section in draw(st.lists(st.sampled_from([*SECTIONS, *SECTIONS, "modle"]), max_size=4,
                                 unique=True)):
        fields = FIELDS.get(section, FIELDS["data"])
        names = draw(st.lists(st.sampled_from([*fields, *fields, "hiden_size"]), max_size=4,
                              unique=True))
        raw[section] = {name: draw(_typed(fields[name]) if name in fields else values)
                        for name in names}
        if draw(st.sampled_from([False] * 7 + [True])):
            raw[section] = draw(values)
    return raw


raw_configs = st.one_of(raw_sections(), raw_sections(), raw_sections(),
                        st.dictionaries(st.one_of(st.sampled_from([*SECTIONS, *NEAR_MISSES]),
                                                  keys), values, max_size=4),
                        values)


@FUZZ
@given(raw=raw_configs)
def test_config_from_dict_nested(raw: Any) -> None:
    EXAMPLES["config_from_dict"] += 1
    try:
        cfg = config_from_dict(raw)
    except ConfigError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    check_config(cfg)
    assert config_from_dict(cfg.to_dict()) == cfg
    # What was given is what was kept (ints widen to floats; ${...} strings are expanded).
    for section, given_values in raw.items():
        for key, value in (given_values or {}).items():
            kept = getattr(getattr(cfg, section), key)
            if not (isinstance(value, str) and "$" in value):
                assert kept == value and type(kept) in (type(value), float), (key, value, kept)


def test_zz_report_example_counts() -> None:
    """Runs last (file order): how many examples the properties above ran (see with -s)."""
    if not EXAMPLES:
        pytest.skip("no property test ran in this session")
    total = sum(EXAMPLES.values())
    print(f"\nfuzz examples: {total} in all; " + ", ".join(f"{k} {v}" for k, v in
                                                         sorted(EXAMPLES.items())))
    assert all(n > 0 for n in EXAMPLES.values())
