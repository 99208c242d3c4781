"""The ranking blend (``ensemble_topn``): members' full score rows, weighted to maximise val NDCG@k.

Every member (ranking families, rating families, word2vec, popularity) scores
every movie for a user; each row is made comparable over the movies the user has
not rated in training (``scores``: z-scores, or normal quantiles of the ranks, which
an outlying score cannot stretch), so members on different scales (ratings,
logits, counts, cosines) add up. Non-negative weights are fitted by coordinate
ascent on a grid, maximising NDCG@k of the blended full ranking of **val** users
under the evaluation protocol. Test is only reported.

Validation selects models, so the blend's own val number must not be in-sample:
it is *cross-fitted* (weights fitted on one half of the val users score the
other half, and vice versa); the served weights are then fitted on all of them.
Members are chosen the same way: each of ``floors`` is a pool (the members whose
own val NDCG is at least that fraction of the best member's), and the pool whose
cross-fitted val NDCG is highest is served, so that two dozen weak members cannot
fit the val users' noise.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtri
from scipy.stats import rankdata

from movierec.blend.saved_rows import with_saved_rows
from movierec.config.params import ConfigError, Params
from movierec.config.sections import TopNBlendParams, eval_section, topn_blend_section
from movierec.data.processed import Processed, load_processed
from movierec.errors import MovierecError
from movierec.evaluation.metrics import popularity_metrics, ranking_metrics
from movierec.evaluation.protocol import evaluate
from movierec.models.base import Recommender
from movierec.models.trained import load_model, trained_models
from movierec.store.files import atomic_dir, reading
from movierec.store.paths import MODELS_DIR, PROCESSED, TOPN_DIR
from movierec.store.results import made_from, write_result
from movierec.topk import top_k


def member_names(params: Params, p: TopNBlendParams) -> list[str]:
    """``ensemble_topn.models``, or every trained model (subset models excluded)."""
    trained = trained_models(params)
    names = list(p.models) or trained
    unknown = [n for n in names if n not in trained]
    if unknown:
        raise ConfigError(
            f"params.yaml: `ensemble_topn.models` lists {unknown[0]!r}, which the pipeline does "
            f"not train; trained: {', '.join(trained)}"
        )
    models = params.extra.get("models") or {}
    names = [n for n in names if not (models.get(n) or {}).get("subset")]
    if len(names) < 2:
        raise ConfigError("params.yaml: `ensemble_topn` needs at least two trained models")
    return names


def normalise(rows: np.ndarray, known: sp.csr_matrix, scores: str = "zscore") -> np.ndarray:
    """Comparable rows: per row, over the movies not in ``known`` (the user's training
    movies), z-scores (``zscore``) or the standard normal quantile of each movie's rank
    among them (``rank``; ties share their mean rank), then z-scored like the first.
    Movies a member cannot score (``-inf``) get the row's lowest candidate value."""
    rows = np.asarray(rows, dtype=np.float32)
    candidate = np.isfinite(rows)
    candidate[known.nonzero()] = False
    if scores == "rank":
        rows = _normal_ranks(rows, candidate)
    count = np.maximum(candidate.sum(1, keepdims=True), 1)
    safe = np.where(candidate, rows, 0.0)
    mean = safe.sum(1, keepdims=True) / count
    var = (np.where(candidate, rows - mean, 0.0) ** 2).sum(1, keepdims=True) / count
    z = (np.where(np.isfinite(rows), rows, mean) - mean) / np.sqrt(np.maximum(var, 1e-12))
    lowest = np.where(candidate, z, np.inf).min(1, keepdims=True)
    lowest = np.where(np.isfinite(lowest), lowest, 0.0)
    return np.where(np.isfinite(rows), z, lowest).astype(np.float32)


