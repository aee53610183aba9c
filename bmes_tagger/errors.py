"""The project's error types: every user-facing failure is a ``BmesTaggerError``.

The CLI turns these into one line on stderr and a non-zero exit; library callers can catch
them. Messages name the file, line or key and say what was expected.
"""

from __future__ import annotations

from pathlib import Path


class BmesTaggerError(Exception):
    """Base class for errors caused by user input (files, configs, checkpoints)."""


class UsageError(BmesTaggerError):
    """The command line itself is wrong (a missing argument, an unknown choice): the CLI
    exits 2, like the argument parser's own errors, so scripts can tell it from bad data."""


class ConfigError(BmesTaggerError):
    """A config file or override is invalid (unknown key, wrong type, out of range).

    The message is one line, ``source:line: key: reason``, with the parts that are unknown left
    out. Callers that need to know where the error is read the fields, never the message.

    Args:
        reason: what is wrong, e.g. ``"must be >= 1, got -3"``. A reason given alone (no
            other field) may carry its own key prefix, as in ``"data.train: required"``.
        source: the file, ``--set SECTION.KEY=VALUE`` for a value given on the command line,
            or None when the caller has not said (a caller that knows adds it).
        line: 1-based line in ``source`` (files only), or None.
        key: ``section.key`` (or the section) the error is about, or None.
    """

    # Messages go to one terminal line; a reason longer than this is a bug in the caller (the
    # config code clips every value it echoes to far less), so the cap is only a backstop.
    MAX_REASON = 400

    def __init__(self, reason: str, *, source: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.key = key
        parts = []
        if source is not None:
            parts.append(f"{source}:{line}" if line is not None else source)
        if key is not None:
            parts.append(key)
        if len(reason) > self.MAX_REASON:
            reason = reason[: self.MAX_REASON - 1] + "\u2026"
        parts.append(reason)
        super().__init__(_one_line(": ".join(parts)))

    def located(self, source: str, line: int | None = None) -> ConfigError:
        """This error with ``source`` (and ``line``) filled in if it had none."""
        if self.source is not None:
            return self
        return ConfigError(self.reason, source=source,
                           line=self.line if self.line is not None else line, key=self.key)


def _one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped: a config key or
    value may hold any character, and the CLI prints only a message's first line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


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
    "bad_frequency",     # a word list's frequency column: not a whole number, or too large
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
    """A conversion would lose annotation, or its output cannot be written.

    Args:
        reason: what is wrong.
        line: 1-based line of the input where the sentence at fault starts, or None.
        source: the input file, or None where the writer does not know it (``convert``,
            which does, fills it in with :meth:`located`).
    """

    def __init__(self, reason: str, *, line: int | None = None,
                 source: str | Path | None = None) -> None:
        self.reason = reason
        self.line = line
        self.source = None if source is None else str(source)
        if self.source is not None:
            where = f"{self.source}:{line}" if line is not None else self.source
        else:
            where = f"sentence at line {line}" if line is not None else None
        super().__init__(f"{where}: {reason}" if where else reason)

    def located(self, source: str | Path) -> ConversionError:
        """This error naming ``source`` as the file its line is in, if it named none."""
        if self.source is not None:
            return self
        return ConversionError(self.reason, line=self.line, source=source)

    def __reduce__(self) -> tuple[object, ...]:
        return (_conversion_error, (self.reason, self.line, self.source))


def _conversion_error(reason: str, line: int | None, source: str | None) -> ConversionError:
    return ConversionError(reason, line=line, source=source)


class ConversionChoiceError(ConversionError, UsageError):
    """An unknown format, scheme, task or column name asked of a conversion (usage: exit 2)."""


class CheckpointError(BmesTaggerError):
    """A checkpoint is missing, corrupt, unsafe or of an unsupported format version."""


class RunDirError(BmesTaggerError):
    """The run directory is locked by another run, or holds a run that must not be overwritten."""


class TrainingError(BmesTaggerError):
    """Training cannot go on (e.g. the loss became NaN)."""


def interruption(exc: BaseException) -> BaseException | None:
    """The Ctrl-C or stop signal behind ``exc``, if one is: an extension module built with
    pybind11 (onnxruntime, torch) that is interrupted while it initialises raises
    ``ImportError('initialization failed')`` from the ``KeyboardInterrupt`` (or from what a
    SIGTERM handler raised: anything that is a ``BaseException`` but no ``Exception``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if not isinstance(current, Exception):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def import_failure(exc: ImportError, message: str) -> BaseException:
    """What a failed import of an optional dependency raises: the interruption it hid
    (:func:`interruption`), or the one-line error ``message`` (what to install)."""
    return interruption(exc) or BmesTaggerError(message)


#: What to run where torch is missing (a deployment install has only numpy and onnxruntime).
# pinned: an unpinned torch (the train extra's) resolves to the multi-GB CUDA build
TORCH_INSTALL = "pip install torch==2.13.0"


#: Said where a checkpoint is refused for want of torch.
ONNX_HINT = "an ONNX export of the model (tagger export) predicts without torch"


def require_torch(what: str, hint: str = "") -> None:
    """Raise a one-line :class:`BmesTaggerError` saying that ``what`` needs torch and how to
    install it (then ``hint``), where torch cannot be imported. Imported rather than looked
    up with ``find_spec``: a broken install (or a blocked import) finds a spec and still
    fails."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else "missing"
        raise import_failure(exc, f"{what} needs torch, which cannot be imported ({reason}): "
                             f"{TORCH_INSTALL}" + (f"; {hint}" if hint else "")) from None
