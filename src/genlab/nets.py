"""Small helpers every network user needs once: eval mode and back, batches to a device, parameter counts, private
seeded generators, spherical interpolation, EMA weights, channels-last convolution inputs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


@contextlib.contextmanager
def eval_mode(*nets: torch.nn.Module, grad: bool = False) -> Iterator[None]:
    """Dropout and batch-norm updates off inside the block (and no gradients unless ``grad``); each network's
    former mode is restored after it, so a frozen EMA copy stays in eval mode."""
    modes = [net.training for net in nets]
    for net in nets:
        net.eval()
    try:
        with torch.set_grad_enabled(grad):
            yield
    finally:
        for net, mode in zip(nets, modes):
            net.train(mode)


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (a tensor, or tuples and lists of them) on ``device``."""
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    return batch


def n_params(*nets: torch.nn.Module) -> int:
    """Parameters of the networks (a tensor shared between them, e.g. tied embeddings, counted once)."""
    seen = {id(p): p.numel() for net in nets for p in net.parameters()}
    return sum(seen.values())


MAX_SEED = 2**63 - 1


def check_seed(seed: int | None) -> None:
    """A seed is None (fresh entropy) or an integer PyTorch can take, 0 to 2**63 - 1."""
    from genlab.errors import BadArgument

    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise BadArgument("seed", f"must be an integer from 0 to {MAX_SEED}, got {seed!r}")


def seeded_generator(seed: int | None) -> torch.Generator:
    """A private CPU generator: seeded, or from OS entropy when seed is None (the global RNG is never touched)."""
    check_seed(seed)
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from ``a`` to ``b`` (any shape, same shape) at fractions ``t`` (S,) -> (S, *a.shape).

    Gaussian latents keep a typical norm along the path (a straight line passes near the origin); when ``a`` and
    ``b`` are (nearly) parallel the straight line is the same path and is used.
    """
    t = t.reshape(-1).to(a.dtype)
    shape = (-1,) + (1,) * a.dim()
    cos = torch.dot(a.flatten(), b.flatten()) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-4:
        return torch.lerp(a[None], b[None], t.view(shape))
    wa = (torch.sin((1 - t) * omega) / torch.sin(omega)).view(shape)
    wb = (torch.sin(t * omega) / torch.sin(omega)).view(shape)
    return wa * a + wb * b


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, step: int, decay: float) -> None:
    """EMA of ``net``'s weights into ``ema``, warmed up as min(decay, (1 + step) / (10 + step)); buffers copied."""
    decay = min(decay, (1 + step) / (10 + step))  # short runs average over fewer steps
    for e, p in zip(ema.parameters(), net.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), net.buffers()):
        e.copy_(b)


def channels_last_convs(net: torch.nn.Module) -> None:
    """Give every Conv2d of ``net`` its input in channels-last layout: 1.3x faster training steps on CPU (oneDNN).

    The weights keep the default layout: the loop's fused AdamW restores its moments in that layout on resume, and
    moments whose layout differs from their parameter's are silently paired with the wrong elements.
    """
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_pre_hook(_channels_last)


def _channels_last(module: torch.nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
