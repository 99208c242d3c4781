"""The one validated params loader: params.yaml (with its profile), every section checked.

The stages and the CLI both load params through :func:`load_params`, so a typo in any
section is one line naming the key before any work starts, whichever way a step runs.
"""

from __future__ import annotations

from typing import Any

from movierec.config.params import ConfigError, Params, yaml_key
from movierec.config.params import load_params as load_unchecked
from movierec.config.sections import (
    embed_section,
    ensemble_section,
    eval_section,
    insight_section,
    neighbours_section,
    significance_section,
    topn_blend_section,
)
from movierec.models.registry import MODELS, create, trainable
from movierec.models.selection import train_section


def load_params() -> Params:
    """params.yaml (with its profile), every section validated before any work."""
    params = load_unchecked()
    validate_all(params)
    return params


KINDS = ("int", "float", "log", "choice")


def search_space(params: Params, model: str) -> dict[str, list[Any]]:
    spaces = (params.extra.get("tune") or {}).get("spaces") or {}
    space = spaces.get(model)
    if not space:
        raise ConfigError(
            f"params.yaml: no search space for {model!r} under tune.spaces "
            f"(spaces exist for: {', '.join(spaces) or 'none'})"
        )
    if model not in MODELS:
        raise ConfigError(f"params.yaml: `tune.spaces.{model}` is not a model family")
    fields = {yaml_key(f) for f in MODELS[model][1].__dataclass_fields__}
    for key, spec in space.items():
        where = f"`tune.spaces.{model}.{key}`"
        if key not in fields:
            raise ConfigError(f"params.yaml: {where}: {model} has no parameter {key!r}")
        if not isinstance(spec, list) or not spec or spec[0] not in KINDS:
            raise ConfigError(
                f"params.yaml: {where} must be [int|float|log, low, high] or [choice, ...]"
            )
        if spec[0] != "choice" and (len(spec) != 3 or not spec[1] < spec[2]):
            raise ConfigError(f"params.yaml: {where} needs low < high")
        if spec[0] == "log" and spec[1] <= 0:
            raise ConfigError(f"params.yaml: {where}: log ranges must be positive")
    return space


def check_model_sections(params: Params) -> None:
    """``models.<name>`` must name a family: a typo would otherwise be silently ignored."""
    known = trainable()
    for name in params.extra.get("models") or {}:
        if name not in known:
            raise ConfigError(
                f"params.yaml: `models.{name}` is not a model family; known: {', '.join(known)}"
            )


def validate_all(params: Params) -> None:
    """Every section of params.yaml, checked before any stage does any work.

    Each problem is one line naming the dotted key; unknown keys at any depth are
    rejected with the keys known there. ``load_params`` already checked seed and data.
    """
    train_section(params)
    eval_section(params)
    check_model_sections(params)
    for name in trainable():
        create(name, params)  # every family's block, listed in train.models or not
    embed_section(params)
    neighbours_section(params)
    insight_section(params)
    ensemble_section(params)
    topn_blend_section(params)
    significance_section(params)
    for name in (params.extra.get("tune") or {}).get("spaces") or {}:
        search_space(params, name)
