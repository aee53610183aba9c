"""Inference: the :class:`Tagger` API (load a checkpoint, tag, segment, find entities) and
streaming prediction over files with output in input order."""

from __future__ import annotations

import contextlib
import gc
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .batching import Batch, bucketed_batches, encode_for_model, iterate_chunks
from .checkpoint import load_checkpoint
from .config import Config, config_from_dict
from .errors import CheckpointError
from .model import BiLSTMTagger, Decoder, constraint_tables, migrate_state_dict
from .tags import allowed_transitions, tags_to_spans
from .vocab import Vocab

if TYPE_CHECKING:
    from .export import ExportedModel

OUTPUT_FORMATS = {"cws": ("segmented", "conll", "jsonl"), "ner": ("jsonl", "conll"),
                  "pos": ("pos", "conll")}


@dataclass(frozen=True)
class Entity:
    """A named entity: ``text[start:end]`` is ``text`` (end exclusive, character offsets)."""

    type: str
    start: int
    end: int
    text: str


class Tagger:
    """A trained model ready to predict; built from a checkpoint.

    Example (``cws_model`` / ``ner_model``: paths of checkpoints written by ``tagger train``):
        >>> tagger = Tagger.load(cws_model)
        >>> tagger.task
        'cws'
        >>> words = tagger.segment(["我们在北京工作。", ""])
        >>> "".join(words[0]), words[1]
        ('我们在北京工作。', [])
        >>> [tag for _, tag in tagger.tag(["好"])[0]]  # one character: a one-character word
        ['S']
        >>> ner = Tagger.load(ner_model)
        >>> text = "张伟在北京大学工作。"
        >>> all(text[e.start:e.end] == e.text for e in ner.entities([text])[0])
        True
    """

    def __init__(
        self, model: Decoder, vocab: Vocab, tags: Sequence[str], config: Config,
        train_words: frozenset[str] = frozenset(), scores: dict[str, Any] | None = None,
        bigram_vocab: Vocab | None = None, bf16: bool = False,
    ) -> None:
        self.model = model.eval()
        # bfloat16 autocast for the network (decoding stays float32): about 1.5x faster predict
        # on CPUs with bf16 instructions, F1 unchanged on the PKU test (benchmarks/RESULTS.md)
        self.bf16 = bf16
        self.vocab = vocab
        self.bigram_vocab = bigram_vocab
        self.tags = list(tags)
        # (num_tags, 2) bool: does the tag start a word (B, S), end one (E, S); for segment
        self._word_edges = torch.tensor([[t in _STARTS, t in _ENDS] for t in self.tags],
                                        dtype=torch.bool)
        self.config = config
        self.train_words = train_words
        self.scores = scores or {}

    @property
    def task(self) -> str:
        """``"cws"``, ``"ner"`` or ``"pos"`` (joint segmentation + POS)."""
        return self.config.data.task

    @classmethod
    def load(cls, path: str | Path, bf16: bool = False) -> Tagger:
        """Load a checkpoint written by ``tagger train`` (safe: no code is executed), or a
        model exported by ``tagger export`` (ONNX, run by onnxruntime; or TorchScript).

        ``bf16`` runs the network under bfloat16 autocast when predicting (faster on CPUs with
        bf16 instructions; decoding stays in float32). It has no effect on exported models.
        """
        from .export import exported_kind

        if exported_kind(path) is not None:
            return cls.from_exported(path)
        tagger = cls.from_payload(load_checkpoint(path), source=str(path))
        tagger.bf16 = bf16
        return tagger

    @classmethod
    def from_exported(cls, path: str | Path) -> Tagger:
        """A tagger whose network is an exported ONNX or TorchScript file; decoding, user
        dictionaries, n-best and confidences work as with the checkpoint it came from."""
        from .export import load_exported

        meta, network = load_exported(path)
        return cls.from_payload(meta, source=str(path), network=network)

    @classmethod
    def from_payload(cls, payload: dict[str, Any], source: str = "checkpoint",
                     network: ExportedModel | None = None) -> Tagger:
        """Rebuild the model from a loaded checkpoint dict alone, or, given an exported
        ``network``, from its metadata (same keys, no weights) around that network."""
        try:
            config = config_from_dict(payload["config"], source=f"{source} (stored config)")
            vocab = Vocab(payload["chars"])
            bigrams = Vocab(payload["bigrams"]) if payload.get("bigrams") else None
            tags = list(payload["tags"])
            if network is not None:
                model: Decoder = network
                if config.model.constrained:
                    network.allowed = constraint_tables(allowed_transitions(tags))
            else:
                model = build_model(config, len(vocab), tags, len(bigrams) if bigrams else 0)
                model.load_state_dict(migrate_state_dict(payload["model"]))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            lines = [x.strip() for x in str(exc).strip().splitlines() if x.strip()]
            # torch's load_state_dict error puts the useful part on its second line
            detail = next((x for x in lines if x.startswith(("size mismatch", "Missing key",
                                                             "Unexpected key"))), None)
            reason = (f"the weights do not fit the model its config and vocabularies describe "
                      f"({detail[:160]})" if detail else (lines[0][:200] if lines else
                                                            type(exc).__name__))
            raise CheckpointError(f"{source}: inconsistent checkpoint: {reason}") from None
        return cls(model, vocab, tags, config, frozenset(payload.get("train_words") or ()),
                   payload.get("scores"), bigrams)

    # --- tagging ---------------------------------------------------------------------------

    def tag_tokens(
        self, sentences: Sequence[Sequence[str]], batch_size: int = 64,
        forced_words: Sequence[Sequence[tuple[int, int]]] | None = None,
    ) -> list[list[str]]:
        """BMES tags for pre-split token lists (one tag per token; empty input -> empty list).

        Sentences longer than ``data.max_len`` are cut into chunks (preferably after
        punctuation), tagged separately and re-joined; nothing is dropped or truncated.

        Args:
            sentences: token lists.
            batch_size: pieces per forward pass.
            forced_words: CWS only: per sentence, ``(start, end)`` token spans (end exclusive,
                non-overlapping) that must come out as single words; decoding is constrained
                to them (a user dictionary). Spans crossing a chunk boundary are not forced.
        """
        with _gc_paused():
            return self._tag_tokens(sentences, batch_size, forced_words)

    def _tag_tokens(
        self, sentences: Sequence[Sequence[str]], batch_size: int,
        forced_words: Sequence[Sequence[tuple[int, int]]] | None,
    ) -> list[list[str]]:
        owners, batches = self._decode_pieces(sentences, batch_size, forced_words)
        piece_tags: list[list[str]] = [[] for _ in owners]
        for indices, best, lengths in batches:
            for row, idx, n in zip(best.tolist(), indices, lengths):
                piece_tags[idx] = [self.tags[t] for t in row[:n]]
        results: list[list[str]] = [[] for _ in sentences]
        for (owner, _), tags in zip(owners, piece_tags):
            results[owner].extend(tags)
        return results

    def _decode_pieces(
        self, sentences: Sequence[Sequence[str]], batch_size: int,
        forced_words: Sequence[Sequence[tuple[int, int]]] | None,
    ) -> tuple[list[tuple[int, int]], Iterator[tuple[list[int], torch.Tensor, list[int]]]]:
        """Cut the sentences into chunks of at most ``data.max_len`` tokens and decode them in
        length-bucketed batches. Returns ``(sentence, first token)`` of every chunk, in input
        order, and an iterator over batches of ``(chunk indices, best tag ids (batch,
        seq_len), lengths)``."""
        max_len = self.config.data.max_len
        pieces: list[Sequence[str]] = []
        owners: list[tuple[int, int]] = []
        piece_forced: list[list[tuple[int, int]]] = []
        for i, tokens in enumerate(sentences):
            for a, b in iterate_chunks(tokens, max_len):
                if b > a:
                    pieces.append(tokens[a:b])
                    owners.append((i, a))
                    spans = forced_words[i] if forced_words is not None else ()
                    piece_forced.append([(x - a, y - a) for x, y in spans if a <= x and y <= b])

        def batches() -> Iterator[tuple[list[int], torch.Tensor, list[int]]]:
            if not pieces:
                return
            encoded = encode_for_model(pieces, self.config, self.vocab, self.bigram_vocab)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                        enabled=self.bf16):
                for indices in bucketed_batches(encoded.lengths, batch_size):
                    batch = encoded.batch(indices)
                    tag_mask = None
                    if forced_words is not None:
                        tag_mask = self._forced_mask([piece_forced[i] for i in indices],
                                                     batch.chars.shape[1])
                    # (batch, seq_len)
                    best = self.model.decode(batch.chars, batch.lengths, batch.mask,
                                             batch.bigrams, batch.classes, tag_mask)
                    yield list(indices), best, batch.lengths.tolist()

        return owners, batches()

    def _word_starts(self, sentences: Sequence[Sequence[str]], batch_size: int,
                     forced_words: Sequence[Sequence[tuple[int, int]]] | None
                     ) -> list[list[int]]:
        """CWS: the token index where each word of each sentence starts (0 first), read off
        the tag ids with tensor operations per batch: a word starts at B or S, or after E or
        S (the lenient reading of ``tags_to_spans``; the same words as :func:`_words` on the
        tag strings, without a Python step per character)."""
        owners, batches = self._decode_pieces(sentences, batch_size, forced_words)
        # per chunk: word starts inside it (chunk positions), does its last tag end a word
        piece_starts: list[list[int]] = [[] for _ in owners]
        piece_ends: list[bool] = [True] * len(owners)
        piece_opens: list[bool] = [True] * len(owners)  # does its first tag start a word
        for indices, best, lengths in batches:
            # (batch, seq_len, 2)
            edges = self._word_edges[best]
            # (batch, seq_len): a word starts at t if tag t starts one or tag t-1 ends one
            cut = edges[:, :, 0].clone()
            cut[:, 1:] |= edges[:, :-1, 1]
            cut[:, 0] = True  # chunk joins are settled below
            n = torch.tensor(lengths)
            cut &= torch.arange(cut.shape[1]).unsqueeze(0) < n.unsqueeze(1)
            columns = cut.nonzero()[:, 1].tolist()
            counts = cut.sum(1).tolist()
            ends = edges[torch.arange(len(lengths)), n - 1, 1].tolist()
            opens = edges[:, 0, 0].tolist()
            offset = 0
            for idx, count, end, opens_word in zip(indices, counts, ends, opens):
                piece_starts[idx] = columns[offset:offset + count]
                piece_ends[idx] = end
                piece_opens[idx] = opens_word
                offset += count
        results: list[list[int]] = [[] for _ in sentences]
        for k, ((owner, a), starts) in enumerate(zip(owners, piece_starts)):
            if a and not (piece_opens[k] or piece_ends[k - 1]):
                # a later chunk continues the previous chunk's last word (as the tag strings
                # joined and read whole would)
                starts = starts[1:]
            results[owner].extend([c + a for c in starts] if a else starts)
        return results
    def _forced_mask(self, spans: Sequence[Sequence[tuple[int, int]]], seq_len: int
                     ) -> torch.Tensor:
        """(batch, seq_len, num_tags) allowed tags: inside a forced word only its own B/M/E/S."""
        if self.task != "cws":
            raise ValueError("a user dictionary applies to word segmentation models only")
        ids = {t: i for i, t in enumerate(self.tags)}
        mask = torch.ones(len(spans), seq_len, len(self.tags), dtype=torch.bool)
        for row, row_spans in enumerate(spans):
            for a, b in row_spans:
                mask[row, a:b] = False
                if b - a == 1:
                    mask[row, a, ids["S"]] = True
                    continue
                mask[row, a, ids["B"]] = True
                mask[row, a + 1:b - 1, ids["M"]] = True
                mask[row, b - 1, ids["E"]] = True
        return mask

    def nbest(
        self, texts: Sequence[str], k: int = 5
    ) -> list[list[tuple[list[tuple[str, str]], float]]]:
        """The ``k`` best taggings of each text with their probabilities (CRF head only).

        Whitespace is skipped as in :meth:`tag`. Each text is decoded whole (not cut at
        ``data.max_len``), so very long lines cost more memory here.

        Returns:
            Per text, up to ``k`` ``(pairs, probability)`` with ``pairs`` the (character, tag)
            list, most probable first.
        """
        crf = self.model.crf
        if crf is None:
            raise ValueError("n-best decoding needs a model trained with model.head: crf")
        out: list[list[tuple[list[tuple[str, str]], float]]] = []
        with torch.inference_mode():
            for text in texts:
                tokens = _non_space(text)[0]
                if not tokens:
                    out.append([([], 1.0)])
                    continue
                batch = self._one(tokens)
                scores = self.model.decoding_scores(batch.chars, batch.lengths, batch.bigrams,
                                                    batch.classes)
                log_z = float(crf.log_partition(scores, batch.mask)[0])
                paths = crf.nbest(scores, batch.mask, k, allowed=self.model.allowed)[0]
                out.append([(list(zip(tokens, (self.tags[t] for t in path))),
                             math.exp(score - log_z)) for path, score in paths])
        return out

    def confidence(self, texts: Sequence[str]) -> list[list[tuple[str, str, float]]]:
        """(character, best tag, posterior probability of that tag) for each text.

        CRF head: marginals from forward-backward; softmax head: the softmax probability.
        """
        out: list[list[tuple[str, str, float]]] = []
        index = {t: i for i, t in enumerate(self.tags)}
        with torch.inference_mode():
            for text, pairs in zip(texts, self.tag(texts)):
                tokens = _non_space(text)[0]
                if not tokens:
                    out.append([])
                    continue
                batch = self._one(tokens)
                emissions = self.model.emissions(batch.chars, batch.lengths, batch.bigrams,
                                                 batch.classes)
                if self.model.crf is not None:
                    probs = self.model.crf.marginals(emissions, batch.mask)[0]
                else:
                    probs = torch.softmax(emissions, dim=-1)[0]
                out.append([(c, t, float(probs[j, index[t]]))
                            for j, (c, t) in enumerate(pairs)])
        return out

    def _one(self, tokens: Sequence[str]) -> Batch:
        """A batch of one whole (not chunked) sentence."""
        return encode_for_model([tokens], self.config, self.vocab, self.bigram_vocab).batch([0])

    def tag(self, texts: Sequence[str], batch_size: int = 64) -> list[list[tuple[str, str]]]:
        """(character, tag) pairs for each text; whitespace characters are skipped."""
        tokens = [_non_space(t)[0] for t in texts]
        return [list(zip(tok, tags)) for tok, tags in zip(tokens, self.tag_tokens(tokens,
                                                                                  batch_size))]

    def segment(
        self, texts: Sequence[str], batch_size: int = 64, user_dict: UserDict | None = None
    ) -> list[list[str]]:
        """Words of each text. Whitespace in the input is a word boundary and is dropped.

        With a ``user_dict``, its words found in a text (longest match first, left to right)
        are kept whole; the rest of the segmentation is decoded around them.
        """
        if self.task != "cws":
            return [[w for w, _ in words]
                    for words in self.pos_tag(texts, batch_size, user_dict)]
        with _gc_paused():
            prepared = [_non_space(t) for t in texts]
            forced = None
            if user_dict is not None:
                forced = [user_dict.matches(tok) for tok, _ in prepared]
            starts = self._word_starts([tok for tok, _ in prepared], batch_size, forced)
            return [_cut_words(text, positions, cuts)
                    for text, (_, positions), cuts in zip(texts, prepared, starts)]

    def pos_tag(self, texts: Sequence[str], batch_size: int = 64,
                user_dict: UserDict | None = None) -> list[list[tuple[str, str]]]:
        """``(word, label)`` pairs of each text: the POS for a joint segmentation + POS model,
        ``""`` for CWS. Whitespace in the input is a word boundary and is dropped."""
        prepared, all_tags = self._tag_texts(texts, batch_size, user_dict)
        return [_words(tokens, positions, tags)
                for (tokens, positions), tags in zip(prepared, all_tags)]

    def entities(self, texts: Sequence[str], batch_size: int = 64) -> list[list[Entity]]:
        """Entities of each text with character offsets into the original text."""
        prepared, all_tags = self._tag_texts(texts, batch_size)
        return [_entities(text, positions, tags)
                for text, (_, positions), tags in zip(texts, prepared, all_tags)]

    def _tag_texts(self, texts: Sequence[str], batch_size: int,
                   user_dict: UserDict | None = None,
                   ) -> tuple[list[tuple[list[str], Sequence[int]]], list[list[str]]]:
        """((non-space tokens, their offsets) per text, tags per text)."""
        prepared = [_non_space(t) for t in texts]
        forced = None
        if user_dict is not None:
            forced = [user_dict.matches(tok) for tok, _ in prepared]
        return prepared, self.tag_tokens([tok for tok, _ in prepared], batch_size, forced)


