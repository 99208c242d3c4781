"""Hyper-parameter search with Optuna (TPE, seeded): objective = validation RMSE, test unseen.

Search spaces live in params.yaml under ``tune.spaces.<model>``; each entry is
``[kind, low, high]`` with kind ``int``, ``float`` or ``log`` (log-uniform float),
or ``[choice, a, b, ...]``. The best trial is written as a YAML file holding
``models.<model>`` plus the ``dvc exp run -S`` command that applies it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from movierec.config import ConfigError, Params
from movierec.dataset import Processed
from movierec.io import write_text
from movierec.models.base import FitContext
from movierec.models.registry import MODELS, model_params
from movierec.schema import KINDS, search_space  # noqa: F401


def suggest(trial, space: dict[str, list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (kind, *args) in space.items():
        if kind == "int":
            out[key] = trial.suggest_int(key, int(args[0]), int(args[1]))
        elif kind == "float":
            out[key] = trial.suggest_float(key, float(args[0]), float(args[1]))
        elif kind == "log":
            out[key] = trial.suggest_float(key, float(args[0]), float(args[1]), log=True)
        else:
            out[key] = trial.suggest_categorical(key, args)
    return out


def val_rmse(model, data: Processed) -> float:
    part = data.splits["val"]
    pred = model.predict_split(data, "val")
    return float(np.sqrt(np.mean((pred - part.rating) ** 2)))


def tune(
    params: Params,
    data: Processed,
    model: str,
    trials: int,
    out: Path,
    timeout: float | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Run the study; write ``out`` (YAML) and return the best trial's summary."""
    optuna = _import_optuna()

    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; known models: {', '.join(MODELS)}")
    if trials < 1:
        raise ConfigError("--trials must be at least 1")
    space = search_space(params, model)
    base = dict(((params.extra.get("models") or {}).get(model)) or {})
    model_params(model, base)  # the starting point itself must be valid
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=params.seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)

    def objective(trial) -> float:
        hp = base | suggest(trial, space)
        try:
            instance = MODELS[model][0](model_params(model, hp))
        except ConfigError as err:  # e.g. dim not divisible by heads: prune, don't crash
            raise optuna.TrialPruned(str(err)) from None
        instance.fit(
            data.for_training(), FitContext(seed=params.seed, device=device, progress=False)
        )
        rmse = val_rmse(instance, data)
        return rmse if math.isfinite(rmse) else float("inf")

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials, timeout=timeout)
    best = study.best_trial
    tuned = base | best.params
    model_params(model, tuned)
    flags = " ".join(f"-S 'models.{model}.{k}={_yaml_value(v)}'" for k, v in best.params.items())
    header = (
        f"# movierec tune --model {model} --trials {trials} ({data.meta['dataset']}, seed {params.seed})\n"
        f"# best val RMSE {best.value:.4f} (trial {best.number} of {len(study.trials)}, "
        f"{time.perf_counter() - t0:.0f}s). Apply with:\n#   dvc exp run {flags}\n"
    )
    body = yaml.safe_dump({"models": {model: _plain(tuned)}}, sort_keys=False)
    write_text(out, header + body)
    return {
        "model": model,
        "best_val_rmse": float(best.value),
        "best_params": best.params,
        "trials": len(study.trials),
        "command": f"dvc exp run {flags}",
    }


def _import_optuna():
    try:
        import optuna
    except ModuleNotFoundError:
        raise ConfigError(
            'movierec tune needs optuna, which is not installed; run `pip install -e ".[tune]"`'
        ) from None
    return optuna


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in values.items()}


def _yaml_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)
