"""The schema of params.yaml: every section's parameters, defaults and checks.

Each section is a dataclass (hyper-parameters of model families live beside their
models and are reached through the registry). ``validate_all`` checks the whole
file before a stage does any work; the section classes here import no model or
pipeline code, so modules that only read a section do not depend on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from movierec.config import ConfigError, Params, build_section


def _trainable() -> list[str]:
    from movierec.models.registry import trainable

    return trainable()


@dataclass
class TrainSection:
    """``train:`` in params.yaml."""

    models: list[str] = field(default_factory=_trainable)
    device: str = "auto"
    amp: bool = True
    threads: int = 2  # fixed: metrics reproduce across machines (0 = library defaults)
    kernels: str = "portable"  # portable: the same CPU code paths everywhere (movierec.kernels)
    launcher: str = "python"  # python: one process; torchrun: data parallel on this node
    nproc_per_node: int = 2  # processes torchrun starts (one per GPU; CPU: a share of threads)
    max_hours: float = 24.0  # a fit projected past this (from its first seconds) is refused
    refit: bool = False  # after selecting epochs on val, fit again on train + val for test

    def validate(self, key: str) -> None:
        from movierec.models.registry import MODELS

        known = _trainable()
        if not self.models:
            raise ConfigError(f"params.yaml: `{key}.models` must list at least one model")
        unknown = [m for m in self.models if m not in known]
        if unknown:
            other = f" ({unknown[0]} comes from its own stage)" if unknown[0] in MODELS else ""
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
        if self.nproc_per_node < 1:
            raise ConfigError(f"params.yaml: `{key}.nproc_per_node` must be at least 1")
        if not self.max_hours >= 0:
            raise ConfigError(f"params.yaml: `{key}.max_hours` must be >= 0 (0 = no limit)")


def train_section(params: Params) -> TrainSection:
    return build_section(TrainSection, params.extra.get("train"), "train")


@dataclass
class EvalParams:
    """``evaluate:`` in params.yaml."""

    k: list[int] = field(default_factory=lambda: [10])
    threshold: float = 4.0
    user_chunk: int = 1024
    save_rows_mib: float = 4096.0
    max_hours: float = 24.0  # a full ranking projected past this (from its first users) is refused
    splits: list[str] = field(default_factory=lambda: ["val", "test"])

    def validate(self, key: str) -> None:
        if not self.k or any(k < 1 for k in self.k):
            raise ConfigError(
                f"params.yaml: `{key}.k` must list cut-offs of at least 1 (got {self.k})"
            )
        if self.user_chunk < 1:
            raise ConfigError(f"params.yaml: `{key}.user_chunk` must be at least 1")
        if not self.max_hours >= 0:
            raise ConfigError(f"params.yaml: `{key}.max_hours` must be >= 0 (0 = no limit)")
        if self.save_rows_mib < 0:
            raise ConfigError(f"params.yaml: `{key}.save_rows_mib` must be >= 0 (0 saves none)")
        bad = [s for s in self.splits if s not in ("val", "test")]
        if bad:
            raise ConfigError(f"params.yaml: `{key}.splits` may only hold val and test (got {bad})")


def eval_section(params: Params) -> EvalParams:
    return build_section(EvalParams, params.extra.get("evaluate"), "evaluate")


@dataclass
class EmbedParams:
    """``embed:`` in params.yaml."""

    method: Literal["skipgram", "cbow"] = "skipgram"
    vector_size: int = 64
    window: int = 50  # wide: a user's movies are a set more than a sentence
    negative: int = 10
    min_count: int = 5  # rarer movies get noisy vectors that crowd the top of every list
    epochs: int = 20
    min_rating: float = 0.0  # keep only movies rated at or above this in the sentences (0 = all)
    sample: float = 1e-4  # down-sampling of the most-rated movies
    neighbours: int = 6  # for genre coherence@neighbours
    k: int = 10  # cut-off of the next-movie metrics

    def validate(self, key: str) -> None:
        for name in ("vector_size", "window", "negative", "min_count", "epochs", "neighbours", "k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"params.yaml: `{key}.{name}` must be at least 1")
        if self.min_rating < 0 or self.sample < 0:
            raise ConfigError(f"params.yaml: `{key}.min_rating` and `{key}.sample` must be >= 0")


def embed_section(params: Params) -> EmbedParams:
    return build_section(EmbedParams, params.extra.get("embed"), "embed")


@dataclass
class InsightParams:
    """``insight:`` in params.yaml."""

    tsne_movies: int = 1000  # most-rated movies on the map (t-SNE is quadratic)
    perplexity: float = 30.0
    iterations: int = 500  # gradient steps (the first 250 exaggerated); 1,000: KL ~2% lower
    layer: int = -1  # hidden layer of the unit report (-1 = last)
    top: int = 20  # movies listed per unit

    def validate(self, key: str) -> None:
        if self.tsne_movies < 10 or self.top < 1:
            raise ConfigError(f"params.yaml: `{key}.tsne_movies` >= 10 and `{key}.top` >= 1")
        if self.perplexity <= 0:
            raise ConfigError(f"params.yaml: `{key}.perplexity` must be positive")
        if self.iterations < 250:
            raise ConfigError(
                f"params.yaml: `{key}.iterations` must be at least 250 (t-SNE's exaggerated "
                "first phase alone takes 250)"
            )


def insight_section(params: Params) -> InsightParams:
    return build_section(InsightParams, params.extra.get("insight"), "insight")


@dataclass
class EnsembleParams:
    """``ensemble:`` in params.yaml."""

    models: list[str] = field(default_factory=list)  # empty: every rating model in train.models
    method: Literal["ridge", "nnls"] = "ridge"
    alpha: float = 1.0  # ridge penalty on standardised features
    meta: bool = True  # log user / movie support and their products with the predictions

    def validate(self, key: str) -> None:
        if self.alpha < 0:
            raise ConfigError(f"params.yaml: `{key}.alpha` must be >= 0 (got {self.alpha})")
        if self.method == "nnls" and self.meta:
            raise ConfigError(
                f"params.yaml: `{key}.method` nnls blends predictions only; set `{key}.meta: false`"
            )


def ensemble_section(params: Params) -> EnsembleParams:
    return build_section(EnsembleParams, params.extra.get("ensemble"), "ensemble")


@dataclass
class TopNBlendParams:
    """``ensemble_topn:`` in params.yaml."""

    models: list[str] = field(default_factory=list)  # empty: every trained model
    grid: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5])
    rounds: int = 3  # coordinate-ascent sweeps over the members (stops early without gain)
    folds: int = 2  # cross-fitting folds of val users for the blend's own val estimate
    max_users: int = 3000  # val users the weights are fitted on (sampled by seed; 0 = all)

    def validate(self, key: str) -> None:
        if not self.grid or any(w < 0 for w in self.grid):
            raise ConfigError(f"params.yaml: `{key}.grid` must list weights >= 0")
        if self.rounds < 1:
            raise ConfigError(f"params.yaml: `{key}.rounds` must be at least 1")
        if self.folds < 2:
            raise ConfigError(f"params.yaml: `{key}.folds` must be at least 2")
        if self.max_users < 0:
            raise ConfigError(f"params.yaml: `{key}.max_users` must be >= 0 (0 = all)")


def topn_blend_section(params: Params) -> TopNBlendParams:
    return build_section(TopNBlendParams, params.extra.get("ensemble_topn"), "ensemble_topn")


@dataclass
class SignificanceParams:
    """``significance:`` in params.yaml."""

    bootstrap: int = 2000  # resamples of test users for each confidence interval
    alpha: float = 0.05  # family-wise error rate (Holm) for "significant"

    def validate(self, key: str) -> None:
        if self.bootstrap < 100:
            raise ConfigError(f"params.yaml: `{key}.bootstrap` must be at least 100")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"params.yaml: `{key}.alpha` must be between 0 and 1")


def significance_section(params: Params) -> SignificanceParams:
    return build_section(SignificanceParams, params.extra.get("significance"), "significance")


KINDS = ("int", "float", "log", "choice")


def search_space(params: Params, model: str) -> dict[str, list[Any]]:
    spaces = (params.extra.get("tune") or {}).get("spaces") or {}
    space = spaces.get(model)
    if not space:
        raise ConfigError(
            f"params.yaml: no search space for {model!r} under tune.spaces "
            f"(spaces exist for: {', '.join(spaces) or 'none'})"
        )
    from movierec.models.registry import MODELS

    if model not in MODELS:
        raise ConfigError(f"params.yaml: `tune.spaces.{model}` is not a model family")
    from movierec.config import yaml_key

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
    known = _trainable()
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
    from movierec.models.registry import create

    train_section(params)
    eval_section(params)
    check_model_sections(params)
    for name in _trainable():
        create(name, params)  # every family's block, listed in train.models or not
    embed_section(params)
    insight_section(params)
    ensemble_section(params)
    topn_blend_section(params)
    significance_section(params)
    for name in (params.extra.get("tune") or {}).get("spaces") or {}:
        search_space(params, name)
