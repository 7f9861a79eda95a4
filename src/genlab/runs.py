"""Runs: a run is a folder holding everything about one trained model.

::

    RUN/
      config.toml           the full configuration (family, dataset, [model], [data], [train])
      config.json           the architecture, as needed to rebuild the network
      model.safetensors     the weights
      tokenizer.json        text families: the tokenizer
      checkpoint.safetensors  weights + optimizer + RNG state + step, for --resume
      metrics.jsonl         one JSON object per log line (train loss, lr, throughput) or validation
      loss.png              training and validation loss curves
      samples/              previews written during training
      data/                 the tokenized splits (memory-mapped)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab import config as cfgmod
from genlab.errors import GenlabError
from genlab.models import Family, get_family
from genlab.train.loop import CHECKPOINT_FILE, METRICS_FILE, read_metrics

CONFIG_TOML = "config.toml"
DATA_DIR = "data"


@dataclass
class Run:
    """A trained (or training) run folder, with its family loaded."""

    path: Path
    config: cfgmod.RunConfig
    model: Family  # the family instance, weights loaded
    data: Any  # the modality's data object (e.g. TextData)

    @classmethod
    def load(cls, path: str | Path) -> Run:
        path = Path(path)
        if not (path / CONFIG_TOML).is_file():
            raise GenlabError(f"{path} is not a genlab run (no {CONFIG_TOML}); see `genlab runs`")
        config = read_run_config(path)
        family_cls = get_family(config.family)
        data = family_cls.load_data(config.data, path / DATA_DIR)
        model = family_cls(config.model)
        model.build(data, seed=config.train.seed)
        model.load_weights(path)
        return cls(path, config, model, data)

    def sample(self, n: int = 1, **kwargs: Any) -> list[Any]:
        return self.model.sample(n, **kwargs)

    def evaluate(self, **kwargs: Any) -> dict[str, Any]:
        from genlab.evaluate import evaluate_run

        return evaluate_run(self, **kwargs)

    def export(self, out: str | Path) -> Path:
        from genlab.files import atomic_folder

        out = Path(out)
        if out.exists():
            raise GenlabError(f"{out} already exists; choose a new folder to export to")
        export = getattr(self.model, "export_hf", None)
        if export is None:
            raise GenlabError(f"the {self.config.family} family has no export format yet")
        atomic_folder(out, export)
        return out

    def summary(self) -> dict[str, Any]:
        return summarize(self.path)


def read_run_config(path: Path) -> cfgmod.RunConfig:
    raw = cfgmod.read_toml(path / CONFIG_TOML)
    family_cls = get_family(raw.get("family", "?"))
    return cfgmod.build(
        raw["family"], raw.get("dataset", "?"), family_cls.Config, family_cls.data_config_class(), base=raw
    )


def summarize(path: Path) -> dict[str, Any]:
    """Family, dataset, steps, best validation loss and wall time of a run folder, from its files."""
    raw = cfgmod.read_toml(path / CONFIG_TOML)
    rows = read_metrics(path / METRICS_FILE) if (path / METRICS_FILE).exists() else []
    vals = [r["val_loss"] for r in rows if "val_loss" in r]
    return {
        "run": str(path),
        "family": raw.get("family", "?"),
        "dataset": raw.get("dataset", "?"),
        "steps": max((r.get("step", 0) for r in rows), default=0),
        "max_steps": raw.get("train", {}).get("max_steps"),
        "best_val_loss": min(vals) if vals else math.nan,
        "wall_s": max((r.get("elapsed_s", 0.0) for r in rows), default=0.0),
        "resumable": (path / CHECKPOINT_FILE).is_file(),
    }


def list_runs(folder: str | Path = "runs") -> list[dict[str, Any]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise GenlabError(f"{folder}: no such folder")
    if (folder / CONFIG_TOML).is_file():
        return [summarize(folder)]
    found = sorted(p.parent for p in folder.rglob(CONFIG_TOML))
    return [summarize(p) for p in found]


def write_summary_json(path: Path, data: dict[str, Any]) -> None:
    from genlab.files import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(data, indent=2).encode())
