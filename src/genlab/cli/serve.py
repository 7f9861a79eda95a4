"""The serving verbs of the command line: serve, and the API keys it checks (keys create-api, list-api,
revoke-api). See docs/serving.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from genlab.cli.common import err, out, table
from genlab.errors import GenlabError

UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}


def size(text: str, flag: str) -> int:
    """'4GB', '512MB', '1g' or a number of bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in UNITS:
        raise GenlabError(f"{flag} takes a size such as 4GB or 512MB, got {text!r}")
    value = int(float(m.group(1)) * UNITS[m.group(2).lower()])
    if value < 1:
        raise GenlabError(f"{flag} must be more than 0, got {text!r}")
    return value


def serve(
    runs: Annotated[Path, typer.Option(help="the folder whose runs are served (each run by its folder's name)")] = Path("runs"),
    host: Annotated[str, typer.Option(help="address to listen on; off loopback, API keys are required")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8000,
    max_memory: Annotated[str, typer.Option(help="memory for loaded runs (least recently used unloaded first)")] = "4GB",
    max_jobs: Annotated[int, typer.Option(help="training jobs running at once", min=1, max=64)] = 1,
    batching: Annotated[bool, typer.Option("--batching/--no-batching", help="continuous batching of completions")] = True,
    max_batch: Annotated[int, typer.Option(help="sequences a model's running batch holds", min=1, max=1024)] = 64,
    queue: Annotated[int, typer.Option(help="requests waiting before 429 Too Many Requests", min=1, max=100_000)] = 256,
    workers: Annotated[int, typer.Option(help="requests other than completions computed at once", min=1, max=64)] = 2,
    threads: Annotated[int, typer.Option(help="PyTorch threads per batch and worker (0: one per core)", min=0, max=1024)] = 0,
    max_tokens: Annotated[int, typer.Option(help="most tokens a completion may ask for", min=1, max=1_000_000)] = 2048,
    max_n: Annotated[int, typer.Option(help="most outputs per request", min=1, max=1024)] = 16,
    max_rows: Annotated[int, typer.Option(help="most rows of a synthetic table per request", min=1, max=10**8)] = 100_000,
    max_body: Annotated[str, typer.Option(help="largest JSON body")] = "1MB",
    max_upload: Annotated[str, typer.Option(help="largest uploaded file (verify, detect)")] = "20MB",
    cors: Annotated[Optional[list[str]], typer.Option(help="an origin allowed to call from its pages (repeatable)")] = None,
    require_key: Annotated[Optional[bool], typer.Option("--require-key/--no-require-key", help="API keys (default: required off loopback)")] = None,
    log_requests: Annotated[bool, typer.Option("--log-requests", help="a line per request on standard error")] = False,
) -> None:
    """Serve every run in a folder over HTTP (OpenAI's API and genlab's own) with the web studio at /."""
    import uvicorn

    from genlab.serve.app import create_app
    from genlab.serve.config import ServeConfig
    from genlab.serve.keys import keys_path, read_keys

    if not runs.is_dir():
        raise GenlabError(f"{runs}: no such folder; train a run into it first, e.g. "
                          f"`genlab train gpt --data shakespeare --config demo --out {runs / 'shk'}`")
    config = ServeConfig(runs=runs, host=host, port=port, max_memory=size(max_memory, "--max-memory"),
                         max_jobs=max_jobs, batching=batching, max_batch=max_batch, queue=queue, workers=workers, threads=threads,
                         max_tokens=max_tokens, max_n=min(max_n, max_batch), max_rows=max_rows, max_body=size(max_body, "--max-body"),
                         max_upload=size(max_upload, "--max-upload"), cors=tuple(cors or ()),
                         require_keys=require_key, log_requests=log_requests)
    if config.keys_required and not read_keys():
        why = "--require-key asks for API keys" if config.loopback else f"serving on {host} needs API keys"
        raise GenlabError(f"{why} and {keys_path()} holds none: run `genlab keys create-api --name NAME` first"
                          + ("" if config.loopback else " (or serve on 127.0.0.1)"))
    _check_port(host, port)
    app = create_app(config)
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    count = len(app.state.server.pool.names())
    err.print(f"serving {count} run{'' if count == 1 else 's'} from {runs} at {where} (studio at {where}/, "
              f"API at {where}/v1, schema at {where}/openapi.json); API keys {'required' if config.keys_required else 'off'}",
              markup=False, highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="info" if log_requests else "warning",
                access_log=log_requests, server_header=False)


def _check_port(host: str, port: int) -> None:
    """Refuse, in one line, an address that cannot be listened on (uvicorn would say it after starting)."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        if e.errno in (98, 48):  # EADDRINUSE on Linux, macOS
            raise GenlabError(f"port {port} on {host} is in use; choose another --port") from None
        raise GenlabError(f"cannot listen on {host}:{port} ({e.strerror.split(' (')[0]}); check --host") from None


def create_api(name: Annotated[str, typer.Option(help="who or what uses the key, e.g. 'laptop' or 'ci'")]) -> None:
    """Make an API key for `genlab serve`: shown once, stored only as its hash."""
    from genlab.serve.keys import create_key, keys_path

    key, record = create_key(name)
    err.print(f"API key {record['id']} ({name}) stored hashed in {keys_path()}; it is shown once, here:",
              markup=False, highlight=False)
    print(key)


def list_api() -> None:
    """The API keys `genlab serve` accepts (their ids and names; the keys themselves are not stored)."""
    import time

    from genlab.serve.keys import read_keys

    t = table("API keys", "id", "name", "created")
    for k in read_keys():
        t.add_row(str(k.get("id")), str(k.get("name")), time.strftime("%Y-%m-%d %H:%M", time.localtime(k.get("created", 0))))
    out.print(t)


def revoke_api(key_id: Annotated[str, typer.Argument(help="the key's id, as `genlab keys list-api` shows it")]) -> None:
    """Stop accepting an API key (a running server notices at its next request)."""
    from genlab.serve.keys import revoke_key

    record = revoke_key(key_id)
    err.print(f"revoked {record['id']} ({record.get('name')})", markup=False, highlight=False)
