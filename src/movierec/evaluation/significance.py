"""Is a difference between two models real or noise? Paired tests on per-user values.

Both models are judged on the same test users, so each user gives a pair of
values (RMSE for rating models, NDCG@k for every model that ranks). For every
pair of models and each metric:

- a **paired bootstrap** confidence interval of the difference of the headline
  metric: users are resampled with replacement (the same resamples for every
  pair), and the metric is recomputed on each resample exactly as reported
  (RMSE pools squared errors over the resampled users' ratings; NDCG averages);
- a **Wilcoxon signed-rank** p-value on the per-user differences
  (``scipy.stats.wilcoxon``), **Holm**-adjusted over all pairs of that metric,
  so that testing many pairs does not manufacture significance.

A difference is significant when the adjusted p-value is below ``alpha`` *and*
the bootstrap interval excludes zero. It reads ``data/per_user/*.parquet`` and
``metrics/details``; the caller names what to leave out (another run's leftovers).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from movierec.store.paths import PER_USER
from movierec.store.results import read_details, read_per_user


@dataclass
class Sample:
    """One model's per-user values on a metric, aligned on ``user``."""

    user: np.ndarray
    ratings: np.ndarray
    sse: np.ndarray
    ndcg: np.ndarray


# Each metric's floor: the simplest honest model, the first thing a new family must beat
# (docs/models/adding.md): the user and movie biases for ratings, popularity for top-N.
FLOORS = {"rmse": "bias", "ndcg": "pop"}


FLOOR_WORDS = {"above": "above the floor", "level": "level with it", "below": "below the floor"}


def floor_of(metric: str) -> str:
    return FLOORS[metric.split("@")[0]]


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of ``a - b`` (1.0 when every pair is equal)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if not np.any(diff != 0):
        return 1.0
    return float(stats.wilcoxon(diff, zero_method="wilcox").pvalue)


@lru_cache(maxsize=4)
def resample_weights(n_users: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_users)`` counts: how often each user is drawn in each bootstrap resample
    (the same resamples for every pair of models on the same users; cached, read-only)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_users, np.full(n_users, 1.0 / n_users), size=n_boot).astype(np.float64)


def metric_value(metric: str, s: Sample, weights: np.ndarray | None = None) -> np.ndarray:
    """The headline metric over users, on the data (``weights`` None) or on each resample."""
    w = np.ones((1, s.user.size)) if weights is None else weights
    if metric == "rmse":
        return np.sqrt((w @ s.sse) / (w @ s.ratings))
    return (w @ s.ndcg) / w.sum(axis=1)


def per_user_value(metric: str, s: Sample) -> np.ndarray:
    """What Wilcoxon pairs: each user's RMSE, or each user's NDCG."""
    return np.sqrt(s.sse / s.ratings) if metric == "rmse" else s.ndcg


def _aligned(a: Sample, b: Sample) -> tuple[Sample, Sample]:
    """Both samples restricted to the users both have (a subset model covers fewer)."""
    common = np.intersect1d(a.user, b.user)
    pick = [np.searchsorted(s.user, common) for s in (a, b)]
    return tuple(  # type: ignore[return-value]
        Sample(common, s.ratings[i], s.sse[i], s.ndcg[i]) for s, i in zip((a, b), pick, strict=True)
    )


def compare_pair(
    metric: str, a: Sample, b: Sample, n_boot: int, seed: int, confidence: float = 0.95
) -> dict[str, Any]:
    """Difference ``a - b`` of ``metric`` with its bootstrap interval and Wilcoxon p-value."""
    a, b = _aligned(a, b)
    weights = resample_weights(a.user.size, n_boot, seed)
    boot = metric_value(metric, a, weights) - metric_value(metric, b, weights)
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(boot, [tail, 100 - tail])
    return {
        "a_value": float(metric_value(metric, a)[0]),
        "b_value": float(metric_value(metric, b)[0]),
        "difference": float(metric_value(metric, a)[0] - metric_value(metric, b)[0]),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "p_value": wilcoxon_p(per_user_value(metric, a), per_user_value(metric, b)),
        "users": int(a.user.size),
    }


def sample_of(values: dict[str, np.ndarray], metric: str) -> Sample:
    """The users of one model's per-user ``values`` on whom ``metric`` is defined."""
    n = values["user"].size
    sse = values["sse"].astype(np.float64)
    ndcg = values.get(metric, np.full(n, np.nan)).astype(np.float64)
    keep = np.isfinite(sse) if metric == "rmse" else np.isfinite(ndcg)
    return Sample(
        values["user"][keep], values["ratings"][keep].astype(np.float64), sse[keep], ndcg[keep]
    )


def load_samples(metric: str, folder: Path = PER_USER, split: str = "test") -> dict[str, Sample]:
    """Every model's per-user values that define ``metric`` (rankers have no RMSE)."""
    samples = {}
    for path in sorted(folder.glob("*.parquet")):
        if path.name.startswith("."):
            continue
        sample = sample_of(read_per_user(path, split), metric)
        if sample.user.size:
            samples[path.stem] = sample
    return samples


