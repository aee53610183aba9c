"""End to end through the command line (typer's CliRunner): train -> predict -> eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from bmes_tagger.checkpoint import FORMAT_VERSION
from bmes_tagger.cli import app
from bmes_tagger.predict import Tagger
from conftest import DATA, tiny_config

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def cws_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cws")
    code, out, err = invoke("train", str(tiny_config(tmp, "cws")), "--quiet")
    assert code == 0, err
    assert "best dev F1" in out
    return tmp


def test_train_writes_the_run_directory(cws_run: Path) -> None:
    run = cws_run / "run"
    for name in ("best.pt", "last.pt", "config.yaml", "metrics.jsonl", "train.log"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(0.0 <= r["dev"]["f1"] <= 1.0 for r in records)
    assert not (run / ".lock").exists()
    payload = torch.load(run / "best.pt", weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION and payload["tags"] == ["B", "M", "E", "S"]


def test_predict_keeps_lines_and_characters(cws_run: Path, tmp_path: Path) -> None:
    raw = tmp_path / "in.txt"
    lines = ["我们在北京工作。", "", "  ", "ＡＢＣ公司 发布了新产品", "好"]
    raw.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out_file = tmp_path / "out.txt"
    code, out, err = invoke("predict", str(raw), "--model", str(cws_run / "run" / "best.pt"),
                            "--output", str(out_file))
    assert code == 0, err
    got = out_file.read_text(encoding="utf-8").split("\n")[:-1]
    assert len(got) == len(lines)
    for src, seg in zip(lines, got):
        assert seg.replace("  ", "") == "".join(src.split())
    # refuses to overwrite without --force
    code, _, err = invoke("predict", str(raw), "--model", str(cws_run / "run" / "best.pt"),
                          "--output", str(out_file))
    assert code == 1 and "already exists" in err


def test_predict_stdin_equals_file(cws_run: Path) -> None:
    raw = DATA / "sample-cws" / "raw.txt"
    model = str(cws_run / "run" / "best.pt")
    code, from_file, _ = invoke("predict", str(raw), "--model", model)
    assert code == 0
    result = runner.invoke(app, ["predict", "-", "--model", model],
                           input=raw.read_bytes())
    assert result.exit_code == 0 and result.stdout == from_file


def test_eval_config_and_explicit_model(cws_run: Path) -> None:
    cfg = cws_run / "tiny-cws.yaml"
    code, out, err = invoke("eval", str(cfg), "--json")
    assert code == 0, err
    scores = json.loads(out)
    assert {"precision", "recall", "f1", "oov_rate", "oov_recall", "iv_recall"} <= set(scores)
    code, out2, _ = invoke("eval", "--model", str(cws_run / "run" / "best.pt"), "--data",
                           str(DATA / "sample-cws" / "test.txt"), "--format", "segmented",
                           "--json")
    assert code == 0 and json.loads(out2)["f1"] == scores["f1"]
    # the same numbers as the Python API
    tagger = Tagger.load(cws_run / "run" / "best.pt")
    assert tagger.task == "cws"
    code, text, _ = invoke("eval", str(cfg))
    assert code == 0 and f"F1 {scores['f1']:.4f}" in text


def test_second_train_refuses_then_resume_and_force(cws_run: Path) -> None:
    cfg = str(cws_run / "tiny-cws.yaml")
    before = (cws_run / "run" / "best.pt").read_bytes()
    code, _, err = invoke("train", cfg, "--quiet")
    assert code == 1 and "already holds a run" in err and "--resume" in err
    assert (cws_run / "run" / "best.pt").read_bytes() == before
    # resuming a finished run with more epochs continues it
    code, _, err = invoke("train", cfg, "--quiet", "--resume", "--set", "train.epochs=3")
    assert code == 0, err
    records = (cws_run / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in records] == [1, 2, 3]


def test_ner_end_to_end(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, "ner", head="crf")
    code, _, err = invoke("train", str(cfg), "--quiet")
    assert code == 0, err
    model = str(tmp_path / "run" / "best.pt")
    raw = tmp_path / "in.txt"
    raw.write_text("张伟在北京大学工作。\n\n", encoding="utf-8")
    code, out, err = invoke("predict", str(raw), "--model", model)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 2 and records[1] == {"text": "", "entities": []}
    for ent in records[0]["entities"]:
        assert records[0]["text"][ent["start"]:ent["end"]] == ent["text"]
    code, out, err = invoke("eval", str(cfg), "--json")
    assert code == 0, err
    assert "per_type" in json.loads(out)
    # a CWS file given to the NER model: the mismatch is explained
    code, _, err = invoke("eval", "--model", model, "--data",
                          str(DATA / "sample-cws" / "test.txt"), "--format", "segmented")
    assert code == 1 and "trained for NER" in err


def test_bad_config_key_suggests(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model:\n  hiden_size: 3\n", encoding="utf-8")
    code, _, err = invoke("train", str(cfg))
    assert code == 1
    assert err.strip().count("\n") == 0
    assert "bad.yaml:2" in err and "did you mean 'hidden_size'" in err
    assert "Traceback" not in err


def test_missing_checkpoint(tmp_path: Path) -> None:
    code, _, err = invoke("predict", "-", "--model", str(tmp_path / "nope.pt"))
    assert code == 1 and "checkpoint not found" in err


def test_predict_shards_concatenate_to_the_whole(cws_run: Path, tmp_path: Path) -> None:
    raw = tmp_path / "in.txt"
    raw.write_text("".join(f"第{i}行我们在北京工作。\n" if i % 7 else "\n" for i in range(23)),
                   encoding="utf-8")
    model = str(cws_run / "run" / "best.pt")
    code, whole, _ = invoke("predict", str(raw), "--model", model)
    assert code == 0
    parts = []
    for i in range(4):
        code, out, err = invoke("predict", str(raw), "--model", model, "--shard", f"{i}/4")
        assert code == 0, err
        parts.append(out)
    assert "".join(parts) == whole and whole.count("\n") == 23
    for bad in ("4/4", "x", "1/0", "-1/4", "1/2/3"):
        code, _, err = invoke("predict", str(raw), "--model", model, "--shard", bad)
        assert code == 2 and "--shard" in err, (bad, code, err)  # usage, like typer's own
    # counting the lines of stdin would consume it (pipes: tests/test_outputs.py)
    code, out, err = invoke("predict", "-", "--model", model, "--shard", "0/2")
    assert code == 2 and "Invalid value for '--shard'" in err and out == ""


def test_format_scores_prints_undefined_figures_as_dashes() -> None:
    from bmes_tagger.cli import format_scores

    text = format_scores({"precision": 1.0, "recall": 1.0, "f1": 1.0, "gold_words": 2,
                          "pred_words": 2, "correct_words": 2, "oov_rate": 0.0,
                          "oov_recall": None, "iv_recall": 1.0}, "cws", "d", "m")
    assert "OOV recall --" in text and "IV recall 1.0000" in text


def test_train_verbose_prints_config_and_scores(tmp_path: Path) -> None:
    code, out, err = invoke("train", str(tiny_config(tmp_path)), "--quiet", "--verbose",
                            "--set", "train.epochs=1")
    assert code == 0, err
    assert "hidden_size: 16" in err
    assert '"oov_recall"' in out and "best dev F1" in out


def test_predict_into_a_closed_pipe_stops_quietly(cws_run: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    raw = tmp_path / "big.txt"
    lines = (DATA / "sample-cws" / "raw.txt").read_text("utf-8").splitlines()
    raw.write_text("\n".join(lines * 60) + "\n", encoding="utf-8")  # output >> a pipe buffer
    proc = subprocess.Popen([sys.executable, "-m", "bmes_tagger", "predict", str(raw), "--model",
                             str(cws_run / "run" / "best.pt")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()  # like `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_eval_config_from_another_directory_says_where_it_looked(
        cws_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """output.dir is relative to the directory training ran in (documented): eval resolves it
    the same way, and from elsewhere the error names the path tried and the --model to pass."""
    project = tmp_path / "project"
    (project / "runs" / "x").mkdir(parents=True)
    (project / "runs" / "x" / "best.pt").write_bytes((cws_run / "run" / "best.pt").read_bytes())
    cfg = project / "configs" / "x.yaml"
    cfg.parent.mkdir()
    cfg.write_text(f"data:\n  test: {DATA / 'sample-cws' / 'test.txt'}\noutput:\n  dir: runs/x\n",
                   encoding="utf-8")
    monkeypatch.chdir(project)
    code, out, err = invoke("eval", str(cfg), "--json")
    assert code == 0, err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = invoke("eval", str(cfg), "--json")
    assert code == 1 and err.count("\n") == 1
    hint = project / "runs" / "x" / "best.pt"
    assert err.startswith("error: runs/x/best.pt: checkpoint not found")
    assert f"this is {elsewhere}" in err and f"--model {hint}" in err
    code, out2, err = invoke("eval", str(cfg), "--json", "--model", str(hint))
    assert code == 0 and json.loads(out2) == json.loads(out)


def _on_a_terminal(argv: list[str], stdout_too: bool = False
                   ) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
    """Run ``argv`` with stderr (and with ``stdout_too`` stdout) on a new 30 x 100 pty; the
    process and everything the terminal showed."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    # a new pty is 0 columns wide, and tqdm draws nothing in no columns
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    try:
        done = subprocess.run(argv, stderr=slave,
                              stdout=slave if stdout_too else subprocess.DEVNULL, timeout=120)
        os.close(slave)
        shown = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
    return done, shown


