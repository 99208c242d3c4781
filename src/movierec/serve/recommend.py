"""Top-N for one user and single predictions, with titles (used by the CLI)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from movierec.blend.ensemble import load_ensemble
from movierec.blend.topn import load_topn_blend
from movierec.config.params import Params
from movierec.data.processed import Processed
from movierec.errors import LookupFailed, MovierecError
from movierec.models.base import Recommender
from movierec.models.registry import MODELS
from movierec.models.trained import check_scores, load_final
from movierec.store.files import reading
from movierec.store.paths import BLEND_DIRS, LEADERBOARD, MODELS_DIR
from movierec.topk import top_k

# The blends: not registry families (their stages fit them from the other models).


def is_trained(name: str) -> bool:
    if name in BLEND_DIRS:
        return (BLEND_DIRS[name] / "model.npz").is_file()
    return name in MODELS and (MODELS_DIR / name).is_dir()


def load_served(name: str, params: Params, data: Processed) -> Recommender:
    """Any model on the leaderboard, the blends included, ready to score: the copy refitted
    on train + val where ``train.refit`` made one, as its test row reports."""
    if name in BLEND_DIRS:
        load = load_ensemble if name == "ensemble" else load_topn_blend
        blend = load(params, data, BLEND_DIRS[name])
        check_scores(BLEND_DIRS[name], blend, data)
        return blend
    if name not in MODELS:
        known = [*MODELS, *BLEND_DIRS]
        raise LookupFailed(f"--model {name!r} is not a model; known: {', '.join(known)}")
    return load_final(name, params, data)


def default_model(task: str, leaderboard: Path = LEADERBOARD) -> str:
    """The trained model that **validation** ranks first for ``task`` (``topn`` or ``rating``).

    Test metrics only report; they never choose what a user is served.
    """
    if not leaderboard.is_file():
        raise MovierecError(f"{leaderboard}: no leaderboard yet; run `dvc repro` or pass --model")
    with reading(leaderboard):
        board = json.loads(leaderboard.read_text())
    key = "val_rmse" if task == "rating" else f"val_ndcg@{board.get('k', 10)}"
    sign = 1.0 if task == "rating" else -1.0
    rows = [
        r
        for r in board.get(task, [])
        if r.get(key) is not None and not r.get("subset") and not r.get("val_in_sample")
    ]
    for row in sorted(rows, key=lambda r: (sign * r[key], r["model"])):
        if is_trained(row["model"]):
            return row["model"]
    raise MovierecError(f"{leaderboard}: no trained model to serve for {task}; pass --model")


DECIMAL = re.compile(r"-?[0-9]+")  # ASCII only: not 4_2, +42, ٤٢ or ４２ (int() takes them all)


def parse_id(text: str, integer: bool) -> int | str | None:
    """An id as the data stores it: a whole number of ASCII digits where ids are numbers
    (None when ``text`` is not one), the text itself otherwise."""
    text = text.strip()  # ids are stored without surrounding spaces (data.parse)
    if not integer:
        return text
    return int(text) if DECIMAL.fullmatch(text) else None


def user_index(data: Processed, user_id: str) -> int:
    users = data.users
    col = users["user_id"]
    key = parse_id(user_id, col.dtype.is_integer())
    if key is None:
        raise LookupFailed(
            f"user {user_id.strip()!r} is not a valid id for {data.meta['dataset']} "
            "(ids are whole numbers written with the digits 0-9)"
        )
    user_id = str(key)
    hit = users.filter(pl.col("user_id") == key)
    if hit.height == 0:
        raise LookupFailed(
            f"user {user_id} is not in {data.meta['dataset']} (user ids run from {col.min()} to {col.max()})"
        )
    return int(hit["user"].item())


def item_index(data: Processed, movie_id: str) -> int:
    items = data.items
    key = parse_id(movie_id, items["movie_id"].dtype.is_integer())
    if key is None:
        raise LookupFailed(
            f"movie {movie_id.strip()!r} is not a valid id "
            "(ids are whole numbers written with the digits 0-9)"
        )
    movie_id = str(key)
    hit = items.filter(pl.col("movie_id") == key)
    if hit.height == 0:
        raise LookupFailed(
            f"movie {movie_id} is not in {data.meta['dataset']}; `movierec similar TITLE` finds ids"
        )
    return int(hit["item"].item())


def readable_scores(
    model: Recommender, row: np.ndarray, ranked: np.ndarray, data: Processed
) -> tuple[str, list[float]]:
    """What a person reads beside each movie: the predicted rating (rating models, clipped
    to the data set's scale), or for a ranker its relevance: the share of the user's
    candidate movies it outranks, 0 to 100 (a ranker's raw scores have no unit)."""
    if model.predicts_ratings and model.scores_are_ratings:
        lo, hi = data.rating_range
        return "predicted rating", [round(float(np.clip(row[i], lo, hi)), 2) for i in ranked]
    candidates = np.sort(row[np.isfinite(row)])
    below = np.searchsorted(candidates, row[ranked], side="left")
    share = 100.0 * below / max(len(candidates) - 1, 1)
    return "relevance (0-100)", [round(float(s), 1) for s in share]


@dataclass
class Recommendation:
    rank: int
    movie_id: int | str
    title: str
    year: int | None
    score: float  # readable: a predicted rating, or a ranker's relevance 0-100


def recommend(
    data: Processed, params: Params, user_id: str, k: int, model_name: str
) -> tuple[str, list[Recommendation]]:
    """The user's top-``k`` movies they have not rated (in any split), and what their
    score is (:func:`readable_scores`: the API shows the same)."""
    if k < 1:
        raise LookupFailed(f"-k must be at least 1 (got {k})")
    k = min(k, data.n_items)  # a list longer than the catalogue is the catalogue
    user = user_index(data, user_id)
    model = load_served(model_name, params, data)
    scores = np.asarray(model.score_users(np.array([user])), dtype=np.float32)
    seen = data.ratings.filter(pl.col("user") == user)["item"].to_numpy()
    scores[0, seen] = -np.inf
    ranked = top_k(scores, k)[0]
    ranked = ranked[ranked >= 0]
    kind, readable = readable_scores(model, scores[0], ranked, data)
    items = data.items
    out = []
    for pos, (item, score) in enumerate(zip(ranked, readable, strict=True), start=1):
        row = items.row(int(item), named=True)
        out.append(Recommendation(pos, row["movie_id"], row["title"], row["year"], score))
    return kind, out


def predict_one(
    data: Processed, params: Params, user_id: str, movie_id: str, model_name: str
) -> tuple[float, float | None]:
    """Predicted rating and, when the user rated the movie, the actual rating."""
    user, item = user_index(data, user_id), item_index(data, movie_id)
    model = load_served(model_name, params, data)
    if not model.predicts_ratings:
        raise LookupFailed(
            f"{model_name} ranks movies but does not predict ratings; pick a rating model"
        )
    pred = float(model.predict(np.array([user]), np.array([item]))[0])
    actual = data.ratings.filter((pl.col("user") == user) & (pl.col("item") == item))["rating"]
    return pred, (float(actual.item()) if actual.len() else None)
