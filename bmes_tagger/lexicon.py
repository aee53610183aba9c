"""Lexicon matching for the lexicon input feature (SoftLexicon, Ma et al. ACL 2020,
"Simplify the Usage of Lexicon in Chinese NER").

For every character, the lexicon words found in its sentence fall into four sets: words it
Begins, words it is in the Middle of, words it Ends, and the word it is by itself (Single).
:func:`memberships` lists those for a whole corpus at once; :mod:`bmes_tagger.features` turns
them into embedding ids and weights. Matching is an Aho-Corasick automaton (pyahocorasick: a
C implementation, so a corpus of millions of characters is matched in seconds, and a
dictionary word of any length costs nothing until it occurs) over the whole sentence, before
long lines are cut, so training and predict see the same words.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import iter_lines
from .errors import BmesTaggerError, CorpusFormatError, import_failure
from .vocab import normalize_width

B, M, E, S = 0, 1, 2, 3  # the four roles of a character in a matched word
ROLES = 4
# words longer than this are ignored: the sets of a character in a 30-character name are
# dominated by the name itself, and matching cost grows with word length
MAX_WORD_LEN = 16
# Frequencies become float64 weights: past 2**53 they are no longer exact, and far past it a
# sum of them leaves int64 (real counts, jieba's among them, stay below 10**7)
MAX_FREQ = 2**53
# a second field that looks like a number is meant as a frequency (jieba's `word freq pos`);
# any other second field (`word pos`) is not one
_NUMBER = re.compile(r"[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf(inity)?)|"
                     r"0[xXoObB][0-9a-fA-F_]+", re.IGNORECASE)


@dataclass
class Lexicon:
    """A word list with frequencies (``freqs[i]`` of ``words[i]``, >= 1), words normalised as
    the vocabularies are (``data.normalize_width``), no duplicates."""

    words: list[str]
    freqs: np.ndarray
    _automaton: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, int | None]], normalize: bool,
           default_freq: int = 1) -> Lexicon:
        """From ``(word, frequency or None)`` pairs: words normalised and merged (their
        frequencies summed), empty and over-long words dropped."""
        merged: dict[str, int] = {}
        for word, freq in pairs:
            word = normalize_width(word) if normalize else word
            if word and len(word) <= MAX_WORD_LEN and "\n" not in word:
                total = merged.get(word, 0) + max(1, freq if freq else default_freq)
                merged[word] = min(total, MAX_FREQ)  # duplicates summed, within float range
        words = sorted(merged)
        return cls(words, np.array([merged[w] for w in words], dtype=np.int64))

    def matcher(self) -> Any:
        """The Aho-Corasick automaton of the words (built once, on first use)."""
        if self._automaton is None:
            try:
                import ahocorasick
            except ImportError as exc:
                raise import_failure(exc, "the lexicon feature needs pyahocorasick: pip "
                                     "install 'bmes_tagger[lexicon]'") from None
            automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
            for i, word in enumerate(self.words):
                automaton.add_word(word, i)
            automaton.make_automaton()
            self._automaton = automaton
        return self._automaton


def frequency(text: str) -> int | None:
    """``text`` as a frequency: a whole number from 0 to :data:`MAX_FREQ` in ASCII digits, or
    None. The length is checked first: ``int()`` of over 4,300 digits is itself an error."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_FREQ)):
        return None
    value = int(text)
    return value if value <= MAX_FREQ else None


def read_lexicon(path: str | Path) -> list[tuple[str, int | None]]:
    """A word list: one word per line, optionally followed by a frequency (jieba's
    ``dict.txt``: ``word freq pos``); further fields are ignored.

    Raises:
        CorpusFormatError: unreadable file, or a frequency that is not a whole number from 0
            to 2**53 (named with the line).
    """
    out: list[tuple[str, int | None]] = []
    for number, text in iter_lines(path):
        fields = text.split()
        if not fields:
            continue
        freq = None
        if len(fields) > 1 and _NUMBER.fullmatch(fields[1]):
            freq = frequency(fields[1])
            if freq is None:
                raise CorpusFormatError(path, number, f"frequency {fields[1][:30]!r} of "
                                        f"{fields[0][:30]!r}: must be a whole number from 0 "
                                        f"to {MAX_FREQ}", kind="bad_frequency")
        out.append((fields[0], freq))
    return out


