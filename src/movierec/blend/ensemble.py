"""A blend of the trained models: feature-weighted linear stacking, fitted on val only.

Features per rating: every member's prediction, and (``meta``) the log support
of the user and of the movie in the training data, plus each prediction times
those supports — so the blend can trust, say, the neighbourhood model more for
popular movies (Sill et al., "Feature-weighted linear stacking", 2009). The
stacker is a ridge regression (or non-negative least squares on the predictions)
fitted on the **validation** predictions and applied unchanged to test; test
ratings are never read before the final scoring.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from movierec.blend.saved_rows import with_saved_rows
from movierec.config.params import ConfigError, Params
from movierec.config.sections import EnsembleParams, ensemble_section, eval_section  # noqa: F401
from movierec.data.processed import Processed, load_processed
from movierec.errors import MovierecError
from movierec.evaluation.predictions import join_refit, write_predictions
from movierec.evaluation.protocol import evaluate
from movierec.models.base import Recommender
from movierec.models.registry import MODELS
from movierec.models.selection import train_section
from movierec.models.trained import load_final, load_model, load_refit
from movierec.store.files import atomic_dir, reading, write_text
from movierec.store.paths import ENSEMBLE_DIR, MODELS_DIR, PREDICTIONS_DIR, PROCESSED
from movierec.store.results import made_from, write_result


def supports(data: Processed) -> tuple[np.ndarray, np.ndarray]:
    """log(1 + training ratings) per user and per movie."""
    train = data.matrices["train"]
    user = np.log1p(np.diff(train.indptr)).astype(np.float64)
    item = np.log1p(np.bincount(train.indices, minlength=data.n_items)).astype(np.float64)
    return user, item


def design(preds: np.ndarray, log_u: np.ndarray, log_i: np.ndarray, meta: bool) -> np.ndarray:
    """``(rows, features)``: predictions, then supports and prediction x support products."""
    if not meta:
        return preds
    cols = [preds, log_u[:, None], log_i[:, None], preds * log_u[:, None], preds * log_i[:, None]]
    return np.concatenate(cols, axis=1)


@dataclass
class Stacker:
    """Standardise with val statistics, then a linear model; everything kept for reuse."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, method: str, alpha: float) -> Stacker:
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        z = (x - mean) / scale
        if method == "ridge":
            from sklearn.linear_model import Ridge

            model = Ridge(alpha=alpha).fit(z, y)
            return cls(mean, scale, model.coef_.astype(np.float64), float(model.intercept_))
        from scipy.optimize import nnls

        # Non-negative weights on the raw predictions, free intercept as +1 / -1 columns.
        ones = np.ones((len(y), 1))
        coef, _ = nnls(np.concatenate([x, ones, -ones], axis=1), y)
        weights, intercept = coef[:-2], coef[-2] - coef[-1]
        return cls(np.zeros(x.shape[1]), np.ones(x.shape[1]), weights, float(intercept))


def member_models(params: Params, p: EnsembleParams) -> list[str]:
    rating = [m for m in train_section(params).models if MODELS[m][0].predicts_ratings]
    names = list(p.models) or rating
    rankers = [n for n in names if n in MODELS and not MODELS[n][0].predicts_ratings]
    if rankers:
        raise ConfigError(
            f"params.yaml: `ensemble.models` lists {rankers[0]}, which predicts no ratings; "
            "ranking families blend in ensemble_topn"
        )
    subset = [n for n in names if ((params.extra.get("models") or {}).get(n) or {}).get("subset")]
    names = [n for n in names if n not in subset]
    if len(names) < 2:
        raise ConfigError("params.yaml: `ensemble.models` needs at least two rating models")
    return names


def load_predictions(names: list[str], folder: Path) -> dict[str, pl.DataFrame]:
    frames = {}
    for name in names:
        path = folder / f"{name}.parquet"
        if not path.is_file():
            raise MovierecError(
                f"{path}: no predictions of {name}; run `dvc repro evaluate@{name}`"
            )
        with reading(path):
            frames[name] = pl.read_parquet(path)
    first = next(iter(frames.values()))
    for name, frame in frames.items():
        if frame.height != first.height or not frame["user"].equals(first["user"]):
            raise MovierecError(
                f"{folder}/{name}.parquet does not match the other predictions; rerun its evaluate stage"
            )
    return frames


