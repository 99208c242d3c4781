"""Side information as model inputs: user demographics as category codes, movie genres and decades.

The feature-aware families (BST, recurrent, wide & deep) read these. Every
feature is derived from ``users.parquet`` / ``items.parquet`` only, never from
ratings, so no split can leak through them. Code 0 always means "unknown", so a
data set without a column still gets valid (all-zero) codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from movierec.data.processed import Processed

DEMOGRAPHICS = ("gender", "age", "occupation")
# ML-1M's published age groups; ml-100k's raw ages are bucketed into the same groups.
AGE_EDGES = np.array([18, 25, 35, 45, 50, 56])


@dataclass
class UserFeatures:
    """Per-user category codes, one column per demographic (0 = unknown)."""

    codes: np.ndarray  # (n_users, n_columns) int64
    names: list[str]
    cardinalities: list[int]  # levels per column, including the unknown code 0

    @property
    def available(self) -> bool:
        return bool(self.names)


@dataclass
class ItemFeatures:
    """Per-movie genre multi-hot and release decade code (0 = unknown)."""

    genres: np.ndarray  # (n_items, n_genres) float32
    genre_names: list[str]
    decade: np.ndarray  # (n_items,) int64
    n_decades: int  # including the unknown code 0


def _column_codes(values: pl.Series) -> tuple[np.ndarray, int]:
    """Category codes 1..K for the distinct values, 0 for nulls."""
    strings = values.cast(pl.String)
    levels = sorted(v for v in strings.unique().to_list() if v is not None)
    index = {v: k + 1 for k, v in enumerate(levels)}
    codes = np.array([index.get(v, 0) for v in strings.to_list()], dtype=np.int64)
    return codes, len(levels) + 1


def user_features(data: Processed, use: bool = True) -> UserFeatures:
    """Gender, age group and occupation codes; empty when the data set has none (or ``use`` is off)."""
    users = data.users
    names = [c for c in DEMOGRAPHICS if c in users.columns] if use else []
    columns, cards = [], []
    for name in names:
        values = users[name]
        if name == "age" and values.dtype.is_numeric():
            ages = values.cast(pl.Float64).to_numpy()
            codes = np.where(np.isnan(ages), 0, np.searchsorted(AGE_EDGES, ages, side="right") + 1)
            columns.append(codes.astype(np.int64))
            cards.append(len(AGE_EDGES) + 2)
        else:
            codes, card = _column_codes(values)
            columns.append(codes)
            cards.append(card)
    codes = np.stack(columns, axis=1) if columns else np.zeros((data.n_users, 0), dtype=np.int64)
    return UserFeatures(codes, names, cards)


def item_features(data: Processed) -> ItemFeatures:
    """Genre multi-hot (``(no genres listed)`` counts as none) and release decade."""
    items = data.items
    lists = items["genres"].to_list() if "genres" in items.columns else [[]] * data.n_items
    names = sorted({g for gs in lists for g in (gs or []) if g and g != "(no genres listed)"})
    index = {g: k for k, g in enumerate(names)}
    genres = np.zeros((data.n_items, len(names)), dtype=np.float32)
    rows = [(r, index[g]) for r, gs in enumerate(lists) for g in (gs or []) if g in index]
    if rows:
        r, c = np.array(rows).T
        genres[r, c] = 1.0
    decade = np.zeros(data.n_items, dtype=np.int64)
    n_decades = 1
    if "year" in items.columns:
        years = items["year"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        known = np.isfinite(years) & (years > 0)
        if known.any():
            dec = (years[known] // 10).astype(np.int64)
            levels, codes = np.unique(dec, return_inverse=True)
            decade[known] = codes + 1
            n_decades = len(levels) + 1
    return ItemFeatures(genres, names, decade, n_decades)
