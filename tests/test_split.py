"""Split invariants, as property tests."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.data.split import TEST, TRAIN, VAL, split_users

RATIOS = (0.8, 0.1, 0.1)


@st.composite
def user_arrays(draw):
    counts = draw(st.lists(st.integers(1, 40), min_size=1, max_size=30))
    user = np.repeat(np.arange(len(counts)), counts)
    perm = np.random.default_rng(draw(st.integers(0, 1000))).permutation(user.size)
    return user[perm]


@given(
    user=user_arrays(),
    seed=st.integers(0, 2**31 - 1),
    ratios=st.sampled_from([(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.7, 0.3, 0.0), (1.0, 0.0, 0.0)]),
)
@settings(max_examples=150, deadline=None)
def test_every_rating_in_one_split_and_counts_follow_ratios(user, seed, ratios):
    code = split_users(user, ratios=ratios, seed=seed, min_user_ratings=3)
    assert code.shape == user.shape
    assert set(np.unique(code)) <= {TRAIN, VAL, TEST}
    for u in np.unique(user):
        mine = code[user == u]
        n = mine.size
        assert (mine == TRAIN).sum() >= 1, "every user appears in train"
        for split, share in zip((TRAIN, VAL, TEST), ratios, strict=True):
            assert abs((mine == split).sum() - share * n) <= 1.0 + 1e-9


@given(user=user_arrays())
@settings(max_examples=50, deadline=None)
def test_small_users_go_wholly_to_train(user):
    code = split_users(user, ratios=RATIOS, seed=1, min_user_ratings=5)
    counts = np.bincount(user)
    small = np.isin(user, np.flatnonzero(counts < 5))
    assert (code[small] == TRAIN).all()


@given(user=user_arrays(), seed=st.integers(0, 10_000))
@settings(max_examples=50, deadline=None)
def test_same_seed_same_split(user, seed):
    a = split_users(user, ratios=RATIOS, seed=seed)
    b = split_users(user, ratios=RATIOS, seed=seed)
    assert np.array_equal(a, b)


def test_other_seed_other_split():
    user = np.repeat(np.arange(50), 30)
    a = split_users(user, ratios=RATIOS, seed=1)
    b = split_users(user, ratios=RATIOS, seed=2)
    assert not np.array_equal(a, b)
    assert np.bincount(a).tolist() == np.bincount(b).tolist()  # same sizes, other rows


def test_temporal_split_puts_latest_ratings_in_test():
    rng = np.random.default_rng(0)
    user = np.repeat(np.arange(20), 20)
    ts = rng.permutation(user.size)
    code = split_users(user, ratios=RATIOS, seed=3, strategy="temporal", timestamp=ts)
    for u in range(20):
        mine = user == u
        assert ts[mine][code[mine] == TRAIN].max() < ts[mine][code[mine] == VAL].min()
        assert ts[mine][code[mine] == VAL].max() < ts[mine][code[mine] == TEST].min()
