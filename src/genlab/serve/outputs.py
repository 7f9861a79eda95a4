"""Every modality's outputs over HTTP: ``POST /v1/{endpoint}/generations`` per modality, embeddings, fill-mask,
code completion, and each run's card, loss curve and options.

A modality's generation request is built from its ``sample_options`` (``Option`` schemas: name, type, help,
default), so the OpenAPI schema describes each one without anything re-declared here; an option that names a file
(``Option.path``) takes the file's content instead, ``{"name": "tune.mid", "b64": "..."}``. Outputs go through the
run's release layer as ``genlab sample`` does (watermarked, then each file signed), and come back as OpenAI's
images API returns pictures: ``data: [{"b64_json": ...}]``, one item per output file (a sidecar manifest rides
with its file as ``c2pa_b64``); files that gather every output (an image grid) come under ``genlab.files``.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel, Field, create_model

from genlab import registry
from genlab.runfiles import CARD_FILE, LOSS_PLOT
from genlab.serve.errors import APIError
from genlab.serve.schema import Body

TYPES = {int: int, float: float, str: str, list: list[str]}
MAX_INPUTS = 256  # texts per embeddings request
PREFIX = "sample"


class FileValue(Body):
    """A file sent in a request, for an option that names a file."""

    name: str = Field(pattern=r"^[^/\\\x00]{1,128}$", description="the file's name (its suffix says its format)")
    b64: str = Field(description="the file's content, base64")


class _Generation(Body):
    model: str = Field(description="a run's folder name (GET /v1/models)")
    n: int = Field(1, ge=1, description="outputs to generate")
    seed: int | None = Field(None, ge=0, lt=2**63, description="the same seed gives the same outputs")
    watermark: bool | None = Field(None, description="mark the outputs (default: the run's release.watermark)")
    sign: bool | None = Field(None, description="sign each file (default: the run's release.sign)")
    response_format: Literal["b64_json"] = Field("b64_json", description="files come back base64 in the JSON")
    user: str | None = Field(None, max_length=256, description="the end user's id (not stored)")


class EmbeddingsRequest(Body):
    model: str
    input: str | list[str] = Field(description="a text, or a list of texts")
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = Field(None, max_length=256)


class FillRequest(Body):
    model: str
    text: str = Field(max_length=100_000, description='a text with one or more [MASK], e.g. "To be or [MASK]"')
    top_k: int = Field(5, ge=1, le=100, description="fillers per [MASK]")


class CodeRequest(Body):
    model: str
    prefix: str = Field(max_length=1_000_000, description="the text before the cursor")
    max_tokens: int = Field(64, ge=1, description="at most this many tokens")
    temperature: float = Field(0.0, ge=0, le=100, description="0 = greedy")
    seed: int | None = Field(None, ge=0, lt=2**63)
    no_repeat_ngram: int | None = Field(None, ge=0, le=64, description="no n-gram of this many tokens twice")
    watermark: bool | None = None


def request_model(modality: Any) -> type[BaseModel]:
    """The generation request of ``modality``: the common fields plus its sampling options."""
    fields: dict[str, Any] = {}
    for o in modality.sample_options:
        kind = FileValue if o.path else TYPES[o.type]
        fields[o.name] = (kind | None, Field(o.default, description=o.help))
    if "prompt" not in fields:  # OpenAI's images API always sends one: only an empty prompt is meaningful here
        fields["prompt"] = (Literal[""], Field("", description="this kind of model takes no prompt: leave it empty"))
    name = "".join(w.capitalize() for w in re.split(r"[^A-Za-z0-9]", modality.endpoint)) + "GenerationRequest"
    return create_model(name, __base__=_Generation, **fields)


def router(server: Any) -> APIRouter:
    api = APIRouter(tags=["generation"])
    for name in registry.MODALITIES:
        _generation_route(api, server, registry.get_modality(name))

    @api.post("/v1/embeddings", tags=["text"], summary="Embed texts (OpenAI embeddings; masked language models)")
    async def embeddings(body: EmbeddingsRequest) -> dict[str, Any]:
        import numpy as np

        texts = [body.input] if isinstance(body.input, str) else body.input
        if not 1 <= len(texts) <= MAX_INPUTS:
            raise APIError(400, f"input takes 1 to {MAX_INPUTS} texts", param="input")
        served = await server.served(body.model, need="/v1/embeddings")
        vectors = await server.compute(served.run.model.embed, texts)  # (N, C) float32
        tokens = sum(len(served.run.model.tokenizer_.encode(t).ids) for t in texts)
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()
                 if body.encoding_format == "base64" else [float(x) for x in v]} for i, v in enumerate(vectors)]
        return {"object": "list", "data": data, "model": body.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @api.post("/v1/fill", tags=["text"], summary="Fill each [MASK] of a text (masked language models)")
    async def fill(body: FillRequest) -> dict[str, Any]:
        served = await server.served(body.model, need="/v1/fill")
        filled = await server.compute(served.run.model.fill, body.text, top_k=body.top_k)
        return {"object": "fill", "model": body.model,
                "masks": [[{"token": t, "probability": p} for t, p in fillers] for fillers in filled]}

    @api.post("/v1/code/completions", tags=["text"], summary="Complete code at the cursor (whole lines)")
    async def code(body: CodeRequest) -> dict[str, Any]:
        from genlab.sample.code import complete

        if body.max_tokens > server.config.max_tokens:
            raise APIError(400, f"max_tokens must be at most {server.config.max_tokens}", param="max_tokens")
        served = await server.served(body.model, need="/v1/code/completions")
        extra = {} if body.no_repeat_ngram is None else {"no_repeat_ngram": body.no_repeat_ngram}
        text = await server.compute(complete, served.run, body.prefix, max_new_tokens=body.max_tokens,
                                    temperature=body.temperature, seed=body.seed, watermark=body.watermark, **extra)
        provenance = served.run.release.generation(watermark=body.watermark, prompt=body.prefix, seed=body.seed,
                                                   endpoint="code")
        return {"object": "code.completion", "model": body.model, "completion": text,
                "genlab": {"provenance": provenance}}

    @api.get("/v1/runs/{model}/card", tags=["runs"], summary="The run's model card (Markdown)",
             response_class=PlainTextResponse)
    async def card(model: str) -> PlainTextResponse:
        from genlab.responsible.card import render_card

        path = server.pool.path(model)
        text = (path / CARD_FILE).read_text(encoding="utf-8") if (path / CARD_FILE).is_file() else \
            await server.compute(render_card, path)
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")

    @api.get("/v1/runs/{model}/loss.png", tags=["runs"], summary="The run's loss curve",
             response_class=FileResponse)
    def loss(model: str) -> FileResponse:
        path = server.pool.path(model) / LOSS_PLOT
        if not path.is_file() or path.is_symlink():
            raise APIError(404, f"'{model}' has no loss curve yet", param="model")
        return FileResponse(path, media_type="image/png")

    @api.get("/v1/runs/{model}", tags=["runs"], summary="What a run is, serves and takes")
    def run(model: str) -> dict[str, Any]:
        card = server.model_card(model)
        modality = registry.get_modality(card["genlab"]["modality"])
        options = [{"name": o.name, "type": o.type.__name__, "help": o.help, "default": o.default, "file": o.path}
                   for o in modality.sample_options]
        return {**card, "options": options, "prints": modality.prints}

    return api


def _generation_route(api: APIRouter, server: Any, modality: Any) -> None:
    Request = request_model(modality)
    path = f"/v1/{modality.endpoint}/generations"

    async def generate(body: Request) -> dict[str, Any]:  # type: ignore[valid-type]
        most = server.config.max_rows if modality.counts == "rows" else server.config.max_n
        if body.n > most:
            raise APIError(400, f"n must be at most {most}", param="n")
        served = await server.served(body.model, need=path)
        if served.run.modality is not modality:
            raise APIError(400, f"'{body.model}' is a {served.run.modality.name} run; use "
                           f"/v1/{served.run.modality.endpoint}/generations", param="model")
        given = {o.name: getattr(body, o.name) for o in modality.sample_options if getattr(body, o.name) is not None}
        for o in modality.sample_options:
            if o.cap and o.name in given and given[o.name] > getattr(server.config, o.cap):
                raise APIError(400, f"{o.name} must be at most {getattr(server.config, o.cap)}", param=o.name)
        return await server.compute(_generate, served.run, modality, body, given)

    generate.__name__ = f"generate_{modality.endpoint}"
    generate.__annotations__ = {"body": Request, "return": dict[str, Any]}  # the model made above, not a name
    api.post(path, summary=f"Generate {modality.name} outputs: files, watermarked and signed")(generate)


def _generate(run: Any, modality: Any, body: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Sample, save signed into a temporary folder, and return every file base64."""
    with tempfile.TemporaryDirectory(prefix="genlab-serve-") as tmp:
        for o in modality.sample_options:  # uploaded files become files the option can name
            if o.path and o.name in given:
                given[o.name] = str(_upload(Path(tmp), given[o.name], o.name))
        options = modality.check_options("sample", given)
        outputs = run.sample(body.n, seed=body.seed, watermark=body.watermark, **options)
        folder = outputs.save(Path(tmp) / "out", sign=body.sign, prefix=PREFIX)
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    data, extra = [], []
    for name, content in files.items():
        if name.endswith(".c2pa"):
            continue
        item = {"filename": name, "content_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
                "b64_json": base64.b64encode(content).decode()}
        if name + ".c2pa" in files:
            item["c2pa_b64"] = base64.b64encode(files[name + ".c2pa"]).decode()
        (data if name.startswith(PREFIX) else extra).append(item)
    sections = outputs.sections()
    return {"created": int(time.time()), "model": body.model, "data": data,
            "genlab": {"provenance": outputs.generation, "files": extra, "note": run.release.note or None,
                       "text": [{"title": t, "text": s} for t, s in sections] if sections else None}}


def _upload(folder: Path, value: Any, param: str) -> Path:
    try:
        content = base64.b64decode(value.b64, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, f"{param}.b64 is not base64", param=param) from None
    suffix = Path(value.name).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
        raise APIError(400, f"{param}.name needs a file type (e.g. tune.mid)", param=param)
    path = folder / f"upload{suffix}"
    path.write_bytes(content)
    return path
