"""Metrics as pure functions (``evaluate/<modality>.py``); each family's report is ``Family.evaluate``."""

from __future__ import annotations

from typing import Any


def evaluate_run(run, **kwargs: Any) -> dict[str, Any]:
    """The family's report on its held-out split, labelled with the run."""
    report = run.model.evaluate(run.data, **kwargs)
    return {"run": str(run.path), "family": run.config.family, "dataset": run.config.dataset, **report}
