"""Starting a real ``genlab serve`` for a test: a subprocess on a free loopback port, stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(runs: Path, *args: str, env: dict[str, str] | None = None, wait_s: float = 60.0) -> Iterator[str]:
    """``genlab serve --runs RUNS ARGS`` on a free port; yields its base URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    log = open(Path(runs) / f".serve-{port}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "genlab", "serve", "--runs", str(runs), "--port", str(port), *args],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"genlab serve exited with {proc.returncode}: "
                                   + (Path(runs) / f".serve-{port}.log").read_text()[-2000:])
            try:
                if httpx.get(url + "/v1/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("genlab serve did not answer in time")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
