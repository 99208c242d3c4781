"""Ranking families, the ranking blend and top-N selection: planted structure, exact
solves, val-only fitting, beyond-accuracy metrics."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from movierec.config.params import SyntheticData, build_section, parse_params
from movierec.config.sections import EvalParams
from movierec.data.preprocess import preprocess
from movierec.data.processed import load_processed
from movierec.data.synthetic import generate, write_custom
from movierec.evaluation.metrics import popularity_metrics
from movierec.evaluation.protocol import evaluate, ranking_validation
from movierec.models.base import FitContext
from movierec.models.ease import ease_weights, neighbourhood_weights
from movierec.models.registry import MODELS, trainable

# Every ranking family the registry trains (a new one is covered without editing this file);
# FAST shortens the slow ones on this small set.
RANKERS = [n for n in trainable() if not MODELS[n][0].predicts_ratings]
FAST = {
    "bpr": {"epochs": 15, "lr": 0.02, "batch_size": 512, "patience": 15},
    "mlp_rank": {"epochs": 12, "lr": 0.01, "batch_size": 256, "patience": 12, "dim": 16, "layers": [32]},
    "sasrec": {
        "epochs": 25,
        "lr": 0.005,
        "batch_size": 32,
        "dim": 32,
        "max_len": 30,
        "dropout": 0.2,
        "patience": 25,
    },
    "ials": {"factors": 16, "iterations": 10},
    "multvae": {"epochs": 40, "batch_size": 32, "lr": 0.003, "patience": 40, "anneal_steps": 200},
    "recvae": {"epochs": 40, "batch_size": 32, "lr": 0.003, "patience": 40, "hidden": 128, "latent": 32},
}


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    """Users each follow one of six genres of 25 movies (in random order) plus a few random
    movies rated low: who watches what is planted, popularity is flat."""
    rng = np.random.default_rng(5)
    n_users, n_clusters, size = 360, 6, 25
    rows = []
    for user in range(n_users):
        cluster = user % n_clusters
        own = rng.choice(size, 18, replace=False) + cluster * size
        noise = rng.choice(n_clusters * size, 4, replace=False)
        noise = noise[~np.isin(noise, own)]
        items = np.concatenate([own, noise])
        ratings = np.concatenate([np.full(len(own), 5.0), np.full(len(noise), 2.0)])
        order = np.argsort(np.concatenate([np.arange(len(own)), rng.uniform(0, 18, len(noise))]))
        for t, j in enumerate(order):
            rows.append((user + 1, int(items[j]) + 1, ratings[j], 1_000_000 + 1000 * t))
    base = generate(SyntheticData(n_users=n_users, n_items=n_clusters * size, n_ratings=2000), 1)
    planted = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    base.ratings = planted.cast({"rating": pl.Float64, "timestamp": pl.Int64})
    folder = tmp_path_factory.mktemp("clustered")
    write_custom(base, folder / "raw")
    params = parse_params({"data": {"dataset": "synthetic"}})
    preprocess(folder / "raw", folder / "processed", params.data, seed=5)
    return load_processed(folder / "processed")


def _fit(name: str, data, **overrides):
    cls, pcls = MODELS[name]
    model = cls(build_section(pcls, FAST.get(name, {}) | overrides, f"models.{name}"))
    report = model.fit(data.for_training(), FitContext(seed=3, device="cpu", progress=False, rank_validation=ranking_validation))
    return model, report


def _ndcg(model, data) -> float:
    return evaluate(model, data, EvalParams(k=[10]))["test"]["ndcg@10"]


@pytest.fixture(scope="module")
def pop_ndcg(clustered):
    return _ndcg(_fit("pop", clustered)[0], clustered)


@pytest.mark.parametrize("name", [n for n in RANKERS if n != "pop"])
def test_rankers_recover_planted_tastes_and_beat_pop(clustered, pop_ndcg, name):
    model, report = _fit(name, clustered)
    ndcg = _ndcg(model, clustered)
    # a user's held-out movies are 2-3 of the 25 in their genre: chance NDCG@10 is ~0.07
    assert ndcg > 0.4, ndcg
    assert ndcg > 2 * pop_ndcg, (ndcg, pop_ndcg)
    assert report.history and "val_ndcg@10" in report.history[report.best_epoch - 1]


@pytest.mark.parametrize("objective", ["bpr", "softmax"])
def test_mlp_rank_learns_tastes_under_each_objective(clustered, pop_ndcg, objective):
    """BPR's pairwise loss and the sampled softmax recover the planted genres as the
    default log loss does (test_rankers_recover_planted_tastes_and_beat_pop)."""
    model, _ = _fit("mlp_rank", clustered, objective=objective, negatives=8)
    assert _ndcg(model, clustered) > max(0.4, 2 * pop_ndcg)


@pytest.mark.parametrize("name", RANKERS)
def test_rankers_predict_no_ratings(clustered, name):
    short = name in ("bpr", "mlp_rank", "sasrec", "multvae", "recvae")
    model, _ = _fit(name, clustered, **({"epochs": 1} if short else {}))
    assert not model.predicts_ratings
    assert np.isnan(model.predict(np.array([0]), np.array([0]))).all()
    result = evaluate(model, clustered, EvalParams(k=[10]))
    assert "rmse" not in result["test"] and "novelty@10" in result["test"]


def test_ease_matches_a_direct_solve_per_movie():
    """EASE's closed form = ridge regression of each movie on all the others."""
    import torch

    rng = np.random.default_rng(0)
    x = (rng.random((30, 8)) < 0.4).astype(np.float64)
    lam = 2.5
    b = ease_weights(torch.from_numpy(x.T @ x), lam).numpy()
    for j in range(8):
        others = [i for i in range(8) if i != j]
        xo = x[:, others]
        direct = np.linalg.solve(xo.T @ xo + lam * np.eye(7), xo.T @ x[:, j])
        assert np.allclose(b[others, j], direct, atol=1e-8)
        assert b[j, j] == 0.0


