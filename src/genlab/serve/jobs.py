"""Training jobs: ``POST /v1/jobs`` trains a run in a worker process (``genlab train``, as on the command line).

A job is a row in the SQLite file of the runs folder, so jobs and their state outlive the server, and every server on
that folder sees the same ones. Each server runs a scheduler thread: it starts queued jobs while fewer than
``max_jobs`` run (counted over all servers; a job is claimed in one transaction, so no two servers start it), watches
the workers it started, and adopts the running jobs of a server that is gone. Workers run in their own session and
outlive the server that started them; cancelling sends SIGTERM, on which training finishes its step, checkpoints and
exits 143. Requests name only registered families, datasets and shipped configurations, and a run folder by a plain
name that resolves inside the runs folder: no path from a request reaches the file system.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from genlab.runfiles import CONFIG_TOML, METRICS_FILE, MODEL_FILE, SUMMARY_FILE
from genlab.serve import jobs_store as st
from genlab.serve.config import ServeConfig
from genlab.serve.errors import APIError
from genlab.serve.jobs_store import JobRequest

log = logging.getLogger("genlab.serve")

JOBS_DIR = ".genlab-jobs"  # inside the runs folder: one log per job
FINAL = ("succeeded", "failed", "cancelled", "interrupted")
POLL_S = 0.5  # the scheduler's period
BEAT_S = 2.0  # how often a scheduler says it is alive
STALE_S = 30.0  # a scheduler silent for this long is gone: its jobs are adopted
SSE_POLL_S = 0.25
SSE_KEEPALIVE_S = 15.0
RETRY_AFTER_S = 30
# every worker this process started, until reaped, by pid: (process, start time); any manager in the process polls it
_CHILDREN: dict[int, tuple[subprocess.Popen, str | None]] = {}
_CHILDREN_LOCK = threading.Lock()
# a worker in its own session (its own process group on Windows): it outlives the server, and no Ctrl-C reaches it
DETACHED: dict[str, Any] = ({"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)} if os.name == "nt"
                            else {"start_new_session": True})
ERRORS = {400: {"description": "a bad request (the error says which field)"},
          404: {"description": "no such job"}, 409: {"description": "the run exists, or the job has finished"},
          429: {"description": "the queue is full (see Retry-After)"}}


class JobManager:
    """The jobs of one runs folder: submitted, scheduled, watched and cancelled (see the module's text)."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.runs = Path(config.runs)
        self.store = st.Store(config.jobs_path)
        self.owner = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._beat_at = 0.0

    # --- the scheduler ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin scheduling: adopt the jobs a previous server left, then start queued ones as slots free up."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._beat(force=True)
        self._thread = threading.Thread(target=self._loop, name="genlab-jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling; running workers go on, and the next server (or another one now) adopts them."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self.store.transaction() as c:
            c.execute("UPDATE jobs SET owner = NULL WHERE owner = ? AND status = 'running'", (self.owner,))
            c.execute("DELETE FROM servers WHERE owner = ?", (self.owner,))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as e:  # noqa: BLE001 - a busy database or a full disk: try again next time
                log.error("jobs scheduler: %s: %s", type(e).__name__, e)
            self._stop.wait(POLL_S)

    def tick(self) -> None:
        """One round: say this server is alive, finish jobs whose worker exited, adopt orphans, start queued jobs."""
        self._beat()
        for row in self.store.all("SELECT * FROM jobs WHERE status = 'running' AND owner = ?", self.owner):
            self._watch(row)
        self._adopt()
        while not self._stop.is_set() and self._start_next():
            pass

    def _beat(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self._beat_at >= BEAT_S:
            self.store.run("INSERT INTO servers (owner, pid, pid_start, beat) VALUES (?, ?, ?, ?) ON CONFLICT (owner) "
                           "DO UPDATE SET beat = excluded.beat", self.owner, os.getpid(), st.start_time(os.getpid()),
                           now)
            self._beat_at = now

    def _owner_alive(self, owner: str | None) -> bool:
        if owner is None:
            return False
        if owner == self.owner:
            return True
        row = self.store.one("SELECT * FROM servers WHERE owner = ?", owner)
        return bool(row) and row["beat"] > time.time() - STALE_S and st.alive(row["pid"], row["pid_start"])

    def _adopt(self) -> None:
        rows = self.store.all("SELECT * FROM jobs WHERE status = 'running' AND (owner IS NULL OR owner != ?)",
                              self.owner)
        for row in rows:
            if self._owner_alive(row["owner"]):
                continue
            if row["owner"] is not None:  # a server that is gone
                self.store.run("DELETE FROM servers WHERE owner = ?", row["owner"])
            if self.store.run("UPDATE jobs SET owner = ? WHERE id = ? AND status = 'running' AND owner IS ?",
                              self.owner, row["id"], row["owner"]):
                log.info("jobs: adopted %s (pid %s)", row["id"], row["pid"])
                self._watch(self.store.one("SELECT * FROM jobs WHERE id = ?", row["id"]))

    def _start_next(self) -> bool:
        """Claim the oldest queued job if a slot is free (over all servers) and start its worker."""
        with self.store.transaction() as c:
            running = c.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetchone()[0]
            if running >= self.config.max_jobs:
                return False
            row = c.execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY created_at, rowid LIMIT 1").fetchone()
            if row is None:
                return False
            c.execute("UPDATE jobs SET status = 'running', owner = ?, started_at = ?, pid = NULL WHERE id = ? AND "
                      "status = 'queued'", (self.owner, int(time.time()), row["id"]))
        self._spawn(row)
        return True

    def _command(self, row: Any) -> list[str]:
        cmd = [sys.executable, "-m", "genlab.cli", "train", row["family"], "--data", row["data"],
               "--out", str(self.runs.resolve() / row["run"])]  # absolute: the worker runs in the runs folder
        for item in json.loads(row["overrides"]):
            cmd += ["--set", item]
        if row["config"]:
            cmd += ["--config", str(st.shipped_configs()[row["config"]])]  # the shipped file itself, never a name
        return cmd + (["--resume"] if row["resume"] else [])

    def _spawn(self, row: Any) -> None:
        log_path = self.runs / row["log"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the log shows each line as it is written
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(self._command(row), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, cwd=self.runs.resolve(), env=env, **DETACHED)
        except (OSError, KeyError) as e:
            self._finish(row["id"], "failed", None, f"the worker could not start: {e}")
            return
        started = st.start_time(proc.pid)
        with _CHILDREN_LOCK:
            _CHILDREN[proc.pid] = (proc, started)
        self.store.run("UPDATE jobs SET pid = ?, pid_start = ? WHERE id = ?", proc.pid, started, row["id"])
        log.info("jobs: started %s (pid %d): %s", row["id"], proc.pid, row["run"])
        self._signal(row["id"])  # a cancel that came while it was starting

    def _exit_code(self, row: Any) -> tuple[bool, int | None]:
        """(whether the worker exited, its exit code when known: only a process's own children tell theirs)."""
        pid = row["pid"]
        with _CHILDREN_LOCK:
            proc, started = _CHILDREN.get(pid, (None, None))
        if proc is not None and started == row["pid_start"]:
            code = proc.poll()  # reaps it: no zombie stays
            if code is None:
                return False, None
            with _CHILDREN_LOCK:
                _CHILDREN.pop(pid, None)
            return True, 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + N
        return (not st.alive(pid, row["pid_start"])), None

    def _watch(self, row: Any) -> None:
        if row["pid"] is None:  # a server claimed it and stopped before its worker was known (only it starts one)
            self._finish(row["id"], "interrupted", None, "the server stopped while starting the worker; resume=true "
                         "continues the run if it began")
            return
        done, code = self._exit_code(row)
        if not done:
            return
        error = st.last_line(self.runs / row["log"])
        if code == 0:
            status, error = "succeeded", None
        elif code is None:  # adopted, and gone: what it left tells how it ended
            if self._completed(row):
                status, error = "succeeded", None
            elif error and error.startswith("error:"):
                status = "failed"
            elif row["cancel_requested"]:
                status, error = "cancelled", None
            else:
                status, error = "interrupted", "the worker stopped while no server watched it; resume=true continues"\
                                               " from its last checkpoint"
        elif row["cancel_requested"]:
            status, error = "cancelled", None
        elif code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            status, error = "interrupted", f"stopped by a signal the server did not send (exit code {code}); " \
                                           "resume=true continues from its checkpoint"
        else:
            status = "failed"
            if code > 128 and not (error or "").startswith("error:"):
                error = f"the worker was killed by {st.signal_name(code - 128)}"
            error = error or f"the worker exited with code {code}"
        if error and error.startswith("error:"):  # genlab's one-line message, as the command line says it
            error = error[len("error:"):].strip()
        self._finish(row["id"], status, code, error)

    def _completed(self, row: Any) -> bool:
        run = self._run_dir(row["run"])
        try:
            return all((run / f).is_file() and (run / f).stat().st_mtime >= (row["started_at"] or 0)
                       for f in (MODEL_FILE, SUMMARY_FILE))
        except OSError:
            return False

    def _finish(self, job_id: str, status: str, code: int | None, error: str | None) -> None:
        self.store.run("UPDATE jobs SET status = ?, exit_code = ?, error = ?, finished_at = ? WHERE id = ? AND "
                       "status = 'running'", status, code, error, int(time.time()), job_id)
        log.info("jobs: %s %s%s", job_id, status, f": {error}" if error else "")

    def _signal(self, job_id: str) -> None:
        """SIGTERM, once, to the worker of a job whose cancel was asked for (a second would stop it mid-step)."""
        with self.store.transaction() as c:
            sent = c.execute("UPDATE jobs SET signalled = 1 WHERE id = ? AND status = 'running' AND cancel_requested "
                             "= 1 AND signalled = 0 AND pid IS NOT NULL", (job_id,)).rowcount
            row = c.execute("SELECT pid, pid_start FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if sent:
            st.terminate(row["pid"], row["pid_start"], signal.SIGTERM)

    # --- requests -----------------------------------------------------------------------------------------------

    def _run_dir(self, name: str) -> Path:
        return self.runs / name

    def submit(self, request: dict) -> dict:
        """Check a request and queue it; the job as ``get`` returns it."""
        req, name, max_steps = st.check_request(request, self.runs, self._default_name)
        job_id = f"job-{secrets.token_hex(12)}"
        job = {"id": job_id, "status": "queued", "family": req.family, "data": req.data, "run": name,
               "config": req.config, "overrides": list(req.overrides), "resume": int(req.resume),
               "created_at": int(time.time()), "max_steps": max_steps, "log": f"{JOBS_DIR}/{job_id}.log"}
        with self.store.transaction() as c:
            if c.execute("SELECT 1 FROM jobs WHERE run = ? AND status IN ('queued', 'running')", (name,)).fetchone():
                raise APIError(409, f"another job is already training the run {name}", param="name",
                               code="run_busy")
            queued = c.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]
            if queued >= self.config.queue:
                raise APIError(429, f"{queued} jobs are already queued; try again later", code="queue_full",
                               headers={"Retry-After": str(RETRY_AFTER_S)})
            st.insert_job(c, job)
        return self.get(job_id)

    def _default_name(self, family: str, data: str) -> str:
        base = f"{family}-{data}-{time.strftime('%Y%m%d-%H%M%S')}"
        taken = {r["run"] for r in self.store.all("SELECT run FROM jobs WHERE run LIKE ?", base + "%")}
        name, n = base, 1
        while name in taken or self._run_dir(name).exists():
            n += 1
            name = f"{base}-{n}"
        return name

    def _row(self, job_id: str) -> Any:
        row = self.store.one("SELECT * FROM jobs WHERE id = ?", job_id) if st.JOB_ID.match(job_id or "") else None
        if row is None:
            raise APIError(404, f"no such job: {job_id}", param="job_id", code="job_not_found")
        return row

    def _job(self, row: Any) -> dict:
        run = self._run_dir(row["run"])
        metrics = {} if run.is_symlink() else st.last_metrics(run / METRICS_FILE)
        max_steps = row["max_steps"]
        if max_steps is None and not run.is_symlink() and (run / CONFIG_TOML).is_file():
            max_steps = st.toml_max_steps(run / CONFIG_TOML)
        return {"id": row["id"], "object": "training.job", "status": row["status"], "family": row["family"],
                "data": row["data"], "run": row["run"], "config": row["config"],
                "set": json.loads(row["overrides"]), "resume": bool(row["resume"]), "created_at": row["created_at"],
                "started_at": row["started_at"], "finished_at": row["finished_at"], "exit_code": row["exit_code"],
                "error": row["error"], "pid": row["pid"], "cancel_requested": bool(row["cancel_requested"]),
                "metrics": metrics, "max_steps": max_steps, "log": row["log"]}

    def get(self, job_id: str) -> dict:
        return self._job(self._row(job_id))

    def list(self) -> list[dict]:
        return [self._job(r) for r in self.store.all("SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC")]

    def cancel(self, job_id: str) -> dict:
        """Queued: cancelled at once. Running: SIGTERM to its worker, which checkpoints; cancelled when it exits."""
        row = self._row(job_id)
        if row["status"] == "queued" and self.store.run(
                "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ? AND status = 'queued'",
                int(time.time()), job_id):
            return self.get(job_id)
        if self.store.run("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'", job_id):
            self._signal(job_id)
            return self.get(job_id)
        row = self._row(job_id)
        if row["status"] != "cancelled":
            raise APIError(409, f"job {job_id} has already {row['status']}" if row["status"] != "interrupted" else
                           f"job {job_id} was interrupted; there is nothing to cancel", param="job_id",
                           code="job_finished")
        return self._job(row)


def router(manager: JobManager) -> APIRouter:
    """The /v1/jobs endpoints over ``manager``."""
    api = APIRouter(tags=["jobs"])

    @api.post("/v1/jobs", status_code=201, summary="Start a training job", responses={
        k: v for k, v in ERRORS.items() if k in (400, 409, 429)})
    def create_job(body: JobRequest) -> dict:
        return manager.submit(body.model_dump(by_alias=True))

    @api.get("/v1/jobs", summary="List training jobs, newest first")
    def list_jobs() -> dict:
        return {"object": "list", "data": manager.list()}

    @api.get("/v1/jobs/{job_id}", summary="A training job: status and latest metrics", responses={404: ERRORS[404]})
    def get_job(job_id: str) -> dict:
        return manager.get(job_id)

    @api.delete("/v1/jobs/{job_id}", summary="Cancel a training job (a running one checkpoints first)",
                responses={404: ERRORS[404], 409: ERRORS[409]})
    def cancel_job(job_id: str) -> dict:
        return manager.cancel(job_id)

    @api.get("/v1/jobs/{job_id}/events", summary="Server-sent events: the job each time it changes, then [DONE]",
             response_class=StreamingResponse, responses={404: ERRORS[404], 200: {
                 "description": "`data: {job}` at each change of status or metrics, `data: [DONE]` after the end",
                 "content": {"text/event-stream": {}}}})
    async def job_events(job_id: str) -> StreamingResponse:
        first = await asyncio.to_thread(manager.get, job_id)  # 404 before the stream starts
        return StreamingResponse(_events(manager, first), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return api


async def _events(manager: JobManager, job: dict):
    last, quiet = None, 0.0
    while True:
        text = json.dumps(job, separators=(",", ":"))
        if text != last:
            yield f"data: {text}\n\n"
            last, quiet = text, 0.0
        if job["status"] in FINAL:
            yield "data: [DONE]\n\n"
            return
        await asyncio.sleep(SSE_POLL_S)
        quiet += SSE_POLL_S
        if quiet >= SSE_KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet = 0.0
        try:
            job = await asyncio.to_thread(manager.get, job["id"])
        except APIError as e:
            yield f"event: error\ndata: {json.dumps({'error': {'message': e.message, 'code': e.code}})}\n\n"
            return
