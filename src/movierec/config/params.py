"""Typed, validated parameters read from ``params.yaml``.

Every stage reads its parameters through :func:`load_params`, so a typo, a wrong
type or an out-of-range value fails before any work with one message naming the
key (``data.split.ratios``) and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from movierec.config.yaml_reader import read_yaml
from movierec.errors import ConfigError

DATASETS = (
    "ml-100k",
    "ml-1m",
    "ml-10m",
    "ml-20m",
    "ml-25m",
    "ml-32m",
    "ml-latest-small",
    "custom",
    "synthetic",
)


MAX_SEED = 2**31 - 1


def _fail(key: str, message: str) -> ConfigError:
    return ConfigError(f"params.yaml: `{key}` {message}")


@dataclass
class CustomData:
    """Files of a user's own data set (``data.dataset: custom``)."""

    ratings: str = ""
    items: str = ""
    users: str = ""


@dataclass
class SyntheticData:
    """Sizes of the generated data set with planted low-rank structure."""

    n_users: int = 943
    n_items: int = 1682
    n_ratings: int = 100_000
    rank: int = 8
    noise: float = 0.35
    rating_step: float = 0.5
    spread: float = (
        1.0  # scales biases and latent factors (smaller: fewer ratings clipped at 1 and 5)
    )

    def validate(self, key: str) -> None:
        for name in ("n_users", "n_items", "n_ratings", "rank"):
            if getattr(self, name) < 1:
                raise _fail(f"{key}.{name}", "must be at least 1")
        if self.n_ratings > self.n_users * self.n_items // 2:
            raise _fail(
                f"{key}.n_ratings",
                f"({self.n_ratings}) must be at most half of n_users * n_items "
                f"({self.n_users * self.n_items // 2}); raise n_users or n_items",
            )
        if self.noise < 0:
            raise _fail(f"{key}.noise", "must be >= 0")
        if self.spread <= 0:
            raise _fail(f"{key}.spread", "must be positive")
        if self.rating_step < 0 or self.rating_step > 1:
            raise _fail(f"{key}.rating_step", "must be in [0, 1] (0 keeps ratings continuous)")


@dataclass
class SplitParams:
    """How ratings are cut into train / val / test.

    ``random`` / ``temporal``: per user, shuffled or in time order, cut by ``ratios``.
    ``official``: the release's own fold ``fold`` (ml-100k's u1..u5, ua, ub) as train / test,
    ``val_share`` of each user's training ratings to val. ``holdout``: a global random
    ``test_share`` of all ratings to test, ``val_share`` of the rest to val (the ML-1M /
    ML-10M literature protocol). ``leave_last``: per user, the latest rating to test and
    the one before to val (the sequential-recommendation protocol).
    """

    strategy: Literal["random", "temporal", "official", "holdout", "leave_last"] = "random"
    ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    fold: str = "u1"
    val_share: float = 0.1
    test_share: float = 0.1
    min_user_ratings: int = 3

    def validate(self, key: str) -> None:
        if len(self.ratios) != 3:
            raise _fail(f"{key}.ratios", "must list three numbers: train, val, test")
        if any(r < 0 for r in self.ratios):
            raise _fail(f"{key}.ratios", f"must not be negative (got {self.ratios})")
        if not math.isclose(sum(self.ratios), 1.0, abs_tol=1e-6):
            raise _fail(
                f"{key}.ratios", f"must sum to 1 (got {self.ratios}, sum {sum(self.ratios):g})"
            )
        if min(self.ratios) <= 0:
            raise _fail(
                f"{key}.ratios",
                f"needs a positive share for each of train, val and test (got {self.ratios}): "
                "validation selects models, test reports them",
            )
        for name in ("val_share", "test_share"):
            share = getattr(self, name)
            if not 0 < share < 1:
                raise _fail(f"{key}.{name}", f"must be between 0 and 1, exclusive (got {share})")
        if self.min_user_ratings < 1:
            raise _fail(f"{key}.min_user_ratings", "must be at least 1")

    def record(self) -> dict[str, Any]:
        """The settings that matter for this strategy (for meta.json and metrics/data.json)."""
        record: dict[str, Any] = {"strategy": self.strategy}
        if self.strategy in ("random", "temporal"):
            record["ratios"] = self.ratios
        elif self.strategy == "official":
            record |= {"fold": self.fold, "val_share": self.val_share}
        elif self.strategy == "holdout":
            record |= {"test_share": self.test_share, "val_share": self.val_share}
        if self.strategy != "holdout":
            record["min_user_ratings"] = self.min_user_ratings
        return record

    def describe(self) -> str:
        """The split in a few words, for titles (e.g. ``official fold u1, 10% val``)."""

        def pct(x: float) -> str:
            return f"{100 * x:g}%"

        if self.strategy in ("random", "temporal"):
            cut = "/".join(f"{100 * r:g}" for r in self.ratios)
            order = "shuffled" if self.strategy == "random" else "in time order"
            return f"per-user {cut} split, {order}"
        if self.strategy == "official":
            return f"official fold {self.fold}, {pct(self.val_share)} of base to val"
        if self.strategy == "holdout":
            return (
                f"holdout: random {pct(self.test_share)} of all ratings to test, "
                f"{pct(self.val_share)} of the rest to val"
            )
        return "leave-last-out: each user's latest rating to test, the one before to val"


