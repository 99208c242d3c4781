"""Full score rows saved by each evaluate stage, so the blends read them instead of
scoring every member again.

A blend's full ranking needs every member's ``(users, movies)`` scores. Recomputing
them costs the sum of the members' evaluations (minutes for the MLP families on
ML-1M); the evaluate stage has just computed exactly those rows, so it writes them
to ``data/scores/<model>/rows.npy`` (float32, memory-mapped when read) next to
``meta.json`` (the users scored, the data and the trained state they came from). Rows
larger than ``evaluate.save_rows_mib`` are not written (the meta says why) and the
blends score that member themselves; rows from another trained state or another data
set are never used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from movierec.data.processed import Processed
from movierec.models.base import Recommender
from movierec.store.files import reading, state_digest
from movierec.store.paths import SCORES_DIR

META = "meta.json"
ROWS = "rows.npy"
SCORED = "scored.npy"


class RowSink:
    """Collects the rows ``evaluate`` scores, chunk by chunk, into a memory-mapped file
    (memory stays bounded); ``close`` writes the meta that makes them usable."""

    def __init__(self, folder: Path, data: Processed, model_dir: Path, limit_mib: float) -> None:
        self.folder, self.model_dir = folder, model_dir
        self.meta: dict[str, Any] = {"data": data.fingerprint(), "saved": False}
        size_mib = data.n_users * data.n_items * 4 / 2**20
        self.rows: np.ndarray | None = None
        if size_mib > limit_mib:
            self.meta["reason"] = (
                f"{size_mib:,.0f} MiB of rows is over evaluate.save_rows_mib={limit_mib:g}"
            )
            return
        self.rows = np.lib.format.open_memmap(
            folder / ROWS, mode="w+", dtype=np.float32, shape=(data.n_users, data.n_items)
        )
        self.scored = np.zeros(data.n_users, dtype=bool)

    def add(self, users: np.ndarray, scores: np.ndarray) -> None:
        """Store ``scores`` as the rows of ``users`` (nothing, when rows are not saved)."""
        if self.rows is None:
            return
        self.rows[users] = scores
        self.scored[users] = True

    def skip(self, reason: str) -> None:
        """Rows that must not be blended (e.g. a model judged on a subset of users)."""
        self.meta["reason"] = reason
        if self.rows is not None:
            del self.rows
            self.rows = None
            (self.folder / ROWS).unlink()

    def close(self) -> None:
        if self.rows is not None:
            self.rows.flush()
            del self.rows
            self.rows = None
            np.save(self.folder / SCORED, self.scored)
            self.meta |= {"saved": True, "state_sha256": state_digest(self.model_dir)}
        (self.folder / META).write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n")


class SavedRows:
    """One member's saved rows, if they exist and belong to this data and model file."""

    def __init__(self, folder: Path, data: Processed, model_dir: Path) -> None:
        self.rows: np.ndarray | None = None
        self.why = ""
        meta_path = folder / META
        if not meta_path.is_file():
            self.why = f"{meta_path} is missing"
            return
        with reading(meta_path):
            meta = json.loads(meta_path.read_text())
        if not meta.get("saved"):
            self.why = meta.get("reason", "not saved")
        elif meta.get("data") != data.fingerprint():
            self.why = f"{folder} holds rows of other data"
        elif not model_dir.is_dir() or meta.get("state_sha256") != state_digest(model_dir):
            self.why = f"{folder} holds rows of another {model_dir}"
        else:
            with reading(folder / ROWS) as path:
                self.rows = np.load(path, mmap_mode="r")
            with reading(folder / SCORED) as path:
                self.scored = np.load(path)

    def rows_for(self, users: np.ndarray) -> np.ndarray | None:
        """``(len(users), n_items)`` saved rows, or None when some user was not scored."""
        if self.rows is None or not self.scored[users].all():
            return None
        return np.asarray(self.rows[np.asarray(users)])


class WithSavedRows:
    """A member as a blend sees it: ``score_users`` from the saved rows where they cover
    the users asked for, else from the model; everything else is the model's own."""

    def __init__(self, model: Recommender, saved: SavedRows) -> None:
        self.model, self.saved = model, saved

    def score_users(self, users: np.ndarray) -> np.ndarray:
        rows = self.saved.rows_for(users)
        return self.model.score_users(users) if rows is None else rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def with_saved_rows(
    name: str, model: Recommender, data: Processed, models_dir: Path, folder: Path = SCORES_DIR
) -> Recommender:
    """``model`` reading its rows from ``folder/<name>`` when they are usable; otherwise
    the model itself (and one line on stderr saying why its rows are recomputed)."""
    saved = SavedRows(folder / name, data, models_dir / name)
    if saved.rows is None:
        print(f"{name}: scoring every movie again ({saved.why})", file=sys.stderr)
        return model
    return WithSavedRows(model, saved)  # type: ignore[return-value]
