"""Input features: what the network reads about each character, one definition per feature.

A feature turns the tokens of a corpus into integer ids (``slots`` ids per token) that an
embedding table of the network reads; the embeddings of all features are concatenated into the
encoder's input. Each definition owns everything about its feature: the config keys it reads,
how its vocabulary is built from the training tokens, how a corpus is encoded, the size of its
embedding, and its name, which is its key in a batch, its vocabulary's key in a checkpoint and
its input name in an exported graph. Adding a feature means adding one :class:`Feature`
subclass to :data:`FEATURES` (and its tests); nothing else dispatches on feature names.

Encoding is NumPy only (no torch), so that predicting with an exported model needs no torch.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import lexicon as lexicon_module
from .errors import BmesTaggerError
from .vocab import PAD_TOKEN, UNK, UNK_TOKEN, WIDTH_TABLE, Vocab, normalize_width

if TYPE_CHECKING:
    from .config import Config, ModelConfig

BOS, EOS = "\x02", "\x03"  # sentence-boundary pseudo characters for edge bigrams
SEP = "\x1f"  # joins the two tokens of a bigram key (tokens may be longer than one character)

# Character classes: 0 is padding.
OTHER, DIGIT, LATIN, PUNCT, CJK = 1, 2, 3, 4, 5
NUM_CLASSES = 6


def option(default: Any, help: str, **checks: Any) -> Any:
    """A config key: a dataclass field carrying its help text and validation rules (``min``,
    ``max``, ``choices``, ``path``, ``pattern``, ...) in metadata (see
    :mod:`bmes_tagger.config`)."""
    return field(default=default, metadata={"help": help, **checks})


# --- the config keys each feature owns (bases of config.ModelConfig / config.DataConfig) ------


@dataclass(frozen=True)
class BigramOptions:
    bigram_dim: int = option(0, "size of character-bigram embeddings (c[i], c[i+1]) "
                             "concatenated to the character embedding; 0 = no bigram features",
                             min=0)
    bigram_context: str = option("next", "bigrams used: next (c[i]c[i+1]) or both (also "
                                 "c[i-1]c[i], sharing one table)", choices=("next", "both"))
    bigram_vectors: str | None = option(None, "pretrained bigram vectors (word2vec text format)",
                                        path=True)


@dataclass(frozen=True)
class BigramDataOptions:
    min_bigram_freq: int = option(2, "character bigrams rarer than this in train map to <unk> "
                                  "(used when model.bigram_dim > 0)", min=1)


@dataclass(frozen=True)
class LexiconOptions:
    lexicon: str | None = option(
        None, "a word list (one word per line, an optional frequency after it: jieba's "
        "dict.txt reads as is), or jieba for the dictionary of the jieba package; each "
        "character then also reads the lexicon words it begins, is inside of, ends or is "
        "(SoftLexicon)", path=True, names=("jieba",))
    lexicon_mode: str = option(
        "vectors", "vectors: each of the four word sets as the frequency-weighted mean of its "
        "words' embeddings; counts: no word embeddings, the number of words per set and word "
        "length, embedded (generalises to words never seen in training)",
        choices=("vectors", "counts"))
    lexicon_dim: int = option(50, "size of the word embeddings (vectors) or of the count "
                              "embeddings (counts); the input grows by 4 x lexicon_dim", min=1)
    # bounded: a character begins or ends at most MAX_WORD_LEN words, and the encoded input
    # grows with it (batch x length x 4 x lexicon_max_words): a model file's huge value must
    # not allocate what it asks
    lexicon_max_words: int = option(5, "words kept per set and character, most frequent "
                                    "first (vectors)", min=1, max=64)
    lexicon_frequency: str = option(
        "auto", "word frequencies for the weights: file (the lexicon's frequency column), "
        "train (occurrences in the training text; never test data) or auto (file when it has "
        "one)", choices=("auto", "file", "train"))
    word_vectors: str | None = option(None, "pretrained word vectors (word2vec text format) "
                                      "for the lexicon words", path=True)


@dataclass(frozen=True)
class ClassOptions:
    class_dim: int = option(0, "size of a character-class embedding (digit, Latin letter, "
                            "punctuation, CJK, other) concatenated to the input; 0 = off", min=0)


@dataclass(frozen=True)
class EmbeddingSpec:
    """The embedding table a feature needs: ``num_embeddings`` rows (row 0 is padding) of
    ``dim`` values; each token has ``slots`` ids whose embeddings are concatenated. With
    ``groups`` > 0 the slots form that many groups of equal size, and each group's embeddings
    are summed, weighted by the float input ``<name>_weights`` (one weight per slot) when
    ``weighted``, else averaged."""

    num_embeddings: int
    dim: int
    slots: int
    groups: int = 0
    weighted: bool = False
    fixed: int = 0  # the last rows: pretrained vectors training keeps (model.extend_vocab)

    @property
    def width(self) -> int:
        """How many input values per token this feature adds."""
        return self.dim * (self.groups or self.slots)


class Tokens:
    """The tokens of a corpus, flat, with their sentence lengths; the width-normalised form
    (``data.normalize_width``) is computed once, on first use, and only if needed."""

    def __init__(self, sentences: Sequence[Sequence[str]], normalize: bool) -> None:
        self.flat: list[str] = [t for s in sentences for t in s]
        # (num_sentences,)
        self.lengths = np.fromiter((len(s) for s in sentences), dtype=np.int64,
                                   count=len(sentences))
        self.normalize = normalize
        self._normalized: list[str] | None = None

    @property
    def normalized(self) -> list[str]:
        """The tokens as vocabularies hold them."""
        if not self.normalize:
            return self.flat
        if self._normalized is None:
            # one translate over the joined text instead of one call per token; tokens never
            # contain a newline (they come from lines)
            self._normalized = normalize_width("\n".join(self.flat)).split("\n") \
                if self.flat else []
        return self._normalized

    def normalized_at(self, indices: Sequence[int]) -> list[str]:
        """The normalised form of a few tokens, without normalising the whole corpus."""
        if self._normalized is not None or not self.normalize:
            return [self.normalized[i] for i in indices]
        return [normalize_width(self.flat[i]) for i in indices]

    def starts(self) -> np.ndarray:
        """(num_sentences,) index of each sentence's first token in :attr:`flat`."""
        return np.cumsum(self.lengths) - self.lengths


