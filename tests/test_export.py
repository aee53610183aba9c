"""`tagger export`: ONNX (onnxruntime) and TorchScript files predict like their checkpoint."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bmes_tagger import Tagger
from bmes_tagger.batching import EncodedCorpus
from bmes_tagger.checkpoint import make_payload, save_checkpoint
from bmes_tagger.config import load_config
from bmes_tagger.errors import CheckpointError
from bmes_tagger.export import export_model, exported_kind
from bmes_tagger.features import bigram_keys, first_bigram
from bmes_tagger.model import build_model
from bmes_tagger.train import train
from bmes_tagger.vocab import Vocab
from conftest import DATA, tiny_config

pytest.importorskip("onnxruntime", reason="ONNX export tests need the onnx extra")
pytest.importorskip("onnx", reason="ONNX export tests need the onnx extra")

TEXTS = [line for line in (DATA / "sample-cws" / "raw.txt").read_text("utf-8").splitlines()
         if line][:60]
FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".ts"}


def random_checkpoint(tmp: Path, overrides: list[str], fixed: int = 0) -> Path:
    """An untrained (randomly initialised) CWS model of the given architecture, saved as a
    checkpoint: every cell kind, depth and feature set can be checked in milliseconds. With
    ``fixed``, that many of the last characters and bigrams are a fixed tail
    (``model.extend_vocab``), random too."""
    config = load_config(tiny_config(tmp), overrides)
    chars = sorted({c for t in TEXTS for c in t if not c.isspace()})
    keys = sorted({k for t in TEXTS for toks in [[c for c in t if not c.isspace()]] if toks
                   for k in [first_bigram(toks), *bigram_keys(toks)]})
    vocab = Vocab(["<pad>", "<unk>", *chars], fixed=fixed)
    bigrams = Vocab(["<pad>", "<unk>", *keys], fixed=fixed)
    tags = ["B", "M", "E", "S"]
    torch.manual_seed(0)
    vocabs = {"chars": vocab, "bigrams": bigrams} if config.model.bigram_dim else \
        {"chars": vocab}
    model = build_model(config, vocabs, tags)
    for name, parameter in model.named_parameters():
        if name.endswith(".tail"):
            with torch.no_grad():
                parameter.normal_()
    path = tmp / "random.pt"
    save_checkpoint(make_payload(config, vocabs, tags, [], model.state_dict()), path)
    return path


def random_batches(tagger: Tagger, count: int = 12) -> list:
    """Padded batches of varied size and length (1 x 1 up to 6 x 40), real characters."""
    rng = random.Random(0)
    text = "".join(TEXTS).replace(" ", "")
    out = []
    for i in range(count):
        size = 1 if i < 2 else rng.randint(2, 6)
        lengths = [1] if i == 0 else [rng.randint(1, 40) for _ in range(size)]
        pieces = []
        for n in lengths:
            start = rng.randrange(len(text) - n)
            pieces.append(list(text[start:start + n]))
        encoded = EncodedCorpus.encode(pieces, tagger.vocabs, tagger.config)
        out.append(encoded.batch(list(range(len(pieces)))))
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("overrides", [
    [],
    ["model.cell=gru", "model.num_layers=2", "model.dropout=0.3"],
    ["model.cell=rnn", "model.bidirectional=false"],
    ["model.bigram_dim=8", "model.bigram_context=both", "model.class_dim=4",
     "model.locked_dropout=true", "model.embedding_dropout=0.5"],
    ["model.bigram_dim=8", "model.bigram_context=next", "model.head=crf"],
], ids=["lstm", "gru-2layers", "rnn-unidirectional", "bigrams-classes", "next-bigrams-crf"])
def test_exported_emissions_equal_eager_at_any_shape(tmp_path: Path, fmt: str,
                                                     overrides: list[str]) -> None:
    checkpoint = random_checkpoint(tmp_path, overrides)
    eager = Tagger.load(checkpoint)
    exported = Tagger.load(export_model(checkpoint, tmp_path / f"m{SUFFIX[fmt]}", fmt),
                           trust_code=True)
    assert exported.network.kind == fmt
    for batch in random_batches(eager):
        want = eager.network.emissions(batch.inputs, batch.lengths)
        got = exported.network.emissions(batch.inputs, batch.lengths)
        assert got.shape == want.shape
        # real positions only: padding rows are never read by decoding
        assert np.allclose(got[batch.mask], want[batch.mask], atol=1e-4), (
            f"{fmt} differs at shape {batch.mask.shape}")
    if fmt == "onnx":
        # one recurrent node per layer runs both directions over each row's own length
        # (the eager model's second module and row reversals are not in the graph)
        import onnx

        nodes = onnx.load(str(tmp_path / "m.onnx")).graph.node
        recurrent = [n for n in nodes if n.op_type in ("LSTM", "GRU", "RNN")]
        assert len(recurrent) == eager.config.model.num_layers
        assert all(n.input[4] == "sequence_lens" for n in recurrent)
        # ONNX's default direction is forward
        directions = {next((onnx.helper.get_attribute_value(a) for a in n.attribute
                            if a.name == "direction"), b"forward") for n in recurrent}
        assert directions == ({b"bidirectional"} if eager.config.model.bidirectional
                              else {b"forward"})


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_fixed_tail_tables_equal_eager(tmp_path: Path, fmt: str) -> None:
    """model.extend_vocab's fixed rows (held apart from the trained rows) export too: the
    exported emissions equal eager ones on text that reads rows of both parts."""
    checkpoint = random_checkpoint(tmp_path, ["model.bigram_dim=8", "model.head=crf"],
                                   fixed=40)
    eager = Tagger.load(checkpoint)
    tails = {n: p for n, p in eager.network.module.named_parameters() if n.endswith(".tail")}
    assert set(tails) == {"embedding.tables.chars.tail", "embedding.tables.bigrams.tail"}
    exported = Tagger.load(export_model(checkpoint, tmp_path / f"m{SUFFIX[fmt]}", fmt),
                           trust_code=True)
    limit = len(eager.vocabs["chars"]) - 40
    reads_tail = False
    for batch in random_batches(eager):
        reads_tail |= bool((batch.inputs["chars"][batch.mask] >= limit).any())
        want = eager.network.emissions(batch.inputs, batch.lengths)
        got = exported.network.emissions(batch.inputs, batch.lengths)
        assert np.allclose(got[batch.mask], want[batch.mask], atol=1e-4)
    assert reads_tail


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for task, head in (("cws", "crf"), ("ner", "softmax")):
        tmp = tmp_path_factory.mktemp(f"export-{task}")
        train(load_config(tiny_config(tmp, task=task, head=head)), tmp / "run", progress=False)
        out[task] = tmp / "run" / "best.pt"
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_model_predicts_like_its_checkpoint(trained: dict[str, Path], tmp_path: Path,
                                                     fmt: str) -> None:
    eager = Tagger.load(trained["cws"])
    exported = Tagger.load(export_model(trained["cws"], tmp_path / f"cws{SUFFIX[fmt]}", fmt),
                           trust_code=True)
    assert exported.task == "cws" and exported.tags == eager.tags
    assert exported.segment(TEXTS) == eager.segment(TEXTS)
    # CRF extras run on the exported network too
    want, got = eager.nbest(TEXTS[:3], 3), exported.nbest(TEXTS[:3], 3)
    assert [[p for p, _ in row] for row in got] == [[p for p, _ in row] for row in want]
    assert all(abs(a[1] - b[1]) < 1e-3 for rg, rw in zip(got, want) for a, b in zip(rg, rw))
    ner_eager = Tagger.load(trained["ner"])
    ner = Tagger.load(export_model(trained["ner"], tmp_path / f"ner{SUFFIX[fmt]}", fmt),
                      trust_code=True)
    texts = [line.split()[0] for line in (DATA / "sample-ner" / "test.bmes")
             .read_text("utf-8").splitlines() if line.strip()]
    sentences = ["".join(texts[i:i + 30]) for i in range(0, len(texts), 30)]
    assert ner.entities(sentences) == ner_eager.entities(sentences)


@pytest.mark.parametrize("fmt", FORMATS)
def test_int8_export_is_smaller_and_mostly_agrees(trained: dict[str, Path], tmp_path: Path,
                                                  fmt: str) -> None:
    full = export_model(trained["cws"], tmp_path / f"f{SUFFIX[fmt]}", fmt)
    small = export_model(trained["cws"], None, fmt, quantize=True, force=True)
    assert small.name == f"best.int8.{'onnx' if fmt == 'onnx' else 'ts'}"
    assert small.stat().st_size < full.stat().st_size
    want = [t for row in Tagger.load(full, trust_code=True).tag(TEXTS) for _, t in row]
    got = [t for row in Tagger.load(small, trust_code=True).tag(TEXTS) for _, t in row]
    agree = sum(a == b for a, b in zip(got, want)) / len(want)
    assert len(got) == len(want) and agree > 0.9, agree


def test_cli_export_then_predict_matches_checkpoint(trained: dict[str, Path],
                                                    tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bmes_tagger.cli import app

    runner = CliRunner()
    raw = DATA / "sample-cws" / "raw.txt"
    onnx_file = tmp_path / "m.onnx"
    result = runner.invoke(app, ["export", str(trained["cws"]), "-o", str(onnx_file)])
    assert result.exit_code == 0, result.stderr
    assert exported_kind(onnx_file) == "onnx" and str(onnx_file) in result.stdout
    # never overwritten without --force
    again = runner.invoke(app, ["export", str(trained["cws"]), "-o", str(onnx_file)])
    assert again.exit_code == 1 and "--force" in again.stderr
    want = runner.invoke(app, ["predict", str(raw), "--model", str(trained["cws"])])
    got = runner.invoke(app, ["predict", str(raw), "--model", str(onnx_file)])
    assert got.exit_code == 0, got.stderr
    assert got.stdout == want.stdout and got.stdout.count("\n") == len(
        raw.read_text("utf-8").splitlines())
    test = DATA / "sample-cws" / "test.txt"
    scores = [runner.invoke(app, ["eval", "--model", str(m), "--data", str(test), "--format",
                                  "segmented", "--json"]) for m in (trained["cws"], onnx_file)]
    assert all(r.exit_code == 0 for r in scores), [r.stderr for r in scores]
    assert json.loads(scores[0].stdout)["f1"] == json.loads(scores[1].stdout)["f1"]
    info = runner.invoke(app, ["info", str(onnx_file)])
    assert info.exit_code == 0, info.stderr
    assert "exported     onnx from" in info.stdout and "task         cws" in info.stdout
    bad = runner.invoke(app, ["export", str(trained["cws"]), "--format", "tflite"])
    assert bad.exit_code == 2 and "onnx or torchscript" in bad.stderr


def test_bad_exported_files_give_one_line_errors(trained: dict[str, Path],
                                                 tmp_path: Path) -> None:
    import onnx

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        Tagger.load(garbage)
    # a valid ONNX graph that `tagger export` did not write
    good = export_model(trained["cws"], tmp_path / "good.onnx", "onnx")
    graph = onnx.load(str(good))
    del graph.metadata_props[:]
    stripped = tmp_path / "stripped.onnx"
    onnx.save(graph, str(stripped))
    with pytest.raises(CheckpointError, match="without bmes_tagger metadata"):
        Tagger.load(stripped)
    with pytest.raises(ValueError, match=r"must be named \*\.ts"):
        export_model(trained["cws"], tmp_path / "torchscript.onnx", "torchscript")
    with pytest.raises(CheckpointError, match="not found"):
        Tagger.load(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="already an exported model"):
        export_model(good, tmp_path / "again.onnx", "onnx")
    with pytest.raises(ValueError, match="overwrite its own checkpoint"):
        export_model(trained["cws"], trained["cws"], "torchscript", force=True)


def test_torchscript_loads_only_by_name_and_with_trust(
        trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """TorchScript is code: a .ts file needs trust_code (--trust-code) and warns when loaded;
    the same file under a checkpoint's name is refused without torch.jit ever reading it."""
    from typer.testing import CliRunner

    from bmes_tagger.cli import app
    ts = export_model(trained["cws"], tmp_path / "m.ts", "torchscript")
    with pytest.raises(CheckpointError, match="contains code.*--trust-code"):
        Tagger.load(ts)
    capsys.readouterr()
    assert Tagger.load(ts, trust_code=True).task == "cws"
    assert "runs code" in capsys.readouterr().err
    runner = CliRunner()
    raw = str(DATA / "sample-cws" / "raw.txt")
    refused = runner.invoke(app, ["predict", raw, "--model", str(ts)])
    assert refused.exit_code == 1 and "--trust-code" in refused.stderr
    trusted = runner.invoke(app, ["predict", raw, "--model", str(ts), "--trust-code"])
    assert trusted.exit_code == 0 and "warning: " in trusted.stderr
    assert trusted.stderr.count("\n") == 1  # one line, no Python warning banner
    disguised = tmp_path / "best.pt"
    disguised.write_bytes(ts.read_bytes())

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.jit.load was called on a checkpoint")

    monkeypatch.setattr(torch.jit, "load", never)
    for call in (lambda: Tagger.load(disguised), lambda: Tagger.load(disguised, trust_code=True)):
        with pytest.raises(CheckpointError, match="TorchScript file, which contains code"):
            call()
    info = runner.invoke(app, ["info", str(disguised)])
    assert info.exit_code == 1 and "TorchScript" in info.stderr