def test_predict_shows_progress_on_a_terminal_and_output_is_unchanged(
        cws_run: Path, tmp_path: Path) -> None:
    """stderr a terminal, output to a file: a 'tagging' bar on stderr; the tagged file equals
    the one a run without a terminal writes, and a non-terminal stderr gets no bar."""
    raw = tmp_path / "in.txt"
    raw.write_text("我们在北京工作。\n好\n" * 50, encoding="utf-8")
    model = str(cws_run / "run" / "best.pt")
    base = [sys.executable, "-m", "bmes_tagger", "predict", str(raw), "--model", model]
    done, shown = _on_a_terminal([*base, "--output", str(tmp_path / "tty.txt")])
    assert done.returncode == 0, shown
    # bytes read out of the file's size (a percentage), lines and characters per second
    assert b"tagging" in shown and b"100%" in shown, shown
    assert b"100 lines" in shown and b"chars/s" in shown, shown
    plain = subprocess.run([*base, "--output", str(tmp_path / "plain.txt")],
                           capture_output=True, timeout=120)
    assert plain.returncode == 0 and b"tagging" not in plain.stderr
    assert (tmp_path / "tty.txt").read_bytes() == (tmp_path / "plain.txt").read_bytes()
    # the output is the terminal by another name (an outside tester: the bar was drawn
    # among the tagged lines): no bar
    done, shown = _on_a_terminal([*base, "--output", "/dev/stdout"], stdout_too=True)
    assert done.returncode == 0, shown
    assert b"tagging" not in shown and shown.count(b"\n") == 100, shown[:300]


