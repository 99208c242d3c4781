"""Split invariants, as property tests."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.config.params import parse_params
from movierec.data.parse import RawData, parse_release, read_official_fold
from movierec.data.preprocess import prepare
from movierec.data.releases import ML100K_FOLDS
from movierec.data.split import (
    TEST,
    TRAIN,
    VAL,
    split_holdout,
    split_leave_last,
    split_official,
    split_users,
)
from movierec.errors import ConfigError, DataError

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


# --------------------------------------------------------------------------- other strategies


@given(
    n=st.integers(1, 3000),
    test_share=st.floats(0.01, 0.99),
    val_share=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**31 - 1),
)
@settings(max_examples=150, deadline=None)
def test_holdout_counts_follow_the_shares_and_are_seeded(n, test_share, val_share, seed):
    code = split_holdout(n, test_share=test_share, val_share=val_share, seed=seed)
    n_test = int(np.floor(n * test_share + 0.5))
    assert (code == TEST).sum() == n_test
    assert (code == VAL).sum() == int(np.floor((n - n_test) * val_share + 0.5))
    assert (code == TRAIN).sum() == n - (code != TRAIN).sum()
    np.testing.assert_array_equal(
        code, split_holdout(n, test_share=test_share, val_share=val_share, seed=seed)
    )


def test_holdout_is_global_not_per_user():
    """A global cut: users' test shares vary (a per-user cut would give each one ~10%)."""
    user = np.repeat(np.arange(200), 50)
    code = split_holdout(user.size, test_share=0.1, val_share=0.1, seed=3)
    per_user = np.bincount(user[code == TEST], minlength=200)
    assert per_user.std() > 1.0


@given(user=user_arrays(), seed=st.integers(0, 2**31 - 1), stamps=st.integers(1, 6))
@settings(max_examples=150, deadline=None)
def test_leave_last_holds_out_each_users_latest_rating(user, seed, stamps):
    ts = np.random.default_rng(seed).integers(0, stamps, user.size)  # few stamps: many ties
    code = split_leave_last(user, ts, seed=seed, min_user_ratings=3)
    for u in np.unique(user):
        mine, t = code[user == u], ts[user == u]
        if mine.size < 3:
            assert (mine == TRAIN).all()
            continue
        assert (mine == TEST).sum() == 1 and (mine == VAL).sum() == 1
        assert t[mine == TEST][0] == t.max(), "test is the latest rating"
        assert t[mine == VAL][0] >= t[mine == TRAIN].max(), "val is the latest of the rest"
        assert t[mine == VAL][0] <= t[mine == TEST][0]


@given(user=user_arrays(), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=100, deadline=None)
def test_official_keeps_the_test_file_and_cuts_val_from_base(user, seed):
    in_test = np.random.default_rng(seed).random(user.size) < 0.2
    code = split_official(user, in_test, val_share=0.1, seed=seed, min_user_ratings=3)
    np.testing.assert_array_equal(code == TEST, in_test)
    for u in np.unique(user[~in_test]):
        base = code[(user == u) & ~in_test]
        assert (base == TRAIN).sum() >= 1
        if base.size >= 3:
            assert abs((base == VAL).sum() - 0.1 * base.size) <= 1.0


@pytest.mark.parametrize("fold", ML100K_FOLDS)
def test_official_folds_reproduce_the_release_files_exactly(mirror: Path, fold: str):
    folder = mirror / "ml-100k"
    params = parse_params({"data": {"split": {"strategy": "official", "fold": fold}}})
    pairs = read_official_fold(folder, "ml-100k", fold)
    prepared = prepare(parse_release(folder, "ml-100k"), params.data, 42, "ml-100k", pairs)
    ids = prepared.ratings.join(
        prepared.users.select("user", "user_id"), on="user", how="left"
    ).join(
        prepared.items.select("item", pl.col("movie_id").alias("item_id")), on="item", how="left"
    )

    def pair_set(frame: pl.DataFrame) -> set[tuple[int, int]]:
        return set(frame.select("user_id", "item_id").iter_rows())

    base, test = pairs
    assert pair_set(ids.filter(pl.col("split") == "test")) == pair_set(test)
    assert pair_set(ids.filter(pl.col("split") != "test")) == pair_set(base)
    assert prepared.stats["split"]["fold"] == fold


def test_official_refuses_folds_that_do_not_partition_the_ratings(mirror: Path):
    folder = mirror / "ml-100k"
    params = parse_params({"data": {"split": {"strategy": "official"}}})
    base, test = read_official_fold(folder, "ml-100k", "u1")
    with pytest.raises(DataError, match="does not partition"):
        prepare(parse_release(folder, "ml-100k"), params.data, 42, "ml-100k", (base, test[1:]))


def test_official_needs_a_release_with_folds_and_a_known_fold(tmp_path: Path):
    with pytest.raises(DataError, match="ships no official folds"):
        read_official_fold(tmp_path, "ml-1m", "u1")
    with pytest.raises(DataError, match="official folds are u1, u2"):
        read_official_fold(tmp_path, "ml-100k", "u9")


def test_leave_last_without_timestamps_is_a_clear_refusal(tiny):
    raw = RawData(
        tiny.ratings.with_columns(pl.lit(None, pl.Int64).alias("timestamp")),
        tiny.items,
        tiny.users,
        has_timestamps=False,
    )
    params = parse_params({"data": {"split": {"strategy": "leave_last"}}})
    with pytest.raises(DataError, match="leave_last, but the data set has no timestamps"):
        prepare(raw, params.data, 1, "custom")


@pytest.mark.parametrize("key", ["val_share", "test_share"])
@pytest.mark.parametrize("value", [0, 1, -0.2, 1.5])
def test_shares_must_lie_strictly_between_0_and_1(key, value):
    with pytest.raises(ConfigError, match=f"data.split.{key}"):
        parse_params({"data": {"split": {key: value}}})
