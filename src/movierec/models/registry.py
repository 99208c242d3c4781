"""Model names -> (class, params dataclass), each family imported when it is asked for.

The names are a contract (params, stages, CLI); where each family's code lives is the
table in :mod:`movierec.models.families`. Nothing here imports a family until a caller
asks for it (:func:`family`), so ``train@ease`` loads EASE's module and not torch's
twenty others, and its code fingerprint holds only what it runs. The pipeline asks each
class what it needs and provides (``Recommender.needs`` / ``provides``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from movierec.config.params import ConfigError, Params, build_section
from movierec.models.base import Recommender
from movierec.models.families import FAMILIES, left_out, trainable  # noqa: F401 (re-exported)


def check_known(name: str) -> None:
    """The one "unknown model" message: the name and every known one."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(FAMILIES)}")


def family(name: str) -> type[Recommender]:
    """The family's ``Recommender`` subclass (its module imported now, not before)."""
    check_known(name)
    row = FAMILIES[name]
    return getattr(importlib.import_module(row.module), row.model)


def params_class(name: str) -> type:
    """The family's hyper-parameter dataclass."""
    check_known(name)
    row = FAMILIES[name]
    return getattr(importlib.import_module(row.module), row.params)


class _Families(Mapping[str, tuple[type[Recommender], type]]):
    """``MODELS[name] -> (class, params class)``; iterating names imports nothing."""

    def __getitem__(self, name: str) -> tuple[type[Recommender], type]:
        if name not in FAMILIES:
            raise KeyError(name)
        return family(name), params_class(name)

    def __iter__(self) -> Iterator[str]:
        return iter(FAMILIES)

    def __len__(self) -> int:
        return len(FAMILIES)

    def __contains__(self, name: object) -> bool:
        return name in FAMILIES


MODELS: Mapping[str, tuple[type[Recommender], type]] = _Families()


def params_key(name: str) -> str:
    """The dotted params.yaml key of a family's hyper-parameters."""
    return family(name).params_key.format(name=name)


def providing(capability: str, names: list[str]) -> list[str]:
    """Those of ``names`` whose family provides ``capability`` (e.g. ``movie_vectors``)."""
    return [n for n in names if n in FAMILIES and capability in family(n).provides]


def model_params(name: str, raw: Any) -> Any:
    """Validate ``models.<name>`` into the family's params dataclass."""
    return build_section(params_class(name), raw or {}, params_key(name))


def raw_params(name: str, params: Params) -> Any:
    """The family's section of params.yaml as written (``models.<name>``, ``embed`` ...)."""
    section: Any = params.extra
    for part in params_key(name).split("."):
        section = (section or {}).get(part) or {}
    return section


def create(name: str, params: Params) -> Recommender:
    """Build an unfitted model from the project params."""
    hp = model_params(name, raw_params(name, params))
    return family(name)(hp)
