"""Building blocks shared by the feature-aware families (BST, recurrent, wide & deep)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from movierec.config import checks
from movierec.data.features import ItemFeatures, UserFeatures
from movierec.data.processed import Processed
from movierec.train.trainer import Optimizer, Schedule, TrainConfig

Batch = dict[str, torch.Tensor]


@dataclass
class NetworkParams(TrainConfig):
    """What the feature networks (MLP, wide & deep, the sequence families) share: a tower
    of layers over embeddings, trained with AdamW and a one-cycle schedule. A family's
    params extend it and set only what differs."""

    dim: int = 64
    layers: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.3
    range_pad: float = 0.5  # predictions are squashed to the rating range widened by this
    optimizer: Optimizer = "adamw"
    lr: float = 0.003
    weight_decay: float = 0.05
    schedule: Schedule = "onecycle"
    batch_size: int = 512
    epochs: int = 6
    patience: int = 6

    def validate(self, key: str) -> None:
        super().validate(key)
        checks.positive(key, dim=self.dim)
        checks.layer_sizes(key, "layers", self.layers)
        checks.fraction(key, dropout=self.dropout)
        checks.non_negative(key, range_pad=self.range_pad)


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

    def rows(self, user: torch.Tensor, items: slice = slice(None)) -> torch.Tensor:
        """``(len(user), movies in items)`` bias sums: every movie, or a tile's slice of them."""
        return self.user(user) + self.item.weight[items].T


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

    def eval_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The layers after ``first``, BatchNorm folded in (see :func:`fold_tail`)."""
        return fold_tail(self.rest, self.head)

    @torch.no_grad()
    def rows(
        self, user_part: torch.Tensor, item_part: torch.Tensor
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, logits (b, n_items))`` for blocks of users (eval mode)."""
        w = self.first.weight
        up = user_part @ w[:, : self.user_dim].T
        ip = item_part @ w[:, self.user_dim :].T + self.first.bias
        for lo, out in pair_rows(up, ip, self.eval_layers()):
            yield lo, out.squeeze(-1)


# ------------------------------------------------------------------------------ dropout


class ByteDropout(nn.Dropout):
    """Dropout whose mask is drawn as random bytes, eight entries per 64-bit draw.

    On a CPU, ``nn.Dropout``'s one Bernoulli draw per entry was most of an MLP step
    (about 16 ms of a 5,120 x 256 activation on two cores, against 4 ms here), which
    left ``mlp_rank`` past a minute on ml-100k. An entry is dropped when its byte is
    below ``round(256 p)``; the kept ones are scaled by exactly ``256 / (256 - cut)``,
    so the expectation is unchanged and the rate is ``p`` to within 1/512. The draws
    come from torch's generator, so the seed fixes them as it fixes any other.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__(p)
        self.cut = min(255, round(p * 256))  # a byte below this drops its entry

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.cut == 0:
            return x
        n = x.numel()
        words = torch.randint(
            -(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=x.device
        )
        kept = words.view(torch.uint8)[:n].view(x.shape) >= self.cut
        # one float mask, scaled in place: the product's backward reuses it as it is
        return x * kept.to(x.dtype).mul_(256 / (256 - self.cut))


# ------------------------------------------------------------------------------ full rows

# Elements of one (pairs, hidden) block of full-row scoring: a few MiB, so the hidden
# activations are reused from cache by the next matrix product instead of from memory.
ROW_BLOCK = 1 << 21


def fold_tail(
    tail: Sequence[nn.Module], head: nn.Linear
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``[(W, b), ...]`` for the dense layers after a first Linear, in eval mode.

    ``tail`` is ``ReLU, BatchNorm1d, Dropout`` groups, each followed by a Linear
    (the last by ``head``). In eval mode a BatchNorm after the ReLU is an affine map
    ``s * r + t``, so it folds into the next Linear: ``W diag(s)``, ``b + W t``.
    Each returned layer is applied as ``relu(x) @ W.T + b``; full rows then cost one
    ReLU and one matrix product per layer.
    """
    layers: list[tuple[torch.Tensor, torch.Tensor]] = []
    scale: torch.Tensor | None = None
    shift: torch.Tensor | None = None
    relu = False
    for module in [*tail, head]:
        if isinstance(module, nn.ReLU):
            if relu or scale is not None:
                raise ValueError("fold_tail: expected Linear after ReLU / BatchNorm1d")
            relu = True
        elif isinstance(module, nn.BatchNorm1d):
            if not relu or scale is not None or module.training:
                raise ValueError("fold_tail: BatchNorm1d must follow a ReLU (eval mode)")
            scale = module.weight / torch.sqrt(module.running_var + module.eps)
            shift = module.bias - module.running_mean * scale
        elif isinstance(module, nn.Dropout):
            if module.training:
                raise ValueError("fold_tail: eval mode only")
        elif isinstance(module, nn.Linear):
            if not relu:
                raise ValueError("fold_tail: every Linear must follow a ReLU")
            weight, bias = module.weight, module.bias
            if scale is not None and shift is not None:
                weight, bias = weight * scale[None, :], bias + weight @ shift
            layers.append((weight, bias))
            relu, scale, shift = False, None, None
        else:
            raise ValueError(f"fold_tail: cannot fold {type(module).__name__}")
    return layers


