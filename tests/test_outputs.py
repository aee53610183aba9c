"""Files the tool writes and the streams it reads and writes (``bmes_tagger.atomic``).

Every writer (predict --output, convert, export, plot) follows the same rules: a device or FIFO
is written in place and never replaced, a symbolic link is written through to its target (a
dangling one is refused), an output that is an input is refused, modes follow the umask (new
files) or the old file (overwrites), errors name the user's path, and SIGTERM or SIGKILL leaves
no temporary behind for long. Streams: --shard refuses what cannot be counted twice, closed or
broken standard streams give one line, and a reader that goes away is a quiet exit 141.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bmes_tagger.atomic import (
    OutputError,
    atomic_write,
    remove_dead_temporaries,
    remove_stale_temporaries,
)
from bmes_tagger.cli import app
from conftest import DATA, REPO, tiny_config

runner = CliRunner()
RAW = DATA / "sample-cws" / "raw.txt"
CWS_TEST = DATA / "sample-cws" / "test.txt"
# children import this checkout first (and whatever PYTHONPATH held, e.g. another typer)
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
SLOW = pytest.mark.slow  # tests that start several fresh interpreters (~3 s each)


@dataclass(frozen=True)
class Run:
    dir: Path
    model: Path
    ner: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    found = {}
    for task, head in (("cws", "softmax"), ("ner", "crf")):
        tmp = tmp_path_factory.mktemp(f"outputs-{task}")
        result = runner.invoke(app, ["train", str(tiny_config(tmp, task, head)), "--quiet",
                                     "--set", "train.epochs=1"])
        assert result.exit_code == 0, result.output
        found[task] = tmp / "run"
    return Run(found["cws"], found["cws"] / "best.pt", found["ner"] / "best.pt")


def one_error_line(result: Result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert ".tmp" not in lines[0]  # the user's path, never a temporary
    return lines[0]


def no_temporaries(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# --- the writers, each with the arguments that make it write OUT -------------------------------

Writer = Callable[[Run, Path, Path], list[str]]  # (run, tmp, out) -> argv


def predict(run: Run, tmp: Path, out: Path) -> list[str]:
    return ["predict", str(RAW), "--model", str(run.model), "--output", str(out)]


def convert(run: Run, tmp: Path, out: Path) -> list[str]:
    return ["convert", str(CWS_TEST), str(out), "--from", "segmented", "--to", "conll"]


def export(run: Run, tmp: Path, out: Path) -> list[str]:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    return ["export", str(run.model), "--output", str(out)]


def plot(run: Run, tmp: Path, out: Path) -> list[str]:
    pytest.importorskip("matplotlib")
    return ["plot", str(run.dir), "--output", str(out)]


WRITERS = {"predict": (predict, "out.txt"), "convert": (convert, "out.conll"),
           "export": (export, "out.onnx"), "plot": (plot, "out.png")}


@pytest.fixture(params=list(WRITERS))
def writer(request: pytest.FixtureRequest) -> tuple[Writer, str]:
    return WRITERS[request.param]


def device_copy_of_dev_null(path: Path) -> Path:
    """A character device at ``path``: a copy of /dev/null (mknod, as root), else a symbolic
    link to /dev/null itself (the writers follow links, so the device is what they meet)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.stat("/dev/null").st_rdev)
    except PermissionError:
        path.symlink_to("/dev/null")
    return path


def test_a_device_is_written_in_place_never_replaced(run: Run, tmp_path: Path,
                                                     writer: tuple[Writer, str]) -> None:
    build, name = writer
    out = device_copy_of_dev_null(tmp_path / name)
    for extra in ([], ["--force"]):  # writing to a device replaces nothing: no --force needed
        result = runner.invoke(app, [*build(run, tmp_path, out), *extra])
        assert result.exit_code == 0, result.output
        assert stat.S_ISCHR(os.stat(out).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_fifo_is_written_in_place(run: Run, tmp_path: Path,
                                    writer: tuple[Writer, str]) -> None:
    build, name = writer
    out = tmp_path / name
    os.mkfifo(out)
    received: list[bytes] = []
    # a daemon: if the writer never opens the FIFO, the blocked reader must not hang pytest
    reader = threading.Thread(target=lambda: received.append(out.read_bytes()), daemon=True)
    reader.start()
    result = runner.invoke(app, build(run, tmp_path, out))
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.lstat(out).st_mode) and received and received[0]
    if name == "out.txt":
        assert received[0].decode().count("\n") == len(RAW.read_text("utf-8").splitlines())


