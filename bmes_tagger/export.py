"""Export a trained model for deployment: ONNX (run by onnxruntime) or TorchScript.

The exported graph is the network that scores characters (embeddings -> recurrent encoder ->
linear layer): ``(chars, lengths[, bigrams][, classes]) -> emissions (batch, seq_len, tags)``.
Decoding (BMES-constrained Viterbi, the CRF's transitions, user dictionaries, n-best) is cheap
and stays in Python, so an exported model predicts exactly like its checkpoint. Everything
else the checkpoint holds (config, vocabularies, tag list, CRF transitions, scores) travels
inside the exported file as JSON: ONNX metadata property ``bmes_tagger`` or TorchScript extra
file ``bmes_tagger.json``. :meth:`bmes_tagger.Tagger.load` reads both kinds of file.

ONNX needs the ``onnx`` extra (``pip install 'bmes_tagger[onnx]'``: onnx to export,
onnxruntime to run and to quantise). ``quantize=True`` stores the LSTM and linear weights as int8
(dynamic quantisation: activations are quantised on the fly), for smaller files and, on some
CPUs, faster inference; benchmarks/RESULTS.md has the measured speed and F1 change.

Security note: an ONNX file is data (a graph of standard operators). A TorchScript file is
TorchScript code run by torch's interpreter; load only files you trust (checkpoints written by
``tagger train`` remain the safe, code-free format).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from . import __version__
from .atomic import atomic_write
from .checkpoint import FORMAT, FORMAT_VERSION
from .crf import CRF
from .errors import BmesTaggerError, CheckpointError
from .model import BiLSTMTagger, Decoder

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".ts"}
METADATA_KEY = "bmes_tagger"
EXTRA_FILE = "bmes_tagger.json"
ONNX_OPSET = 17


class EmissionNetwork(nn.Module):
    """The exportable part of a :class:`BiLSTMTagger`: everything up to the emission scores.

    A copy without the CRF (whose Python-side error handling TorchScript cannot compile and
    which decoding runs outside the graph anyway), always in eval mode.
    """

    def __init__(self, model: BiLSTMTagger) -> None:
        super().__init__()
        self.model = copy.deepcopy(model)
        self.model.crf = None
        # Saved in eval mode (dropout off), and exporters, which reset every submodule to the
        # root's mode when they finish, leave it that way.
        self.eval()

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor,
                bigrams: Optional[torch.Tensor] = None,  # noqa: UP045 (TorchScript reads it)
                classes: Optional[torch.Tensor] = None,  # noqa: UP045
                ) -> torch.Tensor:
        """chars: (batch, seq_len); lengths: (batch,); bigrams: (batch, seq_len, 1 or 2);
        classes: (batch, seq_len) -> emissions: (batch, seq_len, num_tags)."""
        return self.model.emissions(chars, lengths, bigrams, classes)


class ExportedModel(Decoder, nn.Module):
    """An exported network behind the same decoding interface as :class:`BiLSTMTagger`.

    Args:
        run: ``(chars, lengths, bigrams, classes) -> emissions`` (the ONNX session or the
            TorchScript module).
        crf: the CRF head (transitions loaded from the file's metadata), or None.
        kind: ``"onnx"`` or ``"torchscript"``.
    """

    def __init__(self, run: Callable[..., torch.Tensor], crf: CRF | None, kind: str) -> None:
        super().__init__()
        self.run = run
        self.crf = crf
        # BMES constraint tables, derived from the tag list (set by Tagger.from_payload)
        self.allowed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.kind = kind

    def emissions(
        self, chars: torch.Tensor, lengths: torch.Tensor, bigrams: torch.Tensor | None = None,
        classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(batch, seq_len, num_tags) scores from the exported graph."""
        return self.run(chars, lengths, bigrams, classes)


def default_output(checkpoint: str | Path, fmt: str, quantize: bool = False) -> Path:
    """``best.pt`` -> ``best.onnx`` / ``best.int8.onnx`` / ``best.ts`` beside the checkpoint."""
    path = Path(checkpoint)
    return path.with_suffix((".int8" if quantize else "") + SUFFIXES[fmt])


def export_model(
    checkpoint: str | Path, output: str | Path | None = None, fmt: str = "onnx",
    quantize: bool = False, force: bool = False,
) -> Path:
    """Export ``checkpoint`` to ``output`` (default: beside it, see :func:`default_output`).

    Args:
        checkpoint: a checkpoint written by ``tagger train``.
        output: the file to write; an existing file is replaced only with ``force``.
        fmt: ``"onnx"`` or ``"torchscript"``.
        quantize: int8 weights for the LSTM and linear layers (dynamic quantisation).
        force: overwrite ``output`` if it exists.

    Returns:
        The path written (atomically: no partial file under that name, ever).

    Raises:
        CheckpointError: unreadable checkpoint. ValueError: unknown format, existing output.
        BmesTaggerError: the ONNX packages are missing (the message says what to install).

    Example (``cws_model``: a checkpoint written by ``tagger train``; ``tmp``: a folder):
        >>> from bmes_tagger import Tagger
        >>> onnx_file = export_model(cws_model, tmp / "model.onnx")
        >>> texts = ["我们在北京工作。", "今天天气很好"]
        >>> Tagger.load(onnx_file).segment(texts) == Tagger.load(cws_model).segment(texts)
        True
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose {' or '.join(FORMATS)}")
    from .predict import Tagger

    if exported_kind(checkpoint) is not None:
        raise ValueError(f"{checkpoint}: already an exported model; export from the checkpoint "
                         "(best.pt) it came from")
    tagger = Tagger.load(checkpoint)
    out = Path(output) if output is not None else default_output(checkpoint, fmt, quantize)
    if out.exists() and not force:
        raise ValueError(f"{out} exists; pass --force to overwrite it")
    if out.resolve() == Path(checkpoint).resolve():
        raise ValueError(f"{out}: the export would overwrite its own checkpoint")
    meta = _metadata(tagger, str(checkpoint))
    meta["exported_as"] = fmt + (" (int8 weights)" if quantize else "")
    metadata = json.dumps(meta, ensure_ascii=False)
    network = EmissionNetwork(tagger.model)
    if fmt == "onnx":
        data = _onnx_bytes(network, metadata, quantize)
    else:
        data = _torchscript_bytes(network, metadata, quantize)
    with atomic_write(out, binary=True) as f:
        f.write(data)
    return out


def _metadata(tagger: Any, source: str) -> dict[str, Any]:
    """Everything but the network weights, as JSON-ready builtins."""
    crf = tagger.model.crf
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "exported_from": source,
        "bmes_tagger_version": __version__,
        "parameters": sum(p.numel() for p in tagger.model.parameters()),
        "config": tagger.config.to_dict(), "chars": tagger.vocab.tokens,
        "bigrams": tagger.bigram_vocab.tokens if tagger.bigram_vocab is not None else None,
        "tags": tagger.tags, "train_words": sorted(tagger.train_words),
        "scores": _plain(tagger.scores),
        "crf": None if crf is None else {name: p.detach().tolist()
                                         for name, p in crf.state_dict().items()},
    }


def _plain(value: Any) -> Any:
    """Scores may hold tensors or tuples; JSON wants lists and numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def _example_inputs(network: EmissionNetwork) -> tuple[torch.Tensor | None, ...]:
    """A small padded batch with distinct batch size and length (3 x 7, lengths 7/5/2), so
    tracing keeps both dimensions symbolic rather than specialising them to 1."""
    model = network.model
    lengths = torch.tensor([7, 5, 2])
    positions = torch.arange(7).unsqueeze(0)
    real = positions < lengths.unsqueeze(1)
    chars = torch.where(real, torch.ones(3, 7, dtype=torch.long), 0)
    bigrams = classes = None
    if model.bigram_embedding is not None:
        k = 2 if model.config.bigram_context == "both" else 1
        bigrams = real.long().unsqueeze(2).expand(3, 7, k).contiguous()
    if model.class_embedding is not None:
        classes = real.long()
    return chars, lengths, bigrams, classes


def _onnx_bytes(network: EmissionNetwork, metadata: str, quantize: bool) -> bytes:
    onnx, _ = _onnx_modules()
    args = _example_inputs(network)
    names = [n for n, a in zip(("chars", "lengths", "bigrams", "classes"), args)
             if a is not None]
    axes = {name: {0: "batch", 1: "seq"} for name in (*names, "emissions")}
    axes["lengths"] = {0: "batch"}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notices about its own internals
        path = Path(tmp) / "model.onnx"
        # The TorchScript-based exporter maps each nn.LSTM/GRU/RNN to the ONNX operator of the
        # same name, which runs at any batch size and length. (torch.export-based export, the
        # `dynamo=True` path in torch 2.13, unrolls the LSTM and pins the length to the example's.)
        torch.onnx.export(network, tuple(a for a in args if a is not None), str(path),
                          dynamo=False, input_names=names, output_names=["emissions"],
                          dynamic_axes=axes, opset_version=ONNX_OPSET)
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            qpath = Path(tmp) / "model.int8.onnx"
            with _quiet_root_logger():  # "consider pre-processing" advice for image models
                quantize_dynamic(str(path), str(qpath), weight_type=QuantType.QInt8)
            path = qpath
        graph = onnx.load(str(path))
    del graph.metadata_props[:]
    entry = graph.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata
    return graph.SerializeToString()


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _torchscript_bytes(network: EmissionNetwork, metadata: str, quantize: bool) -> bytes:
    if quantize:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notice
            network = torch.ao.quantization.quantize_dynamic(
                network, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # deprecated in favour of torch.export, which cannot yet keep an LSTM's length dynamic
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(network)
        torch.jit.save(scripted, buffer, _extra_files={EXTRA_FILE: metadata})
    return buffer.getvalue()


# --- loading -----------------------------------------------------------------------------------


def exported_kind(path: str | Path) -> str | None:
    """``"onnx"``, ``"torchscript"`` or None (a checkpoint, or not ours) for a file."""
    path = Path(path)
    # content first (a TorchScript file is a zip holding our extra file), whatever its name
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                if any(n.endswith("/extra/" + EXTRA_FILE) for n in z.namelist()):
                    return "torchscript"
        except (zipfile.BadZipFile, OSError):
            pass
    # ONNX (protobuf) has no magic number: go by the name
    return "onnx" if path.suffix == ".onnx" else None


def load_exported(path: str | Path, threads: int | None = None
                  ) -> tuple[dict[str, Any], ExportedModel]:
    """Read an exported file: (metadata dict shaped like a checkpoint, model to decode with).

    ``threads``: onnxruntime intra-op threads (default: torch's current setting).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: exported model not found")
    kind = exported_kind(path)
    if kind == "onnx":
        meta, run = _load_onnx(path, threads)
    elif kind == "torchscript":
        meta, run = _load_torchscript(path)
    else:
        raise CheckpointError(f"{path}: not an exported bmes_tagger model")
    for key in ("config", "chars", "tags"):
        if key not in meta:
            raise CheckpointError(f"{path}: exported model metadata lacks {key!r}")
    if not isinstance(meta.get("format_version"), int) or meta["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path}: exported with a newer or unknown format version "
                              f"({meta.get('format_version')!r}); upgrade bmes_tagger")
    crf = None
    if meta.get("crf"):
        crf = CRF(len(meta["tags"]))
        try:
            crf.load_state_dict({k: torch.tensor(v) for k, v in meta["crf"].items()})
        except (RuntimeError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad CRF parameters in the metadata: "
                                  f"{str(exc).splitlines()[0][:160]}") from None
    return meta, ExportedModel(run, crf, kind)


def _load_onnx(path: Path, threads: int | None) -> tuple[dict[str, Any], Callable]:
    _, ort = _onnx_modules(runtime_only=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise CheckpointError(f"{path}: not a readable ONNX model: "
                              f"{str(exc).splitlines()[0][:200]}") from None
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise CheckpointError(f"{path}: ONNX model without bmes_tagger metadata (not exported "
                              "by `tagger export`)")
    inputs = [i.name for i in session.get_inputs()]

    def run(chars: torch.Tensor, lengths: torch.Tensor, bigrams: torch.Tensor | None,
            classes: torch.Tensor | None) -> torch.Tensor:
        given = {"chars": chars, "lengths": lengths, "bigrams": bigrams, "classes": classes}
        feed = {name: given[name].numpy() for name in inputs}
        return torch.from_numpy(session.run(None, feed)[0])

    return _parse_metadata(path, raw), run


def _load_torchscript(path: Path) -> tuple[dict[str, Any], Callable]:
    extra = {EXTRA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable TorchScript model: "
                              f"{str(exc).strip().splitlines()[0][:200]}") from None
    module.eval()
    return _parse_metadata(path, extra[EXTRA_FILE]), module


def _parse_metadata(path: Path, raw: str | bytes) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: exported model has unreadable bmes_tagger metadata")
    return meta


def _onnx_modules(runtime_only: bool = False) -> tuple[Any, Any]:
    """(onnx, onnxruntime), or an ImportError that says what to install."""
    try:
        import onnxruntime as ort

        onnx = None
        if not runtime_only:
            import onnx
    except ImportError as exc:
        raise BmesTaggerError(f"ONNX support needs the onnx extra ({exc.name} is missing): "
                              "pip install 'bmes_tagger[onnx]'") from None
    return onnx, ort

