"""Paired significance tests: the statistics against scipy and hand-computed values, the
per-user values against the headline metrics, and the stage's tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from movierec.config.params import load_params
from movierec.data.processed import load_processed
from movierec.evaluation.leaderboard import build_leaderboard
from movierec.evaluation.protocol import EvalParams, evaluate
from movierec.evaluation.significance import (
    Sample,
    compare_pair,
    holm,
    metric_value,
    render,
    significance,
    wilcoxon_p,
)
from movierec.models.trained import load_model
from movierec.pipeline.evaluate_step import evaluate_model
from movierec.pipeline.steps import _report_context
from movierec.pipeline.train_step import train_model
from movierec.store.results import read_per_user, write_per_user


def test_holm_matches_hand_computed_values():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    adjusted = holm(np.array([0.01, 0.04, 0.03, 0.005]))
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert holm(np.array([0.5, 0.9]))[1] == 1.0  # capped at 1


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
@settings(max_examples=100, deadline=None)
def test_holm_is_monotone_and_never_below_raw(p):
    p = np.array(p)
    adjusted = holm(p)
    assert np.all(adjusted >= p - 1e-12) and np.all(adjusted <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adjusted[order]) >= -1e-12)


def test_wilcoxon_matches_scipy_and_equal_models_give_1():
    rng = np.random.default_rng(0)
    a, b = rng.random(200), rng.random(200) + 0.05
    assert wilcoxon_p(a, b) == pytest.approx(stats.wilcoxon(a - b).pvalue)
    assert wilcoxon_p(a, a) == 1.0


def _sample(ndcg: np.ndarray, sse: np.ndarray | None = None, ratings=None) -> Sample:
    n = ndcg.size
    ratings = np.full(n, 4.0) if ratings is None else ratings
    return Sample(np.arange(n), ratings, np.full(n, np.nan) if sse is None else sse, ndcg)


def test_rmse_pools_squared_errors_over_ratings():
    s = _sample(np.zeros(2), sse=np.array([4.0, 0.0]), ratings=np.array([1.0, 3.0]))
    assert metric_value("rmse", s)[0] == pytest.approx(1.0)  # sqrt(4 / 4), not mean of RMSEs
    w = np.array([[2.0, 0.0], [0.0, 2.0]])  # resample: user 0 twice; user 1 twice
    np.testing.assert_allclose(metric_value("rmse", s, w), [2.0, 0.0])


def test_planted_difference_is_significant_and_noise_is_not():
    rng = np.random.default_rng(1)
    base = rng.random(800)
    better = _sample(np.clip(base + 0.05 + 0.02 * rng.standard_normal(800), 0, 1))
    worse = _sample(base)
    same = _sample(rng.permutation(base))  # same distribution, paired at random
    real = compare_pair("ndcg@10", better, worse, n_boot=1000, seed=0)
    assert real["ci_low"] > 0 and real["p_value"] < 1e-10
    assert real["ci_low"] <= real["difference"] <= real["ci_high"]
    noise = compare_pair("ndcg@10", worse, same, n_boot=1000, seed=0)
    assert noise["ci_low"] < 0 < noise["ci_high"] and noise["p_value"] > 0.05


def test_pairs_use_only_the_users_both_models_have():
    full = _sample(np.linspace(0, 1, 10))
    half = Sample(
        np.arange(0, 10, 2), np.full(5, 4.0), np.full(5, np.nan), np.linspace(0, 1, 10)[::2]
    )
    out = compare_pair("ndcg@10", full, half, n_boot=200, seed=0)
    assert out["users"] == 5 and out["difference"] == 0.0 and out["p_value"] == 1.0


@pytest.fixture
def four_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Four models on 400 users: a blend clearly above the best single model, one single
    model indistinguishable from the best, one clearly worse, and a ranker (no RMSE)."""
    monkeypatch.chdir(tmp_path)
    folder, details = tmp_path / "data/per_user", tmp_path / "metrics/details"
    folder.mkdir(parents=True)
    details.mkdir(parents=True)
    rng = np.random.default_rng(3)
    users, n = np.arange(400), rng.integers(1, 8, 400)
    base_err, base_ndcg = rng.random(400) * n, rng.random(400)
    models = {
        "ensemble": (base_err * 0.6, base_ndcg + 0.1),
        "mf": (base_err, base_ndcg),
        "svd": (base_err * (1 + 0.01 * rng.standard_normal(400)), rng.permutation(base_ndcg)),
        "bias": (base_err * 1.5, base_ndcg - 0.1),
        "pop": (np.full(400, np.nan), base_ndcg - 0.2),
    }
    for name, (sse, ndcg) in models.items():
        columns = {"user": users, "ratings": n, "sse": sse, "ndcg@10": ndcg}
        write_per_user(folder / f"{name}.parquet", {"test": columns, "val": columns})
        flags = {"val_in_sample": True} if name == "ensemble" else {}
        test = {"ndcg@10": float(ndcg.mean())}
        if np.isfinite(sse).all():
            test["rmse"] = float(np.sqrt(sse.sum() / n.sum()))
        (details / f"{name}.json").write_text(json.dumps(flags | {"test": test}))
    return folder, details


