"""Corpus readers: every labelled format -> :class:`Sentence` lists with BMES tags.

:func:`read_corpus` reads all of :data:`FORMATS` (writing and conversion live in
:mod:`bmes_tagger.formats`, which builds on this module):

========== ===================================================== ==============
format      layout                                                tasks
========== ===================================================== ==============
segmented   words separated by whitespace, one sentence per line  cws
conll       ``CHAR TAG`` per line, blank line between sentences   cws, ner, pos
jsonl       ``{"text", "label": {TYPE: {MENTION: [[s, e]]}}}``     ner
conllu      CoNLL-U, FORM = word, UPOS/XPOS = POS                  cws, pos
pos         ``word/POS`` tokens separated by whitespace            pos, cws
========== ===================================================== ==============

Gold tags are read strictly: every tag must belong to the task's tag set and every sentence must
be a legal sequence in its scheme (converted to BMES on load), unless ``repair`` is asked for.
Every problem is a :class:`CorpusFormatError` naming ``path:line``, with a ``kind`` saying what
went wrong. Whitespace is never a character of a sentence (as in ``tagger predict``), and in
the text formats (all but conll, whose lines name their tokens) a character is a grapheme
cluster (:func:`bmes_tagger.text.split_graphemes`), taken within each word: 👨‍👩‍👧 or ``e`` +
combining accent is one character, with one tag.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import CorpusFormatError, TagSequenceError
from .tags import (
    get_scheme,
    label_problem,
    repair_to_bmes,
    spans_to_tags,
    split_tag,
    to_bmes,
    words_to_tags,
)
from .text import has_joiners, split_graphemes

FORMATS = ("segmented", "conll", "jsonl", "conllu", "pos")
TASKS = ("cws", "ner", "pos")
#: The tasks each format can be read for (``pos`` text and CoNLL-U read as ``cws`` drop the POS).
READ_TASKS = {"segmented": ("cws",), "conll": ("cws", "ner", "pos"), "jsonl": ("ner",),
              "conllu": ("cws", "pos"), "pos": ("cws", "pos")}
POS_COLUMNS = ("upos", "xpos")

#: Longest line the readers accept, in bytes: far above any real sentence (the longest line of
#: the corpora in shared/corpora has 6,355 bytes), low enough that a file without line ends
#: (``/dev/zero``) fails fast instead of filling memory.
MAX_LINE_BYTES = 16 << 20
#: Bytes asked of the stream per read; a longer line is assembled from several reads.
READ_CHUNK_BYTES = 1 << 20
_LINE_END = re.compile(rb"\r\n?|\n")
_LINE_END_TEXT = re.compile("\r\n?|\n")
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")
# Perl's \s on the scorer's byte strings: ASCII whitespace only, not U+3000 or U+00A0.
_PERL_SPACE = " \t\n\x0b\f\r"

# The paragraph id that opens every line of People's Daily RMRB.txt.
RMRB_ID = re.compile(r"\d{8}-\d{2}-\d{3}-\d{3}/m")
# The last word of a bracketed compound, `电台/n]nt`: group 1 is `电台/n`, group 2 the outer tag.
_BRACKET_CLOSE = re.compile(r"(.+/[^/\]]+)\]([A-Za-z]+)")
_CONLLU_COLUMNS = "ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC"


@dataclass
class Sentence:
    """One sentence: its characters (tokens) and, for labelled data, one BMES tag per character.

    ``line`` is the 1-based line of the file where the sentence starts (for error messages).
    ``spaces`` are the token indices that the sentence's raw text has whitespace before: what
    ``tagger predict`` of that text would take as word boundaries, so evaluation scores the
    text a user would predict (known from JSON ``text`` and CoNLL-U ``SpaceAfter``; for
    segmented and word/POS text, whose spaces are annotation, between two words that meet with
    ASCII letters or digits, as in ``he said``).
    """

    chars: list[str]
    tags: list[str] | None = None
    line: int = 0
    spaces: tuple[int, ...] = ()


def text_problem(text: str, decoded: bool = False) -> tuple[str, str] | None:
    """The one rule for the characters a corpus may hold, however its file writes them (raw
    UTF-8, or JSON escapes such as ``\\u0000``): ``(kind, what)`` of the first forbidden one,
    or None. A NUL marks a binary file, and the line formats cannot hold it (so a JSON
    ``\\u0000`` would convert to a file that no longer reads); a lone surrogate is half of a
    UTF-16 pair, not a character, and cannot be written as UTF-8 at all.

    Args:
        text: the text.
        decoded: ``text`` came from strict UTF-8 decoding, which never yields a surrogate, so
            the (slower) search for one is skipped.
    """
    if "\x00" in text:
        return "binary", "a NUL byte (U+0000: a binary file?)"
    if not decoded and (found := _SURROGATE.search(text)):
        return "encoding", (f"a lone surrogate U+{ord(found.group()):04X} (half of a UTF-16 "
                            "pair, not a character)")
    return None


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of a UTF-8 file without line terminators.

    LF, CR LF and a lone CR (old Mac files) all end a line. A UTF-8 BOM is skipped.
    Undecodable bytes, NUL bytes and lines over :data:`MAX_LINE_BYTES` raise
    :class:`CorpusFormatError` with the line number.
    """
    path = Path(path)
    _check_file(path)
    with path.open("rb") as f:
        yield from iter_stream_lines(f, path)


