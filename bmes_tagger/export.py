"""Export a trained model for deployment: ONNX (run by onnxruntime) or TorchScript.

The exported graph is the network that scores characters (embeddings -> encoder -> linear
layer): ``(lengths, *input features by name) -> emissions (batch, seq_len, tags)``, each
feature (batch, seq_len, slots) ids. Decoding (BMES-constrained Viterbi, the CRF's
transitions, user dictionaries, n-best) is cheap and stays in Python, so an exported model
predicts exactly like its checkpoint. Everything else the checkpoint holds (config,
vocabularies, tag list, CRF transitions, scores) travels inside the exported file as JSON: ONNX
metadata property ``bmes_tagger`` or TorchScript extra file ``bmes_tagger.json``; it is read
back by :mod:`bmes_tagger.exported`.

ONNX needs the ``onnx`` extra (``pip install 'bmes_tagger[onnx]'``: onnx to export,
onnxruntime to run and to quantise). ``quantize=True`` stores the LSTM and linear weights as int8
(dynamic quantisation: activations are quantised on the fly), for smaller files and, on some
CPUs, faster inference; benchmarks/RESULTS.md has the measured speed and F1 change.

Security note: an ONNX file is data (a graph of standard operators). A TorchScript file is
TorchScript code run by torch's interpreter; it loads only with ``--trust-code`` (checkpoints
written by ``tagger train`` remain the safe, code-free format).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import OutputError, atomic_write, check_output
from .checkpoint import load_checkpoint, make_payload
from .errors import import_failure
from .exported import EXTRA_FILE, METADATA_KEY, SUFFIXES, exported_kind
from .model import BiLSTMTagger, RecurrentEncoder, build_model

FORMATS = ("onnx", "torchscript")
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

    def forward(self, inputs: dict[str, torch.Tensor], lengths: torch.Tensor) -> torch.Tensor:
        """inputs: {feature name: (batch, seq_len, slots)}; lengths: (batch,) -> emissions
        (batch, seq_len, num_tags)."""
        return self.model.emissions(inputs, lengths)


class _TimeMajorRecurrent(nn.Module):
    """The network of a :class:`~bmes_tagger.model.RecurrentEncoder` model as ONNX runs it
    best: time-major, each layer one ONNX LSTM/GRU/RNN node for both directions, which reads
    each row's length itself (``sequence_lens``, added to the traced graph by
    :func:`_with_sequence_lens`: traced alone, this module's backward direction would read a
    row's padding first).

    Eager training runs each direction as its own module on the padded batch and reverses
    rows within their lengths around the backward one; exported that way, the graph carried
    a second recurrent node, row reversals (gathers over whole hidden states) and transposes
    of the float activations into and out of the time-major layout ONNX's recurrent
    operators read. Here only the integer ids (before the embedding) and the (seq_len, batch,
    tags) scores (after the output layer) are transposed. The same weights, so the same
    emissions on real positions (tests check it at many shapes); on padding the recurrent
    nodes output zeros, as the eager encoder does.
    """

    def __init__(self, network: EmissionNetwork) -> None:
        super().__init__()
        self.model = network.model
        encoder = self.model.encoder
        assert isinstance(encoder, RecurrentEncoder)
        layers = []
        for directions in encoder.layers:
            first = directions[0]
            extra = {"nonlinearity": first.nonlinearity} if isinstance(first, nn.RNN) else {}
            rnn = type(first)(first.input_size, first.hidden_size,
                              bidirectional=len(directions) == 2, **extra)
            # the backward module's weights are the "_reverse" ones of a bidirectional layer
            rnn.load_state_dict({name + ("_reverse" if d else ""): weight
                                 for d, module in enumerate(directions)
                                 for name, weight in module.state_dict().items()})
            layers.append(rnn)
        self.layers = nn.ModuleList(layers)
        self.eval()

    def forward(self, inputs: dict[str, torch.Tensor], lengths: torch.Tensor) -> torch.Tensor:
        """For tracing only (see the class): inputs {name: (batch, seq_len, slots)}, lengths
        (batch,) -> (batch, seq_len, num_tags)."""
        model = self.model
        # (seq_len, batch, input_dim)
        x = model.embedding({name: ids.transpose(0, 1) for name, ids in inputs.items()})
        for rnn in self.layers:
            # (seq_len, batch, directions * hidden)
            x = rnn(x)[0]
        # (seq_len, batch, num_tags) -> (batch, seq_len, num_tags)
        return model.output(x).transpose(0, 1)


# the recurrent operators of ONNX, whose input 4 is sequence_lens (int32, one per row)
_RECURRENT_OPS = ("LSTM", "GRU", "RNN")


def _with_sequence_lens(graph: Any, onnx: Any) -> None:
    """Give every recurrent node of a traced :class:`_TimeMajorRecurrent` graph the rows'
    lengths (the graph input ``lengths``, as int32) as its ``sequence_lens``: each direction
    then runs over a row's real positions only (the backward one starts at its last real
    character) and outputs zeros on padding."""
    nodes = [n for n in graph.graph.node if n.op_type in _RECURRENT_OPS]
    assert nodes and all(len(n.input) > 4 and not n.input[4] for n in nodes), \
        "expected recurrent nodes without sequence_lens"
    if "lengths" not in [i.name for i in graph.graph.input]:
        # the tracer drops an input that nothing read
        graph.graph.input.insert(0, onnx.helper.make_tensor_value_info(
            "lengths", onnx.TensorProto.INT64, ["batch"]))
    cast = onnx.helper.make_node("Cast", ["lengths"], ["sequence_lens"],
                                 to=onnx.TensorProto.INT32, name="sequence_lens")
    graph.graph.node.insert(0, cast)
    for node in nodes:
        node.input[4] = "sequence_lens"


class _Positional(nn.Module):
    """The network with one positional argument per input, for ONNX's named graph inputs."""

    def __init__(self, network: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.network = network
        self.names = names

    def forward(self, lengths: torch.Tensor, *features: torch.Tensor) -> torch.Tensor:
        return self.network(dict(zip(self.names, features)), lengths)


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
        CheckpointError: unreadable checkpoint. ValueError: unknown format, a wrong suffix.
        OutputError: an existing output without ``force``, or the checkpoint itself.
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
    if exported_kind(checkpoint) is not None:
        raise ValueError(f"{checkpoint}: already an exported model; export from the checkpoint "
                         "(best.pt) it came from")
    ckpt = load_checkpoint(checkpoint)
    out = Path(output) if output is not None else default_output(checkpoint, fmt, quantize)
    if out.resolve() == Path(checkpoint).resolve():
        raise ValueError(f"{out}: the export would overwrite its own checkpoint")
    if exported_kind(out) != fmt:
        raise ValueError(f"{out}: a {fmt} file must be named *{SUFFIXES[fmt]} (that is how "
                         "it is recognised when loaded)")
    check_output(out, force=force, inputs={"the checkpoint": checkpoint})
    assert ckpt.weights is not None
    model = build_model(ckpt.config, ckpt.vocabs, ckpt.tags)
    model.load_state_dict(ckpt.weights)
    model.eval()
    meta = make_payload(ckpt.config, ckpt.vocabs, ckpt.tags, ckpt.train_words, {}, ckpt.scores)
    del meta["model"]
    meta.update(exported_from=str(checkpoint), exported_as=fmt + (" (int8 weights)"
                                                                   if quantize else ""),
                parameters=sum(p.numel() for p in model.parameters()),
                crf=None if model.crf is None else {name: p.detach().tolist() for name, p
                                                    in model.crf.state_dict().items()})
    metadata = json.dumps(_plain(meta), ensure_ascii=False)
    network = EmissionNetwork(model)
    try:
        if fmt == "onnx":
            data = _onnx_bytes(network, metadata, quantize)
        else:
            data = _torchscript_bytes(network, metadata, quantize)
    except OSError as exc:
        # The ONNX exporter and the quantiser write their files into the system's temporary
        # folder: a full disk there is reported against the output the user asked for.
        reason = exc.strerror or str(exc).strip().splitlines()[0][:160]
        raise OutputError(f"{out}: could not write the exported model: {reason} (in "
                          f"{tempfile.gettempdir()}, where it is built first)",
                          reason=reason, filename=out) from None
    with atomic_write(out, binary=True, force=force, inputs={"the checkpoint": checkpoint}) as f:
        f.write(data)
    return out


def _plain(value: Any) -> Any:
    """Scores may hold tensors or tuples; JSON wants lists and numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def _example_inputs(network: EmissionNetwork) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A small padded batch with distinct batch size and length (3 x 7, lengths 7/5/2), so
    tracing keeps both dimensions symbolic rather than specialising them to 1."""
    lengths = torch.tensor([7, 5, 2])
    # (3, 7, 1): id 1 (<unk>) on real positions, 0 on padding
    real = (torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)).long().unsqueeze(2)
    inputs = {}
    for name, k in network.model.embedding.slots.items():
        inputs[name] = real.expand(3, 7, k).contiguous()
        if network.model.embedding.weighted[name]:
            inputs[name + "_weights"] = inputs[name].float()
    return lengths, inputs


