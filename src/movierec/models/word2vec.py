"""item2vec: gensim Word2Vec movie vectors from each user's training movies in order.

Trained by the ``embed`` stage (hyper-parameters under ``embed:``); ranks movies by
cosine to the mean of the user's training-movie vectors and predicts no ratings.
Tokens are the original movie ids, so the saved vectors stay meaningful outside
this project; one worker thread, a fixed seed and a stable hash make them
identical run to run.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from movierec.config.sections import EmbedParams
from movierec.data.processed import Processed
from movierec.errors import MovierecError
from movierec.models.base import FitContext, FitReport, Recommender
from movierec.store.files import reading


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


class Word2VecModel(Recommender):
    """item2vec: ranks movies by cosine to the mean of the user's training-movie vectors.

    Trained by the ``embed`` stage (hyper-parameters under ``embed:``); no ratings.
    """

    name = "word2vec"
    scores_are_ratings = False
    predicts_ratings = False
    provides = frozenset({"movie_vectors", "fold_in", "explain"})
    trained_by = "embed"
    params_key = "embed"

    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        t0 = time.perf_counter()
        self.keyed_ = train_word2vec(data, self.params, ctx.seed).wv
        self._align(data)
        seconds = time.perf_counter() - t0
        return FitReport(seconds, self.params.epochs, self.params.epochs, seconds)

    def _align(self, data: Processed) -> None:
        self.vectors_, self.has_ = aligned_vectors(self.keyed_, data)
        self.profile_ = self._profiles(data.matrices["train"])

    def _profiles(self, rows: sp.spmatrix) -> np.ndarray:
        """Unit sum of the vectors of each row's movies (watched: the ratings' values do
        not count, as in training, where a movie is a word of the user's sentence)."""
        seen = sp.csr_matrix(rows, dtype=np.float32, copy=True)
        seen.data[:] = 1.0
        profile = np.asarray(seen @ self.vectors_, dtype=np.float32)
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        return np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)

    def _scores(self, profiles: np.ndarray) -> np.ndarray:
        scores = profiles @ self.vectors_.T
        scores[:, ~self.has_] = -np.inf  # no vector, no recommendation
        return scores

    def score_users(self, users: np.ndarray) -> np.ndarray:
        return self._scores(self.profile_[users])

    def score_ratings(self, ratings: sp.spmatrix, data: Processed) -> np.ndarray:
        """Movie-to-movie: a new user's profile is built from their movies as a known one's."""
        return self._scores(self._profiles(ratings))

    def contributions(self, ratings: sp.spmatrix, item: int, data: Processed) -> np.ndarray:
        """The cosine is a sum over the user's movies of each one's dot with ``item``'s
        vector, over the profile's length."""
        row = sp.csr_matrix(ratings)
        total = np.linalg.norm(self.vectors_[row.indices].sum(axis=0))
        dots = self.vectors_[row.indices] @ self.vectors_[item]
        return (dots / total if total > 0 else np.zeros_like(dots)).astype(np.float32)

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        return np.full(len(user), np.nan, dtype=np.float32)

    def movie_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vectors_, self.has_

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # gensim logs each save (time, temporary path) inside the file: without that log,
        # the same vectors give the same bytes, so DVC sees an unchanged output on a rerun
        self.keyed_.lifecycle_events = None
        self.keyed_.save(str(folder / "vectors.kv"))

    def load_state(self, folder: Path, data: Processed) -> None:
        from gensim.models import KeyedVectors

        path = folder / "vectors.kv"
        if not path.is_file():
            raise MovierecError(f"{path}: no word2vec vectors; run `dvc repro embed`")
        with reading(path):  # a damaged file is one line naming it
            self.keyed_ = KeyedVectors.load(str(path))
            self._align(data)
