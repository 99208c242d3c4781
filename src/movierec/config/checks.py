"""Range checks for params sections: each failure is one line naming the dotted key.

Every section's ``validate`` uses these, so the same mistake reads the same way in
every family (``params.yaml: `models.mlp.dropout` must be in [0, 1) (got 1.5)``).
"""

from __future__ import annotations

from collections.abc import Sequence

from movierec.errors import ConfigError


def _fail(key: str, name: str, rule: str, value: object) -> ConfigError:
    return ConfigError(f"params.yaml: `{key}.{name}` must {rule} (got {value})")


def positive(key: str, **values: float) -> None:
    """Each value > 0 (sizes, scales, learning rates)."""
    for name, value in values.items():
        if not value > 0:
            raise _fail(key, name, "be positive", value)


def at_least_one(key: str, **values: int) -> None:
    """Each count >= 1 (epochs, neighbours, factors, processes)."""
    for name, value in values.items():
        if not value >= 1:
            raise _fail(key, name, "be at least 1", value)


def non_negative(key: str, **values: float) -> None:
    """Each value >= 0 (penalties, paddings)."""
    for name, value in values.items():
        if not value >= 0:
            raise _fail(key, name, "be >= 0", value)


def fraction(key: str, **values: float) -> None:
    """Each value in [0, 1) (dropout rates: 1 would drop everything)."""
    for name, value in values.items():
        if not 0 <= value < 1:
            raise _fail(key, name, "be in [0, 1)", value)


def layer_sizes(key: str, name: str, sizes: Sequence[int]) -> None:
    """A non-empty list of positive layer widths."""
    if not sizes or any(s < 1 for s in sizes):
        raise _fail(key, name, "list positive layer sizes", list(sizes))
