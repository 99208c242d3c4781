"""Sparse FC (Muller et al. 2018; the local kernel of GLocal-K, Han et al. 2021).

I-AutoRec whose every weight matrix is masked by a learned, finite-support kernel:
``W * K`` with ``K[j, i] = max(0, 1 - ||v_j - u_i||^2)`` for a learned point ``u_i``
per input and ``v_j`` per output in a few dimensions (``kernel_dim``). Where the two
points lie apart the weight is exactly zero, so the network learns its own sparse
connectivity instead of having it fixed. The objective is the published one: half the
sum of squared errors over observed ratings plus ``l2 / 2 * ||W||^2`` and
``kernel_l2 / 2 * ||K||^2`` (the latter pushes towards sparser kernels), minimised
with full-batch L-BFGS (``optimizer: lbfgs``: an epoch is five quasi-Newton steps on
every movie's row), the epochs selected on val like every other family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from movierec.config import checks
from movierec.config.params import ConfigError
from movierec.models.autorec import Activation, AutoEncoder, AutoRecItem, AutoRecParams
from movierec.train.trainer import Optimizer

Batch = dict[str, torch.Tensor]


@dataclass
class SparseFCParams(AutoRecParams):
    hidden: list[int] = field(default_factory=lambda: [500, 500])
    activation: Activation = "sigmoid"
    output_activation: Activation = "identity"
    kernel_dim: int = 5  # dimensions of the points whose distances shape the kernel
    l2: float = 20.0  # penalty on the weights W (the loss is a sum, so it scales with data)
    kernel_l2: float = 0.006  # penalty on the kernel K: larger, sparser connectivity
    optimizer: Optimizer = "lbfgs"
    lr: float = 1.0  # L-BFGS step scale (its line search picks the step length)
    weight_decay: float = 0.0
    epochs: int = 60
    patience: int = 8

    def validate(self, key: str) -> None:
        super().validate(key)
        checks.at_least_one(key, kernel_dim=self.kernel_dim)
        checks.non_negative(key, l2=self.l2, kernel_l2=self.kernel_l2)
        if self.optimizer == "lbfgs" and (self.noise != "none" or self.code_dropout > 0):
            raise ConfigError(
                f"params.yaml: `{key}`: L-BFGS needs a deterministic objective; set "
                "`noise: none` and `code_dropout: 0`, or another optimizer"
            )
        if self.refeed:
            raise ConfigError(
                f"params.yaml: `{key}.refeed` is for the dense autoencoders; sparse_fc's "
                "objective is the published one (set `refeed: false`)"
            )


class KernelLinear(nn.Module):
    """``nn.Linear`` whose weight is ``raw * kernel``: same ``weight`` / ``bias`` layout."""

    def __init__(self, n_in: int, n_out: int, dim: int) -> None:
        super().__init__()
        self.raw = nn.Parameter(torch.empty(n_out, n_in))
        nn.init.xavier_uniform_(self.raw)
        self.u = nn.Parameter(torch.randn(n_in, dim) * 1e-3)  # one point per input
        self.v = nn.Parameter(torch.randn(n_out, dim) * 1e-3)  # one point per output
        self.bias = nn.Parameter(torch.zeros(n_out))

    def kernel(self) -> torch.Tensor:
        """``(n_out, n_in)``: 1 where the points coincide, 0 from distance 1 on."""
        sq = (self.v**2).sum(1)[:, None] + (self.u**2).sum(1)[None, :] - 2 * self.v @ self.u.T
        return (1 - sq.clamp_min(0)).clamp_min(0)

    @property
    def weight(self) -> torch.Tensor:
        return self.raw * self.kernel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def penalty(self, l2: float, kernel_l2: float) -> torch.Tensor:
        return l2 / 2 * self.raw.square().sum() + kernel_l2 / 2 * self.kernel().square().sum()


class KernelAutoEncoder(AutoEncoder):
    """The AutoRec network with kernel-masked layers and the summed, penalised objective."""

    def linear(self, n_in: int, n_out: int) -> nn.Module:
        return KernelLinear(n_in, n_out, self.params.kernel_dim)

    def loss(self, batch: Batch) -> torch.Tensor:
        index = batch["row"]
        dense, mask = self.rows(index)
        out = self(self._input(dense, mask, index))
        errors = ((out - dense) ** 2 * mask).sum() / 2
        p = self.params
        layers = [m for m in self.modules() if isinstance(m, KernelLinear)]
        return errors + sum(layer.penalty(p.l2, p.kernel_l2) for layer in layers)


class SparseFC(AutoRecItem):
    """Kernel-sparsified I-AutoRec: each movie's vector of user ratings, reconstructed."""

    name = "sparse_fc"
    module_class = KernelAutoEncoder
    data_parallel = False  # full-batch L-BFGS: one process holds the whole objective
