"""Building blocks shared by the feature-aware families (BST, recurrent, wide & deep)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from movierec.dataset import Processed
from movierec.features import ItemFeatures, UserFeatures

Batch = dict[str, torch.Tensor]


class RatingRange(nn.Module):
    """Squash a logit into the padded rating range; the bias starts at the training mean."""

    def __init__(self, y_range: tuple[float, float], mean: float) -> None:
        super().__init__()
        self.lo, self.hi = y_range
        p = float(np.clip((mean - self.lo) / (self.hi - self.lo), 1e-3, 1 - 1e-3))
        self.register_buffer("offset", torch.tensor(float(np.log(p / (1 - p)))))

    def forward(self, logit: torch.Tensor) -> torch.Tensor:
        return self.lo + (self.hi - self.lo) * torch.sigmoid(logit.float() + self.offset)


class PairBias(nn.Module):
    """User and movie bias terms added to a logit: the part of a rating no interaction explains."""

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, 1)
        self.item = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.user.weight)
        nn.init.zeros_(self.item.weight)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        return (self.user(user) + self.item(item)).squeeze(-1)

    def rows(self, user: torch.Tensor) -> torch.Tensor:
        """``(len(user), n_items)`` bias sums."""
        return self.user(user) + self.item.weight.T


class SideFeatures(nn.Module):
    """Embeddings of the demographic codes of users and the genres / decade of movies.

    Lookup tables are buffers, so they travel with the module to the GPU and into
    the saved state; a data set without demographics simply has no user columns.
    """

    def __init__(self, users: UserFeatures, items: ItemFeatures, dim: int) -> None:
        super().__init__()
        self.register_buffer("user_codes", torch.from_numpy(users.codes))
        # One spare all-zero row so that padding ids (n_items) are valid indices.
        genres = np.vstack([items.genres, np.zeros((1, items.genres.shape[1]), np.float32)])
        self.register_buffer("genres", torch.from_numpy(genres))
        self.register_buffer("decade", torch.from_numpy(np.append(items.decade, 0)))
        self.demo = nn.ModuleList(nn.Embedding(card, dim) for card in users.cardinalities)
        self.genre = nn.Linear(items.genres.shape[1], dim, bias=False) if genres.shape[1] else None
        self.decade_emb = nn.Embedding(items.n_decades, dim)
        self.user_dim = dim * len(self.demo)
        self.item_dim = dim * (2 if self.genre is not None else 1)

    def user(self, user: torch.Tensor) -> torch.Tensor:
        """``(..., user_dim)``: the user's demographic embeddings, concatenated."""
        codes = self.user_codes[user]
        parts = [emb(codes[..., c]) for c, emb in enumerate(self.demo)]
        return torch.cat(parts, -1) if parts else codes.new_zeros((*user.shape, 0)).float()

    def item(self, item: torch.Tensor) -> torch.Tensor:
        """``(..., item_dim)``: genre projection and release-decade embedding."""
        parts = [self.decade_emb(self.decade[item])]
        if self.genre is not None:
            parts.insert(0, self.genre(self.genres[item]))
        return torch.cat(parts, -1)


class PairMLP(nn.Module):
    """An MLP over ``[user part, item part]`` whose first layer splits in two.

    ``forward`` takes aligned pairs; ``rows`` scores every user of a block
    against every item while computing each side of the first layer only once,
    which makes full-ranking evaluation a few matrix products.
    """

    def __init__(self, user_dim: int, item_dim: int, layers: list[int], dropout: float) -> None:
        super().__init__()
        self.user_dim = user_dim
        self.first = nn.Linear(user_dim + item_dim, layers[0])
        rest: list[nn.Module] = [nn.ReLU(), nn.BatchNorm1d(layers[0]), nn.Dropout(dropout)]
        width = layers[0]
        for size in layers[1:]:
            rest += [nn.Linear(width, size), nn.ReLU(), nn.BatchNorm1d(size), nn.Dropout(dropout)]
            width = size
        self.rest = nn.Sequential(*rest)
        self.head = nn.Linear(width, 1)

    def forward(self, user_part: torch.Tensor, item_part: torch.Tensor) -> torch.Tensor:
        x = self.first(torch.cat([user_part, item_part], -1))
        return self.head(self.rest(x)).squeeze(-1)

    def project_user(self, user_part: torch.Tensor) -> torch.Tensor:
        """The user side of the first layer, to reuse across many items."""
        return user_part @ self.first.weight[:, : self.user_dim].T

    def from_projected(self, user_proj: torch.Tensor, item_part: torch.Tensor) -> torch.Tensor:
        x = user_proj + item_part @ self.first.weight[:, self.user_dim :].T + self.first.bias
        shape = x.shape[:-1]
        return self.head(self.rest(x.reshape(-1, x.shape[-1]))).reshape(shape)

    @torch.no_grad()
    def rows(
        self, user_part: torch.Tensor, item_part: torch.Tensor, budget: int = 1 << 24
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, logits (b, n_items))`` for blocks of users (eval mode)."""
        w = self.first.weight
        up = user_part @ w[:, : self.user_dim].T
        ip = item_part @ w[:, self.user_dim :].T + self.first.bias
        n_items, hidden = ip.shape
        step = max(1, budget // max(1, n_items * hidden))
        for lo in range(0, up.shape[0], step):
            x = (up[lo : lo + step, None, :] + ip[None]).reshape(-1, hidden)
            yield lo, self.head(self.rest(x)).reshape(-1, n_items)


def padded_range(data: Processed, pad: float) -> tuple[float, float]:
    lo, hi = data.rating_range
    return lo - pad, hi + pad


def train_mean(data: Processed) -> float:
    return float(data.splits["train"].rating.mean())
