"""What the user-row autoencoders for ranking share (Mult-VAE, RecVAE): a user is their
training row, so a user the model never saw is scored from a row of ratings exactly as a
training user is.

The training matrix stays on the device as CSR arrays and is densified a batch of users
at a time; the Trainer batches over user ids and the epoch kept is the one with the best
val NDCG@k.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from movierec.data.processed import Processed
from movierec.models.autorec import dense_rows
from movierec.models.base import FitContext
from movierec.models.ranking import Ranker, interactions, weigh
from movierec.models.torch_base import TorchRecommender
from movierec.train.trainer import Batch


class UserRows(nn.Module):
    """Holds the training rows; subclasses define ``loss(batch)`` and ``scores(x)``."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        super().__init__()
        self.n_users, self.n_items = matrix.shape
        self.register_buffer("indptr", torch.from_numpy(matrix.indptr.astype(np.int64)))
        self.register_buffer("indices", torch.from_numpy(matrix.indices.astype(np.int64)))
        self.register_buffer("values", torch.from_numpy(matrix.data.astype(np.float32)))

    def rows(self, users: torch.Tensor) -> torch.Tensor:
        dense, _ = dense_rows(self.indptr, self.indices, self.values, users, self.n_items)
        return dense

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_users(self, batch: Batch, n_items: int) -> torch.Tensor:
        return self.scores(self.rows(batch["user"]))


def multinomial_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per user, ``sum_j x_j log softmax(logits)_j``: the movies compete for one unit of
    probability, which is what a top-N list asks of them."""
    return (torch.log_softmax(logits, dim=-1) * x).sum(-1)


class UserRowRanker(Ranker, TorchRecommender):
    """A ranking family whose module reads a user's weighted training row."""

    provides = frozenset({"fold_in"})

    def module(self, x: sp.csr_matrix) -> UserRows:
        raise NotImplementedError

    def build(self, data: Processed) -> nn.Module:
        return self.module(interactions(data, self.params.weighting))

    def train_inputs(self, data: Processed) -> dict[str, torch.Tensor]:
        counts = np.diff(data.matrices["train"].indptr)
        return {"row": torch.from_numpy(np.flatnonzero(counts > 0).astype(np.int64))}

    def validation(self, data: Processed, ctx: FitContext):
        return ctx.ranking_validation(self, data)

    def score_ratings(self, ratings: sp.spmatrix, data: Processed) -> np.ndarray:
        """A new user's row, weighted as the training rows are, through the same network."""
        x = weigh(ratings, self.params.weighting, data.rating_range[1])
        index = torch.arange(x.shape[0])
        dense, _ = dense_rows(
            torch.from_numpy(x.indptr.astype(np.int64)),
            torch.from_numpy(x.indices.astype(np.int64)),
            torch.from_numpy(x.data.astype(np.float32)),
            index,
            x.shape[1],
        )
        module = self.module_
        module.eval()
        with torch.no_grad():
            return module.scores(dense.to(self.device_)).float().cpu().numpy()
