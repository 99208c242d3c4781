"""How good a list of similar movies is, measured on held-out ratings: are a seed's
neighbours movies the same people went on to like (collaborative), and do they share a
genre with it (what a person checks first)?"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _liked(ratings: sp.spmatrix, threshold: float) -> sp.csr_matrix:
    liked = sp.csr_matrix(ratings, dtype=np.float32, copy=True)
    liked.data = (liked.data >= threshold).astype(np.float32)
    liked.eliminate_zeros()
    return liked


def co_rated_hit_rate(
    neighbours: np.ndarray, k: int, seeds: sp.spmatrix, targets: sp.spmatrix, threshold: float
) -> float:
    """Over every pair (a movie a user liked in ``seeds``, one they liked in ``targets``),
    the share where the second is among the first's ``k`` neighbours. Liked: rated at or
    above ``threshold``. One sparse product, not a loop over pairs."""
    n_items = neighbours.shape[0]
    top = neighbours[:, :k]
    rows = np.repeat(np.arange(n_items), top.shape[1])
    cols = top.ravel()
    ok = cols >= 0
    near = sp.csr_matrix(
        (np.ones(int(ok.sum()), dtype=np.float32), (rows[ok], cols[ok])), shape=(n_items, n_items)
    )
    seed, target = _liked(seeds, threshold), _liked(targets, threshold)
    hits = float((seed @ near).multiply(target).sum())
    pairs = float(np.dot(np.diff(seed.indptr), np.diff(target.indptr)))
    return hits / pairs if pairs else float("nan")


def genre_share(neighbours: np.ndarray, k: int, genres: np.ndarray) -> float:
    """The share of each movie's ``k`` neighbours that share a genre with it (movies with
    a genre and at least one neighbour), as ``metrics/embed.json``'s genre coherence."""
    top = neighbours[:, :k]
    has = (genres.sum(axis=1) > 0) & (top[:, 0] >= 0)
    if not has.any():
        return float("nan")
    g = genres > 0
    seeds = np.flatnonzero(has)
    near = top[seeds]
    valid = near >= 0
    shares = (g[seeds][:, None, :] & g[np.maximum(near, 0)]).any(axis=2) & valid
    return float((shares.sum(axis=1) / valid.sum(axis=1)).mean())


def median_raters(neighbours: np.ndarray, k: int, raters: np.ndarray) -> float:
    """The median number of training ratings of the listed neighbours: how much a list
    leans on the blockbusters."""
    top = neighbours[:, :k]
    listed = top[top >= 0]
    return float(np.median(raters[listed])) if listed.size else float("nan")
