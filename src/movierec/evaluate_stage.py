"""What ``evaluate@<model>`` does, as a library function (the stage, the CLI and the
tests run this one copy)."""

from __future__ import annotations

import time
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
from movierec.trained import MODELS_DIR, load_model

PREDICTIONS_DIR = Path("data/predictions")


def evaluate_model(
    name: str, params: Params, processed: Path = Path("data/processed")
) -> dict[str, Any]:
    """Evaluate one trained model on val and test; write ``metrics/eval/<name>.json``,
    its details, per-user values, predictions and full score rows."""
    eval_params = eval_section(params)
    data = load_processed(processed)
    model = load_model(name, params, data)
    t0 = time.perf_counter()
    subset = getattr(
        model, "keep_", None
    )  # a model trained on a demographic subset is judged on it
    with atomic_dir(SCORES_DIR / name) as tmp:
        rows = RowSink(tmp, data, MODELS_DIR / name / "model.npz", eval_params.save_rows_mib)
        result = evaluate(model, data, eval_params, subset, on_rows=rows.add)
        if subset is not None:
            result["subset"] = {"filter": dict(model.params.subset), "users": int(subset.sum())}
            rows.skip("judged on a subset of users; the blends leave it out")
        rows.close()
    result |= {"model": name, "eval_seconds": time.perf_counter() - t0}
    write_predictions(model, data, PREDICTIONS_DIR / f"{name}.parquet")
    write_result(name, result, eval_params.k[0])
    return result


def write_predictions(model: Recommender, data: Processed, path: Path) -> None:
    """Val and test rating predictions, one row per rating, for blending and error analysis."""
    import numpy as np
    import polars as pl

    frames = []
    for split in ("val", "test"):
        part = data.splits[split]
        frames.append(
            pl.DataFrame(
                {
                    "user": part.user.astype(np.int32),
                    "item": part.item.astype(np.int32),
                    "split": [split] * len(part),
                    "rating": part.rating,
                    "prediction": np.asarray(model.predict_split(data, split), dtype=np.float32),
                }
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".parquet") as tmp:
        pl.concat(frames).write_parquet(tmp)
