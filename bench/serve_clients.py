"""Clients of ``genlab serve`` that measure or probe it, shared by ``bench/serve.py`` and ``tests/test_serve_load.py``
(the mixed load and its checks are in ``serve_load.py``).

* ``stream_load``: N concurrent clients, each sending streaming ``/v1/completions`` one after the other; per request
  the time to the first SSE chunk with text, the whole latency and the tokens generated (the usage chunk).
* ``slow_clients``: on raw sockets, bodies sent a byte at a time, and connections whose headers or body never end.
* ``unbounded_generation_probe``: file generations asking for 10**9 tokens, then whether a completion is still
  answered (sent after a load: it may wedge the server).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from serve_load import client, percentile


# -- streaming completions: throughput and latency ------------------------------------------------------------------
async def stream_one(http: httpx.AsyncClient, url: str, body: dict, headers: dict[str, str]) -> dict[str, Any]:
    """One streaming completion: status, time to first token, latency, tokens (usage, else text chunks)."""
    t0 = time.perf_counter()
    ttft, chunks, usage, done = None, 0, None, False
    async with http.stream("POST", url + "/v1/completions", json=body, headers=headers) as r:
        if r.status_code != 200:
            await r.aread()
            return {"status": r.status_code, "latency_s": time.perf_counter() - t0, "ttft_s": None, "tokens": 0}
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                break
            event = json.loads(data)
            if "error" in event:
                return {"status": 200, "stream_error": event, "latency_s": time.perf_counter() - t0,
                        "ttft_s": ttft, "tokens": chunks}
            for choice in event.get("choices") or ():
                if choice.get("text"):
                    chunks += 1
                    if ttft is None:
                        ttft = time.perf_counter() - t0
            if event.get("usage"):
                usage = event["usage"]
    return {"status": 200, "done": done, "latency_s": time.perf_counter() - t0, "ttft_s": ttft,
            "tokens": usage["completion_tokens"] if usage else chunks}


async def stream_load(url: str, *, concurrency: int, requests: int, body: Callable[[int], dict],
                      headers: dict[str, str] | None = None) -> dict[str, Any]:
    """``concurrency`` clients share ``requests`` streaming completions (``body(i)`` the i-th); wall time and
    every request's record."""
    records: list[dict[str, Any]] = []
    counter = iter(range(requests))
    async with client(concurrency) as http:
        async def one_client() -> None:
            for i in counter:
                records.append(await stream_one(http, url, body(i), headers or {}))

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "records": records}


def summarize(load: dict[str, Any]) -> dict[str, Any]:
    """Throughput (tokens of all requests / wall time) and latency percentiles of a ``stream_load``."""
    recs = load["records"]
    ok = [r for r in recs if r["status"] == 200 and r.get("done")]
    tokens = sum(r["tokens"] for r in ok)
    lat = [r["latency_s"] for r in ok]
    ttft = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
    ms = lambda v: None if v is None else round(1000 * v, 1)  # noqa: E731
    return {"requests": len(recs), "ok": len(ok), "statuses": dict(Counter(str(r["status"]) for r in recs)),
            "tokens": tokens, "wall_s": round(load["wall_s"], 2), "tokens_per_s": round(tokens / load["wall_s"], 1),
            "requests_per_s": round(len(ok) / load["wall_s"], 2),
            "latency_p50_ms": ms(percentile(lat, 50)), "latency_p99_ms": ms(percentile(lat, 99)),
            "ttft_p50_ms": ms(percentile(ttft, 50)), "ttft_p99_ms": ms(percentile(ttft, 99))}


