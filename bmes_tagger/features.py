"""Input features beyond the character itself: character bigrams, character classes, and
pretrained vectors to initialise embeddings.

Strings only, except :func:`load_vectors`, which returns a tensor.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from pathlib import Path

import torch

from .errors import BmesTaggerError
from .vocab import Vocab

BOS, EOS = "\x02", "\x03"  # sentence-boundary pseudo characters for edge bigrams
SEP = "\x1f"  # joins the two tokens of a bigram key (tokens may be longer than one character)

# Character classes: 0 is padding.
OTHER, DIGIT, LATIN, PUNCT, CJK = 1, 2, 3, 4, 5
NUM_CLASSES = 6


def bigram_keys(tokens: Sequence[str]) -> list[str]:
    """Keys of (t[i], t[i+1]) for every position; the last pairs with the end marker.

    The keys of (t[i-1], t[i]) are ``[bigram(BOS, t[0])] + bigram_keys(tokens)[:-1]``.
    """
    nxt = [*tokens[1:], EOS]
    return [f"{a}{SEP}{b}" for a, b in zip(tokens, nxt)]


def first_bigram(tokens: Sequence[str]) -> str:
    """Key of (BOS, t[0])."""
    return f"{BOS}{SEP}{tokens[0]}"


def char_class(token: str) -> int:
    """Class of a (normalised) token's first character: digit, Latin letter, punctuation,
    CJK ideograph or other. Lets the model treat unseen numbers and Latin runs alike."""
    c = token[0]
    if c.isdigit():
        return DIGIT
    if c.isascii() and c.isalpha():
        return LATIN
    category = unicodedata.category(c)
    if category.startswith("P") or category.startswith("S"):
        return PUNCT
    if "CJK" in unicodedata.name(c, ""):
        return CJK
    return OTHER


def load_vectors(path: str | Path, vocab: Vocab, dim: int) -> tuple[torch.Tensor, float]:
    """Read word2vec text vectors for the tokens of ``vocab``.

    The file has one ``TOKEN v1 ... vdim`` per line, optionally preceded by a ``COUNT DIM``
    header. Tokens absent from ``vocab`` are skipped.

    Returns:
        ``(vectors, coverage)``: (len(vocab), dim) float tensor with NaN rows for tokens that
        have no vector, and the fraction of vocabulary tokens (excluding <pad>, <unk>) covered.

    Raises:
        BmesTaggerError: missing file, bad dimension (names the line), non-numeric values.
    """
    path = Path(path)
    if not path.is_file():
        raise BmesTaggerError(f"{path}: vector file not found")
    out = torch.full((len(vocab), dim), float("nan"))
    found = 0
    with path.open(encoding="utf-8", errors="strict") as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\r\n").split(" ")
            if number == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
                if int(fields[1]) != dim:
                    raise BmesTaggerError(f"{path}:1: vectors have dimension {fields[1]}, the "
                                          f"embedding has {dim}; set the matching *_dim")
                continue
            if not fields or not fields[0]:
                continue
            token, values = fields[0], [v for v in fields[1:] if v]
            if len(values) != dim:
                raise BmesTaggerError(f"{path}:{number}: expected {dim} values after the token, "
                                      f"got {len(values)}")
            index = vocab.index.get(token)
            if index is None:
                continue
            try:
                out[index] = torch.tensor([float(v) for v in values])
            except ValueError:
                raise BmesTaggerError(f"{path}:{number}: non-numeric vector value") from None
            found += 1
    return out, found / max(len(vocab) - 2, 1)
