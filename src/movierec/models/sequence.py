"""Families that read the order of a user's ratings: Behavior Sequence Transformer and recurrent.

Inputs per rating come from ``sequences.npz``: the user's last ``L`` *training*
ratings strictly before it (left-padded) — never the target or anything later.
For rating metrics each val/test row uses its own window; for top-N every
candidate movie is scored against the user's latest training window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from movierec.config import checks
from movierec.config.params import ConfigError
from movierec.data.features import item_features, user_features
from movierec.data.processed import Processed
from movierec.errors import DataError
from movierec.models.layers import (
    Batch,
    NetworkParams,
    PairBias,
    PairMLP,
    RatingRange,
    SideFeatures,
    dense_tail,
    padded_range,
    train_mean,
)
from movierec.models.torch_base import TorchRecommender
from movierec.train.trainer import predict_tensors

HISTORY_KEYS = ("hist_items", "hist_ratings", "hist_len")


def latest_windows(data: Processed, length: int) -> dict[str, np.ndarray]:
    """Each user's last ``length`` training ratings (left-padded), for scoring new candidates."""
    train = data.splits["train"]  # grouped by user, in time order
    counts = np.bincount(train.user, minlength=data.n_users)
    end = np.cumsum(counts)
    n = np.minimum(counts, length)
    offsets = np.arange(length) - length  # -L .. -1
    valid = offsets[None, :] >= -n[:, None]
    idx = np.where(valid, end[:, None] + offsets[None, :], 0)
    items = np.where(valid, train.item[idx] if len(train) else 0, -1)
    ratings = np.where(valid, train.rating[idx] if len(train) else 0.0, 0.0)
    return {
        "hist_items": items.astype(np.int64),
        "hist_ratings": ratings.astype(np.float32),
        "hist_len": n.astype(np.int64),
    }


def history_valid(hist_len: torch.Tensor, length: int) -> torch.Tensor:
    """``(B, L)`` True where a left-padded window holds a real rating."""
    pos = torch.arange(length, device=hist_len.device)
    return pos[None, :] >= (length - hist_len)[:, None]


