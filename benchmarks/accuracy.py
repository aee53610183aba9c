"""Train and evaluate on the public corpora; write the accuracy table to benchmarks/RESULTS.md.

    python benchmarks/accuracy.py [--corpora PATH] [--only resume pku ...] [--seeds 1 2 3]
                                  [--settings closed lexicon vectors lexicon_vectors]
                                  [--threads N] [--set KEY=VALUE ...] [--label NAME]

Each corpus and setting runs exactly `tagger train configs/<name><suffix>.yaml --seeds S1 S2 ...`
(with BMES_CORPORA pointing at --corpora), which trains one run per seed and scores each seed's
best.pt on data.test (as `tagger eval configs/<name>.yaml --model RUN/seed-S/best.pt` does), so
every number in the table is reproduced by that command. Model selection uses dev data only
(a dev file, or a held-out part of train); the test set is scored once at the end.

Settings (the config suffix): closed (training data only, ``NAME.yaml``); lexicon (+ the
dictionary of the jieba package, ``NAME_lexicon.yaml``); vectors (+ character and bigram
vectors trained on raw text, ``NAME_vectors.yaml``); lexicon_vectors (both, and word vectors,
``NAME_lexicon_vectors.yaml``). The vectors are read from runs/vectors (or $BMES_VECTORS); when
missing they are built first, by the two commands

    python benchmarks/raw_text.py --out runs/raw/raw.txt
    tagger vectors runs/raw/raw.txt --out runs/vectors --jieba

(every raw text of the corpora but the test sets). A run with ``--set`` (another training
regime) should carry ``--label NAME``: its table gets a section of its own in RESULTS.md
instead of replacing the row of the plain config. A CWS row with a lexicon or vectors is
"open": jieba's dictionary and the raw text overlap People's Daily.
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
from speed import _lscpu  # noqa: E402

# name -> (description, target test F1 from the accuracy issue, task)
CORPORA = {
    "resume": ("Resume NER, train / dev / test", 0.950, "ner"),
    "msra": ("MSRA NER, train (5% held out as dev) / test", 0.920, "ner"),
    "pku": ("PKU test, trained on People's Daily 1998-01 (proxy; 5% held out)", 0.955, "cws"),
    "pku_small": ("PKU test, small model (emb 50, hidden 64), trained on the proxy", 0.955,
                  "cws"),
    "pku_tiny": ("PKU test, tiny model (emb 32, hidden 32, bigrams 32), trained on the proxy",
                 0.955, "cws"),
    "msr": ("MSR test, trained on the MSRA NER 2006 text (proxy; 5% held out)", 0.965, "cws"),
    "ud_gsd": ("UD Chinese GSD r1.4 CWS, train / dev / test", 0.930, "cws"),
    "cluener": ("CLUENER2020, train (5% held out) / dev", 0.725, "ner"),
}


# setting -> (config suffix, description)
SETTINGS = {
    "closed": ("", "closed"),
    "lexicon": ("_lexicon", "+ lexicon (jieba)"),
    "vectors": ("_vectors", "+ vectors"),
    "lexicon_vectors": ("_lexicon_vectors", "+ lexicon + vectors"),
}
VECTORS = Path(os.environ.get("BMES_VECTORS") or ROOT / "runs" / "vectors")


def config_of(name: str, setting: str) -> Path:
    return ROOT / "configs" / f"{name}{SETTINGS[setting][0]}.yaml"


def ensure_vectors(corpora: Path, threads: int) -> None:
    """Build runs/vectors from the corpora's raw text unless it is there."""
    if all((VECTORS / f"{n}.vec").is_file() for n in ("chars", "bigrams", "words")):
        return
    raw = ROOT / "runs" / "raw" / "raw.txt"
    print(f"building the vectors in {VECTORS} (raw text: {raw})", flush=True)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "raw_text.py"), "--corpora",
                    str(corpora), "--out", str(raw)], check=True)
    subprocess.run([sys.executable, "-m", "bmes_tagger", "vectors", str(raw), "--out",
                    str(VECTORS), "--jieba", "--threads", str(threads), "--force"], check=True)


