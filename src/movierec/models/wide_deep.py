"""Wide & Deep (Cheng et al. 2016): a linear model over sparse and crossed features, trained
jointly with an embedding MLP.

Wide part: one weight per user, movie, genre, decade and demographic level, plus
crossed features — each demographic level x genre, and (optionally) user x
genre. Every term is "weight of the user side" times "indicator of the movie
side", so the wide score of all movies for a user is one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from movierec.data.features import item_features, user_features
from movierec.data.processed import Processed
from movierec.models.layers import (
    Batch,
    NetworkParams,
    PairMLP,
    RatingRange,
    SideFeatures,
    padded_range,
    train_mean,
)
from movierec.models.torch_base import TorchRecommender


@dataclass
class WideDeepParams(NetworkParams):
    dim: int = 32
    user_features: bool = True  # demographics in both parts (dropped when the data has none)
    user_genre_cross: bool = True  # the wide user x genre cross
    epochs: int = 8
    patience: int = 8


def _zeros(n: int, width: int) -> nn.Embedding:
    emb = nn.Embedding(n, width)
    nn.init.zeros_(emb.weight)
    return emb


class WideAndDeep(nn.Module):
    def __init__(self, data: Processed, p: WideDeepParams) -> None:
        super().__init__()
        users = user_features(data, p.user_features)
        items = item_features(data)
        n_genres = items.genres.shape[1]
        self.side = SideFeatures(users, items, p.dim)
        # -- wide: user-side weight vectors over [1 (movie-independent), genres...]
        self.w_user = _zeros(data.n_users, 1)
        self.w_item = _zeros(data.n_items, 1)
        self.w_decade = _zeros(items.n_decades, 1)
        self.w_genre = nn.Parameter(torch.zeros(n_genres))
        self.w_demo = nn.ModuleList(_zeros(card, 1 + n_genres) for card in users.cardinalities)
        self.w_user_genre = _zeros(data.n_users, n_genres) if p.user_genre_cross else None
        # -- deep
        self.user_emb = nn.Embedding(data.n_users, p.dim)
        self.item_emb = nn.Embedding(data.n_items, p.dim)
        nn.init.normal_(self.user_emb.weight, 0.0, 0.05)
        nn.init.normal_(self.item_emb.weight, 0.0, 0.05)
        self.mlp = PairMLP(
            p.dim + self.side.user_dim, p.dim + self.side.item_dim, list(p.layers), p.dropout
        )
        self.out = RatingRange(padded_range(data, p.range_pad), train_mean(data))

    # -- wide part, factorised into user-side weights and movie-side indicators
    def wide_user(self, user: torch.Tensor) -> torch.Tensor:
        """``(B, 1 + n_genres)``: the user's constant term and per-genre weights."""
        w = torch.cat([self.w_user(user), self.w_genre.expand(user.shape[0], -1)], -1)
        codes = self.side.user_codes[user]
        for c, emb in enumerate(self.w_demo):
            w = w + emb(codes[:, c])
        if self.w_user_genre is not None:
            w = w + torch.cat([w.new_zeros(user.shape[0], 1), self.w_user_genre(user)], -1)
        return w

    def wide_item(self, item: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Movie-side indicators ``[1, genres]`` and the movie's own weights."""
        x = self.side.genres[item]
        ones = x.new_ones(x.shape[0], 1)
        own = (self.w_item(item) + self.w_decade(self.side.decade[item])).squeeze(-1)
        return torch.cat([ones, x], -1), own

    def user_part(self, user: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.user_emb(user), self.side.user(user)], -1)

    def item_part(self, item: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.item_emb(item), self.side.item(item)], -1)

    def predict(self, batch: Batch) -> torch.Tensor:
        u, i = batch["user"], batch["item"]
        indicators, own = self.wide_item(i)
        wide = (self.wide_user(u) * indicators).sum(-1) + own
        return self.out(wide + self.mlp(self.user_part(u), self.item_part(i)))

    def loss(self, batch: Batch) -> torch.Tensor:
        return nn.functional.mse_loss(self.predict(batch), batch["rating"])

    @torch.no_grad()
    def score_users(self, batch: Batch, n_items: int) -> torch.Tensor:
        users = batch["user"]
        items = torch.arange(n_items, device=users.device)
        indicators, own = self.wide_item(items)
        wide = self.wide_user(users) @ indicators.T + own[None]
        out = torch.empty_like(wide)
        for lo, logits in self.mlp.rows(self.user_part(users), self.item_part(items)):
            out[lo : lo + logits.shape[0]] = self.out(wide[lo : lo + logits.shape[0]] + logits)
        return out


class WideDeep(TorchRecommender):
    name = "wide_deep"
    provides = frozenset({"movie_vectors", "hidden_units"})
    movie_table = "item_emb.weight"

    def hidden_mlp(self) -> nn.Module:
        return self.module_.mlp

    def build(self, data: Processed) -> nn.Module:
        return WideAndDeep(data, self.params)
