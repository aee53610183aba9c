"""Run directories: what makes a folder a run, who may write it (the lock), and what a new,
forced or resumed run may touch in it.

A run directory holds ``best.pt``, ``last.pt``, ``metrics.jsonl`` (one JSON line per
evaluation), ``train.log`` and ``config.yaml`` (the resolved config); with ``train.refit`` also
``refit.pt`` (the model trained on train + dev) and, while the refit is under way,
``refit-last.pt`` (what resuming it needs). It *holds a run* once a
checkpoint has been written; a folder without one (a run killed before its first evaluation,
one whose first save failed, a folder where the user keeps a config) is not a run.

Files under those names are the tool's only if the folder has the :data:`MARKER` file, which
a run writes before any of them: in any other folder they are the user's, and a new run
refuses to replace them unless forced. A run's files are plain files written in place (or
renamed over): a link or other special file under one of their names, or under the lock's, is
refused rather than followed, and no file a run reads (its config, corpora, vectors, lexicon)
may be one of them. A forced run clears the old run only once the new one has started (data
read, model built): a failure before that leaves the old run as it was, one after it (even
at the first save) does not.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .atomic import atomic_write, remove_stale_temporaries, same_file
from .errors import RunDirError

REFIT = "refit.pt"            # train.refit: the model trained on train + dev
REFIT_LAST = "refit-last.pt"  # the refit's resume state until refit.pt is written
RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl", "train.log", "config.yaml", REFIT,
             REFIT_LAST)
# the files whose presence means the folder holds a run that must not be overwritten: its
# checkpoints (a run whose first save failed, say on a full disk, has evaluations logged in
# metrics.jsonl but nothing to resume from, and must be startable again)
RESULT_FILES = ("best.pt", "last.pt")
LOCK = ".lock"
# written by a run before any run file: the files under RUN_FILES names are ours
MARKER = ".bmes_tagger-run"
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
            try:
                # never through a link: the PID would be written into whatever it points at
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK,
                             0o644)
            except OSError as exc:
                raise RunDirError(f"{self.path}: cannot be the run directory's lock file "
                                  f"({_why_not_plain(self.path, exc)}); remove it") from None
            info = os.fstat(fd)
            if not _plain(info):
                os.close(fd)
                what = "has other names (hard links)" if stat.S_ISREG(info.st_mode) else \
                    "is not a regular file"
                raise RunDirError(f"{self.path}: cannot be the run directory's lock file ({what}"
                                  "); remove it")
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


def _why_not_plain(path: Path, exc: OSError) -> str:
    if path.is_symlink():
        return "it is a symbolic link"
    return exc.strerror or str(exc)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def opened(run_dir: Path) -> Iterator[None]:
    """Create ``run_dir`` (and missing parents) if needed and hold its lock. If the run fails
    (or is interrupted) before its first evaluation in a directory this call created, the run
    files and every directory created are removed again: a failed start leaves nothing
    behind."""
    created = _missing_parents(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [run_dir, *run_dir.parents]
                        if p.exists() or p.is_symlink()), run_dir)
        what = ("is a link to a folder that does not exist" if not blocker.exists()
                else "exists and is not a directory")
        raise RunDirError(f"{blocker}: {what}, so {run_dir} cannot be created") from None
    try:
        with RunLock(run_dir):
            try:
                yield
            except BaseException:
                if created and not any((run_dir / n).exists() for n in RESULT_FILES):
                    for name in (*RUN_FILES, MARKER):
                        with contextlib.suppress(OSError):
                            (run_dir / name).unlink()
                raise
    except BaseException:
        for folder in created:  # deepest first; each only if empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    out = []
    for p in [path, *path.parents]:
        if p.exists() or p.is_symlink():
            break
        out.append(p)
    return out


def prepare(run_dir: Path, *, resume: bool, force: bool,
            inputs: Mapping[str, str | Path | None] | None = None) -> None:
    """Check that a run may start (or resume) in ``run_dir``; changes nothing but stale
    temporaries. A new run then calls :func:`clear` once it has started.

    Called with the lock held, so half-written files left by a killed run (which never
    replaced a complete file under its name) are swept away safely.

    Args:
        run_dir: the run directory (exists).
        resume: the run continues from ``last.pt``.
        force: a new run may replace the run the directory holds, or the user's files under
            the run files' names.
        inputs: ``{what: path}`` of every file the run reads (the config file, the corpora,
            vectors, lexicon): never deleted or replaced, ``force`` or not.

    Raises:
        RunDirError: nothing to resume, a run (or files of the user) that must not be
            overwritten, a link or special file under a run file's name, or an input that a
            run would replace.
    """
    for name in RUN_FILES:
        remove_stale_temporaries(run_dir / name)
    for what, path in (inputs or {}).items():
        if path is None:
            continue
        for name in RUN_FILES:
            own = run_dir / name
            if own.exists() and same_file(path, own):
                raise RunDirError(
                    f"{path}: {what} is the run directory's {name}, which the run "
                    f"{'appends to or replaces' if resume else 'replaces'}; move it elsewhere "
                    "first (or choose another --output)")
    special = [name for name in RUN_FILES if _special(run_dir / name)]
    if resume:
        if not (run_dir / "last.pt").exists():
            raise RunDirError(f"{run_dir}: nothing to resume: the directory holds no last.pt "
                              "(the run never reached its first evaluation); start it again "
                              "without --resume")
        if special:
            raise RunDirError(f"{run_dir / special[0]}: is a link or not a plain file (with one "
                              "name); a resumed run writes its files in place and will not "
                              "follow it: put the file itself there")
        return
    held = [name for name in RESULT_FILES if (run_dir / name).exists()]
    if held and not force:
        raise RunDirError(f"{run_dir}: already holds a run ({', '.join(held)}); use --resume "
                          "to continue it, --force to overwrite it, or --output DIR")
    if not force and not held and not (run_dir / MARKER).is_file():
        foreign = [n for n in RUN_FILES if (run_dir / n).exists() or (run_dir / n).is_symlink()]
        if foreign:
            which = "which is not a file" if len(foreign) == 1 else "which are not files"
            raise RunDirError(f"{run_dir}: holds {', '.join(foreign)}, {which} of a run of "
                              "this tool; a new run would replace them: use --force, or "
                              "another --output")


def clear(run_dir: Path) -> None:
    """Make way for a new run that has started: remove the old run's files (links only as
    links) and our TensorBoard event files, then mark the folder as a run's."""
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
    with atomic_write(run_dir / MARKER) as f:
        f.write("This folder is a run directory of bmes_tagger (tagger train).\n")


def _plain(info: os.stat_result) -> bool:
    """A regular file with one name: what a run's own files (and its lock) must be."""
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def _special(path: Path) -> bool:
    """A link, or anything but a regular file with one name, under a run file's name."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    return not _plain(info)


def append_line(path: Path, line: str, *, sync: bool = False) -> None:
    """Append ``line`` to a run file with a single write (fsynced with ``sync``), in place and
    never through a link: the run directory's files are its own."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single write and fsync it, so a kill leaves at most one
    torn last line (which :func:`read_records` skips)."""
    append_line(path, json.dumps(record, ensure_ascii=False) + "\n", sync=True)


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
