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
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import FORMAT_VERSION, Checkpoint, read_payload
from .errors import CheckpointError, import_failure, require_torch
from .features import embedding_specs, input_names

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
        output has another shape is an error rather than silently bad output (their values
        are checked where every kind of network's are,
        :meth:`bmes_tagger.predict.Tagger.network_scores`)."""
        out = self.run(inputs, lengths)
        batch, seq_len = lengths.shape[0], next(iter(inputs.values())).shape[1]
        if tuple(out.shape) != (batch, seq_len, self.num_tags):
            raise CheckpointError(f"{self.source}: the graph's output has shape "
                                  f"{tuple(out.shape)}, expected (batch, seq_len, "
                                  f"{self.num_tags}) for (batch {batch}, seq_len {seq_len})")
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
        tables = _onnx_rows(path)
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
        raw, run, names, tables = _load_torchscript(path)
    else:
        raise CheckpointError(f"{path}: not an exported bmes_tagger model (.onnx or .ts)")
    meta = read_payload(raw, str(path), weights=False)
    wanted = {"lengths", *input_names(meta.config.model)}
    if names is not None and set(names) != wanted:
        raise CheckpointError(f"{path}: the graph takes inputs {sorted(names)}, but its "
                              f"metadata describes a model reading {sorted(wanted)}")
    _check_tables(path, meta, tables)
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
    # No arena and no memory pattern: with them a session keeps a pool sized (rounded up) for
    # the largest batch it has run, much of a whole-file predict's peak memory; without them
    # tensors come from malloc, at no cost the A/B runs of this change could measure.
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
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


def _load_torchscript(path: Path) -> tuple[Any, Run, list[str] | None, dict[str, int]]:
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
    rows = {name: int(t.shape[0]) for name, t in module.state_dict().items() if t.dim()}

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

    return meta, run, None, rows


# An embedding table's weights, by the name torch gives them: trained rows ("weight"), the
# fixed tail of model.extend_vocab ("tail"); int8 export renames them "..._quantized".
_TABLE = re.compile(r"(?:^|\.)embedding\.tables\.([^.]+)\.(weight|tail)(?:_quantized)?$")


def _check_tables(path: Path, meta: Checkpoint, rows: dict[str, int]) -> None:
    """The graph's embedding tables must have exactly the rows the metadata's vocabularies
    number. A shorter vocabulary would run, reading every token through the wrong row (ids
    are positions in the vocabulary); a longer one fails on the first token past the table.

    Format 1 and 2 exports named their tables otherwise and are not checked.

    Raises:
        CheckpointError: a table missing or of the wrong size, naming the file and feature.
    """
    found: dict[str, dict[str, int]] = {}
    for name, n in rows.items():
        if match := _TABLE.search(name):
            found.setdefault(match.group(1), {})[match.group(2)] = n
    if meta.extra.get("format_version", FORMAT_VERSION) < 3:
        return
    for feature, spec in embedding_specs(meta.config.model, meta.vocabs).items():
        table = found.get(feature)
        if table is None or "weight" not in table:
            raise CheckpointError(f"{path}: the graph has no embedding table for the input "
                                  f"feature {feature} that its metadata describes")
        tail = table.get("tail", 0)
        have = table["weight"] + tail
        if have != spec.num_embeddings or tail != spec.fixed:
            fixed = (f" ({tail:,} of them fixed)", f" ({spec.fixed:,} fixed)") \
                if tail or spec.fixed else ("", "")
            raise CheckpointError(f"{path}: the graph's {feature} embedding table has "
                                  f"{have:,} rows{fixed[0]}, but its metadata's {feature} "
                                  f"vocabulary has {spec.num_embeddings:,}{fixed[1]}")


def _onnx_rows(path: Path) -> dict[str, int]:
    """``{initializer name: first dimension}`` of an ONNX file's graph, read from the
    protobuf wire format directly: onnxruntime does not show initializers, and the ``onnx``
    package is not part of a deployment install. Only the fields needed are decoded; tensor
    data is read in place, never copied. float32 weights must be finite: onnxruntime's
    recurrent kernels turn NaN weights into finite garbage, so the check on the network's
    scores would never see them.

    Raises:
        CheckpointError: the file is not a well-formed ONNX protobuf, or a float32 weight is
            NaN or infinite.
    """
    import mmap

    rows: dict[str, int] = {}
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            view = memoryview(data)
            try:
                # ModelProto.graph = 7; GraphProto.initializer = 5; TensorProto.dims = 1
                # (packed or not), TensorProto.name = 8
                for field, start, end in _message(view, 0, len(view)):
                    if field != 7 or start < 0:
                        continue
                    for gfield, gstart, gend in _message(view, start, end):
                        if gfield != 5 or gstart < 0:
                            continue
                        name, dims, dtype, raw = "", [], 0, None
                        for tfield, tstart, tend in _message(view, gstart, gend):
                            if tfield == 1 and tstart < 0:
                                dims.append(tend)  # a varint field: its value
                            elif tfield == 1:
                                dims.extend(_packed(view, tstart, tend))
                            elif tfield == 8 and tstart >= 0:
                                name = bytes(view[tstart:tend]).decode("utf-8", "replace")
                            elif tfield == 2 and tstart < 0:  # TensorProto.data_type
                                dtype = tend
                            elif tfield == 9 and tstart >= 0:  # TensorProto.raw_data
                                raw = (tstart, tend)
                        if dims:
                            rows[name] = dims[0]
                        # data_type 1 = FLOAT, stored little-endian in raw_data
                        if dtype == 1 and raw is not None and (raw[1] - raw[0]) % 4 == 0 \
                                and not np.isfinite(np.frombuffer(
                                    view[raw[0]:raw[1]], dtype="<f4")).all():
                            bad = name or "an unnamed weight"
                            raise CheckpointError(f"{path}: the graph's weight {bad} holds "
                                                  "NaN or infinite values")
            finally:
                view.release()
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable ONNX model ({exc})") from None
    return rows


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _message(data: memoryview, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """The fields of a protobuf message in ``data[pos:end]``: ``(number, start, end)`` of a
    length-delimited field's bytes, or ``(number, -1, value)`` of a varint; fixed-width
    fields are skipped."""
    if end > len(data):
        raise ValueError("truncated message")
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, -1, value
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise ValueError("truncated field")
            yield number, pos, pos + size
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if pos != end:
        raise ValueError("truncated message")


def _packed(data: memoryview, pos: int, end: int) -> list[int]:
    values = []
    while pos < end:
        value, pos = _varint(data, pos)
        values.append(value)
    return values


def _parse_metadata(path: Path, raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    # ValueError: besides JSONDecodeError (its subclass), an integer literal past Python's
    # digit limit for int()
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{path}: exported model has unreadable bmes_tagger metadata"
                              ) from None


def onnxruntime() -> Any:
    """The onnxruntime module, or an error that says what to install."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise import_failure(exc, f"ONNX support needs the onnx extra ({exc.name} is "
                             "missing): pip install 'bmes_tagger[onnx]'") from None
    return ort
