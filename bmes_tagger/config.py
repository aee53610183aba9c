"""Typed, validated configuration: YAML file -> frozen dataclasses.

The YAML file is the single source of truth. Every key has a default here with a comment; unknown
keys, wrong types and out-of-range values are errors that name the file, line and key, and suggest
the closest valid key. ``--set section.key=value`` overrides are applied before validation.

Path rules: data paths (``data.train``, ``data.dev``, ``data.test``, ``data.train_words``) are
relative to the config file's folder; ``output.dir`` is relative to the current directory (so
``tagger train configs/x.yaml`` writes ``runs/x`` where the user runs it). ``${VAR}`` and
``${VAR:-default}`` are expanded from the environment (in a number or switch, the expanded
text is then read as a ``--set`` value is).

YAML details: numbers may be written in the YAML 1.2 float forms (``1e-3``, ``5E4``, ``.5``,
``-.5``, ``1.0e2``) that PyYAML's YAML 1.1 reads as strings; a key that takes a string still
gets exactly the text written. An integer key takes integers only: ``epochs: 1e1`` is an error
(``1e1`` is a float in YAML 1.2, as ``10.0`` is), which says to write ``10``. A key or section
given twice is an error (YAML would silently keep the last). A config is small, so a file over
1 MiB, values nested more than a few levels or more than 10,000 values after expanding YAML
aliases (an "alias bomb"), and strings over 4096 characters are refused before anything looks
at them closely; error messages show at most a short preview of a value.

Errors about a value given with ``--set`` name the flag (``--set train.lr=abc: train.lr: ...``),
not the file; see :class:`~bmes_tagger.errors.ConfigError` for the fields of an error.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import features
from .errors import ConfigError
from .tags import SCHEMES

# PyYAML is imported where YAML is read or written, never at import: reading a model file's
# config (predict, eval, info) needs none, and a one-line predict pays for every import.
if TYPE_CHECKING:
    import yaml

TASKS = ("cws", "ner", "pos")
# names of the encoders in bmes_tagger.model.ENCODERS, kept here so that reading a config needs
# no torch; bmes_tagger.model.register_encoder adds to both
ENCODERS: list[str] = ["recurrent"]


_opt = features.option


# how a device is spelled, for train.device and the --device options alike
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?"


@dataclass(frozen=True)
class _DataCore:

    task: str = _opt("cws", "cws (word segmentation, tags B/M/E/S), ner (B-X/M-X/E-X/S-X/O) "
                     "or pos (joint segmentation + POS, B-X/M-X/E-X/S-X with X the POS)",
                     choices=TASKS)
    format: str = _opt("segmented", "corpus format: segmented (words separated by whitespace), "
                       "conll (one 'CHAR TAG' per line, blank line between sentences), jsonl "
                       "(CLUENER spans; ner), conllu (CoNLL-U; cws, or pos from UPOS) or pos "
                       "(People's Daily word/POS text; cws or pos)",
                       choices=("segmented", "conll", "jsonl", "conllu", "pos"))
    scheme: str = _opt("bmes", "tag scheme of conll files, converted to BMES on load",
                       choices=SCHEMES)
    train: str | None = _opt(None, "training corpus (required for train)", path=True)
    dev: str | None = _opt(None, "dev corpus for model selection; if absent, dev_fraction of "
                           "train is held out", path=True)
    test: str | None = _opt(None, "test corpus used by `tagger eval CONFIG`", path=True)
    dev_fraction: float = _opt(0.1, "fraction of train held out as dev when there is no dev file",
                               min=0.0, max=0.5, max_exclusive=True)
    repair_gold: bool = _opt(False, "repair illegal gold tag sequences instead of failing")
    normalize_width: bool = _opt(True, "map full-width ASCII forms (１, Ａ) to half-width before "
                                 "vocabulary lookup; output keeps the original characters")
    max_len: int = _opt(200, "sentences longer than this are split into chunks (train and "
                        "predict); predictions are re-joined", min=8)
    min_char_freq: int = _opt(1, "characters rarer than this in train map to <unk>", min=1)
    train_words: str | None = _opt(None, "word list (one per line) for CWS OOV metrics; default: "
                                   "the words of the training corpus", path=True)


# Sections are the core keys above plus the keys each input feature declares in
# bmes_tagger.features (its option classes are bases of the section's class).
@dataclass(frozen=True)
class DataConfig(*features.DATA_OPTIONS, _DataCore):
    """Where the corpora are and how to read them."""


@dataclass(frozen=True)
class _ModelCore:
    """Sizes and kinds of the network's layers."""

    embedding_dim: int = _opt(100, "character embedding size", min=1)
    encoder: str = _opt("recurrent", "encoder over the input embeddings: recurrent (cell, "
                        "hidden_size, num_layers, bidirectional)", choices=ENCODERS)
    cell: str = _opt("lstm", "recurrent cell", choices=("lstm", "gru", "rnn"))
    hidden_size: int = _opt(200, "hidden units per direction", min=1)
    num_layers: int = _opt(1, "stacked recurrent layers", min=1)
    bidirectional: bool = _opt(True, "run the encoder in both directions, outputs concatenated")
    embedding_dropout: float = _opt(0.2, "dropout on character embeddings", min=0.0, max=1.0,
                                    max_exclusive=True)
    dropout: float = _opt(0.3, "dropout between recurrent layers and before the output layer",
                          min=0.0, max=1.0, max_exclusive=True)
    char_vectors: str | None = _opt(None, "pretrained character vectors (word2vec text format, "
                                    "header optional) to initialise the embedding", path=True)
    freeze_vectors: bool = _opt(False, "keep pretrained vectors fixed during training")
    extend_vocab: bool = _opt(
        False, "tokens that have a pretrained vector (char_vectors, bigram_vectors, lexicon "
        "words in word_vectors) join the vocabulary though training never saw them, so text "
        "that training missed is read through its vectors; those rows are kept fixed")
    locked_dropout: bool = _opt(False, "use one dropout mask per sentence across time "
                                "(variational dropout) for embedding and output dropout")
    head: str = _opt("softmax", "output layer: softmax (per-character) or crf",
                     choices=("softmax", "crf"))
    constrained: bool = _opt(True, "forbid illegal BMES transitions when decoding")


