"""The family contract: what every model family provides, and the template methods built on it.

A family is one file in ``models/`` with a ``Family`` subclass, named in ``genlab.registry.FAMILIES``. It names its
modality (``modality = "text"``: the plugin that owns its data, outputs, watermark, audit and card text), says how
to build its networks, how one training step goes (a ``loss`` for a family with one optimizer, or a list of
``Phase``s: discriminator then generator for a GAN), what to do after each step (an EMA update for diffusion), how
to measure validation loss and how to sample. The one training loop (``train/loop.py``) does the rest.

Hooks for families that need more: ``optimizers`` (make your own, e.g. DP-SGD), ``wrap`` (train a wrapped
network, e.g. Opacus' GradSampleModule; saved names stay the inner network's), ``frozen_`` (networks used but never
optimized or saved: a teacher, the base of an adapter), ``iterative = False`` with ``solve`` (a closed-form fit: no
gradient steps), ``parent`` (the run a family builds on: fine-tuning, distillation).

Usage follows scikit-learn: construct (stores the config), ``fit(data) -> self``, ``sample(n, *, seed=None,
**options) -> Outputs``. Learned state ends in ``_``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file

from genlab import registry
from genlab.errors import GenlabError
from genlab.files import atomic_write, atomic_write_bytes
from genlab.runfiles import CONFIG_JSON, MODEL_FILE, TOKENIZER_FILE
from genlab.train.hooks import Phase, unwrap
from genlab.version import genlab_version


class Family:
    """Base class of every model family."""

    name: ClassVar[str]  # registry name, e.g. "gpt"
    modality: ClassVar[str]  # registry name of its own modality, e.g. "text" (a run's may be another, see below)
    data_interface: ClassVar[str]  # what its data offers it: "tokens", "token-pairs", "images" (a modality's feeds)
    Config: ClassVar[type]  # the family's config dataclass
    train_defaults: ClassVar[dict[str, Any]] = {}  # the family's own [train] defaults, e.g. GAN betas
    generates: ClassVar[bool] = True  # makes new content through `sample` (bert only fills masks and embeds)
    iterative: ClassVar[bool] = True  # trained by gradient steps; False: fitted once by `solve`
    supports_privacy: ClassVar[bool] = False  # trains under a [privacy] budget (``responsible/privacy.py``)
    uses_parent: ClassVar[bool] = False  # builds on a parent run (fine-tuning, distillation): `train(parent=RUN)`
    parent_relation: ClassVar[str] = "made from"  # how a model card names the relation, e.g. "distilled from"
    hints: ClassVar[tuple[str, ...]] = ()  # commands that work on any run of it, beside sample and eval ({run})
    cites: ClassVar[str] = ""  # the paper(s) its architecture and objective come from, for model cards
    export_hint: ClassVar[str] = ""  # how an exported folder ({path}) is loaded without genlab
    export_usage: ClassVar[str] = ""  # a few lines of Python that use an exported folder ({path}), for its README
    example: ClassVar[dict[str, Any]] = {}  # its smallest settings, {"set": [overrides]}, on its modality's example data

    @classmethod
    def check_parent(cls, parent: Any) -> None:
        """Refuse a parent run (its config, a ``RunConfig``) this family cannot build on; families with
        ``uses_parent`` say which (``api.train`` asks before anything is read or made)."""

    def __init__(self, config: Any, *, parent: Any = None, modality: str | None = None, privacy: Any = None) -> None:
        from genlab.config import PrivacyConfig

        self.config = config
        self.privacy = privacy if privacy is not None else PrivacyConfig()  # [privacy]: a DP budget, or none
        self.parent = parent  # the loaded run this one builds on (fine-tuning, distillation), or None
        self.modality = modality or type(self).modality  # the run's kind of data: any whose data feeds the family

    @property
    def unit(self) -> str:
        """What training throughput counts (the modality's unit: "tok", "img")."""
        return registry.get_modality(self.modality).unit

    # -- data: the run's modality prepares it; any modality that feeds ``data_interface`` will do -------------------
    @classmethod
    def data_config_class(cls, modality: str | None = None) -> type:
        return registry.get_modality(modality or cls.modality).DataConfig

    @classmethod
    def prepare_data(cls, source: Any, data_config: Any, folder: Path, *, modality: str | None = None) -> Any:
        """First use of a dataset: the modality's preparation (a family may add to it, as bert adds [MASK])."""
        return registry.get_modality(modality or cls.modality).prepare(source, data_config, folder)

    @classmethod
    def load_data(cls, data_config: Any, folder: Path, *, modality: str | None = None) -> Any:
        """Reopen what ``prepare_data`` cached."""
        return registry.get_modality(modality or cls.modality).load(data_config, folder)

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

    def optimizers(self, train: Any, device: torch.device) -> dict[str, torch.optim.Optimizer]:
        """Optimizer name -> optimizer; the loop sets each step's learning rate. Default: AdamW on ``param_groups``."""
        fused = {"fused": True} if device.type in ("cpu", "cuda") else {}  # one kernel for all parameters: 5-10%
        return {name: torch.optim.AdamW(groups, lr=train.lr, betas=(train.beta1, train.beta2), **fused)
                for name, groups in self.param_groups(train.weight_decay).items()}

    def wrap(self, name: str, net: torch.nn.Module) -> torch.nn.Module:
        """The module the training steps run for network ``name`` (default: itself): e.g. Opacus' GradSampleModule.

        Only the loss sees it; validation, previews, sampling and saving use the network itself, so saved names stay.
        """
        return net

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

    def solve(self, data: Any) -> None:
        """Fit in one go (families with ``iterative = False``): closed form, counts, no gradient steps."""
        raise NotImplementedError

    @torch.no_grad()
    def validation_loss(self, batch: Any) -> float:
        return float(self.loss(batch))

    def evaluate(self, data: Any, **kwargs: Any) -> dict[str, Any]:
        """The family's metrics on the held-out split."""
        raise NotImplementedError

    def preview(self, step: int, folder: Path) -> None:
        """Write a few samples to ``folder`` so the user can watch learning."""

    def fit(self, data: Any, train: Any = None, *, run_dir: Path | None = None, progress: bool = False,
            resume: bool = False, callbacks: Any = ()) -> Family:
        """Train on ``data`` with the one training loop (or ``solve`` for a non-iterative family); returns self.

        The loop's summary (steps, losses, time) is kept as ``fit_summary_``.
        """
        from genlab.config import TrainConfig
        from genlab.train.loop import Trainer

        train = train or TrainConfig()
        if not hasattr(self, "networks_"):
            self.build(data, seed=train.seed)
        trainer = Trainer(self, data, train, run_dir=run_dir, resume=resume, progress=progress, callbacks=callbacks)
        self.fit_summary_ = trainer.run()
        return self

    # -- sampling -------------------------------------------------------------------------------------------------
    def sample(self, n: int = 1, *, seed: int | None = None, **options: Any) -> Any:
        """``n`` outputs (the modality's ``Outputs``); the same seed gives the same outputs."""
        raise GenlabError(f"the {self.name} family does not generate")

    # -- exporting ------------------------------------------------------------------------------------------------
    def export(self, folder: Path) -> None:
        """Write into ``folder`` what loads without genlab (transformers, diffusers, or PyTorch alone)."""
        raise GenlabError(f"the {self.name} family has no export format yet")

    def usage(self, path: str) -> str:
        """Python that uses an export of this model in ``path`` (for the export's README)."""
        return self.export_usage.format(path=path)

    # -- saving ---------------------------------------------------------------------------------------------------
    def extra_files(self, folder: Path) -> None:
        """Write what the family needs besides weights and config: a family with a tokenizer (``tokenizer_``, a
        Hugging Face ``tokenizers.Tokenizer``) saves it as ``tokenizer.json``."""
        tokenizer = getattr(self, "tokenizer_", None)
        if tokenizer is not None:
            atomic_write_bytes(folder / TOKENIZER_FILE, tokenizer.to_str().encode("utf-8"))

    def save(self, folder: Path) -> None:
        """``config.json`` + ``model.safetensors`` (+ the family's extra files), each written atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"{name}.{k}": v.detach().cpu().contiguous().clone()
            for name, net in self.networks_.items()
            for k, v in unwrap(net).state_dict().items()
        }
        atomic_write(folder / MODEL_FILE, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
        info = {"genlab_version": genlab_version(), "architecture": self.architecture()}
        atomic_write_bytes(folder / CONFIG_JSON, json.dumps(info, indent=2).encode())
        self.extra_files(folder)

    def load_weights(self, folder: Path) -> None:
        """The weights in ``folder``, refused unless every tensor is there, has its shape and is finite."""
        path = folder / MODEL_FILE
        if not path.is_file():
            raise GenlabError(f"{folder}: no {MODEL_FILE}; the run has not saved a model yet")
        try:
            tensors = load_file(str(path))
        except Exception as e:  # safetensors raises its own error type for truncated headers
            raise GenlabError(f"{path} is truncated or corrupted ({e})") from None
        for name, net in self.networks_.items():
            prefix = f"{name}."
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            check_weights(path, prefix, state, unwrap(net).state_dict())
            unwrap(net).load_state_dict(state)
            net.eval()


def check_weights(path: Path, prefix: str, found: dict[str, torch.Tensor], wanted: dict[str, torch.Tensor]) -> None:
    """Refuse weights that do not fit the network built from the run's config (a tensor missing, extra or of
    another shape) or that are not finite (a diverged run, or an edited file)."""
    damaged = "; the file does not belong to this run's config (was it edited or replaced?)"
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise GenlabError(f"{path} lacks {len(missing)} tensor(s) the model needs ({prefix}{missing[0]} ...){damaged}")
    extra = sorted(set(found) - set(wanted))
    if extra:
        raise GenlabError(f"{path} holds {len(extra)} tensor(s) the model does not have ({prefix}{extra[0]} ...)"
                          f"{damaged}")
    for k, v in found.items():
        if tuple(v.shape) != tuple(wanted[k].shape):
            raise GenlabError(f"{path}: {prefix}{k} has shape {tuple(v.shape)}, the model's is "
                              f"{tuple(wanted[k].shape)}{damaged}")
    bad = [k for k, v in found.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise GenlabError(f"{path}: {len(bad)} of {len(found)} tensors hold NaN or infinite values ({prefix}{bad[0]} "
                          "...); training diverged or the file is damaged: resume from an earlier run or retrain")


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