def test_ease_neighbourhood_is_the_dense_solve_when_every_movie_is_a_neighbour():
    import scipy.sparse as sp
    import torch

    rng = np.random.default_rng(1)
    rated = rng.random((80, 23)) < 0.3
    x = sp.csr_matrix((rated * rng.integers(1, 6, (80, 23)) / 5).astype(np.float32))  # weights
    dense = ease_weights(torch.from_numpy(x.T.toarray() @ x.toarray()).double(), 7.0).numpy()
    sparse = neighbourhood_weights(x, 7.0, k=22).toarray()
    assert np.allclose(sparse, dense, atol=1e-5)
    assert np.all(np.diag(sparse) == 0)


def test_ease_neighbourhood_regresses_each_movie_on_its_most_co_rated():
    """With k < n_items - 1: column j holds weights only on j's k most co-rated movies
    (ties to the lower id), and they are the ridge solve on exactly those movies."""
    import scipy.sparse as sp

    rng = np.random.default_rng(2)
    dense_x = (rng.random((120, 40)) < 0.25).astype(np.float64)
    x, k, lam = sp.csr_matrix(dense_x.astype(np.float32)), 6, 3.0
    b = neighbourhood_weights(x, lam, k).toarray()
    gram = dense_x.T @ dense_x
    for j in range(40):
        counts = gram[:, j].copy()
        counts[j] = -np.inf
        support = np.argsort(-counts, kind="stable")[:k]
        direct = np.linalg.solve(gram[np.ix_(support, support)] + lam * np.eye(k), gram[support, j])
        assert np.allclose(b[support, j], direct, atol=1e-5)
        assert np.count_nonzero(b[:, j]) <= k


def test_ease_above_dense_max_items_is_sparse_and_still_ranks(clustered, pop_ndcg):
    """A catalogue over `dense_max_items` gets the neighbourhood variant, not a refusal:
    sparse weights, saved and loaded, movie vectors of bounded width, planted tastes found."""
    import scipy.sparse as sp

    model, _ = _fit("ease", clustered, dense_max_items=50, neighbours=30)
    assert sp.issparse(model.b_) and model.b_.nnz <= 30 * clustered.n_items
    assert _ndcg(model, clustered) > max(0.4, 2 * pop_ndcg)
    again = MODELS["ease"][0](model.params)
    again.set_state(model.state(), clustered)
    users = np.arange(20)
    assert np.array_equal(again.score_users(users), model.score_users(users))
    # rows scored on several threads are the rows of one product
    whole = (model.x_[users] @ model.b_).toarray()
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            assert np.array_equal(model.score_users(users[::-1]), whole[::-1])
    finally:
        torch.set_num_threads(before)
    vectors, rated = model.movie_vectors()
    assert vectors.shape == (clustered.n_items, 64) and rated.shape == (clustered.n_items,)


def test_same_seed_identical_rankings(clustered):
    for name in ("ials", "bpr", "sasrec"):
        extra = {"epochs": 2, "patience": 2} if name != "ials" else {}
        a, _ = _fit(name, clustered, **extra)
        b, _ = _fit(name, clustered, **extra)
        users = np.arange(12)
        assert np.array_equal(a.score_users(users), b.score_users(users)), name


