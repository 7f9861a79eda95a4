"""VAE: a convolutional variational autoencoder (Kingma & Welling 2014), with beta (Higgins et al. 2017) and
optional class conditioning (CVAE, Sohn et al. 2015).

The encoder halves the image twice with stride-2 convolutions (to ceil(H/4) x ceil(W/4), so any size works:
8x8, 25x25, 28x28, 32x32) and maps it to the mean and log-variance of a diagonal Gaussian q(z|x); the decoder
mirrors it with two stride-2 transposed convolutions and crops the result to the exact size. A conditional model
feeds the class as a one-hot vector to both halves: q(z|x, y) and p(x|z, y).

Likelihood: a Bernoulli per pixel on intensities in [0, 1] (x01 = (x + 1) / 2), the decoder giving logits, as is
standard for MNIST. Grey levels are treated as soft targets, so the per-pixel cross-entropy is not a density of
continuous pixels and cannot fall below the entropy of the targets (``evaluate`` reports that bound). Losses and
likelihoods are in nats per image (summed over pixels). Samples show the Bernoulli mean (sigmoid of the logits),
not binary draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genlab.data.images import ImageData, fit_image, from_unit
from genlab.errors import GenlabError
from genlab.modalities.image import Images, Interpolation, check_count, check_label, check_strength, class_labels
from genlab.models.base import Family, Phase
from genlab.models.exports import TORCH_EXPORT_USAGE
from genlab.nets import eval_mode, seeded_generator, slerp

LOG_2PI = math.log(2 * math.pi)
VALIDATION_SEED = 0  # validation draws its latent noise from this fixed stream, so estimates are comparable


@dataclass(frozen=True)
class VAEConfig:
    """Shape of the networks and the weight of the KL term."""

    latent_dim: int = 16  # dimensions of the latent z (a standard Gaussian prior)
    width: int = 32  # channels after the first stride-2 convolution (twice this after the second)
    hidden: int = 256  # width of the fully connected layer between the convolutions and the latent
    beta: float = 1.0  # weight of KL(q(z|x) || p(z)) in the training loss (1.0 = the standard ELBO; beta-VAE)
    conditional: bool = False  # feed the class label to encoder and decoder (CVAE; needs a labelled dataset)

    limits: ClassVar[dict[str, str]] = {"latent_dim": "[1, 65536]", "width": "[1, 4096]", "hidden": "[1, 1048576]",
                                        "beta": "[0, 1000000]"}

    def validate(self) -> None:
        pass  # each number has its own range (limits); nothing relates two of them


class VAENet(nn.Module):
    """Encoder q(z|x[, y]) and decoder p(x|z[, y]) for images of one shape."""

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, width: int, hidden: int, num_classes: int):
        super().__init__()
        c, h, w = shape
        self.shape, self.num_classes, self.latent_dim = tuple(shape), num_classes, latent_dim
        self.grid = (-(-h // 4), -(-w // 4))  # ceil(H/4), ceil(W/4): the feature map between the halves
        flat = 2 * width * self.grid[0] * self.grid[1]
        self.encoder = nn.Sequential(
            nn.Conv2d(c, width, 3, stride=2, padding=1), nn.SiLU(),  # (B, w, ceil(H/2), ceil(W/2))
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),  # (B, 2w, ceil(H/4), ceil(W/4))
            nn.Flatten(),  # (B, flat)
        )
        self.to_latent = nn.Sequential(nn.Linear(flat + num_classes, hidden), nn.SiLU(),
                                       nn.Linear(hidden, 2 * latent_dim))  # (B, 2D): mean, log-variance
        self.from_latent = nn.Sequential(nn.Linear(latent_dim + num_classes, hidden), nn.SiLU(),
                                         nn.Linear(hidden, flat), nn.SiLU())  # (B, flat)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.SiLU(),  # (B, w, 2 gh, 2 gw)
            nn.ConvTranspose2d(width, c, 4, stride=2, padding=1),  # (B, C, 4 gh, 4 gw), cropped to (H, W)
        )

    def encode(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [-1, 1], cond (B, K) or None -> mean, log-variance (B, D), in fp32."""
        h = self.encoder(x)  # (B, flat)
        if cond is not None:
            h = torch.cat([h, cond.to(h.dtype)], dim=1)  # (B, flat + K)
        mu, logvar = self.to_latent(h).float().chunk(2, dim=1)  # (B, D) each
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """z (B, D), cond (B, K) or None -> Bernoulli logits (B, C, H, W), in fp32."""
        if cond is not None:
            z = torch.cat([z, cond.to(z.dtype)], dim=1)  # (B, D + K)
        h = self.from_latent(z).view(len(z), -1, *self.grid)  # (B, 2w, gh, gw)
        _, height, width = self.shape
        return self.decoder(h)[:, :, :height, :width].float()  # crop (B, C, 4 gh, 4 gw) -> (B, C, H, W)


