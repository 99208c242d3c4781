"""Classic baselines: biases, item-item kNN, truncated SVD, genre content-based.

They are fitted in closed form or a few vectorised sweeps (numpy / scipy / torch
for the kNN top-k), and share the regularised bias baseline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import svds

from movierec.config import checks
from movierec.data.processed import Processed
from movierec.models.base import FitContext, FitReport, Recommender


@dataclass
class Baseline:
    """Global mean plus regularised user and item biases."""

    mu: float
    b_user: np.ndarray
    b_item: np.ndarray

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        return (self.mu + self.b_user[user] + self.b_item[item]).astype(np.float32)

    def rows(self, users: np.ndarray) -> np.ndarray:
        return (self.mu + self.b_user[users][:, None] + self.b_item[None, :]).astype(np.float32)


def fit_baseline(
    data: Processed, reg_user: float, reg_item: float, sweeps: int, on_sweep=None
) -> Baseline:
    """Alternating closed-form updates of item then user biases (a few sweeps converge)."""
    tr = data.splits["train"]
    mu = float(tr.rating.mean())
    n_u = np.bincount(tr.user, minlength=data.n_users)
    n_i = np.bincount(tr.item, minlength=data.n_items)
    b_user = np.zeros(data.n_users)
    b_item = np.zeros(data.n_items)
    for sweep in range(sweeps):
        b_item = np.bincount(tr.item, tr.rating - mu - b_user[tr.user], data.n_items) / (
            n_i + reg_item
        )
        b_user = np.bincount(tr.user, tr.rating - mu - b_item[tr.item], data.n_users) / (
            n_u + reg_user
        )
        if on_sweep is not None:
            on_sweep(sweep + 1, Baseline(mu, b_user, b_item))
    return Baseline(mu, b_user, b_item)


def folded_baseline(base: Baseline, rows: sp.spmatrix, reg_user: float) -> Baseline:
    """The baseline of new users given as rows of ratings: each one's bias is the closed
    form the last sweep of :func:`fit_baseline` solves for a training user (the item
    biases fixed), so a training user's own row gives back their bias."""
    rows = sp.csr_matrix(rows, dtype=np.float64)
    counts = np.diff(rows.indptr)
    owner = np.repeat(np.arange(rows.shape[0]), counts)
    offsets = rows.data - base.mu - base.b_item[rows.indices]
    b_user = np.bincount(owner, offsets, rows.shape[0]) / (counts + reg_user)
    return Baseline(base.mu, b_user, base.b_item)


def residual_matrix(data: Processed, base: Baseline) -> sp.csr_matrix:
    """Training ratings minus the baseline, as a CSR user x item matrix."""
    tr = data.splits["train"]
    res = tr.rating - base.predict(tr.user, tr.item)
    return sp.csr_matrix(
        (res.astype(np.float32), (tr.user, tr.item)), shape=(data.n_users, data.n_items)
    )


class _Classic(Recommender):
    """Shared plumbing: a baseline, clipping to the rating range, one logged step."""

    base_: Baseline
    range_: tuple[float, float]

    def _fit_base(self, data: Processed) -> None:
        p = self.params
        self.base_ = fit_baseline(data, p.reg_user, p.reg_item, p.sweeps)
        self.range_ = data.rating_range

    def _report(self, data: Processed, ctx: FitContext, start: float, epochs: int = 1) -> FitReport:
        val = data.splits["val"]
        entry: dict[str, float] = {"epoch": epochs, "seconds": time.perf_counter() - start}
        if len(val):
            err = self.predict(val.user, val.item) - val.rating
            entry |= {
                "val_rmse": float(np.sqrt(np.mean(err**2))),
                "val_mae": float(np.mean(np.abs(err))),
            }
        seconds = time.perf_counter() - start  # one-shot: no learning curve to log
        return FitReport(seconds, epochs, epochs, seconds, "cpu", [entry])

    def _clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, *self.range_).astype(np.float32)

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        out = np.empty(len(user), dtype=np.float32)
        uniq, inv = np.unique(user, return_inverse=True)
        order = np.argsort(inv, kind="stable")  # pairs grouped by user: a block is a slice
        bounds = np.searchsorted(inv[order], np.arange(0, len(uniq) + 512, 512))
        for b, lo in enumerate(range(0, len(uniq), 512)):
            rows = self.score_users(uniq[lo : lo + 512])
            sel = order[bounds[b] : bounds[b + 1]]
            out[sel] = rows[inv[sel] - lo, item[sel]]
        return out

    def _base_state(self) -> dict[str, np.ndarray]:
        return {
            "mu": np.array(self.base_.mu),
            "b_user": self.base_.b_user,
            "b_item": self.base_.b_item,
            "range": np.array(self.range_),
        }

    def _set_base_state(self, state: dict[str, np.ndarray]) -> None:
        self.base_ = Baseline(float(state["mu"]), state["b_user"], state["b_item"])
        self.range_ = (float(state["range"][0]), float(state["range"][1]))


