"""Train and evaluate on the public corpora; write the accuracy table to benchmarks/RESULTS.md.

    python benchmarks/accuracy.py [--corpora PATH] [--only resume pku ...] [--seeds 1 2 3]
                                  [--threads N] [--set KEY=VALUE ...]

Each corpus runs exactly `tagger train configs/<name>.yaml --seeds S1 S2 ...` (with
BMES_CORPORA pointing at --corpora), which trains one run per seed and scores each seed's
best.pt on data.test (as `tagger eval configs/<name>.yaml --model RUN/seed-S/best.pt` does), so
every number in the table is reproduced by that command. Model selection uses dev data only
(a dev file, or a held-out part of train); the test set is scored once at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from predict_memory import write_section  # noqa: E402

# name -> (description, target test F1 from the accuracy issue)
CORPORA = {
    "resume": ("Resume NER, train / dev / test", 0.950),
    "msra": ("MSRA NER, train (5% held out as dev) / test", 0.925),
    "pku": ("PKU test, trained on People's Daily 1998-01 (proxy; 5% held out)", 0.960),
    "pku_small": ("PKU test, small model (emb 50, hidden 64), trained on the proxy", 0.960),
    "pku_tiny": ("PKU test, tiny model (emb 32, hidden 32, bigrams 32), trained on the proxy",
                 0.960),
    "msr": ("MSR test, trained on the MSRA NER 2006 text (proxy; 5% held out)", 0.970),
    "ud_gsd": ("UD Chinese GSD r1.4 CWS, train / dev / test", 0.940),
    "cluener": ("CLUENER2020, train (5% held out) / dev", 0.720),
}


def run(name: str, seeds: list[int], corpora: Path, threads: int, overrides: list[str],
        out_root: Path) -> list[dict[str, object]]:
    """Train and evaluate one corpus with every seed (``tagger train --seeds``); one row
    dict per seed."""
    env = {**os.environ, "BMES_CORPORA": str(corpora)}
    config = ROOT / "configs" / f"{name}.yaml"
    run_dir = out_root / name
    sets = ["--set", f"train.threads={threads}"]
    for item in overrides:
        sets += ["--set", item]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bmes_tagger", "train", str(config), "--output",
                    str(run_dir), "--force", "--quiet", "--seeds", *map(str, seeds), *sets],
                   check=True, env=env)
    wall = (time.perf_counter() - started) / len(seeds)
    summary = json.loads((run_dir / "seeds.json").read_text(encoding="utf-8"))
    rows = []
    for entry in summary["per_seed"]:
        records = [json.loads(x) for x in (run_dir / f"seed-{entry['seed']}" / "metrics.jsonl")
                   .read_text(encoding="utf-8").splitlines()]
        best = max(records, key=lambda r: r["dev"]["f1"])
        rows.append({"name": name, "seed": entry["seed"], "scores": entry["test"],
                     "epochs": records[-1]["epoch"], "best_epoch": best["epoch"],
                     "dev_f1": best["dev"]["f1"], "wall_s": wall,
                     "chars_per_s": statistics.mean(r["chars_per_s"] for r in records)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    parser.add_argument("--only", nargs="+", choices=sorted(CORPORA), default=sorted(CORPORA))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "accuracy")
    args = parser.parse_args()
    if not args.corpora.is_dir():
        sys.exit(f"error: corpora not found at {args.corpora} (use --corpora PATH)")
    rows = []
    for name in args.only:
        for row in run(name, args.seeds, args.corpora, args.threads, args.overrides, args.runs):
            s = row["scores"]
            print(f"{name} seed {row['seed']}: test P {s['precision']:.4f} R "
                  f"{s['recall']:.4f} F1 {s['f1']:.4f} (dev {row['dev_f1']:.4f}, "
                  f"{row['epochs']} epochs, {row['wall_s'] / 60:.1f} min)", flush=True)
            rows.append(row)
    section = format_table(rows, args)
    print("\n" + section)
    # one section per set of corpora, so separate runs (e.g. the slow corpora later) add up
    write_section(ROOT / "benchmarks" / "RESULTS.md", "accuracy-" + "-".join(args.only),
                  section)


def format_table(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "## Accuracy (`python benchmarks/accuracy.py`)", "",
        f"{datetime.date.today()}, {platform.machine()} with {os.cpu_count()} cores, "
        f"{args.threads} torch thread(s), no GPU. Each row: `tagger train configs/NAME.yaml "
        f"--seeds SEEDS` (test scores of each seed's best.pt, as `tagger eval` gives them)"
        + (f", with --set {' '.join(args.overrides)}" if args.overrides else "") + ".", "",
        "| corpus | seed(s) | test P | test R | test F1 (mean ± sd) | OOV recall | target | "
        "epochs (best) | wall time | train chars/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in dict.fromkeys(r["name"] for r in rows):
        group = [r for r in rows if r["name"] == name]
        f1s = [r["scores"]["f1"] for r in group]
        spread = f" ± {statistics.stdev(f1s):.4f}" if len(f1s) > 1 else ""
        oov = [r["scores"].get("oov_recall") for r in group]
        oov_text = f"{statistics.mean(oov):.4f}" if all(o is not None for o in oov) else "–"
        lines.append(
            f"| {CORPORA[name][0]} | {', '.join(str(r['seed']) for r in group)} | "
            f"{statistics.mean(r['scores']['precision'] for r in group):.4f} | "
            f"{statistics.mean(r['scores']['recall'] for r in group):.4f} | "
            f"{statistics.mean(f1s):.4f}{spread} | {oov_text} | {CORPORA[name][1]:.3f} | "
            f"{', '.join(str(r['epochs']) + ' (' + str(r['best_epoch']) + ')' for r in group)} | "
            f"{statistics.mean(r['wall_s'] for r in group) / 60:.1f} min | "
            f"{statistics.mean(r['chars_per_s'] for r in group):,.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
