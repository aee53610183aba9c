"""Human-readable views of checkpoints and runs: `tagger info` and `tagger plot`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .atomic import atomic_write, check_output
from .checkpoint import Checkpoint
from .errors import BmesTaggerError, import_failure
from .rundir import read_records


def checkpoint_summary(ckpt: Checkpoint, path: str | Path) -> dict[str, Any]:
    """What `tagger info` shows, as JSON-ready builtins (``tagger info --json``)."""
    n_params = ckpt.extra.get("parameters")
    if n_params is None and ckpt.weights is not None:
        n_params = sum(int(t.numel()) for t in ckpt.weights.values())
    loop = (ckpt.training or {}).get("loop")
    return {
        "path": str(path),
        "format_version": ckpt.extra.get("format_version"),
        "written_by": ckpt.extra.get("bmes_tagger_version"),
        "exported_as": ckpt.extra.get("exported_as"),
        "exported_from": ckpt.extra.get("exported_from"),
        "task": ckpt.task,
        "config": ckpt.config.to_dict(),
        "parameters": n_params,
        "vocabularies": {name: len(v) for name, v in ckpt.vocabs.items()},
        "train_words": len(ckpt.train_words),
        "tags": ckpt.tags,
        "scores": ckpt.scores,
        "resumable": None if loop is None else {"epochs": loop["epoch"], "steps": loop["step"]},
    }


def checkpoint_info(ckpt: Checkpoint, path: str | Path) -> str:
    """Summary of a validated checkpoint: format, task, model, tag set, sizes, best scores."""
    info = checkpoint_summary(ckpt, path)
    config = info["config"]
    scores = info["scores"]
    dev = scores.get("dev") or {}
    tags = info["tags"]
    lines = [
        f"checkpoint   {path}",
        f"format       bmes_tagger v{info['format_version']} (written by "
        f"bmes_tagger {info['written_by'] or '?'})",
        *([f"exported     {info['exported_as']} from {info['exported_from']}"]
          if info["exported_as"] else []),
        f"task         {info['task']}",
        "model        " + ", ".join(f"{k}={v}" for k, v in config["model"].items()
                                    if v is not None),
        f"parameters   {info['parameters']:,}" if info["parameters"] is not None
        else "parameters   ?",
        *(f"{name + ' vocab':<12} {size:,} entries"
          for name, size in info["vocabularies"].items()),
        f"train words  {info['train_words']:,}",
        f"tags         {len(tags)}: {' '.join(tags[:40])}{' ...' if len(tags) > 40 else ''}",
    ]
    if dev:
        lines.append(f"best dev     F1 {_num(dev.get('f1'))} (P {_num(dev.get('precision'))} "
                     f"R {_num(dev.get('recall'))}) at epoch {scores.get('best_epoch')}, "
                     f"step {scores.get('best_step')}")
    refit = scores.get("refit")
    if isinstance(refit, dict):  # refit.pt (train.refit): no held-out dev score exists
        seen = refit.get("dev_not_held_out") or {}
        lines.append(f"refit        trained on train + dev for {refit.get('epochs')} epochs (its "
                     f"run's best epoch); dev F1 {_num(seen.get('f1'))} is not held out")
    if info["resumable"]:
        lines.append(f"resumable    yes: {info['resumable']['epochs']} epochs, "
                     f"{info['resumable']['steps']} steps done")
    lines.append("train config " + json.dumps(config["train"], ensure_ascii=False))
    return "\n".join(lines)


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "?"


def plot_run(run_dir: str | Path, output: str | Path, force: bool = False) -> Path:
    """Write a PNG of training loss and dev F1 per evaluation of a run (needs matplotlib).

    ``metrics.jsonl`` may end in a torn line (a writer killed mid-line): it is skipped, like
    any line that is not a complete evaluation record.

    Raises:
        BmesTaggerError: no metrics.jsonl in ``run_dir``, an output that is not a ``.png``,
            exists (without ``force``) or cannot be written (see :mod:`bmes_tagger.atomic`),
            or matplotlib is not installed.
    """
    run_dir = Path(run_dir)
    output = Path(output)
    if output.suffix.lower() != ".png":
        raise BmesTaggerError(f"{output}: the plot is a PNG image; name the file *.png")
    metrics = run_dir / "metrics.jsonl"
    inputs = {"the run's metrics.jsonl": metrics}
    check_output(output, force=force, inputs=inputs)
    if not metrics.is_file():
        raise BmesTaggerError(f"{run_dir}: no metrics.jsonl (is this a run directory?)")
    records = [r for r in read_records(metrics) if _plottable(r)]
    if not records:
        raise BmesTaggerError(f"{metrics}: no evaluations yet")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise import_failure(exc, "tagger plot needs matplotlib: pip install "
                             "'bmes_tagger[plot]'") from None
    steps = [r["step"] for r in records]
    fig, loss_ax = plt.subplots(figsize=(7, 4))
    loss_ax.plot(steps, [r["train_loss"] for r in records], "o-", color="tab:blue",
                 label="train loss")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("train loss", color="tab:blue")
    f1_ax = loss_ax.twinx()
    f1_ax.plot(steps, [r["dev"]["f1"] for r in records], "s-", color="tab:red", label="dev F1")
    f1_ax.set_ylabel("dev F1", color="tab:red")
    for r in records:
        loss_ax.annotate(f"e{r['epoch']}", (r["step"], r["train_loss"]), fontsize=7,
                         textcoords="offset points", xytext=(0, 5))
    best = max(records, key=lambda r: r["dev"]["f1"])
    f1_ax.set_title(f"{run_dir.name}: best dev F1 {best['dev']['f1']:.4f} "
                    f"(epoch {best['epoch']})")
    fig.tight_layout()
    try:
        with atomic_write(output, binary=True, force=force, inputs=inputs) as f:
            fig.savefig(f, dpi=120, format="png")
    finally:
        plt.close(fig)
    return output


def _plottable(record: dict[str, Any]) -> bool:
    """A metrics record with the fields the plot reads (older files lack the newer ones)."""
    dev = record.get("dev")
    return (isinstance(record.get("step"), int) and isinstance(record.get("epoch"), int)
            and isinstance(record.get("train_loss"), (int, float))
            and isinstance(dev, dict) and isinstance(dev.get("f1"), (int, float)))
