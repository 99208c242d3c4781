"""The interface every model family implements, and what fitting records.

Conventions follow scikit-learn: the constructor holds only hyper-parameters,
``fit`` learns state (attributes ending in ``_``), ``predict`` scores
(user, item) pairs and ``score_users`` returns a full row of scores per user for
top-N ranking. ``save`` / ``load`` round-trip the learned state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from movierec.config.params import yaml_key
from movierec.data.processed import Processed
from movierec.errors import MovierecError
from movierec.store.files import atomic_path, reading


@dataclass
class FitContext:
    """What a model needs besides its data: seed, device and a per-epoch logger."""

    seed: int = 42
    device: str = "auto"
    amp: bool = True
    progress: bool | None = None
    log_epoch: Callable[[dict[str, float]], None] | None = None
    # The top-N protocol (evaluate.k[0], evaluate.threshold): rankers select epochs and
    # hyper-parameters by val NDCG@rank_k on it.
    rank_k: int = 10
    threshold: float = 4.0
    threads: int = 0  # CPU threads for libraries with their own pool (0 = their default)
    max_hours: float = 0.0  # train.max_hours: refuse a fit projected to take longer (0 = no limit)
    # A refit (train.refit) trains exactly this many epochs, the ones selected on val by
    # the fit before it, and keeps the last (0 = up to the model's epochs, early stopping)
    epochs: int = 0
    # How a ranker is judged on val, given as a value so that models import no evaluation
    # code: the pipeline passes ``movierec.evaluation.protocol.ranking_validation``
    # (full-ranking NDCG@rank_k under the protocol that reports it). None: no selection on
    # val; every epoch is trained and the last kept.
    rank_validation: Callable[[Any, Processed, int, float], Any] | None = None

    def ranking_validation(self, model: Any, data: Processed) -> Any:
        """The Trainer's ``Validation`` for ``model`` (None without ``rank_validation``)."""
        if self.rank_validation is None:
            return None
        return self.rank_validation(model, data, self.rank_k, self.threshold)


@dataclass
class FitReport:
    """What fitting records for the metrics files."""

    train_seconds: float
    epochs: int
    best_epoch: int
    seconds_to_best: float
    device: str = "cpu"
    history: list[dict[str, float]] = field(default_factory=list)


def _yaml_keys(values: dict[str, Any]) -> dict[str, Any]:
    return {yaml_key(k): v for k, v in values.items()}


class Recommender:
    """Base class: one rating predictor and full-row scorer over the processed data."""

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()  # extra inputs: "sequences", "demographics", "genres"
    # What else a trained model can give, so the pipeline asks instead of naming models:
    # "movie_vectors" (``movie_vectors``: similar movies, t-SNE maps) and "hidden_units"
    # (``hidden_units``: the unit report of the insight stage), "rating_classes"
    # (``predict_classes``: the rating level itself, judged by accuracy) and "fold_in"
    # (``score_ratings``: a user who is not in the data, from a row of their ratings) and
    # "explain" (``contributions``: how much each rated movie adds to one movie's score).
    provides: ClassVar[frozenset[str]] = frozenset()
    # The DVC stage that trains the family: ``train`` (listed in train.models) or ``embed``.
    trained_by: ClassVar[str] = "train"
    # Where its hyper-parameters live in params.yaml ({name} = the model name).
    params_key: ClassVar[str] = "models.{name}"
    # True when score_users returns predicted ratings (then evaluation reuses the rows for RMSE).
    scores_are_ratings: ClassVar[bool] = True
    # False for pure rankers (word2vec): no rating metrics, the leaderboard shows them as absent.
    predicts_ratings: ClassVar[bool] = True
    # True when fit runs the shared Trainer, which trains data parallel under torchrun; the
    # others are fitted by rank 0 alone there.
    data_parallel: ClassVar[bool] = False

    @classmethod
    def refits(cls) -> bool:
        """Whether ``train.refit`` can refit the family on train + val: the sequence
        families' history windows are cut per split, so folding val in would need new ones."""
        return "sequences" not in cls.needs

    def __init__(self, params: Any) -> None:
        self.params = params

    # -- learning ---------------------------------------------------------------------------
    def fit(self, data: Processed, ctx: FitContext) -> FitReport:
        raise NotImplementedError

    # -- scoring ----------------------------------------------------------------------------
    def predict(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Predicted ratings for aligned arrays of user and item ids."""
        raise NotImplementedError

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """``(len(users), n_items)`` scores; higher means more recommended."""
        raise NotImplementedError

    def score_ratings(self, ratings: Any, data: Processed) -> np.ndarray:
        """``(n, n_items)`` scores for users given as rows of ratings (a sparse
        ``(n, n_items)`` matrix on the data set's scale), without refitting: a new user
        folded in. Only for models that provide "fold_in"."""
        raise NotImplementedError(f"{self.name} cannot score a user from their ratings")

    def contributions(self, ratings: Any, item: int, data: Processed) -> np.ndarray:
        """What each movie of a one-row ``ratings`` matrix (as for :meth:`score_ratings`)
        adds to ``item``'s score, aligned with the row's indices: the "because you rated"
        of an item-based model. Only for models that provide "explain"."""
        raise NotImplementedError(f"{self.name} cannot say which ratings made a score")

    def judged_users(self) -> np.ndarray | None:
        """A boolean mask of the users this model is judged on (a model trained on a
        demographic subset is judged on it); None: every user."""
        return None

    def predict_split(self, data: Processed, split: str) -> np.ndarray:
        """Predicted ratings for every row of ``split``, in ``data.splits[split]`` order.

        Models whose inputs depend on the row, not only on the pair (the history
        window of the sequence models), override this.
        """
        part = data.splits[split]
        return self.predict(part.user, part.item)

    # -- capabilities -----------------------------------------------------------------------
    def movie_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(n_items, d)`` movie vectors and the mask of movies that learned one."""
        raise NotImplementedError(f"{self.name} has no movie vectors")

    def hidden_units(self, data: Processed, split: str, layer: int) -> np.ndarray:
        """``(rows of split, units)`` activations of hidden layer ``layer`` (-1 = last)."""
        raise NotImplementedError(f"{self.name} has no hidden units to report")

    # -- persistence ------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def set_state(self, state: dict[str, np.ndarray], data: Processed) -> None:
        raise NotImplementedError

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "model.npz", ".npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **self.state())
        with atomic_path(folder / "params.json") as tmp:
            tmp.write_text(
                json.dumps({"model": self.name, "params": self.params_record()}, indent=2) + "\n"
            )

    def params_record(self) -> dict[str, Any]:
        """The hyper-parameters as ``params.json`` holds them: what a load compares with
        params.yaml, so a state trained with other values is refused."""
        return json.loads(json.dumps(_yaml_keys(asdict(self.params))))

    def load_state(self, folder: Path, data: Processed) -> None:
        path = folder / "model.npz"
        if not path.is_file():
            stage = f"train@{self.name}" if self.trained_by == "train" else self.trained_by
            raise MovierecError(f"{path}: no trained {self.name} model; run `dvc repro {stage}`")
        with reading(path):  # a damaged or foreign file is one line naming it, set_state's too
            with np.load(path) as f:
                state = {k: f[k] for k in f.files}
            self.set_state(state, data)
