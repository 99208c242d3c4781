"""User-stratified train / val / test split.

Per user, ratings are put in a random order (``random``) or in time order
(``temporal``) and cut by the ratios, so every user with enough ratings appears
in all three splits and each split's per-user count is within one rating of its
share. A user with fewer than ``min_user_ratings`` ratings goes wholly to train.
"""

from __future__ import annotations

import numpy as np

from movierec.errors import ConfigError

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")


def user_order(user: np.ndarray, key: np.ndarray, timestamp: np.ndarray | None) -> np.ndarray:
    """Row order grouping users, by time (ties and missing times broken by ``key``)."""
    if timestamp is None:
        return np.lexsort((key, user))
    return np.lexsort((key, timestamp, user))


def split_users(
    user: np.ndarray,
    *,
    ratios: tuple[float, float, float] | list[float],
    seed: int,
    strategy: str = "random",
    timestamp: np.ndarray | None = None,
    min_user_ratings: int = 3,
) -> np.ndarray:
    """Return a split code (0 train, 1 val, 2 test) for every rating row."""
    if strategy not in ("random", "temporal"):
        raise ConfigError(
            f"params.yaml: `data.split.strategy` is {strategy!r}; use random or temporal"
        )
    if strategy == "temporal" and timestamp is None:
        raise ConfigError(
            "params.yaml: `data.split.strategy` is temporal, but this data set has no timestamps; "
            "use random"
        )
    n = user.shape[0]
    key = np.random.default_rng(seed).random(n)
    order = user_order(user, key, timestamp if strategy == "temporal" else None)
    sorted_user = user[order]
    counts = np.bincount(user)
    starts = np.cumsum(counts) - counts
    rank = np.arange(n) - starts[sorted_user]
    count = counts[sorted_user]
    n_val = np.floor(count * ratios[1] + 0.5).astype(np.int64)
    n_test = np.floor(count * ratios[2] + 0.5).astype(np.int64)
    small = count < min_user_ratings
    n_val[small] = 0
    n_test[small] = 0
    n_train = count - n_val - n_test
    code = np.where(rank < n_train, TRAIN, np.where(rank < n_train + n_val, VAL, TEST)).astype(
        np.int8
    )
    out = np.empty(n, dtype=np.int8)
    out[order] = code
    return out
