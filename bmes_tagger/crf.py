"""A linear-chain CRF: the training side (log-likelihood, log-partition and its gradient).
Tensors only: no tag strings here. Decoding (Viterbi, n-best, marginals) is
:mod:`bmes_tagger.decoding`'s, in NumPy, for every kind of network.

Conventions (batch first): ``emissions`` (batch, seq_len, num_tags) float; ``tags``
(batch, seq_len) long; ``mask`` (batch, seq_len) bool, left-aligned (each row is a run of True
then a run of False) with the first column all True. Padding positions may hold any tag id and
any emission value (even NaN) and never affect results. Every algorithm is vectorised over the
batch; Python loops run over time steps only. BMES constraints apply when decoding only,
never to the likelihood, so training sees the unconstrained model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

REDUCTIONS = ("none", "sum", "mean", "token_mean")


class CRF(nn.Module):
    """Linear-chain conditional random field over ``num_tags`` tags.

    Start and end scores are parameters of their own, so the tag inventory needs no START/STOP
    entries.

    Args:
        num_tags: number of tags (> 0).
    """

    def __init__(self, num_tags: int) -> None:
        if num_tags <= 0:
            raise ValueError(f"invalid number of tags: expected > 0, got {num_tags}")
        super().__init__()
        self.num_tags = num_tags
        # (num_tags,)
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        # (num_tags,)
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        # (num_tags, num_tags); transitions[i, j] is the score of moving from tag i to tag j
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every score from uniform(-0.1, 0.1), as pytorch-crf does."""
        nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        nn.init.uniform_(self.end_transitions, -0.1, 0.1)
        nn.init.uniform_(self.transitions, -0.1, 0.1)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}"

    def forward(
        self,
        emissions: torch.Tensor,
        tags: torch.Tensor,
        mask: torch.Tensor,
        reduction: str = "sum",
    ) -> torch.Tensor:
        """Log-likelihood of the gold ``tags`` (not a loss: negate it to minimise).

        Args:
            emissions: (batch, seq_len, num_tags) unnormalised tag scores.
            tags: (batch, seq_len) gold tag ids; padding positions are ignored.
            mask: (batch, seq_len) bool, left-aligned, first column all True.
            reduction: ``"none"`` gives (batch,); ``"sum"`` and ``"mean"`` sum or average over
                sentences; ``"token_mean"`` divides the sum by the number of real tokens.

        Returns:
            (batch,) for ``"none"``, otherwise a scalar.
        """
        if reduction not in REDUCTIONS:
            raise ValueError(f"invalid reduction: expected one of {REDUCTIONS}, got {reduction!r}")
        _validate(emissions, mask, self.num_tags, tags)
        # (batch,)
        llh = self._path_score(emissions, tags, mask) - self._log_partition(emissions, mask)
        if reduction == "none":
            return llh
        if reduction == "sum":
            return llh.sum()
        if reduction == "mean":
            return llh.mean()
        return llh.sum() / mask.sum()

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Log of the summed exp-scores of all tag paths (forward algorithm).

        Args:
            emissions: (batch, seq_len, num_tags).
            mask: (batch, seq_len) bool, left-aligned, first column all True.

        Returns:
            (batch,) log partition function per sentence.
        """
        _validate(emissions, mask, self.num_tags)
        return self._log_partition(emissions, mask)

    def _scores(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (self.start_transitions.to(dtype), self.transitions.to(dtype),
                self.end_transitions.to(dtype))

    def _log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        start, trans, end = self._scores(emissions.dtype)
        # (batch,)
        return _LogPartition.apply(emissions, mask, start, trans, end)

    def _path_score(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Unnormalised score of the given paths, (batch,); padding tags may be anything."""
        start, trans, end = self._scores(emissions.dtype)
        tags = tags.masked_fill(~mask, 0)
        # (batch, seq_len)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2).masked_fill(~mask, 0.0)
        score = start[tags[:, 0]] + emitted.sum(1)
        if tags.shape[1] > 1:
            # (batch, seq_len - 1)
            moves = trans[tags[:, :-1], tags[:, 1:]].masked_fill(~mask[:, 1:], 0.0)
            score = score + moves.sum(1)
        # (batch,)
        last_tags = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)
        return score + end[last_tags]


