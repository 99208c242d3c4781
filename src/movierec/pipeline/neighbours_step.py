"""The ``neighbours`` stage: the lists of similar movies the server and ``movierec similar``
answer with, chosen on val.

Candidates: the cosine of co-rating counts alone, that cosine times
``floor + genre Jaccard`` for each ``neighbours.genre_floors`` value, and word2vec's
vectors for reference. Each is judged on val: the co-rated hit rate (a movie the user
liked in train, one they liked in val: is the second among the first's ``k``
neighbours?) and the genre share (of the ``k`` neighbours, those sharing a genre with the
movie). The pick is the best val hit rate among the co-rating candidates at least
``min_coherence`` genre-coherent (the most coherent when none is); test only reports it.
The lists are built from the training ratings, as every model is.
"""

from __future__ import annotations

import numpy as np

from movierec.config.params import Params
from movierec.config.sections import neighbours_section
from movierec.data.features import item_features
from movierec.data.processed import Processed, load_processed
from movierec.evaluation.neighbours import co_rated_hit_rate, genre_share, median_raters
from movierec.models.trained import load_model
from movierec.serve.neighbours import co_rated_neighbours, vector_neighbours
from movierec.serve.similar import unit_vectors
from movierec.store.files import atomic_dir, write_json
from movierec.store.paths import NEIGHBOURS_DIR, NEIGHBOURS_METRICS

PLAIN = "co-rating cosine"


def floor_name(floor: float) -> str:
    return f"co-rating cosine x (genre Jaccard + {floor:g})"


def candidates(params: Params, data: Processed) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every candidate's lists (indices, similarities), word2vec's last (a reference)."""
    p = neighbours_section(params)
    train = data.matrices["train"]
    genres = item_features(data).genres
    out = {PLAIN: co_rated_neighbours(train, None, None, p.keep)}
    for floor in p.genre_floors:
        out[floor_name(floor)] = co_rated_neighbours(train, genres, floor, p.keep)
    word2vec = load_model("word2vec", params, data)
    out["word2vec"] = vector_neighbours(*unit_vectors(*word2vec.movie_vectors()), p.keep)
    return out


def judge(
    lists: np.ndarray, data: Processed, split: str, k: int, threshold: float
) -> dict[str, float]:
    train = data.matrices["train"]
    raters = np.diff(train.tocsc().indptr)
    return {
        f"hit@{k}": co_rated_hit_rate(lists, k, train, data.matrices[split], threshold),
        f"genre_share@{k}": genre_share(lists, k, item_features(data).genres),
        f"median_raters@{k}": median_raters(lists, k, raters),
    }


def run_neighbours_stage(params: Params) -> str:
    """Judge every candidate on val, keep the pick's lists, report it on test."""
    p = neighbours_section(params)
    data = load_processed()
    lists = candidates(params, data)
    val = {name: judge(order, data, "val", p.k, p.threshold) for name, (order, _) in lists.items()}
    hit, share = f"hit@{p.k}", f"genre_share@{p.k}"
    mine = [name for name in lists if name != "word2vec"]
    coherent = [n for n in mine if val[n][share] >= p.min_coherence]
    pick = (
        max(coherent, key=lambda n: (val[n][hit], n))
        if coherent
        else max(mine, key=lambda n: (val[n][share], n))
    )
    order, sims = lists[pick]
    with atomic_dir(NEIGHBOURS_DIR) as tmp:
        np.savez(tmp / "neighbours.npz", order=order, similarity=sims, method=np.array(pick))
    test = {name: judge(o, data, "test", p.k, p.threshold) for name, (o, _) in lists.items()}
    write_json(
        NEIGHBOURS_METRICS,
        {
            "selected": pick,
            "rule": f"best val {hit} among the co-rating candidates with val {share} >= "
            f"{p.min_coherence:g}",
            "k": p.k,
            "threshold": p.threshold,
            "val": val,
            "test": test,
        },
    )
    return (
        f"neighbours: {pick} (val {hit} {val[pick][hit]:.4f}, {share} {val[pick][share]:.3f}; "
        f"word2vec {val['word2vec'][hit]:.4f}, {val['word2vec'][share]:.3f})"
    )
