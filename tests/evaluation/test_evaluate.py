"""Evaluation protocol: candidates, relevance, leaderboard; the CLI on a trained model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from movierec.cli import main as cli_main
from movierec.config.params import load_params
from movierec.data.processed import load_processed
from movierec.evaluation.leaderboard import build_leaderboard, write_leaderboard
from movierec.evaluation.protocol import EvalParams, evaluate
from movierec.models.base import Recommender
from movierec.pipeline.evaluate_step import evaluate_model
from movierec.pipeline.train_step import train_model
from movierec.serve.recommend import default_model


class Oracle(Recommender):
    """Scores a user's training items highest, then relevant test items: a leak detector."""

    name = "oracle"

    def __init__(self, data, split: str = "test"):
        super().__init__(None)
        train = data.matrices["train"].copy()
        train.data[:] = 1.0
        target = data.matrices[split].copy()
        target.data = (target.data >= 4.0).astype(np.float32)
        self.scores = (3.0 * train + target).toarray().astype(np.float32)

    def score_users(self, users):
        return self.scores[users]

    def predict(self, user, item):
        return self.scores[user, item]


def test_candidates_never_include_training_items(tiny_project):
    data = load_processed()
    result = evaluate(Oracle(data), data, EvalParams(k=[5], splits=["test"]))
    test = result["test"]
    # Had training items been candidates, they would fill every list and hit@5 would be 0.
    assert test["hit@5"] == 1.0
    assert test["ndcg@5"] == pytest.approx(1.0)


def test_val_ranking_excludes_train_but_not_test(tiny_project):
    data = load_processed()
    result = evaluate(Oracle(data, "val"), data, EvalParams(k=[3], splits=["val"]))
    assert result["val"]["hit@3"] == 1.0


def test_pipeline_writes_eval_and_leaderboard(tiny_project):
    params = load_params()
    for name in ("bias", "mf_bias"):
        train_model(name, params)
        result = evaluate_model(name, params)
        assert set(result) >= {"val", "test", "eval_seconds"}
    saved = json.loads((tiny_project / "metrics" / "eval" / "mf_bias.json").read_text())
    assert saved["test"]["rmse"] == pytest.approx(result["test"]["rmse"])
    # DVC's metrics hold the headline only; seconds never reach a git-tracked file.
    assert set(saved) == {"val", "test"} and set(saved["test"]) == {
        "rmse",
        "mae",
        "ndcg@10",
        "recall@10",
    }
    details = json.loads((tiny_project / "metrics" / "details" / "mf_bias.json").read_text())
    assert "rmse_rounded" in details["test"] and "coverage@10" in details["test"]
    assert "seconds" not in json.dumps(details) and "seconds" not in json.dumps(saved)
    timing = json.loads((tiny_project / "data" / "timings" / "mf_bias.json").read_text())
    assert timing["train_seconds"] > 0 and timing["eval_seconds"] > 0 and timing["epochs"] >= 1
    board = build_leaderboard()
    rmse = [r["rmse"] for r in board["rating"]]
    assert rmse == sorted(rmse) and {r["model"] for r in board["rating"]} == {"bias", "mf_bias"}
    write_leaderboard(board, "synthetic")
    saved_board = json.loads((tiny_project / "metrics" / "leaderboard.json").read_text())
    assert saved_board["selected"]["rating"] in {"bias", "mf_bias"}
    text = (tiny_project / "metrics" / "leaderboard.md").read_text()
    assert "## Rating accuracy" in text and "## Top-10 recommendation" in text


def _details(folder, name, val, test):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"model": name, "val": val, "test": test}))


def test_leaderboard_selects_by_validation_not_test(tmp_path):
    details = tmp_path / "details"
    # "lucky" is best on test, "steady" on validation: validation must win, for both tables.
    _details(details, "lucky", {"rmse": 0.95, "ndcg@10": 0.10}, {"rmse": 0.80, "ndcg@10": 0.40})
    _details(details, "steady", {"rmse": 0.90, "ndcg@10": 0.20}, {"rmse": 0.85, "ndcg@10": 0.30})
    _details(details, "ranker", {"ndcg@10": 0.15}, {"ndcg@10": 0.35})
    blend = {"model": "blend", "val_in_sample": True, "val": {"rmse": 0.5}, "test": {"rmse": 0.79}}
    (details / "blend.json").write_text(json.dumps(blend))
    (details / ".lucky.json.x1y2.tmp.json").write_text(
        "{half-written"
    )  # a killed writer's leftover
    board = build_leaderboard(details)
    assert [r["model"] for r in board["rating"]] == ["blend", "lucky", "steady"]  # by test
    assert [r["model"] for r in board["topn"]] == ["lucky", "ranker", "steady"]
    assert board["selected"] == {"rating": "steady", "topn": "steady"}
    write_leaderboard(board, "hand-made", tmp_path)
    assert "| **steady** ✓ |" in (tmp_path / "leaderboard.md").read_text()
    assert (tmp_path / "leaderboard.csv").read_text().splitlines()[1:] == [
        "blend,0.7900,",
        "lucky,0.8000,0.4000",
        "ranker,,0.3500",
        "steady,0.8500,0.3000",
    ]


def test_recommend_default_is_chosen_by_validation(tiny_project):
    params = load_params()
    for name in ("bias", "mf_bias"):
        train_model(name, params)
    details = tiny_project / "metrics" / "details"
    _details(details, "bias", {"rmse": 0.9, "ndcg@10": 0.3}, {"rmse": 0.99, "ndcg@10": 0.01})
    _details(details, "mf_bias", {"rmse": 1.0, "ndcg@10": 0.1}, {"rmse": 0.5, "ndcg@10": 0.9})
    write_leaderboard(build_leaderboard(details), "synthetic", tiny_project / "metrics")
    assert default_model("topn") == "bias"
    assert default_model("rating") == "bias"


def test_cli_help_on_every_command(capsys):
    for command in ("recommend", "predict", "train", "evaluate", "download", "preprocess"):
        with pytest.raises(SystemExit) as err:
            cli_main([command, "--help"])
        assert err.value.code == 0
        assert "usage: movierec" in capsys.readouterr().out


