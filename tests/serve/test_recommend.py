"""Recommendations for a person from the command line: titles, unseen movies only,
one line for an unknown user or movie, and the command that trains a missing model."""

from __future__ import annotations

import pytest

from movierec.cli import main as cli_main
from movierec.config.params import load_params
from movierec.data.processed import load_processed
from movierec.pipeline.train_step import train_model


def test_cli_recommend_prints_titles(tiny_project, capsys):
    train_model("mf_bias", load_params())
    capsys.readouterr()  # the training's epoch lines
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


def test_untrained_model_message(tiny_project, capsys):
    with pytest.raises(SystemExit) as err:
        cli_main(["recommend", "--user", "1", "--model", "svd"])
    assert err.value.code == 1
    assert "run `dvc repro train@svd`" in capsys.readouterr().err
