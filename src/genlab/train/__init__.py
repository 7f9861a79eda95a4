"""The one training loop, precision, checkpoints and resume."""

from genlab.train.loop import Trainer, lr_at

__all__ = ["Trainer", "lr_at"]
