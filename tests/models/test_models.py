"""Model families: learning, determinism, persistence, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.config.params import (
    ConfigError,
    SyntheticData,
    build_section,
    load_params,
    parse_params,
)
from movierec.data.preprocess import preprocess
from movierec.data.processed import load_processed
from movierec.data.synthetic import generate, write_custom
from movierec.evaluation.protocol import ranking_validation
from movierec.models.base import FitContext
from movierec.models.registry import MODELS, create, model_params, trainable
from movierec.models.selection import TrainSection
from movierec.models.trained import load_model
from movierec.pipeline.evaluate_step import evaluate_model
from movierec.pipeline.train_step import train_model


def _planted(folder, rating_step: float = 0.0, **sizes):
    cfg = SyntheticData(rank=4, noise=0.25, rating_step=rating_step, spread=0.6, **sizes)
    data = generate(cfg, seed=11)
    write_custom(data, folder / "raw")
    params = parse_params({"data": {"dataset": "synthetic"}})
    preprocess(folder / "raw", folder / "processed", params.data, seed=11)
    return load_processed(folder / "processed"), cfg.noise


@pytest.fixture(scope="module")
def small_planted(tmp_path_factory):
    """A small planted set for checks that need learning but not full recovery."""
    return _planted(
        tmp_path_factory.mktemp("small"), n_users=300, n_items=200, n_ratings=20000, rating_step=0.5
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Continuous planted low-rank ratings with noise 0.25 (rarely clipped), dense enough to recover."""
    cfg = SyntheticData(
        n_users=800, n_items=400, n_ratings=96000, rank=4, noise=0.25, rating_step=0.0, spread=0.6
    )
    data = generate(cfg, seed=11)
    folder = tmp_path_factory.mktemp("planted")
    write_custom(data, folder / "raw")
    params = parse_params({"data": {"dataset": "synthetic"}})
    preprocess(folder / "raw", folder / "processed", params.data, seed=11)
    return load_processed(folder / "processed"), cfg.noise


def _fit(name: str, data, **overrides):
    cls, pcls = MODELS[name]
    model = cls(build_section(pcls, overrides, f"models.{name}"))
    report = model.fit(data, FitContext(seed=3, device="cpu", progress=False, rank_validation=ranking_validation))
    return model, report


def _rmse(model, data, split="test") -> float:
    part = data.splits[split]
    return float(np.sqrt(np.mean((model.predict(part.user, part.item) - part.rating) ** 2)))


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        (
            "mf",
            {
                "factors": 8,
                "lr": 0.01,
                "optimizer": "adam",
                "reg": 0.005,
                "epochs": 60,
                "patience": 4,
                "batch_size": 1024,
            },
        ),
        (
            "mf_bias",
            {
                "factors": 8,
                "lr": 0.02,
                "weight_decay": 0.05,
                "epochs": 15,
                "patience": 15,
                "batch_size": 1024,
            },
        ),
        ("sparse_fc", {"hidden": [100, 100], "l2": 2.0}),
    ],
)
def test_recovers_planted_low_rank(planted, name, overrides):
    data, noise = planted
    model, _ = _fit(name, data, **overrides)
    bias, _ = _fit("bias", data)
    rmse = _rmse(model, data)
    assert rmse <= 1.10 * noise, f"{name} test RMSE {rmse:.3f} vs planted noise {noise}"
    assert rmse < _rmse(bias, data)


# Row-based models see few rows (and so few steps) per epoch on a small matrix.
SMALL_DATA = {
    "autorec_item": {"batch_size": 32},
    "sparse_fc": {"l2": 5.0},  # its penalty is against a sum over ratings: smaller data, less
    "autorec_user": {"batch_size": 32},
    "deep_autorec": {"batch_size": 32},
    "mlp_classifier": {"batch_size": 128, "epochs": 15, "patience": 15},
    "rnn": {"batch_size": 128, "epochs": 8, "patience": 8},
    "wide_deep": {"batch_size": 256, "epochs": 6},
}


