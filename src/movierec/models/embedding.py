"""The embedding families: dot product, dot product with biases, MLP, MLP classifier."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from movierec.config import checks
from movierec.config.params import ConfigError
from movierec.data.processed import Processed
from movierec.models.layers import ByteDropout, NetworkParams, PairTerm, fold_tail, pair_rows
from movierec.models.torch_base import TorchRecommender
from movierec.train.trainer import Optimizer, Schedule, TrainConfig

Batch = dict[str, torch.Tensor]


def _check_sparse(key: str, params: TrainConfig, sparse: bool) -> None:
    """Sparse embedding gradients work with sparse_adam and adagrad, and take no weight decay."""
    if params.optimizer == "sparse_adam" and not sparse:
        raise ConfigError(f"params.yaml: `{key}.optimizer` sparse_adam needs `{key}.sparse: true`")
    if sparse and params.optimizer not in ("sparse_adam", "adagrad"):
        raise ConfigError(
            f"params.yaml: `{key}.sparse` needs optimizer sparse_adam or adagrad (got {params.optimizer})"
        )
    if sparse and params.weight_decay:
        raise ConfigError(
            f"params.yaml: `{key}.weight_decay` does not work with sparse gradients; use `{key}.reg`"
        )


# ------------------------------------------------------------------------------ mf


class DotProduct(nn.Module):
    """Rating = mean + <p_u, q_i> (the Keras CFModel design).

    The fixed training mean (not learned) only spares the embeddings from spending
    a dimension and large norms on the global offset; it converges much faster.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int,
        init_std: float,
        reg: float = 0.0,
        mean: float = 0.0,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        self.reg = reg
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.user = nn.Embedding(n_users, factors, sparse=sparse)
        self.item = nn.Embedding(n_items, factors, sparse=sparse)
        nn.init.normal_(self.user.weight, 0.0, init_std)
        nn.init.normal_(self.item.weight, 0.0, init_std)

    def predict(self, batch: Batch) -> torch.Tensor:
        return self.mean + (self.user(batch["user"]) * self.item(batch["item"])).sum(-1)

    def loss(self, batch: Batch) -> torch.Tensor:
        p, q = self.user(batch["user"]), self.item(batch["item"])
        mse = F.mse_loss(self.mean + (p * q).sum(-1).float(), batch["rating"])
        if self.reg:  # L2 on the embeddings in the batch (a Keras embeddings_regularizer)
            mse = mse + self.reg * ((p.float() ** 2).sum(-1) + (q.float() ** 2).sum(-1)).mean()
        return mse

    def score_users(self, batch: Batch, n_items: int) -> torch.Tensor:
        return self.mean + self.user(batch["user"]) @ self.item.weight.T


@dataclass
class MFParams(TrainConfig):
    factors: int = 100
    init_std: float = 0.1
    reg: float = 0.08
    sparse: bool = False  # sparse embedding gradients (with sparse_adam or adagrad)
    optimizer: Optimizer = "adamax"
    lr: float = 0.01
    batch_size: int = 1024
    epochs: int = 60
    patience: int = 3

    def validate(self, key: str) -> None:
        super().validate(key)
        checks.positive(key, factors=self.factors, init_std=self.init_std)
        _check_sparse(key, self, self.sparse)


class EmbeddingRecommender(TorchRecommender):
    """Embedding models: full rows are one matrix product (``module.score_users``)."""


class MF(EmbeddingRecommender):
    name = "mf"
    provides = frozenset({"movie_vectors"})
    movie_table = "item.weight"

    def build(self, data: Processed) -> nn.Module:
        p = self.params
        mean = float(data.splits["train"].rating.mean())
        return DotProduct(
            data.n_users, data.n_items, p.factors, p.init_std, p.reg, mean, sparse=p.sparse
        )


# ------------------------------------------------------------------------------ mf_bias


