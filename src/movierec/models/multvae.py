"""Mult-VAE^PR (Liang et al., "Variational Autoencoders for Collaborative Filtering", 2018).

A user's training row, L2-normalised and with ``dropout`` of its entries dropped, is
encoded to a Gaussian over a ``latent``-dimensional taste; a sample of it is decoded to
logits over every movie, judged by the multinomial log-likelihood of the row. The KL term
to the standard normal prior is weighted by ``beta``, raised linearly from 0 to
``beta_max`` over ``anneal_steps`` batches (the paper's partial regularisation: a full
ELBO over-smooths the lists). Scores are the decoded mean, so a new user is their row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from movierec.config import checks
from movierec.models.ranking import Weighting
from movierec.models.user_rows import UserRowRanker, UserRows, multinomial_log_likelihood
from movierec.train.trainer import Batch, TrainConfig


@dataclass
class MultVAEParams(TrainConfig):
    hidden: list[int] = field(default_factory=lambda: [600])  # encoder widths before the code
    latent: int = 200
    dropout: float = 0.5  # of the input row's entries, while training
    beta_max: float = 0.2
    anneal_steps: int = 2000  # batches over which beta rises from 0 to beta_max
    weighting: Weighting = "rating"  # binary | rating (x = rating / max rating)
    lr: float = 0.001
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 150
    patience: int = 20

    def validate(self, key: str) -> None:
        super().validate(key)
        checks.layer_sizes(key, "hidden", self.hidden)
        checks.at_least_one(key, latent=self.latent, anneal_steps=self.anneal_steps)
        checks.fraction(key, dropout=self.dropout)
        checks.non_negative(key, beta_max=self.beta_max)


class MultVAEModule(UserRows):
    def __init__(self, matrix: sp.csr_matrix, p: MultVAEParams) -> None:
        super().__init__(matrix)
        self.p = p
        widths = [self.n_items, *p.hidden]
        self.encoder = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.to_code = nn.Linear(widths[-1], 2 * p.latent)  # mean and log-variance
        back = [p.latent, *reversed(p.hidden), self.n_items]
        self.decoder = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(back[:-1], back[1:], strict=True)
        )
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.dropout(F.normalize(x, dim=-1), self.p.dropout, self.training)
        for layer in self.encoder:
            h = torch.tanh(layer(h))
        mu, logvar = self.to_code(h).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        for layer in self.decoder[:-1]:
            z = torch.tanh(layer(z))
        return self.decoder[-1](z)

    def loss(self, batch: Batch) -> torch.Tensor:
        x = self.rows(batch["row"])
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        nll = -multinomial_log_likelihood(self.decode(z), x).mean()
        kl = 0.5 * (torch.exp(logvar) + mu**2 - 1.0 - logvar).sum(-1).mean()
        beta = min(self.p.beta_max, float(self.step) / self.p.anneal_steps)
        self.step += 1
        return nll + beta * kl

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode(x)
        return self.decode(mu)


class MultVAE(UserRowRanker):
    """Multinomial variational autoencoder over users' rows."""

    name = "multvae"

    def module(self, x: sp.csr_matrix) -> UserRows:
        return MultVAEModule(x, self.params)
