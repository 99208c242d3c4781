"""item_knn's neighbour build: blockwise, exact, and bounded in memory on wide catalogues."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import movierec.models.classic as classic
from movierec.models.classic import top_k_similarity


def _residuals(n_users: int, n_items: int, n_ratings: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    cells = rng.choice(n_users * n_items, size=n_ratings, replace=False)
    values = rng.normal(0, 1, n_ratings).astype(np.float32)
    return sp.csr_matrix(
        (values, (cells // n_items, cells % n_items)), shape=(n_users, n_items), dtype=np.float32
    )


def _dense_reference(res: sp.csr_matrix, k: int, shrink: float, min_support: int) -> np.ndarray:
    """The similarity written out cell by cell from its definition (no blocks)."""
    x = res.toarray().astype(np.float64)
    rated = (res.toarray() != 0).astype(np.float64)
    n = x.shape[1]
    sim = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            both = rated[:, i] * rated[:, j]
            support = both.sum()
            if i == j or support < min_support:
                continue
            num = (x[:, i] * x[:, j]).sum()
            den = np.sqrt((x[:, i] ** 2 * rated[:, j]).sum() * (x[:, j] ** 2 * rated[:, i]).sum())
            if den > 0:
                sim[i, j] = num / den * support / (support + shrink)
    top = np.zeros_like(sim)
    for i in range(n):
        order = np.argsort(-sim[i], kind="stable")[:k]
        keep = order[sim[i, order] > 0]
        top[i, keep] = sim[i, keep]
    return top


@pytest.mark.parametrize("block", [1, 7, 10_000])
def test_blockwise_neighbours_match_the_definition(monkeypatch, block):
    monkeypatch.setattr(classic, "SIM_BLOCK", block * 40)  # 40 items: 1, 7 or all rows a block
    res = _residuals(60, 40, 900, seed=3)
    got = top_k_similarity(res, k=5, shrink=10.0, min_support=2).toarray()
    want = _dense_reference(res, k=5, shrink=10.0, min_support=2)
    # float32 sums: same support, values to 1e-5; ties at the k-th value may differ
    assert got.shape == want.shape and ((got > 0).sum(axis=1) <= 5).all()
    np.testing.assert_allclose(np.sort(got, axis=1), np.sort(want, axis=1), atol=1e-5)


def test_block_size_does_not_change_the_neighbours(monkeypatch):
    res = _residuals(300, 500, 12_000, seed=5)
    whole = top_k_similarity(res, k=20, shrink=100.0, min_support=2)
    monkeypatch.setattr(classic, "SIM_BLOCK", 13 * 500)
    blocked = top_k_similarity(res, k=20, shrink=100.0, min_support=2)
    assert (whole != blocked).nnz == 0


def test_wide_catalogue_needs_no_square_matrix():
    """20,000 movies: the dense similarity alone would be 1.5 GiB in float32."""
    res = _residuals(2_000, 20_000, 30_000, seed=7)
    tracemalloc.start()
    nbrs = top_k_similarity(res, k=50, shrink=100.0, min_support=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert nbrs.shape == (20_000, 20_000) and nbrs.getnnz(axis=1).max() <= 50
    assert nbrs.nnz > 0 and peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"