class DotBias(nn.Module):
    """Rating = lo + (hi - lo) * sigmoid(<p_u, q_i> + b_u + b_i) (the fastai EmbeddingDotBias design)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int,
        y_range: tuple[float, float],
        init_std: float,
        reg: float = 0.0,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        self.reg = reg
        self.user = nn.Embedding(n_users, factors, sparse=sparse)
        self.item = nn.Embedding(n_items, factors, sparse=sparse)
        self.user_bias = nn.Embedding(n_users, 1, sparse=sparse)
        self.item_bias = nn.Embedding(n_items, 1, sparse=sparse)
        for emb in (self.user, self.item):
            nn.init.normal_(emb.weight, 0.0, init_std)
        for emb in (self.user_bias, self.item_bias):
            nn.init.zeros_(emb.weight)
        self.lo, self.hi = y_range

    def _squash(self, x: torch.Tensor) -> torch.Tensor:
        return self.lo + (self.hi - self.lo) * torch.sigmoid(x)

    def predict(self, batch: Batch) -> torch.Tensor:
        u, i = batch["user"], batch["item"]
        dot = (self.user(u) * self.item(i)).sum(-1)
        return self._squash(dot + self.user_bias(u).squeeze(-1) + self.item_bias(i).squeeze(-1))

    def loss(self, batch: Batch) -> torch.Tensor:
        mse = F.mse_loss(self.predict(batch).float(), batch["rating"])
        if self.reg:  # L2 on the batch's embeddings (the usual choice with sparse gradients)
            p, q = self.user(batch["user"]).float(), self.item(batch["item"]).float()
            mse = mse + self.reg * ((p**2).sum(-1) + (q**2).sum(-1)).mean()
        return mse

    def score_users(self, batch: Batch, n_items: int) -> torch.Tensor:
        users = batch["user"]
        logits = self.user(users) @ self.item.weight.T
        logits = logits + self.user_bias(users) + self.item_bias.weight.T
        return self._squash(logits)


@dataclass
class MFBiasParams(TrainConfig):
    factors: int = 90
    init_std: float = 0.01
    range_pad: float = 0.5
    reg: float = 0.0
    sparse: bool = False  # sparse embedding gradients (with sparse_adam or adagrad)
    optimizer: Optimizer = "adamw"
    lr: float = 0.002
    weight_decay: float = 0.0124
    schedule: Schedule = "onecycle"
    batch_size: int = 256
    epochs: int = 6
    patience: int = 6

    def validate(self, key: str) -> None:
        super().validate(key)
        checks.positive(key, factors=self.factors, init_std=self.init_std)
        _check_sparse(key, self, self.sparse)
        checks.non_negative(key, range_pad=self.range_pad)


class MFBias(EmbeddingRecommender):
    name = "mf_bias"
    provides = frozenset({"movie_vectors"})
    movie_table = "item.weight"

    def build(self, data: Processed) -> nn.Module:
        p = self.params
        lo, hi = data.rating_range
        y_range = (lo - p.range_pad, hi + p.range_pad)
        return DotBias(
            data.n_users, data.n_items, p.factors, y_range, p.init_std, p.reg, sparse=p.sparse
        )


# ------------------------------------------------------------------------------ mlp


class EmbeddingTrunk(nn.Module):
    """User and movie embeddings, concatenated, through Linear -> ReLU -> BatchNorm -> Dropout."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        layers: list[int],
        dropout: float,
        emb_dropout: float,
        product: bool = False,
    ) -> None:
        super().__init__()
        self.product = product
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user.weight, 0.0, 0.01)
        nn.init.normal_(self.item.weight, 0.0, 0.01)
        self.emb_drop = ByteDropout(emb_dropout)
        blocks: list[nn.Module] = []
        width = 3 * dim if product else 2 * dim
        for size in layers:
            blocks += [nn.Linear(width, size), nn.ReLU(), nn.BatchNorm1d(size), ByteDropout(dropout)]
            width = size
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = width

    def forward(self, batch: Batch) -> torch.Tensor:
        u, i = self.user(batch["user"]), self.item(batch["item"])
        x = torch.cat([u, i, u * i] if self.product else [u, i], dim=-1)
        return self.blocks(self.emb_drop(x))

    @torch.no_grad()
    def first_parts(
        self, users: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, PairTerm | None]:
        """The first layer split for full rows (eval mode): a user part, a movie part
        computed once for all movies, and the product term ``(u * i) @ Wp^T`` if any."""
        first = self.blocks[0]
        dim = self.user.embedding_dim
        item_w = self.item.weight
        item_part = item_w @ first.weight[:, dim : 2 * dim].T + first.bias  # (items, h)
        user_emb = self.user(users)
        user_part = user_emb @ first.weight[:, :dim].T  # (users, h)
        product = PairTerm(user_emb, item_w, first.weight[:, 2 * dim :]) if self.product else None
        return user_part, item_part, product


