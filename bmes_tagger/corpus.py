"""Corpus readers: segmented text and CoNLL-style ``CHAR TAG`` files -> :class:`Sentence` lists.

Gold tags are read strictly: every tag must belong to the task's tag set and every sentence must
be a legal sequence in its scheme (converted to BMES on load), unless ``repair`` is asked for.
Every problem is a :class:`CorpusFormatError` naming ``path:line``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .errors import CorpusFormatError, TagSequenceError
from .tags import repair_bmes, split_tag, to_bmes, words_to_tags

FORMATS = ("segmented", "conll", "jsonl", "conllu", "pos")
# Read by bmes_tagger.formats: CLUENER JSON lines, CoNLL-U, People's Daily word/POS text.
_EXTRA_FORMATS = ("jsonl", "conllu", "pos")


@dataclass
class Sentence:
    """One sentence: its characters (tokens) and, for labelled data, one BMES tag per character.

    ``line`` is the 1-based line of the file where the sentence starts (for error messages).
    """

    chars: list[str]
    tags: list[str] | None = None
    line: int = 0


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` of a UTF-8 file without line terminators.

    A UTF-8 BOM is skipped and CRLF is tolerated. Undecodable bytes and NUL bytes raise
    :class:`CorpusFormatError` with the line number.
    """
    path = Path(path)
    _check_file(path)
    with path.open("rb") as f:
        yield from iter_stream_lines(f, path)


def iter_stream_lines(stream: IO[bytes], name: str | Path) -> Iterator[tuple[int, str]]:
    """Like :func:`iter_lines` for an open binary stream (e.g. stdin); ``name`` is for errors."""
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorpusFormatError(
                name, number,
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                "convert the file to UTF-8, e.g. iconv -f GBK -t UTF-8",
            ) from None
        if "\x00" in text:
            raise CorpusFormatError(name, number, "contains a NUL byte (binary file?)")
        yield number, text.rstrip("\r\n")


def read_segmented(path: str | Path) -> list[Sentence]:
    """Read one sentence per line, words separated by any whitespace; tags are B/M/E/S.

    Empty lines are skipped.
    """
    sentences = []
    for number, text in iter_lines(path):
        words = text.split()
        if not words:
            continue
        chars = [c for w in words for c in w]
        sentences.append(Sentence(chars=chars, tags=words_to_tags(words), line=number))
    if not sentences:
        raise CorpusFormatError(path, None, "no sentences (file is empty or only blank lines)")
    return sentences


def read_conll(
    path: str | Path, task: str = "ner", scheme: str = "bmes", repair: bool = False
) -> list[Sentence]:
    """Read ``CHAR [feature ...] TAG`` lines, blank line between sentences.

    Args:
        path: the file.
        task: ``"cws"`` (untyped B/M/E/S tags), ``"ner"`` (typed tags and ``O``) or ``"pos"``
            (typed tags, no ``O``: joint segmentation + POS).
        scheme: the file's tag scheme (bmes, bioes or bio); tags are converted to BMES.
        repair: make illegal gold sequences legal (lenient spans) instead of failing.

    Raises:
        CorpusFormatError: a line with no tag, a tag outside the scheme or task, an illegal
            sequence (with the line of the offending tag), or a file with no sentence.
    """
    sentences: list[Sentence] = []
    chars: list[str] = []
    tags: list[str] = []
    lines: list[int] = []

    def flush() -> None:
        if chars:
            sentences.append(_finish_conll(path, chars, tags, lines, task, scheme, repair))
        chars.clear(), tags.clear(), lines.clear()

    for number, text in iter_lines(path):
        fields = text.split()
        if not fields:
            flush()
            continue
        if len(fields) < 2:
            raise CorpusFormatError(
                path, number, f"expected 'CHAR TAG', got one field {fields[0]!r} (missing tag?)"
            )
        tag = fields[-1]
        _check_tag(path, number, tag, task, scheme)
        chars.append(fields[0])
        tags.append(tag)
        lines.append(number)
    flush()
    if not sentences:
        raise CorpusFormatError(path, None, "no sentences (file is empty or only blank lines)")
    return sentences


