"""``train:`` in params.yaml: which registered families a run trains, and on what.

It lives beside the registry because its first check is that every name in
``train.models`` is a family the train stage fits (read from the family table, importing no family).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from movierec.config import checks
from movierec.config.params import ConfigError, Params, build_section
from movierec.models.families import FAMILIES, trainable


@dataclass
class TrainSection:
    """``train:`` in params.yaml."""

    models: list[str] = field(default_factory=trainable)
    device: str = "auto"
    amp: bool = True
    threads: int = 2  # fixed: metrics reproduce across machines (0 = library defaults)
    kernels: str = "portable"  # portable: the same CPU code paths everywhere (movierec.train.kernels)
    launcher: str = "python"  # python: one process; torchrun: data parallel on this node
    nproc_per_node: int = 2  # processes torchrun starts (one per GPU; CPU: a share of threads)
    max_hours: float = 24.0  # a fit projected past this (from its first seconds) is refused
    refit: bool = False  # after selecting epochs on val, fit again on train + val for test

    def validate(self, key: str) -> None:
        known = trainable()
        if not self.models:
            raise ConfigError(f"params.yaml: `{key}.models` must list at least one model")
        unknown = [m for m in self.models if m not in known]
        if unknown:
            other = f" ({unknown[0]} comes from its own stage)" if unknown[0] in FAMILIES else ""
            raise ConfigError(
                f"params.yaml: `{key}.models` lists unknown model {unknown[0]!r}{other}; "
                f"known: {', '.join(known)}"
            )
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"params.yaml: `{key}.models` lists a model twice")
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ConfigError(
                f"params.yaml: `{key}.device` must be auto, cpu, cuda or mps (got {self.device!r})"
            )
        if self.threads < 0:
            raise ConfigError(f"params.yaml: `{key}.threads` must be >= 0 (0 = library defaults)")
        if self.kernels not in ("portable", "native"):
            raise ConfigError(
                f"params.yaml: `{key}.kernels` must be portable or native (got {self.kernels!r})"
            )
        if self.launcher not in ("python", "torchrun"):
            raise ConfigError(
                f"params.yaml: `{key}.launcher` must be python or torchrun (got {self.launcher!r})"
            )
        checks.at_least_one(key, nproc_per_node=self.nproc_per_node)
        if not self.max_hours >= 0:
            raise ConfigError(f"params.yaml: `{key}.max_hours` must be >= 0 (0 = no limit)")


def train_section(params: Params) -> TrainSection:
    return build_section(TrainSection, params.extra.get("train"), "train")
