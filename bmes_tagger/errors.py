"""The project's error types: every user-facing failure is a ``BmesTaggerError``.

The CLI turns these into one line on stderr and a non-zero exit; library callers can catch
them. Messages name the file, line or key and say what was expected.
"""

from __future__ import annotations

from pathlib import Path


class BmesTaggerError(Exception):
    """Base class for errors caused by user input (files, configs, checkpoints)."""


class ConfigError(BmesTaggerError):
    """A config file or override is invalid (unknown key, wrong type, out of range)."""


class CorpusFormatError(BmesTaggerError):
    """A corpus file does not match its declared format.

    Args:
        path: the file being read.
        line: 1-based line number of the problem, or None for whole-file problems.
        reason: what is wrong, e.g. ``"expected 'CHAR TAG', got 1 field"``.
        kind: what kind of problem, one of :data:`CORPUS_ERROR_KINDS`, for callers that react
            to some kinds (``tagger eval`` explains a ``wrong_task`` file); the message is for
            people and may change.
    """

    def __init__(self, path: str | Path, line: int | None, reason: str,
                 kind: str = "format") -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        self.kind = kind
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        # The default rebuilds from the formatted message alone, which __init__ does not take
        # (multiprocessing pickles exceptions raised in workers).
        return (type(self), (self.path, self.line, self.reason, self.kind))


#: Values of :attr:`CorpusFormatError.kind`.
CORPUS_ERROR_KINDS = (
    "not_found",         # no such file
    "not_a_file",        # a directory
    "encoding",          # not valid UTF-8
    "binary",            # a NUL byte
    "line_too_long",     # a line over the reader's bound (e.g. /dev/zero)
    "empty",             # no sentence in the file
    "missing_tag",       # a CoNLL line without a tag column
    "unknown_tag",       # a tag outside the file's scheme
    "bad_label",         # an entity type / POS name the scorers could confuse (B-PER-)
    "wrong_task",        # tags or format of another task (NER tags in a CWS corpus, ...)
    "illegal_sequence",  # a gold tag sequence that is not legal in its scheme
    "bad_span",          # JSON mention offsets that do not match the text
    "overlap",           # overlapping JSON mentions
    "unlabelled",        # a JSON line without "label"
    "format",            # any other malformed line (JSON syntax, CoNLL-U columns, word/POS)
)


class TagSequenceError(BmesTaggerError):
    """A tag sequence is not legal in its scheme (strict reading of gold tags).

    Args:
        position: 0-based index of the offending tag in the sequence.
        reason: what is wrong, e.g. ``"M-PER cannot follow O"``.
        kind: ``"illegal_sequence"`` (each tag is fine, their order is not) or
            ``"unknown_tag"`` (a tag outside the scheme).
    """

    def __init__(self, position: int, reason: str, kind: str = "illegal_sequence") -> None:
        self.position = position
        self.reason = reason
        self.kind = kind
        super().__init__(f"tag {position}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.position, self.reason, self.kind))


class ConversionError(BmesTaggerError):
    """A conversion would lose annotation, or its output cannot be written."""


class CheckpointError(BmesTaggerError):
    """A checkpoint is missing, corrupt, unsafe or of an unsupported format version."""
