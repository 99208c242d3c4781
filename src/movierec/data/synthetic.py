"""Deterministic synthetic MovieLens-like data with planted structure.

Ratings are ``mu + b_user + b_item + <p_user, q_item> + noise``, clipped to 1..5
and rounded to ``rating_step``: a known low-rank truth that models must recover.
Movies get genres tied to their latent factors and a release year; users get
demographics; every rating gets a timestamp. The same frames can be written in
any official release's native layout, so every parser is tested offline.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from movierec.config.params import SyntheticData
from movierec.errors import ConfigError

GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
AGE_BUCKETS_1M = (1, 18, 25, 35, 45, 50, 56)
MU = 3.6
START = 946_684_800  # 2000-01-01


@dataclass
class SyntheticSet:
    """Generated frames plus the planted truth (for tests of model recovery)."""

    ratings: pl.DataFrame  # user_id, item_id, rating, timestamp
    items: pl.DataFrame  # item_id, title, genres (list[str]), year
    users: pl.DataFrame  # user_id, gender, age, occupation, zip
    expected: np.ndarray  # noise-free rating of each row, clipped to 1..5
    noise: float


def generate(cfg: SyntheticData, seed: int) -> SyntheticSet:
    """Generate ``cfg.n_ratings`` distinct (user, item) ratings, deterministically from ``seed``."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n = cfg.n_users, cfg.n_items, cfg.n_ratings
    scale = (0.5 / cfg.rank) ** 0.25 * cfg.spread**0.5  # <p, q> has std ~0.7 * spread
    p = rng.normal(0.0, scale, (n_users, cfg.rank)).astype(np.float32)
    q = rng.normal(0.0, scale, (n_items, cfg.rank)).astype(np.float32)
    b_user = rng.normal(0.0, 0.3 * cfg.spread, n_users).astype(np.float32)
    b_item = rng.normal(0.0, 0.35 * cfg.spread, n_items).astype(np.float32)

    # Long-tailed activity and popularity, like the real releases.
    user_w = rng.lognormal(0.0, 1.0, n_users)
    item_w = 1.0 / (rng.permutation(n_items) + 10.0) ** 0.8
    user_w /= user_w.sum()
    item_w /= item_w.sum()
    codes = np.empty(0, dtype=np.int64)
    while codes.size < n:
        draw = int((n - codes.size) * 1.3) + 1000
        users = rng.choice(n_users, size=draw, p=user_w)
        items = rng.choice(n_items, size=draw, p=item_w)
        codes = np.unique(np.concatenate([codes, users.astype(np.int64) * n_items + items]))
    codes = np.sort(rng.choice(codes, size=n, replace=False))
    user = (codes // n_items).astype(np.int32)
    item = (codes % n_items).astype(np.int32)
    del codes

    expected = np.empty(n, dtype=np.float32)
    for start in range(0, n, 1 << 20):
        sl = slice(start, start + (1 << 20))
        u, i = user[sl], item[sl]
        expected[sl] = MU + b_user[u] + b_item[i] + np.einsum("ij,ij->i", p[u], q[i])
    np.clip(expected, 1.0, 5.0, out=expected)
    rating = expected + rng.normal(0.0, cfg.noise, n).astype(np.float32)
    if cfg.rating_step > 0:
        rating = np.round(rating / cfg.rating_step) * cfg.rating_step
    np.clip(rating, 1.0, 5.0, out=rating)

    # Timestamps: each user rates from a random start with exponential gaps, and the
    # order in which a user rated movies is random (rows are grouped by user).
    user_start = rng.integers(START, START + 15 * 365 * 86400, n_users)
    gaps = rng.exponential(86400.0, n).astype(np.int64) + 1
    counts = np.bincount(user, minlength=n_users)
    cum = np.cumsum(gaps)
    ends = np.cumsum(counts)
    before = np.concatenate([[0], cum[ends[:-1] - 1]]) if n_users > 1 else np.zeros(1, np.int64)
    before = np.where(counts > 0, before, 0)
    within = cum - np.repeat(before, counts)
    perm = np.lexsort((rng.random(n), user))
    timestamp = np.empty(n, dtype=np.int64)
    timestamp[perm] = np.repeat(user_start, counts) + within

    genre_dirs = rng.normal(size=(cfg.rank, len(GENRES_100K) - 1))
    genre_score = q @ genre_dirs
    ranked = np.argsort(-genre_score, axis=1)
    second = rng.random(n_items) < 0.4
    genres = [
        [GENRES_100K[1 + ranked[j, 0]]] + ([GENRES_100K[1 + ranked[j, 1]]] if second[j] else [])
        for j in range(n_items)
    ]
    year = np.clip(2000 - rng.gamma(2.0, 8.0, n_items).astype(int), 1920, 2000)

    items = pl.DataFrame(
        {
            "item_id": np.arange(1, n_items + 1, dtype=np.int64),
            "title": [f"Synthetic Movie {j + 1} ({year[j]})" for j in range(n_items)],
            "genres": genres,
            "year": year.astype(np.int32),
        }
    )
    users = pl.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1, dtype=np.int64),
            "gender": np.where(rng.random(n_users) < 0.7, "M", "F"),
            "age": rng.integers(7, 74, n_users).astype(np.int32),
            "occupation": np.array(OCCUPATIONS)[rng.integers(0, len(OCCUPATIONS), n_users)],
            "zip": [f"{z:05d}" for z in rng.integers(0, 100_000, n_users)],
        }
    )
    ratings = pl.DataFrame(
        {
            "user_id": user.astype(np.int64) + 1,
            "item_id": item.astype(np.int64) + 1,
            "rating": rating.astype(np.float32),
            "timestamp": timestamp,
        }
    )
    return SyntheticSet(ratings, items, users, expected, cfg.noise)


