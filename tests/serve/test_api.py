"""The JSON API: every endpoint on a trained tiny project, and every bad input answered
with a 4xx and one line of JSON (never a traceback)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from served_project import SERVED, trained_project, wait_for  # noqa: E402  (tests/serve)

from movierec.cli import main as cli_main
from movierec.data.processed import load_processed
from movierec.errors import MovierecError
from movierec.pipeline.params import load_params
from movierec.serve.api import Served, create_app
from movierec.serve.recommend import recommend


@pytest.fixture
def client(tiny_project):
    return TestClient(create_app(Served.load(trained_project())), base_url="http://localhost")


def _user_ids() -> list[str]:
    return [str(u) for u in load_processed().users["user_id"].to_list()]


def test_nothing_trained_is_one_line(tiny_project, capsys):
    with pytest.raises(MovierecError, match=r"run `dvc repro` first"):
        Served.load(load_params())
    with pytest.raises(SystemExit) as stop:
        cli_main(["serve"])
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run `dvc repro` first" in err[0]


def test_health_and_models(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and set(health["models"]) == set(SERVED)
    board = client.get("/api/models").json()
    assert {row["model"] for row in board["models"]} == set(SERVED)
    assert set(board["selected"]) == {"topn", "rating"}
    assert all(board["selected"][task] in SERVED for task in board["selected"])
    ease = next(row for row in board["models"] if row["model"] == "ease")
    assert "topn" in ease and "rating" not in ease  # a ranker has no RMSE row


@pytest.mark.parametrize("model", SERVED)
def test_recommendations_are_unseen_ranked_and_match_the_cli(client, model):
    data = load_processed()
    user_id = _user_ids()[3]
    body = client.get(f"/api/users/{user_id}/recommendations", params={"k": 7, "model": model})
    assert body.status_code == 200
    body = body.json()
    recs = body["recommendations"]
    assert body["model"] == model and [r["rank"] for r in recs] == list(range(1, 8))
    user = int(data.users.filter(data.users["user_id"] == int(user_id))["user"].item())
    seen = set(data.ratings.filter(data.ratings["user"] == user)["item"].to_list())
    seen_ids = {data.items["movie_id"][i] for i in seen}
    assert not seen_ids & {r["movie_id"] for r in recs}, "never a movie the user rated"
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)
    if body["score"] == "predicted rating":
        lo, hi = data.rating_range
        assert all(lo <= s <= hi for s in scores)
    else:
        assert body["score"] == "relevance (0-100)" and all(0 <= s <= 100 for s in scores)
        assert scores[0] == 100.0  # the best candidate outranks every other
    kind, cli = recommend(data, load_params(), user_id, 7, model)
    assert kind == body["score"], "the CLI prints the score the API shows"
    assert [(r["movie_id"], r["score"]) for r in recs] == [(r.movie_id, r.score) for r in cli]
    assert all(r["title"] and isinstance(r["genres"], list) for r in recs)


def test_default_model_is_validations_pick(client):
    picked = client.get("/api/models").json()["selected"]["topn"]
    body = client.get(f"/api/users/{_user_ids()[0]}/recommendations").json()
    assert body["model"] == picked and len(body["recommendations"]) == 10


def test_history_search_and_similar(client):
    user_id = _user_ids()[5]
    history = client.get(f"/api/users/{user_id}/history").json()["ratings"]
    data = load_processed()
    user = int(data.users.filter(data.users["user_id"] == int(user_id))["user"].item())
    assert len(history) == data.ratings.filter(data.ratings["user"] == user).height
    ratings = [r["rating"] for r in history]
    assert ratings == sorted(ratings, reverse=True)

    title = data.items["title"][0]
    found = client.get("/api/movies/search", params={"q": title.upper()[2:9]}).json()["movies"]
    assert 1 <= len(found) <= 20 and all(title.upper()[2:9] in m["title"].upper() for m in found)

    movie_id = data.items["movie_id"][0]
    near = client.get(f"/api/movies/{movie_id}/similar", params={"k": 4, "model": "ease"}).json()
    assert near["movie"]["movie_id"] == movie_id and near["model"] == "ease"
    sims = [m["similarity"] for m in near["similar"]]
    assert len(sims) == 4 and sims == sorted(sims, reverse=True)
    assert movie_id not in {m["movie_id"] for m in near["similar"]}


BAD = [
    ("/api/users/999999/recommendations", 404, "user 999999 is not in synthetic"),
    ("/api/users/abc/recommendations", 404, "not a valid id"),
    ("/api/users/{u}/recommendations?k=0", 422, "k must be at least 1"),
    ("/api/users/{u}/recommendations?k=ten", 422, "k: Input should be a valid integer"),
    ("/api/users/{u}/recommendations?model=../../etc/passwd", 404, "is not served; served:"),
    ("/api/users/{u}/recommendations?model=svd", 404, "'svd' is not served"),
    ("/api/movies/424242/similar", 404, "movie 424242 is not in synthetic"),
    ("/api/movies/{m}/similar?model=bias", 404, "has no movie vectors here"),
    ("/api/movies/search?q=", 422, "q: String should have at least 1 character"),
    ("/api/movies/search", 422, "q: Field required"),
    ("/api/nowhere", 404, "Not Found"),
]


@pytest.mark.parametrize(("url", "status", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_are_one_line_of_json(client, url, status, says):
    data = load_processed()
    url = url.format(u=_user_ids()[0], m=data.items["movie_id"][0])
    answer = client.get(url)
    assert answer.status_code == status
    body = answer.json()
    assert set(body) == {"error"} and says in body["error"] and "\n" not in body["error"]
    assert "Traceback" not in answer.text


def test_wrong_method_and_reload(client):
    wrong = client.post("/api/health", json={})
    assert wrong.status_code == 405 and set(wrong.json()) == {"error"}
    before = client.get(f"/api/users/{_user_ids()[2]}/recommendations?model=ease").json()
    reloaded = client.post("/api/reload", json={}).json()
    assert reloaded["status"] == "reloaded" and set(reloaded["models"]) == set(SERVED)
    after = client.get(f"/api/users/{_user_ids()[2]}/recommendations?model=ease").json()
    assert after == before


def test_serve_refuses_a_model_that_is_not_trained(client):
    with pytest.raises(MovierecError, match="--models: svd is not trained; run `dvc repro` first"):
        Served.load(load_params(), ["ease", "svd"])


def test_relevance_is_the_share_of_candidates_outranked():
    from movierec.serve.recommend import readable_scores

    class Ranker:
        predicts_ratings = False
        scores_are_ratings = False

    row = np.array([0.5, -np.inf, 2.0, 1.0, 3.0], dtype=np.float32)  # movie 1 was seen
    kind, scores = readable_scores(Ranker(), row, np.array([4, 2, 3, 0]), None)
    assert kind == "relevance (0-100)" and scores == [100.0, 66.7, 33.3, 0.0]


def _train_ratings(user_id: str) -> tuple[int, list[dict]]:
    data = load_processed()
    user = int(data.users.filter(data.users["user_id"] == int(user_id))["user"].item())
    row = data.matrices["train"][user]
    ids = data.items["movie_id"]
    return user, [
        {"movie_id": ids[int(i)], "rating": float(r)}
        for i, r in zip(row.indices, row.data, strict=True)
    ]


def test_a_training_user_posted_as_new_gets_the_same_scores(client):
    from movierec.models.trained import load_final

    data = load_processed()
    user_id = _user_ids()[4]
    user, ratings = _train_ratings(user_id)
    ease = load_final("ease", load_params(), data)
    row = data.matrices["train"][user]
    assert np.array_equal(ease.score_ratings(row, data), ease.score_users(np.array([user])))
    body = client.post("/api/recommendations", json={"ratings": ratings, "k": 8, "model": "ease"})
    assert body.status_code == 200, body.text
    recs = body.json()["recommendations"]
    scores = ease.score_users(np.array([user]))[0].copy()
    scores[row.indices] = -np.inf
    expected = [data.items["movie_id"][int(i)] for i in np.argsort(-scores, kind="stable")[:8]]
    assert [r["movie_id"] for r in recs] == expected
    posted = {r["movie_id"] for r in ratings}
    assert not posted & {r["movie_id"] for r in recs}


def test_three_ratings_change_the_list(client):
    ids = load_processed().items["movie_id"].to_list()
    first = client.post(
        "/api/recommendations", json={"ratings": [{"movie_id": ids[0], "rating": 5}]}
    )
    more = client.post(
        "/api/recommendations",
        json={"ratings": [{"movie_id": ids[i], "rating": r} for i, r in ((0, 5), (7, 5), (12, 1))]},
    )
    assert first.status_code == more.status_code == 200
    assert first.json()["model"] == "ease"  # the only served model that folds in
    assert [r["movie_id"] for r in first.json()["recommendations"]] != [
        r["movie_id"] for r in more.json()["recommendations"]
    ]


NEW_BAD = [
    (
        {"ratings": [{"movie_id": 1, "rating": 5}], "model": "bias"},
        422,
        "bias cannot score a new user; these can: ease",
    ),
    ({"ratings": [{"movie_id": 1, "rating": 9}]}, 422, "is outside"),
    ({"ratings": [{"movie_id": 424242, "rating": 4}]}, 404, "movie 424242 is not in synthetic"),
    ({"ratings": [{"movie_id": 1, "rating": 4}, {"movie_id": 1, "rating": 3}]}, 422, "rated twice"),
    ({"ratings": []}, 422, "ratings: List should have at least 1 item"),
    ({"ratings": [{"movie_id": 1}]}, 422, "ratings.0.rating: Field required"),
    ({"ratings": [{"movie_id": 1, "rating": 4}], "k": 0}, 422, "k must be at least 1"),
    (
        {"ratings": [{"movie_id": 1, "rating": 4}] * 1001},
        422,
        "ratings: List should have at most 1000 items",
    ),
]


@pytest.mark.parametrize(("payload", "status", "says"), NEW_BAD, ids=[b[2][:30] for b in NEW_BAD])
def test_bad_new_users_are_one_line_of_json(client, payload, status, says):
    answer = client.post("/api/recommendations", json=payload)
    assert answer.status_code == status and says in answer.json()["error"]


def test_malformed_and_oversized_bodies(client):
    broken = client.post(
        "/api/recommendations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422 and set(broken.json()) == {"error"}
    huge = client.post(
        "/api/recommendations",
        content=b"x" * (300 * 1024),
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413 and "request body over" in huge.json()["error"]


def test_the_page_and_its_assets_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert links and all(a.startswith("/") and not a.startswith("//") for a in links), (
        "no other origin, no CDN"
    )
    assets = [a for a in links if a.startswith("/static/")]
    assert "/docs" in links and len(assets) == len(links) - 1
    for asset in assets:
        answer = client.get(asset)
        text = answer.text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not a fetch
        assert answer.status_code == 200 and "http://" not in text and "https://" not in text
    script = client.get("/static/app.js").text
    for endpoint in (
        "/api/health",
        "/api/models",
        "/history",
        "/recommendations",
        "/similar",
        "/api/movies/search",
    ):
        assert endpoint in script
    assert client.get("/static/../api.py").status_code == 404


def test_the_openapi_page_is_served_without_a_cdn(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert not re.findall(r"https?://", page.text), "every asset from this server"
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/users/{user_id}/recommendations", "/api/recommendations"} <= set(spec["paths"])


def test_a_body_without_a_length_is_refused(client):
    def chunks():
        yield b'{"ratings": '
        yield b"[]}"

    answer = client.post(
        "/api/recommendations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 411 and "Content-Length" in answer.json()["error"]


def test_retrained_files_are_picked_up_and_a_broken_one_is_not(tiny_project):
    import os
    import time

    from movierec.pipeline.train_step import train_model
    from movierec.store.paths import LEADERBOARD, MODELS_DIR

    params = trained_project()
    served = Served.load(params)
    user = _user_ids()[3]
    with TestClient(
        create_app(served, load_params, watch=0.1), base_url="http://localhost"
    ) as watched:
        first = watched.get("/api/health").json()["loaded"]
        time.sleep(1.1)  # "loaded" is to the second
        train_model("ease", params)  # dvc repro retrains a model: its folder is replaced
        assert wait_for(lambda: watched.get("/api/health").json()["loaded"] != first)
        second = watched.get("/api/health").json()["loaded"]
        time.sleep(1.1)
        (MODELS_DIR / "ease" / "model.npz").write_bytes(b"half a file")
        os.utime(LEADERBOARD)
        time.sleep(1.0)  # ten polls: each sees the change, none can load it
        assert watched.get("/api/health").json()["loaded"] == second, "kept what loaded last"
        answer = watched.get(f"/api/users/{user}/recommendations?model=ease")
        assert answer.status_code == 200 and len(answer.json()["recommendations"]) == 10
        broken = watched.post("/api/reload", json={})
        assert broken.status_code == 409 and set(broken.json()) == {"error"}
        assert "data/models/ease/model.npz" in broken.json()["error"]
        health = watched.get("/api/health").json()
        assert health["last_reload"]["ok"] is False
        assert "data/models/ease/model.npz" in health["last_reload"]["error"]
        assert watched.get(f"/api/users/{user}/recommendations?model=ease").status_code == 200


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--workers", "0"], "--workers must be between 1 and 64 (got 0)"),
        (["--watch", "-1"], "--watch must be 0 (off) or up to 86400 seconds (got -1)"),
        (["--watch", "nan"], "--watch must be 0 (off) or up to 86400 seconds (got nan)"),
        (["--watch", "inf"], "--watch must be 0 (off) or up to 86400 seconds (got inf)"),
        (["--host", ""], "--host is empty; give an address to bind"),
        (["--port", "0"], "--port must be between 1 and 65535 (got 0)"),
    ],
)
def test_serve_flags_out_of_range_are_one_line(tiny_project, capsys, flags, says):
    with pytest.raises(SystemExit) as stop:
        cli_main(["serve", *flags])
    assert stop.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