@dataclass(frozen=True)
class ModelConfig(*features.MODEL_OPTIONS, _ModelCore):
    """Sizes and kinds of the network's layers."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and the training loop."""

    optimizer: str = _opt("adam", "optimizer", choices=("adam", "adamw", "sgd"))
    lr: float = _opt(0.002, "learning rate", min=0.0, min_exclusive=True)
    momentum: float = _opt(0.9, "momentum (sgd only)", min=0.0, max=1.0)
    weight_decay: float = _opt(0.0, "weight decay", min=0.0)
    clip_norm: float = _opt(5.0, "gradient-norm clipping threshold; 0 disables", min=0.0)
    epochs: int = _opt(10, "maximum number of epochs", min=1)
    lr_schedule: str = _opt("none", "learning-rate schedule: none, linear (warm-up then linear "
                            "decay to 0) or plateau (halve when dev F1 stops improving)",
                            choices=("none", "linear", "plateau"))
    warmup_steps: int = _opt(0, "linear warm-up steps (lr_schedule linear)", min=0)
    ema_decay: float = _opt(0.0, "keep an exponential moving average of the weights with this "
                            "decay and evaluate/save it; 0 = off (try 0.999)", min=0.0, max=1.0,
                            max_exclusive=True)
    batch_size: int = _opt(32, "sentences per batch", min=1)
    precision: str = _opt("fp32", "arithmetic of the training forward pass: fp32, or bf16 "
                          "(bfloat16 autocast; weights, gradients, optimizer and the loss head "
                          "stay float32). bf16 is faster on CPUs with AMX or avx512_bf16 and on "
                          "CUDA GPUs, slower elsewhere; dev evaluation always runs in float32",
                          choices=("fp32", "bf16"))
    eval_every: int = _opt(0, "evaluate on dev every N steps; 0 = once per epoch", min=0)
    patience: int = _opt(5, "stop after this many evaluations without dev F1 improvement; "
                         "0 = never stop early", min=0)
    average_last: int = _opt(1, "evaluate, log and save as best.pt the element-wise mean of "
                             "the weights at the last N epoch ends (N = this value; fewer at "
                             "the start); training continues from the current weights. 1 = "
                             "off. Needs ema_decay 0 and eval_every 0", min=1)
    refit: bool = _opt(False, "after the run, train a fresh model with the same config and seed "
                       "on train + dev together for the best epoch's number of epochs (no dev "
                       "selection) and save it as RUN_DIR/refit.pt; its dev F1 is not a "
                       "held-out figure. Not with lr_schedule plateau")
    seed: int = _opt(1, "random seed (same seed, same result on CPU)", min=0)
    device: str = _opt("auto", "where to train: auto (CUDA when available, else CPU), cpu, "
                       "cuda or cuda:N", pattern=DEVICE_PATTERN)
    tensorboard: bool = _opt(False, "also write training loss, dev P/R/F1 and the learning "
                             "rate of every evaluation to RUN_DIR/tensorboard (needs pip "
                             "install 'bmes_tagger[tensorboard]')")
    threads: int = _opt(1, "torch CPU threads; 0 = torch's default (all cores). 1 is the safe "
                        "default: on a busy 2-core machine 2 threads ran 25-50x slower "
                        "(OpenMP spinning, benchmarks/RESULTS.md)", min=0)


