"""Bad input through the command line, table-driven.

Every case in ``BAD`` must exit 1 (2 for the ``USAGE`` ones) with exactly one line on stderr
that names the file (with its line number or config key where there is one) and the problem,
print no traceback, and leave the working directory exactly as it was: no new or changed file
(no ``*.tmp``, no ``.lock``, no ``best.pt``/``last.pt``, no partial ``--output``); only empty
directories may appear. The cases in ``GOOD`` are awkward but valid inputs that must succeed.

Real models are trained once per module (one tiny CWS, one tiny NER, one epoch each).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner, Result

from bmes_tagger.checkpoint import FORMAT_VERSION
from bmes_tagger.cli import app
from conftest import DATA, tiny_config

runner = CliRunner()

CWS_TRAIN = DATA / "sample-cws" / "train.txt"
CWS_DEV = DATA / "sample-cws" / "dev.txt"
NER_DEV = DATA / "sample-ner" / "dev.bmes"
TINY_MODEL = "model:\n  embedding_dim: 4\n  hidden_size: 4\ntrain:\n  epochs: 1\n  threads: 1\n"


@dataclass(frozen=True)
class Models:
    cws: Path
    ner: Path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    paths = {}
    for task, head in (("cws", "softmax"), ("ner", "crf")):
        tmp = tmp_path_factory.mktemp(f"model-{task}")
        result = runner.invoke(app, ["train", str(tiny_config(tmp, task, head)), "--quiet",
                                     "--set", "train.epochs=1"])
        assert result.exit_code == 0, result.output
        paths[task] = tmp / "run" / "best.pt"
    return Models(**paths)


class _RunsCode:
    """Pickles to a call of ``os.system``: loading it unsafely would run the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