class Ensemble(Recommender):
    """The blend as a model: rating predictions from the members' saved predictions, full rows
    (for top-N) from the members' own ``score_users``."""

    name = "ensemble"
    scores_are_ratings = False  # rating rows use the members' per-row predictions

    def __init__(self, names: list[str], stacker: Stacker, p: EnsembleParams, data: Processed):
        super().__init__(p)
        self.names, self.stacker, self.data = names, stacker, data
        self.log_u, self.log_i = supports(data)
        self.frames: dict[str, pl.DataFrame] = {}
        self.members: list[Recommender] = []
        lo, hi = data.rating_range
        self.clip = (lo, hi)

    def blend(self, preds: np.ndarray, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        x = design(preds, self.log_u[user], self.log_i[item], self.params.meta)
        return np.clip(self.stacker.predict(x), *self.clip).astype(np.float32)

    def predict_split(self, data: Processed, split: str) -> np.ndarray:
        first = next(iter(self.frames.values())).filter(pl.col("split") == split)
        preds = np.stack(
            [
                self.frames[n].filter(pl.col("split") == split)["prediction"].to_numpy()
                for n in self.names
            ],
            axis=1,
        ).astype(np.float64)
        return self.blend(preds, first["user"].to_numpy(), first["item"].to_numpy())

    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        preds = np.stack([m.predict(user, item) for m in self.members], axis=1)
        return self.blend(preds.astype(np.float64), user, item)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Blended full rows, accumulated member by member (never a design matrix per cell).

        The stacker is linear, so prediction = c + a_u log_u + a_i log_i
        + sum_m pred_m * (a_m + a_mu log_u + a_mi log_i) with unstandardised weights a.
        """
        a = self.stacker.coef / self.stacker.scale
        c = self.stacker.intercept - float(self.stacker.mean @ a)
        n = len(self.names)
        log_u = self.log_u[users][:, None].astype(np.float32)
        log_i = self.log_i[None, :].astype(np.float32)
        if self.params.meta:
            out = c + a[n] * log_u + a[n + 1] * log_i
        else:
            out = np.full((len(users), 1), c, dtype=np.float32)
        out = np.broadcast_to(out, (len(users), self.data.n_items)).astype(np.float32)
        for m, member in enumerate(self.members):
            weight = np.float32(a[m])
            if self.params.meta:
                weight = weight + a[n + 2 + m] * log_u + a[2 * n + 2 + m] * log_i
            out += np.asarray(member.score_users(users), dtype=np.float32) * weight
        return np.clip(out, *self.clip)

    def state(self) -> dict[str, np.ndarray]:
        s = self.stacker
        return {
            "mean": s.mean,
            "scale": s.scale,
            "coef": s.coef,
            "intercept": np.array(s.intercept),
            "names": np.array(self.names),
        }


def load_ensemble(params: Params, data: Processed, folder: Path = ENSEMBLE_DIR) -> Ensemble:
    """The fitted rating blend with its members loaded (for ``recommend`` / ``predict``):
    the refitted members where there are any, as its test row blends."""
    path = folder / "model.npz"
    if not path.is_file():
        raise MovierecError(f"{path}: no rating blend; run `dvc repro ensemble`")
    with reading(path), np.load(path) as f:
        stacker = Stacker(f["mean"], f["scale"], f["coef"], float(f["intercept"]))
        names = [str(n) for n in f["names"]]
    model = Ensemble(names, stacker, ensemble_section(params), data)
    model.members = [load_final(n, params, data) for n in names]
    return model


def fit_ensemble(
    params: Params, data: Processed, predictions: Path
) -> tuple[Ensemble, dict[str, Any]]:
    """Fit the stacker on val predictions; returns the model and its description."""
    p = ensemble_section(params)
    names = member_models(params, p)
    frames = load_predictions(names, predictions)
    val = {n: f.filter(pl.col("split") == "val") for n, f in frames.items()}
    first = val[names[0]]
    preds = np.stack([val[n]["prediction"].to_numpy() for n in names], axis=1).astype(np.float64)
    log_u, log_i = supports(data)
    user, item = first["user"].to_numpy(), first["item"].to_numpy()
    x = design(preds, log_u[user], log_i[item], p.meta)
    y = first["rating"].to_numpy().astype(np.float64)  # val ratings only
    t0 = time.perf_counter()
    stacker = Stacker.fit(x, y, p.method, p.alpha)
    model = Ensemble(names, stacker, p, data)
    model.frames = frames
    labels = list(names)
    if p.meta:
        labels += ["log_user_support", "log_movie_support"]
        labels += [f"{n}*log_user_support" for n in names]
        labels += [f"{n}*log_movie_support" for n in names]
    # Weights on the original (unstandardised) scale read as "rating per rating".
    raw = stacker.coef / stacker.scale
    info = {
        "members": names,
        "method": p.method,
        "alpha": p.alpha,
        "meta": p.meta,
        "fit_rows": int(len(y)),
        "fit_split": "val",
        "fit_seconds": time.perf_counter() - t0,
        "weights": {k: float(w) for k, w in zip(labels, raw, strict=True)},
        "intercept": float(stacker.intercept - (stacker.mean / stacker.scale) @ stacker.coef),
        "val_rmse_members": {
            n: float(np.sqrt(np.mean((preds[:, j] - y) ** 2))) for j, n in enumerate(names)
        },
    }
    return model, info


USER_BUCKETS = (1, 21, 51, 101, 201, 501)
ITEM_BUCKETS = (0, 1, 11, 51, 201, 501)


def _bucket_labels(edges: tuple[int, ...]) -> list[str]:
    labels = []
    for lo, hi in zip(edges, (*edges[1:], None), strict=True):
        labels.append(f"{lo}+" if hi is None else (f"{lo}" if hi - lo == 1 else f"{lo}-{hi - 1}"))
    return labels


def error_table(data: Processed, split: str, columns: dict[str, np.ndarray], by: str) -> list[str]:
    """Markdown rows: RMSE per bucket of user activity or movie popularity (training counts)."""
    part = data.splits[split]
    train = data.matrices["train"]
    if by == "user":
        counts, edges = np.diff(train.indptr)[part.user], USER_BUCKETS
    else:
        counts, edges = np.bincount(train.indices, minlength=data.n_items)[part.item], ITEM_BUCKETS
    bucket = np.searchsorted(np.asarray(edges), counts, side="right") - 1
    names = list(columns)
    lines = [
        "| training ratings of the "
        + ("user" if by == "user" else "movie")
        + " | test ratings | "
        + " | ".join(f"{n} RMSE" for n in names)
        + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for b, label in enumerate(_bucket_labels(edges)):
        rows = bucket == b
        if not rows.any():
            continue
        cells = [
            f"{np.sqrt(np.mean((columns[n][rows] - part.rating[rows]) ** 2)):.4f}" for n in names
        ]
        lines.append(f"| {label} | {int(rows.sum()):,} | " + " | ".join(cells) + " |")
    total = [f"{np.sqrt(np.mean((columns[n] - part.rating) ** 2)):.4f}" for n in names]
    lines.append(f"| all | {len(part):,} | " + " | ".join(total) + " |")
    return lines


def error_report(data: Processed, best: str, best_pred: np.ndarray, blend: np.ndarray) -> str:
    """``metrics/insight/errors.md``: where the best single model and the blend go wrong."""
    columns = {best: best_pred, "ensemble": blend}
    return "\n".join(
        [
            f"# Test RMSE by user activity and movie popularity ({data.meta['dataset']})",
            "",
            f"Best single model by validation RMSE: `{best}`. Buckets count each user's / movie's "
            "ratings in the training split.",
            "",
            "## By user activity",
            "",
            *error_table(data, "test", columns, "user"),
            "",
            "## By movie popularity",
            "",
            *error_table(data, "test", columns, "item"),
            "",
        ]
    )


def run_ensemble(params: Params, processed: Path = PROCESSED) -> dict[str, Any]:
    """The `ensemble` stage: fit on val, evaluate like any model, write the blend and errors.md."""
    eval_params = eval_section(params)
    data = load_processed(processed)
    model, info = fit_ensemble(params, data, PREDICTIONS_DIR)
    model.members = [  # full rows from the members' evaluate stages, not scored again
        with_saved_rows(n, load_model(n, params, data), data, MODELS_DIR) for n in model.names
    ]
    refits = {n: load_refit(n, params, data) for n in model.names}
    if not any(refits.values()):
        result = evaluate(model, data, eval_params)
    else:  # train.refit: the weights come from val; test blends the refitted members
        val = evaluate(model, data, replace(eval_params, splits=["val"]))
        model.members = [refits[n] or m for n, m in zip(model.names, model.members, strict=True)]
        result = join_refit(val, evaluate(model, data, replace(eval_params, splits=["test"])))
    result |= {
        "model": "ensemble",
        "blend": {k: v for k, v in info.items() if k != "fit_seconds"},  # seconds: not in git
        "note": "val metrics are in-sample: the blend is fitted on val; test is held out",
        "val_in_sample": True,
        "train_seconds": info["fit_seconds"],
        "epochs": 1,
        "best_epoch": 1,
    }
    with atomic_dir(ENSEMBLE_DIR) as tmp:
        np.savez(tmp / "model.npz", **model.state())
        write_predictions(model, data, tmp / "predictions.parquet")
    write_result("ensemble", result, eval_params.k[0], made_from(ENSEMBLE_DIR, data.meta))
    best = min(info["val_rmse_members"], key=info["val_rmse_members"].get)
    test = pl.read_parquet(PREDICTIONS_DIR / f"{best}.parquet").filter(pl.col("split") == "test")
    report = error_report(
        data, best, test["prediction"].to_numpy(), model.predict_split(data, "test")
    )
    write_text("metrics/insight/errors.md", report)
    return result | {"best_member": best}