@dataclass(frozen=True)
class OutputConfig:
    """Where a run writes its files."""

    dir: str | None = _opt(None, "run directory (relative to the current directory); default "
                           "runs/<config file name without .yaml>")


@dataclass(frozen=True)
class Config:
    """The whole resolved configuration of a run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (YAML/JSON/checkpoint friendly)."""
        return dataclasses.asdict(self)

    def replace(self, **sections: Any) -> Config:
        """Copy with whole sections replaced, e.g. ``cfg.replace(train=new_train)``."""
        return dataclasses.replace(self, **sections)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "output": OutputConfig,
}


# --- public entry points ---------------------------------------------------------------------


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read, override, validate and resolve a YAML config file.

    Args:
        path: the YAML file.
        overrides: ``"section.key=value"`` strings; values are parsed as YAML scalars.

    Returns:
        The validated config with data paths made absolute.

    Raises:
        ConfigError: unreadable file, YAML syntax error, unknown key, wrong type, bad value.
    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise ConfigError("config file not found", source=source)
    if path.is_dir():
        raise ConfigError("is a directory, expected a YAML config file", source=source)
    text = _read_text(path)
    raw, lines = _parse_yaml(text, source)
    # "section.key" -> the --set item that gave its value, so that errors about it name the
    # flag the user typed rather than the file's line for that key
    origins: dict[str, str] = {}
    for item in overrides:
        origins[_apply_override(raw, item)] = item
    loc = _Locator(source, lines, origins)
    cfg = _from_dict(raw, loc)
    try:
        cfg = resolve_paths(cfg, base=path.resolve().parent, default_run=f"runs/{path.stem}")
    except ConfigError as exc:
        raise (loc.error(exc.key, exc.reason) if exc.key else exc.located(source)) from None
    for section, name, value in _paths(cfg):
        if value is not None:
            key = f"{section}.{name}"
            try:
                exists, is_dir = Path(value).exists(), Path(value).is_dir()
            except (OSError, ValueError) as exc:
                raise loc.error(key, f"unusable path: {_clip(str(exc), _PATH_SHOWN)}") from None
            if not exists:
                raise loc.error(key, f"file not found: {_clip(value, _PATH_SHOWN)}")
            if is_dir:
                raise loc.error(key, f"is a directory, expected a file: "
                                     f"{_clip(value, _PATH_SHOWN)}")
    return cfg


