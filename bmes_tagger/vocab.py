"""Vocabularies: characters -> ids (with <pad> and <unk>)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"

# Full-width ASCII forms (U+FF01..U+FF5E) sit at a fixed offset from ASCII (U+0021..U+007E).
_FULLWIDTH_OFFSET = 0xFEE0
# code point -> code point, for str.translate; everything normalize_width changes is a key
WIDTH_TABLE = {cp: cp - _FULLWIDTH_OFFSET for cp in range(0xFF01, 0xFF5F)}
WIDTH_TABLE[0x3000] = 0x20


def normalize_width(text: str) -> str:
    """Map full-width digits, Latin letters and ASCII punctuation to their half-width forms.

    People's Daily writes ``１９９８`` where the SIGHAN PKU test writes ``1998``; without this the
    test's ASCII forms are unknown characters. Output text keeps the original characters; only
    vocabulary lookup uses the normalised form.

    Example:
        >>> normalize_width("２００１年ＡＢＣ")
        '2001年ABC'
    """
    return text.translate(WIDTH_TABLE)


class Vocab:
    """A token <-> id mapping with ``<pad>`` = 0 and ``<unk>`` = 1.

    Args:
        tokens: the vocabulary in id order, starting with ``<pad>`` and ``<unk>``.
        fixed: how many of the last tokens are rows of pretrained vectors that training
            keeps as they are (``model.extend_vocab``); the network holds them apart.
    """

    def __init__(self, tokens: Sequence[str], fixed: int = 0) -> None:
        if list(tokens[:2]) != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError("a Vocab must start with <pad>, <unk>")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("duplicate tokens in vocabulary")
        if not 0 <= fixed <= len(self.tokens) - 2:
            raise ValueError(f"fixed rows must be 0..{len(self.tokens) - 2}, got {fixed}")
        self.fixed = fixed
        # lookup tables derived from this vocabulary, built once by their users (batching.py)
        self.derived: dict[Any, Any] = {}

    @classmethod
    def build(cls, counts: Counter[str], min_freq: int = 1) -> Vocab:
        """Vocabulary of tokens seen at least ``min_freq`` times, most frequent first."""
        kept = sorted((t for t, n in counts.items() if n >= min_freq),
                      key=lambda t: (-counts[t], t))
        return cls([PAD_TOKEN, UNK_TOKEN, *kept])

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens map to ``UNK``."""
        get = self.index.get
        return [get(t, UNK) for t in tokens]

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.index

