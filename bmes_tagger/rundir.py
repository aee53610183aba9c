"""Run directories: what makes a folder a run, who may write it (the lock), and what a new,
forced or resumed run may touch in it.

A run directory holds ``best.pt``, ``last.pt``, ``metrics.jsonl`` (one JSON line per
evaluation), ``train.log`` and ``config.yaml`` (the resolved config). It *holds a run* once a
checkpoint has been written; a folder without one (a run killed before its first evaluation,
one whose first save failed, a folder where the user keeps a config) is not a run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .atomic import atomic_write, remove_stale_temporaries
from .errors import RunDirError

RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl", "train.log", "config.yaml")
# the files whose presence means the folder holds a run that must not be overwritten: its
# checkpoints (a run whose first save failed, say on a full disk, has evaluations logged in
# metrics.jsonl but nothing to resume from, and must be startable again)
RESULT_FILES = ("best.pt", "last.pt")
LOCK = ".lock"
TENSORBOARD = "tensorboard"  # event files of train.tensorboard


class RunLock:
    """An exclusive lock on a run directory: ``flock`` on its ``.lock`` file, which also
    holds the owner's PID for messages.

    The kernel releases an ``flock`` when its process dies, so there are no stale locks to
    judge, and taking it is atomic: of two processes starting together exactly one wins.
    The file is removed on release only by its owner, and a lock on a file that was removed
    (and perhaps recreated) meanwhile is retried, so two owners never coexist.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                pid = _read_pid(self.path)
                owner = f" (PID {pid})" if pid is not None else ""
                raise RunDirError(f"{self.path.parent}: another tagger train{owner} is using "
                                  "this run directory") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the owner we waited on removed the file: lock the current one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self._fd = fd
            return self
        raise RunDirError(f"{self.path}: could not take the run directory lock")

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        # unlink while still holding the lock, so nobody can lock this file after we leave
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def opened(run_dir: Path) -> Iterator[None]:
    """Create ``run_dir`` if needed and hold its lock. If the run fails (or is interrupted)
    before its first evaluation in a directory this call created, the directory and the run
    files in it are removed again: a failed start leaves nothing behind."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RunDirError(f"{run_dir}: exists and is not a directory") from None
    try:
        with RunLock(run_dir):
            try:
                yield
            except BaseException:
                if created and not any((run_dir / n).exists() for n in RESULT_FILES):
                    for name in RUN_FILES:
                        with contextlib.suppress(OSError):
                            (run_dir / name).unlink()
                raise
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only if empty
        raise


def prepare(run_dir: Path, *, resume: bool, force: bool, config_file: Path | None) -> None:
    """Check that a run may start (or resume) in ``run_dir``; with ``force``, clear it.

    Called with the lock held, so half-written files left by a killed run (which never
    replaced a complete file under its name) are swept away safely.

    Args:
        run_dir: the run directory (exists).
        resume: the run continues from ``last.pt``.
        force: a new run may replace the run the directory holds.
        config_file: the config file the run was started from: never deleted or replaced,
            even when it is the directory's ``config.yaml``.

    Raises:
        RunDirError: nothing to resume, a run that must not be overwritten, or a config file
            that a new run would replace.
    """
    for name in RUN_FILES:
        remove_stale_temporaries(run_dir / name)
    if resume:
        if not (run_dir / "last.pt").exists():
            raise RunDirError(f"{run_dir}: nothing to resume: the directory holds no last.pt "
                              "(the run never reached its first evaluation); start it again "
                              "without --resume")
        return
    held = [name for name in RESULT_FILES if (run_dir / name).exists()]
    if held and not force:
        raise RunDirError(f"{run_dir}: already holds a run ({', '.join(held)}); use --resume "
                          "to continue it, --force to overwrite it, or --output DIR")
    own = run_dir / "config.yaml"
    if config_file is not None and own.exists() and _same_file(config_file, own):
        raise RunDirError(f"{config_file}: is the run directory's config.yaml, which a new run "
                          "replaces with its resolved config; copy it elsewhere first (or "
                          "choose another --output)")
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_symlink() or path.is_file():
            path.unlink()
    board = run_dir / TENSORBOARD
    if board.is_dir() and not board.is_symlink():
        # only event files of ours are removed; anything else keeps the folder
        for events in board.glob("events.out.tfevents.*"):
            events.unlink()
        with contextlib.suppress(OSError):
            board.rmdir()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single write and fsync it, so a kill leaves at most one
    torn last line (which :func:`read_records` skips)."""
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The evaluations of ``metrics.jsonl``; lines that are not complete JSON objects (a torn
    write) are skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def truncate_records(path: Path, step: int) -> None:
    """Drop evaluations logged after ``step`` (they will be redone by the resumed run) and
    any torn line; written atomically."""
    if not path.exists():
        return
    kept = [r for r in read_records(path) if isinstance(r.get("step"), int) and r["step"] <= step]
    with atomic_write(path) as f:
        for record in kept:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
