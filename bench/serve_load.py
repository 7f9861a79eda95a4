"""Load and attack for ``genlab serve``, shared by ``bench/serve.py`` and ``tests/test_serve_load.py``.

* ``start_server`` (from ``tests/serve_helpers.py``): ``genlab serve`` in a subprocess on a free loopback port; yields
  its URL, ``Popen`` (the PID whose resident memory is sampled) and log file.
* ``mixed_load``: many requests, good and bad (``make_cases``), from N concurrent clients; every answer is checked: its
  status among the ones its kind allows, no 5xx, every 429 with Retry-After, every error in the one shape
  ``{"error": {"message", "type", "param", "code"}}`` (streams too), no secret in any header or body. ``secrets_of``
  gathers what must never come back: the API key, the run's text watermark key, the signing private key.

Throughput clients, slow clients and probes are in ``serve_clients.py``. Everything here is a client on loopback, in
the caller's process; the server is the other process.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PROMPTS = ["ROMEO:\n", "JULIET:\nO ", "First Citizen:\n", "KING:\nWhat ", "HAMLET:\nTo be, ", "Nurse:\n", ""]


# -- the server: started as the tests start it (tests/serve_helpers.py) ---------------------------------------------
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import serve_helpers  # noqa: E402

Server, free_port, start_server = serve_helpers.Server, serve_helpers.free_port, serve_helpers.start_server


# -- small helpers --------------------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100), linear between ranks; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    at = (len(xs) - 1) * q / 100
    lo = int(at)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (at - lo)


def error_shape_ok(obj: Any) -> bool:
    """OpenAI's error shape, exactly: {"error": {"message": str, "type": str, "param": str|None, "code": str|None}}."""
    if not isinstance(obj, dict) or set(obj) != {"error"} or not isinstance(obj["error"], dict):
        return False
    e = obj["error"]
    return (set(e) == {"message", "type", "param", "code"} and isinstance(e["message"], str) and bool(e["message"])
            and isinstance(e["type"], str) and (e["param"] is None or isinstance(e["param"], str))
            and (e["code"] is None or isinstance(e["code"], str)))


def client(concurrency: int, timeout: float = 300.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency + 8,
                                                 max_keepalive_connections=concurrency + 8),
                             timeout=httpx.Timeout(timeout, connect=30.0))


# -- secrets --------------------------------------------------------------------------------------------------------
def secrets_of(run_dir: Path, home: Path, api_key: str) -> dict[str, list[str]]:
    """What no response or log may hold, by name: the API key, the run's text watermark key (decimal, and hex),
    the signing private key (its PEM body whole, and each of its lines)."""
    found: dict[str, list[str]] = {"api_key": [api_key, api_key.removeprefix("gl-")]}
    release = json.loads((run_dir / "release.json").read_text())
    key = int(release["text_key"])
    found["text_key"] = [str(key)] + ([format(key, "x")] if key >= 1 << 32 else [])
    pem_path = home / "keys" / "key.pem"  # genlab.responsible.keys.KEY_FILE in identity_folder()
    if pem_path.is_file():
        found["signing_key"] = private_key_needles(pem_path.read_bytes())
    return found


