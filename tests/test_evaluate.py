"""Evaluation protocol: candidates, relevance, leaderboard; the CLI on a trained model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from movierec.cli import main as cli_main
from movierec.config import load_params
from movierec.dataset import load_processed
from movierec.evaluate import EvalParams, evaluate
from movierec.models.base import Recommender
from movierec.pipeline import build_leaderboard, evaluate_model, train_model, write_leaderboard


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
        assert set(result) >= {"val", "test", "train_seconds", "epochs"}
    saved = json.loads((tiny_project / "metrics" / "eval" / "mf_bias.json").read_text())
    assert saved["test"]["rmse"] == pytest.approx(result["test"]["rmse"])
    rows = build_leaderboard()
    assert [r["model"] for r in rows] == sorted(
        (r["model"] for r in rows), key=lambda m: next(x["rmse"] for x in rows if x["model"] == m)
    )
    write_leaderboard(rows, "synthetic")
    board = json.loads((tiny_project / "metrics" / "leaderboard.json").read_text())
    assert set(board["models"]) == {"bias", "mf_bias"}
    assert "| mf_bias |" in (tiny_project / "metrics" / "leaderboard.md").read_text()


def test_cli_recommend_prints_titles(tiny_project, capsys):
    train_model("mf_bias", load_params())
    cli_main(["recommend", "--user", "3", "-k", "4", "--model", "mf_bias"])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("Top 4 movies for user 3 (mf_bias, synthetic)")
    rows = out[2:]
    assert len(rows) == 4
    assert all("Synthetic Movie" in row for row in rows)
    scores = [float(row.split()[-1]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    data = load_processed()
    user = int(data.users.filter(data.users["user_id"] == 3)["user"].item())
    rated = set(data.ratings.filter(data.ratings["user"] == user)["item"].to_list())
    titles = {data.items["title"][i] for i in rated}
    assert not any(row.split("  ")[1].strip() in titles for row in rows), "only unseen movies"


def test_cli_unknown_user_and_movie_exit_2(tiny_project, capsys):
    train_model("bias", load_params())
    with pytest.raises(SystemExit) as err:
        cli_main(["recommend", "--user", "999999", "--model", "bias"])
    assert err.value.code == 2
    assert "user 999999 is not in synthetic" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        cli_main(["predict", "--user", "1", "--movie", "424242", "--model", "bias"])
    assert err.value.code == 2


def test_cli_predict(tiny_project, capsys):
    train_model("bias", load_params())
    cli_main(["predict", "--user", "1", "--movie", "2", "--model", "bias"])
    assert capsys.readouterr().out.startswith("user 1, movie 2: predicted ")


def test_cli_help_on_every_command(capsys):
    for command in ("recommend", "predict", "train", "evaluate", "download", "preprocess"):
        with pytest.raises(SystemExit) as err:
            cli_main([command, "--help"])
        assert err.value.code == 0
        assert "usage: movierec" in capsys.readouterr().out


def test_untrained_model_message(tiny_project, capsys):
    with pytest.raises(SystemExit) as err:
        cli_main(["recommend", "--user", "1", "--model", "svd"])
    assert err.value.code == 1
    assert "run `dvc repro train@svd`" in capsys.readouterr().err
