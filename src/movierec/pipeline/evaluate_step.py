"""What ``evaluate@<model>`` does, as a library function (the stage, the CLI and the
tests run this one copy)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from movierec.blend.saved_rows import RowSink
from movierec.config.params import Params
from movierec.config.sections import eval_section
from movierec.data.processed import load_processed
from movierec.evaluation.predictions import PairScores, join_refit, write_predictions
from movierec.evaluation.protocol import evaluate
from movierec.models.trained import load_model, load_refit
from movierec.store.files import atomic_dir
from movierec.store.paths import MODELS_DIR, PREDICTIONS_DIR, PROCESSED, SCORES_DIR
from movierec.store.results import made_from, write_result


def evaluate_model(name: str, params: Params, processed: Path = PROCESSED) -> dict[str, Any]:
    """Evaluate one trained model on val and test; write ``metrics/eval/<name>.json``,
    its details, per-user values, predictions and full score rows."""
    eval_params = eval_section(params)
    data = load_processed(processed)
    model = load_model(name, params, data)
    refit = load_refit(name, params, data)
    t0 = time.perf_counter()
    subset = model.judged_users()
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
        sink = RowSink(tmp, data, MODELS_DIR / name, eval_params.save_rows_mib)
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
    write_result(name, result, eval_params.k[0], made_from(MODELS_DIR / name, data.meta))
    return result
