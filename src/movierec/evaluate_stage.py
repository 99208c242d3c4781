"""What ``evaluate@<model>`` does, as a library function (the stage, the CLI and the
tests run this one copy)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

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
    with atomic_dir(SCORES_DIR / name) as tmp:
        rows = RowSink(tmp, data, MODELS_DIR / name / "model.npz", eval_params.save_rows_mib)
        if refit is None:
            result = evaluate(model, data, eval_params, subset, on_rows=rows.add)
        else:  # val (what the blends fit on) from the fit on train; test from the refit
            result = join_refit(
                evaluate(model, data, replace(eval_params, splits=["val"]), subset, rows.add),
                evaluate(
                    refit, data.with_val_in_train(), replace(eval_params, splits=["test"]), subset
                ),
            )
        if subset is not None:
            result["subset"] = {"filter": dict(model.params.subset), "users": int(subset.sum())}
            rows.skip("judged on a subset of users; the blends leave it out")
        rows.close()
    result |= {"model": name, "eval_seconds": time.perf_counter() - t0}
    write_predictions(model, data, PREDICTIONS_DIR / f"{name}.parquet", refit)
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


def write_predictions(
    model: Recommender, data: Processed, path: Path, refit: Recommender | None = None
) -> None:
    """Val and test rating predictions, one row per rating, for blending and error analysis
    (test from the refit on train + val, where there is one)."""
    import numpy as np
    import polars as pl

    frames = []
    for split in ("val", "test"):
        part = data.splits[split]
        scorer, scored = (
            (refit, data.with_val_in_train()) if refit and split == "test" else (model, data)
        )
        frames.append(
            pl.DataFrame(
                {
                    "user": part.user.astype(np.int32),
                    "item": part.item.astype(np.int32),
                    "split": [split] * len(part),
                    "rating": part.rating,
                    "prediction": np.asarray(scorer.predict_split(scored, split), dtype=np.float32),
                }
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".parquet") as tmp:
        pl.concat(frames).write_parquet(tmp)