class VAE(Family):
    name = "vae"
    modality = "image"
    data_interface = "images"
    cites = "Kingma & Welling 2014, Auto-Encoding Variational Bayes"
    hints = ('genlab interpolate {run} --steps 8',)  # commands that work on any of its runs
    export_hint = "PyTorch alone: modeling.load('{path}') (the folder's modeling.py holds the decoder's code)"
    export_usage = TORCH_EXPORT_USAGE
    Config = VAEConfig
    example = {"set": ["model.latent_dim=8", "model.width=8", "model.hidden=32", "train.batch_size=32",
                       "train.warmup_steps=5"]}
    train_defaults = {"lr": 2e-3, "min_lr": 2e-4, "weight_decay": 0.0, "batch_size": 64, "max_steps": 3000,
                      "warmup_steps": 100, "eval_every": 500, "eval_batches": 8}

    # -- networks -------------------------------------------------------------------------------------------------
    def build(self, data: ImageData, *, seed: int) -> None:
        c = self.config
        if c.conditional and data.num_classes == 0:
            raise GenlabError(f"model.conditional=true needs class labels, and dataset '{data.meta['name']}' has "
                              "none (put images in one sub-folder per class, or set model.conditional=false)")
        self.shape_ = tuple(data.shape)
        self.num_classes_ = data.num_classes if c.conditional else 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = VAENet(self.shape_, c.latent_dim, c.width, c.hidden, self.num_classes_)  # PyTorch's default init
        self.networks_ = {"model": net.train()}

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        arch.pop("beta")  # beta changes training, not the weights' shapes or meaning
        return {**arch, "shape": list(self.shape_), "num_classes": self.num_classes_}

    @property
    def model_(self) -> VAENet:
        return self.networks_["model"]

    # -- training -------------------------------------------------------------------------------------------------
    def _cond(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """Labels (B,) int, or soft one-hots (B, K) float -> the condition (B, K); None for an unconditional model."""
        if not self.num_classes_ or y is None:
            return None
        return y.float() if y.is_floating_point() else F.one_hot(y, self.num_classes_).float()

    def _terms(self, x: torch.Tensor, y: torch.Tensor | None, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction -log p(x|z) and KL(q(z|x) || p(z)), each (B,) in nats per image, for z = mu + sigma eps."""
        cond = self._cond(y)
        mu, logvar = self.model_.encode(x, cond)  # (B, D)
        z = mu + torch.exp(0.5 * logvar) * eps  # (B, D): the reparameterisation trick
        logits = self.model_.decode(z, cond)  # (B, C, H, W)
        rec = F.binary_cross_entropy_with_logits(logits, (x.float() + 1) / 2, reduction="none").sum((1, 2, 3))
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)  # (B,): closed form for Gaussians
        return rec, kl

    def phases(self, data: ImageData) -> list[Phase]:
        def loss(batch):
            x, y = batch  # (B, C, H, W) in [-1, 1], (B,)
            # eps from the global stream, which the training loop forks, seeds and checkpoints (as for dropout)
            eps = torch.randn(len(x), self.config.latent_dim, device=x.device)
            rec, kl = self._terms(x, y, eps)
            value = (rec + self.config.beta * kl).mean()  # nats per image, beta-weighted
            return value, {"train_loss": value.detach(), "rec": rec.mean().detach(), "kl": kl.mean().detach()}

        return [Phase("model", loss)]

    @torch.no_grad()
    def validation_loss(self, batch) -> float:
        """The negative ELBO (beta = 1) in nats per image, with one latent draw from a fixed stream."""
        x, y = batch
        g = torch.Generator().manual_seed(VALIDATION_SEED)
        eps = torch.randn(len(x), self.config.latent_dim, generator=g).to(x.device)
        rec, kl = self._terms(x, y, eps)
        return float((rec + kl).mean())

    def preview(self, step: int, folder: Path) -> None:
        from genlab.sample.images import save_grid

        folder.mkdir(parents=True, exist_ok=True)
        save_grid(self.sample(64, seed=0), folder / f"step-{step}.png")

    def export(self, folder: Path) -> None:
        """The decoder side and its sampler in plain PyTorch (``exports.torch_export``)."""
        from genlab.models.exports import torch_export
        from genlab.models.standalone import sample_vae

        c = self.config
        init = {"shape": list(self.shape_), "latent_dim": c.latent_dim, "width": c.width, "hidden": c.hidden,
                "num_classes": self.num_classes_}
        torch_export(folder, title="A VAE trained with genlab: encoder and decoder.", net=self.model_, init=init,
                     sampler=sample_vae)

    # -- evaluation -----------------------------------------------------------------------------------------------
    def evaluate(self, data: ImageData, *, k: int = 100, **kwargs: Any) -> dict[str, Any]:
        """``image_report`` (FID, KID, PRDC, label agreement, floor and ceiling) plus the likelihood figures."""
        from genlab.evaluate.images import image_report

        report = image_report(self, data, **kwargs)
        return {**report, **self.likelihood(data, k=k, seed=kwargs.get("seed", 0))}

    @torch.no_grad()
    def likelihood(self, data: ImageData, *, k: int = 100, seed: int = 0, split: str = "val") -> dict[str, float]:
        """Negative ELBO and the importance-sampled NLL (IWAE bound, k samples) on a split, in nats per image.

        log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x); the bound tightens as k grows. For a
        conditional model these are log p(x | y) with the true label. Beside them: ``nll_pixel_baseline`` (each
        pixel a Bernoulli with its mean over the training images: what a model without structure scores) and
        ``nll_lower_bound`` (the entropy of the grey-level soft targets: no model can score below it).
        """
        if k < 1:
            raise GenlabError(f"k (importance samples) must be at least 1, got {k}")
        g = torch.Generator().manual_seed(seed)
        x_all, y_all = data.x[split], data.y[split]  # (N, C, H, W), (N,)
        chunk = max(1, 2048 // k)  # images per pass: k * chunk decodes at once
        iwae, elbo, rec_sum, kl_sum = [], [], 0.0, 0.0
        with eval_mode(self.model_):
            device = next(self.model_.parameters()).device
            for i in range(0, len(x_all), chunk):
                x, y = x_all[i : i + chunk].to(device), y_all[i : i + chunk].to(device)  # (b, C, H, W), (b,)
                b, d = len(x), self.config.latent_dim
                cond = self._cond(y)
                mu, logvar = self.model_.encode(x, cond)  # (b, D)
                eps = torch.randn(k, b, d, generator=g).to(device)  # (k, b, D)
                z = mu + torch.exp(0.5 * logvar) * eps  # (k, b, D)
                logits = self.model_.decode(z.flatten(0, 1), None if cond is None else cond.repeat(k, 1))
                target = ((x + 1) / 2).repeat(k, 1, 1, 1)  # (k b, C, H, W)
                log_px = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum((1, 2, 3))
                log_px = log_px.view(k, b)  # (k, b)
                log_pz = -0.5 * (z.square() + LOG_2PI).sum(-1)  # (k, b)
                log_qz = -0.5 * (eps.square() + logvar + LOG_2PI).sum(-1)  # (k, b)
                iwae.append(torch.logsumexp(log_px + log_pz - log_qz, dim=0) - math.log(k))  # (b,)
                kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)  # (b,)
                elbo.append(log_px.mean(0) - kl)  # (b,): the reconstruction term averaged over the k draws
                rec_sum, kl_sum = rec_sum - float(log_px.mean(0).sum()), kl_sum + float(kl.sum())
        n = len(x_all)
        mean_train = ((data.x["train"].float() + 1) / 2).mean(0, keepdim=True).clamp(1e-4, 1 - 1e-4)  # (1, C, H, W)
        x01 = (x_all.float() + 1) / 2
        baseline = F.binary_cross_entropy(mean_train.expand_as(x01), x01, reduction="sum") / n
        entropy = F.binary_cross_entropy(x01.clamp(1e-6, 1 - 1e-6), x01, reduction="sum") / n
        return {"neg_elbo": -float(torch.cat(elbo).mean()), "nll_iwae": -float(torch.cat(iwae).mean()),
                "reconstruction": rec_sum / n, "kl": kl_sum / n, "iwae_k": k,
                "nll_pixel_baseline": float(baseline), "nll_lower_bound": float(entropy)}

    # -- sampling -------------------------------------------------------------------------------------------------
    def _decode_images(self, z: torch.Tensor, cond: torch.Tensor | None) -> np.ndarray:
        """z (N, D) on the CPU -> uint8 (N, C, H, W): the Bernoulli mean, in chunks."""
        device = next(self.model_.parameters()).device
        out = []
        with eval_mode(self.model_):
            for i in range(0, len(z), 256):
                c = None if cond is None else cond[i : i + 256].to(device)
                probs = torch.sigmoid(self.model_.decode(z[i : i + 256].to(device), c))  # (b, C, H, W) in [0, 1]
                out.append(from_unit(probs * 2 - 1))
        return np.concatenate(out)

    def sample(self, n: int = 1, *, seed: int | None = None, label: int | None = None) -> Images:
        """``n`` images, uint8 (n, C, H, W): z ~ N(0, I) decoded to the Bernoulli mean; the same seed, the same images.

        A conditional model makes class ``label``, or cycles through the classes 0..K-1 when it is None.
        """
        check_count("n", n)
        y = class_labels(n, label, self.num_classes_)  # (n,) or None
        z = torch.randn(n, self.config.latent_dim, generator=seeded_generator(seed))  # (n, D), on the CPU: any device
        return Images(self._decode_images(z, self._cond(y)))

    def _prepare(self, image: Any) -> torch.Tensor:
        """A user's uint8 image (C, H, W) -> (1, C, H, W) in [-1, 1], resized to the model's size if it differs."""
        return fit_image(image, self.shape_)

    def _encode(self, image: Any, label: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Mean and log-variance (1, D) of q(z|x[, y]) for a user's image, and the condition (1, K) or None.

        A conditional model without ``label`` takes the class under which the image is most likely (the largest
        ELBO at z = mean): the model classifies the image itself.
        """
        check_label(label, self.num_classes_)
        device = next(self.model_.parameters()).device
        x = self._prepare(image).to(device)  # (1, C, H, W)
        with eval_mode(self.model_):
            if self.num_classes_ and label is None:
                k = self.num_classes_
                ys = torch.arange(k, device=device)  # (K,): every class
                rec, kl = self._terms(x.expand(k, -1, -1, -1), ys, torch.zeros(k, self.config.latent_dim,
                                                                                 device=device))
                label = int(torch.argmin(rec + kl))
            y = torch.tensor([label], device=device) if self.num_classes_ else None
            cond = self._cond(y)
            mu, logvar = self.model_.encode(x, cond)  # (1, D)
        return mu.cpu(), logvar.cpu(), None if cond is None else cond.cpu()

    def vary(self, image: Any, n: int = 8, *, strength: float = 0.5, seed: int | None = None,
             label: int | None = None) -> Images:
        """``n`` variations of ``image`` (uint8 (C, H, W)), uint8 (n, C, H, W).

        Encodes the image to q(z|x), then decodes z = mu + strength * eps with eps ~ N(0, I): strength 0 gives
        the reconstruction n times, strength 1 perturbs the mean by a prior-sized step. An image of another size
        is resized (shorter side) and centre-cropped first. A conditional model keeps the class ``label``, or the
        class it finds most likely for the image.
        """
        check_count("n", n)
        check_strength(strength)
        mu, _, cond = self._encode(image, label)  # (1, D), (1, K) or None
        eps = torch.randn(n, self.config.latent_dim, generator=seeded_generator(seed))  # (n, D)
        z = mu + strength * eps  # (n, D)
        return Images(self._decode_images(z, None if cond is None else cond.expand(n, -1)))

    def interpolate(self, steps: int, *, seed: int | None = None, images: Any = None,
                    label: int | None = None) -> Interpolation:
        """``steps`` frames, uint8 (steps, C, H, W), from one end point to the other.

        Without ``images``: two z ~ N(0, I) joined by spherical interpolation (which keeps the norm that Gaussian
        draws have). With ``images`` (two uint8 (C, H, W)): the means of their encodings joined by a straight
        line. A conditional model uses class ``label`` throughout, or blends the two end points' one-hot classes
        (random classes, or each image's most likely class).
        """
        check_count("steps", steps, 2)
        check_label(label, self.num_classes_)
        t = torch.linspace(0, 1, steps)[:, None]  # (steps, 1)
        g = seeded_generator(seed)
        if images is None:
            z0, z1 = torch.randn(2, self.config.latent_dim, generator=g)  # (D,) each
            z = slerp(z0, z1, t)  # (steps, D)
            ys = torch.randint(max(1, self.num_classes_), (2,), generator=g) if label is None else [label] * 2
            c0, c1 = (self._cond(torch.tensor([y])) for y in ys)
        else:
            if len(images) != 2:
                raise GenlabError(f"give two images to interpolate between, got {len(images)}")
            (z0, _, c0), (z1, _, c1) = (self._encode(im, label) for im in images)
            z = (1 - t) * z0 + t * z1  # (steps, D)
        cond = None if c0 is None else (1 - t) * c0 + t * c1  # (steps, K): blended one-hot classes
        return Interpolation(self._decode_images(z, cond))
