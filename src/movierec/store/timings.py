"""Seconds spent per model, kept out of git and out of DVC's hashes.

Wall-clock seconds differ on every run, so a file DVC hashes that holds them would
change ``dvc.lock`` after each ``dvc repro`` even when every model and metric is
identical. ``data/timings/<model>.json`` is therefore no declared DVC output: the
train stage writes it, later stages add their own entries, and ``movierec bench``
keeps the timings that are meant to be compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from movierec.store.files import write_json
from movierec.store.paths import TIMINGS

TIMING_KEYS = ("epochs", "best_epoch")


def is_timing(key: str) -> bool:
    return "seconds" in key or key in TIMING_KEYS


def read_timings(name: str, folder: Path = TIMINGS) -> dict[str, Any]:
    """What earlier stages recorded for ``name`` (nothing when the file is missing or torn)."""
    try:
        return json.loads((folder / f"{name}.json").read_text())
    except (OSError, ValueError):
        return {}


def record_timings(name: str, values: dict[str, Any], folder: Path = TIMINGS) -> None:
    """Merge ``values`` into ``data/timings/<name>.json`` (written atomically)."""
    write_json(folder / f"{name}.json", read_timings(name, folder) | values)
