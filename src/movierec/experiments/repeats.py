"""Folds and seeds: run the pipeline once per value as DVC experiments, then aggregate.

``movierec repeat data.split.fold=u1,u2,u3,u4,u5 -S data.split.strategy=official``
runs ``dvc exp run`` once per value (one after another, in the workspace, so runs
never compete for cores), each named ``<key>-<value>``; ``movierec aggregate``
reads the headline test metrics of any set of experiments or revisions and
writes ``metrics/compare.{json,md}``: per model and metric the mean, the sample
standard deviation and a 95% confidence interval of the mean (Student's t over
the runs), so a difference between two models can be set against run-to-run
spread.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from movierec.errors import ConfigError
from movierec.experiments.compare import Side
from movierec.store.files import write_json, write_text
from movierec.store.paths import COMPARE as OUT


def parse_sweep(spec: str) -> tuple[str, list[str]]:
    """``key=v1,v2,...`` -> (key, values)."""
    key, sep, values = spec.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key or len(items) < 2:
        raise ConfigError(
            f"repeat: {spec!r} must be KEY=V1,V2[,...] with at least two values, "
            "e.g. data.split.fold=u1,u2,u3,u4,u5 or seed=1,2,3"
        )
    return key, items


def run_name(key: str, value: str) -> str:
    """Experiment name of one run: the key's last part and the value (``fold-u1``)."""
    return f"{key.rsplit('.', 1)[-1]}-{value}".replace("_", "-")


def staged_hint(cwd: Path | None = None) -> str:
    """What to do when ``dvc exp run`` failed with changes staged in git's index: an
    interrupted run leaves its files staged, and every later run fails on applying them.
    (Staged changes alone are fine: ``core.autostage`` stages ``dvc.lock`` after a repro.)"""
    staged = subprocess.run(
        ["git", "diff", "--cached", "--name-only"], capture_output=True, text=True, cwd=cwd
    )
    if staged.returncode or not staged.stdout.strip():
        return ""
    count = len(staged.stdout.split())
    return (
        f"; git's index holds {count} staged change(s), as an interrupted `dvc exp run` "
        "leaves it: unstage them with `git reset` (and drop them with `git checkout -- .` "
        "if they are not yours), then run repeat again"
    )


def run_sweep(key: str, values: list[str], extra: list[str]) -> list[str]:
    """``dvc exp run`` per value (a same-named earlier run is replaced); the names run."""
    names = []
    for value in values:
        name = run_name(key, value)
        subprocess.run(["dvc", "exp", "remove", name], capture_output=True)  # absent: fine
        command = ["dvc", "exp", "run", "-n", name, "-S", f"{key}={value}"]
        for setting in extra:
            command += ["-S", setting]
        print("$ " + " ".join(command), flush=True)
        if subprocess.run(command).returncode:
            raise ConfigError(
                f"repeat: `{' '.join(command)}` failed; see its output above" + staged_hint()
            )
        names.append(name)
    return names


def summarise(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation and the 95% t interval of the mean."""
    x = np.asarray(values, dtype=np.float64)
    n, mean = x.size, float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if n > 1 else float("nan")
    return {"mean": mean, "std": sd, "ci_low": mean - half, "ci_high": mean + half, "runs": n}


def aggregate(revs: list[str]) -> dict[str, Any]:
    """Every model's headline test metrics over ``revs``; a model missing from a run is
    aggregated over the runs that have it (and says how many)."""
    from movierec.models.registry import left_out  # deferred: torch and every family

    sides = [Side.load(rev) for rev in revs]
    for side in sides:  # families a run left out keep another run's files: not its results
        if (models := side.train_models()) is not None:
            for name in left_out(set(side.metrics), models):
                del side.metrics[name]
    found = {k for s in sides for test in s.metrics.values() for k in test}
    metrics = [m for m in ("rmse", "mae") if m in found] + sorted(found - {"rmse", "mae"})
    models: dict[str, dict[str, Any]] = {}
    for model in sorted({m for s in sides for m in s.metrics}):
        row = {}
        for metric in metrics:
            values = [s.metrics[model][metric] for s in sides if metric in s.metrics.get(model, {})]
            if values:
                row[metric] = summarise(values) | {"values": values}
        models[model] = row
    return {"runs": revs, "metrics": metrics, "models": models}


def render(result: dict[str, Any]) -> str:
    def cell(entry: dict[str, Any] | None) -> str:
        if not entry:
            return "—"
        if entry["runs"] < 2:
            return f"{entry['mean']:.4f} (1 run)"
        return (
            f"{entry['mean']:.4f} ± {entry['std']:.4f} "
            f"[{entry['ci_low']:.4f}, {entry['ci_high']:.4f}]"
        )

    lines = [
        f"# Over {len(result['runs'])} runs: {', '.join(result['runs'])}",
        "",
        "mean ± standard deviation [95% confidence interval of the mean, Student's t], test split.",
        "",
        "| model | " + " | ".join(result["metrics"]) + " |",
        "|---|" + "---:|" * len(result["metrics"]),
    ]
    rows = sorted(
        result["models"].items(),
        key=lambda kv: (kv[1].get("rmse", {}).get("mean", math.inf), kv[0]),
    )
    for model, row in rows:
        lines.append(
            f"| {model} | " + " | ".join(cell(row.get(m)) for m in result["metrics"]) + " |"
        )
    return "\n".join(lines) + "\n"


def write_aggregate(revs: list[str], out: Path = OUT) -> str:
    result = aggregate(revs)
    write_json(out.with_suffix(".json"), result)
    text = render(result)
    write_text(out.with_suffix(".md"), text)
    return text
