"""Typed, validated configuration: YAML file -> frozen dataclasses.

The YAML file is the single source of truth. Every key has a default here with a comment; unknown
keys, wrong types and out-of-range values are errors that name the file, line and key, and suggest
the closest valid key. ``--set section.key=value`` overrides are applied before validation.

Path rules: data paths (``data.train``, ``data.dev``, ``data.test``, ``data.train_words``) are
relative to the config file's folder; ``output.dir`` is relative to the current directory (so
``tagger train configs/x.yaml`` writes ``runs/x`` where the user runs it). ``${VAR}`` and
``${VAR:-default}`` in string values are expanded from the environment.
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
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

TASKS = ("cws", "ner", "pos")
# names of the encoders in bmes_tagger.model.ENCODERS, kept here so that reading a config needs
# no torch; bmes_tagger.model.register_encoder adds to both
ENCODERS: list[str] = ["recurrent"]


def _opt(default: Any, help: str, **checks: Any) -> Any:
    """A dataclass field carrying its help text and validation rules in metadata."""
    return field(default=default, metadata={"help": help, **checks})


@dataclass(frozen=True)
class DataConfig:
    """Where the corpora are and how to read them."""

    task: str = _opt("cws", "cws (word segmentation, tags B/M/E/S), ner (B-X/M-X/E-X/S-X/O) "
                     "or pos (joint segmentation + POS, B-X/M-X/E-X/S-X with X the POS)",
                     choices=TASKS)
    format: str = _opt("segmented", "corpus format: segmented (words separated by whitespace), "
                       "conll (one 'CHAR TAG' per line, blank line between sentences), jsonl "
                       "(CLUENER spans; ner), conllu (CoNLL-U; cws, or pos from UPOS) or pos "
                       "(People's Daily word/POS text; cws or pos)",
                       choices=("segmented", "conll", "jsonl", "conllu", "pos"))
    scheme: str = _opt("bmes", "tag scheme of conll files, converted to BMES on load",
                       choices=("bmes", "bioes", "bio"))
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
    min_bigram_freq: int = _opt(2, "character bigrams rarer than this in train map to <unk> "
                                "(used when model.bigram_dim > 0)", min=1)


@dataclass(frozen=True)
class ModelConfig:
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
    bigram_dim: int = _opt(0, "size of character-bigram embeddings (c[i], c[i+1]) concatenated "
                           "to the character embedding; 0 = no bigram features", min=0)
    bigram_context: str = _opt("next", "bigrams used: next (c[i]c[i+1]) or both (also "
                               "c[i-1]c[i], sharing one table)", choices=("next", "both"))
    class_dim: int = _opt(0, "size of a character-class embedding (digit, Latin letter, "
                          "punctuation, CJK, other) concatenated to the input; 0 = off", min=0)
    char_vectors: str | None = _opt(None, "pretrained character vectors (word2vec text format, "
                                    "header optional) to initialise the embedding", path=True)
    bigram_vectors: str | None = _opt(None, "pretrained bigram vectors (word2vec text format)",
                                      path=True)
    freeze_vectors: bool = _opt(False, "keep pretrained vectors fixed during training")
    locked_dropout: bool = _opt(False, "use one dropout mask per sentence across time "
                                "(variational dropout) for embedding and output dropout")
    head: str = _opt("softmax", "output layer: softmax (per-character) or crf",
                     choices=("softmax", "crf"))
    constrained: bool = _opt(True, "forbid illegal BMES transitions when decoding")


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
    eval_every: int = _opt(0, "evaluate on dev every N steps; 0 = once per epoch", min=0)
    patience: int = _opt(5, "stop after this many evaluations without dev F1 improvement; "
                         "0 = never stop early", min=0)
    seed: int = _opt(1, "random seed (same seed, same result on CPU)", min=0)
    device: str = _opt("auto", "where to train: auto (CUDA when available, else CPU), cpu, "
                       "cuda or cuda:N", pattern=r"auto|cpu|cuda(:[0-9]+)?")
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
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML config file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    raw, lines = _parse_yaml(text, str(path))
    for item in overrides:
        _apply_override(raw, item)
    cfg = config_from_dict(raw, source=str(path), lines=lines)
    try:
        cfg = resolve_paths(cfg, base=path.resolve().parent, default_run=f"runs/{path.stem}")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for section, name, value in _paths(cfg):
        if value is not None:
            where = _where(str(path), lines, f"{section}.{name}")
            try:
                exists, is_dir = Path(value).exists(), Path(value).is_dir()
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{where}: unusable path: {exc}"[:300]) from None
            if not exists:
                raise ConfigError(f"{where}: file not found: {value}")
            if is_dir:
                raise ConfigError(f"{where}: is a directory, expected a file: {value}")
    return cfg


def config_from_dict(
    raw: Mapping[str, Any], source: str = "config", lines: Mapping[str, int] | None = None
) -> Config:
    """Validate a nested dict into a :class:`Config` (no path resolution).

    Args:
        raw: ``{section: {key: value}}``; missing sections and keys take their defaults.
        source: name used in error messages (usually the file path).
        lines: optional ``"section.key" -> line number`` map for error messages.

    Raises:
        ConfigError: naming ``source:line: section.key`` and the problem.
    """
    lines = lines or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections "
                          f"({', '.join(SECTIONS)}), got {_type_name(raw)}")
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        where = _where(source, lines, str(name))
        if name not in SECTIONS:
            raise ConfigError(f"{where}: unknown section '{name}'{_suggest(str(name), SECTIONS)}")
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: section '{name}' must be a mapping, "
                              f"got {_type_name(value)}")
        sections[name] = _build_section(SECTIONS[name], name, value, source, lines)
    return Config(**sections)


def resolve_paths(cfg: Config, base: Path, default_run: str | None = None) -> Config:
    """Make data and vector paths absolute against ``base``; fill in the default run dir."""
    updates: dict[str, dict[str, Any]] = {"data": {}, "model": {}}
    for section, name, value in _paths(cfg):
        if value is not None:
            try:
                updates[section][name] = str((base / Path(value).expanduser()).resolve())
            except (RuntimeError, OSError, ValueError) as exc:
                raise ConfigError(f"{section}.{name}: unusable path {value!r}: {exc}") from None
    output = cfg.output
    if output.dir is None and default_run is not None:
        output = OutputConfig(dir=default_run)
    return cfg.replace(data=dataclasses.replace(cfg.data, **updates["data"]),
                       model=dataclasses.replace(cfg.model, **updates["model"]), output=output)


def _paths(cfg: Config) -> list[tuple[str, str, str | None]]:
    """``(section, key, value)`` of every path-valued key."""
    return [(section, f.name, getattr(getattr(cfg, section), f.name))
            for section in ("data", "model")
            for f in dataclasses.fields(SECTIONS[section]) if f.metadata.get("path")]


def write_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (the run directory's ``config.yaml``)."""
    Path(path).write_text(
        "# Resolved configuration of this run (written by bmes_tagger).\n"
        + yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )


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


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader whose value errors (``2001-13-45``, ``!!int x``) are YAML errors with a line."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r} as {node.tag}: {exc}"[:200],
                node.start_mark) from None


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: str, where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set "
                          f"(use ${{{name}:-default}} to give a default)")

    return _ENV.sub(sub, value)


