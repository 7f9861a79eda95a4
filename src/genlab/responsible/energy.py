"""What training cost: energy and CO2 (CodeCarbon's offline tracker) and compute (FLOPs), per training session.

``genlab train`` records every session (a fresh run is one; each ``--resume`` adds one) in ``RUN/energy.json``::

    {"sessions": [{duration_s, energy_kwh {total, cpu, ram, gpu}, emissions_kg_co2eq, country, cpu_model,
                   power_method {cpu, ram, gpu}, codecarbon_version, steps, flops_per_step, train_flops, ...}, ...],
     "total": {sessions, steps, duration_s, energy_kwh, emissions_kg_co2eq},
     "flops_per_step": ..., "train_flops": ..., "achieved_flops_per_s": ...}

Energy: ``EnergyMeter`` wraps ``codecarbon.OfflineEmissionsTracker``. It never touches the network (offline
tracker; no API, HTTP or Electricity Maps output even if a CodeCarbon config file asks for one), writes nothing in
the working directory (no ``emissions.csv``; CodeCarbon's own scratch files go to a private temporary folder),
prints nothing (its log is captured into the record), and never fails training: if CodeCarbon cannot start, the
session is recorded with the reason. Without RAPL counters (a VM, a container, macOS, Windows) CodeCarbon
*estimates* CPU power from the CPU's TDP times the process's CPU load; the record says which method it used.
CodeCarbon's hardware detection takes about 1.5 s the first time in a process, so the tracker starts in a
background thread while training begins; the seconds before it started are extrapolated at the session's
measured mean power (``extrapolated_s`` says how many).

Compute: ``flops_per_step`` runs one forward and backward of each of the family's ``Phase`` losses on one real
batch under ``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions and attention; no
element-wise operations), so it works for every family with no per-family code.

The electricity mix comes from ``release.country`` (see ``country.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from genlab.files import atomic_write_bytes
from genlab.responsible.country import (
    WORLD,
    country_code,
    country_name,
    world_intensity_g_per_kwh,
)

ENERGY_FILE = "energy.json"
FLOPS_SEED_OFFSET = 4099  # the FLOP count's batch comes from its own stream, never the training batches'
START_TIMEOUT_S = 60.0  # how long the end of a session waits for a tracker still starting


# -- energy ---------------------------------------------------------------------------------------------------------
class _Capture(logging.Handler):
    """Keeps CodeCarbon's warnings and errors for the record instead of printing them (not a StreamHandler, so
    CodeCarbon's own logger set-up leaves it in place)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            message = " ".join(record.getMessage().split())
            if message.startswith("Multiple instances of codecarbon"):  # our choice (no lock file), not news
                return
            if message and message not in self.messages and len(self.messages) < 20:
                self.messages.append(message)


_hardware_notes: list[str] = []  # CodeCarbon detects hardware once per process; later sessions reuse its notes


