"""PPCA: probabilistic principal component analysis (Tipping & Bishop 1999), fitted in closed form.

    x = W z + mu + eps,   z ~ N(0, I_q),   eps ~ N(0, sigma^2 I_D),   x: an image's D pixels in [-1, 1]

The maximum-likelihood fit needs no gradient steps (``iterative = False``): ``mu`` is the mean training image,
``W = U_q (L_q - sigma^2 I)^(1/2)`` from the ``q`` leading eigenvectors ``U_q`` and eigenvalues ``L_q`` of the
training covariance, and ``sigma^2`` the mean of the eigenvalues left out. Its likelihood is exact (a Gaussian
with covariance ``C = W W^T + sigma^2 I``, computed through ``q x q`` matrices), so it is the image families'
closed-form baseline: a linear model of the data, blurry where the data is not Gaussian. Samples show the mean
``W z + mu`` without the pixel noise, as the VAE's show its decoder's mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from genlab.data.images import ImageData, fit_image, from_unit
from genlab.errors import GenlabError
from genlab.modalities.image import Images, Interpolation, check_count, check_label, check_strength
from genlab.models.base import Family
from genlab.models.exports import TORCH_EXPORT_USAGE
from genlab.nets import seeded_generator, slerp

LOG_2PI = math.log(2 * math.pi)
DENSE_LIMIT = 4096  # pixels up to which the covariance is formed and decomposed exactly; above, a randomized SVD


@dataclass(frozen=True)
class PPCAConfig:
    """How many directions of variation the model keeps."""

    components: int = 32  # q: latent dimensions, the leading eigenvectors kept (below the number of pixels)
    min_variance: float = 1e-4  # floor on sigma^2 (pixels that never vary, e.g. MNIST's borders, would give 0)

    limits: ClassVar[dict[str, str]] = {"components": "[1, 65536]", "min_variance": "(0, 1000000]"}

    def validate(self) -> None:
        pass  # each number has its own range (limits); nothing relates two of them


class PPCANet(nn.Module):
    """The fitted Gaussian's parameters (fitted by ``solve``, never by gradients). Fresh: N(0, I), no structure."""

    def __init__(self, shape: tuple[int, int, int], q: int) -> None:
        super().__init__()
        self.shape, dim = tuple(shape), math.prod(shape)  # (C, H, W), C * H * W
        self.mean = nn.Parameter(torch.zeros(dim), requires_grad=False)  # (D,) mu
        self.weight = nn.Parameter(torch.zeros(dim, q), requires_grad=False)  # (D, q) W
        self.log_var = nn.Parameter(torch.zeros(()), requires_grad=False)  # log sigma^2

    def posterior(self) -> torch.Tensor:
        """M^-1 (q, q), M = W^T W + sigma^2 I: the posterior of z given x has mean M^-1 W^T (x - mu)."""
        q = self.weight.shape[1]
        eye = torch.eye(q, dtype=self.weight.dtype, device=self.weight.device)
        return torch.linalg.inv(self.weight.T @ self.weight + self.log_var.exp() * eye)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x) (B,) in nats per image for x (B, D), through the Woodbury identity (no D x D matrix)."""
        D, q = self.weight.shape
        var = self.log_var.exp()
        eye = torch.eye(q, dtype=self.weight.dtype, device=self.weight.device)
        m = self.weight.T @ self.weight + var * eye  # (q, q)
        xc = x.to(self.weight) - self.mean  # (B, D)
        proj = xc @ self.weight  # (B, q)
        maha = (xc.square().sum(1) - (proj @ torch.linalg.inv(m) * proj).sum(1)) / var  # (B,) x^T C^-1 x
        logdet = (D - q) * self.log_var + torch.logdet(m)  # log |C| = (D - q) log sigma^2 + log |M|
        return 0.5 * (D * LOG_2PI + logdet + maha)


class PPCA(Family):
    name = "ppca"
    modality = "image"
    data_interface = "images"
    cites = "Tipping & Bishop 1999, Probabilistic Principal Component Analysis"
    hints = ('genlab interpolate {run} --steps 8',)  # commands that work on any of its runs
    export_hint = "PyTorch alone: modeling.load('{path}') (the folder's modeling.py holds the model's code)"
    export_usage = TORCH_EXPORT_USAGE
    Config = PPCAConfig
    iterative: ClassVar[bool] = False
    example: ClassVar[dict[str, Any]] = {"set": ["model.components=8", "train.batch_size=64"]}

    # -- networks -------------------------------------------------------------------------------------------------
    def build(self, data: ImageData, *, seed: int) -> None:
        self.shape_ = tuple(data.shape)  # (C, H, W)
        dim = int(np.prod(self.shape_))
        if self.config.components >= min(dim, len(data.x["train"])):
            raise GenlabError(f"model.components ({self.config.components}) must be below the number of pixels "
                              f"({dim}) and of training images ({len(data.x['train'])})")
        self.num_classes_ = 0  # one Gaussian for all classes
        self.networks_ = {"model": PPCANet(self.shape_, self.config.components).eval()}

    def architecture(self) -> dict[str, Any]:
        arch = super().architecture()
        arch.pop("min_variance")  # changes the fit, not what the weights mean
        return {**arch, "shape": list(self.shape_)}

    @property
    def model_(self) -> PPCANet:
        return self.networks_["model"]

    # -- fitting --------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def solve(self, data: ImageData) -> None:
        """The maximum-likelihood W, mu and sigma^2 of the training images, in float64."""
        x = data.x["train"].flatten(1).double()  # (N, D)
        n, dim = x.shape
        q = self.config.components
        mean = x.mean(0)
        xc = x - mean  # (N, D)
        total = float(xc.square().sum()) / n  # trace of the covariance: the sum of all D eigenvalues
        if dim <= DENSE_LIMIT:
            values, vectors = torch.linalg.eigh(xc.T @ xc / n)  # ascending
            values, vectors = values.flip(0)[:q], vectors.flip(1)[:, :q]  # (q,), (D, q)
        else:
            _, s, v = torch.svd_lowrank(xc, q=q + 8, niter=4, M=None)
            values, vectors = (s[:q] ** 2) / n, v[:, :q]
        var = max((total - float(values.sum())) / (dim - q), self.config.min_variance)
        weight = vectors * (values - var).clamp_min(0).sqrt()  # (D, q)
        net = self.model_
        net.mean.copy_(mean)
        net.weight.copy_(weight)
        net.log_var.fill_(math.log(var))
        self.explained_variance_ = float(values.sum()) / total if total else 1.0

    @torch.no_grad()
    def validation_loss(self, batch: Any) -> float:
        """The exact negative log-likelihood, in nats per image (a density: it can be negative)."""
        x, _ = batch
        return float(self.model_.nll(x.flatten(1)).mean())

    def evaluate(self, data: ImageData, **kwargs: Any) -> dict[str, Any]:
        """``image_report`` (FID, KID, PRDC, floor and ceiling) plus the exact likelihood on the held-out split."""
        from genlab.evaluate.images import image_report

        report = image_report(self, data, **kwargs)
        with torch.no_grad():
            nll = self.model_.nll(data.x["val"].flatten(1).to(self.model_.weight.device))  # (N,)
        return {**report, "val_nll": float(nll.mean()), "components": self.config.components,
                "noise_std": math.exp(0.5 * float(self.model_.log_var))}

    def preview(self, step: int, folder: Path) -> None:
        from genlab.sample.images import save_grid

        folder.mkdir(parents=True, exist_ok=True)
        save_grid(self.sample(64, seed=0), folder / f"step-{step}.png")

    def export(self, folder: Path) -> None:
        """The fitted Gaussian and its sampler, in plain PyTorch (``exports.torch_export``)."""
        from genlab.models.exports import torch_export
        from genlab.models.standalone import sample_ppca

        torch_export(folder, title="A probabilistic PCA of images, fitted with genlab.", net=self.model_,
                     init={"shape": list(self.shape_), "q": self.config.components}, sampler=sample_ppca)

    # -- sampling -------------------------------------------------------------------------------------------------
    def _images(self, z: torch.Tensor) -> np.ndarray:
        """Latents (n, q) -> uint8 images (n, C, H, W): the mean W z + mu, clipped to the pixel range."""
        net = self.model_
        x = z.to(net.weight) @ net.weight.T + net.mean  # (n, D), on the model's device
        return from_unit(x.float().view(len(z), *self.shape_))

    def sample(self, n: int = 1, *, seed: int | None = None, label: int | None = None) -> Images:
        """``n`` images as uint8 (n, C, H, W) from z ~ N(0, I); the same seed gives the same images."""
        check_count("n", n)
        check_label(label, 0)
        z = torch.randn(n, self.config.components, generator=seeded_generator(seed))  # (n, q)
        return Images(self._images(z))

    def _encode(self, image: Any) -> torch.Tensor:
        """The posterior mean of z (q,) for a user's uint8 (C, H, W) image (resized and cropped as in training)."""
        net = self.model_
        x = fit_image(image, self.shape_).flatten(1).to(net.weight)  # (1, D)
        return ((x - net.mean) @ net.weight @ net.posterior().T)[0].cpu()  # (q,)

    def vary(self, image: Any, n: int = 8, *, strength: float = 0.5, seed: int | None = None) -> Images:
        """``n`` variations of ``image``: its posterior mean z plus ``strength`` times a prior-sized step."""
        check_count("n", n)
        check_strength(strength)
        z = self._encode(image)  # (q,)
        eps = torch.randn(n, self.config.components, generator=seeded_generator(seed))  # (n, q)
        return Images(self._images(z + strength * eps))

    def interpolate(self, steps: int, *, seed: int | None = None, images: Any = None) -> Interpolation:
        """``steps`` frames: a spherical walk between two random z, or a straight one between two images' z."""
        check_count("steps", steps, 2)
        t = torch.linspace(0, 1, steps)  # (steps,)
        if images is None:
            z0, z1 = torch.randn(2, self.config.components, generator=seeded_generator(seed))  # (q,) each
            return Interpolation(self._images(slerp(z0, z1, t)))
        if len(images) != 2:
            raise GenlabError(f"give two images to interpolate between, got {len(images)}")
        z0, z1 = (self._encode(im) for im in images)
        return Interpolation(self._images(torch.lerp(z0[None], z1[None], t[:, None].to(z0.dtype))))
