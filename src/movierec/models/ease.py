"""EASE^R (Steck, "Embarrassingly Shallow Autoencoders", 2019): closed-form item weights.

Scores are ``x_u B`` with ``B = I - P / diag(P)``, ``P = (X^T X + lambda I)^-1``:
the ridge regression of every movie on all the others, with a zero diagonal so a
movie never explains itself. One ``n_items x n_items`` Cholesky solve, on the GPU
when one is present, up to ``dense_max_items`` movies. Above that (ML-25M's 62,000
movies would need 15 GiB a matrix) each movie is regressed on its ``neighbours`` most
co-rated movies only: the same ridge regression restricted to a support of ``k``,
solved a block of movies at a time, giving a sparse ``B`` with ``k`` weights per
movie (exactly the dense solution when ``k = n_items - 1``).
"""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds

from movierec.config import checks
from movierec.config.params import ConfigError
from movierec.data.processed import Processed
from movierec.models.base import FitContext, FitReport
from movierec.models.ranking import Ranker, Weighting, interactions, weigh
from movierec.topk import top_k
from movierec.train.trainer import resolve_device


@dataclass
class EASEParams:
    lambda_: float = 200.0  # L2 penalty (params.yaml key: lambda)
    weighting: Weighting = "rating"  # binary | rating (x = rating / max rating)
    dense_max_items: int = 40000  # dense n_items^2 weights up to here (~6 GB at 40k movies)
    neighbours: int = 200  # above it: weights on each movie's most co-rated movies only

    def validate(self, key: str) -> None:
        checks.positive(key, **{"lambda": self.lambda_})
        for name in ("dense_max_items", "neighbours"):
            if getattr(self, name) < 1:
                raise ConfigError(f"params.yaml: `{key}.{name}` must be at least 1")


def ease_weights(gram: torch.Tensor, lam: float) -> torch.Tensor:
    """``B`` from the Gram matrix ``X^T X``: ``I - P / diag(P)``, zero diagonal.

    ``X^T X + lambda I`` is symmetric positive definite, so a Cholesky factor gives
    ``P`` at half the cost of a general inverse; float32 suffices for lambda >= 1
    (relative error ~1e-6), float64 is the fallback when the factorisation fails.
    """
    n = gram.shape[0]
    a = gram + lam * torch.eye(n, dtype=gram.dtype, device=gram.device)
    factor, info = torch.linalg.cholesky_ex(a)
    if int(info) != 0 and a.dtype != torch.float64:
        factor, _ = torch.linalg.cholesky_ex(a.double())
    p = torch.cholesky_inverse(factor).to(gram.dtype)
    b = -p / torch.diagonal(p)[None, :]
    b.fill_diagonal_(0.0)
    return b


