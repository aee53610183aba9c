"""CRF tests against brute force: every tag path is enumerated with itertools.product."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bmes_tagger.crf as crf_module
from bmes_tagger.crf import CRF, _log_partition_log_space, _LogPartition

pytestmark = pytest.mark.filterwarnings("error")

torch.manual_seed(1234)

# (num_tags, lengths): batches of 2-3 sentences, seq_len <= 4, masks of different lengths
CASES = [(3, [4, 2, 1]), (4, [3, 3]), (5, [1, 4]), (5, [2, 4, 3])]


def make_crf(num_tags: int, scale: float = 1.0, grad: bool = False) -> CRF:
    """A float64 CRF with scores larger than the default init, so transitions matter."""
    crf = CRF(num_tags).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0.0, scale)
    return crf.requires_grad_(grad)


def make_batch(
    num_tags: int, lengths: list[int], scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random float64 emissions, tags and mask, with garbage on padding positions."""
    seq_len = max(lengths)
    emissions = torch.randn(len(lengths), seq_len, num_tags, dtype=torch.double) * scale
    mask = torch.arange(seq_len).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    tags = torch.randint(num_tags, (len(lengths), seq_len))
    # Padding may hold anything; it must not change any result.
    emissions = emissions.masked_fill(~mask.unsqueeze(2), 1e3)
    tags = tags.masked_fill(~mask, -100)
    return emissions, tags, mask


def crf_path_score(crf: CRF, emissions: torch.Tensor, path: list[int]) -> float:
    """Score of one path by hand; ``emissions`` is (length, num_tags) for one sentence."""
    start, trans, end = (p.detach() for p in
                         (crf.start_transitions, crf.transitions, crf.end_transitions))
    score = float(start[path[0]]) + float(end[path[-1]])
    for i, tag in enumerate(path):
        score += float(emissions[i, tag])
        if i > 0:
            score += float(trans[path[i - 1], tag])
    return score


def is_allowed(allowed: tuple[torch.Tensor, torch.Tensor, torch.Tensor], path: list[int]) -> bool:
    start, trans, end = allowed
    return (bool(start[path[0]]) and bool(end[path[-1]])
            and all(bool(trans[a, b]) for a, b in itertools.pairwise(path)))


def all_paths(num_tags: int, length: int) -> list[list[int]]:
    return [list(p) for p in itertools.product(range(num_tags), repeat=length)]


def brute_scores(
    crf: CRF, emissions: torch.Tensor, length: int, allowed=None
) -> list[tuple[list[int], float]]:
    """Every (path, score) of one sentence, best first; legal paths only when constrained."""
    em = emissions[:length].detach()
    scored = [(p, crf_path_score(crf, em, p)) for p in all_paths(crf.num_tags, length)
              if allowed is None or is_allowed(allowed, p)]
    return sorted(scored, key=lambda ps: -ps[1])


def brute_log_z(crf: CRF, emissions: torch.Tensor, length: int) -> float:
    return math.log(sum(math.exp(s) for _, s in brute_scores(crf, emissions, length)))


