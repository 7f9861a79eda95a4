"""Every request body the HTTP API takes, as a reader of one file: what the fuzz harness attacks (``readers.py``).

The file is one HTTP request: its first line ``METHOD /path [content-type]`` (default ``application/json``), the
rest its body. It goes through the whole app in this process (no socket): a 2xx answer is a result, a 4xx one a
``GenlabError`` carrying the error's message (which must be the one error shape, on one line), and a 5xx or any
other exception is a crash. The served runs are those in ``$GENLAB_SERVE_RUNS`` (an empty folder when unset);
training jobs are queued but never started (the app's scheduler runs only in a server's lifespan).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError

METHODS = ("GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS")


@lru_cache(maxsize=4)
def _app(runs: str) -> Any:
    from genlab.serve.app import create_app
    from genlab.serve.config import ServeConfig

    return create_app(ServeConfig(runs=Path(runs), max_tokens=256, max_n=4, queue=8))


def _runs() -> str:
    runs = os.environ.get("GENLAB_SERVE_RUNS")
    if runs:
        return runs
    return _empty()


@lru_cache(maxsize=1)
def _empty() -> str:
    return tempfile.mkdtemp(prefix="genlab-serve-runs-")


def read_request(path: Path) -> int:
    """The status of the app's answer to the request in ``path`` (see the module's docstring)."""
    import httpx

    raw = Path(path).read_bytes()
    head, _, body = raw.partition(b"\n")
    parts = head.decode("latin-1").strip().split(" ", 2)
    if len(parts) < 2 or parts[0] not in METHODS or not parts[1].startswith("/v1/"):
        raise GenlabError(f"{path.name}: the first line must be 'METHOD /v1/... [content-type]'")
    method, target = parts[0], parts[1]
    content_type = parts[2] if len(parts) == 3 else "application/json"
    app = _app(_runs())

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=30) as client:
            return await client.request(method, target, content=body if method not in ("GET", "HEAD") else None,
                                        headers={"content-type": content_type})

    try:
        response = asyncio.run(send())
    except httpx.InvalidURL as e:  # the client refuses the target before any request is made
        raise GenlabError(f"{path.name}: {e}") from None
    if response.status_code >= 500:
        raise RuntimeError(f"server error {response.status_code}: {response.text[:300]}")
    if response.status_code >= 400:
        error = response.json()["error"]  # a refusal in any other shape is a crash (KeyError)
        if set(error) != {"message", "type", "param", "code"}:
            raise RuntimeError(f"error shape {sorted(error)}")
        raise GenlabError(f"{response.status_code} {error['message']}")
    return response.status_code
