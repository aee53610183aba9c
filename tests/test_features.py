"""Input features: bigram keys, character classes, pretrained vectors; the model consuming them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bmes_tagger import features
from bmes_tagger.config import Config, ModelConfig, config_from_dict
from bmes_tagger.errors import BmesTaggerError
from bmes_tagger.features import (
    CJK,
    DIGIT,
    LATIN,
    OTHER,
    PUNCT,
    bigram_keys,
    char_class,
    count_bigrams,
    first_bigram,
    load_vectors,
)
from bmes_tagger.model import BiLSTMTagger
from bmes_tagger.vocab import PAD_TOKEN, UNK, UNK_TOKEN, Vocab


def config(normalize: bool = True, **model: object) -> Config:
    return config_from_dict({"data": {"normalize_width": normalize}, "model": model})


def encode(sentences: list[list[str]], vocabs: dict[str, Vocab], cfg: Config
           ) -> dict[str, np.ndarray]:
    return features.encode(sentences, vocabs, cfg)[0]


def test_bigram_keys_and_encoding_both_directions() -> None:
    keys = bigram_keys(["我", "们", "好"])
    assert len(keys) == 3 and keys[0] != keys[1]
    sents = [list("我们好"), list("好我们")]
    counts = count_bigrams(sents, normalize=True)
    vocab = Vocab.build(counts)
    cfg = config(bigram_dim=4, bigram_context="both")
    chars = Vocab(["<pad>", "<unk>", *"我们好"])
    bigram_ids = encode(sents, {"chars": chars, "bigrams": vocab}, cfg)["bigrams"]
    assert bigram_ids.shape == (6, 2)
    ids = bigram_ids.tolist()
    # prev bigram of a token is the next bigram of the token before it, inside a sentence
    assert ids[1][1] == ids[0][0] and ids[2][1] == ids[1][0]
    assert ids[0][1] == vocab.index[first_bigram(list("我们好"))]
    assert ids[3][1] == vocab.index[first_bigram(list("好我们"))]
    assert UNK not in [i for row in ids for i in row]
    unseen = encode([list("们们")], {"chars": Vocab(["<pad>", "<unk>", "们"]), "bigrams": vocab},
                    config(bigram_dim=4))["bigrams"]
    assert unseen[0, 0] == UNK


@pytest.mark.parametrize(("token", "cls"), [("7", DIGIT), ("a", LATIN), ("Z", LATIN),
                                            ("，", PUNCT), ("%", PUNCT), ("中", CJK),
                                            ("𠀀", CJK), ("α", OTHER)])
def test_char_classes(token: str, cls: int) -> None:
    assert char_class(token) == cls


def test_load_vectors_header_optional_and_checked(tmp_path: Path) -> None:
    vocab = Vocab(["<pad>", "<unk>", "我", "们", "好"])
    f = tmp_path / "v.txt"
    f.write_text("2 3\n我 1 2 3\n他 0 0 0\n好 4 5 6\n", encoding="utf-8")
    vectors, coverage = load_vectors(f, vocab, 3)
    assert coverage == pytest.approx(2 / 3)
    assert vectors[2].tolist() == [1, 2, 3] and np.isnan(vectors[3]).all()
    f.write_text("我 1 2 3\n", encoding="utf-8")  # no header
    assert load_vectors(f, vocab, 3)[1] == pytest.approx(1 / 3)
    f.write_text("2 4\n我 1 2 3 4\n", encoding="utf-8")
    with pytest.raises(BmesTaggerError, match="v.txt:1: vectors have dimension 4"):
        load_vectors(f, vocab, 3)
    f.write_text("我 1 2\n", encoding="utf-8")
    with pytest.raises(BmesTaggerError, match="v.txt:1: expected 3 values"):
        load_vectors(f, vocab, 3)
    f.write_text("我 1 x 3\n", encoding="utf-8")
    with pytest.raises(BmesTaggerError, match="non-numeric"):
        load_vectors(f, vocab, 3)


def test_model_with_bigrams_and_classes_is_padding_invariant_and_trains() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(embedding_dim=6, hidden_size=5, bigram_dim=4, bigram_context="both",
                      class_dim=3, head="crf", locked_dropout=True)
    vocabs = {"chars": Vocab(["<pad>", "<unk>", *"abcdefghijklmnopqr"]),
              "bigrams": Vocab(["<pad>", "<unk>", *map(str, range(28))])}
    specs = features.embedding_specs(cfg, vocabs)
    model = BiLSTMTagger(cfg, specs, num_tags=4)
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([6, 3])
    mask = torch.arange(6)[None] < lengths[:, None]
    chars = torch.randint(2, 20, (2, 6), generator=gen) * mask
    bigrams = torch.randint(2, 30, (2, 6, 2), generator=gen) * mask[..., None]
    classes = torch.randint(1, 6, (2, 6), generator=gen) * mask
    inputs = {"chars": chars[..., None], "bigrams": bigrams, "classes": classes[..., None]}
    model.train()
    model(inputs, lengths, torch.zeros(2, 6, dtype=torch.long), mask).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    model.eval()
    together = model.emissions(inputs, lengths)
    alone = model.emissions({k: v[1:, :3] for k, v in inputs.items()}, lengths[1:])
    torch.testing.assert_close(together[1, :3], alone[0])
    with pytest.raises(ValueError, match="reads the input feature bigrams"):
        model.emissions({"chars": inputs["chars"], "classes": inputs["classes"]}, lengths)


@settings(max_examples=150, deadline=None)
@given(corpus=st.lists(st.lists(st.sampled_from("我们好北京ABC1，"), min_size=1, max_size=12),
                       min_size=1, max_size=8),
       train=st.lists(st.lists(st.sampled_from("我们好北京A1"), min_size=1, max_size=12),
                      min_size=1, max_size=8),
       min_char=st.integers(1, 3), min_bigram=st.integers(1, 2),
       context=st.sampled_from(["next", "both"]))
def test_bigram_ids_from_character_codes_equal_the_string_keys(
        corpus: list[list[str]], train: list[list[str]], min_char: int, min_bigram: int,
        context: str) -> None:
    from collections import Counter

    from bmes_tagger.features import BigramTable, encode_bigram_keys

    # vocabularies from `train` (test text has unseen characters and bigrams); with
    # min_char > 1 some bigram tokens are missing from the character vocabulary, where the
    # fast table must refuse (None) rather than give different ids
    vocab = Vocab.build(Counter(c for s in train for c in s), min_char)
    bigrams = Vocab.build(count_bigrams(train, False), min_bigram)
    columns = encode(corpus, {"chars": vocab, "bigrams": bigrams},
                     config(False, bigram_dim=4, bigram_context=context))
    flat = [c for s in corpus for c in s]
    lengths = np.array([len(s) for s in corpus])
    want = encode_bigram_keys(flat, lengths, bigrams, context)
    assert np.array_equal(columns["bigrams"], want)
    table = BigramTable.of(vocab, bigrams)
    covered = all(k.split("\x1f")[0] in vocab.index or k.startswith("\x02")
                  for k in bigrams.tokens[2:])
    if min_char == 1:
        assert table is not None  # every training character is in the vocabulary
    if table is not None:
        assert covered
        assert np.array_equal(table.encode(columns["chars"][:, 0], lengths, context), want)


def test_a_few_lines_use_string_keys_and_a_corpus_builds_the_code_table() -> None:
    """A one-line predict must not pay for the whole bigram table; a corpus builds it once.
    The ids are the string keys' either way."""
    from collections import Counter

    from bmes_tagger.features import BigramTable, encode_bigram_keys

    train = [[chr(0x4E00 + (i * 7 + j) % 500) for j in range(12)] for i in range(400)]
    vocab = Vocab.build(Counter(c for s in train for c in s), 1)
    bigrams = Vocab.build(count_bigrams(train, False), 1)
    cfg = config(False, bigram_dim=4, bigram_context="both")
    for corpus, builds in ((train[:1], False), (train, True)):
        columns = encode(corpus, {"chars": vocab, "bigrams": bigrams}, cfg)
        assert BigramTable.built(vocab, bigrams) is builds
        want = encode_bigram_keys([c for s in corpus for c in s],
                                  np.array([len(s) for s in corpus]), bigrams, "both")
        assert np.array_equal(columns["bigrams"], want)


