"""What one training step costs in compute: ``flops_per_step``, PyTorch's ``FlopCounterMode`` on real batches.

It runs one forward and backward of each of the family's ``Phase`` losses on one real batch (matrix products,
convolutions and attention; no element-wise operations), so it works for every family with no per-family code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from genlab.nets import to_device

FLOPS_SEED_OFFSET = 4099  # the FLOP count's batch comes from its own stream, never the training batches'


def flops_per_step(family: Any, data: Any, train_config: Any, *, device: torch.device | None = None,
                   autocast: Callable[[], contextlib.AbstractContextManager] | None = None) -> float:
    """FLOPs of one optimizer step: each ``Phase``'s forward + backward on one real batch, times ``grad_accum``.

    Counted by ``FlopCounterMode`` (matrix products, convolutions, attention), so it holds for every family.
    Nothing is changed: batches come from a private seeded generator, the global RNG is forked, and buffers
    (batch-norm statistics), ``requires_grad`` flags and gradients are put back as they were.
    """
    nets = family.networks_
    params = [p for net in nets.values() for p in net.parameters()]
    device = device or (params[0].device if params else torch.device("cpu"))
    autocast = autocast or contextlib.nullcontext
    saved_flags = [(p, p.requires_grad, p.grad) for p in params]
    saved_buffers = [(b, b.detach().clone()) for net in nets.values() for b in net.buffers()]
    g = torch.Generator().manual_seed(train_config.seed + FLOPS_SEED_OFFSET)
    total = 0
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            for phase in family.phases(data):
                batch = to_device(data.batch("train", phase.batch_size or train_config.batch_size, g), device)
                for p in params:
                    p.grad = None
                with _flop_counter() as counter:
                    with autocast():
                        loss, _ = phase.loss(batch)
                    loss.backward()
                total += counter.get_total_flops()
    finally:
        with torch.no_grad():
            for b, value in saved_buffers:
                b.copy_(value)
        for p, flag, grad in saved_flags:
            p.requires_grad_(flag)
            p.grad = grad
    return float(total * train_config.grad_accum)


class _GlobalOnly:
    """Stands in for ``FlopCounterMode``'s per-module tracker, whose backward hooks break ``torch.autograd.grad``
    inside the counted region (a WGAN-GP gradient penalty); only the global total is needed here."""

    parents = frozenset({"Global"})

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def _flop_counter() -> Any:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_cpu_attention_formulas())
    if hasattr(counter, "mod_tracker"):
        counter.mod_tracker = _GlobalOnly()
    return counter


def _cpu_attention_formulas() -> dict[Any, Any]:
    """PyTorch counts fused attention on CUDA but not its CPU kernel; the same formulas (the full T x T score
    matrix, as on CUDA, causal or not) fill the gap, so a CPU and a GPU run of one model report the same FLOPs."""
    from torch.utils import flop_counter as fc

    def forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_backward_flop_count(grad_out, query, key, value)

    mapping = {}
    for name, formula in (("_scaled_dot_product_flash_attention_for_cpu", forward),
                          ("_scaled_dot_product_flash_attention_for_cpu_backward", backward)):
        op = getattr(torch.ops.aten, name, None)
        if op is not None and op not in fc.flop_registry and hasattr(fc, "sdpa_flop_count"):
            mapping[op] = formula
    return mapping
