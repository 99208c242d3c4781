"""SASRec (Kang & McAuley, 2018): causal self-attention over a user's movies, next movie next.

Each user's training movies, in time order, are one sequence; at every position
the model predicts the following movie with a **full softmax** over the
catalogue (Klenitskiy & Vasilev, 2023: cross-entropy over all movies beats
sampled negatives and BERT4Rec). Output scores reuse the input movie embeddings.
A user's ranking is the state after their last ``max_len`` training movies.
The transformer block is the one BST uses; causality and padding are masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
import torch
from torch import nn

from movierec.config import checks
from movierec.config.params import ConfigError
from movierec.data.processed import Processed
from movierec.errors import DataError
from movierec.models.base import FitContext
from movierec.models.ranking import Ranker
from movierec.models.sequence import AttentionBlock
from movierec.models.torch_base import TorchRecommender
from movierec.train.budget import available_bytes
from movierec.train.trainer import Batch, TrainConfig


@dataclass
class SASRecParams(TrainConfig):
    batch_size: int = 64  # users per step
    epochs: int = 80
    patience: int = 8
    dim: int = 64
    heads: int = 2
    blocks: int = 2
    max_len: int = 50  # latest training movies a user's sequence keeps
    dropout: float = 0.5
    # latest: each user's latest max_len + 1 training movies; all: every training
    # transition, in windows of max_len + 1 (a long history's start too)
    history: Literal["latest", "all"] = "all"

    def validate(self, key: str) -> None:
        super().validate(key)
        if self.dim < 1 or self.blocks < 1 or self.max_len < 2:
            raise ConfigError(
                f"params.yaml: `{key}`: dim and blocks must be at least 1, max_len at least 2"
            )
        if self.heads < 1 or self.dim % self.heads:
            raise ConfigError(f"params.yaml: `{key}.dim` must be divisible by `{key}.heads`")
        checks.fraction(key, dropout=self.dropout)


def _train_in_order(data: Processed) -> tuple[np.ndarray, np.ndarray]:
    """Train's users and movies grouped by user, each user's in time order: read
    from ``ratings.parquet``'s rows, which are in time order per user, so a refit's train
    (val folded in) keeps every user's order."""
    train = data.ratings.filter(pl.col("split") == "train")
    user = train["user"].to_numpy().astype(np.int64)
    order = np.argsort(user, kind="stable")
    return user[order], train["item"].to_numpy().astype(np.int64)[order]


def user_sequences(data: Processed, length: int) -> np.ndarray:
    """``(n_users, length)`` each user's latest ``length`` training movies, oldest first,
    left-padded with ``n_items``: what a user's ranking is read from."""
    user, item = _train_in_order(data)
    out = np.full((data.n_users, length), data.n_items, dtype=np.int64)
    ends = np.searchsorted(user, np.arange(data.n_users), side="right")
    from_end = ends[user] - np.arange(len(user))  # 1 = the user's latest movie
    keep = from_end <= length
    out[user[keep], length - from_end[keep]] = item[keep]
    return out