def test_a_symlink_is_written_through_to_its_target(run: Run, tmp_path: Path,
                                                    writer: tuple[Writer, str]) -> None:
    build, name = writer
    target = tmp_path / "real" / f"target{Path(name).suffix}"
    target.parent.mkdir()
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / name
    link.symlink_to(target)
    line = one_error_line(runner.invoke(app, build(run, tmp_path, link)))
    assert f"{link}: already exists" in line and target.read_bytes() == b"old"
    result = runner.invoke(app, [*build(run, tmp_path, link), "--force"])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() != b"old" and stat.S_IMODE(target.stat().st_mode) == 0o640
    no_temporaries(tmp_path)
    no_temporaries(target.parent)


def test_a_dangling_symlink_is_refused(run: Run, tmp_path: Path,
                                       writer: tuple[Writer, str]) -> None:
    build, name = writer
    link = tmp_path / name
    link.symlink_to(tmp_path / "elsewhere" / "missing")
    line = one_error_line(runner.invoke(app, [*build(run, tmp_path, link), "--force"]))
    assert f"{link}: is a symbolic link to a missing file" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_directory_is_refused(run: Run, tmp_path: Path, writer: tuple[Writer, str]) -> None:
    build, name = writer
    out = tmp_path / name
    out.mkdir()
    line = one_error_line(runner.invoke(app, [*build(run, tmp_path, out), "--force"]))
    assert f"{out}: is a directory" in line
    assert out.is_dir() and not any(out.iterdir())


@pytest.mark.parametrize("how", ["itself", "symlink", "hard link"])
def test_an_output_that_is_an_input_is_refused(run: Run, tmp_path: Path, how: str) -> None:
    """Also through links, and for every input: predict's text, --model and --dict; convert's
    IN; export's checkpoint; plot's metrics.jsonl."""
    model = tmp_path / "m.pt"
    shutil.copy(run.model, model)
    raw = tmp_path / "raw.txt"
    shutil.copy(RAW, raw)
    words = tmp_path / "words.txt"
    words.write_text("北京\n", encoding="utf-8")
    corpus = tmp_path / "test.txt"
    shutil.copy(CWS_TEST, corpus)
    rundir = tmp_path / "run"
    rundir.mkdir()
    shutil.copy(run.dir / "metrics.jsonl", rundir / "metrics.jsonl")

    def alias(source: Path, name: str) -> Path:
        if how == "itself":
            return source
        out = tmp_path / name
        if how == "symlink":
            out.symlink_to(source)
        else:
            os.link(source, out)
        return out

    cases = [
        (["predict", str(raw), "--model", str(model), "--output", str(alias(raw, "a.txt"))],
         "the input"),
        (["predict", str(raw), "--model", str(model), "--output", str(alias(model, "b.pt"))],
         "--model"),
        (["predict", str(raw), "--model", str(model), "--dict", str(words), "--output",
          str(alias(words, "c.txt"))], "--dict"),
        (["convert", str(corpus), str(alias(corpus, "d.txt")), "--from", "segmented", "--to",
          "segmented"], "the input"),
    ]
    if how != "itself":  # these outputs must be named *.onnx / *.png
        cases.append((["export", str(model), "--output", str(alias(model, "e.onnx"))],
                      "the checkpoint"))
        cases.append((["plot", str(rundir), "--output",
                       str(alias(rundir / "metrics.jsonl", "f.png"))], "metrics.jsonl"))
    before = {p: p.read_bytes() for p in (model, raw, words, corpus, rundir / "metrics.jsonl")}
    for argv, what in cases:
        line = one_error_line(runner.invoke(app, [*argv, "--force"]))
        if "would overwrite its own checkpoint" in line:
            continue  # export's own, older check (the path resolves to the checkpoint)
        assert "is the same file as" in line and what in line, line
        assert "refusing to overwrite an input" in line
    assert {p: p.read_bytes() for p in before} == before
    no_temporaries(tmp_path)


