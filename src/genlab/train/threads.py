"""How many CPU threads training uses: ``ThreadGovernor``, a training-loop subscriber (``train/hooks.py``).

PyTorch's default is one thread per physical core, and its OpenMP worker threads spin while they wait for each
other (GNU OpenMP: some 300,000 spins before sleeping). That is the fastest setting on an idle machine and a
collapse on a busy one: when another program holds some of the cores, every parallel region waits for whichever
of its threads the scheduler parked, while the others spin away their time slices. On 2 cores beside one other
PyTorch training, two threads trained 6 to 25 times slower than one (``bench/threads_under_load.py``). The wait
policy is read once, when a process loads PyTorch, so it cannot follow the load; the thread count can.

So with ``train.threads = 0`` the governor measures, when training starts (a tenth of a second) and then every two
seconds at a step boundary, how many of this process' cores other processes keep busy (busy CPU time on those
cores minus this process' own, per second), and sets ``torch.set_num_threads`` to the cores left free: at least 1,
at most the count training started with (PyTorch's default). It takes a core only when other processes leave it
nearly idle (at most a quarter of it busy) and gives one back only when more than half a core of its share is
taken, so a noisy neighbour does not make it flap; the count is put back when training ends. A nonzero
``train.threads`` is used as it is, for the whole run, and nothing is measured. The thread count changes floating-
point rounding (not results' quality), so runs that must match bit for bit (a resumed run against a straight one)
need a fixed ``train.threads``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import torch

from genlab.train.hooks import Callback

PROBE_S = 0.1  # seconds measured (idle) at train_start, for the first count
EVERY_S = 2.0  # seconds between later looks, at step boundaries
UP = 0.25  # a thread per core whose other load is at most this much of a core (up: free >= threads + 1 - UP)
DOWN = 0.5  # down when the free cores fall more than this below the thread count (hysteresis: DOWN > UP)


def usable_cpus() -> list[int] | None:
    """The CPUs this process may run on (its affinity), or None where the platform does not say."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


class CpuMeter:
    """Cores kept busy by *other* processes since the last reading: busy CPU time on this process' CPUs minus
    this process' own CPU time, per second of wall time. Uses psutil (a dependency of codecarbon)."""

    def __init__(self) -> None:
        import psutil  # imported here: a platform without it gets no governor, not an import error

        self._psutil = psutil
        self._own = psutil.Process()
        cpus = usable_cpus()
        n = psutil.cpu_count() or 1
        self.cpus = [c for c in cpus if c < n] if cpus else list(range(n))
        self._last = self._read()

    @staticmethod
    def _busy(t: Any) -> float:
        # guest time is already inside user time on Linux; idle and iowait are free; steal is held by another VM
        return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))

    def _read(self) -> tuple[float, float, float]:
        per_cpu = self._psutil.cpu_times(percpu=True)
        busy = sum(self._busy(per_cpu[c]) for c in self.cpus if c < len(per_cpu))
        own = self._own.cpu_times()
        return time.monotonic(), busy, own.user + own.system

    def others(self) -> float:
        """Cores other processes kept busy since the previous call (or since this meter was made)."""
        (t0, busy0, own0), (t1, busy1, own1) = self._last, self._read()
        self._last = (t1, busy1, own1)
        if t1 - t0 <= 0:
            return 0.0
        return min(float(len(self.cpus)), max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0))


class ThreadGovernor(Callback):
    """Fits ``torch.set_num_threads`` to the cores other processes leave free, while a model trains on the CPU.

    ``threads`` (default: the trainer's ``train.threads``) nonzero: that count, fixed, for the run. Zero: adaptive,
    between 1 and the count at ``train_start``; measured for ``probe_s`` at ``train_start``, then every ``every_s``
    seconds of training. ``meter`` (tests) returns the cores other processes kept busy since its previous call;
    ``cpus`` the cores this process may use. The count in force before ``train_start`` is put back at
    ``train_end``. ``history`` lists the looks as ``(step, other processes' cores, free cores, threads)``.
    """

    def __init__(self, threads: int | None = None, *, probe_s: float = PROBE_S, every_s: float = EVERY_S,
                 meter: Callable[[], float] | None = None, cpus: int | None = None) -> None:
        self.threads, self.probe_s, self.every_s = threads, probe_s, every_s
        self._meter, self._cpus = meter, cpus
        self.active = False
        self.saved: int | None = None
        self.max = 1
        self.history: list[tuple[int, float, float, int]] = []

    # ---------------------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: Any) -> None:
        self.saved, self.active = None, False
        fixed = self.threads if self.threads is not None else getattr(trainer.config, "threads", 0)
        if fixed:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(fixed)
            return
        governors = [c for c in getattr(trainer, "callbacks", ()) if isinstance(c, ThreadGovernor)]
        if governors and governors[0] is not self:  # one governor per run: another one passed as well stays out
            return
        device = getattr(trainer, "device", None)
        if torch.get_num_threads() < 2 or (device is not None and torch.device(device).type != "cpu"):
            return  # one thread cannot go lower; on a GPU the CPU threads are not what limits training
        if not getattr(getattr(trainer, "family", None), "iterative", True):
            return  # fitted at once by Family.solve: no step boundary to look at again
        meter, cpus = self._meter, self._cpus
        if meter is None:
            try:
                cpu_meter = CpuMeter()
            except Exception:  # no psutil, or a platform it cannot read: PyTorch's default, as without a governor
                return
            meter, cpus = cpu_meter.others, cpus or len(cpu_meter.cpus)
        else:
            meter()  # its interval starts now
        self.saved = self.max = torch.get_num_threads()
        self.meter, self.cpus = meter, cpus or len(usable_cpus() or range(os.cpu_count() or 1))
        self.active = True
        time.sleep(self.probe_s)  # idle meanwhile: what is busy is other processes
        self.look(getattr(trainer, "step", 0), initial=True)

    def on_step_end(self, trainer: Any, step: int, logs: dict[str, Any]) -> None:
        if self.active and time.monotonic() >= self.next_look:
            self.look(step)

    def on_train_end(self, trainer: Any, status: str, summary: dict[str, Any]) -> None:
        if self.saved is not None:  # only a governor that set the count puts it back
            torch.set_num_threads(self.saved)
        self.saved, self.active = None, False

    # ---------------------------------------------------------------------------------------------------------
    def look(self, step: int = 0, *, initial: bool = False) -> int:
        """Measure the other processes' load since the last look and set the thread count from it (``initial``: the
        first count, from the free cores alone)."""
        others = self.meter()
        free = self.cpus - others
        current = torch.get_num_threads()
        threads = self.target(free) if initial else self.decide(current, free)
        if threads != current:
            torch.set_num_threads(threads)
        self.history.append((step, round(others, 2), round(free, 2), threads))
        self.next_look = time.monotonic() + self.every_s
        return threads

    def target(self, free: float) -> int:
        """A thread per core that other processes leave nearly idle (``UP``), between 1 and ``max``."""
        return max(1, min(self.max, math.floor(free + UP)))

    def decide(self, current: int, free: float) -> int:
        """The thread count for ``free`` cores, from ``current``: up to ``target``, down to it only when the free
        cores fall more than ``DOWN`` below ``current`` (hysteresis)."""
        target = self.target(free)
        if target > current or free < current - DOWN:
            return target
        return min(current, self.max)
