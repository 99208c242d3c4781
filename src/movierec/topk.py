"""The one top-k selection everything ranks with: evaluation, the blends, serving and
the models that keep neighbours (EASE's co-rating lists).

It is exact and tie-broken by index, so a ranking never depends on the library's tie
order, the chunk size or the thread count; it sits below every package that ranks.
"""

from __future__ import annotations

import numpy as np
import torch


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first; ties go to the lower index.

    Entries equal to ``-inf`` (and ``nan``) are never recommended: rows with fewer than
    ``k`` finite scores are padded with ``-1``. Exact and O(n_items) per row (no full
    sort). ``torch.topk`` finds the ``k + 1`` best of every row in one threaded pass;
    where the ``k``-th and ``(k+1)``-th differ, the top-``k`` set is unique and only its
    order is fixed here. The few rows tied at the boundary (or holding ``-inf``/``nan``
    there) go through :func:`_top_k_exact`, so the result never depends on the
    library's tie order, the chunk size or the thread count.
    """
    n_rows, n_cols = scores.shape
    if k <= 0 or n_rows == 0 or n_cols <= k:
        return _top_k_exact(scores, k)
    if n_rows == 1:  # a server's request: no thread pool, a fifth of the time
        return _top_k_row(scores[0], k)[None]
    best_vals, best_cols = torch.topk(torch.from_numpy(np.ascontiguousarray(scores)), k + 1, dim=1)
    vals, cols = best_vals.numpy(), best_cols.numpy()
    # nan counts as the largest for torch.topk, so a row with any nan shows it in vals[:, 0]
    clear = (vals[:, k - 1] > vals[:, k]) & ~np.isnan(vals[:, 0])
    out = np.empty((n_rows, k), dtype=np.int64)
    if clear.any():
        picked_cols, picked_vals = cols[clear, :k], vals[clear, :k]
        by_col = np.argsort(picked_cols, axis=1)
        picked_cols = np.take_along_axis(picked_cols, by_col, axis=1)
        picked_vals = np.take_along_axis(picked_vals, by_col, axis=1)
        out[clear] = np.take_along_axis(picked_cols, _rowwise_order(picked_vals, picked_cols), 1)
    if not clear.all():
        out[~clear] = _top_k_exact(scores[~clear], k)
    return out


def _top_k_row(row: np.ndarray, k: int) -> np.ndarray:
    """:func:`top_k` of one row (``k`` < its length) by partition: everything above the
    ``k``-th best value, then the lowest indices tied with it, ordered by score then index."""
    if np.isnan(row).any():
        row = np.where(np.isnan(row), -np.inf, row)
    kth = np.partition(row, len(row) - k)[len(row) - k]  # the k-th largest value
    above = np.flatnonzero(row > kth)
    tied = np.flatnonzero(row == kth)[: k - len(above)]
    chosen = np.concatenate([above, tied])
    chosen = chosen[np.lexsort((chosen, -row[chosen]))]
    return np.where(np.isneginf(row[chosen]), -1, chosen)


def _top_k_exact(scores: np.ndarray, k: int) -> np.ndarray:
    """:func:`top_k` by partition and a tie count over whole rows: the reference
    definition, used where the k-th best score is tied or not finite."""
    n_rows, n_cols = scores.shape
    kk = min(k, n_cols)
    if kk <= 0 or n_rows == 0:
        return np.full((n_rows, k), -1, dtype=np.int64)
    if np.isnan(scores).any():  # a nan is never recommended, like -inf
        scores = np.where(np.isnan(scores), -np.inf, scores)
    neg = -scores
    kth = -np.partition(neg, kk - 1, axis=1)[:, kk - 1 : kk]  # k-th largest value per row
    above = scores > kth
    tied = scores == kth
    need = kk - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= need))
    rows, cols = np.nonzero(chosen)  # row-major: exactly kk per row
    cols = cols.reshape(n_rows, kk)
    vals = np.take_along_axis(scores, cols, axis=1)
    order = _rowwise_order(vals, cols)
    ranked = np.take_along_axis(cols, order, axis=1)
    ranked = np.where(np.isneginf(np.take_along_axis(vals, order, axis=1)), -1, ranked)
    if kk < k:
        ranked = np.pad(ranked, ((0, 0), (0, k - kk)), constant_values=-1)
    return ranked


def _rowwise_order(vals: np.ndarray, cols: np.ndarray) -> np.ndarray:
    # cols are ascending within each row (from nonzero), so a stable sort on -vals
    # keeps lower item ids first among equal scores.
    return np.argsort(-vals, axis=1, kind="stable")