@dataclass
class SequenceParams:
    """History windows for the sequence models."""

    length: int = 6
    pad_item: int = -1

    def validate(self, key: str) -> None:
        if self.length < 1:
            raise _fail(f"{key}.length", "must be at least 1")
        if self.pad_item >= 0:
            raise _fail(f"{key}.pad_item", "must be negative so it never collides with an item id")


@dataclass
class DataParams:
    """Which data set, where to find it, and how to prepare it."""

    dataset: str = "ml-100k"
    profile: str = "auto"  # settings for a data set's size from profiles.yaml (auto: by dataset)
    mirror: str = ""
    duplicates: Literal["last", "mean", "error"] = "last"
    custom: CustomData = field(default_factory=CustomData)
    synthetic: SyntheticData = field(default_factory=SyntheticData)
    split: SplitParams = field(default_factory=SplitParams)
    sequences: SequenceParams = field(default_factory=SequenceParams)

    def validate(self, key: str) -> None:
        if self.dataset not in DATASETS:
            raise _fail(
                f"{key}.dataset",
                f"is {self.dataset!r}, which is not a known data set; use one of: "
                + ", ".join(DATASETS),
            )
        if self.dataset == "custom" and not self.custom.ratings:
            raise _fail(
                f"{key}.custom.ratings", "must name a ratings file when data.dataset is custom"
            )


@dataclass
class Params:
    """Everything in params.yaml."""

    seed: int = 42
    data: DataParams = field(default_factory=DataParams)
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        # numpy's legacy seeding (gensim, Optuna) stops at 2**32 - 1; the seeds derived
        # from this one (+ a rank, + a trial number) must stay below that
        if not 0 <= self.seed <= MAX_SEED:
            raise _fail("seed", f"must be an integer from 0 to {MAX_SEED} (got {self.seed})")


