"""Peak memory of `tagger predict` on a large streamed input (constant memory, no lost lines).

    python benchmarks/predict_memory.py [--model CKPT] [--sizes-mb 16 64 1024]

Generates the input on the fly from repeated text and pipes it into `tagger predict -` (never
stored on disk), counts output lines and reads the child's peak RSS. Without --model, a tiny CWS
model is trained on the bundled sample first (a few seconds). Writes its table into
benchmarks/RESULTS.md between the predict-memory markers.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINES = ["我们在北京工作，今天的天气很好。", "", "张伟是北京大学的教授。",
         "他说：“经济发展需要技术和人才。”" * 3]


def train_tiny_model(workdir: Path) -> Path:
    """A small CWS model on the bundled sample (fast to run, so the benchmark measures I/O)."""
    run = workdir / "tiny"
    subprocess.run([sys.executable, "-m", "bmes_tagger", "train",
                    str(ROOT / "configs" / "sample-cws.yaml"), "--output", str(run), "--quiet",
                    "--set", "train.epochs=1", "--set", "model.hidden_size=16",
                    "--set", "model.embedding_dim=16"], check=True)
    return run / "best.pt"


def measure(model: Path, size_mb: float, batch_size: int = 256) -> dict[str, float]:
    """Stream about ``size_mb`` MB through `tagger predict -`; return counts, RSS and time."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bmes_tagger", "predict", "-", "--model", str(model),
         "--batch-size", str(batch_size)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    target = int(size_mb * 1024 * 1024)
    sent = {"bytes": 0, "lines": 0}

    def feed() -> None:
        assert proc.stdin is not None
        block = ("\n".join(LINES * 200) + "\n").encode("utf-8")
        lines_per_block = len(LINES) * 200
        try:
            while sent["bytes"] < target:
                proc.stdin.write(block)
                sent["bytes"] += len(block)
                sent["lines"] += lines_per_block
        finally:
            proc.stdin.close()

    started = time.perf_counter()
    writer = threading.Thread(target=feed)
    writer.start()
    assert proc.stdout is not None
    out_lines = sum(1 for _ in proc.stdout)
    writer.join()
    err = proc.stderr.read().decode() if proc.stderr else ""
    code = proc.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"tagger predict failed ({code}): {err.strip()}")
    # ru_maxrss of children is the largest peak among waited-for children (KiB on Linux), so
    # each measurement runs in a fresh interpreter: see main().
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"size_mb": sent["bytes"] / 1024 / 1024, "lines_in": sent["lines"],
            "lines_out": out_lines, "peak_rss_mb": peak_kib / 1024, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[16, 64, 1024])
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:  # child mode: one measurement, printed as key=value
        result = measure(args.model, args.one)
        print(" ".join(f"{k}={v}" for k, v in result.items()))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train_tiny_model(Path(tmp))
        rows = []
        for size in args.sizes_mb:
            out = subprocess.run([sys.executable, __file__, "--model", str(model), "--one",
                                  str(size)], check=True, capture_output=True, text=True)
            rows.append({k: float(v) for k, v in (kv.split("=") for kv in out.stdout.split())})
            r = rows[-1]
            print(f"{r['size_mb']:.0f} MB: {int(r['lines_in'])} lines in, "
                  f"{int(r['lines_out'])} out, peak RSS {r['peak_rss_mb']:.0f} MB, "
                  f"{r['seconds']:.0f} s", flush=True)
    table = ["| input | lines in | lines out | peak RSS of `tagger predict` | time |",
             "|---:|---:|---:|---:|---:|"]
    for r in rows:
        table.append(f"| {r['size_mb']:.0f} MB | {int(r['lines_in']):,} | "
                     f"{int(r['lines_out']):,} | {r['peak_rss_mb']:.0f} MB | "
                     f"{r['seconds']:.0f} s |")
    section = "\n".join([
        "## Predict memory (`python benchmarks/predict_memory.py`)", "",
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; model: {'given' if args.model else 'tiny sample CWS model'}; "
        "input streamed through stdin, batch 256, 2,000-line read buffer.", "", *table, ""])
    print("\n" + section)
    write_section(ROOT / "benchmarks" / "RESULTS.md", "predict-memory", section)


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the text between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
