"""The Python API: :class:`Tagger` (load a checkpoint or exported model, then tag, segment,
find entities, score alternatives) and :class:`UserDict`. Streaming over files, output formats
and sharding are :mod:`bmes_tagger.output`'s.

A tagger is a network that scores tags (:class:`~bmes_tagger.model.TorchNetwork` for a
checkpoint, an ONNX or TorchScript one for an exported file) plus NumPy decoding
(:mod:`bmes_tagger.decoding`), the same for every kind of network. This module imports no
torch: an exported ONNX model predicts in an environment without it.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from . import decoding
from .batching import Batch, EncodedCorpus, bucketed_batches, text_bounds
from .config import Config
from .corpus import read_dictionary
from .errors import ONNX_HINT, BmesTaggerError, UsageError, require_torch
from .exported import exported_kind, load_exported
from .tags import allowed_transitions, split_tag, tags_to_spans
from .text import split_graphemes
from .vocab import Vocab

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

# the longest n-best list a caller may ask for: the search keeps k paths per tag and step
MAX_NBEST = 100
# The largest score magnitude decoding accepts. Viterbi adds one emission and one transition
# per character in float32 (max 3.4e38): under this bound a 16 MiB line (the readers' limit)
# cannot overflow, and real models score in the tens.
MAX_SCORE = 1e30
#: Most scores (rows x length x tags) that prediction decodes at once (8 MiB of float32).
DECODE_CELLS = 1 << 21


class Network(Protocol):
    """What a :class:`Tagger` needs of a network."""

    kind: str  # "torch", "onnx", "torchscript"

    @property
    def has_crf(self) -> bool: ...

    def emissions(self, inputs: dict[str, np.ndarray], lengths: np.ndarray) -> np.ndarray:
        """{name: (batch, seq_len, slots)} ids, (batch,) lengths -> (batch, seq_len, tags)."""
        ...

    def transitions(self) -> decoding.Transitions | None:
        """The CRF's (start, transitions, end) scores, or None for a softmax head."""
        ...


@dataclass(frozen=True)
class Entity:
    """A named entity: ``text[start:end]`` is ``text`` (end exclusive, character offsets)."""

    type: str
    start: int
    end: int
    text: str