def random_allowed(
    num_tags: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random legality tables that keep tag 0 legal everywhere, so a legal path always exists."""
    start = torch.rand(num_tags, generator=gen) < 0.5
    trans = torch.rand(num_tags, num_tags, generator=gen) < 0.5
    end = torch.rand(num_tags, generator=gen) < 0.5
    start[0] = end[0] = trans[0, 0] = True
    return start, trans, end


class TestInit:
    def test_parameter_shapes_and_range(self):
        crf = CRF(7)
        assert crf.start_transitions.shape == (7,)
        assert crf.end_transitions.shape == (7,)
        assert crf.transitions.shape == (7, 7)
        for p in crf.parameters():
            assert p.abs().max() <= 0.1

    @pytest.mark.parametrize("num_tags", [0, -1])
    def test_rejects_non_positive_num_tags(self, num_tags):
        with pytest.raises(ValueError, match=f"invalid number of tags: expected > 0, "
                                             f"got {num_tags}"):
            CRF(num_tags)

    def test_repr_names_num_tags(self):
        assert "num_tags=4" in repr(CRF(4))


class TestForward:
    @pytest.mark.parametrize(("num_tags", "lengths"), CASES)
    def test_log_partition_matches_brute_force(self, num_tags, lengths):
        crf = make_crf(num_tags)
        emissions, _, mask = make_batch(num_tags, lengths)
        log_z = crf.log_partition(emissions, mask)
        expected = [brute_log_z(crf, emissions[b], n) for b, n in enumerate(lengths)]
        assert log_z.tolist() == pytest.approx(expected, abs=1e-9)

    @pytest.mark.parametrize(("num_tags", "lengths"), CASES)
    def test_log_likelihood_matches_brute_force(self, num_tags, lengths):
        crf = make_crf(num_tags)
        emissions, tags, mask = make_batch(num_tags, lengths)
        llh = crf(emissions, tags, mask, reduction="none")
        expected = [
            crf_path_score(crf, emissions[b, :n], tags[b, :n].tolist())
            - brute_log_z(crf, emissions[b], n)
            for b, n in enumerate(lengths)
        ]
        assert llh.tolist() == pytest.approx(expected, abs=1e-9)

    def test_probabilities_of_all_paths_sum_to_one(self):
        crf = make_crf(3)
        emissions = torch.randn(1, 3, 3, dtype=torch.double)
        mask = torch.ones(1, 3, dtype=torch.bool)
        paths = torch.tensor(all_paths(3, 3))
        llh = crf(emissions.expand(len(paths), 3, 3), paths, mask.expand(len(paths), 3),
                  reduction="none")
        assert float(llh.exp().sum()) == pytest.approx(1.0, abs=1e-12)

    def test_reductions(self):
        crf = make_crf(4)
        emissions, tags, mask = make_batch(4, [4, 2, 3])
        llh = crf(emissions, tags, mask, reduction="none")
        assert llh.shape == (3,)
        total = float(llh.sum())
        assert float(crf(emissions, tags, mask)) == pytest.approx(total)
        assert float(crf(emissions, tags, mask, reduction="sum")) == pytest.approx(total)
        assert float(crf(emissions, tags, mask, reduction="mean")) == pytest.approx(total / 3)
        assert float(crf(emissions, tags, mask, reduction="token_mean")) == pytest.approx(
            total / 9)

    def test_rejects_unknown_reduction(self):
        emissions, tags, mask = make_batch(3, [2])
        with pytest.raises(ValueError, match="invalid reduction: expected one of"):
            make_crf(3)(emissions, tags, mask, reduction="loss")

    def test_log_likelihood_is_at_most_zero(self):
        crf = make_crf(5, scale=3.0)
        emissions, tags, mask = make_batch(5, [4, 1, 3], scale=3.0)
        assert (crf(emissions, tags, mask, reduction="none") <= 1e-12).all()

    def test_gradients_reach_every_parameter_and_not_padding(self):
        crf = make_crf(4, grad=True)
        emissions, tags, mask = make_batch(4, [4, 2])
        emissions.requires_grad_(True)
        crf(emissions, tags, mask).backward()
        for name, p in crf.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert (emissions.grad[~mask] == 0).all()
        assert (emissions.grad[mask] != 0).any()

    def test_nan_in_padding_does_not_leak(self):
        crf = make_crf(3, grad=True)
        emissions, tags, mask = make_batch(3, [3, 1])
        clean = crf(emissions, tags, mask, reduction="none")
        dirty = emissions.masked_fill(~mask.unsqueeze(2), float("nan")).requires_grad_(True)
        llh = crf(dirty, tags, mask, reduction="none")
        assert torch.equal(llh, clean)
        llh.sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in crf.parameters())
        assert torch.isfinite(dirty.grad).all()

    def test_works_in_float32(self):
        crf = CRF(4)
        emissions, tags, mask = make_batch(4, [3, 2])
        llh = crf(emissions.float(), tags, mask, reduction="none")
        assert llh.dtype == torch.float32
        expected = crf.double()(emissions, tags, mask, reduction="none")
        assert llh.tolist() == pytest.approx(expected.tolist(), abs=1e-5)


def brute_log_z_tensor(crf: CRF, emissions: torch.Tensor, length: int) -> torch.Tensor:
    """log Z of one sentence as a differentiable tensor expression over every path, so
    autograd through it is an oracle for the CRF's hand-written backward."""
    start, trans, end = crf.start_transitions, crf.transitions, crf.end_transitions
    scores = []
    for path in all_paths(crf.num_tags, length):
        score = start[path[0]] + end[path[-1]] + emissions[0, path[0]]
        for i in range(1, length):
            score = score + trans[path[i - 1], path[i]] + emissions[i, path[i]]
        scores.append(score)
    return torch.logsumexp(torch.stack(scores), dim=0)


class TestGradients:
    @pytest.mark.parametrize(("num_tags", "lengths"), CASES)
    def test_match_autograd_through_brute_force(self, num_tags, lengths):
        crf = make_crf(num_tags, grad=True)
        emissions, tags, mask = make_batch(num_tags, lengths)
        emissions.requires_grad_(True)
        # an arbitrary upstream gradient per sentence, as a weighted loss would give
        weights = torch.randn(len(lengths), dtype=torch.double)
        params = [emissions, *crf.parameters()]
        got = torch.autograd.grad((crf.log_partition(emissions, mask) * weights).sum(), params)
        brute = sum(w * brute_log_z_tensor(crf, emissions[b], n)
                    for b, (w, n) in enumerate(zip(weights, lengths)))
        expected = torch.autograd.grad(brute, params)
        for name, g, e in zip(["emissions", "start", "end", "transitions"], got, expected):
            assert torch.allclose(g, e, atol=1e-10), name

    @settings(max_examples=40, deadline=None)
    @given(num_tags=st.integers(1, 5),
           lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
           seed=st.integers(0, 2**16))
    def test_gradcheck(self, num_tags, lengths, seed):
        torch.manual_seed(seed)
        crf = make_crf(num_tags, scale=2.0, grad=True)
        emissions, _, mask = make_batch(num_tags, lengths, scale=2.0)
        emissions = emissions.masked_fill(~mask.unsqueeze(2), 0.0).requires_grad_(True)

        def log_z(em, start, trans, end):
            return _LogPartition.apply(em, mask, start, trans, end)

        inputs = (emissions, *(p.detach().clone().requires_grad_(True) for p in
                               (crf.start_transitions, crf.transitions, crf.end_transitions)))
        assert torch.autograd.gradcheck(log_z, inputs)

    def test_underflow_falls_back_to_log_space(self):
        # In float32, exp(-500) is 0: the scaled forward's only surviving paths vanish, so the
        # log-space algorithm must take over and give the exact answer and gradients.
        crf = CRF(2)
        with torch.no_grad():
            crf.start_transitions.zero_()
            crf.end_transitions.zero_()
            crf.transitions.copy_(torch.tensor([[0.0, -500.0], [0.0, 0.0]]))
        emissions = torch.tensor([[[0.0, -500.0], [-500.0, 0.0]]], requires_grad=True)
        mask = torch.ones(1, 2, dtype=torch.bool)
        log_z = crf.log_partition(emissions, mask)
        # paths (0,0), (0,1), (1,1) score -500 each, (1,0) -1000
        assert float(log_z.detach()) == pytest.approx(-500 + math.log(3), abs=1e-4)
        log_z.sum().backward()
        assert torch.allclose(emissions.grad, torch.tensor([[[2 / 3, 1 / 3], [1 / 3, 2 / 3]]]))
        assert torch.allclose(crf.transitions.grad, torch.tensor([[1 / 3, 1 / 3], [0, 1 / 3]]))

    def test_training_loss_gradients_equal_autograd_of_the_loop(self):
        # at a realistic size: 33 tags, float32, the loss the model trains on
        torch.manual_seed(3)
        crf = CRF(33)
        emissions = torch.randn(6, 20, 33).requires_grad_(True)
        lengths = torch.tensor([20, 17, 9, 1, 13, 20])
        mask = torch.arange(20).unsqueeze(0) < lengths.unsqueeze(1)
        tags = torch.randint(33, (6, 20))
        params = [emissions, *crf.parameters()]
        got = torch.autograd.grad(-crf(emissions, tags, mask), params)
        # the plain autograd formulation: forward algorithm recorded step by step
        start, trans, end = crf.start_transitions, crf.transitions, crf.end_transitions
        alpha = start + emissions[:, 0]
        for t in range(1, 20):
            stepped = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), stepped, alpha)
        log_z = torch.logsumexp(alpha + end, dim=1)
        loss = (log_z - crf._path_score(emissions, tags, mask)).sum()
        expected = torch.autograd.grad(loss, params)
        for g, e in zip(got, expected):
            assert torch.allclose(g, e, atol=1e-5)


