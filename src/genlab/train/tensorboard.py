"""TensorBoard event files beside ``metrics.jsonl``: every logged figure as a scalar, by step.

A training-loop subscriber (``on_log``), through ``torch.utils.tensorboard`` (which needs the ``tensorboard``
package). ``tensorboard --logdir runs/`` then shows every run in a folder, one curve per figure. Losses go under
``loss/`` (``loss/train_loss``, ``loss/val_loss``), the rest under ``train/`` (learning rate, gradient norm,
throughput). A resumed session drops the events after its checkpoint's step, as ``metrics.jsonl`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genlab.train.hooks import Callback


def available() -> bool:
    """Whether event files can be written here (the ``tensorboard`` package is installed)."""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


class TensorBoard(Callback):
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.writer: Any = None

    def on_train_start(self, trainer: Any) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: events of steps after the checkpoint this session resumes from are dropped
        self.writer = SummaryWriter(str(self.folder), purge_step=trainer.start_step or None, flush_secs=30)

    def on_log(self, trainer: Any, record: dict[str, float]) -> None:
        if self.writer is None:
            return
        step = int(record.get("step", trainer.step))
        for key, value in record.items():
            if key in ("step", "elapsed_s") or not isinstance(value, (int, float)):
                continue
            self.writer.add_scalar(f"loss/{key}" if key.endswith("loss") else f"train/{key}", value, step)

    def on_train_end(self, trainer: Any, status: str, summary: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