class Tagger:
    """A trained model ready to predict; built from a checkpoint or an exported model.

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

    Args:
        network: scores tags (see :class:`Network`).
        vocabs: the input features' vocabularies by feature name.
        tags: the tag list (id order).
        config: the resolved config the model was trained with.
        train_words: CWS training word list (OOV metrics).
        scores: best dev scores stored with the model.
        source: the model file, for error messages.
    """

    def __init__(
        self, network: Network, vocabs: dict[str, Vocab], tags: Sequence[str], config: Config,
        train_words: frozenset[str] = frozenset(), scores: dict[str, Any] | None = None,
        source: str = "the model",
    ) -> None:
        self.network = network
        self.source = source
        self.vocabs = vocabs
        self.tags = list(tags)
        self.config = config
        self.train_words = train_words
        self.scores = scores or {}
        num_tags = len(self.tags)
        # legal BMES moves for decoding (-inf in the decoding tables), unless unconstrained
        self.allowed: decoding.Transitions | None = None
        if config.model.constrained:
            start, trans, end = allowed_transitions(self.tags)
            self.allowed = (np.array(start, dtype=bool), np.array(trans, dtype=bool),
                            np.array(end, dtype=bool))
        self._no_transitions = (np.zeros(num_tags, np.float32),
                                np.zeros((num_tags, num_tags), np.float32),
                                np.zeros(num_tags, np.float32))
        # (num_tags, 2) bool: does the tag start a word (B, S), end one (E, S); for segment
        self._word_edges = np.array([[t in _STARTS, t in _ENDS] for t in self.tags], dtype=bool)
        # (num_tags,) bool: the tags that may open / close a span of any type, which is what a
        # forced boundary allows on its two sides (whitespace between words)
        prefixes = [split_tag(t)[0] for t in self.tags]
        self._opens = np.array([p in "BSO" for p in prefixes], dtype=bool)
        self._closes = np.array([p in "ESO" for p in prefixes], dtype=bool)

    @property
    def task(self) -> str:
        """``"cws"``, ``"ner"`` or ``"pos"`` (joint segmentation + POS)."""
        return self.config.data.task

    @classmethod
    def load(cls, path: str | Path, bf16: bool = False, device: str = "auto",
             trust_code: bool = False, threads: int | None = None) -> Tagger:
        """Load a checkpoint written by ``tagger train`` (safe: no code is executed), or a
        model exported by ``tagger export`` (``.onnx``, run by onnxruntime without torch;
        ``.ts`` TorchScript, which contains code and loads only with ``trust_code``).

        Args:
            path: the file.
            bf16: run the network under bfloat16 autocast when predicting (faster on CPUs
                with bf16 instructions; decoding stays in float32). Checkpoints only: an
                exported model with ``bf16`` is a :class:`~bmes_tagger.errors.UsageError`.
            device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``;
                exported models run on the CPU (``auto`` or ``cpu`` only).
            trust_code: allow loading TorchScript.
            threads: CPU threads of the network (torch, or onnxruntime for ONNX files); 0:
                the library's default (all cores); None: torch's current setting for
                checkpoints, 1 for ONNX.
        """
        if exported_kind(path) is not None:
            # refused, not ignored: the run would go on in float32 on the CPU and look as
            # if the option had worked
            if bf16 or device not in ("auto", "cpu"):
                asked = "bf16 (--bf16)" if bf16 else f"device {device} (--device)"
                raise UsageError(f"{path}: an exported model runs on the CPU in float32; "
                                 f"{asked} is for checkpoints (.pt)")
            meta, network = load_exported(path, threads=threads, trust_code=trust_code)
            return cls.from_checkpoint(meta, network=network, source=str(path))
        # a checkpoint needs torch: imported here, so the exported-model path never does
        require_torch(f"{path}: reading a checkpoint (.pt)", ONNX_HINT)
        from .checkpoint import load_checkpoint
        from .devices import resolve_device

        if threads:
            import torch

            torch.set_num_threads(threads)
        return cls.from_checkpoint(load_checkpoint(path), bf16=bf16,
                                   device=resolve_device(device), source=str(path))

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint, network: Network | None = None,
                        bf16: bool = False, device: Any = "cpu", source: str = "the model"
                        ) -> Tagger:
        """Rebuild the model a validated :class:`~bmes_tagger.checkpoint.Checkpoint`
        describes (or, given an exported ``network``, wrap that); ``source`` names it in
        errors."""
        if network is None:
            from .model import TorchNetwork, allocating, build_model

            assert ckpt.weights is not None
            model = build_model(ckpt.config, ckpt.vocabs, ckpt.tags)
            model.load_state_dict(ckpt.weights)
            with allocating(ckpt.config, ckpt.vocabs, ckpt.tags,
                            f"the network's weights on {device}"):
                model = model.eval().to(device)
            network = TorchNetwork(model, device, bf16)
        return cls(network, ckpt.vocabs, ckpt.tags, ckpt.config, frozenset(ckpt.train_words),
                   ckpt.scores, source=source)

    def network_scores(self, batch: Batch) -> tuple[np.ndarray, decoding.Transitions | None]:
        """The network's emissions for ``batch`` (batch, seq_len, num_tags) and its CRF
        transitions (or None), checked: every path of prediction (torch, onnxruntime,
        TorchScript; decode, n-best, confidence) reads them here.

        Raises:
            CheckpointError: a score on a real position, or a transition, is NaN, infinite or
                over :data:`MAX_SCORE`: weights that finite-value checks let through (1e38)
                can still overflow, and decoding would then return garbage tags.
        """
        emissions = self.network.emissions(batch.inputs, batch.lengths)
        transitions = self.network.transitions()
        # NaN compares False, so one comparison covers NaN, inf and overflow; numpy must not
        # warn on the way (the error below is the whole report)
        with np.errstate(all="ignore"):
            ok = bool((np.abs(emissions[batch.mask]) <= MAX_SCORE).all()) and all(
                bool((np.abs(t) <= MAX_SCORE).all()) for t in transitions or ())
        if not ok:
            from .errors import CheckpointError

            raise CheckpointError(f"{self.source}: the model produced NaN or infinite scores, "
                                  f"or scores over {MAX_SCORE:g} that decoding would overflow "
                                  "(damaged weights?)")
        return emissions, transitions

    def decode(self, batch: Batch, tag_mask: np.ndarray | None = None) -> np.ndarray:
        """Best tag ids of a padded batch, (batch, seq_len), 0 on padding.

        The CRF head runs Viterbi with its transitions; the softmax head runs Viterbi with
        only the BMES constraints (on raw scores: log_softmax shifts every path of a position
        by the same amount), or a plain argmax when unconstrained. ``tag_mask`` (batch,
        seq_len, num_tags) bool, if given, allows only the marked tags at each position (a
        user dictionary forces words this way).
        """
        # (batch, seq_len, num_tags)
        scores, transitions = self.network_scores(batch)
        return self._decode_scores(scores, np.asarray(batch.lengths), transitions, tag_mask)

    def _decode_scores(self, scores: np.ndarray, lengths: np.ndarray,
                       transitions: decoding.Transitions | None,
                       tag_mask: np.ndarray | None = None) -> np.ndarray:
        """:meth:`decode` on the network's scores (batch, seq_len, num_tags) of rows of the
        given lengths, padded at the end (whatever the padding scores are)."""
        if tag_mask is not None:
            scores = np.where(tag_mask, scores, -np.inf).astype(np.float32)
        if transitions is None and self.allowed is None:
            real = np.arange(scores.shape[1])[None, :] < lengths[:, None]
            return np.where(real, scores.argmax(-1), 0)
        table = decoding.constrain(transitions or self._no_transitions, self.allowed)
        return decoding.viterbi(scores, lengths, *table)

    # --- tagging ---------------------------------------------------------------------------

    def tag_tokens(
        self, sentences: Iterable[Sequence[str]], batch_size: int = 64,
        forced_words: Sequence[Sequence[tuple[int, int]]] | None = None,
        breaks: Sequence[Sequence[int]] | None = None,
    ) -> list[list[str]]:
        """BMES tags for pre-split token lists (one tag per token; empty input -> empty list).

        Sentences longer than ``data.max_len`` are cut into chunks (preferably after
        punctuation, never inside a forced word), tagged separately and re-joined; nothing is
        dropped or truncated.

        Args:
            sentences: token lists (any iterable, read once).
            batch_size: pieces per forward pass.
            forced_words: CWS only: per sentence, ``(start, end)`` token spans (end exclusive,
                non-overlapping) that must come out as single words; decoding is constrained
                to them (a user dictionary). A chunk is never cut inside one, so a forced word
                longer than ``data.max_len`` makes its chunk that much longer.
            breaks: per sentence, token indices before which a span must end and a new one
                start (the whitespace of the raw text, for CWS and POS): decoding only
                considers taggings with no word across them.
        """
        sentences = _as_list(sentences, "token lists")
        with _gc_paused():
            owners, batches = self._decode_pieces(sentences, batch_size, forced_words, breaks)
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
        breaks: Sequence[Sequence[int]] | None = None,
    ) -> tuple[list[tuple[int, int]], Iterator[tuple[list[int], np.ndarray, list[int]]]]:
        """Cut the sentences into chunks of at most ``data.max_len`` tokens (longer only to
        keep a forced word whole) and decode them in length-bucketed batches. Returns
        ``(sentence, first token)`` of every chunk, in input order, and an iterator over
        batches of ``(chunk indices, best tag ids (batch, seq_len) on the CPU, lengths)``."""
        if forced_words is not None:
            self._require("cws", "a user dictionary")
        max_len = self.config.data.max_len
        whole: list[Sequence[str]] = []
        bounds: list[list[tuple[int, int]]] = []
        owners: list[tuple[int, int]] = []
        # per chunk, in chunk positions: forced words, and breaks as (must close, must open)
        piece_forced: list[list[tuple[int, int]]] = []
        piece_breaks: list[tuple[list[int], list[int]]] = []
        constrained = False
        for i, tokens in enumerate(sentences):
            if not tokens:
                continue
            spans = forced_words[i] if forced_words is not None else ()
            cuts = [c for c in breaks[i] if 0 < c < len(tokens)] if breaks is not None else []
            constrained = constrained or bool(spans) or bool(cuts)
            whole.append(tokens)
            # never cut inside a forced word: its halves, decoded apart, could not both be
            # legal BMES sequences, and the word would be lost
            bounds.append(text_bounds(tokens, max_len, keep=spans))
            for a, b in bounds[-1]:
                owners.append((i, a))
                piece_forced.append([(x - a, y - a) for x, y in spans if a <= x and y <= b])
                # a break at c: token c - 1 closes a span, token c opens one (either may be
                # in the chunk, when the break falls on the chunk's edge)
                piece_breaks.append(([c - 1 - a for c in cuts if a < c <= b],
                                     [c - a for c in cuts if a <= c < b]))

        def batches() -> Iterator[tuple[list[int], np.ndarray, list[int]]]:
            if not whole:
                return
            # encoded whole, then cut: features see the whole line's context
            encoded = EncodedCorpus.encode(whole, self.vocabs, self.config).pieces(bounds)
            # The network runs batch by batch; decoding runs on groups of consecutive batches
            # (longest first, so of similar lengths): Viterbi's loop over time costs a few
            # NumPy calls per step whatever the number of rows, so fewer, taller groups make
            # it several times cheaper. A group holds at most DECODE_CELLS scores.
            group: list[tuple[list[int], np.ndarray, np.ndarray, np.ndarray | None]] = []
            rows = 0  # in the group
            transitions: decoding.Transitions | None = None
            for indices in bucketed_batches(encoded.lengths, batch_size):
                batch = encoded.batch(indices)
                tag_mask = None
                if constrained:
                    tag_mask = self._tag_mask([piece_forced[i] for i in indices],
                                              [piece_breaks[i] for i in indices],
                                              batch.mask.shape[1])
                # (batch, seq_len, num_tags)
                scores, transitions = self.network_scores(batch)
                # the group's first batch is its longest (longest first): its length pads all
                if group and (rows + len(indices)) * group[0][1].shape[1] * scores.shape[2] \
                        > DECODE_CELLS:
                    yield self._decode_group(group, transitions)
                    group, rows = [], 0
                group.append((list(indices), scores, np.asarray(batch.lengths), tag_mask))
                rows += len(indices)
            if group:
                yield self._decode_group(group, transitions)

        return owners, batches()

    def _decode_group(self, group: Sequence[tuple[list[int], np.ndarray, np.ndarray,
                                                  np.ndarray | None]],
                      transitions: decoding.Transitions | None
                      ) -> tuple[list[int], np.ndarray, list[int]]:
        """Decode batches together: ``(indices, scores (batch, seq_len, num_tags), lengths,
        tag mask or None)`` each -> ``(all indices, best tag ids (rows, longest seq_len), all
        lengths)``, as decoding each batch alone gives (padding never reaches a real
        position)."""
        seq_len = max(g[1].shape[1] for g in group)
        num_tags = group[0][1].shape[2]
        rows = sum(len(g[0]) for g in group)
        # (rows, seq_len, num_tags); padding scores are never read on real positions
        scores = np.zeros((rows, seq_len, num_tags), dtype=np.float32)
        masked = any(g[3] is not None for g in group)
        tag_mask = np.ones((rows, seq_len, num_tags), dtype=bool) if masked else None
        at = 0
        for _, s, _, m in group:
            scores[at:at + len(s), :s.shape[1]] = s
            if m is not None:
                assert tag_mask is not None
                tag_mask[at:at + len(s), :m.shape[1]] = m
            at += len(s)
        lengths = np.concatenate([g[2] for g in group])
        best = self._decode_scores(scores, lengths, transitions, tag_mask)
        return ([i for g in group for i in g[0]], best, lengths.tolist())

    def _word_starts(self, sentences: Sequence[Sequence[str]], batch_size: int,
                     forced_words: Sequence[Sequence[tuple[int, int]]] | None,
                     breaks: Sequence[Sequence[int]] | None = None) -> list[list[int]]:
        """CWS: the token index where each word of each sentence starts (0 first), read off
        the tag ids with tensor operations per batch: a word starts at B or S, or after E or
        S (the lenient reading of ``tags_to_spans``; the same words as :func:`_words` on the
        tag strings, without a Python step per character)."""
        owners, batches = self._decode_pieces(sentences, batch_size, forced_words, breaks)
        # per chunk: word starts inside it (chunk positions), does its last tag end a word
        piece_starts: list[list[int]] = [[] for _ in owners]
        piece_ends: list[bool] = [True] * len(owners)
        piece_opens: list[bool] = [True] * len(owners)  # does its first tag start a word
        for indices, best, lengths in batches:
            # (batch, seq_len, 2)
            edges = self._word_edges[best]
            # (batch, seq_len): a word starts at t if tag t starts one or tag t-1 ends one
            cut = edges[:, :, 0].copy()
            cut[:, 1:] |= edges[:, :-1, 1]
            cut[:, 0] = True  # chunk joins are settled below
            n = np.asarray(lengths)
            cut &= np.arange(cut.shape[1])[None, :] < n[:, None]
            columns = cut.nonzero()[1].tolist()
            counts = cut.sum(1).tolist()
            ends = edges[np.arange(len(lengths)), n - 1, 1].tolist()
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

    def _tag_mask(self, spans: Sequence[Sequence[tuple[int, int]]],
                  breaks: Sequence[tuple[Sequence[int], Sequence[int]]], seq_len: int
                  ) -> np.ndarray:
        """(batch, seq_len, num_tags) allowed tags: inside a forced word only its own B/M/E/S;
        before a break only tags that close a span, after it only tags that open one. On both
        sides at once, this allows exactly the paths whose move across the break does not
        continue a span, so Viterbi and n-best search only among those."""
        ids = {t: i for i, t in enumerate(self.tags)}
        mask = np.ones((len(spans), seq_len, len(self.tags)), dtype=bool)
        for row, (closes, opens) in enumerate(breaks):
            mask[row, closes] &= self._closes
            mask[row, opens] &= self._opens
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
        self, texts: Iterable[str], k: int = 5
    ) -> list[list[tuple[list[tuple[str, str]], float]]]:
        """The ``k`` best taggings of each text with their probabilities (CRF head only).

        Whitespace is read as in :meth:`tag`: for CWS and POS a word boundary that the search
        itself respects, so the answers are ``k`` distinct segmentations, each with no word
        across whitespace, and their probabilities are among the taggings that respect it.
        Each text is decoded whole (not cut at ``data.max_len``), so very long lines cost more
        memory here.

        Returns:
            Per text, up to ``k`` ``(pairs, probability)`` with ``pairs`` the (character, tag)
            list, most probable first.

        Raises:
            ValueError: a softmax model, or ``k`` outside 1..:data:`MAX_NBEST`.
            TypeError: ``texts`` is a str, or holds something else than str.
        """
        texts = _as_list(texts)
        if not self.network.has_crf:
            raise ValueError("n-best decoding needs a model trained with model.head: crf")
        if not 1 <= k <= MAX_NBEST:
            raise ValueError(f"n-best: k must be between 1 and {MAX_NBEST}, got {k}")
        out: list[list[tuple[list[tuple[str, str]], float]]] = []
        for text in texts:
            tokens, positions = split_graphemes(text)
            if not tokens:
                out.append([([], 1.0)])
                continue
            # (seq_len, num_tags)
            scores, transitions = self._one_scores(tokens, positions)
            assert transitions is not None
            # probabilities among the taggings decoding considers (legal BMES, no word across
            # whitespace), so the answers of a line sum to at most 1 and a forced one is 1
            table = decoding.constrain(transitions, self.allowed)
            log_z = decoding.log_partition(scores, *table)
            paths = decoding.nbest(scores, *table, k)
            out.append([(list(zip(tokens, (self.tags[t] for t in path))),
                         math.exp(score - log_z)) for path, score in paths])
        return out

    def confidence(self, texts: Iterable[str]) -> list[list[tuple[str, str, float]]]:
        """(character, best tag, posterior probability of that tag) for each text.

        CRF head: marginals from forward-backward; softmax head: the softmax probability.
        For CWS and POS both are among the taggings with no word across whitespace, as
        :meth:`tag` decodes.
        """
        texts = _as_list(texts)
        out: list[list[tuple[str, str, float]]] = []
        index = {t: i for i, t in enumerate(self.tags)}
        for text, pairs in zip(texts, self.tag(texts)):
            tokens, positions = split_graphemes(text)
            if not tokens:
                out.append([])
                continue
            # (seq_len, num_tags)
            emissions, transitions = self._one_scores(tokens, positions)
            # a tag that whitespace rules out has probability 0 (exp(-inf)) in both; the CRF's
            # marginals are over the legal taggings, as decoding is
            probs = (decoding.marginals(emissions, *decoding.constrain(transitions,
                                                                         self.allowed))
                     if transitions is not None else decoding.softmax(emissions))
            out.append([(c, t, float(probs[j, index[t]])) for j, (c, t) in enumerate(pairs)])
        return out

    def analysis(self, text: str, tags: Sequence[str]) -> dict[str, Any]:
        """What ``tags`` (one per non-space character of ``text``, e.g. an n-best entry) say
        about ``text``: ``{"words": [...]}`` for CWS, ``{"words": ["word/POS", ...]}`` for
        joint segmentation + POS, ``{"entities": [entity dicts]}`` for NER."""
        tokens, positions = split_graphemes(text)
        if self.task == "ner":
            return {"entities": [asdict(e) for e in _entities(text, tokens, positions, tags)]}
        words = _words(tokens, positions, tags)
        if self.task == "cws":
            return {"words": [w for w, _ in words]}
        return {"words": [f"{w}/{label}" for w, label in words]}

    def _one(self, tokens: Sequence[str]) -> Batch:
        """A batch of one whole (not chunked) sentence."""
        return EncodedCorpus.encode([tokens], self.vocabs, self.config).batch([0])

    def _one_scores(self, tokens: Sequence[str], positions: Sequence[int]
                    ) -> tuple[np.ndarray, decoding.Transitions | None]:
        """(seq_len, num_tags) checked emissions of one whole sentence, -inf where the text's
        whitespace rules a tag out (CWS, POS), so n-best and marginals search the same
        taggings as :meth:`tag`; and the CRF transitions (or None)."""
        batch = self._one(tokens)
        scores, transitions = self.network_scores(batch)
        scores = scores[0]
        cuts = self._breaks_of(tokens, positions)
        if not cuts:
            return scores, transitions
        mask = self._tag_mask([()], [([c - 1 for c in cuts], cuts)], len(tokens))[0]
        return np.where(mask, scores, -np.inf).astype(np.float32), transitions

    def _breaks_of(self, tokens: Sequence[str], positions: Sequence[int]) -> list[int]:
        """Token indices with whitespace before them, where this task takes whitespace as a
        word boundary: CWS and POS. For NER whitespace is only skipped: an entity may span it
        (a name written with a space), as the corpora annotate."""
        return [] if self.task == "ner" else _gaps(tokens, positions)

    def tag(self, texts: Iterable[str], batch_size: int = 64) -> list[list[tuple[str, str]]]:
        """(character, tag) pairs for each text; whitespace characters are skipped. For CWS
        and POS, whitespace is a word boundary: decoding only considers taggings with no word
        across it (the same words as :meth:`segment`)."""
        texts = _as_list(texts)
        prepared, all_tags = self._tag_texts(texts, batch_size)
        return [list(zip(tokens, tags)) for (tokens, _), tags in zip(prepared, all_tags)]

    def segment(
        self, texts: Iterable[str], batch_size: int = 64, user_dict: UserDict | None = None
    ) -> list[list[str]]:
        """Words of each text (word segmentation and joint segmentation + POS models).
        Whitespace in the input is a word boundary and is dropped: decoding only considers
        segmentations with no word across it.

        With a ``user_dict``, its words found in a text (longest match first, left to right,
        not across whitespace) are kept whole; the rest of the segmentation is decoded around
        them.

        Args:
            texts: any iterable of str (read once); a bare str is a ``TypeError``.
        """
        texts = _as_list(texts)
        if self.task != "cws":
            self._require("pos", "segment()")
            return [[w for w, _ in words]
                    for words in self.pos_tag(texts, batch_size, user_dict)]
        with _gc_paused():
            prepared = [split_graphemes(t) for t in texts]
            breaks = [_gaps(tok, pos) for tok, pos in prepared]
            forced = None
            if user_dict is not None:
                forced = [user_dict.matches(tok, cuts) for (tok, _), cuts in zip(prepared, breaks)]
            starts = self._word_starts([tok for tok, _ in prepared], batch_size, forced, breaks)
            return [_cut_words(text, tokens, positions, cuts)
                    for text, (tokens, positions), cuts in zip(texts, prepared, starts)]

    def pos_tag(self, texts: Iterable[str], batch_size: int = 64,
                user_dict: UserDict | None = None) -> list[list[tuple[str, str]]]:
        """``(word, label)`` pairs of each text: the POS for a joint segmentation + POS model,
        ``""`` for CWS. Whitespace in the input is a word boundary and is dropped."""
        texts = _as_list(texts)
        if self.task == "ner":
            self._require("pos", "pos_tag()")
        prepared, all_tags = self._tag_texts(texts, batch_size, user_dict)
        return [_words(tokens, positions, tags)
                for (tokens, positions), tags in zip(prepared, all_tags)]

    def entities(self, texts: Iterable[str], batch_size: int = 64) -> list[list[Entity]]:
        """Entities of each text with character offsets into the original text (NER).

        Whitespace is skipped, not a boundary: the model reads the text without it, and an
        entity may span it (its ``text`` then includes the whitespace).
        """
        texts = _as_list(texts)
        self._require("ner", "entities()")
        prepared, all_tags = self._tag_texts(texts, batch_size)
        return [_entities(text, tokens, positions, tags)
                for text, (tokens, positions), tags in zip(texts, prepared, all_tags)]

    def _tag_texts(self, texts: Sequence[str], batch_size: int,
                   user_dict: UserDict | None = None,
                   ) -> tuple[list[tuple[list[str], Sequence[int]]], list[list[str]]]:
        """((non-space tokens, their offsets) per text, tags per text)."""
        prepared = [split_graphemes(t) for t in texts]
        breaks = [self._breaks_of(tok, pos) for tok, pos in prepared]
        forced = None
        if user_dict is not None:
            forced = [user_dict.matches(tok, cuts) for (tok, _), cuts in zip(prepared, breaks)]
        return prepared, self.tag_tokens([tok for tok, _ in prepared], batch_size, forced,
                                         breaks)

    def _require(self, task: str, what: str) -> None:
        if self.task != task:
            kinds = {"cws": "word segmentation", "ner": "NER",
                     "pos": "joint segmentation + POS"}
            raise BmesTaggerError(f"{what} needs a {kinds[task]} model; this one is "
                                  f"{kinds[self.task]}")


