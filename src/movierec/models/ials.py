"""iALS: implicit-feedback matrix factorisation by alternating least squares.

Hu, Koren & Volinsky (2008): every user x movie cell is a target (1 if rated, 0
otherwise) with confidence ``1 + alpha * x_ui``; each half-step solves a ridge
regression per user (then per movie) exactly in closed form over *all* cells,
which the Gram-matrix trick makes cost only the observed ones. Rendle et al.
(2021, "Revisiting the performance of iALS") show that, tuned, it matches far
newer models. The solver is the `implicit` library's conjugate-gradient kernel
(multi-threaded C++; its CUDA kernel when that build is installed), seeded for
identical factors run to run.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from movierec.config import checks
from movierec.config.params import ConfigError
from movierec.data.processed import Processed
from movierec.errors import MovierecError
from movierec.models.base import FitContext, FitReport
from movierec.models.ranking import Ranker, Weighting, interactions


@dataclass
class IALSParams:
    factors: int = 256
    regularization: float = 22.8
    alpha: float = 2.63  # confidence 1 + alpha * x of an observed cell
    iterations: int = 24
    weighting: Weighting = "rating"  # binary | rating (x = rating / max rating)
    threads: int = 0  # 0 = train.threads

    def validate(self, key: str) -> None:
        checks.at_least_one(key, factors=self.factors, iterations=self.iterations)
        if self.regularization < 0 or self.alpha <= 0:
            raise ConfigError(
                f"params.yaml: `{key}.regularization` must be >= 0 and `{key}.alpha` positive"
            )
        checks.non_negative(key, threads=self.threads)


def _implicit_als():
    try:
        from implicit.als import AlternatingLeastSquares
        from implicit.gpu import HAS_CUDA
    except ModuleNotFoundError:
        raise MovierecError(
            'ials needs the `implicit` package, which is not installed; run `pip install -e "."`'
        ) from None
    return AlternatingLeastSquares, HAS_CUDA


class IALS(Ranker):
    """Scores are ``u . v``; movie vectors are the movie factors."""

    name = "ials"
    provides = frozenset({"movie_vectors"})

    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        start = time.perf_counter()
        als_cls, has_cuda = _implicit_als()
        p = self.params
        use_gpu = bool(has_cuda) and ctx.device in ("auto", "cuda")
        threads = p.threads or ctx.threads
        x = interactions(data, p.weighting)
        # implicit parallelises over users itself; a threaded BLAS underneath only contends
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*BLAS.*")
            als = self._fit_als(als_cls, use_gpu, threads, ctx.seed, x)
        if use_gpu:
            als = als.to_cpu()
        self.user_factors_ = np.asarray(als.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(als.item_factors, dtype=np.float32)
        self.rated_ = np.diff(x.tocsc().indptr) > 0
        report = self.one_shot_report(data, ctx, start)
        report.device = "cuda" if use_gpu else "cpu"
        return report

    def _fit_als(self, als_cls, use_gpu: bool, threads: int, seed: int, x):
        p = self.params
        als = als_cls(
            factors=p.factors,
            regularization=p.regularization,
            alpha=p.alpha,
            iterations=p.iterations,
            calculate_training_loss=False,
            use_gpu=use_gpu,
            random_state=seed,
            num_threads=threads,
        )
        als.fit(x, show_progress=False)
        return als

    def score_users(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T

    def movie_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.item_factors_, self.rated_

    def state(self) -> dict[str, np.ndarray]:
        return {"user": self.user_factors_, "item": self.item_factors_, "rated": self.rated_}

    def set_state(self, state: dict[str, np.ndarray], data: Processed) -> None:
        self.user_factors_, self.item_factors_ = state["user"], state["item"]
        self.rated_ = state["rated"].astype(bool)