def config_from_dict(
    raw: Mapping[str, Any], source: str = "config", lines: Mapping[str, int] | None = None,
    origins: Mapping[str, str] | None = None,
) -> Config:
    """Validate a nested dict into a :class:`Config` (no path resolution).

    Args:
        raw: ``{section: {key: value}}``; missing sections and keys take their defaults.
        source: name used in error messages (usually the file path).
        lines: optional ``"section.key" -> line number`` map for error messages.
        origins: optional ``"section.key" -> "section.key=value"`` map of the values that came
            from ``--set``; errors about them name ``--set section.key=value`` instead.

    Raises:
        ConfigError: with ``source``, ``line`` and ``key`` set where known.
    """
    return _from_dict(raw, _Locator(source, lines or {}, origins or {}))


def _from_dict(raw: Mapping[str, Any], loc: _Locator) -> Config:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping of sections ({', '.join(SECTIONS)}), "
                          f"got {_type_name(raw)}", source=loc.source)
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in SECTIONS:
            text = _key_text(name)
            raise loc.error(text, f"unknown section {_quote(text)}{_suggest(text, SECTIONS)}")
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise loc.error(name, f"section '{name}' must be a mapping, got {_type_name(value)}")
        sections[name] = _build_section(SECTIONS[name], name, value, loc)
    cfg = Config(**sections)
    _check_combinations(cfg, loc)
    return cfg


def _check_combinations(cfg: Config, loc: _Locator) -> None:
    """Keys that are valid alone but do not combine (one line naming both keys)."""
    t = cfg.train
    if t.average_last > 1 and t.ema_decay > 0:
        raise loc.error("train.average_last", f"{t.average_last} does not combine with "
                        f"train.ema_decay {t.ema_decay} (both replace the evaluated and saved "
                        "weights by an average; use one)")
    if t.average_last > 1 and t.eval_every > 0:
        raise loc.error("train.average_last", f"{t.average_last} averages the weights of epoch "
                        f"ends, so it needs train.eval_every 0 (got {t.eval_every})")
    if t.refit and t.lr_schedule == "plateau":
        raise loc.error("train.refit", "does not combine with train.lr_schedule plateau (its "
                        "rate follows dev F1, and the refit has no dev data); use none or "
                        "linear")


def resolve_paths(cfg: Config, base: Path, default_run: str | None = None) -> Config:
    """Make data and vector paths absolute against ``base``; fill in the default run dir."""
    updates: dict[str, dict[str, Any]] = {"data": {}, "model": {}}
    for section, name, value in _paths(cfg):
        if value is not None:
            try:
                updates[section][name] = str((base / Path(value).expanduser()).resolve())
            except (RuntimeError, OSError, ValueError) as exc:
                raise ConfigError(f"unusable path {_preview(value)}: "
                                  f"{_clip(str(exc), _PATH_SHOWN)}",
                                  key=f"{section}.{name}") from None
    output = cfg.output
    if output.dir is None and default_run is not None:
        output = OutputConfig(dir=default_run)
    return cfg.replace(data=dataclasses.replace(cfg.data, **updates["data"]),
                       model=dataclasses.replace(cfg.model, **updates["model"]), output=output)


def _paths(cfg: Config) -> list[tuple[str, str, str | None]]:
    """``(section, key, value)`` of every path-valued key."""
    out = []
    for section in ("data", "model"):
        for f in dataclasses.fields(SECTIONS[section]):
            value = getattr(getattr(cfg, section), f.name)
            # a key may also take names that are not paths (model.lexicon: jieba)
            if f.metadata.get("path") and value not in f.metadata.get("names", ()):
                out.append((section, f.name, value))
    return out


def input_paths(cfg: Config) -> dict[str, str]:
    """``{"section.key": path}`` of every file the config makes a run read (corpora, word
    lists, vectors, lexicon)."""
    return {f"{section}.{key}": value for section, key, value in _paths(cfg) if value}


def write_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (the run directory's ``config.yaml``), atomically."""
    import yaml

    from .atomic import atomic_write

    with atomic_write(path) as f:
        f.write("# Resolved configuration of this run (written by bmes_tagger).\n"
                + yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True))