def write_custom(data: SyntheticSet, folder: Path, fmt: str = "parquet") -> None:
    """Write the ``custom`` layout: ratings / items / users as parquet or CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    items = data.items.select("item_id", "title", pl.col("genres").list.join("|"))
    for name, frame in (("ratings", data.ratings), ("items", items), ("users", data.users)):
        if fmt == "parquet":
            frame.write_parquet(folder / f"{name}.parquet")
        else:
            frame.write_csv(folder / f"{name}.csv")


def _integer_ratings(data: SyntheticSet) -> pl.DataFrame:
    return data.ratings.with_columns(pl.col("rating").round(0).clip(1, 5).cast(pl.Int32))


def write_native(data: SyntheticSet, release: str, folder: Path) -> None:
    """Write ``data`` in the native file layout of an official release."""
    folder.mkdir(parents=True, exist_ok=True)
    if release == "ml-100k":
        _write_100k(data, folder)
    elif release in ("ml-1m", "ml-10m"):
        _write_dat(data, folder, with_users=release == "ml-1m")
    elif release in ("ml-20m", "ml-25m", "ml-32m", "ml-latest-small"):
        _write_csv_release(data, folder)
    else:
        raise ConfigError(f"no native layout for {release!r}")


def _write_100k(data: SyntheticSet, folder: Path) -> None:
    r = _integer_ratings(data)
    lines = [f"{u}\t{i}\t{x}\t{t}" for u, i, x, t in r.iter_rows()]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    # Official-style folds: u1..u5 hold disjoint fifths of the ratings, ua/ub a tenth each.
    fold_of = np.random.default_rng(0).permutation(len(lines)) % 5
    tenth = np.random.default_rng(1).permutation(len(lines)) % 10
    tests = {f"u{f + 1}": fold_of == f for f in range(5)} | {"ua": tenth == 0, "ub": tenth == 1}
    for name, in_test in tests.items():
        for part, rows in (("base", ~in_test), ("test", in_test)):
            chosen = [line for line, keep in zip(lines, rows, strict=True) if keep]
            (folder / f"{name}.{part}").write_text("\n".join(chosen) + "\n")
    rows = []
    for item_id, title, genres, _year in data.items.iter_rows():
        flags = "|".join("1" if g in genres else "0" for g in GENRES_100K)
        rows.append(f"{item_id}|{title}|01-Jan-{_year}||http://example.org/{item_id}|{flags}")
    (folder / "u.item").write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    (folder / "u.genre").write_text("".join(f"{g}|{k}\n" for k, g in enumerate(GENRES_100K)) + "\n")
    users = [f"{u}|{a}|{g}|{o}|{z}" for u, g, a, o, z in data.users.iter_rows()]
    (folder / "u.user").write_text("\n".join(users) + "\n")


def _write_dat(data: SyntheticSet, folder: Path, with_users: bool) -> None:
    r = _integer_ratings(data) if with_users else data.ratings
    fmt = "{:d}" if with_users else "{:g}"
    lines = [f"{u}::{i}::{fmt.format(x)}::{t}" for u, i, x, t in r.iter_rows()]
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    movies = [f"{i}::{t}::{'|'.join(g)}" for i, t, g, _ in data.items.iter_rows()]
    (folder / "movies.dat").write_bytes(("\n".join(movies) + "\n").encode("latin-1"))
    if with_users:
        buckets = np.array(AGE_BUCKETS_1M)
        users = []
        for u, g, a, o, z in data.users.iter_rows():
            age = int(buckets[np.searchsorted(buckets, a, side="right") - 1])
            users.append(f"{u}::{g}::{age}::{OCCUPATIONS.index(o)}::{z}")
        (folder / "users.dat").write_text("\n".join(users) + "\n")


def _write_csv_release(data: SyntheticSet, folder: Path) -> None:
    data.ratings.rename({"user_id": "userId", "item_id": "movieId"}).write_csv(
        folder / "ratings.csv", float_precision=1
    )
    with open(folder / "movies.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["movieId", "title", "genres"])
        for item_id, title, genres, _ in data.items.iter_rows():
            writer.writerow([item_id, title, "|".join(genres) or "(no genres listed)"])
