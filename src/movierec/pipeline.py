"""What the train, evaluate and report stages do, as library functions.

The stage scripts only parse the model name and call these, so the CLI and the
tests run exactly the same code as ``dvc repro``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from movierec import distributed
from movierec.config import ConfigError, Params
from movierec.dataset import Processed, load_processed
from movierec.errors import DataError, MovierecError
from movierec.evaluate import evaluate
from movierec.io import atomic_dir, write_json
from movierec.models.base import FitContext, Recommender
from movierec.models.registry import MODELS, create
from movierec.results import EVAL_METRICS, write_result  # noqa: F401 (re-exported)
from movierec.schema import (  # noqa: F401 (re-exported for the stages and tests)
    TrainSection,
    check_model_sections,
    eval_section,
    train_section,
)
from movierec.score_rows import SCORES_DIR, RowSink

MODELS_DIR = Path("data/models")
PREDICTIONS_DIR = Path("data/predictions")
TRAIN_METRICS = Path("metrics/train")


def trained_models(params: Params) -> list[str]:
    """Every model the pipeline trains: ``train.models`` plus families of other stages."""
    extra = [n for n, (cls, _) in MODELS.items() if cls.trained_by != "train"]
    return train_section(params).models + extra


def check_known(name: str) -> None:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")


def _check_inputs(model: Recommender, data: Processed) -> None:
    if "sequences" in model.needs and not data.meta.get("has_timestamps"):
        raise MovierecError(
            f"{model.name} needs the order of each user's ratings, but {data.meta['dataset']} has no "
            f"timestamps; remove {model.name} from train.models in params.yaml"
        )


def train_model(
    name: str, params: Params, processed: Path = Path("data/processed")
) -> dict[str, Any]:
    """Fit one model; write its state to ``data/models/<name>`` and curves to ``metrics/train/<name>``.

    Under ``torchrun`` every rank trains (data parallel) and rank 0 alone writes; the
    returned summary is empty on the other ranks."""
    check_known(name)
    section = train_section(params)
    check_model_sections(params)
    model = create(name, params)  # validates models.<name> before any work
    protocol = eval_section(params)
    device = distributed.device_for(section.device)
    world = distributed.setup(device)
    try:
        if section.threads:  # the node's threads are shared by its ranks
            torch.set_num_threads(max(1, section.threads // world.local_size))
        data = load_processed(processed)
        _check_inputs(model, data)
        ctx = FitContext(
            seed=params.seed,
            device=device,
            amp=section.amp,
            rank_k=protocol.k[0],
            threshold=protocol.threshold,
            threads=section.threads,
        )
        if world.is_main:
            return _fit_and_write(name, model, data, ctx)
        if model.data_parallel:  # the others are fitted by rank 0 alone
            model.fit(data.for_training(), replace(ctx, progress=False))
        return {}
    finally:
        distributed.teardown()


def _fit_and_write(
    name: str, model: Recommender, data: Processed, ctx: FitContext
) -> dict[str, Any]:
    """Fit with the learning curves logged by dvclive; write model and curves atomically."""
    from dvclive import Live

    with atomic_dir(TRAIN_METRICS / name) as live_dir:
        with Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None) as live:

            def log_epoch(entry: dict[str, float]) -> None:
                for key, value in entry.items():  # seconds stay out of git (data/models)
                    if (
                        key not in ("epoch", "seconds")
                        and value is not None
                        and math.isfinite(value)
                    ):
                        live.log_metric(key, value)
                live.next_step()

            report = model.fit(data.for_training(), replace(ctx, log_epoch=log_epoch))
            summary = {
                "train_seconds": report.train_seconds,
                "epochs": report.epochs,
                "best_epoch": report.best_epoch,
                "seconds_to_best": report.seconds_to_best,
                "device": report.device,
            }
            live.summary.update({"epochs": report.epochs, "best_epoch": report.best_epoch})
        with atomic_dir(MODELS_DIR / name) as model_dir:
            model.save(model_dir)
            write_json(model_dir / "fit.json", summary | {"data": data.fingerprint()})
    return summary


def check_same_data(folder: Path, data: Processed) -> None:
    """A model trained on another data set (or another split) would score wrong movies."""
    fit = folder / "fit.json"
    if not fit.is_file():
        return
    trained = json.loads(fit.read_text()).get("data")
    now = data.fingerprint()
    if trained is not None and trained != now:

        def describe(d: dict) -> str:
            return f"{d.get('dataset')}: {d.get('n_users')} users, {d.get('n_items')} movies"

        raise DataError(
            f"{folder}: trained on other data ({describe(trained)}) than data/processed "
            f"({describe(now)}); run `dvc repro` (or `dvc repro train@{folder.name}`) first"
        )


def load_model(name: str, params: Params, data: Processed) -> Recommender:
    """A trained model, ready to score."""
    check_known(name)
    model = create(name, params)
    check_same_data(MODELS_DIR / name, data)
    model.load_state(MODELS_DIR / name, data)
    return model


def evaluate_model(
    name: str, params: Params, processed: Path = Path("data/processed")
) -> dict[str, Any]:
    """Evaluate one trained model on val and test; write ``metrics/eval/<name>.json``."""
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
    fit = json.loads((MODELS_DIR / name / "fit.json").read_text())
    result |= {
        "model": name,
        "train_seconds": fit["train_seconds"],
        "epochs": fit["epochs"],
        "best_epoch": fit["best_epoch"],
        "eval_seconds": time.perf_counter() - t0,
    }
    write_predictions(model, data, PREDICTIONS_DIR / f"{name}.parquet")
    write_result(name, result, eval_params.k[0])
    return result


def write_predictions(model: Recommender, data: Processed, path: Path) -> None:
    """Val and test rating predictions, one row per rating, for blending and error analysis."""
    import numpy as np
    import polars as pl

    from movierec.io import atomic_path

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
