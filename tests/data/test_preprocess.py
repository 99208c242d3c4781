"""The data/processed contract, duplicates, atomicity and the real releases."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from movierec.config.params import parse_params
from movierec.data.download import acquire
from movierec.data.matrices import load_matrices
from movierec.data.preprocess import preprocess
from movierec.data.synthetic import write_custom, write_native
from movierec.errors import DataError


def _params(**data):
    return parse_params({"data": {"dataset": "ml-100k", **data}})


def test_contract_files_and_types(tiny, tmp_path: Path):
    write_native(tiny, "ml-100k", tmp_path / "raw")
    params = _params()
    prepared = preprocess(tmp_path / "raw", tmp_path / "out", params.data, seed=3)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "items.parquet",
        "matrices.npz",
        "meta.json",
        "ratings.parquet",
        "sequences.npz",
        "users.parquet",
    ]
    ratings = pl.read_parquet(out / "ratings.parquet")
    assert ratings.schema == pl.Schema(
        {
            "user": pl.Int32,
            "item": pl.Int32,
            "rating": pl.Float32,
            "timestamp": pl.Int64,
            "split": pl.String,
        }
    )
    meta = json.loads((out / "meta.json").read_text())
    assert ratings["user"].max() == meta["n_users"] - 1 and ratings["user"].min() == 0
    assert ratings["item"].max() < meta["n_items"]
    assert set(ratings["split"].unique()) == {"train", "val", "test"}
    users = pl.read_parquet(out / "users.parquet")
    assert users.columns == ["user", "user_id", "gender", "age", "occupation", "zip"]
    assert users["user"].to_list() == list(range(users.height))
    items = pl.read_parquet(out / "items.parquet")
    assert items.columns == ["item", "movie_id", "title", "year", "genres"]
    assert items.schema["genres"] == pl.List(pl.String)

    mats = load_matrices(out / "matrices.npz")
    for split, m in mats.items():
        part = ratings.filter(pl.col("split") == split)
        assert m.nnz == part.height
        assert m.shape == (meta["n_users"], meta["n_items"])
        assert np.allclose(
            m[part["user"].to_numpy(), part["item"].to_numpy()].A1, part["rating"].to_numpy()
        )

    seq = np.load(out / "sequences.npz")
    assert bool(seq["available"])
    test = ratings.filter(pl.col("split") == "test")
    assert seq["test_item"].tolist() == test["item"].to_list()
    assert seq["test_hist_items"].shape == (test.height, 6)
    assert prepared.stats["ratings"]["total"] == tiny.ratings.height


def test_sequences_only_hold_earlier_training_ratings(tiny, tmp_path: Path):
    write_custom(tiny, tmp_path / "raw")
    params = parse_params({"data": {"dataset": "synthetic", "sequences": {"length": 3}}})
    preprocess(tmp_path / "raw", tmp_path / "out", params.data, seed=5)
    ratings = pl.read_parquet(tmp_path / "out" / "ratings.parquet")
    train = {
        (u, i): t
        for u, i, t in ratings.filter(pl.col("split") == "train")
        .select("user", "item", "timestamp")
        .iter_rows()
    }
    seq = np.load(tmp_path / "out" / "sequences.npz")
    for split in ("train", "val", "test"):
        ts = ratings.filter(pl.col("split") == split)["timestamp"].to_numpy()
        for row in range(0, len(ts), 7):
            u, target = seq[f"{split}_user"][row], seq[f"{split}_item"][row]
            for h in seq[f"{split}_hist_items"][row]:
                if h < 0:
                    continue
                assert (u, h) in train, "only training ratings enter a window"
                assert h != target
                assert train[(u, h)] <= ts[row]


def test_no_timestamps_writes_marker(tmp_path: Path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    pl.DataFrame(
        {
            "user_id": np.repeat(np.arange(10), 10),
            "item_id": np.tile(np.arange(10), 10),
            "rating": rng.integers(1, 6, 100),
        }
    ).write_csv(raw / "ratings.csv")
    params = parse_params({"data": {"dataset": "custom", "custom": {"ratings": "x.csv"}}})
    preprocess(raw, tmp_path / "out", params.data, seed=1)
    seq = np.load(tmp_path / "out" / "sequences.npz")
    assert not bool(seq["available"])
    assert "no timestamps" in str(seq["reason"])
    assert pl.read_parquet(tmp_path / "out" / "ratings.parquet")["timestamp"].null_count() == 100


@pytest.mark.parametrize(("policy", "expected"), [("last", 2.0), ("mean", 3.5)])
def test_duplicates_resolved_explicitly(tmp_path: Path, policy: str, expected: float):
    raw = tmp_path / "raw"
    raw.mkdir()
    others = 10 * 10  # ten more users with ten ratings each, so every split has ratings
    pl.DataFrame(
        {
            "user_id": [1, 1, 1, 2, *np.repeat(np.arange(3, 13), 10)],
            "item_id": [7, 7, 8, 7, *np.tile(np.arange(20, 30), 10)],
            "rating": [5.0, 2.0, 3.0, 4.0, *([3.0] * others)],
            "timestamp": [10, 20, 5, 1, *range(others)],
        }
    ).write_csv(raw / "ratings.csv")
    params = parse_params(
        {"data": {"dataset": "custom", "duplicates": policy, "custom": {"ratings": "x.csv"}}}
    )
    prepared = preprocess(raw, tmp_path / "out", params.data, seed=1)
    assert prepared.stats["duplicates_dropped"] == 1
    r = prepared.ratings.join(prepared.items.select("item", "movie_id"), on="item")
    row = r.filter((pl.col("user") == 0) & (pl.col("movie_id") == 7))
    assert row["rating"].item() == expected


def test_duplicates_error_policy_and_no_partial_output(tmp_path: Path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pl.DataFrame({"user_id": [1, 1], "item_id": [7, 7], "rating": [5.0, 2.0]}).write_csv(
        raw / "ratings.csv"
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous good output")
    params = parse_params(
        {"data": {"dataset": "custom", "duplicates": "error", "custom": {"ratings": "x.csv"}}}
    )
    with pytest.raises(DataError, match="user 1 rated movie 7 2 times"):
        preprocess(raw, out, params.data, seed=1)
    assert (out / "keep.txt").read_text() == "previous good output"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_same_seed_same_output(tiny, tmp_path: Path):
    write_native(tiny, "ml-100k", tmp_path / "raw")
    params = _params()
    a = preprocess(tmp_path / "raw", tmp_path / "a", params.data, seed=9).ratings
    b = preprocess(tmp_path / "raw", tmp_path / "b", params.data, seed=9).ratings
    c = preprocess(tmp_path / "raw", tmp_path / "c", params.data, seed=10).ratings
    assert a.equals(b)
    assert not a.equals(c)


@pytest.mark.parametrize(
    ("dataset", "ratings", "users", "items"),
    [("ml-100k", 100_000, 943, 1_682), ("ml-latest-small", 100_836, 610, 9_742)],
)
def test_real_releases_through_mirror(mirror: Path, tmp_path: Path, dataset, ratings, users, items):
    params = parse_params({"data": {"dataset": dataset, "mirror": str(mirror)}})
    acquire(params.data, params.seed, tmp_path / "raw", tmp_path / "cache")
    prepared = preprocess(tmp_path / "raw" / dataset, tmp_path / "out", params.data, params.seed)
    stats = prepared.stats
    assert (stats["ratings"]["total"], stats["users"], stats["items"]) == (ratings, users, items)
    assert stats["duplicates_dropped"] == 0
    toy = prepared.items.filter(pl.col("title") == "Toy Story (1995)")
    assert toy["year"].item() == 1995
    assert "Animation" in toy["genres"].item()
