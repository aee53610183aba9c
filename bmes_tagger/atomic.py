"""Files the tool writes: the one place that decides what an output may be and how it is written.

Every writer (``predict --output``, ``convert``, ``export``, ``plot``, checkpoints, run files)
goes through :func:`check_output` and :func:`atomic_write`, so the rules hold everywhere:

- **Regular files** are written to a temporary file beside them, fsynced and renamed over the
  name: the file appears complete or not at all. An existing file is replaced only when the
  caller allows it (``--force``); it keeps its permission bits (and owner, where the user may
  set it). A new file gets ``0666 & ~umask``, as ``cp`` and shell redirections create them.
- **Symbolic links** are written *through*, like ``cp`` and ``tee`` do: the link stays, its
  target gets the new content (atomically, the temporary beside the target). A link to a missing
  file is refused (GNU ``cp`` refuses it too): following it would create a file somewhere the
  user did not name.
- **Character devices and FIFOs** (``/dev/null``, ``/dev/stdout`` on a pipe, a named pipe,
  ``--output >(gzip > x.gz)``) are opened and written directly, never renamed over, and need no
  ``--force``: writing to them replaces nothing.
- **Directories, block devices and sockets** are refused.
- An output that is **the same file as an input** (also through symbolic or hard links) is
  refused when it is a regular file: writing it would destroy what is being read.

Temporaries are named ``.NAME.HOST-PID.RANDOM.tmp``. A writer that is killed (SIGKILL, power
loss) cannot clean up after itself, so every write first removes the temporaries beside its
target whose owner, a process on this host, is no longer alive; one of a live process is never
touched. Write errors (disk full, file too large) are :class:`OutputError` naming the path the
user gave, never a temporary.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .errors import BmesTaggerError


class OutputError(BmesTaggerError, OSError):
    """An output must not or cannot be written: it exists (without ``force``), is an input,
    is not a kind of file that can be written, or the write itself failed.

    It is also an ``OSError`` (what a failed write raised before), so code that reports
    OSErrors (a checkpoint's "could not write") keeps working; ``strerror`` is the bare reason
    and ``filename`` the user's path, while ``str()`` is the whole one-line message.
    """

    def __init__(self, message: str, *, reason: str | None = None,
                 filename: str | Path | None = None) -> None:
        super().__init__(message)
        self.strerror = reason  # type: ignore[assignment]
        self.filename = None if filename is None else str(filename)

    def __str__(self) -> str:
        return str(self.args[0])


def check_output(
    path: str | Path, *, force: bool = False,
    inputs: Mapping[str, str | Path | int | None] | None = None,
) -> None:
    """Refuse an output before any work is done (and again when it is opened).

    Args:
        path: the output as the user gave it.
        force: an existing regular file (or the target of a link to one) may be replaced.
        inputs: ``{description: path or descriptor}`` of what the command reads, e.g.
            ``{"the input": "in.txt", "--model": "m.pt"}``; ``None`` values are skipped.

    Raises:
        OutputError: naming ``path`` and why.
    """
    kind = _kind(Path(path))
    if kind in ("device", "fifo"):
        return  # written in place: nothing is replaced, and reading it is not destroyed
    if kind == "file":
        for what, source in (inputs or {}).items():
            if source is not None and same_file(path, source):
                raise OutputError(f"{path}: is the same file as {what}"
                                  f"{'' if isinstance(source, int) else f' ({source})'}; "
                                  "refusing to overwrite an input")
        if not force:
            raise OutputError(f"{path}: already exists; use --force to overwrite it")


def same_file(a: str | Path | int, b: str | Path | int) -> bool:
    """Whether two paths or open descriptors are one regular file (symbolic and hard links
    followed); False where either cannot be examined."""
    try:
        sa = os.fstat(a) if isinstance(a, int) else os.stat(a)
        sb = os.fstat(b) if isinstance(b, int) else os.stat(b)
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(sa.st_mode) and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


@contextlib.contextmanager
def atomic_write(
    path: str | Path, binary: bool = False, *, force: bool = True,
    inputs: Mapping[str, str | Path | int | None] | None = None,
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing by the rules of this module (see its docstring).

    A regular file is written to a temporary beside it (beside the target of a symbolic link);
    on success it is flushed, fsynced and renamed over the name, then the folder is fsynced so
    the rename survives a crash. On any error, Ctrl-C or SIGTERM turned into an exception, the
    temporary is removed and the file is left as it was. A character device or FIFO is written
    directly. Missing parent folders are created (and removed again if the write fails).

    Text mode writes UTF-8 with ``\\n`` line ends on every platform.

    Args:
        path: the output.
        binary: yield a binary file instead of a text one.
        force: an existing file may be replaced (the default, for the tool's own files such
            as checkpoints; user-named outputs pass the user's ``--force``).
        inputs: what the command reads (see :func:`check_output`).

    Raises:
        OutputError: the output is refused (see :func:`check_output`) or writing it failed;
            the message names ``path``.
    """
    path = Path(path)
    check_output(path, force=force, inputs=inputs)
    if _kind(path) in ("device", "fifo"):
        with _direct(path, binary) as f:
            yield f
        return
    target = _target(path)
    created = _make_parents(path, target.parent)
    try:
        remove_dead_temporaries(target)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f"{_name_prefix(target.name)}{_owner_tag()}.",
                                       suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write: {_reason(exc)}", reason=_reason(exc),
                              filename=path) from None
    except BaseException:
        _remove_dirs(created)
        raise
    f: IO[Any] | None = None
    try:
        f = _open_fd(fd, path, binary)
        _set_mode(fd, target)
        try:
            yield f
            f.flush()
            try:
                os.fsync(f.fileno())
            except OSError as exc:
                raise _write_error(path, exc) from None
        finally:
            # closing flushes; after a failed write that fails again, quietly
            with contextlib.suppress(Exception):
                f.close()
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise _write_error(path, exc) from None
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _remove_dirs(created)
        _raise_write_error(f, exc)
        raise
    _fsync_dir(target.parent)


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete every temporary that :func:`atomic_write` left beside ``path``, whoever wrote
    it (also those of versions before owners were recorded). Only call this while no other
    process can be writing ``path`` (for a run directory: while holding its lock); otherwise
    :func:`remove_dead_temporaries` is the safe sweep. Returns what was removed."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f"{glob.escape(_name_prefix(path.name))}*.tmp"):
        if _is_file(tmp):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            removed.append(tmp)
    return removed


