"""`tagger train CONFIG --seeds ...`: one run per seed, mean ± sd, best.pt of the best seed."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bmes_tagger.cli import app
from conftest import tiny_config

runner = CliRunner()


def test_seeds_report_what_each_run_and_eval_say(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    run = tmp_path / "many"
    result = runner.invoke(app, ["train", str(config), "--output", str(run), "--quiet",
                                 "--seeds", "1", "2", "3", "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "seeds.json").read_text())
    assert summary["seeds"] == [1, 2, 3]
    dev_f1 = []
    for row in summary["per_seed"]:
        records = [json.loads(x) for x in
                   (run / f"seed-{row['seed']}" / "metrics.jsonl").read_text().splitlines()]
        assert row["dev"]["f1"] == max(r["dev"]["f1"] for r in records)
        dev_f1.append(row["dev"]["f1"])
        # the test figures are what `tagger eval` of that seed's best.pt says
        out = runner.invoke(app, ["eval", str(config), "--model",
                                  str(run / f"seed-{row['seed']}" / "best.pt"), "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["f1"] == pytest.approx(row["test"]["f1"], abs=1e-12)
    assert summary["dev"]["f1"]["mean"] == pytest.approx(statistics.fmean(dev_f1))
    assert summary["dev"]["f1"]["sd"] == pytest.approx(statistics.stdev(dev_f1))
    best = dev_f1.index(max(dev_f1))
    assert (run / "best.pt").resolve() == (run / f"seed-{summary['seeds'][best]}" / "best.pt")
    assert summary["best_seed"] == summary["seeds"][best]
    assert f"F1 {summary['dev']['f1']['mean']:.4f} ± {summary['dev']['f1']['sd']:.4f}" \
        in result.stdout
    # the same seeds again: every seed's directory holds a run
    again = runner.invoke(app, ["train", str(config), "--output", str(run), "--quiet",
                                "--seeds", "1,2,3", "--set", "train.epochs=1"])
    assert again.exit_code == 1 and "already holds a run" in again.stderr


@pytest.mark.parametrize("argv", [["--seeds", "1", "x"], ["--seeds", "2", "2"], ["7"]])
def test_bad_seed_lists_are_usage_errors(tmp_path: Path, argv: list[str]) -> None:
    result = runner.invoke(app, ["train", str(tiny_config(tmp_path)), *argv])
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_users_seeds_json_is_never_replaced_without_force(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    run = tmp_path / "mine"
    run.mkdir()
    (run / "seeds.json").write_text('{"mine": 1}\n')
    argv = ["train", str(config), "--output", str(run), "--quiet", "--seeds", "1",
            "--set", "train.epochs=1"]
    refused = runner.invoke(app, argv)
    assert refused.exit_code == 1 and "is not a summary train --seeds wrote" in refused.stderr
    assert (run / "seeds.json").read_text() == '{"mine": 1}\n'
    assert not (run / "seed-1").exists()
    forced = runner.invoke(app, [*argv, "--force"])
    assert forced.exit_code == 0, forced.stderr
    assert json.loads((run / "seeds.json").read_text())["seeds"] == [1]
    # its own summary is the run's: a --resume or a new seed list may rewrite it
    again = runner.invoke(app, [*argv[:-4], "--seeds", "2", "--set", "train.epochs=1"])
    assert again.exit_code == 0, again.stderr
    assert json.loads((run / "seeds.json").read_text())["seeds"] == [2]


def test_a_run_directory_that_is_a_dangling_link_says_so(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "dang").symlink_to(tmp_path / "elsewhere" / "deep")
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "runs" /
                                                                     "dang"), "--quiet"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {tmp_path / 'runs' / 'dang'}: is a link to a "
                                    "folder that does not exist"), result.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_seeds_with_refit_report_each_refit_pt_on_test(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    run = tmp_path / "many"
    result = runner.invoke(app, ["train", str(config), "--output", str(run), "--quiet",
                                 "--seeds", "1", "2", "--set", "train.epochs=1",
                                 "--set", "train.refit=true"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run / "seeds.json").read_text())
    f1 = []
    for row in summary["per_seed"]:
        assert row["refit"]["epochs"] == row["best_epoch"] == 1
        out = runner.invoke(app, ["eval", str(config), "--model",
                                  str(run / f"seed-{row['seed']}" / "refit.pt"), "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["f1"] == pytest.approx(row["refit"]["test"]["f1"],
                                                             abs=1e-12)
        f1.append(row["refit"]["test"]["f1"])
    assert summary["refit_test"]["f1"]["mean"] == pytest.approx(statistics.fmean(f1))
    assert "test, refit.pt: P " in result.stdout
