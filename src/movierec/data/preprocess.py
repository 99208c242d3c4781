"""Turn a raw release folder into the ``data/processed/`` contract.

Outputs (all written into a temporary folder that replaces ``data/processed`` only
when everything succeeded):

- ``ratings.parquet``: user, item (contiguous int32 ids), rating (float32),
  timestamp (int64, null without timestamps), split (train / val / test); rows
  grouped by user in time order (random order without timestamps).
- ``users.parquet``: user, user_id (original) and demographics where known.
- ``items.parquet``: item, movie_id (original), title, year, genres (list).
- ``matrices.npz``: CSR user x item rating matrices per split (see :mod:`.matrices`).
- ``sequences.npz``: per split, history windows of earlier training ratings.
- ``meta.json``: sizes, rating levels, which inputs exist.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from movierec.config.params import DataParams
from movierec.data.matrices import save_matrices
from movierec.data.parse import RawData, parse_release, read_official_fold
from movierec.data.sequences import history_windows
from movierec.data.split import (
    SPLIT_NAMES,
    split_holdout,
    split_leave_last,
    split_official,
    split_users,
    user_order,
)
from movierec.errors import DataError
from movierec.store.files import atomic_dir


@dataclass
class Prepared:
    """A reindexed, split data set, ready to write."""

    ratings: pl.DataFrame
    users: pl.DataFrame
    items: pl.DataFrame
    meta: dict[str, Any]
    stats: dict[str, Any]


def resolve_duplicates(ratings: pl.DataFrame, policy: str, source: str) -> tuple[pl.DataFrame, int]:
    """Apply the duplicate (user, item) policy; return the frame and the rows dropped."""
    counts = ratings.group_by("user_id", "item_id").len().filter(pl.col("len") > 1)
    if counts.height == 0:
        return ratings, 0
    dropped = int(counts["len"].sum() - counts.height)
    if policy == "error":
        first = counts.row(0, named=True)
        raise DataError(
            f"{source}: user {first['user_id']} rated movie {first['item_id']} {first['len']} times "
            f"({counts.height} duplicated pairs in all); set data.duplicates to last or mean to resolve them"
        )
    indexed = ratings.with_row_index("_row")
    if policy == "mean":
        out = indexed.group_by("user_id", "item_id").agg(
            pl.col("rating").mean().cast(pl.Float32),
            pl.col("timestamp").max(),
            pl.col("_row").min(),
        )
    else:  # last: the latest rating wins (by time, then by file order)
        out = (
            indexed.sort("timestamp", "_row", nulls_last=False)
            .group_by("user_id", "item_id")
            .last()
        )
    out = out.sort("_row").drop("_row").select(ratings.columns)
    return out, dropped


def _official_test_rows(
    ratings: pl.DataFrame, fold: tuple[pl.DataFrame, pl.DataFrame], name: str, dataset: str
) -> np.ndarray:
    """Which rating rows are in the fold's test file, after checking that the fold's base and
    test files partition the ratings exactly."""
    base, test = fold
    keys = ["user_id", "item_id"]
    marked = ratings.select(keys).join(
        test.with_columns(pl.lit(True).alias("_test")), on=keys, how="left", maintain_order="left"
    )
    in_test = marked["_test"].is_not_null().to_numpy()
    if (
        marked.height != ratings.height
        or int(in_test.sum()) != test.height
        or (base.height + test.height != ratings.height)
    ):
        raise DataError(
            f"{dataset}: the official fold {name} ({base.height:,} base + {test.height:,} test "
            f"ratings) does not partition the {ratings.height:,} ratings; the release files are "
            "not the published ones: run `dvc repro -f download`"
        )
    return in_test


def assign_splits(
    ratings: pl.DataFrame,
    user: np.ndarray,
    timestamp: np.ndarray | None,
    params: DataParams,
    seed: int,
    fold: tuple[pl.DataFrame, pl.DataFrame] | None = None,
) -> np.ndarray:
    """A split code per rating row under ``data.split.strategy``."""
    sp = params.split
    if sp.strategy in ("temporal", "leave_last") and timestamp is None:
        raise DataError(
            f"{params.dataset}: data.split.strategy is {sp.strategy}, but the data set has no "
            "timestamps; use random or holdout"
        )
    if sp.strategy == "official":
        if fold is None:
            raise DataError(f"{params.dataset}: data.split.strategy is official, but no fold given")
        in_test = _official_test_rows(ratings, fold, sp.fold, params.dataset)
        return split_official(
            user, in_test, val_share=sp.val_share, seed=seed, min_user_ratings=sp.min_user_ratings
        )
    if sp.strategy == "holdout":
        return split_holdout(len(user), test_share=sp.test_share, val_share=sp.val_share, seed=seed)
    if sp.strategy == "leave_last":
        return split_leave_last(user, timestamp, seed=seed, min_user_ratings=sp.min_user_ratings)
    return split_users(
        user,
        ratios=sp.ratios,
        seed=seed,
        strategy=sp.strategy,
        timestamp=timestamp,
        min_user_ratings=sp.min_user_ratings,
    )


def prepare(
    raw: RawData,
    params: DataParams,
    seed: int,
    dataset: str,
    fold: tuple[pl.DataFrame, pl.DataFrame] | None = None,
) -> Prepared:
    """Reindex ids, resolve duplicates and split (``fold``: the official fold's base and test
    pairs, for ``data.split.strategy: official``)."""
    ratings, dropped = resolve_duplicates(raw.ratings, params.duplicates, dataset)
    for frame, column, what in ((raw.items, "item_id", "items"), (raw.users, "user_id", "users")):
        if frame is not None and frame.height and frame[column].is_duplicated().any():
            first = frame.filter(frame[column].is_duplicated())[column][0]
            raise DataError(
                f"{dataset}: {what} list {column} {first} more than once; each id needs one row"
            )
    user_ids = ratings["user_id"].unique().sort()
    catalogue = raw.items["item_id"] if raw.items.height else ratings["item_id"].head(0)
    item_ids = (
        pl.concat([catalogue.cast(ratings["item_id"].dtype), ratings["item_id"]]).unique().sort()
    )
    user_map = pl.DataFrame({"user_id": user_ids, "user": np.arange(len(user_ids), dtype=np.int32)})
    item_map = pl.DataFrame({"item_id": item_ids, "item": np.arange(len(item_ids), dtype=np.int32)})
    ratings = ratings.join(user_map, on="user_id", how="left", maintain_order="left").join(
        item_map, on="item_id", how="left", maintain_order="left"
    )
    user = ratings["user"].to_numpy()
    ts = ratings["timestamp"].to_numpy() if raw.has_timestamps else None
    split = assign_splits(ratings, user, ts, params, seed, fold)
    counts = np.bincount(split, minlength=len(SPLIT_NAMES))
    empty = [name for name, n in zip(SPLIT_NAMES, counts, strict=True) if n == 0]
    if empty:
        eligible = int((np.bincount(user) >= params.split.min_user_ratings).sum())
        raise DataError(
            f"{dataset}: the {empty[0]} split would be empty ({len(ratings):,} ratings, "
            f"{eligible} users with at least data.split.min_user_ratings="
            f"{params.split.min_user_ratings}); every split needs ratings: use more data or "
            "lower data.split.min_user_ratings"
        )
    key = np.random.default_rng(seed + 1).random(len(user))
    order = user_order(user, key, ts)
    names = np.array(SPLIT_NAMES)
    out = pl.DataFrame(
        {
            "user": user[order],
            "item": ratings["item"].to_numpy()[order],
            "rating": ratings["rating"].to_numpy()[order].astype(np.float32),
            "timestamp": ratings["timestamp"].cast(pl.Int64).to_numpy()[order]
            if ts is not None
            else None,
            "split": names[split[order]],
        },
        schema={
            "user": pl.Int32,
            "item": pl.Int32,
            "rating": pl.Float32,
            "timestamp": pl.Int64,
            "split": pl.String,
        },
    )

    users = user_map.select("user", "user_id")
    has_demo = raw.users is not None
    if raw.users is not None:
        demo = raw.users.unique("user_id", keep="first").with_columns(
            pl.col("user_id").cast(users["user_id"].dtype)
        )
        users = users.join(demo, on="user_id", how="left", maintain_order="left")
    items = item_map.join(
        raw.items.with_columns(pl.col("item_id").cast(item_map["item_id"].dtype)),
        on="item_id",
        how="left",
        maintain_order="left",
    )
    items = items.select(
        "item",
        pl.col("item_id").alias("movie_id"),
        pl.col("title").fill_null(pl.format("movie {}", pl.col("item_id"))),
        pl.col("year").cast(pl.Int32),
        pl.col("genres").fill_null(pl.lit([], dtype=pl.List(pl.String))),
    )

    levels = np.unique(out["rating"].to_numpy())
    n_users, n_items = users.height, items.height
    per_split = {s: int((out["split"] == s).sum()) for s in SPLIT_NAMES}
    hist = out.group_by("rating").len().sort("rating")
    meta = {
        "dataset": dataset,
        "n_users": n_users,
        "n_items": n_items,
        "n_ratings": out.height,
        "rating_levels": [float(x) for x in levels] if len(levels) <= 20 else [],
        "rating_min": float(levels.min()),
        "rating_max": float(levels.max()),
        "has_timestamps": raw.has_timestamps,
        "has_demographics": has_demo,
        "demographics": [c for c in users.columns if c not in ("user", "user_id")],
        "seed": seed,
        "split": params.split.record(),
        "rows_sha256": rows_digest(out),
        "sequences": {"length": params.sequences.length, "pad_item": params.sequences.pad_item},
    }
    stats = {
        "dataset": dataset,
        "split": params.split.record() | {"description": params.split.describe()},
        "users": n_users,
        "items": n_items,
        "rated_items": int(out["item"].n_unique()),
        "ratings": {"total": out.height, **per_split},
        "density": out.height / (n_users * n_items),
        "mean_rating": float(out["rating"].mean()),
        "rating_histogram": {f"{r:g}": int(c) for r, c in hist.iter_rows()},
        "duplicates_dropped": dropped,
        "users_only_in_train": int(
            out.group_by("user")
            .agg((pl.col("split") != "train").sum().alias("n"))
            .filter(pl.col("n") == 0)
            .height
        ),
        "has_timestamps": raw.has_timestamps,
    }
    return Prepared(out, users, items, meta, stats)


def rows_digest(ratings: pl.DataFrame) -> str:
    """Which ratings went to which split, as one digest: a model records it, so one
    trained on another split (whose training rows may be today's test rows) is refused."""
    digest = hashlib.sha256()
    for column in ("user", "item", "rating"):
        digest.update(np.ascontiguousarray(ratings[column].to_numpy()).tobytes())
    digest.update("\n".join(ratings["split"].to_list()).encode())
    return digest.hexdigest()


def write_sequences(path: Path, ratings: pl.DataFrame, meta: dict[str, Any]) -> None:
    """Write ``sequences.npz`` (or an 'unavailable' marker for data without timestamps)."""
    seq = meta["sequences"]
    if not meta["has_timestamps"]:
        np.savez(
            path,
            available=np.array(False),
            reason=np.array("the data set has no timestamps, so ratings have no order"),
            length=np.array(seq["length"]),
            pad_item=np.array(seq["pad_item"]),
        )
        return
    user = ratings["user"].to_numpy()
    item = ratings["item"].to_numpy()
    rating = ratings["rating"].to_numpy()
    split = (
        ratings["split"]
        .replace_strict({s: i for i, s in enumerate(SPLIT_NAMES)}, return_dtype=pl.Int8)
        .to_numpy()
    )
    order = np.arange(len(user))  # ratings.parquet is already grouped by user in time order
    h_items, h_ratings, h_len = history_windows(
        user, item, rating, split, order, seq["length"], seq["pad_item"]
    )
    arrays: dict[str, np.ndarray] = {
        "available": np.array(True),
        "length": np.array(seq["length"]),
        "pad_item": np.array(seq["pad_item"]),
    }
    for code, name in enumerate(SPLIT_NAMES):
        rows = split == code
        arrays[f"{name}_user"] = user[rows]
        arrays[f"{name}_item"] = item[rows]
        arrays[f"{name}_rating"] = rating[rows]
        arrays[f"{name}_hist_items"] = h_items[rows]
        arrays[f"{name}_hist_ratings"] = h_ratings[rows]
        arrays[f"{name}_hist_len"] = h_len[rows]
    np.savez(path, **arrays)


def write_processed(prepared: Prepared, out_dir: Path) -> None:
    """Write every contract file into ``out_dir`` as one atomic swap."""
    with atomic_dir(out_dir) as tmp:
        prepared.ratings.write_parquet(tmp / "ratings.parquet")
        prepared.users.write_parquet(tmp / "users.parquet")
        prepared.items.write_parquet(tmp / "items.parquet")
        save_matrices(
            tmp / "matrices.npz",
            prepared.ratings,
            prepared.meta["n_users"],
            prepared.meta["n_items"],
        )
        write_sequences(tmp / "sequences.npz", prepared.ratings, prepared.meta)
        (tmp / "meta.json").write_text(json.dumps(prepared.meta, indent=2, sort_keys=True) + "\n")


def preprocess(raw_dir: Path, out_dir: Path, params: DataParams, seed: int) -> Prepared:
    """Parse, prepare and write; nothing is written unless every step succeeded."""
    raw = parse_release(raw_dir, params.dataset)
    fold = None
    if params.split.strategy == "official":
        fold = read_official_fold(raw_dir, params.dataset, params.split.fold)
    prepared = prepare(raw, params, seed, params.dataset, fold)
    write_processed(prepared, out_dir)
    return prepared
