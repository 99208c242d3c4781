"""Is the committed ``dvc.lock`` the lock of this code and these params?

A lock written before a later code change makes a fresh clone look stale: ``dvc repro``
reruns what nothing changed, ``dvc exp show --only-changed`` fills with dependency
columns, and returning to main after an experiment leaves every stage out of date. This
check needs no trained data, so CI runs it on the clean clone before anything else:

- every code fingerprint (``data/code/...``) is recomputed from the sources
  (:func:`movierec.pipeline.fingerprints.fingerprint_files`) and compared with the md5
  that ``dvc.lock`` recorded for it;
- ``dvc status`` names the other dependencies (the sources, params, profiles.yaml, the
  committed metrics) that differ from the lock; missing data (a clean clone has none)
  is not a difference;
- a stage of ``dvc.yaml`` that the lock does not hold is stale too.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from movierec.config.yaml_reader import read_yaml
from movierec.errors import ConfigError, MovierecError
from movierec.pipeline.fingerprints import fingerprint_files
from movierec.store.paths import CODE

FIX = "run `dvc repro` and commit dvc.lock and metrics/ with the change"


def _code_deps(lock: dict[str, Any]) -> dict[str, dict[str, str]]:
    """stage -> {fingerprint path under data/code: md5 the lock holds}."""
    out: dict[str, dict[str, str]] = {}
    prefix = CODE.as_posix() + "/"
    for stage, entry in (lock.get("stages") or {}).items():
        for dep in entry.get("deps") or []:
            path = str(dep.get("path", ""))
            if path.startswith(prefix):
                out.setdefault(stage, {})[path[len(prefix) :]] = str(dep.get("md5"))
    return out


def stale_code(root: Path, lock: dict[str, Any]) -> dict[str, list[str]]:
    """Stages whose recorded code fingerprint differs from the code (or names none that exists)."""
    prints = fingerprint_files(root)
    stale: dict[str, list[str]] = {}
    for stage, deps in _code_deps(lock).items():
        if not (root / "stages" / f"{stage.split('@')[0]}.py").is_file():
            continue  # a stage dvc.yaml no longer has: DVC keeps its entry, nothing runs it
        for name, md5 in deps.items():
            text = prints.get(name)
            if text is None or hashlib.md5(text.encode()).hexdigest() != md5:
                stale.setdefault(stage, []).append(f"data/code/{name}")
    return stale


def stale_status(status: dict[str, Any]) -> dict[str, list[str]]:
    """Stages with a dependency that ``dvc status --json`` calls changed (not missing)."""
    stale: dict[str, list[str]] = {}
    for stage, entries in status.items():
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            for path, state in (entry.get("changed deps") or {}).items():
                if path.startswith(CODE.as_posix() + "/"):
                    continue  # the fingerprints: compared above, whether written or not
                changes = state if isinstance(state, dict) else {path: state}
                for key, what in changes.items():
                    if what != "deleted":
                        label = key if key == path else f"{path}:{key}"
                        stale.setdefault(stage, []).append(f"{label} {what}")
    return stale


def _dvc_status() -> dict[str, Any]:
    result = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        raise MovierecError(f"check-lock: `dvc status` failed: {result.stderr.strip()}")
    return json.loads(result.stdout or "{}")


def missing_stages(status: dict[str, Any], lock: dict[str, Any]) -> list[str]:
    locked = set((lock.get("stages") or {}).keys())
    return sorted(
        stage
        for stage, entries in status.items()
        if stage not in locked and ".dvc" not in stage and entries
    )


def check_lock(root: Path = Path("."), status: dict[str, Any] | None = None) -> list[str]:
    """Problems with ``dvc.lock``, one per stale stage; empty when the lock is current."""
    lock_path = root / "dvc.lock"
    if not (root / "dvc.yaml").is_file():
        raise ConfigError(
            f"check-lock: no dvc.yaml in {root.resolve()}; run it in the project's folder"
        )
    if not lock_path.is_file():
        raise ConfigError(f"check-lock: dvc.lock not found; {FIX}")
    lock = read_yaml(lock_path)
    status = _dvc_status() if status is None else status
    stale = stale_code(root, lock)
    for stage, why in stale_status(status).items():
        stale.setdefault(stage, []).extend(why)
    problems = [f"{stage}: {', '.join(why)}" for stage, why in sorted(stale.items())]
    problems += [f"{stage}: not in dvc.lock" for stage in missing_stages(status, lock)]
    return problems


def report(problems: list[str]) -> str:
    """One line for the stale lock (the stages, then how to fix it), or that it is current."""
    if not problems:
        return "check-lock: dvc.lock matches the code and params"
    names = [p.split(":", 1)[0] for p in problems]
    shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    return (
        f"check-lock: dvc.lock is stale for {len(names)} stage(s) ({shown}); {FIX} "
        f"(details: movierec check-lock --verbose)"
    )
