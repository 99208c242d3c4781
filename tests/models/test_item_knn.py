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


def test_pair_predictions_equal_the_full_rows():
    """``predict`` reads each pair off its residual and neighbour rows instead of scoring
    every movie for every user; it must give the full rows' values, across pair chunks."""
    from movierec.config.params import build_section
    from movierec.models.classic import Baseline, ItemKNN, ItemKNNParams

    n_users, n_items = 60, 90
    res = _residuals(n_users, n_items, 1_500, seed=11)
    rng = np.random.default_rng(3)
    model = ItemKNN(build_section(ItemKNNParams, {"damping": 0.5}, "models.item_knn"))
    model.base_ = Baseline(3.5, rng.normal(0, 0.3, n_users), rng.normal(0, 0.3, n_items))
    model.range_ = (1.0, 5.0)
    model.res_ = res
    model.neighbours_ = top_k_similarity(res, k=10, shrink=5.0, min_support=1)
    model.by_neighbour_ = model.neighbours_.T.tocsr()
    model.pair_chunk = 97  # several chunks, the last one short
    users = np.arange(n_users)
    rows = model.score_users(users)
    pair_user = rng.integers(0, n_users, 1_000)
    pair_item = rng.integers(0, n_items, 1_000)
    pairs = model.predict(pair_user, pair_item)
    assert rows.std() > 0.1  # the neighbours really move the scores
    np.testing.assert_allclose(pairs, rows[pair_user, pair_item], atol=1e-5)


@pytest.mark.parametrize("n_pairs", [0, 1, 7, 3_000])
def test_classic_pair_predictions_read_the_right_rows(n_pairs):
    """The classic families predict pairs from blocks of 512 users' full rows; every pair
    must be read from its own user's row and movie, whatever the order of the pairs."""

    class Rows(classic._Classic):
        name = "rows"

        def __init__(self) -> None:
            pass

        def score_users(self, users: np.ndarray) -> np.ndarray:
            return (users[:, None] * 1000 + np.arange(50)[None, :]).astype(np.float32)

    rng = np.random.default_rng(n_pairs)
    user, item = rng.integers(0, 1_500, n_pairs), rng.integers(0, 50, n_pairs)
    expected = (user * 1000 + item).astype(np.float32)
    np.testing.assert_array_equal(Rows().predict(user, item), expected)
