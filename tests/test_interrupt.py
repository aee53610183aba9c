"""Interrupted training: a real SIGKILL or SIGINT mid-run, then --resume, ends exactly where an
uninterrupted run with the same seed ends."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tiny_config

pytestmark = pytest.mark.slow

# An epoch of the tiny sample takes ~0.1 s, so a run long enough to be interrupted mid-way
# (signals land 0.2-0.3 s after the first evaluation) needs many epochs.
NUM_EPOCHS = 25
EPOCHS = ["--set", f"train.epochs={NUM_EPOCHS}", "--set", "train.patience=0",
          "--set", "model.hidden_size=32", "--quiet"]


def start(config: Path, run: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bmes_tagger", "train", str(config), "--output", str(run),
         *EPOCHS, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def records(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def wait_for_evaluations(run: Path, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while len(records(run)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("ref")
    proc = start(tiny_config(tmp), tmp / "run")
    assert proc.wait(timeout=300) == 0, proc.communicate()
    return records(tmp / "run")


def same_run(a: list[dict], b: list[dict]) -> None:
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == list(range(1, NUM_EPOCHS + 1))
    for x, y in zip(a, b):
        assert x["dev"]["f1"] == pytest.approx(y["dev"]["f1"], abs=1e-6)
        assert x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-6)


def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path, reference: list[dict]) -> None:
    config, run = tiny_config(tmp_path), tmp_path / "run"
    proc = start(config, run)
    wait_for_evaluations(run, 1, proc)
    time.sleep(0.3)  # into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # SIGKILL cannot be caught: if it lands mid-save a temporary is left behind (never a torn
    # last.pt); the resumed run must sweep it away.
    assert (run / ".lock").exists()  # left by the killed process: stale, must be taken over
    resumed = start(config, run, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    same_run(records(run), reference)
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_or_sigterm_saves_and_resume_matches(tmp_path: Path, reference: list[dict],
                                                    signum: int) -> None:
    config, run = tiny_config(tmp_path), tmp_path / "run"
    proc = start(config, run)
    wait_for_evaluations(run, 1, proc)
    time.sleep(0.2)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    if len(records(run)) == NUM_EPOCHS and "--resume" not in err:
        # finished before the signal landed (exit 0, or -signal if it hit interpreter
        # shutdown): nothing to test
        pytest.skip("training finished before the signal arrived")
    assert proc.returncode == 128 + signum
    # one message, naming the real config and run directory
    assert err.count("\n") == 1, err
    assert f"tagger train {config} --output {run} " in err and "Traceback" not in err
    assert err.rstrip().endswith("--resume"), err
    assert " --quiet --resume" in err, err  # the run was started --quiet (an outside tester)
    assert (run / "last.pt").exists() and not (run / ".lock").exists()
    resumed = start(config, run, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    same_run(records(run), reference)


def test_sigterm_during_the_refit_saves_refit_last_and_resume_matches(tmp_path: Path) -> None:
    """train.refit: SIGTERM in the refit phase saves refit-last.pt and says how to resume;
    the resumed run writes the refit.pt of an uninterrupted one."""
    import torch

    config = tiny_config(tmp_path)
    refit = ["--set", "train.refit=true"]
    straight = start(config, tmp_path / "straight", *refit)
    assert straight.wait(timeout=300) == 0, straight.communicate()
    run = tmp_path / "run"
    proc = start(config, run, *refit)
    deadline = time.monotonic() + 120
    while "refit epoch 1/" not in ((run / "train.log").read_text()
                                   if (run / "train.log").exists() else ""):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the refit made no progress"
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    if (run / "refit.pt").exists():
        pytest.skip("the refit finished before the signal arrived")
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.count("\n") == 1, err
    assert f"saved {run / 'refit-last.pt'}; resume with: tagger train {config} --output {run} " \
           "--set" in err
    # the printed command itself resumes it: with the --set options of the run (without
    # them the config alone would train no refit, an outside tester found)
    hint = shlex.split(err.split("resume with: ", 1)[1])
    assert hint[-1] == "--resume" and "train.refit=true" in hint
    resumed = subprocess.Popen([sys.executable, "-m", "bmes_tagger", *hint[1:]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "refit on train + dev for" in out
    a, b = (torch.load(d / "refit.pt", weights_only=True)["model"]
            for d in (tmp_path / "straight", run))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (run / "refit-last.pt").exists()


def test_two_ctrl_c_in_a_row_end_predict_with_one_line(tmp_path: Path) -> None:
    """An outside tester: two SIGINTs a few ms apart printed a traceback from a finalizer
    (the second one interrupted the cleanup, or the interpreter's shutdown)."""
    config = tiny_config(tmp_path)
    trained = start(config, tmp_path / "run")
    assert trained.wait(timeout=300) == 0, trained.communicate()
    big = tmp_path / "big.txt"
    big.write_text("我们在北京工作，今天的天气很好。\n" * 100_000, encoding="utf-8")
    out = tmp_path / "out.txt"
    interrupted = 0
    for gap in (0.0, 0.005, 0.02):
        proc = subprocess.Popen(
            [sys.executable, "-m", "bmes_tagger", "predict", str(big), "--model",
             str(tmp_path / "run" / "best.pt"), "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"})
        # mid-write, whatever the machine's speed: once the output's temporary exists
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".out.txt.*.tmp")) and proc.poll() is None:
            assert time.monotonic() < deadline, "predict never started writing"
            time.sleep(0.01)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            out.unlink()  # it finished first: nothing to check on this machine
            continue
        assert proc.returncode == 130, err
        assert err == "interrupted\n", err
        assert not out.exists()
        interrupted += 1
    assert interrupted, "every predict finished before its Ctrl-C: nothing was tested"


