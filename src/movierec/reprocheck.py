"""``movierec check-repro``: rerun the pipeline and compare its metrics with the committed ones.

The comparison is ``dvc metrics diff HEAD``: the workspace (just reproduced)
against the last commit. Any metric that moves by more than the tolerance in
``repro-tolerance.yaml`` fails the check, and so does a metric that appears or
disappears — the committed ``dvc.lock`` and ``metrics/`` must always be current.
"""

from __future__ import annotations

import fnmatch
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from movierec.errors import MovierecError


@dataclass
class Tolerance:
    default: float
    ignore: list[str]
    tolerances: dict[str, float]

    @classmethod
    def load(cls, path: Path) -> Tolerance:
        if not path.is_file():
            raise MovierecError(f"{path}: no tolerance file")
        raw = yaml.safe_load(path.read_text()) or {}
        return cls(
            float(raw.get("default", 0.002)),
            list(raw.get("ignore") or []),
            {k: float(v) for k, v in (raw.get("tolerances") or {}).items()},
        )

    def limit(self, name: str) -> float | None:
        """The allowed change for ``file:key``; None when it is not compared."""
        if any(fnmatch.fnmatch(name, pat) for pat in self.ignore):
            return None
        for pat, tol in self.tolerances.items():
            if fnmatch.fnmatch(name, pat):
                return tol
        return self.default


def compare(diff: dict[str, dict[str, Any]], tol: Tolerance) -> list[tuple[str, Any, Any, float]]:
    """Violations ``(file:key, old, new, allowed)`` in a ``dvc metrics diff --json`` result."""
    bad = []
    for file, keys in sorted(diff.items()):
        for key, change in sorted(keys.items()):
            name = f"{file}:{key}"
            allowed = tol.limit(name)
            if allowed is None:
                continue
            old, new = change.get("old"), change.get("new")
            if isinstance(old, bool) or isinstance(new, bool):
                continue
            numeric = all(isinstance(v, int | float) for v in (old, new))
            if not numeric:
                if old != new:
                    bad.append((name, old, new, allowed))
                continue
            if math.isnan(old) and math.isnan(new):
                continue
            if not abs(new - old) <= allowed:
                bad.append((name, old, new, allowed))
    return bad


def _dvc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["dvc", *args], capture_output=True, text=True)


def check_repro(tolerance: Path, rev: str = "HEAD", run: bool = True) -> int:
    """Reproduce (unless ``run`` is off), diff against ``rev``, print a report; 0 when it holds."""
    tol = Tolerance.load(tolerance)
    if run:
        repro = subprocess.run(["dvc", "repro"])
        if repro.returncode != 0:
            print("check-repro: `dvc repro` failed")
            return repro.returncode
        status = _dvc("status")
        if "up to date" not in status.stdout:
            print("check-repro: pipeline not up to date after repro:\n" + status.stdout)
            return 1
    result = _dvc("metrics", "diff", rev, "--all", "--json")
    if result.returncode != 0:
        raise MovierecError(f"dvc metrics diff failed: {result.stderr.strip()}")
    diff = json.loads(result.stdout or "{}")
    bad = compare(diff, tol)
    compared = sum(1 for f, keys in diff.items() for k in keys if tol.limit(f"{f}:{k}") is not None)
    if not bad:
        print(f"check-repro: {compared} metrics match {rev} within tolerance ({tolerance})")
        return 0
    print(f"check-repro: {len(bad)} of {compared} metrics moved beyond tolerance vs {rev}:\n")
    print("| metric | committed | fresh | change | allowed |")
    print("|---|---:|---:|---:|---:|")
    for name, old, new, allowed in bad:
        change = (
            f"{new - old:+.5f}"
            if all(isinstance(v, int | float) for v in (old, new))
            else "added/removed"
        )
        print(f"| {name} | {old} | {new} | {change} | {allowed} |")
    edited = _edited_inputs()
    if edited:
        print(
            f"\nYou changed {', '.join(edited[:5])}{' ...' if len(edited) > 5 else ''}: if the "
            "moves are intended, commit the new dvc.lock and metrics/ with the change."
        )
    else:
        print(
            "\nNo code or params differ from the committed ones, so this machine computes "
            "differently (CPU, BLAS build or thread count; train.threads pins the threads). "
            f"Widen the entries in {tolerance} only if the moves are within the seed-to-seed "
            "spread; otherwise report the table above."
        )
    return 1


def _edited_inputs() -> list[str]:
    """Tracked files changed against HEAD, apart from what `dvc repro` itself writes."""
    out = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
    paths = [line[3:].strip() for line in out.stdout.splitlines() if line[:2].strip()]
    return [p for p in paths if p != "dvc.lock" and not p.startswith(("metrics/", "data/"))]
