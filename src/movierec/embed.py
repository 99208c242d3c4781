"""Item embeddings with gensim word2vec (item2vec) and the quality numbers behind them.

Sentences are each user's *training* movies in time order (val and test never
enter), so the next-movie metrics on the test split are honest. Tokens are the
original movie ids, so the saved vectors stay meaningful outside this project.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from movierec.config import ConfigError, Params, build_section
from movierec.dataset import Processed
from movierec.errors import MovierecError
from movierec.evaluate import EvalParams, evaluate
from movierec.features import item_features
from movierec.metrics import ranking_metrics, top_k
from movierec.models.base import Recommender

VECTORS_DIR = Path("data/models/word2vec")


@dataclass
class EmbedParams:
    """``embed:`` in params.yaml."""

    method: Literal["skipgram", "cbow"] = "skipgram"
    vector_size: int = 64
    window: int = 50  # wide: a user's movies are a set more than a sentence
    negative: int = 10
    min_count: int = 5  # rarer movies get noisy vectors that crowd the top of every list
    epochs: int = 20
    min_rating: float = 0.0  # keep only movies rated at or above this in the sentences (0 = all)
    sample: float = 1e-4  # down-sampling of the most-rated movies
    neighbours: int = 6  # for genre coherence@neighbours
    k: int = 10  # cut-off of the next-movie metrics

    def validate(self, key: str) -> None:
        for name in ("vector_size", "window", "negative", "min_count", "epochs", "neighbours", "k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"params.yaml: `{key}.{name}` must be at least 1")
        if self.min_rating < 0 or self.sample < 0:
            raise ConfigError(f"params.yaml: `{key}.min_rating` and `{key}.sample` must be >= 0")


def embed_section(params: Params) -> EmbedParams:
    return build_section(EmbedParams, params.extra.get("embed"), "embed")


def stable_hash(text: str) -> int:
    """Seeds word vectors; Python's ``hash`` of a string changes with every process."""
    return zlib.crc32(text.encode())


def sentences(data: Processed, min_rating: float = 0.0) -> list[list[str]]:
    """Each user's training movies (as original ids), in the order of ``ratings.parquet``."""
    train = data.splits["train"]
    keep = train.rating >= min_rating
    user, item = train.user[keep], train.item[keep]
    tokens = data.items["movie_id"].cast(str).to_numpy()[item]
    cuts = np.flatnonzero(np.diff(user)) + 1
    return [list(s) for s in np.split(tokens, cuts) if len(s)]


def train_word2vec(data: Processed, p: EmbedParams, seed: int):
    """A deterministic Word2Vec (one worker thread, fixed seed and hash)."""
    from gensim.models import Word2Vec

    corpus = sentences(data, p.min_rating)
    if not corpus:
        raise MovierecError(
            f"embed: no training ratings at or above embed.min_rating={p.min_rating}; lower it"
        )
    return Word2Vec(
        corpus,
        vector_size=p.vector_size,
        window=p.window,
        negative=p.negative,
        min_count=p.min_count,
        sg=1 if p.method == "skipgram" else 0,
        sample=p.sample,
        epochs=p.epochs,
        seed=seed,
        workers=1,
        hashfxn=stable_hash,
    )


def aligned_vectors(keyed, data: Processed) -> tuple[np.ndarray, np.ndarray]:
    """``(n_items, dim)`` unit vectors in our item order and a mask of movies that have one."""
    ids = data.items["movie_id"].cast(str).to_list()
    has = np.array([m in keyed.key_to_index for m in ids])
    vectors = np.zeros((data.n_items, keyed.vector_size), dtype=np.float32)
    rows = [keyed.key_to_index[m] for m, h in zip(ids, has, strict=True) if h]
    vectors[has] = keyed.get_normed_vectors()[rows]
    return vectors, has


class AverageOfVectors(Recommender):
    """Scores movies by cosine to the mean of the user's training-movie vectors (no ratings)."""

    name = "word2vec"
    scores_are_ratings = False
    predicts_ratings = False

    def __init__(self, vectors: np.ndarray, has: np.ndarray, data: Processed) -> None:
        super().__init__(None)
        self.vectors, self.has = vectors, has
        train = data.matrices["train"].tocsr().copy()
        train.data[:] = 1.0
        profile = train @ vectors  # sum of the user's training vectors
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        self.profile = np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        scores = self.profile[users] @ self.vectors.T
        scores[:, ~self.has] = -np.inf  # no vector, no recommendation
        return scores

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        return np.full(len(user), np.nan, dtype=np.float32)


