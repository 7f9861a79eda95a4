"""The served runs: named by their folder inside the runs folder, loaded on first use, kept within a memory budget.

A model name from a request is checked before it touches the file system: one folder name (letters, digits,
``._-``), no separator, no ``..``, resolving inside the runs folder to a folder that holds a run. Loaded runs are
kept least-recently-used first within ``--max-memory`` (a run counts its weights' file size twice, plus its batch's
cache); a run whose ``config.toml`` or weights changed on disk (a job finished training it again) is loaded anew
on its next request.
"""

from __future__ import annotations

import collections
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genlab.runfiles import CONFIG_TOML, MODEL_FILE
from genlab.serve.config import ServeConfig
from genlab.serve.errors import APIError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
RECHECK_S = 1.0  # a run's folder found inside the root is trusted this long before it is checked again


@dataclass
class Served:
    """A loaded run, with its batching engine once a completion asked for one."""

    name: str
    run: Any  # genlab.runs.Run
    stamp: tuple  # the files' (mtime, size) it was loaded from
    nbytes: int  # what it is counted as in the memory budget
    engine: Any = None  # serve.engine.Engine, made on the first completion
    lock: threading.Lock = field(default_factory=threading.Lock)


class RunPool:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.root = config.runs.resolve()
        self.loaded: collections.OrderedDict[str, Served] = collections.OrderedDict()  # least recently used first
        self.lock = threading.Lock()
        self.loading: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self.checked: dict[str, float] = {}  # run name -> when its folder was last found to be a run inside the root

    def names(self) -> list[str]:
        """Every run directly inside the runs folder."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if NAME.fullmatch(p.name) and not p.is_symlink() and (p / CONFIG_TOML).is_file())

    def path(self, name: Any, *, param: str = "model") -> Path:
        """The folder of run ``name``, refused unless it is a run directly inside the runs folder."""
        if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
            raise APIError(400, f"{param} must be a run's folder name (letters, digits, '.', '_', '-'); "
                           "GET /v1/models lists them", param=param, code="invalid_model")
        checked = self.checked.get(name)
        if checked is not None and time.monotonic() - checked < RECHECK_S:
            return self.root / name
        path = self.root / name
        try:
            inside = path.resolve().parent == self.root and not path.is_symlink()
        except OSError:
            inside = False
        if not inside or not (path / CONFIG_TOML).is_file():
            self.checked.pop(name, None)
            raise APIError(404, f"no run named '{name}' in the served folder; GET /v1/models lists them",
                           param=param, code="model_not_found")
        self.checked[name] = time.monotonic()
        return path

    def get(self, name: Any, *, param: str = "model") -> Served:
        """The loaded run ``name`` (loaded now if needed, or again if its files changed)."""
        path = self.path(name, param=param)
        with self.loading[name]:  # one load per run at a time; other runs load meanwhile
            served = self.ready(name)
            if served is not None:
                return served
            self.unload(name)  # never loaded, or its files changed
            served = self._load(name, path, _stamp(path))
            with self.lock:
                self.loaded[name] = served
                self._evict(keep=name)
            return served

    def ready(self, name: str) -> Served | None:
        """The loaded run ``name`` when its files have not changed (no waiting: for the event loop), else None."""
        with self.lock:
            served = self.loaded.get(name)
        if served is None or _stamp(self.root / name) != served.stamp:
            return None
        with self.lock:
            if name in self.loaded:
                self.loaded.move_to_end(name)  # the most recently used
        return served

    def _load(self, name: str, path: Path, stamp: tuple) -> Served:
        from genlab.runs import Run

        run = Run.load(path)
        weights = path / MODEL_FILE
        nbytes = 2 * (weights.stat().st_size if weights.is_file() else 0) + (64 << 20)
        return Served(name, run, stamp, nbytes)

    def _evict(self, *, keep: str) -> None:
        """Unload least recently used runs (not ``keep``, none in use) until the loaded ones fit the budget."""
        while sum(s.nbytes for s in self.loaded.values()) > self.config.max_memory:
            idle = [n for n, s in self.loaded.items() if n != keep and not (s.engine and s.engine.busy)]
            if not idle:
                return
            self._drop(idle[0])

    def unload(self, name: str) -> None:
        with self.lock:
            self._drop(name)

    def _drop(self, name: str) -> None:
        served = self.loaded.pop(name, None)
        if served is not None and served.engine is not None:
            served.engine.close()

    def engine(self, served: Served, make) -> Any:
        """``served``'s batching engine, made by ``make(run)`` the first time; counted in the budget."""
        with served.lock:
            if served.engine is None:
                served.engine = make(served.run).start()
                cache = served.engine.decoder
                served.nbytes += 2 * cache.L * cache.capacity * cache.T_max * cache.C * cache.k.element_size()
            return served.engine

    def close(self) -> None:
        with self.lock:
            for name in list(self.loaded):
                self._drop(name)

    def memory(self) -> int:
        return sum(s.nbytes for s in self.loaded.values())


def _stamp(path: Path) -> tuple:
    out = []
    for name in (CONFIG_TOML, MODEL_FILE):
        try:
            st = (path / name).stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)