class Feature:
    """One input feature. Subclasses set :attr:`name` and implement the methods."""

    name: ClassVar[str]
    # the model config key naming pretrained vectors for this feature's table, if any
    vectors_key: ClassVar[str | None] = None
    # whether build_vocab returns a vocabulary (stored in checkpoints under ``name``)
    has_vocab: ClassVar[bool] = False
    # the config keys the feature adds to the model and data sections (dataclasses of
    # `option` fields), if any
    model_options: ClassVar[type | None] = None
    data_options: ClassVar[type | None] = None

    def enabled(self, model: ModelConfig) -> bool:
        """Whether a model with this config reads the feature."""
        raise NotImplementedError

    def build_vocab(self, sentences: Sequence[Sequence[str]], config: Config) -> Any:
        """The feature's state from the training sentences (when :attr:`has_vocab`): a
        :class:`Vocab`, or whatever the feature keeps (see :meth:`save`)."""
        raise NotImplementedError

    def save(self, state: Any) -> Any:
        """The state as checkpoint data (strings, numbers, lists, dicts of them): a
        vocabulary is its tokens, one ``"\n"``-joined string (see :func:`vocab_data`)."""
        return vocab_data(state, f"checkpoint vocabs.{self.name}")

    def load(self, raw: Any, config: Config) -> Any:
        """The state from :meth:`save`'s data (format 1 stored lists of tokens too).

        Raises:
            ValueError: data that no :meth:`save` writes (the message says what is wrong).
        """
        return vocab_from(raw)

    def inputs(self, model: ModelConfig) -> list[str]:
        """The network inputs the feature feeds (batch keys, exported graph inputs)."""
        return [self.name]

    def vectors_vocab(self, state: Any) -> Vocab:
        """The tokens pretrained vectors are looked up for (the embedding table's rows)."""
        return state

    def fixed_rows(self, state: Any) -> int:
        """How many of the embedding table's last rows are kept fixed (``extend_vocab``)."""
        return int(state.fixed)

    def extended(self, state: Any, tokens: Sequence[str]) -> Any:
        """The state with ``tokens`` (which have pretrained vectors) added to the embedding
        table's rows, after the rows it had (``model.extend_vocab``)."""
        vocab: Vocab = state
        new = list(dict.fromkeys(t for t in tokens if t not in vocab))
        return Vocab([*vocab.tokens, *new], fixed=vocab.fixed + len(new))

    def encode(self, tokens: Tokens, vocabs: dict[str, Vocab], config: Config,
               char_ids: np.ndarray) -> np.ndarray:
        """(total_tokens, slots) int64 ids of ``tokens``; ``vocabs`` holds every feature's
        vocabulary and ``char_ids`` (total_tokens,) the tokens' character ids."""
        raise NotImplementedError

    def embedding(self, model: ModelConfig, vocab: Vocab | None) -> EmbeddingSpec:
        """The embedding table the network needs for this feature."""
        raise NotImplementedError


class Characters(Feature):
    """The character itself. Config: ``model.embedding_dim``, ``data.min_char_freq``,
    ``data.normalize_width``, ``model.char_vectors``. Always on."""

    name = "chars"
    vectors_key = "char_vectors"
    has_vocab = True

    def enabled(self, model: ModelConfig) -> bool:
        return True

    def build_vocab(self, sentences: Sequence[Sequence[str]], config: Config) -> Vocab:
        counts: Counter[str] = Counter()
        for s in sentences:
            counts.update(s)
        if config.data.normalize_width:
            # normalising the counted types is the same as counting normalised tokens
            folded: Counter[str] = Counter()
            for token, n in counts.items():
                folded[normalize_width(token)] += n
            counts = folded
        return Vocab.build(counts, config.data.min_char_freq)

    def encode(self, tokens: Tokens, vocabs: dict[str, Vocab], config: Config,
               char_ids: np.ndarray) -> np.ndarray:
        vocab = vocabs[self.name]
        ids = _single_char_ids(tokens.flat, vocab, tokens.normalize)
        if ids is None:
            index = vocab.index
            ids = np.fromiter((index.get(t, UNK) for t in tokens.normalized), dtype=np.int64,
                              count=len(tokens.flat))
        return ids[:, None]

    def embedding(self, model: ModelConfig, vocab: Vocab | None) -> EmbeddingSpec:
        assert vocab is not None
        return EmbeddingSpec(len(vocab), model.embedding_dim, 1)


