"""`genlab serve` under a short mixed load with attacks, from this process to a real server on loopback (the long
version, with throughput and resident memory: bench/serve.py; both use bench/serve_load.py).

The server runs with ``--require-key --queue 8 --max-batch 8`` so that 429s happen; ~300 requests from 16 clients mix
small completions (some streamed, some abandoned), chats, model lists and file generations with bad ones: no key,
bodies over --max-body, malformed JSON, run names climbing out of the runs folder, max_tokens 10**9, n 10**6, unknown
fields, wrong types; slow clients trickle a body in beside them. No 5xx, every 429 with Retry-After, every error in
the one shape, each bad request refused with its own 4xx, and no secret (the API key, the run's watermark key, the
signing private key) in any answer or in the server's log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from genlab.responsible.keys import ensure_identity
from genlab.serve.keys import create_key
from serve_helpers import server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import serve_clients as sc  # noqa: E402
import serve_load as sl  # noqa: E402

MAX_TOKENS = 64
FLAGS = ("--require-key", "--queue", "8", "--max-batch", "8", "--max-body", "64KB", "--max-tokens", str(MAX_TOKENS))


@pytest.fixture(scope="module")
def served(trained_run, tmp_path_factory, genlab_home):
    """(url, API key, runs folder, secrets) of a server that requires keys, over a copy of the tiny run."""
    folder = tmp_path_factory.mktemp("served-load")
    shutil.copytree(trained_run.path, folder / "tiny")
    key, _ = create_key("load-test")
    ensure_identity()  # the signing identity of the session's GENLAB_HOME: its private key must never come back
    secrets = sl.secrets_of(folder / "tiny", genlab_home, key)
    with server(folder, *FLAGS) as url:
        yield url, key, folder, secrets


def log_text(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.glob(".serve-*.log"))


def test_mixed_load_with_attacks_is_answered_cleanly(served):
    url, key, folder, secrets = served

    async def run():
        slow = asyncio.create_task(sc.slow_clients(url, key, "tiny", stalled_each=2, hold_s=3.0, slow_bodies=2,
                                                   byte_every_s=0.03))
        report = await sl.mixed_load(url, total=300, concurrency=16, key=key, model="tiny", max_body=64 << 10,
                                     secrets=secrets, seed=7)
        return report, await slow

    report, slow = asyncio.run(run())
    summary = report.as_dict()
    assert summary["requests"] == 300
    assert not report.counts, summary["examples"]  # no 5xx, 429 without Retry-After, bad shape, leak, odd status
    kinds = summary["by_kind"]
    assert set(kinds["no_key"]) == {"401"} and set(kinds["oversized_body"]) <= {"413"}
    assert {"200", "429"} >= set(kinds["completion"]) and "200" in kinds["completion"]
    assert slow["slow_bodies_answered"] == slow["slow_bodies"] == 2, slow
    assert not sl.leaks(log_text(folder), secrets)


def test_a_burst_gets_429_with_retry_after_and_the_server_recovers(served):
    url, key, folder, secrets = served
    body = {"model": "tiny", "prompt": "A", "max_tokens": MAX_TOKENS, "n": 4, "temperature": 1.0}

    async def burst():
        async with sl.client(64, timeout=60) as http:
            return await asyncio.gather(*(http.post(url + "/v1/completions", json={**body, "seed": i},
                                                    headers={"Authorization": f"Bearer {key}"}) for i in range(64)))

    answers = asyncio.run(burst())
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {200, 429} and statuses.count(429) > 0 and statuses.count(200) > 0, statuses
    for r in answers:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1 and sl.error_shape_ok(r.json())
            assert r.json()["error"]["type"] == "rate_limit_error"
        assert not sl.leaks(r.text + str(r.headers), secrets)
    again = httpx.post(url + "/v1/completions", json={**body, "n": 1, "seed": 1}, timeout=60,
                       headers={"Authorization": f"Bearer {key}"})
    assert again.status_code == 200, again.text


@pytest.mark.parametrize("method,path", [("GET", "/v1/models"), ("POST", "/v1/completions"),
                                         ("POST", "/v1/chat/completions"), ("POST", "/v1/texts/generations"),
                                         ("GET", "/v1/runs/tiny"), ("GET", "/v1/jobs"), ("POST", "/v1/verify")])
@pytest.mark.parametrize("auth", [None, "Bearer gl-not-a-key", "Basic dXNlcjpwYXNz"])
def test_without_a_valid_key_every_endpoint_is_401(served, method, path, auth):
    url, key, folder, secrets = served
    headers = {"Authorization": auth} if auth else {}
    r = httpx.request(method, url + path, headers=headers, json={"model": "tiny", "prompt": "A"}, timeout=30)
    assert r.status_code == 401 and r.headers.get("www-authenticate") == "Bearer", r.text
    assert sl.error_shape_ok(r.json()) and r.json()["error"]["type"] == "authentication_error"


def test_the_secret_detector_finds_each_secret_and_not_the_public_certificate(served, genlab_home):
    url, key, folder, secrets = served
    text_key = json.loads((folder / "tiny" / "release.json").read_text())["text_key"]
    pem = (genlab_home / "keys" / "key.pem").read_bytes()
    der = base64.b64decode(b"".join(ln for ln in pem.splitlines() if b"-----" not in ln))
    assert sl.leaks(f"Bearer {key}", secrets) == ["api_key"]
    assert sl.leaks(json.dumps({"seed": text_key}), secrets) == ["text_key"]
    assert sl.leaks(pem.decode(), secrets) == ["signing_key"]
    for shift in range(3):  # the key's bytes inside some other base64, at any alignment
        assert sl.leaks(base64.b64encode(b"x" * shift + der + b"yz").decode(), secrets) == ["signing_key"]
    chain = (genlab_home / "keys" / "chain.pem").read_bytes()  # public: it rides in every signed file
    assert not sl.leaks(chain.decode(), secrets)
    for shift in range(3):
        assert not sl.leaks(base64.b64encode(b"x" * shift + base64.b64decode(
            b"".join(ln for ln in chain.splitlines() if b"-----" not in ln))).decode(), secrets)


def test_a_prompt_with_a_lone_surrogate_is_a_400(served):
    url, key, folder, secrets = served
    r = httpx.post(url + "/v1/completions", content=b'{"model": "tiny", "prompt": "\\udcff", "max_tokens": 2}',
                   headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                            "Connection": "close"}, timeout=30)
    assert r.status_code == 400 and sl.error_shape_ok(r.json()), r.text


def test_file_generations_hold_max_new_tokens_to_max_tokens(served):
    url, key, folder, secrets = served
    r = httpx.post(url + "/v1/texts/generations", json={"model": "tiny", "max_new_tokens": MAX_TOKENS + 1, "seed": 0},
                   headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert r.status_code == 400 and sl.error_shape_ok(r.json()), r.text[:300]
