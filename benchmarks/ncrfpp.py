"""NCRF++ (the peer in ``../shared/peers``) run from outside, epoch by epoch, with its CPU time.

    python benchmarks/ncrfpp.py [--epochs N] [--batch-size B] [--peers DIR] [--corpora DIR]
                                [--show-output] [--json]

Copies ``PEERS/NCRFpp`` to a temporary folder (the peers folder may be read-only and NCRF++ is
run unmodified), fills ``PEERS/ncrfpp-resume.config.tmpl`` (``${CORPORA}``, ``MODELDIR``,
``ITER``; ``batch_size`` only when ``--batch-size`` differs from the template's), and runs
``OMP_NUM_THREADS=1 python main.py --config FILE`` there with unbuffered output, reading its
stdout as it is printed. For each epoch it returns:

- ``wall_s``: NCRF++'s own printed training time (``Epoch: k training finished. Time: ...``),
  minus the time this wrapper kept it stopped in that epoch (see ``on_epoch_start`` below).
- ``cpu_s``: CPU seconds (user + system, all threads) of the NCRF++ process over the same span,
  read from ``/proc/<pid>/stat`` (utime + stime) when the ``Epoch: k/N`` line appears (the
  process is stopped at that moment, so the reading is exact up to the tick) and again when the
  ``training finished`` line appears. Accuracy: utime/stime count clock ticks
  (``getconf CLK_TCK``, 100 per second here), so each reading is rounded down by up to 10 ms
  (+-10 ms per epoch of ~30 s: ~0.03%); the second reading comes the moment we read the line,
  so it also includes the little the process did after printing it (typically well under
  1 ms; more when this machine deschedules us). ``cpu_clock_s`` is the same span read from the
  process's CPU clock (``clock_getcpuclockid``, nanoseconds) as a cross-check.
- characters per wall second and per CPU second (``chars``: the characters of the training
  sentences NCRF++ keeps, i.e. shorter than its printed MAX SENTENCE LENGTH).
- dev and test P/R/F1 as NCRF++ prints them, with decoding times: ``decode_s`` =
  sentences / NCRF++'s printed speed (its own timer around batching, forward, Viterbi and
  label recovery; scoring excluded), and for dev ``cpu_s``, the CPU seconds between the
  ``training finished`` and ``Dev:`` lines (decoding plus its F1 computation).

``on_epoch_start(k)``, if given, is called at each ``Epoch: k/N`` line while NCRF++ is stopped
(SIGSTOP; SIGCONT afterwards): a benchmark runs its own measurements there, alternating with
NCRF++'s epochs, so machine load hits both alike and neither competes with the other for a
core. The stop falls inside epoch k (after its start time is taken), so NCRF++'s printed time
includes it; ``wall_s`` subtracts it (``paused_s``, measured from the SIGSTOP to the SIGCONT;
the process may run on for a few microseconds after the SIGSTOP, so this over-subtracts by at
most ``stop_latency_s``, also recorded). CPU time does not advance while it is stopped.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PEERS = REPO.parent / "shared" / "peers"
DEFAULT_CORPORA = Path(os.environ.get("BMES_CORPORA", str(REPO.parent / "shared" / "corpora")))
TEMPLATE = "ncrfpp-resume.config.tmpl"

_START = re.compile(r"^Epoch: (\d+)/(\d+)\s*$")
_FINISHED = re.compile(r"^Epoch: (\d+) training finished\. Time: ([\d.]+)s, speed: ([\d.]+)st/s")
_EVAL = re.compile(r"^(Dev|Test): time: ([\d.]+)s,? speed: ([\d.]+)st/s; acc: ([-\d.]+), "
                   r"p: ([-\d.]+), r: ([-\d.]+), f: ([-\d.]+)")
_MAX_LEN = re.compile(r"MAX SENTENCE LENGTH: (\d+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class NCRFppError(RuntimeError):
    """NCRF++ failed (non-zero exit, loss explosion, output we cannot read)."""


@dataclass
class Eval:
    """One of NCRF++'s ``Dev:`` / ``Test:`` lines."""

    f1: float
    precision: float
    recall: float
    acc: float
    printed_s: float        # its printed "time": evaluation and scoring
    speed: float            # its printed speed, sentences/s of decoding (scoring excluded)
    sentences: int
    chars: int
    cpu_s: float | None = None  # dev only: CPU seconds from "training finished" to "Dev:"

    @property
    def decode_s(self) -> float:
        return self.sentences / self.speed if self.speed else float("nan")

    @property
    def chars_per_s(self) -> float:
        """Decoding characters per wall second, from NCRF++'s own timer."""
        return self.chars / self.decode_s

    @property
    def chars_per_cpu_s(self) -> float | None:
        return self.chars / self.cpu_s if self.cpu_s else None


