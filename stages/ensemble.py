"""DVC stage `ensemble`: blend the members' val predictions, evaluate like any model, explain errors."""

import numpy as np
import polars as pl

from movierec.config import load_params
from movierec.dataset import load_processed
from movierec.ensemble import ENSEMBLE_DIR, error_report, fit_ensemble
from movierec.evaluate import evaluate
from movierec.io import atomic_dir, write_json, write_text
from movierec.pipeline import (
    EVAL_METRICS,
    PREDICTIONS_DIR,
    eval_section,
    load_model,
    write_predictions,
)
from movierec.stage import run_cli


def main() -> None:
    params = load_params()
    eval_params = eval_section(params)
    data = load_processed()
    model, info = fit_ensemble(params, data, PREDICTIONS_DIR)
    model.members = [load_model(n, params, data) for n in model.names]
    result = evaluate(model, data, eval_params)
    result |= {
        "model": "ensemble",
        "blend": info,
        "note": "val metrics are in-sample: the blend is fitted on val; test is held out",
        "train_seconds": info["fit_seconds"],
        "epochs": 1,
        "best_epoch": 1,
    }
    with atomic_dir(ENSEMBLE_DIR) as tmp:
        np.savez(tmp / "model.npz", **model.state())
        write_predictions(model, data, tmp / "predictions.parquet")
    write_json(EVAL_METRICS / "ensemble.json", result)
    best = min(info["val_rmse_members"], key=info["val_rmse_members"].get)
    test = pl.read_parquet(PREDICTIONS_DIR / f"{best}.parquet").filter(pl.col("split") == "test")
    report = error_report(
        data, best, test["prediction"].to_numpy(), model.predict_split(data, "test")
    )
    write_text("metrics/insight/errors.md", report)
    members = info["val_rmse_members"]
    print(
        f"ensemble of {len(members)}: test RMSE {result['test']['rmse']:.4f} "
        f"(best member {best}: val {members[best]:.4f})"
    )


if __name__ == "__main__":
    run_cli(main)