def read_corpus(
    path: str | Path, fmt: str, task: str, scheme: str = "bmes", repair: bool = False
) -> list[Sentence]:
    """Read a labelled corpus in ``fmt`` (one of :data:`FORMATS`) for ``task`` (cws/ner/pos)."""
    if fmt in _EXTRA_FORMATS:
        from .formats import read_format  # formats builds on this module

        return read_format(path, fmt, task, scheme, repair)
    if fmt == "segmented":
        if task != "cws":
            raise CorpusFormatError(path, None, "the segmented format only holds word "
                                    f"segmentation; use format: conll for {task.upper()}")
        return read_segmented(path)
    if fmt == "conll":
        return read_conll(path, task=task, scheme=scheme, repair=repair)
    raise ValueError(f"unknown corpus format {fmt!r}; expected one of {', '.join(FORMATS)}")


def read_word_list(path: str | Path) -> set[str]:
    """Read a word list (one word per line; the first field of each line) for OOV metrics."""
    words = set()
    for _, text in iter_lines(path):
        fields = text.split()
        if fields:
            words.add(fields[0])
    return words


# --- internals ---------------------------------------------------------------------------------

_SCHEME_PREFIXES = {
    "bmes": set("BMESO"),
    "bioes": set("BIESOLU"),
    "bio": set("BIO"),
}


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CorpusFormatError(path, None, "file not found")
    if path.is_dir():
        raise CorpusFormatError(path, None, "is a directory, expected a file")


def _check_tag(path: str | Path, number: int, tag: str, task: str, scheme: str) -> None:
    prefix, _, label = tag.partition("-")
    if prefix not in _SCHEME_PREFIXES[scheme] or (prefix == "O" and label) or (
        "-" in tag and not label
    ):
        allowed = "/".join(sorted(_SCHEME_PREFIXES[scheme] - {"L", "U"}))
        raise CorpusFormatError(path, number, f"unknown tag {tag!r} for scheme {scheme} "
                                f"(expected prefixes {allowed})")
    if task == "cws" and (label or prefix == "O"):
        raise CorpusFormatError(path, number, f"tag {tag!r} is not a word-segmentation tag "
                                "(expected untyped B/M/E/S; is data.task ner?)")
    if task == "ner" and prefix != "O" and not label:
        raise CorpusFormatError(path, number, f"tag {tag!r} has no entity type "
                                "(expected e.g. B-PER; is data.task cws?)")
    if task == "pos" and (prefix == "O" or not label):
        raise CorpusFormatError(path, number, f"tag {tag!r} is not a joint segmentation+POS "
                                "tag (expected e.g. B-NOUN, and no O; is data.task cws or ner?)")


def _finish_conll(
    path: str | Path, chars: list[str], tags: list[str], lines: list[int],
    task: str, scheme: str, repair: bool,
) -> Sentence:
    try:
        bmes = to_bmes(tags, scheme)
    except TagSequenceError as exc:
        if not repair:
            line = lines[min(exc.position, len(lines) - 1)]
            raise CorpusFormatError(path, line, f"illegal {scheme.upper()} sequence: "
                                    f"{exc.reason} (set data.repair_gold: true to repair)"
                                    ) from None
        bmes = repair_bmes(_lenient_bmes(tags, scheme))
    for tag in bmes:
        split_tag(tag)  # internal invariant: conversion yields well-formed tags
    return Sentence(chars=list(chars), tags=bmes, line=lines[0])


def _lenient_bmes(tags: Sequence[str], scheme: str) -> list[str]:
    """Prefix-wise mapping to BMES for repair; legality is restored by ``repair_bmes``."""
    if scheme == "bmes":
        return list(tags)
    out = []
    prev_label = None
    for tag in tags:
        prefix, _, label = tag.partition("-")
        if scheme == "bioes":
            prefix = {"I": "M", "L": "E", "U": "S"}.get(prefix, prefix)
        elif prefix == "I":
            prefix = "M" if prev_label == label else "B"
        out.append(prefix if not label else f"{prefix}-{label}")
        prev_label = label if prefix != "O" else None
    if scheme == "bio":
        # A BIO span's last I (or a lone B) must become E (or S) for BMES.
        fixed = []
        for i, tag in enumerate(out):
            prefix, _, label = tag.partition("-")
            nxt = out[i + 1] if i + 1 < len(out) else "O"
            continues = nxt.partition("-")[0] == "M" and nxt.partition("-")[2] == label
            if prefix == "B" and not continues:
                prefix = "S"
            elif prefix == "M" and not continues:
                prefix = "E"
            fixed.append(prefix if not label else f"{prefix}-{label}")
        out = fixed
    return out
