"""RP3beta (Paudel et al. 2017; Dacrema et al. 2019): a three-step random walk with a
popularity penalty.

A walk from a movie ``i`` to a user who rated it and on to another movie ``j`` that user
rated has probability ``sum_u P(u|i) P(j|u)``. Raising both transition probabilities to
``alpha`` (< 1 flattens them: one heavy rater counts less) and dividing by ``pop(j)^beta``
(how many users rated ``j``: the walk's bias towards blockbusters, taken back) gives the
item-item weights ``W``; each movie keeps its ``k`` largest. A user's scores are their
training row times ``W``, so a user the model never saw is scored from a row of ratings
exactly as a training user is. Built a block of movies at a time, like ``item_knn``:
memory stays ``block x n_items + n_items x k``, never ``n_items^2``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from movierec.config import checks
from movierec.data.processed import Processed
from movierec.models.base import FitContext, FitReport
from movierec.models.classic import SIM_BLOCK, keep_top_k
from movierec.models.ranking import Ranker, Weighting, interactions, weigh


@dataclass
class RP3betaParams:
    alpha: float = 0.4  # exponent of both transition probabilities (1: the plain walk)
    beta: float = 0.6  # popularity penalty: W[i, j] / pop(j)^beta
    k: int = 400  # weights kept per movie
    weighting: Weighting = "rating"  # binary | rating: what the walk's steps are weighted by
    normalize: bool = True  # rescale each movie's kept weights to sum to 1

    def validate(self, key: str) -> None:
        checks.positive(key, alpha=self.alpha)
        checks.non_negative(key, beta=self.beta)
        checks.at_least_one(key, k=self.k)


def _row_stochastic(x: sp.csr_matrix, power: float) -> sp.csr_matrix:
    """Each row divided by its sum (a transition matrix), then raised to ``power``."""
    sums = np.asarray(x.sum(axis=1)).ravel()
    out = sp.csr_matrix(sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ x)
    out.data **= power
    return out


def rp3beta_weights(
    x: sp.csr_matrix, alpha: float, beta: float, k: int, normalize: bool = False
) -> sp.csr_matrix:
    """``W[i, j] = sum_u P(u|i)^alpha P(j|u)^alpha / pop(j)^beta``, the ``k`` largest of each
    row kept (no movie its own neighbour). ``x`` is users x movies, non-negative."""
    x = sp.csr_matrix(x, dtype=np.float64)
    n = x.shape[1]
    movie_to_user = _row_stochastic(x.T.tocsr(), alpha)  # P(u|i)^alpha, movies x users
    user_to_movie = _row_stochastic(x, alpha)  # P(j|u)^alpha, users x movies
    pop = np.diff(x.tocsc().indptr).astype(np.float64)
    penalty = np.divide(1.0, pop**beta, out=np.zeros(n), where=pop > 0)
    rows = max(1, SIM_BLOCK // max(n, 1))
    parts = []
    for lo in range(0, n, rows):
        block = slice(lo, min(n, lo + rows))
        walk = (movie_to_user[block] @ user_to_movie).toarray()
        walk *= penalty[None, :]
        local = np.arange(block.stop - lo)
        walk[local, local + lo] = 0.0
        parts.append(keep_top_k(walk.astype(np.float32), k))
    if not parts:
        return sp.csr_matrix((n, n), dtype=np.float32)
    w = sp.vstack(parts, format="csr")
    if normalize:
        sums = np.asarray(w.sum(axis=1)).ravel()
        w = sp.csr_matrix(
            sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ w
        )
    return w.astype(np.float32)


class RP3beta(Ranker):
    """Item-item random walk with a popularity penalty; scores are ``x_u W``."""

    name = "rp3beta"
    provides = frozenset({"fold_in", "explain"})

    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        start = time.perf_counter()
        p = self.params
        self.x_ = interactions(data, p.weighting)
        self.w_ = rp3beta_weights(self.x_, p.alpha, p.beta, p.k, p.normalize)
        return self.one_shot_report(data, ctx, start)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.x_[users] @ self.w_).toarray(), dtype=np.float32)

    def score_ratings(self, ratings: sp.spmatrix, data: Processed) -> np.ndarray:
        """A new user's weighted row times ``W``: the same product a training user gets."""
        x = weigh(ratings, self.params.weighting, data.rating_range[1])
        return np.asarray((x @ self.w_).toarray(), dtype=np.float32)

    def contributions(self, ratings: sp.spmatrix, item: int, data: Processed) -> np.ndarray:
        """Each rated movie's weight times its walk weight to ``item``: the parts of the score."""
        x = weigh(ratings, self.params.weighting, data.rating_range[1])
        row = sp.csr_matrix(ratings)
        weights = np.zeros(data.n_items, dtype=np.float32)
        weights[x.indices] = x.data
        column = self.w_[:, item].toarray().ravel()
        return (weights[row.indices] * column[row.indices]).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        w = self.w_
        return {"w_data": w.data, "w_indices": w.indices, "w_indptr": w.indptr}

    def set_state(self, state: dict[str, np.ndarray], data: Processed) -> None:
        shape = (data.n_items, data.n_items)
        self.w_ = sp.csr_matrix((state["w_data"], state["w_indices"], state["w_indptr"]), shape)
        self.x_ = interactions(data, self.params.weighting)
