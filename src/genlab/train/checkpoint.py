"""Checkpoints: one safetensors file holding weights, optimizer state, RNG state and the step, written atomically.

Everything is tensors plus a JSON header, so loading runs no code (no pickle). A SHA-256 of all tensor bytes is
kept in the header: a truncated or corrupted file is refused with a clear message instead of resuming from
garbage. Resuming refuses a checkpoint whose architecture differs from the one being trained.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genlab.errors import GenlabError
from genlab.files import atomic_write

FORMAT = "genlab-checkpoint-1"


def save_checkpoint(
    path: Path,
    *,
    step: int,
    architecture: dict[str, Any],
    networks: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    rng: dict[str, torch.Tensor],
    extra: dict[str, Any],
) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for name, net in networks.items():
        for k, v in net.state_dict().items():
            tensors[f"net.{name}.{k}"] = v
    optim_meta = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, state in sd["state"].items():
            for k, v in state.items():
                if torch.is_tensor(v):
                    tensors[f"optim.{name}.{idx}.{k}"] = v
                else:
                    scalars.setdefault(str(idx), {})[k] = v
        optim_meta[name] = {"param_groups": sd["param_groups"], "scalars": scalars}
    for k, v in rng.items():
        tensors[f"rng.{k}"] = v
    # safetensors refuses tensors that share memory (tied embeddings): store contiguous copies.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {
        "format": FORMAT,
        "step": str(step),
        "architecture": json.dumps(architecture, sort_keys=True),
        "optimizers": json.dumps(optim_meta),
        "extra": json.dumps(extra),
        "sha256": _digest(tensors),
    }
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Return (header, tensors), or an error if the file is missing, truncated or corrupted."""
    if not path.is_file():
        raise GenlabError(f"{path}: no checkpoint to resume from; train without --resume")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise GenlabError(f"{path} is truncated or corrupted ({e}); delete the run or train from scratch") from None
    if header.get("format") != FORMAT:
        raise GenlabError(f"{path} is not a genlab checkpoint (format {header.get('format')!r})")
    if _digest(tensors) != header.get("sha256"):
        raise GenlabError(f"{path} is corrupted (its checksum does not match); delete the run or train from scratch")
    return header, tensors


def check_architecture(path: Path, header: dict[str, Any], architecture: dict[str, Any]) -> None:
    saved = json.loads(header["architecture"])
    architecture = json.loads(json.dumps(architecture, sort_keys=True))  # tuples read back as lists
    if saved != architecture:
        diffs = [
            f"{k}: checkpoint {saved.get(k)!r}, now {architecture.get(k)!r}"
            for k in sorted(set(saved) | set(architecture))
            if saved.get(k) != architecture.get(k)
        ]
        raise GenlabError(f"cannot resume {path}: the architecture differs ({'; '.join(diffs[:4])})")


def check_resumable(path: Path, architecture: dict[str, Any]) -> None:
    """Refuse, from its header alone (before anything is written), a checkpoint that cannot be resumed here."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise GenlabError(f"{path} is truncated or corrupted ({e}); delete the run or train from scratch") from None
    if header.get("format") != FORMAT or "architecture" not in header:
        raise GenlabError(f"{path} is not a genlab checkpoint (format {header.get('format')!r})")
    try:
        check_architecture(path, header, architecture)
    except ValueError as e:
        if isinstance(e, GenlabError):
            raise
        raise GenlabError(f"{path} has a damaged header ({e}); delete the run or train from scratch") from None


def restore(
    header: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    networks: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
) -> dict[str, torch.Tensor]:
    """Load weights and optimizer state in place; return the RNG tensors."""
    for name, net in networks.items():
        prefix = f"net.{name}."
        net.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    optim_meta = json.loads(header["optimizers"])
    for name, opt in optimizers.items():
        meta = optim_meta[name]
        state: dict[int, dict[str, Any]] = {}
        prefix = f"optim.{name}."
        for k, v in tensors.items():
            if k.startswith(prefix):
                idx, key = k[len(prefix) :].split(".", 1)
                state.setdefault(int(idx), {})[key] = v
        for idx, scalars in meta["scalars"].items():
            state.setdefault(int(idx), {}).update(scalars)
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode())
        t = tensors[k]
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint file holds (its header only), or None when there is no readable checkpoint."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return int((f.metadata() or {})["step"])
    except Exception:
        return None
