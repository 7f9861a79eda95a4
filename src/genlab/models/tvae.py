"""TVAE: a variational autoencoder for tables (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN",
https://arxiv.org/abs/1907.00503, section 4.3), written from the paper; optionally differentially private.

Rows are encoded by mode-specific normalisation (``models/tabular.py``). An MLP encoder gives the mean and
log-variance of q(z|x); an MLP decoder gives, per encoded row, the mean of each normalised value alpha (through
tanh) with a learned standard deviation per continuous column (a Gaussian), and logits for each one-hot (component,
missing flag, category: a categorical). Loss per row = ``loss_factor`` * (-log p(x|z)) + KL(q(z|x) || N(0, I)).
Samples decode z ~ N(0, I), add the Gaussian noise to alphas and draw each one-hot from its categorical.

Under DP (``privacy.epsilon``) the whole VAE is trained with DP-SGD (Opacus): one optimizer, one GradSampleModule
around the module holding encoder, decoder and the standard deviations, Poisson batches of rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.base import Phase
from genlab.models.tabular import ModeTransformer, TabularFamily, noise

SIGMA_MIN, SIGMA_MAX, SIGMA_INIT = 0.01, 1.0, 0.1  # range and start of the learned alpha standard deviations


@dataclass(frozen=True)
class TVAEConfig:
    """Shape of the encoder and decoder and the weight of the reconstruction term."""

    latent_dim: int = 128  # dimensions of the latent z (a standard Gaussian prior)
    width: int = 128  # units of each hidden layer, in encoder and decoder
    layers: int = 2  # hidden layers of the encoder, and of the decoder
    loss_factor: float = 2.0  # weight of the reconstruction term against the KL term (2 in the paper's code)
    modes: int = 10  # most mixture components per continuous column (mode-specific normalisation)

    limits: ClassVar[dict[str, str]] = {"latent_dim": "[1, 65536]", "width": "[1, 65536]", "layers": "[1, 64]",
                                        "loss_factor": "(0, 1000000]", "modes": "[1, 100]"}

    def validate(self) -> None:
        pass  # each number has its own range (limits); nothing relates two of them


def mlp(i: int, width: int, layers: int, o: int) -> nn.Sequential:
    dims, seq = [i] + [width] * layers, []
    for a, b in zip(dims, dims[1:]):
        seq += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*seq, nn.Linear(dims[-1], o))


class TVAENet(nn.Module):
    """Encoder q(z|x), decoder p(x|z) and the alpha standard deviations, in one module (DP wraps it whole)."""

    def __init__(self, data_dim: int, n_values: int, latent_dim: int, width: int, layers: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = mlp(data_dim, width, layers, 2 * latent_dim)  # (B, D) -> (B, 2 latent): mean, log-variance
        self.decoder = mlp(latent_dim, width, layers, data_dim)  # (B, latent) -> raw encoded row (B, D)
        # sigma = min + (max - min) sigmoid(w): a Linear of a constant 1, so Opacus computes its per-row gradients
        self.sigma = nn.Linear(1, max(n_values, 1), bias=False)
        nn.init.constant_(self.sigma.weight, math.log((SIGMA_INIT - SIGMA_MIN) / (SIGMA_MAX - SIGMA_INIT)))

    def sigmas(self, like: torch.Tensor) -> torch.Tensor:
        """(B, n_values) standard deviations of the alphas (one row per row of ``like``)."""
        w = self.sigma(like.new_ones(len(like), 1))
        return SIGMA_MIN + (SIGMA_MAX - SIGMA_MIN) * torch.sigmoid(w)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x (B, D), eps (B, latent) -> raw decoding (B, D), sigmas (B, n_values), mean and log-variance (B, latent)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        logvar = logvar.clamp(-30.0, 20.0)
        z = mu + torch.exp(0.5 * logvar) * eps  # (B, latent): the reparameterisation trick
        return self.decoder(z), self.sigmas(x), mu, logvar


class TVAE(TabularFamily):
    """Tabular variational autoencoder. Example::

        run = genlab.train("tvae", "medexp")
        table = run.sample(1000, seed=0)
    """

    name = "tvae"
    cites = "Xu et al. 2019, Modeling Tabular Data using Conditional GAN (TVAE)"
    Config = TVAEConfig
    TRAINING_ONLY = ("loss_factor",)
    example = {"set": ["model.latent_dim=8", "model.width=32", "model.layers=1", "model.modes=3",
                       "train.batch_size=64", "train.warmup_steps=2", "train.eval_batches=1"]}
    train_defaults = {"lr": 1e-3, "min_lr": 1e-4, "weight_decay": 1e-5, "grad_clip": 0.0, "warmup_steps": 10,
                      "batch_size": 500, "max_steps": 1500, "eval_every": 100, "eval_batches": 2,
                      "checkpoint_every": 200, "log_every": 20}

    def _networks(self, tf: ModeTransformer) -> dict[str, nn.Module]:
        c = self.config
        return {"model": TVAENet(tf.dim, len(tf.cont), c.latent_dim, c.width, c.layers).train()}

    @property
    def model_(self) -> nn.Module:
        return self.networks_["model"]  # the GradSampleModule during a private training step

    def optimizers(self, train: Any, device: torch.device) -> dict[str, torch.optim.Optimizer]:
        """AdamW; under DP Opacus' DP optimizer (per-row clipping + noise) around the whole VAE."""
        opts = super().optimizers(train, device)
        if self._plan(train) is not None:
            self._make_private(opts, train)
        return opts

    # -- training -------------------------------------------------------------------------------------------------
    def _row_losses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoded rows (B, D) -> reconstruction -log p(x|z) and KL, each (B,) in nats (constants left out)."""
        tf = self.transformer_
        raw, sigma, mu, logvar = self.model_(x, torch.randn(len(x), self.config.latent_dim, device=x.device))
        recon = x.new_zeros(len(x))
        if tf.cont:
            alpha = x[:, tf.value_idx]  # (B, Cc)
            sigma = sigma[:, : len(tf.cont)]
            recon = recon + ((alpha - torch.tanh(raw[:, tf.value_idx])) ** 2 / (2 * sigma**2)
                             + torch.log(sigma)).sum(1)
        bias = tf.slot_bias()
        for s, e, kind in tf.spans:
            if kind == "softmax":
                recon = recon + F.cross_entropy(raw[:, s:e] + bias[s:e], x[:, s:e].argmax(1), reduction="none")
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
        return recon, kl

    def phases(self, data: Any) -> list[Phase]:
        self._prepare(data)

        def step(batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
            # 1. encode the rows (components sampled from their posteriors), 2. per-row ELBO terms
            recon, kl = self._row_losses(self.transformer_.transform(batch))
            # 3. their mean (a sum over at least one row: a Poisson batch may be empty); Opacus clips each row's
            n = max(len(batch), 1)
            loss = (self.config.loss_factor * recon + kl).sum() / n
            return loss, {"train_loss": loss.detach(), "recon": recon.sum().detach() / n, "kl": kl.sum().detach() / n}

        return [Phase("model", step)]

    # -- sampling -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _generate(self, n: int, generator: torch.Generator, first: tuple[int, int] | None) -> np.ndarray:
        tf, net = self.transformer_, self.networks_["model"]
        device = next(net.parameters()).device
        z = noise((n, self.config.latent_dim), generator, device, "normal")  # (n, latent)
        raw = net.decoder(z)  # (n, D)
        x = tf.activate(raw, tau=1.0, generator=generator)  # one-hots: Gumbel-max draws from their categoricals
        if tf.cont:
            sigma = net.sigmas(raw)[:, : len(tf.cont)]
            alpha = torch.tanh(raw[:, tf.value_idx]) + sigma * noise(tuple(sigma.shape), generator, device, "normal")
            x[:, tf.value_idx] = alpha.clamp(-1, 1)
        return tf.inverse(x)