def gram_matrix(x: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """``X^T X`` as a dense float32 tensor: sparse ``X^T`` times dense ``X`` (one pass over
    the ratings, ~20x fewer operations than a dense product on MovieLens densities)."""
    xt = x.T.tocsr()
    with warnings.catch_warnings():  # torch's notes that sparse CSR is "beta"
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        sparse = torch.sparse_csr_tensor(
            torch.from_numpy(xt.indptr.astype(np.int64)),
            torch.from_numpy(xt.indices.astype(np.int64)),
            torch.from_numpy(xt.data.astype(np.float32)),
            size=xt.shape,
        ).to(device)
        return sparse @ torch.from_numpy(x.toarray()).to(device)


BLOCK_MOVIES = 256  # movies whose neighbours are picked together
UNION_MAX = 6144  # movies in one neighbourhood Gram (6144^2 doubles: 288 MiB)
CALL_COST = 1 << 17  # one sparse product's fixed cost, in Gram cells (~5 ms / ~40 ns a cell)


def solve_spd(a: np.ndarray, rhs: np.ndarray, lam: float) -> np.ndarray:
    """``(a_i + lambda I)^-1 rhs_i`` for a stack of Gram matrices, by Cholesky.

    numpy's stacked Cholesky (LAPACK per matrix, one BLAS thread: systems this small
    only lose to threading, badly so on a busy machine) is ~10x faster on the CPU than
    torch's batched one for 200 x 200 systems; torch then applies the two triangular
    solves in one batched call."""
    from threadpoolctl import threadpool_limits

    a.reshape(a.shape[0], -1)[:, :: a.shape[1] + 1] += lam  # the diagonals, in place
    with threadpool_limits(1, user_api="blas"):
        factor = torch.from_numpy(np.linalg.cholesky(a))
    return torch.cholesky_solve(torch.from_numpy(rhs)[:, :, None], factor)[:, :, 0].numpy()


def _solve_groups(nbrs: np.ndarray, k: int) -> int:
    """Movies per Gram: where neighbourhoods overlap (popular movies are everyone's
    neighbours) one Gram of their union serves many movies; where they do not, the union
    grows with every movie and small groups waste less. Picks the group size with the
    fewest Gram cells (plus a fixed cost a product), within ``UNION_MAX``."""
    best, best_cost = 1, float("inf")
    size = nbrs.shape[0]
    while size >= 1:
        unions = [np.unique(nbrs[at : at + size]).size for at in range(0, nbrs.shape[0], size)]
        cost = sum(u * u + CALL_COST for u in unions)
        if max(unions) <= max(UNION_MAX, k) and cost < best_cost:
            best, best_cost = size, cost
        size //= 2
    return best


def neighbourhood_weights(x: sp.csr_matrix, lam: float, k: int) -> sp.csr_matrix:
    """Sparse ``B``: column ``j`` is the ridge regression of movie ``j`` on its ``k`` most
    co-rated movies ``N`` only, ``B[N, j] = (G_NN + lambda I)^-1 G_Nj`` with ``G = X^T X``.

    EASE's column ``j`` is the same regression on all other movies, so with
    ``k = n_items - 1`` this is the dense solution. A block of movies at a time: their
    co-rating counts (to pick ``N``, ties to the lower id), then for each group of them
    (:func:`_solve_groups`) the Gram of the union of their neighbourhoods, and the block's
    systems solved together (:func:`solve_spd`). Memory O(n_items x block + UNION_MAX^2 + block x k^2).
    """
    n = x.shape[1]
    k = min(k, n - 1)
    by_movie, by_user = x.tocsc(), x.T.tocsr()
    rated = by_movie.copy()
    rated.data[:] = 1.0  # co-rating counts pick the neighbours, whatever the weighting
    rows, cols, vals = [], [], []
    for lo in range(0, n, BLOCK_MOVIES):
        movies = np.arange(lo, min(lo + BLOCK_MOVIES, n))
        counts = (rated.T @ rated[:, movies]).toarray().T.astype(np.float64)  # (movies, n)
        # count * n + (n - 1 - id): the same order with ties to the lower id, and no ties
        # left for top_k to settle the slow way (whole numbers: exact below 2^53)
        counts = counts * n + np.arange(n - 1, -1, -1, dtype=np.float64)
        counts[np.arange(movies.size), movies] = -np.inf  # a movie never explains itself
        nbrs = top_k(counts, k)  # (movies, k) most co-rated
        step = _solve_groups(nbrs, k)
        a = np.empty((movies.size, k, k))  # every system of the block, solved in one call
        rhs = np.empty((movies.size, k))
        for at in range(0, movies.size, step):
            part = slice(at, at + step)
            union, local = np.unique(
                np.concatenate([nbrs[part].ravel(), movies[part]]), return_inverse=True
            )
            local_nbrs = local[: nbrs[part].size].reshape(nbrs[part].shape)
            local_self = local[nbrs[part].size :]
            g_union = (by_user[union] @ by_movie[:, union]).toarray().astype(np.float64)
            a[part] = g_union[local_nbrs[:, :, None], local_nbrs[:, None, :]]
            rhs[part] = g_union[local_nbrs, local_self[:, None]]
        rows.append(nbrs.ravel())
        cols.append(np.repeat(movies, k))
        vals.append(solve_spd(a, rhs, lam).ravel())
    b = sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n),
    )
    b.eliminate_zeros()
    return b


