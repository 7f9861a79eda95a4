"""The HTTP API and the web studio as one FastAPI app: ``create_app(ServeConfig(...))``; ``genlab serve`` runs it.

Routers: ``openai_text.py`` (models, completions, chat), ``outputs.py`` (every modality's generations, images,
embeddings, fill-mask, code completion, run cards), ``provenance.py`` (verify, detect), ``jobs.py`` (training
jobs); the studio's static files at ``/``. Around them (``limits.py``): API keys, body size limits, a bounded
queue of work that answers 429 with Retry-After, and CORS closed unless ``--cors`` opens it. Nothing here names a
family or a modality: what a run can do comes from its family's class and its modality plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from genlab import registry
from genlab.runfiles import CONFIG_TOML
from genlab.serve import errors
from genlab.serve.config import ServeConfig
from genlab.serve.errors import APIError
from genlab.serve.pool import RunPool, Served

STUDIO = Path(__file__).parent / "studio"
log = logging.getLogger("genlab.serve")


class Server:
    """What every endpoint shares: the config, the loaded runs, and the bounded pool of compute threads."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.pool = RunPool(config)
        self.slots: asyncio.Semaphore | None = None  # the compute threads free
        self.waiting = 0  # requests queued for a compute thread (counted in the event loop: no lock needed)
        self.jobs: Any = None
        self._capabilities: dict[tuple, dict[str, Any]] = {}  # (config.toml, its mtime and size) -> capabilities

    # -- runs -------------------------------------------------------------------------------------------------
    def capabilities(self, name: str) -> dict[str, Any]:
        """What a run can do, from its config alone (no weights loaded); read again when the file changes."""
        path = self.pool.path(name) / CONFIG_TOML
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in self._capabilities:
            self._capabilities[key] = self._read_capabilities(path)
        return self._capabilities[key]

    @staticmethod
    def _read_capabilities(path: Path) -> dict[str, Any]:
        from genlab.config import read_toml

        raw = read_toml(path)
        family_cls = registry.get_family(str(raw.get("family", "?")))
        modality = registry.get_modality(str(raw.get("modality") or family_cls.modality))
        endpoints = []
        if family_cls.generates:
            if modality.streams and hasattr(family_cls, "causal_lm"):  # the continuous batch decodes its network
                endpoints += ["/v1/completions", "/v1/chat/completions", "/v1/code/completions"]
            endpoints.append(f"/v1/{modality.endpoint}/generations")
        if hasattr(family_cls, "fill"):
            endpoints.append("/v1/fill")
        if hasattr(family_cls, "embed"):
            endpoints.append("/v1/embeddings")
        return {"family": family_cls.name, "dataset": Path(str(raw.get("dataset", "?"))).name,
                "modality": modality.name, "endpoints": endpoints}

    def model_card(self, name: str) -> dict[str, Any]:
        """A run as OpenAI lists a model, with what genlab knows of it under ``genlab``."""
        from genlab.runfiles import summarize

        path = self.pool.path(name)
        summary = summarize(path)
        loss = summary["best_val_loss"]
        return {"id": name, "object": "model", "created": int((path / CONFIG_TOML).stat().st_mtime),
                "owned_by": "genlab",
                "genlab": {**self.capabilities(name), "steps": summary["steps"], "max_steps": summary["max_steps"],
                           "best_val_loss": None if loss != loss else loss}}

    async def served(self, name: Any, *, need: str, param: str = "model") -> Served:
        """The loaded run ``name``, refused (400) when it does not serve the endpoint ``need`` (its path)."""
        caps = self.capabilities(self.pool.path(name, param=param).name)
        if need not in caps["endpoints"]:
            listed = ", ".join(caps["endpoints"]) or "none"
            raise APIError(400, f"'{name}' is a {caps['family']} run on {caps['modality']} data; it serves {listed}",
                           param=param, code="unsupported_model")
        ready = self.pool.ready(name)
        return ready if ready is not None else await asyncio.to_thread(self.pool.get, name, param=param)

    def engine(self, served: Served) -> Any:
        """The run's continuous batch (made on first use, with the run's watermark)."""
        from genlab.serve.engine import Engine

        c = self.config
        return self.pool.engine(served, lambda run: Engine.for_run(run, batching=c.batching, max_batch=c.max_batch,
                                                                   queue=c.queue, threads=c.threads))

    # -- compute ----------------------------------------------------------------------------------------------
    async def compute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn`` in one of ``--workers`` threads; 429 with Retry-After when ``--queue`` requests already wait."""
        if self.slots is None:  # made in the server's event loop, on its first use
            self.slots = asyncio.Semaphore(self.config.workers)
        if self.slots.locked() and self.waiting >= self.config.queue:
            raise APIError(429, f"{self.waiting} requests are waiting for the server; retry later",
                           code="queue_full", headers={"Retry-After": "2"})
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        finally:
            self.slots.release()

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.stop()
        self.pool.close()


def create_app(config: ServeConfig, *, jobs: bool = True) -> FastAPI:
    from genlab.serve import limits, openai_text, outputs, provenance
    from genlab.version import genlab_version

    server = Server(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if config.threads:  # PyTorch's thread count is per thread: the workers' threads set theirs when made
            import concurrent.futures

            import torch

            asyncio.get_running_loop().set_default_executor(concurrent.futures.ThreadPoolExecutor(
                initializer=torch.set_num_threads, initargs=(config.threads,), thread_name_prefix="genlab-worker"))
        if server.jobs is not None:
            server.jobs.start()
        yield
        server.close()

    app = FastAPI(title="genlab", version=genlab_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Every genlab run in a folder, over OpenAI's API and genlab's own (docs/serving.md).")
    app.state.server = server
    errors.install(app, hide=(str(config.runs.resolve()), str(config.runs)))
    app.include_router(openai_text.router(server))
    app.include_router(outputs.router(server))
    app.include_router(provenance.router(server))
    if jobs:
        from genlab.serve.jobs import JobManager, router as jobs_router

        server.jobs = JobManager(config)
        app.include_router(jobs_router(server.jobs))

    @app.get("/v1/health", tags=["server"], summary="Liveness, and what the server holds")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": genlab_version(), "time": int(time.time()),
                "loaded": list(server.pool.loaded), "memory_bytes": server.pool.memory(),
                "max_memory_bytes": config.max_memory, "auth": config.keys_required}

    schema = app.openapi

    def openapi() -> dict[str, Any]:
        """The schema, with the runs served now as the examples of every ``model`` field (made afresh each time)."""
        app.openapi_schema = None
        out = schema()
        names = server.pool.names()
        components = out.setdefault("components", {}).setdefault("schemas", {})
        for component in components.values():
            field = component.get("properties", {}).get("model")
            if field is not None and names:
                field["examples"] = names
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        components["Error"] = errors.SCHEMA
        for operation in (op for item in out.get("paths", {}).values() for op in item.values()):
            answers = operation.setdefault("responses", {})
            answers.pop("422", None)  # a bad request is a 400 in the one error shape, not FastAPI's 422
            for status, what in errors.DOCUMENTED.items():
                answers.setdefault(status, {"description": what, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}})
        return out

    app.openapi = openapi
    app.mount("/", StaticFiles(directory=STUDIO, html=True), name="studio")
    limits.install(app, config)
    return app