@dataclass
class Epoch:
    """One NCRF++ training epoch (``index`` as NCRF++ prints it: 0-based)."""

    index: int
    printed_s: float        # NCRF++'s printed training time
    paused_s: float         # time we kept it stopped inside this epoch
    stop_latency_s: float   # SIGSTOP sent -> process seen stopped (bound on the error above)
    cpu_s: float            # /proc/<pid>/stat utime + stime over the epoch
    cpu_clock_s: float | None  # the same from the process CPU clock (ns), if readable
    chars: int
    dev: Eval | None = None
    test: Eval | None = None

    @property
    def wall_s(self) -> float:
        return self.printed_s - self.paused_s

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.wall_s

    @property
    def chars_per_cpu_s(self) -> float:
        return self.chars / self.cpu_s


@dataclass
class Result:
    """A whole NCRF++ run."""

    epochs: list[Epoch] = field(default_factory=list)
    command: str = ""
    batch_size: int = 10
    train_sentences: int = 0
    train_chars: int = 0
    setup_s: float = 0.0    # start of the process -> first epoch line (reading the data)
    total_s: float = 0.0
    log: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("log")
        for e, raw in zip(self.epochs, out["epochs"]):
            raw.update(wall_s=e.wall_s, chars_per_s=e.chars_per_s,
                       chars_per_cpu_s=e.chars_per_cpu_s)
        return out


def missing(peers: Path) -> str | None:
    """Why NCRF++ cannot be run from ``peers`` (None if it can)."""
    if not (peers / "NCRFpp" / "main.py").is_file():
        return f"NCRF++ not found: no {peers / 'NCRFpp' / 'main.py'} (see shared/peers/README.md)"
    if not (peers / TEMPLATE).is_file():
        return f"NCRF++ not run: no configuration template {peers / TEMPLATE}"
    return None


def corpus_counts(path: Path, max_len: int | None) -> tuple[int, int]:
    """(sentences, characters) of a one-character-per-line BMES file, keeping only the
    sentences NCRF++ reads: non-empty and shorter than ``max_len`` (its MAX_SENTENCE_LENGTH)."""
    sentences = chars = n = 0
    with path.open(encoding="utf-8") as f:
        for line in [*f, "\n"]:
            if line.strip():
                n += 1
                continue
            if n and (max_len is None or n < max_len):
                sentences += 1
                chars += n
            n = 0
    return sentences, chars


