"""Train / val / test splits, one function per strategy.

- ``random`` / ``temporal`` (:func:`split_users`): per user, ratings in a random
  order or in time order, cut by the ratios, so every user with enough ratings
  appears in all three splits and each split's per-user count is within one
  rating of its share. A user with fewer than ``min_user_ratings`` goes wholly
  to train.
- ``official`` (:func:`split_official`): the release's own test file is the test
  split; val is a per-user cut of the rest.
- ``holdout`` (:func:`split_holdout`): a global random cut of all ratings.
- ``leave_last`` (:func:`split_leave_last`): each user's latest rating to test,
  the one before to val.
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
            f"params.yaml: `data.split.strategy` is {strategy!r}; split_users cuts random or "
            "temporal"
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


def split_official(
    user: np.ndarray, in_test: np.ndarray, *, val_share: float, seed: int, min_user_ratings: int
) -> np.ndarray:
    """Split codes for a release's fold: ``in_test`` rows are test, and ``val_share`` of each
    user's other ratings (a seeded per-user cut, as ``random``) go to val."""
    code = np.full(user.shape[0], TEST, dtype=np.int8)
    rest = np.flatnonzero(~in_test)
    code[rest] = split_users(
        user[rest],
        ratios=(1.0 - val_share, val_share, 0.0),
        seed=seed,
        min_user_ratings=min_user_ratings,
    )
    return code


def split_holdout(n: int, *, test_share: float, val_share: float, seed: int) -> np.ndarray:
    """Split codes for a global random cut: ``round(n * test_share)`` ratings to test, then
    ``round(rest * val_share)`` to val, whoever rated them (users may miss a split)."""
    n_test = int(np.floor(n * test_share + 0.5))
    n_val = int(np.floor((n - n_test) * val_share + 0.5))
    order = np.random.default_rng(seed).permutation(n)
    code = np.full(n, TRAIN, dtype=np.int8)
    code[order[:n_test]] = TEST
    code[order[n_test : n_test + n_val]] = VAL
    return code


def split_leave_last(
    user: np.ndarray, timestamp: np.ndarray, *, seed: int, min_user_ratings: int
) -> np.ndarray:
    """Split codes for leave-last-out: per user, the latest rating to test and the one before
    to val (ties in time broken at random by ``seed``). Users with fewer than
    ``max(min_user_ratings, 3)`` ratings go wholly to train, so every tested user has a
    training history."""
    n = user.shape[0]
    key = np.random.default_rng(seed).random(n)
    order = user_order(user, key, timestamp)
    counts = np.bincount(user)
    sorted_user = user[order]
    from_end = (np.cumsum(counts)[sorted_user] - 1) - np.arange(n)  # 0 = the latest rating
    eligible = counts[sorted_user] >= max(min_user_ratings, 3)
    code = np.where(
        eligible & (from_end == 0), TEST, np.where(eligible & (from_end == 1), VAL, TRAIN)
    ).astype(np.int8)
    out = np.empty(n, dtype=np.int8)
    out[order] = code
    return out
