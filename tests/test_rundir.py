"""Run directories attacked: planted links, the user's own files under run-file names, inputs
stored in the run directory, a forced run that fails to start, nested folders a failed start
created, signals before training begins. Each case is what an outside tester did to the
README's promises ("nothing a user owns is replaced without --force", "a planted link cannot
make the tool write elsewhere", "a run that fails to start leaves nothing behind")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bmes_tagger.config import load_config
from bmes_tagger.errors import BmesTaggerError, RunDirError
from bmes_tagger.rundir import LOCK, MARKER, RUN_FILES
from bmes_tagger.train import train
from conftest import REPO, tiny_config

GBK = b"\xce\xd2\n"  # not UTF-8: the corpus reader refuses it after the run directory opened


def config(tmp_path: Path, *sets: str):  # noqa: ANN201
    return load_config(tiny_config(tmp_path), ["train.epochs=1", *sets])


def bad_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "gbk.txt"
    path.write_bytes(GBK)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_planted_lock_link_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (run / LOCK).symlink_to(victim)
    with pytest.raises(RunDirError, match="lock file.*symbolic link"):
        train(config(tmp_path), run, progress=False)
    assert victim.read_text() == "precious\n"
    # dangling: nothing is created where it points
    (run / LOCK).unlink()
    (run / LOCK).symlink_to(tmp_path / "newfile")
    with pytest.raises(RunDirError, match="lock file"):
        train(config(tmp_path), run, progress=False)
    assert not (tmp_path / "newfile").exists()


def test_a_hard_linked_lock_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.link(victim, run / LOCK)
    with pytest.raises(RunDirError, match="hard links"):
        train(config(tmp_path), run, progress=False)
    assert victim.read_text() == "precious\n"


def test_the_users_files_under_run_file_names_are_never_replaced_without_force(
        tmp_path: Path) -> None:
    """A folder that is not a run (no marker) keeps the user's config.yaml, train.log and
    metrics.jsonl: a failing start and a succeeding one alike; --force replaces them."""
    run = tmp_path / "notes"
    run.mkdir()
    mine = {"config.yaml": b"mine\n", "train.log": b"notes\n", "metrics.jsonl": b"{}\n"}
    for name, data in mine.items():
        (run / name).write_bytes(data)
    with pytest.raises(BmesTaggerError, match="not valid UTF-8"):
        train(config(tmp_path, f"data.train={bad_corpus(tmp_path)}"), run, force=True,
              progress=False)
    assert snapshot(run) == mine  # forced, but the run never started: nothing touched
    with pytest.raises(RunDirError, match="not files of a run of this tool.*--force"):
        train(config(tmp_path), run, progress=False)
    assert snapshot(run) == mine
    train(config(tmp_path), run, force=True, progress=False)
    assert (run / "best.pt").is_file() and (run / MARKER).is_file()
    assert (run / "config.yaml").read_bytes() != mine["config.yaml"]


def test_an_input_stored_under_a_run_file_name_is_never_deleted(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    corpus = (REPO / "data" / "sample-cws" / "train.txt").read_bytes()
    (run / "train.log").write_bytes(corpus)
    for force in (False, True):
        with pytest.raises(RunDirError, match="data.train is the run directory's train.log"):
            train(config(tmp_path, f"data.train={run / 'train.log'}"), run, force=force,
                  progress=False)
        assert (run / "train.log").read_bytes() == corpus
    # the dev set under metrics.jsonl of a finished run, through a link elsewhere
    done = tmp_path / "done"
    train(config(tmp_path), done, progress=False)
    dev = tmp_path / "dev.txt"
    dev.write_bytes((REPO / "data" / "sample-cws" / "dev.txt").read_bytes())
    with pytest.raises(RunDirError, match="data.dev is the run directory's config.yaml"):
        (done / "config.yaml").unlink()
        os.link(dev, done / "config.yaml")
        train(config(tmp_path, f"data.dev={dev}"), done, force=True, progress=False)
    assert dev.read_bytes() == (REPO / "data" / "sample-cws" / "dev.txt").read_bytes()


def test_a_forced_run_that_fails_to_start_keeps_the_old_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(config(tmp_path), run, progress=False)
    before = snapshot(run)
    with pytest.raises(BmesTaggerError, match="not valid UTF-8"):
        train(config(tmp_path, f"data.train={bad_corpus(tmp_path)}"), run, force=True,
              progress=False)
    assert snapshot(run) == before
    vectors = tmp_path / "bad.vec"
    vectors.write_text("我 1 2\n", encoding="utf-8")  # 2 values for a 16-wide embedding
    with pytest.raises(BmesTaggerError, match="expected 16 values"):
        train(config(tmp_path, f"model.char_vectors={vectors}"), run, force=True,
              progress=False)
    assert snapshot(run) == before


@pytest.mark.parametrize("name", ["metrics.jsonl", "train.log", "last.pt", "best.pt"])
def test_resume_never_writes_through_a_link_or_a_hard_link(tmp_path: Path, name: str) -> None:
    run = tmp_path / "run"
    train(config(tmp_path), run, progress=False)
    victim = tmp_path / "victim"
    victim.write_bytes((run / name).read_bytes())
    original = victim.read_bytes()
    for link in (os.symlink, os.link):
        (run / name).unlink()
        link(victim, run / name)
        with pytest.raises(RunDirError, match="link or not a plain file"):
            train(config(tmp_path, "train.epochs=2"), run, resume=True, progress=False)
        assert victim.read_bytes() == original


def test_a_failed_start_removes_every_folder_it_created(tmp_path: Path) -> None:
    with pytest.raises(BmesTaggerError, match="not valid UTF-8"):
        train(config(tmp_path, f"data.train={bad_corpus(tmp_path)}"),
              tmp_path / "nn" / "a" / "b", progress=False)
    assert not (tmp_path / "nn").exists()


def test_an_output_under_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirError, match="afile: exists and is not a directory"):
        train(config(tmp_path), tmp_path / "afile" / "sub", progress=False)


def test_the_run_files_are_known_to_the_marker_rule() -> None:
    assert MARKER not in RUN_FILES and LOCK not in RUN_FILES


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_reading_the_corpus_leaves_nothing(tmp_path: Path, signum: int) -> None:
    """Killed before training starts (the corpus is still being read from a FIFO that never
    ends): exit 128+N with a message, no run directory, no lock file left behind."""
    fifo = tmp_path / "train.fifo"
    os.mkfifo(fifo)
    run = tmp_path / "run"
    cfg = tiny_config(tmp_path)
    # the signal's default disposition in the child even when the test runs under nohup
    # (which ignores SIGHUP, and the tool rightly keeps an ignored signal ignored)
    proc = subprocess.Popen([sys.executable, "-m", "bmes_tagger", "train", str(cfg),
                             "--output", str(run), "--set", f"data.train={fifo}", "--quiet"],
                            stderr=subprocess.PIPE, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL))
    writer = os.open(fifo, os.O_WRONLY)  # blocks until the reader opened it
    try:
        os.write(writer, "我们 在 北京\n".encode())
        time.sleep(0.5)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(writer)
    assert proc.returncode == 128 + signum, err
    assert f"interrupted by {signal.Signals(signum).name}" in err.decode()
    assert not run.exists()


def test_a_signal_the_parent_ignores_stays_ignored_in_training(tmp_path: Path) -> None:
    """`nohup tagger train ...`: SIGHUP must not stop the run (the README's promise for every
    command); the run goes on to its last epoch and exits 0."""
    run = tmp_path / "run"
    cfg = tiny_config(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "bmes_tagger", "train", str(cfg),
                             "--output", str(run), "--set", "train.epochs=12", "--quiet"],
                            stderr=subprocess.PIPE, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the signal could be sent"
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "interrupted" not in err.decode()
    assert load_config(run / "config.yaml").train.epochs == 12