def stable_brute_log_z(crf: CRF, emissions: torch.Tensor, length: int) -> float:
    """log Z of one sentence over every path, in float64 and safe for scores of -1e4."""
    scores = [score for _, score in brute_scores(crf, emissions.double(), length)]
    top = max(scores)
    return top + math.log(sum(math.exp(score - top) for score in scores))


def log_space_oracle(
    crf: CRF, emissions: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor
) -> list[torch.Tensor]:
    """Gradients of sum(weights * log Z) w.r.t. (emissions, start, end, transitions) by
    autograd through the float64 log-space forward algorithm (padding zeroed)."""
    em = emissions.detach().double().masked_fill(~mask.unsqueeze(2), 0.0).requires_grad_(True)
    start, trans, end = (p.detach().double().requires_grad_(True) for p in
                         (crf.start_transitions, crf.transitions, crf.end_transitions))
    log_z = _log_partition_log_space(em, mask, start, trans, end)
    grads = torch.autograd.grad((log_z * weights.double()).sum(), [em, start, end, trans],
                                allow_unused=True)
    return [torch.zeros_like(x) if g is None else g
            for x, g in zip([em, start, end, trans], grads)]


class TestUnderflow:
    """The scaled forward-backward must give the log-space answer however far apart the scores
    are: underflow that leaves results finite but wrong must be caught, not only NaN/inf."""

    @staticmethod
    def finite_but_wrong_case() -> tuple[CRF, torch.Tensor, torch.Tensor, torch.Tensor]:
        # In float32 exp(-110) and exp(-120) are 0. The best path A B B B B (score -110) starts
        # with the move A->B of -110, which underflows; the scaled forward then only sees the
        # A A A A A paths (-200) and, before the fix, gave log Z = -200 and this gold path a
        # log-likelihood of +90, with nothing non-finite to trigger the fallback.
        crf = CRF(2)
        with torch.no_grad():
            crf.start_transitions.zero_()
            crf.end_transitions.zero_()
            crf.transitions.copy_(torch.tensor([[0.0, -110.0], [-110.0, 0.0]]))
        emissions = torch.tensor([[[0.0, -120.0]] + [[-50.0, 0.0]] * 4])
        return crf, emissions, torch.tensor([[0, 1, 1, 1, 1]]), torch.ones(1, 5, dtype=torch.bool)

    def test_finite_but_wrong_underflow_is_caught(self):
        crf, emissions, tags, mask = self.finite_but_wrong_case()
        emissions.requires_grad_(True)
        llh = crf(emissions, tags, mask, reduction="none")
        expected_log_z = stable_brute_log_z(crf, emissions[0].detach(), 5)
        assert expected_log_z == pytest.approx(-110.0, abs=1e-4)
        assert float(crf.log_partition(emissions, mask).detach()) == pytest.approx(expected_log_z,
                                                                          abs=1e-3)
        assert float(llh.detach()) <= 1e-4
        got = torch.autograd.grad(crf.log_partition(emissions, mask).sum(),
                                  [emissions, *crf.parameters()])
        expected = log_space_oracle(crf, emissions, mask, torch.ones(1))
        for name, g, e in zip(["emissions", "start", "end", "transitions"], got, expected):
            assert torch.allclose(g.double(), e, atol=1e-4), name

    @settings(max_examples=150, deadline=None)
    @given(num_tags=st.integers(1, 4),
           lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
           spreads=st.tuples(*[st.sampled_from([0.0, 20.0, 60.0, 110.0, 200.0, 400.0])] * 3),
           seed=st.integers(0, 2**16))
    def test_large_score_spreads_match_brute_force(self, num_tags, lengths, spreads, seed):
        """float32, scores hundreds of nats apart: log Z equals float64 brute force, every
        path's log-likelihood is <= 0, and the gradient equals autograd in log space."""
        torch.manual_seed(seed)
        trans_spread, edge_spread, emission_spread = spreads
        crf = CRF(num_tags)
        with torch.no_grad():
            crf.transitions.uniform_(-trans_spread, 0.0).add_(torch.randn(num_tags, num_tags))
            crf.start_transitions.uniform_(-edge_spread, 0.0)
            crf.end_transitions.uniform_(-edge_spread, 0.0)
        seq_len = max(lengths)
        mask = torch.arange(seq_len).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
        emissions = (torch.rand(len(lengths), seq_len, num_tags) * -emission_spread
                     + torch.randn(len(lengths), seq_len, num_tags))
        emissions = emissions.masked_fill(~mask.unsqueeze(2), float("nan")).requires_grad_(True)
        weights = torch.randn(len(lengths))
        log_z = crf.log_partition(emissions, mask)
        for b, n in enumerate(lengths):
            expected = stable_brute_log_z(crf, emissions[b].detach(), n)
            assert float(log_z[b].detach()) == pytest.approx(expected,
                                                      abs=1e-3 + 1e-5 * abs(expected))
            best_path, best = brute_scores(crf, emissions[b].detach().double(), n)[0]
            tags = torch.tensor([best_path + [0] * (seq_len - n)])
            llh = crf(emissions[b:b + 1, :], tags, mask[b:b + 1], reduction="none")
            # the best path's is the largest log-likelihood of all; <= 0 up to rounding
            assert float(llh.detach()) <= 1e-3 + 1e-5 * abs(best)
        got = torch.autograd.grad((log_z * weights).sum(), [emissions, *crf.parameters()])
        expected_grads = log_space_oracle(crf, emissions, mask, weights)
        for name, g, e in zip(["emissions", "start", "end", "transitions"], got,
                              expected_grads):
            if name == "emissions":
                g = g.masked_fill(~mask.unsqueeze(2), 0.0)
            assert torch.isfinite(g).all(), name
            assert torch.allclose(g.double(), e, atol=5e-4), (name, (g.double() - e).abs().max())

    def test_normal_scores_never_leave_the_fast_path(self, monkeypatch):
        def refuse(*args):
            raise AssertionError("log-space fallback used")

        monkeypatch.setattr(crf_module, "_log_partition_log_space", refuse)
        torch.manual_seed(5)
        for num_tags, emission_sd, trans_sd in ((4, 5.0, 0.1), (33, 5.0, 3.0), (33, 30.0, 3.0),
                                                (4, 100.0, 5.0)):
            crf = CRF(num_tags)
            with torch.no_grad():
                for p in crf.parameters():
                    p.normal_(0.0, trans_sd)
            lengths = torch.tensor([30, 30, 17, 1, 9])
            mask = torch.arange(30).unsqueeze(0) < lengths.unsqueeze(1)
            emissions = (torch.randn(5, 30, num_tags) * emission_sd).requires_grad_(True)
            tags = torch.randint(num_tags, (5, 30))
            # emission margins of hundreds of nats underflow too, but harmlessly: the bound
            # depends on the transition, start and end spreads only
            (-crf(emissions, tags, mask)).backward()

    def test_fallback_gradient_with_only_single_token_sentences(self):
        # no move is taken, so the log-space fallback's graph has no transitions in it (this
        # used to raise "One of the differentiated Tensors appears to not have been used")
        crf = CRF(3)
        with torch.no_grad():
            crf.start_transitions.copy_(torch.tensor([0.0, -500.0, -1000.0]))
            crf.end_transitions.zero_()
        emissions = torch.tensor([[[0.0, 500.0, 0.0]], [[1.0, 2.0, 3.0]]], requires_grad=True)
        mask = torch.ones(2, 1, dtype=torch.bool)
        log_z = crf.log_partition(emissions, mask)
        log_z.sum().backward()
        expected = log_space_oracle(crf, emissions, mask, torch.ones(2))
        got = [emissions.grad, *(p.grad for p in crf.parameters())]
        for name, g, e in zip(["emissions", "start", "end", "transitions"], got, expected):
            assert torch.allclose(g.double(), e, atol=1e-5), name
        assert torch.equal(crf.transitions.grad, torch.zeros(3, 3))