class UserDict:
    """Words that segmentation must keep whole (like jieba's and pkuseg's user dictionaries).

    Matching walks a character trie from each position, so its cost is bounded by the longest
    dictionary prefix actually present in the text, whatever the longest word is. Words of any
    length are kept, also across and beyond ``data.max_len`` (long lines are never chunked
    inside a dictionary word).

    Args:
        words: the words; whitespace-free, at least one character.
    """

    _END = ""  # trie key marking the end of a word (no character is the empty string)

    def __init__(self, words: Iterable[str]) -> None:
        self.words = {w for w in words if w}
        self._trie: dict[str, Any] = {}
        for word in self.words:
            node = self._trie
            for c in word:
                node = node.setdefault(c, {})
            node[self._END] = True

    @classmethod
    def load(cls, path: str | Path) -> UserDict:
        """One word per line (further fields, e.g. jieba's frequency and POS, are ignored)."""
        return cls(read_dictionary(path))

    def matches(self, tokens: Sequence[str], breaks: Iterable[int] = ()
                ) -> list[tuple[int, int]]:
        """Non-overlapping ``(start, end)`` spans of dictionary words (of two or more tokens),
        longest match first, left to right. No match crosses one of ``breaks`` (token indices
        with whitespace before them): the writer's space says the word is not there, and a
        forced word across a forced boundary would leave no legal tagging."""
        spans = []
        i, n = 0, len(tokens)
        stops = sorted(set(breaks))
        k = 0  # stops[k] is the first break after i
        while i < n:
            while k < len(stops) and stops[k] <= i:
                k += 1
            stop = stops[k] if k < len(stops) else n
            node, longest = self._trie, 0
            for j in range(i, stop):
                # a token may be several characters (a grapheme cluster): follow each
                for c in tokens[j]:
                    node = node.get(c)
                    if node is None:
                        break
                if node is None:
                    break
                if self._END in node and j > i:
                    longest = j + 1
            if longest:
                spans.append((i, longest))
                i = longest
            else:
                i += 1
        return spans


