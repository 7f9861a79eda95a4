"""What training jobs keep on disk, what the server learns about their worker processes, and what a request may ask.

``Store`` is the jobs table in SQLite (WAL mode: every server on one runs folder shares it; a claim or a count that
must not race is one ``BEGIN IMMEDIATE`` transaction). Beside the jobs, each running scheduler keeps a row in
``servers`` (its process and a heartbeat), so another server can tell a job whose watcher is gone and adopt it.

The process helpers read ``/proc`` where there is one: a worker is the same process only while its pid has the start
time recorded when it was started (a pid reused by another process is not it); a zombie counts as exited.

``check_request`` holds a job request to what the server offers: registered families and datasets, shipped
configurations by name, settings as ``section.key=value`` (none naming a file), and a run folder by a plain name
that resolves inside the runs folder.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import os
import re
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from genlab import registry
from genlab.serve.errors import APIError, validation_error
from genlab.serve.schema import Body

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    family TEXT NOT NULL,
    data TEXT NOT NULL,
    run TEXT NOT NULL,
    config TEXT,
    overrides TEXT NOT NULL DEFAULT '[]',
    resume INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    exit_code INTEGER,
    error TEXT,
    pid INTEGER,
    pid_start TEXT,
    owner TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    signalled INTEGER NOT NULL DEFAULT 0,
    max_steps INTEGER,
    log TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS servers (
    owner TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    pid_start TEXT,
    beat REAL NOT NULL
);
"""

ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
TAIL = 64 << 10  # bytes read from the end of a log or metrics file
PROC = Path("/proc")


class Store:
    """The SQLite file of jobs: one connection, shared by the scheduler thread and request handlers under a lock."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        with self.lock:
            self.conn.execute("PRAGMA busy_timeout = 30000")
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            with self.transaction() as c:
                for statement in filter(str.strip, SCHEMA.split(";")):
                    c.execute(statement)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once: no other server writes until it ends."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        with self.lock:
            return self.conn.execute(sql, args).fetchone()

    def all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, args).fetchall()

    def run(self, sql: str, *args: Any) -> int:
        """Execute one statement (atomic on its own); the number of rows it changed."""
        with self.lock:
            return self.conn.execute(sql, args).rowcount

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def insert_job(c: sqlite3.Connection, job: dict[str, Any]) -> None:
    cols = ("id", "status", "family", "data", "run", "config", "overrides", "resume", "created_at", "max_steps", "log")
    values = [json.dumps(job[k]) if k == "overrides" else job[k] for k in cols]
    c.execute(f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", values)


# --- processes -------------------------------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, str | None] | None:
    """(state letter, start time) of process ``pid``, or None when there is no such process.

    From /proc where there is one (the start time in clock ticks since boot, exact), else from psutil (macOS,
    Windows: the creation time, to the millisecond).
    """
    if not (PROC / "self" / "stat").exists():
        import psutil

        try:
            proc = psutil.Process(pid)
            return ("Z" if proc.status() == psutil.STATUS_ZOMBIE else "R"), f"{proc.create_time():.3f}"
        except psutil.NoSuchProcess:
            return None
        except psutil.Error:
            return "R", None
    try:
        text = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the name (field 2) may hold spaces and parentheses
    return (fields[0], fields[19]) if len(fields) > 19 else None


def start_time(pid: int) -> str | None:
    stat = proc_stat(pid)
    return stat[1] if stat else None


def alive(pid: int | None, started: str | None) -> bool:
    """Whether the process ``pid`` started at ``started`` is still running (not exited, not a zombie)."""
    if not pid or pid <= 0:
        return False
    if os.name != "nt":  # (on Windows, signal 0 would be a Ctrl-C)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # someone else's process: it exists
        except OSError:
            return False
    stat = proc_stat(pid)
    if stat is None:
        return False
    state, start = stat
    if state in ("Z", "X"):
        return False
    return started is None or start is None or start == started


def terminate(pid: int | None, started: str | None, signum: int) -> bool:
    """Send ``signum`` to the worker ``pid`` only if it is still the process that was started; whether it was sent."""
    if not alive(pid, started):
        return False
    try:
        os.kill(pid, signum)  # type: ignore[arg-type]
    except OSError:
        return False
    return True


# --- files -----------------------------------------------------------------------------------------------------


def tail(path: Path, size: int = TAIL) -> bytes:
    """The last ``size`` bytes of a regular file (b"" when there is none)."""
    try:
        if not path.is_file():
            return b""
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            f.seek(max(0, end - size))
            data = f.read(size)
    except OSError:
        return b""
    if end > size:  # the first line is cut: drop it
        data = data.partition(b"\n")[2]
    return data


def last_line(path: Path) -> str | None:
    """The last non-empty line of a log, ANSI codes and box drawing stripped, at most 500 characters."""
    for raw in reversed(tail(path).replace(b"\r", b"\n").split(b"\n")):
        line = " ".join(ANSI.sub("", raw.decode("utf-8", errors="replace")).split())
        if line:
            return line[:500]
    return None


def last_metrics(path: Path) -> dict[str, Any]:
    """The latest value of each number in ``metrics.jsonl`` (its last row, with losses logged on other rows kept).

    Only the file's end is read; a line being written (cut short) is skipped; NaN and infinities become None (JSON
    has no such numbers).
    """
    merged: dict[str, Any] = {}
    for raw in tail(path).split(b"\n"):
        try:
            row = json.loads(raw)
        except ValueError:
            continue
        if isinstance(row, dict):
            merged.update({k: v for k, v in row.items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if "step" in merged:
        merged["step"] = int(merged["step"]) if math.isfinite(merged["step"]) else None
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in merged.items()}


# --- requests --------------------------------------------------------------------------------------------------

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
JOB_ID = re.compile(r"^job-[0-9a-f]{8,64}$")
SETTING = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)=([^\x00-\x1f\x7f]*)$")
PATH_SETTINGS = {"data.metadata"}  # settings whose value is a file: refused over HTTP
MAX_SET, MAX_SET_CHARS = 32, 200


class JobRequest(Body):
    """Train a model: a run folder in the server's runs folder, trained by a `genlab train` worker."""

    family: str = Field(description="model family, e.g. gpt (`genlab config show FAMILY` lists its settings)",
                        min_length=1, max_length=64, examples=["gpt"])
    data: str = Field(description="a registered dataset name (`genlab data list`); jobs over HTTP train only on "
                      "registered datasets, never on a path", min_length=1, max_length=64, examples=["shakespeare"])
    name: str | None = Field(None, description="the run folder's name inside the runs folder (letters, digits, '.', "
                             "'_', '-'; default FAMILY-DATA-YYYYmmdd-HHMMSS)", max_length=100)
    config: str | None = Field(None, description="the name of a configuration genlab ships (`genlab config list`), "
                               "e.g. demo; not a file path", max_length=64, examples=["demo"])
    overrides: list[str] = Field(default_factory=list, alias="set", max_length=MAX_SET,
                                 description=f"settings as section.key=value (at most {MAX_SET}, each at most "
                                 f"{MAX_SET_CHARS} characters), e.g. train.max_steps=500",
                                 examples=[["train.max_steps=50"]])
    resume: bool = Field(False, description="continue the run folder `name` from its checkpoint")


