"""Blending and tuning: the stacker sees val only, weights are reproducible, blends help."""

from __future__ import annotations

import zlib

import numpy as np
import polars as pl
import pytest
import yaml

from movierec.blend.ensemble import fit_ensemble
from movierec.config.params import ConfigError, load_params
from movierec.data.processed import load_processed
from movierec.experiments.tune import tune
from movierec.models.registry import model_params


def _write_member(folder, name, data, make):
    """Predictions parquet for ``name``; ``make(split, rating, rng)`` returns its predictions."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
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
                    "prediction": make(split, part.rating, rng).astype(np.float32),
                }
            )
        )
    folder.mkdir(parents=True, exist_ok=True)
    pl.concat(frames).write_parquet(folder / f"{name}.parquet")


def _params(members, **extra):
    params = load_params()
    params.extra["ensemble"] = {"models": members} | extra
    return params


def _rmse(a, b) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_stacker_never_sees_test_labels(tiny_project):
    data = load_processed()
    folder = tiny_project / "preds"
    _write_member(folder, "honest", data, lambda s, r, g: r + g.normal(0, 0.5, r.shape))
    # The trap: noise on val, the exact test labels on test.
    _write_member(
        folder, "trap", data, lambda s, r, g: r if s == "test" else g.uniform(1, 5, r.shape)
    )
    model, info = fit_ensemble(_params(["honest", "trap"], meta=False), data, folder)
    test = data.splits["test"].rating
    blended = model.predict_split(data, "test")
    assert abs(info["weights"]["trap"]) < 0.1
    assert _rmse(blended, test) > 0.35  # a leak would have made it ~0


def test_blend_weights_are_reproducible(tiny_project):
    data = load_processed()
    folder = tiny_project / "preds"
    for name, sd in (("a", 0.4), ("b", 0.6)):
        _write_member(folder, name, data, lambda s, r, g, sd=sd: r + g.normal(0, sd, r.shape))
    first = fit_ensemble(_params(["a", "b"]), data, folder)[1]["weights"]
    second = fit_ensemble(_params(["a", "b"]), data, folder)[1]["weights"]
    assert first == second


@pytest.mark.parametrize("method", ["ridge", "nnls"])
def test_blend_of_complementary_signals_beats_each_member(tiny_project, method):
    """Ratings = s1 + s2; one member knows only s1, the other only s2."""
    data = load_processed()
    folder = tiny_project / "preds"
    rng = np.random.default_rng(0)
    s1 = {s: rng.normal(0, 0.8, len(data.splits[s])) for s in ("val", "test")}
    target = {s: data.splits[s].rating for s in ("val", "test")}
    s2 = {s: target[s] - 3.0 - s1[s] for s in ("val", "test")}
    _write_member(folder, "one", data, lambda s, r, g: 3.0 + s1[s] + g.normal(0, 0.1, r.shape))
    _write_member(folder, "two", data, lambda s, r, g: 3.0 + s2[s] + g.normal(0, 0.1, r.shape))
    model, info = fit_ensemble(_params(["one", "two"], method=method, meta=False), data, folder)
    test = target["test"]
    blended = model.predict_split(data, "test")
    frames = {n: pl.read_parquet(folder / f"{n}.parquet") for n in ("one", "two")}
    members = [
        _rmse(f.filter(pl.col("split") == "test")["prediction"].to_numpy(), test)
        for f in frames.values()
    ]
    assert _rmse(blended, test) < 0.7 * min(members)
    assert info["fit_split"] == "val"


def test_nnls_with_meta_is_refused(tiny_project):
    with pytest.raises(ConfigError, match="ensemble.method"):
        fit_ensemble(_params(["a", "b"], method="nnls", meta=True), load_processed(), tiny_project)


def test_tune_two_trials_writes_valid_params(tiny_project):
    params = load_params()
    params.extra["tune"] = {
        "spaces": {"mf_bias": {"factors": ["int", 4, 16], "lr": ["log", 1e-3, 1e-2]}}
    }
    out = tiny_project / "tuned" / "mf_bias.yaml"
    summary = tune(params, load_processed(), "mf_bias", 2, out, device="cpu")
    assert summary["trials"] == 2 and np.isfinite(summary["best_val_rmse"])
    text = out.read_text()
    assert "dvc exp run -S 'models.mf_bias.factors=" in text
    tuned = yaml.safe_load(text)["models"]["mf_bias"]
    hp = model_params("mf_bias", tuned)
    assert 4 <= hp.factors <= 16 and 1e-3 <= hp.lr <= 1e-2


def test_tune_rejects_a_bad_space(tiny_project):
    params = load_params()
    params.extra["tune"] = {"spaces": {"mf_bias": {"factorz": ["int", 4, 16]}}}
    with pytest.raises(ConfigError, match="tune.spaces.mf_bias.factorz"):
        tune(params, load_processed(), "mf_bias", 1, tiny_project / "x.yaml")


def test_blended_rows_match_blended_predictions(tiny_project):
    """Top-N rows are built member by member; they must equal the per-pair blend."""
    from movierec.models.trained import load_model
    from movierec.pipeline.evaluate_step import evaluate_model
    from movierec.pipeline.train_step import train_model
    from movierec.store.paths import PREDICTIONS_DIR

    params = load_params()
    for name in ("bias", "mf_bias", "item_knn"):
        train_model(name, params)
        evaluate_model(name, params)
    data = load_processed()
    model, _ = fit_ensemble(_params(["bias", "mf_bias", "item_knn"]), data, PREDICTIONS_DIR)
    model.members = [load_model(n, params, data) for n in model.names]
    part = data.splits["test"]
    users = np.unique(part.user)[:6]
    rows = model.score_users(users)
    sel = np.isin(part.user, users)
    index = np.searchsorted(users, part.user[sel])
    np.testing.assert_allclose(
        rows[index, part.item[sel]], model.predict(part.user[sel], part.item[sel]), atol=1e-4
    )
    np.testing.assert_allclose(
        model.predict_split(data, "test")[sel],
        model.predict(part.user[sel], part.item[sel]),
        atol=1e-4,
    )
