"""What an evaluation writes besides its metrics: the val/test predictions file, and
one result from a fit judged on val with its refit judged on test.

The evaluate stage and the rating blend both write predictions through here, so the
file has one layout whoever wrote it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from movierec.data.processed import Processed
from movierec.evaluation.protocol import Scorer
from movierec.store.files import atomic_path


def join_refit(val: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    """One result from the val pass of the selected model and the test pass of its refit
    (the blends too: fitted on val with the first fits, tested with the refits)."""
    result = val | {k: v for k, v in test.items() if k != "per_user"}
    result["per_user"] = val.get("per_user", {}) | test.get("per_user", {})
    for key in ("score_seconds", "total_eval_seconds"):
        result[key] = val.get(key, 0.0) + test.get(key, 0.0)
    result["refit"] = {"test": "refitted on train + val for the epochs selected on val"}
    return result


class PairScores:
    """A ranker's scores of one split's (user, movie) pairs, gathered from the full rows
    ``evaluate`` computes anyway: a ranker predicts no ratings, so its predictions file
    carries these (``score``), and no second scoring pass is paid for them."""

    def __init__(self, data: Processed, split: str) -> None:
        part = data.splits[split]
        self.user, self.item = part.user.astype(np.int64), part.item.astype(np.int64)
        self.by_user = np.argsort(self.user, kind="stable")
        self.starts = np.searchsorted(self.user[self.by_user], np.arange(data.n_users + 1))
        self.score = np.full(len(part), np.nan, dtype=np.float32)
        self.where = np.full(data.n_users, -1, dtype=np.int64)

    def add(self, users: np.ndarray, scores: np.ndarray) -> None:
        if len(users) == 0:
            return
        rows = self.by_user[self.starts[users.min()] : self.starts[users.max() + 1]]
        self.where[users] = np.arange(len(users))
        at = self.where[self.user[rows]]
        rows, at = rows[at >= 0], at[at >= 0]
        self.score[rows] = scores[at, self.item[rows]]
        self.where[users] = -1

    def column(self) -> pl.Series:
        """The scores, null (not NaN) for a pair whose user was not scored."""
        return pl.Series("score", self.score).fill_nan(None)


def write_predictions(
    model: Scorer,
    data: Processed,
    path: Path,
    refit: Scorer | None = None,
    pairs: dict[str, PairScores] | None = None,
) -> None:
    """Val and test rating predictions, one row per rating, for blending and error analysis
    (test from the refit on train + val, where there is one). A ranker has no ratings to
    predict: its rows carry its ranking ``score`` of the pair instead (``pairs``)."""
    frames = []
    for split in ("val", "test"):
        part = data.splits[split]
        columns = {
            "user": part.user.astype(np.int32),
            "item": part.item.astype(np.int32),
            "split": [split] * len(part),
            "rating": part.rating,
        }
        if not model.predicts_ratings:
            if pairs is None:
                raise ValueError(f"{model.name} predicts no ratings: pass its pair scores")
            frames.append(pl.DataFrame(columns).with_columns(pairs[split].column()))
            continue
        scorer, scored = (
            (refit, data.with_val_in_train()) if refit and split == "test" else (model, data)
        )
        prediction = np.asarray(scorer.predict_split(scored, split), dtype=np.float32)
        frames.append(pl.DataFrame(columns | {"prediction": prediction}))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".parquet") as tmp:
        pl.concat(frames).write_parquet(tmp)
