"""What the train, evaluate and report stages do, as library functions.

The stage scripts only parse the model name and call these, so the CLI and the
tests run exactly the same code as ``dvc repro``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from movierec.config import ConfigError, Params, build_section
from movierec.dataset import Processed, load_processed
from movierec.errors import MovierecError
from movierec.evaluate import EvalParams, evaluate
from movierec.io import atomic_dir, write_json, write_text
from movierec.models.base import FitContext, Recommender
from movierec.models.registry import MODELS, create

MODELS_DIR = Path("data/models")
PREDICTIONS_DIR = Path("data/predictions")
TRAIN_METRICS = Path("metrics/train")
EVAL_METRICS = Path("metrics/eval")


@dataclass
class TrainSection:
    """``train:`` in params.yaml."""

    models: list[str] = field(default_factory=lambda: list(MODELS))
    device: str = "auto"
    amp: bool = True
    threads: int = 0

    def validate(self, key: str) -> None:
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise ConfigError(
                f"params.yaml: `{key}.models` lists unknown model {unknown[0]!r}; known: {', '.join(MODELS)}"
            )
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ConfigError(
                f"params.yaml: `{key}.device` must be auto, cpu, cuda or mps (got {self.device!r})"
            )
        if self.threads < 0:
            raise ConfigError(f"params.yaml: `{key}.threads` must be >= 0 (0 = torch's default)")


def train_section(params: Params) -> TrainSection:
    return build_section(TrainSection, params.extra.get("train"), "train")


def eval_section(params: Params) -> EvalParams:
    return build_section(EvalParams, params.extra.get("evaluate"), "evaluate")


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
    """Fit one model; write its state to ``data/models/<name>`` and curves to ``metrics/train/<name>``."""
    from dvclive import Live

    check_known(name)
    section = train_section(params)
    model = create(name, params)  # validates models.<name> before any work
    eval_section(params)
    if section.threads:
        torch.set_num_threads(section.threads)
    data = load_processed(processed)
    _check_inputs(model, data)
    with atomic_dir(TRAIN_METRICS / name) as live_dir:
        with Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None) as live:

            def log_epoch(entry: dict[str, float]) -> None:
                for key, value in entry.items():
                    if key != "epoch" and value is not None and math.isfinite(value):
                        live.log_metric(key, value)
                live.next_step()

            ctx = FitContext(
                seed=params.seed, device=section.device, amp=section.amp, log_epoch=log_epoch
            )
            report = model.fit(data, ctx)
            summary = {
                "train_seconds": report.train_seconds,
                "epochs": report.epochs,
                "best_epoch": report.best_epoch,
                "seconds_to_best": report.seconds_to_best,
                "device": report.device,
            }
            live.summary.update({k: v for k, v in summary.items() if k != "device"})
        with atomic_dir(MODELS_DIR / name) as model_dir:
            model.save(model_dir)
            write_json(model_dir / "fit.json", summary)
    return summary


def load_model(name: str, params: Params, data: Processed) -> Recommender:
    """A trained model, ready to score."""
    check_known(name)
    model = create(name, params)
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
    result = evaluate(model, data, eval_params, subset)
    if subset is not None:
        result["subset"] = {"filter": dict(model.params.subset), "users": int(subset.sum())}
    fit = json.loads((MODELS_DIR / name / "fit.json").read_text())
    result |= {
        "model": name,
        "train_seconds": fit["train_seconds"],
        "epochs": fit["epochs"],
        "best_epoch": fit["best_epoch"],
        "eval_seconds": time.perf_counter() - t0,
    }
    write_predictions(model, data, PREDICTIONS_DIR / f"{name}.parquet")
    write_json(EVAL_METRICS / f"{name}.json", result)
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


LEADERBOARD_COLUMNS = ("rmse", "mae", "ndcg@10", "recall@10", "precision@10", "map@10", "hit@10")


def build_leaderboard(eval_dir: Path = EVAL_METRICS) -> list[dict[str, Any]]:
    """One row per evaluated model, sorted by test RMSE (models without RMSE last)."""
    rows = []
    for path in sorted(eval_dir.glob("*.json")):
        result = json.loads(path.read_text())
        test = result.get("test", {})
        row = {"model": result.get("model", path.stem)}
        if "subset" in result:
            row["subset"] = ", ".join(f"{k}={v}" for k, v in result["subset"]["filter"].items())
        for col in LEADERBOARD_COLUMNS:
            row[col] = test.get(col)
        row["train_seconds"] = result.get("train_seconds")
        rows.append(row)
    rows.sort(
        key=lambda r: (r["rmse"] is None, r["rmse"] if r["rmse"] is not None else 0.0, r["model"])
    )
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def write_leaderboard(
    rows: list[dict[str, Any]], dataset: str, out_dir: Path = Path("metrics")
) -> None:
    write_json(
        out_dir / "leaderboard.json", {"dataset": dataset, "models": {r["model"]: r for r in rows}}
    )
    header = [
        "model",
        "test RMSE",
        "MAE",
        "NDCG@10",
        "Recall@10",
        "Precision@10",
        "MAP@10",
        "Hit@10",
        "train s",
    ]
    lines = [
        f"# Leaderboard ({dataset}, test split, sorted by RMSE)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in rows:
        seconds = "—" if r["train_seconds"] is None else f"{r['train_seconds']:.1f}"
        name = f"{r['model']} (subset {r['subset']})" if r.get("subset") else r["model"]
        cells = [name, *(_fmt(r[c]) for c in LEADERBOARD_COLUMNS), seconds]
        lines.append("| " + " | ".join(cells) + " |")
    write_text(out_dir / "leaderboard.md", "\n".join(lines) + "\n")
    rows_csv = ["model,rmse,ndcg@10"] + [
        f"{r['model']},{_fmt(r['rmse'])},{_fmt(r['ndcg@10'])}" for r in rows
    ]
    write_text(out_dir / "leaderboard.csv", "\n".join(rows_csv) + "\n")
