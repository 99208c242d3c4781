"""AutoRec family: item- and user-based AutoRec and a deep autoencoder over user vectors.

Each model reconstructs rows of the sparse training matrix (a movie's vector of
user ratings for I-AutoRec, a user's vector of movie ratings for U-AutoRec and
Deep AutoRec). The loss counts observed cells only (masked MSE), so what the
input holds in unobserved cells (``fill``: 0 or the user's mean) never leaks into
the objective. Rows are densified a batch at a time from CSR arrays kept on the
device: no dense copy of the whole matrix is ever made. A (user, movie) rating is
read off the reconstructed row, clipped to the rating range; users or movies
with no training ratings get the bias baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from movierec.config import checks
from movierec.config.params import ConfigError
from movierec.data.processed import Processed
from movierec.errors import MovierecError
from movierec.models.base import FitContext, FitReport
from movierec.models.classic import Baseline, fit_baseline, folded_baseline
from movierec.models.torch_base import TorchRecommender
from movierec.train.trainer import Optimizer, Schedule, TrainConfig

Batch = dict[str, torch.Tensor]
Activation = Literal["sigmoid", "identity", "selu", "elu", "relu", "lrelu", "tanh"]
ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
    "selu": nn.SELU,
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "lrelu": nn.LeakyReLU,
    "tanh": nn.Tanh,
}


@dataclass
class AutoRecParams(TrainConfig):
    hidden: list[int] = field(default_factory=lambda: [500])
    activation: Activation = "sigmoid"
    output_activation: Activation = "identity"
    code_dropout: float = 0.0  # dropout on the middle layer (the code)
    fill: Literal["zero", "user_mean"] = "zero"
    noise: Literal["none", "gaussian", "dropout"] = "none"
    noise_factor: float = 0.0
    demographics: bool = False  # user-based models: concatenate one-hot gender / age / occupation
    refeed: bool = False  # dense re-feeding (Kuchaiev & Ginsburg 2017)
    subset: dict[str, str] = field(default_factory=dict)  # e.g. {gender: M, age: "18-24"}
    optimizer: Optimizer = "adam"
    lr: float = 0.001
    weight_decay: float = 0.001
    schedule: Schedule = "constant"
    batch_size: int = 256
    epochs: int = 100
    patience: int = 10

    def validate(self, key: str) -> None:
        super().validate(key)
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"params.yaml: `{key}.hidden` must list positive layer sizes")
        checks.fraction(key, code_dropout=self.code_dropout)
        if self.noise_factor < 0 or (self.noise == "dropout" and self.noise_factor >= 1):
            raise ConfigError(
                f"params.yaml: `{key}.noise_factor` must be >= 0 (and < 1 for dropout noise)"
            )


def masked_mse(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over observed cells only: unobserved cells carry no signal."""
    m = mask.float()
    return ((out - target) ** 2 * m).sum() / m.sum().clamp_min(1.0)


