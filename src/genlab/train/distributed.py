"""Which process this is when training runs in several (``torchrun``): everything that writes asks ``is_main``.

Without ``torch.distributed`` initialised there is one process, and it is the main one.
"""

from __future__ import annotations


def rank() -> int:
    """This process's rank among all training processes (0 when there is one)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """How many processes train together (1 when there is one)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Whether this process writes: checkpoints, weights, metrics, previews, cards, energy records."""
    return rank() == 0
