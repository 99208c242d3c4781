"""``train.refit``: select epochs on val, refit on train + val, report test with the refit.

What must hold: the refit never sees test, trains exactly the selected epochs, the val
numbers (and the blend's weights) still come from the fit that never saw val, and test
comes from the refit, scored with val's ratings as history."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from movierec.config.params import load_params
from movierec.data.processed import load_processed
from movierec.models.trained import load_model, load_refit
from movierec.pipeline.evaluate_step import evaluate_model
from movierec.pipeline.train_step import train_model
from movierec.store.paths import MODELS_DIR, PREDICTIONS_DIR, REFIT_DIR
from movierec.train.trainer import TrainConfig, Trainer


def _set_refit(project, value: bool = True) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["train"]["refit"] = value
    path.write_text(yaml.safe_dump(params))


def test_val_in_train_moves_val_and_keeps_test_out_of_training(tiny_project):
    data = load_processed()
    merged = data.with_val_in_train()
    assert data.with_val_in_train() is merged  # built once, shared by every scorer
    train, val, test = (data.splits[s] for s in ("train", "val", "test"))
    assert len(merged.splits["train"]) == len(train) + len(val)
    assert len(merged.splits["val"]) == 0
    assert np.array_equal(merged.splits["test"].rating, test.rating)
    want = (data.matrices["train"] + data.matrices["val"]).toarray()
    assert np.array_equal(merged.matrices["train"].toarray(), want)
    assert merged.matrices["val"].nnz == 0
    assert set(merged.ratings["split"].unique()) == {"train", "test"}
    fit_view = merged.for_training()
    assert "test" not in fit_view.splits and "test" not in fit_view.matrices
    assert set(fit_view.ratings["split"].unique()) == {"train"}
    assert fit_view.matrices["train"].nnz == len(train) + len(val)


def test_trainer_without_val_trains_exactly_the_epochs_and_keeps_the_last():
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 1)

    class Regression(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = module

        def loss(self, batch):
            return torch.mean((self.lin(batch["x"]).squeeze(1) - batch["rating"]) ** 2)

        def predict(self, batch):
            return self.lin(batch["x"]).squeeze(1)

    x = torch.randn(64, 3)
    train = {"x": x, "rating": x @ torch.tensor([1.0, -2.0, 0.5])}
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.05, patience=1)
    result = Trainer(cfg, device=torch.device("cpu"), seed=1, progress=False).fit(
        Regression(), train, None
    )
    assert [h.epoch for h in result.history] == [1, 2, 3, 4]
    assert result.best_epoch == 4
    assert all(h.metrics == {} for h in result.history)


@pytest.mark.parametrize("name", ["mf_bias", "item_knn"])
def test_refit_is_trained_on_val_too_and_reports_test_only(tiny_project, name):
    _set_refit(tiny_project)
    params = load_params()
    summary = train_model(name, params)
    fit = json.loads((MODELS_DIR / name / "fit.json").read_text())
    assert fit["refit_epochs"] == fit["best_epoch"]
    assert summary["refit_seconds"] >= 0
    assert (MODELS_DIR / name / REFIT_DIR / "model.npz").is_file()

    data = load_processed()
    first, refit = load_model(name, params, data), load_refit(name, params, data)
    assert refit is not None
    evaluate_model(name, params)
    preds = pl.read_parquet(PREDICTIONS_DIR / f"{name}.parquet")
    val = preds.filter(pl.col("split") == "val")["prediction"].to_numpy()
    test = preds.filter(pl.col("split") == "test")["prediction"].to_numpy()
    # val from the fit that never saw val (the blends fit on it); test from the refit
    np.testing.assert_allclose(val, first.predict_split(data, "val"), rtol=1e-5)
    merged = data.with_val_in_train()
    np.testing.assert_allclose(test, refit.predict_split(merged, "test"), rtol=1e-5)
    assert not np.allclose(test, first.predict_split(data, "test"))
    # the refit learned val: its val error is below the first fit's
    part = data.splits["val"]
    err_first = np.mean((first.predict_split(data, "val") - part.rating) ** 2)
    err_refit = np.mean((refit.predict(part.user, part.item) - part.rating) ** 2)
    assert err_refit < err_first
    result = json.loads((tiny_project / "metrics" / "details" / f"{name}.json").read_text())
    assert "refit" in result and set(result) >= {"val", "test"}


def test_refit_off_writes_no_copy_and_sequence_families_are_not_refitted(tiny_project):
    params = load_params()
    train_model("bias", params)
    assert not (MODELS_DIR / "bias" / REFIT_DIR).exists()
    _set_refit(tiny_project)
    train_model("rnn", load_params())  # its history windows are cut per split
    assert not (MODELS_DIR / "rnn" / REFIT_DIR).exists()
    assert "refit_epochs" not in json.loads((MODELS_DIR / "rnn" / "fit.json").read_text())


def test_refit_never_sees_test(tiny_project, monkeypatch):
    """Every fit (the first and the refit) gets data without a test split."""
    from movierec.models.classic import BiasModel

    seen: list[set[str]] = []
    fit = BiasModel.fit

    def spy(self, data, ctx):
        seen.append(set(data.splits))
        with pytest.raises(KeyError):
            data.matrices["test"]
        return fit(self, data, ctx)

    monkeypatch.setattr(BiasModel, "fit", spy)
    _set_refit(tiny_project)
    train_model("bias", load_params())
    assert seen == [{"train", "val"}, {"train", "val"}]


def test_blend_fits_on_first_fits_and_tests_the_refits(tiny_project):
    from movierec.blend.ensemble import run_ensemble

    _set_refit(tiny_project)
    params = load_params()
    params.extra["ensemble"] = {"models": ["bias", "mf_bias"], "meta": False}
    for name in ("bias", "mf_bias"):
        train_model(name, params)
        evaluate_model(name, params)
    result = run_ensemble(params)
    assert "refit" in result
    assert np.isfinite(result["test"]["rmse"]) and np.isfinite(result["val"]["rmse"])
    blend = pl.read_parquet("data/ensemble/predictions.parquet").filter(pl.col("split") == "test")
    assert len(blend) == len(load_processed().splits["test"])


def test_recommend_and_predict_serve_the_refit(tiny_project):
    """What a user is served is the model whose test row is reported: the refit, if any."""
    from movierec.serve.recommend import load_served

    params = load_params()
    train_model("mf_bias", params)
    data = load_processed()
    users = np.arange(3)
    served = load_served("mf_bias", params, data).score_users(users)
    np.testing.assert_allclose(served, load_model("mf_bias", params, data).score_users(users))

    _set_refit(tiny_project)
    params = load_params()
    train_model("mf_bias", params)
    refit = load_refit("mf_bias", params, data)
    assert refit is not None
    served = load_served("mf_bias", params, data).score_users(users)
    np.testing.assert_allclose(served, refit.score_users(users))
    assert not np.allclose(served, load_model("mf_bias", params, data).score_users(users))


@pytest.mark.parametrize("refit", [False, True])
def test_a_rankers_predictions_file_holds_its_scores_of_the_pairs(tiny_project, refit):
    """A ranker predicts no ratings: its predictions rows carry the scores its ranking used
    (test from the refit where there is one), never a column of NaN."""
    _set_refit(tiny_project, refit)
    params = load_params()
    train_model("ease", params)
    evaluate_model("ease", params)
    data = load_processed()
    frame = pl.read_parquet(PREDICTIONS_DIR / "ease.parquet")
    assert "prediction" not in frame.columns and frame["score"].null_count() == 0
    for split, model in (
        ("val", load_model("ease", params, data)),
        ("test", load_refit("ease", params, data) if refit else load_model("ease", params, data)),
    ):
        part = frame.filter(pl.col("split") == split)
        users, items = part["user"].to_numpy(), part["item"].to_numpy()
        assert len(part) == len(data.splits[split])
        rows = model.score_users(np.unique(users))
        at = np.searchsorted(np.unique(users), users)
        np.testing.assert_allclose(part["score"].to_numpy(), rows[at, items], rtol=1e-5)
