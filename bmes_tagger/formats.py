"""Writing and converting labelled corpora; reading is :func:`bmes_tagger.corpus.read_corpus`.

Writers take :class:`~bmes_tagger.corpus.Sentence` lists with BMES tags back out to any of
:data:`~bmes_tagger.corpus.FORMATS`; :func:`convert` goes from any format to any other that can
hold the annotation.

Three kinds of annotation (``task``) travel through these formats:

- ``cws``: untyped ``B M E S`` (word segmentation);
- ``ner``: ``B-X M-X E-X S-X`` and ``O`` (entity spans over unsegmented text);
- ``pos``: joint segmentation + POS: every word is a span typed with its POS (``B-NOUN``,
  ``S-PUNCT``), so every character belongs to a word and there is no ``O``.

Which format holds which task is :data:`~bmes_tagger.corpus.READ_TASKS` for reading and
:data:`WRITE_TASKS` for writing; they differ only in that ``pos`` text can be read as ``cws``
by dropping the POS, but not written from it. The layouts are in :mod:`bmes_tagger.corpus`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from pathlib import Path
from typing import Protocol

from .atomic import atomic_write, check_output
from .corpus import (
    FORMATS,
    POS_COLUMNS,
    RMRB_ID,
    TASKS,
    Sentence,
    iter_lines,
    read_corpus,
    untyped,
)
from .errors import ConversionChoiceError, ConversionError
from .tags import SCHEMES, from_bmes, split_tag, tags_to_spans
from .text import has_joiners, split_graphemes

WRITE_TASKS = {"segmented": ("cws",), "conll": ("cws", "ner", "pos"), "jsonl": ("ner",),
               "conllu": ("cws", "pos"), "pos": ("pos",)}


# --- writers -----------------------------------------------------------------------------------


def sentences_task(sentences: Iterable[Sentence]) -> str:
    """Which task the tags of ``sentences`` annotate: ``cws``, ``ner`` or ``pos``.

    Untyped tags mean ``cws``; typed tags with any ``O`` mean ``ner``, without ``O`` ``pos``
    (so an NER corpus in which every character is inside an entity reads as ``pos``; pass the
    task explicitly where that matters).

    Args:
        sentences: BMES-tagged sentences.

    Returns:
        The task name.

    Raises:
        ConversionError: typed and untyped tags are mixed.
    """
    typed = untyped_seen = has_o = False
    for s in sentences:
        for tag in s.tags or []:
            prefix, label = split_tag(tag)
            has_o |= prefix == "O"
            typed |= bool(label)
            untyped_seen |= not label and prefix != "O"
    if typed and untyped_seen:
        raise ConversionError("the sentences mix typed and untyped tags")
    if has_o:
        return "ner"
    return "pos" if typed else "cws"


class TextSink(Protocol):
    """What the writers need of an open stream (a text file, ``sys.stdout``)."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


def write_conll(sentences: Sequence[Sentence], path: str | Path | TextSink,
                scheme: str = "bmes") -> None:
    """Write ``CHAR TAG`` lines (one space), a blank line after each sentence, tags in ``scheme``.

    Args:
        sentences: BMES-tagged sentences (any task).
        path: output file.
        scheme: ``bmes``, ``bioes`` or ``bio``.

    Raises:
        ConversionError: a character token that is empty or contains whitespace.
    """
    _check_tokens(sentences, "conll", single=False)

    def block(s: Sentence) -> str:
        tags = from_bmes(_tags(s), scheme)
        return "".join(f"{c} {t}\n" for c, t in zip(s.chars, tags)) + "\n"

    _atomic_write(path, (block(s) for s in sentences))


