"""Model names -> (class, params dataclass). The names are a contract (params, stages, CLI).

Adding a family is one module, one line here and a params block; the pipeline
asks each class what it needs and provides (``Recommender.needs`` / ``provides``).
"""

from __future__ import annotations

from typing import Any

from movierec.config.params import ConfigError, Params, build_section
from movierec.config.sections import EmbedParams
from movierec.models.autorec import (
    AutoRecItem,
    AutoRecParams,
    AutoRecUser,
    DeepAutoRec,
    DeepAutoRecParams,
)
from movierec.models.base import Recommender
from movierec.models.bpr import BPR, BPRParams
from movierec.models.classic import (
    BiasModel,
    BiasParams,
    ContentGenre,
    ContentGenreParams,
    ItemKNN,
    ItemKNNParams,
    SVDModel,
    SVDParams,
)
from movierec.models.ease import EASE, EASEParams
from movierec.models.embedding import (
    MF,
    MLP,
    MFBias,
    MFBiasParams,
    MFParams,
    MLPClassifier,
    MLPParams,
)
from movierec.models.ials import IALS, IALSParams
from movierec.models.multvae import MultVAE, MultVAEParams
from movierec.models.ncf import MLPRank, MLPRankParams
from movierec.models.pop import Pop, PopParams
from movierec.models.recvae import RecVAE, RecVAEParams
from movierec.models.rp3beta import RP3beta, RP3betaParams
from movierec.models.sasrec import SASRec, SASRecParams
from movierec.models.sequence import BST, RNN, BSTParams, RNNParams
from movierec.models.sparse_fc import SparseFC, SparseFCParams
from movierec.models.wide_deep import WideDeep, WideDeepParams
from movierec.models.word2vec import Word2VecModel

MODELS: dict[str, tuple[type[Recommender], type]] = {
    "bias": (BiasModel, BiasParams),
    "item_knn": (ItemKNN, ItemKNNParams),
    "svd": (SVDModel, SVDParams),
    "content_genre": (ContentGenre, ContentGenreParams),
    "mf": (MF, MFParams),
    "mf_bias": (MFBias, MFBiasParams),
    "mlp": (MLP, MLPParams),
    "mlp_classifier": (MLPClassifier, MLPParams),
    "autorec_item": (AutoRecItem, AutoRecParams),
    "autorec_user": (AutoRecUser, AutoRecParams),
    "deep_autorec": (DeepAutoRec, DeepAutoRecParams),
    "sparse_fc": (SparseFC, SparseFCParams),
    "wide_deep": (WideDeep, WideDeepParams),
    "rnn": (RNN, RNNParams),
    "bst": (BST, BSTParams),
    "pop": (Pop, PopParams),
    "ease": (EASE, EASEParams),
    "ials": (IALS, IALSParams),
    "bpr": (BPR, BPRParams),
    "mlp_rank": (MLPRank, MLPRankParams),
    "rp3beta": (RP3beta, RP3betaParams),
    "multvae": (MultVAE, MultVAEParams),
    "recvae": (RecVAE, RecVAEParams),
    "sasrec": (SASRec, SASRecParams),
    "word2vec": (Word2VecModel, EmbedParams),
}


def params_key(name: str) -> str:
    """The dotted params.yaml key of a family's hyper-parameters."""
    if name not in MODELS:
        raise ConfigError(f"params.yaml: unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name][0].params_key.format(name=name)


def trainable() -> list[str]:
    """Families the ``train`` stage fits (the rest come from their own stages)."""
    return [n for n, (cls, _) in MODELS.items() if cls.trained_by == "train"]


def left_out(names: set[str] | list[str], train_models: list[str]) -> set[str]:
    """Those of ``names`` whose results are left over from an earlier run: families the
    ``train`` stage fits that this run's ``train.models`` does not list (DVC keeps their
    files when a run drops them). Blends and embeddings come from stages every run has."""
    return set(names) & (set(trainable()) - set(train_models))


def providing(capability: str, names: list[str]) -> list[str]:
    """Those of ``names`` whose family provides ``capability`` (e.g. ``movie_vectors``)."""
    return [n for n in names if n in MODELS and capability in MODELS[n][0].provides]


def model_params(name: str, raw: Any) -> Any:
    """Validate ``models.<name>`` into the family's params dataclass."""
    if name not in MODELS:
        raise ConfigError(f"params.yaml: unknown model {name!r}; known models: {', '.join(MODELS)}")
    return build_section(MODELS[name][1], raw or {}, params_key(name))


def raw_params(name: str, params: Params) -> Any:
    """The family's section of params.yaml as written (``models.<name>``, ``embed`` ...)."""
    section: Any = params.extra
    for part in params_key(name).split("."):
        section = (section or {}).get(part) or {}
    return section


def create(name: str, params: Params) -> Recommender:
    """Build an unfitted model from the project params."""
    hp = model_params(name, raw_params(name, params))
    return MODELS[name][0](hp)
