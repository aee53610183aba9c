"""Inference: the :class:`Tagger` API (load a checkpoint, tag, segment, find entities) and
streaming prediction over files with output in input order."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .batching import bucketed_batches, encode_for_model, iterate_chunks
from .checkpoint import load_checkpoint
from .config import Config, config_from_dict
from .errors import CheckpointError
from .model import BiLSTMTagger
from .tags import allowed_transitions, tags_to_spans
from .vocab import Vocab

OUTPUT_FORMATS = {"cws": ("segmented", "conll", "jsonl"), "ner": ("jsonl", "conll")}


@dataclass(frozen=True)
class Entity:
    """A named entity: ``text[start:end]`` is ``text`` (end exclusive, character offsets)."""

    type: str
    start: int
    end: int
    text: str


class Tagger:
    """A trained model ready to predict; built from a checkpoint.

    Example:
        >>> tagger = Tagger.load("runs/sample-cws/best.pt")  # doctest: +SKIP
        >>> tagger.segment(["我爱北京天安门"])  # doctest: +SKIP
        [['我', '爱', '北京', '天安门']]
    """

    def __init__(
        self, model: BiLSTMTagger, vocab: Vocab, tags: Sequence[str], config: Config,
        train_words: frozenset[str] = frozenset(), scores: dict[str, Any] | None = None,
        bigram_vocab: Vocab | None = None,
    ) -> None:
        self.model = model.eval()
        self.vocab = vocab
        self.bigram_vocab = bigram_vocab
        self.tags = list(tags)
        self.config = config
        self.train_words = train_words
        self.scores = scores or {}

    @property
    def task(self) -> str:
        """``"cws"`` or ``"ner"``."""
        return self.config.data.task

    @classmethod
    def load(cls, path: str | Path) -> Tagger:
        """Load a checkpoint written by ``tagger train`` (safe: no code is executed)."""
        return cls.from_payload(load_checkpoint(path), source=str(path))

    @classmethod
    def from_payload(cls, payload: dict[str, Any], source: str = "checkpoint") -> Tagger:
        """Rebuild the model from a loaded checkpoint dict alone."""
        try:
            config = config_from_dict(payload["config"], source=f"{source} (stored config)")
            vocab = Vocab(payload["chars"])
            bigrams = Vocab(payload["bigrams"]) if payload.get("bigrams") else None
            tags = list(payload["tags"])
            model = build_model(config, len(vocab), tags, len(bigrams) if bigrams else 0)
            model.load_state_dict(payload["model"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0][:200]
            raise CheckpointError(f"{source}: inconsistent checkpoint: {reason}") from None
        return cls(model, vocab, tags, config, frozenset(payload.get("train_words", ())),
                   payload.get("scores"), bigrams)

    # --- tagging ---------------------------------------------------------------------------

    def tag_tokens(
        self, sentences: Sequence[Sequence[str]], batch_size: int = 64
    ) -> list[list[str]]:
        """BMES tags for pre-split token lists (one tag per token; empty input -> empty list).

        Sentences longer than ``data.max_len`` are cut into chunks (preferably after
        punctuation), tagged separately and re-joined; nothing is dropped or truncated.
        """
        max_len = self.config.data.max_len
        pieces: list[Sequence[str]] = []
        owners: list[int] = []
        for i, tokens in enumerate(sentences):
            for a, b in iterate_chunks(tokens, max_len):
                if b > a:
                    pieces.append(tokens[a:b])
                    owners.append(i)
        results: list[list[str]] = [[] for _ in sentences]
        if not pieces:
            return results
        encoded = encode_for_model(pieces, self.config, self.vocab, self.bigram_vocab)
        piece_tags: list[list[str]] = [[] for _ in pieces]
        with torch.inference_mode():
            for indices in bucketed_batches(encoded.lengths, batch_size):
                batch = encoded.batch(indices)
                # (batch, seq_len)
                best = self.model.decode(batch.chars, batch.lengths, batch.mask, batch.bigrams,
                                         batch.classes).tolist()
                for row, idx, n in zip(best, indices, batch.lengths.tolist()):
                    piece_tags[idx] = [self.tags[t] for t in row[:n]]
        for owner, tags in zip(owners, piece_tags):
            results[owner].extend(tags)
        return results

    def tag(self, texts: Sequence[str], batch_size: int = 64) -> list[list[tuple[str, str]]]:
        """(character, tag) pairs for each text; whitespace characters are skipped."""
        tokens = [_non_space(t)[0] for t in texts]
        return [list(zip(tok, tags)) for tok, tags in zip(tokens, self.tag_tokens(tokens,
                                                                                  batch_size))]

    def segment(self, texts: Sequence[str], batch_size: int = 64) -> list[list[str]]:
        """Words of each text. Whitespace in the input is a word boundary and is dropped."""
        out = []
        prepared = [_non_space(t) for t in texts]
        all_tags = self.tag_tokens([tok for tok, _ in prepared], batch_size)
        for (tokens, positions), tags in zip(prepared, all_tags):
            words = []
            for _, a, b in _spans_any(tags):
                start = a
                for j in range(a + 1, b):
                    if positions[j] != positions[j - 1] + 1:
                        words.append("".join(tokens[start:j]))
                        start = j
                words.append("".join(tokens[start:b]))
            out.append(words)
        return out

    def entities(self, texts: Sequence[str], batch_size: int = 64) -> list[list[Entity]]:
        """Entities of each text with character offsets into the original text."""
        out = []
        prepared = [_non_space(t) for t in texts]
        all_tags = self.tag_tokens([tok for tok, _ in prepared], batch_size)
        for text, (_, positions), tags in zip(texts, prepared, all_tags):
            ents = []
            for label, a, b in tags_to_spans(tags):
                start, end = positions[a], positions[b - 1] + 1
                ents.append(Entity(label, start, end, text[start:end]))
            out.append(ents)
        return out


def build_model(
    config: Config, num_chars: int, tags: Sequence[str], num_bigrams: int = 0
) -> BiLSTMTagger:
    """The model a config describes, with BMES constraints for ``tags``."""
    return BiLSTMTagger(config.model, num_chars, len(tags), allowed_transitions(tags),
                        num_bigrams)


def predict_lines(
    tagger: Tagger, lines: Iterable[str], output_format: str | None = None,
    batch_size: int = 64, buffer_lines: int = 2000,
) -> Iterator[str]:
    """Tag a stream of raw lines and yield one output record per input line, in input order.

    Input is consumed ``buffer_lines`` at a time, so memory stays bounded for any file size.

    Args:
        tagger: the model.
        lines: raw text lines (line terminators are stripped).
        output_format: CWS ``segmented`` (words joined by two spaces, the SIGHAN format),
            ``conll`` or ``jsonl``; NER ``jsonl`` (``text`` and ``entities``) or ``conll``.
            Default: ``segmented`` for CWS, ``jsonl`` for NER.
        batch_size: sentences per forward pass.
        buffer_lines: lines read ahead, sorted by length and batched together.

    Yields:
        Output text for each input line, without the trailing newline (a ``conll`` record has
        several lines and ends with a blank one).
    """
    fmt = output_format or OUTPUT_FORMATS[tagger.task][0]
    if fmt not in OUTPUT_FORMATS[tagger.task]:
        raise ValueError(f"output format {fmt!r} is not available for {tagger.task}; "
                         f"choose {', '.join(OUTPUT_FORMATS[tagger.task])}")
    buffer: list[str] = []
    for line in lines:
        buffer.append(line.rstrip("\r\n"))
        if len(buffer) >= buffer_lines:
            yield from _format_block(tagger, buffer, fmt, batch_size)
            buffer = []
    if buffer:
        yield from _format_block(tagger, buffer, fmt, batch_size)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n; ValueError otherwise."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ValueError(f"--shard: expected I/N such as 0/4, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard: need 0 <= I < N, got {text!r}")
    return i, n


def shard_range(total_lines: int, index: int, count: int) -> tuple[int, int]:
    """Line range ``[start, end)`` of shard ``index`` of ``count``: contiguous blocks, so the
    shards' outputs concatenated in order equal the unsharded output."""
    return total_lines * index // count, total_lines * (index + 1) // count