def dense_rows(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    values: torch.Tensor,
    rows: torch.Tensor,
    n_cols: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense ``(len(rows), n_cols)`` values and observed-mask of CSR rows, with tensor ops only."""
    starts, counts = indptr[rows], indptr[rows + 1] - indptr[rows]
    which = torch.repeat_interleave(torch.arange(rows.shape[0], device=rows.device), counts)
    offsets = torch.cumsum(counts, 0) - counts
    pos = starts[which] + torch.arange(which.shape[0], device=rows.device) - offsets[which]
    dense = torch.zeros((rows.shape[0], n_cols), device=values.device)
    mask = torch.zeros((rows.shape[0], n_cols), dtype=torch.bool, device=values.device)
    cols = indices[pos]
    dense[which, cols] = values[pos]
    mask[which, cols] = True
    return dense, mask


class AutoEncoder(nn.Module):
    """Rows of a sparse matrix -> encoder -> code (dropout) -> decoder -> reconstruction."""

    def __init__(
        self,
        matrix: sp.csr_matrix,
        fill: torch.Tensor | None,
        side: torch.Tensor | None,
        params: AutoRecParams,
        user_rows: bool,
    ) -> None:
        super().__init__()
        self.params = params
        self.user_rows = user_rows  # rows are users (U-AutoRec, deep) or items (I-AutoRec)
        self.n_rows, self.n_cols = matrix.shape
        self.register_buffer("indptr", torch.from_numpy(matrix.indptr.astype(np.int64)))
        self.register_buffer("indices", torch.from_numpy(matrix.indices.astype(np.int64)))
        self.register_buffer("values", torch.from_numpy(matrix.data.astype(np.float32)))
        # fill: per-row (user rows) or per-column (item rows) value of unobserved cells
        self.register_buffer("fill", fill if fill is not None else torch.zeros(0))
        self.register_buffer("side", side if side is not None else torch.zeros((0, 0)))
        act = ACTIVATIONS[params.activation]
        widths = [self.n_cols + self.side.shape[1], *params.hidden]
        layers: list[nn.Module] = []
        middle = len(params.hidden) // 2
        for k, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers += [self.linear(a, b), act()]
            if k == middle and params.code_dropout > 0:
                layers.append(nn.Dropout(params.code_dropout))
        self.encoder = nn.Sequential(*layers)
        self.decoder = self.linear(widths[-1], self.n_cols)
        self.out_act = ACTIVATIONS[params.output_activation]()

    def linear(self, n_in: int, n_out: int) -> nn.Module:
        """A dense layer (``weight`` as ``(n_out, n_in)``, ``bias``); variants mask it."""
        return nn.Linear(n_in, n_out)

    def score_users(self, batch: Batch, n_items: int, block: int = 4096) -> torch.Tensor:
        """Full rows: user rows are reconstructed directly; with movie rows every movie is
        encoded once and only these users' decoder columns are applied."""
        users = batch["user"]
        if self.user_rows:
            return self.reconstruct(users)
        items = torch.arange(n_items, device=users.device)
        codes = torch.cat(
            [
                self.encoder(self._input(*self.rows(items[s : s + block]), items[s : s + block]))
                for s in range(0, n_items, block)
            ]
        )
        return self.out_act(codes @ self.decoder.weight[users].T + self.decoder.bias[users]).T

    def rows(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return dense_rows(self.indptr, self.indices, self.values, index, self.n_cols)

    def _input(self, dense: torch.Tensor, mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        x = dense
        if self.fill.numel():
            fill = self.fill[index][:, None] if self.user_rows else self.fill[None, :]
            x = torch.where(mask, dense, fill)
        if self.side.numel():
            x = torch.cat([x, self.side[index]], dim=1)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_act(self.decoder(self.encoder(x)))

    def reconstruct(self, index: torch.Tensor) -> torch.Tensor:
        dense, mask = self.rows(index)
        return self(self._input(dense, mask, index))

    def loss(self, batch: Batch) -> torch.Tensor:
        index = batch["row"]
        dense, mask = self.rows(index)
        x = self._input(dense, mask, index)
        p = self.params
        if p.noise == "gaussian" and p.noise_factor > 0:
            x = x + p.noise_factor * torch.randn_like(x)
        elif p.noise == "dropout" and p.noise_factor > 0:
            x = F.dropout(x, p.noise_factor)
        out = self(x)
        loss = masked_mse(out, dense, mask)
        if p.refeed:  # the reconstruction is a dense, valid input whose reconstruction is itself
            again = out.detach()
            again_in = torch.cat([again, self.side[index]], dim=1) if self.side.numel() else again
            loss = loss + F.mse_loss(self(again_in), again)
        return loss

    def predict(self, batch: Batch) -> torch.Tensor:
        row_ids = batch["user"] if self.user_rows else batch["item"]
        col_ids = batch["item"] if self.user_rows else batch["user"]
        uniq, inverse = torch.unique(row_ids, return_inverse=True)
        return self.reconstruct(uniq)[inverse, col_ids]


def demographic_onehots(data: Processed) -> np.ndarray | None:
    """One-hot gender, age and occupation per user (None when the data set has none)."""
    users = data.users
    cols = [c for c in ("gender", "age", "occupation") if c in users.columns]
    if not cols:
        return None
    blocks = []
    for col in cols:
        values = users[col].cast(pl.String).fill_null("?").to_numpy()
        levels, codes = np.unique(values, return_inverse=True)
        block = np.zeros((len(values), len(levels)), dtype=np.float32)
        block[np.arange(len(values)), codes] = 1.0
        blocks.append(block)
    return np.concatenate(blocks, axis=1)


def subset_users(data: Processed, subset: dict[str, str]) -> np.ndarray:
    """Boolean mask of users matching every ``column: value`` (``age: "18-24"`` is a range)."""
    users = data.users
    keep = np.ones(users.height, dtype=bool)
    for col, want in subset.items():
        if col not in users.columns:
            raise ConfigError(
                f"params.yaml: subset column {col!r} is not in users.parquet "
                f"(has {', '.join(users.columns)})"
            )
        values = users[col]
        if "-" in str(want) and values.dtype.is_numeric():
            lo, hi = (float(x) for x in str(want).split("-", 1))
            keep &= ((values >= lo) & (values <= hi)).fill_null(False).to_numpy()
        else:
            keep &= (values.cast(pl.String) == str(want)).fill_null(False).to_numpy()
    if not keep.any():
        raise ConfigError(f"params.yaml: no user matches subset {subset}")
    return keep


BASE_REG_USER = 5.0  # the bias baseline that cold cells fall back to


class _AutoRec(TorchRecommender):
    user_rows: bool = True
    eval_batch = 8192
    module_class: type[AutoEncoder] = AutoEncoder

    def judged_users(self) -> np.ndarray | None:
        return self.keep_  # params.subset: trained and judged on those users only

    def build(self, data: Processed) -> nn.Module:
        p = self.params
        train = data.matrices["train"].tocsr()
        if self.keep_ is not None:
            train = sp.diags(self.keep_.astype(np.float32)) @ train
            train = sp.csr_matrix(train)
            train.eliminate_zeros()
        matrix = train if self.user_rows else sp.csr_matrix(train.T)
        counts = np.diff(train.indptr)
        sums = np.asarray(train.sum(axis=1)).ravel()
        user_mean = np.where(
            counts > 0, sums / np.maximum(counts, 1), data.splits["train"].rating.mean()
        )
        fill = torch.from_numpy(user_mean.astype(np.float32)) if p.fill == "user_mean" else None
        side = None
        if p.demographics:
            if not self.user_rows:
                raise ConfigError(
                    f"params.yaml: `models.{self.name}.demographics` is for user-based models"
                )
            onehot = demographic_onehots(data)
            if onehot is None:
                raise ConfigError(
                    f"params.yaml: `models.{self.name}.demographics` is true, but "
                    f"{data.meta['dataset']} has no demographics"
                )
            side = torch.from_numpy(onehot)
        return self.module_class(matrix, fill, side, p, self.user_rows)

    def split_inputs(self, data: Processed, split: str) -> dict[str, torch.Tensor]:
        part = data.splits[split]
        if self.keep_ is not None:
            rows = self.keep_[part.user]
            user, item, rating = part.user[rows], part.item[rows], part.rating[rows]
        else:
            user, item, rating = part.user, part.item, part.rating
        if split == "train":
            n = data.n_users if self.user_rows else data.n_items
            present = np.unique(user if self.user_rows else item)
            return {
                "row": torch.from_numpy(present.astype(np.int64))
                if len(present) < n
                else torch.arange(n)
            }
        return {
            "user": torch.from_numpy(user),
            "item": torch.from_numpy(item),
            "rating": torch.from_numpy(rating),
        }

    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        p = self.params
        self.keep_ = subset_users(data, p.subset) if p.subset else None
        self.base_ = fit_baseline(data, BASE_REG_USER, 10.0, 10)
        self.range_ = data.rating_range
        counts = data.matrices["train"]
        self.cold_users_ = np.diff(counts.indptr) == 0
        self.cold_items_ = np.bincount(counts.indices, minlength=data.n_items) == 0
        return super().fit(data, ctx)

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        pred = np.clip(super().predict(user, item), *self.range_)
        cold = self.cold_users_[user] | self.cold_items_[item]
        if cold.any():
            pred[cold] = np.clip(self.base_.predict(user[cold], item[cold]), *self.range_)
        return pred.astype(np.float32)

    def finish_rows(self, users: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Clip into the rating range; users or movies without training ratings get the
        bias baseline instead of an untrained reconstruction."""
        out = np.clip(rows, *self.range_)
        cold = self.cold_users_[users][:, None] | self.cold_items_[None, :]
        if cold.any():
            base = self.base_.rows(np.asarray(users))
            out = np.where(cold, np.clip(base, *self.range_), out)
        return out.astype(np.float32)

    def score_ratings(self, ratings: sp.spmatrix, data: Processed) -> np.ndarray:
        """User rows (U-AutoRec, the deep one): a new user's row is an input like any
        other, filled as a training user's; cold movies get the user's folded-in bias."""
        if not self.user_rows:
            raise MovierecError(f"{self.name} encodes movies, not users: it cannot fold one in")
        if self.params.demographics:
            raise MovierecError(f"{self.name} reads demographics, which a new user lacks")
        rows = sp.csr_matrix(ratings, dtype=np.float32)
        module = self.module_
        module.eval()
        tensor = {
            "indptr": torch.from_numpy(rows.indptr.astype(np.int64)),
            "indices": torch.from_numpy(rows.indices.astype(np.int64)),
            "values": torch.from_numpy(rows.data),
        }
        tensor = {k: v.to(self.device_) for k, v in tensor.items()}
        index = torch.arange(rows.shape[0], device=self.device_)
        dense, mask = dense_rows(*tensor.values(), index, rows.shape[1])
        x = dense
        if module.fill.numel():  # the row's own mean, as build() fills a training user's
            counts = np.diff(rows.indptr)
            sums = np.asarray(rows.sum(axis=1)).ravel()
            mean = torch.from_numpy((sums / np.maximum(counts, 1)).astype(np.float32))
            x = torch.where(mask, dense, mean.to(self.device_)[:, None])
        with torch.no_grad():
            out = np.clip(module(x).float().cpu().numpy(), *self.range_)
        if self.cold_items_.any():
            base = folded_baseline(self.base_, rows, BASE_REG_USER).rows(index.cpu().numpy())
            out[:, self.cold_items_] = np.clip(base[:, self.cold_items_], *self.range_)
        return out.astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return super().state() | {
            "_mu": np.array(self.base_.mu),
            "_b_user": self.base_.b_user,
            "_b_item": self.base_.b_item,
            "_range": np.array(self.range_),
            "_cold_users": self.cold_users_,
            "_cold_items": self.cold_items_,
            "_keep": self.keep_ if self.keep_ is not None else np.zeros(0, dtype=bool),
        }

    def set_state(self, state: dict[str, np.ndarray], data: Processed) -> None:
        self.base_ = Baseline(float(state.pop("_mu")), state.pop("_b_user"), state.pop("_b_item"))
        rng = state.pop("_range")
        self.range_ = (float(rng[0]), float(rng[1]))
        self.cold_users_, self.cold_items_ = state.pop("_cold_users"), state.pop("_cold_items")
        keep = state.pop("_keep")
        self.keep_ = keep if keep.size else None
        super().set_state(state, data)


class AutoRecItem(_AutoRec):
    """I-AutoRec (Sedhain et al. 2015): reconstruct each movie's vector of user ratings."""

    name = "autorec_item"
    user_rows = False


class AutoRecUser(_AutoRec):
    """U-AutoRec: reconstruct each user's vector of movie ratings."""

    name = "autorec_user"
    user_rows = True
    provides = frozenset({"fold_in"})


@dataclass
class DeepAutoRecParams(AutoRecParams):
    hidden: list[int] = field(default_factory=lambda: [256, 512, 256])
    activation: Activation = "selu"
    output_activation: Activation = "selu"
    code_dropout: float = 0.8
    weight_decay: float = 0.001
    batch_size: int = 128


class DeepAutoRec(_AutoRec):
    """Deep autoencoder over user vectors (Kuchaiev & Ginsburg 2017 style)."""

    name = "deep_autorec"
    user_rows = True
    provides = frozenset({"fold_in"})