def _forward_alphas(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor
) -> torch.Tensor:
    """Forward variables, (batch, seq_len, num_tags): alpha[b, t, j] is the log-sum of the
    scores of all prefixes of length t + 1 that end in tag j. Padding steps carry the last real
    step's values unchanged, so alpha[:, -1] is each sentence's final step."""
    # (batch, num_tags)
    alpha = start + emissions[:, 0]
    alphas = [alpha]
    for t in range(1, emissions.shape[1]):
        # Sum over the previous tag in log space. The emission does not depend on it, so it is
        # added after the reduction: cheaper, and torch.where keeps padding values (even NaN)
        # out of the result.
        # (batch, from, to) -> (batch, to)
        stepped = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
        alpha = torch.where(mask[:, t].unsqueeze(1), stepped, alpha)
        alphas.append(alpha)
    return torch.stack(alphas, dim=1)


def _log_partition_log_space(
    emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, trans: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """(batch,) log Z by the forward algorithm in log space: always finite, differentiable by
    autograd, and the fallback of :class:`_LogPartition`."""
    # (batch, num_tags)
    alpha = _forward_alphas(emissions, mask, start, trans)[:, -1]
    return torch.logsumexp(alpha + end, dim=1)


# Largest relative error in Z (so roughly the absolute error in log Z and in any posterior) that
# underflow may add in _LogPartition before it falls back, in units of the dtype's epsilon.
_UNDERFLOW_TOLERANCE = 64.0


def _underflow_is_negligible(terms: float, spread: float, smallest: float,
                             dtype: torch.dtype) -> bool:
    """Whether underflow in a scaled pass can have changed Z by more than the tolerance.

    Why this bound: every product that underflows (flushed to zero or to a denormal) loses
    less than ``tiny`` in absolute terms, in units where each step's values were renormalised
    to sum 1 by a factor ``z`` (``smallest`` is the least ``z`` of the pass). How much a
    loss at step t can weigh in Z relative to the whole step depends on the rest of the chain
    favouring the affected tag over the others, and that is bounded by ``exp(spread)``, the
    widest range of the start, transition and end scores: the emissions on the other side of
    the step weigh every tag alike. So ``terms`` (products per pass that may underflow: steps
    times products per step) x ``tiny`` x ``exp(spread)`` / ``smallest`` bounds the relative
    error. It is independent of the emissions and below epsilon for any model whose score
    spreads stay under ~30 nats (float32); transition scores ~100 apart, with a competitive
    path dropped early, give a wrong but finite Z without this test (a gold path's
    log-likelihood came out at +57).
    """
    if not (smallest > 0 and math.isfinite(spread)):
        return False
    info = torch.finfo(dtype)
    log_error = math.log(terms * info.tiny) + spread - math.log(smallest)
    return log_error <= math.log(_UNDERFLOW_TOLERANCE * info.eps)


class _LogPartition(torch.autograd.Function):
    """log Z and its gradient by forward-backward in scaled probability space.

    Each step is a (batch, tags) x (tags, tags) matmul and a renormalisation instead of a
    logsumexp over (batch, tags, tags), and the backward is one more such loop plus one matmul
    for the transition gradient (the expected move counts), instead of autograd replaying ~10
    recorded nodes per step. Emissions are shifted by their per-position maximum and scores by
    their maxima before exp, so nothing overflows. Underflow can make the result wrong while
    still finite, so after each loop a bound on what it can have changed is read together with
    the finiteness test, in the one host synchronisation each pass has (no per-step one); if
    the bound exceeds the tolerance (:func:`_underflow_is_negligible`), or a result is not
    finite, the log-space forward algorithm, with autograd, is used instead, so results are
    always those of the log-space definition to within rounding.

    Inputs: emissions (batch, seq_len, num_tags), mask (batch, seq_len) bool (left-aligned,
    first column on), start (num_tags,), trans (num_tags, num_tags) [from, to], end (num_tags,).
    Output: (batch,) log partition function.
    """

    @staticmethod
    def forward(ctx, emissions, mask, start, trans, end):  # type: ignore[override]
        ctx.save_for_backward(emissions, mask, start, trans, end)
        batch, seq_len, num_tags = emissions.shape
        lengths = mask.sum(1)
        # steps before the shortest sentence's end need no padding logic
        dense = int(lengths.min())
        # (batch, seq_len, 1): padding may hold NaN; it only ever reaches torch.where's
        # discarded branch or a masked sum
        shift = emissions.amax(2, keepdim=True)
        # (batch, seq_len, num_tags) exp-emissions, each position's largest is 1
        ex = torch.exp(emissions - shift)
        t_max, s_max, e_max = trans.max(), start.max(), end.max()
        # (num_tags, num_tags), (num_tags,), (num_tags,): largest entry of each is 1
        moves, first, last = (torch.exp(trans - t_max), torch.exp(start - s_max),
                              torch.exp(end - e_max))
        # a_t: alpha_t rescaled to sum 1; z_t: the rescaling factor (1 on padding)
        u = first * ex[:, 0]
        z = u.sum(1, keepdim=True)
        a = u / z
        alphas, norms = [a], [z]
        for t in range(1, seq_len):
            u = (a @ moves) * ex[:, t]
            z = u.sum(1, keepdim=True)
            if t < dense:
                a = u / z
            else:
                real = mask[:, t].unsqueeze(1)
                a = torch.where(real, u / z, a)
                z = z.masked_fill(~real, 1.0)
            alphas.append(a)
            norms.append(z)
        # (batch, seq_len, num_tags), (batch, seq_len)
        scaled_alpha = torch.stack(alphas, 1)
        norm = torch.cat(norms, 1)
        # (batch,) a is each sentence's last real step (padding carried it); the end step is
        # a sum of num_tags products like any other step, so it is tested like one
        final = a @ last
        log_z = (s_max + e_max + t_max * (lengths - 1) + shift.squeeze(2).masked_fill(~mask, 0)
                 .sum(1) + norm.log().sum(1) + torch.log(final))
        # One host synchronisation reads everything the tests need, in as few operations as
        # possible (each costs microseconds on CPU): a sum is finite iff every log Z is; padding
        # z is 1, which can only make the underflow bound stricter.
        (z_min, final_min, log_z_sum, t_min, s_min, e_min, t_top, s_top, e_top) = torch.stack(
            [norm.amin(), final.amin(), log_z.sum(), trans.amin(), start.amin(), end.amin(),
             t_max, s_max, e_max]).tolist()
        ctx.spread = max(t_top - t_min, s_top - s_min, e_top - e_min)
        # each step is num_tags sums of num_tags + 1 products; the end step one sum of num_tags
        ctx.fallback = not (
            math.isfinite(log_z_sum)
            and _underflow_is_negligible(seq_len * num_tags * (num_tags + 1), ctx.spread, z_min,
                                         emissions.dtype)
            and _underflow_is_negligible(num_tags, 0.0, final_min, emissions.dtype))
        if ctx.fallback:
            return _log_partition_log_space(emissions, mask, start, trans, end)
        ctx.scaled = (ex, moves, last, scaled_alpha, norm, dense)
        return log_z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_z):  # type: ignore[override]
        emissions, mask, start, trans, end = ctx.saved_tensors
        if not ctx.fallback:
            grads, sums = _LogPartition._scaled_backward(ctx, grad_z, mask)
            batch, seq_len, num_tags = emissions.shape
            # one synchronisation: whether the gradients are finite (their sums are) and the
            # smallest renormaliser of the betas
            probes = [g.sum() for g in grads] + ([sums.amin()] if sums is not None else [])
            values = torch.stack(probes).tolist()
            sums_min = values[4] if sums is not None else 1.0
            # per step: num_tags^2 products emission x beta and as many with the moves, then
            # the posteriors' num_tags products alpha x beta per position
            terms = seq_len * (2 * num_tags**2 + num_tags)
            if (all(math.isfinite(x) for x in values[:4])
                    and _underflow_is_negligible(terms, ctx.spread, sums_min, emissions.dtype)):
                return grads[0], None, *grads[1:]
        with torch.enable_grad():
            inputs = [x.detach().requires_grad_(True) for x in (emissions, start, trans, end)]
            log_z = _log_partition_log_space(inputs[0], mask, *inputs[1:])
            # with seq_len 1 no move is taken, so transitions are not in the graph
            grads = torch.autograd.grad(log_z, inputs, grad_z, allow_unused=True)
        g_em, g_start, g_trans, g_end = (torch.zeros_like(x) if g is None else g
                                         for x, g in zip(inputs, grads))
        return g_em, None, g_start, g_trans, g_end

    @staticmethod
    def _scaled_backward(
        ctx, grad_z: torch.Tensor, mask: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
               torch.Tensor | None]:
        """Gradients w.r.t. (emissions, start, trans, end): the posterior of each tag at each
        position and of each move, weighted by the upstream gradient of each sentence. Also the
        betas' renormalisers (batch, seq_len - 1), 1 on padding (None for seq_len 1), for the
        underflow test."""
        ex, moves, last, scaled_alpha, norm, dense = ctx.scaled
        batch, seq_len, num_tags = ex.shape
        # b_t: beta_t (everything after t, given the tag at t) up to a per-step factor; only
        # the end score remains at the last real position and on padding
        b = last.expand(batch, num_tags)
        betas = [b]
        sums = []
        for t in range(seq_len - 1, 0, -1):
            prev = (ex[:, t] * b) @ moves.T
            z = prev.sum(1, keepdim=True)
            sums.append(z)
            prev = prev / z
            b = prev if t < dense else torch.where(mask[:, t].unsqueeze(1), prev, last)
            betas.append(b)
        betas.reverse()
        # (batch, seq_len, num_tags)
        scaled_beta = torch.stack(betas, 1)
        norms = None
        if seq_len > 1:
            sums.reverse()
            # padding rows may hold NaN (from padding emissions); they are never checked
            norms = torch.cat(sums, 1).masked_fill(~mask[:, 1:], 1.0)
        joint = scaled_alpha * scaled_beta
        # (batch, seq_len, 1): sum of joint, the factor that turns it into the posterior
        total = joint.sum(2, keepdim=True)
        weight = grad_z.view(batch, 1, 1)
        # posterior * upstream gradient; 0 on padding (masked_fill, so NaN cannot leak)
        grad_emissions = (joint * (weight / total)).masked_fill(~mask.unsqueeze(2), 0.0)
        grad_start = grad_emissions[:, 0].sum(0)
        last_step = (mask.sum(1) - 1).view(batch, 1, 1).expand(batch, 1, num_tags)
        grad_end = grad_emissions.gather(1, last_step).sum((0, 1))
        grad_trans = torch.zeros_like(moves)
        if seq_len > 1:
            # posterior of moving from i at t-1 to j at t is
            #   a[t-1, i] * moves[i, j] * ex[t, j] * b[t, j] / (norm[t] * total[t])
            # so the expected move counts are one (tags, N) x (N, tags) product
            ahead = ex[:, 1:] * scaled_beta[:, 1:] * (weight / (norm.unsqueeze(2) * total)[:, 1:])
            ahead = ahead.masked_fill(~mask[:, 1:].unsqueeze(2), 0.0)
            grad_trans = (scaled_alpha[:, :-1].reshape(-1, num_tags).T
                          @ ahead.reshape(-1, num_tags)) * moves
        return (grad_emissions, grad_start, grad_trans, grad_end), norms


