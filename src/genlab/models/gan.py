"""GAN: DCGAN (non-saturating loss) or WGAN-GP, optionally class-conditional, for images of any size.

The generator starts from a ``ceil(size / 4)`` square, upsamples twice with transposed convolutions and crops the
centre to the exact size (8x8 digits, 25x25 faces, 28x28 MNIST, 32x32 folders). The discriminator mirrors it: it
pads to the same ``4 * ceil(size / 4)`` square and downsamples twice. Conditional models concatenate a label
embedding to z in the generator and add a projection term ``<embed(y), h>`` to the discriminator's output
(Miyato & Koyama 2018, https://arxiv.org/abs/1802.05637).

One training step is the discriminator phase(s) then the generator phase, each with its own AdamW (the loop's):
  * ``bce``: one discriminator update, then one generator update with the non-saturating loss -log D(G(z))
    (Goodfellow et al. 2014; DCGAN, Radford et al. 2015, https://arxiv.org/abs/1511.06434).
  * ``wgan-gp``: ``n_critic`` critic updates with the gradient penalty lambda * (||grad D(x_hat)|| - 1)^2, then one
    generator update (Gulrajani et al. 2017, https://arxiv.org/abs/1704.00028). The critic has no BatchNorm (the
    penalty is per example); it uses GroupNorm with one group, a LayerNorm over (C, H, W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genlab.data.images import ImageData, from_unit
from genlab.errors import GenlabError
from genlab.modalities.image import Images, Interpolation, check_count, class_labels
from genlab.models.base import Family, Phase, decay_groups
from genlab.models.exports import TORCH_EXPORT_USAGE
from genlab.nets import eval_mode, n_params, seeded_generator, slerp

NO_IMAGES = "the gan family cannot encode an image; use vae or diffusion"


@dataclass(frozen=True)
class GANConfig:
    """Shape and objective of the generator and discriminator. Image size and classes come from the data."""

    loss: Literal["bce", "wgan-gp"] = "bce"  # bce = DCGAN's non-saturating loss; wgan-gp = Wasserstein + penalty
    conditional: bool = False  # generate a requested class (needs a labelled dataset)
    z_dim: int = 64  # size of the Gaussian latent z
    width: int = 32  # channels at full resolution; G and D use 2x and 4x this at 1/2 and 1/4 resolution
    embed_dim: int = 16  # size of the generator's label embedding (conditional models)
    n_critic: int = 5  # wgan-gp: discriminator updates per generator update (bce always uses 1)
    gp_weight: float = 10.0  # wgan-gp: lambda, the weight of the gradient penalty
    ema: float = 0.999  # decay of the generator's weight average used for sampling (0 = sample the raw generator)

    limits: ClassVar[dict[str, str]] = {"z_dim": "[1, 65536]", "width": "[1, 4096]", "embed_dim": "[1, 65536]",
                                        "n_critic": "[1, 100]", "gp_weight": "[0, 1000000]", "ema": "[0, 1)"}

    def validate(self) -> None:
        pass  # each number has its own range (limits); nothing relates two of them


# -- networks ---------------------------------------------------------------------------------------------------
class Generator(nn.Module):
    """z (+ label embedding) -> image: a (4w, s, s) seed, two 2x transposed convolutions, a centre crop."""

    def __init__(self, shape: tuple[int, int, int], z_dim: int, width: int, num_classes: int, embed_dim: int):
        super().__init__()
        c, size, _ = shape
        self.size, self.s0, self.z_dim, w = size, math.ceil(size / 4), z_dim, width
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        in_dim = z_dim + (embed_dim if num_classes else 0)
        self.project = nn.Sequential(
            nn.Linear(in_dim, 4 * w * self.s0**2, bias=False), nn.Unflatten(1, (4 * w, self.s0, self.s0)),
            nn.BatchNorm2d(4 * w), nn.ReLU(),  # (B, 4w, s, s)
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),  # (B, 2w, 2s, 2s)
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),  # (B, w, 4s, 4s)
            nn.Conv2d(w, c, 3, 1, 1), nn.Tanh(),  # (B, C, 4s, 4s) in [-1, 1]
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, emb: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:  # conditional: a class index, or an embedding (interpolations pass one)
            z = torch.cat([z, self.embed(y) if emb is None else emb], dim=1)  # (B, z_dim + embed_dim)
        x = self.up(self.project(z))  # (B, C, 4s, 4s)
        top = (x.shape[-1] - self.size) // 2
        return x[..., top : top + self.size, top : top + self.size]  # (B, C, size, size)


class Discriminator(nn.Module):
    """image -> logit (bce) or critic value (wgan-gp): pad to 4s, two strided convolutions, linear + projection."""

    def __init__(self, shape: tuple[int, int, int], width: int, num_classes: int, batch_norm: bool):
        super().__init__()
        c, size, _ = shape
        s0, w = math.ceil(size / 4), width
        self.pad = 4 * s0 - size
        norm = nn.BatchNorm2d(4 * w) if batch_norm else nn.GroupNorm(1, 4 * w)  # GroupNorm(1) = LayerNorm on (C, H, W)
        self.features = nn.Sequential(
            nn.Conv2d(c, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),  # (B, 2w, 2s, 2s)
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False), norm, nn.LeakyReLU(0.2),  # (B, 4w, s, s)
            nn.Flatten(),  # (B, 4w s^2)
        )
        self.out = nn.Linear(4 * w * s0 * s0, 1)
        self.embed = nn.Embedding(num_classes, 4 * w * s0 * s0) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.pad:  # the generator's crop, undone: pad to its 4s square the same way for real and fake
            x = F.pad(x, (self.pad // 2, self.pad - self.pad // 2) * 2, value=-1.0)
        h = self.features(x)  # (B, F)
        logit = self.out(h).squeeze(1)  # (B,)
        if self.embed is not None:
            logit = logit + (self.embed(y) * h).sum(1)  # projection term: how class-y-like the features are
        return logit.float()


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's init: convolutions and linears N(0, 0.02), norm gains N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# -- the family -------------------------------------------------------------------------------------------------
class GAN(Family):
    """Generative adversarial network on images. Example::

        run = genlab.train("gan", "mnist", config_file="gan-mnist")
        sevens = run.sample(16, label=7, seed=0)  # uint8 (16, 1, 28, 28)
        strip = run.model.interpolate(10, seed=1)  # a walk between two random z (and two classes)
    """

    name = "gan"
    modality = "image"
    data_interface = "images"
    cites = ("Goodfellow et al. 2014, Generative Adversarial Nets; "
             "Radford et al. 2016, Unsupervised Representation Learning with Deep Convolutional GANs")
    hints = ('genlab interpolate {run} --steps 8',)  # commands that work on any of its runs
    export_hint = "PyTorch alone: modeling.load('{path}') (the folder's modeling.py holds the generator's code)"
    export_usage = TORCH_EXPORT_USAGE
    Config = GANConfig
    example = {"set": ["model.z_dim=16", "model.width=8", "train.batch_size=32", "train.warmup_steps=5"]}
    train_defaults = {"lr": 2e-4, "min_lr": 2e-5, "beta1": 0.5, "beta2": 0.999, "weight_decay": 0.0,
                      "grad_clip": 0.0, "warmup_steps": 20, "batch_size": 64, "max_steps": 3000,
                      "eval_every": 500, "eval_batches": 10}

    # -- networks -------------------------------------------------------------------------------------------------
    def build(self, data: ImageData, *, seed: int) -> None:
        c, h, w = data.shape
        if h != w:
            raise GenlabError(f"the gan family needs square images, got {h}x{w}; set data.size")
        if self.config.conditional and not data.num_classes:
            raise GenlabError("model.conditional=true needs class labels, and this dataset has none; "
                              "set model.conditional=false (or use sub-folders as classes)")
        self.shape_ = tuple(data.shape)
        self.num_classes_ = data.num_classes if self.config.conditional else 0
        cfg, k = self.config, self.num_classes_
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = Generator(self.shape_, cfg.z_dim, cfg.width, k, cfg.embed_dim)
            discriminator = Discriminator(self.shape_, cfg.width, k, batch_norm=cfg.loss == "bce")
            _dcgan_init(generator)
            _dcgan_init(discriminator)
        self.networks_ = {"generator": generator.train(), "discriminator": discriminator.train()}
        if cfg.ema:
            ema = Generator(self.shape_, cfg.z_dim, cfg.width, k, cfg.embed_dim)
            ema.load_state_dict(generator.state_dict())
            self.networks_["generator_ema"] = ema.requires_grad_(False).eval()  # trained by after_step, not AdamW

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        for k in ("n_critic", "gp_weight"):  # they change training, not the weights' shapes or meaning
            arch.pop(k)
        arch["ema"] = bool(arch["ema"])  # whether generator_ema exists; its decay may change on resume
        return {**arch, "shape": list(self.shape_), "num_classes": self.num_classes_}

    @property
    def generator_(self) -> Generator:
        return self.networks_["generator"]

    @property
    def discriminator_(self) -> Discriminator:
        return self.networks_["discriminator"]

    @property
    def sampler_(self) -> Generator:
        """The network samples come from: the weight average when model.ema > 0."""
        return self.networks_.get("generator_ema", self.generator_)

    def param_groups(self, weight_decay: float) -> dict[str, list[dict[str, Any]]]:
        self.generator_.requires_grad_(True)
        self.discriminator_.requires_grad_(True)
        return {"discriminator": decay_groups(self.discriminator_, weight_decay),
                "generator": decay_groups(self.generator_, weight_decay)}

    # -- training -------------------------------------------------------------------------------------------------
    def _fakes(self, y: torch.Tensor) -> torch.Tensor:
        """Generated images for labels y (B,); z comes from the global RNG, which the loop forks and checkpoints."""
        z = torch.randn(len(y), self.config.z_dim, device=y.device)  # (B, z_dim)
        return self.generator_(z, y if self.num_classes_ else None)  # (B, C, H, W)

    def _d_loss(self, real: torch.Tensor, y: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """The discriminator's loss terms on real and fake images (the gradient penalty is added by the caller)."""
        d = self.discriminator_
        y = y if self.num_classes_ else None
        real_out, fake_out = d(real, y), d(fake, y)  # (B,), (B,)
        if self.config.loss == "bce":
            loss = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()  # -log D(x) - log(1 - D(G(z)))
            return {"d_loss": loss}
        wasserstein = real_out.mean() - fake_out.mean()  # the critic's estimate of W(real, fake)
        return {"d_loss": -wasserstein, "wasserstein": wasserstein}

    def _gradient_penalty(self, real: torch.Tensor, y: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """(||grad_x D(x_hat)|| - 1)^2 at random points x_hat on the lines between real and fake images."""
        eps = torch.rand(len(real), 1, 1, 1, device=real.device)  # (B, 1, 1, 1)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)  # (B, C, H, W)
        out = self.discriminator_(x_hat, y if self.num_classes_ else None)
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)  # (B, C, H, W)
        return ((grad.float().flatten(1).norm(dim=1) - 1) ** 2).mean()

    def phases(self, data: ImageData) -> list[Phase]:
        cfg = self.config

        def discriminator_step(batch):
            real, y = batch  # (B, C, H, W), (B,)
            # 1. fakes without a graph back into G: this phase updates D only
            with torch.no_grad():
                fake = self._fakes(y)
            # 2. D's loss on real against fake (+ the gradient penalty for wgan-gp)
            terms = self._d_loss(real, y, fake)
            loss = terms["d_loss"]
            if cfg.loss == "wgan-gp":
                terms["gp"] = self._gradient_penalty(real, y, fake)
                loss = loss + cfg.gp_weight * terms["gp"]
            return loss, {k: v.detach() for k, v in terms.items()}

        def generator_step(batch):
            _, y = batch  # only the real batch's labels (and size) are used: fakes follow the data's classes
            # 1. freeze D so backward computes gradients for G only (after_step unfreezes it)
            self.discriminator_.requires_grad_(False)
            # 2. G's loss: the non-saturating -log D(G(z)) (bce) or -D(G(z)) (wgan-gp)
            out = self.discriminator_(self._fakes(y), y if self.num_classes_ else None)  # (B,)
            loss = F.softplus(-out).mean() if cfg.loss == "bce" else -out.mean()
            return loss, {"g_loss": loss.detach()}

        n_d = cfg.n_critic if cfg.loss == "wgan-gp" else 1
        return [Phase("discriminator", discriminator_step)] * n_d + [Phase("generator", generator_step, counts_units=False)]

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        self.discriminator_.requires_grad_(True)
        if "generator_ema" in self.networks_:
            # ema <- decay * ema + (1 - decay) * G; warm-up so early samples are not dominated by the random init
            decay = min(self.config.ema, (1 + step) / (10 + step))
            for e, p in zip(self.sampler_.parameters(), self.generator_.parameters()):
                e.lerp_(p.detach(), 1 - decay)
            for e, b in zip(self.sampler_.buffers(), self.generator_.buffers()):  # BatchNorm statistics
                e.copy_(b)

    @torch.no_grad()
    def validation_loss(self, batch) -> float:
        """The discriminator's loss on held-out real images against as many fresh fakes (no gradient penalty).

        bce: -log D(x) - log(1 - D(G(z))) in nats; 2 ln 2 = 1.386 when D cannot tell them apart, near 0 when it
        separates them easily. wgan-gp: minus the critic's Wasserstein estimate; nearer 0 means closer
        distributions (as judged by the current critic). It tracks the game, not sample quality: use `genlab eval`.
        The fakes' z is seeded from the real batch's pixels, so the loop's fixed validation batches get the same z
        at every evaluation.
        """
        real, y = batch
        seed = int(((real.float() + 1) * 127.5).round().long().sum())
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(len(real), self.config.z_dim, generator=g).to(real.device)  # (B, z_dim)
        fake = self.generator_(z, y if self.num_classes_ else None)
        return float(self._d_loss(real, y, fake)["d_loss"])

    def evaluate(self, data: ImageData, **kwargs: Any) -> dict[str, Any]:
        """``image_report`` (FID, KID, precision/recall/density/coverage, floor and ceiling) + the GAN's own figures."""
        from genlab.evaluate.images import image_report

        report = image_report(self, data, **kwargs)
        return {**report, "discriminator_val_loss": self._discriminator_val_loss(data),
                "n_params_generator": n_params(self.generator_),
                "n_params_discriminator": n_params(self.discriminator_)}

    def _discriminator_val_loss(self, data: ImageData, batch_size: int = 256) -> float:
        """``validation_loss`` over the whole held-out split."""
        with eval_mode(*self.networks_.values()):
            device = next(self.generator_.parameters()).device
            x, y = data.x["val"], data.y["val"]
            losses = [self.validation_loss((x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)))
                      * len(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return sum(losses) / len(x)

    def preview(self, step: int, folder: Path) -> None:
        from genlab.sample.images import save_grid

        folder.mkdir(parents=True, exist_ok=True)
        nrow = self.num_classes_ if 0 < self.num_classes_ <= 16 else None  # conditional: one column per class
        save_grid(self.sample(64, seed=0), folder / f"step-{step}.png", nrow=nrow)

    # -- sampling -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _generate(self, z: torch.Tensor, y: torch.Tensor | None = None, emb: torch.Tensor | None = None,
                  batch_size: int = 256) -> np.ndarray:
        """z (N, z_dim) -> uint8 (N, C, H, W), in eval mode and batches, restoring the sampler's mode."""
        net = self.sampler_
        device = next(net.parameters()).device
        out = []
        with eval_mode(net):
            for i in range(0, len(z), batch_size):
                part = slice(i, i + batch_size)
                out.append(from_unit(net(z[part].to(device), None if y is None else y[part].to(device),
                                         None if emb is None else emb[part].to(device))))
        return np.concatenate(out)

    def sample(self, n: int = 1, *, seed: int | None = None, label: int | None = None) -> Images:
        """``n`` images as uint8 (n, C, H, W); the same seed gives the same images.

        ``label`` (conditional models) picks the class of every image; without it classes cycle 0..K-1.
        """
        check_count("n", n)
        y = class_labels(n, label, self.num_classes_)
        z = torch.randn(n, self.config.z_dim, generator=seeded_generator(seed))  # (n, z_dim)
        return Images(self._generate(z, y))

    def interpolate(self, steps: int, *, seed: int | None = None, images: Any = None,
                    label: int | None = None) -> Interpolation:
        """uint8 (steps, C, H, W): a spherical walk between two random z.

        Conditional models keep ``label`` fixed, or without it walk (linearly) between the label embeddings of
        two random classes too, so a digit morphs into another.
        """
        if images is not None:
            raise GenlabError("the gan family cannot encode images, so it cannot interpolate between given images; "
                              "leave them out to walk between two random samples (or use vae or diffusion)")
        check_count("steps", steps, 2)
        g = seeded_generator(seed)
        z0, z1 = torch.randn(2, self.config.z_dim, generator=g)  # (z_dim,) each
        t = torch.linspace(0, 1, steps)  # (steps,)
        z = slerp(z0, z1, t)  # (steps, z_dim)
        if not self.num_classes_:
            class_labels(1, label, 0)  # raises for a label on an unconditional model
            return Interpolation(self._generate(z))
        ends = class_labels(2, label, self.num_classes_) if label is not None else \
            torch.randint(self.num_classes_, (2,), generator=g)
        e0, e1 = self.sampler_.embed.weight.detach().cpu()[ends]  # (embed_dim,) each
        return Interpolation(self._generate(z, emb=torch.lerp(e0[None], e1[None], t[:, None])))  # (steps, C, H, W)

    def export(self, folder: Path) -> None:
        """The generator that samples (the EMA one when there is one) and its sampler, in plain PyTorch."""
        from genlab.models.exports import torch_export
        from genlab.models.standalone import sample_gan

        c = self.config
        init = {"shape": list(self.shape_), "z_dim": c.z_dim, "width": c.width, "num_classes": self.num_classes_,
                "embed_dim": c.embed_dim}
        torch_export(folder, title="A GAN generator trained with genlab.", net=self.sampler_, init=init,
                     sampler=sample_gan)

    def vary(self, image: Any, n: int = 8, *, strength: float = 0.5, seed: int | None = None) -> np.ndarray:
        raise GenlabError(NO_IMAGES)
