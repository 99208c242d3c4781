"""Similar movies: the ``neighbours`` stage's co-rated lists (the default), or the nearest
movies in a trained model's embedding space (word2vec, mf_bias, ...)."""

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
from movierec.store.files import reading
from movierec.store.paths import NEIGHBOURS_DIR
from movierec.topk import top_k

CO_RATED = "co_rated"  # the name the stage's lists answer to (--model, ?model=)
NEIGHBOURS_FILE = NEIGHBOURS_DIR / "neighbours.npz"


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


@dataclass
class CoRated:
    """The ``neighbours`` stage's lists: each movie's nearest, best first (-1 padded)."""

    order: np.ndarray  # (n_items, keep)
    similarity: np.ndarray  # (n_items, keep)
    method: str  # what the stage picked on val, e.g. "co-rating cosine x (genre Jaccard + 1)"

    @property
    def keep(self) -> int:
        return self.order.shape[1]


def load_co_rated(data: Processed, path=NEIGHBOURS_FILE) -> CoRated | None:
    """The stage's lists, or None before it ran; lists of another catalogue are refused."""
    if not path.is_file():
        return None
    with reading(path), np.load(path) as saved:
        lists = CoRated(saved["order"], saved["similarity"], str(saved["method"]))
    if lists.order.shape[0] != data.n_items:
        raise MovierecError(
            f"{path}: lists for {lists.order.shape[0]} movies, data/processed has "
            f"{data.n_items}; run `dvc repro neighbours`"
        )
    return lists


def co_rated(data: Processed, lists: CoRated | None, item: int, k: int) -> list[Neighbour]:
    """The ``k`` first of ``item``'s list (fewer where fewer movies share its raters)."""
    if lists is None:
        raise LookupFailed(f"{NEIGHBOURS_FILE}: no similar-movie lists yet; run `dvc repro neighbours`")
    k = min(k, lists.keep)  # the list is neighbours.keep long: more is all of it
    best = lists.order[item, :k]
    keep = best >= 0
    if not keep.any():
        title = data.items["title"][item]
        raise LookupFailed(f"{title}: no other movie shares its raters in the training ratings")
    return _rows(data, best[keep], lists.similarity[item, :k][keep])


def _rows(data: Processed, best: np.ndarray, sims: np.ndarray) -> list[Neighbour]:
    items = data.items
    rows = []
    for rank, (j, sim) in enumerate(zip(best, sims, strict=True), 1):
        genres = items["genres"][int(j)] if "genres" in items.columns else []
        rows.append(
            Neighbour(
                rank,
                items["movie_id"][int(j)],
                items["title"][int(j)],
                "|".join(genres) if isinstance(genres, pl.Series | list) else str(genres),
                float(sim),
                int(j),
            )
        )
    return rows


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
    best = top_k(sims[None], min(k, len(sims)))[0]  # never padded past the catalogue
    best = best[best >= 0]
    return _rows(data, best, sims[best])
