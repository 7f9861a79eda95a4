"""What training cost, session by session, in ``RUN/energy.json``: a training-loop callback, and its record.

``genlab train`` subscribes an ``EnergyTracker`` to the loop's events (``train/hooks.py``) when
``[release] track_energy`` is on. Every session is recorded (a fresh run is one; each ``--resume`` adds one),
also one stopped by Ctrl-C or an error, and one killed outright: a session is written when it starts and again at
each checkpoint, so a SIGKILL leaves its figures up to its last checkpoint::

    {"sessions": [{status, first_step, last_step, steps, duration_s, energy_kwh {total, cpu, ram, gpu},
                   emissions_kg_co2eq, country, cpu_model, power_method {cpu, ram, gpu}, codecarbon_version,
                   flops_per_step, train_flops, achieved_flops_per_s, ...}, ...],
     "total": {sessions, steps, duration_s, energy_kwh, emissions_kg_co2eq},
     "flops_per_step": ..., "train_flops": ..., "achieved_flops_per_s": ...}

Energy comes from ``energy.EnergyMeter`` (CodeCarbon, offline), compute from ``flops.flops_per_step``.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from genlab.files import atomic_write_bytes
from genlab.numbers import sig
from genlab.responsible.energy import EnergyMeter
from genlab.responsible.flops import flops_per_step
from genlab.runfiles import ENERGY_FILE
from genlab.train.distributed import is_main
from genlab.train.hooks import Callback

RUNNING = "running"  # a session's status until it ends: updated at each checkpoint
KILLED = "killed (figures to its last checkpoint)"  # a running session whose process died


class EnergyTracker(Callback):
    """Measures one training session's energy and compute and appends it to ``RUN/energy.json``.

    A bad ``country`` fails here, before training starts. Nothing it does can fail the training itself.
    """

    def __init__(self, run_dir: Path, country: str = "auto") -> None:
        self.run_dir = Path(run_dir)
        self.meter = EnergyMeter(country)
        self.flops: float | None = None
        self.flops_error: str | None = None

    def on_train_start(self, trainer: Any) -> None:
        # 1. count one step's FLOPs where training runs (before the meter: its start-up is not training)
        if not trainer.family.iterative:
            self.flops_error = "no gradient steps (fitted in one go)"
        else:
            try:
                self.flops = flops_per_step(trainer.family, trainer.data, trainer.config, device=trainer.device,
                                            autocast=trainer.precision.autocast)
            except Exception as e:  # a family the counter cannot follow: record why, train anyway
                self.flops_error = f"{type(e).__name__}: {e}"
        # 2. start measuring energy, and record the session as running (a kill leaves it, to its last checkpoint)
        self.meter.__enter__()
        self.started, self.t0 = True, time.perf_counter()
        self.index: int | None = None
        self._record(trainer, RUNNING, self.meter.so_far() or {})

    def on_checkpoint(self, trainer: Any, step: int) -> None:
        if getattr(self, "started", False):
            self._record(trainer, RUNNING, self.meter.so_far() or {"duration_s": round(time.perf_counter() - self.t0, 3)})

    def on_train_end(self, trainer: Any, status: str, summary: dict[str, Any]) -> None:
        if not getattr(self, "started", False):  # an earlier subscriber failed at train_start: nothing measured
            return
        self.meter.__exit__(None, None, None)
        self._record(trainer, status, self.meter.result or {})

    def _record(self, trainer: Any, status: str, measured: dict[str, Any]) -> None:
        first, last = trainer.start_step, trainer.step
        done = max(0, last - first)
        session = {
            "status": status,
            "first_step": first,
            "last_step": last,
            "steps": done,
            "device": str(trainer.device),
            "precision": trainer.precision.name,
            **measured,
            "flops_per_step": self.flops,
            "train_flops": self.flops * done if self.flops is not None else None,
            "achieved_flops_per_s": None,
        }
        if self.flops_error:
            session["flops_error"] = self.flops_error
        if self.flops is not None and session.get("duration_s"):
            session["achieved_flops_per_s"] = sig(self.flops * done / session["duration_s"])
        if is_main():
            with contextlib.suppress(OSError):
                self.index = record_session(self.run_dir, session, index=self.index)


def read_energy(run_dir: Path) -> dict[str, Any] | None:
    """``RUN/energy.json``, or None when the run has none (or it is unreadable)."""
    path = Path(run_dir) / ENERGY_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("sessions"), list) else None


def record_session(run_dir: Path, session: dict[str, Any], *, index: int | None = None) -> int:
    """Write one session into ``RUN/energy.json`` (atomically): appended, or replacing session ``index``; recompute
    the totals. Appending marks earlier sessions left "running" as killed (their process is gone: the run's lock is
    held by the caller). Returns the session's index."""
    sessions = list((read_energy(run_dir) or {}).get("sessions") or [])
    if index is None or index >= len(sessions):
        for old in sessions:
            if isinstance(old, dict) and old.get("status") == RUNNING:
                old["status"] = KILLED
        sessions.append(session)
        index = len(sessions) - 1
    else:
        sessions[index] = session
    record = {"sessions": sessions, **totals(sessions)}
    atomic_write_bytes(Path(run_dir) / ENERGY_FILE, json.dumps(record, indent=2).encode())
    return index


def totals(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [s for s in sessions if s.get("energy_kwh")]
    counted = [s for s in sessions if s.get("train_flops") is not None]
    energy = {k: sig(sum(s["energy_kwh"].get(k) or 0.0 for s in measured)) for k in ("total", "cpu", "ram", "gpu")}
    train_flops = sum(s["train_flops"] for s in counted) if counted else None
    flops_time = sum(s.get("duration_s") or 0.0 for s in counted)
    last_flops = next((s["flops_per_step"] for s in reversed(sessions) if s.get("flops_per_step") is not None), None)
    return {
        "total": {
            "sessions": len(sessions),
            "unmeasured_sessions": len(sessions) - len(measured),
            "steps": sum(s.get("steps") or 0 for s in sessions),
            "duration_s": round(sum(s.get("duration_s") or 0.0 for s in sessions), 3),
            "energy_kwh": energy if measured else None,
            "emissions_kg_co2eq": sig(sum(s.get("emissions_kg_co2eq") or 0.0 for s in measured)) if measured else None,
        },
        "flops_per_step": last_flops,
        "train_flops": train_flops,
        "achieved_flops_per_s": sig(train_flops / flops_time) if train_flops is not None and flops_time else None,
    }