def config_reference() -> str:
    """Markdown table of every key, its default and help text (for the README)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            extra = ""
            if "choices" in f.metadata:
                extra = f" ({' / '.join(f.metadata['choices'])})"
            rows.append(f"| `{section}.{f.name}` | `{f.default!r}` | {f.metadata['help']}{extra} |")
    return "\n".join(rows)


# --- internals ---------------------------------------------------------------------------------

_MAX_INT = 2**31 - 1
# Limits far above anything a config needs (about 60 values, 3 levels, paths under 4096 bytes on
# Linux), so they only ever refuse garbage or an attack, and refuse it before any code walks or
# prints the value: a 428-byte YAML alias bomb expands to 9**9 strings.
_MAX_FILE_BYTES = 1 << 20
_MAX_NODES = 10_000
_MAX_DEPTH = 16
_MAX_TEXT = 4096
# How much of a value, key, path or --set item an error message shows.
_VALUE_SHOWN = 60
_KEY_SHOWN = 60
_PATH_SHOWN = 160
_SET_SHOWN = 100
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _read_text(path: Path) -> str:
    """The file's text (BOM dropped, newlines as ``\n``), refusing files no config can need."""
    source = str(path)
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=source) from None
    if len(data) > _MAX_FILE_BYTES:
        raise ConfigError(f"too large for a config file (more than {_MAX_FILE_BYTES} bytes)",
                          source=source)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid UTF-8 (byte {exc.start})", source=source) from None
    # what Path.read_text's universal newlines did
    return text.replace("\r\n", "\n").replace("\r", "\n")


class _Yaml12Float(float):
    """A number written in a YAML 1.2 float form that YAML 1.1 reads as a string (``1e-3``).

    It keeps its text so that a key taking a string gets what was written, as before these
    forms were numbers; :func:`_check_value` turns it into a plain float or that text.
    """

    text: str

    def __new__(cls, text: str) -> _Yaml12Float:
        value = super().__new__(cls, text)
        value.text = text
        return value


# YAML 1.2 core-schema floats that need a dot or an exponent; the forms YAML 1.1 already reads as
# floats (``0.5``, ``1.0e+2``) keep matching its own resolver, which runs first.
_YAML12_FLOAT = re.compile(r"^[-+]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
                           r"|[0-9]+[eE][-+]?[0-9]+)$")
_YAML12_FLOAT_TAG = "tag:bmes_tagger,2026:yaml12-float"


@cache
def _safe_loader() -> type[yaml.SafeLoader]:
    """SafeLoader whose value errors (``2001-13-45``, ``!!int x``) are YAML errors with a line,
    and which reads YAML 1.2 floats (``1e-3``) as numbers (built on first use: see the import
    note at the top)."""
    import yaml

    class SafeLoader(yaml.SafeLoader):
        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                shown = (_preview(node.value) if isinstance(node, yaml.ScalarNode)
                         else _type_name([] if isinstance(node, yaml.SequenceNode) else {}))
                raise yaml.constructor.ConstructorError(
                    None, None, f"cannot read {shown} as {_clip(str(node.tag), _KEY_SHOWN)}: "
                    f"{_clip(str(exc), _VALUE_SHOWN)}", node.start_mark) from None

    # add_implicit_resolver copies the inherited table first, so yaml.SafeLoader is unchanged
    SafeLoader.add_implicit_resolver(_YAML12_FLOAT_TAG, _YAML12_FLOAT, list("-+0123456789."))
    SafeLoader.add_constructor(
        _YAML12_FLOAT_TAG, lambda loader, node: _Yaml12Float(loader.construct_scalar(node)))
    return SafeLoader