# -- slow clients (raw sockets) -------------------------------------------------------------------------------------
def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _read_response(reader: asyncio.StreamReader, timeout: float) -> tuple[int | None, bytes]:
    """(status, body) of one HTTP/1.1 answer (Content-Length bodies), or (None, what came) on a timeout/close."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError) as e:
        return None, getattr(e, "partial", b"")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    body = await asyncio.wait_for(reader.readexactly(int(m.group(1))), timeout) if m else b""
    return status, body


async def slow_body(url: str, key: str, model: str, *, byte_every_s: float) -> dict[str, Any]:
    """A completion whose body arrives a byte at a time: answered like any other once it is all there."""
    body = json.dumps({"model": model, "prompt": "A", "max_tokens": 2}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
    t0 = time.perf_counter()
    try:
        writer.write(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: "
                     f"application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        for b in body:
            writer.write(bytes([b]))
            await writer.drain()
            await asyncio.sleep(byte_every_s)
        status, text = await _read_response(reader, 60.0)
    except ConnectionError as e:
        status, text = None, str(e).encode()
    finally:
        writer.close()
    return {"status": status, "seconds": round(time.perf_counter() - t0, 1), "body": text.decode("utf-8", "replace")}


async def stalled(url: str, key: str, *, part: str, hold_s: float) -> dict[str, Any]:
    """A connection whose headers (``part="headers"``) or body (``"body"``) never end: held ``hold_s`` seconds or
    until the server closes it; returns after how long the server closed it (None: it never did) and its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
    t0 = time.perf_counter()
    if part == "headers":
        writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    else:
        writer.write(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"model\": ".encode())
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(65536), hold_s)
        closed = round(time.perf_counter() - t0, 1)
    except asyncio.TimeoutError:
        data, closed = b"", None
    except ConnectionError:
        data, closed = b"", round(time.perf_counter() - t0, 1)
    writer.close()
    return {"part": part, "closed_by_server_after_s": closed, "answer": data[:300].decode("utf-8", "replace")}


async def slow_clients(url: str, key: str, model: str, *, stalled_each: int, hold_s: float, slow_bodies: int,
                       byte_every_s: float) -> dict[str, Any]:
    """``stalled_each`` connections with endless headers and as many with an endless body, held ``hold_s``, and
    ``slow_bodies`` completions whose body trickles in; run beside a load."""
    tasks = [stalled(url, key, part=p, hold_s=hold_s) for p in ("headers", "body") for _ in range(stalled_each)]
    tasks += [slow_body(url, key, model, byte_every_s=byte_every_s) for _ in range(slow_bodies)]
    results = await asyncio.gather(*tasks)
    stall = [r for r in results if "part" in r]
    slow = [r for r in results if "part" not in r]
    slow_ok = sum(1 for r in slow if r["status"] in (200, 429))
    closed = {p: sum(r["closed_by_server_after_s"] is not None for r in stall if r["part"] == p)
              for p in ("headers", "body")}
    return {"stalled": len(stall), "stalled_closed_by_server": sum(closed.values()),
            "stalled_bodies": sum(r["part"] == "body" for r in stall), "stalled_bodies_closed": closed["body"],
            "stalled_headers": sum(r["part"] == "headers" for r in stall), "stalled_headers_closed": closed["headers"],
            "stalled_hold_s": hold_s, "stalled_answers": Counter(r["answer"].split("\r\n", 1)[0] for r in stall
                                                                  if r["answer"]),
            "slow_bodies": len(slow), "slow_bodies_answered": slow_ok,
            "slow_body_seconds": [r["seconds"] for r in slow], "slow_body_statuses": [r["status"] for r in slow],
            "slow_body_bodies": [r["body"][:200] for r in slow if r["status"] not in (200, 429)]}


# -- probes that may wedge the server (sent after a load) -----------------------------------------------------------
async def unbounded_generation_probe(url: str, key: str, model: str, *, requests: int, give_up_s: float,
                                     then_wait_s: float) -> dict[str, Any]:
    """``requests`` file generations asking for 10**9 tokens (the client gives up after ``give_up_s``), then one
    small completion: whether the server refused them, and whether it still answers a completion afterwards."""
    headers = {"Authorization": f"Bearer {key}"}
    huge = {"model": model, "prompt": "A", "max_new_tokens": 10**9, "seed": 0}
    async with client(requests + 2, timeout=give_up_s) as http:
        async def one() -> str:
            try:
                r = await http.post(url + "/v1/texts/generations", json=huge, headers=headers)
                return str(r.status_code)
            except httpx.TimeoutException:
                return f"no answer in {give_up_s:g} s"

        huge_answers = await asyncio.gather(*(one() for _ in range(requests)))
    async with client(2, timeout=then_wait_s) as http:
        t0 = time.perf_counter()
        try:
            r = await http.post(url + "/v1/completions", headers=headers,
                                json={"model": model, "prompt": "A", "max_tokens": 4, "seed": 1})
            after = {"status": r.status_code, "seconds": round(time.perf_counter() - t0, 2)}
        except httpx.TimeoutException:
            after = {"status": None, "seconds": None, "note": f"no answer in {then_wait_s:g} s"}
    return {"request": {"POST": "/v1/texts/generations", "json": {**huge, "max_new_tokens": "10**9"}},
            "answers": dict(Counter(huge_answers)), "completion_after": after,
            "refused": all(a == "400" for a in huge_answers), "server_still_answers": after["status"] == 200}
