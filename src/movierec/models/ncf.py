"""mlp_rank: the seed MLP trained to rank (NCF / NeuMF, He et al. 2017).

The rating ``mlp`` learns which score a user gives a movie they watched; a top-N list
asks which movies they watch at all, and a network that never saw an unwatched movie
ranks below the most-popular list. This family keeps the MLP's tower (user and movie
embeddings with their product, Linear -> ReLU -> BatchNorm -> Dropout) and changes what
it learns from: every training rating is a positive, ``negatives`` movies drawn
uniformly from the catalogue are its negatives, and the loss is NCF's binary
cross-entropy, BPR's pairwise loss, or a sampled softmax (the positive against its
negatives). NeuMF's second half, a plain dot product of separate embeddings
(``gmf_dim``), and a movie bias are added to the tower's logit: an MLP learns a dot
product only slowly (Rendle et al. 2020), so the tower is left what a dot product
cannot say.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from movierec.config import checks
from movierec.data.processed import Processed
from movierec.models.base import FitContext
from movierec.models.embedding import EmbeddingTrunk, MLPParams, TrunkHead
from movierec.models.ranking import Ranker
from movierec.models.torch_base import TorchRecommender, positive_pairs
from movierec.train.trainer import Batch

Objective = Literal["bce", "bpr", "softmax"]


@dataclass
class MLPRankParams(MLPParams):
    layers: list[int] = field(default_factory=lambda: [128, 64])
    objective: Objective = "bce"  # bce (NCF's log loss) | bpr | softmax (sampled)
    negatives: int = 4  # uniform negatives per positive
    gmf_dim: int = 32  # the dot-product half's size (0: the tower alone)
    min_rating: float = 3.0  # positives: training ratings at or above this (0 = all)
    batch_size: int = 1024  # positives per step (each with its negatives)
    epochs: int = 20
    patience: int = 20

    def validate(self, key: str) -> None:
        super().validate(key)
        checks.at_least_one(key, negatives=self.negatives)
        checks.non_negative(key, gmf_dim=self.gmf_dim)


class NeuMF(TrunkHead):
    """Logit = tower(u, i) + <g_u, g_i> + b_i; full rows reuse the tower's split first layer."""

    def __init__(
        self,
        trunk: EmbeddingTrunk,
        n_users: int,
        n_items: int,
        gmf_dim: int,
        negatives: int,
        objective: Objective,
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(trunk.out_dim, 1)
        self.n_items, self.negatives, self.objective = n_items, negatives, objective
        self.gmf_user = nn.Embedding(n_users, gmf_dim)
        self.gmf_item = nn.Embedding(n_items, gmf_dim)
        nn.init.normal_(self.gmf_user.weight, 0.0, 0.01)
        nn.init.normal_(self.gmf_item.weight, 0.0, 0.01)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.item_bias.weight)

    def from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.squeeze(-1)

    def predict(self, batch: Batch) -> torch.Tensor:
        user, item = batch["user"], batch["item"]
        gmf = (self.gmf_user(user) * self.gmf_item(item)).sum(-1)
        return self.output(self.trunk(batch)) + gmf + self.item_bias(item).squeeze(-1)

    def loss(self, batch: Batch) -> torch.Tensor:
        user, pos = batch["user"], batch["item"]
        b, n = len(user), self.negatives
        neg = torch.randint(0, self.n_items, (b, n), device=user.device)
        # one pass over positives and negatives together: BatchNorm sees both in each batch
        users = torch.cat([user, user.repeat_interleave(n)])
        logits = self.predict({"user": users, "item": torch.cat([pos, neg.reshape(-1)])}).float()
        pos_logit, neg_logit = logits[:b], logits[b:].reshape(b, n)
        if self.objective == "bpr":
            return -F.logsigmoid(pos_logit[:, None] - neg_logit).mean()
        if self.objective == "softmax":
            both = torch.cat([pos_logit[:, None], neg_logit], 1)
            return F.cross_entropy(both, torch.zeros(b, dtype=torch.long, device=user.device))
        target = torch.cat([torch.ones_like(pos_logit), torch.zeros_like(logits[b:])])
        return F.binary_cross_entropy_with_logits(logits, target)

    def score_users(self, batch: Batch, n_items: int) -> torch.Tensor:
        users = batch["user"]
        tower = super().score_users(batch, n_items)
        return tower + self.gmf_user(users) @ self.gmf_item.weight.T + self.item_bias.weight.T


class MLPRank(Ranker, TorchRecommender):
    """The MLP tower with a dot-product half, trained on sampled negatives."""

    name = "mlp_rank"
    provides = frozenset({"movie_vectors"})
    movie_table = "trunk.item.weight"
    eval_batch = 1 << 17

    def build(self, data: Processed) -> nn.Module:
        p = self.params
        trunk = EmbeddingTrunk(
            data.n_users, data.n_items, p.dim, p.layers, p.dropout, p.emb_dropout, p.product
        )
        return NeuMF(trunk, data.n_users, data.n_items, p.gmf_dim, p.negatives, p.objective)

    def train_inputs(self, data: Processed) -> dict[str, torch.Tensor]:
        return positive_pairs(data, self.params.min_rating)

    def validation(self, data: Processed, ctx: FitContext):
        return ctx.ranking_validation(self, data)
