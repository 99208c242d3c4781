"""Predictions -> metrics: rating accuracy on (user, movie) pairs and full-ranking top-N.

Top-N protocol: for every user with ratings in the evaluated split, every movie
is scored and ranked, except the movies the user rated in earlier splits
(train for val; train and val for test). Relevant = the split's movies the user
rated at or above ``threshold``. Scores are computed for chunks of users as
``(users, items)`` matrices, so memory stays bounded on large catalogues.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from movierec.config.sections import EvalParams
from movierec.data.processed import Processed
from movierec.errors import DataError
from movierec.evaluation.metrics import (
    coverage,
    ndcg_per_user,
    popularity_metrics,
    ranking_metrics,
    rating_metrics,
)
from movierec.topk import top_k
from movierec.train.budget import Budget
from movierec.train.trainer import Validation

EXCLUDE = {"val": ("train",), "test": ("train", "val")}


class Scorer(Protocol):
    """What the protocol scores: any trained model of ``movierec.models`` (or a blend)
    satisfies it, and this package imports none of them."""

    name: str
    provides: frozenset[str]  # capabilities beyond scoring ("rating_classes", ...)
    scores_are_ratings: bool  # score_users rows are predicted ratings
    predicts_ratings: bool  # False: a ranker, judged by top-N only

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """``(len(users), n_items)`` scores: higher ranks first."""
        ...

    def predict_split(self, data: Processed, split: str) -> np.ndarray:
        """Rating predictions of the split's (user, movie) pairs, in its order."""
        ...

    def predict_classes(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """The rating level itself; asked only of a model that provides "rating_classes"."""
        ...


def _binary(m: sp.csr_matrix) -> sp.csr_matrix:
    out = m.copy().astype(np.float32)
    out.data[:] = 1.0
    return out


@dataclass
class _SplitState:
    """Per-split accumulators while user chunks stream through."""

    target: sp.csr_matrix
    seen: sp.csr_matrix
    relevant: sp.csr_matrix
    users: list[np.ndarray] = field(default_factory=list)  # users ranked, in order
    recs: list[np.ndarray] = field(default_factory=list)
    rels: list[np.ndarray] = field(default_factory=list)
    n_rel: list[np.ndarray] = field(default_factory=list)
    preds: list[np.ndarray] = field(default_factory=list)
    truths: list[np.ndarray] = field(default_factory=list)
    pred_users: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0


def evaluate(
    model: Scorer,
    data: Processed,
    params: EvalParams,
    user_mask: np.ndarray | None = None,
    on_rows: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> dict[str, Any]:
    """Rating and full-ranking top-N metrics per split.

    Each chunk of users is scored once (a ``(users, items)`` matrix) and serves
    every split: its rows give the top-N lists, and for models whose scores are
    predicted ratings, the rating predictions of the split's pairs too.
    ``user_mask`` restricts everything to a subset of users; ``on_rows(users, scores)``
    receives every chunk's rows (the evaluate stage saves them for the blends).
    """
    t_start = time.perf_counter()
    states: dict[str, _SplitState] = {}
    for split in params.splits:
        target = data.matrices[split]
        if user_mask is not None:
            target = sp.csr_matrix(sp.diags(user_mask.astype(np.float32)) @ target)
            target.eliminate_zeros()
        if target.nnz == 0:
            continue
        relevant = target.copy()
        relevant.data = (relevant.data >= params.threshold).astype(np.float32)
        relevant.eliminate_zeros()
        seen = _binary(sum((data.matrices[s] for s in EXCLUDE[split]), sp.csr_matrix(target.shape)))
        states[split] = _SplitState(target, seen, relevant)
    if not states:
        return {}
    kmax = max(params.k)
    train = data.matrices["train"]
    item_count = np.bincount(train.indices, minlength=data.n_items)  # training ratings per movie
    n_train_users = int((np.diff(train.indptr) > 0).sum())
    active = np.zeros(data.n_users, dtype=bool)
    for st in states.values():
        active |= np.diff(st.target.indptr) > 0
    users = np.flatnonzero(active)
    budget = Budget(
        params.max_hours,
        f"ranking all {data.n_items:,} movies for {len(users):,} users with {model.name}",
        "evaluate.max_hours",
        "evaluate on a machine with a GPU",
    )
    score_seconds = 0.0
    t_loop = time.perf_counter()  # what came before is paid once, not per block
    for lo in range(0, len(users), params.user_chunk):
        chunk = users[lo : lo + params.user_chunk]
        t0 = time.perf_counter()
        scores = np.asarray(model.score_users(chunk), dtype=np.float32)
        score_seconds += time.perf_counter() - t0
        if on_rows is not None:
            on_rows(chunk, scores)
        if not scores.flags.writeable:
            scores = scores.copy()
        for st in states.values():
            t1 = time.perf_counter()
            rows = st.target[chunk]
            has = np.diff(rows.indptr) > 0
            if model.scores_are_ratings:
                coo = rows.tocoo()
                st.preds.append(scores[coo.row, coo.col])
                st.truths.append(coo.data)
                st.pred_users.append(chunk[coo.row])
            # never recommend what the user rated: -inf in place, put back after the top-k
            seen_at = st.seen[chunk].nonzero()
            kept = scores[seen_at]
            scores[seen_at] = -np.inf
            rec = top_k(scores if has.all() else scores[has], kmax)
            scores[seen_at] = kept
            st.users.append(chunk[has])
            st.recs.append(rec)
            relevant = st.relevant[chunk[has]]
            st.rels.append(_in_rows(relevant, rec))
            st.n_rel.append(np.diff(relevant.indptr))
            st.seconds += time.perf_counter() - t1
        budget.check(
            time.perf_counter() - t_loop,
            (lo + len(chunk)) / len(users),
            setup=t_loop - t_start,
        )
    result: dict[str, Any] = {}
    per_user: dict[str, dict[str, np.ndarray]] = {}
    for split, st in states.items():
        part = data.splits[split]
        t0 = time.perf_counter()
        if not model.predicts_ratings:
            pred = truth = pred_user = None
        elif model.scores_are_ratings:
            pred, truth = np.concatenate(st.preds), np.concatenate(st.truths)
            pred_user = np.concatenate(st.pred_users)
        else:
            keep = user_mask[part.user] if user_mask is not None else slice(None)
            pred, truth = model.predict_split(data, split)[keep], part.rating[keep]
            pred_user = part.user[keep]
        metrics = rating_metrics(pred, truth, data.rating_levels) if model.predicts_ratings else {}
        if "rating_classes" in model.provides:
            metrics["accuracy"] = float(
                np.mean(model.predict_classes(part.user, part.item) == part.rating)
            )
        rec, rel, nrel = np.concatenate(st.recs), np.concatenate(st.rels), np.concatenate(st.n_rel)
        if not (nrel > 0).any():
            lo, hi = data.rating_range
            raise DataError(
                f"evaluate: no {split} rating is at or above evaluate.threshold={params.threshold} "
                f"(ratings run {lo:g} to {hi:g}), so top-N has nothing to find; lower "
                "evaluate.threshold in params.yaml"
            )
        for k in params.k:
            metrics |= ranking_metrics(rec, rel, nrel, k)
            metrics[f"coverage@{k}"] = coverage(rec[:, :k], data.n_items)
            metrics |= popularity_metrics(rec[:, :k], item_count, n_train_users, k)
        metrics["topn_seconds"] = st.seconds + score_seconds
        metrics["predict_seconds"] = time.perf_counter() - t0
        result[split] = metrics
        ranked_users = np.concatenate(st.users)
        per_user[split] = _per_user(
            ranked_users,
            np.diff(st.target.indptr)[ranked_users],
            (rec, rel, nrel, params.k[0]),
            pred,
            truth,
            pred_user,
        )
    result["per_user"] = per_user
    result["score_seconds"] = score_seconds
    result["total_eval_seconds"] = time.perf_counter() - t_start
    return result


def _in_rows(rows: sp.csr_matrix, rec: np.ndarray) -> np.ndarray:
    """``rec[i, j]`` is a stored entry of row ``i`` (and not the ``-1`` padding), for every
    position at once: one sorted search of (row, column) keys instead of dense rows."""
    n_cols = np.int64(rows.shape[1])
    rows = rows.sorted_indices() if not rows.has_sorted_indices else rows
    stored = np.repeat(np.arange(rows.shape[0], dtype=np.int64), np.diff(rows.indptr)) * n_cols
    stored += rows.indices
    wanted = np.arange(rec.shape[0], dtype=np.int64)[:, None] * n_cols + np.maximum(rec, 0)
    at = np.minimum(np.searchsorted(stored, wanted), max(stored.size - 1, 0))
    return (stored[at] == wanted) & (rec >= 0) if stored.size else np.zeros(rec.shape, bool)


def _per_user(
    users: np.ndarray,
    n_ratings: np.ndarray,
    lists: tuple[np.ndarray, np.ndarray, np.ndarray, int],
    pred: np.ndarray | None,
    truth: np.ndarray | None,
    pred_user: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Per-user values the significance tests pair across models: each user's number of
    ratings in the split, squared-error sum (``nan`` without rating predictions) and
    NDCG@k (``nan`` without a relevant item)."""
    rec, rel, nrel, k = lists
    sse = np.full(users.shape[0], np.nan)
    if pred is not None:
        row = np.searchsorted(users, pred_user)
        err = (np.asarray(pred, dtype=np.float64) - truth) ** 2
        sse = np.bincount(row, weights=err, minlength=users.shape[0])
    ndcg = np.full(users.shape[0], np.nan)
    has = nrel > 0
    ndcg[has] = ndcg_per_user(rec[has], rel[has], nrel[has], k)
    return {"user": users, "ratings": n_ratings, "sse": sse, f"ndcg@{k}": ndcg}


def ranking_validation(model: Scorer, data: Processed, k: int, threshold: float):
    """``compute(module) -> {"val_ndcg@k": ...}`` for the Trainer: the model's full-ranking
    NDCG@k on val under the evaluation protocol, so rankers select epochs as they are judged."""
    # the Trainer's budget covers these passes (its first epoch includes one)
    params = EvalParams(k=[k], threshold=threshold, splits=["val"], max_hours=0.0)
    key = f"ndcg@{k}"

    def compute(_module) -> dict[str, float]:
        val = evaluate(model, data, params).get("val", {})
        return {f"val_{key}": float(val.get(key, float("nan")))}

    return Validation(f"val_{key}", True, compute)