def _as_list(texts: Iterable[Any], what: str = "texts") -> list[Any]:
    """Any iterable of texts as a list, read once: the methods walk the texts more than once
    (tokens, then results zipped with the texts), which would find a generator empty the
    second time. A str is refused: it is an iterable of characters, and each would silently
    become a text of its own."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"expected an iterable of {what}, got one {type(texts).__name__}; "
                        "pass [text] for a single text")
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"expected an iterable of {what}, got {type(texts).__name__}"
                        ) from None
    if what == "texts":
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}]: expected str, got {type(text).__name__}")
    return items


def _gaps(tokens: Sequence[str], positions: Sequence[int]) -> list[int]:
    """Token indices with whitespace before them in the text (``positions`` from
    :func:`~bmes_tagger.text.split_graphemes`)."""
    if isinstance(positions, range):  # no whitespace, no clusters: the fast path
        return []
    return [i for i in range(1, len(positions))
            if positions[i] != positions[i - 1] + len(tokens[i - 1])]


def _words(tokens: Sequence[str], positions: Sequence[int], tags: Sequence[str]
           ) -> list[tuple[str, str]]:
    """(word, label) pairs of tagged tokens; a gap in ``positions`` (whitespace in the input)
    is also a word boundary."""
    words = []
    for label, a, b in _spans_any(tags):
        start = a
        for j in range(a + 1, b):
            if positions[j] != positions[j - 1] + len(tokens[j - 1]):
                words.append(("".join(tokens[start:j]), label))
                start = j
        words.append(("".join(tokens[start:b]), label))
    return words


_STARTS, _ENDS = frozenset(("B", "S")), frozenset(("E", "S"))


def _cut_words(text: str, tokens: Sequence[str], positions: Sequence[int], starts: list[int]
               ) -> list[str]:
    """Words of ``text`` whose characters ``tokens`` (at ``positions`` in it) start new words
    at token indices ``starts``; whitespace in the text is also a word boundary."""
    if not starts:
        return []
    if isinstance(positions, range):  # no whitespace, no clusters: token i is text[i]
        return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)])]
    gaps = [i for i in range(1, len(positions))
            if positions[i] != positions[i - 1] + len(tokens[i - 1])]
    if gaps:
        starts = sorted({*starts, *gaps})
    bounds = [*starts[1:], len(positions)]
    return [text[positions[a]:positions[b - 1] + len(tokens[b - 1])]
            for a, b in zip(starts, bounds)]


def _entities(text: str, tokens: Sequence[str], positions: Sequence[int],
              tags: Sequence[str]) -> list[Entity]:
    """Entities of tagged tokens, with (code point) offsets mapped back into ``text``."""
    out = []
    for label, a, b in tags_to_spans(tags):
        start, end = positions[a], positions[b - 1] + len(tokens[b - 1])
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
