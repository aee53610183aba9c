"""The network: input-feature embeddings -> encoder -> linear layer -> softmax or CRF.

Inputs arrive by name (``{"chars": ..., "bigrams": ...}``, see :mod:`bmes_tagger.features`),
each (batch, seq_len, slots) ids. Encoders come from :data:`ENCODERS` and report their output
width, so a new encoder needs no change to the heads, checkpoints or export. The network
scores tags; decoding the scores into tags is :mod:`bmes_tagger.decoding`'s (NumPy), reached
through :class:`TorchNetwork`, which a :class:`bmes_tagger.predict.Tagger` calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ENCODERS as ENCODER_NAMES
from .crf import CRF
from .errors import ConfigError
from .features import EmbeddingSpec, embedding_specs
from .vocab import PAD

if TYPE_CHECKING:
    from .config import Config, ModelConfig
    from .vocab import Vocab

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class FixedTailEmbedding(nn.Embedding):
    """An embedding table whose last ``fixed`` rows are held apart, as a parameter that takes
    no gradient (``model.extend_vocab``: pretrained vectors of tokens training never saw), so
    the optimizer, clipping and weight averages only ever touch the trained rows. Ids index
    the whole table: ``weight`` rows first, then ``tail``."""

    def __init__(self, num_embeddings: int, embedding_dim: int, fixed: int,
                 padding_idx: int | None = None) -> None:
        if not 0 < fixed < num_embeddings:
            raise ValueError(f"fixed rows must be 1..{num_embeddings - 1}, got {fixed}")
        super().__init__(num_embeddings - fixed, embedding_dim, padding_idx=padding_idx)
        self.tail = nn.Parameter(torch.zeros(fixed, embedding_dim), requires_grad=False)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """input: ids (any shape) -> (*input.shape, embedding_dim)."""
        over = input >= self.num_embeddings
        trained = F.embedding(input.masked_fill(over, 0), self.weight, self.padding_idx)
        tail = F.embedding((input - self.num_embeddings).clamp(min=0), self.tail)
        return torch.where(over.unsqueeze(-1), tail, trained)


def embedding_table(spec: EmbeddingSpec) -> nn.Embedding:
    """The table of one feature: all rows trained, or a :class:`FixedTailEmbedding`."""
    if spec.fixed:
        return FixedTailEmbedding(spec.num_embeddings, spec.dim, spec.fixed, padding_idx=PAD)
    return nn.Embedding(spec.num_embeddings, spec.dim, padding_idx=PAD)


def set_rows(table: nn.Embedding, rows: torch.Tensor, values: torch.Tensor) -> None:
    """Write ``values`` (len(rows), dim) into rows of the whole table (ids as the features
    give them, the fixed tail included)."""
    n = table.num_embeddings
    with torch.no_grad():
        table.weight[rows[rows < n]] = values[rows < n].to(table.weight.dtype)
        if isinstance(table, FixedTailEmbedding):
            table.tail[rows[rows >= n] - n] = values[rows >= n].to(table.tail.dtype)


class InputEmbedding(nn.Module):
    """One embedding table per input feature; their outputs are concatenated per token.

    Args:
        specs: ``{feature name: spec}`` in input order (see :mod:`bmes_tagger.features`).
    """

    def __init__(self, specs: dict[str, EmbeddingSpec]) -> None:
        super().__init__()
        self.tables = nn.ModuleDict({name: embedding_table(spec)
                                     for name, spec in specs.items()})
        self.slots = {name: spec.slots for name, spec in specs.items()}
        # features whose slots are pooled in groups: summed, weighted by the input
        # <name>_weights, or averaged
        self.groups = {name: spec.groups for name, spec in specs.items()}
        self.weighted = {name: spec.weighted for name, spec in specs.items()}
        self.output_dim = sum(spec.width for spec in specs.values())

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """inputs: {name: (batch, seq_len, slots)} (and float ``<name>_weights`` of the same
        shape for a grouped feature) -> (batch, seq_len, output_dim)."""
        parts: list[torch.Tensor] = []
        for name, table in self.tables.items():
            ids = inputs.get(name)
            if ids is None:
                raise ValueError("this model reads the input feature " + name + ": pass it")
            # (batch, seq_len, slots, dim)
            embedded = table(ids)
            groups = self.groups[name]
            if groups > 0:
                if self.weighted[name]:
                    weights = inputs.get(name + "_weights")
                    if weights is None:
                        raise ValueError("this model reads the input " + name + "_weights: "
                                         "pass it")
                    embedded = embedded * weights.unsqueeze(-1).to(embedded.dtype)
                else:
                    embedded = embedded / (ids.shape[2] // groups)
                # (batch, seq_len, groups, slots / groups, dim) summed over each group
                embedded = embedded.view(ids.shape[0], ids.shape[1], groups, -1,
                                         embedded.shape[-1]).sum(3)
            # -> (batch, seq_len, slots (or groups) * dim)
            parts.append(embedded.flatten(2))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


class BiLSTMTagger(nn.Module):
    """Character tagger. The name says BiLSTM; ``config.encoder`` and ``config.cell`` also
    allow GRU, plain RNN and any registered encoder.

    Args:
        config: layer sizes and kinds.
        embeddings: the input features' embedding tables (see :func:`build_model`).
        num_tags: size of the tag inventory.
    """

    def __init__(self, config: ModelConfig, embeddings: dict[str, EmbeddingSpec],
                 num_tags: int) -> None:
        super().__init__()
        self.config = config
        self.num_tags = num_tags
        self.embedding = InputEmbedding(embeddings)
        dropout_cls = LockedDropout if config.locked_dropout else Dropout
        self.embedding_dropout = dropout_cls(config.embedding_dropout)
        self.encoder = ENCODERS[config.encoder](config, self.embedding.output_dim)
        self.dropout = dropout_cls(config.dropout)
        self.output = nn.Linear(self.encoder.output_dim, num_tags)
        self.crf = CRF(num_tags) if config.head == "crf" else None

    def emissions(self, inputs: dict[str, torch.Tensor], lengths: torch.Tensor) -> torch.Tensor:
        """Per-character tag scores.

        Args:
            inputs: ``{feature name: (batch, seq_len, slots)}`` ids, padded with 0.
            lengths: (batch,) true lengths (>= 1).

        Returns:
            (batch, seq_len, num_tags) unnormalised scores; padding rows are the output bias.
        """
        # (batch, seq_len, input_dim)
        embedded = self.embedding_dropout(self.embedding(inputs))
        # (batch, seq_len, encoder output_dim)
        hidden = self.encoder(embedded, lengths)
        return self.output(self.dropout(hidden))

    def forward(
        self, inputs: dict[str, torch.Tensor], lengths: torch.Tensor, tags: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """Training loss: mean per-character negative log-likelihood of the gold ``tags``
        (scalar). ``tags``, ``mask``: (batch, seq_len); ``lengths``: (batch,).

        Both heads are normalised per character so the learning rate means the same for both.
        (The loss is the module's forward so that DistributedDataParallel sees it.)
        """
        # float32 scores: under bf16 autocast (train.precision) only the network is bfloat16;
        # the CRF's sums over tag sequences and the softmax need float32's range
        scores = self.emissions(inputs, lengths).float()
        with torch.autocast(scores.device.type, enabled=False):
            if self.crf is not None:
                return -self.crf(scores, tags, mask, reduction="token_mean")
            # (num_real_tokens, num_tags) vs (num_real_tokens,)
            return F.cross_entropy(scores[mask], tags[mask])


class TorchNetwork:
    """A :class:`BiLSTMTagger` behind the interface a :class:`~bmes_tagger.predict.Tagger`
    predicts with (NumPy in, NumPy out): the module runs as it is shipped (eval mode,
    ``inference_mode``, see :func:`inference`) on ``device``, under bfloat16 autocast with
    ``bf16``. The module is used as given and its mode restored, so the training loop can
    evaluate the module it trains; the CRF's transitions are read at every call for the same
    reason.
    """

    kind = "torch"

    def __init__(self, module: BiLSTMTagger, device: torch.device | str = "cpu",
                 bf16: bool = False) -> None:
        self.module = module
        self.device = torch.device(device)
        self.bf16 = bf16

    @property
    def has_crf(self) -> bool:
        return self.module.crf is not None

    def emissions(self, inputs: dict[str, np.ndarray], lengths: np.ndarray) -> np.ndarray:
        """inputs: {name: (batch, seq_len, slots)}; lengths: (batch,) -> (batch, seq_len,
        num_tags) float32 scores."""
        with inference(self.module), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                    enabled=self.bf16):
            tensors = {k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()}
            out = self.module.emissions(tensors, torch.from_numpy(lengths))
            return out.float().cpu().numpy()

    def transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The CRF's (start, transitions, end) scores as float32 arrays, or None."""
        crf = self.module.crf
        if crf is None:
            return None
        return tuple(p.detach().float().cpu().numpy() for p in  # type: ignore[return-value]
                     (crf.start_transitions, crf.transitions, crf.end_transitions))


@contextlib.contextmanager
def inference(module: nn.Module) -> Iterator[None]:
    """Run ``module`` as it is shipped: eval mode (dropout off) under ``torch.inference_mode``,
    then give every submodule back the mode it had (the training loop evaluates the module it
    is training, and must get it back in training mode)."""
    modes = [(m, m.training) for m in module.modules()]
    for m, _ in modes:
        m.training = False
    try:
        with torch.inference_mode():
            yield
    finally:
        for m, mode in modes:
            m.training = mode


def build_model(config: Config, vocabs: dict[str, Vocab], tags: Sequence[str]) -> BiLSTMTagger:
    """The model a config describes, with embedding tables for ``vocabs`` and an output
    layer for ``tags``.

    Raises:
        ConfigError: the weights would not fit in this machine's memory (checked before
            anything is allocated), or allocating them failed; naming the size keys.
    """
    if torch.get_default_device().type != "meta":  # meta tensors cost nothing
        check_model_size(config, vocabs, tags)
    with allocating(config, vocabs, tags):
        return _network(config, vocabs, tags)


def _network(config: Config, vocabs: dict[str, Vocab], tags: Sequence[str]) -> BiLSTMTagger:
    return BiLSTMTagger(config.model, embedding_specs(config.model, vocabs), len(tags))


# model keys that size the weights: the ones a "too large" error can blame
SIZE_KEYS = ("embedding_dim", "hidden_size", "num_layers", "bigram_dim", "class_dim",
             "lexicon_dim")
_BYTES_PER_WEIGHT = 4  # float32


def parameter_count(config: Config, vocabs: dict[str, Vocab], tags: Sequence[str]
                    ) -> int | None:
    """How many weights the network ``config`` describes has, counted on the meta device
    (nothing is allocated, however large the config says the layers are); None when one
    weight's size in bytes would overflow 64 bits, which torch refuses even on meta."""
    try:
        with torch.device("meta"):
            model = _network(config, vocabs, tags)
    except RuntimeError as exc:
        if "overflow" in str(exc):
            return None
        raise
    return sum(p.numel() for p in model.parameters())


def _weights_size(count: int | None) -> str:
    if count is None:
        return "too many parameters to count (a weight over 2**63 bytes)"
    return f"{count:,} parameters ({_size(count * _BYTES_PER_WEIGHT)} as float32)"


def memory_bytes() -> int | None:
    """This machine's physical memory, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_model_size(config: Config, vocabs: dict[str, Vocab], tags: Sequence[str],
                     limit: int | None = None) -> None:
    """Refuse a network whose weights alone exceed ``limit`` bytes (default: this machine's
    memory) before any is allocated: torch would fail deep inside a layer's constructor, or
    the OS would kill the process while it fills the memory.

    Raises:
        ConfigError: naming the keys that make it too large and the size they ask for.
    """
    limit = memory_bytes() if limit is None else limit
    if limit is None:
        return
    count = parameter_count(config, vocabs, tags)
    if count is not None and count * _BYTES_PER_WEIGHT <= limit:
        return
    # the keys lead the reason (as a ConfigError's key would): there may be several
    raise ConfigError(f"{_blame(config, vocabs, tags, count)}: the network would have "
                      f"{_weights_size(count)}, more than this machine's {_size(limit)} of "
                      "memory; make it smaller")


def _blame(config: Config, vocabs: dict[str, Vocab], tags: Sequence[str],
           count: int | None) -> str:
    """``model.KEY=VALUE`` of the size keys that make the network large: each key set back
    to its default in turn, the ones that shrink it most (at least halving it), else every
    size key above its default. Only called for an oversized config, so the few extra meta
    builds cost nothing that matters."""
    defaults = {f.name: f.default for f in dataclasses.fields(config.model)}
    # None (beyond counting) sorts as the largest
    shrunk: dict[str, float] = {}
    for key in SIZE_KEYS:
        value, default = getattr(config.model, key), defaults.get(key)
        if not isinstance(default, int) or value <= default:
            continue
        smaller = config.replace(model=dataclasses.replace(config.model, **{key: default}))
        n = parameter_count(smaller, vocabs, tags)
        shrunk[key] = math.inf if n is None else n
    total = math.inf if count is None else count
    culprits = sorted((k for k, n in shrunk.items() if n * 2 <= total), key=shrunk.__getitem__)
    keys = culprits or list(shrunk) or ["hidden_size", "embedding_dim"]
    return ", ".join(f"model.{k}={getattr(config.model, k)}" for k in keys)


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            break
        nbytes /= 1000
    return f"{nbytes:,.0f} {unit}" if unit in ("bytes", "PB") else f"{nbytes:.1f} {unit}"


def is_allocation_error(exc: BaseException) -> bool:
    """Did an allocation fail (host or device memory)? torch reports both as RuntimeErrors
    whose text is the only way to tell them from a bug."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate" in text
                                              or "out of memory" in text)


