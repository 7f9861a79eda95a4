"""Ranking metrics of recommendations, as pure functions (Liang et al. 2018, section 4.2).

For each held-out user: the model scores every item from the fold-in part of the user's history; fold-in items are
never recommended; the ranking is compared with the held-out part.

    Recall@k = |top-k  ∩  held-out| / min(k, |held-out|)        (normalised: 1 when the top-k is all hits)
    DCG@k    = sum over ranks r = 1..k of  hit(r) / log2(r + 1)
    NDCG@k   = DCG@k / (the DCG of a perfect ranking: min(k, |held-out|) hits first)

Each figure is a mean over users, with its standard error (the standard deviation over users / sqrt(users)).
"""

from __future__ import annotations

import numpy as np

DEFAULT_KS = {"recall": (20, 50), "ndcg": (100,)}


def top_k(scores: np.ndarray, seen: np.ndarray, k: int) -> np.ndarray:
    """(U, k) item indices ranked best first, items ``seen`` (U, I) left out (ties: the lower index first)."""
    s = np.where(seen > 0, -np.inf, scores.astype(np.float64))
    k = min(k, s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]  # (U, k) unordered
    order = np.lexsort((part, -np.take_along_axis(s, part, 1)), axis=1)
    return np.take_along_axis(part, order, 1)


def hits(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(U, k) 1.0 where the ranked item is one of the user's held-out items (``targets`` (U, I) 0/1)."""
    return np.take_along_axis(targets > 0, ranked, 1).astype(np.float64)


def recall_at_k(ranked: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """(U,) the normalised recall of each user's first ``k`` ranked items."""
    n = (targets > 0).sum(1)
    return hits(ranked[:, :k], targets).sum(1) / np.maximum(np.minimum(k, n), 1)


def ndcg_at_k(ranked: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """(U,) NDCG of each user's first ``k`` ranked items."""
    h = hits(ranked[:, :k], targets)  # (U, k)
    discount = 1.0 / np.log2(np.arange(2, h.shape[1] + 2))  # rank r (1-based) -> 1 / log2(r + 1)
    dcg = (h * discount).sum(1)
    n = np.minimum((targets > 0).sum(1), h.shape[1])
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[n]
    return dcg / np.maximum(ideal, 1e-12)


def mean_se(values: np.ndarray) -> tuple[float, float]:
    """The mean over users and its standard error."""
    values = np.asarray(values, dtype=np.float64)
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), se


def ranking_report(scores: np.ndarray, seen: np.ndarray, targets: np.ndarray,
                   ks: dict[str, tuple[int, ...]] = DEFAULT_KS) -> dict[str, float]:
    """Recall@k and NDCG@k (means and standard errors) of users with at least one held-out item."""
    users = (targets > 0).sum(1) > 0
    scores, seen, targets = scores[users], seen[users], targets[users]
    ranked = top_k(scores, seen, max(max(v) for v in ks.values()))
    out: dict[str, float] = {}
    for name, fn in (("recall", recall_at_k), ("ndcg", ndcg_at_k)):
        for k in ks.get(name, ()):
            m, se = mean_se(fn(ranked, targets, k))
            out[f"{name}@{k}"] = m
            out[f"{name}@{k}_se"] = se
    out["users"] = int(users.sum())
    return out