def _parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse YAML and record the line of every ``section.key`` for error messages."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.load(text, Loader=_SafeLoader)
    except RecursionError:
        raise ConfigError(f"{source}: YAML syntax error: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{line}: YAML syntax error: {problem}") from None
    if raw is None:
        raise ConfigError(f"{source}: config file is empty (expected sections "
                          f"{', '.join(SECTIONS)})")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections "
                          f"({', '.join(SECTIONS)}), got {_type_name(raw)}")
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            section = str(key_node.value)
            lines[section] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.MappingNode):
                for k, _ in value_node.value:
                    lines[f"{section}.{k.value}"] = k.start_mark.line + 1
    return raw, lines


def _apply_override(raw: dict[str, Any], item: str) -> None:
    where = f"--set {item}"
    if "=" not in item:
        raise ConfigError(f"{where}: expected SECTION.KEY=VALUE, e.g. train.lr=0.002")
    key, _, value_text = item.partition("=")
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"{where}: expected SECTION.KEY=VALUE, e.g. train.lr=0.002")
    section, name = parts
    if section not in SECTIONS:
        raise ConfigError(f"{where}: unknown section '{section}'{_suggest(section, SECTIONS)}")
    try:
        value = yaml.load(value_text, Loader=_SafeLoader) if value_text.strip() else None
    except (yaml.YAMLError, RecursionError):
        value = value_text
    target = raw.setdefault(section, {})
    if target is None:
        target = raw[section] = {}
    if not isinstance(target, dict):
        raise ConfigError(f"{where}: section '{section}' in the file is not a mapping")
    target[name] = value