class HistoryTokens(nn.Module):
    """Item + rating-level embeddings of history slots; padding maps to a fixed zero row."""

    def __init__(self, n_items: int, dim: int, levels: np.ndarray, length: int) -> None:
        super().__init__()
        self.length = length
        self.pad = n_items
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        nn.init.normal_(self.item.weight, 0.0, 0.05)
        with torch.no_grad():
            self.item.weight[n_items].zero_()
        # Level 0 = "no rating" (padding, or the target token of BST).
        self.rating = nn.Embedding(len(levels) + 1, dim)
        self.register_buffer("cuts", torch.as_tensor((levels[1:] + levels[:-1]) / 2))

    def ids(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Item ids with padding replaced, rating levels (0 on padding), validity mask."""
        valid = history_valid(batch["hist_len"], self.length)
        items = torch.where(valid, batch["hist_items"].clamp(min=0), self.pad)
        levels = torch.bucketize(batch["hist_ratings"].float(), self.cuts) + 1
        return items, torch.where(valid, levels, 0), valid


# ------------------------------------------------------------------------------ params


@dataclass
class SequenceParams(NetworkParams):
    user_id: bool = True  # a user id embedding among the user features
    user_features: bool = True  # demographic embeddings (dropped when the data has none)
    biases: bool = True  # user and movie bias terms added to the output logit


@dataclass
class BSTParams(SequenceParams):
    heads: int = 8
    blocks: int = 1
    ff_dim: int = 128
    attention_dropout: float = 0.1
    history_sees_target: bool = False  # True: full self-attention (slower ranking)

    def validate(self, key: str) -> None:
        super().validate(key)
        checks.positive(key, heads=self.heads, blocks=self.blocks, ff_dim=self.ff_dim)
        if self.dim % self.heads:
            raise ConfigError(
                f"params.yaml: `{key}.dim` ({self.dim}) must be divisible by `{key}.heads` ({self.heads})"
            )
        checks.fraction(key, attention_dropout=self.attention_dropout)


@dataclass
class RNNParams(SequenceParams):
    cell: Literal["lstm", "gru"] = "lstm"
    hidden: int = 64
    rnn_layers: int = 1
    epochs: int = 10
    patience: int = 10

    def validate(self, key: str) -> None:
        super().validate(key)
        checks.positive(key, hidden=self.hidden, rnn_layers=self.rnn_layers)


# ------------------------------------------------------------------------------ modules


class UserPart(nn.Module):
    """User id embedding and demographic embeddings (each optional)."""

    def __init__(self, n_users: int, dim: int, side: SideFeatures, use_id: bool, use_demo: bool):
        super().__init__()
        self.side = side
        self.use_demo = use_demo and len(side.demo) > 0
        self.id = nn.Embedding(n_users, dim) if use_id else None
        if self.id is not None:
            nn.init.normal_(self.id.weight, 0.0, 0.05)
        self.dim = (dim if use_id else 0) + (side.user_dim if self.use_demo else 0)

    def forward(self, user: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.id is not None:
            parts.append(self.id(user))
        if self.use_demo:
            parts.append(self.side.user(user))
        return torch.cat(parts, -1) if parts else user.new_zeros((user.shape[0], 0)).float()


class AttentionBlock(nn.Module):
    """Post-norm transformer block (multi-head self-attention, GELU feed-forward).

    Written out instead of ``nn.TransformerEncoderLayer`` because ranking needs
    the attention of one query token against keys cached per user.
    """

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1))  # (..., heads, head_dim)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor):
        """q (B, Tq, H, E), k/v (B, Tk, H, E), allowed (B, Tq, Tk) -> (B, Tq, H*E)."""
        out = nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=allowed[:, None],
            dropout_p=self.attn_dropout if self.training else 0.0,
        )
        return out.transpose(1, 2).flatten(-2)

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.proj(attended)))
        return self.norm2(x + self.drop(self.ff(x)))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._split(t) for t in self.qkv(x).chunk(3, -1))
        return self.finish(x, self.attend(q, k, v, allowed))


class BehaviorSequenceTransformer(nn.Module):
    """History + target movie as ``L + 1`` tokens through transformer blocks, then an MLP.

    Movie tokens = movie embedding + genre projection + position (+ rating level
    for history tokens). Padded history slots are masked as keys and zeroed in
    the output, so their contents cannot matter. With ``history_sees_target``
    off, history tokens attend only to history (the target still attends to
    everything): their states then depend on the user alone, so ranking all
    movies runs the blocks for one token per candidate instead of ``L + 1``.
    """

    def __init__(self, data: Processed, p: BSTParams, length: int) -> None:
        super().__init__()
        self.length = length
        self.history_sees_target = p.history_sees_target
        d = p.dim
        self.side = SideFeatures(user_features(data, p.user_features), item_features(data), d)
        self.tokens = HistoryTokens(data.n_items, d, data.rating_levels, length)
        n_genres = self.side.genres.shape[1]
        self.genre = nn.Linear(n_genres, d, bias=False) if n_genres else None
        self.position = nn.Parameter(torch.randn(length + 1, d) * 0.02)
        self.blocks = nn.ModuleList(
            AttentionBlock(d, p.heads, p.ff_dim, p.attention_dropout) for _ in range(p.blocks)
        )
        self.user = UserPart(data.n_users, d, self.side, p.user_id, p.user_features)
        self.mlp = PairMLP(
            self.user.dim + length * d, d + self.side.item_dim, list(p.layers), p.dropout
        )
        self.bias = PairBias(data.n_users, data.n_items) if p.biases else None
        self.out = RatingRange(padded_range(data, p.range_pad), train_mean(data))

    def _embed(self, items: torch.Tensor) -> torch.Tensor:
        x = self.tokens.item(items)
        if self.genre is not None:
            x = x + self.genre(self.side.genres[items])
        return x

    def _allowed(self, valid: torch.Tensor) -> torch.Tensor:
        """``(B, L+1, L+1)`` query-key mask: padding is never a key; the target always is."""
        keys = torch.cat([valid, valid.new_ones(valid.shape[0], 1)], 1)
        allowed = keys[:, None, :].expand(-1, self.length + 1, -1)
        if not self.history_sees_target:
            allowed = allowed.clone()
            allowed[:, : self.length, self.length] = False
            # A history query with no valid history key would see nothing: let padding see itself.
            eye = torch.eye(self.length + 1, dtype=torch.bool, device=valid.device)
            allowed = allowed | eye[None]
        return allowed

    def predict(self, batch: Batch) -> torch.Tensor:
        items, levels, valid = self.tokens.ids(batch)
        target = batch["item"]
        seq = torch.cat([items, target[:, None]], 1)
        lv = torch.cat([levels, levels.new_zeros(levels.shape[0], 1)], 1)
        x = self._embed(seq) + self.tokens.rating(lv) + self.position
        allowed = self._allowed(valid)
        for block in self.blocks:
            x = block(x, allowed)
        history = (x[:, : self.length] * valid[..., None]).flatten(1)
        user = torch.cat([history, self.user(batch["user"])], -1)
        logit = self.mlp(user, torch.cat([x[:, -1], self.side.item(target)], -1))
        if self.bias is not None:
            logit = logit + self.bias(batch["user"], target)
        return self.out(logit)

    def loss(self, batch: Batch) -> torch.Tensor:
        return nn.functional.mse_loss(self.predict(batch), batch["rating"])

    @torch.no_grad()
    def rank(self, batch: Batch, n_items: int, budget: int = 1 << 13) -> torch.Tensor:
        """``(B, n_items)`` ratings of every movie for each user's window (one-way mode).

        History states are computed once per user; each block then runs only the
        target token, attending to the cached history keys and values. Pairs go through
        in tiles of at most ``budget`` (users, and movies too on catalogues wider than
        the budget), so a tile's intermediate arrays stay in the CPU cache; the history
        keys and values are block-diagonal over the heads, so one product serves them all
        (the measured gain is in the README's benchmarks).
        """
        items, levels, valid = self.tokens.ids(batch)
        n_users = items.shape[0]
        hist = self._embed(items) + self.tokens.rating(levels) + self.position[: self.length]
        allowed_hist = self._allowed(valid)[:, : self.length, : self.length]
        keys_hist, vals_hist = [], []
        for block in self.blocks:  # history through every block, caching its keys and values
            q, k, v = (block._split(t) for t in block.qkv(hist).chunk(3, -1))
            keys_hist.append(k)
            vals_hist.append(v)
            hist = block.finish(hist, block.attend(q, k, v, allowed_hist))
        history = (hist * valid[..., None]).flatten(1)
        user_proj = self.mlp.project_user(torch.cat([history, self.user(batch["user"])], -1))
        all_items = torch.arange(n_items, device=items.device)
        no_rating = self.tokens.rating.weight[0]
        target0 = self._embed(all_items) + no_rating + self.position[self.length]  # (n_items, d)
        d, heads = target0.shape[-1], self.blocks[0].heads
        scale = (d // heads) ** -0.5
        # The first block's target projections do not depend on the user: computed once.
        first_q, first_k, first_v = (
            self.blocks[0]._split(z) for z in self.blocks[0].qkv(target0).chunk(3, -1)
        )
        first_self = (first_q * first_k).sum(-1, keepdim=True) * scale  # (n_items, H, 1)
        first_q = first_q.flatten(-2)  # (n_items, d)
        # Each user's cached history keys and values as block-diagonal (d, H * L) and
        # (H * L, d) matrices: one matrix product then scores (pre-scaled) or mixes every
        # head at once, instead of a batch of tiny per-head products.
        eye = torch.eye(heads, device=items.device)
        keys_bd = [
            torch.einsum("ulhe,hg->uhegl", k * scale, eye).flatten(1, 2).flatten(2)
            for k in keys_hist
        ]
        vals_bd = [
            torch.einsum("ulhe,hg->uhlge", v, eye).flatten(1, 2).flatten(2) for v in vals_hist
        ]
        # The movie-side features enter the first dense layer as a per-movie constant.
        w_item = self.mlp.first.weight[:, self.mlp.user_dim :]
        side_proj = self.side.item(all_items) @ w_item[:, d:].T + self.mlp.first.bias
        layers = self.mlp.eval_layers()
        w_target = w_item[:, :d].T.contiguous()
        user_ids = batch["user"]

        def tile(sl: slice, il: slice) -> torch.Tensor:
            """Ratings of movies ``il`` for users ``sl``, ``(b, n)``: the target token through
            every block (softmax over history keys + itself, written out), then the MLP."""
            b, n = user_proj[sl].shape[0], target0[il].shape[0]
            t = target0[None, il].expand(b, -1, -1)  # (b, n, d)
            masked = ~valid[sl][:, None, None, :]  # padding keys, (b, 1, 1, L)
            for j, block in enumerate(self.blocks):
                if j == 0:
                    q, v, s_self = first_q[il], first_v[il], first_self[il]
                else:
                    q, k, v = block.qkv(t).chunk(3, -1)
                    v = block._split(v)
                    s_self = (block._split(q) * block._split(k)).sum(-1, keepdim=True) * scale
                s_hist = torch.matmul(q, keys_bd[j][sl]).view(b, n, heads, -1)
                s_hist = s_hist.masked_fill_(masked, -torch.inf)
                top = torch.maximum(s_hist.amax(-1, keepdim=True), s_self)
                e_hist, e_self = s_hist.sub_(top).exp_(), (s_self - top).exp_()
                total = e_hist.sum(-1, keepdim=True).add_(e_self)
                mixed = torch.matmul(e_hist.view(b, n, -1), vals_bd[j][sl]).view(b, n, heads, -1)
                t = block.finish(t, mixed.add_(e_self * v).div_(total).flatten(-2))
            pre = (t.reshape(b * n, d) @ w_target).view(b, n, -1)  # (b, n, h), summed in place
            pre += side_proj[None, il]
            pre += user_proj[sl][:, None, :]
            logits = dense_tail(pre.view(b * n, -1), layers).view(b, n)
            if self.bias is not None:
                logits = logits + self.bias.rows(user_ids[sl], il)
            return self.out(logits)

        out = torch.empty((n_users, n_items), device=items.device)
        users_per, items_per = max(1, budget // n_items), min(n_items, budget)
        for lo in range(0, n_users, users_per):
            for i0 in range(0, n_items, items_per):
                sl, il = slice(lo, lo + users_per), slice(i0, i0 + items_per)
                out[sl, il] = tile(sl, il)
        return out


class RecurrentRater(nn.Module):
    """LSTM/GRU over the history; its last state with user and target features through dense layers."""

    def __init__(self, data: Processed, p: RNNParams, length: int) -> None:
        super().__init__()
        self.length = length
        d = p.dim
        self.side = SideFeatures(user_features(data, p.user_features), item_features(data), d)
        self.tokens = HistoryTokens(data.n_items, d, data.rating_levels, length)
        cell = nn.LSTM if p.cell == "lstm" else nn.GRU
        self.rnn = cell(d, p.hidden, num_layers=p.rnn_layers, batch_first=True)
        self.empty = nn.Parameter(torch.zeros(p.hidden))  # state for users with no history yet
        self.user = UserPart(data.n_users, d, self.side, p.user_id, p.user_features)
        self.mlp = PairMLP(
            self.user.dim + p.hidden, d + self.side.item_dim, list(p.layers), p.dropout
        )
        self.bias = PairBias(data.n_users, data.n_items) if p.biases else None
        self.out = RatingRange(padded_range(data, p.range_pad), train_mean(data))

    def encode(self, batch: Batch) -> torch.Tensor:
        """``(B, hidden)``: the final state after the user's real history (padding skipped)."""
        items, levels, valid = self.tokens.ids(batch)
        n = batch["hist_len"].clamp(max=self.length)
        # Left-padded -> right-padded: the output at step n - 1 is then the state after
        # the real ratings alone (what follows cannot reach it). Unpacked input runs the
        # fused recurrent kernel, 1.3x faster to train than a packed sequence on CPU.
        pos = torch.arange(self.length, device=n.device)[None, :] + (self.length - n)[:, None]
        pos = pos.clamp(max=self.length - 1)
        x = self.tokens.item(items.gather(1, pos)) + self.tokens.rating(levels.gather(1, pos))
        out, _ = self.rnn(x)
        h = out[torch.arange(len(n), device=n.device), (n - 1).clamp(min=0)]
        return torch.where((n > 0)[:, None], h, self.empty.to(h.dtype))

    def user_part(self, batch: Batch) -> torch.Tensor:
        return torch.cat([self.encode(batch), self.user(batch["user"])], -1)

    def item_part(self, item: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.tokens.item(item), self.side.item(item)], -1)

    def predict(self, batch: Batch) -> torch.Tensor:
        logit = self.mlp(self.user_part(batch), self.item_part(batch["item"]))
        if self.bias is not None:
            logit = logit + self.bias(batch["user"], batch["item"])
        return self.out(logit)

    def loss(self, batch: Batch) -> torch.Tensor:
        return nn.functional.mse_loss(self.predict(batch), batch["rating"])

    def score_users(self, batch: Batch, n_items: int) -> torch.Tensor:
        """The history is encoded once per user; the dense part is split per side."""
        users = batch["user"]
        items = torch.arange(n_items, device=users.device)
        out = torch.empty((len(users), n_items), device=users.device)
        for lo, logits in self.mlp.rows(self.user_part(batch), self.item_part(items)):
            if self.bias is not None:
                logits = logits + self.bias.rows(users[lo : lo + logits.shape[0]])
            out[lo : lo + logits.shape[0]] = self.out(logits)
        return out


# ------------------------------------------------------------------------------ recommenders


class SequenceRecommender(TorchRecommender):
    """Reads per-rating windows from ``sequences.npz``; ranks against the latest window."""

    needs = ("sequences",)
    provides = frozenset({"hidden_units"})
    scores_are_ratings = False  # rating rows use their own windows, rankings the latest one

    def _length(self, data: Processed) -> int:
        seq = data.sequences
        if not bool(seq["available"]):
            raise DataError(
                f"{self.name} needs the order of each user's ratings, but {data.meta['dataset']} "
                f"has no timestamps ({seq['reason']}); remove {self.name} from train.models"
            )
        return int(seq["length"])

    def split_inputs(self, data: Processed, split: str) -> dict[str, torch.Tensor]:
        seq = data.sequences
        part = data.splits[split]
        if not (
            np.array_equal(seq[f"{split}_user"], part.user)
            and np.array_equal(seq[f"{split}_item"], part.item)
        ):
            raise DataError(
                f"{data.folder}/sequences.npz does not match ratings.parquet; rerun `dvc repro preprocess`"
            )
        return {
            "user": torch.from_numpy(part.user.astype(np.int64)),
            "item": torch.from_numpy(part.item.astype(np.int64)),
            "hist_items": torch.from_numpy(seq[f"{split}_hist_items"].astype(np.int64)),
            "hist_ratings": torch.from_numpy(seq[f"{split}_hist_ratings"]),
            "hist_len": torch.from_numpy(seq[f"{split}_hist_len"].astype(np.int64)),
            "rating": torch.from_numpy(part.rating),
        }

    def _latest(self) -> dict[str, torch.Tensor]:
        if getattr(self, "latest_", None) is None:
            windows = latest_windows(self.data_, self._length(self.data_))
            self.latest_ = {k: torch.from_numpy(v).to(self.device_) for k, v in windows.items()}
        return self.latest_

    def predict_split(self, data: Processed, split: str) -> np.ndarray:
        batch = self.split_inputs(data, split)
        batch.pop("rating")
        return self._predict_batch(batch)

    def _predict_batch(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        batch = {k: v.to(self.device_) for k, v in batch.items()}
        return predict_tensors(self.module_, batch, self.eval_batch).cpu().numpy()

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Ratings for new pairs, given each user's latest training history."""
        latest = self._latest()
        u = torch.from_numpy(np.asarray(user, dtype=np.int64)).to(self.device_)
        batch = {k: v[u] for k, v in latest.items()}
        batch |= {"user": u, "item": torch.from_numpy(np.asarray(item, dtype=np.int64))}
        return self._predict_batch(batch)

    def user_batch(self, users: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every movie is ranked against the user's latest training window."""
        return {k: v[users] for k, v in self._latest().items()} | {"user": users}

    def hidden_mlp(self) -> nn.Module:
        return self.module_.mlp

    def set_state(self, state, data: Processed) -> None:
        self.latest_ = None
        super().set_state(state, data)


class BST(SequenceRecommender):
    name = "bst"

    def build(self, data: Processed) -> nn.Module:
        self.latest_ = None
        return BehaviorSequenceTransformer(data, self.params, self._length(data))

    def row_scorer(self):
        if self.params.history_sees_target:  # every (user, movie) pair needs its own pass
            return None
        return self.module_.rank  # history states cached per user, one token per candidate


class RNN(SequenceRecommender):
    name = "rnn"

    def build(self, data: Processed) -> nn.Module:
        self.latest_ = None
        return RecurrentRater(data, self.params, self._length(data))