class UserDict:
    """Words that segmentation must keep whole (like jieba's and pkuseg's user dictionaries).

    Args:
        words: the words; whitespace-free, at least one character.
    """

    def __init__(self, words: Iterable[str]) -> None:
        self.words = {w for w in words if w}
        self.max_len = max((len(w) for w in self.words), default=0)

    @classmethod
    def load(cls, path: str | Path) -> UserDict:
        """One word per line (further fields, e.g. jieba's frequency and POS, are ignored)."""
        from .corpus import read_dictionary

        return cls(read_dictionary(path))

    def matches(self, tokens: Sequence[str]) -> list[tuple[int, int]]:
        """Non-overlapping ``(start, end)`` spans of dictionary words, longest match first."""
        spans = []
        i, n = 0, len(tokens)
        while i < n:
            for j in range(min(n, i + self.max_len), i, -1):
                if j - i > 1 and "".join(tokens[i:j]) in self.words:
                    spans.append((i, j))
                    i = j
                    break
            else:
                i += 1
        return spans


def build_model(
    config: Config, num_chars: int, tags: Sequence[str], num_bigrams: int = 0
) -> BiLSTMTagger:
    """The model a config describes, with BMES constraints for ``tags``."""
    return BiLSTMTagger(config.model, num_chars, len(tags), allowed_transitions(tags),
                        num_bigrams)