# bst learns from order; on this static low-rank set its MLP only ties with bias in a few
# epochs. Its planted structure is sequential: tests/models/test_sequence_models.py.
RATING = [m for m in trainable() if MODELS[m][0].predicts_ratings]


@pytest.mark.parametrize("name", [m for m in RATING if m not in ("bias", "bst")])
def test_every_family_beats_bias_on_planted_data(small_planted, name):
    data, _ = small_planted
    bias, _ = _fit("bias", data)
    model, report = _fit(name, data, **SMALL_DATA.get(name, {}))
    assert report.epochs >= 1
    assert _rmse(model, data, "val") < _rmse(bias, data, "val")


def test_early_stopping_restores_the_best_epoch():
    import torch

    from movierec.train.trainer import TrainConfig, Trainer

    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.tensor(5.0))

        def predict(self, batch):
            return (
                self.b.expand(batch["rating"].shape[0])
                if "rating" in batch
                else self.b.expand(batch["item"].shape[0])
            )

        def loss(self, batch):
            return ((self.predict(batch) - batch["rating"]) ** 2).mean()

    module = Constant()
    seen = []
    trainer = Trainer(
        TrainConfig(epochs=40, batch_size=10, optimizer="sgd", lr=0.02, patience=2),
        device=torch.device("cpu"),
        seed=0,
        on_epoch=lambda log: seen.append((log.val_rmse, float(module.b.detach()))),
        progress=False,
    )
    train = {"item": torch.zeros(10, dtype=torch.long), "rating": torch.ones(10)}
    val = {"item": torch.zeros(5, dtype=torch.long), "rating": torch.full((5,), 3.0)}
    result = trainer.fit(module, train, val)
    best = min(range(len(seen)), key=lambda i: seen[i][0])
    assert result.best_epoch == best + 1
    assert len(seen) == best + 1 + 2  # stopped after `patience` worse epochs
    assert float(module.b.detach()) == pytest.approx(seen[best][1])


def test_validate_every_judges_only_those_epochs_and_the_last():
    """A validation every k epochs (large catalogues): the epochs between carry no metric,
    cannot be selected, spend no patience; the last epoch is always judged."""
    import torch

    from movierec.train.trainer import TrainConfig, Trainer, Validation

    module = torch.nn.Linear(1, 1)
    judged: list[int] = []
    epochs_seen: list[int] = []
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.05])  # val NDCG at epochs 3, 6, 9, 11 (the last)

    def compute(_module):
        judged.append(len(epochs_seen) + 1)
        return {"val_ndcg@10": next(scores)}

    trainer = Trainer(
        TrainConfig(epochs=11, batch_size=4, lr=0.01, patience=5, validate_every=3),
        device=torch.device("cpu"),
        seed=0,
        on_epoch=lambda log: epochs_seen.append(log.epoch),
        progress=False,
    )
    module.loss = lambda batch: module(batch["x"]).pow(2).mean()  # type: ignore[method-assign]
    result = trainer.fit(module, {"x": torch.ones(8, 1)}, Validation("val_ndcg@10", True, compute))
    assert judged == [3, 6, 9, 11]
    assert epochs_seen == list(range(1, 12))
    assert result.best_epoch == 6 and result.best_value == pytest.approx(0.3)
    logged = {h.epoch: h.metrics for h in result.history}
    assert logged[6] == {"val_ndcg@10": 0.3} and logged[5] == {}

    stop = Trainer(
        TrainConfig(epochs=30, batch_size=4, lr=0.01, patience=2, validate_every=2),
        device=torch.device("cpu"),
        seed=0,
        progress=False,
    )
    falling = iter([0.5, 0.4, 0.3, 0.2])
    result = stop.fit(
        module, {"x": torch.ones(8, 1)},
        Validation("val_ndcg@10", True, lambda _m: {"val_ndcg@10": next(falling)}),
    )
    assert result.best_epoch == 2 and len(result.history) == 6  # 2 worse validations = 4 epochs


