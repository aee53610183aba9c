"""The torch-free command line as a deployment sees it: start-up, a whole file vs jieba's
command line, peak memory, install size.

    python benchmarks/deploy.py [--model CKPT] [--venv DIR] [--reps N] [--corpora PATH]

1. A deployment environment is made as the README says (``python -m venv`` and
   ``pip install '.[deploy]'`` of this checkout, not editable; reused when ``--venv`` already
   holds one); its size on disk is reported. torch is not in it.
2. ``--model`` (a CWS checkpoint; default ``runs/pku_tiny/best.pt``, else the one
   ``benchmarks/accuracy.py --only pku_tiny`` trained) is exported to ONNX, float32 and int8
   (``tagger export [--quantize]``, with this environment's torch).
3. Timed, each command a fresh process, the variants interleaved repeat after repeat (after
   one untimed warm-up run each, which also builds jieba's dictionary cache):
   - one line (``张三在北京大学工作。``) through ``tagger predict`` with each ONNX file in the
     deployment environment, and with the checkpoint in this environment (torch imported);
   - the whole SIGHAN 2005 PKU test input through ``tagger predict`` (int8 and fp32 ONNX, in the
     deployment environment) and through ``python -m jieba -q -d '  '`` (this environment's
     jieba, dictionary cache warm), outputs scored against the gold segmentation with
     ``bmes_tagger.metrics.cws_scores`` (the SIGHAN scorer's counting).
   Wall time, CPU time (user + system of the child, from ``wait4``) and peak RSS (the child's
   ``ru_maxrss``; the child is forked from a small launcher interpreter, whose own memory is
   the floor any figure can show: the ``python -c pass`` row) per run; the tables give the
   median (min-max).

Writes its section into benchmarks/RESULTS.md (``deploy`` markers) with the machine and date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from predict_memory import write_section  # noqa: E402
from speed import _lscpu  # noqa: E402

ONE_LINE = "张三在北京大学工作。\n"
TARGETS = {"one line": "<= 0.3 s wall", "file": ">= 1.0x jieba's command line at F1 >= 0.945",
           "rss": "<= 150 MB"}


@dataclass
class Runs:
    """Wall s, CPU s and peak RSS (MiB) of repeated runs of one command."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float, rss_kib: int) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)
        self.rss.append(rss_kib / 1024)


# Started by timed(): forks and execs the command, then writes its wall time and wait4
# usage to the descriptor it was given. A child's ru_maxrss is at least what its parent held
# when it forked (Linux keeps the high-water mark across exec), so the commands measured
# are forked from this small interpreter, not from the benchmark (which holds torch).
_LAUNCHER = """
import os, sys, time
fd = int(sys.argv[1])
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.close(fd)
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
os.write(fd, f"{wall} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}".encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def timed(argv: list[str], stdin: Path | None = None, stdout: Path | None = None,
          env: dict[str, str] | None = None, cwd: Path | None = None
          ) -> tuple[float, float, int]:
    """Run ``argv`` once (in ``cwd``); (wall s, user + system CPU s, peak RSS KiB) of that
    child alone."""
    read_end, write_end = os.pipe()
    try:
        with open(stdin or os.devnull, "rb") as fin, open(stdout or os.devnull, "wb") as fout:
            proc = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, str(write_end),
                                     *argv], stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                                    env=env, cwd=cwd, pass_fds=(write_end,))
            os.close(write_end)
            write_end = -1
            err = proc.communicate()[1]
        report = os.read(read_end, 200).decode().split()
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    if proc.returncode != 0 or len(report) != 3:
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}: "
                         f"{err.decode(errors='replace').strip()[-500:]}")
    return float(report[0]), float(report[1]), int(report[2])


def make_venv(venv: Path, log: callable) -> Path:
    """The deployment environment's python (made when ``venv`` has none)."""
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"making the deployment environment {venv} (pip install '.[deploy]')")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"{REPO}[deploy]"],
                       check=True)
    else:  # a reused environment gets this checkout's code (its dependencies stay)
        log(f"reusing {venv}; installing this checkout's package into it")
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                        "--force-reinstall", str(REPO)], check=True)
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; "
                            "print(u.find_spec('torch') is None)"],
                           check=True, capture_output=True, text=True)
    if probe.stdout.strip() != "True":
        raise SystemExit(f"{venv}: torch is installed there; give an empty --venv")
    return python


