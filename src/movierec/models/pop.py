"""Most popular: every user gets the movies with the most training ratings.

The floor of top-N: a ranking model that cannot beat a list everyone gets has
learned nothing about the user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from movierec.config import checks
from movierec.data.processed import Processed
from movierec.models.base import FitContext, FitReport
from movierec.models.ranking import Ranker


@dataclass
class PopParams:
    min_rating: float = 0.0  # count only ratings at or above this (0 = every rating)

    def validate(self, key: str) -> None:
        checks.non_negative(key, min_rating=self.min_rating)


class Pop(Ranker):
    """Scores each movie by its number of training ratings (ties: lower item id first)."""

    name = "pop"

    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        start = time.perf_counter()
        train = data.splits["train"]
        keep = train.rating >= self.params.min_rating
        self.count_ = np.bincount(train.item[keep], minlength=data.n_items).astype(np.float32)
        return self.one_shot_report(data, ctx, start)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.count_, (len(users), len(self.count_))).copy()

    def state(self) -> dict[str, np.ndarray]:
        return {"count": self.count_}

    def set_state(self, state: dict[str, np.ndarray], data: Processed) -> None:
        self.count_ = state["count"]