def _check_size(node: yaml.Node, source: str, depth: int = 1, key: str | None = None) -> None:
    """Refuse a document too big or deep for a config, counting a node once per alias to it.

    ``depth`` is the level of ``node`` in a config (3 for a ``--set`` value, which sits at
    section.key); ``key`` is given for a ``--set`` value, whose lines mean nothing to the user.

    Iterative and stopping at the first excess, so it costs at most ``_MAX_NODES`` steps even
    for an alias bomb, whose expansion nothing else may then attempt (constructing shares the
    aliased objects, but ``<<`` merges and any repr() of the value would expand them).
    """
    import yaml

    stack = [(node, depth)]
    count = 1
    while stack:
        current, depth = stack.pop()
        line = (current.start_mark.line + 1 if current.start_mark is not None and key is None
                else None)
        if depth > _MAX_DEPTH:
            raise ConfigError(f"nested too deeply for a config (more than {_MAX_DEPTH} levels)",
                              source=source, line=line, key=key)
        children: list[yaml.Node] = []
        if isinstance(current, yaml.SequenceNode):
            children = current.value
        elif isinstance(current, yaml.MappingNode):
            children = [n for pair in current.value for n in pair]
        count += len(children)
        if count > _MAX_NODES:
            raise ConfigError(f"too many values for a config (more than {_MAX_NODES}, counting "
                              f"each use of a YAML alias)", source=source, line=line, key=key)
        stack.extend((child, depth + 1) for child in children)


def _parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse YAML and record the line of every ``section.key`` for error messages."""
    import yaml

    loader = None
    try:
        # the reader already rejects control characters here
        loader = _safe_loader()(text)
        node = loader.get_single_node()
        lines: dict[str, int] = {}
        if node is not None:
            _check_size(node, source)
            lines = _key_lines(node, source)
        raw = loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise ConfigError("YAML syntax error: nested too deeply", source=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"YAML syntax error: {_clip(problem, 200)}", source=source,
                          line=mark.line + 1 if mark is not None else None) from None
    finally:
        if loader is not None:
            loader.dispose()
    if raw is None:
        raise ConfigError(f"config file is empty (expected sections {', '.join(SECTIONS)})",
                          source=source)
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping of sections ({', '.join(SECTIONS)}), "
                          f"got {_type_name(raw)}", source=source)
    return raw, lines


def _key_lines(node: yaml.Node, source: str) -> dict[str, int]:
    """``section`` and ``section.key`` -> line, refusing a section or key given twice (PyYAML
    would silently keep the last one, so half of what the user wrote would be ignored)."""
    import yaml

    lines: dict[str, int] = {}

    def scan(mapping: yaml.MappingNode, prefix: str) -> list[tuple[str, yaml.Node]]:
        found = []
        for key_node, value_node in mapping.value:
            # merge keys (<<) may repeat keys on purpose; non-scalar keys fail later
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key, line = prefix + key_node.value, key_node.start_mark.line + 1
            if key in lines:
                what = "section" if not prefix else "key"
                raise ConfigError(f"{what} given twice, on lines {lines[key]} and {line}; "
                                  "YAML would keep only the last", source=source, line=line,
                                  key=_clip(key, _KEY_SHOWN))
            lines[key] = line
            found.append((key, value_node))
        return found

    if isinstance(node, yaml.MappingNode):
        for section, value_node in scan(node, ""):
            if isinstance(value_node, yaml.MappingNode):
                scan(value_node, f"{section}.")
    return lines


def _parse_override_value(text: str, source: str, key: str) -> Any:
    """A ``--set`` value as YAML, or the text itself if it is not valid YAML."""
    import yaml

    if not text.strip():
        return None
    loader = None
    try:
        loader = _safe_loader()(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, source, depth=3, key=key)
        return loader.construct_document(node)
    except (yaml.YAMLError, RecursionError):
        return text
    finally:
        if loader is not None:
            loader.dispose()


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: str, loc: _Locator, key: str) -> str:
    # The result is bounded as it grows: `${X}${X}...` with a large X could reach gigabytes.
    size = len(value)

    def sub(m: re.Match[str]) -> str:
        nonlocal size
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            text = os.environ[name]
        elif default is not None:
            text = default
        else:
            shown = _clip(name, _KEY_SHOWN)
            raise loc.error(key, f"environment variable {shown} is not set "
                                 f"(use ${{{shown}:-default}} to give a default)")
        size += len(text) - len(m.group(0))
        if size > _MAX_TEXT:
            raise loc.error(key, f"too long after expanding ${{{_clip(name, _KEY_SHOWN)}}} "
                                 f"(more than {_MAX_TEXT} characters)")
        return text

    return _ENV.sub(sub, value)


def _apply_override(raw: dict[str, Any], item: str) -> str:
    """Apply ``section.key=value`` to ``raw``; returns ``"section.key"``."""
    where = _set_source(item)
    if "=" not in item:
        raise ConfigError("expected SECTION.KEY=VALUE, e.g. train.lr=0.002", source=where)
    key, _, value_text = item.partition("=")
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError("expected SECTION.KEY=VALUE, e.g. train.lr=0.002", source=where)
    section, name = parts
    if section not in SECTIONS:
        raise ConfigError(f"unknown section {_quote(section)}{_suggest(section, SECTIONS)}",
                          source=where)
    value = _parse_override_value(value_text, where, f"{section}.{name}")
    target = raw.setdefault(section, {})
    if target is None:
        target = raw[section] = {}
    if not isinstance(target, dict):
        raise ConfigError(f"section '{section}' in the file is not a mapping", source=where)
    target[name] = value
    return f"{section}.{name}"


def _set_source(item: str) -> str:
    return f"--set {_clip(item, _SET_SHOWN)}"


class _Locator:
    """Where a key's value came from: the file (with its line) or a ``--set`` item."""

    def __init__(self, source: str, lines: Mapping[str, int], origins: Mapping[str, str]
                 ) -> None:
        self.source = source
        self.lines = lines
        self.origins = origins

    def error(self, key: str, reason: str) -> ConfigError:
        shown = _clip(key, _KEY_SHOWN)
        item = self.origins.get(key)
        if item is not None:
            return ConfigError(reason, source=_set_source(item), key=shown)
        return ConfigError(reason, source=self.source, line=self.lines.get(key), key=shown)


