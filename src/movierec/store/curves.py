"""Learning curves of one fit, in the files ``dvc plots`` and ``dvc metrics`` read.

The layout is dvclive's (``metrics.json`` with the latest value of each curve and
``step``; ``plots/metrics/<name>.tsv`` with one row a step), written here in a few
lines instead of through dvclive: its ``Live`` posts every step to a background
queue and, on the way out of an interrupted ``with`` block, waits on that queue
without a bound, so Ctrl-C could leave training hanging for ever. This writer has
no threads and nothing to wait for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (``metrics.json`` is plain JSON)."""
    return value.item() if hasattr(value, "item") else value


class CurveLog:
    """Append each epoch's values; :meth:`close` writes the summary."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.summary: dict[str, Any] = {}
        self._step: int | None = None
        self._started: set[str] = set()

    @property
    def step(self) -> int:
        return self._step or 0

    def log_metric(self, name: str, value: float) -> None:
        """One point of curve ``name`` at the current step (appended at once, so a
        reader of the temporary folder sees training progress)."""
        plots = self.folder / "plots" / "metrics"
        plots.mkdir(parents=True, exist_ok=True)
        path = plots / f"{name}.tsv"
        with open(path, "a", encoding="utf-8", newline="") as out:
            if name not in self._started and not path.stat().st_size:
                out.write(f"step\t{name}\n")
            out.write(f"{self.step}\t{value}\n")
        self._started.add(name)
        self.summary[name] = value

    def next_step(self) -> None:
        if self._step is None:
            self._step = 0
        self.summary["step"] = self._step
        self.write_summary()
        self._step += 1

    def write_summary(self) -> None:
        (self.folder / "metrics.json").write_text(
            json.dumps({k: _plain(v) for k, v in self.summary.items()}, indent=4) + "\n",
            encoding="utf-8",
        )

    def close(self) -> None:
        """The final summary: ``step`` is the last completed step, not the next one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if "step" in self.summary:
            self._step = self.summary["step"]
        self.write_summary()
