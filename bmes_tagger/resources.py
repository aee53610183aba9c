"""Resources built from raw text for the input features: a lexicon (``tagger lexicon``: raw
text segmented by a trained word-segmentation model, words counted, which is how the lexicons
of the published lexicon-based systems were made) and pretrained vectors (``tagger vectors``:
character, bigram and word vectors by gensim's word2vec, written in the word2vec text format
that ``model.char_vectors``, ``model.bigram_vectors`` and ``model.word_vectors`` read)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .atomic import atomic_write
from .corpus import iter_lines
from .errors import BmesTaggerError, import_failure
from .features import bigram_keys, first_bigram
from .predict import Tagger
from .text import split_graphemes
from .vocab import normalize_width

BLOCK = 2000  # lines segmented per call


def raw_lines(paths: Sequence[str | Path]) -> Iterator[str]:
    """The non-empty lines of raw UTF-8 text files, one after the other."""
    for path in paths:
        for _, text in iter_lines(path):
            if text.strip():
                yield text


def _blocks(lines: Iterable[str], size: int = BLOCK) -> Iterator[list[str]]:
    block: list[str] = []
    for line in lines:
        block.append(line)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def segmented(lines: Iterable[str], segmenter: Tagger | str) -> Iterator[list[str]]:
    """The words of each line, by a word-segmentation model or by ``"jieba"``."""
    if isinstance(segmenter, str):
        if segmenter != "jieba":
            raise ValueError(f"unknown segmenter {segmenter!r}")
        try:
            import jieba
        except ImportError as exc:
            raise import_failure(exc, "segmenting with jieba needs the jieba package: pip "
                                 "install 'bmes_tagger[jieba]'") from None
        jieba.setLogLevel(60)  # its start-up notices
        for line in lines:
            yield [w for w in jieba.lcut(line) if w.strip()]
        return
    if segmenter.task != "cws":
        raise BmesTaggerError("a lexicon or word vectors need a word segmentation model; this "
                              f"one is {segmenter.task}")
    for block in _blocks(lines):
        yield from segmenter.segment(block)


def count_words(lines: Iterable[str], segmenter: Tagger | str,
                progress: bool = False) -> Counter[str]:
    """How often each word occurs in the segmented ``lines`` (``progress``: a tqdm bar on
    stderr)."""
    counts: Counter[str] = Counter()
    for words in tqdm(segmented(lines, segmenter), desc="segmenting", unit=" lines",
                      disable=not progress, leave=False):
        counts.update(words)
    return counts


def _epoch_bar(total: int, desc: str, progress: bool) -> tuple[tqdm, list[Any]]:
    """A tqdm bar advanced by gensim at the end of each word2vec epoch."""
    from gensim.models.callbacks import CallbackAny2Vec

    bar = tqdm(total=total, desc=desc, unit=" epochs", disable=not progress, leave=False)

    class Tick(CallbackAny2Vec):  # type: ignore[misc]
        def on_epoch_end(self, model: Any) -> None:
            bar.update()

    return bar, [Tick()]


def write_lexicon(counts: Counter[str], path: str | Path, min_count: int = 1,
                  force: bool = False) -> int:
    """Write ``word count`` lines, most frequent first (jieba's dict.txt layout, which
    ``model.lexicon`` reads); returns the number of words written."""
    kept = sorted(((w, n) for w, n in counts.items() if n >= min_count and w.strip()),
                  key=lambda wn: (-wn[1], wn[0]))
    with atomic_write(path, force=force) as f:
        for word, n in kept:
            f.write(f"{word} {n}\n")
    return len(kept)


@dataclass(frozen=True)
class VectorSettings:
    """Sizes and word2vec settings: dims must equal the config's embedding sizes
    (``embedding_dim``, ``bigram_dim``, ``lexicon_dim``) for the vectors to load."""

    char_dim: int = 100
    bigram_dim: int = 50
    word_dim: int = 50
    window: int = 5
    min_count: int = 2
    epochs: int = 5
    threads: int = 1
    normalize: bool = True  # as data.normalize_width: vectors are looked up normalised


_SINGULAR = {"chars": "character", "bigrams": "bigram", "words": "word"}


def train_vectors(lines: Sequence[str], out_dir: str | Path, settings: VectorSettings,
                  segmenter: Tagger | str | None = None, force: bool = False,
                  progress: bool = False, source: str = "the raw text") -> dict[str, Path]:
    """Train and write ``chars.vec``, ``bigrams.vec`` and (with a ``segmenter``) ``words.vec``
    in ``out_dir`` (``progress``: tqdm bars on stderr; ``source`` names the text in errors).
    Tokens are spelled as the
    vocabularies spell them (normalised characters; bigram keys as
    :func:`bmes_tagger.features.bigram_keys`, sentence edges included), so every vector can
    be found.

    Returns:
        ``{"chars" | "bigrams" | "words": path}`` of the files written.

    Raises:
        BmesTaggerError: a kind of token with none that occurs ``min_count`` times (before
            anything is written).
    """
    try:
        from gensim.models import Word2Vec
    except ImportError as exc:
        raise import_failure(exc, "tagger vectors needs gensim: pip install "
                             "'bmes_tagger[vectors]'") from None
    out = Path(out_dir)
    chars = [[normalize_width(c) if settings.normalize else c for c in split_graphemes(line)[0]]
             for line in lines]
    chars = [c for c in chars if c]
    corpora: dict[str, tuple[list[list[str]], int]] = {
        "chars": (chars, settings.char_dim),
        "bigrams": ([[first_bigram(c), *bigram_keys(c)] for c in chars], settings.bigram_dim),
    }
    if segmenter is not None:
        words = [[normalize_width(w) if settings.normalize else w for w in ws]
                 for ws in tqdm(segmented(lines, segmenter), desc="segmenting",
                                total=len(lines), unit=" lines", disable=not progress,
                                leave=False)]
        corpora["words"] = ([w for w in words if w], settings.word_dim)
    for name, (sentences, _) in corpora.items():
        # gensim's own complaint is a traceback ("you must first build vocabulary")
        if not any(n >= settings.min_count for n in Counter(t for s in sentences for t in s)
                   .values()):
            raise BmesTaggerError(f"{source}: no {_SINGULAR[name]} occurs {settings.min_count} "
                                  "times or more (--min-count): nothing to train vectors on")
    written = {}
    for name, (sentences, dim) in corpora.items():
        bar, callbacks = _epoch_bar(settings.epochs, f"word2vec {name}", progress)
        with bar:
            model: Any = Word2Vec(sentences=sentences, vector_size=dim, window=settings.window,
                                  min_count=settings.min_count, workers=settings.threads,
                                  epochs=settings.epochs, sg=1, seed=1, callbacks=callbacks)
        path = out / f"{name}.vec"
        with atomic_write(path, force=force) as f:
            f.write(f"{len(model.wv.index_to_key)} {dim}\n")
            for token in model.wv.index_to_key:
                f.write(token + " " + " ".join(f"{x:.6g}" for x in model.wv[token]) + "\n")
        written[name] = path
    return written
