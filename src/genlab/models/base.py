"""The family contract: what every model family provides, and the template methods built on it.

A family is one file in ``models/`` with a ``Family`` subclass and a registry entry. It says how to build its
networks, how one training step goes (a ``loss`` for a family with one optimizer, or a list of ``Phase``s:
discriminator then generator for a GAN), what to do after each step (an EMA update for diffusion), how to measure
validation loss and how to sample. The one training loop (``train/loop.py``) does the rest: optimizers, precision, accumulation,
clipping, schedules, checkpoints, resume, logging.

Usage follows scikit-learn: construct (stores the config), ``fit(data) -> self``, ``sample(n, *, seed=None)``.
Learned state ends in ``_``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file

from genlab.errors import GenlabError
from genlab.files import atomic_write, atomic_write_bytes
from genlab.version import genlab_version

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Phase:
    """One optimizer update inside a training step."""

    optimizer: str  # name of the optimizer this phase steps (a key of Family.param_groups())
    loss: Callable[[Any], tuple[torch.Tensor, dict[str, Any]]]  # batch -> (loss, metrics: floats or 0-d tensors)
    batch_size: int | None = None  # examples per micro-batch (None = train.batch_size)
    counts_units: bool = True  # count its examples in throughput (False for a GAN's generator phase)


class Family:
    """Base class of every model family."""

    name: ClassVar[str]  # registry name, e.g. "gpt"
    modality: ClassVar[str]  # data modality, e.g. "text"
    Config: ClassVar[type]  # the family's config dataclass
    unit: ClassVar[str] = "ex"  # what throughput counts: "tok" for text, "img" for images
    train_defaults: ClassVar[dict[str, Any]] = {}  # the family's own [train] defaults, e.g. GAN betas
    generates: ClassVar[bool] = True  # makes new content through `sample` (bert only fills masks and embeds)

    def __init__(self, config: Any) -> None:
        self.config = config

    # -- data -----------------------------------------------------------------------------------------------------
    @staticmethod
    def data_config_class() -> type:
        raise NotImplementedError

    @staticmethod
    def prepare_data(source: Any, data_config: Any, folder: Path) -> Any:
        """First use of a dataset: split it, fit its tokenizer or scaler, and cache it in ``folder``."""
        raise NotImplementedError

    @staticmethod
    def load_data(data_config: Any, folder: Path) -> Any:
        """Reopen what ``prepare_data`` cached."""
        raise NotImplementedError

    # -- networks -------------------------------------------------------------------------------------------------
    def build(self, data: Any, *, seed: int) -> None:
        """Create fresh networks (``self.networks_``) for this data, seeded without touching global RNG."""
        raise NotImplementedError

    def architecture(self) -> dict[str, Any]:
        """What must match for weights to load: the config plus data-given sizes such as the vocabulary."""
        return {"family": self.name, **dataclasses.asdict(self.config)}

    def param_groups(self, weight_decay: float) -> dict[str, list[dict[str, Any]]]:
        """Optimizer name -> AdamW parameter groups. Default: one optimizer, no decay on biases and norms."""
        return {"model": decay_groups(self.networks_["model"], weight_decay)}

    # -- training -------------------------------------------------------------------------------------------------
    def loss(self, batch: Any) -> torch.Tensor:
        """The objective of a family with one optimizer; the default ``phases`` and ``validation_loss`` use it."""
        raise NotImplementedError

    def phases(self, data: Any) -> list[Phase]:
        """One optimizer step per training step on ``loss``; a GAN overrides this with its two phases."""

        def step(batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
            value = self.loss(batch)
            return value, {"train_loss": value.detach()}

        return [Phase("model", step)]

    def after_step(self, step: int) -> None:
        """Called after every optimizer step (e.g. to update EMA weights)."""

    def batch_units(self, batch: Any) -> int:
        """How many ``unit``s a batch holds, for throughput."""
        return len(batch[0])

    @torch.no_grad()
    def validation_loss(self, batch: Any) -> float:
        return float(self.loss(batch))

    def evaluate(self, data: Any, **kwargs: Any) -> dict[str, Any]:
        """The family's metrics on the held-out split."""
        raise NotImplementedError

    def preview(self, step: int, folder: Path) -> None:
        """Write a few samples to ``folder`` so the user can watch learning."""

    def fit(self, data: Any, train: Any = None, *, run_dir: Path | None = None, progress: bool = False) -> Family:
        """Train on ``data`` with the one training loop; returns self."""
        from genlab.config import TrainConfig
        from genlab.train.loop import Trainer

        train = train or TrainConfig()
        if not hasattr(self, "networks_"):
            self.build(data, seed=train.seed)
        Trainer(self, data, train, run_dir=run_dir, progress=progress).run()
        return self

    # -- saving ---------------------------------------------------------------------------------------------------
    def extra_files(self, folder: Path) -> None:
        """Write what the family needs besides weights and config: a family with a tokenizer (``tokenizer_``, a
        Hugging Face ``tokenizers.Tokenizer``) saves it as ``tokenizer.json``."""
        tokenizer = getattr(self, "tokenizer_", None)
        if tokenizer is not None:
            atomic_write_bytes(folder / "tokenizer.json", tokenizer.to_str().encode("utf-8"))

    def save(self, folder: Path) -> None:
        """``config.json`` + ``model.safetensors`` (+ the family's extra files), each written atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"{name}.{k}": v.detach().cpu().contiguous().clone()
            for name, net in self.networks_.items()
            for k, v in net.state_dict().items()
        }
        atomic_write(folder / MODEL_FILE, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
        info = {"genlab_version": genlab_version(), "architecture": self.architecture()}
        atomic_write_bytes(folder / CONFIG_FILE, json.dumps(info, indent=2).encode())
        self.extra_files(folder)

    def load_weights(self, folder: Path) -> None:
        path = folder / MODEL_FILE
        if not path.is_file():
            raise GenlabError(f"{folder}: no {MODEL_FILE}; the run has not saved a model yet")
        try:
            tensors = load_file(str(path))
        except Exception as e:  # safetensors raises its own error type for truncated headers
            raise GenlabError(f"{path} is truncated or corrupted ({e})") from None
        for name, net in self.networks_.items():
            prefix = f"{name}."
            net.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            net.eval()


def seeded_generator(seed: int | None) -> torch.Generator:
    """A private CPU generator: seeded, or from OS entropy when seed is None (the global RNG is never touched)."""
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def decay_groups(module: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices (dim >= 2) only, as nanoGPT does; biases and norm gains are not decayed."""
    seen: set[int] = set()
    decay, no_decay = [], []
    for p in module.parameters():
        if not p.requires_grad or id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
