"""Samplers that run on an exported network with PyTorch alone: each is copied, as source, into the ``modeling.py``
of an export (``exports.torch_export``), beside the network's own class. They draw exactly what the family's
``sample`` draws for the same seed (without the watermark, which only genlab adds), so an export gives the same
images as the run. Only ``torch`` may be used here, and the helper ``_images``.
"""

from __future__ import annotations

import torch


def _images(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 [0, 255] (clipped), as genlab writes images."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


@torch.no_grad()
def sample_vae(net: torch.nn.Module, n: int, seed: int | None = None, label: int | None = None) -> torch.Tensor:
    """``n`` images, uint8 (n, C, H, W): z ~ N(0, I) decoded to the Bernoulli mean (a label, or classes in turn)."""
    z = torch.randn(n, net.latent_dim, generator=_generator(seed))  # (n, D)
    cond = None
    if net.num_classes:
        y = torch.full((n,), label) if label is not None else torch.arange(n) % net.num_classes  # (n,)
        cond = torch.nn.functional.one_hot(y, net.num_classes).float()  # (n, K)
    return _images(torch.sigmoid(net.decode(z, cond)) * 2 - 1)


@torch.no_grad()
def sample_gan(net: torch.nn.Module, n: int, seed: int | None = None, label: int | None = None) -> torch.Tensor:
    """``n`` images, uint8 (n, C, H, W), from z ~ N(0, I) (a label, or classes in turn, for a conditional one)."""
    z = torch.randn(n, net.z_dim, generator=_generator(seed))  # (n, z_dim)
    y = None
    if net.embed is not None:
        y = torch.full((n,), label, dtype=torch.long) if label is not None else torch.arange(n) % net.embed.num_embeddings
    return _images(net(z, y))


@torch.no_grad()
def sample_ppca(net: torch.nn.Module, n: int, seed: int | None = None) -> torch.Tensor:
    """``n`` images, uint8 (n, C, H, W): the mean W z + mu of z ~ N(0, I)."""
    z = torch.randn(n, net.weight.shape[1], generator=_generator(seed))  # (n, q)
    return _images((z.to(net.weight) @ net.weight.T + net.mean).float().view(n, *net.shape))
