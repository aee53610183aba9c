"""Checkpoints: round trip, weights_only loading, atomic writes, and refusing bad files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from bmes_tagger.checkpoint import FORMAT_VERSION, load_checkpoint, make_payload, save_checkpoint
from bmes_tagger.config import Config, ModelConfig
from bmes_tagger.errors import CheckpointError
from bmes_tagger.model import TorchNetwork, build_model
from bmes_tagger.predict import Tagger
from bmes_tagger.vocab import Vocab

TEXTS = ["我们在北京工作。", "张三去了上海", "", "好"]


def make_tagger(task: str = "cws", head: str = "crf") -> Tagger:
    torch.manual_seed(0)
    cfg = Config(model=ModelConfig(embedding_dim=8, hidden_size=8, head=head))
    cfg = cfg.replace(data=cfg.data.__class__(task=task))
    vocab = Vocab(["<pad>", "<unk>", *"我们在北京工作。张三去了上海好"])
    tags = ["B", "M", "E", "S"] if task == "cws" else ["O", "B-PER", "M-PER", "E-PER", "S-PER"]
    model = build_model(cfg, {"chars": vocab}, tags).eval()
    return Tagger(TorchNetwork(model), {"chars": vocab}, tags, cfg, frozenset({"北京", "工作"}),
                  {"best_f1": 0.5})


def payload_of(tagger: Tagger) -> dict:
    return make_payload(tagger.config, tagger.vocabs, tagger.tags, tagger.train_words,
                        tagger.network.module.state_dict(), tagger.scores)


@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_round_trip_identical_predictions(tmp_path: Path, head: str) -> None:
    tagger = make_tagger(head=head)
    path = tmp_path / "m.pt"
    save_checkpoint(payload_of(tagger), path)
    raw = torch.load(path, weights_only=True)  # plain tensors and Python values only
    assert raw["format_version"] == FORMAT_VERSION
    loaded = Tagger.load(path)
    assert loaded.tag(TEXTS) == tagger.tag(TEXTS)
    assert loaded.segment(TEXTS) == tagger.segment(TEXTS)
    assert loaded.train_words == tagger.train_words
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind


def test_write_failure_leaves_old_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(payload_of(make_tagger()), path)
    before = path.read_bytes()
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        save_checkpoint({**payload_of(make_tagger()), "bad": lambda: 0}, path)  # mid-write
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def child_env() -> dict[str, str]:
    """The environment for a child interpreter that must import this checkout."""
    repo = str(Path(__file__).parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}


DISK_FULL = """
import resource, signal, sys
import torch
from bmes_tagger.checkpoint import save_checkpoint
from bmes_tagger.errors import CheckpointError
path, limit = sys.argv[1], int(sys.argv[2])
payload = torch.load(path, weights_only=True)
payload["scores"] = {"best_f1": 0.75}  # new content, same size
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
try:
    save_checkpoint(payload, path)
except CheckpointError as exc:
    print(exc)
"""


def test_a_full_disk_while_saving_keeps_the_old_checkpoint(tmp_path: Path) -> None:
    """A real failed write, not a mock: the child may not grow any file beyond half the
    checkpoint's size (RLIMIT_FSIZE, as a full disk or quota would stop it)."""
    import subprocess
    import sys

    path = tmp_path / "m.pt"
    save_checkpoint(payload_of(make_tagger()), path)
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", DISK_FULL, str(path), str(len(before) // 2)],
                          capture_output=True, text=True, timeout=120,
                          env=child_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{path}: could not write the checkpoint: File too large\n"
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind


@pytest.mark.slow
def test_a_full_disk_during_training_is_one_line_and_keeps_last_pt(tmp_path: Path) -> None:
    """The CLI: a file size limit that the checkpoints exceed (SIGXFSZ at its default, which
    would kill the process: the CLI ignores it to report the error)."""
    import subprocess
    import sys

    from conftest import tiny_config

    config = tiny_config(tmp_path)
    run = tmp_path / "run"
    env = child_env()

    def train(limit_kb: int | None, *extra: str) -> subprocess.CompletedProcess[str]:
        ulimit = f"ulimit -f {limit_kb}; " if limit_kb else ""
        return subprocess.run(["bash", "-c", f'{ulimit}exec "$@"', "bash", sys.executable,
                               "-m", "bmes_tagger", "train", str(config), "--quiet", *extra],
                              capture_output=True, text=True, timeout=300, env=env)

    proc = train(20, "--set", "train.epochs=1")  # best.pt (~60 kB) cannot be written
    assert proc.returncode == 1
    assert proc.stderr == (f"error: {run}/best.pt: could not write the checkpoint: "
                           "File too large\n")
    assert not list(run.glob(".*.tmp"))
    proc = train(None, "--set", "train.epochs=1", "--force")
    assert proc.returncode == 0, proc.stderr
    # a resumed epoch that improves on dev but cannot write best.pt: the evaluation's record
    # comes after best.pt, so metrics.jsonl never claims a best model that was not saved
    proc = train(20, "--set", "train.epochs=2", "--resume")
    assert proc.returncode == 1
    assert proc.stderr == (f"error: {run}/best.pt: could not write the checkpoint: "
                           "File too large\n")  # the seeded tiny run improves at epoch 2
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1]
    last = (run / "last.pt").read_bytes()
    # best.pt fits under the limit, last.pt (optimizer state: ~3x larger) does not
    limit_kb = ((run / "best.pt").stat().st_size + len(last)) // 2 // 1024
    proc = train(limit_kb, "--set", "train.epochs=2", "--resume")
    assert proc.returncode == 1
    assert proc.stderr == (f"error: {run}/last.pt: could not write the checkpoint: "
                           "File too large\n")
    assert (run / "last.pt").read_bytes() == last
    assert not list(run.glob(".*.tmp"))


