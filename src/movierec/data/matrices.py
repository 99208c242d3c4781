"""Sparse user x item rating matrices, one per split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from movierec.data.split import SPLIT_NAMES
from movierec.store.files import reading


def to_csr(
    user: np.ndarray, item: np.ndarray, rating: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """CSR matrix of ratings; (user, item) pairs are unique by construction."""
    return sp.csr_matrix((rating.astype(np.float32), (user, item)), shape=shape)


def save_matrices(path: Path, ratings: pl.DataFrame, n_users: int, n_items: int) -> None:
    """Save train / val / test CSR matrices into one ``.npz``."""
    arrays: dict[str, np.ndarray] = {"shape": np.array([n_users, n_items])}
    for name in SPLIT_NAMES:
        part = ratings.filter(pl.col("split") == name)
        m = to_csr(
            part["user"].to_numpy(),
            part["item"].to_numpy(),
            part["rating"].to_numpy(),
            (n_users, n_items),
        )
        arrays[f"{name}_data"] = m.data
        arrays[f"{name}_indices"] = m.indices
        arrays[f"{name}_indptr"] = m.indptr
    np.savez(path, **arrays)


def load_matrices(path: Path) -> dict[str, sp.csr_matrix]:
    """Load the matrices written by :func:`save_matrices`, keyed by split name."""
    with reading(path), np.load(path) as f:
        shape = tuple(int(x) for x in f["shape"])
        return {
            name: sp.csr_matrix(
                (f[f"{name}_data"], f[f"{name}_indices"], f[f"{name}_indptr"]), shape=shape
            )
            for name in SPLIT_NAMES
        }