class EASE(Ranker):
    """Item-item linear autoencoder in closed form; movie vectors are the rows of ``B``."""

    name = "ease"
    provides = frozenset({"movie_vectors", "fold_in", "explain"})

    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        start = time.perf_counter()
        device = resolve_device(ctx.device)
        self.x_ = interactions(data, self.params.weighting)
        if data.n_items > self.params.dense_max_items:
            self.b_ = neighbourhood_weights(self.x_, self.params.lambda_, self.params.neighbours)
            device = torch.device("cpu")
        else:
            gram = gram_matrix(self.x_, device)
            self.b_ = ease_weights(gram, self.params.lambda_).cpu().numpy()
        report = self.one_shot_report(data, ctx, start)
        report.device = device.type
        return report

    def score_users(self, users: np.ndarray) -> np.ndarray:
        if len(users) == 1 and not sp.issparse(self.b_):  # a server's request: no scipy slicing
            start, stop = self.x_.indptr[users[0]], self.x_.indptr[users[0] + 1]
            return self._one_row(self.x_.indices[start:stop], self.x_.data[start:stop])
        if not sp.issparse(self.b_):
            return np.asarray(self.x_[users] @ self.b_, dtype=np.float32)
        # Sparse B: scipy's sparse product runs on one thread but releases the GIL, and
        # rows are independent, so slices of users on torch's threads give the same rows
        # (1,024 users at ML-25M's shape: 0.88 s in one call, 0.39 s on two threads).
        out = np.empty((len(users), self.b_.shape[1]), dtype=np.float32)
        slices = np.array_split(np.arange(len(users)), max(1, torch.get_num_threads()))

        def fill(rows: np.ndarray) -> None:
            if len(rows):
                (self.x_[users[rows]] @ self.b_).toarray(out=out[rows[0] : rows[-1] + 1])

        with ThreadPoolExecutor(len(slices)) as pool:
            list(pool.map(fill, slices))
        return out

    def score_ratings(self, ratings: sp.spmatrix, data: Processed) -> np.ndarray:
        """A new user's row times ``B``: EASE is item-to-item, so a user it never saw is
        scored exactly as a training user with the same ratings."""
        x = weigh(ratings, self.params.weighting, data.rating_range[1])
        if x.shape[0] == 1 and not sp.issparse(self.b_):  # the same sum as a known user's
            return self._one_row(x.indices, x.data)
        scores = x @ self.b_
        return np.asarray(scores.toarray() if sp.issparse(scores) else scores, dtype=np.float32)

    def contributions(self, ratings: sp.spmatrix, item: int, data: Processed) -> np.ndarray:
        """A score is a sum over the rated movies: each one's weight times its ``B`` entry."""
        x = weigh(ratings, self.params.weighting, data.rating_range[1])
        row = sp.csr_matrix(ratings)
        column = self.b_[:, item]
        column = column.toarray().ravel() if sp.issparse(column) else np.asarray(column)
        weights = np.zeros(data.n_items, dtype=np.float32)
        weights[x.indices] = x.data
        return (weights[row.indices] * column[row.indices]).astype(np.float32)

    def _one_row(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """One user's scores from their rated movies and weights: the rows of dense ``B``
        they pick, summed (a tenth of scipy's time for one row; the same arithmetic for a
        known user and a folded-in one, so both get the same list)."""
        order = np.argsort(items, kind="stable")
        return (weights[order].astype(np.float32) @ self.b_[items[order]])[None]

    def movie_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``B``; for the sparse neighbourhood ``B``, its leading singular directions
        (64), so a wide catalogue never makes a dense ``n_items x n_items`` matrix."""
        rated = np.diff(self.x_.tocsc().indptr) > 0
        if not sp.issparse(self.b_):
            return self.b_, rated
        n = self.b_.shape[0]
        rank = min(64, n - 2)
        u, s, _ = svds(self.b_.astype(np.float64), k=rank, v0=np.full(n, n**-0.5))
        return (u * s).astype(np.float32), rated

    def state(self) -> dict[str, np.ndarray]:
        if not sp.issparse(self.b_):
            return {"b": self.b_}
        b = self.b_
        return {"b_data": b.data, "b_indices": b.indices, "b_indptr": b.indptr}

    def set_state(self, state: dict[str, np.ndarray], data: Processed) -> None:
        if "b" in state:
            # row-major: scipy's sparse @ dense copies a column-major B on every call
            # (5 ms a user on ml-100k); the product itself is the same, bit for bit
            self.b_ = np.ascontiguousarray(state["b"])
        else:
            shape = (data.n_items, data.n_items)
            self.b_ = sp.csr_matrix((state["b_data"], state["b_indices"], state["b_indptr"]), shape)
        self.x_ = interactions(data, self.params.weighting)
