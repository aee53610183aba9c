"""Self-contained checkpoints: the one owner of what a trained model is, as stored.

A checkpoint is a plain dict of tensors and Python builtins (loadable with
``torch.load(..., weights_only=True)``, which refuses any pickled object that would run code):

- ``format``: ``"bmes_tagger"``; ``format_version``: int (refused if newer than we read)
- ``config``: the resolved config as a nested dict
- ``vocabs``: ``{feature name: vocabulary}`` of every input feature that has one
  (:mod:`bmes_tagger.features`), each token list stored as one ``"\n"``-joined string
- ``tags``: the tag list (id order)
- ``train_words``: sorted training word types (CWS OOV metrics), ``"\n"``-joined; empty for NER
- ``model``: the network's state dict
- ``scores``: best dev scores and the epoch/step they were reached at
- ``training`` (``last.pt`` only): optimizer, scheduler, EMA, the snapshots
  ``train.average_last`` averages, RNG and loop state for ``--resume``

:func:`make_payload` builds that dict and :func:`read_payload` reads one back: it migrates older
format versions (keyed on ``format_version``, see :data:`MIGRATIONS`) and validates everything
against the schema (types, tag sets, vocabularies, weight shapes against the network the
config describes, finite values) before anything is built from it, so a hostile file is one
:class:`CheckpointError`, never a traceback, a huge allocation or code that runs. Exported
models (:mod:`bmes_tagger.exported`) carry the same fields, without weights, as JSON.
"""

from __future__ import annotations

import math
import pickle
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_write
from .config import Config, config_from_dict
from .errors import ONNX_HINT, BmesTaggerError, CheckpointError, require_torch
from .features import BY_NAME, active
from .tags import split_tag, tag_inventory
from .version import __version__

if TYPE_CHECKING:
    import torch

# torch is imported by the functions that handle weights: the metadata of an exported ONNX
# model is validated here too, in an environment that may have no torch.
from .vocab import Vocab

FORMAT = "bmes_tagger"
FORMAT_VERSION = 3
# A torch.save archive stores its records uncompressed; a file whose records claim to inflate
# to much more than its own size is a decompression bomb, not a checkpoint.
_MAX_INFLATION = 2.0
_MAX_TOKENS = 50_000_000  # per vocabulary or word list: far above any real corpus
_LOOP_KEYS = {"epoch": int, "batch_in_epoch": int, "step": int, "best_f1": float,
              "best_epoch": int, "best_step": int, "bad_evals": int, "best_scores": dict,
              "loss_sum": float, "loss_tokens": int}


@dataclass
class Checkpoint:
    """A trained model as stored: everything needed to rebuild and run it.

    ``weights`` is None for the metadata of an exported model (its network is the exported
    graph); ``crf`` then holds the CRF parameters (``{name: nested lists}``), else None.
    """

    config: Config
    vocabs: dict[str, Vocab]
    tags: list[str]
    train_words: list[str] = field(default_factory=list)
    weights: dict[str, torch.Tensor] | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] | None = None
    crf: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # informational: version, export info

    @property
    def task(self) -> str:
        return self.config.data.task


