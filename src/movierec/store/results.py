"""Where a model's evaluation lands, split by who reads it.

- ``metrics/eval/<model>.json``: the headline val/test numbers, declared as DVC
  metrics, so ``dvc exp show`` and ``dvc metrics diff`` stay a screenful.
- ``metrics/details/<model>.json``: every metric (all cut-offs, rounded RMSE,
  coverage, novelty, blend weights ...), git-tracked for the leaderboard.
- ``data/timings/<model>.json``: seconds and epochs (:mod:`movierec.store.timings`). They
  differ from run to run, so they stay out of git and out of DVC's hashes.
- ``data/per_user/<model>.parquet``: per split and user, the number of ratings,
  squared-error sum and NDCG@k: what the significance tests pair across models
  (and ``movierec compare`` across revisions). Large, so DVC-cached, not in git.

Imports nothing heavy: the leaderboard and the CLI read these without torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from movierec.store.files import atomic_path, reading, state_digest, write_json
from movierec.store.paths import DETAILS, EVAL_METRICS, PER_USER
from movierec.store.timings import is_timing, record_timings

# Headline keys per split ({k} = the first cut-off in evaluate.k).
HEADLINE = {"val": ("rmse", "ndcg@{k}"), "test": ("rmse", "mae", "ndcg@{k}", "recall@{k}")}


def split_result(result: dict[str, Any], k: int) -> tuple[dict, dict, dict]:
    """``(headline, details, timings)`` of one evaluation result."""
    details: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    for key, value in result.items():
        if is_timing(key):
            timings[key] = value
        elif isinstance(value, dict) and key in HEADLINE:
            details[key] = {m: v for m, v in value.items() if not is_timing(m)}
            timings |= {f"{key}_{m}": v for m, v in value.items() if is_timing(m)}
        else:
            details[key] = value
    headline = {
        split: {
            name.format(k=k): details[split][name.format(k=k)]
            for name in names
            if details[split].get(name.format(k=k)) is not None
        }
        for split, names in HEADLINE.items()
        if split in details
    }
    return headline, details, timings


def made_from(state: Path, data_meta: dict[str, Any]) -> dict[str, Any]:
    """What a result was computed from: the trained state (every file of its folder) and
    the split's rows. The leaderboard keeps it, so a server can tell when the figures it
    shows belong to other models or other data than the ones it serves."""
    return {"state_sha256": state_digest(state), "rows_sha256": data_meta.get("rows_sha256")}


def write_result(
    name: str, result: dict[str, Any], k: int, made: dict[str, Any] | None = None
) -> None:
    """Write the three files of one model's evaluation (``made``: :func:`made_from`)."""
    result = dict(result) | ({"made_from": made} if made else {})
    per_user = result.pop("per_user", {})
    headline, details, timings = split_result(result | {"model": name}, k)
    write_per_user(PER_USER / f"{name}.parquet", per_user)
    write_json(DETAILS / f"{name}.json", details)
    record_timings(name, timings)
    write_json(EVAL_METRICS / f"{name}.json", headline)


def write_per_user(path: Path, per_user: dict[str, dict[str, Any]]) -> None:
    """One row per (split, user) with the values :func:`movierec.evaluation.protocol.evaluate` kept."""
    import polars as pl

    frames = [
        pl.DataFrame(columns).with_columns(pl.lit(split).alias("split"))
        for split, columns in per_user.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".parquet") as tmp:
        (pl.concat(frames) if frames else pl.DataFrame()).write_parquet(tmp)


def read_per_user(path: Path, split: str = "test") -> dict[str, Any]:
    """``{column: numpy array}`` of one model's per-user values on ``split``."""
    import polars as pl

    with reading(path):
        frame = pl.read_parquet(path).filter(pl.col("split") == split).sort("user")
    return {c: frame[c].to_numpy() for c in frame.columns if c != "split"}


def read_details(folder: Path = DETAILS) -> list[dict[str, Any]]:
    """Every model's details, sorted by name; skips stray temporaries."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        with reading(path):
            rows.append(json.loads(path.read_text()) | {"model": path.stem})
    return rows
