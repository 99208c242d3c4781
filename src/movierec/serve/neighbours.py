"""Movies like a movie, from who rated what: each movie's nearest movies by co-rating,
weighted by how many genres they share.

The cosine of co-rating counts (users who rated both, over the geometric mean of each
one's raters) alone ranks the blockbusters next to everything: on ml-100k Toy Story's
nearest are Star Wars, Twelve Monkeys and The Rock. Times ``floor + Jaccard(genres)``,
the co-rated movies that are also the same kind of film come first (Aladdin, Willy
Wonka, Beauty and the Beast) while a movie of other genres that enough of the same
people rated still gets in. The ``neighbours`` stage picks ``floor`` on val
(``metrics/neighbours.json``); the server answers from the lists it keeps.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from movierec.topk import top_k

BLOCK_CELLS = 1 << 22  # similarity cells per block of movies: 16 MiB a float32 array


def co_rated_neighbours(
    ratings: sp.spmatrix, genres: np.ndarray | None, floor: float | None, keep: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each movie's ``keep`` nearest movies (``(n_items, keep)`` indices, -1 padded) and
    their similarities: co-rating cosine, times ``floor + genre Jaccard`` unless ``floor``
    is None. Built one block of movies at a time, so memory is ``block x n_items``
    however wide the catalogue; movies nobody rated are nobody's neighbour."""
    x = sp.csr_matrix(ratings, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    by_movie = x.T.tocsr()
    n_items = x.shape[1]
    raters = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
    root = np.sqrt(raters).astype(np.float32)
    use_genres = floor is not None and genres is not None and genres.shape[1] > 0
    g = genres.astype(np.float32) if use_genres else None
    g_count = g.sum(axis=1) if use_genres else None
    rows = max(1, BLOCK_CELLS // max(n_items, 1))
    keep = min(keep, max(n_items - 1, 1))
    order = np.empty((n_items, keep), dtype=np.int64)
    sims = np.empty((n_items, keep), dtype=np.float32)
    for lo in range(0, n_items, rows):
        hi = min(n_items, lo + rows)
        co = (by_movie[lo:hi] @ x).toarray()
        denom = np.outer(root[lo:hi], root)
        score = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
        if use_genres:
            shared = g[lo:hi] @ g.T
            union = g_count[lo:hi, None] + g_count[None, :] - shared
            score *= floor + np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
        score[:, raters == 0] = -np.inf
        score[np.arange(hi - lo), np.arange(lo, hi)] = -np.inf  # not its own neighbour
        score[co == 0] = -np.inf  # nobody rated both: no evidence they are alike
        best = top_k(score, keep)
        order[lo:hi] = best
        sims[lo:hi] = np.where(best >= 0, np.take_along_axis(score, np.maximum(best, 0), 1), 0)
    return order, sims


def vector_neighbours(unit: np.ndarray, has: np.ndarray, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The same lists from unit movie vectors (cosine): a model's embedding, compared in
    the ``neighbours`` stage on the same val protocol."""
    n_items = unit.shape[0]
    rows = max(1, BLOCK_CELLS // max(n_items, 1))
    keep = min(keep, max(n_items - 1, 1))
    order = np.empty((n_items, keep), dtype=np.int64)
    sims = np.empty((n_items, keep), dtype=np.float32)
    for lo in range(0, n_items, rows):
        hi = min(n_items, lo + rows)
        score = unit[lo:hi] @ unit.T
        score[:, ~has] = -np.inf
        score[np.arange(hi - lo), np.arange(lo, hi)] = -np.inf
        score[~has[lo:hi]] = -np.inf
        best = top_k(score, keep)
        order[lo:hi] = best
        sims[lo:hi] = np.where(best >= 0, np.take_along_axis(score, np.maximum(best, 0), 1), 0)
    return order, sims