class Bigrams(Feature):
    """Character bigrams: ``c[i]c[i+1]`` (and with ``both`` also ``c[i-1]c[i]``, sharing one
    table), the sentence edges marked by :data:`BOS` / :data:`EOS`. Config:
    ``model.bigram_dim`` (0 = off), ``model.bigram_context``, ``data.min_bigram_freq``,
    ``model.bigram_vectors``."""

    name = "bigrams"
    vectors_key = "bigram_vectors"
    has_vocab = True
    model_options = BigramOptions
    data_options = BigramDataOptions

    def enabled(self, model: ModelConfig) -> bool:
        return model.bigram_dim > 0

    def build_vocab(self, sentences: Sequence[Sequence[str]], config: Config) -> Vocab:
        return Vocab.build(count_bigrams(sentences, config.data.normalize_width),
                           config.data.min_bigram_freq)

    def load(self, raw: Any, config: Config) -> Vocab:
        return vocab_from(raw, pairs=True)

    def encode(self, tokens: Tokens, vocabs: dict[str, Vocab], config: Config,
               char_ids: np.ndarray) -> np.ndarray:
        vocab = vocabs[self.name]
        context = config.model.bigram_context
        # The code table costs a pass over the whole bigram vocabulary once (a vectorised one
        # for a loaded PairVocab); for a few lines (a one-line predict) string keys are
        # otherwise cheaper than building it. Both give the same ids.
        if isinstance(vocab, PairVocab) or BigramTable.built(vocabs["chars"], vocab) \
                or len(char_ids) * 4 >= len(vocab):
            table = BigramTable.of(vocabs["chars"], vocab)
            if table is not None:
                return table.encode(char_ids, tokens.lengths, context)
        return encode_bigram_keys(tokens.normalized, tokens.lengths, vocab, context)

    def embedding(self, model: ModelConfig, vocab: Vocab | None) -> EmbeddingSpec:
        assert vocab is not None
        return EmbeddingSpec(len(vocab), model.bigram_dim,
                             2 if model.bigram_context == "both" else 1)


class Classes(Feature):
    """The character's class: digit, Latin letter, punctuation, CJK ideograph or other, so the
    model treats unseen numbers and Latin runs alike. Config: ``model.class_dim`` (0 = off)."""

    name = "classes"
    model_options = ClassOptions

    def enabled(self, model: ModelConfig) -> bool:
        return model.class_dim > 0

    def encode(self, tokens: Tokens, vocabs: dict[str, Vocab], config: Config,
               char_ids: np.ndarray) -> np.ndarray:
        chars = vocabs["chars"]
        # a per-vocabulary table indexed by character id, and char_class itself only for
        # unknown characters (whose class is the point)
        key = "classes"
        if key not in chars.derived:
            chars.derived[key] = np.array([0, 0, *map(char_class, chars.tokens[2:])],
                                          dtype=np.int64)
        out = chars.derived[key][char_ids]
        unknown = np.flatnonzero(char_ids == UNK)
        if len(unknown):
            out[unknown] = [char_class(t) for t in tokens.normalized_at(unknown.tolist())]
        return out[:, None]

    def embedding(self, model: ModelConfig, vocab: Vocab | None) -> EmbeddingSpec:
        return EmbeddingSpec(NUM_CLASSES, model.class_dim, 1)


@dataclass
class LexiconState:
    """What the lexicon feature keeps: the lexicon (matched at predict time too, so the
    checkpoint carries it) and, for ``lexicon_mode: vectors``, the embedding table's words:
    ``<pad>``, ``<unk>`` (a lexicon word not matched in training), ``NONE`` (an empty set),
    then the words that occur in the training text."""

    lexicon: lexicon_module.Lexicon
    table: Vocab | None
    derived: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.lexicon)

    def table_ids(self) -> np.ndarray:
        """(len(lexicon),) the table row of each lexicon word (``<unk>`` if it has none)."""
        if "ids" not in self.derived:
            assert self.table is not None
            index = self.table.index
            self.derived["ids"] = np.fromiter((index.get(w, UNK) for w in self.lexicon.words),
                                              dtype=np.int64, count=len(self.lexicon))
        return self.derived["ids"]


NONE = "\x00"  # the table row of an empty word set (no lexicon token holds a NUL)
# counts mode: a slot per role and word length (B/M/E x 2, 3, 4, 5+ tokens; S words have
# length 1, in the first of its slots) holding the number of such words, 0..COUNT_CAP; each
# role's slots are averaged
LENGTH_BUCKETS = (2, 3, 4, 5)
COUNT_CAP = 3
COUNT_SLOTS = lexicon_module.ROLES * len(LENGTH_BUCKETS)


