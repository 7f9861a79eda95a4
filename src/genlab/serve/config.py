"""The server's settings: ``genlab serve`` flags, each with its limit (what a request may ask for at most)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = ("127.0.0.1", "::1", "localhost")
JOBS_DB = ".genlab-jobs.sqlite3"  # inside the runs folder: every server on that folder sees the same jobs


@dataclass(frozen=True)
class ServeConfig:
    runs: Path = Path("runs")  # the folder whose runs are served (models are named by their folder's name)
    host: str = "127.0.0.1"  # where to listen; off loopback, API keys are required
    port: int = 8000  # TCP port
    max_memory: int = 4 << 30  # bytes of loaded runs kept at once (least recently used ones unloaded first)
    max_jobs: int = 1  # training jobs running at once (the others wait in the queue)
    batching: bool = True  # continuous batching of completions (off: one request at a time per model)
    max_batch: int = 64  # rows (sequences) a model's running batch holds at once
    queue: int = 256  # requests waiting per model (and for other work) before 429 Too Many Requests
    workers: int = 2  # requests other than completions computed at once (images, music, embeddings ...)
    threads: int = 0  # PyTorch threads per batch and worker (0: PyTorch's default, one per core)
    max_tokens: int = 2048  # most tokens one completion may ask for
    max_n: int = 16  # most outputs (completions, images, pieces) per request
    max_rows: int = 100_000  # most rows per request where n counts rows of one file (synthetic tables)
    max_body: int = 1 << 20  # bytes of a JSON request body
    max_upload: int = 20 << 20  # bytes of an uploaded file (verify, detect)
    body_timeout: float = 30.0  # seconds a client may take to send a request's body (then 408)
    cors: tuple[str, ...] = ()  # origins allowed to call from a browser page elsewhere (none: closed)
    require_keys: bool | None = None  # None: required off loopback only
    keys_file: Path | None = None  # the hashed API keys (default: genlab's settings folder)
    log_requests: bool = False  # one line per request on standard error
    jobs_db: Path | None = field(default=None)  # default: RUNS/.genlab-jobs.sqlite3

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK

    @property
    def keys_required(self) -> bool:
        return (not self.loopback) if self.require_keys is None else self.require_keys

    @property
    def jobs_path(self) -> Path:
        return self.jobs_db if self.jobs_db is not None else self.runs / JOBS_DB
