"""What the image recipes share: timing training steps in bf16 against fp32 in the same run, and flat tables."""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

import genlab
from genlab.models import get_family
from genlab.train.loop import Trainer
from genlab.train.precision import cpu_has_fast_bf16


def step_seconds(run: genlab.Run, precision: str, steps: int, warmup: int = 2) -> list[float]:
    """Seconds per training step of a fresh model with the run's config, after ``warmup`` untimed steps."""
    family = get_family(run.config.family)(run.config.model)
    family.build(run.data, seed=run.config.train.seed)
    marks: list[float] = []
    train = dataclasses.replace(run.config.train, precision=precision, max_steps=warmup + steps + 1, max_minutes=0.0,
                                eval_every=10**9, eval_batches=1, checkpoint_every=10**9)
    Trainer(family, run.data, train, run_dir=None, progress=False,
            callbacks=[lambda trainer, step, logs: marks.append(time.perf_counter())]).run()
    return [b - a for a, b in zip(marks[warmup - 1 : warmup + steps - 1], marks[warmup : warmup + steps])]


def precision_speed(run: genlab.Run, steps: int, rounds: int) -> dict[str, Any]:
    """bf16 against fp32, alternating rounds so both see the same (shared, noisy) machine."""
    family = get_family(run.config.family)(run.config.model)
    family.build(run.data, seed=0)
    n_phases = sum(p.counts_units for p in family.phases(run.data))  # real-image phases, as the loop counts
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(rounds):
        for precision in times:
            times[precision] += step_seconds(run, precision, steps)
    out: dict[str, Any] = {"cpu_has_fast_bf16": cpu_has_fast_bf16(), "timed_steps": steps * rounds}
    for precision, dts in times.items():
        ms = statistics.median(dts) * 1000
        out[precision] = {"ms_per_step": round(ms, 1),
                          "img_per_s": round(run.config.train.batch_size * n_phases / (ms / 1000), 1)}
    out["bf16_speedup"] = round(out["fp32"]["ms_per_step"] / out["bf16"]["ms_per_step"], 3)
    return out


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a.b": value} rows for a printed table (lists are left out)."""
    rows: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            rows.update(flat(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            rows[f"{prefix}{k}"] = v
    return rows
