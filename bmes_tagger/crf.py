"""A linear-chain CRF and a constrained Viterbi decoder. Tensors only: no tag strings here.

Conventions (batch first): ``emissions`` (batch, seq_len, num_tags); ``tags`` (batch, seq_len)
long; ``mask`` (batch, seq_len) bool, left-aligned with the first column all True. Padding may
hold anything and never affects results. Every algorithm is vectorised over the batch and loops
only over time.

Constraints ``allowed = (start (num_tags,), transitions (num_tags, num_tags) [from, to],
end (num_tags,))`` are boolean tables of legal moves; they apply when decoding only, never to
the likelihood, so training sees the unconstrained model.
"""

from __future__ import annotations

import torch
from torch import nn

Allowed = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

# Added to disallowed moves: far below any real path score, yet finite so no NaN appears.
_FORBIDDEN = -1e4


class CRF(nn.Module):
    """Linear-chain conditional random field over ``num_tags`` tags.

    Args:
        num_tags: number of tags (> 0).
    """

    def __init__(self, num_tags: int) -> None:
        if num_tags <= 0:
            raise ValueError(f"invalid number of tags: {num_tags}")
        super().__init__()
        self.num_tags = num_tags
        self.start_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        # transitions[i, j]: score of moving from tag i to tag j
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))

    def forward(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
        reduction: str = "sum",
    ) -> torch.Tensor:
        """Log-likelihood of ``tags`` (not a loss: negate it to minimise).

        Args:
            emissions: (batch, seq_len, num_tags).
            tags: (batch, seq_len).
            mask: (batch, seq_len) bool.
            reduction: ``none`` (batch,), ``sum``, ``mean`` (over sentences) or
                ``token_mean`` (over real tokens).
        """
        if reduction not in ("none", "sum", "mean", "token_mean"):
            raise ValueError(f"invalid reduction: {reduction}")
        self._validate(emissions, mask, tags)
        # (batch,)
        llh = self._path_score(emissions, tags, mask) - self.log_partition(emissions, mask)
        if reduction == "none":
            return llh
        if reduction == "sum":
            return llh.sum()
        if reduction == "mean":
            return llh.mean()
        return llh.sum() / mask.sum()

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Log of the sum of exp-scores of all paths (forward algorithm), shape (batch,)."""
        self._validate(emissions, mask)
        # (batch, num_tags)
        alpha = self.start_transitions + emissions[:, 0]
        for t in range(1, emissions.shape[1]):
            # (batch, from, to) = alpha over "from" + transition + emission over "to"
            scores = alpha.unsqueeze(2) + self.transitions + emissions[:, t].unsqueeze(1)
            alpha = torch.where(mask[:, t, None], torch.logsumexp(scores, dim=1), alpha)
        return torch.logsumexp(alpha + self.end_transitions, dim=1)

    def decode(
        self, emissions: torch.Tensor, mask: torch.Tensor, allowed: Allowed | None = None
    ) -> torch.Tensor:
        """Best tag paths, (batch, seq_len) long; padding positions hold 0."""
        self._validate(emissions, mask)
        return viterbi_decode(emissions, mask, self.start_transitions, self.transitions,
                              self.end_transitions, allowed)

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Posterior probability of each tag at each position (forward-backward).

        Returns:
            (batch, seq_len, num_tags); rows sum to 1 on real positions and are 0 on padding.
        """
        self._validate(emissions, mask)
        batch, seq_len, _ = emissions.shape
        lengths = mask.sum(1)
        alphas = [self.start_transitions + emissions[:, 0]]
        for t in range(1, seq_len):
            scores = alphas[-1].unsqueeze(2) + self.transitions + emissions[:, t].unsqueeze(1)
            alphas.append(torch.where(mask[:, t, None], torch.logsumexp(scores, dim=1),
                                      alphas[-1]))
        # beta[t]: log-sum of scores from position t+1 to the end, given tag at t
        betas = [emissions.new_zeros(batch, self.num_tags)] * seq_len
        last = (lengths - 1).view(-1, 1)
        beta = beta_next = self.end_transitions.expand(batch, -1)
        for t in range(seq_len - 1, -1, -1):
            at_end = (last.squeeze(1) == t)[:, None]
            if t < seq_len - 1:
                # (batch, from, to)
                scores = self.transitions + (emissions[:, t + 1] + beta_next).unsqueeze(1)
                stepped = torch.logsumexp(scores, dim=2)
                beta = torch.where(at_end, self.end_transitions.expand(batch, -1), stepped)
            betas[t] = beta
            beta_next = beta
        # (batch, seq_len, num_tags)
        log_alpha = torch.stack(alphas, 1)
        log_beta = torch.stack(betas, 1)
        log_z = self.log_partition(emissions, mask).view(-1, 1, 1)
        probs = torch.exp(log_alpha + log_beta - log_z)
        return probs * mask.unsqueeze(2)

    def nbest(
        self, emissions: torch.Tensor, mask: torch.Tensor, k: int, allowed: Allowed | None = None
    ) -> list[list[tuple[list[int], float]]]:
        """Up to ``k`` best paths per sentence with their unnormalised scores, best first.

        List Viterbi keeping the k best partial paths per tag at each step.
        """
        self._validate(emissions, mask)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        start, trans, end = _constrained_scores(
            self.start_transitions, self.transitions, self.end_transitions, allowed)
        results = []
        for b in range(emissions.shape[0]):
            n = int(mask[b].sum())
            em = emissions[b, :n]
            # scores: (k_paths, num_tags); paths: k_paths x num_tags lists
            scores = (start + em[0]).unsqueeze(0)
            paths = [[[j] for j in range(self.num_tags)]]
            for t in range(1, n):
                # (k_paths, from, to)
                cand = scores.unsqueeze(2) + trans.unsqueeze(0) + em[t].view(1, 1, -1)
                flat = cand.permute(2, 0, 1).reshape(self.num_tags, -1)  # (to, k_paths*from)
                kk = min(k, flat.shape[1])
                top, idx = flat.topk(kk, dim=1)
                new_paths = []
                for r in range(kk):
                    row = []
                    for j in range(self.num_tags):
                        p, i = divmod(int(idx[j, r]), self.num_tags)
                        row.append(paths[p][i] + [j])
                    new_paths.append(row)
                scores = top.t()
                paths = new_paths
            final = (scores + end.unsqueeze(0)).reshape(-1)
            kk = min(k, final.numel())
            top, idx = final.topk(kk)
            best = []
            for s, i in zip(top.tolist(), idx.tolist()):
                p, j = divmod(i, self.num_tags)
                if s <= _FORBIDDEN / 2:
                    break  # only forbidden paths remain
                best.append((paths[p][j], s))
            results.append(best)
        return results

    def _path_score(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Unnormalised score of the given paths, (batch,)."""
        batch, seq_len, _ = emissions.shape
        maskf = mask.to(emissions.dtype)
        # (batch, seq_len)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        score = self.start_transitions[tags[:, 0]] + (emit * maskf).sum(1)
        if seq_len > 1:
            trans = self.transitions[tags[:, :-1], tags[:, 1:]]  # (batch, seq_len - 1)
            score = score + (trans * maskf[:, 1:]).sum(1)
        last_tags = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)
        return score + self.end_transitions[last_tags]

    def _validate(
        self, emissions: torch.Tensor, mask: torch.Tensor, tags: torch.Tensor | None = None
    ) -> None:
        if emissions.dim() != 3:
            raise ValueError(f"emissions must have dimension of 3, got {emissions.dim()}")
        if emissions.shape[2] != self.num_tags:
            raise ValueError(f"expected last dimension of emissions is {self.num_tags}, "
                             f"got {emissions.shape[2]}")
        if mask.shape != emissions.shape[:2]:
            raise ValueError(f"the first two dimensions of emissions and mask must match, got "
                             f"{tuple(emissions.shape[:2])} and {tuple(mask.shape)}")
        if tags is not None and tags.shape != emissions.shape[:2]:
            raise ValueError(f"the first two dimensions of emissions and tags must match, got "
                             f"{tuple(emissions.shape[:2])} and {tuple(tags.shape)}")
        if emissions.shape[1] == 0 or not bool(mask[:, 0].all()):
            raise ValueError("mask of the first timestep must all be on")


def _constrained_scores(
    start: torch.Tensor, trans: torch.Tensor, end: torch.Tensor, allowed: Allowed | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if allowed is None:
        return start, trans, end
    ok_start, ok_trans, ok_end = (a.to(start.device) for a in allowed)
    return (start + (~ok_start) * _FORBIDDEN, trans + (~ok_trans) * _FORBIDDEN,
            end + (~ok_end) * _FORBIDDEN)


def viterbi_decode(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    start_scores: torch.Tensor | None = None,
    transition_scores: torch.Tensor | None = None,
    end_scores: torch.Tensor | None = None,
    allowed: Allowed | None = None,
) -> torch.Tensor:
    """Highest-scoring tag path per sentence.

    Args:
        emissions: (batch, seq_len, num_tags).
        mask: (batch, seq_len) bool, left-aligned, first column all True.
        start_scores: (num_tags,); default zeros.
        transition_scores: (num_tags, num_tags) [from, to]; default zeros.
        end_scores: (num_tags,); default zeros.
        allowed: optional legality tables; disallowed moves are effectively impossible.

    Returns:
        (batch, seq_len) long; padding positions hold 0. With zero scores and no constraints
        this is ``emissions.argmax(-1)``.
    """
    batch, seq_len, num_tags = emissions.shape
    zeros = emissions.new_zeros(num_tags)
    start = zeros if start_scores is None else start_scores
    trans = emissions.new_zeros(num_tags, num_tags) if transition_scores is None \
        else transition_scores
    end = zeros if end_scores is None else end_scores
    start, trans, end = _constrained_scores(start, trans, end, allowed)
    # (batch, num_tags)
    score = start + emissions[:, 0]
    backpointers = []
    for t in range(1, seq_len):
        # (batch, from, to)
        cand = score.unsqueeze(2) + trans
        best, idx = cand.max(dim=1)
        backpointers.append(idx)
        score = torch.where(mask[:, t, None], best + emissions[:, t], score)
    score = score + end
    lengths = mask.sum(1)
    # Backtrace from each sentence's own last position; before it, padding steps are skipped
    # by carrying the current tag through unchanged.
    best_last = score.argmax(dim=1)  # (batch,)
    path = torch.zeros(batch, seq_len, dtype=torch.long, device=emissions.device)
    current = best_last
    for t in range(seq_len - 1, -1, -1):
        active = t < lengths  # (batch,)
        path[:, t] = torch.where(active, current, torch.zeros_like(current))
        if t > 0:
            prev = backpointers[t - 1].gather(1, current.unsqueeze(1)).squeeze(1)
            # only step back once we are inside the sentence (t <= last index)
            current = torch.where(active, prev, current)
    return path
