"""Every model family: its name (a contract: params, stages, CLI) and where its code lives.

Only names and dotted paths (and two questions the table answers alone), no imports: :mod:`movierec.models.registry` imports a
family's module when it is asked for that family, so a stage loads (and its code
fingerprint holds) the families it uses and no other. ``movierec.pipeline.fingerprints``
reads this table too: ``train@<name>`` and ``evaluate@<name>`` depend on their own row
and not on the others, so registering a family reruns no other family's stages.

Adding a family is one row here, its module under ``movierec/models`` and its params
block (``docs/models.md``, "Add a family").
"""

from __future__ import annotations

from typing import NamedTuple


class Family(NamedTuple):
    """Where a family's code is: its module, its ``Recommender`` and its params dataclass."""

    module: str  # dotted module path, e.g. movierec.models.ease
    model: str  # the Recommender subclass in that module
    params: str  # its hyper-parameter dataclass, importable from that module
    stage: str = "train"  # the stage that fits it (word2vec: embed); the class says the same


FAMILIES: dict[str, Family] = {
    "bias": Family("movierec.models.classic", "BiasModel", "BiasParams"),
    "item_knn": Family("movierec.models.classic", "ItemKNN", "ItemKNNParams"),
    "svd": Family("movierec.models.classic", "SVDModel", "SVDParams"),
    "content_genre": Family("movierec.models.classic", "ContentGenre", "ContentGenreParams"),
    "mf": Family("movierec.models.embedding", "MF", "MFParams"),
    "mf_bias": Family("movierec.models.embedding", "MFBias", "MFBiasParams"),
    "mlp": Family("movierec.models.embedding", "MLP", "MLPParams"),
    "mlp_classifier": Family("movierec.models.embedding", "MLPClassifier", "MLPParams"),
    "autorec_item": Family("movierec.models.autorec", "AutoRecItem", "AutoRecParams"),
    "autorec_user": Family("movierec.models.autorec", "AutoRecUser", "AutoRecParams"),
    "deep_autorec": Family("movierec.models.autorec", "DeepAutoRec", "DeepAutoRecParams"),
    "sparse_fc": Family("movierec.models.sparse_fc", "SparseFC", "SparseFCParams"),
    "wide_deep": Family("movierec.models.wide_deep", "WideDeep", "WideDeepParams"),
    "rnn": Family("movierec.models.sequence", "RNN", "RNNParams"),
    "bst": Family("movierec.models.sequence", "BST", "BSTParams"),
    "pop": Family("movierec.models.pop", "Pop", "PopParams"),
    "ease": Family("movierec.models.ease", "EASE", "EASEParams"),
    "ials": Family("movierec.models.ials", "IALS", "IALSParams"),
    "bpr": Family("movierec.models.bpr", "BPR", "BPRParams"),
    "mlp_rank": Family("movierec.models.ncf", "MLPRank", "MLPRankParams"),
    "rp3beta": Family("movierec.models.rp3beta", "RP3beta", "RP3betaParams"),
    "multvae": Family("movierec.models.multvae", "MultVAE", "MultVAEParams"),
    "recvae": Family("movierec.models.recvae", "RecVAE", "RecVAEParams"),
    "sasrec": Family("movierec.models.sasrec", "SASRec", "SASRecParams"),
    "word2vec": Family("movierec.models.word2vec", "Word2VecModel", "EmbedParams", "embed"),
}


def trainable() -> list[str]:
    """Families the ``train`` stage fits (the rest come from their own stages)."""
    return [n for n, row in FAMILIES.items() if row.stage == "train"]


def left_out(names: set[str] | list[str], train_models: list[str]) -> set[str]:
    """Those of ``names`` whose results are left over from an earlier run: families the
    ``train`` stage fits that this run's ``train.models`` does not list (DVC keeps their
    files when a run drops them). Blends and embeddings come from stages every run has."""
    return set(names) & (set(trainable()) - set(train_models))