def predict_lines(
    tagger: Tagger, lines: Iterable[str], output_format: str | None = None,
    batch_size: int = 64, buffer_lines: int = 2000, user_dict: UserDict | None = None,
    nbest: int = 0,
) -> Iterator[str]:
    """Tag a stream of raw lines and yield one output record per input line, in input order.

    Input is consumed ``buffer_lines`` at a time, so memory stays bounded for any file size.

    Args:
        tagger: the model.
        lines: raw text lines (line terminators are stripped).
        output_format: CWS ``segmented`` (words joined by two spaces, the SIGHAN format),
            ``conll`` or ``jsonl``; NER ``jsonl`` (``text`` and ``entities``) or ``conll``;
            joint segmentation + POS ``pos`` (``word/POS`` joined by two spaces) or ``conll``.
            Default: the first of these for the task.
        batch_size: sentences per forward pass.
        buffer_lines: lines read ahead, sorted by length and batched together.
        user_dict: CWS: words to keep whole (segmented and jsonl output).
        nbest: if > 0, JSON lines with the ``nbest`` best analyses and their probabilities
            (CRF models; overrides ``output_format``).

    Yields:
        Output text for each input line, without the trailing newline (a ``conll`` record has
        several lines and ends with a blank one).
    """
    fmt = output_format or OUTPUT_FORMATS[tagger.task][0]
    if nbest > 0 and tagger.model.crf is None:
        raise ValueError("--nbest needs a model trained with model.head: crf")
    if user_dict is not None and (tagger.task != "cws" or fmt == "conll"):
        raise ValueError("--dict works with word-segmentation models and segmented or jsonl "
                         "output")
    if fmt not in OUTPUT_FORMATS[tagger.task]:
        raise ValueError(f"output format {fmt!r} is not available for {tagger.task}; "
                         f"choose {', '.join(OUTPUT_FORMATS[tagger.task])}")
    # validated above, before the first line is read; the stream itself is lazy
    return _stream(tagger, lines, fmt, batch_size, buffer_lines, user_dict, nbest)


