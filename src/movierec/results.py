"""Where a model's evaluation lands, split by who reads it.

- ``metrics/eval/<model>.json``: the headline val/test numbers, declared as DVC
  metrics, so ``dvc exp show`` and ``dvc metrics diff`` stay a screenful.
- ``metrics/details/<model>.json``: every metric (all cut-offs, rounded RMSE,
  coverage, novelty, blend weights ...), git-tracked for the leaderboard.
- ``data/timings/<model>.json``: seconds and epochs. They differ from machine to
  machine and run to run, so they stay out of git (``movierec bench`` records them).

Imports nothing heavy: the leaderboard and the CLI read these without torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from movierec.io import write_json

EVAL_METRICS = Path("metrics/eval")
DETAILS = Path("metrics/details")
TIMINGS = Path("data/timings")

# Headline keys per split ({k} = the first cut-off in evaluate.k).
HEADLINE = {"val": ("rmse", "ndcg@{k}"), "test": ("rmse", "mae", "ndcg@{k}", "recall@{k}")}
TIMING_KEYS = ("epochs", "best_epoch")


def _is_timing(key: str) -> bool:
    return "seconds" in key or key in TIMING_KEYS


def split_result(result: dict[str, Any], k: int) -> tuple[dict, dict, dict]:
    """``(headline, details, timings)`` of one evaluation result."""
    details: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    for key, value in result.items():
        if _is_timing(key):
            timings[key] = value
        elif isinstance(value, dict) and key in HEADLINE:
            details[key] = {m: v for m, v in value.items() if not _is_timing(m)}
            timings |= {f"{key}_{m}": v for m, v in value.items() if _is_timing(m)}
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


def write_result(name: str, result: dict[str, Any], k: int) -> None:
    """Write the three files of one model's evaluation."""
    headline, details, timings = split_result(result | {"model": name}, k)
    write_json(DETAILS / f"{name}.json", details)
    write_json(TIMINGS / f"{name}.json", timings)
    write_json(EVAL_METRICS / f"{name}.json", headline)


def read_details(folder: Path = DETAILS) -> list[dict[str, Any]]:
    """Every model's details, sorted by name; skips stray temporaries."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        rows.append(json.loads(path.read_text()) | {"model": path.stem})
    return rows