class Lexicon(Feature):
    """The lexicon words each character is part of, as four sets (the words it Begins, is in
    the Middle of, Ends, is Single) (SoftLexicon, Ma et al. 2020); see
    :mod:`bmes_tagger.lexicon`. Config: ``model.lexicon``, ``lexicon_mode``, ``lexicon_dim``,
    ``lexicon_max_words``, ``lexicon_frequency``, ``word_vectors``.

    ``vectors``: each set is the frequency-weighted sum of its words' embeddings, weights
    ``4 z(w) / Z`` with ``Z`` the frequencies of all four sets of the character, an empty set
    is the NONE row. ``counts``: the number of words per set and length, each embedded.
    """

    name = "lexicon"
    vectors_key = "word_vectors"
    has_vocab = True
    model_options = LexiconOptions

    def enabled(self, model: ModelConfig) -> bool:
        return model.lexicon is not None

    def inputs(self, model: ModelConfig) -> list[str]:
        return [self.name, f"{self.name}_weights"] if model.lexicon_mode == "vectors" \
            else [self.name]

    def build_vocab(self, sentences: Sequence[Sequence[str]], config: Config) -> LexiconState:
        m, normalize = config.model, config.data.normalize_width
        assert m.lexicon is not None
        path = lexicon_module.jieba_dictionary() if m.lexicon == "jieba" else m.lexicon
        pairs = lexicon_module.read_lexicon(path)
        has_freq = any(f is not None for _, f in pairs)
        source = m.lexicon_frequency if m.lexicon_frequency != "auto" else \
            ("file" if has_freq else "train")
        if source == "file" and not has_freq:
            raise BmesTaggerError(f"{path}: model.lexicon_frequency: file, but the lexicon "
                                  "has no frequency column")
        lexicon = lexicon_module.Lexicon.of(pairs, normalize)
        tokens = [[normalize_width(t) for t in s] if normalize else list(s) for s in sentences]
        seen = lexicon_module.count(tokens, lexicon)
        if source == "train":
            lexicon.freqs = np.maximum(seen, 1)
        table = None
        if m.lexicon_mode == "vectors":
            matched = np.flatnonzero(seen)
            order = matched[np.lexsort((matched, -seen[matched]))]
            table = Vocab([PAD_TOKEN, UNK_TOKEN, NONE, *(lexicon.words[i] for i in order)])
        return LexiconState(lexicon, table)

    def save(self, state: LexiconState) -> dict[str, Any]:
        out: dict[str, Any] = {
            "words": "\n".join(state.lexicon.words),
            "freqs": "\n".join(map(str, state.lexicon.freqs.tolist())),
            "table": "\n".join(state.table.tokens) if state.table is not None else ""}
        if state.table is not None and state.table.fixed:
            out["fixed"] = state.table.fixed
        return out

    def load(self, raw: Any, config: Config) -> LexiconState:
        fixed = raw.get("fixed", 0) if isinstance(raw, dict) else 0
        strings = {k: v for k, v in raw.items() if k != "fixed"} if isinstance(raw, dict) \
            else {}
        if set(strings) != {"words", "freqs", "table"} or \
                not all(isinstance(v, str) for v in strings.values()):
            raise ValueError("must be a mapping of words, freqs and table strings (and fixed)")
        if type(fixed) is not int:
            raise ValueError("fixed must be an integer")
        words = raw["words"].split("\n") if raw["words"] else []
        texts = raw["freqs"].split("\n") if raw["freqs"] else []
        # read as a word list's column is, before NumPy: past int64 it raises OverflowError
        values = [lexicon_module.frequency(t) for t in texts]
        if not all(v is not None and v >= 1 for v in values):
            raise ValueError(f"freqs must be whole numbers from 1 to {lexicon_module.MAX_FREQ}")
        freqs = np.array(values, dtype=np.int64)
        if len(freqs) != len(words):
            raise ValueError("needs one frequency per word")
        if len(set(words)) != len(words) or not all(words):
            raise ValueError("words must be distinct and non-empty")
        table = None
        if config.model.lexicon_mode == "vectors":
            table = vocab_from({"tokens": raw["table"], "fixed": fixed} if fixed
                               else raw["table"])
            if table.tokens[2:3] != [NONE]:
                raise ValueError("the table must start with <pad>, <unk>, NONE")
        return LexiconState(lexicon_module.Lexicon(words, freqs), table)

    def encode(self, tokens: Tokens, vocabs: dict[str, Any], config: Config,
               char_ids: np.ndarray) -> dict[str, np.ndarray]:
        state: LexiconState = vocabs[self.name]
        total = len(tokens.flat)
        found = lexicon_module.memberships(tokens.normalized, tokens.lengths, state.lexicon)
        m = config.model
        if m.lexicon_mode == "counts":
            bucket = np.searchsorted(LENGTH_BUCKETS, np.minimum(found.length,
                                                                LENGTH_BUCKETS[-1]))
            slot = found.role * len(LENGTH_BUCKETS) + np.where(
                found.role == lexicon_module.S, 0, bucket)
            counts = np.zeros((total, COUNT_SLOTS), dtype=np.int64)
            np.add.at(counts, (found.token, slot), 1)
            ids = 1 + np.arange(COUNT_SLOTS) * (COUNT_CAP + 1) + np.minimum(counts, COUNT_CAP)
            return {self.name: ids}
        k = m.lexicon_max_words
        z = state.lexicon.freqs[found.word].astype(np.float64)
        # most frequent first within each (token, role) set; keep k
        order = np.lexsort((-z, found.role, found.token))
        token, role, word, z = found.token[order], found.role[order], found.word[order], z[order]
        group = token * lexicon_module.ROLES + role
        first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else group
        rank = np.arange(len(group)) - np.repeat(first, np.diff(np.r_[first, len(group)]))
        keep = rank < k
        ids = np.zeros((total, lexicon_module.ROLES, k), dtype=np.int64)
        weight = np.zeros((total, lexicon_module.ROLES, k), dtype=np.float64)
        ids[token[keep], role[keep], rank[keep]] = state.table_ids()[word[keep]]
        weight[token[keep], role[keep], rank[keep]] = z[keep]
        assert state.table is not None
        empty = ids[:, :, 0] == 0
        ids[:, :, 0][empty] = state.table.index[NONE]
        weight[:, :, 0][empty] = 1.0
        weight *= lexicon_module.ROLES / weight.sum((1, 2), keepdims=True)
        return {self.name: ids.reshape(total, -1),
                f"{self.name}_weights": weight.reshape(total, -1).astype(np.float32)}

    def embedding(self, model: ModelConfig, vocab: Any) -> EmbeddingSpec:
        if model.lexicon_mode == "counts":
            return EmbeddingSpec(1 + COUNT_SLOTS * (COUNT_CAP + 1), model.lexicon_dim,
                                 COUNT_SLOTS, groups=lexicon_module.ROLES)
        assert vocab is not None and vocab.table is not None
        return EmbeddingSpec(len(vocab.table), model.lexicon_dim,
                             lexicon_module.ROLES * model.lexicon_max_words,
                             groups=lexicon_module.ROLES, weighted=True)

    def vectors_vocab(self, state: LexiconState) -> Vocab:
        if state.table is None:
            raise BmesTaggerError("model.word_vectors needs lexicon_mode: vectors (counts "
                                  "mode has no word embeddings)")
        return state.table

    def fixed_rows(self, state: LexiconState) -> int:
        return state.table.fixed if state.table is not None else 0

    def extended(self, state: LexiconState, tokens: Sequence[str]) -> LexiconState:
        # only lexicon words can ever be matched, so only they get a row
        words = set(state.lexicon.words)
        table = super().extended(self.vectors_vocab(state), [t for t in tokens if t in words])
        return LexiconState(state.lexicon, table)


