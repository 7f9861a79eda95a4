"""Memorisation / IP audit and bias audit of a trained run, by its modality.

``audit_run(run, n=..., seed=...)`` asks the run's modality for its report (``Modality.audit``) and returns it as
strict JSON (the caller saves it as ``RUN/audit.json`` and the model card shows its ``summary``); with ``out`` the
modality may also write pictures there (``closest-pairs.png`` for images).

Every report holds "memorisation" and "bias" sections (each with its own "method" and "limits"; a modality whose
outputs carry no bias measure says why in its "bias" section), a "summary" of plain sentences, and top-level
"method" and "limits" strings. The maths lives in ``memorise.py`` and ``bias.py``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from genlab.errors import BadArgument

AUDIT_VERSION = 1


def audit_run(run, *, n: int, seed: int = 0, out: Path | None = None) -> dict:
    """Audit ``run`` with ``n`` generated samples; ``out``: a folder for pictures (created when needed)."""
    if n < 1:
        raise BadArgument("n", f"must be at least 1, got {n}")
    t0 = time.perf_counter()
    report = run.modality.audit(run, n=n, seed=seed, out=Path(out) if out is not None else None)
    sections = [report[s] for s in ("memorisation", "bias") if s in report]
    head = {"audit_version": AUDIT_VERSION, "run": str(run.path), "family": run.config.family,
            "dataset": run.config.dataset, "modality": run.modality.name, "n": n, "seed": seed}
    tail = {"method": " ".join(s.get("method", "") for s in sections).strip(),
            "limits": " ".join(s.get("limits", "") for s in sections).strip(),
            "seconds": round(time.perf_counter() - t0, 2)}
    return _plain({**head, **report, **tail})


def _plain(obj: Any) -> Any:
    """NumPy scalars and arrays to Python, tuples to lists, NaN and infinities to None: strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
