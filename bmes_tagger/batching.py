"""Turning sentences into arrays once, and arrays into length-bucketed, padded batches.

The corpus is encoded a single time (:func:`bmes_tagger.features.encode`) into one flat id
column per input feature plus offsets, so an epoch does no per-character Python work: a batch
is one gather per column. NumPy only; :meth:`Batch.torch` hands a batch to a torch model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import features
from .config import Config
from .vocab import Vocab

# Chunks of over-long lines preferably end after one of these, so a forced boundary is harmless.
BREAK_AFTER = frozenset("。！？；，、：!?;,:…）)」』”")


@dataclass
class Batch:
    """A padded batch of sentences (NumPy arrays, or torch tensors after :meth:`torch`).

    ``inputs``: the model's input features by name, each (batch, seq_len, slots) int64 ids
    (0 on padding); ``mask``: (batch, seq_len) bool; ``lengths``: (batch,); ``tags``:
    (batch, seq_len) gold tag ids, for labelled data; ``index``: (batch,) positions of these
    rows in the encoded corpus.
    """

    inputs: dict[str, Any]
    mask: Any
    lengths: Any
    tags: Any = None
    index: Any = None

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def torch(self, device: Any = "cpu") -> Batch:
        """The batch as torch tensors on ``device`` (``lengths`` stays on the CPU, where the
        encoder reads it). NumPy arrays are shared, not copied, on the CPU."""
        import torch  # the predict path of exported models runs without torch

        def move(x: Any) -> Any:
            if x is None:
                return None
            t = torch.from_numpy(x)
            return t if torch.device(device).type == "cpu" else t.to(device, non_blocking=True)

        return Batch(inputs={k: move(v) for k, v in self.inputs.items()}, mask=move(self.mask),
                     lengths=torch.from_numpy(self.lengths), tags=move(self.tags),
                     index=None if self.index is None else torch.from_numpy(self.index))


@dataclass
class EncodedCorpus:
    """Sentences (or pieces of them) as spans of one flat id column per feature (and one of
    tag ids).

    ``columns``: ``{feature name: (total_tokens, slots)}``; ``lengths``: (num_items,);
    ``starts``: (num_items,) start of each item in the columns (default: the items follow each
    other); ``tag_ids``: (total_tokens,) or None. All int64 NumPy arrays.

    Sentences are encoded whole and only then cut into pieces (:meth:`pieces`), so a feature
    that looks at context (a bigram, a lexicon word) sees the same context whether a line is
    cut or not, in training and in predict alike.
    """

    columns: dict[str, np.ndarray]
    lengths: np.ndarray
    tag_ids: np.ndarray | None = None
    starts: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.starts is None:
            self.starts = np.cumsum(self.lengths) - self.lengths

    @classmethod
    def encode(
        cls, sentences: Sequence[Sequence[str]], vocabs: dict[str, Vocab], config: Config,
        tags: Sequence[Sequence[str]] | None = None, tag_index: dict[str, int] | None = None,
    ) -> EncodedCorpus:
        """Encode token lists (none empty) with every input feature the config's model reads;
        with ``tags`` (and ``tag_index``), also their tag ids."""
        assert all(len(s) > 0 for s in sentences), "empty sentences must be filtered out"
        columns, lengths = features.encode(sentences, vocabs, config)
        tag_ids = None
        if tags is not None:
            assert tag_index is not None
            tag_ids = np.fromiter((tag_index[t] for sent in tags for t in sent),
                                  dtype=np.int64, count=int(lengths.sum()))
        return cls(columns, lengths, tag_ids)

    def __len__(self) -> int:
        return len(self.lengths)

    def pieces(self, bounds: Sequence[Sequence[tuple[int, int]]]) -> EncodedCorpus:
        """The items cut into pieces: ``bounds[i]`` are the ``(start, end)`` token ranges of
        item ``i`` (see :func:`text_bounds`, :func:`span_bounds`), in order. The columns are
        shared, not copied."""
        assert self.starts is not None and len(bounds) == len(self.lengths)
        starts = [int(s) + a for s, item in zip(self.starts, bounds) for a, _ in item]
        lengths = [b - a for item in bounds for a, b in item]
        return EncodedCorpus(self.columns, np.array(lengths, dtype=np.int64), self.tag_ids,
                             np.array(starts, dtype=np.int64))

    def batch(self, indices: Sequence[int]) -> Batch:
        """Pad the sentences at ``indices`` into one :class:`Batch`."""
        index = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[index]
        seq_len = int(lengths.max())
        # (batch, seq_len) flat token positions, clamped on padding (then masked)
        positions = np.arange(seq_len)[None, :]
        mask = positions < lengths[:, None]
        total = len(next(iter(self.columns.values())))
        assert self.starts is not None
        flat = np.minimum(self.starts[index][:, None] + positions, total - 1)
        inputs = {}
        for name, column in self.columns.items():
            ids = column[flat]
            ids[~mask] = 0
            inputs[name] = ids
        tags = None
        if self.tag_ids is not None:
            tags = self.tag_ids[flat]
            tags[~mask] = 0
        return Batch(inputs=inputs, mask=mask, lengths=lengths, tags=tags, index=index)


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, generator: Any = None, pool_batches: int = 50,
) -> list[list[int]]:
    """Group sentence indices into batches of similar length.

    With a ``generator`` (a ``torch.Generator``: training): shuffle, sort within pools of
    ``pool_batches`` batches, cut into batches and shuffle the batch order, so batches have
    little padding yet vary between epochs. Without one (prediction, evaluation): sort
    everything by length, longest first (ties in input order).
    """
    n = len(lengths)
    if generator is None:
        order = np.argsort(-np.asarray(lengths), kind="stable").tolist()
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    import torch  # training shuffles with torch's generator, so a seed fixes the order

    lengths_t = torch.as_tensor(np.asarray(lengths))
    perm = torch.randperm(n, generator=generator)
    pool = batch_size * pool_batches
    batches: list[list[int]] = []
    for start in range(0, n, pool):
        chunk = perm[start:start + pool]
        chunk = chunk[torch.argsort(lengths_t[chunk], descending=True, stable=True)].tolist()
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def chunk_bounds(
    n: int, max_len: int, can_end_at: Callable[[int], bool],
    inside: Mapping[int, tuple[int, int]] | None = None,
) -> list[tuple[int, int]]:
    """Split ``range(n)`` into chunks of at most ``max_len``.

    A chunk preferably ends right after a position ``i`` with ``can_end_at(i)`` true, searching
    back to half of ``max_len``; otherwise it is cut at ``max_len``. ``inside`` maps a cut
    position ``c`` (between ``c - 1`` and ``c``) that must not be used to the span ``(a, b)``
    it would split: the chunk then ends at ``a``, or, when the span starts the chunk, at ``b``
    (a chunk longer than ``max_len``, so that the span stays whole).
    """
    bounds = []
    start = 0
    while n - start > max_len:
        end = start + max_len
        for i in range(start + max_len - 1, start + max_len // 2 - 1, -1):
            if can_end_at(i) and not (inside and i + 1 in inside):
                end = i + 1
                break
        else:
            if inside and end in inside:
                a, b = inside[end]
                end = a if a > start else b
        bounds.append((start, end))
        start = end
    if start < n or not bounds:
        bounds.append((start, n))
    return bounds


def span_bounds(tags: Sequence[str], max_len: int) -> list[tuple[int, int]]:
    """Pieces of at most ``max_len`` for a labelled sentence, cut at span boundaries (after
    E/S/O tags) where possible."""
    return chunk_bounds(len(tags), max_len, lambda i: tags[i][0] in "ESO")


def text_bounds(tokens: Sequence[str], max_len: int,
                keep: Sequence[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """Pieces of at most ``max_len`` for unlabelled text: cut after punctuation where
    possible, and never inside one of the ``(start, end)`` spans of ``keep`` (forced words:
    a piece holding one longer than ``max_len`` is as long as it needs to be)."""
    inside = {c: (a, b) for a, b in keep for c in range(a + 1, b)}
    return chunk_bounds(len(tokens), max_len, lambda i: tokens[i] in BREAK_AFTER, inside)