def test_stage_tables_mark_ties_and_the_blend(four_models):
    folder, _ = four_models
    out = significance(k=10, n_boot=500, alpha=0.05, seed=0, folder=folder)
    rmse, ndcg = out["rmse"], out["ndcg@10"]
    assert list(rmse["values"]) == ["ensemble", "mf", "svd", "bias"]  # pop has no RMSE
    assert "pop" in ndcg["values"]
    assert len(rmse["pairs"]) == 6 and len(ndcg["pairs"]) == 10
    assert rmse["not_significantly_worse_than_best"] == []
    (blend,) = rmse["blend_vs_best_single"]
    assert (blend["a"], blend["b"]) == ("ensemble", "mf") and blend["significant"]
    assert blend["ci_high"] < 0  # lower RMSE
    pair = next(p for p in rmse["pairs"] if {p["a"], p["b"]} == {"mf", "svd"})
    assert not pair["significant"]
    text = render(out, "test")
    assert "Blend ensemble vs the best single model mf" in text and "| svd |" in text
    json.dumps(out)  # serialisable as written


def test_per_user_values_reproduce_the_headline_metrics(tiny_project):
    params = load_params()
    train_model("mf_bias", params)
    data = load_processed()
    model_result = evaluate_model("mf_bias", params)
    values = read_per_user(Path("data/per_user/mf_bias.parquet"), "test")
    assert np.sqrt(values["sse"].sum() / values["ratings"].sum()) == pytest.approx(
        model_result["test"]["rmse"], rel=1e-6
    )
    k = model_result["test"]["users_ranked"]
    ndcg = values["ndcg@10"]
    assert np.isfinite(ndcg).sum() == k
    assert np.nanmean(ndcg) == pytest.approx(model_result["test"]["ndcg@10"], rel=1e-9)
    assert values["ratings"].sum() == data.matrices["test"].nnz
    direct = evaluate(load_model("mf_bias", params, data), data, EvalParams(splits=["test"]))
    np.testing.assert_array_equal(direct["per_user"]["test"]["user"], values["user"])


def test_leaderboard_marks_models_tied_with_the_best(tmp_path: Path):
    details = tmp_path / "details"
    details.mkdir()
    for name, rmse in (("a", 0.90), ("b", 0.91), ("c", 0.99)):
        (details / f"{name}.json").write_text(
            json.dumps({"val": {"rmse": rmse}, "test": {"rmse": rmse, "mae": 0.7}})
        )
    sig = tmp_path / "significance.json"
    sig.write_text(json.dumps({"rmse": {"not_significantly_worse_than_best": ["b"]}}))
    board = build_leaderboard(details, significance=sig)
    marks = {r["model"]: r.get("tied_with_best", False) for r in board["rating"]}
    assert marks == {"a": False, "b": True, "c": False}


def test_families_left_out_of_train_models_are_not_listed(four_models):
    """A run with a subset of train.models keeps other runs' files; they are not its results."""
    folder, details = four_models
    Path("params.yaml").write_text("train:\n  models: [mf, svd, pop]\n")
    k, where, stale = _report_context(load_params())
    assert stale == {"bias"} and k == 10 and "per-user 80/10/10" in where
    out = significance(k=10, n_boot=200, alpha=0.05, seed=0, folder=folder, exclude=stale)
    assert set(out["rmse"]["values"]) == {"ensemble", "mf", "svd"}
    board = build_leaderboard(details, exclude=stale)
    names = {r["model"] for r in board["rating"]} | {r["model"] for r in board["topn"]}
    assert names == {"ensemble", "mf", "svd", "pop"}


def test_every_model_is_set_against_its_floor(four_models):
    folder, _ = four_models
    out = significance(k=10, n_boot=500, alpha=0.05, seed=0, folder=folder)
    rmse, ndcg = out["rmse"], out["ndcg@10"]
    assert rmse["floor"] == "bias" and ndcg["floor"] == "pop"
    # mf and svd: 1/1.5 of bias's squared errors; the blend lower still
    assert rmse["vs_floor"] == {"ensemble": "above", "mf": "above", "svd": "above"}
    assert ndcg["vs_floor"]["ensemble"] == "above" and "pop" not in ndcg["vs_floor"]
    text = render(out, "test")
    assert "vs floor bias (95% CI)" in text and "vs floor pop (95% CI)" in text
    assert "| bias | " in text and "the floor |" in text and "above the floor |" in text


def test_a_model_level_with_its_floor_says_so(four_models):
    from movierec.evaluation.significance import floor_verdict

    assert floor_verdict({"significant": False, "difference": -0.3}, lower=True) == "level"
    assert floor_verdict({"significant": True, "difference": 0.01}, lower=True) == "below"
    assert floor_verdict({"significant": True, "difference": 0.01}, lower=False) == "above"


def test_compare_two_models_of_the_workspace_in_one_table(four_models):
    from movierec.experiments.compare import compare_models

    folder, _ = four_models
    text = compare_models("bias", "mf", 10, n_boot=500, folder=folder)
    rows = [
        line for line in text.splitlines() if line.startswith("| rmse") or line.startswith("| ndcg")
    ]
    assert len(rows) == 2 and all(row.endswith("| mf better |") for row in rows)
    ranker = compare_models("pop", "mf", 10, n_boot=500, folder=folder)
    assert "| ndcg@10 |" in ranker and "| rmse |" not in ranker  # pop has no RMSE
    noise = compare_models("mf", "svd", 10, n_boot=500, folder=folder)
    assert "| rmse |" in noise and "noise |" in noise
