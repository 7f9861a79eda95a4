"""How families and callbacks plug into the one training loop: ``Phase``, the loop's named events, ``unwrap``.

A family says how one training step goes as a list of ``Phase``s (a loss per optimizer). Anything else that wants
to follow or steer training subscribes to the loop's events by defining methods named after them; each receives
the ``Trainer`` first, so it can read ``trainer.family``, ``trainer.data``, ``trainer.config``,
``trainer.device``, ``trainer.precision``, ``trainer.step``, ``trainer.start_step`` and ``trainer.run_dir``::

    on_train_start(trainer)                     networks, optimizers and a resumed state are ready
    on_step_end(trainer, step, logs)            after each optimizer step, its validation and checkpoint
    on_log(trainer, record)                     each line written to metrics.jsonl (a dict of floats by name)
    on_validation(trainer, step, val_loss)      after each validation estimate
    on_checkpoint(trainer, step)                after each checkpoint is written
    on_train_end(trainer, status, summary)      "completed", "interrupted" (Ctrl-C) or "failed (Error)"

A plain function ``(trainer, step, logs)`` subscribes to ``step_end``. Raising ``KeyboardInterrupt`` from a
callback stops training as Ctrl-C does: a checkpoint at the current step, then ``train_end("interrupted")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

EVENTS = ("train_start", "step_end", "log", "validation", "checkpoint", "train_end")


@dataclass(frozen=True)
class Phase:
    """One optimizer update inside a training step."""

    optimizer: str  # name of the optimizer this phase steps (a key of the family's optimizers)
    loss: Callable[[Any], tuple[torch.Tensor, dict[str, Any]]]  # batch -> (loss, metrics: floats or 0-d tensors)
    batch_size: int | None = None  # examples per micro-batch (None = train.batch_size)
    counts_units: bool = True  # count its examples in throughput (False for a GAN's generator phase)


class Callback:
    """Base of a subscriber to the loop's events; override the ones you need."""

    def on_train_start(self, trainer: Any) -> None: ...

    def on_step_end(self, trainer: Any, step: int, logs: dict[str, Any]) -> None: ...

    def on_log(self, trainer: Any, record: dict[str, float]) -> None: ...

    def on_validation(self, trainer: Any, step: int, val_loss: float) -> None: ...

    def on_checkpoint(self, trainer: Any, step: int) -> None: ...

    def on_train_end(self, trainer: Any, status: str, summary: dict[str, Any]) -> None: ...


class OnStep(Callback):
    """A plain ``(trainer, step, logs)`` function, subscribed to ``step_end``."""

    def __init__(self, fn: Callable[[Any, int, dict[str, Any]], None]) -> None:
        self.fn = fn

    def on_step_end(self, trainer: Any, step: int, logs: dict[str, Any]) -> None:
        self.fn(trainer, step, logs)


def as_callback(obj: Any) -> Any:
    """A subscriber: an object with ``on_<event>`` methods as it is, a plain function as ``OnStep``."""
    if any(callable(getattr(obj, f"on_{e}", None)) for e in EVENTS):
        return obj
    if callable(obj):
        return OnStep(obj)
    raise TypeError(f"{obj!r} is neither a callable nor has on_<event> methods ({', '.join(EVENTS)})")


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The network inside a training wrapper (DistributedDataParallel, Opacus' GradSampleModule, torch.compile),
    whose parameter names are the ones saved."""
    while True:
        inner = None
        for attr in ("module", "_module", "_orig_mod"):
            candidate = getattr(net, attr, None)
            if isinstance(candidate, torch.nn.Module):
                inner = candidate
                break
        if inner is None:
            return net
        net = inner