# Every input feature, in the order their embeddings are concatenated (characters first).
FEATURES: tuple[Feature, ...] = (Characters(), Bigrams(), Classes(), Lexicon())
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
# option classes in reverse feature order: as dataclass bases, their keys then come out in
# feature order after the core keys
MODEL_OPTIONS: tuple[type, ...] = tuple(f.model_options for f in reversed(FEATURES)
                                        if f.model_options is not None)
DATA_OPTIONS: tuple[type, ...] = tuple(f.data_options for f in reversed(FEATURES)
                                       if f.data_options is not None)


def active(model: ModelConfig) -> list[Feature]:
    """The features a model with this config reads, in input order."""
    return [f for f in FEATURES if f.enabled(model)]


def build_vocabs(sentences: Sequence[Sequence[str]], config: Config) -> dict[str, Any]:
    """The state (vocabulary) of every active feature that has one, from the training
    tokens (see :func:`extend_vocabs` for ``model.extend_vocab``)."""
    return {f.name: f.build_vocab(sentences, config) for f in active(config.model)
            if f.has_vocab}


def extend_vocabs(states: dict[str, Any], model: ModelConfig
                  ) -> tuple[dict[str, Any], dict[str, int]]:
    """``model.extend_vocab``: every token of a feature's pretrained vectors joins its
    embedding table.

    Returns:
        ``(states, {feature name: rows added})``.
    """
    paths = feature_vectors(model)
    if not paths:
        raise BmesTaggerError("model.extend_vocab: true needs pretrained vectors to take the "
                              "tokens from (char_vectors, bigram_vectors or word_vectors)")
    out, added = dict(states), {}
    for name, path in paths.items():
        feature = BY_NAME[name]
        before = len(feature.vectors_vocab(states[name]))
        out[name] = feature.extended(states[name], vector_tokens(path))
        added[name] = len(feature.vectors_vocab(out[name])) - before
    return out, added


