"""Learning rates for the time-to-accuracy runs of ``benchmarks/speed.py``, picked on dev F1.

    python benchmarks/tta_lr.py [--corpora PATH] [--epochs N] [--output FILE]

For each batch size and learning rate of :data:`GRID`, our training loop at NCRF++'s size
(``configs/resume_ncrfpp.yaml`` with ``--set`` overrides: the run ``speed.py`` times, its
``OurRun``) trains ``--epochs`` epochs (default 8, NCRF++'s budget there), and the dev and test
F1 after each epoch are recorded. The pick for a batch size is the learning rate with the
highest mean dev F1 over those epochs (how early and how well it learns, on data the
time-to-accuracy measure never scores); test F1 is shown, never used to choose. Everything is
seeded (``train.seed`` 1), so a rerun on the same CPU gives the same F1s.

Writes its section of ``benchmarks/RESULTS.md`` (``tta-lr`` markers) with the machine and date;
``speed.py``'s ``_BATCHES`` holds the picks.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from predict_memory import write_section  # noqa: E402
from speed import OurRun, _code_version, _lscpu  # noqa: E402

from bmes_tagger.evaluate import evaluate  # noqa: E402

# batch size -> learning rates tried (Adam; the config's 0.002 at batch 10, and the rates
# speed.py used before this sweep: 0.003 at 32, 0.004 at 64), each grid reaching past its pick
GRID: dict[int, tuple[float, ...]] = {10: (0.002, 0.004, 0.006, 0.008),
                                      32: (0.003, 0.006, 0.009, 0.012),
                                      64: (0.004, 0.008, 0.012, 0.016)}


def sweep(corpora: Path, epochs: int, log: callable) -> list[dict]:
    """One row per (batch, lr): dev and test F1 after each epoch, training CPU s per epoch."""
    rows = []
    for batch, rates in GRID.items():
        for lr in rates:
            run = OurRun([f"train.batch_size={batch}", f"train.lr={lr}"], corpora)
            dev, test, cpu = [], [], []
            for _ in range(epochs):
                cpu.append(run.train_epoch().cpu_s)
                with run.scored():
                    dev.append(evaluate(run.tagger, run.dev).f1)
                test.append(run.evaluate_test())
            rows.append({"batch": batch, "lr": lr, "dev": dev, "test": test, "cpu": cpu})
            log(f"batch {batch} lr {lr:g}: mean dev F1 {statistics.fmean(dev):.4f}, test "
                + " ".join(f"{f:.4f}" for f in test))
    return rows


def picks(rows: list[dict]) -> dict[int, float]:
    """batch -> the learning rate with the highest mean dev F1 (the first of equals)."""
    best: dict[int, dict] = {}
    for row in rows:
        if row["batch"] not in best or (statistics.fmean(row["dev"])
                                        > statistics.fmean(best[row["batch"]]["dev"])):
            best[row["batch"]] = row
    return {batch: row["lr"] for batch, row in best.items()}


def render(rows: list[dict], chosen: dict[int, float], info: dict) -> str:
    w = ["## Learning rates for time to accuracy (`python benchmarks/tta_lr.py`)", "",
         f"Measured {info['date']} on {info['cpu']}; bf16 flags: {info['flags']}; code: "
         f"{info['code']}; whole run {info['minutes']:.1f} min. Resume NER at NCRF++'s size "
         "(`configs/resume_ncrfpp.yaml`, CRF, Adam, seed 1, 1 thread), "
         f"{len(rows[0]['dev'])} epochs per row. The pick per batch size is the learning rate "
         "with the highest mean dev F1 over the epochs; test F1 is shown, not used to choose.",
         "", "| batch | lr | mean dev F1 | dev F1 after each epoch | test F1 after each epoch "
         "| CPU s per epoch | pick |", "|---:|---:|---:|---|---|---:|:---:|"]
    for r in rows:
        w.append(f"| {r['batch']} | {r['lr']:g} | {statistics.fmean(r['dev']):.4f} | "
                 + ", ".join(f"{f:.4f}" for f in r["dev"]) + " | "
                 + ", ".join(f"{f:.4f}" for f in r["test"])
                 + f" | {statistics.median(r['cpu']):.2f} | "
                 + ("yes" if chosen[r["batch"]] == r["lr"] else "") + " |")
    return "\n".join(w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", type=Path, default=Path(os.environ.get(
        "BMES_CORPORA", str(REPO.parent / "shared" / "corpora"))))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--output", type=Path, default=REPO / "benchmarks" / "RESULTS.md")
    args = ap.parse_args()
    if not (args.corpora / "resume_ner").is_dir():
        ap.error(f"--corpora {args.corpora}: no resume_ner folder there")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    rows = sweep(args.corpora, args.epochs, log)
    chosen = picks(rows)
    model, flags = _lscpu()
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu": model, "flags": ", ".join(flags) if flags else "none",
            "code": _code_version(), "minutes": (time.perf_counter() - started) / 60}
    text = render(rows, chosen, info)
    print(text)
    write_section(args.output, "tta-lr", text)
    log("picks: " + ", ".join(f"batch {b}: lr {lr:g}" for b, lr in chosen.items()))


if __name__ == "__main__":
    main()
