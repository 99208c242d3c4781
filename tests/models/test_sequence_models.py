"""BST, recurrent and wide & deep: no leakage, padding that cannot matter, side-information paths."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from movierec.config.params import build_section, parse_params
from movierec.data.preprocess import preprocess
from movierec.data.processed import load_processed
from movierec.data.synthetic import SyntheticSet, write_custom
from movierec.errors import DataError, MovierecError
from movierec.evaluation.protocol import ranking_validation
from movierec.models.base import FitContext
from movierec.models.registry import MODELS
from movierec.models.sequence import history_valid, latest_windows

FAST = {
    "bst": {"epochs": 3, "batch_size": 128, "dim": 16, "heads": 2, "ff_dim": 32, "layers": [32]},
    "rnn": {"epochs": 3, "batch_size": 128, "dim": 16, "hidden": 16, "layers": [32]},
    "wide_deep": {"epochs": 3, "batch_size": 128, "dim": 16, "layers": [32]},
}
GENRES = ["Action", "Comedy", "Drama", "Horror"]


def _write(folder, ratings: pl.DataFrame, n_items: int, users: bool = True, length: int = 6):
    rng = np.random.default_rng(0)
    items = pl.DataFrame(
        {
            "item_id": np.arange(n_items),
            "title": [f"Movie {i} ({1950 + i % 50})" for i in range(n_items)],
            "genres": [[GENRES[i % 4]] for i in range(n_items)],
            "year": [1950 + i % 50 for i in range(n_items)],
        }
    )
    n_users = int(ratings["user_id"].max()) + 1
    user_frame = pl.DataFrame(
        {
            "user_id": np.arange(n_users),
            "gender": np.where(np.arange(n_users) % 2 == 0, "M", "F"),
            "age": rng.integers(15, 70, n_users),
            "occupation": rng.choice(["writer", "student", "other"], n_users),
            "zip": ["00000"] * n_users,
        }
    )
    data = SyntheticSet(ratings, items, user_frame, np.zeros(ratings.height), 0.0)
    write_custom(data, folder / "raw")
    if not users:
        (folder / "raw" / "users.parquet").unlink()
    params = parse_params({"data": {"dataset": "synthetic", "sequences": {"length": length}}})
    preprocess(folder / "raw", folder / "processed", params.data, seed=5)
    return load_processed(folder / "processed")


def _frame(user, item, rating, timestamp=None) -> pl.DataFrame:
    cols = {"user_id": user, "item_id": item, "rating": np.asarray(rating, dtype=np.float32)}
    if timestamp is not None:
        cols["timestamp"] = timestamp
    return pl.DataFrame(cols)


def _sessions(n_users=240, per_user=60, n_items=150, seed=1):
    """Ratings driven by a per-user mood that jumps every ~10 ratings (in time order)."""
    rng = np.random.default_rng(seed)
    item_bias = rng.normal(0, 0.3, n_items)
    users, items, ratings, times = [], [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, per_user, replace=False)
        mood = np.repeat(rng.choice([-1.3, 1.3], per_user // 10 + 1), 10)[:per_user]
        users.append(np.full(per_user, u))
        items.append(chosen)
        ratings.append(np.clip(3 + item_bias[chosen] + mood + rng.normal(0, 0.2, per_user), 1, 5))
        times.append(1_000_000 + u * 10_000 + np.arange(per_user) * 60)
    return _frame(*(np.concatenate(x) for x in (users, items, ratings, times))), n_items


def _fit(name, data, **overrides):
    cls, pcls = MODELS[name]
    model = cls(build_section(pcls, FAST.get(name, {}) | overrides, f"models.{name}"))
    model.fit(data, FitContext(seed=3, device="cpu", progress=False, rank_validation=ranking_validation))
    return model


def _rmse(pred, truth) -> float:
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    frame, n_items = _sessions()
    return _write(tmp_path_factory.mktemp("sessions"), frame, n_items)


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """The leakage trap: i.i.d. ratings — nothing but the rating itself predicts it."""
    rng = np.random.default_rng(2)
    n_users, per_user, n_items = 120, 40, 100
    user = np.repeat(np.arange(n_users), per_user)
    item = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    rating = rng.integers(1, 6, user.size).astype(np.float32)
    ts = 1_000_000 + np.tile(np.arange(per_user) * 60, n_users)
    folder = tmp_path_factory.mktemp("noise")
    return (
        folder,
        _frame(user, item, rating, ts),
        n_items,
        _write(folder, _frame(user, item, rating, ts), n_items),
    )


@pytest.mark.parametrize("name", ["bst", "rnn"])
def test_sequence_models_learn_planted_moods_better_than_bias(sessions, name):
    data = sessions
    bias = _fit("bias", data)
    model = _fit(name, data, epochs=6, patience=6)
    part = data.splits["test"]
    honest = _rmse(model.predict_split(data, "test"), part.rating)
    baseline = _rmse(bias.predict(part.user, part.item), part.rating)
    assert honest < 0.85 * baseline, (honest, baseline)


def test_wide_deep_learns_demographic_genre_crosses(tmp_path):
    """Men love Action and hate Drama, women the reverse: only a cross explains it."""
    rng = np.random.default_rng(4)
    n_users, n_items = 300, 120
    user = np.repeat(np.arange(n_users), 40)
    item = np.concatenate([rng.choice(n_items, 40, replace=False) for _ in range(n_users)])
    sign = np.where(user % 2 == 0, 1.0, -1.0)  # gender, as written by _write
    genre = item % 4  # Action, Comedy, Drama, Horror
    effect = np.select([genre == 0, genre == 2], [1.2 * sign, -1.2 * sign], 0.0)
    rating = np.clip(3 + effect + rng.normal(0, 0.3, user.size), 1, 5)
    data = _write(tmp_path, _frame(user, item, rating, np.arange(user.size)), n_items)
    bias = _fit("bias", data)
    model = _fit("wide_deep", data, epochs=6, patience=6)
    part = data.splits["test"]
    assert _rmse(model.predict(part.user, part.item), part.rating) < 0.7 * _rmse(
        bias.predict(part.user, part.item), part.rating
    )


@pytest.mark.parametrize("name", ["bst", "rnn"])
def test_leakage_trap(noise, tmp_path, name):
    """On i.i.d. ratings an honest model cannot beat the spread of the ratings, and its
    val/test predictions do not move when every val/test rating is changed."""
    _, frame, n_items, data = noise
    model = _fit(name, data)
    part = data.splits["test"]
    pred = model.predict_split(data, "test")
    assert _rmse(pred, part.rating) > 0.9 * float(np.std(part.rating))
    # Rewrite every val/test rating (the split does not depend on rating values).
    ratings = pl.read_parquet(data.folder / "ratings.parquet")
    held = ratings.filter(pl.col("split") != "train").select("user", "item")
    ids_u = data.users.select("user", "user_id")
    ids_i = data.items.select("item", "movie_id")
    held = held.join(ids_u, on="user").join(ids_i, on="item")
    held = held.select("user_id", pl.col("movie_id").alias("item_id"), flip=pl.lit(True))
    flip = (
        frame.join(held, on=["user_id", "item_id"], how="left")
        .with_columns(
            pl.when(pl.col("flip"))
            .then(6 - pl.col("rating"))
            .otherwise(pl.col("rating"))
            .alias("rating")
        )
        .drop("flip")
    )
    changed = _write(tmp_path, flip, n_items)
    assert not np.array_equal(changed.splits["test"].rating, part.rating)
    other = MODELS[name][0](model.params)
    other.set_state(model.state(), changed)
    assert np.array_equal(other.predict_split(changed, "test"), pred)


@pytest.mark.parametrize("name", ["bst", "rnn"])
def test_padded_slots_cannot_matter(sessions, name):
    data = sessions
    model = _fit(name, data, epochs=1)
    batch = model.split_inputs(data, "train")
    short = batch["hist_len"] < int(data.sequences["length"])
    assert short.any()
    batch = {k: v[short] for k, v in batch.items() if k != "rating"}
    before = model._predict_batch(batch)
    valid = history_valid(batch["hist_len"], int(data.sequences["length"]))
    g = torch.Generator().manual_seed(0)
    junk_items = torch.randint(0, data.n_items, batch["hist_items"].shape, generator=g)
    junk_ratings = torch.randint(1, 6, batch["hist_ratings"].shape, generator=g).float()
    batch["hist_items"] = torch.where(valid, batch["hist_items"], junk_items)
    batch["hist_ratings"] = torch.where(valid, batch["hist_ratings"], junk_ratings)
    np.testing.assert_allclose(model._predict_batch(batch), before, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_state_is_the_one_after_each_users_real_history(sessions, cell):
    model = _fit("rnn", sessions, epochs=1, cell=cell)
    module = model.module_.eval()
    batch = model.split_inputs(sessions, "train")
    length = int(sessions.sequences["length"])
    lengths = batch["hist_len"].clamp(max=length)
    rows = [int(np.flatnonzero(lengths.numpy() == n)[0]) for n in range(length + 1)]
    batch = {k: v[rows] for k, v in batch.items()}
    items, levels, _ = module.tokens.ids(batch)
    with torch.no_grad():
        encoded = module.encode(batch)
        for row, n in enumerate(range(length + 1)):
            if n == 0:  # no history yet: the learned empty state
                torch.testing.assert_close(encoded[row], module.empty)
                continue
            real = slice(length - n, length)  # left-padded: the real ratings come last
            x = module.tokens.item(items[row, real]) + module.tokens.rating(levels[row, real])
            out, _ = module.rnn(x[None])
            torch.testing.assert_close(encoded[row], out[0, -1], atol=1e-5, rtol=0)


def test_bst_ranking_matches_pairwise_scoring(sessions):
    from movierec.models.sequence import SequenceRecommender

    model = _fit("bst", sessions, epochs=1)
    users = np.array([0, 5, 17])
    np.testing.assert_allclose(
        model.score_users(users), SequenceRecommender.score_users(model, users), atol=1e-4
    )


@pytest.mark.parametrize("name", ["bst", "rnn"])
def test_window_of_one_and_short_histories(tmp_path, name):
    frame, n_items = _sessions(n_users=40, per_user=12, n_items=50)
    data = _write(tmp_path, frame, n_items, length=1)
    seq = data.sequences
    assert seq["train_hist_items"].shape[1] == 1
    assert (seq["train_hist_len"] == 0).any()  # each user's first rating has no history
    model = _fit(name, data, epochs=1)
    pred = model.predict_split(data, "val")
    assert pred.shape == data.splits["val"].rating.shape and np.isfinite(pred).all()
    rows = model.score_users(np.arange(3))
    assert rows.shape == (3, data.n_items) and np.isfinite(rows).all()
    windows = latest_windows(data, 1)
    assert windows["hist_items"].shape == (data.n_users, 1)


@pytest.mark.parametrize("name", ["bst", "rnn", "wide_deep"])
def test_no_demographics_drops_user_features(tmp_path, name):
    frame, n_items = _sessions(n_users=40, per_user=12, n_items=50)
    data = _write(tmp_path, frame, n_items, users=False)
    model = _fit(name, data, epochs=1)
    assert np.isfinite(model.predict_split(data, "test")).all()
    assert not model.module_.side.demo  # no demographic embeddings were built


@pytest.mark.parametrize("name", ["bst", "rnn"])
def test_no_timestamps_is_one_clear_error(tmp_path, name):
    frame, n_items = _sessions(n_users=20, per_user=10, n_items=30)
    data = _write(tmp_path, frame.drop("timestamp"), n_items)
    with pytest.raises(DataError, match="no timestamps.*remove " + name):
        _fit(name, data)


def test_pipeline_refuses_sequence_models_without_timestamps(tmp_path, monkeypatch):
    from movierec.pipeline.train_step import train_model

    frame, n_items = _sessions(n_users=20, per_user=10, n_items=30)
    _write(tmp_path / "data", frame.drop("timestamp"), n_items)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MovierecError, match="has no timestamps; remove bst from train.models"):
        train_model("bst", parse_params({"data": {"dataset": "synthetic"}}))


def test_sasrec_refuses_a_softmax_that_cannot_fit_before_its_first_step():
    """ML-25M's 62k movies: 1,024 users x 50 positions of logits is 38 GiB, which a
    24 GiB machine cannot give; the refusal names the largest batch that fits."""
    from movierec.config.params import ConfigError

    cls, pcls = MODELS["sasrec"]
    model = cls(build_section(pcls, {"batch_size": 1024}, "models.sasrec"))
    model.check_memory(62_423, None)  # memory unknown: no verdict
    model.check_memory(62_423, 64 * 2**30)  # 38 GiB of 64: fits
    with pytest.raises(ConfigError) as refused:
        model.check_memory(62_423, 20 * 2**30)
    line = str(refused.value)
    fits = int(0.8 * 20 * 2**30 // (50 * 62_424 * 12))
    assert "needs up to 35.7 GiB (1024 users x 50 positions x 62,424 movies" in line
    assert f"`models.sasrec.batch_size` to {fits} or less" in line and fits == 458
    with pytest.raises(ConfigError, match="lower `models.sasrec.max_len`"):
        model.check_memory(62_423, 10 * 2**20)


def test_sasrec_windows_hold_every_training_transition_once(sessions):
    """``history: all`` cuts each user's training movies into windows overlapping by one:
    every (movie, next movie) pair of train appears once, in time order, and the latest
    window is the sequence ``history: latest`` trains on."""
    from movierec.models.sasrec import training_windows, user_sequences

    data = sessions.for_training()
    pad = data.n_items
    windows = training_windows(data, 7)
    pairs = sorted(
        (int(a), int(b))
        for w in windows
        for a, b in zip(w[:-1], w[1:], strict=True)
        if a != pad and b != pad
    )
    train = data.ratings.filter(pl.col("split") == "train")
    expected = []
    for _, part in train.group_by("user", maintain_order=True):
        movies = part["item"].to_list()
        expected += list(zip(movies[:-1], movies[1:], strict=True))
    assert pairs == sorted(expected)
    latest = training_windows(data, 7, "latest")
    rows = user_sequences(data, 7)
    assert np.array_equal(latest, rows[(rows != pad).sum(1) >= 2])


def test_sasrec_refit_reads_val_as_each_users_latest_movie(tmp_path):
    """On the leave-last split a refit (train.refit) folds val into train; the sequence a
    user is ranked from then ends with their val movie, the one just before test."""
    from movierec.models.sasrec import user_sequences

    frame, n_items = _sessions(n_users=30, per_user=12, n_items=40)
    rng = np.random.default_rng(3)
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=int(rng.integers(1 << 30)))
    _write(tmp_path / "raw", shuffled, n_items)
    params = parse_params(
        {"data": {"dataset": "synthetic", "split": {"strategy": "leave_last"}}}
    )
    preprocess(tmp_path / "raw" / "raw", tmp_path / "ll", params.data, seed=5)
    data = load_processed(tmp_path / "ll")
    assert MODELS["sasrec"][0].refits()
    merged = user_sequences(data.with_val_in_train(), 12)
    val = data.splits["val"]
    assert np.array_equal(merged[val.user, -1], val.item)
    first = user_sequences(data, 12)
    assert np.array_equal(merged[val.user, :-1], first[val.user, 1:])  # shifted by one