def encode(sentences: Sequence[Sequence[str]], vocabs: dict[str, Vocab], config: Config
           ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Encode sentences (token lists, none empty) with every active feature.

    Returns:
        ``({name: (total_tokens, slots) int64 ids}, lengths (num_sentences,))``.
    """
    tokens = Tokens(sentences, config.data.normalize_width)
    first, *others = active(config.model)
    # (total_tokens, 1): the characters come first, the other features may build on them
    columns = {first.name: first.encode(tokens, vocabs, config, _NO_IDS)}
    char_ids = columns[first.name][:, 0]
    for feature in others:
        out = feature.encode(tokens, vocabs, config, char_ids)
        columns.update(out if isinstance(out, dict) else {feature.name: out})
    return columns, tokens.lengths


def input_names(model: ModelConfig) -> list[str]:
    """The network inputs of every active feature, in input order (besides ``lengths``)."""
    return [name for f in active(model) for name in f.inputs(model)]


def embedding_specs(model: ModelConfig, vocabs: dict[str, Vocab]) -> dict[str, EmbeddingSpec]:
    """``{name: spec}`` of every active feature, in input order."""
    specs = {}
    for f in active(model):
        spec = f.embedding(model, vocabs.get(f.name))
        fixed = f.fixed_rows(vocabs[f.name]) if f.has_vocab else 0
        specs[f.name] = dataclasses.replace(spec, fixed=fixed) if fixed else spec
    return specs


# --- character ids -------------------------------------------------------------------------------

_NO_IDS = np.zeros(0, dtype=np.int64)


def vocab_data(vocab: Vocab, where: str) -> str | dict[str, Any]:
    """A vocabulary as checkpoint data: its tokens ``"\n"``-joined, or with fixed rows
    (``model.extend_vocab``) ``{"tokens": joined, "fixed": count}``."""
    if any("\n" in t for t in vocab.tokens):
        raise ValueError(f"{where}: a token contains a newline")
    joined = "\n".join(vocab.tokens)
    return {"tokens": joined, "fixed": vocab.fixed} if vocab.fixed else joined


def vocab_from(raw: Any, pairs: bool = False) -> Vocab:
    """A vocabulary from checkpoint data: its tokens ``"\n"``-joined (format 2 on) or listed
    (format 1), or :func:`vocab_data`'s mapping with fixed rows. With ``pairs`` (bigram
    vocabularies) a joined vocabulary of one-character pairs is read as a :class:`PairVocab`.

    Raises:
        ValueError: not tokens, an empty or duplicate token, no ``<pad>``, ``<unk>`` first, or
            a count of fixed rows the tokens cannot hold.
    """
    fixed = 0
    if isinstance(raw, dict):
        if set(raw) != {"tokens", "fixed"} or not isinstance(raw["tokens"], str) or \
                type(raw["fixed"]) is not int or raw["fixed"] < 1:
            raise ValueError("must be tokens, or a mapping of tokens and fixed (a count >= 1)")
        raw, fixed = raw["tokens"], raw["fixed"]
    if pairs and isinstance(raw, str):
        vocab = PairVocab.parse(raw, fixed)
        if vocab is not None:
            return vocab
    if isinstance(raw, str):
        tokens = raw.split("\n") if raw else []
    elif isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        tokens = list(raw)
    else:
        raise ValueError("must be a list of strings")
    if tokens[:2] != [PAD_TOKEN, UNK_TOKEN]:
        raise ValueError(f"must start with {PAD_TOKEN}, {UNK_TOKEN}")
    if not all(tokens[2:]):
        raise ValueError("holds an empty token")
    if fixed > len(tokens) - 2:
        raise ValueError(f"says {fixed} fixed rows but holds {len(tokens) - 2} tokens")
    try:  # Vocab refuses duplicates on the index it builds anyway (cheaper than a set here)
        return Vocab(tokens, fixed=fixed)
    except ValueError as exc:
        if "duplicate" in str(exc):
            raise ValueError("holds duplicate tokens") from None
        raise


def _single_char_ids(flat: Sequence[str], vocab: Vocab, normalize: bool) -> np.ndarray | None:
    """(total_tokens,) ids when every token is one character (always so for text to predict
    on): looked up by code point with ``searchsorted`` in a sorted table of the vocabulary's
    characters, several times faster than a dict lookup per character. None when some token
    is longer, for the caller's general path."""
    joined = "".join(flat)
    if len(joined) != len(flat) or not flat:
        return None
    # (total_tokens,) code points; surrogatepass keeps lone surrogates (which the vocabulary
    # cannot hold) from raising
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32
                          ).astype(np.int64)
    known, known_ids = _code_point_table(vocab, normalize)
    pos = np.searchsorted(known, codes).clip(max=len(known) - 1)
    return np.where(known[pos] == codes, known_ids[pos], UNK)