def jieba_dictionary() -> Path:
    """The dictionary bundled with the ``jieba`` package (``model.lexicon: jieba``)."""
    spec = importlib.util.find_spec("jieba")
    if spec is None or spec.origin is None:
        raise BmesTaggerError("model.lexicon: jieba needs the jieba package: pip install "
                              "'bmes_tagger[jieba]'")
    path = Path(spec.origin).parent / "dict.txt"
    if not path.is_file():
        raise BmesTaggerError(f"model.lexicon: jieba: no dictionary at {path}")
    return path


@dataclass
class Memberships:
    """The (token, role, word) triples of a corpus: ``token`` indexes the flat token list,
    ``role`` is B/M/E/S, ``word`` indexes the lexicon, ``length`` is the word's length in
    tokens. One array each, all the same length."""

    token: np.ndarray
    role: np.ndarray
    word: np.ndarray
    length: np.ndarray


def memberships(tokens: Sequence[str], lengths: np.ndarray, lexicon: Lexicon) -> Memberships:
    """Every lexicon word occurring in each sentence (tokens ``tokens``, flat, normalised;
    sentence lengths ``lengths``) and the role each of its tokens plays in it.

    A word counts only where it starts and ends on token boundaries (a token may be several
    code points: a grapheme cluster). Words never cross sentences.
    """
    empty = np.zeros(0, dtype=np.int64)
    if not len(tokens) or not len(lexicon):
        return Memberships(empty, empty, empty, empty)
    # code points per token, and the sentence text with "\n" between sentences
    token_len = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    sentence_of = np.repeat(np.arange(len(lengths)), lengths)
    # (total_tokens,) first code point of each token in the joined text (one "\n" per break)
    first_cp = np.cumsum(token_len) - token_len + sentence_of
    text = "\n".join("".join(tokens[a:a + n]) for a, n in
                     zip((np.cumsum(lengths) - lengths).tolist(), lengths.tolist()))
    # code point -> token starting there (-1 elsewhere); token ending there
    start_token = np.full(len(text) + 1, -1, dtype=np.int64)
    start_token[first_cp] = np.arange(len(tokens))
    end_token = np.full(len(text) + 1, -1, dtype=np.int64)
    end_token[first_cp + token_len - 1] = np.arange(len(tokens))
    found = np.array(list(lexicon.matcher().iter(text)), dtype=np.int64).reshape(-1, 2)
    if not len(found):
        return Memberships(empty, empty, empty, empty)
    end_cp, word = found[:, 0], found[:, 1]
    word_cp = np.fromiter((len(w) for w in lexicon.words), dtype=np.int64,
                          count=len(lexicon))[word]
    first = start_token[end_cp - word_cp + 1]
    last = end_token[end_cp]
    aligned = (first >= 0) & (last >= 0)
    first, last, word = first[aligned], last[aligned], word[aligned]
    n = last - first + 1
    single = n == 1
    multi = ~single
    # B and E of multi-token words, S of single ones, M for every inner token
    inner = np.maximum(n - 2, 0)
    m_word = np.repeat(word, inner)
    m_len = np.repeat(n, inner)
    m_token = np.repeat(first + 1, inner) + (np.arange(inner.sum()) -
                                              np.repeat(np.cumsum(inner) - inner, inner))
    token = np.concatenate([first[multi], last[multi], first[single], m_token])
    role = np.concatenate([np.full(multi.sum(), B), np.full(multi.sum(), E),
                           np.full(single.sum(), S), np.full(len(m_token), M)])
    words = np.concatenate([word[multi], word[multi], word[single], m_word])
    length = np.concatenate([n[multi], n[multi], n[single], m_len])
    return Memberships(token, role, words, length)


def count(sentences: Sequence[Sequence[str]], lexicon: Lexicon) -> np.ndarray:
    """(len(lexicon),) occurrences of each word in ``sentences`` (normalised tokens)."""
    lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=len(sentences))
    flat = [t for s in sentences for t in s]
    found = memberships(flat, lengths, lexicon)
    # one occurrence per word: count each at its first token (B or S)
    starts = (found.role == B) | (found.role == S)
    return np.bincount(found.word[starts], minlength=len(lexicon)).astype(np.int64)
