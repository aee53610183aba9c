"""The network: character embeddings -> recurrent encoder -> linear layer -> softmax or CRF."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import ModelConfig
from .crf import CRF, viterbi_decode
from .features import NUM_CLASSES
from .vocab import PAD

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class BiLSTMTagger(nn.Module):
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
        dropout_cls = LockedDropout if config.locked_dropout else nn.Dropout
        self.embedding_dropout = dropout_cls(config.embedding_dropout)
        self.encoder = CELLS[config.cell](
            input_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.dropout = dropout_cls(config.dropout)
        directions = 2 if config.bidirectional else 1
        self.output = nn.Linear(config.hidden_size * directions, num_tags)
        self.crf = CRF(num_tags) if config.head == "crf" else None
        # Constraint tables are derived from the tag list, so they are rebuilt on load rather
        # than stored in the state dict.
        self.allowed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        if allowed is not None and config.constrained:
            start, trans, end = allowed
            self.allowed = (
                torch.tensor(start, dtype=torch.bool),
                torch.tensor(trans, dtype=torch.bool),
                torch.tensor(end, dtype=torch.bool),
            )

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
        # Packing keeps the backward direction from reading padding, so a sentence gets the
        # same output alone or in a padded batch.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        encoded, _ = self.encoder(packed)
        # (batch, seq_len, hidden * directions)
        hidden, _ = pad_packed_sequence(encoded, batch_first=True, total_length=chars.shape[1])
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

    @torch.no_grad()
    def decode(
        self, chars: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor,
        bigrams: torch.Tensor | None = None, classes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Best tag ids, (batch, seq_len); padding positions hold 0.

        The CRF head runs Viterbi with its transitions; the softmax head runs Viterbi over
        log-probabilities with only the BMES constraints (or a plain argmax when unconstrained).
        """
        scores = self.emissions(chars, lengths, bigrams, classes)
        if self.crf is not None:
            return self.crf.decode(scores, mask, allowed=self.allowed)
        if self.allowed is None:
            return scores.argmax(-1).masked_fill(~mask, 0)
        return viterbi_decode(F.log_softmax(scores, dim=-1), mask, allowed=self.allowed)


class LockedDropout(nn.Module):
    """Dropout with one mask per sentence shared across time steps (variational dropout)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq_len, features) -> same shape."""
        if not self.training or self.p == 0:
            return x
        # (batch, 1, features): the same units are dropped at every position
        keep = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)