@contextlib.contextmanager
def allocating(config: Config, vocabs: dict[str, Vocab], tags: Sequence[str],
               what: str = "the network's weights") -> Iterator[None]:
    """Turn a failed allocation inside the block into one :class:`ConfigError` line naming
    the size keys, instead of torch's multi-line report."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_allocation_error(exc):
            raise
        count = parameter_count(config, vocabs, tags)
        first = next((x.strip() for x in str(exc).splitlines() if x.strip()), "out of memory")
        raise ConfigError(f"{_blame(config, vocabs, tags, count)}: could not allocate {what} "
                          f"({_weights_size(count)}): {first[:160]}; make the model smaller"
                          ) from None


# --- encoders ----------------------------------------------------------------------------------


class RecurrentEncoder(nn.Module):
    """Stacked, optionally bidirectional LSTM/GRU/RNN over padded batches.

    Each direction of each layer is its own single-layer ``batch_first`` module run on the
    padded batch, which uses torch's fused kernel (packed sequences take a slower per-step
    path: about 2.3x slower on CPU, see benchmarks/RESULTS.md). Padding sits at the end of each
    row, so the forward direction never reads it before a real position; the backward
    direction reads every row reversed *within its length*. Both are therefore exact on real
    positions: a sentence gets the same output alone or in a padded batch. Padding positions
    of the output are zero. Outputs of the two directions are concatenated; ``dropout`` applies
    between layers.
    """

    def __init__(self, cell: str, input_dim: int, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float) -> None:
        super().__init__()
        directions = 2 if bidirectional else 1
        self.output_dim = hidden_size * directions
        self.layers = nn.ModuleList(
            nn.ModuleList(CELLS[cell](input_dim if layer == 0 else hidden_size * directions,
                                      hidden_size, batch_first=True)
                          for _ in range(directions))
            for layer in range(num_layers))
        self.dropout = Dropout(dropout)

    @classmethod
    def from_config(cls, config: ModelConfig, input_dim: int) -> RecurrentEncoder:
        """The encoder ``model.cell``, ``hidden_size``, ``num_layers`` and ``bidirectional``
        describe (``model.dropout`` between layers)."""
        return cls(config.cell, input_dim, config.hidden_size, config.num_layers,
                   config.bidirectional, config.dropout if config.num_layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq_len, input_dim); lengths: (batch,) -> (batch, seq_len, output_dim)."""
        seq_len = x.shape[1]
        positions = torch.arange(seq_len, device=x.device).unsqueeze(0)
        lengths = lengths.to(x.device).unsqueeze(1)
        # (batch, seq_len) index that reverses each row's first `length` positions in place
        reverse = torch.where(positions < lengths, lengths - 1 - positions, positions)
        # (batch * seq_len,) the same as row numbers of the flattened batch: index_select of
        # whole rows is ~15x faster than gather with an expanded index (and so is its backward)
        reverse = (reverse + torch.arange(x.shape[0], device=x.device).unsqueeze(1) * seq_len
                   ).reshape(-1)
        # (batch, seq_len, 1); bool, so the product keeps the layers' dtype (bfloat16 under
        # autocast) instead of promoting it to the input's float32
        keep = (positions < lengths).unsqueeze(2)
        for k, directions in enumerate(self.layers):
            if k:
                x = self.dropout(x)
            # a loop over the directions rather than indexing them: TorchScript compiles every
            # branch, and a unidirectional layer has no directions[1]
            outputs: list[torch.Tensor] = []
            for d, rnn in enumerate(directions):
                if d == 0:
                    outputs.append(rnn(x)[0])
                else:
                    outputs.append(_take_rows(rnn(_take_rows(x, reverse))[0], reverse))
            x = (torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0])
            x = x * keep.to(x.dtype)
        return x