def _validate(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    num_tags: int | None = None,
    tags: torch.Tensor | None = None,
) -> None:
    """Reject inputs that break the conventions in the module docstring (ValueError)."""
    if emissions.dim() != 3:
        raise ValueError(f"emissions must have 3 dimensions (batch, seq_len, num_tags), "
                         f"got {emissions.dim()}")
    if not emissions.is_floating_point():
        raise ValueError(f"emissions must be a floating point tensor, got {emissions.dtype}")
    if num_tags is not None and emissions.shape[2] != num_tags:
        raise ValueError(f"expected last dimension of emissions is {num_tags}, "
                         f"got {emissions.shape[2]}")
    if emissions.shape[2] == 0:
        raise ValueError("emissions must have at least one tag")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
    if mask.shape != emissions.shape[:2]:
        raise ValueError(f"the first two dimensions of emissions and mask must match, "
                         f"got {tuple(emissions.shape[:2])} and {tuple(mask.shape)}")
    if emissions.shape[1] == 0:
        raise ValueError("seq_len must be at least 1, got 0")
    if not bool(mask[:, 0].all()):
        raise ValueError("mask of the first timestep must all be on")
    if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ValueError("mask must be left-aligned: no position may be on after one that is off")
    if tags is not None:
        if tags.shape != mask.shape:
            raise ValueError(f"the first two dimensions of emissions and tags must match, "
                             f"got {tuple(emissions.shape[:2])} and {tuple(tags.shape)}")
        if tags.dtype != torch.long:
            raise ValueError(f"tags must be a long tensor, got {tags.dtype}")
        out_of_range = ((tags < 0) | (tags >= emissions.shape[2])) & mask
        if bool(out_of_range.any()):
            bad = int(tags[out_of_range][0])
            raise ValueError(f"tags on real positions must be in [0, {emissions.shape[2]}), "
                             f"got {bad}")
