"""Rating and ranking metrics, vectorised over users.

Ranking metrics take a ``(n_users, k)`` matrix of recommended item ids (``-1``
where a user had fewer than ``k`` candidates) and a boolean relevance matrix of
the same shape, plus each user's number of relevant items. Conventions:
``precision@k = hits / k`` (a short list is not rewarded), ``recall@k = hits /
|relevant|``, ``ndcg@k`` with binary gains and the ideal list of
``min(|relevant|, k)`` hits, ``map@k`` averaging precision at each hit over
``min(|relevant|, k)``. Users with no relevant item are left out of the average
(their recall is undefined), and the number of users ranked is reported.
"""

from __future__ import annotations

import numpy as np


def rating_metrics(pred: np.ndarray, truth: np.ndarray, levels: np.ndarray) -> dict[str, float]:
    """RMSE / MAE / MSE, the same after rounding to the nearest level, and exact-match accuracy."""
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.size == 0:
        raise ValueError("predictions and truth must be non-empty and of the same shape")
    err = pred - truth
    rounded = round_to_levels(pred, levels)
    rerr = rounded - truth
    mse = float(np.mean(err**2))
    return {
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(err))),
        "mse": mse,
        "rmse_rounded": float(np.sqrt(np.mean(rerr**2))),
        "mae_rounded": float(np.mean(np.abs(rerr))),
        "accuracy_rounded": float(np.mean(np.isclose(rounded, truth))),
    }


def round_to_levels(pred: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Snap each prediction to the nearest rating level (ties go to the lower level)."""
    levels = np.sort(np.asarray(levels, dtype=np.float64))
    idx = np.clip(np.searchsorted(levels, pred), 1, len(levels) - 1)
    lower, upper = levels[idx - 1], levels[idx]
    return np.where(pred - lower <= upper - pred, lower, upper)


def ndcg_per_user(
    recommended: np.ndarray, relevant: np.ndarray, n_relevant: np.ndarray, k: int
) -> np.ndarray:
    """Each user's NDCG@k (binary gains, ideal list of ``min(|relevant|, k)`` hits);
    ``nan`` for a user with no relevant item, whose NDCG is undefined."""
    hits = (relevant[:, :k] & (recommended[:, :k] >= 0)).astype(np.float64)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    ideal_len = np.minimum(n_relevant, k).astype(np.int64)
    idcg = np.concatenate([[np.nan], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])[ideal_len]
    return (hits @ discounts) / idcg


def ranking_metrics(
    recommended: np.ndarray, relevant: np.ndarray, n_relevant: np.ndarray, k: int
) -> dict[str, float]:
    """Precision, recall, NDCG, MAP and hit rate at ``k``, averaged over users with relevant items."""
    keep = n_relevant > 0
    recommended, relevant = recommended[keep, :k], relevant[keep, :k]
    hits = (relevant & (recommended >= 0)).astype(np.float64)
    n_rel = n_relevant[keep].astype(np.float64)
    if hits.shape[0] == 0:
        return {f"{m}@{k}": float("nan") for m in ("precision", "recall", "ndcg", "map", "hit")} | {
            "users_ranked": 0
        }
    n_hits = hits.sum(axis=1)
    precision_at_i = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    ap = (precision_at_i * hits).sum(axis=1) / np.minimum(n_rel, k)
    return {
        f"precision@{k}": float(np.mean(n_hits / k)),
        f"recall@{k}": float(np.mean(n_hits / n_rel)),
        f"ndcg@{k}": float(np.mean(ndcg_per_user(recommended, relevant, n_relevant[keep], k))),
        f"map@{k}": float(np.mean(ap)),
        f"hit@{k}": float(np.mean(n_hits > 0)),
        "users_ranked": int(hits.shape[0]),
    }


def coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the catalogue recommended to at least one user."""
    ids = recommended[recommended >= 0]
    return float(np.unique(ids).size / n_items) if n_items else 0.0


def popularity_metrics(
    recommended: np.ndarray, item_count: np.ndarray, n_users: int, k: int
) -> dict[str, float]:
    """Beyond accuracy: does a model only recommend blockbusters?

    ``novelty@k`` is the mean self-information ``-log2(p_i)`` of the recommended
    movies, ``p_i`` the share of training users who rated movie ``i`` (a movie nobody
    rated counts as rated once); ``popularity@k`` is their mean number of training
    ratings. Both average over every recommended slot of every user.
    """
    ids = recommended[:, :k]
    ids = ids[ids >= 0]
    if ids.size == 0 or n_users == 0:
        return {f"novelty@{k}": float("nan"), f"popularity@{k}": float("nan")}
    counts = item_count[ids].astype(np.float64)
    return {
        f"novelty@{k}": float(np.mean(-np.log2(np.maximum(counts, 1.0) / n_users))),
        f"popularity@{k}": float(np.mean(counts)),
    }
