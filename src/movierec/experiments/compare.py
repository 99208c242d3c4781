"""``movierec compare A B``: what changed between two revisions, and is it signal or noise?

``dvc metrics diff`` shows how each number moved; this adds, per model and
metric, a paired test on the per-user test values of both sides (bootstrap
interval of the change, Wilcoxon p-value, Holm-adjusted over every test shown).
A side is a git revision (branch, tag, commit), a DVC experiment name, or
``workspace``. Headline metrics come from git (``metrics/eval``); per-user values
(``data/per_user``) from the DVC cache through ``dvc.api``, so a side whose
outputs are not in the cache still gets its metric diff, marked untested.
Pairing needs the same test users and ratings on both sides: a change of split or
data set is reported as such, never tested as if paired.
"""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from movierec.config.params import parse_params
from movierec.config.yaml_reader import parse_yaml
from movierec.errors import ConfigError
from movierec.evaluation.significance import compare_pair, holm, sample_of
from movierec.store.paths import EVAL_METRICS, PER_USER

WORKSPACE = "workspace"


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True)
    if out.returncode:
        raise ConfigError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "git")
    return out.stdout


def resolve(rev: str) -> str | None:
    """A commit sha for ``rev`` (a git revision or an experiment name); None for the workspace."""
    if rev == WORKSPACE:
        return None
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except ConfigError:
        pass
    refs = _git("for-each-ref", "--format=%(refname) %(objectname)", "refs/exps").splitlines()
    found = [sha for ref, sha in (line.split() for line in refs) if ref.rsplit("/", 1)[-1] == rev]
    if len(found) == 1:
        return found[0]
    raise ConfigError(
        f"compare: {rev!r} is neither a git revision nor a DVC experiment name "
        f"({'ambiguous' if found else 'unknown'}); see `git log` and `dvc exp show`"
    )


@dataclass
class Side:
    """One revision's headline test metrics and a reader of its per-user values."""

    rev: str
    sha: str | None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    _fs: Any = None

    @classmethod
    def load(cls, rev: str) -> Side:
        sha = resolve(rev)
        side = cls(rev, sha)
        if sha is None:
            paths = sorted(
                p.name for p in EVAL_METRICS.glob("*.json") if not p.name.startswith(".")
            )
            texts = {n: (EVAL_METRICS / n).read_text() for n in paths}
        else:
            listing = _git("ls-tree", "--name-only", sha, f"{EVAL_METRICS}/").split()
            paths = [Path(p).name for p in listing if p.endswith(".json")]
            texts = {n: _git("show", f"{sha}:{EVAL_METRICS}/{n}") for n in paths}
        for name, text in texts.items():
            side.metrics[Path(name).stem] = json.loads(text).get("test", {})
        return side

    def train_models(self) -> list[str] | None:
        """``train.models`` of this side's params.yaml (None where it has none)."""
        from movierec.models.selection import train_section  # deferred: torch, every family

        try:
            if self.sha is None:
                text = Path("params.yaml").read_text()
            else:
                text = _git("show", f"{self.sha}:params.yaml")
        except (OSError, ConfigError):
            return None
        return train_section(parse_params(parse_yaml(text, "params.yaml"))).models

    def per_user(self, model: str) -> dict[str, np.ndarray] | None:
        """The model's test per-user values, or None when this side's copy is unavailable."""
        import polars as pl

        path = PER_USER / f"{model}.parquet"
        try:
            if self.sha is None:
                frame = pl.read_parquet(path)
            else:
                if self._fs is None:
                    from dvc.api import DVCFileSystem

                    self._fs = DVCFileSystem(".", rev=self.sha)  # one index per side
                frame = pl.read_parquet(io.BytesIO(self._fs.read_bytes(str(path))))
        except Exception:  # noqa: BLE001 - not in git, not in the DVC cache, not produced yet
            return None
        frame = frame.filter(pl.col("split") == "test").sort("user")
        return {c: frame[c].to_numpy() for c in frame.columns if c != "split"}