def training_windows(data: Processed, length: int, history: str = "all") -> np.ndarray:
    """``(windows, length)`` training movies, oldest first, left-padded with ``n_items``.

    ``history="all"``: every training transition of every user, once — each user's movies
    cut from the latest backwards into windows of ``length`` that overlap by one movie
    (the last input of one window is the first of the next). ``"latest"``: only each
    user's latest window, which drops the start of a long history."""
    user, item = _train_in_order(data)
    counts = np.bincount(user, minlength=data.n_users)
    starts = np.cumsum(counts) - counts
    per_user = np.where(counts >= 2, -(-(counts - 1) // (length - 1)), 0)
    if history == "latest":
        per_user = np.minimum(per_user, 1)
    owner = np.repeat(np.arange(data.n_users), per_user)
    back = np.arange(len(owner)) - np.repeat(np.cumsum(per_user) - per_user, per_user)
    ends = starts[owner] + counts[owner] - back * (length - 1)  # exclusive
    index = ends[:, None] - length + np.arange(length)[None, :]
    inside = index >= starts[owner][:, None]
    return np.where(inside, item[np.clip(index, 0, None)], data.n_items)


class SASRecModule(nn.Module):
    def __init__(self, n_items: int, p: SASRecParams) -> None:
        super().__init__()
        self.pad = n_items
        self.item = nn.Embedding(n_items + 1, p.dim, padding_idx=n_items)
        self.position = nn.Embedding(p.max_len, p.dim)
        self.drop = nn.Dropout(p.dropout)
        self.blocks = nn.ModuleList(
            AttentionBlock(p.dim, p.heads, 4 * p.dim, p.dropout) for _ in range(p.blocks)
        )
        nn.init.normal_(self.item.weight, std=0.05)
        with torch.no_grad():
            self.item.weight[n_items].zero_()

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` movie ids -> ``(B, T, dim)`` states; position t sees positions <= t."""
        t = seq.shape[1]
        pos = torch.arange(t, device=seq.device)
        x = self.drop(self.item(seq) * self.item.embedding_dim**0.5 + self.position(pos))
        valid = seq != self.pad
        causal = torch.ones(t, t, dtype=torch.bool, device=seq.device).tril()
        # padding is never a key, except to itself (a query must see something)
        allowed = causal[None] & (
            valid[:, None, :] | torch.eye(t, dtype=torch.bool, device=seq.device)
        )
        for block in self.blocks:
            x = block(x, allowed)
        return x

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.item.weight[: self.pad].T

    def loss(self, batch: Batch) -> torch.Tensor:
        seq = batch["seq"]
        inputs, targets = seq[:, :-1], seq[:, 1:]
        mask = (inputs != self.pad) & (targets != self.pad)
        states = self.encode(inputs)[mask]  # only positions with a movie before and after
        return nn.functional.cross_entropy(self.logits(states).float(), targets[mask])

    def predict(self, batch: Batch) -> torch.Tensor:
        rows = self.score_users(batch, self.pad)
        return rows.gather(1, batch["item"][:, None]).squeeze(1)

    def score_users(self, batch: Batch, n_items: int) -> torch.Tensor:
        return self.logits(self.encode(batch["seq"])[:, -1])


class SASRec(Ranker, TorchRecommender):
    """Next-movie transformer; movie vectors are the (tied) movie embeddings."""

    name = "sasrec"
    needs = ("sequences",)
    provides = frozenset({"movie_vectors"})
    movie_table = "item.weight"

    @classmethod
    def refits(cls) -> bool:
        """Unlike BST's windows, the sequences are read from the rows of train, so a refit
        on train + val has each user's val movie as the latest before test."""
        return True

    def _check_order(self, data: Processed) -> None:
        if not data.meta.get("has_timestamps"):
            raise DataError(
                f"sasrec needs the order of each user's ratings, but {data.meta['dataset']} has "
                "no timestamps; remove sasrec from train.models"
            )

    def build(self, data: Processed) -> nn.Module:
        self._check_order(data)
        self.latest_ = None
        return SASRecModule(data.n_items, self.params)

    def check_memory(self, n_items: int, free: int | None) -> None:
        """Refuse a batch whose full softmax cannot fit before the first step runs out of
        memory: each position's logits over the catalogue are kept three times (scores,
        log-probabilities, their gradient), 12 bytes a movie."""
        p = self.params
        per_user = p.max_len * (n_items + 1) * 12
        if free is None or p.batch_size * per_user <= 0.8 * free:
            return
        fits = int(0.8 * free // per_user)
        way = (
            f"set `models.sasrec.batch_size` to {fits} or less"
            if fits >= 1
            else "lower `models.sasrec.max_len` or train on a GPU with more memory"
        )
        raise ConfigError(
            f"sasrec: a training step's full softmax needs up to "
            f"{p.batch_size * per_user / 2**30:.1f} GiB ({p.batch_size} users x {p.max_len} "
            f"positions x {n_items + 1:,} movies x 12 bytes), more than the "
            f"{free / 2**30:.1f} GiB free; {way}"
        )

    def train_inputs(self, data: Processed) -> dict[str, torch.Tensor]:
        self.check_memory(data.n_items, available_bytes(str(self.device_)))
        # max_len inputs plus the movie each one predicts; users with fewer than 2 movies teach nothing
        seq = training_windows(data, self.params.max_len + 1, self.params.history)
        return {"seq": torch.from_numpy(seq)}

    def validation(self, data: Processed, ctx: FitContext):
        return ctx.ranking_validation(self, data)

    def user_batch(self, users: torch.Tensor) -> dict[str, torch.Tensor]:
        if getattr(self, "latest_", None) is None:
            latest = user_sequences(self.data_, self.params.max_len)
            self.latest_ = torch.from_numpy(latest).to(self.device_)
        return {"seq": self.latest_[users]}

    def movie_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        table, rated = super().movie_vectors()
        return table[: self.data_.n_items], rated  # the last row is padding

    def set_state(self, state, data: Processed) -> None:
        self.latest_ = None
        super().set_state(state, data)