class Env:
    """Builds one case's inputs in its own tmp_path, which is also the working directory."""

    def __init__(self, tmp: Path, models: Models) -> None:
        self.tmp = tmp
        self.cws = models.cws
        self.ner = models.ner
        self.run = tmp / "run"
        self.marker = tmp / "PWNED"
        self.stdin: bytes | None = None

    # --- files ---------------------------------------------------------------------------

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    def dir(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def held_lock(self, run: str) -> Path:
        """A run directory whose lock another process holds (its flock; PID 1 inside)."""
        import fcntl

        path = self.file(f"{run}/.lock", "1")
        self._held = path.open("rb")  # kept open for the case's lifetime
        fcntl.flock(self._held, fcntl.LOCK_EX)
        return path

    def symlink(self, name: str, target: Path | str) -> Path:
        path = self.tmp / name
        path.symlink_to(target)
        return path

    def hardlink(self, name: str, target: Path) -> Path:
        path = self.tmp / name
        os.link(target, path)
        return path

    def run_dir_with_metrics(self, name: str = "rd") -> Path:
        """A run directory holding a real metrics.jsonl (what `tagger plot` reads)."""
        self.file(f"{name}/metrics.jsonl", (self.cws.parent / "metrics.jsonl").read_bytes())
        return self.tmp / name

    def pipe(self, data: bytes) -> str:
        self.stdin = data
        return "-"

    def payload(self, task: str = "cws") -> dict[str, Any]:
        return torch.load(self.cws if task == "cws" else self.ner, weights_only=True)

    def checkpoint(self, name: str, payload: Any) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
        return path

    def hostile(self, name: str, change: Callable[[dict[str, Any]], Any], source: str = "best",
                task: str = "cws") -> Path:
        """A copy of a real checkpoint (``best`` or ``last``) that ``change`` edits in place."""
        model = self.cws if task == "cws" else self.ner
        payload = torch.load(model if source == "best" else model.parent / "last.pt",
                             weights_only=True)
        with warnings.catch_warnings():
            # torch's notices about making sparse or quantized tensors: building the case is
            # not what is tested (loading it must print nothing but the error)
            warnings.simplefilter("ignore")
            change(payload)
            return self.checkpoint(name, payload)

    def resume_from(self, change: Callable[[dict[str, Any]], Any]) -> list[str]:
        """``tagger train --resume`` on ./run whose last.pt is a real one edited by ``change``."""
        self.hostile("run/last.pt", change, "last")
        return self.train_data(extra=("--resume",))

    def train_in_run_dir(self, *extra: str) -> list[str]:
        """``tagger train run/config.yaml --output run`` where run/ holds a finished run."""
        self.file("run/best.pt", self.cws.read_bytes())
        cfg = self.file("run/config.yaml", f"data:\n  train: {CWS_TRAIN}\n  dev: {CWS_DEV}\n"
                        + TINY_MODEL)
        return ["train", str(cfg), "--output", str(self.run), "--quiet", *extra]

    def resume_real_run(self, change: Callable[[dict[str, Any]], Any]) -> list[str]:
        """``tagger train --resume`` of a real run in ./run whose last.pt ``change`` edited."""
        argv = self.train_data()
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, result.output
        last = self.run / "last.pt"
        payload = torch.load(last, weights_only=True)
        change(payload)
        torch.save(payload, last)
        return [*argv, "--resume"]

    def vectors(self, name: str, value: str, dim: int = 4) -> Path:
        chars = "我们在北京工作的"
        return self.file(name, "".join(f"{c} {' '.join([value] * dim)}\n" for c in chars))

    def nested(self, name: str, depth: int) -> Path:
        """A real checkpoint whose scores hold a list nested ``depth`` deep (as pickle bytes:
        building it with torch.save would itself overflow the stack)."""
        payload = torch.load(self.cws, weights_only=True)
        payload["scores"]["dev"]["per_type"] = {"X": "NESTED"}
        path = self.checkpoint(name, payload)
        import zipfile

        with zipfile.ZipFile(path) as z:
            entries = {n: z.read(n) for n in z.namelist()}
        key = next(n for n in entries if n.endswith("data.pkl"))
        marker = b"X\x06\x00\x00\x00NESTED"  # BINUNICODE of the placeholder string
        deep = b"]" * depth + b"a" * (depth - 1)  # EMPTY_LIST, then APPEND into each outer
        entries[key] = entries[key].replace(marker, deep, 1)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            for n, data in entries.items():
                z.writestr(n, data)
        return path

    def zip_bomb(self, name: str) -> Path:
        """A small zip whose one record inflates to 1 GB."""
        import zipfile

        path = self.tmp / name
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, \
                z.open("archive/data.pkl", "w", force_zip64=True) as f:
            block = b"\0" * (1 << 20)
            for _ in range(1024):
                f.write(block)
        return path

    def evil_pickle(self, name: str, protocol: int) -> Path:
        path = self.tmp / name
        path.write_bytes(pickle.dumps(_RunsCode(f"touch {self.marker}"), protocol=protocol))
        return path

    # --- command lines -------------------------------------------------------------------

    def train(self, body: str, *extra: str) -> list[str]:
        """``tagger train`` on ./c.yaml holding ``body`` (output goes to ./run)."""
        cfg = self.file("c.yaml", body + ("" if "output:" in body else
                                          f"output:\n  dir: {self.run}\n"))
        return ["train", str(cfg), "--quiet", *extra]

    def train_data(self, train: Path | str = CWS_TRAIN, dev: Path | str | None = CWS_DEV,
                   task: str = "cws", fmt: str = "segmented", extra: tuple[str, ...] = ()
                   ) -> list[str]:
        """``tagger train`` of a tiny model on the given files, with extra arguments."""
        dev_line = f"  dev: {dev}\n" if dev is not None else ""
        body = (f"data:\n  task: {task}\n  format: {fmt}\n  train: {train}\n{dev_line}"
                + TINY_MODEL)
        return self.train(body, *extra)

    def train_with_vectors(self, vectors: Path, *extra: str) -> list[str]:
        """``tagger train`` of a tiny model whose character vectors are ``vectors``."""
        return self.train(f"data:\n  train: {CWS_TRAIN}\n  dev: {CWS_DEV}\n" + TINY_MODEL
                          .replace("model:\n", f"model:\n  char_vectors: {vectors}\n"), *extra)

    def train_with_lexicon(self, words: str) -> list[str]:
        """``tagger train`` of a tiny model whose lexicon is ./w.txt holding ``words``."""
        return self.train(f"data:\n  train: {CWS_TRAIN}\n  dev: {CWS_DEV}\n" + TINY_MODEL
                          .replace("model:\n", f"model:\n  lexicon: {self.file('w.txt', words)}\n"))

    def convert_jsonl(self, content: str) -> list[str]:
        """``tagger convert`` of ./c.jsonl holding ``content`` to conll."""
        return ["convert", str(self.file("c.jsonl", content)), str(self.tmp / "out.txt"),
                "--from", "jsonl", "--to", "conll"]

    def eval_ner(self, name: str, content: str | bytes, *extra: str) -> list[str]:
        data = self.file(name, content)
        return ["eval", "--model", str(self.ner), "--data", str(data), "--format", "conll",
                *extra]

    def eval_cws(self, name: str, content: str | bytes, fmt: str = "segmented") -> list[str]:
        data = self.file(name, content)
        return ["eval", "--model", str(self.cws), "--data", str(data), "--format", fmt]

    def predict(self, model: Path | str, *extra: str, text: str = "我们在北京工作。\n"
                ) -> list[str]:
        return ["predict", str(self.file("in.txt", text)), "--model", str(model), *extra]


Build = Callable[[Env], list[str]]
# torch prints warnings while loading some hostile files: on the command line they are lines
# on stderr before the error, so any warning fails the case
NO_WARNINGS = pytest.mark.filterwarnings("error")


def last(*steps: Any) -> Any:
    """Lets a one-line case do some setup first: the arguments are evaluated in order, and the
    last one (the command line) is returned."""
    return steps[-1]


def case(id: str, build: Build, *needles: str, marks: Any = ()) -> Any:
    """One row: ``build`` writes the inputs and returns argv; ``needles`` must all be in the
    error line (``{tmp}`` is the case's directory)."""
    return pytest.param(build, needles, id=id, marks=marks)


def alias_bomb() -> str:
    """A ~340-byte YAML flow mapping whose aliases expand to 9**9 strings (billion laughs)."""
    parts, prev = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"], "a"
    for name in "bcdefgh":
        parts.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
        prev = name
    parts.append(f"i: [{', '.join([f'*{prev}'] * 9)}]")
    return "{" + ", ".join(parts) + "}"


def merge_bomb() -> str:
    """YAML ``<<`` merges that repeat a mapping's keys ninefold per level: PyYAML's merge
    flattening would build a list of 9**9 key/value pairs."""
    lines = ["x0: &x0 {k: 1}"]
    lines += [f"x{i}: &x{i} {{<<: [{', '.join([f'*x{i - 1}'] * 9)}]}}" for i in range(1, 10)]
    return "train:\n  lr:\n" + "".join(f"    {line}\n" for line in lines)


GBK = "我们 在 北京\n".encode("gbk")
LATIN1 = "ok\ncafé au lait\n".encode("latin-1")
BAD_VECTORS = "我 1 2 3 4\n".encode() + GBK  # a GBK second line
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10"

BAD = [
    # --- corpus files ------------------------------------------------------------------------
    case("corpus/no-tag", lambda e: e.eval_ner("d.bmes", "张 B-PER\n伟\n"),
         "{tmp}/d.bmes:2", "expected 'CHAR TAG'", "missing tag"),
    case("corpus/no-tag-train", lambda e: e.train_data(
        e.file("t.bmes", "张 B-PER\n伟 E-PER\n\n在 O\n京\n"), NER_DEV, "ner", "conll"),
         "{tmp}/t.bmes:5", "expected 'CHAR TAG'"),
    case("corpus/tag-outside-scheme", lambda e: e.eval_ner("d.bmes", "张 X-PER\n伟 E-PER\n"),
         "{tmp}/d.bmes:1", "unknown tag 'X-PER'"),
    case("corpus/bio-tag-in-bmes-file", lambda e: e.eval_ner("d.bmes", "张 B-PER\n伟 I-PER\n"),
         "{tmp}/d.bmes:2", "unknown tag 'I-PER' for scheme bmes"),
    case("corpus/typed-O", lambda e: e.eval_ner("d.bmes", "张 O-PER\n"),
         "{tmp}/d.bmes:1", "unknown tag 'O-PER'"),
    case("corpus/empty-type", lambda e: e.eval_ner("d.bmes", "张 O\n伟 S-\n"),
         "{tmp}/d.bmes:2", "unknown tag 'S-'"),
    case("corpus/untyped-tag-for-ner", lambda e: e.eval_ner("d.bmes", "张 B\n伟 E\n"),
         "{tmp}/d.bmes:1", "'B' has no entity type", "trained for NER"),
    case("gold/B-B", lambda e: e.eval_ner("d.bmes", "张 B-PER\n伟 B-PER\n"),
         "{tmp}/d.bmes:2", "illegal BMES sequence", "B-PER cannot follow B-PER"),
    case("gold/M-after-O", lambda e: e.eval_ner("d.bmes", "在 O\n伟 M-PER\n伟 E-PER\n"),
         "{tmp}/d.bmes:2", "M-PER cannot follow O"),
    case("gold/E-PER-after-B-LOC", lambda e: e.eval_ner("d.bmes", "北 B-LOC\n京 E-PER\n"),
         "{tmp}/d.bmes:2", "E-PER cannot follow B-LOC"),
    case("gold/sentence-ends-in-B", lambda e: e.eval_ner("d.bmes", "在 O\n张 B-PER\n\n好 O\n"),
         "{tmp}/d.bmes:2", "ends inside an open span"),
    case("gold/cws-B-B", lambda e: e.eval_cws("d.bmes", "我 B\n们 B\n", "conll"),
         "{tmp}/d.bmes:2", "B cannot follow B"),
    case("gold/bio-I-after-O", lambda e: e.eval_ner("d.bio", "在 O\n伟 I-PER\n", "--scheme",
                                                    "bio"),
         "{tmp}/d.bio:2", "illegal BIO sequence", "I-PER cannot follow O"),
    case("gold/bioes-B-then-O", lambda e: e.eval_ner("d.bioes", "张 B-PER\n在 O\n", "--scheme",
                                                     "bioes"),
         "{tmp}/d.bioes:2", "illegal BIOES sequence"),
    case("gold/illegal-in-train", lambda e: e.train_data(
        e.file("t.bmes", "张 S-PER\n\n在 O\n伟 M-PER\n"), NER_DEV, "ner", "conll"),
         "{tmp}/t.bmes:4", "M-PER cannot follow O", "repair_gold"),
    case("encoding/gbk", lambda e: e.eval_cws("d.txt", GBK),
         "{tmp}/d.txt:1", "not valid UTF-8", "iconv"),
    case("encoding/latin-1", lambda e: e.eval_cws("d.txt", LATIN1),
         "{tmp}/d.txt:2", "not valid UTF-8 (byte 0xe9 at column 4)"),
    case("encoding/gbk-train", lambda e: e.train_data(e.file("t.txt", GBK)),
         "{tmp}/t.txt:1", "not valid UTF-8"),
    case("encoding/gbk-dev", lambda e: e.train_data(CWS_TRAIN, e.file("dev.txt", GBK)),
         "{tmp}/dev.txt:1", "not valid UTF-8"),
    case("encoding/nul-byte", lambda e: e.eval_cws("d.txt", b"ab cd\nx\x00y\n"),
         "{tmp}/d.txt:2", "NUL byte"),
    case("encoding/nul-byte-conll-train", lambda e: e.train_data(
        e.file("t.bmes", b"\xe5\xbc\xa0 S-PER\n\x00 O\n"), NER_DEV, "ner", "conll"),
         "{tmp}/t.bmes:2", "NUL byte"),
    # a JSON escape spells what raw bytes cannot: one rule for both (NUL, lone surrogates)
    case("encoding/json-nul-escape", lambda e: e.convert_jsonl(
        '{"text": "a\\u0000b", "label": {}}\n'),
         "{tmp}/c.jsonl:1", '"text" contains a NUL byte'),
    case("encoding/json-lone-surrogate", lambda e: e.convert_jsonl(
        '{"text": "\u5f20\u4f1f", "label": {}}\n{"text": "ab\\ud800c", "label": {}}\n'),
         "{tmp}/c.jsonl:2", '"text" contains a lone surrogate U+D800'),
    case("encoding/json-lone-surrogate-mention", lambda e: e.convert_jsonl(
        '{"text": "ab", "label": {"PER": {"\\udc00": [[0, 0]]}}}\n'),
         "{tmp}/c.jsonl:1", "PER mention contains a lone surrogate U+DC00"),
    case("file/json-nested-100k-deep", lambda e: e.convert_jsonl(
        '{"text": "ab", "label": {}}\n' + "[" * 100_000 + "\n"),
         "{tmp}/c.jsonl:2", "nested too deeply"),
    case("convert/conll-token-jsonl-cannot-hold", lambda e: [
        "convert", str(e.file("c.bmes", "张三 S-PER\n在 O\n\n")), str(e.tmp / "out.jsonl"),
        "--from", "conll", "--to", "jsonl"],
         "{tmp}/c.bmes:1", "token '张三' cannot be written as jsonl"),
    case("file/dev-zero-predict", lambda e: ["predict", "/dev/zero", "--model", str(e.cws)],
         "/dev/zero:1", "line 1 is longer than 16 MiB"),
    case("file/dev-zero-stdin", lambda e: ["predict", e.pipe(bytes(17 << 20)), "--model",
                                           str(e.cws)],
         "<stdin>:1", "line 1 is longer than 16 MiB"),
    case("file/dev-zero-dev", lambda e: e.train_data(CWS_TRAIN, "/dev/zero"),
         "/dev/zero:1", "line 1 is longer than 16 MiB"),
    case("file/empty", lambda e: e.eval_cws("d.txt", b""),
         "{tmp}/d.txt", "no sentences"),
    case("file/empty-train", lambda e: e.train_data(e.file("t.txt", b"")),
         "{tmp}/t.txt", "no sentences"),
    case("file/only-blank-lines", lambda e: e.eval_cws("d.txt", "\n \n\t\n\u3000\n"),
         "{tmp}/d.txt", "no sentences"),
    case("file/only-blank-lines-conll", lambda e: e.eval_ner("d.bmes", "\n\n  \n"),
         "{tmp}/d.bmes", "no sentences"),
    case("file/data-is-directory", lambda e: ["eval", "--model", str(e.cws), "--data",
                                              str(e.dir("corpus"))],
         "{tmp}/corpus", "is a directory"),
    case("file/data-missing", lambda e: ["eval", "--model", str(e.cws), "--data",
                                         str(e.tmp / "nope.txt")],
         "{tmp}/nope.txt", "file not found"),
    case("file/train-words-gbk", lambda e: ["eval", "--model", str(e.cws), "--data",
                                            str(CWS_DEV), "--train-words",
                                            str(e.file("w.txt", GBK))],
         "{tmp}/w.txt:1", "not valid UTF-8"),
    case("file/train-words-missing", lambda e: ["eval", "--model", str(e.cws), "--data",
                                                str(CWS_DEV), "--train-words",
                                                str(e.tmp / "w.txt")],
         "{tmp}/w.txt", "file not found"),
    case("task/cws-model-on-ner-file", lambda e: ["eval", "--model", str(e.cws), "--data",
                                                  str(e.file("ner.bmes", "张 B-PER\n伟 E-PER\n")),
                                                  "--format", "conll"],
         "{tmp}/ner.bmes:1", "not a word-segmentation tag", "trained for word segmentation"),
    case("task/ner-model-on-segmented-file", lambda e: ["eval", "--model", str(e.ner), "--data",
                                                        str(e.file("seg.txt", "我们 在 北京\n")),
                                                        "--format", "segmented"],
         "{tmp}/seg.txt", "only holds word segmentation", "trained for NER"),
    case("task/ner-model-on-segmented-file-as-conll",
         lambda e: ["eval", "--model", str(e.ner), "--data",
                    str(e.file("seg.txt", "我们 在 北京\n"))],
         "{tmp}/seg.txt:1", "unknown tag '北京'"),
    case("task/segmented-format-for-ner-train", lambda e: e.train_data(CWS_TRAIN, None, "ner"),
         str(CWS_TRAIN), "use format: conll for NER"),
    # --- config ----------------------------------------------------------------------------
    # F8: checked before anything is allocated, naming the key that makes it large
    case("config/hidden-size-1e9", lambda e: e.train_data(extra=(
        "--set", "model.hidden_size=1000000000")),
         "{tmp}/c.yaml", "model.hidden_size=1000000000: the network would have",
         "more than this machine's"),
    case("config/embedding-dim-1e9", lambda e: e.train_data(extra=(
        "--set", "model.embedding_dim=1000000000")),
         "{tmp}/c.yaml", "model.embedding_dim=1000000000: the network would have",
         "parameters ("),
    case("config/unknown-key", lambda e: e.train("model:\n  hiden_size: 3\n"),
         "{tmp}/c.yaml:2", "model.hiden_size", "unknown key", "did you mean 'hidden_size'"),
    case("config/unknown-section", lambda e: e.train("data:\n  task: cws\nmodle:\n  cell: gru\n"),
         "{tmp}/c.yaml:3", "unknown section 'modle'", "did you mean 'model'"),
    case("config/wrong-type-string", lambda e: e.train("model:\n  hidden_size: big\n"),
         "{tmp}/c.yaml:2", "model.hidden_size", "expected an integer", "'big'"),
    case("config/wrong-type-bool", lambda e: e.train("train:\n  epochs: true\n"),
         "{tmp}/c.yaml:2", "train.epochs", "got a boolean"),
    case("config/wrong-type-list", lambda e: e.train("train:\n  lr: [0.1]\n"),
         "{tmp}/c.yaml:2", "train.lr", "expected a number, got a list"),
    case("config/wrong-type-float-for-int", lambda e: e.train("data:\n  max_len: 12.5\n"),
         "{tmp}/c.yaml:2", "data.max_len", "expected an integer"),
    case("config/negative-hidden-size", lambda e: e.train("model:\n  hidden_size: -3\n"),
         "{tmp}/c.yaml:2", "model.hidden_size", "must be >= 1, got -3"),
    case("config/negative-batch-size", lambda e: e.train("train:\n  batch_size: -1\n"),
         "{tmp}/c.yaml:2", "train.batch_size", "must be >= 1"),
    case("config/zero-embedding", lambda e: e.train("model:\n  embedding_dim: 0\n"),
         "{tmp}/c.yaml:2", "model.embedding_dim", "must be >= 1"),
    case("config/dropout-1", lambda e: e.train("model:\n  dropout: 1.0\n"),
         "{tmp}/c.yaml:2", "model.dropout", "must be < 1.0"),
    case("config/embedding-dropout-1.5", lambda e: e.train("model:\n  embedding_dropout: 1.5\n"),
         "{tmp}/c.yaml:2", "model.embedding_dropout", "must be < 1.0"),
    case("config/lr-nan", lambda e: e.train("train:\n  lr: .nan\n"),
         "{tmp}/c.yaml:2", "train.lr", "finite"),
    case("config/clip-inf", lambda e: e.train("train:\n  clip_norm: .inf\n"),
         "{tmp}/c.yaml:2", "train.clip_norm", "finite"),
    case("config/seed-overflow", lambda e: e.train("train:\n  seed: 99999999999999999999\n"),
         "{tmp}/c.yaml:2", "train.seed", "at most"),
    case("config/bad-choice", lambda e: e.train("model:\n  cell: lstn\n"),
         "{tmp}/c.yaml:2", "model.cell", "'lstn' is not one of", "did you mean 'lstm'"),
    case("config/missing-data-train", lambda e: e.train("data:\n  task: cws\n"),
         "{tmp}/c.yaml", "data.train", "required for training"),
    # raised by train() without a source: train_cli names the config file
    case("config/no-dev-data", lambda e: e.train(
        f"data:\n  task: cws\n  train: {CWS_TRAIN}\n  dev_fraction: 0\n" + TINY_MODEL),
         "error: {tmp}/c.yaml: data.dev: no dev file and data.dev_fraction is 0"),
    case("config/data-path-missing", lambda e: e.train("data:\n  task: cws\n  train: nope.txt\n"),
         "{tmp}/c.yaml:3", "data.train", "file not found", "{tmp}/nope.txt"),
    case("config/dev-is-directory", lambda e: e.train(
        f"data:\n  train: {CWS_TRAIN}\n  dev: {e.dir('devdir')}\n"),
         "{tmp}/c.yaml:3", "data.dev", "is a directory"),
    case("config/path-with-nul", lambda e: e.train('data:\n  train: "a\\0b"\n'),
         "{tmp}/c.yaml:2", "data.train", "NUL"),
    case("config/path-unknown-user", lambda e: e.train("data:\n  train: ~no_such_user_x/t\n"),
         "{tmp}/c.yaml", "data.train", "unusable path"),
    case("config/env-var-unset", lambda e: e.train("data:\n  train: ${BMES_TEST_UNSET_VAR}\n"),
         "{tmp}/c.yaml:2", "data.train", "BMES_TEST_UNSET_VAR is not set"),
    case("config/yaml-syntax-error", lambda e: e.train("data:\n  task: cws\n   train: x\n"),
         "{tmp}/c.yaml:3", "YAML syntax error"),
    case("config/yaml-unclosed-bracket", lambda e: e.train("data:\n  task: [cws\nmodel: {}\n"),
         "{tmp}/c.yaml:", "YAML syntax error"),
    case("config/yaml-bad-date", lambda e: e.train("data:\n  task: cws\n  train: 2001-13-45\n"),
         "{tmp}/c.yaml:3", "2001-13-45"),
    case("config/yaml-bad-int-tag", lambda e: e.train("model:\n  hidden_size: !!int xyz\n"),
         "{tmp}/c.yaml:2", "'xyz'"),
    case("config/yaml-too-deep", lambda e: ["train", str(e.file("c.yaml", "[" * 1500))],
         "{tmp}/c.yaml", "nested too deeply"),
    case("config/yaml-alias-bomb", lambda e: e.train(f"train:\n  lr: {alias_bomb()}\n"),
         "{tmp}/c.yaml:2: too many values for a config"),
    case("config/yaml-merge-bomb", lambda e: e.train(merge_bomb()),
         "{tmp}/c.yaml:", "for a config"),
    case("config/yaml-deep-but-parsable", lambda e: e.train("train:\n  lr: " + "[" * 40
                                                           + "]" * 40 + "\n"),
         "{tmp}/c.yaml:2: nested too deeply for a config"),
    case("config/duplicate-key", lambda e: e.train("train:\n  lr: 0.1\n  epochs: 2\n"
                                                   "  lr: 0.2\n"),
         "{tmp}/c.yaml:4: train.lr: key given twice, on lines 2 and 4"),
    case("config/duplicate-section", lambda e: e.train("train:\n  lr: 0.1\nmodel:\n  cell: gru\n"
                                                       "train:\n  epochs: 2\n"),
         "{tmp}/c.yaml:5: train: section given twice, on lines 1 and 5"),
    case("config/float-form-for-int", lambda e: e.train("train:\n  epochs: 1e1\n"),
         "{tmp}/c.yaml:2: train.epochs: expected an integer, got a number (1e1); write 10"),
    case("config/200kB-string", lambda e: e.train("data:\n  task: " + "x" * 200_000 + "\n"),
         "{tmp}/c.yaml:2: data.task: too long: 200000 characters (at most 4096)"),
    case("config/huge-key", lambda e: e.train("model:\n  ? " + "k" * 200_000 + "\n  : 1\n"),
         "{tmp}/c.yaml:2: model.kkkk", "\u2026", "unknown key"),
    case("config/file-over-1MiB", lambda e: e.train("# " + "x" * (1 << 20) + "\n"),
         "{tmp}/c.yaml: too large for a config file"),
    case("config/yaml-python-tag", lambda e: e.train(
        f"data:\n  train: !!python/object/apply:os.system ['touch {e.marker}']\n"),
         "{tmp}/c.yaml:2", "python/object/apply"),
    case("config/empty-file", lambda e: ["train", str(e.file("empty.yaml", ""))],
         "{tmp}/empty.yaml", "config file is empty"),
    case("config/only-comments", lambda e: ["train", str(e.file("c.yaml", "# nothing\n"))],
         "{tmp}/c.yaml", "config file is empty"),
    case("config/is-a-list", lambda e: ["train", str(e.file("c.yaml", "- data\n- model\n"))],
         "{tmp}/c.yaml", "expected a mapping of sections", "got a list"),
    case("config/is-a-string", lambda e: ["train", str(e.file("c.yaml", "hello\n"))],
         "{tmp}/c.yaml", "got a string"),
    case("config/section-not-mapping", lambda e: e.train("data: 3\n"),
         "{tmp}/c.yaml:1", "section 'data' must be a mapping"),
    case("config/not-utf8", lambda e: ["train", str(e.file("c.yaml", "data:\n  task: 我\n"
                                                               .encode("gbk")))],
         "{tmp}/c.yaml", "not valid UTF-8"),
    case("config/missing-file", lambda e: ["train", str(e.tmp / "nope.yaml")],
         "{tmp}/nope.yaml", "config file not found"),
    case("config/is-a-directory", lambda e: ["train", str(e.dir("conf"))],
         "{tmp}/conf", "is a directory"),
    case("set/no-equals", lambda e: e.train_data(extra=("--set", "train.epochs")),
         "--set train.epochs", "expected SECTION.KEY=VALUE"),
    case("set/three-parts", lambda e: e.train_data(extra=("--set", "train.lr.x=1")),
         "--set train.lr.x=1", "expected SECTION.KEY=VALUE"),
    case("set/empty-key", lambda e: e.train_data(extra=("--set", "=3")),
         "--set =3", "expected SECTION.KEY=VALUE"),
    case("set/unknown-key", lambda e: e.train_data(extra=("--set", "train.epoch=3")),
         "--set train.epoch=3: train.epoch: unknown key", "did you mean 'epochs'"),
    case("set/unknown-section", lambda e: e.train_data(extra=("--set", "trian.epochs=3")),
         "--set trian.epochs=3", "unknown section 'trian'", "did you mean 'train'"),
    case("set/wrong-type", lambda e: e.train_data(extra=("--set", "model.hidden_size=[1")),
         "--set model.hidden_size=[1: model.hidden_size: expected an integer"),
    case("set/out-of-range", lambda e: e.train_data(extra=("--set", "data.dev_fraction=0.9")),
         "--set data.dev_fraction=0.9: data.dev_fraction: must be < 0.5"),
    case("set/alias-bomb", lambda e: e.train_data(extra=("--set", f"train.lr={alias_bomb()}")),
         "--set train.lr=", "too many values for a config"),
    case("set/200kB-value", lambda e: e.train_data(extra=("--set", "data.task=" + "x" * 200_000)),
         "--set data.task=xxx", "\u2026", "data.task: too long: 200000 characters"),
    case("set/float-form-for-int", lambda e: e.train_data(extra=("--set", "train.epochs=5E4")),
         "--set train.epochs=5E4: train.epochs: expected an integer, got a number (5E4); "
         "write 50000"),
    case("set/overrides-a-file-key", lambda e: e.train("train:\n  lr: 0.1\n", "--set",
                                                       "train.lr=abc"),
         "error: --set train.lr=abc: train.lr: expected a number, got a string ('abc')"),
    case("set/env-var-unset", lambda e: e.train_data(extra=(
        "--set", "data.dev=${BMES_TEST_UNSET_VAR}")),
         "--set data.dev=${{BMES_TEST_UNSET_VAR}}: data.dev: environment variable "
         "BMES_TEST_UNSET_VAR is not set"),
    case("set/path-missing", lambda e: e.train_data(extra=("--set", "data.dev=nope.txt")),
         "--set data.dev=nope.txt: data.dev: file not found: {tmp}/nope.txt"),
    case("set/section-is-not-mapping", lambda e: e.train("data: [1]\n", "--set", "data.task=cws"),
         "--set data.task=cws", "not a mapping"),
    # --- run directory -------------------------------------------------------------------------
    case("run/already-holds-a-run", lambda e: last(
        e.file("run/best.pt", e.cws.read_bytes()), e.file("run/config.yaml", "x: 1\n"),
        e.train_data()),
         "{tmp}/run", "already holds a run", "--resume", "--force"),
    case("run/locked", lambda e: last(e.held_lock("run"), e.train_data()),
         "{tmp}/run", "another tagger train (PID 1)"),
    case("run/resume-nothing", lambda e: e.train_data(extra=("--resume",)),
         "{tmp}/run", "nothing to resume"),
    case("run/resume-truncated-last", lambda e: last(
        e.file("run/last.pt", e.cws.read_bytes()[:300]),
        e.train_data(extra=("--resume",))),
         "{tmp}/run/last.pt", "not a readable checkpoint"),
    case("run/resume-without-training-state", lambda e: last(
        e.file("run/last.pt", e.cws.read_bytes()),
        e.train_data(extra=("--resume",))),
         "{tmp}/run/last.pt", "no training state"),
    case("run/resume-unknown-loop-keys", lambda e: e.resume_from(
        lambda p: p["training"]["loop"].update(bogus=1)),
         "{tmp}/run/last.pt", "training.loop holds"),
    case("run/resume-empty-optimizer-state", lambda e: e.resume_from(
        lambda p: p["training"].update(optimizer={})),
         "{tmp}/run/last.pt", "training.optimizer is not an optimizer state"),
    case("run/resume-optimizer-of-another-model", lambda e: e.resume_real_run(
        lambda p: p["training"]["optimizer"]["param_groups"][0].update(params=[0])),
         "{tmp}/run/last.pt", "does not fit this model"),
    case("run/resume-wrong-weight-shape", lambda e: e.resume_from(
        lambda p: p["model"].update({"output.bias": torch.zeros(7)})),
         "{tmp}/run/last.pt", "model.output.bias has shape (7,)"),
    case("run/resume-rng-of-the-wrong-type", lambda e: e.resume_from(
        lambda p: p["training"].update(torch_rng="seed")),
         "{tmp}/run/last.pt", "training.torch_rng must be a byte tensor"),
    case("run/resume-python-rng-damaged", lambda e: e.resume_from(
        lambda p: p["training"].update(python_rng=[3, [1, 2], None])),
         "{tmp}/run/last.pt", "not a Python random state"),
    # found by an outside tester: load_state_dict takes these on trust, the first step or the
    # generator then failed with a traceback, or the run resumed at a place none reached
    case("run/resume-moment-buffer-of-the-wrong-shape", lambda e: e.resume_real_run(
        lambda p: p["training"]["optimizer"]["state"][0].update(exp_avg=torch.zeros(3, 3))),
         "{tmp}/run/last.pt", "does not fit this model", "exp_avg of shape (3, 3)"),
    case("run/resume-learning-rate-a-string", lambda e: e.resume_real_run(
        lambda p: p["training"]["optimizer"]["param_groups"][0].update(lr="x")),
         "{tmp}/run/last.pt", "lr is str, not a number"),
    case("run/resume-rng-of-the-wrong-size", lambda e: e.resume_real_run(
        lambda p: p["training"].update(torch_rng=torch.zeros(5, dtype=torch.uint8))),
         "{tmp}/run/last.pt", "random generator state"),
    case("run/resume-negative-epoch", lambda e: e.resume_from(
        lambda p: p["training"]["loop"].update(epoch=-5)),
         "{tmp}/run/last.pt", "training.loop.epoch must be >= 0"),
    # a third outside tester: positions no run reaches were taken (an epoch skipped, a
    # refit "for 999 epochs")
    case("run/resume-best-epoch-beyond-the-run", lambda e: e.resume_real_run(
        lambda p: p["training"]["loop"].update(best_epoch=999)),
         "{tmp}/run/last.pt", "is not one this run can reach"),
    case("run/resume-batch-beyond-the-epoch", lambda e: e.resume_real_run(
        lambda p: p["training"]["loop"].update(batch_in_epoch=10**6)),
         "{tmp}/run/last.pt", "is not one this run can reach"),
    case("run/force-would-replace-the-config", lambda e: e.train_in_run_dir("--force"),
         "{tmp}/run/config.yaml", "is the run directory's config.yaml"),
    case("train/loss-becomes-nan", lambda e: e.train(
        f"data:\n  train: {CWS_TRAIN}\n  dev: {CWS_DEV}\n" + TINY_MODEL.replace(
            "model:\n", f"model:\n  char_vectors: {e.vectors('v.txt', '3e38')}\n")),
         "training loss became nan", "pretrained vectors"),
    case("train/infinite-vectors", lambda e: e.train(
        f"data:\n  train: {CWS_TRAIN}\n  dev: {CWS_DEV}\n" + TINY_MODEL.replace(
            "model:\n", f"model:\n  char_vectors: {e.vectors('v.txt', 'inf')}\n")),
         "{tmp}/v.txt:1", "vector value 'inf' is not a finite float32 number"),
    # --- checkpoints -------------------------------------------------------------------------
    case("ckpt/missing", lambda e: e.predict(e.tmp / "nope.pt"),
         "{tmp}/nope.pt", "checkpoint not found"),
    case("ckpt/truncated-half", lambda e: e.predict(
        e.file("half.pt", e.cws.read_bytes()[: e.cws.stat().st_size // 2])),
         "{tmp}/half.pt", "not a readable checkpoint"),
    case("ckpt/truncated-10-bytes", lambda e: e.predict(e.file("ten.pt", e.cws.read_bytes()[:10])),
         "{tmp}/ten.pt", "not a readable checkpoint"),
    case("ckpt/empty", lambda e: e.predict(e.file("empty.pt", b"")),
         "{tmp}/empty.pt", "not a readable checkpoint"),
    case("ckpt/random-bytes", lambda e: e.predict(
        e.file("rand.pt", random.Random(7).randbytes(4096))),
         "{tmp}/rand.pt", "not a readable checkpoint"),
    case("ckpt/directory", lambda e: e.predict(e.dir("ckdir")),
         "{tmp}/ckdir", "is a directory"),
    case("ckpt/run-directory", lambda e: e.predict(
        last(e.file("rd/best.pt", e.cws.read_bytes()), e.tmp / "rd")),
         "{tmp}/rd", "is a directory", "did you mean best.pt"),
    case("ckpt/newer-format-version", lambda e: e.predict(
        e.checkpoint("new.pt", {**e.payload(), "format_version": FORMAT_VERSION + 1})),
         "{tmp}/new.pt", f"format version {FORMAT_VERSION + 1} is newer", "upgrade"),
    case("ckpt/format-version-not-int", lambda e: e.predict(
        e.checkpoint("v.pt", {**e.payload(), "format_version": "1"})),
         "{tmp}/v.pt", "no valid format_version"),
    case("ckpt/not-ours", lambda e: e.predict(
        e.checkpoint("other.pt", {"state_dict": {"w": torch.zeros(2)}})),
         "{tmp}/other.pt", "not a bmes_tagger checkpoint"),
    case("ckpt/lacks-model", lambda e: e.predict(
        e.checkpoint("nomodel.pt", {k: v for k, v in e.payload().items() if k != "model"})),
         "{tmp}/nomodel.pt", "lacks model"),
    case("ckpt/bad-stored-config", lambda e: e.predict(
        e.checkpoint("cfg.pt", {**e.payload(), "config": {"model": {"hiden_size": 4}}})),
         "{tmp}/cfg.pt: stored config", "model.hiden_size"),
    case("ckpt/tags-do-not-fit-weights", lambda e: e.predict(
        e.checkpoint("tags.pt", {**e.payload(), "tags": ["B", "E"]})),
         "{tmp}/tags.pt", "tags are not the tag set of a cws model"),
    case("ckpt/empty-tag-list", lambda e: e.predict(e.hostile("t.pt", lambda p: p.update(
        tags=[]))), "{tmp}/t.pt", "tags must be a non-empty list"),
    case("ckpt/duplicate-tags", lambda e: e.predict(e.hostile("t.pt", lambda p: p.update(
        tags=["B", "M", "E", "S", "S"]))), "{tmp}/t.pt", "tags hold duplicates"),
    case("ckpt/ner-tags-in-a-cws-model", lambda e: e.predict(e.hostile("t.pt", lambda p: p.update(
        tags=["B-PER", "M-PER", "E-PER", "S-PER"]))), "{tmp}/t.pt", "not the tag set of a cws"),
    case("ckpt/train-words-nested", lambda e: e.predict(e.hostile("w.pt", lambda p: p.update(
        train_words=[["a"]]))), "{tmp}/w.pt", "train_words must be a list of strings"),
    case("ckpt/chars-hold-a-non-string", lambda e: e.predict(e.hostile(
        "c.pt", lambda p: p["vocabs"].update(chars=["<pad>", "<unk>", 7]))),
         "{tmp}/c.pt", "vocabs.chars must be a list of strings"),
    case("ckpt/chars-hold-duplicates", lambda e: e.predict(e.hostile(
        "c.pt", lambda p: p["vocabs"].update(chars="<pad>\n<unk>\na\na"))),
         "{tmp}/c.pt", "vocabs.chars holds duplicate tokens"),
    case("ckpt/fixed-rows-not-a-count", lambda e: e.predict(e.hostile(
        "f.pt", lambda p: p["vocabs"].update(chars={"tokens": p["vocabs"]["chars"],
                                                    "fixed": "9"}))),
         "{tmp}/f.pt", "vocabs.chars must be tokens, or a mapping of tokens and fixed"),
    case("ckpt/more-fixed-rows-than-tokens", lambda e: e.predict(e.hostile(
        "f.pt", lambda p: p["vocabs"].update(chars={"tokens": "<pad>\n<unk>\na",
                                                    "fixed": 5}))),
         "{tmp}/f.pt", "vocabs.chars says 5 fixed rows but holds 1 tokens"),
    case("ckpt/fixed-rows-the-weights-lack", lambda e: e.predict(e.hostile(
        "f.pt", lambda p: p["vocabs"].update(chars={"tokens": p["vocabs"]["chars"],
                                                    "fixed": 3}))),
         "{tmp}/f.pt", "the weights do not fit"),
    case("ckpt/bigrams-declared-without-a-vocabulary", lambda e: e.predict(e.hostile(
        "b.pt", lambda p: p["config"]["model"].update(bigram_dim=8))),
         "{tmp}/b.pt", "the config's model reads ['chars', 'bigrams']"),
    case("ckpt/model-not-a-mapping", lambda e: e.predict(e.hostile("m.pt", lambda p: p.update(
        model=[1, 2]))), "{tmp}/m.pt", "model must be a mapping of weights"),
    case("ckpt/weight-is-an-int", lambda e: e.predict(e.hostile(
        "m.pt", lambda p: p["model"].update({"output.bias": 3}))),
         "{tmp}/m.pt", "model.output.bias must be a tensor"),
    case("ckpt/nan-weights", lambda e: e.predict(e.hostile(
        "m.pt", lambda p: p["model"]["output.bias"].fill_(float("nan")))),
         "{tmp}/m.pt", "NaN or infinite"),
    case("ckpt/sparse-weight", lambda e: e.predict(e.hostile(
        "s.pt", lambda p: p["model"].update({"output.weight": p["model"][
            "output.weight"].to_sparse()}))),
         "{tmp}/s.pt", "model.output.weight is a torch.sparse_coo tensor",
         marks=NO_WARNINGS),
    case("ckpt/sparse-csr-weight", lambda e: ["info", str(e.hostile(
        "s.pt", lambda p: p["model"].update({"output.weight": p["model"][
            "output.weight"].to_sparse_csr()})))],
         "{tmp}/s.pt", "model.output.weight is a torch.sparse_csr tensor",
         marks=NO_WARNINGS),
    case("ckpt/meta-weight", lambda e: e.predict(e.hostile(
        "m.pt", lambda p: p["model"].update({"output.bias": p["model"][
            "output.bias"].to("meta")}))),
         "{tmp}/m.pt", "model.output.bias is a tensor on the meta device",
         marks=NO_WARNINGS),
    case("ckpt/quantized-weight", lambda e: e.predict(e.hostile(
        "q.pt", lambda p: p["model"].update({"output.weight": torch.quantize_per_tensor(
            p["model"]["output.weight"], 0.1, 0, torch.qint8)}))),
         "{tmp}/q.pt", "model.output.weight is a quantized tensor (torch.qint8)",
         marks=NO_WARNINGS),
    case("ckpt/float64-weight", lambda e: e.predict(e.hostile(
        "d.pt", lambda p: p["model"].update({"output.bias": p["model"][
            "output.bias"].double()}))),
         "{tmp}/d.pt", "model.output.bias holds torch.float64 values, the network has "
                       "torch.float32",
         marks=NO_WARNINGS),
    case("ckpt/meta-optimizer-state", lambda e: ["info", str(e.hostile(
        "l.pt", lambda p: p["training"]["optimizer"]["state"][0].update(
            exp_avg=p["training"]["optimizer"]["state"][0]["exp_avg"].to("meta")),
        "last"))],
         "{tmp}/l.pt", "training.optimizer.state.0.exp_avg is a tensor on the meta device",
         marks=NO_WARNINGS),
    case("ckpt/hidden-size-bomb", lambda e: e.predict(e.hostile(
        "h.pt", lambda p: p["config"]["model"].update(hidden_size=12000))),
         "{tmp}/h.pt", "the weights do not fit", "the config says"),
    case("ckpt/config-empty", lambda e: e.predict(e.hostile("c.pt", lambda p: p.update(
        config={}))), "{tmp}/c.pt", "config must be a non-empty mapping"),
    case("ckpt/config-a-list", lambda e: ["info", str(e.hostile("c.pt", lambda p: p.update(
        config=[1])))], "{tmp}/c.pt", "config must be a non-empty mapping"),
    case("ckpt/scores-a-list", lambda e: ["info", str(e.hostile("s.pt", lambda p: p.update(
        scores=[1])))], "{tmp}/s.pt", "scores must be a mapping"),
    case("ckpt/dev-f1-a-string", lambda e: ["info", str(e.hostile(
        "s.pt", lambda p: p["scores"]["dev"].update(f1="high")))],
         "{tmp}/s.pt", "scores.dev.f1 must be a number"),
    case("ckpt/training-loop-empty", lambda e: ["info", str(e.hostile(
        "l.pt", lambda p: p["training"].update(loop={}), "last"))],
         "{tmp}/l.pt", "training.loop holds"),
    case("ckpt/format-version-negative", lambda e: e.predict(e.hostile(
        "v.pt", lambda p: p.update(format_version=-7))), "{tmp}/v.pt", "no valid format_version"),
    case("ckpt/nested-200k-deep", lambda e: ["info", "--json", str(e.nested("deep.pt",
                                                                            200_000))],
         "{tmp}/deep.pt", "scores.dev.per_type.'X' must map names to numbers"),
    case("ckpt/text-file", lambda e: e.predict(e.file("junk.pt", "hi\n")),
         "{tmp}/junk.pt", "not a readable checkpoint"),
    case("ckpt/zip-bomb", lambda e: e.predict(e.zip_bomb("bomb.pt")),
         "{tmp}/bomb.pt", "would inflate to"),
    case("ckpt/pickle-runs-code", lambda e: e.predict(
        e.checkpoint("evil.pt", {"format": "bmes_tagger", "format_version": 1,
                                 "config": _RunsCode(f"touch {e.marker}")})),
         "{tmp}/evil.pt", "refused to load", "could run code"),
    case("ckpt/plain-pickle-runs-code-p2", lambda e: e.predict(e.evil_pickle("evil2.pt", 2)),
         "{tmp}/evil2.pt", "refused to load"),
    case("ckpt/plain-pickle-runs-code-p5", lambda e: e.predict(e.evil_pickle("evil5.pt", 5)),
         "{tmp}/evil5.pt", "not a readable checkpoint"),
    # --- predict -----------------------------------------------------------------------------
    case("predict/binary-input", lambda e: ["predict", str(e.file("image.png", PNG)), "--model",
                                            str(e.cws)],
         "{tmp}/image.png:1", "not valid UTF-8"),
    case("predict/nul-in-input", lambda e: ["predict", str(e.file("in.txt", b"ok\nab\x00c\n")),
                                            "--model", str(e.cws)],
         "{tmp}/in.txt:2", "NUL byte"),
    case("predict/gbk-input-to-file", lambda e: [
        "predict", str(e.file("in.txt", "好\n".encode() + GBK)), "--model", str(e.cws),
        "--output", str(e.tmp / "out.txt")],
         "{tmp}/in.txt:2", "not valid UTF-8"),
    case("predict/binary-stdin", lambda e: ["predict", e.pipe(b"ok\n\xff\xfe\n"), "--model",
                                            str(e.ner)],
         "<stdin>:2", "not valid UTF-8"),
    case("predict/input-missing", lambda e: ["predict", str(e.tmp / "in.txt"), "--model",
                                             str(e.cws)],
         "{tmp}/in.txt", "file not found"),
    case("predict/input-is-directory", lambda e: ["predict", str(e.dir("indir")), "--model",
                                                  str(e.cws)],
         "{tmp}/indir", "is a directory"),
    case("predict/output-exists", lambda e: e.predict(
        e.cws, "--output", str(e.file("out.txt", "keep me\n"))),
         "{tmp}/out.txt", "already exists", "--force"),
    case("predict/bad-format-cws", lambda e: e.predict(e.cws, "--format", "entities"),
         "--format", "'entities' is not available for cws", "segmented, conll, jsonl"),
    case("predict/bad-format-ner", lambda e: e.predict(e.ner, "--format", "segmented",
                                                       "--output", str(e.tmp / "out.jsonl")),
         "--format", "'segmented' is not available for ner"),
    # --- eval --------------------------------------------------------------------------------
    case("eval/config-without-test", lambda e: ["eval", str(e.file("c.yaml",
                                                                   "data:\n  task: cws\n"))],
         "{tmp}/c.yaml", "data.test is not set", "--data"),
    case("eval/nothing-given", lambda e: ["eval"],
         "give a CONFIG", "--model", "--data"),
    case("eval/model-without-data", lambda e: ["eval", "--model", str(e.cws)],
         "give a CONFIG", "--data"),
    case("eval/set-without-config", lambda e: ["eval", "--model", str(e.cws), "--data",
                                               str(CWS_DEV), "--set", "train.epochs=3"],
         "--set train.epochs=3", "needs a CONFIG"),
    case("eval/config-run-has-no-model", lambda e: ["eval", str(e.file(
        "c.yaml", f"data:\n  test: {CWS_DEV}\noutput:\n  dir: {e.run}\n"))],
         "{tmp}/run/best.pt", "checkpoint not found"),
    case("eval/bad-format", lambda e: ["eval", "--model", str(e.cws), "--data", str(CWS_DEV),
                                       "--format", "json"],
         "--format", "'json' is not one of segmented, conll"),
    case("eval/bad-scheme", lambda e: ["eval", "--model", str(e.ner), "--data", str(NER_DEV),
                                       "--scheme", "iob"],
         "--scheme", "'iob' is not one of"),
    # output.dir is relative to where training ran: from elsewhere, say where it looked
    case("eval/run-trained-in-another-directory", lambda e: last(
        e.file("a/runs/x/best.pt", e.cws.read_bytes()),
        ["eval", str(e.file("a/b/c.yaml", f"data:\n  test: {CWS_DEV}\noutput:\n  dir: runs/x\n"))]),
         "error: runs/x/best.pt: checkpoint not found", "relative to the directory training ran in",
         "this is {tmp}", "--model {tmp}/a/runs/x/best.pt"),
    case("vectors/not-utf8", lambda e: e.train(
        f"data:\n  train: {CWS_TRAIN}\n  dev: {CWS_DEV}\n" + TINY_MODEL.replace(
            "model:\n", f"model:\n  char_vectors: {e.file('v.txt', BAD_VECTORS)}\n")),
         "{tmp}/v.txt:2", "not valid UTF-8 (byte 0xce at column 1)"),
    case("vectors/nan", lambda e: e.train_with_vectors(e.file(
        "v.txt", "我 1 2 3 4\n们 1 nan 3 4\n")),
         "{tmp}/v.txt:2", "vector value 'nan' is not a finite float32 number"),
    case("vectors/beyond-float32", lambda e: e.train_with_vectors(e.file(
        "v.txt", "2 4\n我 1 2 3 1e39\n")),
         "{tmp}/v.txt:2", "vector value '1e39' is not a finite"),
    case("vectors/duplicate-token", lambda e: e.train_with_vectors(e.file(
        "v.txt", "我 1 2 3 4\n们 1 2 3 4\n我 5 6 7 8\n")),
         "{tmp}/v.txt:3", "token '我' has a vector already (line 1)"),
    case("vectors/duplicate-token-extend-vocab", lambda e: e.train_with_vectors(e.file(
        "v.txt", "龘 1 2 3 4\n龘 5 6 7 8\n"), "--set", "model.extend_vocab=true"),
         "{tmp}/v.txt:2", "token '龘' has a vector already (line 1)"),
    # a lexicon's frequency column: past int64 was an OverflowError traceback (outside tester)
    case("lexicon/frequency-past-int64", lambda e: e.train_with_lexicon(
        "我们 3\n北京 " + "9" * 25 + "\n"), "{tmp}/w.txt:2", "must be a whole number from 0 to"),
    case("lexicon/negative-frequency", lambda e: e.train_with_lexicon("我们 -3 r\n"),
         "{tmp}/w.txt:1", "frequency '-3' of '我们'"),
    # gensim's "you must first build vocabulary" traceback (outside tester)
    case("vectors-command/nothing-reaches-min-count", lambda e: [
        "vectors", str(e.file("raw.txt", "我们\n")), "--out", str(e.tmp / "vec")],
         "{tmp}/raw.txt", "no character occurs 2 times or more (--min-count)"),
    # word2vec tried to allocate 21.8 TiB (an outside tester)
    case("vectors-command/huge-dim", lambda e: [
        "vectors", str(e.file("raw.txt", "我们\n我们\n")), "--out", str(e.tmp / "vec"),
        "--char-dim", "999999999999"], "--char-dim: 999999999999 is more than 4096"),
    case("lexicon/frequency-of-5000-digits", lambda e: e.train_with_lexicon(
        "我们 " + "9" * 5000 + "\n"), "{tmp}/w.txt:1", "must be a whole number from 0 to"),
    # --- outputs: never an input, a directory or a missing link target; named by the user's path
    case("output/predict-into-its-input", lambda e: e.predict(
        e.cws, "--output", str(e.tmp / "in.txt"), "--force"),
         "{tmp}/in.txt: is the same file as the input ({tmp}/in.txt)",
         "refusing to overwrite an input"),
    case("output/predict-into-a-symlink-to-its-model", lambda e: e.predict(
        e.file("m.pt", e.cws.read_bytes()), "--output", str(e.symlink("out.pt", e.tmp / "m.pt")),
        "--force"),
         "{tmp}/out.pt: is the same file as --model ({tmp}/m.pt)"),
    case("output/predict-into-a-hard-link-of-its-dict", lambda e: e.predict(
        e.cws, "--dict", str(e.file("d.txt", "北京\n")), "--output",
        str(e.hardlink("out.txt", e.tmp / "d.txt")), "--force"),
         "{tmp}/out.txt: is the same file as --dict ({tmp}/d.txt)"),
    case("output/predict-into-a-dangling-symlink", lambda e: e.predict(
        e.cws, "--output", str(e.symlink("out.txt", e.tmp / "gone" / "x.txt")), "--force"),
         "{tmp}/out.txt: is a symbolic link to a missing file ({tmp}/gone/x.txt)"),
    case("output/predict-into-a-directory", lambda e: e.predict(
        e.cws, "--output", str(e.dir("outdir")), "--force"),
         "{tmp}/outdir: is a directory"),
    case("output/predict-below-a-file", lambda e: e.predict(
        e.cws, "--output", str(e.tmp / "in.txt" / "out.txt")),
         "{tmp}/in.txt/out.txt: cannot write: Not a directory"),
    case("output/convert-into-its-input", lambda e: [
        "convert", str(e.file("c.txt", "我们 在\n")), str(e.tmp / "c.txt"), "--from",
        "segmented", "--to", "conll", "--force"],
         "{tmp}/c.txt: is the same file as the input"),
    case("output/convert-over-an-existing-file", lambda e: [
        "convert", str(CWS_DEV), str(e.file("out.txt", "keep\n")), "--from", "segmented",
        "--to", "conll"],
         "{tmp}/out.txt: already exists; use --force"),
    case("output/export-into-a-hard-link-of-its-checkpoint", lambda e: [
        "export", str(e.file("m.pt", e.cws.read_bytes())), "--output",
        str(e.hardlink("m.onnx", e.tmp / "m.pt")), "--force"],
         "{tmp}/m.onnx: is the same file as the checkpoint ({tmp}/m.pt)"),
    case("output/plot-over-an-existing-png", lambda e: last(
        e.file("rd/training.png", PNG), ["plot", str(e.run_dir_with_metrics())]),
         "{tmp}/rd/training.png: already exists; use --force"),
    case("output/plot-not-a-png", lambda e: [
        "plot", str(e.run_dir_with_metrics()), "--output", str(e.tmp / "plot.txt")],
         "{tmp}/plot.txt: the plot is a PNG image"),
    case("output/plot-into-a-hard-link-of-metrics", lambda e: [
        "plot", str(e.run_dir_with_metrics()), "--output",
        str(e.hardlink("m.png", e.tmp / "rd" / "metrics.jsonl")), "--force"],
         "{tmp}/m.png: is the same file as the run's metrics.jsonl"),
]


@pytest.fixture
def env(tmp_path: Path, models: Models, monkeypatch: pytest.MonkeyPatch) -> Env:
    # Relative defaults (runs/<name>) must land in tmp_path, where the snapshot sees them.
    monkeypatch.chdir(tmp_path)
    return Env(tmp_path, models)


def snapshot(root: Path) -> dict[str, str]:
    """Content hash of every file under ``root`` (hidden ones included); a symbolic link is
    recorded as where it points (it may point nowhere)."""
    return {str(p.relative_to(root)): f"-> {os.readlink(p)}" if p.is_symlink()
            else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


def invoke(env: Env, argv: list[str]) -> Result:
    return runner.invoke(app, argv, input=env.stdin)


def assert_no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    # CliRunner swallows an uncaught exception into result.exception: that is a crash too.
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)


# Mistakes in the command line itself exit 2 (like the parser's own errors), not 1
USAGE = {"predict/bad-format-cws", "predict/bad-format-ner", "eval/nothing-given",
         "eval/model-without-data", "eval/set-without-config", "eval/bad-format",
         "eval/bad-scheme", "vectors-command/huge-dim"}


@pytest.mark.parametrize(("build", "needles"), BAD)
def test_bad_input_fails_cleanly(env: Env, build: Build, needles: tuple[str, ...],
                                 request: pytest.FixtureRequest) -> None:
    argv = build(env)
    before = snapshot(env.tmp)
    dirs_before = {p for p in env.tmp.rglob("*") if p.is_dir()}
    result = invoke(env, argv)

    assert_no_traceback(result)
    expected = 2 if request.node.callspec.id in USAGE else 1
    assert result.exit_code == expected, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stderr.endswith("\n"), result.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle.format(tmp=env.tmp) in line, (needle, line)

    after = snapshot(env.tmp)
    assert after == before, {"new": sorted(set(after) - set(before)),
                             "changed": sorted(k for k in before if after.get(k) != before[k])}
    # The same, spelled out for the files a failed run must never leave behind.
    assert not list(env.tmp.rglob("*.tmp"))
    for name in ("run/best.pt", "run/last.pt", "run/.lock", "out.txt", "out.jsonl"):
        assert (name in after) == (name in before), name
    for new_dir in {p for p in env.tmp.rglob("*") if p.is_dir()} - dirs_before:
        assert not any(new_dir.iterdir()), new_dir
    assert not env.marker.exists(), "a pickled/YAML command was executed"


def test_the_table_is_large_and_ids_are_unique() -> None:
    ids = [p.id for p in BAD]
    assert len(ids) >= 45 and len(set(ids)) == len(ids)
    assert set(ids) >= USAGE


# --- inputs that must be tolerated -------------------------------------------------------------


def eval_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def check_words(n_words: int) -> Callable[[Env, Result], None]:
    def check(env: Env, result: Result) -> None:
        assert eval_json(result)["gold_words"] == n_words

    return check


def check_oov_rate(rate: float) -> Callable[[Env, Result], None]:
    def check(env: Env, result: Result) -> None:
        assert eval_json(result)["oov_rate"] == rate

    return check


def check_entities(n_entities: int) -> Callable[[Env, Result], None]:
    def check(env: Env, result: Result) -> None:
        assert eval_json(result)["gold_entities"] == n_entities

    return check


def check_predict_lines(n_lines: int, chars: list[str] | None = None,
                        output: str | None = None) -> Callable[[Env, Result], None]:
    """Output has ``n_lines`` lines (from stdout or the --output file) whose non-space
    characters are ``chars`` line by line (default: all empty)."""

    def check(env: Env, result: Result) -> None:
        assert result.exit_code == 0, result.output
        text = (env.tmp / output).read_text(encoding="utf-8") if output else result.stdout
        got = text.split("\n")
        assert got[-1] == ""
        got = got[:-1]
        assert len(got) == n_lines, got
        want = chars if chars is not None else [""] * n_lines
        assert ["".join(g.split()) for g in got] == want

    return check


def big_line() -> str:
    """About 1 MB of words on one line (CJK, with some non-BMP characters)."""
    rng = random.Random(5)
    alphabet = [chr(c) for c in range(0x4E00, 0x4E00 + 400)] + ["😀", "𠀀", "𠀁"]
    words, size = [], 0
    while size < 1_000_000:
        word = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        words.append(word)
        size += len(word.encode("utf-8")) + 1
    return " ".join(words)


def check_big_train(env: Env, result: Result) -> None:
    assert result.exit_code == 0, result.output
    line = (env.tmp / "big.txt").read_text(encoding="utf-8").strip()
    n_chars = len("".join(line.split()))
    log = (env.run / "train.log").read_text(encoding="utf-8")
    assert f"train: 1 sentences ({n_chars} chars)" in log
    assert (env.run / "best.pt").is_file()


NER_TEXT = "张\tB-PER\r\n伟 \t E-PER\r\n在 O\r\n\r\n北\u3000B-LOC\r\n京 x  E-LOC\r\n"

GOOD = [
    pytest.param(lambda e: [*e.eval_cws("d.txt", "我们\t在 北京\u3000 工作\n\t好 的  \n"),
                            "--json"],
                 check_words(6), id="segmented/tabs-and-spaces"),
    pytest.param(lambda e: [*e.eval_ner("d.bmes", NER_TEXT.replace("\r\n", "\n")), "--json"],
                 check_entities(2), id="conll/tabs-and-spaces"),
    pytest.param(lambda e: [*e.eval_cws("d.txt", "我们 在\r\n\r\n北京 工作\r\n"), "--json"],
                 check_words(4), id="segmented/crlf"),
    pytest.param(lambda e: [*e.eval_ner("d.bmes", NER_TEXT), "--json"],
                 check_entities(2), id="conll/crlf"),
    pytest.param(lambda e: [*e.eval_cws("d.txt", "我们 在\r\r北京 工作\r"), "--json"],
                 check_words(4), id="segmented/cr-only"),
    pytest.param(lambda e: [*e.eval_ner("d.bmes", NER_TEXT.replace("\r\n", "\r")), "--json"],
                 check_entities(2), id="conll/cr-only"),
    pytest.param(lambda e: [*e.eval_cws("d.txt", "\ufeff我们 在\n北京 工作\n"), "--json"],
                 check_words(4), id="segmented/bom"),
    pytest.param(lambda e: [*e.eval_ner("d.bmes", "\ufeff" + NER_TEXT), "--json"],
                 check_entities(2), id="conll/bom-crlf"),
    pytest.param(lambda e: [*e.eval_cws("d.txt", "我们 😀 在 𠀀北京 𠀀\n"), "--json"],
                 check_words(5), id="segmented/non-bmp"),
    pytest.param(lambda e: [*e.eval_ner("d.bmes", "😀 O\n𠀀 B-PER\n伟 E-PER\n"), "--json"],
                 check_entities(1), id="conll/non-bmp"),
    pytest.param(lambda e: e.predict(e.cws, text="我们😀在𠀀北京\n\n 𠀁 \n"),
                 check_predict_lines(3, ["我们😀在𠀀北京", "", "𠀁"]), id="predict/non-bmp"),
    pytest.param(lambda e: e.predict(e.cws, text="\ufeff我们 在\r\n北京\r\n"),
                 check_predict_lines(2, ["我们在", "北京"]), id="predict/bom-crlf"),
    pytest.param(lambda e: e.predict(e.cws, text="我们在\r北京\r\r 好\r\n的"),
                 check_predict_lines(5, ["我们在", "北京", "", "好", "的"]), id="predict/cr-only"),
    pytest.param(lambda e: [*e.eval_cws("d.txt", "我们 在\n北京 工作\n"), "--json",
                            "--train-words", str(e.file("w.txt", "我们\r北京\r"))],
                 check_oov_rate(0.5), id="eval/cr-only-word-list"),
    pytest.param(lambda e: e.predict(e.cws, text=""), check_predict_lines(0),
                 id="predict/empty-input"),
    pytest.param(lambda e: e.predict(e.ner, "--output", "out.jsonl", text=""),
                 check_predict_lines(0, output="out.jsonl"), id="predict/empty-input-to-file"),
    pytest.param(lambda e: e.predict(e.cws, text="\n\n  \n\t\n\n"), check_predict_lines(5),
                 id="predict/only-blank-lines"),
    pytest.param(lambda e: e.predict(e.cws, "--output", str(e.file("out.txt", "old\n")),
                                     "--force", text="\n\n"),
                 check_predict_lines(2, output="out.txt"), id="predict/force-overwrites"),
    pytest.param(lambda e: e.train_data(
        e.file("big.txt", big_line() + "\n"),
        extra=("--set", "model.embedding_dim=2", "--set", "model.hidden_size=2",
               "--set", "train.batch_size=1024", "--set", "data.max_len=40")),
                 check_big_train, id="train/1MB-single-line"),
]


@pytest.mark.parametrize(("build", "check"), GOOD)
def test_awkward_input_is_tolerated(
    env: Env, build: Build, check: Callable[[Env, Result], None]
) -> None:
    result = invoke(env, build(env))
    assert_no_traceback(result)
    assert result.stderr == "", result.stderr
    check(env, result)
    assert not list(env.tmp.rglob("*.tmp")) and not list(env.tmp.rglob(".lock"))
