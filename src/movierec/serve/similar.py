"""Nearest movies in an embedding space: word2vec vectors or a trained model's movie embeddings."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import polars as pl

from movierec.config.params import Params
from movierec.data.processed import Processed
from movierec.errors import LookupFailed, MovierecError
from movierec.models.registry import MODELS, providing
from movierec.models.trained import load_model
from movierec.serve.recommend import item_index
from movierec.topk import top_k


@dataclass
class Neighbour:
    rank: int
    movie_id: object
    title: str
    genres: str
    similarity: float
    item: int  # our index of the movie


def find_movie(data: Processed, title: str | None, movie_id: str | None) -> int:
    """Our item index from a title (case-insensitive; exact, else unique substring) or an id."""
    items = data.items
    if movie_id is not None:
        return item_index(data, movie_id)
    assert title is not None
    wanted = title.strip().lower()
    lower = items["title"].str.to_lowercase()
    exact = items.filter(lower == wanted)
    if exact.height == 1:
        return int(exact["item"].item())
    hits = exact if exact.height else items.filter(lower.str.contains(wanted, literal=True))
    if hits.height == 1:
        return int(hits["item"].item())
    if hits.height > 1:
        listing = "\n".join(
            f"  {row['movie_id']}: {row['title']}" for row in hits.head(15).iter_rows(named=True)
        )
        more = f"\n  ... and {hits.height - 15} more" if hits.height > 15 else ""
        raise LookupFailed(
            f"{hits.height} movies match {title!r}; pick one with --movie-id:\n{listing}{more}"
        )
    close = difflib.get_close_matches(title, items["title"].to_list(), n=5, cutoff=0.5)
    hint = ("; did you mean: " + "; ".join(close)) if close else ""
    raise LookupFailed(f"no movie titled {title!r} in {data.meta['dataset']}{hint}")


def movie_vectors(model: str, data: Processed, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length movie vectors ``(n_items, d)`` of a trained model and the mask of movies
    that have one; any family that provides ``movie_vectors`` qualifies."""
    able = providing("movie_vectors", list(MODELS))
    if model not in able:
        raise MovierecError(
            f"--model {model!r} has no movie vectors; choose one of {', '.join(able)}"
        )
    return unit_vectors(*load_model(model, params, data).movie_vectors())


def unit_vectors(table: np.ndarray, has: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Movie vectors scaled to unit length (so a dot product is the cosine), and the mask
    of movies that have a non-zero one."""
    table = np.asarray(table, dtype=np.float32)
    norms = np.linalg.norm(table, axis=1, keepdims=True)
    unit = np.divide(table, norms, out=np.zeros_like(table), where=norms > 0)
    return unit, np.asarray(has, dtype=bool) & (norms[:, 0] > 0)


def similar(
    data: Processed, vectors: np.ndarray, has: np.ndarray, item: int, k: int
) -> list[Neighbour]:
    """The ``k`` movies with the highest cosine similarity to ``item``."""
    if not has[item]:
        title = data.items["title"][item]
        count = int(data.matrices["train"].getcol(item).nnz)
        if count == 0:
            raise LookupFailed(f"{title} has no vector: it has no training ratings")
        raise LookupFailed(
            f"{title} has no vector: its {count} training rating(s) are too few for this "
            "model (word2vec keeps movies with at least embed.min_count ratings); lower "
            "embed.min_count or choose another --model"
        )
    sims = vectors @ vectors[item]
    sims[~has] = -np.inf
    sims[item] = -np.inf
    best = top_k(sims[None], k)[0]
    items = data.items
    rows = []
    for rank, j in enumerate(best[best >= 0], 1):
        genres = items["genres"][int(j)]
        rows.append(
            Neighbour(
                rank,
                items["movie_id"][int(j)],
                items["title"][int(j)],
                "|".join(genres) if isinstance(genres, pl.Series | list) else str(genres),
                float(sims[j]),
                int(j),
            )
        )
    return rows
