"""CTGAN: a conditional GAN for tables (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN",
https://arxiv.org/abs/1907.00503), written from the paper; optionally differentially private (DP-CTGAN).

Rows are encoded by mode-specific normalisation (``models/tabular.py``). The generator maps noise z and a
conditional vector (one category of one discrete column) through residual blocks (Linear -> BatchNorm -> ReLU, the
block's input concatenated to its output) to an encoded row: tanh alphas, Gumbel-softmax one-hots. The
discriminator is a PacGAN critic (``pac`` rows concatenated into one example): twice Linear -> LeakyReLU(0.2) ->
Dropout, then Linear. Training-by-sampling: a discrete column is picked uniformly and a category by its log
frequency; the real rows fed alongside hold that category, and the generator is also trained to produce it
(cross-entropy on the conditioned one-hot). Loss: WGAN-GP (gradient penalty ``gp_weight``), or the non-saturating
BCE GAN loss.

Under DP (``privacy.epsilon``) only the discriminator reads real rows, so only it is trained with DP-SGD (Opacus);
the generator's updates are post-processing. The discriminator then sees single rows (``pac`` = 1: packing would put
several people's rows in one clipped example), uses the BCE loss (Opacus cannot clip the gradient penalty's per-row
double-backward gradient), has no BatchNorm, and its real rows are Poisson batches whose condition is each row's own
category, while the generator's conditions follow the noisy category frequencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genlab.errors import GenlabError
from genlab.models.base import Phase, decay_groups
from genlab.models.tabular import ModeTransformer, TabularFamily, noise


@dataclass(frozen=True)
class CTGANConfig:
    """Shape and objective of the generator and discriminator. Columns and their sizes come from the data."""

    loss: Literal["auto", "wgan-gp", "bce"] = "auto"  # auto = wgan-gp, or bce when private (privacy.epsilon)
    z_dim: int = 128  # size of the Gaussian noise z
    g_width: int = 256  # units of each generator residual block
    g_blocks: int = 2  # generator residual blocks
    d_width: int = 256  # units of each discriminator hidden layer
    d_layers: int = 2  # discriminator hidden layers
    pac: int = 0  # rows packed into one discriminator example (PacGAN; 0 = auto: 10, or 1 when private); batch_size must be a multiple
    dropout: float = 0.5  # discriminator dropout
    n_critic: int = 1  # discriminator updates per generator update
    gp_weight: float = 10.0  # wgan-gp: weight of the gradient penalty
    tau: float = 0.2  # Gumbel-softmax temperature of the generator's one-hots
    modes: int = 10  # most mixture components per continuous column (mode-specific normalisation)

    limits: ClassVar[dict[str, str]] = {
        "z_dim": "[1, 65536]", "g_width": "[1, 65536]", "g_blocks": "[0, 64]", "d_width": "[1, 65536]",
        "d_layers": "[1, 64]", "pac": "[0, 1024]", "dropout": "[0, 1)", "n_critic": "[1, 100]",
        "gp_weight": "[0, 1000000]", "tau": "(0, 100]", "modes": "[1, 100]"}

    def validate(self) -> None:
        pass  # each number has its own range (limits); pac against the batch size is checked when training starts


class Residual(nn.Module):
    """x (B, I) -> [ReLU(BN(Linear(x))), x] (B, O + I)."""

    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(i, o), nn.BatchNorm1d(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class Generator(nn.Module):
    """[z, cond] (B, z + cond) -> raw encoded row (B, D) (the transformer's activations come after)."""

    def __init__(self, in_dim: int, width: int, blocks: int, out_dim: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[Residual(in_dim + i * width, width) for i in range(blocks)])
        self.out = nn.Linear(in_dim + blocks * width, out_dim)

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(torch.cat([z, cond], dim=1)))


