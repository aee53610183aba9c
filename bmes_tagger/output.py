"""Prediction over streams and files: output formats, bounded read-ahead with output in input
order, and ``--shard`` splitting. The model calls are :class:`bmes_tagger.predict.Tagger`'s."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO

from .atomic import OutputError
from .corpus import count_lines, iter_lines
from .errors import BmesTaggerError
from .predict import MAX_NBEST, Tagger, UserDict

OUTPUT_FORMATS = {"cws": ("segmented", "conll", "jsonl"), "ner": ("jsonl", "conll"),
                  "pos": ("pos", "conll")}


def predict_lines(
    tagger: Tagger, lines: Iterable[str], output_format: str | None = None,
    batch_size: int = 64, buffer_lines: int = 1000, user_dict: UserDict | None = None,
    nbest: int = 0,
) -> Iterator[str]:
    """Tag a stream of raw lines and yield one output record per input line, in input order.

    Input is consumed ``buffer_lines`` at a time, so memory stays bounded for any file size.

    Args:
        tagger: the model.
        lines: raw text lines (line terminators are stripped).
        output_format: CWS ``segmented`` (words joined by two spaces, the SIGHAN format),
            ``conll`` or ``jsonl``; NER ``jsonl`` (``text`` and ``entities``) or ``conll``;
            joint segmentation + POS ``pos`` (``word/POS`` joined by two spaces) or ``conll``.
            Default: the first of these for the task.
        batch_size: sentences per forward pass.
        buffer_lines: lines read ahead, sorted by length and batched together (more sort
            better, but the block's tokens, features and scores are what peak memory holds).
        user_dict: CWS: words to keep whole (segmented and jsonl output).
        nbest: if > 0, JSON lines with the ``nbest`` best analyses and their probabilities
            (CRF models; overrides ``output_format``).

    Yields:
        Output text for each input line, to be written followed by one newline (a ``conll``
        record is one ``CHAR TAG`` line per character, each ending in a newline, so records are
        separated by a blank line, and an empty input line is an empty record).
    """
    fmt = output_format or OUTPUT_FORMATS[tagger.task][0]
    if nbest > 0 and not tagger.network.has_crf:
        raise ValueError("--nbest needs a model trained with model.head: crf")
    if not 0 <= nbest <= MAX_NBEST:
        raise ValueError(f"--nbest: expected 0..{MAX_NBEST}, got {nbest}")
    if user_dict is not None and (tagger.task != "cws" or fmt == "conll" or nbest > 0):
        # n-best searches the model's own analyses: forcing words there is not built, and
        # silently ignoring the dictionary would be worse than saying so
        raise ValueError("--dict works with word-segmentation models and segmented or jsonl "
                         "output, without --nbest")
    if fmt not in OUTPUT_FORMATS[tagger.task]:
        raise ValueError(f"output format {fmt!r} is not available for {tagger.task}; "
                         f"choose {', '.join(OUTPUT_FORMATS[tagger.task])}")
    # validated above, before the first line is read; the stream itself is lazy
    return _stream(tagger, lines, fmt, batch_size, buffer_lines, user_dict, nbest)


def _stream(
    tagger: Tagger, lines: Iterable[str], fmt: str, batch_size: int, buffer_lines: int,
    user_dict: UserDict | None, nbest: int,
) -> Iterator[str]:
    buffer: list[str] = []
    for line in lines:
        buffer.append(line.rstrip("\r\n"))
        if len(buffer) >= buffer_lines:
            yield from _format_block(tagger, buffer, fmt, batch_size, user_dict, nbest)
            buffer = []
    if buffer:
        yield from _format_block(tagger, buffer, fmt, batch_size, user_dict, nbest)


def write_records(records: Iterable[str], out: IO[str], name: str) -> None:
    """Write each record followed by a newline, then flush.

    A failed write (disk full, a descriptor not open for writing) is an :class:`OutputError`
    naming ``name`` (the user's path, or ``<stdout>``); errors raised while producing the
    records (reading the input) pass through as they are. ``BrokenPipeError`` passes through
    too: the reader went away, which the CLI treats as a quiet stop.
    """
    for record in records:
        _write(out, record + "\n", name)
    _write(out, None, name)


class NamedStream:
    """A text stream whose failed writes are :class:`OutputError` naming ``name`` (as
    :func:`write_records` does), for writers that take a stream (``tagger convert IN -``)."""

    def __init__(self, out: IO[str], name: str) -> None:
        self.out, self.name = out, name

    def write(self, text: str) -> None:
        _write(self.out, text, self.name)

    def flush(self) -> None:
        _write(self.out, None, self.name)


def _write(out: IO[str], text: str | None, name: str) -> None:
    try:
        if text is None:
            out.flush()
        else:
            out.write(text)
    except (BrokenPipeError, BmesTaggerError):
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(f"{name}: could not write: {reason}", reason=reason,
                          filename=name) from None


def read_errors_named(lines: Iterable[str], name: str) -> Iterator[str]:
    """``lines``, with an ``OSError`` while reading them (EIO, ``- < /``: a directory on
    standard input) turned into one error naming ``name`` (the path, or ``<stdin>``)."""
    it = iter(lines)
    while True:
        try:
            line = next(it)
        except StopIteration:
            return
        except BmesTaggerError:
            raise
        except OSError as exc:
            raise BmesTaggerError(f"{name}: could not read: {exc.strerror or exc}") from None
        yield line


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n; ValueError otherwise."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ValueError(f"--shard: expected I/N such as 0/4, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard: need 0 <= I < N, got {text!r}")
    return i, n


def shard_range(total_lines: int, index: int, count: int) -> tuple[int, int]:
    """Line range ``[start, end)`` of shard ``index`` of ``count``: contiguous blocks, so the
    shards' outputs concatenated in order equal the unsharded output."""
    return total_lines * index // count, total_lines * (index + 1) // count


def file_lines(path: str | Path, shard: tuple[int, int] | None = None) -> Iterator[str]:
    """The lines ``tagger predict`` tags of a file: all of them, or only shard ``(index,
    count)``. Both the count and the lines come from the reader's one notion of a line
    (:func:`bmes_tagger.corpus.count_lines`), so the shards' lines concatenated are the
    file's lines for any line ends. Reading stops at the shard's end: a bad line after it
    is another shard's error."""
    name = str(path)
    lines = read_errors_named((text for _, text in iter_lines(path)), name)
    if shard is None:
        return lines
    lo, hi = shard_range(count_lines(path), *shard)
    return itertools.islice(lines, lo, hi)


def _format_block(
    tagger: Tagger, texts: list[str], fmt: str, batch_size: int,
    user_dict: UserDict | None = None, nbest: int = 0,
) -> Iterator[str]:
    if nbest > 0:
        for text, analyses in zip(texts, tagger.nbest(texts, nbest)):
            yield json.dumps({"text": text, "nbest": [
                {**tagger.analysis(text, [t for _, t in pairs]), "prob": round(prob, 6)}
                for pairs, prob in analyses]}, ensure_ascii=False)
    elif fmt == "conll":
        for pairs in tagger.tag(texts, batch_size):
            yield "".join(f"{c} {t}\n" for c, t in pairs)
    elif tagger.task == "pos":
        for words in tagger.pos_tag(texts, batch_size):
            yield "  ".join(f"{w}/{label}" if label else w for w, label in words)
    elif tagger.task == "cws" and fmt == "segmented":
        for words in tagger.segment(texts, batch_size, user_dict):
            yield "  ".join(words)
    elif tagger.task == "cws":
        for text, words in zip(texts, tagger.segment(texts, batch_size, user_dict)):
            yield json.dumps({"text": text, "words": words}, ensure_ascii=False)
    else:
        for text, ents in zip(texts, tagger.entities(texts, batch_size)):
            yield json.dumps({"text": text, "entities": [asdict(e) for e in ents]},
                             ensure_ascii=False)


