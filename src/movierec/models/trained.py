"""Where trained models live and how they come back for scoring.

Shared by every reader of ``data/models`` (evaluation, the blends, insight,
``recommend``/``similar``), so none of them depends on the training code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from movierec.config.params import Params
from movierec.data.processed import Processed
from movierec.errors import DataError
from movierec.models.base import Recommender
from movierec.models.families import FAMILIES
from movierec.models.registry import check_known, create, params_key
from movierec.models.selection import train_section
from movierec.store.files import reading
from movierec.store.paths import MODELS_DIR, REFIT_DIR, rebuild_command


def trained_models(params: Params) -> list[str]:
    """Every model the pipeline trains: ``train.models`` plus families of other stages."""
    extra = [n for n, row in FAMILIES.items() if row.stage != "train"]
    return train_section(params).models + extra


def differences(then: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: <then> then, <now> now`` for each value that differs (nested keys dotted;
    digests shortened to 12 characters): what a refusal names, both sides."""

    def show(value: Any) -> str:
        text = "absent" if value is None else json.dumps(value)
        return text[:13] + '"' if isinstance(value, str) and len(value) == 64 else text

    out = []
    for key in sorted(set(then) | set(now), key=str):
        old, new = then.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            out += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            out.append(f"{prefix}{key}: {show(old)} then, {show(new)} now")
    return out


def check_trained(folder: Path, model: Recommender, data: Processed) -> None:
    """Refuse a state made from other data (another data set, split or seed: its training
    rows may be today's test rows) or other hyper-parameters than params.yaml holds now,
    with one line naming each value that differs."""
    fit, recorded = folder / "fit.json", folder / "params.json"
    if fit.is_file():
        with reading(fit):
            trained = json.loads(fit.read_text()).get("data")
        if trained is not None:
            changed = differences(trained, data.fingerprint())
            if changed:
                raise DataError(
                    f"{folder}: trained on other data than data/processed ({'; '.join(changed)}); "
                    f"run `{rebuild_command(folder)}` first"
                )
    if recorded.is_file():
        with reading(recorded):
            then = json.loads(recorded.read_text()).get("params")
        if isinstance(then, dict):
            changed = differences(then, model.params_record())
            if changed:
                key = params_key(model.name)
                raise DataError(
                    f"{folder}: trained with other {key} than params.yaml holds "
                    f"({'; '.join(changed)}); run `{rebuild_command(folder)}` first"
                )


def check_scores(folder: Path, model: Recommender, data: Processed) -> None:
    """A state that loads but cannot score this catalogue (arrays of another shape, a
    file of another family) is refused now, not at its first request."""
    with reading(folder):  # scoring a foreign state fails inside its family
        row = np.asarray(model.score_users(np.zeros(1, dtype=np.int64)))
    if row.shape != (1, data.n_items):
        raise DataError(
            f"{folder}: scores {row.shape[-1] if row.ndim else 0} movies where data/processed "
            f"has {data.n_items}; run `{rebuild_command(folder)}` first"
        )


def load_model(name: str, params: Params, data: Processed) -> Recommender:
    """A trained model, ready to score."""
    check_known(name)
    model = create(name, params)
    check_trained(MODELS_DIR / name, model, data)
    model.load_state(MODELS_DIR / name, data)
    check_scores(MODELS_DIR / name, model, data)
    return model


def load_refit(name: str, params: Params, data: Processed) -> Recommender | None:
    """The copy refitted on train + val (``train.refit``), scoring with val's ratings as
    history, or None when the model was not refitted."""
    folder = MODELS_DIR / name / REFIT_DIR
    if not (folder / "model.npz").is_file():
        return None
    model = create(name, params)
    check_trained(MODELS_DIR / name, model, data)
    model.load_state(folder, data.with_val_in_train())
    check_scores(folder, model, data)
    return model


def load_final(name: str, params: Params, data: Processed) -> Recommender:
    """The model whose test numbers are reported, the one to serve: the refit (trained on
    train + val) when ``train.refit`` made one, else the fit on train."""
    return load_refit(name, params, data) or load_model(name, params, data)