# ------------------------------------------------------------------------------ bias


@dataclass
class BiasParams:
    reg_user: float = 5.0
    reg_item: float = 10.0
    sweeps: int = 10

    def validate(self, key: str) -> None:
        checks.non_negative(key, reg_user=self.reg_user, reg_item=self.reg_item)
        checks.at_least_one(key, sweeps=self.sweeps)


class BiasModel(_Classic):
    """Global mean plus regularised user and item biases: the bar every model must beat."""

    name = "bias"

    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        start = time.perf_counter()
        self._fit_base(data)
        return self._report(data, ctx, start, self.params.sweeps)

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        return self._clip(self.base_.predict(user, item))

    def score_users(self, users: np.ndarray) -> np.ndarray:
        return self._clip(self.base_.rows(users))

    def state(self) -> dict[str, np.ndarray]:
        return self._base_state()

    def set_state(self, state: dict[str, np.ndarray], data: Processed) -> None:
        self._set_base_state(state)


# ------------------------------------------------------------------------------ item kNN


@dataclass
class ItemKNNParams:
    k: int = 100
    shrink: float = 100.0
    damping: float = 0.5
    min_support: int = 2
    reg_user: float = 5.0
    reg_item: float = 10.0
    sweeps: int = 10

    def validate(self, key: str) -> None:
        checks.at_least_one(key, k=self.k)
        checks.non_negative(key, shrink=self.shrink, damping=self.damping)


SIM_BLOCK = 1 << 22  # similarity cells per block of items: 16 MiB a float32 array


def top_k_similarity(res: sp.csr_matrix, k: int, shrink: float, min_support: int) -> sp.csr_matrix:
    """Each item's ``k`` most similar items: Pearson-baseline similarity of residual
    columns, shrunk by co-rating support, positive only.

    Built one block of items at a time (``SIM_BLOCK`` cells), keeping ``k`` per item,
    so memory is O(block x n_items + n_items x k) instead of n_items^2: a 62,000-movie
    catalogue needs megabytes, not the 15 GiB of the dense matrix.
    """
    n = res.shape[1]
    binary = res.copy()
    binary.data[:] = 1.0
    squares = res.multiply(res).tocsr()
    by_item = {"res": res.tocsc(), "binary": binary.tocsc(), "squares": squares.tocsc()}
    rows = max(1, SIM_BLOCK // max(n, 1))
    parts = []
    for lo in range(0, n, rows):
        block = slice(lo, min(n, lo + rows))
        col = {name: m[:, block].T.tocsr() for name, m in by_item.items()}
        dot = (col["res"] @ res).toarray()
        # [i, j]: sum of res_i^2 over users who rated j, and of res_j^2 over users who rated i
        sq = (col["squares"] @ binary).toarray()
        sq_t = (col["binary"] @ squares).toarray()
        support = (col["binary"] @ binary).toarray()
        # in place, float32 throughout: a block is a few passes over block x n_items cells
        norm = np.sqrt(np.multiply(sq, sq_t, out=sq), out=sq)
        sim = np.divide(dot, norm, out=dot, where=norm > 0)  # norm 0 means dot 0
        sim *= np.divide(support, np.add(support, shrink, out=sq_t), out=sq_t)
        sim[support < min_support] = 0.0
        local = np.arange(block.stop - lo)
        sim[local, local + lo] = 0.0  # an item is not its own neighbour
        parts.append(keep_top_k(sim, k))
    if not parts:
        return sp.csr_matrix((n, n), dtype=np.float32)
    return sp.vstack(parts, format="csr")


def keep_top_k(sim: np.ndarray, k: int) -> sp.csr_matrix:
    """Each row's ``k`` largest positive similarities, as CSR (rows x all items)."""
    n_rows, n = sim.shape
    k = min(k, n - 1) if n > 1 else 0
    if k <= 0:
        return sp.csr_matrix(sim.shape, dtype=np.float32)
    # torch.topk: numpy's argpartition slows to a crawl on rows full of tied zeros
    top = torch.topk(torch.from_numpy(sim), k, dim=1, sorted=False)
    vals, cols = top.values.numpy(), top.indices.numpy()
    keep = vals > 0
    rows = np.repeat(np.arange(n_rows), k).reshape(n_rows, k)
    return sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=sim.shape)


