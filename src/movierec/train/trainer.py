"""One Trainer for every torch model.

Mini-batches are slices of tensors already on the device (a shuffled index per
epoch; no DataLoader, no per-sample Python). The optimizer, learning-rate
schedule, weight decay, early stopping on validation RMSE (restoring the best
weights) and mixed precision on CUDA are all driven by :class:`TrainConfig`.

Under ``torchrun`` the same loop is data parallel: every rank draws the same shuffled
batches and trains on its slice of each, ``DistributedDataParallel`` averages the
gradients, rank 0 validates and broadcasts the result, so every rank stops at the same
epoch with the same weights.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from movierec.config import checks
from movierec.config.params import ConfigError
from movierec.train import distributed
from movierec.train.budget import PROBE_SECONDS, Budget

Batch = dict[str, torch.Tensor]
Optimizer = Literal["adam", "adamw", "adamax", "adagrad", "sgd", "sparse_adam", "lbfgs"]
LBFGS_ITERATIONS = 5  # an L-BFGS epoch: this many quasi-Newton steps on the whole training set
Schedule = Literal["constant", "onecycle"]


@dataclass
class TrainConfig:
    """Training hyper-parameters; every torch model's params section extends these."""

    epochs: int = 20
    batch_size: int = 1024
    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: Schedule = "constant"
    patience: int = 3  # validations without a better value before stopping
    min_delta: float = 0.0
    # Validate every this many epochs (and after the last): a full-ranking validation of a
    # large catalogue can cost more than the epoch it judges.
    validate_every: int = 1

    def validate(self, key: str) -> None:
        checks.at_least_one(
            key, epochs=self.epochs, batch_size=self.batch_size, validate_every=self.validate_every
        )
        if not self.lr > 0:
            raise ConfigError(
                f"params.yaml: `{key}.lr` must be a positive learning rate (got {self.lr})"
            )
        checks.non_negative(key, weight_decay=self.weight_decay)
        checks.at_least_one(key, patience=self.patience)
        if self.optimizer == "lbfgs" and (self.schedule != "constant" or self.weight_decay):
            raise ConfigError(
                f"params.yaml: `{key}.optimizer: lbfgs` takes full-batch steps with its own "
                "line search: set `schedule: constant` and `weight_decay: 0` (a model trained "
                "this way carries its penalties in its loss)"
            )


class TrainableModule(Protocol):
    """What the Trainer needs from a model: a loss and a rating prediction per batch."""

    def loss(self, batch: Batch) -> torch.Tensor: ...

    def predict(self, batch: Batch) -> torch.Tensor: ...


@dataclass
class Validation:
    """What early stopping watches: ``compute(module)`` returns named validation metrics,
    ``key`` names the one that selects the epoch (RMSE for rating models, NDCG@k for rankers)."""

    key: str
    higher_is_better: bool
    compute: Callable[[nn.Module], dict[str, float]]


def rmse_validation(val: Batch) -> Validation:
    """Validation RMSE (and MAE) of the module's rating predictions on the val rows."""

    def compute(module: nn.Module) -> dict[str, float]:
        pred = predict_tensors(module, val)
        err = pred - val["rating"].float()
        return {
            "val_rmse": float(torch.sqrt(torch.mean(err**2))),
            "val_mae": float(torch.mean(err.abs())),
        }

    return Validation("val_rmse", False, compute)


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    metrics: dict[str, float]
    seconds: float

    @property
    def val_rmse(self) -> float:
        return self.metrics.get("val_rmse", math.nan)

    @property
    def val_mae(self) -> float:
        return self.metrics.get("val_mae", math.nan)


@dataclass
class TrainResult:
    history: list[EpochLog]
    best_epoch: int
    best_value: float
    seconds: float
    seconds_to_best: float


def seed_everything(seed: int) -> None:
    """One seed for python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            "params.yaml: `train.device` is cuda, but no CUDA device is available; use auto or cpu"
        )
    return torch.device(name)


def make_optimizer(module: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer; the fused kernel where torch has one (2-3x faster steps)."""
    params = [p for p in module.parameters() if p.requires_grad]
    wd = cfg.weight_decay
    if cfg.optimizer == "sparse_adam":
        return torch.optim.SparseAdam(params, lr=cfg.lr)  # decay, if any, belongs in the loss
    if cfg.optimizer == "lbfgs":
        return torch.optim.LBFGS(
            params,
            lr=cfg.lr,
            max_iter=LBFGS_ITERATIONS,
            history_size=10,
            line_search_fn="strong_wolfe",
        )
    kinds: dict[str, tuple[type[torch.optim.Optimizer], dict]] = {
        "adam": (torch.optim.Adam, {"weight_decay": wd}),
        "adamw": (torch.optim.AdamW, {"weight_decay": wd}),
        "adamax": (torch.optim.Adamax, {"weight_decay": wd}),
        "adagrad": (torch.optim.Adagrad, {"weight_decay": wd}),
        "sgd": (torch.optim.SGD, {"weight_decay": wd, "momentum": 0.9}),
    }
    cls, kwargs = kinds[cfg.optimizer]
    sparse = any(isinstance(m, nn.Embedding) and m.sparse for m in module.modules())
    if not sparse:  # the fused kernels take dense gradients only
        try:
            return cls(params, lr=cfg.lr, fused=True, **kwargs)
        except (TypeError, RuntimeError):
            pass
    return cls(params, lr=cfg.lr, **kwargs)


