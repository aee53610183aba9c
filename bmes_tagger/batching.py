"""Turning sentences into tensors once, and tensors into length-bucketed, padded batches.

The corpus is encoded a single time into one flat id tensor plus offsets, so an epoch does no
per-character Python work: a batch is a few tensor slices and one ``pad_sequence``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

from .config import Config
from .corpus import Sentence
from .features import BOS, EOS, SEP, bigram_keys, char_class, first_bigram
from .vocab import UNK, WIDTH_TABLE, Vocab, normalize_width

# Chunks of over-long lines preferably end after one of these, so a forced boundary is harmless.
BREAK_AFTER = frozenset("。！？；，、：!?;,:…）)」』”")


@dataclass
class Batch:
    """A padded batch. ``chars``/``tags``/``mask``: (batch, seq_len); ``lengths``: (batch,)."""

    chars: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    tags: torch.Tensor | None = None
    index: torch.Tensor | None = None  # (batch,) positions of these rows in the encoded corpus
    bigrams: torch.Tensor | None = None  # (batch, seq_len, 1 or 2) bigram ids (next[, prev])
    classes: torch.Tensor | None = None  # (batch, seq_len) character-class ids

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())


class EncodedCorpus:
    """Sentences as one flat id tensor (and tag-id tensor) with per-sentence offsets.

    Args:
        chars: token lists (one per sentence, none empty).
        vocab: character vocabulary.
        tag_index: tag -> id; required when ``tags`` are given.
        tags: optional BMES tag lists aligned with ``chars``.
        normalize: apply :func:`normalize_width` before lookup.
        bigram_vocab: if given, also encode bigram ids (see :mod:`bmes_tagger.features`).
        bigram_context: ``next`` (t[i]t[i+1]) or ``both`` (also t[i-1]t[i]).
        classes: also encode character classes.
    """

    def __init__(
        self,
        chars: Sequence[Sequence[str]],
        vocab: Vocab,
        tag_index: dict[str, int] | None = None,
        tags: Sequence[Sequence[str]] | None = None,
        normalize: bool = True,
        bigram_vocab: Vocab | None = None,
        bigram_context: str = "next",
        classes: bool = False,
    ) -> None:
        lengths = [len(c) for c in chars]
        assert all(n > 0 for n in lengths), "empty sentences must be filtered out before encoding"
        flat = [t for sent in chars for t in sent]
        # (total_tokens,)
        ids = _single_char_ids(flat, vocab, normalize)
        if ids is None or bigram_vocab is not None and BigramTable.of(vocab, bigram_vocab) is None:
            if normalize:
                # one translate over the joined text instead of one call per character; tokens
                # never contain a newline (they come from lines split on it)
                flat = normalize_width("\n".join(flat)).split("\n")
            if ids is None:
                ids = torch.tensor(vocab.encode(flat), dtype=torch.long)
        elif normalize:
            flat = _LazyNormalized(flat)  # only unknown characters' classes will read it
        self.ids = ids
        self.lengths = torch.tensor(lengths, dtype=torch.long)
        self.offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
        torch.cumsum(self.lengths, 0, out=self.offsets[1:])
        self.tag_ids: torch.Tensor | None = None
        # (total_tokens, 1 or 2) bigram ids; (total_tokens,) class ids
        self.bigram_ids: torch.Tensor | None = None
        self.class_ids: torch.Tensor | None = None
        if bigram_vocab is not None:
            table = BigramTable.of(vocab, bigram_vocab)
            self.bigram_ids = (table.encode(self.ids, self.lengths, bigram_context)
                               if table is not None
                               else _encode_bigrams(flat, lengths, bigram_vocab, bigram_context))
        if classes:
            self.class_ids = _class_ids(flat, self.ids, vocab)
        if tags is not None:
            assert tag_index is not None
            self.tag_ids = torch.tensor([tag_index[t] for sent in tags for t in sent],
                                        dtype=torch.long)

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, indices: Sequence[int]) -> Batch:
        """Pad the sentences at ``indices`` into one :class:`Batch`."""
        starts = self.offsets[list(indices)].tolist()
        lens = self.lengths[list(indices)].tolist()
        chars = pad_sequence([self.ids[s:s + n] for s, n in zip(starts, lens)], batch_first=True)
        lengths = torch.tensor(lens, dtype=torch.long)
        # (batch, seq_len)
        mask = torch.arange(chars.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
        tags = None
        if self.tag_ids is not None:
            tags = pad_sequence([self.tag_ids[s:s + n] for s, n in zip(starts, lens)],
                                batch_first=True)
        bigrams = classes = None
        if self.bigram_ids is not None:
            bigrams = pad_sequence([self.bigram_ids[s:s + n] for s, n in zip(starts, lens)],
                                   batch_first=True)
        if self.class_ids is not None:
            classes = pad_sequence([self.class_ids[s:s + n] for s, n in zip(starts, lens)],
                                   batch_first=True)
        return Batch(chars=chars, mask=mask, lengths=lengths, tags=tags,
                     index=torch.tensor(list(indices), dtype=torch.long), bigrams=bigrams,
                     classes=classes)


def encode_for_model(
    chars: Sequence[Sequence[str]], config: Config, vocab: Vocab, bigram_vocab: Vocab | None,
    tag_index: dict[str, int] | None = None, tags: Sequence[Sequence[str]] | None = None,
) -> EncodedCorpus:
    """Encode sentences with every input feature the config's model uses."""
    return EncodedCorpus(
        chars, vocab, tag_index, tags, normalize=config.data.normalize_width,
        bigram_vocab=bigram_vocab if config.model.bigram_dim > 0 else None,
        bigram_context=config.model.bigram_context, classes=config.model.class_dim > 0,
    )


