"""Hyper-parameter search with Optuna (TPE, seeded) on validation only, test unseen.

The objective is what the family is judged by: val RMSE for rating families,
val NDCG@k (``evaluate.k[0]``, full ranking) for ranking families.

Search spaces live in params.yaml under ``tune.spaces.<model>``; each entry is
``[kind, low, high]`` with kind ``int``, ``float`` or ``log`` (log-uniform float),
or ``[choice, a, b, ...]``. The best trial is written as a YAML file holding
``models.<model>``, the same block as a ``profiles.yaml`` entry for the data set, and
the ``dvc exp run -S`` command that applies it.

Studies live in a storage, so several processes or machines can search one space:
a journal file under ``data/tune/`` by default, or a database URL (``sqlite:///``,
``postgresql://``, ``mysql://``). Each worker runs ``--trials`` more trials of the named
study; the sampler's random draws are seeded by (seed, trial number), so one worker
reproduces its search and workers sharing a study never draw the same points.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from movierec.config.params import ConfigError, Params
from movierec.config.sections import eval_section
from movierec.data.processed import Processed
from movierec.evaluation.protocol import ranking_validation
from movierec.models.base import FitContext
from movierec.models.registry import MODELS, model_params
from movierec.pipeline.params import KINDS, search_space  # noqa: F401
from movierec.store.files import write_text
from movierec.store.paths import TUNE_STORAGE as DEFAULT_STORAGE


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


def objective_of(model: str, params: Params):
    """``(name, direction, score(fitted, data))`` for the family's task."""
    if MODELS[model][0].predicts_ratings:
        return "val RMSE", "minimize", val_rmse
    k, threshold = _protocol(params)

    def ndcg(fitted, data: Processed) -> float:
        return ranking_validation(fitted, data, k, threshold).compute(None)[f"val_ndcg@{k}"]

    return f"val NDCG@{k}", "maximize", ndcg




def open_storage(url: str | None):
    """``(storage, where)``: a journal file (a path, default ``data/tune/studies.journal``;
    safe for several processes on one machine or a shared file system) or a database URL
    (several machines)."""
    optuna = _import_optuna()
    if url is None or "://" not in url:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url) if url else DEFAULT_STORAGE
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path))), str(path)
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        blocking = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise ConfigError(
                f"--storage {url}: {blocking} is a file, so the database cannot go in a folder "
                "under it; name a path in a folder (e.g. sqlite:///data/tune/studies.db)"
            )
        folder.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url), url
    except Exception as err:  # driver missing, server unreachable, bad URL
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"--storage {url}: cannot open the study database ({reason}); check the URL, "
            "that its driver is installed (psycopg2 / pymysql) and that the server is reachable"
        ) from None


def _sampler(seed: int):
    """TPE (``constant_liar``: running trials count as bad, so parallel workers spread out)
    with its random draws seeded by (seed, trial number)."""
    import warnings

    optuna = _import_optuna()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    tpe = optuna.samplers.TPESampler

    class TrialSeededTPE(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._inner = tpe(seed=seed, constant_liar=True)

        def before_trial(self, study, trial) -> None:
            self._inner = tpe(seed=seed + trial.number, constant_liar=True)
            self._inner.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self._inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values) -> None:
            self._inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._inner.reseed_rng()

    return TrialSeededTPE()


def open_study(
    storage_url: str | None, name: str, model: str, direction: str, seed: int, resume: bool
):
    """The named study: a new one, or (``resume``) the stored one of the same model."""
    optuna = _import_optuna()
    storage, where = open_storage(storage_url)
    existing = {s.study_name: s for s in optuna.study.get_all_study_summaries(storage)}
    if name in existing and not resume:
        raise ConfigError(
            f"study {name!r} in {where} already has {existing[name].n_trials} trial(s); pass "
            "--resume to continue it (or to join it from another worker), or --study NEW"
        )
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction=direction,
        sampler=_sampler(seed),
        load_if_exists=True,
    )
    stored = study.user_attrs.get("model")
    if stored is None:
        study.set_user_attr("model", model)
    elif stored != model:
        raise ConfigError(
            f"study {name!r} in {where} searches {stored}, not {model}; pick another --study"
        )
    if study.direction.name.lower() != direction:
        raise ConfigError(f"study {name!r} in {where} was created to {study.direction.name}")
    return study, where


def tune(
    params: Params,
    data: Processed,
    model: str,
    trials: int,
    out: Path,
    timeout: float | None = None,
    device: str = "auto",
    *,
    storage: str | None = None,
    study_name: str | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Run ``trials`` more trials of the study; write ``out`` (YAML, the best trial of the
    whole study, every worker's included) and return its summary."""
    optuna = _import_optuna()

    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; known models: {', '.join(MODELS)}")
    if trials < 1:
        raise ConfigError("--trials must be at least 1")
    space = search_space(params, model)
    base = dict(((params.extra.get("models") or {}).get(model)) or {})
    model_params(model, base)  # the starting point itself must be valid
    label, direction, score = objective_of(model, params)
    worst = float("inf") if direction == "minimize" else float("-inf")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name or f"{model}-{data.meta['dataset']}"
    study, where = open_study(storage, name, model, direction, params.seed, resume)
    training = data.for_training()
    rank_k, threshold = _protocol(params)

    def objective(trial) -> float:
        hp = base | suggest(trial, space)
        try:
            instance = MODELS[model][0](model_params(model, hp))
        except ConfigError as err:  # e.g. dim not divisible by heads: prune, don't crash
            raise optuna.TrialPruned(str(err)) from None
        ctx = FitContext(
            seed=params.seed,
            device=device,
            progress=False,
            rank_k=rank_k,
            threshold=threshold,
            rank_validation=ranking_validation,
        )
        instance.fit(training, ctx)
        value = score(instance, training)
        return value if math.isfinite(value) else worst

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials, timeout=timeout)
    best = study.best_trial
    tuned = base | best.params
    model_params(model, tuned)
    flags = " ".join(f"-S 'models.{model}.{k}={_yaml_value(v)}'" for k, v in best.params.items())
    profile = params.data.profile if params.data.profile not in ("auto", "none") else None
    profile = profile or data.meta["dataset"]
    header = (
        f"# movierec tune --model {model} --trials {trials} ({data.meta['dataset']}, seed {params.seed})\n"
        f"# study {name!r} in {where}\n"
        f"# best {label} {best.value:.4f} (trial {best.number} of {len(study.trials)}, "
        f"{time.perf_counter() - t0:.0f}s). Apply with:\n#   dvc exp run {flags}\n"
        f"# or keep it for this data set: merge the `{profile}:` block below into profiles.yaml\n"
    )
    block = {"models": {model: _plain(tuned)}}
    body = yaml.safe_dump(block, sort_keys=False)
    entry = yaml.safe_dump({profile: block}, sort_keys=False)
    write_text(out, header + body + "\n# profiles.yaml entry:\n" + _commented(entry))
    return {
        "model": model,
        "objective": label,
        "best_value": float(best.value),
        "best_val_rmse": float(best.value) if direction == "minimize" else None,
        "best_params": best.params,
        "trials": len(study.trials),
        "study": name,
        "storage": where,
        "command": f"dvc exp run {flags}",
    }


def _protocol(params: Params) -> tuple[int, float]:
    protocol = eval_section(params)
    return protocol.k[0], protocol.threshold


def _commented(text: str) -> str:
    return "".join(f"# {line}\n" for line in text.splitlines())


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