def write_jsonl_spans(sentences: Sequence[Sentence], path: str | Path | TextSink) -> None:
    """Write CLUENER-style JSON lines with inclusive offsets (task ``ner``).

    Types and mentions keep their order of first appearance; a sentence without entities gets
    ``"label": {}``.
    """
    _check_tokens(sentences, "jsonl")

    def record(s: Sentence) -> str:
        text = "".join(s.chars)
        # offsets count code points, and a character (grapheme cluster) may have several
        starts = list(accumulate((len(c) for c in s.chars), initial=0))
        label: dict[str, dict[str, list[list[int]]]] = {}
        for kind, a, b in tags_to_spans(_tags(s), strict=True):
            first, end = starts[a], starts[b]
            label.setdefault(kind, {}).setdefault(text[first:end], []).append([first, end - 1])
        return json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n"

    _atomic_write(path, (record(s) for s in sentences))


def write_conllu(
    sentences: Sequence[Sentence], path: str | Path | TextSink, pos_column: str = "upos"
) -> None:
    """Write CoNLL-U: ``ID FORM _ UPOS _ _ _ _ _ _`` (or the POS in XPOS), ``_`` when unknown.

    Untyped (CWS) sentences get ``_`` as their POS.

    Raises:
        ConversionError: a word or POS that CoNLL-U cannot hold (whitespace, a POS ``_``).
    """
    if pos_column not in POS_COLUMNS:
        raise ValueError(f"pos_column must be upos or xpos, got {pos_column!r}")
    _check_tokens(sentences, "conllu")

    def block(s: Sentence) -> str:
        rows = []
        for i, (word, label) in enumerate(_words(s, "conllu"), start=1):
            if label == "_":
                raise ConversionError("POS '_' cannot be written "
                                      "to CoNLL-U (it means 'unknown' there)", line=s.line)
            cols = [str(i), word, "_", "_", "_", "_", "_", "_", "_", "_"]
            cols[3 if pos_column == "upos" else 4] = label or "_"
            rows.append("\t".join(cols) + "\n")
        return "".join(rows) + "\n"

    _atomic_write(path, (block(s) for s in sentences))


def write_pos_text(sentences: Sequence[Sentence], path: str | Path | TextSink) -> None:
    """Write ``word/POS`` tokens joined by two spaces, one sentence per line (task ``pos``).

    Raises:
        ConversionError: an untyped word, or a word/POS the format would read back differently
            (a POS with ``/`` or ``]``, a word opening with ``[``, a leading paragraph id).
    """
    _check_tokens(sentences, "pos")

    def line(s: Sentence) -> str:
        tokens = []
        for word, label in _words(s, "pos"):
            if not label:
                raise ConversionError(f"word {word!r} has no POS", line=s.line)
            if "/" in label or "]" in label:
                raise ConversionError(f"POS {label!r} contains '/' "
                                      "or ']', which word/POS text cannot hold", line=s.line)
            if word.startswith("[") and len(word) > 1:
                raise ConversionError(f"word {word!r} would be read "
                                      "as an opening bracket in word/POS text", line=s.line)
            tokens.append(f"{word}/{label}")
        if RMRB_ID.fullmatch(tokens[0]):
            raise ConversionError(f"first token {tokens[0]!r} would "
                                  "be read as a paragraph id and dropped", line=s.line)
        return "  ".join(tokens) + "\n"

    _atomic_write(path, (line(s) for s in sentences))