# name -> factory(model config, input width) of an nn.Module with ``output_dim`` whose
# forward maps (batch, seq_len, input width) and lengths (batch,) to (batch, seq_len,
# output_dim), exact on real positions whatever the padding
ENCODERS: dict[str, Callable[[ModelConfig, int], nn.Module]] = {
    "recurrent": RecurrentEncoder.from_config,
}


def register_encoder(name: str, factory: Callable[[ModelConfig, int], nn.Module]) -> None:
    """Make ``model.encoder: NAME`` build ``factory(model config, input width)``: a module
    with an ``output_dim`` attribute and ``forward(x (batch, seq_len, input width), lengths
    (batch,)) -> (batch, seq_len, output_dim)`` that is exact on real positions whatever the
    padding (and scriptable, for TorchScript export)."""
    ENCODERS[name] = factory
    if name not in ENCODER_NAMES:
        ENCODER_NAMES.append(name)


def _take_rows(x: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """Rows of x picked by flat_index: x: (batch, seq_len, dim); flat_index: (batch * seq_len,)
    row numbers into x viewed as (batch * seq_len, dim) -> (batch, seq_len, dim)."""
    return x.reshape(-1, x.shape[2]).index_select(0, flat_index).view(x.shape)


# --- dropout -----------------------------------------------------------------------------------


def _keep_mask(like: torch.Tensor, shape: list[int], p: float) -> torch.Tensor:
    """Inverted-dropout multipliers of ``shape``: 0 with probability p, else 1 / (1 - p).
    Drawn with ``rand`` and a comparison, about twice as fast on CPU as ``bernoulli_``
    (which nn.Dropout uses and which was ~5% of a training step at NCRF++ size)."""
    keep = torch.rand(shape, dtype=like.dtype, device=like.device).ge_(p)
    return keep.to(like.dtype).mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """Element-wise (inverted) dropout, as ``nn.Dropout``; see :func:`_keep_mask`."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: any shape -> same shape."""
        if not self.training or self.p == 0:
            return x
        return x * _keep_mask(x, list(x.shape), self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LockedDropout(nn.Module):
    """Dropout with one mask per sentence shared across time steps (variational dropout)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq_len, features) -> same shape."""
        if not self.training or self.p == 0:
            return x
        # (batch, 1, features): the same units are dropped at every position
        return x * _keep_mask(x, [x.shape[0], 1, x.shape[2]], self.p)
