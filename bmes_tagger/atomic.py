"""Atomic file writes: a file appears under its final name complete or not at all."""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | Path, binary: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success it is flushed, fsynced
    and renamed over ``path`` (then the folder is fsynced, so the rename survives a crash).
    On any error, or Ctrl-C, the temporary file is removed and ``path`` is left as it was.

    Text mode writes UTF-8 with ``\\n`` line ends on every platform. Missing parent folders
    are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with (os.fdopen(fd, "wb") if binary
              else os.fdopen(fd, "w", encoding="utf-8", newline="\n")) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete temporaries that :func:`atomic_write` left beside ``path`` when its process was
    killed mid-write (SIGKILL, power loss). Only call this while no other process can be
    writing ``path`` (for a run directory: while holding its lock). Returns what was removed.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _fsync_dir(directory: Path) -> None:
    """Persist a rename (POSIX); harmless to skip where folders cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