def write_corpus(
    sentences: Sequence[Sentence], path: str | Path | TextSink, fmt: str, scheme: str = "bmes",
    task: str | None = None, pos_column: str = "upos",
) -> None:
    """Write labelled sentences in ``fmt``, refusing formats that would lose annotation.

    Args:
        sentences: BMES-tagged sentences.
        path: output file (written via a temporary file and renamed), or an open text stream
            (e.g. ``sys.stdout``), written as it is.
        fmt: one of :data:`FORMATS`.
        scheme: tag scheme for ``conll`` output.
        task: what the tags annotate; default: inferred by :func:`sentences_task`.
        pos_column: CoNLL-U column for the POS (``upos`` or ``xpos``).

    Raises:
        ConversionError: ``fmt`` cannot hold ``task`` (e.g. NER spans as segmented text), or a
            token that ``fmt`` cannot represent.
        ValueError: an unknown format or scheme.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown corpus format {fmt!r}; expected one of {', '.join(FORMATS)}")
    task = task or sentences_task(sentences)
    if task not in WRITE_TASKS[fmt]:
        raise ConversionError(f"cannot write {task} data as {fmt}: {_loss_reason(task, fmt)}")
    if fmt == "segmented":
        _check_tokens(sentences, fmt)
        words = [[w for w, _ in _words(s, fmt)] for s in sentences]
        _atomic_write(path, ("  ".join(ws) + "\n" for ws in words))
    elif fmt == "conll":
        write_conll(sentences, path, scheme)
    elif fmt == "jsonl":
        write_jsonl_spans(sentences, path)
    elif fmt == "conllu":
        write_conllu(sentences, path, pos_column)
    else:
        write_pos_text(sentences, path)


# --- conversion --------------------------------------------------------------------------------


def convert(
    in_path: str | Path, out_path: str | Path | TextSink, from_fmt: str, to_fmt: str, *,
    task: str | None = None, scheme: str = "bmes", to_scheme: str | None = None,
    pos_column: str = "upos", repair: bool = False, force: bool = False,
) -> int:
    """Convert a labelled corpus between formats without losing annotation.

    Args:
        in_path: input file.
        out_path: output file, never overwritten unless ``force``; or an open text stream
            (``tagger convert IN -`` passes standard output).
        from_fmt: input format (one of :data:`FORMATS`).
        to_fmt: output format.
        task: what to read: default is what the input holds (a conll file: untyped tags ->
            cws, any ``O`` -> ner, typed without ``O`` -> pos; CoNLL-U: pos if the POS column
            has any value, else cws). ``cws`` on POS data drops the POS on purpose.
        scheme: tag scheme of conll input (and output, unless ``to_scheme``).
        to_scheme: tag scheme of conll output.
        pos_column: CoNLL-U column read and written for the POS (``upos`` or ``xpos``).
        repair: repair illegal conll gold sequences / overlapping jsonl mentions.
        force: overwrite ``out_path`` if it exists.

    Returns:
        The number of sentences written.

    Raises:
        ConversionError: an unknown format, scheme or task, or a conversion that would lose
            annotation (e.g. NER -> segmented).
        OutputError: an existing output without ``force``, the input as output, or a
            failed write.
        CorpusFormatError: the input is malformed.
    """
    for name, value, choices in (("from", from_fmt, FORMATS), ("to", to_fmt, FORMATS),
                                 ("scheme", scheme, SCHEMES),
                                 ("to scheme", to_scheme or scheme, SCHEMES),
                                 ("pos column", pos_column, POS_COLUMNS),
                                 ("task", task or "cws", TASKS)):
        if value not in choices:
            raise ConversionChoiceError(f"--{name.replace(' ', '-')}: {value!r} is not one "
                                        f"of {', '.join(choices)}")
    out = out_path if not isinstance(out_path, (str, Path)) else Path(out_path)
    if isinstance(out, Path):
        check_output(out, force=force, inputs={"the input": in_path})
    found = _input_task(in_path, from_fmt, pos_column)
    wanted = task or found
    if wanted not in WRITE_TASKS[to_fmt]:
        raise ConversionError(f"cannot convert {wanted} data from {from_fmt} to {to_fmt}: "
                              f"{_loss_reason(wanted, to_fmt)}")
    drop_pos = wanted == "cws" and found == "pos"
    sentences = read_corpus(in_path, from_fmt, found if drop_pos else wanted, scheme, repair,
                            pos_column)
    if drop_pos:
        sentences = untyped(sentences)
    try:
        write_corpus(sentences, out, to_fmt, to_scheme or scheme, task=wanted,
                     pos_column=pos_column)
    except ConversionError as exc:
        # the writers know the sentence's line, not the file it was read from
        raise exc.located(in_path) from None
    return len(sentences)


# --- internals ---------------------------------------------------------------------------------


def _loss_reason(task: str, fmt: str) -> str:
    if task == "pos" and fmt == "segmented":
        return "segmented text holds only words, so the POS tags would be lost (pass --task cws " \
               "to drop them on purpose)"
    if task == "ner":
        return f"{fmt} holds words, not entity spans, so the entity annotation would be lost " \
               "(use conll or jsonl)"
    if task == "cws" and fmt == "pos":
        return "word/POS text needs a POS for every word and word segmentation has none " \
               "(use segmented, conllu or conll)"
    if task == "cws" and fmt == "jsonl":
        return "jsonl holds typed entity spans and word segmentation has no types " \
               "(use segmented, conllu or conll)"
    return "jsonl holds NER entity spans, not POS-tagged words (use pos, conllu or conll)"


def _input_task(path: str | Path, fmt: str, pos_column: str) -> str:
    """What the input holds, from its format (and for conll/CoNLL-U, a scan of its tags)."""
    if fmt in ("segmented", "jsonl", "pos"):
        return {"segmented": "cws", "jsonl": "ner", "pos": "pos"}[fmt]
    if fmt == "conllu":
        column = 3 if pos_column == "upos" else 4
        for _, text in iter_lines(path):
            fields = text.split("\t")
            if len(fields) == 10 and fields[0].isdigit() and fields[column] != "_":
                return "pos"
        return "cws"
    typed = False
    for _, text in iter_lines(path):
        fields = text.split()
        if len(fields) >= 2:
            if fields[-1] == "O":
                return "ner"
            typed |= "-" in fields[-1]
    return "pos" if typed else "cws"


def _tags(s: Sentence) -> list[str]:
    if s.tags is None or len(s.tags) != len(s.chars):
        raise ValueError(f"sentence at line {s.line} has no tags or a tag count that differs "
                         "from its characters")
    return list(s.tags)


def _words(s: Sentence, fmt: str) -> list[tuple[str, str]]:
    """``(word, label)`` pairs of a sentence whose every character is in a word (no ``O``)."""
    tags = _tags(s)
    spans = tags_to_spans(tags, strict=True)
    if sum(b - a for _, a, b in spans) != len(tags):
        raise ConversionError(f"{fmt} needs every character in a "
                              "word, but some are tagged O", line=s.line)
    return [("".join(s.chars[a:b]), label) for label, a, b in spans]


def _check_tokens(sentences: Sequence[Sentence], fmt: str, single: bool = True) -> None:
    """Every token must be non-empty without whitespace; unless conll (``single`` False), one
    character, i.e. one grapheme cluster, that reads back as the same token from text.

    Text formats are read back cluster by cluster within each word (jsonl: each stretch
    between mention boundaries), so a cluster cut into two tokens (``e`` and a lone accent)
    could not be written there: it would come back as one.
    """
    for s in sentences:
        if not s.chars:
            raise ConversionError("empty sentence", line=s.line)
        for c in s.chars:
            if not c or any(x.isspace() for x in c) or (
                    single and len(c) != 1 and split_graphemes(c)[0] != [c]):
                raise ConversionError(f"token {c!r} cannot be written "
                                      f"as {fmt} (tokens must be single non-space characters"
                                      f"{'' if single else ' or non-space strings'})", line=s.line)
        if single and has_joiners("".join(s.chars)):
            spans = tags_to_spans(_tags(s), strict=True)
            cuts = sorted({0, len(s.chars)} | {x for _, a, b in spans for x in (a, b)})
            for a, b in zip(cuts, cuts[1:]):
                again = split_graphemes("".join(s.chars[a:b]))[0]
                if again != s.chars[a:b]:
                    raise ConversionError(f"tokens {s.chars[a:b]!r} cannot be written "
                        f"as {fmt}: they would read back as {again!r} (tokens must be single "
                        "non-space characters: whole grapheme clusters)", line=s.line)


def _atomic_write(path: str | Path | TextSink, chunks: Iterator[str] | Iterable[str]) -> None:
    """Write text atomically (see :func:`bmes_tagger.atomic.atomic_write`), or straight into
    an open text stream (standard output: nothing to rename, so nothing atomic about it)."""
    if not isinstance(path, (str, Path)):
        for chunk in chunks:
            path.write(chunk)
        path.flush()
        return
    with atomic_write(path) as f:
        for chunk in chunks:
            f.write(chunk)

