"""OpenAI's text API over genlab's text runs: ``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``.

The official ``openai`` client works against it by changing only its base URL. Completions run in the model's
continuous batch (``engine.py``); ``stream: true`` answers with server-sent events, ending ``data: [DONE]``.
Each response carries, besides OpenAI's fields, ``genlab.provenance``: what a signed file's manifest would say
(run id, weights' hash, the prompt's hash, the seed and settings, the watermark's parameters, never its key).

Chat template (a genlab run is a plain language model, so messages become one text it continues)::

    SYSTEM:\\n{system message}\\n\\nUSER:\\n{user message}\\n\\nASSISTANT:\\n

Each message is its speaker in capitals (its ``name`` when it has one, else its role), a colon, a new line, the
content and a blank line; the prompt ends with the next assistant speaker (the name of the last assistant message
that had one, else ``ASSISTANT``). The answer stops at a blank line (``\\n\\n``) or at the request's own stops. A
Shakespeare run, whose plays are written this way, answers as the character named.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field

from genlab.sample.text import check_sampling
from genlab.serve.engine import Completion, Engine
from genlab.serve.errors import APIError
from genlab.serve.schema import Body

MAX_STOPS = 4  # as OpenAI
MAX_LOGPROBS = 5


class _OpenAIRequest(Body):

    model: str = Field(description="a run's folder name (GET /v1/models)")
    max_tokens: int | None = Field(None, ge=1, description="tokens to generate per choice (default 16)")
    temperature: float = Field(1.0, ge=0, le=100, description="0 = greedy; higher = more random")
    top_p: float = Field(1.0, gt=0, le=1, description="sample within this much probability mass")
    top_k: int | None = Field(None, ge=1, description="genlab: sample among the k most likely tokens")
    n: int = Field(1, ge=1, description="choices to generate")
    stop: str | list[str] | None = Field(None, description="up to 4 strings that end a choice")
    seed: int | None = Field(None, ge=0, lt=2**63, description="the same seed gives the same text")
    stream: bool = Field(False, description="send the text as it is generated (server-sent events)")
    stream_options: dict[str, bool] | None = Field(None, description="{include_usage: true}: a last usage chunk")
    presence_penalty: float = Field(0.0, ge=0, le=0, description="accepted only as 0 (not supported)")
    frequency_penalty: float = Field(0.0, ge=0, le=0, description="accepted only as 0 (not supported)")
    user: str | None = Field(None, max_length=256, description="the end user's id (not stored)")


class CompletionRequest(_OpenAIRequest):
    prompt: str | list[str] = Field("", description="the text to continue, or a list of texts")
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS, description="log-probabilities of the top tokens")
    echo: Literal[False] = Field(False, description="accepted only as false")


class Message(Body):

    role: Literal["system", "developer", "user", "assistant"]
    content: str = Field(max_length=1_000_000)
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9 _.'-]{1,64}$", description="the speaker's name")


class ChatRequest(_OpenAIRequest):
    messages: list[Message] = Field(min_length=1, description="the conversation so far")
    logprobs: bool = Field(False, description="log-probabilities of the chosen tokens")
    top_logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS, description="alternatives per token")
    max_completion_tokens: int | None = Field(None, ge=1, description="as max_tokens")


def chat_prompt(messages: list[Message]) -> str:
    """The documented template (module docstring)."""
    text = "".join(f"{(m.name or m.role).upper()}:\n{m.content}\n\n" for m in messages)
    speaker = next((m.name for m in reversed(messages) if m.role == "assistant" and m.name), "assistant")
    return text + f"{speaker.upper()}:\n"


def router(app_state: Any) -> APIRouter:
    """``app_state``: the server (``pool``, ``config``, ``run_text`` helpers) from ``app.py``."""
    api = APIRouter(tags=["text"])

    @api.get("/v1/models", summary="The served runs, as OpenAI's model list")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [app_state.model_card(name) for name in app_state.pool.names()]}

    @api.get("/v1/models/{model}", summary="One served run")
    def model(model: str) -> dict[str, Any]:
        app_state.pool.path(model)
        return app_state.model_card(model)

    @api.post("/v1/completions", summary="Continue a prompt (OpenAI completions)")
    async def completions(body: CompletionRequest, request: Request):
        prompts = body.prompt if isinstance(body.prompt, list) else [body.prompt]
        if not prompts or len(prompts) * body.n > app_state.config.max_n:
            raise APIError(400, f"prompts x n must be between 1 and {app_state.config.max_n}", param="n")
        if any(not isinstance(p, str) for p in prompts):
            raise APIError(400, "prompt must be a string or a list of strings", param="prompt")
        return await _serve(app_state, body, prompts, request, chat=False, stops=_stops(body.stop))

    @api.post("/v1/chat/completions", summary="Answer a conversation (OpenAI chat completions)")
    async def chat(body: ChatRequest, request: Request):
        if body.n > app_state.config.max_n:
            raise APIError(400, f"n must be at most {app_state.config.max_n}", param="n")
        stops = (*_stops(body.stop), "\n\n")  # a blank line ends the assistant's turn (the template)
        body = body.model_copy(update={"max_tokens": body.max_tokens or body.max_completion_tokens})
        return await _serve(app_state, body, [chat_prompt(body.messages)], request, chat=True, stops=stops)

    return api


def _stops(stop: str | list[str] | None) -> tuple[str, ...]:
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if len(stops) > MAX_STOPS or any(not s or len(s) > 64 for s in stops):
        raise APIError(400, f"stop takes at most {MAX_STOPS} non-empty strings of at most 64 characters", param="stop")
    return stops


async def _serve(app_state: Any, body: Any, prompts: list[str], request: Request, *, chat: bool,
                 stops: tuple[str, ...]):
    """Submit one request per prompt to the model's batch; answer whole, or stream the choices' text."""
    max_tokens = body.max_tokens or 16
    if max_tokens > app_state.config.max_tokens:
        raise APIError(400, f"max_tokens must be at most {app_state.config.max_tokens}", param="max_tokens")
    top_p = body.top_p if body.top_p < 1 else None
    check_sampling(body.n, max_tokens, body.temperature, body.top_k, top_p)
    k = (body.top_logprobs or 0) if chat and body.logprobs else (None if chat else body.logprobs)
    served = await app_state.served(body.model, need="/v1/chat/completions" if chat else "/v1/completions")
    engine: Engine = app_state.engine(served)
    model = served.run.model
    ids = [model.encode_prompt(p) for p in prompts]  # a prompt too long: 400 (at most --max-body of text)
    loop, queue = asyncio.get_running_loop(), asyncio.Queue()
    reqs = []
    for i, prompt_ids in enumerate(ids):
        def sink(events: list[dict], i: int = i) -> None:  # a step's events, from the engine's thread
            loop.call_soon_threadsafe(queue.put_nowait, (i, events))
        seed = None if body.seed is None else body.seed + i  # each prompt of a list its own seed
        reqs.append(Completion(prompt_ids, body.n, max_tokens, body.temperature, body.top_k, top_p, seed, stops,
                               k, sink))
    try:
        for req in reqs:
            engine.submit(req)
    except APIError:
        for req in reqs:
            req.cancelled = True
        raise
    release = served.run.release
    provenance = [release.generation(prompt=p, seed=r.seed, max_new_tokens=max_tokens, temperature=body.temperature,
                                     top_k=body.top_k, top_p=top_p, endpoint="chat" if chat else "completions")
                  for p, r in zip(prompts, reqs)]
    head = {"id": f"{'chatcmpl' if chat else 'cmpl'}-{secrets.token_hex(12)}", "created": int(time.time()),
            "model": body.model}
    events = _events(queue, reqs, body.n, request)
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(_sse(events, head, chat, include_usage, provenance), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Genlab-Run-Id": release.identity.run_id})
    choices: dict[int, dict[str, Any]] = {}
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    async for step in events:
        for index, event in step:
            if "done" in event:
                usage["prompt_tokens"] += event["prompt_tokens"]
                usage["completion_tokens"] += event["completion_tokens"]
                continue
            c = choices.setdefault(index, {"text": "", "tokens": [], "finish_reason": None})
            c["text"] += event["text"]
            c["tokens"] += event["tokens"]
            c["finish_reason"] = event["finish_reason"] or c["finish_reason"]
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    out = [_choice(i, c, chat, k) for i, c in sorted(choices.items())]
    return JSONResponse({**head, "object": "chat.completion" if chat else "text_completion", "choices": out,
                         "usage": usage, "genlab": {"provenance": _one(provenance)}},
                        headers={"X-Genlab-Run-Id": release.identity.run_id})


def _one(provenance: list[dict]) -> dict | list[dict]:
    """One prompt's provenance record, or one per prompt of a list."""
    return provenance[0] if len(provenance) == 1 else provenance


