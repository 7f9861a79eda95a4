"""Runs: a run is a folder holding everything about one trained model.

::

    RUN/
      config.toml           the full configuration (family, dataset, [model], [data], [train])
      config.json           the architecture, as needed to rebuild the network
      model.safetensors     the weights
      tokenizer.json        text families: the tokenizer
      checkpoint.safetensors  weights + optimizer + RNG state + step, for --resume
      release.json          the run id and the text watermark's secret key (made once)
      metrics.jsonl         one JSON object per log line (train loss, lr, throughput) or validation
      loss.png              training and validation loss curves
      eval.json             the last `genlab eval` report
      energy.json           time, FLOPs and energy of each training session
      audit.json            the last `genlab audit` report (audit/: its pictures)
      README.md             the model card
      samples/              previews written during training
      data/                 the tokenized splits (memory-mapped)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from genlab import config as cfgmod
from genlab.errors import GenlabError
from genlab.models import Family, get_family
from genlab.train.loop import CHECKPOINT_FILE, METRICS_FILE, read_metrics

CONFIG_TOML = "config.toml"
EVAL_FILE = "eval.json"
AUDIT_FILE = "audit.json"
AUDIT_DIR = "audit"
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

    @cached_property
    def release(self):
        """The release layer: watermarks this run's outputs and signs the files they go to."""
        from genlab.responsible.release import Release

        return Release(self)

    def sample(self, n: int = 1, *, watermark: bool | None = None, **kwargs: Any) -> Any:
        """The family's samples, watermarked as ``[release]`` says (``watermark=False`` to turn it off)."""
        return self.release.sample(n, watermark=watermark, **kwargs)

    def vary(self, image: Any, n: int, *, watermark: bool | None = None, **kwargs: Any) -> Any:
        """Variations of the user's image (families with ``vary``), watermarked like samples."""
        vary = getattr(self.model, "vary", None)
        if vary is None:
            raise GenlabError(f"the {self.config.family} family cannot make variations of an image")
        return self.release.mark(vary(image, n, **kwargs), watermark=watermark)

    def interpolate(self, steps: int, *, watermark: bool | None = None, **kwargs: Any) -> Any:
        """Frames walking the latent space (families with ``interpolate``), watermarked like samples."""
        interpolate = getattr(self.model, "interpolate", None)
        if interpolate is None:
            raise GenlabError(f"the {self.config.family} family has no latent space to interpolate in")
        return self.release.mark(interpolate(steps, **kwargs), watermark=watermark)

    def evaluate(self, *, save: bool = True, **kwargs: Any) -> dict[str, Any]:
        """The family's report on the held-out split; kept in ``eval.json`` for the model card."""
        from genlab.evaluate import evaluate_run

        report = evaluate_run(self, **kwargs)
        if save:
            write_summary_json(self.path / EVAL_FILE, report)
            self.write_card()
        return report

    def audit(self, *, n: int | None = None, seed: int = 0, save: bool = True) -> dict[str, Any]:
        """Memorisation and bias audit of this run's outputs; kept in ``audit.json`` (pictures in ``audit/``).

        ``n`` samples (default 64 texts, or 500 images: nearest-neighbour statistics need a few hundred).
        """
        from genlab.responsible.audit import audit_run

        n = n if n is not None else (500 if self.model.modality == "image" else 64)
        report = audit_run(self, n=n, seed=seed, out=self.path / AUDIT_DIR if save else None)
        if save:
            write_summary_json(self.path / AUDIT_FILE, report)
            self.write_card()
        return report

    def write_card(self) -> Path:
        """Write the model card ``README.md`` from what the run has measured so far."""
        from genlab.responsible.card import write_card

        return write_card(self.path)

    def detect(self, content: Any, **kwargs: Any) -> Any:
        """Look for this run's watermark: text -> ``Detection`` (z-scores), image array -> ``ImageMark``."""
        marks = self.release.marks
        if marks is None:
            raise GenlabError(f"{self.config.family} outputs carry no watermark yet")
        return marks.detect(content, **kwargs)

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
