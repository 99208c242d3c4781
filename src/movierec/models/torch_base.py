"""Plumbing shared by the torch families: tensors in, Trainer, save / load, scoring."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from movierec.data.processed import Processed
from movierec.errors import ConfigError
from movierec.models.base import FitContext, FitReport, Recommender
from movierec.train.budget import Budget
from movierec.train.trainer import (
    EpochLog,
    TrainConfig,
    Trainer,
    Validation,
    predict_tensors,
    resolve_device,
    seed_everything,
)


class TorchRecommender(Recommender):
    """A :class:`Recommender` whose state is an ``nn.Module`` trained by the shared Trainer.

    Subclasses build the module (``build``), turn rows into input tensors
    (``inputs``), and may override ``score_users`` with a faster full-row scorer.
    """

    data_parallel = True
    module_: nn.Module
    device_: torch.device
    eval_batch: ClassVar[int] = 65536
    pair_budget: ClassVar[int] = 1 << 15  # (user, movie) pairs per pass without a row scorer

    def build(self, data: Processed) -> nn.Module:
        raise NotImplementedError

    def inputs(
        self, data: Processed, user: np.ndarray, item: np.ndarray
    ) -> dict[str, torch.Tensor]:
        return {
            "user": torch.from_numpy(np.asarray(user, dtype=np.int64)),
            "item": torch.from_numpy(np.asarray(item, dtype=np.int64)),
        }

    def split_inputs(self, data: Processed, split: str) -> dict[str, torch.Tensor]:
        part = data.splits[split]
        batch = self.inputs(data, part.user, part.item)
        batch["rating"] = torch.from_numpy(part.rating)
        return batch

    def train_inputs(self, data: Processed) -> dict[str, torch.Tensor]:
        """The rows the Trainer batches over (rating triples; rankers: users or pairs)."""
        return self.split_inputs(data, "train")

    def validation(self, data: Processed, ctx: FitContext) -> Validation | dict[str, torch.Tensor]:
        """What early stopping watches: the val ratings (RMSE) unless a family says otherwise."""
        return self.split_inputs(data, "val")

    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        seed_everything(ctx.seed)
        self.data_ = data
        self.device_ = resolve_device(ctx.device)
        self.module_ = self.build(data)
        cfg = TrainConfig(
            **{
                k: v
                for k, v in asdict(self.params).items()
                if k in TrainConfig.__dataclass_fields__
            }
        )
        if ctx.epochs:  # a refit: the epochs selected on val, no validation of its own
            cfg.epochs = ctx.epochs

        def entry(log: EpochLog) -> dict[str, float]:
            return {"epoch": log.epoch, "train_loss": log.train_loss, **log.metrics} | {
                "seconds": log.seconds
            }

        def on_epoch(log: EpochLog) -> None:
            if ctx.log_epoch is not None:
                ctx.log_epoch(entry(log))

        trainer = Trainer(
            cfg,
            device=self.device_,
            seed=ctx.seed,
            amp=ctx.amp,
            on_epoch=on_epoch,
            progress=ctx.progress,
            data_parallel=self.data_parallel,
            budget=Budget(
                ctx.max_hours,
                f"training {self.name} ({cfg.epochs} epochs at most)",
                "train.max_hours",
                f"train it on a GPU (`train.device: cuda`), lower "
                f"`{self.params_key.format(name=self.name)}.epochs`",
            ),
        )
        start = time.perf_counter()
        val = None if ctx.epochs else self.validation(data, ctx)
        result = trainer.fit(self.module_, self.train_inputs(data), val)
        history = [entry(h) for h in result.history]
        return FitReport(
            time.perf_counter() - start,
            len(result.history),
            result.best_epoch,
            result.seconds_to_best,
            self.device_.type,
            history,
        )

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        batch = {k: v.to(self.device_) for k, v in self.inputs(self.data_, user, item).items()}
        return predict_tensors(self.module_, batch, self.eval_batch).cpu().numpy()

    # -- full-row scoring: one path for every torch family --------------------------------------
    def user_batch(self, users: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-user inputs for scoring every movie (sequence models add the latest window)."""
        return {"user": users}

    def row_scorer(self):
        """The module's ``score_users(batch, n_items)``, which shares work across candidates
        (one matrix product, the first layer split per side, cached history states), or
        None to score every (user, movie) pair."""
        return getattr(self.module_, "score_users", None)

    def finish_rows(self, users: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Post-processing of full rows (clipping, cold-start fallbacks)."""
        return rows

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """``(len(users), n_items)`` scores through :meth:`row_scorer`, else pair by pair."""
        module, n_items = self.module_, self.data_.n_items
        module.eval()
        u = torch.from_numpy(np.asarray(users, dtype=np.int64)).to(self.device_)
        with torch.no_grad():
            batch = self.user_batch(u)
            scorer = self.row_scorer()
            if scorer is not None:
                rows = scorer(batch, n_items).float().cpu()
            else:
                rows = torch.empty((len(u), n_items), device="cpu")  # filled from .cpu()
                items = torch.arange(n_items, device=self.device_)
                per_pass = max(1, self.pair_budget // n_items)
                for lo in range(0, len(u), per_pass):
                    part = {
                        k: v[lo : lo + per_pass].repeat_interleave(n_items, 0)
                        for k, v in batch.items()
                    }
                    part["item"] = items.repeat(len(part["user"]) // n_items)
                    rows[lo : lo + per_pass] = (
                        module.predict(part).float().reshape(-1, n_items).cpu()
                    )
        return self.finish_rows(np.asarray(users), rows.numpy())

    # -- capabilities (see Recommender.provides) ----------------------------------------------
    movie_table: ClassVar[str] = ""  # state key of the movie embedding table, if any

    def movie_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.movie_table:
            return super().movie_vectors()
        table = self.module_.state_dict()[self.movie_table].detach().float().cpu().numpy()
        rated = np.diff(self.data_.matrices["train"].tocsc().indptr) > 0  # untrained rows: noise
        return table, rated

    def hidden_mlp(self) -> nn.Module:
        """The dense block whose ReLU outputs the unit report reads."""
        raise NotImplementedError(f"{self.name} has no hidden units to report")

    def hidden_units(self, data: Processed, split: str, layer: int) -> np.ndarray:
        relus = [m for m in self.hidden_mlp().modules() if isinstance(m, nn.ReLU)]
        if not -len(relus) <= layer < len(relus):
            raise ConfigError(
                f"params.yaml: `insight.layer` must be in [-{len(relus)}, {len(relus)}) for {self.name}"
            )
        batch = self.split_inputs(data, split)
        batch.pop("rating", None)
        batch = {k: v.to(self.device_) for k, v in batch.items()}
        seen: list[torch.Tensor] = []
        hook = relus[layer].register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
        try:
            predict_tensors(self.module_, batch, self.eval_batch)
        finally:
            hook.remove()
        return torch.cat(seen).float().cpu().numpy()

    def state(self) -> dict[str, np.ndarray]:
        return {
            k: v.detach().cpu().float().numpy() if v.is_floating_point() else v.cpu().numpy()
            for k, v in self.module_.state_dict().items()
        }

    def set_state(self, state: dict[str, Any], data: Processed) -> None:
        self.data_ = data
        self.device_ = resolve_device("auto")
        self.module_ = self.build(data)
        self.module_.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
        self.module_.to(self.device_).eval()


def positive_pairs(data: Processed, min_rating: float) -> dict[str, torch.Tensor]:
    """The (user, movie) pairs a sampled-negative ranker learns to put first: the training
    ratings at or above ``min_rating`` (0: every rating)."""
    train = data.splits["train"]
    keep = train.rating >= min_rating
    return {
        "user": torch.from_numpy(train.user[keep].astype(np.int64)),
        "item": torch.from_numpy(train.item[keep].astype(np.int64)),
    }
