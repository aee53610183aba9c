"""Decoding tag scores into tags: Viterbi, n-best, marginals. NumPy only (no torch), so the same
code decodes for a torch network and for an exported one run by onnxruntime.

Conventions: ``scores`` (batch, seq_len, num_tags) or, per sentence, (seq_len, num_tags)
float; ``lengths`` (batch,) int, each >= 1; positions at or after a sentence's length are
padding and may hold anything (even NaN). ``start`` (num_tags,), ``trans`` (num_tags,
num_tags) [from, to] and ``end`` (num_tags,) are the CRF's scores (zeros for a softmax head);
a move the BMES constraints forbid is -inf there (see :func:`constrain`), so a legal path wins
whenever one exists. Python loops run over time steps only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Transitions = tuple[np.ndarray, np.ndarray, np.ndarray]


def constrain(scores: Transitions, allowed: Transitions | None) -> Transitions:
    """``(start, trans, end)`` with -inf where ``allowed`` (bool tables of the same shapes)
    forbids a move. -inf rather than a large penalty: a legal path always beats an illegal one,
    and decoding only adds and takes maxima, so it never produces NaN."""
    if allowed is None:
        return scores
    out = []
    for values, legal in zip(scores, allowed):
        if legal.shape != values.shape or legal.dtype != np.bool_:
            raise ValueError(f"expected a bool table of shape {values.shape}, got "
                             f"{legal.dtype} {legal.shape}")
        out.append(np.where(legal, values, -np.inf).astype(values.dtype))
    return out[0], out[1], out[2]


def viterbi(scores: np.ndarray, lengths: np.ndarray, start: np.ndarray, trans: np.ndarray,
            end: np.ndarray) -> np.ndarray:
    """Highest-scoring tag path of every sentence of a batch.

    Rows are visited longest first, so that at each step the rows still inside their
    sentence are a prefix and the step touches only those: the loop costs a few NumPy calls
    per step whatever the number of rows, and no work on padding (prediction decodes many
    batches at once this way).

    Returns:
        (batch, seq_len) int64 tag ids; padding positions hold 0.
    """
    batch, seq_len, num_tags = scores.shape
    lengths = np.asarray(lengths)
    order = None
    if batch > 1 and bool((lengths[1:] > lengths[:-1]).any()):
        order = np.argsort(-lengths, kind="stable")
        scores, lengths = scores[order], lengths[order]
    # active[t]: how many rows have a real position t (lengths are non-increasing)
    active = np.searchsorted(-lengths, -np.arange(seq_len), side="left")
    # (batch, num_tags): best score of any prefix ending in each tag
    score = start + scores[:, 0]
    # (seq_len - 1, batch, num_tags): the best predecessor of each tag at each step; padding
    # steps point every tag at itself, so the backtrack walks through them unchanged
    # held in the smallest integer type of the tag ids (a byte for any BMES tag set of up to
    # 63 types): a decoding group's largest array
    back = np.empty((max(seq_len - 1, 0), batch, num_tags),
                    dtype=np.min_scalar_type(max(num_tags - 1, 0)))
    back[...] = np.arange(num_tags)
    for t in range(1, seq_len):
        k = int(active[t])
        # (k, from, to)
        cand = score[:k, :, None] + trans
        idx = cand.argmax(1)
        score[:k] = np.take_along_axis(cand, idx[:, None, :], 1)[:, 0] + scores[:k, t]
        back[t - 1, :k] = idx
    out = np.empty((batch, seq_len), dtype=np.int64)
    current = (score + end).argmax(1)
    out[:, -1] = current
    rows = np.arange(batch)
    for t in range(seq_len - 1, 0, -1):
        current = back[t - 1][rows, current]
        out[:, t - 1] = current
    out[np.arange(seq_len)[None, :] >= lengths[:, None]] = 0
    if order is not None:
        unsorted = np.empty_like(out)
        unsorted[order] = out
        return unsorted
    return out


def nbest(scores: np.ndarray, start: np.ndarray, trans: np.ndarray, end: np.ndarray, k: int
          ) -> list[tuple[list[int], float]]:
    """Up to ``k`` best paths of one sentence with their (unnormalised) scores, best first
    (list Viterbi). Paths through a -inf move are left out, so there may be fewer than ``k``.

    Args:
        scores: (seq_len, num_tags) of one sentence (no padding).
    """
    if k < 1:
        raise ValueError(f"invalid k: expected >= 1, got {k}")
    seq_len, num_tags = scores.shape
    # (k, num_tags): the r-th best partial path ending in each tag; -inf: no such path
    best = np.full((k, num_tags), -np.inf, dtype=np.float64)
    best[0] = start + scores[0]
    back = []
    for t in range(1, seq_len):
        # (k * from, to) candidates; keep the k best per tag
        cand = (best[:, :, None] + trans).reshape(k * num_tags, num_tags)
        order = np.argsort(-cand, axis=0, kind="stable")[:k]
        best = np.take_along_axis(cand, order, 0) + scores[t]
        back.append(order)  # flat (slot, from) index of each survivor's predecessor
    final = (best + end).reshape(-1)
    top = np.argsort(-final, kind="stable")[:k]
    out = []
    for flat in top:
        value = float(final[flat])
        if value == -np.inf:
            break
        slot, tag = divmod(int(flat), num_tags)
        path = [tag]
        for order in reversed(back):
            slot, prev = divmod(int(order[slot, tag]), num_tags)
            tag = prev
            path.append(tag)
        out.append((path[::-1], value))
    return out


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    peak = np.max(x, axis=axis, keepdims=True)
    safe = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - safe), axis=axis, keepdims=True)) + safe
    return np.squeeze(out, axis=axis)


def forward_backward(scores: np.ndarray, start: np.ndarray, trans: np.ndarray, end: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """Log forward and backward variables of one sentence, (seq_len, num_tags) each, and the
    log partition function, in float64."""
    scores = scores.astype(np.float64)
    seq_len, _ = scores.shape
    alpha = np.empty_like(scores)
    beta = np.empty_like(scores)
    alpha[0] = start + scores[0]
    for t in range(1, seq_len):
        alpha[t] = _logsumexp(alpha[t - 1][:, None] + trans, 0) + scores[t]
    beta[-1] = end
    for t in range(seq_len - 2, -1, -1):
        beta[t] = _logsumexp(trans + (scores[t + 1] + beta[t + 1])[None, :], 1)
    return alpha, beta, float(_logsumexp(alpha[-1] + end, 0))


def log_partition(scores: np.ndarray, start: np.ndarray, trans: np.ndarray, end: np.ndarray
                  ) -> float:
    """Log of the summed exp-scores of every path of one sentence, (seq_len, num_tags)."""
    return forward_backward(scores, start, trans, end)[2]


def marginals(scores: np.ndarray, start: np.ndarray, trans: np.ndarray, end: np.ndarray
              ) -> np.ndarray:
    """Posterior probability of each tag at each position of one sentence: (seq_len,
    num_tags), each row summing to 1."""
    alpha, beta, log_z = forward_backward(scores, start, trans, end)
    return np.exp(alpha + beta - log_z)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Per-position softmax over the last axis (the softmax head's probabilities)."""
    shifted = scores - scores.max(-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(-1, keepdims=True)


def path_score(scores: np.ndarray, path: Sequence[int], start: np.ndarray, trans: np.ndarray,
               end: np.ndarray) -> float:
    """The unnormalised score of one path of one sentence."""
    total = float(start[path[0]] + end[path[-1]])
    for t, tag in enumerate(path):
        total += float(scores[t, tag]) + (float(trans[path[t - 1], tag]) if t else 0.0)
    return total
