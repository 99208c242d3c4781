"""Time budgets: a loop that would run past its budget stops within seconds and says so.

On ML-25M-sized data a CPU needs days for some families (an item autoencoder's epoch is
about 6e16 floating-point operations). Instead of a stage that silently runs for days,
the Trainer and the full-ranking evaluation time their first steps, project the whole
run, and refuse with one line naming the projection, the parameter that sets the budget
and what to do instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from movierec.errors import MovierecError

PROBE_SECONDS = 5.0  # how long a run is timed before its projection counts


class BudgetError(MovierecError):
    """A run projected to take longer than its configured budget."""


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h``: a projection's size at a glance."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Budget:
    """``hours`` (0 = no limit) for one run, described as ``what`` (e.g. "training mlp");
    ``param`` names the setting and ``advice`` the alternative for the refusal line.
    Projections wait :data:`PROBE_SECONDS` so one-off start-up costs do not dominate."""

    hours: float
    what: str
    param: str
    advice: str

    def check(self, elapsed: float, fraction: float, *, final: bool = False) -> None:
        """Refuse when ``elapsed`` seconds for ``fraction`` of the run project past the
        budget; cheap enough to call after every step. ``final``: the measurement is
        complete (an epoch), so no probe time is waited for."""
        if self.hours <= 0 or fraction <= 0 or (elapsed < PROBE_SECONDS and not final):
            return
        projected = elapsed / min(fraction, 1.0)
        if projected > self.hours * 3600:
            raise BudgetError(
                f"{self.what} would take about {duration(projected)} here (projected from "
                f"its first {duration(elapsed)}), over `{self.param}` = {self.hours:g} h; "
                f"{self.advice}, or raise `{self.param}` (0 = no limit)"
            )
