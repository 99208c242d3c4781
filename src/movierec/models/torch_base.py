"""Plumbing shared by the torch families: tensors in, Trainer, save / load, scoring."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from movierec.dataset import Processed
from movierec.models.base import FitContext, FitReport, Recommender
from movierec.training import (
    EpochLog,
    TrainConfig,
    Trainer,
    predict_tensors,
    resolve_device,
    seed_everything,
)


class TorchRecommender(Recommender):
    """A :class:`Recommender` whose state is an ``nn.Module`` trained by the shared Trainer.

    Subclasses build the module (``build``), turn rows into input tensors
    (``inputs``), and may override ``score_users`` with a faster full-row scorer.
    """

    module_: nn.Module
    device_: torch.device
    eval_batch: ClassVar[int] = 65536

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

        def on_epoch(log: EpochLog) -> None:
            if ctx.log_epoch is not None:
                ctx.log_epoch(
                    {
                        "epoch": log.epoch,
                        "train_loss": log.train_loss,
                        "val_rmse": log.val_rmse,
                        "val_mae": log.val_mae,
                        "seconds": log.seconds,
                    }
                )

        trainer = Trainer(
            cfg,
            device=self.device_,
            seed=ctx.seed,
            amp=ctx.amp,
            on_epoch=on_epoch,
            progress=ctx.progress,
        )
        start = time.perf_counter()
        result = trainer.fit(
            self.module_, self.split_inputs(data, "train"), self.split_inputs(data, "val")
        )
        history = [
            {
                "epoch": h.epoch,
                "train_loss": h.train_loss,
                "val_rmse": h.val_rmse,
                "val_mae": h.val_mae,
                "seconds": h.seconds,
            }
            for h in result.history
        ]
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

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Generic full rows: predict every (user, item) pair of the chunk."""
        n_items = self.data_.n_items
        user = np.repeat(np.asarray(users), n_items)
        item = np.tile(np.arange(n_items), len(users))
        return self.predict(user, item).reshape(len(users), n_items)

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
