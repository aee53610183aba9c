"""Every public corpus in ../shared/corpora reads with the right format and documented counts."""

from __future__ import annotations

import pytest

from bmes_tagger.corpus import read_corpus, read_word_list
from bmes_tagger.tags import tags_to_spans
from conftest import require_corpora

pytestmark = pytest.mark.slow

# (path, format, task, scheme, sentences, characters) from ../shared/corpora/README.md
CORPORA = [
    ("resume_ner/train.char.bmes", "conll", "ner", "bmes", 3821, 124_099),
    ("resume_ner/dev.char.bmes", "conll", "ner", "bmes", 463, 13_890),
    ("resume_ner/test.char.bmes", "conll", "ner", "bmes", 477, 15_100),
    ("msra_ner/train.char.bmes", "conll", "ner", "bmes", 46_364, 2_169_879),
    ("msra_ner/test.char.bmes", "conll", "ner", "bmes", 4365, 172_601),
    ("peoples_daily_1998_ner_devtest/example.dev", "conll", "ner", "bio", 2318, 109_870),
    ("peoples_daily_1998_ner_devtest/example.test", "conll", "ner", "bio", 4636, 219_197),
    ("sighan2005_pku/pku_test_gold.utf8", "segmented", "cws", "bmes", 1944, 172_733),
    ("sighan2005_msr/msr_test_gold.utf8", "segmented", "cws", "bmes", 3985, 184_355),
    ("sighan2005_as/as_testing_gold.utf8", "segmented", "cws", "bmes", 14_429, 197_681),
    ("peoples_daily_1998_pos/RMRB.seg.utf8", "segmented", "cws", "bmes", 19_484, 1_841_653),
    ("msra_ner/msra_train.seg.utf8", "segmented", "cws", "bmes", 46_364, 2_169_879),
]


@pytest.mark.parametrize(("rel", "fmt", "task", "scheme", "n_sent", "n_chars"), CORPORA,
                         ids=[c[0] for c in CORPORA])
def test_corpus_counts(rel: str, fmt: str, task: str, scheme: str, n_sent: int,
                       n_chars: int) -> None:
    root = require_corpora()
    repair = rel == "resume_ner/train.char.bmes"  # 2 ORG spans cut by a blank line upstream
    sents = read_corpus(root / rel, fmt, task, scheme, repair=repair)
    assert len(sents) == n_sent
    assert sum(len(s.chars) for s in sents) == n_chars


def test_resume_train_upstream_noise_is_reported_with_line() -> None:
    root = require_corpora()
    from bmes_tagger.errors import CorpusFormatError

    with pytest.raises(CorpusFormatError) as info:
        read_corpus(root / "resume_ner/train.char.bmes", "conll", "ner", "bmes")
    assert info.value.line in (62_390, 62_392, 62_389)


def test_msra_entity_counts() -> None:
    root = require_corpora()
    sents = read_corpus(root / "msra_ner/test.char.bmes", "conll", "ner", "bmes")
    counts: dict[str, int] = {}
    for s in sents:
        for label, _, _ in tags_to_spans(s.tags or [], strict=True):
            counts[label] = counts.get(label, 0) + 1
    assert counts == {"PER": 1973, "LOC": 2877, "ORG": 1331}


@pytest.mark.parametrize(("rel", "n"), [("sighan2005_pku/pku_training_words.utf8", 55_303),
                                        ("sighan2005_msr/msr_training_words.utf8", 88_119)])
def test_word_lists(rel: str, n: int) -> None:
    assert len(read_word_list(require_corpora() / rel)) == n