def _single_char_ids(flat: Sequence[str], vocab: Vocab, normalize: bool) -> torch.Tensor | None:
    """(total_tokens,) ids of ``flat`` when every token is one character (always so for text
    to predict on): looked up by code point with ``torch.searchsorted`` in a sorted table of the
    vocabulary's characters, about 5x faster than a dict lookup per character. None when some
    token is longer, for the caller's general path."""
    joined = "".join(flat)
    if len(joined) != len(flat) or not flat or "" in flat:
        return None
    # (total_tokens,) code points; surrogatepass keeps lone surrogates (which the vocabulary
    # cannot hold) from raising
    codes = torch.frombuffer(bytearray(joined.encode("utf-32-le", "surrogatepass")),
                             dtype=torch.int32).long()
    key = ("code points", normalize)
    if key not in vocab.derived:
        vocab.derived[key] = _code_point_table(vocab, normalize)
    known, known_ids = vocab.derived[key]
    pos = torch.searchsorted(known, codes).clamp_(max=len(known) - 1)
    return torch.where(known[pos] == codes, known_ids[pos], UNK)


def _code_point_table(vocab: Vocab, normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted code points, their ids): the vocabulary's one-character tokens, and with
    ``normalize`` also every code point that :func:`normalize_width` maps onto one of them (a
    raw full-width code point then finds its half-width id without a normalising pass)."""
    pairs = {ord(t): i for i, t in enumerate(vocab.tokens[2:], start=2) if len(t) == 1}
    if normalize:
        # normalised text never holds a folded form, so such a vocabulary entry is unreachable
        pairs = {cp: i for cp, i in pairs.items() if cp not in WIDTH_TABLE}
        pairs.update({src: pairs[dst] for src, dst in WIDTH_TABLE.items() if dst in pairs})
    table = torch.tensor(sorted(pairs.items()) or [(-1, UNK)], dtype=torch.long)
    return table[:, 0].contiguous(), table[:, 1].contiguous()


class _LazyNormalized:
    """A token list read through :func:`normalize_width`, one token at a time on access."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = tokens

    def __getitem__(self, i: int) -> str:
        return normalize_width(self.tokens[i])

    def __len__(self) -> int:
        return len(self.tokens)


