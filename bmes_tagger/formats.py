"""More corpus formats: CLUENER-style JSON lines, CoNLL-U and People's Daily ``word/POS`` text.

Readers return :class:`~bmes_tagger.corpus.Sentence` lists with BMES tags; writers take them
back out; :func:`convert` goes from any format to any other that can hold the annotation.

Three kinds of annotation (``task``) travel through these formats:

- ``cws``: untyped ``B M E S`` (word segmentation);
- ``ner``: ``B-X M-X E-X S-X`` and ``O`` (entity spans over unsegmented text);
- ``pos``: joint segmentation + POS: every word is a span typed with its POS (``B-NOUN``,
  ``S-PUNCT``), so every character belongs to a word and there is no ``O``.

Which format holds which task (reading; writing is the same except that ``pos`` text can be
read as ``cws`` by dropping the POS, but not written from it):

========== ===================================================== ==============
format      layout                                                tasks
========== ===================================================== ==============
segmented   words separated by whitespace, one sentence per line  cws
conll       ``CHAR TAG`` per line, blank line between sentences   cws, ner, pos
jsonl       ``{"text", "label": {TYPE: {MENTION: [[s, e]]}}}``     ner
conllu      CoNLL-U, FORM = word, UPOS/XPOS = POS                  cws, pos
pos         ``word/POS`` tokens separated by whitespace            pos (read: cws)
========== ===================================================== ==============

Whitespace is never a character of a sentence (as in ``tagger predict``): whitespace inside a
JSON ``text`` or a CoNLL-U FORM is dropped and entity offsets are mapped past it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .atomic import atomic_write, check_output
from .corpus import Sentence, iter_lines, read_corpus
from .errors import BmesTaggerError, CorpusFormatError
from .tags import spans_to_tags, split_tag, tags_to_spans, words_to_tags

FORMATS = ("segmented", "conll", "jsonl", "conllu", "pos")
SCHEMES = ("bmes", "bioes", "bio")
POS_COLUMNS = ("upos", "xpos")
READ_TASKS = {"segmented": ("cws",), "conll": ("cws", "ner", "pos"), "jsonl": ("ner",),
              "conllu": ("cws", "pos"), "pos": ("cws", "pos")}
WRITE_TASKS = {"segmented": ("cws",), "conll": ("cws", "ner", "pos"), "jsonl": ("ner",),
               "conllu": ("cws", "pos"), "pos": ("pos",)}

# The paragraph id that opens every line of People's Daily RMRB.txt.
_RMRB_ID = re.compile(r"\d{8}-\d{2}-\d{3}-\d{3}/m")
# The last word of a bracketed compound, `电台/n]nt`: group 1 is `电台/n`, group 2 the outer tag.
_BRACKET_CLOSE = re.compile(r"(.+/[^/\]]+)\]([A-Za-z]+)")
_CONLLU_COLUMNS = "ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC"


class ConversionError(BmesTaggerError):
    """A conversion would lose annotation, or its output cannot be written."""


# --- readers -----------------------------------------------------------------------------------


def read_jsonl_spans(path: str | Path, repair: bool = False) -> list[Sentence]:
    """Read CLUENER2020-style JSON lines as typed NER sentences (BMES with ``O``).

    One object per line: ``{"text": ..., "label": {TYPE: {MENTION: [[start, end], ...]}}}``
    with **inclusive** character offsets (``text[start:end + 1] == MENTION``). Other keys (e.g.
    ``id``) are ignored; empty lines are skipped.

    Args:
        path: the file.
        repair: resolve overlapping (nested) mentions by keeping the longest one (the earlier
            one on a tie) instead of failing; CLUENER ``train.json`` line 1507 nests two
            ``company`` mentions inside a ``book``.

    Returns:
        One sentence per object; whitespace in ``text`` is dropped.

    Raises:
        CorpusFormatError: invalid JSON, a line without ``label`` (an unlabelled file such as
            CLUENER ``test.json``), offsets that do not match the mention, overlapping
            mentions (unless ``repair``), or a file with no sentence; all with ``path:line``.
    """
    sentences = []
    for number, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CorpusFormatError(path, number, f"invalid JSON: {exc.msg} at column "
                                    f"{exc.colno}") from None
        if not isinstance(obj, dict):
            raise CorpusFormatError(path, number, "expected a JSON object with \"text\" and "
                                    f"\"label\", got {type(obj).__name__}")
        raw = obj.get("text")
        if not isinstance(raw, str):
            raise CorpusFormatError(path, number, "missing or non-string \"text\"")
        if "label" not in obj:
            raise CorpusFormatError(path, number, "no \"label\": the file is unlabelled (like "
                                    "CLUENER test.json) and cannot be used for training or "
                                    "evaluation")
        spans = _json_spans(path, number, raw, obj["label"])
        positions = [i for i, c in enumerate(raw) if not c.isspace()]
        if not positions:
            raise CorpusFormatError(path, number, "empty \"text\"")
        spans = _resolve_overlaps(path, number, spans, repair)
        # Map raw offsets to offsets among the kept (non-space) characters.
        index = {p: i for i, p in enumerate(positions)}
        mapped = []
        for label, a, b in spans:
            kept = [index[p] for p in range(a, b) if p in index]
            if not kept:
                raise CorpusFormatError(path, number, f"{label} mention at [{a}, {b - 1}] is "
                                        "only whitespace")
            mapped.append((label, kept[0], kept[-1] + 1))
        chars = [raw[p] for p in positions]
        sentences.append(Sentence(chars=chars, tags=spans_to_tags(mapped, len(chars)),
                                  line=number))
    if not sentences:
        raise CorpusFormatError(path, None, "no sentences (file is empty or only blank lines)")
    return sentences


def read_conllu(path: str | Path, tags: str = "upos") -> list[Sentence]:
    """Read CoNLL-U: FORM gives the words, UPOS or XPOS their POS.

    Comment lines (``#``), multiword-token lines (``1-2``) and empty nodes (``1.1``) are
    skipped; a blank line ends a sentence.

    Args:
        path: the file (10 tab-separated columns per token line).
        tags: ``"upos"`` or ``"xpos"``: joint segmentation + POS tags (``B-NOUN`` ...
            ``S-PUNCT``, no ``O``); ``"none"``: untyped CWS tags from FORM alone.

    Returns:
        One sentence per CoNLL-U sentence; ``line`` is the line of its first word.

    Raises:
        CorpusFormatError: a token line without 10 columns, a bad or out-of-order ID, an empty
            FORM, a missing (``_``) POS when one is asked for, or a file with no sentence.
        ValueError: an unknown ``tags`` value.
    """
    if tags not in ("upos", "xpos", "none"):
        raise ValueError(f"tags must be upos, xpos or none, got {tags!r}")
    column = {"upos": 3, "xpos": 4}.get(tags)
    sentences: list[Sentence] = []
    words: list[str] = []
    labels: list[str] = []
    first = 0

    def flush() -> None:
        if words:
            sentences.append(_word_sentence(words, labels if column else None, first))
        words.clear(), labels.clear()

    for number, text in iter_lines(path):
        if not text.strip():
            flush()
            continue
        if text.startswith("#"):
            continue
        fields = text.split("\t")
        if len(fields) != 10:
            raise CorpusFormatError(path, number, f"expected 10 tab-separated columns "
                                    f"({_CONLLU_COLUMNS}), got {len(fields)}")
        token_id = fields[0]
        if "-" in token_id or "." in token_id:
            continue  # multiword token or empty node: the words are on their own lines
        if not token_id.isdigit() or int(token_id) != len(words) + 1:
            hint = " (missing blank line between sentences?)" if token_id == "1" else ""
            raise CorpusFormatError(path, number, f"token ID {token_id!r} where "
                                    f"{len(words) + 1} was expected{hint}")
        form = "".join(c for c in fields[1] if not c.isspace())
        if not form:
            raise CorpusFormatError(path, number, "empty FORM")
        if column is not None:
            label = fields[column]
            if label == "_" or not label.strip():
                raise CorpusFormatError(path, number, f"no {tags.upper()} for {form!r} (column "
                                        f"{column + 1} is {label!r}); read it for word "
                                        "segmentation only (task cws)")
            if any(c.isspace() for c in label):
                raise CorpusFormatError(path, number, f"{tags.upper()} {label!r} contains "
                                        "whitespace")
            labels.append(label)
        if not words:
            first = number
        words.append(form)
    flush()
    if not sentences:
        raise CorpusFormatError(path, None, "no sentences (file is empty or only comments)")
    return sentences


def read_pos_text(path: str | Path) -> list[Sentence]:
    """Read People's Daily style ``word/POS`` text as joint segmentation + POS sentences.

    Tokens are separated by whitespace, one paragraph per line; empty lines are skipped. A
    leading paragraph id such as ``19980101-01-001-001/m`` is dropped. Bracketed compounds
    ``[中央/n 人民/n 广播/vn 电台/n]nt`` keep their inner words with their own POS; the
    brackets and the outer tag are dropped.

    Args:
        path: the file (e.g. ``peoples_daily_1998_pos/RMRB.txt``).

    Returns:
        One sentence per non-empty line, tags ``B-POS M-POS E-POS S-POS`` (no ``O``).

    Raises:
        CorpusFormatError: a token without ``/POS``, an empty word or POS, unbalanced or nested
            brackets, or a file with no sentence; all with ``path:line``.
    """
    sentences = []
    for number, text in iter_lines(path):
        tokens = text.split()
        if tokens and _RMRB_ID.fullmatch(tokens[0]):
            tokens = tokens[1:]
        if not tokens:
            continue
        words: list[str] = []
        labels: list[str] = []
        open_bracket = False
        for token in tokens:
            opens = token.startswith("[") and bool(token[1:].rpartition("/")[0])
            if opens:
                if open_bracket:
                    raise CorpusFormatError(path, number, f"nested '[' in {token!r}")
                open_bracket, token = True, token[1:]
            close = _BRACKET_CLOSE.fullmatch(token)
            if close:
                if not open_bracket:
                    raise CorpusFormatError(path, number, f"']' without '[' in {token!r}")
                open_bracket, token = False, close.group(1)
            word, slash, label = token.rpartition("/")
            if not slash:
                raise CorpusFormatError(path, number, f"token {token!r} has no /POS tag "
                                        "(expected word/POS)")
            if not word or not label:
                raise CorpusFormatError(path, number, f"token {token!r}: empty "
                                        f"{'word' if not word else 'POS tag'}")
            words.append(word)
            labels.append(label)
        if open_bracket:
            raise CorpusFormatError(path, number, "'[' is never closed on this line")
        sentences.append(_word_sentence(words, labels, number))
    if not sentences:
        raise CorpusFormatError(path, None, "no sentences (file is empty or only blank lines)")
    return sentences


def read_format(
    path: str | Path, fmt: str, task: str, scheme: str = "bmes", repair: bool = False,
    pos_column: str = "upos",
) -> list[Sentence]:
    """Read a labelled corpus in any of :data:`FORMATS` for ``task``.

    Args:
        path: the file.
        fmt: one of :data:`FORMATS`.
        task: ``cws``, ``ner`` or ``pos``; ``pos`` text and CoNLL-U read as ``cws`` keep the
            words and drop the POS.
        scheme: tag scheme of a conll file (converted to BMES).
        repair: repair illegal conll sequences / overlapping jsonl mentions instead of failing.
        pos_column: CoNLL-U column that holds the POS for task ``pos`` (``upos`` or ``xpos``).

    Returns:
        The sentences, BMES-tagged for ``task``.

    Raises:
        CorpusFormatError: the format cannot hold ``task``, or the file is malformed.
        ValueError: an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown corpus format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if task not in READ_TASKS[fmt]:
        raise CorpusFormatError(path, None, f"the {fmt} format holds "
                                f"{' or '.join(READ_TASKS[fmt])} data, not {task} (set "
                                "data.task or data.format accordingly)")
    if fmt in ("segmented", "conll"):
        return read_corpus(path, fmt, task, scheme, repair)
    if fmt == "jsonl":
        return read_jsonl_spans(path, repair=repair)
    if fmt == "conllu":
        if pos_column not in POS_COLUMNS:
            raise ValueError(f"pos_column must be upos or xpos, got {pos_column!r}")
        return read_conllu(path, tags=pos_column if task == "pos" else "none")
    sentences = read_pos_text(path)
    return untyped(sentences) if task == "cws" else sentences


# --- writers -----------------------------------------------------------------------------------


def from_bmes(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert a legal BMES sequence to ``scheme`` (the inverse of :func:`tags.to_bmes`).

    Args:
        tags: a legal BMES sequence, typed or untyped.
        scheme: ``bmes``, ``bioes`` (M becomes I) or ``bio`` (S becomes B, M and E become I).

    Returns:
        The sequence in ``scheme``.

    Raises:
        TagSequenceError: ``tags`` is not legal BMES.
        ValueError: an unknown scheme.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    tags_to_spans(tags, strict=True)
    if scheme == "bmes":
        return list(tags)
    mapping = {"M": "I"} if scheme == "bioes" else {"M": "I", "E": "I", "S": "B"}
    out = []
    for tag in tags:
        prefix, label = split_tag(tag)
        prefix = mapping.get(prefix, prefix)
        out.append(f"{prefix}-{label}" if label else prefix)
    return out


def untyped(sentences: Iterable[Sentence]) -> list[Sentence]:
    """Drop the labels of typed tags (joint segmentation + POS -> word segmentation).

    Args:
        sentences: sentences with tags and no ``O``.

    Returns:
        New sentences with untyped ``B M E S`` tags.
    """
    return [Sentence(chars=list(s.chars), tags=[split_tag(t)[0] for t in s.tags or []],
                     line=s.line) for s in sentences]


def sentences_task(sentences: Iterable[Sentence]) -> str:
    """Which task the tags of ``sentences`` annotate: ``cws``, ``ner`` or ``pos``.

    Untyped tags mean ``cws``; typed tags with any ``O`` mean ``ner``, without ``O`` ``pos``
    (so an NER corpus in which every character is inside an entity reads as ``pos``; pass the
    task explicitly where that matters).

    Args:
        sentences: BMES-tagged sentences.

    Returns:
        The task name.

    Raises:
        ConversionError: typed and untyped tags are mixed.
    """
    typed = untyped_seen = has_o = False
    for s in sentences:
        for tag in s.tags or []:
            prefix, label = split_tag(tag)
            has_o |= prefix == "O"
            typed |= bool(label)
            untyped_seen |= not label and prefix != "O"
    if typed and untyped_seen:
        raise ConversionError("the sentences mix typed and untyped tags")
    if has_o:
        return "ner"
    return "pos" if typed else "cws"


def write_conll(sentences: Sequence[Sentence], path: str | Path, scheme: str = "bmes") -> None:
    """Write ``CHAR TAG`` lines (one space), a blank line after each sentence, tags in ``scheme``.

    Args:
        sentences: BMES-tagged sentences (any task).
        path: output file.
        scheme: ``bmes``, ``bioes`` or ``bio``.

    Raises:
        ConversionError: a character token that is empty or contains whitespace.
    """
    _check_tokens(sentences, "conll", single=False)

    def block(s: Sentence) -> str:
        tags = from_bmes(_tags(s), scheme)
        return "".join(f"{c} {t}\n" for c, t in zip(s.chars, tags)) + "\n"

    _atomic_write(path, (block(s) for s in sentences))


def write_jsonl_spans(sentences: Sequence[Sentence], path: str | Path) -> None:
    """Write CLUENER-style JSON lines with inclusive offsets (task ``ner``).

    Types and mentions keep their order of first appearance; a sentence without entities gets
    ``"label": {}``.
    """
    _check_tokens(sentences, "jsonl")

    def record(s: Sentence) -> str:
        text = "".join(s.chars)
        label: dict[str, dict[str, list[list[int]]]] = {}
        for kind, a, b in tags_to_spans(_tags(s), strict=True):
            label.setdefault(kind, {}).setdefault(text[a:b], []).append([a, b - 1])
        return json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n"

    _atomic_write(path, (record(s) for s in sentences))


def write_conllu(
    sentences: Sequence[Sentence], path: str | Path, pos_column: str = "upos"
) -> None:
    """Write CoNLL-U: ``ID FORM _ UPOS _ _ _ _ _ _`` (or the POS in XPOS), ``_`` when unknown.

    Untyped (CWS) sentences get ``_`` as their POS.

    Raises:
        ConversionError: a word or POS that CoNLL-U cannot hold (whitespace, a POS ``_``).
    """
    if pos_column not in POS_COLUMNS:
        raise ValueError(f"pos_column must be upos or xpos, got {pos_column!r}")
    _check_tokens(sentences, "conllu")

    def block(s: Sentence) -> str:
        rows = []
        for i, (word, label) in enumerate(_words(s, "conllu"), start=1):
            if label == "_":
                raise ConversionError(f"sentence at line {s.line}: POS '_' cannot be written "
                                      "to CoNLL-U (it means 'unknown' there)")
            cols = [str(i), word, "_", "_", "_", "_", "_", "_", "_", "_"]
            cols[3 if pos_column == "upos" else 4] = label or "_"
            rows.append("\t".join(cols) + "\n")
        return "".join(rows) + "\n"

    _atomic_write(path, (block(s) for s in sentences))


def write_pos_text(sentences: Sequence[Sentence], path: str | Path) -> None:
    """Write ``word/POS`` tokens joined by two spaces, one sentence per line (task ``pos``).

    Raises:
        ConversionError: an untyped word, or a word/POS the format would read back differently
            (a POS with ``/`` or ``]``, a word opening with ``[``, a leading paragraph id).
    """
    _check_tokens(sentences, "pos")

    def line(s: Sentence) -> str:
        tokens = []
        for word, label in _words(s, "pos"):
            if not label:
                raise ConversionError(f"sentence at line {s.line}: word {word!r} has no POS")
            if "/" in label or "]" in label:
                raise ConversionError(f"sentence at line {s.line}: POS {label!r} contains '/' "
                                      "or ']', which word/POS text cannot hold")
            if word.startswith("[") and len(word) > 1:
                raise ConversionError(f"sentence at line {s.line}: word {word!r} would be read "
                                      "as an opening bracket in word/POS text")
            tokens.append(f"{word}/{label}")
        if _RMRB_ID.fullmatch(tokens[0]):
            raise ConversionError(f"sentence at line {s.line}: first token {tokens[0]!r} would "
                                  "be read as a paragraph id and dropped")
        return "  ".join(tokens) + "\n"

    _atomic_write(path, (line(s) for s in sentences))


def write_corpus(
    sentences: Sequence[Sentence], path: str | Path, fmt: str, scheme: str = "bmes",
    task: str | None = None, pos_column: str = "upos",
) -> None:
    """Write labelled sentences in ``fmt``, refusing formats that would lose annotation.

    Args:
        sentences: BMES-tagged sentences.
        path: output file (written via a temporary file and renamed).
        fmt: one of :data:`FORMATS`.
        scheme: tag scheme for ``conll`` output.
        task: what the tags annotate; default: inferred by :func:`sentences_task`.
        pos_column: CoNLL-U column for the POS (``upos`` or ``xpos``).

    Raises:
        ConversionError: ``fmt`` cannot hold ``task`` (e.g. NER spans as segmented text), or a
            token that ``fmt`` cannot represent.
        ValueError: an unknown format or scheme.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown corpus format {fmt!r}; expected one of {', '.join(FORMATS)}")
    task = task or sentences_task(sentences)
    if task not in WRITE_TASKS[fmt]:
        raise ConversionError(f"cannot write {task} data as {fmt}: {_loss_reason(task, fmt)}")
    if fmt == "segmented":
        _check_tokens(sentences, fmt)
        words = [[w for w, _ in _words(s, fmt)] for s in sentences]
        _atomic_write(path, ("  ".join(ws) + "\n" for ws in words))
    elif fmt == "conll":
        write_conll(sentences, path, scheme)
    elif fmt == "jsonl":
        write_jsonl_spans(sentences, path)
    elif fmt == "conllu":
        write_conllu(sentences, path, pos_column)
    else:
        write_pos_text(sentences, path)


# --- conversion --------------------------------------------------------------------------------


def convert(
    in_path: str | Path, out_path: str | Path, from_fmt: str, to_fmt: str, *,
    task: str | None = None, scheme: str = "bmes", to_scheme: str | None = None,
    pos_column: str = "upos", repair: bool = False, force: bool = False,
) -> int:
    """Convert a labelled corpus between formats without losing annotation.

    Args:
        in_path: input file.
        out_path: output file; never overwritten unless ``force``.
        from_fmt: input format (one of :data:`FORMATS`).
        to_fmt: output format.
        task: what to read: default is what the input holds (a conll file: untyped tags ->
            cws, any ``O`` -> ner, typed without ``O`` -> pos; CoNLL-U: pos if the POS column
            has any value, else cws). ``cws`` on POS data drops the POS on purpose.
        scheme: tag scheme of conll input (and output, unless ``to_scheme``).
        to_scheme: tag scheme of conll output.
        pos_column: CoNLL-U column read and written for the POS (``upos`` or ``xpos``).
        repair: repair illegal conll gold sequences / overlapping jsonl mentions.
        force: overwrite ``out_path`` if it exists.

    Returns:
        The number of sentences written.

    Raises:
        ConversionError: an unknown format, scheme or task, or a conversion that would lose
            annotation (e.g. NER -> segmented).
        OutputError: an existing output without ``force``, the input as output, or a
            failed write.
        CorpusFormatError: the input is malformed.
    """
    for name, value, choices in (("from", from_fmt, FORMATS), ("to", to_fmt, FORMATS),
                                 ("scheme", scheme, SCHEMES),
                                 ("to scheme", to_scheme or scheme, SCHEMES),
                                 ("pos column", pos_column, POS_COLUMNS),
                                 ("task", task or "cws", ("cws", "ner", "pos"))):
        if value not in choices:
            raise ConversionError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    out = Path(out_path)
    check_output(out, force=force, inputs={"the input": in_path})
    found = _input_task(in_path, from_fmt, pos_column)
    wanted = task or found
    if wanted not in WRITE_TASKS[to_fmt]:
        raise ConversionError(f"cannot convert {wanted} data from {from_fmt} to {to_fmt}: "
                              f"{_loss_reason(wanted, to_fmt)}")
    drop_pos = wanted == "cws" and found == "pos"
    sentences = read_format(in_path, from_fmt, found if drop_pos else wanted, scheme, repair,
                            pos_column)
    if drop_pos:
        sentences = untyped(sentences)
    write_corpus(sentences, out, to_fmt, to_scheme or scheme, task=wanted, pos_column=pos_column)
    return len(sentences)


# --- internals ---------------------------------------------------------------------------------


def _loss_reason(task: str, fmt: str) -> str:
    if task == "pos" and fmt == "segmented":
        return "segmented text holds only words, so the POS tags would be lost (pass --task cws " \
               "to drop them on purpose)"
    if task == "ner":
        return f"{fmt} holds words, not entity spans, so the entity annotation would be lost " \
               "(use conll or jsonl)"
    if task == "cws" and fmt == "pos":
        return "word/POS text needs a POS for every word and word segmentation has none " \
               "(use segmented, conllu or conll)"
    if task == "cws" and fmt == "jsonl":
        return "jsonl holds typed entity spans and word segmentation has no types " \
               "(use segmented, conllu or conll)"
    return "jsonl holds NER entity spans, not POS-tagged words (use pos, conllu or conll)"


def _input_task(path: str | Path, fmt: str, pos_column: str) -> str:
    """What the input holds, from its format (and for conll/CoNLL-U, a scan of its tags)."""
    if fmt in ("segmented", "jsonl", "pos"):
        return {"segmented": "cws", "jsonl": "ner", "pos": "pos"}[fmt]
    if fmt == "conllu":
        column = 3 if pos_column == "upos" else 4
        for _, text in iter_lines(path):
            fields = text.split("\t")
            if len(fields) == 10 and fields[0].isdigit() and fields[column] != "_":
                return "pos"
        return "cws"
    typed = False
    for _, text in iter_lines(path):
        fields = text.split()
        if len(fields) >= 2:
            if fields[-1] == "O":
                return "ner"
            typed |= "-" in fields[-1]
    return "pos" if typed else "cws"


def _word_sentence(words: Sequence[str], labels: Sequence[str] | None, line: int) -> Sentence:
    """A sentence from words (and one label per word for typed tags)."""
    tags = words_to_tags(words)
    if labels is not None:
        per_char = [label for word, label in zip(words, labels) for _ in word]
        tags = [f"{t}-{label}" for t, label in zip(tags, per_char)]
    return Sentence(chars=[c for w in words for c in w], tags=tags, line=line)


def _json_spans(path: str | Path, number: int, text: str, label: object
                ) -> list[tuple[str, int, int]]:
    """The mentions of a CLUENER ``label`` object as ``(type, start, end_exclusive)``."""
    if not isinstance(label, dict):
        raise CorpusFormatError(path, number, "\"label\" must be an object {TYPE: {MENTION: "
                                "[[start, end], ...]}}")
    spans = []
    for kind, mentions in label.items():
        if not kind or any(c.isspace() for c in kind):
            raise CorpusFormatError(path, number, f"entity type {kind!r} is empty or contains "
                                    "whitespace")
        if not isinstance(mentions, dict):
            raise CorpusFormatError(path, number, f"label {kind!r} must map mentions to offset "
                                    "lists")
        for mention, offsets in mentions.items():
            if not isinstance(offsets, list) or not offsets:
                raise CorpusFormatError(path, number, f"{kind} mention {mention!r}: expected a "
                                        "non-empty list of [start, end] pairs")
            for pair in offsets:
                if (not isinstance(pair, list) or len(pair) != 2
                        or not all(type(x) is int for x in pair)):
                    raise CorpusFormatError(path, number, f"{kind} mention {mention!r}: "
                                            f"expected [start, end] integers, got {pair!r}")
                a, e = pair
                if not 0 <= a <= e < len(text) or text[a:e + 1] != mention:
                    got = text[a:e + 1] if 0 <= a <= e else ""
                    raise CorpusFormatError(path, number, f"{kind} mention {mention!r} at "
                                            f"[{a}, {e}] does not match the text there "
                                            f"({got!r}; offsets are inclusive)")
                spans.append((kind, a, e + 1))
    return spans


def _resolve_overlaps(path: str | Path, number: int, spans: list[tuple[str, int, int]],
                      repair: bool) -> list[tuple[str, int, int]]:
    """Drop duplicate mentions; overlapping ones are an error, or with ``repair`` the longest
    (then earliest) wins."""
    unique = sorted(set(spans), key=lambda s: (-(s[2] - s[1]), s[1], s[0]))
    kept: list[tuple[str, int, int]] = []
    for span in unique:
        clash = next((k for k in kept if span[1] < k[2] and k[1] < span[2]), None)
        if clash is None:
            kept.append(span)
        elif not repair:
            first, second = sorted([clash, span], key=lambda s: (s[1], s[2]))
            raise CorpusFormatError(path, number, f"overlapping mentions {first[0]} "
                                    f"[{first[1]}, {first[2] - 1}] and {second[0]} "
                                    f"[{second[1]}, {second[2] - 1}] (set data.repair_gold: "
                                    "true / --repair to keep the longest)")
    return sorted(kept, key=lambda s: s[1])


def _tags(s: Sentence) -> list[str]:
    if s.tags is None or len(s.tags) != len(s.chars):
        raise ValueError(f"sentence at line {s.line} has no tags or a tag count that differs "
                         "from its characters")
    return list(s.tags)


def _words(s: Sentence, fmt: str) -> list[tuple[str, str]]:
    """``(word, label)`` pairs of a sentence whose every character is in a word (no ``O``)."""
    tags = _tags(s)
    spans = tags_to_spans(tags, strict=True)
    if sum(b - a for _, a, b in spans) != len(tags):
        raise ConversionError(f"sentence at line {s.line}: {fmt} needs every character in a "
                              "word, but some are tagged O")
    return [("".join(s.chars[a:b]), label) for label, a, b in spans]


def _check_tokens(sentences: Sequence[Sentence], fmt: str, single: bool = True) -> None:
    """Every token must be non-empty without whitespace (and one character, unless conll)."""
    for s in sentences:
        if not s.chars:
            raise ConversionError(f"sentence at line {s.line} is empty")
        for c in s.chars:
            if not c or any(x.isspace() for x in c) or (single and len(c) != 1):
                raise ConversionError(f"sentence at line {s.line}: token {c!r} cannot be written "
                                      f"as {fmt} (tokens must be single non-space characters"
                                      f"{'' if single else ' or non-space strings'})")


def _atomic_write(path: str | Path, chunks: Iterator[str] | Iterable[str]) -> None:
    """Write text atomically (see :func:`bmes_tagger.atomic.atomic_write`)."""
    with atomic_write(path) as f:
        for chunk in chunks:
            f.write(chunk)

