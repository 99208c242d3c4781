"""Fold-in and explanations, family by family: every model that says it can score a
new user ("fold_in") gives a training user's own row the scores of that user, bit for
bit, and the API's new-user list matches the by-id list; every model that says it can
explain a score ("explain") gives contributions that add up to it."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from movierec.data.processed import load_processed
from movierec.evaluation.leaderboard import build_leaderboard, write_leaderboard
from movierec.models.registry import MODELS, providing
from movierec.models.trained import load_final
from movierec.pipeline.embed_step import run_embed_stage
from movierec.pipeline.evaluate_step import evaluate_model
from movierec.pipeline.params import load_params
from movierec.pipeline.train_step import train_model
from movierec.serve.api import Served, create_app
from movierec.store.paths import METRICS

FOLD_IN = providing("fold_in", list(MODELS))
EXPLAIN = providing("explain", list(MODELS))


def test_the_families_that_fold_in_are_the_ones_promised():
    assert {"ease", "item_knn", "word2vec", "ials", "autorec_user", "deep_autorec"} <= set(FOLD_IN)
    assert {"rp3beta", "multvae", "recvae"} <= set(FOLD_IN)
    assert {"ease", "item_knn", "word2vec", "rp3beta"} <= set(EXPLAIN)
    assert "autorec_item" not in FOLD_IN, "an item autoencoder has no input for a new user"


@pytest.fixture
def trained(tiny_project):
    params = load_params()
    for name in sorted(set(FOLD_IN) | set(EXPLAIN) | {"bias"}):
        if MODELS[name][0].trained_by == "embed":
            run_embed_stage(params)  # trains, evaluates and writes its leaderboard entry
            continue
        train_model(name, params)
        evaluate_model(name, params)
    write_leaderboard(build_leaderboard(), "tiny", METRICS)
    return params


def test_a_training_users_own_row_is_scored_as_that_user(trained):
    data = load_processed()
    train = data.matrices["train"]
    users = [u for u in range(data.n_users) if train[u].nnz][:12]
    for name in FOLD_IN:
        model = load_final(name, trained, data)
        for user in users:
            by_id = model.score_users(np.array([user]))
            folded = model.score_ratings(train[user], data)
            assert np.array_equal(by_id, folded), f"{name}: user {user}"


def test_the_api_lists_a_posted_row_as_the_user_it_came_from(trained):
    data = load_processed()
    client = TestClient(
        create_app(Served.load(trained, [*FOLD_IN, "bias"])), base_url="http://localhost"
    )
    ids, users = data.items["movie_id"].to_list(), data.users["user_id"].to_list()
    train = data.matrices["train"]
    seen = sum(data.matrices[s] for s in ("train", "val", "test")).tocsr()
    for user in (3, 11):
        row = train[user]
        ratings = [
            {"movie_id": ids[int(i)], "rating": float(r)}
            for i, r in zip(row.indices, row.data, strict=True)
        ]
        elsewhere = {ids[int(i)] for i in seen[user].indices} - {r["movie_id"] for r in ratings}
        for name in FOLD_IN:
            known = client.get(f"/api/users/{users[user]}/recommendations?k=8&model={name}")
            new = client.post(
                "/api/recommendations",
                json={"ratings": ratings, "k": data.n_items, "model": name},
            )
            assert known.status_code == new.status_code == 200, (name, new.text)
            folded = [r for r in new.json()["recommendations"] if r["movie_id"] not in elsewhere]
            assert [r["movie_id"] for r in folded[:8]] == [
                r["movie_id"] for r in known.json()["recommendations"]
            ], name
    refused = client.post(
        "/api/recommendations", json={"ratings": ratings[:2], "model": "bias"}
    ).json()["error"]
    assert refused.startswith("bias cannot score a new user; these can: ")
    assert set(refused.split(": ", 1)[1].split(", ")) == set(FOLD_IN)


def test_contributions_add_up_to_the_score(trained):
    data = load_processed()
    train = data.matrices["train"]
    for name in EXPLAIN:
        model = load_final(name, trained, data)
        for user in (2, 9):
            row = train[user]
            scores = model.score_ratings(row, data)[0]
            for item in (0, 5, data.n_items - 1):
                parts = model.contributions(row, item, data)
                assert parts.shape == (row.nnz,)
                total = float(parts.sum())
                if name == "item_knn":  # the baseline plus the neighbours, then clipped
                    base = model.score_ratings(row, data)[0][item] - total
                    lo, hi = data.rating_range
                    if lo < scores[item] < hi:
                        assert base == pytest.approx(scores[item] - total, abs=1e-5), (
                            "contributions are the adjustment"
                        )
                else:
                    assert total == pytest.approx(float(scores[item]), rel=1e-4, abs=1e-5), name


def test_explain_endpoint(trained):
    data = load_processed()
    client = TestClient(
        create_app(Served.load(trained, ["ease", "item_knn", "bias"])), base_url="http://localhost"
    )
    user_id, movie_id = data.users["user_id"][4], data.items["movie_id"][7]
    answer = client.get(f"/api/users/{user_id}/explain", params={"movie_id": movie_id, "k": 3})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "ease" and body["movie"]["movie_id"] == movie_id
    because = body["because"]
    assert 1 <= len(because) <= 3
    parts = [b["contribution"] for b in because]
    assert parts == sorted(parts, reverse=True)
    history = {
        r["movie_id"]: r["rating"]
        for r in client.get(f"/api/users/{user_id}/history").json()["ratings"]
    }
    assert all(history[b["movie_id"]] == b["rating"] for b in because), (
        "from the user's own ratings"
    )
    bad = [
        (f"/api/users/{user_id}/explain?movie_id={movie_id}&model=bias", 422, "bias cannot say"),
        (f"/api/users/{user_id}/explain?movie_id=424242", 404, "movie 424242 is not in"),
        (f"/api/users/{user_id}/explain?movie_id={movie_id}&k=0", 422, "k must be at least 1"),
        (f"/api/users/{user_id}/explain", 422, "movie_id: Field required"),
        (f"/api/users/999999/explain?movie_id={movie_id}", 404, "user 999999 is not in"),
    ]
    for url, status, says in bad:
        answer = client.get(url)
        assert answer.status_code == status and says in answer.json()["error"], (url, answer.text)