def remove_dead_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporaries beside ``path`` whose owner was a process of this host that is
    no longer alive (it was killed mid-write). Those of live processes, of other hosts (a
    shared file system) and of unknown owners are kept. Returns what was removed."""
    path = Path(path)
    prefix = _name_prefix(path.name)
    removed = []
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        owner = _OWNER.fullmatch(tmp.name[len(prefix):])
        if (owner is None or owner["host"] != _host() or not _is_file(tmp)
                or _alive(int(owner["pid"]))):
            continue
        try:
            tmp.unlink()
        except OSError:
            continue  # gone meanwhile, or not ours to remove: the write goes on regardless
        removed.append(tmp)
    return removed


# --- internals ---------------------------------------------------------------------------------

# The part of a temporary's name after ``.NAME.``: ``HOST-PID.RANDOM.tmp`` (RANDOM is
# mkstemp's, which never holds a dot).
_OWNER = re.compile(r"(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]+)\.[a-z0-9_]+\.tmp")
# Keeps ``.NAME.HOST-PID.RANDOM.tmp`` within the usual 255-byte limit for any NAME.
_MAX_NAME_BYTES = 150


def _host() -> str:
    # uname's node name is what socket.gethostname() returns, without importing socket
    return re.sub(r"[^A-Za-z0-9]", "_", os.uname().nodename)[:32] or "host"


def _owner_tag() -> str:
    return f"{_host()}-{os.getpid()}"


def _name_prefix(name: str) -> str:
    """``.NAME.``; NAME is shortened so that the temporaries of very long names still fit."""
    while len(os.fsencode(name)) > _MAX_NAME_BYTES:
        name = name[:-1]
    return f".{name}."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's live process (or not a PID we can judge): keep
    return True


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _kind(path: Path) -> str:
    """``missing``, ``file``, ``device``, ``fifo``, or raise :class:`OutputError` for what
    can never be an output."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise OutputError(f"{path}: is a symbolic link to a missing file "
                              f"({os.readlink(path)}); refusing to create a file through it"
                              ) from None
        return "missing"
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG):
            raise OutputError(f"{path}: cannot write: {_reason(exc)}") from None
        return "missing"  # e.g. no permission to look: the write will say why
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISCHR(st.st_mode):
        return "device"
    if stat.S_ISFIFO(st.st_mode):
        return "fifo"
    what = ("a directory" if stat.S_ISDIR(st.st_mode) else
            "a block device" if stat.S_ISBLK(st.st_mode) else
            "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
    raise OutputError(f"{path}: is {what}; refusing to write to it")


def _target(path: Path) -> Path:
    """The file that gets the content: ``path`` itself, or the file its links lead to."""
    if not os.path.islink(path):
        return path
    real = Path(os.path.realpath(path))
    # a link whose target has no name of its own (/proc/self/fd/N of a deleted file) cannot
    # be replaced by rename
    if not same_file(real, path):
        raise OutputError(f"{path}: is a link whose target cannot be replaced by name; "
                          "give the file's own path")
    return real


def _make_parents(path: Path, folder: Path) -> list[Path]:
    """Create the missing folders above ``folder``; return those created, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            _remove_dirs([m for m in missing if m.is_dir()])
            raise OutputError(f"{path}: cannot create the folder {d}: {_reason(exc)}"
                              ) from None
    return missing


def _remove_dirs(created: list[Path]) -> None:
    for d in created:  # deepest first; only if still empty
        with contextlib.suppress(OSError):
            d.rmdir()


def _set_mode(fd: int, target: Path) -> None:
    """The permissions a plain write would give: an existing file's own (owner and group
    kept where permitted), else ``0666 & ~umask`` (mkstemp creates 0600)."""
    try:
        old = os.stat(target)
    except OSError:
        os.fchmod(fd, 0o666 & ~_umask())
        return
    if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        for uid, gid in ((old.st_uid, old.st_gid), (-1, old.st_gid)):
            try:
                os.fchown(fd, uid, gid)
                break
            except OSError:
                continue
    # after chown, which may clear set-id bits; those are not carried over on purpose
    os.fchmod(fd, stat.S_IMODE(old.st_mode) & 0o777)


def _umask() -> int:
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


class _NamedWriter(io.FileIO):
    """A file descriptor whose write errors name the user's path (not a temporary)."""

    def __init__(self, fd: int, shown: str | Path) -> None:
        super().__init__(fd, "wb", closefd=True)
        self.shown = str(shown)
        self.error: OutputError | None = None

    def write(self, data: Any) -> int | None:
        try:
            return super().write(data)
        except BrokenPipeError:
            raise  # the reader went away: the CLI stops quietly
        except OSError as exc:
            # kept: libraries that write through us (torch.save) may swallow the exception
            # and fail later with a message of their own
            self.error = _write_error(self.shown, exc)
            raise self.error from None