class Discriminator(nn.Module):
    """[row, cond] (B, D + cond) -> (B / pac,) scores, ``pac`` consecutive rows judged together."""

    def __init__(self, in_dim: int, width: int, layers: int, pac: int, dropout: float) -> None:
        super().__init__()
        self.pac, dims, seq = pac, [in_dim * pac] + [width] * layers, []
        for i, o in zip(dims, dims[1:]):
            seq += [nn.Linear(i, o), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
        self.net = nn.Sequential(*seq, nn.Linear(dims[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(len(x) // self.pac, -1)).squeeze(1)  # (B / pac,)


# -- training-by-sampling: conditional vectors -----------------------------------------------------------------
def draw_conditions(tf: ModeTransformer, n: int, *, log: bool, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(cols (n,), cats (n,)): a discrete column uniformly, a category by its (log-)frequency in ``tf.counts``."""
    dev = tf.counts.device
    p = torch.zeros(len(tf.disc), max(tf.sizes) + 1, dtype=torch.float64, device=dev)  # (Cd, K_max + 1)
    for i, (s, k) in enumerate(zip(tf.cond_at, tf.sizes)):
        c = tf.counts[s : s + k + 1].clone()
        c[k] = c[k] if tf.missing[tf.disc[i]] else 0.0
        p[i, : k + 1] = torch.log1p(c) if log else c
        if p[i].sum() <= 0:  # nothing survived the noise: every category alike
            p[i, :k] = 1.0
    cols = (noise((n,), generator, dev) * len(tf.disc)).long().clamp(max=len(tf.disc) - 1)  # (n,)
    cdf = torch.cumsum(p / p.sum(1, keepdim=True), 1)[cols]  # (n, K_max + 1)
    cats = (cdf < noise((n, 1), generator, dev).double()).sum(1)  # inverse CDF: the first slot past u
    return cols, torch.minimum(cats, torch.tensor(tf.sizes, device=dev)[cols])


def row_conditions(tf: ModeTransformer, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's own category in a uniformly chosen discrete column (the real rows' conditions under DP)."""
    cols = torch.randint(len(tf.disc), (len(rows),), device=rows.device)
    return cols, tf.codes(rows).gather(1, cols[:, None]).squeeze(1)


def cond_vector(tf: ModeTransformer, cols: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
    """(n,) columns and categories -> the one-hot conditional vector (n, cond_dim)."""
    out = torch.zeros(len(cols), tf.cond_dim, device=cols.device)
    if tf.disc:
        out.scatter_(1, (torch.tensor(tf.cond_at, device=cols.device)[cols] + cats)[:, None], 1.0)
    return out


class CategoryIndex:
    """The training rows holding each (discrete column, category): real rows for a condition (non-private)."""

    def __init__(self, tf: ModeTransformer, rows: torch.Tensor) -> None:
        codes = tf.codes(rows)  # (N, Cd)
        n, starts, counts, order = len(rows), [], [], []
        for i, k in enumerate(tf.sizes):
            c = torch.bincount(codes[:, i], minlength=k + 1)
            order.append(torch.argsort(codes[:, i], stable=True))
            starts.append(i * n + torch.cumsum(c, 0) - c)
            counts.append(c)
        self.order, self.starts, self.counts = torch.cat(order), torch.cat(starts), torch.cat(counts)
        self.cond_at = torch.tensor(tf.cond_at, device=rows.device)

    def draw(self, cols: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        """Row indices (n,), one uniformly among the rows holding each condition (which must have rows)."""
        g = self.cond_at[cols] + cats
        count = self.counts[g].clamp_min(1)
        return self.order[self.starts[g] + (torch.rand(len(g), device=g.device) * count).long().clamp(max=count - 1)]


class CTGAN(TabularFamily):
    """Conditional tabular GAN. Example::

        run = genlab.train("ctgan", "breast-cancer")
        table = run.sample(500, seed=0, condition={"diagnosis": "benign"})  # only benign rows
    """

    name = "ctgan"
    cites = "Xu et al. 2019, Modeling Tabular Data using Conditional GAN"
    Config = CTGANConfig
    TRAINING_ONLY = ("loss", "dropout", "n_critic", "gp_weight", "tau")
    PRIVATE = "discriminator"  # under DP only the discriminator reads real rows
    example = {"set": ["model.z_dim=16", "model.g_width=32", "model.d_width=32", "model.g_blocks=1",
                       "model.d_layers=1", "model.pac=4", "model.modes=3", "train.batch_size=64",
                       "train.warmup_steps=2", "train.eval_batches=1"]}
    train_defaults = {"lr": 2e-4, "min_lr": 2e-5, "beta1": 0.5, "beta2": 0.9, "weight_decay": 1e-6,
                      "grad_clip": 0.0, "warmup_steps": 10, "batch_size": 500, "max_steps": 600,
                      "eval_every": 100, "eval_batches": 2, "checkpoint_every": 200, "log_every": 20}

    @property
    def pac(self) -> int:
        """Rows per discriminator example: ``model.pac``, or for 0 (auto) 10, and 1 when private."""
        return self.config.pac or (1 if self.privacy.private else 10)

    @property
    def loss_kind(self) -> str:
        """The objective actually used: ``auto`` resolved."""
        if self.config.loss == "auto":
            return "bce" if self.privacy.private else "wgan-gp"
        return self.config.loss

    def _refuse_private(self) -> None:
        c, why = self.config, "with privacy.epsilon (DP-CTGAN): "
        if c.pac not in (0, 1):
            raise GenlabError(why + f"model.pac must be 1 (or 0, auto), got {c.pac}: packing puts several people's "
                              "rows in one example, whose gradient DP-SGD clips as one; set model.pac=1")
        if c.loss == "wgan-gp":
            raise GenlabError(why + "model.loss=wgan-gp cannot be private: Opacus cannot clip the gradient penalty's "
                              "per-row double-backward gradient; use model.loss=auto (bce)")

    def _networks(self, tf: ModeTransformer) -> dict[str, nn.Module]:
        c = self.config
        g = Generator(c.z_dim + tf.cond_dim, c.g_width, c.g_blocks, tf.dim)
        d = Discriminator(tf.dim + tf.cond_dim, c.d_width, c.d_layers, self.pac, c.dropout)
        return {"generator": g.train(), "discriminator": d.train()}

    @property
    def generator_(self) -> Generator:
        return self.networks_["generator"]

    @property
    def discriminator_(self) -> nn.Module:
        return self.networks_["discriminator"]  # the GradSampleModule during a private training step

    def param_groups(self, weight_decay: float) -> dict[str, list[dict[str, Any]]]:
        self.generator_.requires_grad_(True)
        self.discriminator_.requires_grad_(True)
        return {"discriminator": decay_groups(self.discriminator_, weight_decay),
                "generator": decay_groups(self.generator_, weight_decay)}

    def optimizers(self, train: Any, device: torch.device) -> dict[str, torch.optim.Optimizer]:
        """AdamW for both; under DP the discriminator's becomes Opacus' DP optimizer (per-row clipping + noise)."""
        if not self.privacy.private and train.batch_size % self.pac:
            raise GenlabError(f"train.batch_size ({train.batch_size}) must be a multiple of model.pac ({self.pac})")
        self.batch_size_ = train.batch_size
        plan = self._plan(train, d_steps=self.config.n_critic)
        opts = super().optimizers(train, device)
        if plan is not None:
            self._make_private(opts, train)
        self._d_opt = opts["discriminator"]
        return opts

    # -- training -------------------------------------------------------------------------------------------------
    def _conds(self, n: int, device: torch.device, *, log: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cols, cats, cond vector (n, cond_dim)) for n fakes; empty when the table has no discrete column."""
        tf = self.transformer_
        if not tf.disc:
            empty = torch.zeros(n, dtype=torch.long, device=device)
            return empty, empty, torch.zeros(n, 0, device=device)
        cols, cats = draw_conditions(tf, n, log=log)
        return cols, cats, cond_vector(tf, cols, cats)

    def _fake(self, cond: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw generator output and its activated rows (B, D) for conditions (B, cond_dim)."""
        z = noise((len(cond), self.config.z_dim), generator, cond.device, "normal")  # (B, z_dim)
        raw = self.generator_(z, cond)  # (B, D)
        return raw, self.transformer_.activate(raw, tau=self.config.tau, generator=generator)

    def _penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """(||grad D(x_hat)|| - 1)^2 per pac group, x_hat on lines between real and fake (B, D + cond)."""
        pac = self.pac
        eps = torch.rand(len(real) // pac, 1, 1, device=real.device).expand(-1, pac, 1).reshape(len(real), 1)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)  # (B, D + cond)
        (grad,) = torch.autograd.grad(self.discriminator_(x_hat).sum(), x_hat, create_graph=True)
        return ((grad.reshape(len(real) // pac, -1).norm(dim=1) - 1) ** 2).mean()

    def phases(self, data: Any) -> list[Phase]:
        self._prepare(data)
        tf, private = self.transformer_, self.privacy.private
        rows = None if private else data.x["train"].to(tf.fitted.device)  # (N, C): DP reads rows only in batches
        index = CategoryIndex(tf, rows) if tf.disc and not private else None

        def discriminator_step(batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
            # 1. conditions and fakes (no graph into G: this phase updates D only)
            n_fake = self.batch_size_ if private else len(batch)
            cols, cats, c_fake = self._conds(n_fake, batch.device, log=not private)
            with torch.no_grad():
                fake = torch.cat([self._fake(c_fake)[1], c_fake], 1)  # (F, D + cond)
            # 2. real rows with their conditions: the batch's own categories (DP), or rows of the fakes' conditions
            if private and tf.disc:
                c_real = cond_vector(tf, *row_conditions(tf, batch))
            elif index is not None:
                perm = torch.randperm(n_fake, device=batch.device)
                batch, c_real = rows[index.draw(cols[perm], cats[perm])], c_fake[perm]
            else:  # no discrete column: no condition
                c_real = batch.new_zeros(len(batch), 0)
            real = torch.cat([tf.transform(batch), c_real], 1)  # (R, D + cond)
            # 3. the loss: per-row BCE over real and fake rows in one forward (DP: Opacus clips each row), or WGAN-GP
            if self.loss_kind == "bce":
                out = self.discriminator_(torch.cat([real, fake]))  # (R/pac + F/pac,)
                r = len(real) // self.pac
                loss = (F.softplus(-out[:r]).sum() + F.softplus(out[r:]).sum()) / max(len(out), 1)
                return loss, {"d_loss": loss.detach()}
            wasserstein = self.discriminator_(real).mean() - self.discriminator_(fake).mean()
            gp = self._penalty(real, fake)
            return -wasserstein + self.config.gp_weight * gp, {"wasserstein": wasserstein.detach(), "gp": gp.detach()}

        def generator_step(batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
            # 1. freeze D (and, under DP, its per-row hooks and gradients) so backward reaches G only
            if private:
                self._d_opt.zero_grad(set_to_none=True)
                self._gsm.disable_hooks()
            self.discriminator_.requires_grad_(False)
            # 2. fakes for conditions by log frequency (DP: the noisy frequencies the real rows' conditions follow)
            n = self.batch_size_ if private else len(batch)
            cols, cats, cond = self._conds(n, batch.device, log=not private)
            raw, fake = self._fake(cond)
            out = self.discriminator_(torch.cat([fake, cond], 1))
            adv = F.softplus(-out).mean() if self.loss_kind == "bce" else -out.mean()
            # 3. cross-entropy of the conditioned column's one-hot against the asked-for category
            ce = raw.new_zeros(())
            bias = tf.slot_bias()
            for i, (s, k) in enumerate(zip(tf.disc_at, tf.sizes)):
                sel = cols == i
                ce = ce + F.cross_entropy(raw[sel, s : s + k + 1] + bias[s : s + k + 1], cats[sel], reduction="sum")
            ce = ce / n
            return adv + ce, {"g_loss": adv.detach(), "cond_ce": ce.detach()}

        d = [Phase("discriminator", discriminator_step)] * self.config.n_critic
        return d + [Phase("generator", generator_step, counts_units=False)]

    def after_step(self, step: int) -> None:
        super().after_step(step)
        unwrapped = self.networks_["discriminator"]
        unwrapped.requires_grad_(True)
        if self.privacy.private and getattr(self, "_gsm", None) is not None:
            self._gsm.enable_hooks()

    # -- sampling -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _generate(self, n: int, generator: torch.Generator, first: tuple[int, int] | None) -> np.ndarray:
        tf, device = self.transformer_, next(self.generator_.parameters()).device
        if not tf.disc:
            cond = torch.zeros(n, 0, device=device)
        elif first is None:  # conditions by the (noisy, under DP) category frequencies, as in the data
            cond = cond_vector(tf, *(t.to(device) for t in draw_conditions(tf, n, log=False, generator=generator)))
        else:
            full = lambda v: torch.full((n,), v, dtype=torch.long, device=device)  # noqa: E731
            cond = cond_vector(tf, full(first[0]), full(first[1]))
        return tf.inverse(self._fake(cond, generator)[1])