def _key_text(key: Any) -> str:
    """A mapping key as the user wrote it (``1e3``, not ``1000.0``), as the line map has it."""
    return key.text if isinstance(key, _Yaml12Float) else str(key)


def _suggest(name: str, valid: typing.Iterable[str]) -> str:
    valid = list(valid)
    # difflib is quadratic in the worst case; no valid name is this long
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5) if len(name) < 100 else []
    if close:
        return f"; did you mean '{close[0]}'?"
    # an error stays one readable line: the first keys, then where the rest are listed
    shown: list[str] = []
    for key in valid:
        if sum(len(k) + 2 for k in shown) + len(key) > 160:
            break
        shown.append(key)
    rest = len(valid) - len(shown)
    more = f" and {rest} more (the README's config table lists every key)" \
        if rest else ""
    return f"; valid keys: {', '.join(shown)}{more}"


def _quote(name: str) -> str:
    """``'name'`` for a message, clipped (the name may be anything a YAML key can hold)."""
    return f"'{_clip(name, _KEY_SHOWN)}'"


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, keeping both ends (a path's file name matters)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}\u2026{text[len(text) - (limit - 1 - head):]}"


class _Full(Exception):
    """Raised inside :func:`_preview` when its output budget is spent."""


def _preview(value: Any, limit: int = _VALUE_SHOWN) -> str:
    """``repr(value)`` cut to ``limit`` characters, in time proportional to ``limit``.

    Plain repr() of a YAML alias bomb would build a string of gigabytes (and a value can even
    contain itself); this walks containers lazily and stops once ``limit`` characters are out.
    """
    out: list[str] = []
    size = 0

    def emit(text: str) -> None:
        nonlocal size
        out.append(text)
        size += len(text)
        if size > limit:
            raise _Full

    def walk(v: Any) -> None:
        if isinstance(v, _Yaml12Float):
            emit(v.text)
        elif isinstance(v, (str, bytes)):
            emit(repr(v[: limit + 1]))
        elif isinstance(v, Mapping):
            emit("{")
            for i, (k, item) in enumerate(v.items()):
                emit(", " if i else "")
                walk(k)
                emit(": ")
                walk(item)
            emit("}")
        elif isinstance(v, (list, tuple, set, frozenset)):
            brackets = "[]" if isinstance(v, list) else "()" if isinstance(v, tuple) else "{}"
            emit(brackets[0])
            for i, item in enumerate(v):
                emit(", " if i else "")
                walk(item)
            emit(brackets[1])
        elif isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 4 * limit:
            emit(f"<an integer of about {int(v.bit_length() * 0.30103)} digits>")
        else:
            emit(repr(v))

    try:
        walk(value)
    except _Full:
        pass
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, _Yaml12Float):
        return "a number"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _build_section(cls: type, section: str, values: Mapping[str, Any], loc: _Locator) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        key = _key_text(key)
        full_key = f"{section}.{key}"
        if key not in fields:
            raise loc.error(full_key, f"unknown key{_suggest(key, fields)}")
        kwargs[key] = _check_value(value, hints[key], fields[key].metadata, loc, full_key)
    return cls(**kwargs)


