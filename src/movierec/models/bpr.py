"""BPR-MF (Rendle et al., 2009): a user prefers a movie they rated over one they did not.

Each training rating is a positive; ``negatives`` movies drawn uniformly from the
catalogue are its negatives, and the loss is ``-log sigmoid(s_pos - s_neg)`` with
``s = u . v + b_item``, plus ``reg`` times the squared norms of the batch's user and
movie vectors (Rendle's regulariser: only the rows a step uses are pulled to zero,
where Adam's ``weight_decay`` would shrink every rare movie on every step). Fitted by
the shared Trainer (mini-batches of positive pairs on in-memory tensors); the epoch
kept is the one with the best val NDCG@k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from movierec.config import checks
from movierec.data.processed import Processed
from movierec.models.base import FitContext
from movierec.models.ranking import Ranker
from movierec.models.torch_base import TorchRecommender, positive_pairs
from movierec.train.trainer import Batch, TrainConfig


@dataclass
class BPRParams(TrainConfig):
    lr: float = 0.0034
    weight_decay: float = 0.0
    epochs: int = 100
    patience: int = 8  # epochs without a better val NDCG@k
    factors: int = 128
    negatives: int = 9  # sampled negatives per positive
    min_rating: float = 3.0  # positives: training ratings at or above this (0 = all)
    reg: float = 0.01  # L2 on the batch's user and movie vectors (Rendle's regulariser)

    def validate(self, key: str) -> None:
        super().validate(key)
        checks.at_least_one(key, factors=self.factors, negatives=self.negatives)
        checks.non_negative(key, reg=self.reg)


class BPRModule(nn.Module):
    def __init__(
        self, n_users: int, n_items: int, factors: int, negatives: int, reg: float = 0.0
    ) -> None:
        super().__init__()
        self.n_items, self.negatives, self.reg = n_items, negatives, reg
        self.user = nn.Embedding(n_users, factors)
        self.item = nn.Embedding(n_items, factors)
        self.item_bias = nn.Embedding(n_items, 1)
        for table in (self.user, self.item):
            nn.init.normal_(table.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)

    def score(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        u = self.user(user)
        if item.dim() == 2:  # (batch, negatives)
            u = u[:, None, :]
        return (u * self.item(item)).sum(-1) + self.item_bias(item).squeeze(-1)

    def loss(self, batch: Batch) -> torch.Tensor:
        user, pos = batch["user"], batch["item"]
        neg = torch.randint(0, self.n_items, (len(user), self.negatives), device=user.device)
        diff = self.score(user, pos)[:, None] - self.score(user, neg)
        loss = -nn.functional.logsigmoid(diff).mean()
        if self.reg:
            norms = (
                self.user(user).square().sum(-1)
                + self.item(pos).square().sum(-1)
                + self.item(neg).square().sum(-1).mean(-1)
            )
            loss = loss + self.reg * norms.mean()
        return loss

    def predict(self, batch: Batch) -> torch.Tensor:
        return self.score(batch["user"], batch["item"])

    def score_users(self, batch: Batch, n_items: int) -> torch.Tensor:
        return self.user(batch["user"]) @ self.item.weight.T + self.item_bias.weight.T


class BPR(Ranker, TorchRecommender):
    """BPR matrix factorisation; movie vectors are the movie factors."""

    name = "bpr"
    provides = frozenset({"movie_vectors"})
    movie_table = "item.weight"

    def build(self, data: Processed) -> nn.Module:
        p = self.params
        return BPRModule(data.n_users, data.n_items, p.factors, p.negatives, p.reg)

    def train_inputs(self, data: Processed) -> dict[str, torch.Tensor]:
        return positive_pairs(data, self.params.min_rating)

    def validation(self, data: Processed, ctx: FitContext):
        return ctx.ranking_validation(self, data)