# tokens a character vocabulary may hold: Han, Latin, a lone surrogate, an astral character,
# a two-character grapheme, and the separator / marker / newline code points themselves
_PAIR_TOKENS = ["我", "们", "A", "\ud800", "\U0001f600", "e\u0301", "\x1f", "\x02", "\x03"]


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(_PAIR_TOKENS), st.sampled_from(_PAIR_TOKENS)),
                      max_size=12),
       chars=st.lists(st.sampled_from(_PAIR_TOKENS), max_size=6),
       fixed=st.integers(0, 3), corpus=st.lists(st.lists(st.sampled_from(_PAIR_TOKENS[:4]),
                                                         min_size=1, max_size=6), max_size=4))
def test_a_loaded_pair_vocabulary_is_the_plain_vocabulary_of_its_tokens(
        pairs: list[tuple[str, str]], chars: list[str], fixed: int,
        corpus: list[list[str]]) -> None:
    """Reading a bigram vocabulary as code-point columns (PairVocab) gives the tokens, ids,
    refusals and code table of the plain Vocab of the same checkpoint data; layouts it
    cannot hold (a two-character token, the separator inside a token, duplicates) go to the
    plain reading, errors included."""
    from bmes_tagger.features import SEP, BigramTable, PairVocab, encode_bigram_keys, vocab_from

    tokens = [PAD_TOKEN, UNK_TOKEN, *(a + SEP + b for a, b in pairs)]
    raw: object = {"tokens": "\n".join(tokens), "fixed": fixed} if fixed else "\n".join(tokens)
    try:
        plain = vocab_from(raw)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)):
            vocab_from(raw, pairs=True)
        return
    loaded = vocab_from(raw, pairs=True)
    regular = len(pairs) > 0 and all(len(a) == len(b) == 1 and "\n" not in a + b
                                     and SEP not in a + b for a, b in pairs)
    assert isinstance(loaded, PairVocab) is regular
    assert len(loaded) == len(plain) and loaded.fixed == plain.fixed
    char_vocab = Vocab([PAD_TOKEN, UNK_TOKEN, *dict.fromkeys(chars)])
    table, want = BigramTable._build(char_vocab, loaded), BigramTable._build(char_vocab, plain)
    assert (table is None) == (want is None)
    if table is not None and want is not None:
        assert np.array_equal(table.codes, want.codes) and np.array_equal(table.ids, want.ids)
    if corpus:  # the ids of real text, by whichever path encoding takes
        cfg = config(False, bigram_dim=4, bigram_context="both")
        got = encode(corpus, {"chars": char_vocab, "bigrams": loaded}, cfg)["bigrams"]
        lengths = np.array([len(x) for x in corpus])
        assert np.array_equal(got, encode_bigram_keys([c for x in corpus for c in x], lengths,
                                                      plain, "both"))
    # built last: the lazy token list and index equal the plain ones
    assert loaded.tokens == plain.tokens and loaded.index == plain.index


