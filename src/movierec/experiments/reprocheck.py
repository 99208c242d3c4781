"""``movierec check-repro``: rerun the pipeline and compare its metrics with the committed ones.

The comparison is ``dvc metrics diff HEAD``: the workspace (just reproduced)
against the last commit. Each metric is one of

- **identical**: the same number, bit for bit;
- **within measured noise**: moved, but no further than the tolerance in
  ``repro-tolerance.yaml``, which is *measured*: the largest move seen when the
  pipeline was reproduced on other machines and simulated ones (other CPU kernels,
  BLAS code paths, thread counts; ``bench/repro_tolerance.py``);
- **moved**: further than that, which fails the check; so does a metric that
  appears or disappears, since the committed ``dvc.lock`` and ``metrics/`` must
  always be current.

A moved test metric is put beside the 95% bootstrap interval of that figure over
test users (what the significance stage uses as the scale of sampling noise), so a
reader sees whether the move could matter to a comparison of models. The machine
the numbers were committed on (``metrics/machine.json``) is named beside this one.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from movierec.config.yaml_reader import parse_yaml, read_yaml
from movierec.errors import ConfigError, MovierecError
from movierec.evaluation.significance import metric_value, resample_weights, sample_of
from movierec.store.paths import DATA_STATS, EMBED_METRICS, NEIGHBOURS_METRICS, PER_USER
from movierec.store.paths import MACHINE as MACHINE_FILE
from movierec.store.results import read_per_user
from movierec.train.machine import describe_machine

IDENTICAL, NOISE, MOVED = "identical", "within measured noise", "moved"


@dataclass
class Tolerance:
    default: float
    ignore: list[str]
    tolerances: dict[str, float]
    measured_on: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Tolerance:
        if not path.is_file():
            raise MovierecError(f"{path}: no tolerance file")
        raw = read_yaml(path)
        return cls(
            float(raw.get("default", 0.002)),
            list(raw.get("ignore") or []),
            {k: float(v) for k, v in (raw.get("tolerances") or {}).items()},
            list(raw.get("measured_on") or []),
        )

    def limit(self, name: str) -> float | None:
        """The allowed change for ``file:key``; None when it is not compared."""
        if any(fnmatch.fnmatch(name, pat) for pat in self.ignore):
            return None
        if name in self.tolerances:
            return self.tolerances[name]
        for pat, tol in self.tolerances.items():
            if fnmatch.fnmatch(name, pat):
                return tol
        return self.default


@dataclass
class Verdict:
    name: str
    old: Any
    new: Any
    allowed: float
    kind: str

    @property
    def change(self) -> float | None:
        if all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (self.old, self.new)
        ):
            return float(self.new) - float(self.old)
        return None


def classify(diff: dict[str, dict[str, Any]], tol: Tolerance) -> list[Verdict]:
    """A verdict for every compared metric of a ``dvc metrics diff --all --json`` result."""
    verdicts = []
    for file, keys in sorted(diff.items()):
        for key, change in sorted(keys.items()):
            name = f"{file}:{key}"
            allowed = tol.limit(name)
            if allowed is None:
                continue
            old, new = change.get("old"), change.get("new")
            if isinstance(old, bool) or isinstance(new, bool):
                kind = IDENTICAL if old == new else MOVED
            elif not all(isinstance(v, int | float) for v in (old, new)):
                kind = IDENTICAL if old == new else MOVED  # appeared, vanished, or text
            elif (math.isnan(old) and math.isnan(new)) or old == new:
                kind = IDENTICAL
            elif abs(new - old) <= allowed:
                kind = NOISE
            else:
                kind = MOVED
            verdicts.append(Verdict(name, old, new, allowed, kind))
    return verdicts


def compare(diff: dict[str, dict[str, Any]], tol: Tolerance) -> list[tuple[str, Any, Any, float]]:
    """Violations ``(file:key, old, new, allowed)`` in a ``dvc metrics diff --json`` result."""
    return [(v.name, v.old, v.new, v.allowed) for v in classify(diff, tol) if v.kind == MOVED]


_EVAL_KEY = re.compile(
    r"^metrics/eval/(?P<model>[^/]+)\.json:(?P<split>val|test)\.(?P<metric>rmse|ndcg@\d+)$"
)


def noise_scale(name: str, per_user: Path = PER_USER, seed: int = 0) -> float | None:
    """Half-width of the 95% bootstrap interval of the metric ``name`` over its users
    (from this run's ``data/per_user``); None for metrics that are not per-user means."""
    found = _EVAL_KEY.match(name)
    if not found or not (per_user / f"{found['model']}.parquet").is_file():
        return None
    import numpy as np

    try:
        values = read_per_user(per_user / f"{found['model']}.parquet", found["split"])
    except MovierecError:
        return None
    sample = sample_of(values, found["metric"])
    if not sample.user.size:
        return None
    boot = metric_value(found["metric"], sample, resample_weights(sample.user.size, 1000, seed))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(hi - lo) / 2


def _show(value: Any) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


def machine_differences(committed: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """``key: committed -> here`` for what differs between two machine records."""
    return [
        f"{key}: {_show(committed.get(key))} -> {_show(here.get(key))}"
        for key in sorted(set(committed) | set(here))
        if committed.get(key) != here.get(key)
    ]


def _committed_machine(rev: str) -> dict[str, Any] | None:
    shown = subprocess.run(
        ["git", "show", f"{rev}:{MACHINE_FILE.as_posix()}"], capture_output=True, text=True
    )
    if shown.returncode != 0:
        return None
    try:
        return json.loads(shown.stdout)
    except json.JSONDecodeError:
        return None


def _dvc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["dvc", *args], capture_output=True, text=True)


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def report(verdicts: list[Verdict], rev: str, tolerance: Path) -> list[str]:
    """The check's output lines (a summary, then what moved, then why it may have)."""
    counts = {kind: sum(v.kind == kind for v in verdicts) for kind in (IDENTICAL, NOISE, MOVED)}
    lines = [
        f"check-repro: {len(verdicts)} metrics vs {rev}: {counts[IDENTICAL]} identical, "
        f"{counts[NOISE]} within measured noise, {counts[MOVED]} moved beyond it ({tolerance})"
    ]
    noisy = sorted(
        (v for v in verdicts if v.kind == NOISE), key=lambda v: -abs(v.change or 0) / v.allowed
    )
    if noisy:
        worst = noisy[0]
        lines.append(
            f"  largest move within noise: {worst.name} {worst.change:+.2g} "
            f"(allowed {worst.allowed:g})"
        )
    moved = [v for v in verdicts if v.kind == MOVED]
    if not moved:
        return lines
    lines += [
        "",
        "| metric | committed | fresh | change | allowed | 95% CI half-width | change / CI |",
    ]
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    for v in moved:
        scale = noise_scale(v.name)
        change = v.change
        lines.append(
            f"| {v.name} | {_fmt(v.old)} | {_fmt(v.new)} | "
            + (f"{change:+.5f}" if change is not None else "added/removed")
            + f" | {v.allowed:g} | "
            + (
                f"{scale:.4f} | {abs(change) / scale:.2f}"
                if scale and change is not None
                else "- | -"
            )
            + " |"
        )
    return lines


# Figures the pipeline writes that are not declared DVC metrics (to keep `dvc metrics show`
# and `dvc exp show` to each model's headline) but must reproduce all the same.
UNDECLARED = (DATA_STATS, EMBED_METRICS, NEIGHBOURS_METRICS)


def metrics_diff(rev: str) -> dict[str, dict[str, Any]]:
    """``dvc metrics diff rev --all``: the declared metrics, then the undeclared figures."""
    diff: dict[str, dict[str, Any]] = {}
    for targets in ([], [p.as_posix() for p in UNDECLARED]):
        args = ["metrics", "diff", rev, "--all", "--json"]
        result = _dvc(*args, *(["--targets", *targets] if targets else []))
        if result.returncode != 0:
            raise MovierecError(f"dvc metrics diff failed: {result.stderr.strip()}")
        diff |= json.loads(result.stdout or "{}")
    return diff


def _check_revision(rev: str) -> None:
    """A revision that names a commit: an empty or unknown one would compare the workspace
    with itself and report every metric identical."""
    if not rev.strip():
        raise ConfigError("--rev is empty; name a commit, branch or tag to compare with (e.g. HEAD)")
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        raise ConfigError(
            f"--rev {rev!r} is not a commit of this repository; name a commit, branch or tag "
            "(`git log --oneline` lists them)"
        )


def check_repro(tolerance: Path, rev: str = "HEAD", run: bool = True) -> int:
    """Reproduce (unless ``run`` is off), diff against ``rev``, print a report; 0 when it holds."""
    tol = Tolerance.load(tolerance)
    _check_revision(rev)
    if run:
        repro = subprocess.run(["dvc", "repro"])
        if repro.returncode != 0:
            print("check-repro: `dvc repro` failed")
            return repro.returncode
        status = _dvc("status")
        if "up to date" not in status.stdout:
            print("check-repro: pipeline not up to date after repro:\n" + status.stdout)
            return 1
    verdicts = classify(metrics_diff(rev), tol)
    if not verdicts:
        print(f"check-repro: no metrics to compare with {rev}; run `dvc repro` first")
        return 1
    for line in report(verdicts, rev, tolerance):
        print(line)
    if not any(v.kind == MOVED for v in verdicts):
        return 0
    edited = edited_inputs()
    committed = _committed_machine(rev)
    here = describe_machine()
    differs = machine_differences(committed, here) if committed else []
    print()
    if edited:
        print(
            f"You changed {', '.join(edited[:5])}{' ...' if len(edited) > 5 else ''}: if the "
            "moves are intended, commit the new dvc.lock and metrics/ with the change."
        )
    else:
        where = (
            "this machine differs from the one that committed the numbers in " + "; ".join(differs)
            if differs
            else "this machine computes differently from the one that committed the numbers"
            + ("" if committed else f" ({rev} records no {MACHINE_FILE})")
        )
        measured = (
            f" The tolerances were measured on {', '.join(tol.measured_on)}."
            if tol.measured_on
            else ""
        )
        print(
            f"No tracked file differs from {rev}, so the moves come from the machine: "
            f"{where}.{measured} A move beyond them is worth reporting with the table above; "
            "a change / CI far below 1 cannot change which of two models wins."
        )
    return 1


def edited_inputs() -> list[str]:
    """Tracked files changed against HEAD, apart from what `dvc repro` itself writes.
    Untracked files (a user's notes, scratch scripts) are not the project's inputs."""
    out = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
    paths = [
        line[3:].strip()
        for line in out.stdout.splitlines()
        if line[:2].strip() and not line.startswith(("??", "!!"))
    ]
    return [p for p in paths if p != "dvc.lock" and not p.startswith(("metrics/", "data/"))]


def tolerance_text(
    tolerances: dict[str, float], measured_on: list[str], header: str, base: dict[str, Any]
) -> str:
    """repro-tolerance.yaml's text: ``header`` (comments), then the settings."""
    import yaml

    body = {
        "default": base.get("default", 0.002),
        "ignore": base.get("ignore", ["*seconds*", "*:device", "*rss*"]),
        "measured_on": measured_on,
        "tolerances": dict(sorted(tolerances.items())),
    }
    text = header + yaml.safe_dump(body, sort_keys=False, width=100)
    parse_yaml(text)  # what is written must read back
    return text