def _onnx_bytes(network: EmissionNetwork, metadata: str, quantize: bool) -> bytes:
    onnx = _onnx()
    lengths, inputs = _example_inputs(network)
    names = list(inputs)
    axes = {name: {0: "batch", 1: "seq"} for name in (*names, "emissions")}
    axes["lengths"] = {0: "batch"}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notices about its own internals
        path = Path(tmp) / "model.onnx"
        # The TorchScript-based exporter maps each nn.LSTM/GRU/RNN to the ONNX operator of the
        # same name, which runs at any batch size and length. (torch.export-based export, the
        # `dynamo=True` path in torch 2.13, unrolls the LSTM and pins the length to the example's.)
        time_major = isinstance(network.model.encoder, RecurrentEncoder)
        exported = _TimeMajorRecurrent(network) if time_major else network
        torch.onnx.export(_Positional(exported, names), (lengths, *inputs.values()), str(path),
                          dynamo=False, input_names=["lengths", *names],
                          output_names=["emissions"], dynamic_axes=axes,
                          opset_version=ONNX_OPSET)
        if time_major:
            graph = onnx.load(str(path))
            _with_sequence_lens(graph, onnx)
            onnx.save(graph, str(path))
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


def _onnx() -> Any:
    """The onnx module (and onnxruntime, which quantisation and loading need), or an error
    that says what to install."""
    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise import_failure(exc, f"ONNX support needs the onnx extra ({exc.name} is "
                             "missing): pip install 'bmes_tagger[onnx]'") from None
    return onnx