@dataclass
class PairTerm:
    """A first-layer term that depends on both sides of a pair: ``(u * i) @ W^T`` for user
    vectors ``users (n_users, d)``, movie vectors ``items (n_items, d)``, ``weight (h, d)``.

    Per block it is ``i @ (W diag(u))^T``: one batched product, no (pairs, d) tensor."""

    users: torch.Tensor
    items: torch.Tensor
    weight: torch.Tensor

    def bound(self) -> torch.Tensor:
        """Per unit, the largest value over the box of user and movie values."""
        corners = torch.stack(
            [a * b for a in self.users.aminmax(dim=0) for b in self.items.aminmax(dim=0)]
        )  # (4, d)
        return (self.weight[:, None, :] * corners[None]).amax(1).sum(-1)

    def add_(self, x: torch.Tensor, users: slice, items: slice) -> None:
        """Add the term for ``users`` x ``items`` to ``x (b, m, h)`` in place."""
        scaled = self.users[users, None, :] * self.weight[None]  # (b, h, d)
        x.baddbmm_(self.items[items].expand(x.shape[0], -1, -1), scaled.transpose(1, 2))


def live_units(
    user_part: torch.Tensor, item_part: torch.Tensor, extra_bound: torch.Tensor | None = None
) -> torch.Tensor | None:
    """The first-layer units some (user, movie) pair of this block can switch on, or None
    when that is every unit.

    A unit whose largest user part plus largest movie part (plus ``extra_bound``, an upper
    bound of any further term) is at most 0 outputs ReLU(x) = 0 for every pair, so its
    column adds exactly nothing to the next layer; trained networks have such units
    (weight decay), and each one left out saves a column of the largest matrix product.
    """
    upper = user_part.max(0).values + item_part.max(0).values
    if extra_bound is not None:
        upper = upper + extra_bound
    alive = upper > 0
    return None if bool(alive.all()) or not bool(alive.any()) else alive


def dense_tail(x: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """``(pairs, hidden)`` first-layer pre-activations -> outputs of the folded layers.
    ``x`` is overwritten (ReLU in place): callers pass a scratch block."""
    for weight, bias in layers:
        x = torch.addmm(bias, x.relu_(), weight.T)
    return x


def pair_rows(
    user_part: torch.Tensor,
    item_part: torch.Tensor,
    layers: list[tuple[torch.Tensor, torch.Tensor]],
    budget: int = ROW_BLOCK,
    pair_term: PairTerm | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, out (b, n_items, out_dim))`` for blocks of users: first-layer halves
    ``user_part (users, h)`` + ``item_part (items, h)`` (+ ``pair_term``) through
    :func:`dense_tail`, leaving out the units no pair can switch on (:func:`live_units`).
    Users go in blocks and, on catalogues wider than the budget, movies too, so memory
    stays bounded at any size."""
    alive = live_units(user_part, item_part, pair_term.bound() if pair_term else None)
    if alive is not None:
        (weight, bias), rest = layers[0], layers[1:]
        user_part, item_part, layers = (
            user_part[:, alive],
            item_part[:, alive],
            [(weight[:, alive], bias), *rest],
        )
        if pair_term is not None:
            pair_term = replace(pair_term, weight=pair_term.weight[alive])
    n_users = user_part.shape[0]
    n_items, hidden = item_part.shape
    out_dim = layers[-1][0].shape[0]
    per_user = n_items * hidden
    if per_user > budget:  # one user at a time, movies in blocks
        items = max(1, budget // hidden)
        for u in range(n_users):
            row = torch.empty((1, n_items, out_dim), dtype=item_part.dtype, device=item_part.device)
            for lo in range(0, n_items, items):
                x = (user_part[u] + item_part[lo : lo + items])[None]
                if pair_term is not None:
                    pair_term.add_(x, slice(u, u + 1), slice(lo, lo + items))
                row[0, lo : lo + items] = dense_tail(x[0], layers)
            yield u, row
        return
    step = max(1, budget // per_user)
    for lo in range(0, n_users, step):
        x = user_part[lo : lo + step, None, :] + item_part[None]  # (b, items, h)
        if pair_term is not None:
            pair_term.add_(x, slice(lo, lo + step), slice(None))
        yield lo, dense_tail(x.reshape(-1, hidden), layers).reshape(-1, n_items, out_dim)


def padded_range(data: Processed, pad: float) -> tuple[float, float]:
    lo, hi = data.rating_range
    return lo - pad, hi + pad


def train_mean(data: Processed) -> float:
    return float(data.splits["train"].rating.mean())