def private_key_needles(pem: bytes) -> list[str]:
    """Strings that only a copy of this private key holds: its PEM body, the PEM lines that carry private bytes,
    and the private value itself (hex, decimal, base64 at each byte alignment). The PEM's lines that hold only the
    public key are left out: the public key is in every signed file's certificate, and may be seen by anyone."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    lines = [ln.strip() for ln in pem.decode().splitlines() if ln.strip() and "-----" not in ln]
    needles = ["PRIVATE KEY-----", "".join(lines)]
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        value = key.private_numbers().private_value
        secret = value.to_bytes((key.curve.key_size + 7) // 8, "big")
    elif isinstance(key, rsa.RSAPrivateKey):
        value = key.private_numbers().d
        secret = value.to_bytes((value.bit_length() + 7) // 8, "big")
    else:  # another kind: every line counts
        return needles + [ln for ln in lines if len(ln) >= 16]
    der = base64.b64decode("".join(lines))
    at = der.find(secret)
    offset = 0
    for ln in lines:  # PEM lines are whole groups of 4 characters = 3 bytes
        size = len(base64.b64decode(ln))
        if at < 0 or (at < offset + size and at + len(secret) > offset):
            needles.append(ln)
        offset += size
    needles += [secret.hex(), str(value)]
    for shift in range(3):  # the secret's bytes inside any base64 text, whatever their alignment
        text = base64.b64encode(b"\0" * shift + secret).decode().rstrip("=")
        inner = text[4 if shift else 0 : -4]
        needles += [inner, inner.replace("+", "-").replace("/", "_")]
    return needles


def leaks(text: str, secrets: dict[str, list[str]]) -> list[str]:
    """The names of the secrets ``text`` holds."""
    return [name for name, needles in secrets.items() if any(n and n in text for n in needles)]


# -- the mixed load -------------------------------------------------------------------------------------------------
@dataclass
class Req:
    """One request of a case: what to send, and the statuses its answer may have."""

    method: str
    path: str
    allowed: frozenset[int]
    json: Any = None
    content: Any = None  # bytes, or a callable returning an async iterator (a body without Content-Length)
    auth: str | None = "key"  # "key": the good key; None: no header; else the header's value
    stream: bool = False  # a server-sent events answer to read
    abandon: bool = False  # go away after the first chunk
    headers: dict[str, str] = field(default_factory=dict)
    fresh: bool = False  # on a connection of its own (a 5xx may close its connection under the next request)


OK, BUSY = 200, 429
GOOD = frozenset({OK, BUSY})


def _completion(rng: random.Random, model: str, stream: bool = False) -> dict:
    body = {"model": model, "prompt": rng.choice(PROMPTS), "max_tokens": rng.randint(4, 16), "temperature": 0.8,
            "seed": rng.randrange(1 << 31), "n": rng.choice([1, 1, 1, 2, 4])}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def _chat(rng: random.Random, model: str, stream: bool = False, max_tokens: Any = "draw") -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": rng.choice(["Hi", "Speak", "Who?", "Why"])}],
            "max_tokens": rng.randint(4, 12) if max_tokens == "draw" else max_tokens, "seed": rng.randrange(1 << 31)}
    if body["max_tokens"] is None:
        del body["max_tokens"]
    if stream:
        body["stream"] = True
    return body


WRONG_TYPES = [{"max_tokens": "lots"}, {"prompt": 5}, {"prompt": ["a", 5]}, {"temperature": "hot"},
               {"temperature": -1}, {"n": 0}, {"seed": -1}, {"seed": 2**64}, {"stop": [""]}, {"stop": ["x"] * 9},
               {"top_p": 0}, {"logprobs": 99}, {"stream": "maybe"}, {"echo": True}, {"model": 7}, {"model": None},
               {"prompt": []}, {"presence_penalty": 1.5}, {"user": "u" * 300}, {"stream_options": "x"}]
TRAVERSAL = ["../../etc/passwd", "..%2F..", "..", ".", "../", "/etc/passwd", "..\\..\\windows", "x/../../y",
             "%2e%2e%2f%2e%2e", "tiny\x00", "~root", " ", "a" * 300]
WRONG_KEYS = ["Bearer gl-" + "x" * 43, "Basic Zm9vOmJhcg==", "Bearer", "gl-", "Bearer a b"]
MALFORMED = [b'{"model": "m", "prompt": ', b"{'model': 'x'}", b"", b"{" * 5000, b'{"model": NaN}', b"\x00\x01",
             b'{"model": "x", "prompt": "a"}}']
BAD_PATHS = ["/v1/models/..%2F..%2Fetc%2Fpasswd", "/v1/runs/..%2F..%2Fetc/card", "/v1/runs/%2e%2e/loss.png",
             "/..%2F..%2Fetc%2Fpasswd", "/v1/runs/..%252F..%252Fetc/card", "/v1/models/%00"]


def _raw(method: str, path: str, allowed: set[int], content: bytes | Callable[[], Any], **kw: Any) -> Req:
    """A request whose body is sent as these bytes, labelled JSON."""
    return Req(method, path, frozenset(allowed), content=content, headers={"content-type": "application/json"}, **kw)


def make_cases(model: str, max_body: int) -> dict[str, tuple[int, Callable[[random.Random], Req]]]:
    """The kinds of request (name -> (weight, maker)); weights are relative."""
    C, G, P = "/v1/completions", "/v1/chat/completions", "/v1/texts/generations"
    BAD = frozenset({400})

    def oversized_chunked() -> Any:  # a body without Content-Length, over the limit
        async def body():
            piece = b" " * 16384
            for _ in range(max_body // len(piece) + 2):
                yield piece
        return body()

    def wrong_type(rng: random.Random) -> Req:
        return Req("POST", C, BAD, json={"model": model, "prompt": "A", "max_tokens": 4, **rng.choice(WRONG_TYPES)})

    def traversal(rng: random.Random) -> Req:  # a run name that climbs out of the runs folder, or is no name
        path, body = rng.choice([(C, {"prompt": "A", "max_tokens": 2}), (P, {"max_new_tokens": 2}),
                                 (G, {"messages": [{"role": "user", "content": "A"}], "max_tokens": 2})])
        return Req("POST", path, frozenset({400, 404}), json={"model": rng.choice(TRAVERSAL), **body})

    def huge_max_tokens(rng: random.Random) -> Req:
        return rng.choice([
            Req("POST", C, BAD, json={"model": model, "prompt": "A", "max_tokens": rng.choice([10**9, 10**30])}),
            Req("POST", G, BAD, json={**_chat(rng, model), "max_tokens": 10**9}),
            Req("POST", G, BAD, json={**_chat(rng, model, max_tokens=None), "max_completion_tokens": 10**9})])

    def huge_n(rng: random.Random) -> Req:
        return rng.choice([
            Req("POST", C, BAD, json={"model": model, "prompt": "A", "n": rng.choice([10**6, 10**30])}),
            Req("POST", C, BAD, json={"model": model, "prompt": ["A"] * 64, "max_tokens": 2}),
            Req("POST", G, BAD, json={**_chat(rng, model), "n": 10**6}),
            Req("POST", P, BAD, json={"model": model, "n": 10**6})])

    def lone_surrogate(rng: random.Random) -> Req:  # valid JSON, but no UTF-8 text: "\udcff"
        path, extra = rng.choice([(C, '"max_tokens": 2'), (P, '"max_new_tokens": 2')])
        return _raw("POST", path, BAD, ('{"model": "%s", "prompt": "\\udcff", %s}' % (model, extra)).encode(),
                    fresh=True)

    return {
        # good ones
        "completion": (24, lambda rng: Req("POST", C, GOOD, json=_completion(rng, model))),
        "completion_stream": (14, lambda rng: Req("POST", C, GOOD, json=_completion(rng, model, True), stream=True)),
        "chat": (7, lambda rng: Req("POST", G, GOOD, json=_chat(rng, model))),
        "chat_stream": (4, lambda rng: Req("POST", G, GOOD, json=_chat(rng, model, True), stream=True)),
        "abandoned_stream": (2, lambda rng: Req("POST", C, GOOD, stream=True, abandon=True,
                                                json={**_completion(rng, model, True), "max_tokens": 48})),
        "text_generation": (1, lambda rng: Req("POST", P, GOOD, json={
            "model": model, "prompt": rng.choice(PROMPTS), "max_new_tokens": 8, "seed": rng.randrange(1000)})),
        "models": (8, lambda rng: Req("GET", "/v1/models", frozenset({OK}))),
        "model": (2, lambda rng: Req("GET", f"/v1/models/{model}", frozenset({OK}))),
        "run": (2, lambda rng: Req("GET", f"/v1/runs/{model}", frozenset({OK}))),
        "card": (1, lambda rng: Req("GET", f"/v1/runs/{model}/card", GOOD)),
        "health": (6, lambda rng: Req("GET", "/v1/health", frozenset({OK}), auth=None)),
        # bad ones
        "no_key": (2, lambda rng: Req("POST", C, frozenset({401}), json=_completion(rng, model), auth=None)),
        "wrong_key": (1, lambda rng: Req("GET", "/v1/models", frozenset({401}), auth=rng.choice(WRONG_KEYS))),
        "oversized_body": (1, lambda rng: _raw("POST", C, {413}, json.dumps(
            {"model": model, "prompt": "A" * (max_body + 100)}).encode())),
        "oversized_chunked": (1, lambda rng: _raw("POST", C, {413}, oversized_chunked)),
        "malformed_json": (2, lambda rng: _raw("POST", rng.choice([C, G, P]), {400}, rng.choice(MALFORMED))),
        "not_utf8": (1, lambda rng: _raw("POST", C, {400}, b'{"model": "x", "prompt": "\xff\xfe"}')),
        "not_an_object": (1, lambda rng: Req("POST", rng.choice([C, G]), BAD,
                                             json=rng.choice([[1, 2], "x", None, 3, []]))),
        "traversal_model": (2, traversal),
        "traversal_path": (1, lambda rng: Req("GET", rng.choice(BAD_PATHS), frozenset({400, 404}))),
        "huge_max_tokens": (2, huge_max_tokens),
        "huge_n": (2, huge_n),
        "unknown_field": (1, lambda rng: Req("POST", rng.choice([C, G]), BAD, json={
            **_completion(rng, model), "messages": None, "functions": [{"name": "x"}], "__proto__": {}})),
        "wrong_type": (2, wrong_type),
        # GET on a POST endpoint falls through to the studio's files: 404 rather than 405
        "wrong_method": (1, lambda rng: Req(rng.choice(["DELETE", "PUT", "GET"]), C, frozenset({404, 405}))),
        "no_endpoint": (1, lambda rng: Req("GET", rng.choice(["/v1/nothing", "/v1/engines", "/v1/completions/x"]),
                                           frozenset({404}))),
        "lone_surrogate": (1, lone_surrogate),
    }


@dataclass
class Report:
    """What a mixed load saw, by kind of request."""

    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # check -> examples
    counts: Counter = field(default_factory=Counter)  # check -> how many times it failed
    leaked: Counter = field(default_factory=Counter)  # secret name -> responses holding it
    retry_after: list[float] = field(default_factory=list)
    done: int = 0
    wall_s: float = 0.0

    def fail(self, check: str, example: str) -> None:
        self.counts[check] += 1
        if len(self.violations[check]) < 5:
            self.violations[check].append(example[:400])

    def as_dict(self) -> dict[str, Any]:
        total = Counter()
        for c in self.statuses.values():
            total.update(c)
        return {"requests": self.done, "wall_s": round(self.wall_s, 1),
                "statuses": {str(k): v for k, v in sorted(total.items(), key=lambda kv: str(kv[0]))},
                "by_kind": {k: {str(s): n for s, n in sorted(c.items(), key=lambda kv: str(kv[0]))}
                            for k, c in sorted(self.statuses.items())},
                "failures": dict(self.counts), "examples": dict(self.violations), "leaked": dict(self.leaked),
                "retry_after_s": {"min": min(self.retry_after, default=None),
                                  "max": max(self.retry_after, default=None)}}


async def send(http: httpx.AsyncClient, url: str, req: Req, key: str) -> tuple[int | None, dict, str, str]:
    """(status, headers, body text, transport error or "")."""
    headers = dict(req.headers)
    if req.auth == "key":
        headers["Authorization"] = f"Bearer {key}"
    elif req.auth is not None:
        headers["Authorization"] = req.auth
    content = req.content() if callable(req.content) else req.content
    kw: dict[str, Any] = {"headers": headers}
    if content is not None:
        kw["content"] = content
    elif req.json is not None or req.method == "POST":
        kw["content"] = json.dumps(req.json).encode()
        headers.setdefault("content-type", "application/json")
    if req.fresh:
        async with httpx.AsyncClient(timeout=http.timeout) as own:
            return await send(own, url, dataclasses.replace(req, fresh=False), key)
    try:
        async with http.stream(req.method, url + req.path, **kw) as r:
            if req.abandon and r.status_code == 200:
                async for _ in r.aiter_bytes():
                    break  # go away after the first chunk: the server must free its rows
                return r.status_code, dict(r.headers), "", ""
            text = (await r.aread()).decode("utf-8", "replace")
            return r.status_code, dict(r.headers), text, ""
    except httpx.HTTPError as e:
        return None, {}, "", f"{type(e).__name__}: {e}"


def check(report: Report, kind: str, req: Req, status: int | None, headers: dict, text: str, error: str,
          secrets: dict[str, list[str]]) -> None:
    what = f"{kind}: {req.method} {req.path} {json.dumps(req.json)[:200] if req.json is not None else ''}"
    report.statuses[kind][status if status is not None else "transport_error"] += 1
    if status is None:
        report.fail("transport_error", f"{what} -> {error}")
        return
    if status >= 500:
        report.fail("5xx", f"{what} -> {status} {text[:200]}")
    if status not in req.allowed:
        report.fail("unexpected_status", f"{what} -> {status} {text[:200]}")
    if status == 429:
        value = headers.get("retry-after")
        try:
            report.retry_after.append(float(value))
        except (TypeError, ValueError):
            report.fail("429_without_retry_after", f"{what} -> {status} Retry-After={value!r}")
    if status == 401 and headers.get("www-authenticate") != "Bearer":
        report.fail("401_without_www_authenticate", f"{what} -> {headers}")
    if status >= 400:
        try:
            ok = error_shape_ok(json.loads(text))
        except ValueError:
            ok = False
        if not ok:
            report.fail("error_shape", f"{what} -> {status} {text[:200]}")
    elif req.stream and status == 200 and not req.abandon:
        events = [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")]
        if not events or events[-1] != "[DONE]":
            report.fail("stream_unfinished", f"{what} -> {text[-200:]}")
        for e in events[:-1]:
            try:
                obj = json.loads(e)
            except ValueError:
                report.fail("stream_bad_event", f"{what} -> {e[:200]}")
                continue
            if "error" in obj:
                report.fail("stream_error" if error_shape_ok(obj) else "error_shape", f"{what} -> {e[:200]}")
    found = leaks(text + json.dumps(headers), secrets)
    for name in found:
        report.leaked[name] += 1
        report.fail("secret_in_response", f"{what} -> {status}: {name}")


async def mixed_load(url: str, *, total: int, concurrency: int, key: str, model: str, max_body: int,
                     secrets: dict[str, list[str]], seed: int = 0, only: set[str] | None = None,
                     skip: set[str] = frozenset(), on_done: Callable[[int], None] | None = None) -> Report:
    """``total`` requests drawn from ``make_cases`` (seeded), from ``concurrency`` clients, each answer checked.
    A client told 429 waits a little (at most a second, less than Retry-After) before its next request."""
    cases = {k: v for k, v in make_cases(model, max_body).items() if (only is None or k in only) and k not in skip}
    names, weights = list(cases), [w for w, _ in cases.values()]
    report = Report()
    counter = iter(range(total))
    async with client(concurrency, timeout=120.0) as http:
        async def one_client(c: int) -> None:
            for i in counter:
                rng = random.Random(seed * 1_000_003 + i)
                kind = rng.choices(names, weights)[0]
                req = cases[kind][1](rng)
                status, headers, text, error = await send(http, url, req, key)
                check(report, kind, req, status, headers, text, error, secrets)
                report.done += 1
                if on_done is not None:
                    on_done(report.done)
                if status == 429:
                    await asyncio.sleep(rng.uniform(0.05, min(1.0, float(headers.get("retry-after") or 1))))

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in range(concurrency)))
        report.wall_s = time.perf_counter() - t0
    return report
