"""What ``evaluate@<model>`` does, as a library function (the stage, the CLI and the
tests run this one copy)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from movierec.config import Params
from movierec.dataset import Processed, load_processed
from movierec.evaluate import evaluate
from movierec.io import atomic_dir, atomic_path
from movierec.models.base import Recommender
from movierec.results import write_result
from movierec.schema import eval_section
from movierec.score_rows import SCORES_DIR, RowSink
from movierec.trained import MODELS_DIR, load_model, load_refit

PREDICTIONS_DIR = Path("data/predictions")


def evaluate_model(
    name: str, params: Params, processed: Path = Path("data/processed")
) -> dict[str, Any]:
    """Evaluate one trained model on val and test; write ``metrics/eval/<name>.json``,
    its details, per-user values, predictions and full score rows."""
    eval_params = eval_section(params)
    data = load_processed(processed)
    model = load_model(name, params, data)
    refit = load_refit(name, params, data)
    t0 = time.perf_counter()
    subset = getattr(
        model, "keep_", None
    )  # a model trained on a demographic subset is judged on it
    pairs = None if model.predicts_ratings else {s: PairScores(data, s) for s in ("val", "test")}

    def keeping(*splits: str, rows: RowSink | None = None):
        """The ``on_rows`` of one evaluation: the rows saved for the blends (the first fit's
        only) and, for a ranker, its scores of the splits' pairs."""
        keepers = [rows.add] if rows is not None else []
        keepers += [pairs[s].add for s in splits] if pairs is not None else []

        def keep(users: np.ndarray, scores: np.ndarray) -> None:
            for add in keepers:
                add(users, scores)

        return keep

    with atomic_dir(SCORES_DIR / name) as tmp:
        sink = RowSink(tmp, data, MODELS_DIR / name / "model.npz", eval_params.save_rows_mib)
        if refit is None:
            result = evaluate(model, data, eval_params, subset, keeping("val", "test", rows=sink))
        else:  # val (what the blends fit on) from the fit on train; test from the refit
            val_params, test_params = (replace(eval_params, splits=[s]) for s in ("val", "test"))
            result = join_refit(
                evaluate(model, data, val_params, subset, keeping("val", rows=sink)),
                evaluate(refit, data.with_val_in_train(), test_params, subset, keeping("test")),
            )
        if subset is not None:
            result["subset"] = {"filter": dict(model.params.subset), "users": int(subset.sum())}
            sink.skip("judged on a subset of users; the blends leave it out")
        sink.close()
    result |= {"model": name, "eval_seconds": time.perf_counter() - t0}
    write_predictions(model, data, PREDICTIONS_DIR / f"{name}.parquet", refit, pairs)
    write_result(name, result, eval_params.k[0])
    return result


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
    model: Recommender,
    data: Processed,
    path: Path,
    refit: Recommender | None = None,
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
