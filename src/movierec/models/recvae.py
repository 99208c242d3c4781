"""RecVAE (Shenbin et al., "RecVAE: a New Variational Autoencoder for Top-N
Recommendations with Implicit Feedback", 2020).

Mult-VAE with three changes that the paper measures one by one:

- a deeper encoder: ``layers`` dense layers of ``hidden`` units with swish, layer norm
  and each layer's input the sum of every earlier layer's output;
- a composite prior: a mixture of the standard normal, the posterior of the *previous*
  encoder (a frozen copy taken before each decoder phase, which keeps an update from
  forgetting what the last one learned) and a wide normal;
- the KL weight of a user is ``gamma`` times the size of their row (heavy raters have
  more evidence to pay for a confident posterior), and encoder and decoder are updated
  in turns: ``encoder_epochs`` passes over the users for the encoder (with input
  dropout), then ``decoder_epochs`` for the decoder (without).

The Trainer's epoch is one pass; the pass kept is the one with the best val NDCG@k.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from movierec.config import checks
from movierec.models.ranking import Weighting
from movierec.models.user_rows import UserRowRanker, UserRows, multinomial_log_likelihood
from movierec.train.trainer import Batch, TrainConfig

PRIOR_WEIGHTS = (3 / 20, 3 / 4, 1 / 10)  # standard normal, previous posterior, wide normal
WIDE_LOGVAR = 10.0


@dataclass
class RecVAEParams(TrainConfig):
    hidden: int = 600
    layers: int = 5
    latent: int = 200
    dropout: float = 0.5  # of the input row's entries, in encoder passes
    gamma: float = 0.01  # KL weight per unit of a user's row
    encoder_epochs: int = 3
    decoder_epochs: int = 1
    weighting: Weighting = "rating"  # binary | rating (x = rating / max rating)
    lr: float = 0.002
    batch_size: int = 128
    epochs: int = 150  # passes (encoder and decoder passes both count)
    patience: int = 40

    def validate(self, key: str) -> None:
        super().validate(key)
        checks.at_least_one(
            key,
            hidden=self.hidden,
            layers=self.layers,
            latent=self.latent,
            encoder_epochs=self.encoder_epochs,
            decoder_epochs=self.decoder_epochs,
        )
        checks.fraction(key, dropout=self.dropout)
        checks.non_negative(key, gamma=self.gamma)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (logvar + math.log(2 * math.pi) + (z - mu) ** 2 / torch.exp(logvar))


class Encoder(nn.Module):
    def __init__(self, n_items: int, hidden: int, layers: int, latent: int) -> None:
        super().__init__()
        self.dense = nn.ModuleList(
            nn.Linear(n_items if i == 0 else hidden, hidden) for i in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden, eps=0.1) for _ in range(layers))
        self.to_code = nn.Linear(hidden, 2 * latent)

    def forward(self, x: torch.Tensor, dropout: float) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.dropout(F.normalize(x, dim=-1), dropout, self.training)
        earlier = None  # sum of every earlier layer's output
        for dense, norm in zip(self.dense, self.norms, strict=True):
            out = dense(h) if earlier is None else dense(h) + earlier
            h = norm(F.silu(out))
            earlier = h if earlier is None else earlier + h
        mu, logvar = self.to_code(h).chunk(2, dim=-1)
        return mu, logvar


class RecVAEModule(UserRows):
    def __init__(self, matrix: sp.csr_matrix, p: RecVAEParams) -> None:
        super().__init__(matrix)
        self.p = p
        self.encoder = Encoder(self.n_items, p.hidden, p.layers, p.latent)
        self.previous = copy.deepcopy(self.encoder).requires_grad_(False)
        self.decoder = nn.Linear(p.latent, self.n_items)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        users = int((matrix.indptr[1:] > matrix.indptr[:-1]).sum())
        self.steps_per_pass = max(1, math.ceil(users / p.batch_size))

    def prior(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Log density of the composite prior at ``z`` (per dimension)."""
        self.previous.eval()
        with torch.no_grad():
            mu, logvar = self.previous(x, 0.0)
        zero = torch.zeros_like(z)
        parts = [
            log_normal(z, zero, zero),
            log_normal(z, mu, logvar),
            log_normal(z, zero, zero + WIDE_LOGVAR),
        ]
        weighted = [part + math.log(w) for part, w in zip(parts, PRIOR_WEIGHTS, strict=True)]
        return torch.logsumexp(torch.stack(weighted, dim=-1), dim=-1)

    def encoder_phase(self) -> bool:
        """Which turn this batch belongs to; the copy for the prior is taken as a decoder
        turn begins."""
        p = self.p
        passes, within = divmod(int(self.step), self.steps_per_pass)
        in_cycle = passes % (p.encoder_epochs + p.decoder_epochs)
        if in_cycle == p.encoder_epochs and within == 0:
            self.previous.load_state_dict(self.encoder.state_dict())
        return in_cycle < p.encoder_epochs

    def loss(self, batch: Batch) -> torch.Tensor:
        x = self.rows(batch["row"])
        encoding = self.encoder_phase()
        self.step += 1
        if encoding:  # the decoder is held: only the encoder gets gradients
            mu, logvar = self.encoder(x, self.p.dropout)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            logits = F.linear(z, self.decoder.weight.detach(), self.decoder.bias.detach())
        else:  # the encoder is held, without dropout
            with torch.no_grad():
                mu, logvar = self.encoder(x, 0.0)
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            logits = self.decoder(z)
        likelihood = multinomial_log_likelihood(logits, x)
        kl_weight = self.p.gamma * x.sum(-1)
        kl = (log_normal(z, mu, logvar) - self.prior(x, z)).sum(-1) * kl_weight
        if not encoding:
            kl = kl.detach()  # no gradient reaches the decoder through it
        return -(likelihood - kl).mean()

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encoder(x, 0.0)
        return self.decoder(mu)


class RecVAE(UserRowRanker):
    """Mult-VAE with a deeper encoder, a composite prior and alternating updates."""

    name = "recvae"
    data_parallel = False  # a turn leaves half the weights without gradients: one process

    def module(self, x: sp.csr_matrix) -> UserRows:
        return RecVAEModule(x, self.params)
