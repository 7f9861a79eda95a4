"""What training costs in energy and CO2: ``EnergyMeter``, around CodeCarbon's offline tracker.

(``flops.py`` counts the compute; ``energy_record.py`` records both per training session in ``RUN/energy.json``.)

``EnergyMeter`` wraps ``codecarbon.OfflineEmissionsTracker``. It never touches the network (offline
tracker; no API, HTTP or Electricity Maps output even if a CodeCarbon config file asks for one), writes nothing in
the working directory (no ``emissions.csv``; CodeCarbon's own scratch files go to a private temporary folder),
prints nothing (its log is captured into the record), and never fails training: if CodeCarbon cannot start, the
session is recorded with the reason. Without RAPL counters (a VM, a container, macOS, Windows) CodeCarbon
*estimates* CPU power from the CPU's TDP times the process's CPU load; the record says which method it used.
CodeCarbon's hardware detection takes about 1.5 s the first time in a process, so the tracker starts in a
background thread while training begins; the seconds before it started are extrapolated at the session's
measured mean power (``extrapolated_s`` says how many).

The electricity mix comes from ``release.country`` (see ``country.py``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from datetime import datetime, timezone
from typing import Any

from genlab.numbers import sig
from genlab.responsible.country import (
    WORLD,
    country_code,
    country_name,
    world_intensity_g_per_kwh,
)

START_TIMEOUT_S = 60.0  # how long the end of a session waits for a tracker still starting
SCRATCH_PREFIX = "genlab-energy-"  # CodeCarbon's scratch folders: genlab-energy-PID-XXXX in the system temp folder


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
            _clean_scratch()
            self._scratch: str | None = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
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
        return self._figures(tracker, data, duration)

    def so_far(self) -> dict[str, Any] | None:
        """The figures up to now, as CodeCarbon last measured them, while it runs (else None); never raises."""
        tracker = self._tracker
        if tracker is None:
            return None
        try:
            return self._figures(tracker, tracker._prepare_emissions_data(), time.perf_counter() - self._t0)
        except Exception:
            return None

    def _figures(self, tracker: Any, data: Any, duration: float) -> dict[str, Any]:
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


def _clean_scratch() -> None:
    """Remove the scratch folders of sessions whose process is gone (killed before it could remove its own)."""
    from pathlib import Path

    from genlab.lock import pid_alive

    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = folder.name[len(SCRATCH_PREFIX):].split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)) and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)


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
    """Rounded to significant digits (energies span 1e-9 to 1e3 kWh); None for a missing or non-finite value."""
    if x is None or not math.isfinite(float(x)):
        return None
    return sig(float(x), digits)