def make_payload(
    config: Config, vocabs: Mapping[str, Any], tags: Iterable[str],
    train_words: Iterable[str], weights: Mapping[str, torch.Tensor],
    scores: Mapping[str, Any] | None = None, training: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The dict :func:`save_checkpoint` writes (current format version)."""
    payload: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "bmes_tagger_version": __version__,
        "config": config.to_dict(),
        "vocabs": {name: BY_NAME[name].save(state) for name, state in vocabs.items()},
        "tags": list(tags), "train_words": _joined(sorted(train_words), "train_words"),
        "model": dict(weights), "scores": dict(scores or {}),
    }
    if training is not None:
        payload["training"] = dict(training)
    return payload


def save_checkpoint(payload: Mapping[str, Any], path: str | Path) -> None:
    """Write a :func:`make_payload` dict to ``path`` atomically (temporary file, fsync,
    rename): no partial file ever exists under the final name, even if the process is killed
    mid-write. A failed write (disk full) is a :class:`CheckpointError` and leaves an
    existing file as it was."""
    import torch

    path = Path(path)
    try:
        with atomic_write(path, binary=True) as f:
            torch.save(dict(payload), f)
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0][:160]
        raise CheckpointError(f"{path}: could not write the checkpoint: {reason}") from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load, migrate and validate a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: missing file, not a checkpoint (truncated, random bytes, another
            program's file), unsafe content (objects that would execute code), a
            decompression bomb, a format version newer than this program reads, or content
            that does not describe a consistent model (the message names the field).
    """
    return read_payload(_torch_load(Path(path)), str(path))


def read_payload(raw: Any, source: str, weights: bool = True) -> Checkpoint:
    """Migrate and validate a loaded checkpoint dict (or, with ``weights`` False, the
    metadata of an exported model) into a :class:`Checkpoint`.

    Raises:
        CheckpointError: naming ``source`` and the offending field.
    """
    try:
        return _read_payload(raw, weights)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    except BmesTaggerError as exc:  # the stored config
        raise CheckpointError(f"{source}: stored config: {_one_line(exc)}") from None
    except RecursionError:
        raise CheckpointError(f"{source}: nested too deeply to be a checkpoint") from None


def expected_shapes(config: Config, vocabs: Mapping[str, Vocab], tags: list[str]
                    ) -> dict[str, tuple[int, ...]]:
    """Shapes of the state dict of the network ``config`` describes, computed on the meta
    device: nothing is allocated, however large the config says the layers are."""
    return {k: shape for k, (shape, _) in _expected(config, vocabs, tags).items()}


def _expected(config: Config, vocabs: Mapping[str, Vocab], tags: list[str]
              ) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Shape and dtype of every weight of the network ``config`` describes, from the meta
    device (see :func:`expected_shapes`)."""
    import torch

    from .model import build_model  # the network's owner (it imports nothing from here)

    with torch.device("meta"):
        model = build_model(config, dict(vocabs), tags)
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


# --- reading -------------------------------------------------------------------------------------


def _torch_load(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_dir():
        hint = " (did you mean best.pt inside it?)" if (path / "best.pt").exists() else ""
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file, expected a checkpoint")
    _check_archive(path)
    require_torch(f"{path}: reading a checkpoint (.pt)", ONNX_HINT)
    import torch

    try:
        with warnings.catch_warnings():
            # torch warns on stderr about what it finds while loading (a plain pickle rather
            # than torch.save's zip, sparse CSR or quantized tensors, typed storages): what
            # matters of it is refused below or by the validation, in one line.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        if unsafe:
            raise CheckpointError(
                f"{path}: refused to load: it references Python objects that are not plain "
                f"tensors or values, and loading them could run code ({unsafe[0][:160]})"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt, or not written by "
                              "torch.save)") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not a readable checkpoint (nested too deeply)") from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError, KeyError,
            TypeError, AttributeError, IndexError, MemoryError) as exc:
        # torch.load of arbitrary bytes fails in many ways (a text file starting with a
        # pickle opcode letter gives a KeyError); all of them mean "not a checkpoint"
        reason = _one_line(exc) or type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                              f"{reason[:200]}") from None


def _check_archive(path: Path) -> None:
    size = path.stat().st_size
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
        total = sum(info.file_size for info in infos)
        names = [info.filename for info in infos]
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # torch.load reports it
    if any(name.endswith(("/constants.pkl", "/code/")) or "/code/__torch__" in name
           for name in names):
        raise CheckpointError(f"{path}: refused to load: it is a TorchScript file, which "
                              "contains code, not a checkpoint (to run an exported model you "
                              "trust, name it *.ts and pass --trust-code)")
    if total > _MAX_INFLATION * size + (1 << 20):
        raise CheckpointError(f"{path}: refused to load: its records would inflate to "
                              f"{total / 1e6:,.0f} MB from a {size / 1e6:,.1f} MB file "
                              "(torch.save writes them uncompressed)")


def _read_payload(raw: Any, weights: bool) -> Checkpoint:
    _check(isinstance(raw, dict) and raw.get("format") == FORMAT,
           "not a bmes_tagger checkpoint")
    version = raw.get("format_version")
    _check(type(version) is int and version >= 1, "checkpoint has no valid format_version "
           f"({_short(version)})")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format version {version} is newer than this "
                              f"bmes_tagger ({__version__}) reads (version {FORMAT_VERSION}); "
                              "upgrade bmes_tagger")
    raw = dict(raw)
    for old, migrate in sorted(MIGRATIONS.items()):
        if version <= old:
            raw = migrate(raw)
    for key in ("config", "vocabs", "tags"):
        _check(key in raw, f"checkpoint lacks {key}")
    _check(isinstance(raw["config"], dict) and raw["config"],
           f"config must be a non-empty mapping, got {_short(raw['config'])}")
    config = config_from_dict(raw["config"], source="config")
    tags = _tags(raw["tags"], config.data.task)
    vocabs = _vocabs(raw["vocabs"], config)
    train_words = _tokens(raw.get("train_words", ""), "train_words", allow_empty=True)
    # written sorted and distinct: anything else was not written by save_checkpoint
    _check("" not in train_words, "train_words holds an empty word")
    _check(len(set(train_words)) == len(train_words), "train_words holds duplicate words")
    scores = _scores(raw.get("scores"))
    crf = None
    state = None
    if weights:
        _check("model" in raw, "checkpoint lacks model (the weights)")
        _sizes_fit(raw["model"], config)
        state = _weights(raw["model"], _expected(config, vocabs, tags))
    else:
        crf = _crf(raw.get("crf"), len(tags), config)
    training = raw.get("training")
    if training is not None:
        training = _training(training)
    extra = {k: raw[k] for k in ("bmes_tagger_version", "exported_as", "exported_from",
                                 "parameters", "format_version") if k in raw}
    for key in ("bmes_tagger_version", "exported_as", "exported_from"):
        _check(isinstance(extra.get(key, ""), str),
               f"{key} must be a string, got {_short(extra.get(key))}")
    count = extra.get("parameters", 0)
    _check(type(count) is int and count >= 0, f"parameters must be a count, got {_short(count)}")
    return Checkpoint(config=config, vocabs=vocabs, tags=tags, train_words=train_words,
                      weights=state, scores=scores, training=training, crf=crf, extra=extra)


def _sizes_fit(model: Any, config: Config) -> None:
    """A cheap bound before the network the config describes is built (even on the meta
    device a stored ``hidden_size: 10**9`` overflows and ``num_layers: 20000`` takes minutes):
    every size key is at most the number of stored values, since some weight has at least
    that many, and every layer owns at least one stored tensor."""
    from .model import SIZE_KEYS

    if not isinstance(model, dict):
        return  # _weights names what is wrong with it
    # a meta tensor may declare any size: it counts for nothing (and is refused later)
    tensors = [v for v in model.values() if hasattr(v, "numel") and not v.is_meta]
    values = sum(int(v.numel()) for v in tensors)
    for key in SIZE_KEYS:
        size = getattr(config.model, key)
        limit = len(tensors) if key == "num_layers" else values
        _check(size <= limit, f"stored config: model.{key}={size} does not fit the weights, "
                              f"which hold {len(tensors)} tensors of {values:,} values")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckpointError(message)


def _short(value: Any) -> str:
    """A bounded description of a stored value for error messages (never a huge repr)."""
    if isinstance(value, (bool, int, float)) or value is None:
        return repr(value)[:40]
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _one_line(exc: BaseException) -> str:
    lines = [x.strip() for x in str(exc).strip().splitlines() if x.strip()]
    return lines[0][:200] if lines else ""


def _tokens(value: Any, name: str, allow_empty: bool = False) -> list[str]:
    """A stored token list: a ``"\n"``-joined string (format 2+) or a list of strings."""
    if isinstance(value, str):
        tokens = value.split("\n") if value else []
    elif isinstance(value, list) and all(isinstance(t, str) for t in value):
        tokens = list(value)
    else:
        raise CheckpointError(f"{name} must be a list of strings, got {_short(value)}")
    _check(len(tokens) <= _MAX_TOKENS, f"{name}: {len(tokens):,} entries is not plausible")
    _check(allow_empty or bool(tokens), f"{name} is empty")
    return tokens


def _vocabs(value: Any, config: Config) -> dict[str, Vocab]:
    _check(isinstance(value, dict), f"vocabs must be a mapping, got {_short(value)}")
    needed = [f.name for f in active(config.model) if f.has_vocab]
    _check(set(value) == set(needed), f"vocabs hold {sorted(value)}, but the config's model "
           f"reads {needed}")
    out = {}
    for name in needed:
        raw = value[name]
        parts = raw.values() if isinstance(raw, dict) else [raw]
        for part in parts:
            if isinstance(part, str | list):
                _check(len(part) <= _MAX_TOKENS * 64,
                       f"vocabs.{name}: too large to be plausible")
        try:
            out[name] = BY_NAME[name].load(raw, config)
        except ValueError as exc:
            raise CheckpointError(f"vocabs.{name} {exc}") from None
    return out


def _tags(value: Any, task: str) -> list[str]:
    _check(isinstance(value, list) and value and all(isinstance(t, str) for t in value),
           f"tags must be a non-empty list of strings, got {_short(value)}")
    _check(len(set(value)) == len(value), "tags hold duplicates")
    labels = set()
    for tag in value:
        try:
            prefix, label = split_tag(tag)
        except ValueError as exc:
            raise CheckpointError(f"tags: {exc}") from None
        if label:
            labels.add(label)
    expected = tag_inventory(task, labels)
    _check(set(value) == set(expected), f"tags are not the tag set of a {task} model (e.g. "
           f"{sorted(set(value) ^ set(expected))[:3]} should "
           f"{'not ' if set(value) - set(expected) else ''}be there)")
    return list(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _scores(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    _check(isinstance(value, dict), f"scores must be a mapping, got {_short(value)}")
    for key in ("best_f1",):
        _check(key not in value or _number(value[key]), f"scores.{key} must be a number, "
               f"got {_short(value.get(key))}")
    for key in ("best_epoch", "best_step"):
        _check(key not in value or type(value[key]) is int,
               f"scores.{key} must be an integer, got {_short(value.get(key))}")
    dev = value.get("dev", {})
    _check(isinstance(dev, dict), f"scores.dev must be a mapping, got {_short(dev)}")
    for key, v in dev.items():
        _check(isinstance(key, str), "scores.dev keys must be strings")
        if key == "per_type":
            _check(isinstance(v, dict), f"scores.dev.per_type must be a mapping, got {_short(v)}")
            for label, row in v.items():
                _check(isinstance(label, str) and isinstance(row, dict)
                       and all(isinstance(k, str) and _number(x) for k, x in row.items()),
                       f"scores.dev.per_type.{_short(label)} must map names to numbers")
            continue
        _check(v is None or _number(v), f"scores.dev.{key} must be a number, got {_short(v)}")
    return dict(value)


def _dense_cpu(tensor: torch.Tensor, where: str) -> None:
    """A stored tensor must be an ordinary one: dense (strided), holding its values on the
    CPU (``map_location="cpu"`` leaves a meta tensor, which has none), not quantized. Any
    other kind crashes, deep in torch, whatever reads it next (``isfinite``,
    ``load_state_dict``, the optimizer)."""
    import torch

    _check(tensor.layout == torch.strided, f"{where} is a {tensor.layout} tensor; a "
           "checkpoint holds dense tensors")
    _check(tensor.device.type == "cpu", f"{where} is a tensor on the {tensor.device.type} "
           "device, which holds no values to load")
    _check(not tensor.is_quantized, f"{where} is a quantized tensor ({tensor.dtype}); a "
           "checkpoint holds floating-point weights")


def _dense_cpu_all(value: Any, where: str) -> None:
    """:func:`_dense_cpu` of every tensor in a nested structure (walked without recursion:
    a hostile file may nest deeply)."""
    import torch

    stack = [(value, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, torch.Tensor):
            _dense_cpu(item, at)
        elif isinstance(item, dict):
            stack.extend((v, f"{at}.{_short(k) if not isinstance(k, str) else k}")
                         for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(item))


def _weights(value: Any, expected: dict[str, tuple[tuple[int, ...], torch.dtype]]
             ) -> dict[str, torch.Tensor]:
    import torch

    shapes = {k: shape for k, (shape, _) in expected.items()}
    _check(isinstance(value, dict), f"model must be a mapping of weights, got {_short(value)}")
    missing = sorted(set(shapes) - set(value))
    unexpected = sorted(set(value) - set(shapes), key=str)
    _check(not missing and not unexpected,
           "the weights do not fit the model its config and vocabularies describe ("
           + (f"missing {', '.join(missing[:3])}" if missing else
              f"unexpected {', '.join(map(str, unexpected[:3]))}") + ")")
    for key, tensor in value.items():
        _check(isinstance(tensor, torch.Tensor), f"model.{key} must be a tensor, got "
               f"{_short(tensor)}")
        _dense_cpu(tensor, f"model.{key}")
        _check(tuple(tensor.shape) == shapes[key], "the weights do not fit the model its "
               f"config and vocabularies describe (model.{key} has shape "
               f"{tuple(tensor.shape)}, the config says {shapes[key]})")
        _check(tensor.is_floating_point(), f"model.{key} must hold floating-point values, "
               f"got {tensor.dtype}")
        dtype = expected[key][1]
        # training writes the dtype the network is built with; another one would be cast
        # silently on loading (float64 values that overflow float32 become inf)
        _check(tensor.dtype == dtype, f"model.{key} holds {tensor.dtype} values, the network "
               f"has {dtype}")
        _check(bool(torch.isfinite(tensor).all()), f"model.{key} holds NaN or infinite values")
    return dict(value)


def _crf(value: Any, num_tags: int, config: Config) -> dict[str, np.ndarray] | None:
    if config.model.head != "crf":
        _check(value is None, "crf parameters given for a softmax model")
        return None
    _check(isinstance(value, dict), f"crf must be a mapping of parameters, got {_short(value)}")
    shapes = {"start_transitions": (num_tags,), "end_transitions": (num_tags,),
              "transitions": (num_tags, num_tags)}
    _check(set(value) == set(shapes), f"crf holds {sorted(map(str, value))}, expected "
           f"{sorted(shapes)}")
    out = {}
    for name, shape in shapes.items():
        try:
            # a value beyond float32 becomes inf (refused below), without numpy's warning
            with np.errstate(over="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                given = np.asarray(value[name])
                if given.dtype.kind not in "iuf":  # booleans, strings, ragged nesting
                    raise TypeError
                array = given.astype(np.float32)
        except (TypeError, ValueError, OverflowError):
            raise CheckpointError(f"crf.{name} must be numbers of shape {shape}") from None
        _check(array.shape == shape, f"crf.{name} has shape {array.shape}, expected {shape}")
        _check(bool(np.isfinite(array).all()), f"crf.{name} holds NaN or infinite values")
        out[name] = array
    return out


def _training(value: Any) -> dict[str, Any]:
    import torch

    _check(isinstance(value, dict), f"training must be a mapping, got {_short(value)}")
    _dense_cpu_all(value, "training")
    for key in ("optimizer", "loop", "torch_rng", "python_rng"):
        _check(key in value, f"training lacks {key} (not a resumable last.pt)")
    loop = value["loop"]
    _check(isinstance(loop, dict), f"training.loop must be a mapping, got {_short(loop)}")
    _check(set(loop) == set(_LOOP_KEYS), f"training.loop holds {sorted(map(str, loop))}, "
           f"expected {sorted(_LOOP_KEYS)}")
    for key, kind in _LOOP_KEYS.items():
        v = loop[key]
        ok = _number(v) if kind is float else (type(v) is int if kind is int
                                               else isinstance(v, kind))
        _check(ok, f"training.loop.{key} must be {kind.__name__}, got {_short(v)}")
        # counts and positions: a negative one would resume at a place no run reached
        _check(kind is not int or v >= 0, f"training.loop.{key} must be >= 0, got {_short(v)}")
    optimizer = value["optimizer"]
    _check(isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
           and isinstance(optimizer.get("param_groups"), list) and optimizer["param_groups"],
           "training.optimizer is not an optimizer state")
    rng = value["torch_rng"]
    _check(isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.dim() == 1,
           f"training.torch_rng must be a byte tensor, got {_short(rng)}")
    py = value["python_rng"]
    _check(isinstance(py, list) and len(py) == 3 and type(py[0]) is int
           and isinstance(py[1], list) and len(py[1]) == 625
           and all(type(x) is int for x in py[1]) and (py[2] is None or _number(py[2])),
           "training.python_rng is not a Python random state")
    cuda = value.get("cuda_rng", [])
    _check(isinstance(cuda, list) and all(isinstance(t, torch.Tensor) and
                                          t.dtype == torch.uint8 for t in cuda),
           "training.cuda_rng must be a list of byte tensors")
    for key in ("scheduler", "ema", "average", "frozen"):
        _check(isinstance(value.get(key, {}), dict), f"training.{key} must be a mapping")
    return dict(value)


def _joined(tokens: Iterable[str], name: str) -> str:
    tokens = list(tokens)
    if any("\n" in t for t in tokens):
        raise ValueError(f"checkpoint {name}: a token contains a newline")
    return "\n".join(tokens)


# --- migrations ----------------------------------------------------------------------------------


def _to_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """Formats 1 and 2 kept ``chars`` and ``bigrams`` at the top level (lists in 1, joined
    strings in 2) and named the embedding weights per feature; format 3 keys vocabularies and
    embedding tables by feature name. Weights saved from a single multi-layer ``nn.LSTM``
    encoder (keys like ``encoder.weight_ih_l1_reverse``) get the per-direction layout."""
    vocabs = {"chars": raw.pop("chars", None)}
    bigrams = raw.pop("bigrams", None)
    if bigrams:
        vocabs["bigrams"] = bigrams
    raw["vocabs"] = vocabs
    if isinstance(raw.get("model"), dict):
        raw["model"] = migrate_state_dict(raw["model"])
    return raw


def migrate_state_dict(state: dict[Any, Any]) -> dict[Any, Any]:
    """Rename weights of format 1/2 checkpoints to the current layout."""
    renamed = {"embedding.weight": "embedding.tables.chars.weight",
               "bigram_embedding.weight": "embedding.tables.bigrams.weight",
               "class_embedding.weight": "embedding.tables.classes.weight"}
    out = {}
    for key, value in state.items():
        if not isinstance(key, str):
            out[key] = value
            continue
        key = renamed.get(key, key)
        if key.startswith("encoder.") and not key.startswith("encoder.layers."):
            name = key[len("encoder."):]
            reverse = name.endswith("_reverse")
            base = name[: -len("_reverse")] if reverse else name
            weight, _, layer = base.rpartition("_l")
            key = f"encoder.layers.{layer}.{int(reverse)}.{weight}_l0"
        out[key] = value
    return out


# format_version -> migration to the next layout, applied to every file at or below that
# version, oldest first
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {2: _to_v3}