def _stream(
    tagger: Tagger, lines: Iterable[str], fmt: str, batch_size: int, buffer_lines: int,
    user_dict: UserDict | None, nbest: int,
) -> Iterator[str]:
    buffer: list[str] = []
    for line in lines:
        buffer.append(line.rstrip("\r\n"))
        if len(buffer) >= buffer_lines:
            yield from _format_block(tagger, buffer, fmt, batch_size, user_dict, nbest)
            buffer = []
    if buffer:
        yield from _format_block(tagger, buffer, fmt, batch_size, user_dict, nbest)


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


def _format_block(
    tagger: Tagger, texts: list[str], fmt: str, batch_size: int,
    user_dict: UserDict | None = None, nbest: int = 0,
) -> Iterator[str]:
    if nbest > 0:
        for text, analyses in zip(texts, tagger.nbest(texts, nbest)):
            yield json.dumps({"text": text, "nbest": [
                {**_analysis(tagger, text, [t for _, t in pairs]), "prob": round(prob, 6)}
                for pairs, prob in analyses]}, ensure_ascii=False)
    elif fmt == "conll":
        for pairs in tagger.tag(texts, batch_size):
            yield "".join(f"{c} {t}\n" for c, t in pairs)
    elif tagger.task == "pos":
        for words in tagger.pos_tag(texts, batch_size):
            yield "  ".join(f"{w}/{label}" if label else w for w, label in words)
    elif tagger.task == "cws" and fmt == "segmented":
        for words in tagger.segment(texts, batch_size, user_dict):
            yield "  ".join(words)
    elif tagger.task == "cws":
        for text, words in zip(texts, tagger.segment(texts, batch_size, user_dict)):
            yield json.dumps({"text": text, "words": words}, ensure_ascii=False)
    else:
        for text, ents in zip(texts, tagger.entities(texts, batch_size)):
            yield json.dumps({"text": text, "entities": [asdict(e) for e in ents]},
                             ensure_ascii=False)


