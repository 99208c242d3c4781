"""Metrics against hand-computed values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from movierec.evaluation.metrics import coverage, ranking_metrics, rating_metrics, round_to_levels
from movierec.topk import _top_k_exact, top_k

LEVELS = np.array([1, 2, 3, 4, 5], dtype=np.float32)


def test_rating_metrics_by_hand():
    m = rating_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 5.0]), LEVELS)
    assert m["mse"] == pytest.approx(5 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["mae"] == pytest.approx(1.0)
    assert m["accuracy_rounded"] == pytest.approx(1 / 3)


def test_rounding_snaps_to_levels_with_ties_down():
    got = round_to_levels(np.array([0.2, 1.4, 2.6, 4.5, 7.0]), LEVELS)
    assert got.tolist() == [1, 1, 3, 4, 5]
    m = rating_metrics(np.array([1.4, 2.6, 4.5]), np.array([1.0, 3.0, 5.0]), LEVELS)
    assert m["mae_rounded"] == pytest.approx(1 / 3)
    assert m["rmse_rounded"] == pytest.approx(math.sqrt(1 / 3))
    assert m["accuracy_rounded"] == pytest.approx(2 / 3)


def test_top_k_ties_go_to_lower_ids_and_skip_excluded():
    scores = np.array([[1.0, 3.0, 3.0, 2.0], [-np.inf, 1.0, -np.inf, -np.inf]])
    assert top_k(scores, 2).tolist() == [[1, 2], [1, -1]]
    assert top_k(scores, 3).tolist() == [[1, 2, 3], [1, -1, -1]]
    assert top_k(scores, 6).tolist() == [[1, 2, 3, 0, -1, -1], [1, -1, -1, -1, -1, -1]]


@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 12)),
        elements=st.integers(0, 4).map(float),
    ),
    st.integers(1, 14),
)
@settings(max_examples=200, deadline=None)
def test_top_k_equals_a_stable_full_sort(scores, k):
    want = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    got = top_k(scores, k)
    assert np.array_equal(got[:, : want.shape[1]], want)
    assert (got[:, want.shape[1] :] == -1).all()


@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 8), st.integers(1, 40)),
        elements=st.one_of(
            st.floats(-3, 3, width=32),
            st.sampled_from([0.5, 1.0, -np.inf, np.nan]),
        ),
    ),
    st.integers(1, 12),
)
@settings(max_examples=300, deadline=None)
def test_top_k_fast_path_equals_the_exact_reference(scores, k):
    """The threaded path must give the reference's lists: same set, ties to the lower
    id, nothing -inf or nan recommended, whatever mix of ties and gaps a row holds."""
    assert np.array_equal(top_k(scores, k), _top_k_exact(scores, k))


@given(
    arrays(
        np.float32,
        st.tuples(st.just(1), st.integers(2, 60)),
        elements=st.one_of(
            st.floats(-3, 3, width=32),
            st.sampled_from([0.5, 1.0, -np.inf, np.nan]),
        ),
    ),
    st.integers(1, 12),
)
@settings(max_examples=300, deadline=None)
def test_top_k_of_one_row_equals_the_exact_reference(scores, k):
    """One row (a server's request) takes its own partition path: the same lists."""
    assert np.array_equal(top_k(scores, k), _top_k_exact(scores, k))


def test_top_k_on_wide_rows_with_boundary_ties():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((64, 5000)).astype(np.float32)
    scores[::4, 100:110] = scores[::4].max(axis=1, keepdims=True)  # ties straddle the cut
    scores[1::4, :4990] = -np.inf  # fewer than k finite
    scores[2, 7] = np.nan
    for k in (1, 10, 25):
        assert np.array_equal(top_k(scores, k), _top_k_exact(scores, k))
        for row in range(4):  # one row at a time: the single-row path
            assert np.array_equal(top_k(scores[row : row + 1], k), _top_k_exact(scores[row : row + 1], k))


def test_ranking_metrics_by_hand():
    rec = np.array([[3, 1, 2]])
    rel = np.array([[True, False, True]])
    m = ranking_metrics(rec, rel, np.array([2]), 3)
    assert m["precision@3"] == pytest.approx(2 / 3)
    assert m["recall@3"] == pytest.approx(1.0)
    assert m["ndcg@3"] == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert m["map@3"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["hit@3"] == 1.0


def test_users_without_relevant_items_are_left_out():
    rec = np.array([[0, 1], [2, 3]])
    rel = np.array([[False, True], [False, False]])
    m = ranking_metrics(rec, rel, np.array([1, 0]), 2)
    assert m["users_ranked"] == 1
    assert m["precision@2"] == pytest.approx(0.5)
    assert m["ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert m["map@2"] == pytest.approx(0.5)


def test_k_larger_than_the_candidate_list():
    rec = np.array([[5, -1, -1]])
    rel = np.array([[True, False, False]])
    m = ranking_metrics(rec, rel, np.array([1]), 3)
    assert m["precision@3"] == pytest.approx(1 / 3)  # a short list is not rewarded
    assert m["recall@3"] == m["ndcg@3"] == m["map@3"] == m["hit@3"] == 1.0


def test_no_hits():
    m = ranking_metrics(np.array([[1, 2]]), np.array([[False, False]]), np.array([3]), 2)
    assert m["precision@2"] == m["recall@2"] == m["ndcg@2"] == m["map@2"] == m["hit@2"] == 0.0


def test_coverage():
    assert coverage(np.array([[0, 1], [1, -1]]), 4) == pytest.approx(0.5)
