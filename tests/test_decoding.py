"""Decoding (NumPy) against brute force: every tag path enumerated with itertools.product; and
against the training side's torch log-partition (an independent implementation)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmes_tagger import decoding
from bmes_tagger.tags import allowed_transitions, tag_inventory

# (num_tags, lengths): batches of 1-3 sentences, seq_len <= 4
CASES = [(3, [4, 2, 1]), (4, [3, 3]), (5, [1, 4]), (5, [2, 4, 3])]


def params(num_tags: int, seed: int, scale: float = 1.0) -> decoding.Transitions:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, scale, num_tags), rng.normal(0, scale, (num_tags, num_tags)),
            rng.normal(0, scale, num_tags))


def batch(num_tags: int, lengths: list[int], seed: int, scale: float = 1.0,
          garbage: float = 1e3) -> np.ndarray:
    """(batch, seq_len, num_tags) random scores, ``garbage`` on padding."""
    rng = np.random.default_rng(seed + 100)
    scores = rng.normal(0, scale, (len(lengths), max(lengths), num_tags))
    for b, n in enumerate(lengths):
        scores[b, n:] = garbage
    return scores


def random_allowed(num_tags: int, seed: int) -> decoding.Transitions:
    """Random legality tables that keep tag 0 legal everywhere (a legal path always exists)."""
    rng = np.random.default_rng(seed + 7)
    start, trans, end = (rng.random(num_tags) < 0.5, rng.random((num_tags, num_tags)) < 0.5,
                         rng.random(num_tags) < 0.5)
    start[0] = end[0] = trans[0, 0] = True
    return start, trans, end


def legal(allowed: decoding.Transitions | None, path: list[int]) -> bool:
    if allowed is None:
        return True
    start, trans, end = allowed
    return bool(start[path[0]] and end[path[-1]]
                and all(trans[a, b] for a, b in itertools.pairwise(path)))


def brute(scores: np.ndarray, p: decoding.Transitions, allowed=None
          ) -> list[tuple[list[int], float]]:
    """Every legal (path, score) of one sentence, best first."""
    seq_len, num_tags = scores.shape
    scored = [(list(q), decoding.path_score(scores, q, *p))
              for q in itertools.product(range(num_tags), repeat=seq_len)
              if legal(allowed, list(q))]
    return sorted(scored, key=lambda ps: -ps[1])


class TestViterbi:
    @pytest.mark.parametrize(("num_tags", "lengths"), CASES)
    def test_matches_brute_force(self, num_tags: int, lengths: list[int]) -> None:
        p = params(num_tags, num_tags)
        scores = batch(num_tags, lengths, num_tags)
        best = decoding.viterbi(scores, np.array(lengths), *p)
        assert best.dtype == np.int64 and best.shape == scores.shape[:2]
        for b, n in enumerate(lengths):
            assert best[b, :n].tolist() == brute(scores[b, :n], p)[0][0]
            assert (best[b, n:] == 0).all()

    @pytest.mark.parametrize(("num_tags", "lengths"), CASES)
    def test_constrained_matches_brute_force_over_legal_paths(self, num_tags: int,
                                                              lengths: list[int]) -> None:
        p = params(num_tags, 3, scale=3.0)
        allowed = random_allowed(num_tags, num_tags)
        scores = batch(num_tags, lengths, 5, scale=3.0)
        best = decoding.viterbi(scores, np.array(lengths), *decoding.constrain(p, allowed))
        for b, n in enumerate(lengths):
            assert best[b, :n].tolist() == brute(scores[b, :n], p, allowed)[0][0]

    def test_zero_transitions_equal_argmax(self) -> None:
        scores = batch(5, [4, 2, 3], 1)
        zero = (np.zeros(5), np.zeros((5, 5)), np.zeros(5))
        best = decoding.viterbi(scores, np.array([4, 2, 3]), *zero)
        for b, n in enumerate([4, 2, 3]):
            assert best[b, :n].tolist() == scores[b, :n].argmax(-1).tolist()

    def test_constraints_beat_huge_scores(self) -> None:
        # A finite penalty such as -1e4 would lose against scores this large; -inf cannot.
        trans = np.array([[0.0, 1e6], [0.0, 0.0]])
        allowed = (np.array([True, True]), np.array([[True, False], [True, True]]),
                   np.array([True, True]))
        scores = np.array([[[1e5, 0.0], [0.0, 1e5]]])
        p = (np.zeros(2), trans, np.zeros(2))
        assert decoding.viterbi(scores, np.array([2]), *p).tolist() == [[0, 1]]
        constrained = decoding.viterbi(scores, np.array([2]), *decoding.constrain(p, allowed))
        assert constrained.tolist() != [[0, 1]]

    @pytest.mark.parametrize("garbage", [float("nan"), float("inf"), float("-inf")])
    def test_non_finite_padding_changes_nothing(self, garbage: float) -> None:
        p = params(4, 2)
        lengths = np.array([6, 2, 4, 1])
        clean = batch(4, list(lengths), 9)
        dirty = batch(4, list(lengths), 9, garbage=garbage)
        for q in (p, decoding.constrain(p, random_allowed(4, 3))):
            assert np.array_equal(decoding.viterbi(dirty, lengths, *q),
                                  decoding.viterbi(clean, lengths, *q))

    @pytest.mark.parametrize("num_tags", [2, 255, 256, 257, 300])
    def test_tag_sets_past_a_byte_match_the_textbook_recursion(self, num_tags: int) -> None:
        """Back pointers are stored in the smallest integer type of the tag ids: the paths of
        tag sets at and past 256 equal a plain per-sentence recursion with int64 pointers."""
        p = params(num_tags, 11, scale=2.0)
        lengths = [5, 3, 1, 6, 4]
        scores = batch(num_tags, lengths, 12, scale=2.0)
        # so that the paths run through the ids a byte cannot hold, where there are such
        scores[..., 256 if num_tags > 256 else num_tags // 2:] += 10.0
        best = decoding.viterbi(scores, np.array(lengths), *p)
        assert num_tags <= 256 or (best >= 256).sum() >= 5
        start, trans, end = p
        for b, n in enumerate(lengths):
            score, pointers = start + scores[b, 0], []
            for t in range(1, n):
                cand = score[:, None] + trans  # (from, to)
                pointers.append(cand.argmax(0))
                score = cand.max(0) + scores[b, t]
            path = [int((score + end).argmax())]
            for back in reversed(pointers):
                path.append(int(back[path[-1]]))
            assert best[b, :n].tolist() == path[::-1]

    def test_padding_invariance(self) -> None:
        p = params(5, 4)
        lengths = [5, 1, 3, 7]
        scores = batch(5, lengths, 4)
        together = decoding.viterbi(scores, np.array(lengths), *p)
        for b, n in enumerate(lengths):
            alone = decoding.viterbi(scores[b:b + 1, :n], np.array([n]), *p)
            assert alone[0].tolist() == together[b, :n].tolist()

    def test_rejects_tables_of_the_wrong_shape(self) -> None:
        with pytest.raises(ValueError, match=r"bool table of shape \(3,\)"):
            decoding.constrain(params(3, 0), (np.ones(3, bool), np.ones((3, 3), bool),
                                              np.ones(3)))


class TestNbest:
    @pytest.mark.parametrize(("num_tags", "lengths"), CASES)
    @pytest.mark.parametrize("k", [1, 3, 7])
    def test_matches_brute_force(self, num_tags: int, lengths: list[int], k: int) -> None:
        p = params(num_tags, k)
        scores = batch(num_tags, lengths, k)
        for b, n in enumerate(lengths):
            got = decoding.nbest(scores[b, :n], *p, k=k)
            want = brute(scores[b, :n], p)[:k]
            assert [q for q, _ in got] == [q for q, _ in want]
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-9)

    def test_returns_every_path_when_k_exceeds_their_number(self) -> None:
        got = decoding.nbest(batch(3, [2], 0)[0], *params(3, 0), k=20)
        assert sorted(q for q, _ in got) == [list(q) for q in itertools.product(range(3),
                                                                                repeat=2)]

    @pytest.mark.parametrize(("num_tags", "lengths"), CASES)
    def test_constrained_matches_brute_force_over_legal_paths(self, num_tags: int,
                                                              lengths: list[int]) -> None:
        p = params(num_tags, 11, scale=3.0)
        allowed = random_allowed(num_tags, num_tags + 1)
        scores = batch(num_tags, lengths, 11, scale=3.0)
        for b, n in enumerate(lengths):
            got = decoding.nbest(scores[b, :n], *decoding.constrain(p, allowed), k=30)
            want = brute(scores[b, :n], p, allowed)[:30]
            assert [q for q, _ in got] == [q for q, _ in want]
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-9)

    def test_k1_equals_viterbi_and_k0_is_refused(self) -> None:
        p = params(5, 2)
        scores = batch(5, [6], 2)[0]
        (path, _), = decoding.nbest(scores, *p, k=1)
        assert path == decoding.viterbi(scores[None], np.array([6]), *p)[0].tolist()
        with pytest.raises(ValueError, match="invalid k: expected >= 1, got 0"):
            decoding.nbest(scores, *p, k=0)


class TestMarginals:
    @pytest.mark.parametrize(("num_tags", "lengths"), CASES)
    def test_match_brute_force(self, num_tags: int, lengths: list[int]) -> None:
        p = params(num_tags, 5)
        scores = batch(num_tags, lengths, 5)
        for b, n in enumerate(lengths):
            paths = brute(scores[b, :n], p)
            log_z = math.log(sum(math.exp(s) for _, s in paths))
            assert decoding.log_partition(scores[b, :n], *p) == pytest.approx(log_z, abs=1e-10)
            expected = np.zeros((n, num_tags))
            for path, s in paths:
                for t, tag in enumerate(path):
                    expected[t, tag] += math.exp(s - log_z)
            np.testing.assert_allclose(decoding.marginals(scores[b, :n], *p), expected,
                                       atol=1e-10)

    def test_log_partition_equals_the_training_sides_torch_forward(self) -> None:
        """The CRF's own log Z (torch, scaled forward with its log-space fallback) and this
        one (NumPy, log space) are separate implementations: they must agree at sizes brute
        force cannot reach."""
        import torch

        from bmes_tagger.crf import CRF

        crf = CRF(9).double()
        with torch.no_grad():
            for param in crf.parameters():
                param.normal_(0.0, 2.0)
        rng = np.random.default_rng(0)
        scores = rng.normal(0, 3, (1, 40, 9))
        mask = torch.ones(1, 40, dtype=torch.bool)
        with torch.no_grad():
            want = float(crf.log_partition(torch.from_numpy(scores), mask)[0])
        p = tuple(x.detach().numpy() for x in (crf.start_transitions, crf.transitions,
                                               crf.end_transitions))
        assert decoding.log_partition(scores[0], *p) == pytest.approx(want, abs=1e-8)


def test_softmax_rows_sum_to_one() -> None:
    probs = decoding.softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(probs.sum(-1), 1.0)
    assert probs[1, 2] == 0.0 and probs[1, 0] == pytest.approx(0.5)


def is_legal_bmes(names: list[str], path: list[int]) -> bool:
    """The BMES rules, written out here separately from tags.allowed_transitions."""
    tags = [names[i] for i in path]
    if tags[0][0] not in "BSO" or tags[-1][0] not in "ESO":
        return False
    for a, b in itertools.pairwise(tags):
        if a[0] in "BM" and not (b[0] in "ME" and b[2:] == a[2:]):
            return False
        if a[0] in "ESO" and b[0] not in "BSO":
            return False
    return True


def test_legality_checker_rejects_illegal_paths() -> None:
    names = tag_inventory("ner", ["A", "B"])
    index = {n: i for i, n in enumerate(names)}
    for bad in (["M-A"], ["B-A"], ["S-A", "E-A"], ["B-A", "E-B"], ["B-A", "S-A"], ["O", "M-B"]):
        assert not is_legal_bmes(names, [index[t] for t in bad])
    for good in (["O"], ["S-B"], ["B-A", "M-A", "E-A", "O"], ["B-B", "E-B", "S-A"]):
        assert is_legal_bmes(names, [index[t] for t in good])


@settings(max_examples=150, deadline=None)
@given(task=st.sampled_from(["cws", "ner", "pos"]), num_types=st.integers(1, 3),
       lengths=st.lists(st.integers(1, 9), min_size=1, max_size=4),
       scale=st.sampled_from([0.5, 5.0, 50.0]), seed=st.integers(0, 2**31 - 1))
def test_decoded_bmes_paths_are_always_legal(task: str, num_types: int, lengths: list[int],
                                             scale: float, seed: int) -> None:
    names = tag_inventory(task, [f"T{i}" for i in range(num_types)])
    num_tags = len(names)
    allowed = tuple(np.array(x, dtype=bool) for x in allowed_transitions(names))
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, scale, (len(lengths), max(lengths), num_tags))
    # large random transitions, as if training had learned to like illegal moves
    p = (rng.normal(0, scale, num_tags), rng.normal(0, scale, (num_tags, num_tags)),
         rng.normal(0, scale, num_tags))
    q = decoding.constrain(p, allowed)
    zero = decoding.constrain((np.zeros(num_tags), np.zeros((num_tags, num_tags)),
                               np.zeros(num_tags)), allowed)
    for table in (q, zero):
        best = decoding.viterbi(scores, np.array(lengths), *table)
        for b, n in enumerate(lengths):
            assert is_legal_bmes(names, best[b, :n].tolist())
    for b, n in enumerate(lengths):
        paths = decoding.nbest(scores[b, :n], *q, k=3)
        assert paths, "a legal path always exists, so n-best must return one"
        assert all(len(path) == n and is_legal_bmes(names, path) for path, _ in paths)


def test_marginals_equal_the_gradient_of_the_torch_log_partition() -> None:
    """d log Z / d emissions is the marginal: the training side's torch CRF (autograd through
    its own forward) against this NumPy forward-backward, at sizes brute force cannot reach."""
    import torch

    from bmes_tagger.crf import CRF

    crf = CRF(8).double()
    with torch.no_grad():
        for param in crf.parameters():
            param.normal_(0.0, 1.0)
    emissions = torch.randn(1, 30, 8, dtype=torch.double, requires_grad=True)
    mask = torch.ones(1, 30, dtype=torch.bool)
    (grad,) = torch.autograd.grad(crf.log_partition(emissions, mask).sum(), emissions)
    p = tuple(x.detach().numpy() for x in (crf.start_transitions, crf.transitions,
                                           crf.end_transitions))
    np.testing.assert_allclose(decoding.marginals(emissions.detach().numpy()[0], *p),
                               grad.numpy()[0], atol=1e-10)