def _normal_ranks(rows: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Each candidate's rank within its row (1 = lowest, ties share their mean rank)
    mapped to the normal quantile ``ndtri((rank - 0.5) / count)``; other movies ``-inf``."""
    low = np.where(candidate, rows, -np.inf)
    n_other = (~candidate).sum(1, keepdims=True)
    rank = rankdata(low, method="average", axis=1) - n_other  # the others rank lowest
    count = np.maximum(candidate.sum(1, keepdims=True), 1)
    quantile = ndtri(np.clip((rank - 0.5) / count, 0.5 / count, 1 - 0.5 / count))
    return np.where(candidate, quantile, -np.inf).astype(np.float32)


class TopNBlend(Recommender):
    """``sum_m w_m z_m(u, .)`` over the members with a non-zero weight."""

    name = "ensemble_topn"
    scores_are_ratings = False
    predicts_ratings = False

    def __init__(
        self, p: TopNBlendParams, names: list[str], weights: np.ndarray, scores: str = "zscore"
    ) -> None:
        super().__init__(p)
        self.names, self.weights = list(names), np.asarray(weights, dtype=np.float32)
        self.scores = scores  # how member rows were made comparable when fitted
        self.members: dict[str, Recommender] = {}
        self.known: sp.csr_matrix | None = None

    def attach(self, members: dict[str, Recommender], data: Processed) -> None:
        self.members, self.known = members, data.matrices["train"]

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        return np.full(len(user), np.nan, dtype=np.float32)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        assert self.known is not None, "attach the members first"
        out = np.zeros((len(users), self.known.shape[1]), dtype=np.float32)
        for name, w in zip(self.names, self.weights, strict=True):
            if w > 0:
                rows = self.members[name].score_users(users)
                out += w * normalise(rows, self.known[users], self.scores)
        return out


# ------------------------------------------------------------------------------ fitting


class _ValTarget:
    """Val users' relevant movies and training movies: NDCG@k of any blended score matrix."""

    def __init__(self, data: Processed, users: np.ndarray, threshold: float, k: int) -> None:
        self.relevant = (data.matrices["val"][users] >= threshold).toarray()
        self.n_rel = self.relevant.sum(1)
        self.seen = data.matrices["train"][users].toarray() != 0
        self.k = k

    def lists(self, scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Top-k lists of ``rows`` (scores of those rows only), training movies excluded."""
        return top_k(np.where(self.seen[rows], -np.inf, scores), self.k)

    def metrics(self, scores: np.ndarray, rows: np.ndarray) -> dict[str, float]:
        rec = self.lists(scores, rows)
        hits = np.take_along_axis(self.relevant[rows], np.maximum(rec, 0), axis=1) & (rec >= 0)
        return ranking_metrics(rec, hits, self.n_rel[rows], self.k)

    def ndcg(self, scores: np.ndarray, rows: np.ndarray) -> float:
        return self.metrics(scores, rows)[f"ndcg@{self.k}"]


def coordinate_ascent(
    z: np.ndarray, target: _ValTarget, rows: np.ndarray, grid: list[float], rounds: int
) -> np.ndarray:
    """Weights ``(members,)`` maximising val NDCG@k of ``sum_m w_m z[m]`` over ``rows``.

    Starts from the best single member (weight 1); each step moves one member's
    weight to its best value on ``grid``; stops after a round with no gain.
    """
    z = z[:, rows]
    weights = np.zeros(z.shape[0], dtype=np.float32)
    weights[int(np.argmax([target.ndcg(zm, rows) for zm in z]))] = 1.0
    blend = np.tensordot(weights, z, axes=1)
    best = target.ndcg(blend, rows)
    for _ in range(rounds):
        improved = False
        for m in range(z.shape[0]):
            base = blend - weights[m] * z[m]
            for w in grid:
                if w == weights[m] or (w == 0 and not weights.sum() - weights[m]):
                    continue  # never all-zero weights
                trial = base + np.float32(w) * z[m]
                score = target.ndcg(trial, rows)
                if score > best + 1e-9:
                    best, weights[m], blend, improved = score, np.float32(w), trial, True
        if not improved:
            break
    return weights


def fit_topn_blend(
    params: Params, data: Processed, members: dict[str, Recommender], k: int, threshold: float
) -> tuple[TopNBlend, dict[str, Any]]:
    """Weights from val only, a cross-fitted val estimate, and the fit's description."""
    p = topn_blend_section(params)
    names = list(members)
    t0 = time.perf_counter()
    val = data.matrices["val"]
    has_relevant = np.asarray((val >= threshold).sum(1)).ravel() > 0
    users = np.flatnonzero(has_relevant)
    if users.size < 2 * p.folds:
        raise MovierecError(
            f"ensemble_topn: only {users.size} val users have a movie rated >= {threshold}; "
            "too few to fit the blend's weights"
        )
    rng = np.random.default_rng(params.seed)
    if p.max_users and users.size > p.max_users:
        users = np.sort(rng.choice(users, p.max_users, replace=False))
    known = data.matrices["train"][users]
    z = np.stack([normalise(members[n].score_users(users), known, p.scores) for n in names])
    target = _ValTarget(data, users, threshold, k)
    everyone = np.arange(users.size)
    singles = {n: target.ndcg(z[m], everyone) for m, n in enumerate(names)}
    fold = rng.permutation(users.size) % p.folds
    pools: list[dict[str, Any]] = []
    pick: dict[str, Any] = {}  # the best pool so far, with its out-of-fold scores (one kept)
    for floor in sorted(set(p.floors)):
        chosen = [m for m, n in enumerate(names) if singles[n] >= floor * max(singles.values())]
        if pools and chosen == pools[-1]["rows"]:
            continue  # the same members as a lower floor
        oof = np.zeros((users.size, data.n_items), dtype=np.float32)
        fold_weights = []
        for f in range(p.folds):
            fit_rows, held = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
            w = coordinate_ascent(z[chosen], target, fit_rows, p.grid, p.rounds)
            fold_weights.append(w)
            oof[held] = np.tensordot(w, z[chosen][:, held], axes=1)
        pool = {"floor": floor, "rows": chosen, "ndcg": target.ndcg(oof, everyone)}
        pools.append(pool)
        if not pick or pool["ndcg"] > pick["ndcg"]:  # the lowest floor on a tie
            pick = pool | {"oof": oof, "fold_weights": fold_weights}
    chosen, oof = pick["rows"], pick["oof"]
    weights = np.zeros(len(names), dtype=np.float32)
    weights[chosen] = coordinate_ascent(z[chosen], target, everyone, p.grid, p.rounds)
    val_metrics = target.metrics(oof, everyone)
    rec = target.lists(oof, everyone)
    item_count = np.bincount(data.matrices["train"].indices, minlength=data.n_items)
    n_train_users = int((np.diff(data.matrices["train"].indptr) > 0).sum())
    val_metrics |= popularity_metrics(rec, item_count, n_train_users, k)
    val_metrics[f"coverage@{k}"] = float(np.unique(rec[rec >= 0]).size / data.n_items)

    def by_name(rows: list[int], w: np.ndarray) -> dict[str, float]:
        return {names[m]: float(x) for m, x in zip(rows, w, strict=True)}

    info = {
        "members": names,
        "scores": p.scores,
        "floor": pick["floor"],
        "pools": [
            {
                "floor": pool["floor"],
                "members": [names[m] for m in pool["rows"]],
                f"val_ndcg@{k}_cross_fitted": pool["ndcg"],
            }
            for pool in pools
        ],
        "weights": {n: float(w) for n, w in zip(names, weights, strict=True)},
        "fold_weights": [by_name(chosen, fw) for fw in pick["fold_weights"]],
        "fit_split": "val",
        "fit_users": int(users.size),
        "folds": p.folds,
        f"val_ndcg@{k}_members": singles,
        f"val_ndcg@{k}_in_sample": target.ndcg(np.tensordot(weights, z, axes=1), everyone),
        "fit_seconds": time.perf_counter() - t0,
    }
    blend = TopNBlend(p, names, weights, p.scores)
    return blend, {"val": val_metrics, "blend": info}


def load_topn_blend(params: Params, data: Processed, folder: Path = TOPN_DIR) -> TopNBlend:
    """The fitted blend with its members loaded, ready to score."""
    path = folder / "model.npz"
    if not path.is_file():
        raise MovierecError(f"{path}: no ranking blend; run `dvc repro ensemble_topn`")
    with reading(path), np.load(path) as f:
        names, weights = [str(n) for n in f["names"]], f["weights"]
        scores = str(f["scores"]) if "scores" in f else "zscore"
    blend = TopNBlend(topn_blend_section(params), names, weights, scores)
    used = {n: load_model(n, params, data) for n, w in zip(names, weights, strict=True) if w > 0}
    blend.attach(used, data)
    return blend


def run_topn_blend(params: Params, processed: Path = PROCESSED) -> dict[str, Any]:
    """The ``ensemble_topn`` stage: fit on val, evaluate on test like any model."""
    eval_params = eval_section(params)
    k = eval_params.k[0]
    data = load_processed(processed)
    names = member_names(params, topn_blend_section(params))
    members = {  # full rows from the members' evaluate stages, not scored again
        n: with_saved_rows(n, load_model(n, params, data), data, MODELS_DIR) for n in names
    }
    blend, fitted = fit_topn_blend(params, data, members, k, eval_params.threshold)
    blend.attach({n: members[n] for n in names}, data)
    test_params = type(eval_params)(
        k=eval_params.k,
        threshold=eval_params.threshold,
        user_chunk=eval_params.user_chunk,
        splits=["test"],
    )
    result = evaluate(blend, data, test_params)
    result |= {
        "model": "ensemble_topn",
        "val": fitted["val"],
        "blend": {k: v for k, v in fitted["blend"].items() if k != "fit_seconds"},
        "note": "val metrics are cross-fitted: weights fitted on the other half of the val users",
        "val_cross_fitted": True,
        "train_seconds": fitted["blend"]["fit_seconds"],
        "epochs": 1,
        "best_epoch": 1,
    }
    with atomic_dir(TOPN_DIR) as tmp:
        np.savez(
            tmp / "model.npz",
            names=np.array(blend.names),
            weights=blend.weights,
            scores=np.array(blend.scores),
        )
    write_result("ensemble_topn", result, k, made_from(TOPN_DIR, data.meta))
    return result