# Sections owned by later stages; they are validated by their own modules.
_PASS_THROUGH = (
    "train",
    "models",
    "evaluate",
    "embed",
    "neighbours",
    "insight",
    "ensemble",
    "ensemble_topn",
    "significance",
    "tune",
)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise _fail(key, f"is {value!r}; allowed: {', '.join(map(str, allowed))}")
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for arm in get_args(tp):
            if arm is type(None) and value is None:
                return None
            try:
                return _convert(value, arm, key)
            except ConfigError as err:
                errors.append(str(err))
        raise errors[-1] if errors else _fail(key, "has an unexpected type")
    if origin is list:
        if not isinstance(value, list):
            raise _fail(key, f"must be a list, got {value!r}")
        (item_type,) = get_args(tp)
        return [_convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(key, f"must be a mapping, got {value!r}")
        _, val_type = get_args(tp)
        return {k: _convert(v, val_type, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(key, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, f"must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(key, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise _fail(key, f"must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise _fail(key, f"must be a string, got {value!r}")
        return value
    raise _fail(key, f"has unsupported type {_type_name(tp)}")


def yaml_key(field_name: str) -> str:
    """A field's key in params.yaml: ``lambda_`` is written ``lambda`` (a Python keyword)."""
    return field_name[:-1] if field_name.endswith("_") else field_name


def _build(cls: Any, raw: Any, key: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _fail(key or "(top level)", f"must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {yaml_key(f.name): f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        where = f"{key}.{unknown[0]}" if key else unknown[0]
        raise _fail(where, f"is not a known parameter; known here: {', '.join(sorted(names))}")
    kwargs = {
        names[name]: _convert(value, hints[names[name]], f"{key}.{name}" if key else name)
        for name, value in raw.items()
    }
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate(key)
    return obj


def parse_params(raw: dict[str, Any] | None) -> Params:
    """Validate a params mapping (as loaded from YAML) into :class:`Params`."""
    raw = dict(raw or {})
    extra = {k: raw.pop(k) for k in list(raw) if k in _PASS_THROUGH}
    known = sorted({"seed", "data", *_PASS_THROUGH})
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise _fail(unknown[0], f"is not a known section; known sections: {', '.join(known)}")
    params = _build(Params, raw, "")
    params.extra = extra
    return params


def build_section(cls: Any, raw: Any, key: str) -> Any:
    """Validate one section owned by a later module (``train``, ``models.mf``...)."""
    return _build(cls, raw, key)


def load_raw(path: str | Path = "params.yaml") -> dict[str, Any]:
    """``params.yaml`` as a mapping; a missing file, bad YAML or a repeated key is one line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found; run from the project root (where dvc.yaml is)")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping of sections (seed, data, train, ...)")
    return raw


PROFILE_SECTIONS = ("models", "embed", "insight", "ensemble", "ensemble_topn")


def merge_params(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, mapping by mapping (neither is changed)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_params(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def active_profile(raw: dict[str, Any], profiles_path: Path) -> tuple[str | None, dict[str, Any]]:
    """The profile ``raw`` selects from ``profiles.yaml``: its name and its settings.

    ``data.profile: auto`` picks the profile named like ``data.dataset`` when there is
    one; ``none`` picks nothing (``(None, {})``); any other value must name a profile.
    A profile may set only what DVC re-reads per stage (model, embed, insight and
    ensemble settings), never the data, the split or the list of models.
    """
    data = raw.get("data") or {}
    name = data.get("profile", "auto") if isinstance(data, dict) else "auto"
    profiles: dict[str, Any] = {}
    if profiles_path.is_file():
        profiles = load_raw(profiles_path)
    if name == "none":
        return None, {}
    if name == "auto":
        name = data.get("dataset", "ml-100k") if isinstance(data, dict) else "ml-100k"
        if name not in profiles:
            return None, {}
    elif name not in profiles:
        known = ", ".join(["auto", "none", *sorted(profiles)])
        raise ConfigError(
            f"params.yaml: `data.profile` is {name!r}, which {profiles_path} does not define; "
            f"use one of: {known}"
        )
    profile = profiles[name] or {}
    if not isinstance(profile, dict):
        raise ConfigError(f"{profiles_path}: `{name}` must be a mapping of sections")
    for key in profile:
        if key not in PROFILE_SECTIONS:
            raise ConfigError(
                f"{profiles_path}: `{name}.{key}` cannot be set by a profile (only "
                f"{', '.join(PROFILE_SECTIONS)}); set it in params.yaml"
            )
    return name, profile


def apply_profile(raw: dict[str, Any], profiles_path: Path) -> dict[str, Any]:
    """``raw`` with its selected profile of ``profiles.yaml`` merged over it."""
    _, profile = active_profile(raw, profiles_path)
    return merge_params(raw, profile) if profile else raw


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; every problem is a :class:`ConfigError`."""
    path = Path(path)
    return parse_params(apply_profile(load_raw(path), path.parent / "profiles.yaml"))
