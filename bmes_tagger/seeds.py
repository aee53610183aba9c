"""Several seeds of one config: ``tagger train CONFIG --seeds 1 2 3``.

Published comparisons of taggers differ by less than their seed-to-seed spread, so a figure
worth quoting is a mean ± sd over seeds; this trains them and reports that.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .config import Config
from .errors import ConfigError, RunDirError
from .evaluate import evaluate, read_eval_data
from .predict import Tagger
from .train import TrainResult, train

SUMMARY = "seeds.json"


@dataclass
class SeedsResult:
    """What :func:`train_seeds` measured: one :class:`TrainResult` (and test scores, when the
    config has ``data.test``) per seed, and mean ± sd over the seeds."""

    run_dir: Path
    seeds: list[int]
    runs: list[TrainResult]
    test: list[dict[str, Any]] | None
    summary: dict[str, Any]
    best_seed: int


def _is_summary(path: Path) -> bool:
    """True when ``path`` is missing or a summary an earlier ``--seeds`` run wrote (a
    folder's own seeds.json, a user's, is never replaced without --force)."""
    if not path.exists() and not path.is_symlink():
        return True
    if path.is_symlink() or not path.is_file():
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"seeds", "best_seed", "dev", "per_seed"} <= set(data)


def train_seeds(
    config: Config, seeds: Sequence[int], output_dir: str | Path | None = None, *,
    resume: bool = False, force: bool = False, progress: bool = True,
    log: Callable[[str], None] | None = None, config_file: str | Path | None = None,
) -> SeedsResult:
    """Train one run per seed into ``RUN_DIR/seed-N/``, then write ``RUN_DIR/seeds.json``
    (per seed and mean ± sd of dev, and of test when ``data.test`` is set, precision, recall
    and F1; with ``train.refit`` also each seed's refit epochs and the test scores of its
    ``refit.pt``, as ``refit_test``) and point ``RUN_DIR/best.pt`` (a relative symlink) at the
    best seed's model by dev F1. ``resume`` and ``force`` apply to every seed's run.

    Raises:
        BmesTaggerError: as :func:`train`; also an empty or repeated seed list.
    """
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: give distinct seeds, got {list(seeds)}")
    root = Path(output_dir or config.output.dir or "runs/default")
    link = root / "best.pt"
    if link.exists() and not link.is_symlink():
        raise RunDirError(f"{link}: exists and is not the link train --seeds makes; move it away")
    if not force and not _is_summary(root / SUMMARY):
        raise RunDirError(f"{root / SUMMARY}: exists and is not a summary train --seeds wrote; "
                          "move it away or use --force")
    runs, tests = [], []
    for seed in seeds:
        if log is not None:
            log(f"seed {seed} ({len(runs) + 1} of {len(seeds)})")
        seeded = config.replace(train=dataclasses.replace(config.train, seed=seed))
        result = train(seeded, root / f"seed-{seed}", resume=resume, force=force,
                       progress=progress, log=log, config_file=config_file)
        runs.append(result)
        if result.interrupted or not result.is_main:
            return SeedsResult(root, list(seeds[:len(runs)]), runs, None, {}, seed)
        if config.data.test is not None:
            tagger = Tagger.load(result.run_dir / "best.pt", device=config.train.device)
            d = config.data
            scores = evaluate(tagger, read_eval_data(tagger, d.test, d.format, d.scheme,
                                                     d.repair_gold))
            tests.append(scores.to_dict())

    def spread(rows: list[dict[str, Any]]) -> dict[str, Any]:
        out = {}
        for key in ("precision", "recall", "f1"):
            values = [float(r.get(key, 0.0)) for r in rows]
            out[key] = {"mean": statistics.fmean(values),
                        "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
        return out

    dev = [r.best_scores for r in runs]
    refits = [r.refit for r in runs]
    refit_tests = [r.test_scores for r in refits if r is not None and r.test_scores]
    best = max(range(len(runs)), key=lambda i: (dev[i].get("f1", 0.0), -i))
    summary = {"seeds": list(seeds), "best_seed": seeds[best], "dev": spread(dev),
               "per_seed": [{"seed": s, "dev": d, "best_epoch": r.best_epoch,
                             **({"test": t} if tests else {}),
                             **({"refit": {"epochs": r.refit.epochs,
                                           **({"test": r.refit.test_scores}
                                              if r.refit.test_scores else {})}}
                                if r.refit is not None else {})}
                            for s, d, r, t in zip(seeds, dev, runs, tests or [None] * len(runs))]}
    if tests:
        summary["test"] = spread(tests)
    if refit_tests and len(refit_tests) == len(runs):
        summary["refit_test"] = spread(refit_tests)
    with atomic_write(root / SUMMARY) as f:
        f.write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    link.unlink(missing_ok=True)
    link.symlink_to(Path(f"seed-{seeds[best]}") / "best.pt")
    return SeedsResult(root, list(seeds), runs, tests or None, summary, seeds[best])
