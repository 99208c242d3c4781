"""History windows hold only earlier training ratings."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.data.sequences import history_windows
from movierec.data.split import TRAIN, split_users, user_order


def _brute_force(user, item, rating, split, order, length, pad):
    pos = np.empty_like(order)
    pos[order] = np.arange(order.size)
    out_items, out_len = [], []
    for row in order:
        earlier = [
            r for r in order if user[r] == user[row] and pos[r] < pos[row] and split[r] == TRAIN
        ]
        window = [item[r] for r in earlier][-length:]
        out_len.append(len(window))
        out_items.append([pad] * (length - len(window)) + window)
    return np.array(out_items), np.array(out_len)


@given(
    counts=st.lists(st.integers(1, 12), min_size=1, max_size=8),
    length=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
@settings(max_examples=60, deadline=None)
def test_windows_match_brute_force(counts, length, seed):
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(len(counts)), counts)
    n = user.size
    item = rng.integers(0, 50, n)
    rating = rng.integers(1, 6, n).astype(np.float32)
    ts = rng.integers(0, 5, n)  # many ties on purpose
    split = split_users(user, ratios=(0.6, 0.2, 0.2), seed=seed, min_user_ratings=2)
    order = user_order(user, rng.random(n), ts)
    h_items, h_ratings, h_len = history_windows(user, item, rating, split, order, length, -1)
    want_items, want_len = _brute_force(user, item, rating, split, order, length, -1)
    assert np.array_equal(h_items, want_items)
    assert np.array_equal(h_len, want_len)
    assert ((h_items == -1) == (h_ratings == 0)).all()


def test_windows_never_hold_the_target_or_val_test_ratings():
    # Item ids encode (user, split, position): a leak would be visible directly.
    user = np.repeat(np.arange(3), 10)
    split = np.tile(np.array([0, 0, 0, 1, 0, 2, 0, 1, 2, 0]), 3)
    item = np.arange(30)
    order = np.arange(30)
    h_items, _, h_len = history_windows(user, item, np.ones(30, np.float32), split, order, 4, -1)
    for row in range(30):
        window = [x for x in h_items[row] if x >= 0]
        assert row not in window
        assert all(split[x] == TRAIN and x < row and user[x] == user[row] for x in window)
        assert h_len[row] == len(window)
