"""Human-readable views of checkpoints and runs: `tagger info` and `tagger plot`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import BmesTaggerError


def checkpoint_info(payload: dict[str, Any], path: str | Path) -> str:
    """Summary of a loaded checkpoint: format, task, model, tag set, sizes, best scores."""
    config = payload["config"]
    # exported models (tagger export) carry the count instead of the weights
    n_params = payload.get("parameters") or sum(int(t.numel())
                                                for t in payload["model"].values())
    scores = payload.get("scores") or {}
    dev = scores.get("dev") or {}
    tags = payload["tags"]
    lines = [
        f"checkpoint   {path}",
        f"format       {payload.get('format')} v{payload.get('format_version')} (written by "
        f"bmes_tagger {payload.get('bmes_tagger_version', '?')})",
        *([f"exported     {payload['exported_as']} from {payload.get('exported_from')}"]
          if payload.get("exported_as") else []),
        f"task         {config['data']['task']}",
        "model        " + ", ".join(f"{k}={v}" for k, v in config["model"].items()
                                    if v is not None),
        f"parameters   {n_params:,}",
        f"characters   {len(payload['chars']):,} (incl. <pad>, <unk>)",
        f"bigrams      {len(payload.get('bigrams') or []):,}",
        f"train words  {len(payload.get('train_words') or []):,}",
        f"tags         {len(tags)}: {' '.join(tags[:40])}{' ...' if len(tags) > 40 else ''}",
    ]
    if dev:
        lines.append(f"best dev     F1 {dev.get('f1', 0):.4f} (P {dev.get('precision', 0):.4f} "
                     f"R {dev.get('recall', 0):.4f}) at epoch {scores.get('best_epoch')}, "
                     f"step {scores.get('best_step')}")
    if "training" in payload:
        loop = payload["training"]["loop"]
        lines.append(f"resumable    yes: {loop['epoch']} epochs, {loop['step']} steps done")
    lines.append("train config " + json.dumps(config["train"], ensure_ascii=False))
    return "\n".join(lines)


def plot_run(run_dir: str | Path, output: str | Path) -> Path:
    """Write a PNG of training loss and dev F1 per evaluation of a run (needs matplotlib).

    Raises:
        BmesTaggerError: no metrics.jsonl in ``run_dir``, or matplotlib is not installed.
    """
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        raise BmesTaggerError(f"{run_dir}: no metrics.jsonl (is this a run directory?)")
    records = [json.loads(x) for x in metrics.read_text(encoding="utf-8").splitlines()
               if x.strip()]
    if not records:
        raise BmesTaggerError(f"{metrics}: no evaluations yet")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BmesTaggerError("tagger plot needs matplotlib: pip install 'bmes_tagger[plot]'"
                              ) from None
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
    output = Path(output)
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output