async def _events(queue: asyncio.Queue, reqs: list[Completion], n: int, request: Request) -> AsyncIterator:
    """Each step's [(choice index, event), ...] until every request is done; a client that goes away cancels its
    requests."""
    left = len(reqs)
    try:
        while left:
            try:
                i, events = await asyncio.wait_for(queue.get(), timeout=5.0)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return
                continue
            out = []
            for event in events:
                if "error" in event:
                    raise event["error"]
                if "done" in event:
                    left -= 1
                    out.append((i, event))
                else:
                    out.append((i * n + event["index"], event))
            yield out
    finally:
        for req in reqs:
            req.cancelled = True  # no-op for finished ones; frees the rows of abandoned ones


async def _sse(events: AsyncIterator, head: dict, chat: bool, include_usage: bool, provenance: list) -> AsyncIterator:
    obj = "chat.completion.chunk" if chat else "text_completion"
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    started: set[int] = set()
    offsets: dict[int, int] = {}  # characters of each choice sent so far (legacy logprobs' text_offset)
    try:
        async for step in events:
            chunks = []  # one write per step
            for index, event in step:
                if "done" in event:
                    usage["prompt_tokens"] += event["prompt_tokens"]
                    usage["completion_tokens"] += event["completion_tokens"]
                    continue
                if chat:
                    delta = {"content": event["text"]}
                    if index not in started:
                        delta["role"] = "assistant"
                        started.add(index)
                    choice = {"index": index, "delta": delta, "finish_reason": event["finish_reason"],
                              "logprobs": _chat_logprobs(event["tokens"]) if event["tokens"] else None}
                else:
                    at = offsets.get(index, 0)
                    offsets[index] = at + len(event["text"])
                    choice = {"index": index, "text": event["text"], "finish_reason": event["finish_reason"],
                              "logprobs": _legacy_logprobs(event["tokens"], at) if event["tokens"] else None}
                chunks.append(_data({**head, "object": obj, "choices": [choice]}))
            if chunks:
                yield "".join(chunks)
    except APIError as e:
        from genlab.serve.errors import body

        yield _data(body(e.status, e.message, e.param, e.code))
        return
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    if include_usage:
        yield _data({**head, "object": obj, "choices": [], "usage": usage})
    yield _data({**head, "object": obj, "choices": [], "genlab": {"provenance": _one(provenance)}})
    yield "data: [DONE]\n\n"


def _data(obj: dict) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


def _choice(index: int, c: dict, chat: bool, k: int | None) -> dict[str, Any]:
    if chat:
        return {"index": index, "message": {"role": "assistant", "content": c["text"]},
                "finish_reason": c["finish_reason"], "logprobs": _chat_logprobs(c["tokens"]) if k is not None else None}
    return {"index": index, "text": c["text"], "finish_reason": c["finish_reason"],
            "logprobs": _legacy_logprobs(c["tokens"], 0) if k is not None else None}


def _legacy_logprobs(tokens: list[dict], offset: int) -> dict[str, Any]:
    offsets, at = [], offset
    for t in tokens:
        offsets.append(at)
        at += len(t["token"])
    return {"tokens": [t["token"] for t in tokens], "token_logprobs": [t["logprob"] for t in tokens],
            "top_logprobs": [t["top"] for t in tokens], "text_offset": offsets}


def _chat_logprobs(tokens: list[dict]) -> dict[str, Any]:
    def item(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

    return {"content": [{**item(t["token"], t["logprob"]), "top_logprobs": [item(a, b) for a, b in t["top"].items()]}
                        for t in tokens]}
