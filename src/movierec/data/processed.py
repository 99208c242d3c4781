"""Read the ``data/processed`` contract back for training and evaluation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from movierec.data.matrices import load_matrices
from movierec.errors import DataError
from movierec.store.files import reading
from movierec.store.paths import PROCESSED


@dataclass
class SplitArrays:
    """Rating triples of one split as numpy arrays."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray

    def __len__(self) -> int:
        return int(self.user.shape[0])


@dataclass
class Processed:
    """Everything the models read, loaded once."""

    folder: Path
    meta: dict[str, Any]
    ratings: pl.DataFrame
    splits: dict[str, SplitArrays] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.meta["n_users"])

    @property
    def n_items(self) -> int:
        return int(self.meta["n_items"])

    @property
    def rating_range(self) -> tuple[float, float]:
        return float(self.meta["rating_min"]), float(self.meta["rating_max"])

    @property
    def rating_levels(self) -> np.ndarray:
        levels = self.meta.get("rating_levels") or []
        if not levels:
            lo, hi = self.rating_range
            levels = list(np.arange(lo, hi + 0.25, 0.5))
        return np.asarray(levels, dtype=np.float32)

    @cached_property
    def matrices(self) -> dict[str, sp.csr_matrix]:
        return load_matrices(self.folder / "matrices.npz")

    @cached_property
    def users(self) -> pl.DataFrame:
        with reading(self.folder / "users.parquet") as path:
            return pl.read_parquet(path)

    @cached_property
    def items(self) -> pl.DataFrame:
        with reading(self.folder / "items.parquet") as path:
            return pl.read_parquet(path)

    @cached_property
    def sequences(self) -> dict[str, np.ndarray]:
        with reading(self.folder / "sequences.npz") as path, np.load(path) as f:
            return {k: f[k] for k in f.files}

    def fingerprint(self) -> dict[str, Any]:
        """What a model's state and scores are shaped by: using them on other data is refused."""
        keys = ("dataset", "n_users", "n_items", "n_ratings", "seed", "split", "rows_sha256")
        return {k: self.meta.get(k) for k in keys}

    def seen(self, splits: tuple[str, ...] = ("train", "val")) -> sp.csr_matrix:
        """Binary user x item matrix of the ratings in ``splits`` (excluded from top-N)."""
        total = sum((self.matrices[s] for s in splits), sp.csr_matrix((self.n_users, self.n_items)))
        total = sp.csr_matrix(total, dtype=np.float32)
        total.data[:] = 1.0
        return total

    def for_training(self) -> Processed:
        """The same data with the test split removed: what ``fit`` may see.

        Test ratings reach only evaluation; a model that reaches for them during
        training fails with a KeyError instead of silently learning from them.
        """
        return TrainingData(
            self.folder,
            self.meta,
            self.ratings.filter(pl.col("split") != "test"),
            {k: v for k, v in self.splits.items() if k != "test"},
        )

    def with_val_in_train(self) -> Processed:
        """The same data with val folded into train and val left empty: what a refit
        (``train.refit``) trains on, and the data it is scored with on test.

        The epochs come from the fit on train alone, selected on val, so nothing here
        needs val any more; test stays where it is, out of reach of ``for_training``.
        Built once per data: evaluation and the blend's members all score with it."""
        if "_val_in_train" not in self.__dict__:
            self.__dict__["_val_in_train"] = ValInTrain.of(self)
        return self.__dict__["_val_in_train"]


class ValInTrain(Processed):
    """:class:`Processed` with the val ratings moved into train (see ``with_val_in_train``)."""

    merged: dict[str, sp.csr_matrix]

    @classmethod
    def of(cls, data: Processed) -> ValInTrain:
        train, val = data.splits["train"], data.splits["val"]
        splits = dict(data.splits)
        splits["train"] = SplitArrays(
            *(
                np.concatenate([getattr(train, f), getattr(val, f)])
                for f in ("user", "item", "rating")
            )
        )
        splits["val"] = SplitArrays(val.user[:0], val.item[:0], val.rating[:0])
        ratings = data.ratings.with_columns(
            pl.when(pl.col("split") == "val")
            .then(pl.lit("train"))
            .otherwise(pl.col("split"))
            .alias("split")
        )
        merged = cls(data.folder, data.meta, ratings, splits)
        matrices = dict(data.matrices)
        merged.merged = matrices | {
            "train": sp.csr_matrix(matrices["train"] + matrices["val"]),
            "val": sp.csr_matrix(matrices["val"].shape, dtype=matrices["val"].dtype),
        }
        return merged

    @property  # type: ignore[override]
    def matrices(self) -> dict[str, sp.csr_matrix]:
        return self.merged

    @property  # type: ignore[override]
    def sequences(self) -> dict[str, np.ndarray]:
        raise DataError(
            "train.refit: the history windows are cut per split, so the sequence families "
            "are not refitted on train + val"
        )

    def for_training(self) -> Processed:
        data = ValInTrain(
            self.folder,
            self.meta,
            self.ratings.filter(pl.col("split") != "test"),
            {k: v for k, v in self.splits.items() if k != "test"},
        )
        data.merged = {k: v for k, v in self.merged.items() if k != "test"}
        return data


class TrainingData(Processed):
    """:class:`Processed` without the test split (matrices, sequences and rows)."""

    @cached_property
    def matrices(self) -> dict[str, sp.csr_matrix]:
        return {k: v for k, v in load_matrices(self.folder / "matrices.npz").items() if k != "test"}

    @cached_property
    def sequences(self) -> dict[str, np.ndarray]:
        with reading(self.folder / "sequences.npz") as path, np.load(path) as f:
            return {k: f[k] for k in f.files if not k.startswith("test_")}


def load_processed(folder: str | Path = PROCESSED) -> Processed:
    """Load ``data/processed``; a missing folder gets a message saying which stage to run."""
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise DataError(f"{folder}: no processed data; run `dvc repro preprocess` first")
    with reading(folder / "meta.json") as path:
        meta = json.loads(path.read_text())
    with reading(folder / "ratings.parquet") as path:
        ratings = pl.read_parquet(path)
    splits = {}
    for name in ("train", "val", "test"):
        part = ratings.filter(pl.col("split") == name)
        splits[name] = SplitArrays(
            part["user"].to_numpy().astype(np.int64),
            part["item"].to_numpy().astype(np.int64),
            part["rating"].to_numpy().astype(np.float32),
        )
    return Processed(folder, meta, ratings, splits)