def _with_metadata(src: Path, dst: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """A copy of an exported ONNX file whose bmes_tagger metadata ``change`` edits."""
    import onnx

    graph = onnx.load(str(src))
    meta = json.loads(graph.metadata_props[0].value)
    change(meta)
    graph.metadata_props[0].value = json.dumps(meta)
    onnx.save(graph, str(dst))
    return dst


def test_hostile_onnx_files_are_one_line_errors(trained: dict[str, Path],
                                               tmp_path: Path) -> None:
    """Metadata of the wrong types, a graph that does not fit its metadata (more tags, a
    renamed input, an input the config lacks, a rank-2 output), a graph that computes NaN."""
    import onnx
    from onnx import helper

    good = export_model(trained["cws"], tmp_path / "good.onnx", "onnx")
    ner = export_model(trained["ner"], tmp_path / "ner.onnx", "onnx")
    cases = {
        "tags an int": (_with_metadata(good, tmp_path / "a.onnx",
                                       lambda m: m.update(tags=7)), "tags must be"),
        "crf a list": (_with_metadata(good, tmp_path / "b.onnx",
                                      lambda m: m.update(crf=[1, 2])), "crf must be a mapping"),
        "config a string": (_with_metadata(good, tmp_path / "c.onnx",
                                           lambda m: m.update(config="x")),
                            "config must be a non-empty mapping"),
        "metadata not JSON": (None, "unreadable bmes_tagger metadata"),
        "an integer past Python's digit limit": (None, "unreadable bmes_tagger metadata"),
        "crf booleans": (_with_metadata(good, tmp_path / "h.onnx", lambda m: m["crf"].update(
            start_transitions=[True] * len(m["tags"]))), "crf.start_transitions must be numbers"),
        "parameters a string": (_with_metadata(good, tmp_path / "i.onnx",
                                               lambda m: m.update(parameters="x")),
                                "parameters must be a count"),
        "exported_from a number": (_with_metadata(good, tmp_path / "j.onnx",
                                                  lambda m: m.update(exported_from=5)),
                                   "exported_from must be a string"),
        "train_words with duplicates": (
            _with_metadata(good, tmp_path / "k.onnx",
                           lambda m: m.update(train_words="我们\n我们")),
            "train_words holds duplicate words"),
        "train_words with an empty word": (
            _with_metadata(good, tmp_path / "l.onnx", lambda m: m.update(train_words="\n我们")),
            "train_words holds an empty word"),
        # the NER graph scores 9 tags; CWS metadata says 4
        "more tags than the metadata": (_with_metadata(ner, tmp_path / "d.onnx", lambda m: m.update(
            json.loads(onnx.load(str(good)).metadata_props[0].value))), "output has shape"),
        "needs bigrams the config lacks": (None, "takes inputs"),
        "renamed input": (None, "takes inputs"),
        "rank-2 output": (None, "one output of rank 3"),
        "computes NaN": (None, "NaN or infinite"),
    }
    graph = onnx.load(str(good))
    graph.metadata_props[0].value = "{not json"
    onnx.save(graph, str(tmp_path / "e.onnx"))
    cases["metadata not JSON"] = (tmp_path / "e.onnx", cases["metadata not JSON"][1])
    graph = onnx.load(str(good))
    graph.metadata_props[0].value = graph.metadata_props[0].value.replace(
        '"format_version": ', '"format_version": ' + "9" * 5000 + ", \"x\": ", 1)
    onnx.save(graph, str(tmp_path / "m.onnx"))
    cases["an integer past Python's digit limit"] = (tmp_path / "m.onnx", "unreadable")
    # a graph with a bigram input, under metadata of a model without bigrams
    (tmp_path / "bg").mkdir()
    bigram_ckpt = random_checkpoint(tmp_path / "bg", ["model.bigram_dim=4"])
    bigram_graph = export_model(bigram_ckpt, tmp_path / "bg.onnx", "onnx")
    cases["needs bigrams the config lacks"] = (_with_metadata(
        bigram_graph, tmp_path / "f.onnx", lambda m: m["config"]["model"].update(bigram_dim=0)
        or m["vocabs"].pop("bigrams")), "takes inputs")
    renamed = onnx.load(str(good))
    for node in renamed.graph.node:
        node.input[:] = ["characters" if x == "chars" else x for x in node.input]
    for value in renamed.graph.input:
        if value.name == "chars":
            value.name = "characters"
    onnx.save(renamed, str(tmp_path / "g.onnx"))
    cases["renamed input"] = (tmp_path / "g.onnx", "takes inputs")
    for name, node in (("rank-2 output", helper.make_node("ReduceSum", ["emissions_raw", "axes"],
                                                          ["emissions"], keepdims=0)),
                       ("computes NaN", helper.make_node("Mul", ["emissions_raw", "nan"],
                                                         ["emissions"]))):
        g = onnx.load(str(good))
        out = g.graph.output[0]
        for n in g.graph.node:
            n.output[:] = ["emissions_raw" if x == "emissions" else x for x in n.output]
        g.graph.initializer.append(helper.make_tensor("axes", onnx.TensorProto.INT64, [1], [2]))
        g.graph.initializer.append(helper.make_tensor("nan", onnx.TensorProto.FLOAT, [1],
                                                      [float("nan")]))
        g.graph.node.append(node)
        if name == "rank-2 output":
            del out.type.tensor_type.shape.dim[2]
        path = tmp_path / f"{name.split()[0]}.onnx"
        onnx.save(g, str(path))
        cases[name] = (path, cases[name][1])
    for name, (path, needle) in cases.items():
        with pytest.raises(CheckpointError, match=needle) as info:
            Tagger.load(path).segment(["我们在北京工作。"])
        assert "\n" not in str(info.value) and str(path) in str(info.value), name


def _with_extra(src: Path, dst: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """A copy of an exported TorchScript file whose bmes_tagger metadata ``change`` edits."""
    import warnings

    from bmes_tagger.exported import EXTRA_FILE

    extra = {EXTRA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit in favour of export
        module = torch.jit.load(str(src), _extra_files=extra)
        meta = json.loads(extra[EXTRA_FILE])
        change(meta)
        torch.jit.save(module, str(dst), _extra_files={EXTRA_FILE: json.dumps(meta)})
    return dst


def _drop_tokens(meta: dict, n: int, fixed: int | None = None) -> None:
    """The metadata's character vocabulary without its last ``n`` tokens (and with another
    count of fixed rows)."""
    chars = meta["vocabs"]["chars"]
    joined = chars["tokens"] if isinstance(chars, dict) else chars
    tokens = joined.split("\n")
    kept = "\n".join(tokens[:len(tokens) - n])
    meta["vocabs"]["chars"] = {"tokens": kept, "fixed": fixed} if fixed is not None else kept


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("quantize", [False, True], ids=["float", "int8"])
def test_a_vocabulary_that_does_not_fit_the_embedding_table_is_refused(
        trained: dict[str, Path], tmp_path: Path, fmt: str, quantize: bool) -> None:
    """A metadata vocabulary shorter than the graph's embedding table loaded and read every
    character through the wrong row (silently wrong tags); a longer one failed on the first
    character past the table. Both are now refused when loading, int8 tables included."""
    good = export_model(trained["cws"], tmp_path / f"good{SUFFIX[fmt]}", fmt, quantize=quantize)
    edit = _with_metadata if fmt == "onnx" else _with_extra
    assert Tagger.load(good, trust_code=True).segment(["我们"])  # the untouched file loads
    rows = len(Tagger.load(trained["cws"]).vocabs["chars"])
    short = edit(good, tmp_path / f"short{SUFFIX[fmt]}", lambda m: _drop_tokens(m, 5))
    with pytest.raises(CheckpointError, match=f"has {rows:,} rows, but its metadata's chars "
                                              f"vocabulary has {rows - 5:,}") as info:
        Tagger.load(short, trust_code=True)
    assert str(short) in str(info.value) and "\n" not in str(info.value)
    longer = edit(good, tmp_path / f"long{SUFFIX[fmt]}",
                  lambda m: m["vocabs"].update(chars=m["vocabs"]["chars"] + "\n龘"))
    with pytest.raises(CheckpointError, match=f"vocabulary has {rows + 1:,}"):
        Tagger.load(longer, trust_code=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_fixed_tail_counts_towards_the_table(tmp_path: Path, fmt: str) -> None:
    """model.extend_vocab's fixed rows are their own initializer (``...tables.chars.tail``):
    they count towards the table, and a metadata count of fixed rows that differs from the
    tail is refused even when the total matches."""
    checkpoint = random_checkpoint(tmp_path, [], fixed=40)
    good = export_model(checkpoint, tmp_path / f"m{SUFFIX[fmt]}", fmt)
    assert Tagger.load(good, trust_code=True).segment(["我们"])
    edit = _with_metadata if fmt == "onnx" else _with_extra
    moved = edit(good, tmp_path / f"moved{SUFFIX[fmt]}",
                 lambda m: _drop_tokens(m, 0, fixed=39))
    with pytest.raises(CheckpointError, match=r"rows \(40 of them fixed\), but .* \(39 fixed\)"):
        Tagger.load(moved, trust_code=True)
    short = edit(good, tmp_path / f"short{SUFFIX[fmt]}",
                 lambda m: _drop_tokens(m, 1, fixed=39))
    with pytest.raises(CheckpointError, match="chars embedding table"):
        Tagger.load(short, trust_code=True)


def test_a_graph_without_its_embedding_table_is_refused(trained: dict[str, Path],
                                                        tmp_path: Path) -> None:
    """A renamed table cannot dodge the check: the metadata's features must all be found."""
    import onnx

    good = export_model(trained["cws"], tmp_path / "good.onnx", "onnx")
    graph = onnx.load(str(good))
    old = "network.model.embedding.tables.chars.weight"
    for init in graph.graph.initializer:
        if init.name == old:
            init.name = "renamed"
    for node in graph.graph.node:
        node.input[:] = ["renamed" if x == old else x for x in node.input]
    onnx.save(graph, str(tmp_path / "renamed.onnx"))
    with pytest.raises(CheckpointError, match="no embedding table for the input feature chars"):
        Tagger.load(tmp_path / "renamed.onnx")


@pytest.mark.parametrize("fmt", ["checkpoint", *FORMATS])
def test_huge_finite_weights_are_one_error_without_numpy_warnings(
        trained: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    """Finite weights of 3e38 pass the checkpoint's finite check, and decoding their scores
    overflowed with RuntimeWarnings and returned garbage tags; every kind of network's
    scores are checked in one place (Tagger.network_scores), naming the model file."""
    import warnings

    payload = torch.load(trained["ner"], weights_only=True)  # softmax head
    payload["model"]["output.bias"].fill_(3e38)
    path = tmp_path / "huge.pt"
    save_checkpoint(payload, path)
    if fmt != "checkpoint":
        path = export_model(path, tmp_path / f"huge{SUFFIX[fmt]}", fmt)
    tagger = Tagger.load(path, trust_code=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in (lambda: tagger.entities(["张伟在北京工作。"]),
                     lambda: tagger.confidence(["张伟"])):
            with pytest.raises(CheckpointError, match="scores over 1e\\+30") as info:
                call()
            assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_onnxruntime_logs_nothing_of_its_own_when_a_graph_fails(trained: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    """A graph that fails while running: onnxruntime printed its own ANSI-coloured log line
    on stderr before the error (from C++, so only a child process sees it)."""
    import os
    import subprocess
    import sys

    import onnx
    from onnx import helper

    good = export_model(trained["cws"], tmp_path / "good.onnx", "onnx")
    g = onnx.load(str(good))
    for n in g.graph.node:
        n.output[:] = ["emissions_raw" if x == "emissions" else x for x in n.output]
    # a reshape that no batch fits: it fails at run time, not when loading
    g.graph.initializer.append(helper.make_tensor("odd", onnx.TensorProto.INT64, [3],
                                                  [7, 11, 13]))
    g.graph.node.append(helper.make_node("Reshape", ["emissions_raw", "odd"], ["emissions"]))
    bad = tmp_path / "fails.onnx"
    onnx.save(g, str(bad))
    repo = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "bmes_tagger", "predict", "-", "--model",
                           str(bad)], input="我们在北京工作。\n", capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "\x1b[" not in proc.stderr and "onnxruntime:" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: the graph failed to run")


@pytest.mark.parametrize("weight", ["embedding", "recurrent"])
def test_an_onnx_graph_with_nan_weights_is_refused_on_load(trained: dict[str, Path],
                                                           tmp_path: Path, weight: str) -> None:
    """onnxruntime's LSTM turns NaN weights into finite garbage scores (every character a
    word, exit 0; second outside tester), so the check on the scores cannot see them: the
    graph's float weights are checked when the file is loaded."""
    import onnx
    from onnx import numpy_helper

    path = export_model(trained["cws"], tmp_path / "m.onnx", "onnx")
    graph = onnx.load(str(path))
    names = [t.name for t in graph.graph.initializer]
    target = next(n for n in names if ("embedding" in n) == (weight == "embedding")
                  and numpy_helper.to_array(next(t for t in graph.graph.initializer
                                                 if t.name == n)).ndim >= 2)
    for i, tensor in enumerate(graph.graph.initializer):
        if tensor.name == target:
            values = numpy_helper.to_array(tensor).copy()
            values.flat[0] = np.nan
            graph.graph.initializer[i].CopyFrom(numpy_helper.from_array(values, target))
    hostile = tmp_path / "nan.onnx"
    onnx.save(graph, str(hostile))
    with pytest.raises(CheckpointError, match=f"weight {re.escape(target)} holds NaN"):
        Tagger.load(hostile)
    assert Tagger.load(path).segment(["我们在北京"])  # the untouched export still loads
