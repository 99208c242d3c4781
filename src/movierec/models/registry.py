"""Model names -> (class, params dataclass). The names are a contract (params, stages, CLI)."""

from __future__ import annotations

from typing import Any

from movierec.config import ConfigError, Params, build_section
from movierec.models.autorec import (
    AutoRecItem,
    AutoRecParams,
    AutoRecUser,
    DeepAutoRec,
    DeepAutoRecParams,
)
from movierec.models.base import Recommender
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
from movierec.models.embedding import (
    MF,
    MLP,
    MFBias,
    MFBiasParams,
    MFParams,
    MLPClassifier,
    MLPParams,
)
from movierec.models.sequence import BST, RNN, BSTParams, RNNParams
from movierec.models.wide_deep import WideDeep, WideDeepParams

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
    "wide_deep": (WideDeep, WideDeepParams),
    "rnn": (RNN, RNNParams),
    "bst": (BST, BSTParams),
}


def model_params(name: str, raw: Any) -> Any:
    """Validate ``models.<name>`` into the family's params dataclass."""
    if name not in MODELS:
        raise ConfigError(f"params.yaml: unknown model {name!r}; known models: {', '.join(MODELS)}")
    return build_section(MODELS[name][1], raw or {}, f"models.{name}")


def create(name: str, params: Params) -> Recommender:
    """Build an unfitted model from the project params."""
    hp = model_params(name, (params.extra.get("models") or {}).get(name, {}))
    return MODELS[name][0](hp)