class EnergyMeter:
    """Energy and CO2 of the code inside ``with``, estimated by CodeCarbon's offline tracker; never raises.

    ::

        with EnergyMeter("auto") as meter:
            train()
        meter.result  # {"duration_s", "energy_kwh": {"total", "cpu", "ram", "gpu"}, "emissions_kg_co2eq", ...}

    ``result["error"]`` holds the reason when CodeCarbon could not measure (the energy figures are then None).
    """

    def __init__(self, country: str = "auto", *, measure_power_secs: float = 15.0, tracking_mode: str = "process",
                 background: bool = True) -> None:
        self.country = country_code(country)  # a bad code fails here, before any work
        self.measure_power_secs = measure_power_secs
        self.tracking_mode = tracking_mode  # "process": this process's CPU time and memory, not the whole machine's
        self.background = background
        self.result: dict[str, Any] | None = None
        self._tracker: Any = None
        self._error: str | None = None
        self._thread: threading.Thread | None = None
        self._abandoned = False  # the session ended before a slow start finished: the tracker stops itself

    def __enter__(self) -> EnergyMeter:
        self._t0 = time.perf_counter()
        self._started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            self._scratch: str | None = tempfile.mkdtemp(prefix="genlab-energy-")
        except OSError:
            self._scratch = None
        self._capture = _Capture()
        if self.background:
            self._thread = threading.Thread(target=self._start, name="genlab-energy-start", daemon=True)
            self._thread.start()
        else:
            self._start()
        return self

    def __exit__(self, *exc: Any) -> None:
        duration = time.perf_counter() - self._t0
        try:
            if self._thread is not None:
                self._thread.join(START_TIMEOUT_S)
                if self._thread.is_alive():
                    self._abandoned = True
                    self.result = self._failed(duration, f"CodeCarbon had not started after {START_TIMEOUT_S:.0f} s")
                    return
            self.result = self._finish(duration)
        except Exception as e:  # the record must never cost the user their training
            self.result = self._failed(duration, f"{type(e).__name__}: {e}")
        finally:
            self._restore_logging()
            if self._scratch and not self._abandoned:
                shutil.rmtree(self._scratch, ignore_errors=True)

    # ---------------------------------------------------------------------------------------------------------------
    def _start(self) -> None:
        try:
            import codecarbon
            from codecarbon import OfflineEmissionsTracker

            self._quiet_logging()
            options: dict[str, Any] = {"country_iso_code": self.country}
            if self.country == WORLD:
                options = {"force_carbon_intensity_g_co2e_kwh": world_intensity_g_per_kwh()}
            tracker = OfflineEmissionsTracker(
                **options,
                region=None, cloud_provider=None, cloud_region=None,  # a CodeCarbon config file cannot move us
                output_methods=[], output_handlers=[], emissions_endpoint=False,  # nothing written, nothing sent
                output_dir=self._scratch or tempfile.gettempdir(),  # its scratch files (Power Gadget logs)
                measure_power_secs=self.measure_power_secs,
                tracking_mode=self.tracking_mode,
                allow_multiple_runs=True,  # no lock file, and no SIGINT handler that would swallow Ctrl-C
                log_level="critical",
                project_name="genlab",
            )
            if not hasattr(tracker, "_start_time"):  # its __init__ swallows exceptions and logs them
                raise RuntimeError(self._last_message("CodeCarbon's tracker could not be created"))
            tracker._electricitymaps_api_token = None  # offline means offline, whatever a config file holds
            self._quiet_logging()  # its __init__ replaced the log handlers
            tracker.start()
            if tracker._start_time is None:  # start() also swallows exceptions
                raise RuntimeError(self._last_message("CodeCarbon's tracker did not start"))
            with contextlib.suppress(Exception):  # load now what stop() would otherwise import at the end
                tracker._ensure_geo_metadata()
                tracker._ensure_emissions_engine()
            self._version = codecarbon.__version__
            self._tracker = tracker
            if self._abandoned:
                tracker.stop()
        except Exception as e:
            self._error = f"{type(e).__name__}: {e}" if not isinstance(e, RuntimeError) else str(e)

    def _finish(self, duration: float) -> dict[str, Any]:
        tracker = self._tracker
        if tracker is None:
            return self._failed(duration, self._error or "CodeCarbon did not start")
        tracker.stop()
        data = getattr(tracker, "final_emissions_data", None)
        if data is None:
            return self._failed(duration, self._last_message("CodeCarbon's tracker did not stop cleanly"))
        tracked = float(data.duration)
        if tracked <= 0:
            return self._failed(duration, "the session ended before CodeCarbon had started")
        scale = max(duration, tracked) / tracked  # the seconds before the tracker started, at its mean power
        energy = {"total": data.energy_consumed * scale, "cpu": data.cpu_energy * scale,
                  "ram": data.ram_energy * scale, "gpu": data.gpu_energy * scale}
        emissions = data.emissions * scale
        notes = list(self._capture.messages)
        if notes:
            _hardware_notes[:] = notes
        return {
            "started": self._started,
            "duration_s": round(duration, 3),
            "tracked_s": round(tracked, 3),
            "extrapolated_s": round(max(0.0, duration - tracked), 3),
            "energy_kwh": {k: _sig(v) for k, v in energy.items()},
            "emissions_kg_co2eq": _sig(emissions),
            "carbon_intensity_g_per_kwh": _sig(1000 * emissions / energy["total"]) if energy["total"] else None,
            "country": self.country,
            "country_name": country_name(self.country),
            "cpu_model": data.cpu_model,
            "cpu_count": data.cpu_count,
            "gpu_model": data.gpu_model or None,
            "gpu_count": data.gpu_count,
            "power_method": _power_methods(tracker),
            "mean_power_w": {"cpu": _sig(data.cpu_power), "ram": _sig(data.ram_power), "gpu": _sig(data.gpu_power)},
            "tracking_mode": self.tracking_mode,
            "codecarbon_version": self._version,
            "notes": notes or list(_hardware_notes),
            "error": None,
        }

    def _failed(self, duration: float, reason: str) -> dict[str, Any]:
        version = None
        with contextlib.suppress(Exception):
            from importlib.metadata import version as _v

            version = _v("codecarbon")
        if isinstance(reason, str) and reason.startswith("ModuleNotFoundError"):
            reason = "CodeCarbon is not installed (pip install codecarbon)"
        return {"started": self._started, "duration_s": round(duration, 3), "tracked_s": 0.0, "energy_kwh": None,
                "emissions_kg_co2eq": None, "country": self.country, "country_name": country_name(self.country),
                "codecarbon_version": version, "notes": list(self._capture.messages), "error": reason}

    def _last_message(self, default: str) -> str:
        return f"{default}: {self._capture.messages[-1]}" if self._capture.messages else default

    def _quiet_logging(self) -> None:
        log = logging.getLogger("codecarbon")
        if not hasattr(self, "_old_level"):
            self._old_level = log.level
        log.setLevel(logging.WARNING)
        for h in log.handlers:
            if isinstance(h, logging.StreamHandler):
                h.setLevel(logging.CRITICAL + 1)  # silent; the capture handler still sees everything
        if self._capture not in log.handlers:
            log.addHandler(self._capture)

    def _restore_logging(self) -> None:
        log = logging.getLogger("codecarbon")
        log.removeHandler(self._capture)
        if hasattr(self, "_old_level"):
            for h in log.handlers:
                if isinstance(h, logging.StreamHandler):
                    h.setLevel(logging.NOTSET)
            log.setLevel(self._old_level)