# --- modes -------------------------------------------------------------------------------------


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077, 0o027])
def test_new_files_get_the_umask_mode_and_overwrites_keep_theirs(
        run: Run, tmp_path: Path, writer: tuple[Writer, str], umask: Callable[[int], None],
        mask: int) -> None:
    build, name = writer
    umask(mask)
    out = tmp_path / name
    result = runner.invoke(app, build(run, tmp_path, out))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask
    for kept in (0o664, 0o600, 0o644):
        out.chmod(kept)
        result = runner.invoke(app, [*build(run, tmp_path, out), "--force"])
        assert result.exit_code == 0, result.output
        assert stat.S_IMODE(out.stat().st_mode) == kept


def test_checkpoints_follow_the_umask_too(tmp_path: Path, umask: Callable[[int], None]) -> None:
    umask(0o002)
    result = runner.invoke(app, ["train", str(tiny_config(tmp_path)), "--quiet", "--set",
                                 "train.epochs=1"])
    assert result.exit_code == 0, result.output
    for name in ("best.pt", "last.pt", "config.yaml"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o664, name


# --- write errors and temporaries --------------------------------------------------------------


def run_limited(argv: list[str], limit: int, ignore_sigxfsz: bool = False
                ) -> subprocess.CompletedProcess[str]:
    """The CLI in a child whose files may not grow beyond ``limit`` bytes (ulimit -f)."""
    import resource

    def limit_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        if ignore_sigxfsz:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return subprocess.run([sys.executable, "-m", "bmes_tagger", *argv], capture_output=True,
                          text=True, env=ENV, preexec_fn=limit_size, timeout=300)


def test_a_failed_write_names_the_users_path_and_keeps_the_old_file(run: Run,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("old\n", encoding="utf-8")
    # SIGXFSZ is left at its default (it would kill): the CLI ignores it to report EFBIG
    proc = run_limited(["predict", str(RAW), "--model", str(run.model), "--output", str(out),
                        "--force"], limit=1000)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == f"error: {out}: could not write: File too large\n"
    assert out.read_text(encoding="utf-8") == "old\n"
    no_temporaries(tmp_path)
    # a file that cannot be created at all: the message names the user's path too
    result = runner.invoke(app, ["predict", str(RAW), "--model", str(run.model), "--output",
                                 "/proc/no-such-dir/out.txt"])
    assert "/proc/no-such-dir/out.txt: cannot" in one_error_line(result)


def test_missing_folders_are_created_and_removed_again_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    with pytest.raises(ValueError), atomic_write(target) as f:
        f.write("half")
        raise ValueError
    assert not (tmp_path / "a").exists()
    with atomic_write(target) as f:
        f.write("whole")
    assert target.read_text() == "whole"


def test_an_existing_file_is_refused_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("mine")
    with pytest.raises(OutputError, match="already exists; use --force"), \
            atomic_write(out, force=False) as f:
        f.write("theirs")
    assert out.read_text() == "mine"


def long_predict(run: Run, tmp_path: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    big = tmp_path / "big.txt"
    if not big.exists():
        big.write_text(RAW.read_text("utf-8") * 400, encoding="utf-8")
    return subprocess.Popen([sys.executable, "-m", "bmes_tagger", "predict", str(big),
                             "--model", str(run.model), "--output", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for_temporary(folder: Path, proc: subprocess.Popen[str], size: int = 1) -> Path:
    deadline = time.monotonic() + 120
    while True:
        found = [p for p in folder.iterdir() if p.name.endswith(".tmp")
                 and p.stat().st_size >= size]
        if found:
            return found[0]
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_sigterm_during_predict_output_cleans_up(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("old\n", encoding="utf-8")
    proc = long_predict(run, tmp_path, out, "--force")
    wait_for_temporary(tmp_path, proc, size=10_000)  # mid-write, not before it
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err == "interrupted by SIGTERM\n"
    assert out.read_text(encoding="utf-8") == "old\n"
    no_temporaries(tmp_path)


@SLOW
def test_sigterm_during_convert_cleans_up(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text(CWS_TEST.read_text("utf-8") * 150, encoding="utf-8")
    out = tmp_path / "out.conll"
    out.write_text("old\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "bmes_tagger", "convert", str(big), str(out),
                             "--from", "segmented", "--to", "conll", "--force"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    wait_for_temporary(tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (143, "interrupted by SIGTERM\n")
    assert out.read_text(encoding="utf-8") == "old\n"
    no_temporaries(tmp_path)


def test_a_sigkilled_writers_temporary_names_its_owner_and_the_next_write_sweeps_it(
        run: Run, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    proc = long_predict(run, tmp_path, out)
    torn = wait_for_temporary(tmp_path, proc, size=10_000)
    proc.kill()
    proc.wait()
    assert f"-{proc.pid}." in torn.name and torn.name.startswith(".out.txt.")
    # a temporary of a live process (this one), and hidden files that are not ours, are kept
    live = tmp_path / torn.name.replace(f"-{proc.pid}.", f"-{os.getpid()}.")
    live.write_text("being written")
    foreign = [tmp_path / ".out.txt.notes.tmp", tmp_path / ".out.txt.otherhost-1.abc.tmp"]
    for path in foreign:
        path.write_text("not ours")
    result = runner.invoke(app, ["predict", str(RAW), "--model", str(run.model), "--output",
                                 str(out)])
    assert result.exit_code == 0, result.output
    assert not torn.exists() and live.exists() and all(p.exists() for p in foreign)
    # the sweep the training code runs under the run lock removes every temporary of a name
    assert sorted(remove_stale_temporaries(out)) == sorted([live, *foreign])


def test_the_sweep_never_removes_a_live_writers_temporary(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with atomic_write(out) as f:
        f.write("x")
        mine = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(mine) == 1
        assert remove_dead_temporaries(out) == [] and mine[0].exists()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / mine[0].name.replace(f"-{os.getpid()}.", f"-{sleeper.pid}.")
        live.write_text("x")
        assert remove_dead_temporaries(out) == [] and live.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert remove_dead_temporaries(out) == [live]


def test_temporaries_of_very_long_names_fit(tmp_path: Path) -> None:
    out = tmp_path / ("长" * 80 + ".txt")  # 244 bytes: the name allows no long suffix
    with atomic_write(out) as f:
        f.write("ok")
    assert out.read_text() == "ok"


# --- streams -----------------------------------------------------------------------------------


def bash(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``script`` in bash, with ``$TAGGER`` the CLI and $1... the arguments."""
    env = {**ENV, "TAGGER": f"{sys.executable} -m bmes_tagger"}
    return subprocess.run(["bash", "-c", script, "bash", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@SLOW
def test_shard_refuses_what_it_cannot_count(run: Run, tmp_path: Path) -> None:
    """Counting lines first would consume a pipe (the old bug: no output, exit 0): it is a
    usage error (exit 2), like an --shard that does not parse."""
    m = str(run.model)
    for script in ('cat "$1" | $TAGGER predict /dev/stdin --model "$2" --shard 0/2',
                   'cat "$1" | $TAGGER predict - --model "$2" --shard 0/2',
                   '$TAGGER predict <(cat "$1") --model "$2" --shard 1/2',
                   '$TAGGER predict "$1" --model "$2" --shard 2/2'):
        proc = bash(script, str(RAW), m)
        assert proc.returncode == 2, (script, proc.returncode, proc.stderr)
        assert "Invalid value for '--shard'" in proc.stderr and not proc.stdout
    # a redirected regular file on /dev/stdin can be counted: it works
    proc = bash('$TAGGER predict /dev/stdin --model "$2" --shard 0/1 < "$1"', str(RAW), m)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == len(RAW.read_text("utf-8").splitlines())


@SLOW
def test_closed_or_broken_standard_streams_are_one_line(run: Run, tmp_path: Path) -> None:
    m = str(run.model)
    cases = {
        '$TAGGER predict - --model "$2" <&-': "error: <stdin>: standard input is closed",
        '$TAGGER predict "$1" --model "$2" >&-': "error: <stdout>: standard output is closed",
        '$TAGGER predict "$1" --model "$2" > /dev/full':
            "error: <stdout>: could not write: No space left on device",
        '$TAGGER predict "$1" --model "$2" 1< /dev/null':
            "error: <stdout>: could not write: Bad file descriptor",
        '$TAGGER predict "$1" --model "$2" --output /dev/full':
            "error: /dev/full: could not write: No space left on device",
    }
    for script, expected in cases.items():
        proc = bash(script, str(RAW), m)
        assert proc.returncode == 1, (script, proc.stderr)
        assert proc.stderr.startswith(expected) and proc.stderr.count("\n") == 1, \
            (script, proc.stderr)


@SLOW
def test_stdout_that_is_an_input_is_refused(run: Run, tmp_path: Path) -> None:
    """``>> in.txt`` would read its own output without end."""
    raw = tmp_path / "in.txt"
    shutil.copy(RAW, raw)
    proc = bash('$TAGGER predict "$1" --model "$2" >> "$1"', str(raw), str(run.model))
    assert proc.returncode == 1
    assert proc.stderr == (f"error: <stdout>: is the same file as the input ({raw}); "
                           "refusing to write over an input\n")
    assert raw.read_bytes() == RAW.read_bytes()
    # and --output given the file that standard input reads
    proc = bash('$TAGGER predict - --model "$2" --output "$1" --force < "$1"', str(raw),
                str(run.model))
    assert proc.returncode == 1 and "is the same file as standard input" in proc.stderr
    assert raw.read_bytes() == RAW.read_bytes()


@pytest.mark.parametrize("how", ["stdout", pytest.param("--output /dev/stdout", marks=SLOW),
                                 pytest.param("default SIGPIPE", marks=SLOW)])
def test_a_reader_that_goes_away_is_a_quiet_141(run: Run, tmp_path: Path, how: str) -> None:
    big = tmp_path / "big.txt"
    big.write_text(RAW.read_text("utf-8") * 60, encoding="utf-8")  # >> a pipe buffer
    extra = "--output /dev/stdout" if how.startswith("--output") else ""
    trap = "trap - PIPE; " if how == "default SIGPIPE" else ""
    proc = bash(f'{trap}$TAGGER predict "$1" --model "$2" {extra} | head -1; '
                'exit "${PIPESTATUS[0]}"', str(big), str(run.model))
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.count("\n") == 1


# --- conll output ------------------------------------------------------------------------------


def read_conll_records(text: str) -> list[str]:
    """Characters of each record of ``--format conll`` output: ``CHAR TAG`` lines, each record
    ended by a blank line (an empty record is just the blank line)."""
    assert text == "" or text.endswith("\n\n")
    records, chars = [], []
    for line in text.split("\n")[:-1]:
        if line == "":
            records.append("".join(chars))
            chars = []
        else:
            char, tag = line.split(" ")
            assert char and tag
            chars.append(char)
    assert not chars  # no record without its blank line
    return records


def test_conll_output_gives_back_every_input_line(run: Run, tmp_path: Path) -> None:
    lines = ["我们在北京工作。", "", " ", "\t\u3000", "好", "长" * 95, "a\x1cb c\x85d",
             "e\u2028f", "😀𠀀", "", "ＡＢＣ 公司"]
    raw = tmp_path / "in.txt"
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for model in (run.model, run.ner):
        result = runner.invoke(app, ["predict", str(raw), "--model", str(model), "--format",
                                     "conll"])
        assert result.exit_code == 0, result.output
        # whitespace is a word boundary, not a character: what comes back is the rest
        assert read_conll_records(result.stdout) == ["".join(c for c in line if not c.isspace())
                                                     for line in lines]


# --- plot --------------------------------------------------------------------------------------


def test_plot_refuses_to_overwrite_needs_png_and_survives_a_torn_metrics_line(
        run: Run, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rundir = tmp_path / "run"
    rundir.mkdir()
    metrics = (run.dir / "metrics.jsonl").read_bytes()
    # a writer killed mid-line: half a record, cut inside a multi-byte character
    (rundir / "metrics.jsonl").write_bytes(metrics + metrics[:40] + "中".encode()[:2])
    result = runner.invoke(app, ["plot", str(rundir)])
    assert result.exit_code == 0, result.output
    png = rundir / "training.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    before = png.read_bytes()
    line = one_error_line(runner.invoke(app, ["plot", str(rundir)]))
    assert f"{png}: already exists; use --force" in line
    existing = tmp_path / "mine.png"
    existing.write_bytes(b"keep")
    line = one_error_line(runner.invoke(app, ["plot", str(rundir), "--output", str(existing)]))
    assert "already exists" in line and existing.read_bytes() == b"keep"
    line = one_error_line(runner.invoke(app, ["plot", str(rundir), "--output",
                                              str(tmp_path / "x.txt")]))
    assert "x.txt: the plot is a PNG image" in line
    assert png.read_bytes() == before
    result = runner.invoke(app, ["plot", str(rundir), "--output", str(existing), "--force"])
    assert result.exit_code == 0 and existing.read_bytes().startswith(b"\x89PNG")


# --- help --------------------------------------------------------------------------------------


def declared_help(callback: Callable[..., object]) -> list[str]:
    """The help texts written in a command's signature (``Annotated[..., typer.Option(help=)]``),
    as the source has them, whatever typer made of them."""
    import typing

    hints = typing.get_type_hints(getattr(callback, "__wrapped__", callback), include_extras=True)
    return [info.help for hint in hints.values() for info in getattr(hint, "__metadata__", ())
            if getattr(info, "help", None)]


def test_help_is_plain_and_keeps_square_brackets() -> None:
    """Rich markup ate ``[onnx]`` in ``pip install 'bmes_tagger[onnx]'`` and some typer
    versions print ``<bool>`` after boolean flags."""
    import re

    import typer.main

    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    assert set(commands) >= {"train", "predict", "eval", "convert", "info", "export", "plot"}
    seen = set()
    for argv in [[], *([name] for name in commands)]:
        result = runner.invoke(app, [*argv, "--help"], env={"COLUMNS": "100"})
        assert result.exit_code == 0, result.output
        text = result.stdout
        assert "<bool>" not in text and "\x1b[" not in text, (argv, text)
        assert "\\[" not in text, (argv, text)  # markup escapes printed as they are
        command = commands[argv[0]] if argv else group
        sources = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        flat = " ".join(text.split())
        helps = declared_help(command.callback) if argv else []
        assert helps or not argv
        for help in helps:
            # some typer/click pairs drop arguments' help; none may be lost
            assert " ".join(help.split()) in flat, (argv, help)
        for extra in re.findall(r"bmes_tagger\[\w+\]", " ".join(sources)):
            assert extra in text, (argv, extra, text)
            seen.add(extra)
        for flag in ("--force", "--resume", "--quantize", "--json", "--debug"):
            assert not re.search(rf"{flag}\s+(<|BOOLEAN|\[)", text), (argv, flag)
    assert seen == {"bmes_tagger[onnx]", "bmes_tagger[plot]", "bmes_tagger[vectors]",
                    "bmes_tagger[jieba]"}
