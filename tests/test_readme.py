"""The README's code blocks run as written: every `tagger` command of its bash blocks (in
order, in a scratch directory holding the repository's configs and data), its Python blocks
and its YAML config example. Commands that need a model trained on a public corpus (minutes
to an hour) are checked only as far as their config loads, and corpus commands skip without
../shared/corpora."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bmes_tagger.config import load_config
from conftest import CORPORA, REPO

pytestmark = pytest.mark.slow

README = (REPO / "README.md").read_text(encoding="utf-8")


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", README, flags=re.S | re.M)


def commands() -> list[str]:
    """The `tagger` commands of the bash blocks, in order (one per `&&` part)."""
    out = []
    for block in blocks("bash"):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            for part in line.split("&&"):
                part = part.strip()
                if re.match(r"(BMES_CORPORA=\S+ )?tagger ", part):
                    out.append(part)
    return out


CORPUS_CONFIGS = {p.stem for p in (REPO / "configs").glob("*.yaml")
                  if not p.stem.startswith("sample-")}


def runs_for_real(command: str) -> bool:
    """False for what needs a model trained on a public corpus, or corpora that are absent."""
    words = shlex.split(command)
    if any(w.startswith("BMES_CORPORA=") for w in words):
        return False
    if any(f"configs/{name}.yaml" in command for name in CORPUS_CONFIGS):
        return False
    if any(w.startswith("runs/") and not w.startswith("runs/sample-") for w in words):
        return False
    return "../shared/corpora" not in command or CORPORA.is_dir()


def test_the_readme_has_the_commands_it_should() -> None:
    found = commands()
    assert found[0] == "tagger train configs/sample-cws.yaml"
    assert any(c.startswith("tagger predict") for c in found)
    assert any(c.startswith("tagger export") for c in found)
    assert sum(runs_for_real(c) for c in found) >= 10


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory with the repository's configs and data, where runs/ is new."""
    root = tmp_path_factory.mktemp("readme")
    for name in ("configs", "data"):
        (root / name).symlink_to(REPO / name)
    return root


def test_every_bash_command_runs(scratch: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BMES_CORPORA": str(CORPORA)}
    tagger = f"{shlex.quote(sys.executable)} -m bmes_tagger"
    for command in commands():
        if not runs_for_real(command):
            for name in CORPUS_CONFIGS:
                # at least: the config and its data paths load
                if f"configs/{name}.yaml" in command and CORPORA.is_dir():
                    load_config(REPO / "configs" / f"{name}.yaml")
            continue
        line = command.replace("../shared/corpora", str(CORPORA))
        line = re.sub(r"^tagger ", tagger + " ", line)
        proc = subprocess.run(["bash", "-c", line], cwd=scratch, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
    assert (scratch / "runs" / "sample-cws" / "best.onnx").is_file()
    assert (scratch / "out.txt").read_text(encoding="utf-8").count("\n") == len(
        (REPO / "data" / "sample-cws" / "raw.txt").read_text(encoding="utf-8").splitlines())


def test_python_blocks_run(scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (scratch / "runs" / "sample-ner" / "best.pt").exists():
        pytest.skip("needs the sample runs test_every_bash_command_runs trains first")
    monkeypatch.chdir(scratch)
    for code in blocks("python"):
        exec(compile(code, "README.md", "exec"), {})


def test_the_yaml_example_is_a_valid_config(tmp_path: Path) -> None:
    (example,) = blocks("yaml")
    # its data paths are relative to a configs/ folder beside data/
    (tmp_path / "configs").mkdir()
    (tmp_path / "data").symlink_to(REPO / "data")
    path = tmp_path / "configs" / "example.yaml"
    path.write_text(example, encoding="utf-8")
    cfg = load_config(path)
    assert cfg.data.task == "ner" and cfg.model.head == "crf"