def _power_methods(tracker: Any) -> dict[str, str | None]:
    """How CodeCarbon got each part's power: measured (RAPL, NVML, ...) or estimated (TDP, RAM model)."""
    methods: dict[str, str | None] = {"cpu": None, "ram": None, "gpu": None}
    for hw in getattr(tracker, "_hardware", []):
        kind = type(hw).__name__
        if kind == "RAM":
            forced = getattr(hw, "_force_ram_power", None)
            methods["ram"] = f"constant {forced} W (set by the user)" if forced is not None else \
                "estimate (CodeCarbon's RAM model: watts per estimated memory module)"
        elif kind == "CPU":
            mode, tdp = getattr(hw, "_mode", "?"), getattr(hw, "_tdp", None)
            generic = getattr(hw, "_is_generic_tdp", False) or (
                tdp is not None and tdp == 4 * (getattr(hw, "_cpu_count", 0) or 0))
            basis = f"{tdp} W" + (" (generic: 4 W per thread, CPU model not in CodeCarbon's table)" if generic else "")
            methods["cpu"] = {
                "intel_rapl": "RAPL (measured)",
                "windows_emi": "RAPL via the Windows Energy Meter Interface (measured)",
                "intel_power_gadget": "Intel Power Gadget (measured)",
                "cpu_load": f"TDP estimate: {basis} x CPU load",
                "constant": f"TDP estimate: {basis} x 50% (constant)",
            }.get(mode, mode)
        elif kind == "GPU":
            methods["gpu"] = "NVML / AMD SMI (measured)"
        elif kind in ("AppleSiliconChip", "Raspberry"):
            part = "gpu" if getattr(hw, "chip_part", "CPU") == "GPU" else "cpu"
            if kind == "Raspberry" and getattr(hw, "chip_part", "") == "RAM":
                part = "ram"
            methods[part] = "powermetrics (measured)" if kind == "AppleSiliconChip" else "Raspberry Pi PMIC (measured)"
    return methods