def _code_point_table(vocab: Vocab, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """(sorted code points, their ids): the vocabulary's one-character tokens, and with
    ``normalize`` also every code point that :func:`normalize_width` maps onto one of them (a
    raw full-width code point then finds its half-width id without a normalising pass).
    Built once per vocabulary and kept in ``vocab.derived``."""
    key = ("code points", normalize)
    if key not in vocab.derived:
        vocab.derived[key] = _build_code_point_table(vocab, normalize)
    return vocab.derived[key]


def _build_code_point_table(vocab: Vocab, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    pairs = {ord(t): i for i, t in enumerate(vocab.tokens[2:], start=2) if len(t) == 1}
    if normalize:
        # normalised text never holds a folded form, so such a vocabulary entry is unreachable
        pairs = {cp: i for cp, i in pairs.items() if cp not in WIDTH_TABLE}
        pairs.update({src: pairs[dst] for src, dst in WIDTH_TABLE.items() if dst in pairs})
    table = np.array(sorted(pairs.items()) or [(-1, UNK)], dtype=np.int64)
    return np.ascontiguousarray(table[:, 0]), np.ascontiguousarray(table[:, 1])


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


# --- bigrams -------------------------------------------------------------------------------------


def bigram_keys(tokens: Sequence[str]) -> list[str]:
    """Keys of (t[i], t[i+1]) for every position; the last pairs with the end marker.

    The keys of (t[i-1], t[i]) are ``[bigram(BOS, t[0])] + bigram_keys(tokens)[:-1]``.
    """
    nxt = [*tokens[1:], EOS]
    return [f"{a}{SEP}{b}" for a, b in zip(tokens, nxt)]


def first_bigram(tokens: Sequence[str]) -> str:
    """Key of (BOS, t[0])."""
    return f"{BOS}{SEP}{tokens[0]}"


def count_bigrams(sentences: Sequence[Sequence[str]], normalize: bool) -> Counter[str]:
    """Counts of every bigram key (both directions' keys) in ``sentences``."""
    counts: Counter[str] = Counter()
    for tokens in sentences:
        if normalize:
            tokens = [normalize_width(t) for t in tokens]
        counts.update(bigram_keys(tokens))
        counts[first_bigram(tokens)] += 1
    return counts


def encode_bigram_keys(flat: Sequence[str], lengths: np.ndarray, vocab: Vocab, context: str
                       ) -> np.ndarray:
    """(total_tokens, 1 or 2) ids of each token's next (and previous) bigram, by string key."""
    nxt: list[str] = []
    firsts: list[str] = []
    start = 0
    for n in lengths.tolist():
        tokens = flat[start:start + n]
        nxt.extend(bigram_keys(tokens))
        firsts.append(first_bigram(tokens))
        start += n
    next_ids = np.array(vocab.encode(nxt), dtype=np.int64)
    if context == "next":
        return next_ids[:, None]
    # previous bigram of token i is the next bigram of token i-1, except at sentence starts
    prev_ids = np.roll(next_ids, 1)
    prev_ids[np.cumsum(lengths) - lengths] = vocab.encode(firsts)
    return np.stack([next_ids, prev_ids], axis=1)


class PairVocab(Vocab):
    """A bigram vocabulary read from a checkpoint whose tokens are all two single characters
    joined by :data:`SEP` (every vocabulary built from text to predict on): held as the two
    code-point columns, so that loading it and building its :class:`BigramTable` are a few
    NumPy calls, not a string and a dict entry per bigram. The token list and the index are
    built on first use only (training on it, the string-key path), and equal
    :class:`Vocab`'s of the same tokens.
    """

    def __init__(self, joined: str, firsts: np.ndarray, seconds: np.ndarray, fixed: int
                 ) -> None:
        # not Vocab.__init__: its token list and dict are what this class avoids building
        self._joined = joined
        self.firsts, self.seconds = firsts, seconds  # (num_tokens - 2,) code points
        self.fixed = fixed
        self.derived: dict[Any, Any] = {}
        self._tokens: list[str] | None = None
        self._index: dict[str, int] | None = None

    @classmethod
    def parse(cls, joined: str, fixed: int) -> PairVocab | None:
        """The vocabulary of ``"\n"``-joined tokens, or None unless it is ``<pad>``, ``<unk>``
        and then only distinct one-character pairs (:func:`vocab_from` reads the rest)."""
        head = f"{PAD_TOKEN}\n{UNK_TOKEN}\n"
        if not joined.startswith(head) or len(joined) == len(head):
            return None
        # (4 * num_pairs,) code points of "a SEP b \n" rows, the last newline added
        points = np.frombuffer((joined[len(head):] + "\n").encode("utf-32-le", "surrogatepass"),
                               dtype=np.uint32)
        if len(points) % 4:
            return None
        rows = points.reshape(-1, 4)  # (num_pairs, 4)
        firsts, seconds = rows[:, 0].astype(np.int64), rows[:, 2].astype(np.int64)
        special = (ord("\n"), ord(SEP))
        if not ((rows[:, 1] == ord(SEP)).all() and (rows[:, 3] == ord("\n")).all()) \
                or np.isin(firsts, special).any() or np.isin(seconds, special).any():
            return None  # another layout, or tokens a row of four cannot be cut into
        # a sort, not np.unique: several times faster here, and all a duplicate check needs
        ordered = np.sort(firsts << 21 | seconds)
        if fixed > len(rows) or (ordered[1:] == ordered[:-1]).any():
            return None  # vocab_from says what is wrong
        return cls(joined, firsts, seconds, fixed)

    @property
    def tokens(self) -> list[str]:  # type: ignore[override]
        if self._tokens is None:
            self._tokens = self._joined.split("\n")
        return self._tokens

    @property
    def index(self) -> dict[str, int]:  # type: ignore[override]
        if self._index is None:
            self._index = {t: i for i, t in enumerate(self.tokens)}
        return self._index

    def __len__(self) -> int:
        return len(self.firsts) + 2


class BigramTable:
    """Bigram ids looked up from character ids, without building bigram strings.

    A bigram ``(a, b)`` gets the code ``id(a) * width + id(b)``, with the sentence-boundary
    markers as two extra ids; the bigram vocabulary becomes a sorted code table that
    ``searchsorted`` reads for a whole corpus at once (several times faster than one string
    key and dict lookup per character). Exact only when every token of every bigram in the
    vocabulary is in the character vocabulary (so an unknown character can never be part of
    a known bigram): :meth:`of` returns None otherwise, and callers use the string keys.
    """

    def __init__(self, codes: np.ndarray, ids: np.ndarray, width: int) -> None:
        self.codes = codes  # (num_known,) sorted
        self.ids = ids      # (num_known,) bigram id of each code
        self.width = width
        self.bos, self.eos = width - 2, width - 1

    @staticmethod
    def built(vocab: Vocab, bigram_vocab: Vocab) -> bool:
        """Whether :meth:`of` has already built (or refused) the table of this pair."""
        return ("bigram table", id(vocab)) in bigram_vocab.derived

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
        if isinstance(bigram_vocab, PairVocab):
            return cls._build_pairs(vocab, bigram_vocab)
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
        codes_a = np.array(codes, dtype=np.int64)
        order = np.argsort(codes_a, kind="stable")
        return cls(codes_a[order], np.array(ids, dtype=np.int64)[order], width)

    @classmethod
    def _build_pairs(cls, vocab: Vocab, bigram_vocab: PairVocab) -> BigramTable | None:
        """:meth:`_build` for a :class:`PairVocab`, in NumPy: the same table, or None."""
        width = len(vocab) + 2
        known, known_ids = _code_point_table(vocab, False)  # as vocab.index finds tokens
        # (max code point + 2,) code point -> id, -1 for none: one gather per column instead
        # of a binary search per pair
        dense = np.full(max(int(known[-1]), ord(EOS)) + 2, -1, dtype=np.int64)
        dense[known[known >= 0]] = known_ids[known >= 0]
        dense[ord(BOS)], dense[ord(EOS)] = width - 2, width - 1  # before any character token

        def ids_of(points: np.ndarray) -> np.ndarray:  # (num_pairs,) code points -> ids
            return dense[np.minimum(points, len(dense) - 1)]

        first, second = ids_of(bigram_vocab.firsts), ids_of(bigram_vocab.seconds)
        if (first < 2).any() or (second < 2).any():
            return None  # a bigram with a token the character ids cannot name
        codes = first * width + second
        order = np.argsort(codes, kind="stable")
        return cls(codes[order], np.arange(2, len(bigram_vocab), dtype=np.int64)[order], width)

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """Bigram ids of ``codes`` (any shape); codes not in the table give ``<unk>``."""
        if len(self.codes) == 0:
            return np.full_like(codes, UNK)
        pos = np.searchsorted(self.codes, codes).clip(max=len(self.codes) - 1)
        return np.where(self.codes[pos] == codes, self.ids[pos], UNK)

    def encode(self, ids: np.ndarray, lengths: np.ndarray, context: str) -> np.ndarray:
        """(total_tokens, 1 or 2) next (and previous) bigram ids of a flat corpus, as
        :func:`encode_bigram_keys` computes them from strings.

        ids: (total_tokens,) character ids; lengths: (num_sentences,).
        """
        ids = np.asarray(ids, dtype=np.int64)
        starts = np.cumsum(lengths) - lengths
        ends = starts + lengths - 1
        following = np.roll(ids, -1)
        following[ends] = self.eos
        next_ids = self.lookup(ids * self.width + following)
        if context == "next":
            return next_ids[:, None]
        prev_ids = np.roll(next_ids, 1)
        prev_ids[starts] = self.lookup(self.bos * self.width + ids[starts])
        return np.stack([next_ids, prev_ids], axis=1)


# --- pretrained vectors --------------------------------------------------------------------------


def _vector_lines(path: str | Path) -> Iterator[tuple[int, str, list[str], bool]]:
    """``(line number, token, value fields, is the header)`` of each line of a word2vec text
    file that has a token: the one reading of the format that :func:`vector_tokens` and
    :func:`load_vectors` share, so both refuse the same files.

    Raises:
        BmesTaggerError: missing file, invalid UTF-8, or a token given a second time (which
            would count twice and leave which vector wins to the reader), naming file:line.
    """
    path = Path(path)
    if not path.is_file():
        raise BmesTaggerError(f"{path}: vector file not found")
    seen: dict[str, int] = {}
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                # decoded per line, so the error can say where (a whole-file decode cannot)
                raise BmesTaggerError(f"{path}:{number}: not valid UTF-8 (byte "
                                      f"0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                                      "vector files must be UTF-8") from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            fields = line.rstrip("\r\n").split(" ")
            if number == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
                yield number, "", fields, True  # the COUNT DIM header
                continue
            token = fields[0]
            if not token:
                continue
            if token in seen:
                raise BmesTaggerError(f"{path}:{number}: token {token!r} has a vector already "
                                      f"(line {seen[token]}); each token must appear once")
            seen[token] = number
            yield number, token, [v for v in fields[1:] if v], False


def vector_tokens(path: str | Path) -> list[str]:
    """The tokens of a word2vec text file, in file order (the values are read, and checked,
    by :func:`load_vectors`)."""
    return [token for _, token, _, header in _vector_lines(path) if not header]


def load_vectors(path: str | Path, vocab: Vocab, dim: int) -> tuple[np.ndarray, float]:
    """Read word2vec text vectors for the tokens of ``vocab``.

    The file has one ``TOKEN v1 ... vdim`` per line, optionally preceded by a ``COUNT DIM``
    header. Tokens absent from ``vocab`` are skipped.

    Returns:
        ``(vectors, coverage)``: (len(vocab), dim) float32 array with NaN rows for tokens that
        have no vector, and the fraction of vocabulary tokens (excluding <pad>, <unk>) covered.

    Raises:
        BmesTaggerError: missing file, bad dimension, non-numeric or non-finite values (NaN,
            inf, or beyond float32), a duplicate token or invalid UTF-8 (each naming the file
            and line).
    """
    out = np.full((len(vocab), dim), np.nan, dtype=np.float32)
    found = 0
    for number, token, values, header in _vector_lines(path):
        if header:
            if int(values[1]) != dim:
                raise BmesTaggerError(f"{path}:1: vectors have dimension {values[1]}, the "
                                      f"embedding has {dim}; set the matching *_dim")
            continue
        if len(values) != dim:
            raise BmesTaggerError(f"{path}:{number}: expected {dim} values after the token, "
                                  f"got {len(values)}")
        index = vocab.index.get(token)
        if index is None:
            continue
        try:
            with np.errstate(over="ignore"):  # beyond float32 is reported below
                row = np.array([float(v) for v in values], dtype=np.float32)
        except ValueError:
            raise BmesTaggerError(f"{path}:{number}: non-numeric vector value") from None
        if not np.isfinite(row).all():
            # NaN rows mean "no vector" here: a NaN in the file would silently drop the token
            bad = values[int(np.flatnonzero(~np.isfinite(row))[0])]
            raise BmesTaggerError(f"{path}:{number}: vector value {bad[:20]!r} is not a "
                                  "finite float32 number")
        out[index] = row
        found += 1
    return out, found / max(len(vocab) - 2, 1)


def feature_vectors(model: ModelConfig) -> dict[str, Any]:
    """``{feature name: vectors path}`` for every active feature with pretrained vectors."""
    out = {}
    for feature in active(model):
        path = getattr(model, feature.vectors_key) if feature.vectors_key else None
        if path is not None:
            out[feature.name] = path
    return out
