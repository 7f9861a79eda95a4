"""Memory estimates, checked before anything large is allocated.

A size that comes from a setting, a run folder or a request (``--set model.n_embd=1048576``, a ``data/meta.json``
edited to a 50 M vocabulary, ``--n 5000 --max-new-tokens 10000000``) is turned into bytes first and refused with the
figure when it does not fit, instead of asking the allocator for terabytes::

    require(model_bytes(family, data, seed=0, training=True), "training this model", "choose smaller [model] settings")

Networks are counted by building them on PyTorch's "meta" device: every shape is real, no memory is used.
"""

from __future__ import annotations

from typing import Any

import torch

from genlab.errors import GenlabError
from genlab.numbers import size as size_text

# Bytes per parameter while training with AdamW in fp32: the weight, its gradient and two moment estimates.
TRAIN_BYTES_PER_PARAM = 16
INFER_BYTES_PER_PARAM = 4
HEADROOM = 0.9  # share of the memory available now that one allocation may plan to use


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Memory free for this process on ``device`` now (RAM: what the system can give without swapping)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def require(nbytes: float, what: str, hint: str, *, device: torch.device | str = "cpu") -> None:
    """Refuse, with both figures, work whose estimate does not fit in the memory available on ``device``."""
    have = available_bytes(device)
    if nbytes > HEADROOM * have:
        where = "GPU memory" if torch.device(device).type == "cuda" else "memory"
        raise GenlabError(f"{what} needs about {size_text(nbytes)}, more than the {size_text(have)} of {where} "
                          f"available; {hint}")


def count_params(family: Any, data: Any, *, seed: int) -> int:
    """Parameters ``family`` would build for ``data``, counted on the meta device (no memory used, nothing kept)."""
    probe = type(family)(family.config, parent=family.parent, modality=family.modality)
    with torch.device("meta"):
        probe.build(data, seed=seed)
    nets = [*probe.networks_.values(), *getattr(probe, "frozen_", {}).values()]
    seen: set[int] = set()
    total = 0
    for net in nets:
        for p in net.parameters():
            if id(p) not in seen:  # tied weights count once
                seen.add(id(p))
                total += p.numel()
    return total


def check_model_fits(family: Any, data: Any, *, seed: int, training: bool, device: torch.device | str = "cpu") -> int:
    """Refuse a model whose weights (and, when training, gradients and AdamW state) do not fit; returns its size."""
    n = count_params(family, data, seed=seed)
    per = TRAIN_BYTES_PER_PARAM if training else INFER_BYTES_PER_PARAM
    doing = "training" if training else "loading"
    require(n * per, f"{doing} this {family.name} model ({n:,} parameters)",
            "choose smaller [model] settings (genlab config show " + family.name + ")" if training else
            "the run folder's settings ask for more than this machine has (was config.toml or data/ edited?)",
            device=device)
    return n
