"""The co-rated lists of similar movies: planted structure recovered, the genre weight
doing what it says, blocks that change nothing, the val measures against hand counts,
and the stage's pick following its rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient
from served_project import trained_project  # noqa: E402  (tests/serve)

from movierec.cli import main as cli_main
from movierec.evaluation.neighbours import co_rated_hit_rate, genre_share, median_raters
from movierec.pipeline.embed_step import run_embed_stage
from movierec.pipeline.neighbours_step import run_neighbours_stage
from movierec.pipeline.params import load_params
from movierec.serve import neighbours as nb
from movierec.serve.api import Served, create_app
from movierec.store.paths import NEIGHBOURS_METRICS


def _planted() -> tuple[sp.csr_matrix, np.ndarray]:
    """Two audiences: users 0-19 rate movies 0-4, users 20-39 rate 5-9; movie 10 is
    rated by everyone (a blockbuster), movie 11 by nobody. Genres: 0-4 and 10 are A,
    5-9 are B."""
    rows, cols = [], []
    for u in range(40):
        group = range(0, 5) if u < 20 else range(5, 10)
        for m in [*group, 10]:
            rows.append(u)
            cols.append(m)
    x = sp.csr_matrix((np.full(len(rows), 4.0), (rows, cols)), shape=(40, 12))
    genres = np.zeros((12, 2), dtype=np.float32)
    genres[[0, 1, 2, 3, 4, 10], 0] = 1
    genres[5:10, 1] = 1
    return x, genres


def test_an_audience_is_recovered_and_nobody_rated_is_nobodys_neighbour():
    x, genres = _planted()
    for floor in (None, 0.5):
        order, sims = nb.co_rated_neighbours(x, genres, floor, keep=5)
        for movie in range(5):
            assert set(order[movie, :4]) == set(range(5)) - {movie}, "its own audience first"
        assert 11 not in order and (order[11] == -1).all(), "no raters: no list, on no list"
        assert (np.diff(sims[0, :4]) <= 1e-7).all()


def test_the_genre_floor_trades_co_rating_for_genre():
    rated = [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 1, 1], [1, 1, 0, 1]]
    x = sp.csr_matrix(np.array(rated, float))  # cosine with movie 0: 0.89, 0.63, 0.63
    genres = np.array([[1, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)  # Jaccard 0, 1, 0.5
    plain, _ = nb.co_rated_neighbours(x, genres, None, keep=3)
    assert plain[0, 0] == 1, "movie 1 is the most co-rated with movie 0"
    weighted, _ = nb.co_rated_neighbours(x, genres, 0.1, keep=3)
    assert list(weighted[0]) == [2, 3, 1], "a small floor orders by genre overlap"
    loose, _ = nb.co_rated_neighbours(x, genres, 100.0, keep=3)
    assert loose[0, 0] == 1, "a large floor is the plain cosine again"


def test_blocks_change_nothing(monkeypatch):
    rng = np.random.default_rng(3)
    x = sp.csr_matrix((rng.random((60, 37)) < 0.2).astype(float))
    genres = (rng.random((37, 4)) < 0.4).astype(np.float32)
    whole = nb.co_rated_neighbours(x, genres, 0.5, keep=6)
    monkeypatch.setattr(nb, "BLOCK_CELLS", 37 * 4)  # four movies a block
    blocked = nb.co_rated_neighbours(x, genres, 0.5, keep=6)
    assert np.array_equal(whole[0], blocked[0]) and np.allclose(whole[1], blocked[1])


def test_hit_rate_genre_share_and_popularity_against_hand_counts():
    lists = np.array([[1, 2], [0, 2], [0, -1]])
    seeds = sp.csr_matrix(np.array([[5, 0, 0], [0, 4, 1]], float))  # user 0 liked 0; user 1 liked 1
    targets = sp.csr_matrix(np.array([[0, 4, 5], [5, 0, 5]], float))
    # pairs: (0,1) (0,2) for user 0; (1,0) (1,2) for user 1: 0's top-1 is 1: hit; 1's top-1 is 0: hit
    assert co_rated_hit_rate(lists, 1, seeds, targets, 4.0) == pytest.approx(2 / 4)
    assert co_rated_hit_rate(lists, 2, seeds, targets, 4.0) == pytest.approx(4 / 4)
    genres = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    # movie 0: [1 no, 2 yes]; movie 1: [0 no, 2 yes]; movie 2: [0 yes]
    assert genre_share(lists, 2, genres) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert median_raters(lists, 2, np.array([10, 20, 30])) == 20.0


def test_the_stage_picks_by_its_rule_and_the_server_answers_with_it(tiny_project, capsys):
    params = trained_project()
    run_embed_stage(params)
    with pytest.raises(SystemExit):
        cli_main(["similar", "--movie-id", "1"])  # before the stage ran
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run `dvc repro neighbours`" in err[0]
    line = run_neighbours_stage(load_params())
    record = json.loads(NEIGHBOURS_METRICS.read_text())
    assert line.startswith("neighbours: ") and record["selected"] in line
    hit, share = f"hit@{record['k']}", f"genre_share@{record['k']}"
    val = record["val"]
    assert {"co-rating cosine", "word2vec"} <= set(val) and set(record["test"]) == set(val)
    mine = {n: v for n, v in val.items() if n != "word2vec"}
    coherent = {n: v for n, v in mine.items() if v[share] >= 0.9}
    if coherent:
        assert record["selected"] == max(coherent, key=lambda n: (coherent[n][hit], n))
    else:
        assert record["selected"] == max(mine, key=lambda n: (mine[n][share], n))
    client = TestClient(create_app(Served.load(params)), base_url="http://localhost")
    answer = client.get("/api/movies/1/similar", params={"k": 5})
    body = answer.json()
    assert answer.status_code == 200 and body["model"] == "co_rated"
    assert body["method"] == record["selected"] and 1 <= len(body["similar"]) <= 5
    all_of_it = client.get("/api/movies/1/similar", params={"k": 51})  # past the list: all of it
    assert all_of_it.status_code == 200 and len(all_of_it.json()["similar"]) <= 50
    cli_main(["similar", "--movie-id", "1", "-k", "5"])
    shown = capsys.readouterr().out.strip().splitlines()
    assert record["selected"] in shown[0] and len(shown) == 1 + len(body["similar"])
    assert [line.split(None, 2)[2].split("  ")[0] for line in shown[1:]] == [
        m["title"] for m in body["similar"]
    ], "the CLI and the API list the same movies"
