"""Scoring a tagger on labelled sentences: shared by training (dev F1) and ``tagger eval``."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from .corpus import Sentence, read_corpus
from .errors import CorpusFormatError
from .metrics import CWSScores, NERScores, POSScores, cws_scores, ner_scores, pos_scores
from .predict import Tagger
from .tags import tags_to_words

Scores = CWSScores | NERScores | POSScores


def evaluate(
    tagger: Tagger, sentences: Sequence[Sentence], train_words: Collection[str] | None = None,
    batch_size: int = 64,
) -> Scores:
    """Predict ``sentences`` and score the predictions against their gold tags.

    Args:
        tagger: the model.
        sentences: labelled sentences (BMES tags).
        train_words: CWS only: word list for OOV/IV recall (default: the checkpoint's).
        batch_size: sentences per forward pass.

    Returns:
        :class:`CWSScores` (word P/R/F1 as the SIGHAN scorer counts, OOV figures) for CWS,
        :class:`NERScores` (strict span P/R/F1 with a per-type table) for NER,
        :class:`POSScores` (joint word+POS P/R/F1, per-POS table, and segmentation P/R/F1) for
        joint segmentation + POS.
    """
    chars = [s.chars for s in sentences]
    gold = [s.tags or [] for s in sentences]
    # what `tagger predict` of the sentence's raw text gives: for CWS and POS its whitespace
    # is a word boundary that decoding respects (the network never sees whitespace, in
    # either path); for NER whitespace is skipped
    breaks = None if tagger.task == "ner" else [s.spaces for s in sentences]
    pred = tagger.tag_tokens(chars, batch_size=batch_size, breaks=breaks)
    if tagger.task == "cws":
        words = train_words if train_words is not None else tagger.train_words
        return cws_scores(
            [tags_to_words(c, t) for c, t in zip(chars, gold)],
            [tags_to_words(c, t) for c, t in zip(chars, pred)],
            words or None,
        )
    if tagger.task == "pos":
        return pos_scores(chars, gold, pred)
    return ner_scores(gold, pred)


def read_eval_data(
    tagger: Tagger, path: str | Path, fmt: str | None = None, scheme: str | None = None,
    repair: bool = False,
) -> list[Sentence]:
    """Read a labelled file for ``tagger``, explaining a task mismatch in the error."""
    data_cfg = tagger.config.data
    fmt = fmt or data_cfg.format
    try:
        return read_corpus(path, fmt, tagger.task, scheme or data_cfg.scheme, repair)
    except CorpusFormatError as exc:
        if exc.kind == "wrong_task":
            trained = ("word segmentation (tags B/M/E/S)" if tagger.task == "cws"
                       else ("joint segmentation+POS" if tagger.task == "pos" else "NER")
                       + " (tags " + ", ".join(tagger.tags[:5]) + ", ...)")
            raise CorpusFormatError(exc.path, exc.line, f"{exc.reason}; the model was trained "
                                    f"for {trained}, so it cannot be evaluated on this "
                                    "file", kind=exc.kind) from None
        # A file in another format often reads as conll lines with odd last fields.
        if exc.kind in ("unknown_tag", "missing_tag") and fmt == "conll":
            raise CorpusFormatError(exc.path, exc.line, f"{exc.reason} (read as conll, the "
                                    "model's format; is the file in another format? use "
                                    "--format)", kind=exc.kind) from None
        raise