def _same_test_set(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return np.array_equal(a["user"], b["user"]) and np.array_equal(a["ratings"], b["ratings"])


def compare_sides(a: Side, b: Side, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0):
    """One row per (model, headline metric) present on both sides, ``b - a`` with its test."""
    from movierec.models.families import left_out

    rows: list[dict[str, Any]] = []
    both = set(a.metrics) & set(b.metrics)
    for side in (a, b):  # a family a side's run left out has another run's files there
        if (models := side.train_models()) is not None:
            both -= left_out(both, models)
    for model in sorted(both):
        metrics = sorted(m for m in a.metrics[model] if m == "rmse" or m.startswith("ndcg@"))
        ua = ub = None
        for metric in sorted(metrics, key=lambda m: m != "rmse"):
            va, vb = a.metrics[model].get(metric), b.metrics[model].get(metric)
            if va is None or vb is None:
                continue
            row: dict[str, Any] = {"model": model, "metric": metric, "a": va, "b": vb}
            row["change"] = vb - va
            if ua is None:
                ua, ub = a.per_user(model), b.per_user(model)
            if ua is None or ub is None:
                missing = " and ".join(x.rev for x, u in ((a, ua), (b, ub)) if u is None)
                row["verdict"] = (
                    f"untested: no per-user values at {missing} (not produced there, or not "
                    "in the DVC cache: `dvc pull`)"
                )
            elif not _same_test_set(ua, ub):
                row["verdict"] = "untested: the test sets differ (split or data changed)"
            else:
                row |= compare_pair(
                    metric, sample_of(ub, metric), sample_of(ua, metric), n_boot, seed
                )
            rows.append(row)
    tested = [r for r in rows if "p_value" in r]
    for r, adjusted in zip(tested, holm(np.array([r["p_value"] for r in tested])), strict=True):
        r["p_holm"] = float(adjusted)
        significant = adjusted < alpha and (r["ci_high"] < 0 or r["ci_low"] > 0)
        if r["change"] == 0:
            r["verdict"] = "unchanged"
        else:
            better = (r["change"] < 0) == (r["metric"] == "rmse")
            r["verdict"] = (
                ("significantly better" if better else "significantly worse")
                if significant
                else "not significant (noise)"
            )
    return rows


def render(a: Side, b: Side, rows: list[dict[str, Any]]) -> str:
    """The table of models whose figures moved; the models that did not are one line
    (Holm's adjustment still counts every row tested)."""
    moved = {r["model"] for r in rows if r["change"] != 0}
    same = sorted({r["model"] for r in rows} - moved)
    lines = [
        f"# {a.rev} -> {b.rev} (test split)",
        "",
        f"change = {b.rev} minus {a.rev}; 95% paired bootstrap interval over test users; "
        "Wilcoxon signed-rank p-value, Holm-adjusted over every row tested.",
        "",
        f"| model | metric | {a.rev} | {b.rev} | change (95% CI) | p (Holm) | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r["model"] not in moved:
            continue
        ci = f" [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]" if "ci_low" in r else ""
        p = f"{r['p_holm']:.3g}" if "p_holm" in r else "—"
        lines.append(
            f"| {r['model']} | {r['metric']} | {r['a']:.4f} | {r['b']:.4f} | "
            f"{r['change']:+.4f}{ci} | {p} | {r['verdict']} |"
        )
    if not rows:
        lines.append("| — | — | — | — | — | — | no model has metrics on both sides |")
    elif not moved:
        lines.append("| — | — | — | — | — | — | no model's figures changed |")
    if same:
        lines += ["", f"{len(same)} model(s) unchanged (identical figures): {', '.join(same)}."]
    return "\n".join(lines) + "\n"


def compare(rev_a: str, rev_b: str = WORKSPACE, n_boot: int = 2000, alpha: float = 0.05) -> str:
    a, b = Side.load(rev_a), Side.load(rev_b)
    return render(a, b, compare_sides(a, b, n_boot, alpha))


def compare_models(
    a: str, b: str, k: int, n_boot: int = 2000, alpha: float = 0.05, folder: Path = PER_USER
) -> str:
    """Two models of the workspace on the same test users, one table: each metric both
    define (RMSE, NDCG@k), the difference ``b - a`` with its paired bootstrap interval and
    Wilcoxon p-value (Holm over the metrics compared), and whether it is significant."""
    from movierec.evaluation.significance import load_samples

    rows = []
    for metric in ("rmse", f"ndcg@{k}"):
        samples = load_samples(metric, folder)
        missing = [m for m in (a, b) if not (folder / f"{m}.parquet").is_file()]
        if missing:
            have = sorted(p.stem for p in folder.glob("*.parquet") if not p.name.startswith("."))
            raise ConfigError(
                f"--models: {missing[0]} has no test results in {folder} (models with "
                f"results: {', '.join(have) or 'none; run dvc repro'})"
            )
        if a in samples and b in samples:
            rows.append((metric, compare_pair(metric, samples[b], samples[a], n_boot, seed=0)))
    if not rows:
        raise ConfigError(f"--models: {a} and {b} share no metric (a ranker has no RMSE)")
    for (_, pair), adjusted in zip(
        rows, holm(np.array([p["p_value"] for _, p in rows])), strict=True
    ):
        pair["p_holm"] = float(adjusted)
    lines = [
        f"# {a} -> {b} (this workspace, test users both were judged on)",
        "",
        f"Difference {b} - {a} with its 95% paired bootstrap interval ({n_boot} resamples of "
        f"users) and Wilcoxon signed-rank p-value, Holm-adjusted over the metrics shown; "
        f"significant = adjusted p < {alpha} and the interval excludes 0.",
        "",
        f"| metric | {a} | {b} | change (95% CI) | p (Holm) | users | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for metric, p in rows:
        significant = p["p_holm"] < alpha and (p["ci_high"] < 0 or p["ci_low"] > 0)
        better = (p["difference"] < 0) == (metric == "rmse")
        verdict = (f"{b} better" if better else f"{b} worse") if significant else "noise"
        lines.append(
            f"| {metric} | {p['b_value']:.4f} | {p['a_value']:.4f} | {p['difference']:+.4f} "
            f"[{p['ci_low']:+.4f}, {p['ci_high']:+.4f}] | {p['p_holm']:.3g} | {p['users']} | "
            f"{verdict} |"
        )
    return "\n".join(lines) + "\n"
