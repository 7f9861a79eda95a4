"""Starting a real ``genlab serve`` for a test (or a benchmark): a subprocess on a free loopback port, its output in
a log file, stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        """Resident memory of the server process, bytes."""
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss


@contextlib.contextmanager
def start_server(runs: Path, *args: str, log: Path, env: dict[str, str] | None = None,
                 wait_s: float = 120.0) -> Iterator[Server]:
    """``genlab serve --runs RUNS ARGS`` on a free loopback port, its output in ``log``; stopped on exit."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "genlab", "serve", "--runs", str(runs), "--port", str(port), *args],
                            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"genlab serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/v1/health", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("genlab serve did not answer in time")
            time.sleep(0.2)
        yield Server(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


@contextlib.contextmanager
def server(runs: Path, *args: str, env: dict[str, str] | None = None, wait_s: float = 60.0) -> Iterator[str]:
    """``genlab serve --runs RUNS ARGS``; yields its base URL (``http://127.0.0.1:PORT``), its log beside the runs."""
    with start_server(runs, *args, log=Path(runs) / f".serve-{time.monotonic_ns()}.log", env=env,
                      wait_s=wait_s) as started:
        yield started.url
