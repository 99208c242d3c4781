"""Where trained models live and how they come back for scoring.

Shared by every reader of ``data/models`` (evaluation, the blends, insight,
``recommend``/``similar``), so none of them depends on the training code.
"""

from __future__ import annotations

import json
from pathlib import Path

from movierec.config.params import Params
from movierec.data.processed import Processed
from movierec.errors import DataError
from movierec.models.base import Recommender
from movierec.models.families import FAMILIES
from movierec.models.registry import check_known, create
from movierec.models.selection import train_section
from movierec.store.files import reading
from movierec.store.paths import MODELS_DIR, REFIT_DIR


def trained_models(params: Params) -> list[str]:
    """Every model the pipeline trains: ``train.models`` plus families of other stages."""
    extra = [n for n, row in FAMILIES.items() if row.stage != "train"]
    return train_section(params).models + extra


def check_same_data(folder: Path, data: Processed) -> None:
    """A model trained on another data set (or another split) would score wrong movies."""
    fit = folder / "fit.json"
    if not fit.is_file():
        return
    with reading(fit):
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


def load_refit(name: str, params: Params, data: Processed) -> Recommender | None:
    """The copy refitted on train + val (``train.refit``), scoring with val's ratings as
    history, or None when the model was not refitted."""
    folder = MODELS_DIR / name / REFIT_DIR
    if not (folder / "model.npz").is_file():
        return None
    check_same_data(MODELS_DIR / name, data)
    model = create(name, params)
    model.load_state(folder, data.with_val_in_train())
    return model


def load_final(name: str, params: Params, data: Processed) -> Recommender:
    """The model whose test numbers are reported, the one to serve: the refit (trained on
    train + val) when ``train.refit`` made one, else the fit on train."""
    return load_refit(name, params, data) or load_model(name, params, data)