def iter_stream_lines(
    stream: IO[bytes], name: str | Path, *, chunk_bytes: int = 0
) -> Iterator[tuple[int, str]]:
    """Like :func:`iter_lines` for an open binary stream (e.g. stdin); ``name`` is for errors.

    The stream is read in blocks of at most ``chunk_bytes`` (default :data:`READ_CHUNK_BYTES`),
    each as soon as it is available (``read1``), so a pipe is tagged as it arrives, and memory
    stays bounded by :data:`MAX_LINE_BYTES` even on a stream without line ends (``/dev/zero``).
    """
    for before, body, _ in _line_blocks(stream, name, chunk_bytes):
        lines, error = _split_block(body, before, name, MAX_LINE_BYTES)
        yield from enumerate(lines, before + 1)
        if error is not None:
            raise error


def count_lines(path: str | Path) -> int:
    """How many lines :func:`iter_lines` yields for ``path``, counted without decoding (so a
    shard before an undecodable line still reads): ``--shard`` splits by this count, and a
    count that disagreed with the reader (a lone CR, no final line end) would drop or repeat
    lines at the shard joins."""
    path = Path(path)
    _check_file(path)
    with path.open("rb") as f:
        return sum(count for _, _, count in _line_blocks(f, path))


def _line_blocks(stream: IO[bytes], name: str | Path, chunk_bytes: int = 0
                 ) -> Iterator[tuple[int, bytes, int]]:
    """The one place that decides where the lines of a stream end: LF, CR LF or a lone CR,
    and a last line without a line end is a line. Yields ``(lines before, data, lines in
    data)`` with ``data`` whole lines, the last one's line end removed (so ``data`` holds
    ``lines in data - 1`` line ends); :func:`iter_stream_lines` decodes them,
    :func:`count_lines` counts them. A line over :data:`MAX_LINE_BYTES` that spans blocks
    is an error here; within a block, the decoder finds it."""
    limit = MAX_LINE_BYTES
    size = chunk_bytes or READ_CHUNK_BYTES
    read = getattr(stream, "read1", stream.read)
    number = 0
    pending: list[bytes] = []  # the start of a line that continues in the next block
    pending_len = 0
    after_cr = False  # the last block ended in CR: an LF opening the next one belongs to it
    while block := read(size):
        if after_cr and block[:1] == b"\n":
            block = block[1:]
        after_cr = False
        if not block:
            continue
        cut = max(block.rfind(b"\n"), block.rfind(b"\r")) + 1  # just past the last line end
        if not cut:
            pending.append(block)
            pending_len += len(block)
            if pending_len > limit:
                raise _too_long(name, number + 1, limit)
            continue
        head = block[:cut]
        if pending:
            head = b"".join(pending) + head
        rest = block[cut:]
        pending = [rest] if rest else []
        pending_len = len(rest)
        after_cr = not rest and head[-1:] == b"\r"
        body = head[:-2] if head[-2:] == b"\r\n" else head[:-1]
        # UTF-8 continuation bytes are never CR or LF, so bytes count as the text splits
        count = body.count(b"\n") + body.count(b"\r") - body.count(b"\r\n") + 1
        yield number, body, count
        number += count
        if pending_len > limit:
            raise _too_long(name, number + 1, limit)
    if pending:
        yield number, b"".join(pending), 1