def _main_with(tmp_path: Path, patch: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``tagger ARGV`` in a fresh interpreter through the real entry point (``main``),
    after PATCH, so that a Ctrl-C lands at a chosen place rather than at a chosen time. As a
    module (``-m``), as ``python -m bmes_tagger`` runs: only that path ends by SIGINT."""
    script = "\n".join(["import sys", "from bmes_tagger import cli", patch,
                        f"sys.argv = ['tagger', *{list(argv)!r}]", "cli.main()"])
    (tmp_path / "probe_entry.py").write_text(script, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "probe_entry"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)


def test_a_ctrl_c_inside_generated_code_still_ends_with_130(tmp_path: Path) -> None:
    """CI: two Ctrl-C during predict ended the process by SIGINT (-2) after it had printed
    'interrupted'. CPython remembers a KeyboardInterrupt that left code run by exec() of a
    string (what namedtuple and dataclass do on import) and kills the process with SIGINT at
    exit, even though our handler caught it."""
    config = tiny_config(tmp_path)
    # tqdm imported beforehand, as predict has by then: its import runs generated code too,
    # which would clear the flag by chance
    patch = ("import tqdm\n"
             "import bmes_tagger.config as c\n"
             "def boom(*args, **kwargs):\n"
             "    exec('raise KeyboardInterrupt')\n"
             "c.load_config = boom")
    done = _main_with(tmp_path, patch, "debug-data", str(config))
    assert (done.returncode, done.stderr) == (130, "interrupted\n")


def test_a_ctrl_c_before_the_commands_handlers_says_interrupted(tmp_path: Path) -> None:
    """While a command still imports, typer turns Ctrl-C into a silent exit 130; the
    entry point says what happened, as it does later."""
    patch = ("def boom(*args, **kwargs):\n"
             "    raise KeyboardInterrupt\n"
             "cli._shard_of = boom")
    (tmp_path / "in.txt").write_text("我们\n", encoding="utf-8")
    done = _main_with(tmp_path, patch, "predict", str(tmp_path / "in.txt"), "--model",
                      str(tmp_path / "missing.pt"))
    assert (done.returncode, done.stderr) == (130, "interrupted\n")


SLOW_START = """\
import importlib.abc, sys, time
class Slow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "bmes_tagger.cli":  # the command line, typer and all, is being imported
            print("importing", flush=True)
            time.sleep(60)
        return None
sys.meta_path.insert(0, Slow())
sys.argv = ["tagger", "--help"]
from bmes_tagger.entry import main
main()
"""


@pytest.mark.parametrize(("signum", "code", "said"), [
    (signal.SIGINT, 130, "interrupted\n"),
    (signal.SIGTERM, 143, "interrupted by SIGTERM\n"),
    (signal.SIGHUP, 129, "interrupted by SIGHUP\n")], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_while_the_command_line_imports_is_one_line(
        tmp_path: Path, signum: int, code: int, said: str) -> None:
    """An outside tester: Ctrl-C in the first ~0.1-0.3 s of any command printed a
    KeyboardInterrupt traceback, and SIGTERM there killed it without a word."""
    (tmp_path / "slow_start.py").write_text(SLOW_START, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "slow_start"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "importing\n"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, err) == (code, said)


def test_an_import_a_ctrl_c_broke_is_an_interrupt_not_a_missing_extra() -> None:
    """An outside tester: Ctrl-C (or SIGTERM, whose start-up handler raises SystemExit)
    during `tagger export` / a torch-free predict said 'ONNX support needs the onnx extra
    (None is missing)': a pybind11 module interrupted while it initialises raises
    ImportError('initialization failed') from what the signal raised."""
    from bmes_tagger.errors import BmesTaggerError, import_failure, interruption

    for signal_raised in (KeyboardInterrupt(), SystemExit(143)):
        try:
            try:
                raise signal_raised
            except BaseException as cause:
                raise ImportError("initialization failed") from cause
        except ImportError as exc:
            broken = exc
        assert interruption(broken) is signal_raised
        assert import_failure(broken, "install it") is signal_raised
    missing = ImportError("No module named 'onnx'", name="onnx")
    assert interruption(missing) is None
    failure = import_failure(missing, "install it")
    assert isinstance(failure, BmesTaggerError) and str(failure) == "install it"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_after_the_command_is_dropped(tmp_path: Path, signum: int) -> None:
    """An outside tester: SIGTERM or SIGHUP right after a command's output (tagger info)
    ended it silently (-15, once the interpreter had put the default handler back) or
    printed 'interrupted' and a traceback from an atexit callback with exit 0."""
    patch = ("import atexit, os, signal, time\n"
             f"atexit.register(lambda: (os.kill(os.getpid(), {int(signum)}), time.sleep(0.2)))")
    done = _main_with(tmp_path, patch, "--help")
    assert (done.returncode, done.stderr) == (0, "")
    assert "Usage: tagger" in done.stdout
