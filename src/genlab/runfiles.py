"""The files of a run folder, by name, in one place; and the small readers every layer uses on them.

::

    RUN/
      config.toml             the full configuration (family, dataset, [model], [data], [train], [release])
      config.json             the architecture, as needed to rebuild the network
      model.safetensors       the weights (the best validation point's with train.keep_best)
      tokenizer.json          families with a tokenizer
      checkpoint.safetensors  weights + optimizer + RNG state + step, for --resume
      release.json            the run id and the text watermark's secret key (made once)
      lineage.json            the parent run this one was made from (fine-tuning, distillation), if any
      metrics.jsonl           one JSON object per log line (train loss, lr, throughput) or validation
      summary.json            how the last training session ended
      loss.png                training and validation loss curves
      eval.json               the last full `genlab eval` report (what the model card shows)
      eval.partial.json       the last partial one (e.g. on the first 20,000 held-out tokens): never replaces it
      energy.json             time, FLOPs and energy of each training session
      audit.json              the last `genlab audit` report (audit/: its pictures)
      README.md               the model card
      samples/                previews written during training, and outputs written by default
      data/                   the prepared data (tokenized splits, image arrays, ...)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

CONFIG_TOML = "config.toml"
CONFIG_JSON = "config.json"
MODEL_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
CHECKPOINT_FILE = "checkpoint.safetensors"
RELEASE_FILE = "release.json"
LINEAGE_FILE = "lineage.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
LOSS_PLOT = "loss.png"
EVAL_FILE = "eval.json"
EVAL_PARTIAL_FILE = "eval.partial.json"
ENERGY_FILE = "energy.json"
AUDIT_FILE = "audit.json"
AUDIT_DIR = "audit"
CARD_FILE = "README.md"
SAMPLES_DIR = "samples"
DATA_DIR = "data"


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing, unreadable or not an object (or not a regular
    file: a FIFO is never opened)."""
    if not Path(path).is_file():
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    from genlab.files import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(data, indent=2).encode())


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` up to the first line cut short by a crash (what follows it is unreliable);
    only numbers are kept (a value of another type, in an edited file, is dropped)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if isinstance(row, dict):
            rows.append({k: v for k, v in row.items() if is_real(v)})
    return rows


def is_real(v: Any) -> bool:
    """A finite or infinite int or float, not a bool (a loss may be NaN: it is kept)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def summarize(path: Path) -> dict[str, Any]:
    """Family, dataset, steps, best validation loss and wall time of a run folder, from its files."""
    from genlab.config import read_toml

    path = Path(path)
    raw = read_toml(path / CONFIG_TOML)
    rows = read_metrics(path / METRICS_FILE) if (path / METRICS_FILE).is_file() else []
    vals = [r["val_loss"] for r in rows if "val_loss" in r and not math.isnan(r["val_loss"])]
    train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    text = lambda v: v if isinstance(v, str) else "?"  # noqa: E731
    return {
        "run": str(path),
        "family": text(raw.get("family", "?")),
        "dataset": text(raw.get("dataset", "?")),
        "steps": max((r.get("step", 0) for r in rows), default=0),
        "max_steps": train.get("max_steps") if is_real(train.get("max_steps")) else None,
        "best_val_loss": min(vals) if vals else math.nan,
        "wall_s": max((r.get("elapsed_s", 0.0) for r in rows), default=0.0),
        "resumable": (path / CHECKPOINT_FILE).is_file(),
    }


def list_run_folders(folder: Path) -> list[Path]:
    """``folder`` itself when it is a run, else every run folder below it, sorted."""
    from genlab.errors import GenlabError

    if not folder.is_dir():
        raise GenlabError(f"{folder}: no such folder")
    if (folder / CONFIG_TOML).is_file():
        return [folder]
    return sorted(p.parent for p in folder.rglob(CONFIG_TOML))


def check_folder(path: Path) -> None:
    """Refuse a run folder holding a link that leads out of it, or anything but files, folders and such links.

    A run folder may come from someone else: genlab reads only regular files inside it and never writes through a
    link to elsewhere (a ``samples/`` linked to a system folder, a ``model.safetensors`` linked to a device).
    """
    import os
    import stat

    from genlab.errors import GenlabError

    root = Path(path).resolve()
    for folder, dirs, files in os.walk(root):  # links to folders are listed in dirs, not followed
        for name in [*dirs, *files]:
            entry = Path(folder, name)
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode):
                try:
                    target = entry.resolve(strict=False)
                except (RuntimeError, OSError):  # a link to itself, or a loop of links
                    raise GenlabError(f"{entry} is a link that loops; remove it from the run folder") from None
                if not target.is_relative_to(root):
                    raise GenlabError(f"{entry} is a link to {target}, outside the run folder; genlab neither reads "
                                      "nor writes through it: replace it with a regular file or folder")
                mode = target.stat().st_mode if target.exists() else stat.S_IFREG
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise GenlabError(f"{entry} is not a regular file or folder; remove it from the run folder")
