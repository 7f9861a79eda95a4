"""Mult-VAE and Mult-DAE (Liang et al. 2018, "Variational Autoencoders for Collaborative Filtering",
https://arxiv.org/abs/1802.05814), written from the paper.

A user's 0/1 row x (I items) is L2-normalised, passed through input dropout (0.5) and an MLP encoder (tanh; one
hidden layer of 600 by default) to the mean and log-variance of q(z|x) (latent 200); the decoder maps z back to
logits over all items, and pi = softmax(logits). Loss per user:

    -sum_i x_i log pi_i  +  beta * KL(q(z|x) || N(0, I))        (the multinomial log-likelihood)

with beta annealed linearly from 0 to ``beta_cap`` (0.2) over ``anneal_steps`` optimizer steps. Mult-DAE
(``model.variational=false``) has no sampling and no KL: the encoder gives z directly. Recommendations rank items
by the logits of the fold-in history (z = the mean); ``because`` ranks the history items by the cosine of their
decoder item embeddings (the rows of the last layer's weights) with the recommended item's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.ratings import RatingsFamily


@dataclass(frozen=True)
class MultVAEConfig:
    """Shape of the encoder and decoder, dropout, and the KL annealing."""

    hidden: int = 600  # units of the hidden layer, in encoder and decoder
    latent_dim: int = 200  # dimensions of z
    dropout: float = 0.5  # input dropout on the normalised row while training
    variational: bool = True  # False: Mult-DAE (no sampling, no KL term)
    beta_cap: float = 0.2  # the largest weight of the KL term
    anneal_steps: int = 500  # optimizer steps over which beta rises linearly from 0 to beta_cap (of 600 by default)

    limits: ClassVar[dict[str, str]] = {"hidden": "[1, 65536]", "latent_dim": "[1, 65536]", "dropout": "[0, 0.95]",
                                        "beta_cap": "[0, 10]", "anneal_steps": "[1, 100000000]"}

    def validate(self) -> None:
        pass  # each number has its own range (limits); nothing relates two of them


class MultVAENet(nn.Module):
    def __init__(self, n_items: int, hidden: int, latent: int, dropout: float, variational: bool) -> None:
        super().__init__()
        self.variational = variational
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Sequential(nn.Linear(n_items, hidden), nn.Tanh(),
                                     nn.Linear(hidden, 2 * latent if variational else latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, n_items))
        for m in self.modules():  # Xavier weights, small normal biases, as the paper's code
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=0.001)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, I) 0/1 -> logits (B, I) and KL per user (B,) (zeros for Mult-DAE)."""
        h = self.drop(F.normalize(x, dim=1))
        out = self.encoder(h)
        if not self.variational:
            return self.decoder(out), x.new_zeros(len(x))
        mu, logvar = out.chunk(2, dim=1)
        logvar = logvar.clamp(-30.0, 20.0)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu  # reparameterisation
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
        return self.decoder(z), kl


class MultVAE(RatingsFamily):
    """Mult-VAE. Example::

        run = genlab.train("multvae", "movielens-100k")
        run.sample(user="1", k=10)
    """

    name = "multvae"
    Config = MultVAEConfig
    cites = "Liang et al. 2018, Variational Autoencoders for Collaborative Filtering (Mult-VAE)"
    example: ClassVar[dict[str, Any]] = {"set": ["model.hidden=64", "model.latent_dim=16", "train.batch_size=100",
                                                 "train.warmup_steps=2", "train.eval_batches=1"]}
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 1e-3, "min_lr": 1e-3, "weight_decay": 0.0, "grad_clip": 0.0,
                                                "warmup_steps": 0, "batch_size": 500, "max_steps": 600,
                                                "eval_every": 100, "eval_batches": 2, "checkpoint_every": 200,
                                                "log_every": 20}

    def _networks(self, data: Any) -> dict[str, nn.Module]:
        c = self.config
        with torch.random.fork_rng(devices=[]):  # seeded by build's seed, global state untouched
            torch.manual_seed(self.seed_)
            return {"model": MultVAENet(data.n_items, c.hidden, c.latent_dim, c.dropout, c.variational).train()}

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        for k in ("dropout", "beta_cap", "anneal_steps"):  # change training, not the weights' shapes
            arch.pop(k)
        return arch

    def beta(self) -> float:
        if not self.config.variational:
            return 0.0
        return self.config.beta_cap * min(1.0, getattr(self, "step_", 0) / self.config.anneal_steps)

    def after_step(self, step: int) -> None:
        self.step_ = step

    def _terms(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, kl = self.networks_["model"](batch)
        nll = -(F.log_softmax(logits, dim=1) * batch).sum(1)  # (B,) multinomial log-likelihood, negated
        return nll.mean(), kl.mean()

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        nll, kl = self._terms(batch)
        return nll + self.beta() * kl

    @torch.no_grad()
    def validation_loss(self, batch: torch.Tensor) -> float:
        """The negative ELBO at the capped beta (dropout off, z the mean)."""
        nll, kl = self._terms(batch)
        return float(nll + (self.config.beta_cap if self.config.variational else 0.0) * kl)

    @torch.no_grad()
    def score(self, history: torch.Tensor) -> torch.Tensor:
        net = self.networks_["model"]
        was = net.training
        net.eval()
        try:
            return net(history.float())[0]
        finally:
            net.train(was)

    @torch.no_grad()
    def because(self, history: torch.Tensor, item: int) -> torch.Tensor:
        emb = F.normalize(self.networks_["model"].decoder[-1].weight, dim=1)  # (I, hidden) item embeddings
        return history.float() * (emb @ emb[item])  # cosine with the recommended item, history items only