def shipped_configs() -> dict[str, Path]:
    from genlab.settings import shipped_configs as shipped

    return shipped()


def check_request(request: dict, runs: Path, default_name: Callable[[str, str], str]
                  ) -> tuple[JobRequest, str, int | None]:
    """The request checked against what the server offers: (it, the run folder's name, max_steps if known).

    Raises a 400 ``APIError`` naming the bad field, or 409 when a new run's folder exists.
    """
    try:
        req = JobRequest.model_validate(request)
    except ValidationError as e:
        raise validation_error(e.errors()) from None
    if req.family not in registry.FAMILIES:
        raise _unknown("family", req.family, list(registry.FAMILIES), "family")
    if req.data not in registry.DATASETS:
        if any(ch in req.data for ch in "/\\~.:") or req.data.startswith("-"):
            raise _bad(f"data: jobs over HTTP train only on registered datasets (genlab data list); a path such "
                       f"as '{req.data}' is refused", "data", "path_refused")
        raise _unknown("dataset", req.data, list(registry.DATASETS), "data")
    shipped = shipped_configs()
    if req.config is not None and req.config not in shipped:
        if not NAME.match(req.config) or ".." in req.config or req.config.endswith(".toml"):
            raise _bad(f"config: only the name of a configuration genlab ships is accepted ({', '.join(shipped)})"
                       f", not a path", "config", "path_refused")
        raise _unknown("config", req.config, list(shipped), "config")
    for i, item in enumerate(req.overrides):
        m = SETTING.match(item)
        if len(item) > MAX_SET_CHARS or not m:
            raise _bad(f"set[{i}]: expected section.key=value of at most {MAX_SET_CHARS} characters, e.g. "
                       "train.max_steps=500", f"set.{i}")
        if f"{m[1]}.{m[2]}" in PATH_SETTINGS:
            raise _bad(f"set[{i}]: {m[1]}.{m[2]} names a file; jobs over HTTP take no file paths", f"set.{i}",
                       "path_refused")
    if req.name is not None and (not NAME.match(req.name) or ".." in req.name):
        raise _bad("name: a run folder name is 1 to 100 letters, digits, '.', '_' or '-', starting with a letter "
                   "or digit, without '..'", "name")
    if req.resume and req.name is None:
        raise _bad("resume needs name, the run folder to continue", "name", "missing_field")
    name = req.name or default_name(req.family, req.data)
    run = runs / name
    if run.is_symlink() or (run.exists() and not run.is_dir()) or run.resolve().parent != runs.resolve():
        raise _bad(f"name: {name} is not a run folder inside the runs folder", "name")
    if req.resume and not (run / "config.toml").is_file():
        raise _bad(f"name: there is no run {name} to resume; train it without resume", "name", "run_not_found")
    if run.exists() and not req.resume:
        raise APIError(409, f"the run {name} already exists; set resume=true to continue it, or choose a new name",
                       param="name", code="run_exists")
    max_steps = int_setting(req.overrides, "train.max_steps")
    if max_steps is None and req.config is not None:
        max_steps = toml_max_steps(shipped[req.config])
    return req, name, max_steps


def _bad(message: str, param: str, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def _unknown(kind: str, value: str, known: list[str], param: str) -> APIError:
    match = difflib.get_close_matches(value, known, n=1)
    hint = f"did you mean '{match[0]}'?" if match else f"one of: {', '.join(sorted(known))}"
    return _bad(f"unknown {kind} '{value}' ({hint})", param)


def int_setting(overrides: list[str], key: str) -> int | None:
    """The integer the last ``key=value`` of ``overrides`` sets, if any."""
    value = None
    for item in overrides:
        k, _, v = item.partition("=")
        if k == key:
            value = v
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def toml_max_steps(path: Path) -> int | None:
    """``[train] max_steps`` of a TOML file, or None (missing, being written, not TOML)."""
    from genlab.config import read_toml

    try:
        train = read_toml(path).get("train")
    except Exception:  # noqa: BLE001
        return None
    value = train.get("max_steps") if isinstance(train, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"