def test_popularity_metrics_by_hand():
    rec = np.array([[0, 1], [1, -1]])
    counts = np.array([8, 2, 0])
    out = popularity_metrics(rec, counts, n_users=8, k=2)
    # self-information of movies 0, 1, 1: -log2(8/8) = 0, -log2(2/8) = 2, 2
    assert out["novelty@2"] == pytest.approx(4 / 3)
    assert out["popularity@2"] == pytest.approx((8 + 2 + 2) / 3)


def test_blend_weights_depend_on_val_only(clustered):
    from movierec.blend.topn import fit_topn_blend

    members = {n: _fit(n, clustered)[0] for n in ("pop", "ease", "ials")}
    params = parse_params({"data": {"dataset": "synthetic"}, "ensemble_topn": {"max_users": 0}})
    _, first = fit_topn_blend(params, clustered, members, 10, 4.0)
    test = clustered.matrices["test"]
    saved = test.data.copy()
    try:
        test.data[:] = 6.0 - test.data  # every test rating flipped
        clustered.splits["test"].rating[:] = 6.0 - clustered.splits["test"].rating
        _, second = fit_topn_blend(params, clustered, members, 10, 4.0)
    finally:
        test.data[:] = saved
        clustered.splits["test"].rating[:] = 6.0 - clustered.splits["test"].rating
    assert first["blend"]["weights"] == second["blend"]["weights"]
    assert first["val"] == second["val"]
    assert max(first["blend"]["weights"].values()) > 0


def test_rank_scores_are_normal_quantiles_of_ranks_among_candidates():
    """scores: rank by hand: candidates 3, 1, 1, 5 rank 3, 1.5, 1.5, 4 of 4 (ties share
    their mean); quantiles ndtri((rank - 0.5) / 4), then z-scored; the training movie and
    the unscorable one get the lowest candidate value."""
    import scipy.sparse as sp
    from scipy.special import ndtri

    from movierec.blend.topn import normalise

    rows = np.array([[3.0, 1.0, 1.0, 5.0, -np.inf, 2.0]])
    known = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 1]]))
    q = ndtri((np.array([3.0, 1.5, 1.5, 4.0]) - 0.5) / 4)
    z = (q - q.mean()) / q.std()
    out = normalise(rows, known, "rank")[0]
    assert out[:4] == pytest.approx(z, abs=1e-6)
    assert out[4] == out[5] == pytest.approx(z.min(), abs=1e-6)
    # an outlying score stretches z-scores, not ranks
    far = rows.copy()
    far[0, 3] = 1e6
    assert normalise(far, known, "rank")[0] == pytest.approx(out, abs=1e-6)
    assert normalise(far, known)[0, 0] != pytest.approx(normalise(rows, known)[0, 0])


def test_blend_serves_the_member_pool_with_the_best_cross_fitted_val(clustered):
    """Each floor's pool holds the members whose own val NDCG reaches floor x the best;
    the served weights use only the pool that cross-fitted val picked, and the blend's
    val number is that pool's cross-fitted one."""
    from movierec.blend.topn import fit_topn_blend

    members = {n: _fit(n, clustered)[0] for n in ("pop", "ease", "ials")}
    params = parse_params(
        {"data": {"dataset": "synthetic"}, "ensemble_topn": {"max_users": 0, "floors": [0.0, 0.99]}}
    )
    _, fitted = fit_topn_blend(params, clustered, members, 10, 4.0)
    info = fitted["blend"]
    singles = info["val_ndcg@10_members"]
    best = max(singles.values())
    for pool in info["pools"]:
        assert pool["members"] == [n for n in members if singles[n] >= pool["floor"] * best]
    assert info["pools"][0]["members"] == ["pop", "ease", "ials"]
    chosen = max(info["pools"], key=lambda pool: pool["val_ndcg@10_cross_fitted"])
    assert info["floor"] == chosen["floor"]
    assert fitted["val"]["ndcg@10"] == pytest.approx(chosen["val_ndcg@10_cross_fitted"])
    outside = set(members) - set(chosen["members"])
    assert all(info["weights"][n] == 0 for n in outside)
    assert all(set(fw) == set(chosen["members"]) for fw in info["fold_weights"])