def metric_table(
    metric: str,
    samples: dict[str, Sample],
    blends: set[str],
    n_boot: int,
    alpha: float,
    seed: int,
) -> dict[str, Any]:
    """Every pair of models on one metric, Holm-adjusted, plus each model against the best."""
    lower = metric == "rmse"
    value = {m: float(metric_value(metric, s)[0]) for m, s in samples.items()}
    ranked = sorted(value, key=lambda m: (value[m] if lower else -value[m], m))
    pairs = [
        {"a": a, "b": b} | compare_pair(metric, samples[a], samples[b], n_boot, seed)
        for a, b in combinations(ranked, 2)  # a is the better of the two on test
    ]
    for pair, adjusted in zip(pairs, holm(np.array([p["p_value"] for p in pairs])), strict=True):
        pair["p_holm"] = float(adjusted)
        pair["significant"] = bool(adjusted < alpha and (pair["ci_high"] < 0 or pair["ci_low"] > 0))
    best = ranked[0] if ranked else None
    tied = [m for m in ranked[1:] if not _pair(pairs, best, m)["significant"]]
    singles = [m for m in ranked if m not in blends]
    best_blend = next((m for m in ranked if m in blends), None)  # the blend made for this metric
    blend_vs_single = [_pair(pairs, best_blend, singles[0])] if best_blend and singles else []
    floor = floor_of(metric) if floor_of(metric) in samples else None
    return {
        "lower_is_better": lower,
        "best": best,
        "values": {m: value[m] for m in ranked},
        "not_significantly_worse_than_best": tied,
        "blend_vs_best_single": blend_vs_single,
        "floor": floor,
        "vs_floor": {m: floor_verdict(_pair(pairs, m, floor), lower) for m in ranked if m != floor}
        if floor
        else {},
        "pairs": pairs,
    }


def floor_verdict(p: dict[str, Any], lower: bool) -> str:
    """``above`` / ``below`` the floor when the difference is significant, else ``level``."""
    if not p["significant"]:
        return "level"
    better = p["difference"] < 0 if lower else p["difference"] > 0
    return "above" if better else "below"


def _pair(pairs: list[dict[str, Any]], x: str | None, y: str) -> dict[str, Any]:
    """The pair of ``x`` and ``y`` in either order, as ``x - y``."""
    for p in pairs:
        if (p["a"], p["b"]) == (x, y):
            return p
        if (p["a"], p["b"]) == (y, x):
            flipped = {"a": x, "b": y, "a_value": p["b_value"], "b_value": p["a_value"]}
            flipped |= {"difference": -p["difference"], "ci_low": -p["ci_high"]}
            flipped |= {"ci_high": -p["ci_low"]}
            return p | flipped
    raise KeyError((x, y))


def significance(
    k: int,
    n_boot: int,
    alpha: float,
    seed: int,
    folder: Path = PER_USER,
    exclude: set[str] = frozenset(),
) -> dict[str, Any]:
    """Both metrics' tables (RMSE among rating models, NDCG@k among every model), over
    every model with per-user values but ``exclude``."""
    blends = {
        d["model"] for d in read_details() if d.get("val_in_sample") or d.get("val_cross_fitted")
    }
    out: dict[str, Any] = {"split": "test", "bootstrap": n_boot, "alpha": alpha}
    for metric in ("rmse", f"ndcg@{k}"):
        samples = {m: s for m, s in load_samples(metric, folder).items() if m not in exclude}
        if len(samples) >= 2:
            out[metric] = metric_table(metric, samples, blends, n_boot, alpha, seed)
    return out


def _fmt_diff(p: dict[str, Any]) -> str:
    return f"{p['difference']:+.4f} [{p['ci_low']:+.4f}, {p['ci_high']:+.4f}]"


def render(result: dict[str, Any], title: str) -> str:
    """``significance.md``: each model against the best, and each blend against the best
    single model, per metric."""
    lines = [
        f"# Significance ({title})",
        "",
        f"Paired over test users: difference with its 95% bootstrap interval "
        f"({result['bootstrap']} resamples of users), Wilcoxon signed-rank p-value, "
        f"Holm-adjusted over all pairs; significant = adjusted p < {result['alpha']} and "
        "the interval excludes 0. ≈ marks a model not significantly worse than the best. "
        "Each model is also set against its metric's floor (bias for RMSE, pop for top-N): "
        "above, level with or below it.",
    ]
    for metric, table in result.items():
        if not isinstance(table, dict):
            continue
        best = table["best"]
        lines += [
            "",
            f"## {metric.upper() if metric == 'rmse' else metric.replace('ndcg', 'NDCG')} "
            f"({'lower' if table['lower_is_better'] else 'higher'} is better): best {best}",
            "",
        ]
        floor = table.get("floor")
        head = f"| model | {metric} | vs {best} (95% CI) | p (Holm) | |"
        rule = "|---|---:|---:|---:|---|"
        if floor:
            head += f" vs floor {floor} (95% CI) | p (Holm) | |"
            rule += "---:|---:|---|"
        lines += [head, rule]
        for model, value in table["values"].items():
            if model == best:
                cells = [f"**{model}**", f"{value:.4f}", "—", "—", "best"]
            else:
                p = _pair(table["pairs"], model, best)
                mark = "≈" if model in table["not_significantly_worse_than_best"] else "worse"
                cells = [model, f"{value:.4f}", _fmt_diff(p), f"{p['p_holm']:.3g}", mark]
            if floor and model == floor:
                cells += ["—", "—", "the floor"]
            elif floor:
                p = _pair(table["pairs"], model, floor)
                verdict = table["vs_floor"][model]
                cells += [_fmt_diff(p), f"{p['p_holm']:.3g}", FLOOR_WORDS[verdict]]
            lines.append("| " + " | ".join(cells) + " |")
        for p in table["blend_vs_best_single"]:
            verdict = "significant" if p["significant"] else "not significant"
            lines += [
                "",
                f"Blend {p['a']} vs the best single model {p['b']}: {_fmt_diff(p)}, "
                f"Wilcoxon p = {p['p_value']:.3g} (Holm {p['p_holm']:.3g}): {verdict}.",
            ]
    return "\n".join(lines) + "\n"
