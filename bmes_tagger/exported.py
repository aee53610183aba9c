"""Running exported models: ONNX files (onnxruntime) and, only when asked to trust them,
TorchScript files, behind the same decoding interface as the eager network.

An exported file carries the checkpoint's fields except the weights (:mod:`bmes_tagger.export`
writes it); :func:`load_exported` validates them with :func:`bmes_tagger.checkpoint.read_payload`
and checks that the graph takes exactly the inputs that metadata describes.

Security: an ONNX file is data (a graph of standard operators). A TorchScript file is code for
torch's interpreter: it is loaded only from a ``.ts`` file and only with ``trust_code=True``
(``--trust-code``), never recognised by its content, and loading it warns on stderr.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import Checkpoint, read_payload
from .errors import BmesTaggerError, CheckpointError, require_torch
from .features import input_names

SUFFIXES = {"onnx": ".onnx", "torchscript": ".ts"}
METADATA_KEY = "bmes_tagger"
EXTRA_FILE = "bmes_tagger.json"

Run = Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]


class ExportedNetwork:
    """An exported network behind the interface a :class:`~bmes_tagger.predict.Tagger`
    predicts with (see :class:`bmes_tagger.predict.Network`).

    Args:
        run: ``(inputs by name, lengths) -> emissions``, NumPy in and out (the ONNX session
            or the TorchScript module, adapted).
        crf: the CRF's (start, transitions, end) from the file's metadata, or None.
        kind: ``"onnx"`` or ``"torchscript"``.
        num_tags: the size of the tag set, which the graph's output must have.
        source: the file, for error messages.
    """

    def __init__(self, run: Run, crf: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                 kind: str, num_tags: int, source: str) -> None:
        self.run = run
        self.crf = crf
        self.kind = kind
        self.num_tags = num_tags
        self.source = source

    @property
    def has_crf(self) -> bool:
        return self.crf is not None

    def transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        return self.crf

    def emissions(self, inputs: dict[str, np.ndarray], lengths: np.ndarray) -> np.ndarray:
        """(batch, seq_len, num_tags) float32 scores from the exported graph; a graph whose
        output has another shape, or is not finite, is an error rather than silently bad
        output."""
        out = self.run(inputs, lengths)
        batch, seq_len = lengths.shape[0], next(iter(inputs.values())).shape[1]
        if tuple(out.shape) != (batch, seq_len, self.num_tags):
            raise CheckpointError(f"{self.source}: the graph's output has shape "
                                  f"{tuple(out.shape)}, expected (batch, seq_len, "
                                  f"{self.num_tags}) for (batch {batch}, seq_len {seq_len})")
        if not np.isfinite(out).all():
            raise CheckpointError(f"{self.source}: the graph produced NaN or infinite scores")
        return out.astype(np.float32, copy=False)


def exported_kind(path: str | Path) -> str | None:
    """``"onnx"`` or ``"torchscript"`` by the file's name (``.onnx``, ``.ts``), else None (a
    checkpoint). Never by content: a ``.pt`` is always read as a checkpoint, which refuses
    code."""
    suffix = Path(path).suffix
    return next((kind for kind, s in SUFFIXES.items() if s == suffix), None)


def load_exported(path: str | Path, threads: int | None = None, trust_code: bool = False
                  ) -> tuple[Checkpoint, ExportedNetwork]:
    """Read an exported file: (its metadata as a checkpoint without weights, the network).

    Args:
        path: a ``.onnx`` or ``.ts`` file written by ``tagger export``.
        threads: onnxruntime intra-op threads (default 1; 0: all cores).
        trust_code: required for TorchScript, which runs code contained in the file.

    Raises:
        CheckpointError: missing, unreadable or inconsistent file; TorchScript not trusted.
    """
    path = Path(path)
    kind = exported_kind(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: exported model not found")
    if kind == "onnx":
        raw, run, names = _load_onnx(path, threads)
    elif kind == "torchscript":
        if not trust_code:
            raise CheckpointError(f"{path}: a TorchScript file contains code that runs when it "
                                  "is loaded; load it only if you trust it (--trust-code, or "
                                  "Tagger.load(..., trust_code=True))")
        # before the notice: a file that cannot be loaded here gets one error line
        require_torch(f"{path}: a TorchScript model (.ts)")
        # a security notice, so straight to stderr: a warnings filter must not hide it
        print(f"warning: {path}: loading TorchScript, which runs code from the file (trusted "
              "with --trust-code)", file=sys.stderr)
        raw, run, names = _load_torchscript(path)
    else:
        raise CheckpointError(f"{path}: not an exported bmes_tagger model (.onnx or .ts)")
    meta = read_payload(raw, str(path), weights=False)
    wanted = {"lengths", *input_names(meta.config.model)}
    if names is not None and set(names) != wanted:
        raise CheckpointError(f"{path}: the graph takes inputs {sorted(names)}, but its "
                              f"metadata describes a model reading {sorted(wanted)}")
    crf = None
    if meta.crf is not None:
        crf = (meta.crf["start_transitions"], meta.crf["transitions"],
               meta.crf["end_transitions"])
    return meta, ExportedNetwork(run, crf, kind, len(meta.tags), str(path))


def _load_onnx(path: Path, threads: int | None) -> tuple[Any, Run, list[str]]:
    ort = onnxruntime()
    options = ort.SessionOptions()
    # 1 unless asked: on a busy machine more threads spin (see train.threads); 0 = all cores
    options.intra_op_num_threads = 1 if threads is None else threads
    options.inter_op_num_threads = 1
    # fatal only: onnxruntime logs a failed run as a coloured line on stderr before raising,
    # and the exception it raises is what the one-line error reports
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise CheckpointError(f"{path}: not a readable ONNX model: "
                              f"{str(exc).strip().splitlines()[0][:200] if str(exc) else exc}"
                              ) from None
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise CheckpointError(f"{path}: ONNX model without bmes_tagger metadata (not exported "
                              "by `tagger export`)")
    outputs = session.get_outputs()
    if len(outputs) != 1 or len(outputs[0].shape) != 3:
        raise CheckpointError(f"{path}: the graph must have one output of rank 3 (batch, "
                              "seq_len, tags)")
    # rank of each input: format 3 graphs take (batch, seq_len, slots) for every feature;
    # format 2 graphs took (batch, seq_len) characters and classes
    ranks = {i.name: len(i.shape) for i in session.get_inputs()}
    output = outputs[0].name

    def run(inputs: dict[str, np.ndarray], lengths: np.ndarray) -> np.ndarray:
        feed = {"lengths": lengths}
        for name, ids in inputs.items():
            if name in ranks:
                feed[name] = ids[..., 0] if ranks[name] == 2 else ids
        try:
            return session.run([output], feed)[0]
        except Exception as exc:  # onnxruntime's own types
            raise CheckpointError(f"{path}: the graph failed to run: "
                                  f"{str(exc).strip().splitlines()[0][:200]}") from None

    return _parse_metadata(path, raw), run, list(ranks)


def _load_torchscript(path: Path) -> tuple[Any, Run, list[str] | None]:
    import torch  # TorchScript is torch's format; ONNX needs no torch

    extra = {EXTRA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable TorchScript model: "
                              f"{str(exc).strip().splitlines()[0][:200]}") from None
    module.eval()
    meta = _parse_metadata(path, extra[EXTRA_FILE])

    def run(inputs: dict[str, np.ndarray], lengths: np.ndarray) -> np.ndarray:
        tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
        with torch.inference_mode():
            if meta.get("format_version", 0) < 3:
                # format 2: forward(chars, lengths, bigrams, classes), 2-d chars and classes
                get = tensors.get
                classes = get("classes")
                out = module(get("chars")[..., 0], torch.from_numpy(lengths), get("bigrams"),
                             None if classes is None else classes[..., 0])
            else:
                out = module(tensors, torch.from_numpy(lengths))
        return out.float().numpy()

    return meta, run, None


def _parse_metadata(path: Path, raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{path}: exported model has unreadable bmes_tagger metadata"
                              ) from None


def onnxruntime() -> Any:
    """The onnxruntime module, or an error that says what to install."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BmesTaggerError(f"ONNX support needs the onnx extra ({exc.name} is missing): "
                              "pip install 'bmes_tagger[onnx]'") from None
    return ort