def _batches(
    n: int,
    size: int,
    generator: torch.Generator | None,
    device: torch.device,
    world: distributed.World | None = None,
):
    """Index batches of one epoch; with several ranks, this rank's slice of each batch
    (the same permutation everywhere: the generator is seeded alike on every rank)."""
    if generator is not None:
        order = torch.randperm(n, generator=generator, device="cpu")
    else:
        order = torch.arange(n, device="cpu")
    order = order.to(device)
    world = world or distributed.World()
    for start in range(0, n, size):
        batch = order[start : start + size]
        if world.size == 1:
            yield batch
        elif batch.shape[0] >= world.size:  # a tail too short to share is skipped by all
            yield batch.tensor_split(world.size)[world.rank]


class _LossOf(nn.Module):
    """``forward`` = the model's loss, so DistributedDataParallel sees (and syncs) it."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.module.loss(batch)


def _data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """The model wrapped for gradient all-reduce across the torchrun ranks."""
    if any(isinstance(m, nn.Embedding) and m.sparse for m in module.modules()):
        raise ConfigError(
            "data-parallel training needs dense gradients: set this model's `sparse: false` "
            "in params.yaml (or train it with train.launcher: python)"
        )
    return DistributedDataParallel(
        _LossOf(module),
        device_ids=[device.index] if device.type == "cuda" else None,
        forward_sync_buffers=False,  # buffers are built from the same data on every rank
        find_unused_parameters=False,
    )


@torch.no_grad()
def predict_tensors(module: nn.Module, data: Batch, batch_size: int = 65536) -> torch.Tensor:
    """Predictions for every row of ``data``, in large batches, in eval mode."""
    module.eval()
    n = next(iter(data.values())).shape[0]
    out = [
        module.predict({k: v[s : s + batch_size] for k, v in data.items()}).float()
        for s in range(0, n, batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, device="cpu")


def judged_epochs(epochs: int, validate_every: int) -> int:
    """How many epochs of a run are validated: every ``validate_every``-th, and the last."""
    return epochs // validate_every + (epochs % validate_every > 0)


class Trainer:
    """Fits a module on in-memory tensors with early stopping on a validation metric
    (RMSE on the val ratings unless a :class:`Validation` says otherwise)."""

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        device: torch.device,
        seed: int,
        amp: bool = True,
        on_epoch: Callable[[EpochLog], None] | None = None,
        progress: bool | None = None,
        budget: Budget | None = None,
        data_parallel: bool = True,
    ) -> None:
        self.cfg = cfg
        self.budget = budget  # checked through the first epoch: refuse early, not after days
        self.device = device
        self.seed = seed
        self.amp = amp and device.type == "cuda"
        self.on_epoch = on_epoch
        self.progress = progress
        self.data_parallel = data_parallel  # False: rank 0 alone trains, even under torchrun


    def _precision(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast on CUDA with ``amp``; otherwise nothing (autocast is not even
        entered, so a device it does not know, such as ``meta`` in tests, runs too)."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)
    def fit(self, module: nn.Module, train: Batch, val: Batch | Validation | None) -> TrainResult:
        """Train with early stopping on ``val``, restoring the best epoch's weights; with
        ``val=None`` (a refit on train + val) exactly ``cfg.epochs`` epochs, keeping the last."""
        cfg = self.cfg
        module.to(self.device)
        train = {k: v.to(self.device) for k, v in train.items()}
        keep_last = val is None  # a refit: nothing to select, no metric to watch
        if val is None:
            val = Validation("train_loss", False, lambda _module: {})
        elif not isinstance(val, Validation):
            val = rmse_validation({k: v.to(self.device) for k, v in val.items()})
        sign = -1.0 if val.higher_is_better else 1.0  # internally: lower is better
        n = next(iter(train.values())).shape[0]  # rows to batch over (pairs, or matrix rows)
        full_batch = cfg.optimizer == "lbfgs"  # quasi-Newton steps need the whole objective
        batch_size = n if full_batch else cfg.batch_size
        steps = math.ceil(n / batch_size)
        optimizer = make_optimizer(module, cfg)
        scheduler = None
        if cfg.schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps
            )
        generator = torch.Generator().manual_seed(self.seed)
        world = distributed.current() if self.data_parallel else distributed.World()
        if full_batch and world.size > 1:  # each rank's line search would take its own steps
            raise ConfigError(
                "optimizer: lbfgs trains in one process; run it with `train.launcher: python`"
            )
        # ranks would time themselves apart and one refusing would hang the others
        budget = self.budget if world.size == 1 else None
        step = module.loss
        if world.size > 1:
            step = _data_parallel(module, self.device)
            if world.rank:  # own dropout / negative-sampling streams, derived from the seed
                torch.manual_seed(self.seed + world.rank)
        best, best_epoch = math.inf, 0
        best_state = None if keep_last else copy.deepcopy(module.state_dict())
        history: list[EpochLog] = []
        bad_epochs = 0
        first_epoch_seconds = 0.0
        budget_judged = False  # whether the budget has seen a validation's cost yet
        start = time.perf_counter()
        seconds_to_best = 0.0
        disable = None if self.progress is None else not self.progress  # None: only on a terminal
        bar = tqdm(
            range(1, cfg.epochs + 1), desc="epochs", unit="epoch", disable=disable, leave=False
        )
        for epoch in bar:
            t0 = time.perf_counter()
            module.train()
            total, rows = torch.zeros((), device=self.device), 0
            for b, idx in enumerate(_batches(n, batch_size, generator, self.device, world)):
                batch = {k: v[idx] for k, v in train.items()}
                if full_batch:

                    def closure(batch: Batch = batch) -> torch.Tensor:
                        optimizer.zero_grad(set_to_none=True)
                        loss = step(batch)  # full precision: the line search compares values
                        loss.backward()
                        return loss

                    loss = optimizer.step(closure)  # the objective before this epoch's steps
                else:
                    with self._precision():
                        loss = step(batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                total += loss.detach().float() * idx.shape[0]
                rows += idx.shape[0]
                # kernels run ahead on CUDA, so unsynced time is a lower bound: sync only
                # once even that has reached the probe, and time what is done
                if epoch == 1 and budget is not None and budget.hours > 0:
                    elapsed = time.perf_counter() - t0
                    if self.device.type == "cuda" and elapsed >= PROBE_SECONDS:
                        torch.cuda.synchronize(self.device)
                        elapsed = time.perf_counter() - t0
                    budget.check(elapsed, (b + 1) / (steps * cfg.epochs))
            if world.size > 1:  # the epoch's loss over every rank's rows
                distributed.all_sum(total, world)
                rows = int(distributed.all_sum(torch.tensor(rows, device=self.device), world))
            judged = keep_last or epoch % cfg.validate_every == 0 or epoch == cfg.epochs
            if epoch == 1:
                first_epoch_seconds = time.perf_counter() - t0  # training alone
            metrics: dict[str, float] = {}
            validation_seconds = 0.0
            if judged and not keep_last:
                v0 = time.perf_counter()
                metrics = distributed.broadcast(
                    val.compute(module) if world.is_main else None, world
                )
                validation_seconds = time.perf_counter() - v0
            train_loss = float(total) / rows
            value = train_loss if keep_last else metrics.get(val.key, math.nan)
            seconds = time.perf_counter() - t0
            if budget is not None and (epoch == 1 or (judged and not budget_judged)):
                # every epoch's training plus every validation's share, once both are known
                budget.check_run(
                    first_epoch_seconds * cfg.epochs
                    + validation_seconds * judged_epochs(cfg.epochs, cfg.validate_every),
                    time.perf_counter() - start,
                )
                budget_judged = judged
            if not math.isfinite(train_loss):
                raise ConfigError(
                    f"training diverged at epoch {epoch} (loss {train_loss}); lower the learning rate"
                )
            log = EpochLog(epoch, train_loss, metrics, seconds)
            history.append(log)
            if self.on_epoch is not None:
                self.on_epoch(log)
            bar.set_postfix(loss=f"{train_loss:.4f}", **{val.key: f"{value:.4f}"})
            if bar.disable and self.progress is None:  # not a terminal (dvc repro, CI): a line
                watched = f", {val.key.replace('_', ' ')} {value:.4f}" if metrics else ""
                print(
                    f"  epoch {epoch}/{cfg.epochs}: train loss {train_loss:.4f}{watched} "
                    f"({seconds:.1f}s)",
                    flush=True,
                )
            if not judged:  # nothing measured: no epoch to select, no patience spent
                continue
            if not math.isfinite(value):
                value = math.inf if not val.higher_is_better else -math.inf
            if keep_last:  # nothing to select: the last epoch is the model
                best, best_epoch = value, epoch
                seconds_to_best = time.perf_counter() - start
            elif sign * value < best - cfg.min_delta:
                best, best_epoch, bad_epochs = sign * value, epoch, 0
                best_state = copy.deepcopy(module.state_dict())
                seconds_to_best = time.perf_counter() - start
            else:
                bad_epochs += 1
                if bad_epochs >= cfg.patience:
                    break
        if not best_epoch:
            raise ConfigError(
                f"training learned nothing: no epoch gave a finite {val.key} (the val split "
                "may be empty, or the loss diverged); check the data and lower the learning rate"
            )
        if best_state is not None:
            module.load_state_dict(best_state)
        module.eval()
        return TrainResult(
            history, best_epoch, sign * best, time.perf_counter() - start, seconds_to_best
        )
