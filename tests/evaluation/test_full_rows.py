"""Full-row scoring (every user x every movie) equals pair-by-pair prediction.

The fast paths split the first dense layer per side, fold eval-mode BatchNorm into
the next Linear and block users (and movies, on wide catalogues); none of that may
change a score beyond float rounding. BatchNorm statistics are randomised so that
folding is really exercised (fresh layers have mean 0, variance 1).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from movierec.config.params import build_section
from movierec.models.layers import PairTerm, dense_tail, fold_tail, live_units, pair_rows
from movierec.models.registry import MODELS

CASES = [
    ("mlp", {"product": True}),
    ("mlp", {"product": False, "layers": [32, 16, 8]}),
    ("mlp_classifier", {}),
    ("wide_deep", {}),
    ("rnn", {}),
    ("bst", {}),
    ("bst", {"blocks": 2}),  # later blocks recompute the target's projections per user
]


@pytest.fixture(scope="module")
def data(tiny_processed):
    return tiny_processed


def _randomised(module: nn.Module) -> dict[str, np.ndarray]:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=gen))
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
            elif isinstance(m, nn.Embedding):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / m.in_features**0.5)
    return {k: v.numpy() for k, v in module.state_dict().items()}


def _first_layer(module: nn.Module) -> nn.Linear:
    return module.trunk.blocks[0] if hasattr(module, "trunk") else module.mlp.first


@pytest.mark.parametrize("dead", [False, True], ids=["all-units", "dead-units"])
@pytest.mark.parametrize(("name", "overrides"), CASES)
def test_full_rows_equal_pairwise_predictions(data, name, overrides, dead):
    cls, pcls = MODELS[name]
    model = cls(build_section(pcls, overrides, f"models.{name}"))
    torch.manual_seed(1)
    module = model.build(data)
    state = _randomised(module)
    if dead:  # units no pair can switch on: full rows leave them out
        bias = _first_layer(module).bias
        key = next(k for k, v in module.state_dict().items() if v.data_ptr() == bias.data_ptr())
        state[key][::3] = -1e3
    model.set_state(state, data)
    users = np.arange(min(12, data.n_users))
    rows = model.score_users(users)
    pair_user = np.repeat(users, data.n_items)
    pair_item = np.tile(np.arange(data.n_items), len(users))
    pairwise = model.predict(pair_user, pair_item).reshape(len(users), data.n_items)
    assert rows.shape == (len(users), data.n_items)
    assert rows.std() > 0.03  # the randomised layers really spread the scores
    np.testing.assert_allclose(rows, pairwise, atol=2e-4)


@pytest.mark.parametrize("blocks", [1, 2])
def test_bst_ranks_alike_in_user_tiles_and_movie_tiles(data, blocks):
    cls, pcls = MODELS["bst"]
    model = cls(build_section(pcls, {"blocks": blocks}, "models.bst"))
    torch.manual_seed(1)
    model.set_state(_randomised(model.build(data)), data)
    users = torch.arange(min(12, data.n_users))
    batch = model.user_batch(users)
    whole = model.module_.rank(batch, data.n_items, budget=data.n_items * len(users))
    assert data.n_items > 3
    for budget in (data.n_items * 5, data.n_items // 3):  # 5 users a tile / a third of the movies
        tiled = model.module_.rank(batch, data.n_items, budget=budget)
        torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=0)


def test_pair_rows_blocks_movies_on_wide_catalogues():
    gen = torch.Generator().manual_seed(2)
    up, ip = torch.randn(5, 8, generator=gen), torch.randn(37, 8, generator=gen)
    layers = [(torch.randn(6, 8, generator=gen), torch.randn(6, generator=gen))]
    layers.append((torch.randn(2, 6, generator=gen), torch.randn(2, generator=gen)))
    whole = torch.cat([out for _, out in pair_rows(up, ip, layers)])
    blocked = torch.cat([out for _, out in pair_rows(up, ip, layers, budget=8 * 4)])  # 4 movies
    reference = dense_tail((up[:, None, :] + ip[None]).reshape(-1, 8), layers).reshape(5, 37, 2)
    torch.testing.assert_close(whole, reference)
    torch.testing.assert_close(blocked, reference)


@pytest.mark.parametrize("budget", [None, 8 * 4])
def test_pair_term_adds_the_product_in_user_and_movie_blocks(budget):
    """``(u * i) @ Wp^T`` added per block equals the product written out per pair, with
    users in blocks and (small budget) movies in blocks."""
    gen = torch.Generator().manual_seed(4)
    up, ip = torch.randn(5, 8, generator=gen), torch.randn(37, 8, generator=gen)
    u, i, wp = (torch.randn(n, 3, generator=gen) for n in (5, 37, 8))
    layers = [(torch.randn(2, 8, generator=gen), torch.randn(2, generator=gen))]
    kwargs = {} if budget is None else {"budget": budget}
    got = torch.cat(
        [o for _, o in pair_rows(up, ip, layers, pair_term=PairTerm(u, i, wp), **kwargs)]
    )
    pre = up[:, None, :] + ip[None] + (u[:, None, :] * i[None]) @ wp.T  # (5, 37, 8)
    reference = dense_tail(pre.reshape(-1, 8), layers).reshape(5, 37, 2)
    torch.testing.assert_close(got, reference)
    assert (PairTerm(u, i, wp).bound()[None, None] >= (u[:, None, :] * i[None]) @ wp.T - 1e-6).all()


def test_fold_tail_equals_the_layers_it_folds():
    torch.manual_seed(3)
    tail = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(6), nn.Dropout(0.5), nn.Linear(6, 4))
    tail.append(nn.ReLU())
    tail.append(nn.BatchNorm1d(4))
    head = nn.Linear(4, 3)
    _randomised(tail)
    tail.eval()
    x = torch.randn(50, 6)
    with torch.no_grad():
        torch.testing.assert_close(
            dense_tail(x.clone(), fold_tail(tail, head)), head(tail(x)), atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize(
    "tail",
    [
        [nn.Tanh()],  # an activation it cannot fold
        [nn.ReLU(), nn.BatchNorm1d(4).train()],  # batch statistics: not an affine map
        [nn.BatchNorm1d(4).eval()],  # BatchNorm before the ReLU
    ],
)
def test_fold_tail_refuses_what_it_cannot_fold(tail):
    with pytest.raises(ValueError, match="fold_tail"):
        fold_tail(tail, nn.Linear(4, 1))


def test_live_units_are_those_some_pair_can_switch_on():
    user_part = torch.tensor([[1.0, -5.0, 0.0], [2.0, -4.0, 0.0]])
    item_part = torch.tensor([[0.0, 3.0, -1.0], [-1.0, 5.0, 0.0]])
    # unit 0: 2 + 0 > 0; unit 1: -4 + 5 > 0; unit 2: 0 + 0 is never positive
    assert live_units(user_part, item_part).tolist() == [True, True, False]
    assert live_units(user_part, item_part, torch.tensor([0.0, 0.0, 0.5])) is None  # all alive