def read_corpus(
    path: str | Path, fmt: str, task: str, scheme: str = "bmes", repair: bool = False,
    pos_column: str = "upos", repairs: list[tuple[int, str]] | None = None,
) -> list[Sentence]:
    """Read a labelled corpus in ``fmt`` for ``task``: the one entry point for every format.

    Args:
        path: the file.
        fmt: one of :data:`FORMATS`.
        task: ``cws``, ``ner`` or ``pos``; ``pos`` text and CoNLL-U read as ``cws`` keep the
            words and drop the POS.
        scheme: tag scheme of a conll file (converted to BMES).
        repair: repair illegal conll sequences / overlapping jsonl mentions instead of failing.
        pos_column: CoNLL-U column that holds the POS for task ``pos`` (``upos`` or ``xpos``).
        repairs: with ``repair``, gets ``(line, what was wrong)`` of every repaired sentence
            (for reports such as ``tagger debug-data``).

    Returns:
        The sentences, BMES-tagged for ``task``.

    Raises:
        CorpusFormatError: the format cannot hold ``task`` (``kind`` ``"wrong_task"``), or the
            file is malformed.
        ValueError: an unknown format, scheme or CoNLL-U column.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown corpus format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if task not in READ_TASKS[fmt]:
        if fmt == "segmented":
            raise CorpusFormatError(path, None, "the segmented format only holds word "
                                    f"segmentation; use format: conll for {task.upper()}",
                                    kind="wrong_task")
        raise CorpusFormatError(path, None, f"the {fmt} format holds "
                                f"{' or '.join(READ_TASKS[fmt])} data, not {task} (set "
                                "data.task or data.format accordingly)", kind="wrong_task")
    if fmt == "segmented":
        return read_segmented(path)
    if fmt == "conll":
        return read_conll(path, task=task, scheme=scheme, repair=repair, repairs=repairs)
    if fmt == "jsonl":
        return read_jsonl_spans(path, repair=repair, repairs=repairs)
    if fmt == "conllu":
        if pos_column not in POS_COLUMNS:
            raise ValueError(f"pos_column must be upos or xpos, got {pos_column!r}")
        return read_conllu(path, tags=pos_column if task == "pos" else "none")
    sentences = read_pos_text(path)
    return untyped(sentences) if task == "cws" else sentences


def read_segmented(path: str | Path) -> list[Sentence]:
    """Read one sentence per line, words separated by any whitespace; tags are B/M/E/S.

    A word's characters are its grapheme clusters. Empty lines are skipped.
    """
    sentences = []
    for number, text in iter_lines(path):
        words = text.split()
        if not words:
            continue
        sentences.append(_word_sentence(words, None, number, has_joiners(text)))
    if not sentences:
        raise _no_sentences(path)
    return sentences


def read_conll(
    path: str | Path, task: str = "ner", scheme: str = "bmes", repair: bool = False,
    repairs: list[tuple[int, str]] | None = None,
) -> list[Sentence]:
    """Read ``CHAR [feature ...] TAG`` lines, blank line between sentences.

    Args:
        path: the file.
        task: ``"cws"`` (untyped B/M/E/S tags), ``"ner"`` (typed tags and ``O``) or ``"pos"``
            (typed tags, no ``O``: joint segmentation + POS).
        scheme: the file's tag scheme (bmes, bioes or bio); tags are converted to BMES.
        repair: make illegal gold sequences legal (lenient spans) instead of failing.
        repairs: with ``repair``, gets ``(line, what was wrong)`` of every repaired sentence.

    Raises:
        CorpusFormatError: a line with no tag, a tag outside the scheme or task, an illegal
            sequence (with the line of the offending tag), or a file with no sentence.
        ValueError: an unknown scheme.
    """
    prefixes = get_scheme(scheme).prefixes
    sentences: list[Sentence] = []
    chars: list[str] = []
    tags: list[str] = []
    lines: list[int] = []

    def flush() -> None:
        if chars:
            sentences.append(_finish_conll(path, chars, tags, lines, scheme, repair, repairs))
        chars.clear(), tags.clear(), lines.clear()

    for number, text in iter_lines(path):
        fields = text.split()
        if not fields:
            flush()
            continue
        if len(fields) < 2:
            raise CorpusFormatError(
                path, number, f"expected 'CHAR TAG', got one field {fields[0]!r} (missing tag?)",
                kind="missing_tag")
        tag = fields[-1]
        _check_tag(path, number, tag, task, scheme, prefixes)
        chars.append(fields[0])
        tags.append(tag)
        lines.append(number)
    flush()
    if not sentences:
        raise _no_sentences(path)
    return sentences


def read_jsonl_spans(path: str | Path, repair: bool = False,
                     repairs: list[tuple[int, str]] | None = None) -> list[Sentence]:
    """Read CLUENER2020-style JSON lines as typed NER sentences (BMES with ``O``).

    One object per line: ``{"text": ..., "label": {TYPE: {MENTION: [[start, end], ...]}}}``
    with **inclusive** character offsets (``text[start:end + 1] == MENTION``). Other keys (e.g.
    ``id``) are ignored; empty lines are skipped.

    Args:
        path: the file.
        repair: resolve overlapping (nested) mentions by keeping the longest one (the earlier
            one on a tie) instead of failing; CLUENER ``train.json`` line 1507 nests two
            ``company`` mentions inside a ``book``.

    Returns:
        One sentence per object; whitespace in ``text`` is dropped, and its characters are
        grapheme clusters, except that a mention boundary inside one cuts it (the offsets
        count code points).

    Raises:
        CorpusFormatError: invalid JSON, a line without ``label`` (an unlabelled file such as
            CLUENER ``test.json``), offsets that do not match the mention, overlapping
            mentions (unless ``repair``), or a file with no sentence; all with ``path:line``.
    """
    sentences = []
    for number, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CorpusFormatError(path, number, f"invalid JSON: {exc.msg} at column "
                                    f"{exc.colno}") from None
        except RecursionError:
            # json's decoder recurses per nesting level: 100,000 '[' overflow the stack
            raise CorpusFormatError(path, number, "invalid JSON: nested too deeply (a line "
                                    "holds one flat object)") from None
        if not isinstance(obj, dict):
            raise CorpusFormatError(path, number, "expected a JSON object with \"text\" and "
                                    f"\"label\", got {type(obj).__name__}")
        raw = obj.get("text")
        if not isinstance(raw, str):
            raise CorpusFormatError(path, number, "missing or non-string \"text\"")
        if "label" not in obj:
            raise CorpusFormatError(path, number, "no \"label\": the file is unlabelled (like "
                                    "CLUENER test.json) and cannot be used for training or "
                                    "evaluation", kind="unlabelled")
        _check_json_text(path, number, raw, obj["label"])
        spans = _json_spans(path, number, raw, obj["label"])
        if not raw.strip():
            raise CorpusFormatError(path, number, "empty \"text\"")
        spans = _resolve_overlaps(path, number, spans, repair, repairs)
        chars, starts = _cut_graphemes(raw, {x for _, a, b in spans for x in (a, b)})
        # Offsets count code points of the raw text; tags count its kept characters, and no
        # character crosses a mention boundary, so a mention is the characters starting in it.
        mapped = []
        for label, a, b in spans:
            first, end = bisect_left(starts, a), bisect_left(starts, b)
            if first == end:
                raise CorpusFormatError(path, number, f"{label} mention at [{a}, {b - 1}] is "
                                        "only whitespace", kind="bad_span")
            mapped.append((label, first, end))
        spaced = tuple(k for k in range(1, len(chars))
                       if starts[k] != starts[k - 1] + len(chars[k - 1]))
        sentences.append(Sentence(chars=chars, tags=spans_to_tags(mapped, len(chars)),
                                  line=number, spaces=spaced))
    if not sentences:
        raise _no_sentences(path)
    return sentences


def read_conllu(path: str | Path, tags: str = "upos") -> list[Sentence]:
    """Read CoNLL-U: FORM gives the words, UPOS or XPOS their POS.

    Comment lines (``#``), multiword-token lines (``1-2``) and empty nodes (``1.1``) are
    skipped; a blank line ends a sentence.

    Args:
        path: the file (10 tab-separated columns per token line).
        tags: ``"upos"`` or ``"xpos"``: joint segmentation + POS tags (``B-NOUN`` ...
            ``S-PUNCT``, no ``O``); ``"none"``: untyped CWS tags from FORM alone.

    Returns:
        One sentence per CoNLL-U sentence; ``line`` is the line of its first word.

    Raises:
        CorpusFormatError: a token line without 10 columns, a bad or out-of-order ID, an empty
            FORM, a missing (``_``) POS when one is asked for, or a file with no sentence.
        ValueError: an unknown ``tags`` value.
    """
    if tags not in ("upos", "xpos", "none"):
        raise ValueError(f"tags must be upos, xpos or none, got {tags!r}")
    column = {"upos": 3, "xpos": 4}.get(tags)
    sentences: list[Sentence] = []
    words: list[str] = []
    labels: list[str] = []
    after: list[bool] = []  # SpaceAfter of each word
    first = 0

    def flush() -> None:
        if words:
            sentences.append(_word_sentence(words, labels if column else None, first,
                                            space_after=after[:-1]))
        words.clear(), labels.clear(), after.clear()

    for number, text in iter_lines(path):
        if not text.strip():
            flush()
            continue
        if text.startswith("#"):
            continue
        fields = text.split("\t")
        if len(fields) != 10:
            raise CorpusFormatError(path, number, f"expected 10 tab-separated columns "
                                    f"({_CONLLU_COLUMNS}), got {len(fields)}")
        token_id = fields[0]
        if "-" in token_id or "." in token_id:
            continue  # multiword token or empty node: the words are on their own lines
        if not token_id.isdigit() or int(token_id) != len(words) + 1:
            hint = " (missing blank line between sentences?)" if token_id == "1" else ""
            raise CorpusFormatError(path, number, f"token ID {token_id!r} where "
                                    f"{len(words) + 1} was expected{hint}")
        form = "".join(c for c in fields[1] if not c.isspace())
        if not form:
            raise CorpusFormatError(path, number, "empty FORM")
        if column is not None:
            label = fields[column]
            if label == "_" or not label.strip():
                raise CorpusFormatError(path, number, f"no {tags.upper()} for {form!r} (column "
                                        f"{column + 1} is {label!r}); read it for word "
                                        "segmentation only (task cws)", kind="missing_tag")
            if any(c.isspace() for c in label):
                raise CorpusFormatError(path, number, f"{tags.upper()} {label!r} contains "
                                        "whitespace", kind="bad_label")
            if problem := label_problem(label):
                raise CorpusFormatError(path, number, f"{tags.upper()}: {problem}",
                                        kind="bad_label")
            labels.append(label)
        if not words:
            first = number
        words.append(form)
        after.append("SpaceAfter=No" not in fields[9].split("|"))
    flush()
    if not sentences:
        raise CorpusFormatError(path, None, "no sentences (file is empty or only comments)",
                                kind="empty")
    return sentences


def read_pos_text(path: str | Path) -> list[Sentence]:
    """Read People's Daily style ``word/POS`` text as joint segmentation + POS sentences.

    Tokens are separated by whitespace, one paragraph per line; empty lines are skipped. A
    leading paragraph id such as ``19980101-01-001-001/m`` is dropped. Bracketed compounds
    ``[中央/n 人民/n 广播/vn 电台/n]nt`` keep their inner words with their own POS; the
    brackets and the outer tag are dropped.

    Args:
        path: the file (e.g. ``peoples_daily_1998_pos/RMRB.txt``).

    Returns:
        One sentence per non-empty line, tags ``B-POS M-POS E-POS S-POS`` (no ``O``).

    Raises:
        CorpusFormatError: a token without ``/POS``, an empty word or POS, unbalanced or nested
            brackets, or a file with no sentence; all with ``path:line``.
    """
    sentences = []
    for number, text in iter_lines(path):
        tokens = text.split()
        if tokens and RMRB_ID.fullmatch(tokens[0]):
            tokens = tokens[1:]
        if not tokens:
            continue
        words: list[str] = []
        labels: list[str] = []
        open_bracket = False
        for token in tokens:
            opens = token.startswith("[") and bool(token[1:].rpartition("/")[0])
            if opens:
                if open_bracket:
                    raise CorpusFormatError(path, number, f"nested '[' in {token!r}")
                open_bracket, token = True, token[1:]
            close = _BRACKET_CLOSE.fullmatch(token)
            if close:
                if not open_bracket:
                    raise CorpusFormatError(path, number, f"']' without '[' in {token!r}")
                open_bracket, token = False, close.group(1)
            word, slash, label = token.rpartition("/")
            if not slash:
                raise CorpusFormatError(path, number, f"token {token!r} has no /POS tag "
                                        "(expected word/POS)", kind="missing_tag")
            if not word or not label:
                raise CorpusFormatError(path, number, f"token {token!r}: empty "
                                        f"{'word' if not word else 'POS tag'}")
            if problem := label_problem(label):
                raise CorpusFormatError(path, number, f"token {token!r}: POS {problem}",
                                        kind="bad_label")
            words.append(word)
            labels.append(label)
        if open_bracket:
            raise CorpusFormatError(path, number, "'[' is never closed on this line")
        sentences.append(_word_sentence(words, labels, number))
    if not sentences:
        raise _no_sentences(path)
    return sentences


def untyped(sentences: Iterable[Sentence]) -> list[Sentence]:
    """Drop the labels of typed tags (joint segmentation + POS -> word segmentation).

    Args:
        sentences: sentences with tags and no ``O``.

    Returns:
        New sentences with untyped ``B M E S`` tags.
    """
    return [Sentence(chars=list(s.chars), tags=[split_tag(t)[0] for t in s.tags or []],
                     line=s.line) for s in sentences]


def read_word_list(path: str | Path) -> set[str]:
    """Read a training word list for OOV figures exactly as the SIGHAN 2005 scorer reads it.

    The scorer (``icwb2-data/scripts/score``) keys each whole line, minus leading and trailing
    ASCII whitespace, so a line ``中国 12`` is the word ``中国 12`` (never a gold word), and
    U+3000 or a no-break space inside or around a word is part of it. Its quirks are kept, so
    that our OOV rates are the scorer's: it ``chop``s every line, so a last line without a line
    end loses its last character (and a non-ASCII one leaves a key that matches nothing: the
    word is dropped); a UTF-8 BOM stays on the first word. Unlike the scorer, a lone CR ends a
    line (the scorer reads a CR-only file as one word: convert it before running the scorer),
    and a file that is not UTF-8 is refused. Empty lines add nothing (the scorer never looks
    up an empty word).

    Use :func:`read_dictionary` for user dictionaries (``word freq pos`` lines).
    """
    lines: list[str | None] = [text for _, text in iter_lines(path)]
    if not lines:
        return set()
    with Path(path).open("rb") as f:
        bom = f.read(3) == _BOM
        ends_line = _ends_with_line_end(f)
    if bom:
        lines[0] = "\ufeff" + (lines[0] or "")  # BOM is not whitespace to Perl: it stays
    last = lines[-1] or ""
    if not ends_line:
        # chop removes the last byte: an ASCII character, or part of a multibyte one, which
        # leaves a key that no UTF-8 word equals
        lines[-1] = last[:-1] if last[-1:].isascii() else None
    words = {text.strip(_PERL_SPACE) for text in lines if text is not None}
    words.discard("")
    return words


def read_dictionary(path: str | Path) -> set[str]:
    """Read a user dictionary: the first whitespace-separated field of each line is a word.

    Further fields (jieba's ``word freq pos``) are ignored, as are empty lines.
    """
    words = set()
    for _, text in iter_lines(path):
        fields = text.split()
        if fields:
            words.add(fields[0])
    return words


# --- internals ---------------------------------------------------------------------------------


def _split_block(data: bytes, before: int, name: str | Path, limit: int
                 ) -> tuple[list[str], CorpusFormatError | None]:
    """The lines of ``data`` (whole lines, the last one's line end removed), decoded, after
    ``before`` earlier lines of the stream. A faulty line ends the list and comes back as the
    error to raise once the lines before it are out (a block is checked as a whole, and line
    by line only to find the fault)."""
    if not before and data.startswith(_BOM):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text and len(data) <= limit:
        return (text.split("\n") if "\r" not in text else _LINE_END_TEXT.split(text)), None
    lines = []
    for number, raw in enumerate(_LINE_END.split(data), before + 1):
        if len(raw) > limit:
            return lines, _too_long(name, number, limit)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return lines, CorpusFormatError(
                name, number,
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                "convert the file to UTF-8, e.g. iconv -f GBK -t UTF-8", kind="encoding")
        if problem := text_problem(line, decoded=True):
            return lines, CorpusFormatError(name, number, f"contains {problem[1]}",
                                            kind=problem[0])
        lines.append(line)
    return lines, None


def _too_long(name: str | Path, number: int, limit: int) -> CorpusFormatError:
    size = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit} bytes"
    return CorpusFormatError(name, number, f"line {number} is longer than {size} (a binary "
                             "file, or text without line breaks?)", kind="line_too_long")


def _ends_with_line_end(f: IO[bytes]) -> bool:
    try:
        f.seek(-1, 2)
    except OSError:  # not seekable (a pipe): nothing to chop can be known, assume a line end
        return True
    return f.read(1) in (b"\n", b"\r")


def _no_sentences(path: str | Path) -> CorpusFormatError:
    return CorpusFormatError(path, None, "no sentences (file is empty or only blank lines)",
                             kind="empty")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CorpusFormatError(path, None, "file not found", kind="not_found")
    if path.is_dir():
        raise CorpusFormatError(path, None, "is a directory, expected a file", kind="not_a_file")


def _check_tag(path: str | Path, number: int, tag: str, task: str, scheme: str,
               prefixes: str) -> None:
    prefix, _, label = tag.partition("-")
    if len(prefix) != 1 or prefix not in prefixes or (prefix == "O" and label) or (
            "-" in tag and not label):
        allowed = "/".join(sorted(set(prefixes) - {"L", "U"}))
        raise CorpusFormatError(path, number, f"unknown tag {tag!r} for scheme {scheme} "
                                f"(expected prefixes {allowed})", kind="unknown_tag")
    if task == "cws" and (label or prefix == "O"):
        raise CorpusFormatError(path, number, f"tag {tag!r} is not a word-segmentation tag "
                                "(expected untyped B/M/E/S; is data.task ner?)",
                                kind="wrong_task")
    if task == "ner" and prefix != "O" and not label:
        raise CorpusFormatError(path, number, f"tag {tag!r} has no entity type "
                                "(expected e.g. B-PER; is data.task cws?)", kind="wrong_task")
    if task == "pos" and (prefix == "O" or not label):
        raise CorpusFormatError(path, number, f"tag {tag!r} is not a joint segmentation+POS "
                                "tag (expected e.g. B-NOUN, and no O; is data.task cws or ner?)",
                                kind="wrong_task")
    if label and (problem := label_problem(label)):
        raise CorpusFormatError(path, number, f"tag {tag!r}: {problem}", kind="bad_label")


def _finish_conll(
    path: str | Path, chars: list[str], tags: list[str], lines: list[int],
    scheme: str, repair: bool, repairs: list[tuple[int, str]] | None = None,
) -> Sentence:
    try:
        bmes = to_bmes(tags, scheme)
    except TagSequenceError as exc:
        line = lines[min(exc.position, len(lines) - 1)]
        if not repair:
            raise CorpusFormatError(path, line, f"illegal {scheme.upper()} sequence: "
                                    f"{exc.reason} (set data.repair_gold: true to repair)",
                                    kind="illegal_sequence") from None
        if repairs is not None:
            repairs.append((line, f"illegal {scheme.upper()} sequence: {exc.reason}"))
        bmes = repair_to_bmes(tags, scheme)
    for tag in bmes:
        split_tag(tag)  # internal invariant: conversion yields well-formed tags
    return Sentence(chars=list(chars), tags=bmes, line=lines[0])


def _word_sentence(words: Sequence[str], labels: Sequence[str] | None, line: int,
                   joiners: bool | None = None, space_after: Sequence[bool] | None = None
                   ) -> Sentence:
    """A sentence from words (and one label per word for typed tags); its characters are the
    words' grapheme clusters (``joiners``: whether any word may have multi-code-point ones).
    ``space_after``: whether the raw text has whitespace after each word (CoNLL-U); default:
    between words that meet with ASCII letters or digits (see :class:`Sentence`).

    Clusters are taken word by word: a word boundary is annotation, and wins."""
    if joiners is None:
        joiners = any(has_joiners(w) for w in words)
    chars_of: Sequence[Sequence[str]] = [split_graphemes(w)[0] for w in words] if joiners \
        else words
    tags = words_to_tags(chars_of)
    if labels is not None:
        per_char = [label for word, label in zip(chars_of, labels) for _ in word]
        tags = [f"{t}-{label}" for t, label in zip(tags, per_char)]
    if space_after is None:
        space_after = [_ASCII_ALNUM.match(a[-1]) is not None and
                       _ASCII_ALNUM.match(b[0]) is not None for a, b in zip(words, words[1:])]
    spaces, start = [], 0
    for word, gap in zip(chars_of, space_after):
        start += len(word)
        if gap:
            spaces.append(start)
    return Sentence(chars=[c for w in chars_of for c in w], tags=tags, line=line,
                    spaces=tuple(spaces))


_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")


def _cut_graphemes(text: str, cuts: Iterable[int]) -> tuple[list[str], Sequence[int]]:
    """:func:`~bmes_tagger.text.split_graphemes` of ``text``, cut at the ``cuts`` offsets too
    (mention boundaries: annotation wins over a cluster it cuts)."""
    if not has_joiners(text):
        return split_graphemes(text)
    chars: list[str] = []
    starts: list[int] = []
    begin = 0
    for cut in [*sorted(c for c in set(cuts) if 0 < c < len(text)), len(text)]:
        piece_chars, piece_starts = split_graphemes(text[begin:cut])
        chars += piece_chars
        starts += [begin + i for i in piece_starts]
        begin = cut
    return chars, starts


def _check_json_text(path: str | Path, number: int, text: str, label: object) -> None:
    """The text, entity types and mentions of a JSON line follow :func:`text_problem`, as a
    raw line does: JSON escapes can spell what UTF-8 bytes cannot. (A ``label`` of the wrong
    shape is :func:`_json_spans`'s to report.)"""
    fields: list[tuple[str, object]] = [("\"text\"", text)]
    if isinstance(label, dict):
        fields += [(f"entity type {t!r}", t) for t in label]
        fields += [(f"{t} mention", m) for t, mentions in label.items()
                   if isinstance(mentions, dict) for m in mentions]
    for what, value in fields:
        if isinstance(value, str) and (problem := text_problem(value)):
            raise CorpusFormatError(path, number, f"{what} contains {problem[1]}",
                                    kind=problem[0])


def _json_spans(path: str | Path, number: int, text: str, label: object
                ) -> list[tuple[str, int, int]]:
    """The mentions of a CLUENER ``label`` object as ``(type, start, end_exclusive)``."""
    if not isinstance(label, dict):
        raise CorpusFormatError(path, number, "\"label\" must be an object {TYPE: {MENTION: "
                                "[[start, end], ...]}}")
    spans = []
    for etype, mentions in label.items():
        if not etype or any(c.isspace() for c in etype):
            raise CorpusFormatError(path, number, f"entity type {etype!r} is empty or contains "
                                    "whitespace", kind="bad_label")
        if problem := label_problem(etype):
            raise CorpusFormatError(path, number, f"entity {problem}", kind="bad_label")
        if not isinstance(mentions, dict):
            raise CorpusFormatError(path, number, f"label {etype!r} must map mentions to offset "
                                    "lists")
        for mention, offsets in mentions.items():
            if not isinstance(offsets, list) or not offsets:
                raise CorpusFormatError(path, number, f"{etype} mention {mention!r}: expected a "
                                        "non-empty list of [start, end] pairs")
            for pair in offsets:
                if (not isinstance(pair, list) or len(pair) != 2
                        or not all(type(x) is int for x in pair)):
                    raise CorpusFormatError(path, number, f"{etype} mention {mention!r}: "
                                            f"expected [start, end] integers, got {pair!r}")
                a, e = pair
                if not 0 <= a <= e < len(text) or text[a:e + 1] != mention:
                    got = text[a:e + 1] if 0 <= a <= e else ""
                    raise CorpusFormatError(path, number, f"{etype} mention {mention!r} at "
                                            f"[{a}, {e}] does not match the text there "
                                            f"({got!r}; offsets are inclusive)", kind="bad_span")
                spans.append((etype, a, e + 1))
    return spans


def _resolve_overlaps(path: str | Path, number: int, spans: list[tuple[str, int, int]],
                      repair: bool, repairs: list[tuple[int, str]] | None = None
                      ) -> list[tuple[str, int, int]]:
    """Drop duplicate mentions; overlapping ones are an error, or with ``repair`` the longest
    (then earliest) wins."""
    unique = sorted(set(spans), key=lambda s: (-(s[2] - s[1]), s[1], s[0]))
    kept: list[tuple[str, int, int]] = []
    for span in unique:
        clash = next((k for k in kept if span[1] < k[2] and k[1] < span[2]), None)
        if clash is None:
            kept.append(span)
            continue
        first, second = sorted([clash, span], key=lambda s: (s[1], s[2]))
        what = (f"overlapping mentions {first[0]} [{first[1]}, {first[2] - 1}] and "
                f"{second[0]} [{second[1]}, {second[2] - 1}]")
        if not repair:
            raise CorpusFormatError(path, number, f"{what} (set data.repair_gold: true / "
                                    "--repair to keep the longest)", kind="overlap")
        if repairs is not None:
            repairs.append((number, what))
    return sorted(kept, key=lambda s: s[1])
