"""Budgets: work that would run past its time budget, or need more memory than there is,
stops within seconds and says so.

On ML-25M-sized data a CPU needs hours to days for some families (I-AutoRec reconstructs
every movie's 162k-wide row, about 14 minutes an epoch on two cores, so 100 epochs take
most of a day). Instead of a stage that silently runs that long,
the Trainer and the full-ranking evaluation time their first steps, project the whole
run, and refuse with one line naming the projection, the parameter that sets the budget
and what to do instead. Families whose step memory grows with the catalogue (a full
softmax) compare it with :func:`available_bytes` before the first step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from movierec.errors import MovierecError

PROBE_SECONDS = 5.0  # how long a run is timed before its projection counts


class BudgetError(MovierecError):
    """A run projected to take longer than its configured budget."""


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h``, ``11,300 h``: a projection's size at a glance."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 100 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 3600:,.0f} h"


@dataclass
class Budget:
    """``hours`` (0 = no limit) for one run, described as ``what`` (e.g. "training mlp");
    ``param`` names the setting and ``advice`` the alternative for the refusal line.
    Projections wait :data:`PROBE_SECONDS` so one-off start-up costs do not dominate."""

    hours: float
    what: str
    param: str
    advice: str

    def check(
        self, elapsed: float, fraction: float, *, setup: float = 0.0, final: bool = False
    ) -> None:
        """Refuse when ``elapsed`` seconds for ``fraction`` of the run, after ``setup``
        seconds spent once, project past the budget; cheap enough to call after every
        step. ``final``: the measurement is complete (an epoch), so no probe wait."""
        if self.hours <= 0 or fraction <= 0 or (elapsed < PROBE_SECONDS and not final):
            return
        self.check_run(setup + elapsed / min(fraction, 1.0), setup + elapsed)

    def check_run(self, projected: float, spent: float) -> None:
        """Refuse a whole run ``projected`` to take that many seconds, measured from the
        first ``spent`` (a projection built from parts: an epoch's training times the
        epochs, plus a validation times the validations)."""
        if self.hours > 0 and projected > self.hours * 3600:
            raise BudgetError(
                f"{self.what} would take about {duration(projected)} here (projected from "
                f"its first {duration(spent)}), over `{self.param}` = {self.hours:g} h; "
                f"{self.advice}, or raise `{self.param}` (0 = no limit)"
            )


def available_bytes(device: str = "cpu") -> int | None:
    """Memory a run can still take: free memory of a CUDA device, else the operating
    system's available memory (Linux MemAvailable); None where neither is known."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
