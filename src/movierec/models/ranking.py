"""What the ranking families share: implicit-feedback input and judgement by val NDCG@k.

A ranking family learns *which* movies a user watches from the training
interactions, not the rating they give, so it predicts no ratings (the
leaderboard shows "—", as for word2vec) and is selected by validation NDCG@k
under the same full-ranking protocol that reports it.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import scipy.sparse as sp

from movierec.data.processed import Processed
from movierec.models.base import FitContext, FitReport, Recommender

Weighting = Literal["binary", "rating"]


def interactions(data: Processed, weighting: Weighting = "binary") -> sp.csr_matrix:
    """The training user x movie matrix: 1 per rating, or the rating scaled to (0, 1].

    Rating weights let a ranker prefer what users liked among what they watched
    (the top-N protocol counts only ratings at or above ``evaluate.threshold``).
    """
    return weigh(data.matrices["train"], weighting, data.rating_range[1])


def weigh(ratings: sp.spmatrix, weighting: Weighting, top: float) -> sp.csr_matrix:
    """Rows of ratings as a ranker reads them (1 each, or rating / ``top``): the training
    matrix, or the row of a new user folded in."""
    x = sp.csr_matrix(ratings, dtype=np.float32, copy=True)
    if weighting == "binary":
        x.data[:] = 1.0
    else:
        x.data /= np.float32(top)
    x.eliminate_zeros()
    return x


class Ranker(Recommender):
    """Base of the ranking families: full rows of scores, no rating predictions."""

    scores_are_ratings = False
    predicts_ratings = False

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        return np.full(len(user), np.nan, dtype=np.float32)

    def one_shot_report(self, data: Processed, ctx: FitContext, start: float) -> FitReport:
        """The report of a closed-form fit: one step, with its val NDCG@k as the curve point."""
        seconds = time.perf_counter() - start
        entry = {"epoch": 1, "seconds": seconds}
        validation = ctx.ranking_validation(self, data) if len(data.splits["val"]) else None
        if validation is not None:
            entry |= validation.compute(None)
        return FitReport(seconds, 1, 1, seconds, "cpu", [entry])