def _where(source: str, lines: Mapping[str, int], key: str) -> str:
    line = lines.get(key)
    return f"{source}:{line}: {key}" if line else f"{source}: {key}"


def _suggest(name: str, valid: typing.Iterable[str]) -> str:
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; valid keys: {', '.join(valid)}"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _build_section(
    cls: type, section: str, values: Mapping[str, Any], source: str, lines: Mapping[str, int]
) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        key = str(key)
        where = _where(source, lines, f"{section}.{key}")
        if key not in fields:
            raise ConfigError(f"{where}: unknown key{_suggest(key, fields)}")
        kwargs[key] = _check_value(value, hints[key], fields[key].metadata, where)
    return cls(**kwargs)


def _check_value(value: Any, hint: Any, meta: Mapping[str, Any], where: str) -> Any:
    allowed = _allowed_types(hint)
    if isinstance(value, str) and str in allowed:
        value = _expand_env(value, where)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{where}: must not be null")
    # bool is an int subclass in Python; a YAML `true` must not pass for a size.
    if isinstance(value, bool) and bool not in allowed:
        raise ConfigError(f"{where}: expected {_expected(allowed)}, got a boolean ({value})")
    if isinstance(value, int) and not isinstance(value, bool) and float in allowed:
        value = float(value)
    if not isinstance(value, tuple(allowed)):
        raise ConfigError(f"{where}: expected {_expected(allowed)}, got {_type_name(value)} "
                          f"({value!r})")
    if "choices" in meta and value not in meta["choices"]:
        choices = meta["choices"]
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        hint_text = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}{hint_text}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, got {value}")
    # Larger integers overflow torch (seeds, thread counts) and no size needs them.
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
        raise ConfigError(f"{where}: must be at most {_MAX_INT}, got {value}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and (value < lo or (meta.get("min_exclusive") and value == lo)):
            op = ">" if meta.get("min_exclusive") else ">="
            raise ConfigError(f"{where}: must be {op} {lo}, got {value}")
        if hi is not None and (value > hi or (meta.get("max_exclusive") and value == hi)):
            op = "<" if meta.get("max_exclusive") else "<="
            raise ConfigError(f"{where}: must be {op} {hi}, got {value}")
    if isinstance(value, str) and "pattern" in meta and not re.fullmatch(meta["pattern"], value):
        raise ConfigError(f"{where}: {value[:80]!r} is not valid (expected "
                          f"{meta['pattern'].replace('(:[0-9]+)?', '[:N]')})")
    if isinstance(value, str) and meta.get("path") and not value.strip():
        raise ConfigError(f"{where}: empty path")
    if isinstance(value, str) and meta.get("path") and "\x00" in value:
        raise ConfigError(f"{where}: path contains a NUL character")
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