def _analysis(tagger: Tagger, text: str, tags: list[str]) -> dict[str, Any]:
    """One n-best entry: words (CWS), word/POS pairs (POS) or entities (NER) of ``tags``."""
    tokens, positions = _non_space(text)
    if tagger.task == "ner":
        return {"entities": [asdict(e) for e in _entities(text, positions, tags)]}
    words = _words(tokens, positions, tags)
    if tagger.task == "cws":
        return {"words": [w for w, _ in words]}
    return {"words": [f"{w}/{label}" for w, label in words]}


def _words(tokens: Sequence[str], positions: Sequence[int], tags: Sequence[str]
           ) -> list[tuple[str, str]]:
    """(word, label) pairs of tagged tokens; a gap in ``positions`` (whitespace in the input)
    is also a word boundary."""
    words = []
    for label, a, b in _spans_any(tags):
        start = a
        for j in range(a + 1, b):
            if positions[j] != positions[j - 1] + 1:
                words.append(("".join(tokens[start:j]), label))
                start = j
        words.append(("".join(tokens[start:b]), label))
    return words


_STARTS, _ENDS = frozenset(("B", "S")), frozenset(("E", "S"))


def _cut_words(text: str, positions: Sequence[int], starts: list[int]) -> list[str]:
    """Words of ``text`` whose non-space tokens (at ``positions`` in it) start new words at
    token indices ``starts``; whitespace in the text is also a word boundary."""
    if not starts:
        return []
    if isinstance(positions, range):  # no whitespace: token i is text[i]
        return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)])]
    gaps = [i for i in range(1, len(positions)) if positions[i] != positions[i - 1] + 1]
    if gaps:
        starts = sorted({*starts, *gaps})
    bounds = [*starts[1:], len(positions)]
    return [text[positions[a]:positions[b - 1] + 1] for a, b in zip(starts, bounds)]


def _entities(text: str, positions: Sequence[int], tags: Sequence[str]) -> list[Entity]:
    """Entities of tagged tokens, with offsets mapped back into the original ``text``."""
    out = []
    for label, a, b in tags_to_spans(tags):
        start, end = positions[a], positions[b - 1] + 1
        out.append(Entity(label, start, end, text[start:end]))
    return out


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Tagging allocates many short-lived lists and tuples, none in reference cycles; the cyclic
    collector they trigger would scan the loaded vocabularies again and again (5-10% of the
    time of `segment` on the PKU test). Paused only for the call, and only if it was on."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _non_space(text: str) -> tuple[list[str], Sequence[int]]:
    """The non-whitespace characters of ``text`` and their offsets in it."""
    if not _SPACE.search(text):  # the common case, without a per-character loop
        return list(text), range(len(text))
    positions = [i for i, c in enumerate(text) if not c.isspace()]
    return [text[i] for i in positions], positions


_SPACE = re.compile(r"\s")


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