def test_class_ids_from_the_vocabulary_table_equal_per_character_classes() -> None:
    from collections import Counter

    vocab = Vocab.build(Counter("我们好A1，"), 1)
    corpus = [list("我们7好Zz，。"), list("x"), list("1A")]  # 7, Z, z, 。, x are unknown
    columns = encode(corpus, {"chars": vocab}, config(False, class_dim=2))
    assert columns["classes"][:, 0].tolist() == [char_class(c) for s in corpus for c in s]


# characters with full-width forms (Ａ, １, ，, ideographic space), their half-width targets,
# a lone surrogate and ordinary Han characters
_MIXED = "我们好Ａ１A1，,\u3000 \ud800x"


@settings(max_examples=150, deadline=None)
@given(corpus=st.lists(st.lists(st.sampled_from(_MIXED), min_size=1, max_size=10),
                       min_size=1, max_size=6),
       vocab_chars=st.lists(st.sampled_from(_MIXED + "京"), max_size=10),
       multi=st.booleans(), normalize=st.booleans(), classes=st.booleans())
def test_character_ids_by_code_point_equal_the_dictionary_lookup(
        corpus: list[list[str]], vocab_chars: list[str], multi: bool, normalize: bool,
        classes: bool) -> None:
    """The code-point fast path gives exactly the ids (and classes) of normalising each token
    and looking it up in the vocabulary, including full-width entries in the vocabulary; a
    multi-character token sends the corpus down the general path, which must agree too."""
    from collections import Counter

    from bmes_tagger.vocab import normalize_width

    vocab = Vocab.build(Counter(vocab_chars + ["北京"] * multi), 1)
    if multi:
        corpus = [*corpus, ["北京", "我"]]
    flat = [c for s in corpus for c in s]
    looked_up = [normalize_width(c) if normalize else c for c in flat]
    columns = encode(corpus, {"chars": vocab}, config(normalize, class_dim=2 if classes else 0))
    assert columns["chars"][:, 0].tolist() == vocab.encode(looked_up)
    if classes:
        # the reference: each normalised token's class from the vocabulary table, or from
        # char_class for unknown ones
        table = [0, 0, *map(char_class, vocab.tokens[2:])]
        assert columns["classes"][:, 0].tolist() == [
            char_class(c) if vocab.index.get(c, UNK) == UNK else table[vocab.index[c]]
            for c in looked_up]
