"""The network: character embeddings -> recurrent encoder -> linear layer -> softmax or CRF."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .crf import CRF, viterbi_decode
from .features import NUM_CLASSES
from .vocab import PAD

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class Decoder:
    """Decoding on top of an ``emissions`` method; shared by :class:`BiLSTMTagger` and the
    exported (ONNX, TorchScript) networks of :mod:`bmes_tagger.export`, so all of them decode
    alike. Subclasses provide ``emissions``, ``crf`` (a :class:`CRF` or None) and ``allowed``
    (the BMES constraint tables or None). (No class-level annotations for those two:
    TorchScript would try to compile them when scripting the network.)"""

    def emissions(
        self, chars: torch.Tensor, lengths: torch.Tensor, bigrams: torch.Tensor | None = None,
        classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(batch, seq_len, num_tags) unnormalised tag scores."""
        raise NotImplementedError

    @torch.no_grad()
    def decode(
        self, chars: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor,
        bigrams: torch.Tensor | None = None, classes: torch.Tensor | None = None,
        tag_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Best tag ids, (batch, seq_len); padding positions hold 0.

        The CRF head runs Viterbi with its transitions; the softmax head runs Viterbi over
        log-probabilities with only the BMES constraints (or a plain argmax when unconstrained).
        ``tag_mask`` (batch, seq_len, num_tags) bool, if given, allows only the marked tags at
        each position (a user dictionary forces words this way).
        """
        # The softmax head's best path is the same on raw scores as on log-probabilities
        # (log_softmax subtracts one constant per position, the same for every path), so the
        # normalisation is skipped; float32 keeps bf16 rounding out of the path sums.
        scores = self.decoding_scores(chars, lengths, bigrams, classes, tag_mask,
                                      normalize=False)
        if self.crf is not None:
            return self.crf.decode(scores, mask, allowed=self.allowed)
        if self.allowed is None:
            return scores.argmax(-1).masked_fill(~mask, 0)
        return viterbi_decode(scores, mask, allowed=self.allowed)

    def decoding_scores(
        self, chars: torch.Tensor, lengths: torch.Tensor, bigrams: torch.Tensor | None = None,
        classes: torch.Tensor | None = None, tag_mask: torch.Tensor | None = None,
        normalize: bool = True,
    ) -> torch.Tensor:
        """(batch, seq_len, num_tags) scores that decoding maximises: emissions for the CRF
        head, log-probabilities for the softmax head (float32 raw scores with ``normalize``
        False); disallowed tags are -inf."""
        scores = self.emissions(chars, lengths, bigrams, classes)
        if self.crf is None:
            scores = F.log_softmax(scores, dim=-1) if normalize else scores.float()
        if tag_mask is not None:
            scores = scores.masked_fill(~tag_mask, float("-inf"))
        return scores


class BiLSTMTagger(Decoder, nn.Module):
    """Character tagger. The name says BiLSTM; ``config.cell`` also allows GRU and plain RNN.

    Args:
        config: layer sizes and kinds.
        num_chars: size of the character vocabulary (id 0 is padding).
        num_tags: size of the tag inventory.
        allowed: optional ``(start, transitions, end)`` boolean tables of legal BMES moves
            (see :func:`bmes_tagger.tags.allowed_transitions`); used when decoding only.
        num_bigrams: size of the bigram vocabulary (used when ``config.bigram_dim > 0``).
    """

    def __init__(
        self,
        config: ModelConfig,
        num_chars: int,
        num_tags: int,
        allowed: tuple[Sequence[bool], Sequence[Sequence[bool]], Sequence[bool]] | None = None,
        num_bigrams: int = 0,
    ) -> None:
        super().__init__()
        self.config = config
        self.num_tags = num_tags
        self.embedding = nn.Embedding(num_chars, config.embedding_dim, padding_idx=PAD)
        input_dim = config.embedding_dim
        self.bigram_embedding: nn.Embedding | None = None
        if config.bigram_dim > 0:
            self.bigram_embedding = nn.Embedding(num_bigrams, config.bigram_dim,
                                                 padding_idx=PAD)
            input_dim += config.bigram_dim * (2 if config.bigram_context == "both" else 1)
        self.class_embedding: nn.Embedding | None = None
        if config.class_dim > 0:
            self.class_embedding = nn.Embedding(NUM_CLASSES, config.class_dim, padding_idx=0)
            input_dim += config.class_dim
        dropout_cls = LockedDropout if config.locked_dropout else Dropout
        self.embedding_dropout = dropout_cls(config.embedding_dropout)
        self.encoder = RecurrentEncoder(config.cell, input_dim, config.hidden_size,
                                        config.num_layers, config.bidirectional,
                                        config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = dropout_cls(config.dropout)
        directions = 2 if config.bidirectional else 1
        self.output = nn.Linear(config.hidden_size * directions, num_tags)
        self.crf = CRF(num_tags) if config.head == "crf" else None
        # Constraint tables are derived from the tag list, so they are rebuilt on load rather
        # than stored in the state dict.
        self.allowed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        if allowed is not None and config.constrained:
            self.allowed = constraint_tables(allowed)

    def emissions(
        self, chars: torch.Tensor, lengths: torch.Tensor, bigrams: torch.Tensor | None = None,
        classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-character tag scores.

        Args:
            chars: (batch, seq_len) character ids, padded with 0.
            lengths: (batch,) true lengths (>= 1), on CPU.
            bigrams: (batch, seq_len, 1 or 2) bigram ids, when the model uses bigrams.
            classes: (batch, seq_len) character-class ids, when the model uses them.

        Returns:
            (batch, seq_len, num_tags) unnormalised scores; padding rows are the output bias.
        """
        # (batch, seq_len, embedding_dim)
        parts = [self.embedding(chars)]
        if self.bigram_embedding is not None:
            if bigrams is None:
                raise ValueError("this model uses bigram features: pass bigrams")
            # (batch, seq_len, k * bigram_dim)
            parts.append(self.bigram_embedding(bigrams).flatten(2))
        if self.class_embedding is not None:
            if classes is None:
                raise ValueError("this model uses character classes: pass classes")
            parts.append(self.class_embedding(classes))
        # (batch, seq_len, input_dim)
        embedded = self.embedding_dropout(torch.cat(parts, dim=-1) if len(parts) > 1
                                          else parts[0])
        # (batch, seq_len, hidden * directions)
        hidden = self.encoder(embedded, lengths)
        return self.output(self.dropout(hidden))

    def loss(
        self, chars: torch.Tensor, lengths: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
        bigrams: torch.Tensor | None = None, classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean per-character negative log-likelihood of the gold ``tags`` (scalar).

        Shapes: ``chars``, ``tags``, ``mask``: (batch, seq_len); ``lengths``: (batch,).
        Both heads are normalised per character so the learning rate means the same for both.
        """
        scores = self.emissions(chars, lengths, bigrams, classes)
        if self.crf is not None:
            return -self.crf(scores, tags, mask, reduction="token_mean")
        # (num_real_tokens, num_tags) vs (num_real_tokens,)
        return F.cross_entropy(scores[mask], tags[mask])


def constraint_tables(
    allowed: tuple[Sequence[bool], Sequence[Sequence[bool]], Sequence[bool]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(start, transitions, end)`` legal-move tables as bool tensors, for decoding."""
    start, trans, end = allowed
    return (torch.tensor(start, dtype=torch.bool), torch.tensor(trans, dtype=torch.bool),
            torch.tensor(end, dtype=torch.bool))


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
        self.layers = nn.ModuleList(
            nn.ModuleList(CELLS[cell](input_dim if layer == 0 else hidden_size * directions,
                                      hidden_size, batch_first=True)
                          for _ in range(directions))
            for layer in range(num_layers))
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq_len, input_dim); lengths: (batch,) -> (batch, seq_len, hidden * dirs)."""
        seq_len = x.shape[1]
        positions = torch.arange(seq_len, device=x.device).unsqueeze(0)
        lengths = lengths.to(x.device).unsqueeze(1)
        # (batch, seq_len) index that reverses each row's first `length` positions in place
        reverse = torch.where(positions < lengths, lengths - 1 - positions, positions)
        # (batch * seq_len,) the same as row numbers of the flattened batch: index_select of
        # whole rows is ~15x faster than gather with an expanded index (and so is its backward)
        reverse = (reverse + torch.arange(x.shape[0], device=x.device).unsqueeze(1) * seq_len
                   ).reshape(-1)
        keep = (positions < lengths).unsqueeze(2).to(x.dtype)
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
            x = (torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]) * keep
        return x


def _take_rows(x: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """Rows of x picked by flat_index: x: (batch, seq_len, dim); flat_index: (batch * seq_len,)
    row numbers into x viewed as (batch * seq_len, dim) -> (batch, seq_len, dim)."""
    return x.reshape(-1, x.shape[2]).index_select(0, flat_index).view(x.shape)


def migrate_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename weights saved from a single multi-layer ``nn.LSTM`` encoder (keys like
    ``encoder.weight_ih_l1_reverse``) to :class:`RecurrentEncoder`'s per-direction layout."""
    out = {}
    for key, value in state.items():
        if key.startswith("encoder.") and not key.startswith("encoder.layers."):
            name = key[len("encoder."):]
            reverse = name.endswith("_reverse")
            base = name[: -len("_reverse")] if reverse else name
            weight, _, layer = base.rpartition("_l")
            key = f"encoder.layers.{layer}.{int(reverse)}.{weight}_l0"
        out[key] = value
    return out


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