def run(name: str, setting: str, seeds: list[int], corpora: Path, threads: int,
        overrides: list[str], out_root: Path) -> list[dict[str, object]]:
    """Train and evaluate one corpus in one setting with every seed (``tagger train
    --seeds``); one row dict per seed."""
    env = {**os.environ, "BMES_CORPORA": str(corpora), "BMES_VECTORS": str(VECTORS)}
    config = config_of(name, setting)
    run_dir = out_root / f"{name}{SETTINGS[setting][0]}"
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
        rows.append({"name": name, "setting": setting, "seed": entry["seed"],
                     "scores": entry["test"],
                     "epochs": records[-1]["epoch"], "best_epoch": best["epoch"],
                     "dev_f1": best["dev"]["f1"], "wall_s": wall,
                     "chars_per_s": statistics.mean(r["chars_per_s"] for r in records),
                     # with --set train.refit=true: refit.pt (train + dev, best epoch count)
                     "refit": (entry.get("refit") or {}).get("test")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=ROOT.parent / "shared" / "corpora")
    parser.add_argument("--only", nargs="+", choices=sorted(CORPORA), default=sorted(CORPORA))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=["closed"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "accuracy")
    # a run with --set is another regime: its own section, so it does not replace the plain row
    parser.add_argument("--label", default="", help="name of this regime's RESULTS.md section")
    args = parser.parse_args()
    if not args.corpora.is_dir():
        sys.exit(f"error: corpora not found at {args.corpora} (use --corpora PATH)")
    todo = [(n, s) for n in args.only for s in args.settings if config_of(n, s).is_file()]
    for name in args.only:
        for setting in args.settings:
            if not config_of(name, setting).is_file():
                print(f"{name}: no {setting} config ({config_of(name, setting).name}); skipped")
    if any("vectors" in s for _, s in todo):
        ensure_vectors(args.corpora, args.threads)
    rows = []
    for name, setting in todo:
        for row in run(name, setting, args.seeds, args.corpora, args.threads, args.overrides,
                       args.runs):
            s = row["scores"]
            print(f"{name} {setting} seed {row['seed']}: test P {s['precision']:.4f} R "
                  f"{s['recall']:.4f} F1 {s['f1']:.4f} (dev {row['dev_f1']:.4f}, "
                  f"{row['epochs']} epochs, {row['wall_s'] / 60:.1f} min)", flush=True)
            rows.append(row)
    section = format_table(rows, args)
    print("\n" + section)
    # one section per set of corpora and settings, so separate runs add up
    suffix = "" if args.settings == ["closed"] else "-" + "-".join(args.settings)
    suffix += f"-{args.label}" if args.label else ""
    write_section(ROOT / "benchmarks" / "RESULTS.md", "accuracy-" + "-".join(args.only) + suffix,
                  section)


def _mean_sd(values: list[float]) -> str:
    spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4f}{spread}"


def format_table(rows: list[dict], args: argparse.Namespace) -> str:
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    cpu, flags = _lscpu()  # wall times and chars/s depend on it
    lines = [
        "## Accuracy (`python benchmarks/accuracy.py`)", "",
        f"{datetime.date.today()}, {platform.machine()} with {os.cpu_count()} cores "
        f"(`lscpu`: {cpu}, bf16 flags: {', '.join(flags or []) or 'none'}), "
        f"{args.threads} torch thread(s), no GPU. Each row: `tagger train "
        f"configs/NAME{{SUFFIX}}.yaml --seeds SEEDS` (test scores of each seed's best.pt, as "
        f"`tagger eval` gives them)"
        + (f", with --set {' '.join(args.overrides)}" if args.overrides else "") + ". "
        "Settings: closed = training data only; lexicon = jieba's dictionary (`_lexicon`); "
        "vectors = character and bigram vectors trained on the corpora's raw text without "
        "test sets (`_vectors`); both, with word vectors (`_lexicon_vectors`). A CWS figure "
        "with a lexicon or vectors is open (the resources overlap People's Daily).", "",
    ]
    if len(settings) > 1:
        lines += ["| corpus | seeds | " + " | ".join(SETTINGS[s][1] for s in settings)
                  + " | target |", "|---|---|" + "---:|" * (len(settings) + 1)]
        for name in dict.fromkeys(r["name"] for r in rows):
            cells = []
            for setting in settings:
                f1s = [r["scores"]["f1"] for r in rows
                       if r["name"] == name and r["setting"] == setting]
                cells.append(_mean_sd(f1s) if f1s else "–")
            seeds = sorted({r["seed"] for r in rows if r["name"] == name})
            lines.append(f"| {CORPORA[name][0]} | {', '.join(map(str, seeds))} | "
                         + " | ".join(cells) + f" | {CORPORA[name][1]:.3f} |")
        lines.append("")
    refits = any(r.get("refit") for r in rows)
    refit_head = " refit.pt test F1 (train + dev) |" if refits else ""
    lines += [
        "| corpus | setting | seed(s) | test P | test R | test F1 (mean ± sd) | OOV recall | "
        "target | epochs (best) | wall time | train chars/s |" + refit_head,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * bool(refit_head),
    ]
    for name, setting in dict.fromkeys((r["name"], r["setting"]) for r in rows):
        group = [r for r in rows if r["name"] == name and r["setting"] == setting]
        oov = [r["scores"].get("oov_recall") for r in group]
        oov_text = f"{statistics.mean(oov):.4f}" if all(o is not None for o in oov) else "–"
        open_ = setting != "closed" and CORPORA[name][2] == "cws"
        lines.append(
            f"| {CORPORA[name][0]} | {SETTINGS[setting][1]}{' (open)' if open_ else ''} | "
            f"{', '.join(str(r['seed']) for r in group)} | "
            f"{statistics.mean(r['scores']['precision'] for r in group):.4f} | "
            f"{statistics.mean(r['scores']['recall'] for r in group):.4f} | "
            f"{_mean_sd([r['scores']['f1'] for r in group])} | {oov_text} | "
            f"{CORPORA[name][1]:.3f} | "
            f"{', '.join(str(r['epochs']) + ' (' + str(r['best_epoch']) + ')' for r in group)} | "
            f"{statistics.mean(r['wall_s'] for r in group) / 60:.1f} min | "
            f"{statistics.mean(r['chars_per_s'] for r in group):,.0f} |"
            + (f" {_mean_sd([r['refit']['f1'] for r in group])} |"
               if refits and all(r.get("refit") for r in group) else " – |" if refits else ""))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