def test_newer_format_version_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    payload = payload_of(make_tagger())
    save_checkpoint(payload, path)
    data = torch.load(path, weights_only=True)
    data["format_version"] = FORMAT_VERSION + 1
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="newer than this bmes_tagger"):
        load_checkpoint(path)


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "bmes_tagger", "format_version": 1, "x": _RunsCode(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path)
    assert not marker.exists()
    # the same object as a plain pickle file
    path.write_bytes(pickle.dumps(_RunsCode(str(marker))))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "checkpoint not found"),
        (b"", "not a readable checkpoint"),
        (bytes(range(256)) * 16, "not a readable checkpoint"),
        ("truncate", "not a readable checkpoint"),
        ("dir", "is a directory"),
        ("other", "not a bmes_tagger checkpoint"),
    ],
    ids=["missing", "empty", "random", "truncated", "directory", "foreign"],
)
def test_bad_files(tmp_path: Path, content: object, reason: str) -> None:
    path = tmp_path / "m.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncate":
        save_checkpoint(payload_of(make_tagger()), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif content == "dir":
        path.mkdir()
    elif content == "other":
        torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=reason) as info:
        Tagger.load(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_atomic_write_keeps_the_old_file_on_any_interruption(tmp_path: Path,
                                                             error: type) -> None:
    from bmes_tagger.atomic import atomic_write

    path = tmp_path / "out.txt"
    with atomic_write(path) as f:
        f.write("old\r\n")
    assert path.read_bytes() == b"old\r\n"  # text mode writes what it is given, UTF-8
    with pytest.raises(error), atomic_write(path) as f:
        f.write("half of the new")
        raise error()
    assert path.read_bytes() == b"old\r\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with atomic_write(tmp_path / "new" / "dir" / "x.bin", binary=True) as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "new" / "dir" / "x.bin").read_bytes() == b"\x00\x01"


def old_payload(tagger: Tagger, version: int) -> dict:
    """The layout format versions 1 (lists) and 2 (joined strings) had: vocabularies at the
    top level and embedding weights named per feature."""
    state = {("embedding.weight" if k == "embedding.tables.chars.weight" else k): v
             for k, v in tagger.network.module.state_dict().items()}
    join = (lambda x: x) if version == 1 else "\n".join
    return {"format": "bmes_tagger", "format_version": version,
            "config": tagger.config.to_dict(), "chars": join(tagger.vocabs["chars"].tokens),
            "bigrams": join([]), "tags": tagger.tags,
            "train_words": join(sorted(tagger.train_words)), "model": state,
            "scores": tagger.scores}


@pytest.mark.parametrize("version", [1, 2])
def test_older_format_versions_load_through_the_migrations(tmp_path: Path, version: int
                                                           ) -> None:
    tagger = make_tagger()
    old = tmp_path / f"v{version}.pt"
    torch.save(old_payload(tagger, version), old)
    loaded = Tagger.load(old)
    assert loaded.segment(TEXTS) == tagger.segment(TEXTS)
    assert loaded.train_words == tagger.train_words
    raw = torch.load(save_and_read(tmp_path, tagger), weights_only=True)
    assert raw["vocabs"]["chars"] == "\n".join(tagger.vocabs["chars"].tokens)
    with pytest.raises(ValueError, match="contains a newline"):
        make_payload(tagger.config, {"chars": Vocab(["<pad>", "<unk>", "a\nb"])}, tagger.tags,
                     [], {})


def save_and_read(tmp_path: Path, tagger: Tagger) -> Path:
    path = tmp_path / "current.pt"
    save_checkpoint(payload_of(tagger), path)
    return path


def test_a_format_2_checkpoint_gives_bit_identical_emissions() -> None:
    """Oracle across the rebuild of the core: a checkpoint written by the code before inputs
    became named features (format 2, CRF, bigrams both ways, classes), and the emissions and
    words that code computed for it (both made by commit 69badff), must come out exactly the
    same through the migration and the new feature encoding."""
    from bmes_tagger.batching import EncodedCorpus

    data = Path(__file__).parent / "data"
    expected = torch.load(data / "format2-crf-bigrams-classes.expected.pt", weights_only=True)
    raw = torch.load(data / "format2-crf-bigrams-classes.pt", weights_only=True)
    assert raw["format_version"] == 2
    tagger = Tagger.load(data / "format2-crf-bigrams-classes.pt", device="cpu")
    texts = expected["texts"]
    batch = EncodedCorpus.encode([list(t) for t in texts], tagger.vocabs, tagger.config
                                 ).batch(list(range(len(texts))))
    emissions = tagger.network.emissions(batch.inputs, batch.lengths)
    # Bit-identical on the CPU kind that made the expected file; another kind's SIMD kernels
    # (AMD EPYC vs Intel Xeon here) round float32 differently by a few ULPs,
    # far below what a wrong id or weight in the migration or the encoding would move.
    torch.testing.assert_close(torch.from_numpy(emissions), expected["emissions"], rtol=0,
                               atol=2e-6)
    assert tagger.segment(texts) == expected["segment"]
