"""benchmarks/tta_lr.py: the learning rate picked per batch size is the one with the best mean
dev F1, whatever the test F1 says."""

from __future__ import annotations

from conftest import REPO, load_benchmark


def load():  # type: ignore[no-untyped-def]
    return load_benchmark("tta_lr")


def row(batch: int, lr: float, dev: list[float], test: list[float]) -> dict:
    return {"batch": batch, "lr": lr, "dev": dev, "test": test, "cpu": [1.0] * len(dev)}


def test_the_pick_is_the_best_mean_dev_f1_never_the_test_f1() -> None:
    tta_lr = load()
    rows = [row(10, 0.002, [0.5, 1.0], [0.99, 0.99]),     # best test, worse dev
            row(10, 0.004, [0.75, 0.875], [0.50, 0.50]),  # best mean dev (0.8125)
            row(10, 0.008, [0.875, 0.75], [0.60, 0.60]),  # the same mean: the first wins
            row(64, 0.012, [0.70, 0.70], [0.90, 0.90]),
            row(64, 0.008, [0.71, 0.72], [0.10, 0.10])]
    assert tta_lr.picks(rows) == {10: 0.004, 64: 0.008}
    text = tta_lr.render(rows, tta_lr.picks(rows), {"date": "d", "cpu": "c", "flags": "f",
                                                    "code": "commit x", "minutes": 1.0})
    picked = [line for line in text.splitlines() if line.endswith("| yes |")]
    assert [line.split(" | ")[1] for line in picked] == ["0.004", "0.008"]


def test_speed_trains_at_the_rates_the_recorded_sweep_picked() -> None:
    """speed.py's time-to-accuracy runs hold tta_lr.py's picks as constants: they must be the
    ones its last recorded run (RESULTS.md, tta-lr section) marked."""
    results = (REPO / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")
    section = results[results.index("<!-- tta-lr:start -->"):
                      results.index("<!-- tta-lr:end -->")]
    picked = {int(cells[1]): float(cells[2]) for line in section.splitlines()
              if line.endswith("| yes |") for cells in [line.split("|")]}
    speed = load_benchmark("speed")
    used = {int(label): float(next(o for o in overrides if o.startswith("train.lr=")
                                   ).split("=")[1])
            for label, overrides in speed._BATCHES.items()}
    assert picked and used == picked