def du_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()
               ) / 2**20


def read_words(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]


def mid(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–" \
           f"{fmt.format(max(values))})"


def lscpu() -> str:
    """``lscpu``'s model and bf16 flags, as the speed benchmark reads them."""
    model, flags = _lscpu()
    return f"{model}; bf16 flags: {', '.join(flags or []) or 'none'}"


def default_model() -> Path | None:
    for p in (REPO / "runs" / "pku_tiny" / "best.pt",
              REPO / "runs" / "accuracy" / "pku_tiny-seed1" / "best.pt"):
        if p.exists():
            return p
    return None


def package_self_times(importtime: str) -> dict[str, float]:
    """Seconds of ``-X importtime`` output (its stderr) per top-level package, from each
    module's own time."""
    sums: dict[str, float] = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:"):].split("|"))
        package = name.split(".")[0]
        sums[package] = sums.get(package, 0.0) + int(self_us) / 1e6
    return sums


def import_profile(argv: list[str], env: dict[str, str], reps: int, cwd: Path | None = None
                   ) -> tuple[dict[str, list[float]], list[float]]:
    """Where a one-line command's start-up goes: ``-X importtime``'s *self* time of every
    module summed per top-level package (a partition of all import time, unlike the
    cumulative column, which charges numpy to whoever imported it first), per repeat; and
    each repeat's wall time."""
    per_package: dict[str, list[float]] = {}
    walls = []
    for _ in range(reps):
        t0 = time.perf_counter()
        done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, cwd=cwd,
                              capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - t0)
        for package, seconds in package_self_times(done.stderr).items():
            per_package.setdefault(package, []).append(seconds)
    # a package missing from a repeat imported nothing in it
    for seconds in per_package.values():
        seconds.extend([0.0] * (reps - len(seconds)))
    return per_package, walls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "bmes_deploy_venv")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = ap.parse_args()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    model = args.model or default_model()
    if model is None:
        raise SystemExit("no CWS model: give --model, or train one with "
                         "`tagger train configs/pku_tiny.yaml --output runs/pku_tiny`")
    model = model.resolve()  # the commands run in a folder of their own (see `work`)
    pku = args.corpora.resolve() / "sighan2005_pku"
    test, gold = pku / "pku_test.utf8", pku / "pku_test_gold.utf8"
    if not test.exists():
        raise SystemExit(f"{test}: not found (needs ../shared/corpora)")
    started = time.time()
    load0 = os.getloadavg()[0]
    python = make_venv(args.venv, log)
    tagger_venv = [str(python), "-m", "bmes_tagger"]
    here = [sys.executable, "-m", "bmes_tagger"]
    # Every command runs in this empty folder: `python -m` puts the current folder first on
    # the path, so from the checkout the deployment environment would import the checkout's
    # sources (compiled again at every start where bytecode is not written) instead of the
    # package installed there. This environment's commands get the checkout by PYTHONPATH.
    work = Path(tempfile.mkdtemp(prefix="bmes_deploy_"))
    here_env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    onnx = {"onnx fp32": work / "m.onnx", "onnx int8": work / "m.int8.onnx"}
    subprocess.run([*here, "export", str(model), "--output", str(onnx["onnx fp32"])],
                   check=True, capture_output=True, env=here_env, cwd=work)
    subprocess.run([*here, "export", str(model), "--quantize", "--output",
                    str(onnx["onnx int8"])], check=True, capture_output=True, env=here_env,
                   cwd=work)
    one = work / "one.txt"
    one.write_text(ONE_LINE, encoding="utf-8")
    # the deployment environment must not see this checkout's sources or site-packages
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    imported = subprocess.run([str(python), "-c", "import bmes_tagger; print(bmes_tagger"
                               ".__file__)"], env=env, cwd=work, capture_output=True,
                              text=True, check=True).stdout.strip()
    if not Path(imported).resolve().is_relative_to(args.venv.resolve()):
        raise SystemExit(f"the deployment environment imports {imported}, not its own package")

    one_line: dict[str, tuple[list[str], dict[str, str] | None]] = {
        f"deploy env, {k}": ([*tagger_venv, "predict", str(one), "--model", str(p)], env)
        for k, p in onnx.items()}
    one_line["this env (torch), checkpoint"] = ([*here, "predict", str(one), "--model",
                                                 str(model)], here_env)
    one_line["`python -c pass` (deploy env's interpreter)"] = ([str(python), "-c", "pass"], env)
    outputs = {k: work / f"{k.replace(' ', '_')}.txt" for k in onnx}
    whole: dict[str, tuple[list[str], dict[str, str] | None, Path]] = {
        f"tagger predict, {k}": ([*tagger_venv, "predict", str(test), "--model", str(p)], env,
                                 outputs[k]) for k, p in onnx.items()}
    whole["jieba `python -m jieba -q -d '  '`"] = (
        [sys.executable, "-m", "jieba", "-q", "-d", "  ", str(test)], None, work / "jieba.txt")

    log("warm-up (untimed)")
    for argv, e in one_line.values():
        timed(argv, env=e, cwd=work)
    for argv, e, out in whole.values():
        timed(argv, stdout=out, env=e, cwd=work)
    from bmes_tagger.corpus import read_word_list
    from bmes_tagger.metrics import cws_scores

    gold_words = read_words(gold)
    train_words = read_word_list(pku / "pku_training_words.utf8")
    scores = {k: cws_scores(gold_words, read_words(out), train_words)
              for k, (_, _, out) in whole.items()}
    results_one = {k: Runs() for k in one_line}
    results_whole = {k: Runs() for k in whole}
    loads = [load0]
    for rep in range(args.reps):
        log(f"repeat {rep + 1}/{args.reps}")
        for k, (argv, e) in one_line.items():
            results_one[k].add(*timed(argv, env=e, cwd=work))
        for k, (argv, e, out) in whole.items():
            results_whole[k].add(*timed(argv, stdout=out, env=e, cwd=work))
        loads.append(os.getloadavg()[0])

    log("import profile of the one-line command (int8)")
    profile_argv = one_line["deploy env, onnx int8"][0]
    imports, profile_walls = import_profile(profile_argv, env, args.reps, cwd=work)
    start_up = statistics.median(results_one["`python -c pass` (deploy env's interpreter)"].wall)

    chars = sum(len(line.replace(" ", "")) for line in test.read_text(encoding="utf-8")
                .splitlines())
    lines = len(test.read_text(encoding="utf-8").splitlines())
    jieba_key = next(k for k in whole if k.startswith("jieba"))
    jieba_wall = statistics.median(results_whole[jieba_key].wall)
    jieba_cpu = statistics.median(results_whole[jieba_key].cpu)
    now = datetime.datetime.now(datetime.timezone.utc)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    w: list[str] = []
    w.append("## Deployment: the torch-free command line (`python benchmarks/deploy.py`)")
    w.append("")
    w.append(f"Measured {now:%Y-%m-%d %H:%M} UTC on {lscpu()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}; code: commit {commit}; whole run "
             f"{(time.time() - started) / 60:.1f} min. 1-minute load average "
             f"{min(loads):.1f}–{max(loads):.1f} during the run (2 cores; above ~1 the wall "
             "times are lower bounds of what an idle machine gives; the CPU times are much "
             "less disturbed).")
    w.append("")
    w.append(f"Deployment environment: `python -m venv` + `pip install '.[deploy]'` of this "
             f"checkout: {du_mib(args.venv):.0f} MiB on disk, no torch. Model: `{model}` "
             f"exported with `tagger export` (fp32: {onnx['onnx fp32'].stat().st_size / 2**20:.1f}"
             f" MiB, `--quantize` int8: {onnx['onnx int8'].stat().st_size / 2**20:.1f} MiB). "
             f"Each command is a fresh process; variants interleaved, {args.reps} repeats after "
             "an untimed warm-up; median (min–max).")
    w.append("")
    w.append(f"**One line** (`{ONE_LINE.strip()}`) through `tagger predict FILE --model M` "
             f"(target {TARGETS['one line']}, peak RSS {TARGETS['rss']}):")
    w.append("")
    w.append("| what | wall s | CPU s | peak RSS MiB |")
    w.append("|---|---:|---:|---:|")
    for k, r in results_one.items():
        w.append(f"| {k} | {mid(r.wall, '{:.3f}')} | {mid(r.cpu, '{:.3f}')} | "
                 f"{mid(r.rss, '{:.0f}')} |")
    w.append("")
    total_imports = [sum(v[i] for v in imports.values()) for i in range(args.reps)]
    wall = statistics.median(profile_walls)
    w.append("Where the one-line time goes (deploy env, onnx int8, run again under `python -X "
             f"importtime`, which adds its own overhead: median wall {wall:.3f} s over "
             f"{args.reps} runs). Import time is each module's own (self) time summed per "
             "top-level package; the rest is the interpreter's start (`python -c pass`) and "
             "what the command does after its imports (reading the model, building the "
             "onnxruntime session, predicting, writing, exiting):")
    w.append("")
    w.append("| part | s (median) | share of wall |")
    w.append("|---|---:|---:|")
    ranked = sorted(imports.items(), key=lambda kv: -statistics.median(kv[1]))
    shown = [(k, v) for k, v in ranked if statistics.median(v) >= 0.005]
    rest = [sum(v[i] for k, v in ranked if (k, v) not in shown) for i in range(args.reps)]
    for k, v in shown:
        w.append(f"| import `{k}` | {statistics.median(v):.3f} | "
                 f"{statistics.median(v) / wall:.0%} |")
    w.append(f"| import, every other package (each < 5 ms) | {statistics.median(rest):.3f} | "
             f"{statistics.median(rest) / wall:.0%} |")
    w.append(f"| interpreter start (`python -c pass`) | {start_up:.3f} | {start_up / wall:.0%} |")
    after = wall - statistics.median(total_imports) - start_up
    w.append(f"| after the imports (model, session, predict, exit) | {after:.3f} | "
             f"{after / wall:.0%} |")
    w.append("")
    w.append(f"**The whole SIGHAN 2005 PKU test input** ({lines:,} lines, {chars:,} characters) "
             f"to a file, start-up included (target {TARGETS['file']}); F1 and OOV recall "
             "against `pku_test_gold.utf8` (OOV: the official PKU training word list):")
    w.append("")
    w.append("| what | wall s | CPU s | chars/s wall | vs jieba, wall | vs jieba, CPU | "
             "peak RSS MiB | F1 | OOV recall |")
    w.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, r in results_whole.items():
        s = scores[k]
        wall, cpu = statistics.median(r.wall), statistics.median(r.cpu)
        w.append(f"| {k} | {mid(r.wall, '{:.2f}')} | {mid(r.cpu, '{:.2f}')} | "
                 f"{chars / wall:,.0f} | {jieba_wall / wall:.2f}x | {jieba_cpu / cpu:.2f}x | "
                 f"{mid(r.rss, '{:.0f}')} | {s.f1:.4f} | "
                 f"{s.oov_recall if s.oov_recall is not None else float('nan'):.4f} |")
    w.append("")
    body = "\n".join(w)
    write_section(args.results, "deploy", body)
    print(body)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