class TestValidation:
    def setup_method(self):
        self.crf = CRF(3)
        self.emissions = torch.randn(2, 4, 3)
        self.tags = torch.zeros(2, 4, dtype=torch.long)
        self.mask = torch.ones(2, 4, dtype=torch.bool)

    def test_emissions_must_be_3d(self):
        with pytest.raises(ValueError, match="emissions must have 3 dimensions"):
            self.crf.log_partition(self.emissions[0], self.mask)

    def test_last_dimension_must_be_num_tags(self):
        with pytest.raises(ValueError, match="expected last dimension of emissions is 3, got 5"):
            self.crf(torch.randn(2, 4, 5), self.tags, self.mask)

    def test_mask_shape_must_match(self):
        with pytest.raises(ValueError, match=r"got \(2, 4\) and \(2, 3\)"):
            self.crf.log_partition(self.emissions, self.mask[:, :3])

    def test_tags_shape_must_match(self):
        with pytest.raises(ValueError, match="emissions and tags must match"):
            self.crf(self.emissions, self.tags[:1], self.mask)

    def test_first_mask_column_must_be_on(self):
        mask = self.mask.clone()
        mask[1, 0] = False
        calls = [lambda: self.crf(self.emissions, self.tags, mask),
                 lambda: self.crf.log_partition(self.emissions, mask)]
        for call in calls:
            with pytest.raises(ValueError, match="mask of the first timestep must all be on"):
                call()

    def test_mask_must_be_left_aligned(self):
        mask = self.mask.clone()
        mask[0, 1] = False
        with pytest.raises(ValueError, match="mask must be left-aligned"):
            self.crf.log_partition(self.emissions, mask)

    def test_mask_must_be_bool(self):
        with pytest.raises(ValueError, match="mask must be a bool tensor, got torch.int64"):
            self.crf.log_partition(self.emissions, self.mask.long())

    def test_empty_sequence_rejected(self):
        with pytest.raises(ValueError, match="seq_len must be at least 1"):
            self.crf.log_partition(torch.randn(2, 0, 3), torch.ones(2, 0, dtype=torch.bool))

    def test_real_tags_must_be_in_range(self):
        tags = self.tags.clone()
        tags[1, 2] = 3
        with pytest.raises(ValueError, match=r"must be in \[0, 3\), got 3"):
            self.crf(self.emissions, tags, self.mask)