def _open_fd(fd: int, shown: str | Path, binary: bool) -> IO[Any]:
    raw = _NamedWriter(fd, shown)
    buffered = io.BufferedWriter(raw)
    if binary:
        return buffered
    return io.TextIOWrapper(buffered, encoding="utf-8", newline="\n")


@contextlib.contextmanager
def _direct(path: Path, binary: bool) -> Iterator[IO[Any]]:
    """Write a character device or FIFO in place (a FIFO's open waits for a reader)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {_reason(exc)}") from None
    f = _open_fd(fd, path, binary)
    try:
        yield f
        f.flush()
    except BaseException as exc:
        _raise_write_error(f, exc)
        raise
    finally:
        with contextlib.suppress(Exception):
            f.close()


def _raise_write_error(f: IO[Any] | None, exc: BaseException) -> None:
    """If writing ``f`` failed, raise that error instead of ``exc``: a library may have turned
    it into something that does not say what happened (torch: "unexpected pos 704 vs 598")."""
    raw = getattr(getattr(f, "buffer", f), "raw", None)
    error = getattr(raw, "error", None)
    if error is not None and exc is not error and isinstance(exc, Exception):
        raise error from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _write_error(path: str | Path, exc: OSError) -> OutputError:
    return OutputError(f"{path}: could not write: {_reason(exc)}", reason=_reason(exc),
                       filename=path)


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