def _sig(x: Any, digits: int = 4) -> float | None:
    """Rounded to significant digits (energies span 1e-9 to 1e3 kWh)."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return x if math.isfinite(x) else None
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


# -- compute --------------------------------------------------------------------------------------------------------
def flops_per_step(family: Any, data: Any, train_config: Any, *, device: torch.device | None = None,
                   autocast: Callable[[], contextlib.AbstractContextManager] | None = None) -> float:
    """FLOPs of one optimizer step: each ``Phase``'s forward + backward on one real batch, times ``grad_accum``.

    Counted by ``FlopCounterMode`` (matrix products, convolutions, attention), so it holds for every family.
    Nothing is changed: batches come from a private seeded generator, the global RNG is forked, and buffers
    (batch-norm statistics), ``requires_grad`` flags and gradients are put back as they were.
    """
    from genlab.train.loop import _to

    nets = family.networks_
    params = [p for net in nets.values() for p in net.parameters()]
    device = device or (params[0].device if params else torch.device("cpu"))
    autocast = autocast or contextlib.nullcontext
    saved_flags = [(p, p.requires_grad, p.grad) for p in params]
    saved_buffers = [(b, b.detach().clone()) for net in nets.values() for b in net.buffers()]
    g = torch.Generator().manual_seed(train_config.seed + FLOPS_SEED_OFFSET)
    total = 0
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            for phase in family.phases(data):
                batch = _to(data.batch("train", phase.batch_size or train_config.batch_size, g), device)
                for p in params:
                    p.grad = None
                with _flop_counter() as counter:
                    with autocast():
                        loss, _ = phase.loss(batch)
                    loss.backward()
                total += counter.get_total_flops()
    finally:
        with torch.no_grad():
            for b, value in saved_buffers:
                b.copy_(value)
        for p, flag, grad in saved_flags:
            p.requires_grad_(flag)
            p.grad = grad
    return float(total * train_config.grad_accum)


class _GlobalOnly:
    """Stands in for ``FlopCounterMode``'s per-module tracker, whose backward hooks break ``torch.autograd.grad``
    inside the counted region (a WGAN-GP gradient penalty); only the global total is needed here."""

    parents = frozenset({"Global"})

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def _flop_counter() -> Any:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_cpu_attention_formulas())
    if hasattr(counter, "mod_tracker"):
        counter.mod_tracker = _GlobalOnly()
    return counter


def _cpu_attention_formulas() -> dict[Any, Any]:
    """PyTorch counts fused attention on CUDA but not its CPU kernel; the same formulas (the full T x T score
    matrix, as on CUDA, causal or not) fill the gap, so a CPU and a GPU run of one model report the same FLOPs."""
    from torch.utils import flop_counter as fc

    def forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_backward_flop_count(grad_out, query, key, value)

    mapping = {}
    for name, formula in (("_scaled_dot_product_flash_attention_for_cpu", forward),
                          ("_scaled_dot_product_flash_attention_for_cpu_backward", backward)):
        op = getattr(torch.ops.aten, name, None)
        if op is not None and op not in fc.flop_registry and hasattr(fc, "sdpa_flop_count"):
            mapping[op] = formula
    return mapping


# -- the run's record -----------------------------------------------------------------------------------------------
class _Steps:
    """A training-loop callback noting the last step the session finished."""

    def __init__(self) -> None:
        self.last: int | None = None

    def __call__(self, trainer: Any, step: int, logs: Any) -> None:
        self.last = step


def _checkpoint_step(run_dir: Path) -> int | None:
    """The step saved in ``RUN/checkpoint.safetensors`` (its header only), or None."""
    from genlab.train.loop import CHECKPOINT_FILE

    try:
        from safetensors import safe_open

        with safe_open(str(Path(run_dir) / CHECKPOINT_FILE), framework="pt") as f:
            return int((f.metadata() or {})["step"])
    except Exception:
        return None


@contextlib.contextmanager
def energy_session(run_dir: Path, family: Any, data: Any, config: Any, trainer: Any) -> Iterator[None]:
    """Wrap ``trainer.run()``: records the session in ``RUN/energy.json``, even when it is interrupted or fails.

    A no-op when ``[release] track_energy`` is false. A bad ``release.country`` raises before training starts.
    """
    if not config.release.track_energy:
        yield
        return
    meter = EnergyMeter(config.release.country)
    for net in family.networks_.values():
        net.to(trainer.device)  # as the loop does first: the FLOPs are counted where training runs
    flops, flops_error = None, None
    try:
        flops = flops_per_step(family, data, config.train, device=trainer.device, autocast=trainer.precision.autocast)
    except Exception as e:  # a family the counter cannot follow: record why, train anyway
        flops_error = f"{type(e).__name__}: {e}"
    first = (_checkpoint_step(run_dir) or 0) if trainer.resume else 0  # where the loop starts
    steps = _Steps()
    trainer.callbacks.insert(0, steps)  # first, so a callback that stops training cannot hide the step
    status = "interrupted"
    try:
        with meter:
            yield
        status = "completed"
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        status = f"failed ({type(e).__name__})"
        raise
    finally:
        last = steps.last if steps.last is not None else first
        if status != "completed":  # a Ctrl-C checkpoints the step it stopped at, whatever the loop was doing
            last = max(last, _checkpoint_step(run_dir) or 0)
        done = max(0, last - first)
        session = {
            "status": status,
            "first_step": first,
            "last_step": last,
            "steps": done,
            "device": str(trainer.device),
            "precision": trainer.precision.name,
            **(meter.result or {}),
            "flops_per_step": flops,
            "train_flops": flops * done if flops is not None else None,
            "achieved_flops_per_s": None,
        }
        if flops_error:
            session["flops_error"] = flops_error
        if flops is not None and session.get("duration_s"):
            session["achieved_flops_per_s"] = _sig(flops * done / session["duration_s"])
        with contextlib.suppress(OSError):
            record_session(run_dir, session)


def read_energy(run_dir: Path) -> dict[str, Any] | None:
    """``RUN/energy.json``, or None when the run has none (or it is unreadable)."""
    path = Path(run_dir) / ENERGY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("sessions"), list) else None


def record_session(run_dir: Path, session: dict[str, Any]) -> dict[str, Any]:
    """Append one session to ``RUN/energy.json`` (atomically) and recompute the totals; returns the new record."""
    sessions = [*((read_energy(run_dir) or {}).get("sessions") or []), session]
    record = {"sessions": sessions, **totals(sessions)}
    atomic_write_bytes(Path(run_dir) / ENERGY_FILE, json.dumps(record, indent=2).encode())
    return record


def totals(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [s for s in sessions if s.get("energy_kwh")]
    counted = [s for s in sessions if s.get("train_flops") is not None]
    energy = {k: _sig(sum(s["energy_kwh"].get(k) or 0.0 for s in measured)) for k in ("total", "cpu", "ram", "gpu")}
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
            "emissions_kg_co2eq": _sig(sum(s.get("emissions_kg_co2eq") or 0.0 for s in measured)) if measured else None,
        },
        "flops_per_step": last_flops,
        "train_flops": train_flops,
        "achieved_flops_per_s": _sig(train_flops / flops_time) if train_flops is not None and flops_time else None,
    }
