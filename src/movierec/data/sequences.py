"""History windows for the sequence models (BST, recurrent).

For every rating, the window holds the user's last ``L`` *training* ratings that
come strictly before it in the user's time order (ties broken by a seeded key).
Val and test ratings never enter any window, and a rating never sees itself.
"""

from __future__ import annotations

import numpy as np

from movierec.data.split import TRAIN

CHUNK = 1 << 22


def history_windows(
    user: np.ndarray,
    item: np.ndarray,
    rating: np.ndarray,
    split: np.ndarray,
    order: np.ndarray,
    length: int,
    pad_item: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows for rows given in ``order`` (grouped by user, in time order).

    Returns ``(items, ratings, lengths)`` aligned with ``order``: left-padded
    ``(n, L)`` item ids (``pad_item`` where empty), ratings (0 where empty) and the
    true number of history entries.
    """
    u = user[order]
    is_train = split[order] == TRAIN
    n = u.shape[0]
    # Global position of each training rating in the train-only sequence.
    train_rows = order[is_train]
    train_cum = np.cumsum(is_train) - is_train  # training ratings before each row (global)
    counts_train = np.bincount(u[is_train], minlength=int(u.max()) + 1 if n else 0)
    first_train = np.cumsum(counts_train) - counts_train  # start of each user's train block
    # Training ratings of this user before the row = global count before row - user's start.
    before = train_cum - first_train[u]
    hist_len = np.minimum(before, length).astype(np.int32)
    h_items = np.empty((n, length), dtype=np.int32)
    h_ratings = np.empty((n, length), dtype=np.float32)
    offsets = np.arange(length) - length  # -L .. -1
    for lo in range(0, n, CHUNK):  # bounded memory on 25M-rating data sets
        sl = slice(lo, lo + CHUNK)
        valid = offsets[None, :] >= -before[sl, None]
        idx = np.where(valid, (first_train[u[sl]] + before[sl])[:, None] + offsets[None, :], 0)
        src = train_rows[idx] if train_rows.size else np.zeros_like(idx)
        h_items[sl] = np.where(valid, item[src], pad_item)
        h_ratings[sl] = np.where(valid, rating[src], 0.0)
    return h_items, h_ratings, hist_len