def _class_ids(flat: Sequence[str], ids: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """(total_tokens,) character classes: a per-vocabulary table indexed by the character ids,
    and :func:`char_class` itself only for unknown characters (whose class is the point)."""
    if "classes" not in vocab.derived:
        vocab.derived["classes"] = torch.tensor([0, 0, *map(char_class, vocab.tokens[2:])],
                                                dtype=torch.long)
    out = vocab.derived["classes"][ids]
    unknown = (ids == UNK).nonzero().squeeze(1).tolist()
    if unknown:
        out[unknown] = torch.tensor([char_class(flat[i]) for i in unknown], dtype=torch.long)
    return out


class BigramTable:
    """Bigram ids looked up from character ids, without building bigram strings.

    A bigram ``(a, b)`` gets the code ``id(a) * width + id(b)``, with the sentence-boundary
    markers as two extra ids; the bigram vocabulary becomes a sorted code table that
    ``torch.searchsorted`` reads for a whole corpus at once (several times faster than one
    string key and dict lookup per character). Exact only when every token of every bigram in
    the vocabulary is in the character vocabulary (so an unknown character can never be part
    of a known bigram): :meth:`of` returns None otherwise, and callers use the string keys.
    """

    def __init__(self, codes: torch.Tensor, ids: torch.Tensor, width: int) -> None:
        self.codes = codes  # (num_known,) sorted
        self.ids = ids      # (num_known,) bigram id of each code
        self.width = width
        self.bos, self.eos = width - 2, width - 1

    @classmethod
    def of(cls, vocab: Vocab, bigram_vocab: Vocab) -> BigramTable | None:
        """The table for this pair of vocabularies (built once and kept on ``bigram_vocab``)."""
        key = ("bigram table", id(vocab))
        if key not in bigram_vocab.derived:
            # the vocabulary is kept with its table so that its id() cannot be reused
            bigram_vocab.derived[key] = (vocab, cls._build(vocab, bigram_vocab))
        return bigram_vocab.derived[key][1]

    @classmethod
    def _build(cls, vocab: Vocab, bigram_vocab: Vocab) -> BigramTable | None:
        width = len(vocab) + 2
        special = {BOS: width - 2, EOS: width - 1}
        codes, ids = [], []
        for i, key in enumerate(bigram_vocab.tokens[2:], start=2):
            a, sep, b = key.partition(SEP)
            ia, ib = special.get(a, vocab.index.get(a)), special.get(b, vocab.index.get(b))
            if not sep or ia is None or ib is None or ia < 2 or ib < 2:
                return None  # a bigram with a token the character ids cannot name
            codes.append(ia * width + ib)
            ids.append(i)
        codes_t = torch.tensor(codes, dtype=torch.long)
        order = torch.argsort(codes_t)
        return cls(codes_t[order], torch.tensor(ids, dtype=torch.long)[order], width)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Bigram ids of ``codes`` (any shape); codes not in the table give ``<unk>``."""
        if len(self.codes) == 0:
            return torch.full_like(codes, UNK)
        pos = torch.searchsorted(self.codes, codes).clamp_(max=len(self.codes) - 1)
        return torch.where(self.codes[pos] == codes, self.ids[pos], UNK)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor, context: str) -> torch.Tensor:
        """(total_tokens, 1 or 2) next (and previous) bigram ids of a flat corpus, as
        :func:`_encode_bigrams` computes them from strings.

        ids: (total_tokens,) character ids; lengths: (num_sentences,).
        """
        starts = torch.cumsum(lengths, 0) - lengths
        ends = starts + lengths - 1
        following = torch.roll(ids, -1)
        following[ends] = self.eos
        next_ids = self.lookup(ids * self.width + following)
        if context == "next":
            return next_ids.unsqueeze(1)
        prev_ids = torch.roll(next_ids, 1)
        prev_ids[starts] = self.lookup(self.bos * self.width + ids[starts])
        return torch.stack([next_ids, prev_ids], dim=1)


def _encode_bigrams(
    flat: Sequence[str], lengths: Sequence[int], vocab: Vocab, context: str
) -> torch.Tensor:
    """(total_tokens, 1 or 2) ids of each token's next (and previous) bigram."""
    nxt: list[str] = []
    firsts: list[str] = []
    start = 0
    for n in lengths:
        tokens = flat[start:start + n]
        nxt.extend(bigram_keys(tokens))
        firsts.append(first_bigram(tokens))
        start += n
    next_ids = torch.tensor(vocab.encode(nxt), dtype=torch.long)
    if context == "next":
        return next_ids.unsqueeze(1)
    # previous bigram of token i is the next bigram of token i-1, except at sentence starts
    prev_ids = torch.roll(next_ids, 1)
    starts = torch.cumsum(torch.tensor([0, *lengths[:-1]]), 0)
    prev_ids[starts] = torch.tensor(vocab.encode(firsts), dtype=torch.long)
    return torch.stack([next_ids, prev_ids], dim=1)


def count_bigrams(sentences: Sequence[Sequence[str]], normalize: bool) -> Counter[str]:
    """Counts of every bigram key (both directions' keys) in ``sentences``."""
    counts: Counter[str] = Counter()
    for tokens in sentences:
        if normalize:
            tokens = [normalize_width(t) for t in tokens]
        counts.update(bigram_keys(tokens))
        counts[first_bigram(tokens)] += 1
    return counts


def bucketed_batches(
    lengths: torch.Tensor, batch_size: int, generator: torch.Generator | None = None,
    pool_batches: int = 50,
) -> list[list[int]]:
    """Group sentence indices into batches of similar length.

    With a ``generator`` (training): shuffle, sort within pools of ``pool_batches`` batches, cut
    into batches and shuffle the batch order, so batches have little padding yet vary between
    epochs. Without one (evaluation): sort everything by length, longest first.
    """
    n = len(lengths)
    if generator is None:
        order = torch.argsort(lengths, descending=True, stable=True).tolist()
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    perm = torch.randperm(n, generator=generator)
    pool = batch_size * pool_batches
    batches: list[list[int]] = []
    for start in range(0, n, pool):
        chunk = perm[start:start + pool]
        chunk = chunk[torch.argsort(lengths[chunk], descending=True, stable=True)].tolist()
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def chunk_bounds(
    n: int, max_len: int, can_end_at: Callable[[int], bool]
) -> list[tuple[int, int]]:
    """Split ``range(n)`` into chunks of at most ``max_len``.

    A chunk preferably ends right after a position ``i`` with ``can_end_at(i)`` true, searching
    back to half of ``max_len``; otherwise it is cut at ``max_len``.
    """
    bounds = []
    start = 0
    while n - start > max_len:
        end = start + max_len
        for i in range(start + max_len - 1, start + max_len // 2 - 1, -1):
            if can_end_at(i):
                end = i + 1
                break
        bounds.append((start, end))
        start = end
    bounds.append((start, n))
    return bounds


def split_long_sentences(sentences: Sequence[Sentence], max_len: int) -> list[Sentence]:
    """Cut labelled sentences longer than ``max_len`` at span boundaries (after E/S/O tags)."""
    out: list[Sentence] = []
    for s in sentences:
        if len(s.chars) <= max_len:
            out.append(s)
            continue
        assert s.tags is not None
        tags = s.tags

        def ends_span(i: int, tags: list[str] = tags) -> bool:
            return tags[i][0] in "ESO"

        for a, b in chunk_bounds(len(s.chars), max_len, ends_span):
            out.append(Sentence(chars=s.chars[a:b], tags=tags[a:b], line=s.line))
    return out


def iterate_chunks(tokens: Sequence[str], max_len: int) -> Iterator[tuple[int, int]]:
    """Chunk bounds for unlabelled text: prefer cutting after punctuation."""
    yield from chunk_bounds(len(tokens), max_len, lambda i: tokens[i] in BREAK_AFTER)