@pytest.mark.parametrize("name", trainable())  # every family the registry trains
def test_same_seed_identical_predictions(small_planted, name):
    """Same seed, same machine: bit-identical predictions and rankings (so identical metrics)."""
    data, _ = small_planted
    extra = {"epochs": 2} if "epochs" in MODELS[name][1].__dataclass_fields__ else {}
    if name == "bst":
        extra |= {"dim": 16, "heads": 2, "batch_size": 256}
    a, _ = _fit(name, data, **extra)
    b, _ = _fit(name, data, **extra)
    if MODELS[name][0].predicts_ratings:
        assert np.array_equal(a.predict_split(data, "test"), b.predict_split(data, "test"))
    users = np.arange(8)
    assert np.array_equal(a.score_users(users), b.score_users(users), equal_nan=True)


@pytest.mark.parametrize("name", trainable())
def test_save_load_round_trip(tiny_project, name):
    params = load_params()
    train_model(name, params)
    data = load_processed()
    model = load_model(name, params, data)
    rows = model.score_users(np.array([0, 1]))
    assert rows.shape == (2, data.n_items)
    result = evaluate_model(name, params)
    assert {"ndcg@10", "recall@10", "coverage@10", "novelty@10"} <= set(result["test"])
    fresh = create(name, params)
    fresh.fit(data.for_training(), FitContext(seed=params.seed, device="cpu", progress=False, rank_validation=ranking_validation))
    assert np.allclose(fresh.score_users(np.array([0, 1])), rows, atol=1e-5)  # saved = fitted
    if not model.predicts_ratings:
        assert "rmse" not in result["test"]
        return
    part = data.splits["test"]
    pred = model.predict(part.user, part.item)
    assert pred.shape == part.rating.shape and np.isfinite(pred).all()
    assert np.allclose(rows[0, part.item[part.user == 0]], pred[part.user == 0], atol=1e-4)
    assert {"rmse", "mae"} <= set(result["test"])
    assert (tiny_project / "metrics" / "train" / name / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("name", "raw", "key"),
    [
        ("mf_bias", {"lr": -0.01}, "models.mf_bias.lr"),
        ("mf", {"factors": 0}, "models.mf.factors"),
        ("mlp", {"layers": []}, "models.mlp.layers"),
        ("mf_bias", {"optimizer": "adamm"}, "models.mf_bias.optimizer"),
        ("svd", {"rank": 0}, "models.svd.rank"),
        ("item_knn", {"k": 0}, "models.item_knn.k"),
        ("mf", {"facters": 10}, "models.mf.facters"),
    ],
)
def test_bad_model_params_name_the_key(name, raw, key):
    with pytest.raises(ConfigError, match=f"`{key}`"):
        model_params(name, raw)


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="unknown model 'deepfm'"):
        create("deepfm", parse_params({}))
    with pytest.raises(ConfigError, match="`train.models` lists unknown model 'deepfm'"):
        build_section(TrainSection, {"models": ["mf", "deepfm"]}, "train")


def test_k_below_one():
    from movierec.evaluation.protocol import EvalParams

    with pytest.raises(ConfigError, match="`evaluate.k`"):
        build_section(EvalParams, {"k": [0]}, "evaluate")


@pytest.mark.parametrize("name", ["mf", "mf_bias"])
@pytest.mark.parametrize("optimizer", ["sparse_adam", "adagrad"])
def test_sparse_gradients_train(small_planted, name, optimizer):
    data, _ = small_planted
    model, report = _fit(
        name,
        data,
        sparse=True,
        optimizer=optimizer,
        weight_decay=0.0,
        reg=0.01,
        lr=0.01,
        epochs=3,
        schedule="constant",
    )
    assert report.epochs >= 1 and np.isfinite(_rmse(model, data))


def test_sparse_needs_a_sparse_optimizer():
    with pytest.raises(ConfigError, match="`models.mf_bias.sparse` needs optimizer"):
        model_params("mf_bias", {"sparse": True, "optimizer": "adamw", "weight_decay": 0.0})
    with pytest.raises(ConfigError, match="`models.mf.optimizer` sparse_adam needs"):
        model_params("mf", {"optimizer": "sparse_adam"})