def _rated(rows: sp.csr_matrix) -> sp.csr_matrix:
    """1 where ``rows`` has an entry: which neighbours a user rated."""
    out = rows.copy()
    out.data[:] = 1.0
    return out


class ItemKNN(_Classic):
    """Item-item neighbourhood model on baseline residuals (Sarwar et al. with model size k).

    Each item keeps its ``k`` most similar items (shrunk Pearson-baseline, positive
    only); a rating is the baseline plus the similarity-weighted average residual of
    those neighbours the user rated. Scoring a block of users is two sparse products.
    """

    name = "item_knn"
    provides = frozenset({"fold_in", "explain"})
    pair_chunk = 1 << 16  # (user, movie) pairs per pass of :meth:`predict`

    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        start = time.perf_counter()
        p = self.params
        self._fit_base(data)
        res = residual_matrix(data, self.base_)
        self.neighbours_ = top_k_similarity(res, p.k, p.shrink, p.min_support)
        self.by_neighbour_ = self.neighbours_.T.tocsr()  # for score_users, transposed once
        self.res_ = res
        return self._report(data, ctx, start)

    def _adjustment(self, num: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The similarity-weighted mean residual of the neighbours a user rated, damped
        towards the baseline when their weights are small."""
        den = weights + self.params.damping
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        res = self.res_[users]
        num = np.asarray((res @ self.by_neighbour_).todense(), dtype=np.float32)
        weights = np.asarray((_rated(res) @ self.by_neighbour_).todense(), dtype=np.float32)
        return self._clip(self.base_.rows(users) + self._adjustment(num, weights))

    def _folded(self, ratings: sp.spmatrix) -> tuple[np.ndarray, sp.csr_matrix]:
        """New users' baselines (``(n, n_items)``) and residual rows, as a training user's
        (:func:`folded_baseline`)."""
        rows = sp.csr_matrix(ratings, dtype=np.float64)
        owner = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        base = folded_baseline(self.base_, rows, self.params.reg_user)
        res = rows.data - base.predict(owner, rows.indices)
        residuals = sp.csr_matrix((res.astype(np.float32), rows.indices, rows.indptr), rows.shape)
        return base.rows(np.arange(rows.shape[0])), residuals

    def score_ratings(self, ratings: sp.spmatrix, data: Processed) -> np.ndarray:
        """An item-to-item model: a new user's residuals meet the same neighbour lists."""
        base, res = self._folded(ratings)
        num = np.asarray((res @ self.by_neighbour_).todense(), dtype=np.float32)
        weights = np.asarray((_rated(res) @ self.by_neighbour_).todense(), dtype=np.float32)
        return self._clip(base + self._adjustment(num, weights))

    def contributions(self, ratings: sp.spmatrix, item: int, data: Processed) -> np.ndarray:
        """Each rated neighbour's share of the adjustment to the baseline: similarity times
        residual over the damped sum of similarities (movies outside the ``k`` lists add 0)."""
        _, res = self._folded(ratings)
        column = self.neighbours_[item].toarray().ravel()[res.indices]
        den = column.sum() + self.params.damping
        return (column * res.data / den if den > 0 else np.zeros_like(column)).astype(np.float32)

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """The pairs alone: each pair's residual row times its movie's neighbour row
        (what :meth:`score_users` computes for every movie), so predicting the val and
        test ratings costs their count, not full rows of every user (ML-25M: 62k movies)."""
        out = np.empty(len(user), dtype=np.float32)
        for lo in range(0, len(user), self.pair_chunk):
            u, i = user[lo : lo + self.pair_chunk], item[lo : lo + self.pair_chunk]
            res, row = self.res_[u], self.neighbours_[i]
            num = np.asarray(res.multiply(row).sum(axis=1), dtype=np.float32).ravel()
            weights = np.asarray(_rated(res).multiply(row).sum(axis=1), dtype=np.float32).ravel()
            out[lo : lo + len(u)] = self._clip(
                self.base_.predict(u, i) + self._adjustment(num, weights)
            )
        return out

    def state(self) -> dict[str, np.ndarray]:
        n = self.neighbours_
        return self._base_state() | {
            "nbr_data": n.data,
            "nbr_indices": n.indices,
            "nbr_indptr": n.indptr,
            "res_data": self.res_.data,
            "res_indices": self.res_.indices,
            "res_indptr": self.res_.indptr,
        }

    def set_state(self, state: dict[str, np.ndarray], data: Processed) -> None:
        self._set_base_state(state)
        shape = (data.n_items, data.n_items)
        self.neighbours_ = sp.csr_matrix(
            (state["nbr_data"], state["nbr_indices"], state["nbr_indptr"]), shape=shape
        )
        self.by_neighbour_ = self.neighbours_.T.tocsr()
        self.res_ = sp.csr_matrix(
            (state["res_data"], state["res_indices"], state["res_indptr"]),
            shape=(data.n_users, data.n_items),
        )


# ------------------------------------------------------------------------------ SVD


@dataclass
class SVDParams:
    rank: int = 20
    reg_user: float = 5.0
    reg_item: float = 10.0
    sweeps: int = 10

    def validate(self, key: str) -> None:
        checks.at_least_one(key, rank=self.rank)


class SVDModel(_Classic):
    """Truncated SVD of the baseline-centred training matrix (unrated cells are 0)."""

    name = "svd"

    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        start = time.perf_counter()
        self._fit_base(data)
        res = residual_matrix(data, self.base_).astype(np.float64)
        rank = min(self.params.rank, min(res.shape) - 1)
        rng = np.random.default_rng(ctx.seed)
        v0 = rng.uniform(-1, 1, min(res.shape))
        u, s, vt = svds(res, k=rank, v0=v0)
        self.user_f_ = (u * s).astype(np.float32)
        self.item_f_ = vt.T.astype(np.float32)
        return self._report(data, ctx, start)

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        dot = np.einsum("ij,ij->i", self.user_f_[user], self.item_f_[item])
        return self._clip(self.base_.predict(user, item) + dot)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        return self._clip(self.base_.rows(users) + self.user_f_[users] @ self.item_f_.T)

    def state(self) -> dict[str, np.ndarray]:
        return self._base_state() | {"user_f": self.user_f_, "item_f": self.item_f_}

    def set_state(self, state: dict[str, np.ndarray], data: Processed) -> None:
        self._set_base_state(state)
        self.user_f_, self.item_f_ = state["user_f"], state["item_f"]


# ------------------------------------------------------------------------------ genre content


@dataclass
class ContentGenreParams:
    year_weight: float = 0.5
    damping: float = 1.0
    reg_user: float = 5.0
    reg_item: float = 10.0
    sweeps: int = 10

    def validate(self, key: str) -> None:
        checks.non_negative(key, year_weight=self.year_weight, damping=self.damping)


def item_features(data: Processed, year_weight: float) -> np.ndarray:
    """Unit-length rows of genre one-hots plus a weighted release-decade one-hot."""
    items = data.items
    genres = sorted({g for gs in items["genres"].to_list() for g in gs})
    index = {g: k for k, g in enumerate(genres)}
    years = items["year"].to_numpy(allow_copy=True)
    decades = sorted({int(y) // 10 for y in years if y == y and y is not None and y > 0})
    dindex = {d: k for k, d in enumerate(decades)}
    feats = np.zeros((data.n_items, len(genres) + len(decades)), dtype=np.float32)
    for row, gs in enumerate(items["genres"].to_list()):
        for g in gs:
            feats[row, index[g]] = 1.0
    for row, y in enumerate(years):
        if y == y and y is not None and y > 0:
            feats[row, len(genres) + dindex[int(y) // 10]] = year_weight
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return np.divide(feats, norms, out=np.zeros_like(feats), where=norms > 0)


class ContentGenre(_Classic):
    """The user's own residual ratings spread over genre and decade similarity of movies.

    With cosine similarity of non-negative features, the similarity-weighted
    average over everything the user rated factorises into two matrix products.
    """

    name = "content_genre"
    needs = ("genres",)

    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        start = time.perf_counter()
        self._fit_base(data)
        feats = item_features(data, self.params.year_weight)
        res = residual_matrix(data, self.base_)
        binary = res.copy()
        binary.data[:] = 1.0
        self.feats_ = feats
        self.num_ = np.asarray(res @ feats, dtype=np.float32)
        self.den_ = np.asarray(binary @ feats, dtype=np.float32)
        return self._report(data, ctx, start)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        num = self.num_[users] @ self.feats_.T
        den = self.den_[users] @ self.feats_.T + self.params.damping
        return self._clip(self.base_.rows(users) + num / den)

    def state(self) -> dict[str, np.ndarray]:
        return self._base_state() | {"feats": self.feats_, "num": self.num_, "den": self.den_}

    def set_state(self, state: dict[str, np.ndarray], data: Processed) -> None:
        self._set_base_state(state)
        self.feats_, self.num_, self.den_ = state["feats"], state["num"], state["den"]
