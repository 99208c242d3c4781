"""AutoRec family: masked loss, inputs, subsets, cold fallback."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from movierec.config.params import build_section, load_params
from movierec.data.processed import load_processed
from movierec.models.autorec import (
    AutoEncoder,
    AutoRecParams,
    demographic_onehots,
    dense_rows,
    masked_mse,
)
from movierec.models.base import FitContext
from movierec.models.registry import MODELS
from movierec.pipeline.evaluate_step import evaluate_model
from movierec.pipeline.train_step import train_model


def test_masked_loss_ignores_unobserved_cells():
    torch.manual_seed(0)
    target = torch.randn(4, 6)
    mask = torch.rand(4, 6) > 0.5
    out = torch.randn(4, 6, requires_grad=True)
    loss = masked_mse(out, target, mask)
    changed = out.detach().clone()
    changed[~mask] += 100.0
    assert masked_mse(changed, target, mask) == pytest.approx(loss.item())
    loss.backward()
    assert (out.grad[~mask] == 0).all()
    assert (out.grad[mask] != 0).any()


def test_dense_rows_match_scipy():
    m = sp.random(20, 15, density=0.3, format="csr", dtype=np.float32, random_state=1)
    rows = torch.tensor([3, 0, 19, 3])
    dense, mask = dense_rows(
        torch.from_numpy(m.indptr.astype(np.int64)),
        torch.from_numpy(m.indices.astype(np.int64)),
        torch.from_numpy(m.data),
        rows,
        15,
    )
    assert np.allclose(dense.numpy(), m[rows.numpy()].toarray())
    assert np.array_equal(mask.numpy(), m[rows.numpy()].toarray() != 0)


def test_fill_and_demographic_shapes(tiny_project):
    data = load_processed()
    train = data.matrices["train"]
    onehot = demographic_onehots(data)
    assert (
        onehot.shape[0] == data.n_users and (onehot.sum(axis=1) == 3).all()
    )  # gender, age, occupation
    means = np.asarray(train.sum(axis=1)).ravel() / np.maximum(np.diff(train.indptr), 1)
    params = build_section(
        AutoRecParams, {"fill": "user_mean", "demographics": True}, "models.autorec_user"
    )
    module = AutoEncoder(
        train, torch.from_numpy(means.astype(np.float32)), torch.from_numpy(onehot), params, True
    )
    assert module.encoder[0].in_features == data.n_items + onehot.shape[1]
    assert module.decoder.out_features == data.n_items
    index = torch.tensor([0, 1])
    dense, mask = module.rows(index)
    x = module._input(dense, mask, index)
    assert x.shape == (2, data.n_items + onehot.shape[1])
    assert torch.allclose(
        x[0, : data.n_items][~mask[0]], torch.tensor(means[0], dtype=torch.float32)
    )
    assert torch.equal(x[:, data.n_items :], torch.from_numpy(onehot[:2]))


def test_item_autorec_has_no_demographics(tiny_project):
    data = load_processed()
    model = MODELS["autorec_item"][0](
        build_section(AutoRecParams, {"demographics": True, "epochs": 1}, "m")
    )
    with pytest.raises(Exception, match="demographics` is for user-based models"):
        model.fit(data, FitContext(progress=False))


def test_subset_trains_and_evaluates_only_matching_users(tiny_project):
    import yaml

    path = tiny_project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["models"]["deep_autorec"].update(subset={"gender": "F"}, epochs=1)
    path.write_text(yaml.safe_dump(params))
    params = load_params()
    train_model("deep_autorec", params)
    data = load_processed()
    women = (data.users["gender"] == "F").to_numpy()
    from movierec.models.trained import load_model

    model = load_model("deep_autorec", params, data)
    assert np.array_equal(model.keep_, women)
    assert (
        model.split_inputs(data, "train")["row"].numpy().tolist()
        == np.flatnonzero(women & (np.diff(data.matrices["train"].indptr) > 0)).tolist()
    )
    val = model.split_inputs(data, "val")
    assert women[val["user"].numpy()].all()
    result = evaluate_model("deep_autorec", params)
    assert result["subset"] == {"filter": {"gender": "F"}, "users": int(women.sum())}
    assert result["test"]["users_ranked"] <= women.sum()


def test_cold_users_and_movies_get_the_bias_fallback(tiny_project):
    data = load_processed()
    model = MODELS["autorec_item"][0](build_section(AutoRecParams, {"epochs": 1}, "m"))
    model.fit(data, FitContext(progress=False))
    model.cold_items_[:] = False
    model.cold_items_[5] = True  # pretend movie 5 had no training ratings
    users = np.arange(4)
    pred = model.predict(users, np.full(4, 5))
    base = np.clip(model.base_.predict(users, np.full(4, 5)), *model.range_)
    assert np.allclose(pred, base)
    rows = model.score_users(users)
    assert np.allclose(rows[:, 5], base)