def proc_cpu_s(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _cpu_clock(pid: int) -> Callable[[], float | None]:
    """A reader of ``pid``'s CPU clock (nanosecond resolution), or one returning None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        clock = ctypes.c_int()
        if libc.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
            raise OSError
        time.clock_gettime(clock.value)
    except (OSError, AttributeError, TypeError):
        return lambda: None

    def read() -> float | None:
        try:
            return time.clock_gettime(clock.value)
        except OSError:
            return None
    return read


def _stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "Tt"
    except OSError:
        return True


def write_config(peers: Path, corpora: Path, workdir: Path, epochs: int,
                 batch_size: int | None = None) -> Path:
    """Fill the template into ``workdir/resume.config`` (models go to ``workdir/model``)."""
    text = (peers / TEMPLATE).read_text(encoding="utf-8")
    text = (text.replace("${CORPORA}", str(corpora)).replace("MODELDIR", str(workdir / "model"))
            .replace("ITER", str(epochs)))
    if batch_size is not None:
        text, n = re.subn(r"(?m)^batch_size=\d+$", f"batch_size={batch_size}", text)
        if n != 1:
            raise NCRFppError(f"{peers / TEMPLATE}: no single batch_size= line to change")
    path = workdir / "resume.config"
    path.write_text(text, encoding="utf-8")
    return path


def template_batch_size(peers: Path) -> int:
    m = re.search(r"(?m)^batch_size=(\d+)$", (peers / TEMPLATE).read_text(encoding="utf-8"))
    return int(m.group(1)) if m else 10


def run(epochs: int, peers: Path = DEFAULT_PEERS, corpora: Path = DEFAULT_CORPORA,
        batch_size: int | None = None,
        on_epoch_start: Callable[[int], None] | None = None,
        on_line: Callable[[str], None] | None = None,
        python: str = sys.executable) -> Result:
    """Run NCRF++ for ``epochs`` epochs on Resume NER; see the module docstring."""
    reason = missing(peers)
    if reason:
        raise FileNotFoundError(reason)
    corpora = Path(corpora).resolve()
    result = Result(batch_size=batch_size or template_batch_size(peers))
    work = Path(tempfile.mkdtemp(prefix="bmes_ncrfpp_"))
    try:
        shutil.copytree(peers / "NCRFpp", work / "ncrf")
        config = write_config(peers, corpora, work, epochs,
                              batch_size if batch_size != template_batch_size(peers) else None)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "PYTHONUNBUFFERED": "1"}
        cmd = [python, "main.py", "--config", str(config)]
        result.command = f"OMP_NUM_THREADS=1 python main.py --config resume.config (ITER={epochs}" \
            f", batch_size={result.batch_size})"
        _drive(cmd, work / "ncrf", env, corpora, result, on_epoch_start, on_line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _drive(cmd: list[str], cwd: Path, env: dict[str, str], corpora: Path, result: Result,
           on_epoch_start: Callable[[int], None] | None,
           on_line: Callable[[str], None] | None) -> None:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                            errors="replace")
    assert proc.stdout is not None
    clock = _cpu_clock(proc.pid)
    max_len: int | None = None
    counts: dict[str, tuple[int, int]] = {}
    current: dict[str, Any] = {}
    finished_at: tuple[float, float | None] | None = None
    try:
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            result.log.append(line)
            if on_line is not None:
                on_line(line)
            if m := _MAX_LEN.search(line):
                max_len = int(m.group(1))
            elif m := _START.match(line):
                # Stop it first: the CPU reading is then exactly the epoch's start.
                t_kill = time.perf_counter()
                os.kill(proc.pid, signal.SIGSTOP)
                while not _stopped(proc.pid) and time.perf_counter() - t_kill < 1.0:
                    time.sleep(0)
                t_stopped = time.perf_counter()
                if not result.epochs and not current:
                    result.setup_s = t_kill - t0
                    for name in ("train", "dev", "test"):
                        counts[name] = corpus_counts(
                            corpora / "resume_ner" / f"{name}.char.bmes", max_len)
                    result.train_sentences, result.train_chars = counts["train"]
                current = {"index": int(m.group(1)), "cpu0": proc_cpu_s(proc.pid),
                           "clock0": clock(), "stop_latency": t_stopped - t_kill}
                try:
                    if on_epoch_start is not None:
                        on_epoch_start(current["index"])
                finally:
                    current["paused"] = time.perf_counter() - t_kill
                    os.kill(proc.pid, signal.SIGCONT)
            elif m := _FINISHED.match(line):
                cpu1, clock1 = proc_cpu_s(proc.pid), clock()
                if not current or int(m.group(1)) != current["index"]:
                    raise NCRFppError(f"unexpected line (no epoch start seen): {line}")
                c0 = current["clock0"]
                result.epochs.append(Epoch(
                    index=current["index"], printed_s=float(m.group(2)),
                    paused_s=current["paused"], stop_latency_s=current["stop_latency"],
                    cpu_s=cpu1 - current["cpu0"],
                    cpu_clock_s=clock1 - c0 if clock1 is not None and c0 is not None else None,
                    chars=result.train_chars))
                finished_at = (cpu1, clock1)
                current = {}
            elif m := _EVAL.match(line):
                if not result.epochs:
                    raise NCRFppError(f"unexpected line (no epoch finished): {line}")
                name = m.group(1)
                sentences, chars = counts[name.lower()]
                ev = Eval(f1=float(m.group(7)), precision=float(m.group(5)),
                          recall=float(m.group(6)), acc=float(m.group(4)),
                          printed_s=float(m.group(2)), speed=float(m.group(3)),
                          sentences=sentences, chars=chars)
                epoch = result.epochs[-1]
                if name == "Dev":
                    if finished_at is not None:
                        ev.cpu_s = proc_cpu_s(proc.pid) - finished_at[0]
                    epoch.dev = ev
                else:
                    epoch.test = ev
            elif "LOSS EXPLOSION" in line:
                raise NCRFppError(line)
        rc = proc.wait()
    except BaseException:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()
        raise
    result.total_s = time.perf_counter() - t0
    if rc != 0:
        tail = "\n".join(result.log[-15:])
        raise NCRFppError(f"NCRF++ exited with status {rc}; its last lines:\n{tail}")
    if not result.epochs:
        raise NCRFppError("NCRF++ printed no finished epoch; its last lines:\n"
                          + "\n".join(result.log[-15:]))


def table(result: Result) -> str:
    """Markdown table of a run's epochs."""
    lines = [
        "| epoch | wall s (printed - paused) | CPU s (/proc) | CPU s (clock) | chars/s | "
        "chars per CPU-s | dev F1 | test F1 | dev decode chars/s (CPU-s) | test decode chars/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for e in result.epochs:
        clock = f"{e.cpu_clock_s:.3f}" if e.cpu_clock_s is not None else "-"
        dev = test = dec = tdec = "-"
        if e.dev is not None:
            dev = f"{e.dev.f1:.4f}"
            per_cpu = e.dev.chars_per_cpu_s
            dec = f"{e.dev.chars_per_s:,.0f}" + (f" ({per_cpu:,.0f})" if per_cpu else "")
        if e.test is not None:
            test, tdec = f"{e.test.f1:.4f}", f"{e.test.chars_per_s:,.0f}"
        lines.append(f"| {e.index + 1} | {e.wall_s:.2f} ({e.printed_s:.2f} - {e.paused_s:.3f}) "
                     f"| {e.cpu_s:.2f} | {clock} | {e.chars_per_s:,.0f} | "
                     f"{e.chars_per_cpu_s:,.0f} | {dev} | {test} | {dec} | {tdec} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, help="NCRF++'s batch_size (default: the "
                        "template's, 10)")
    parser.add_argument("--peers", default=str(DEFAULT_PEERS))
    parser.add_argument("--corpora", default=str(DEFAULT_CORPORA))
    parser.add_argument("--show-output", action="store_true", help="echo NCRF++'s stdout")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    peers = Path(args.peers)
    reason = missing(peers)
    if reason:
        print(f"skipped: {reason}", file=sys.stderr)
        return 0

    def echo(line: str) -> None:
        print(f"  ncrf++| {line}", file=sys.stderr, flush=True)

    result = run(args.epochs, peers, Path(args.corpora), args.batch_size,
                 on_line=echo if args.show_output else None)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    print(f"NCRF++ on Resume NER, {result.command}: {result.train_sentences:,} training "
          f"sentences, {result.train_chars:,} chars; data loading {result.setup_s:.1f} s, "
          f"whole run {result.total_s:.1f} s; load average {os.getloadavg()[0]:.2f}")
    print()
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
