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
    """

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class TagSequenceError(BmesTaggerError):
    """A tag sequence is not legal in its scheme (strict reading of gold tags).

    Args:
        position: 0-based index of the offending tag in the sequence.
        reason: what is wrong, e.g. ``"M-PER cannot follow O"``.
    """

    def __init__(self, position: int, reason: str) -> None:
        self.position = position
        self.reason = reason
        super().__init__(f"tag {position}: {reason}")


class CheckpointError(BmesTaggerError):
    """A checkpoint is missing, corrupt, unsafe or of an unsupported format version."""


class RunDirError(BmesTaggerError):
    """The run directory is locked by another run, or holds a run that must not be overwritten."""
