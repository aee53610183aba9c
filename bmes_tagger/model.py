"""The network: character embeddings -> recurrent encoder -> linear layer -> softmax or CRF."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import ModelConfig
from .crf import CRF, viterbi_decode
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
    """

    def __init__(
        self,
        config: ModelConfig,
        num_chars: int,
        num_tags: int,
        allowed: tuple[Sequence[bool], Sequence[Sequence[bool]], Sequence[bool]] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.num_tags = num_tags
        self.embedding = nn.Embedding(num_chars, config.embedding_dim, padding_idx=PAD)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.encoder = CELLS[config.cell](
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
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

    def emissions(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Per-character tag scores.

        Args:
            chars: (batch, seq_len) character ids, padded with 0.
            lengths: (batch,) true lengths (>= 1), on CPU.

        Returns:
            (batch, seq_len, num_tags) unnormalised scores; padding rows are zeros.
        """
        # (batch, seq_len, embedding_dim)
        embedded = self.embedding_dropout(self.embedding(chars))
        # Packing keeps the backward direction from reading padding, so a sentence gets the
        # same output alone or in a padded batch.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        encoded, _ = self.encoder(packed)
        # (batch, seq_len, hidden * directions)
        hidden, _ = pad_packed_sequence(encoded, batch_first=True, total_length=chars.shape[1])
        return self.output(self.dropout(hidden))

    def loss(
        self, chars: torch.Tensor, lengths: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Mean per-character negative log-likelihood of the gold ``tags`` (scalar).

        Shapes: ``chars``, ``tags``, ``mask``: (batch, seq_len); ``lengths``: (batch,).
        Both heads are normalised per character so the learning rate means the same for both.
        """
        scores = self.emissions(chars, lengths)
        if self.crf is not None:
            return -self.crf(scores, tags, mask, reduction="token_mean")
        # (num_real_tokens, num_tags) vs (num_real_tokens,)
        return F.cross_entropy(scores[mask], tags[mask])

    @torch.no_grad()
    def decode(
        self, chars: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Best tag ids, (batch, seq_len); padding positions hold 0.

        The CRF head runs Viterbi with its transitions; the softmax head runs Viterbi over
        log-probabilities with only the BMES constraints (or a plain argmax when unconstrained).
        """
        scores = self.emissions(chars, lengths)
        if self.crf is not None:
            return self.crf.decode(scores, mask, allowed=self.allowed)
        if self.allowed is None:
            return scores.argmax(-1).masked_fill(~mask, 0)
        return viterbi_decode(F.log_softmax(scores, dim=-1), mask, allowed=self.allowed)
