"""The sections of params.yaml that name no model: their parameters, defaults and checks.

Each section is a dataclass. The hyper-parameters of model families live beside their
models and are reached through the registry; ``train:`` (which names families) is
``movierec.models.selection``; ``movierec.pipeline.params`` checks the whole file
before a stage does any work. Nothing here imports model or pipeline code, so a module
that only reads a section depends on none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from movierec.config import checks
from movierec.config.params import ConfigError, Params, build_section


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
class NeighbourParams:
    """``neighbours:`` in params.yaml: the lists of similar movies the server answers with."""

    # candidates: co-rating cosine times (floor + genre Jaccard), one per floor; plain
    # co-rating cosine and word2vec's vectors are measured beside them
    genre_floors: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0, 2.0])
    # the pick: the best val hit rate among candidates at least this genre-coherent
    min_coherence: float = 0.9
    k: int = 10  # neighbours judged (the page shows 10)
    keep: int = 50  # neighbours kept per movie for serving (the most `similar?k=` gives)
    threshold: float = 4.0  # a movie "liked": rated at least this

    def validate(self, key: str) -> None:
        checks.at_least_one(key, k=self.k, keep=self.keep)
        if not 0 <= self.min_coherence <= 1:
            raise ConfigError(
                f"params.yaml: `{key}.min_coherence` must be a share between 0 and 1 "
                f"(got {self.min_coherence!r})"
            )
        if not self.genre_floors:
            raise ConfigError(f"params.yaml: `{key}.genre_floors` must list at least one floor")
        for floor in self.genre_floors:
            checks.positive(key, genre_floors=floor)
        if self.keep < self.k:
            raise ConfigError(f"params.yaml: `{key}.keep` must be at least `{key}.k` ({self.k})")


def neighbours_section(params: Params) -> NeighbourParams:
    return build_section(NeighbourParams, params.extra.get("neighbours"), "neighbours")


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
    scores: str = "zscore"  # zscore | rank: how each member's rows are made comparable
    # member pools: those whose val NDCG is >= floor x the best member's; the pool with the
    # best cross-fitted val NDCG is served
    floors: list[float] = field(default_factory=lambda: [0.0, 0.6, 0.8, 0.9])

    def validate(self, key: str) -> None:
        if self.scores not in ("zscore", "rank"):
            raise ConfigError(
                f"params.yaml: `{key}.scores` must be zscore or rank (got {self.scores!r})"
            )
        if not self.floors or any(not 0 <= f <= 1 for f in self.floors):
            raise ConfigError(
                f"params.yaml: `{key}.floors` must list fractions between 0 and 1, e.g. [0, 0.9]"
            )
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
