"""Checking uploaded files: ``POST /v1/verify`` (signature and watermark, as ``genlab verify``) and
``POST /v1/detect`` (a run's keyed text watermark, as ``genlab detect``).

Files arrive as a multipart form. Each is written under a fresh temporary folder with its base name only (a path
in a file name never reaches the file system); a sidecar manifest (``name.c2pa``) uploaded beside its file is
read with it. A text's watermark is looked for with the key of the run its manifest names, among the served runs.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, UploadFile

from genlab.errors import GenlabError
from genlab.serve.errors import APIError

MAX_FILES = 32
SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _name(upload: UploadFile, seen: set[str]) -> str:
    """A safe base name for an upload: no folders, no leading dot, unique in the request."""
    base = SAFE.sub("_", Path((upload.filename or "file").replace("\\", "/")).name).lstrip(".")[:128] or "file"
    if base in seen:
        raise APIError(400, f"two files named {base}", param="files")
    seen.add(base)
    return base


async def _save(files: list[UploadFile], folder: Path, limit: int) -> list[Path]:
    if not 1 <= len(files) <= MAX_FILES:
        raise APIError(400, f"send 1 to {MAX_FILES} files", param="files")
    seen: set[str] = set()
    paths = []
    for upload in files:
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise APIError(413, f"{upload.filename} is over {limit:,} bytes", param="files", code="file_too_large")
        path = folder / _name(upload, seen)
        path.write_bytes(data)
        paths.append(path)
    return paths


def router(server: Any) -> APIRouter:
    api = APIRouter(tags=["provenance"])

    @api.post("/v1/verify", summary="Check files' C2PA signatures and watermarks (one verdict per file)")
    async def verify(files: list[UploadFile] = File(description="generated files, with any .c2pa sidecars")):
        from genlab.responsible.verify import verify as check

        def run(paths: list[Path]) -> list[dict[str, Any]]:
            verdicts = []
            for path in paths:
                if path.suffix == ".c2pa" and path.with_suffix("") in paths:
                    continue  # a sidecar is read with its file
                try:
                    v = check(path, runs=server.config.runs)
                    p = v.provenance
                    verdicts.append({"file": path.name, "signature": p.status, "signer": p.signer,
                                     "failures": list(p.failures), "generation": p.generation,
                                     "watermark": dataclasses.asdict(v.watermark) if v.watermark else None})
                except GenlabError as e:
                    verdicts.append({"file": path.name, "signature": "unreadable", "signer": None,
                                     "failures": [str(e).replace(str(path.parent) + "/", "")], "generation": None,
                                     "watermark": None})
            return verdicts

        with tempfile.TemporaryDirectory(prefix="genlab-verify-") as tmp:
            paths = await _save(files, Path(tmp), server.config.max_upload)
            verdicts = await server.compute(run, paths)
        return {"object": "list", "data": verdicts, "trusted": all(v["signature"] == "trusted" for v in verdicts)}

    @api.post("/v1/detect", summary="Test texts for a run's keyed watermark (z-score, p-value, verdict)")
    async def detect(model: str = Form(description="the run whose watermark key to test with"),
                     files: list[UploadFile] = File(description="text files, one document each"),
                     window: int = Form(100, ge=0, le=100_000, description="tokens per sliding window (0 = off)")):
        served = await server.served(model, need=_generates(server, model))
        marks = served.run.release.marks
        if marks is None or not marks.keyed:
            raise APIError(400, f"'{model}' outputs carry no keyed watermark; POST /v1/verify checks the others",
                           param="model")

        def run(paths: list[Path]) -> list[dict[str, Any]]:
            out = []
            for path in paths:
                try:
                    d = marks.detect(marks.read(path), window=window)
                except GenlabError as e:
                    raise APIError(400, f"{path.name}: {str(e).replace(str(path), path.name)}", param="files")
                out.append({"file": path.name, "document": dataclasses.asdict(d.document),
                            "windows": [dataclasses.asdict(w) for w in d.windows]})
            return out

        with tempfile.TemporaryDirectory(prefix="genlab-detect-") as tmp:
            paths = await _save(files, Path(tmp), server.config.max_upload)
            results = await server.compute(run, paths)
        return {"object": "list", "model": model, "data": results}

    return api


def _generates(server: Any, model: str) -> str:
    """The generation endpoint of ``model`` (detecting needs a run that generates)."""
    caps = server.capabilities(server.pool.path(model).name)
    found = [e for e in caps["endpoints"] if e.endswith("/generations")]
    if not found:
        raise APIError(400, f"'{model}' generates nothing, so nothing carries its watermark", param="model")
    return found[0]
