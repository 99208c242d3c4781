"""CUDA bugs caught on a CPU-only machine: inside the training and scoring loops no
torch family creates a tensor without naming its device.

A tensor made without ``device=`` lands on the CPU; next to a model on a GPU it either
fails ("expected all tensors on the same device") or copies host to device every batch.
On CPU both go unnoticed, so the test intercepts tensor factories (a TorchFunctionMode)
while the Trainer runs and while the fitted model scores, and names each call site in
``movierec`` that did not say where its tensor belongs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import movierec
from movierec.config.params import load_params
from movierec.data.processed import load_processed
from movierec.evaluation.protocol import ranking_validation
from movierec.models.base import FitContext
from movierec.models.registry import MODELS, create
from movierec.models.torch_base import TorchRecommender
from movierec.train.trainer import Trainer

PACKAGE = str(Path(movierec.__file__).parent)
FACTORIES = {
    torch.zeros,
    torch.ones,
    torch.empty,
    torch.full,
    torch.arange,
    torch.tensor,
    torch.randperm,
    torch.rand,
    torch.randn,
    torch.randint,
    torch.linspace,
    torch.eye,
}
TORCH_FAMILIES = [n for n, (cls, _) in MODELS.items() if issubclass(cls, TorchRecommender)]


class ImplicitDeviceCalls(TorchFunctionMode):
    """Records ``file:line`` of every factory called from movierec without ``device=``."""

    def __init__(self, root: str = PACKAGE) -> None:
        super().__init__()
        self.root = root
        self.sites: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and "device" not in kwargs:
            caller = sys._getframe(1)
            if caller.f_code.co_filename.startswith(self.root):
                self.sites.add(f"{Path(caller.f_code.co_filename).name}:{caller.f_lineno}")
        return func(*args, **kwargs)


def test_the_check_names_a_tensor_made_without_a_device():
    watch = ImplicitDeviceCalls(root=__file__)
    with watch:
        torch.zeros(3, device="cpu")  # said where: fine
        ones = torch.ones(2)  # not said: reported
    assert ones.shape == (2,)
    assert len(watch.sites) == 1 and next(iter(watch.sites)).startswith(Path(__file__).name)


def test_the_checked_families_are_the_torch_ones():
    assert {"mf_bias", "mlp", "autorec_item", "bst", "sasrec", "sparse_fc"} <= set(TORCH_FAMILIES)
    assert "bias" not in TORCH_FAMILIES and "ease" not in TORCH_FAMILIES


@pytest.mark.parametrize("name", TORCH_FAMILIES)
def test_no_tensor_is_made_without_a_device_in_training_or_scoring(tiny_project, monkeypatch, name):
    watch = ImplicitDeviceCalls()
    fit = Trainer.fit

    def watched_fit(self, module, train, val):
        with watch:
            return fit(self, module, train, val)

    monkeypatch.setattr(Trainer, "fit", watched_fit)
    data = load_processed()
    model = create(name, load_params())
    model.fit(data.for_training(), FitContext(seed=1, device="cpu", progress=False, rank_validation=ranking_validation))
    users = np.arange(min(7, data.n_users))
    with watch:
        rows = model.score_users(users)
        if model.predicts_ratings:
            model.predict(users, users % data.n_items)
    assert rows.shape == (len(users), data.n_items)
    assert not watch.sites, f"{name}: tensors made without device= at {sorted(watch.sites)}"
