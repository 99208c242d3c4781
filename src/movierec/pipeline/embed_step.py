"""Item embeddings with gensim word2vec (item2vec) and the quality numbers behind them.

Sentences are each user's *training* movies in time order (val and test never
enter), so the next-movie metrics on the test split are honest. Tokens are the
original movie ids, so the saved vectors stay meaningful outside this project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from movierec.blend.saved_rows import RowSink
from movierec.config.params import Params
from movierec.config.sections import EmbedParams, embed_section, eval_section  # noqa: F401
from movierec.data.features import item_features
from movierec.data.processed import Processed, load_processed
from movierec.evaluation.metrics import ranking_metrics
from movierec.evaluation.protocol import EvalParams, evaluate
from movierec.models.base import FitContext
from movierec.models.word2vec import (  # noqa: F401 (re-exported)
    Word2VecModel,
    aligned_vectors,
    sentences,
    stable_hash,
    train_word2vec,
)
from movierec.store.files import atomic_dir, write_json
from movierec.store.paths import EMBED_METRICS, SCORES_DIR, VECTORS_DIR
from movierec.store.results import made_from, write_result
from movierec.topk import top_k


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
    p = embed_section(params)
    rec = Word2VecModel(p)
    train_seconds = rec.fit(data.for_training(), FitContext(seed=params.seed)).train_seconds
    with atomic_dir(out_dir) as tmp:
        rec.save(tmp)
    vectors, has = rec.movie_vectors()
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
        "vocabulary": int(len(rec.keyed_)),
        "coverage_catalogue": float(has.mean()),
        "coverage_test_ratings": float((test_counts * has).sum() / max(1, test_counts.sum())),
        "next_movie": next_movie_metrics(scores, seen, target, p.k),
        f"genre_coherence@{p.neighbours}": genre_coherence(
            vectors, has, items.genres, p.neighbours
        ),
    }
    return {"embed": summary, "recommender": rec, "train_seconds": train_seconds}


def evaluate_word2vec(rec: Word2VecModel, data: Processed, eval_params: EvalParams) -> dict:
    """The leaderboard's protocol (relevant = rated >= threshold); no rating metrics.

    The full score rows it makes are saved in ``data/scores/word2vec``, as ``evaluate@<model>``
    saves every other member's, so the ranking blend reads them instead of scoring again."""
    with atomic_dir(SCORES_DIR / "word2vec") as tmp:
        sink = RowSink(tmp, data, VECTORS_DIR, eval_params.save_rows_mib)
        result = evaluate(rec, data, eval_params, None, sink.add)
        sink.close()
    return result


def run_embed_stage(params: Params) -> str:
    """The ``embed`` stage: vectors, ``metrics/embed.json`` and a leaderboard entry."""
    eval_params = eval_section(params)
    data = load_processed()
    out = run_embed(params, data)
    summary = out["embed"]
    result = evaluate_word2vec(out["recommender"], data, eval_params)
    write_json(EMBED_METRICS, summary)
    write_result(
        "word2vec",
        result | {"train_seconds": out["train_seconds"]},
        eval_params.k[0],
        made_from(VECTORS_DIR, data.meta),
    )
    coherence = next(v for k, v in summary.items() if k.startswith("genre_coherence"))
    hit = next(v for k, v in summary["next_movie"].items() if k.startswith("hit"))
    return (
        f"word2vec: {summary['vocabulary']} movies, next-movie hit@{params_k(summary)} {hit:.4f}, "
        f"genre coherence {coherence['coherence']:.3f} (random {coherence['random']:.3f}), "
        f"{out['train_seconds']:.1f}s"
    )


def params_k(summary: dict[str, Any]) -> str:
    return next(k for k in summary["next_movie"] if k.startswith("hit")).split("@")[1]