def _check_value(value: Any, hint: Any, meta: Mapping[str, Any], loc: _Locator, key: str
                 ) -> Any:
    allowed = _allowed_types(hint)
    if isinstance(value, str) and str not in allowed and _ENV.search(value):
        # `epochs: ${EPOCHS:-10}`: a number or switch from the environment is read from the
        # expanded text as a --set value is, then checked like one written in the file
        value = _parse_override_value(_expand_env(value, loc, key), loc.source, key)
    if isinstance(value, _Yaml12Float):
        # a number where numbers go; where text goes, the text as written (1e3 stays "1e3")
        if float in allowed:
            value = float(value)
        elif str in allowed:
            value = value.text
    if isinstance(value, str) and str in allowed:
        if len(value) > _MAX_TEXT:
            raise loc.error(key, f"too long: {len(value)} characters (at most {_MAX_TEXT}): "
                                 f"{_preview(value, 20)}")
        value = _expand_env(value, loc, key)
    if value is None:
        if type(None) in allowed:
            return None
        raise loc.error(key, "must not be null")
    # bool is an int subclass in Python; a YAML `true` must not pass for a size.
    if isinstance(value, bool) and bool not in allowed:
        raise loc.error(key, f"expected {_expected(allowed)}, got a boolean ({value})")
    if isinstance(value, int) and not isinstance(value, bool) and float in allowed:
        value = float(value)
    if not isinstance(value, tuple(allowed)):
        hint_text = ""
        if (int in allowed and isinstance(value, float) and math.isfinite(value)
                and value == int(value) and abs(value) <= _MAX_INT):
            hint_text = f"; write {int(value)}"
        raise loc.error(key, f"expected {_expected(allowed)}, got {_type_name(value)} "
                             f"({_preview(value)}){hint_text}")
    if "choices" in meta and value not in meta["choices"]:
        choices = meta["choices"]
        close = (difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
                 if len(str(value)) < 100 else [])
        hint_text = f"; did you mean '{close[0]}'?" if close else ""
        raise loc.error(key, f"{_preview(value)} is not one of {', '.join(choices)}{hint_text}")
    if isinstance(value, float) and not math.isfinite(value):
        raise loc.error(key, f"must be a finite number, got {value}")
    # Larger integers overflow torch (seeds, thread counts) and no size needs them.
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
        raise loc.error(key, f"must be at most {_MAX_INT}, got {_preview(value, 30)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and (value < lo or (meta.get("min_exclusive") and value == lo)):
            op = ">" if meta.get("min_exclusive") else ">="
            raise loc.error(key, f"must be {op} {lo}, got {value}")
        if hi is not None and (value > hi or (meta.get("max_exclusive") and value == hi)):
            op = "<" if meta.get("max_exclusive") else "<="
            raise loc.error(key, f"must be {op} {hi}, got {value}")
    if isinstance(value, str) and "pattern" in meta and not re.fullmatch(meta["pattern"], value):
        raise loc.error(key, f"{_preview(value)} is not valid (expected "
                             f"{meta['pattern'].replace('(:[0-9]+)?', '[:N]')})")
    if isinstance(value, str) and meta.get("path") and not value.strip():
        raise loc.error(key, "empty path")
    if isinstance(value, str) and meta.get("path") and "\x00" in value:
        raise loc.error(key, "path contains a NUL character")
    return value


def _allowed_types(hint: Any) -> list[type]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(hint)]
    return [hint]


def _expected(allowed: Sequence[type]) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in allowed)
