"""sparse_fc: kernel-masked weights, full-batch L-BFGS in the shared Trainer, full rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from movierec.config.params import ConfigError, build_section
from movierec.models.base import FitContext
from movierec.models.registry import MODELS
from movierec.models.sparse_fc import KernelLinear, SparseFCParams
from movierec.train.trainer import LBFGS_ITERATIONS, TrainConfig, Trainer


def test_kernel_zeroes_weights_whose_points_lie_apart():
    layer = KernelLinear(3, 2, dim=2)
    with torch.no_grad():
        layer.u.copy_(torch.tensor([[0.0, 0.0], [0.6, 0.0], [2.0, 0.0]]))
        layer.v.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.8]]))
    k = layer.kernel()
    want = torch.tensor([[1.0, 1 - 0.36, 0.0], [1 - 0.64, 1 - 1.0, 0.0]])
    torch.testing.assert_close(k, want.clamp_min(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(layer.weight, layer.raw * want.clamp_min(0), atol=1e-6, rtol=0)
    x = torch.randn(4, 3)
    torch.testing.assert_close(layer(x), x @ layer.weight.T + layer.bias)


def test_lbfgs_epochs_take_full_batch_steps_to_the_least_squares_solution():
    torch.manual_seed(0)
    x = torch.randn(200, 4)
    y = x @ torch.tensor([0.5, -1.0, 2.0, 0.3]) + 1.5 + 0.1 * torch.randn(200)
    seen: list[int] = []

    class Regression(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)

        def loss(self, batch):
            seen.append(batch["x"].shape[0])
            return torch.mean((self.lin(batch["x"]).squeeze(1) - batch["rating"]) ** 2)

        def predict(self, batch):
            return self.lin(batch["x"]).squeeze(1)

    module = Regression()
    cfg = TrainConfig(epochs=4, batch_size=16, optimizer="lbfgs", lr=1.0)
    result = Trainer(cfg, device=torch.device("cpu"), seed=0, progress=False).fit(
        module, {"x": x, "rating": y}, None
    )
    assert len(result.history) == 4
    assert set(seen) == {200}  # every evaluation sees every row, whatever batch_size says
    assert len(seen) <= 4 * LBFGS_ITERATIONS * 25  # line searches included, bounded
    design = torch.cat([x, torch.ones(200, 1)], 1)
    exact = torch.linalg.lstsq(design, y[:, None]).solution.squeeze(1)
    fitted = torch.cat([module.lin.weight[0], module.lin.bias]).detach()
    torch.testing.assert_close(fitted, exact, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"weight_decay": 0.01}, "weight_decay: 0"),
        ({"schedule": "onecycle"}, "schedule: constant"),
        ({"noise": "gaussian", "noise_factor": 0.1}, "deterministic objective"),
        ({"code_dropout": 0.5}, "deterministic objective"),
        ({"refeed": True}, "refeed"),
        ({"kernel_dim": 0}, "kernel_dim"),
        ({"l2": -1.0}, "l2"),
    ],
)
def test_settings_lbfgs_cannot_honour_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_section(SparseFCParams, overrides, "models.sparse_fc")


@pytest.fixture(scope="module")
def data(tiny_processed):
    return tiny_processed


def test_full_rows_equal_pairwise_predictions_and_the_fit_is_seeded(data):
    cls, pcls = MODELS["sparse_fc"]
    params = build_section(pcls, {"hidden": [16, 16], "l2": 1.0, "epochs": 3}, "m")
    model = cls(params)
    model.fit(data.for_training(), FitContext(seed=1, device="cpu", progress=False))
    users = np.arange(min(10, data.n_users))
    rows = model.score_users(users)
    pair_user = np.repeat(users, data.n_items)
    pair_item = np.tile(np.arange(data.n_items), len(users))
    pairwise = model.predict(pair_user, pair_item).reshape(len(users), data.n_items)
    np.testing.assert_allclose(rows, pairwise, rtol=1e-5, atol=1e-5)
    again = cls(params)
    again.fit(data.for_training(), FitContext(seed=1, device="cpu", progress=False))
    np.testing.assert_array_equal(again.score_users(users), rows)