class TrunkHead(nn.Module):
    """A head over :class:`EmbeddingTrunk`; full rows reuse the trunk's split first layer."""

    trunk: EmbeddingTrunk
    head: nn.Linear

    def from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def output(self, features: torch.Tensor) -> torch.Tensor:
        return self.from_logits(self.head(features))

    def score_users(self, batch: Batch, n_items: int) -> torch.Tensor:
        users = batch["user"]
        layers = fold_tail(self.trunk.blocks[1:], self.head)  # eval mode: BatchNorm folded
        out = torch.empty((len(users), n_items), device=users.device)
        user_part, item_part, product = self.trunk.first_parts(users)
        for lo, logits in pair_rows(user_part, item_part, layers, pair_term=product):
            scores = self.from_logits(logits).float().reshape(-1, n_items)
            out[lo : lo + scores.shape[0]] = scores
        return out


class EmbeddingMLP(TrunkHead):
    """Regression head: one rating, squashed into the padded rating range."""

    def __init__(self, trunk: EmbeddingTrunk, y_range: tuple[float, float]) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk.out_dim, 1)
        self.lo, self.hi = y_range

    def from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return self.lo + (self.hi - self.lo) * torch.sigmoid(logits.squeeze(-1))

    def predict(self, batch: Batch) -> torch.Tensor:
        return self.output(self.trunk(batch))

    def loss(self, batch: Batch) -> torch.Tensor:
        return F.mse_loss(self.predict(batch).float(), batch["rating"])


class EmbeddingClassifier(TrunkHead):
    """Softmax over the rating levels; the predicted rating is the expectation."""

    def __init__(self, trunk: EmbeddingTrunk, levels: np.ndarray) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk.out_dim, len(levels))
        self.register_buffer("levels", torch.as_tensor(levels, dtype=torch.float32))

    def logits(self, batch: Batch) -> torch.Tensor:
        return self.head(self.trunk(batch))

    def from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=-1) @ self.levels

    def predict(self, batch: Batch) -> torch.Tensor:
        return self.output(self.trunk(batch))

    def classes(self, rating: torch.Tensor) -> torch.Tensor:
        return torch.bucketize(rating, (self.levels[1:] + self.levels[:-1]) / 2)

    def loss(self, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(self.logits(batch).float(), self.classes(batch["rating"]))


@dataclass
class MLPParams(NetworkParams):
    emb_dropout: float = 0.05
    product: bool = True  # also feed u * i (the GMF interaction) to the first layer

    def validate(self, key: str) -> None:
        super().validate(key)
        checks.fraction(key, emb_dropout=self.emb_dropout)


class _TrunkRecommender(TorchRecommender):
    """Full rows for the MLP families without re-running the first layer per pair."""

    eval_batch = 1 << 17
    provides = frozenset({"movie_vectors", "hidden_units"})
    movie_table = "trunk.item.weight"

    def hidden_mlp(self) -> nn.Module:
        return self.module_.trunk.blocks


class MLP(_TrunkRecommender):
    name = "mlp"

    def build(self, data: Processed) -> nn.Module:
        p = self.params
        trunk = EmbeddingTrunk(
            data.n_users, data.n_items, p.dim, p.layers, p.dropout, p.emb_dropout, p.product
        )
        lo, hi = data.rating_range
        return EmbeddingMLP(trunk, (lo - p.range_pad, hi + p.range_pad))


class MLPClassifier(_TrunkRecommender):
    name = "mlp_classifier"
    provides = _TrunkRecommender.provides | {"rating_classes"}

    def build(self, data: Processed) -> nn.Module:
        p = self.params
        trunk = EmbeddingTrunk(
            data.n_users, data.n_items, p.dim, p.layers, p.dropout, p.emb_dropout, p.product
        )
        return EmbeddingClassifier(trunk, data.rating_levels)

    def predict_classes(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Arg-max rating level (for the classifier's accuracy)."""
        batch = {k: v.to(self.device_) for k, v in self.inputs(self.data_, user, item).items()}
        out = []
        with torch.no_grad():
            self.module_.eval()
            for s in range(0, len(user), self.eval_batch):
                part = {k: v[s : s + self.eval_batch] for k, v in batch.items()}
                out.append(self.module_.levels[self.module_.logits(part).argmax(-1)].cpu())
        return torch.cat(out).numpy() if out else np.empty(0, dtype=np.float32)