def test_recommend_serves_the_ranking_blend_when_validation_picks_it(tiny_project, capsys):
    """Cross-fitted blend beats every single model on val -> the default; rating
    blend (in-sample val) is never the default; `--model` takes both blends."""
    import json

    from movierec.blend.topn import run_topn_blend
    from movierec.cli import main as cli_main
    from movierec.config.params import load_params
    from movierec.evaluation.leaderboard import build_leaderboard, write_leaderboard
    from movierec.pipeline.evaluate_step import evaluate_model
    from movierec.pipeline.steps import ensemble as run_rating_blend
    from movierec.pipeline.train_step import train_model
    from movierec.serve.recommend import default_model

    raw = (tiny_project / "params.yaml").read_text()
    import yaml

    cfg = yaml.safe_load(raw)
    cfg["train"]["models"] = ["bias", "mf_bias", "pop", "ease"]
    cfg["ensemble_topn"] = {"models": ["pop", "ease", "mf_bias"], "max_users": 0}
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(cfg))
    params = load_params()
    for name in cfg["train"]["models"]:
        train_model(name, params)
        evaluate_model(name, params)
    run_topn_blend(params)
    run_rating_blend()
    details = tiny_project / "metrics" / "details"
    blend = json.loads((details / "ensemble_topn.json").read_text())
    assert blend["val_cross_fitted"] and "ndcg@10" in blend["val"]
    # make the blend the clear val winner, whatever the tiny data gives
    blend["val"]["ndcg@10"] = 0.99
    (details / "ensemble_topn.json").write_text(json.dumps(blend))
    rating = json.loads((details / "ensemble.json").read_text())
    rating["val"]["rmse"] = 0.01  # in-sample: must not be chosen however good
    (details / "ensemble.json").write_text(json.dumps(rating))
    write_leaderboard(build_leaderboard(details), "synthetic", tiny_project / "metrics")
    assert default_model("topn") == "ensemble_topn"
    assert default_model("rating") != "ensemble"
    capsys.readouterr()
    for name in ("ensemble_topn", "ensemble", "ease", "pop"):
        cli_main(["recommend", "--user", "3", "-k", "3", "--model", name])
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith(f"Top 3 movies for user 3 ({name}"), out
        assert len(out) == 5
    cli_main(["recommend", "--user", "3", "-k", "3"])
    assert "(ensemble_topn, synthetic)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["predict", "--user", "3", "--movie", "1", "--model", "ensemble_topn"])
    assert "ranks movies but does not predict ratings" in capsys.readouterr().err
    cli_main(["similar", "--movie-id", "1", "--model", "ease", "-k", "3"])
    assert len(capsys.readouterr().out.strip().splitlines()) >= 3


def test_rp3beta_is_the_three_step_walk_with_a_popularity_penalty():
    """Against the formula on dense matrices: P(u|i)^a P(j|u)^a / pop(j)^b, no self-loops,
    the k largest of each row kept."""
    from movierec.models.rp3beta import rp3beta_weights

    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(40, 25)) < 0.3) * rng.integers(1, 6, size=(40, 25)).astype(float)
    x[:, 3] = 0.0  # a movie nobody rated
    a, b, k = 0.7, 0.4, 6
    p_ui = x / np.maximum(x.sum(1, keepdims=True), 1e-300)
    p_iu = x.T / np.maximum(x.T.sum(1, keepdims=True), 1e-300)
    pop = (x > 0).sum(0)
    walk = (p_iu**a) @ (p_ui**a) / np.where(pop > 0, pop, 1.0) ** b
    np.fill_diagonal(walk, 0.0)
    expected = np.zeros_like(walk)
    for i, row in enumerate(walk):
        top = np.argsort(-row, kind="stable")[:k]
        expected[i, top] = np.where(row[top] > 0, row[top], 0.0)
    import scipy.sparse as sp

    got = rp3beta_weights(sp.csr_matrix(x), a, b, k).toarray()
    assert np.allclose(got, expected, atol=1e-6)
    assert got.shape == (25, 25) and not got[:, 3].any() and not np.diag(got).any()
    normalised = rp3beta_weights(sp.csr_matrix(x), a, b, k, normalize=True).toarray()
    sums = normalised.sum(1)
    assert np.allclose(sums[sums > 0], 1.0, atol=1e-5)


def test_recvae_updates_encoder_and_decoder_in_turns(clustered):
    """Encoder passes leave the decoder as it was, decoder passes the encoder; the prior's
    copy of the encoder is taken as a decoder turn begins."""
    from movierec.models.ranking import interactions
    from movierec.models.recvae import RecVAEModule, RecVAEParams

    p = RecVAEParams(hidden=32, latent=8, batch_size=400, encoder_epochs=2, decoder_epochs=1)
    module = RecVAEModule(interactions(clustered, "rating"), p)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
    rows = {"row": torch.arange(clustered.n_users)}

    def step() -> tuple[dict, dict]:
        before = {k: v.clone() for k, v in module.state_dict().items()}
        optimizer.zero_grad(set_to_none=True)
        module.loss(rows).backward()
        optimizer.step()
        return before, module.state_dict()

    for turn in ("encoder", "encoder", "decoder", "encoder"):
        before, after = step()
        moved = {k.split(".")[0] for k in after if k != "step" and not torch.equal(before[k], after[k])}
        assert moved == ({"encoder"} if turn == "encoder" else {"decoder", "previous"}), (turn, moved)