def count_lines(path: str | Path) -> int:
    """Number of lines of a file (a last line without newline counts)."""
    n = 0
    last = b"\n"
    with Path(path).open("rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def _format_block(tagger: Tagger, texts: list[str], fmt: str, batch_size: int) -> Iterator[str]:
    if fmt == "conll":
        for pairs in tagger.tag(texts, batch_size):
            yield "".join(f"{c} {t}\n" for c, t in pairs)
    elif tagger.task == "cws" and fmt == "segmented":
        for words in tagger.segment(texts, batch_size):
            yield "  ".join(words)
    elif tagger.task == "cws":
        for text, words in zip(texts, tagger.segment(texts, batch_size)):
            yield json.dumps({"text": text, "words": words}, ensure_ascii=False)
    else:
        for text, ents in zip(texts, tagger.entities(texts, batch_size)):
            yield json.dumps({"text": text, "entities": [asdict(e) for e in ents]},
                             ensure_ascii=False)


def _non_space(text: str) -> tuple[list[str], list[int]]:
    positions = [i for i, c in enumerate(text) if not c.isspace()]
    return [text[i] for i in positions], positions


def _spans_any(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Word spans covering every character (an ``O`` or fragment is its own word)."""
    spans = []
    covered = 0
    for label, a, b in tags_to_spans(tags):
        spans.extend(("", i, i + 1) for i in range(covered, a))
        spans.append((label, a, b))
        covered = b
    spans.extend(("", i, i + 1) for i in range(covered, len(tags)))
    return spans