def _run_into_closed_pipe(*args: str) -> tuple[int, str]:
    """Run ``tagger ARGS`` with stdout a pipe whose reader is already gone."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "bmes_tagger", *args], stdout=write,
                              stderr=subprocess.PIPE, timeout=300)
    finally:
        os.close(write)
    return proc.returncode, proc.stderr.decode()


@pytest.mark.parametrize("command", ["debug-data", "info", "eval", "train"])
def test_every_command_into_a_closed_pipe_exits_141_quietly(
        cws_run: Path, tmp_path: Path, command: str) -> None:
    # click turns a broken pipe into a silent exit 1, which a pipeline cannot tell from failure
    config = tiny_config(tmp_path, "cws")
    args = {"debug-data": ["debug-data", str(config)],
            "info": ["info", str(cws_run / "run" / "best.pt")],
            "eval": ["eval", "--model", str(cws_run / "run" / "best.pt"), "--data",
                     str(DATA / "sample-cws" / "test.txt")],
            "train": ["train", str(config), "--quiet"]}[command]
    code, err = _run_into_closed_pipe(*args)
    assert (code, err) == (141, "")


@pytest.mark.parametrize("args", [
    ["eval"],
    ["eval", "--model", "x.pt"],
    ["predict", "IN", "--model", "M", "--device", "tpu"],
    ["train", "CONFIG", "--device", "cuda:x"],
    ["eval", "--model", "M", "--data", "D", "--device", "gpu"],
], ids=lambda a: " ".join(a))
def test_command_line_mistakes_exit_2(args: list[str]) -> None:
    code, _, err = invoke(*args)
    assert code == 2, err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["predict", "eval", "export"])
def test_an_unknown_format_is_a_usage_error(cws_run: Path, command: str) -> None:
    model = str(cws_run / "run" / "best.pt")
    data = str(DATA / "sample-cws" / "test.txt")
    args = {"predict": ["predict", data, "--model", model, "--format", "xml"],
            "eval": ["eval", "--model", model, "--data", data, "--format", "xml"],
            "export": ["export", model, "--format", "xml", "--output",
                       str(cws_run / "x.out")]}[command]
    code, _, err = invoke(*args)
    assert code == 2
    assert err.startswith("error: --format: 'xml'") and len(err.strip().splitlines()) == 1


def _run_with_stdout(stdout: Any, *args: str) -> tuple[int, str]:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "bmes_tagger", *args], stdout=stdout,
                          stderr=subprocess.PIPE, timeout=300)
    return proc.returncode, proc.stderr.decode()


@pytest.mark.parametrize("command", ["--help", "predict --help", "info", "eval", "debug-data"])
def test_a_full_or_closed_stdout_is_one_line_naming_stdout(cws_run: Path, tmp_path: Path,
                                                           command: str) -> None:
    import os
    import subprocess
    import sys

    model = str(cws_run / "run" / "best.pt")
    args = {"--help": ["--help"], "predict --help": ["predict", "--help"],
            "info": ["info", model],
            "eval": ["eval", "--model", model, "--data", str(DATA / "sample-cws" / "test.txt")],
            "debug-data": ["debug-data", str(tiny_config(tmp_path, "cws"))]}[command]
    with open("/dev/full", "w") as full:
        code, err = _run_with_stdout(full, *args)
    assert (code, err) == (1, "error: <stdout>: No space left on device\n")
    if command.endswith("--help"):
        code, err = _run_into_closed_pipe(*args)
        assert (code, err) == (141, "")
    else:  # a result that cannot be printed is an error, not a silent success
        code, err = _run_with_stdout(subprocess.DEVNULL, *args)
        assert code == 0, err
        proc = subprocess.run([sys.executable, "-m", "bmes_tagger", *args],
                              stderr=subprocess.PIPE, timeout=300,
                              preexec_fn=lambda: os.close(1))
        assert (proc.returncode, proc.stderr.decode()) == (
            1, "error: <stdout>: standard output is closed; the result could not be printed\n")