def next_movie_metrics(
    scores: np.ndarray, seen: sp.csr_matrix, target: sp.csr_matrix, k: int
) -> dict[str, float]:
    """hit@k and ndcg@k where every held-out movie of the user counts (watched, any rating)."""
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    ranked = scores[users].copy()
    ranked[seen[users].nonzero()] = -np.inf
    rec = top_k(ranked, k)
    relevant = target[users].toarray() > 0
    rel = np.take_along_axis(relevant, np.maximum(rec, 0), axis=1) & (rec >= 0)
    m = ranking_metrics(rec, rel, relevant.sum(axis=1), k)
    return {f"hit@{k}": m[f"hit@{k}"], f"ndcg@{k}": m[f"ndcg@{k}"], "users": int(len(users))}


def genre_coherence(
    vectors: np.ndarray, has: np.ndarray, genres: np.ndarray, k: int, chunk: int = 2048
) -> dict[str, float]:
    """Share of each movie's ``k`` nearest neighbours sharing a genre with it, and what random
    neighbours would give (the exact expectation, not a sample)."""
    idx = np.flatnonzero(has & (genres.sum(axis=1) > 0))
    if len(idx) <= k:
        return {"coherence": float("nan"), "random": float("nan"), "movies": int(len(idx))}
    vec, gen = vectors[idx], genres[idx]
    shared_nn, shared_rand = [], []
    for lo in range(0, len(idx), chunk):
        block = slice(lo, lo + chunk)
        sims = vec[block] @ vec.T
        rows = np.arange(sims.shape[0])
        sims[rows, rows + lo] = -np.inf  # a movie is not its own neighbour
        nn = top_k(sims, k)
        overlap = (gen[block] @ gen.T) > 0  # (b, n): shares a genre
        shared_nn.append(np.take_along_axis(overlap, nn, axis=1).mean(axis=1))
        shared_rand.append((overlap.sum(axis=1) - 1) / (len(idx) - 1))  # minus itself
    return {
        "coherence": float(np.concatenate(shared_nn).mean()),
        "random": float(np.concatenate(shared_rand).mean()),
        "movies": int(len(idx)),
    }


def run_embed(params: Params, data: Processed, out_dir: Path = VECTORS_DIR) -> dict[str, Any]:
    """Train, save and score word2vec; returns ``metrics/embed.json`` and the eval result."""
    from movierec.io import atomic_dir

    p = embed_section(params)
    t0 = time.perf_counter()
    model = train_word2vec(data, p, params.seed)
    train_seconds = time.perf_counter() - t0
    with atomic_dir(out_dir) as tmp:
        model.wv.save(str(tmp / "vectors.kv"))
    vectors, has = aligned_vectors(model.wv, data)
    rec = AverageOfVectors(vectors, has, data)
    seen = data.seen(("train", "val"))
    target = data.matrices["test"]
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    scores = np.full((data.n_users, data.n_items), -np.inf, dtype=np.float32)
    scores[users] = rec.score_users(users)
    test_counts = np.diff(target.tocsc().indptr)
    items = item_features(data)
    timestamps = bool(data.meta.get("has_timestamps"))
    summary = {
        "method": p.method,
        "sentence_order": "time"
        if timestamps
        else "file order (the data set has no timestamps, so the window spans co-rated movies)",
        "sentences": int(len(sentences(data, p.min_rating))),
        "vocabulary": int(len(model.wv)),
        "coverage_catalogue": float(has.mean()),
        "coverage_test_ratings": float((test_counts * has).sum() / max(1, test_counts.sum())),
        "train_seconds": train_seconds,
        "next_movie": next_movie_metrics(scores, seen, target, p.k),
        f"genre_coherence@{p.neighbours}": genre_coherence(
            vectors, has, items.genres, p.neighbours
        ),
    }
    return {"embed": summary, "recommender": rec}


def evaluate_word2vec(rec: AverageOfVectors, data: Processed, eval_params: EvalParams) -> dict:
    """The leaderboard's protocol (relevant = rated >= threshold); no rating metrics."""
    return evaluate(rec, data, eval_params)
