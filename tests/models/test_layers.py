"""The byte-drawn dropout of the MLP families' tower: the rate and expectation of
``nn.Dropout``, the seed's determinism, and nothing at all outside training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from movierec.models.layers import ByteDropout, fold_tail


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5])
def test_drops_the_rate_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    drop = ByteDropout(p).train()
    out = drop(torch.ones(400, 1000))
    dropped = float((out == 0).float().mean())
    assert abs(dropped - p) < 0.005  # 400,000 entries: the rate to within a few 1e-3
    scale = 256 / (256 - drop.cut)
    values = torch.unique(out).tolist()
    assert values[0] == 0.0 and len(values) == 2 and values[1] == pytest.approx(scale)
    assert abs(float(out.mean()) - 1.0) < 0.01  # the expectation of every entry is kept


def test_the_seed_fixes_the_mask_and_gradients_flow_through_kept_entries_only():
    x = torch.randn(64, 32, requires_grad=True)
    torch.manual_seed(7)
    a = ByteDropout(0.3).train()(x)
    torch.manual_seed(7)
    b = ByteDropout(0.3).train()(x)
    assert torch.equal(a, b)
    a.sum().backward()
    kept = a != 0
    assert torch.all(x.grad[~kept] == 0) and torch.all(x.grad[kept] > 1)


def test_identity_when_evaluating_or_at_rate_zero_and_folds_like_dropout():
    x = torch.randn(8, 4)
    assert ByteDropout(0.5).eval()(x) is x
    assert ByteDropout(0.0).train()(x) is x
    head = nn.Linear(4, 1)
    tail = [nn.ReLU(), nn.BatchNorm1d(4).eval(), ByteDropout(0.3).eval()]
    assert len(fold_tail(tail, head)) == 1  # treated as nn.Dropout when folding for full rows
