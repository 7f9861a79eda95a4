"""The training progress bar: step, loss, throughput and ETA, drawn with Rich."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from genlab.numbers import rate as rate_text


class TrainProgress:
    def __init__(self, total: int, start: int, unit: str, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.unit = unit
        if not enabled:
            return
        self.console = Console(stderr=True, markup=False)
        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.bar.add_task("train", total=total, completed=start, info="")

    def __enter__(self) -> TrainProgress:
        if self.enabled:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)

    def update(self, step: int, logs: dict[str, float], rate: float) -> None:
        if not self.enabled:
            return
        parts = [f"{k.replace('_loss', '')} {v:.3f}" for k, v in logs.items() if k.endswith("loss")]
        info = " ".join(parts) + f"  {rate_text(rate)} {self.unit}/s"
        self.bar.update(self.task, completed=step, info=info)

    def note(self, text: str) -> None:
        if self.enabled:
            self.bar.console.print(text)

