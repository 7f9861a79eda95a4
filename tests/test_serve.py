"""`genlab serve`: a real server on a free loopback port, spoken to by the official ``openai`` client and by plain
HTTP; continuous batching against ``genlab sample``; errors, keys and limits; the run pool; schemathesis."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from genlab.serve.keys import create_key, read_keys
from serve_helpers import server

PROMPT = "HAMLET:\n"


@pytest.fixture(scope="module")
def runs(trained_run, tmp_path_factory) -> Path:
    """A runs folder of its own holding a copy of the tiny run (jobs and logs are written beside it)."""
    folder = tmp_path_factory.mktemp("served")
    shutil.copytree(trained_run.path, folder / "tiny")
    return folder


@pytest.fixture(scope="module")
def url(runs) -> str:
    with server(runs) as base:
        yield base


def client(url: str, key: str = "none"):
    import openai

    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


def error_of(response: httpx.Response) -> dict:
    """The one error shape, checked: OpenAI's {"error": {message, type, param, code}}."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"] and "\n" not in body["error"]["message"] and "Traceback" not in response.text
    return body["error"]


# -- the openai client ----------------------------------------------------------------------------------------------
def test_openai_client_lists_completes_streams_and_chats(url, trained_run):
    c = client(url)
    assert "tiny" in [m.id for m in c.models.list().data]

    whole = c.completions.create(model="tiny", prompt=PROMPT, max_tokens=24, seed=7, temperature=0.9)
    expected = trained_run.sample(1, prompt=PROMPT, max_new_tokens=24, seed=7, temperature=0.9)[0]
    assert whole.choices[0].text == expected  # the same text as `genlab sample` with that seed
    assert whole.usage.completion_tokens == len(trained_run.model.tokenizer_.encode(expected).ids)

    pieces = [ch.choices[0].text for ch in c.completions.create(model="tiny", prompt=PROMPT, max_tokens=24, seed=7,
                                                                temperature=0.9, stream=True) if ch.choices]
    assert len(pieces) > 3 and "".join(pieces) == expected  # streamed piece by piece, the same text

    chat = c.chat.completions.create(model="tiny", seed=1, max_tokens=30,
                                     messages=[{"role": "user", "name": "Ham", "content": "Hi"}])
    answer = chat.choices[0]
    assert answer.message.role == "assistant" and "\n\n" not in answer.message.content
    assert answer.finish_reason in ("stop", "length")


def test_completion_options_stop_n_logprobs_and_provenance(url, trained_run):
    r = httpx.post(url + "/v1/completions", json={"model": "tiny", "prompt": PROMPT, "max_tokens": 40, "n": 3,
                                                 "seed": 3, "stop": ["e"], "logprobs": 2}, timeout=60).json()
    assert [c["index"] for c in r["choices"]] == [0, 1, 2]
    for c in r["choices"]:
        assert "e" not in c["text"] and c["finish_reason"] in ("stop", "length")
        lp = c["logprobs"]
        assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"])
        assert all(v <= 0 for v in lp["token_logprobs"]) and all(len(t) <= 2 for t in lp["top_logprobs"])
    prov = r["genlab"]["provenance"]
    identity = trained_run.release.identity
    assert prov["run_id"] == identity.run_id and prov["seed"] == 3 and prov["watermark"]["scheme"].startswith("kirch")
    assert str(identity.text_key) not in json.dumps(r)  # the watermark's key never leaves the server


def test_continuous_batch_gives_each_request_its_own_sample(trained_run):
    """Requests of different prompts, lengths (past the 32-token context: the window slides) and seeds, joining a
    running batch at different times, each get exactly `genlab sample`'s text for their seed."""
    from genlab.serve.engine import Completion, Engine

    model = trained_run.model
    engine = Engine.for_run(trained_run, max_batch=16, queue=16).start()
    asks = [("HAMLET:\n", 50, 1, 1), ("To be", 20, 2, 2), ("", 60, 3, 1), ("KING:\nO", 35, 4, 3), ("a", 5, 5, 1)]
    got: dict[int, dict[int, str]] = {i: {} for i in range(len(asks))}
    done = threading.Semaphore(0)

    def sink(i):
        def take(events):
            for event in events:
                if "done" in event:
                    done.release()
                elif "error" in event:
                    raise AssertionError(event)
                else:
                    got[i][event["index"]] = got[i].get(event["index"], "") + event["text"]
        return take

    for i, (prompt, tokens, seed, n) in enumerate(asks):
        engine.submit(Completion(model.encode_prompt(prompt), n, tokens, 0.8, None, None, seed, (), None, sink(i)))
    for _ in asks:
        assert done.acquire(timeout=120)
    engine.close()
    for i, (prompt, tokens, seed, n) in enumerate(asks):
        expected = trained_run.sample(n, prompt=prompt, max_new_tokens=tokens, seed=seed, temperature=0.8)
        assert [got[i][j] for j in range(n)] == list(expected), (prompt, seed)


# -- every other endpoint ---------------------------------------------------------------------------------------------
def test_generations_come_signed_and_verify_and_detect_find_them(url, tmp_path):
    r = httpx.post(url + "/v1/texts/generations", json={"model": "tiny", "prompt": PROMPT, "max_new_tokens": 120,
                                                        "n": 1, "seed": 5}, timeout=60)
    assert r.status_code == 200, r.text
    item = r.json()["data"][0]
    text = base64.b64decode(item["b64_json"])
    assert item["filename"] == "sample-0000.txt" and text.startswith(PROMPT.encode())
    sidecar = base64.b64decode(item["c2pa_b64"])
    files = [("files", ("sample-0000.txt", text)), ("files", ("sample-0000.txt.c2pa", sidecar))]
    verdict = httpx.post(url + "/v1/verify", files=files, timeout=60).json()
    assert verdict["trusted"] and verdict["data"][0]["signature"] == "trusted"
    assert verdict["data"][0]["watermark"]["found"] and verdict["data"][0]["watermark"]["matches_manifest"]

    d = httpx.post(url + "/v1/detect", data={"model": "tiny", "window": "0"},
                   files=[("files", ("a.txt", text)), ("files", ("b.txt", b"plain words " * 40))], timeout=60).json()
    assert [x["document"]["watermarked"] for x in d["data"]] == [True, False]

    tampered = verdict_of(url, text.replace(b"HAMLET", b"HAMLOT"), item["c2pa_b64"])
    assert tampered["signature"] != "trusted"


def verdict_of(url, content: bytes, sidecar_b64: str) -> dict:
    files = [("files", ("s.txt", content)), ("files", ("s.txt.c2pa", base64.b64decode(sidecar_b64)))]
    return httpx.post(url + "/v1/verify", files=files, timeout=60).json()["data"][0]


@pytest.mark.parametrize("method,path,body,status,param", [
    ("post", "/v1/completions", {"model": "nope", "prompt": "a"}, 404, "model"),
    ("post", "/v1/completions", {"model": "../tiny", "prompt": "a"}, 400, "model"),
    ("post", "/v1/completions", {"model": "tiny", "prompt": "a", "max_tokens": 10**9}, 400, "max_tokens"),
    ("post", "/v1/completions", {"model": "tiny", "prompt": "a", "n": 10**6}, 400, "n"),
    ("post", "/v1/completions", {"model": "tiny", "prompt": "a", "temperature": -1}, 400, "temperature"),
    ("post", "/v1/completions", {"model": "tiny", "prompt": "a", "stop": ["x"] * 5}, 400, "stop"),
    ("post", "/v1/completions", {"model": "tiny", "prompt": "a", "echo": True}, 400, "echo"),
    ("post", "/v1/completions", {"model": "tiny", "prompt": "a", "best": 1}, 400, "best"),
    ("post", "/v1/completions", {"prompt": "a"}, 400, "model"),
    ("post", "/v1/completions", {"model": "tiny", "prompt": "x" * 500}, 400, None),  # longer than the context
    ("post", "/v1/chat/completions", {"model": "tiny", "messages": []}, 400, "messages"),
    ("post", "/v1/images/generations", {"model": "tiny", "n": 1}, 400, "model"),
    ("post", "/v1/embeddings", {"model": "tiny", "input": "a"}, 400, "model"),
    ("post", "/v1/fill", {"model": "tiny", "text": "a [MASK]"}, 400, "model"),
    ("post", "/v1/texts/generations", {"model": "tiny", "top_k": "many"}, 400, "top_k"),
    ("post", "/v1/texts/generations", {"model": "tiny", "max_new_tokens": 0}, 400, "max_new_tokens"),
    ("post", "/v1/completions", {"model": "tiny", "prompt": "\udcff"}, 400, "prompt"),  # a lone surrogate
    ("post", "/v1/completions", {"model": "tiny", "prompt": "a", "stream": "yes"}, 400, "stream"),
    ("post", "/v1/texts/generations", {"model": "tiny", "max_new_tokens": 10**9}, 400, "max_new_tokens"),
    ("get", "/v1/completions", None, 405, None),
    ("get", "/v1/runs/nope/card", None, 404, "model"),
    ("get", "/v1/runs/..%2F..%2Fetc/card", None, 404, None),
    ("get", "/v1/nothing-here", None, 404, None),
    ("delete", "/v1/completions", None, 405, None),
])
def test_every_refusal_has_the_one_error_shape(url, method, path, body, status, param):
    content = None if body is None else json.dumps(body).encode()  # ASCII: a lone surrogate as its JSON escape
    r = httpx.request(method.upper(), url + path, content=content, headers={"content-type": "application/json"},
                      timeout=60)
    assert r.status_code == status, r.text
    assert error_of(r)["param"] == param


def test_malformed_json_and_card_and_schema(url):
    r = httpx.post(url + "/v1/completions", content=b'{"model": "tiny", ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"
    card = httpx.get(url + "/v1/runs/tiny/card")
    assert card.status_code == 200 and "# " in card.text and card.headers["content-type"].startswith("text/markdown")
    paths = httpx.get(url + "/openapi.json").json()["paths"]
    music = httpx.get(url + "/openapi.json").json()["components"]["schemas"]["MusicGenerationRequest"]["properties"]
    assert {"bars", "prompt_midi", "temperature"} <= set(music)  # options from the modality's schema
    assert {"/v1/completions", "/v1/chat/completions", "/v1/images/generations", "/v1/embeddings", "/v1/fill",
            "/v1/verify", "/v1/detect", "/v1/jobs", "/v1/music/generations", "/v1/tables/generations"} <= set(paths)
    page = httpx.get(url + "/")
    assert page.status_code == 200 and "access-control-allow-origin" not in page.headers  # CORS closed


# -- keys and limits ---------------------------------------------------------------------------------------------------
def test_keys_are_required_and_limits_refuse(runs, genlab_home):
    key, record = create_key("test")
    stored = (genlab_home / "api-keys.json").read_text()
    assert key not in stored and record["sha256"] in stored and read_keys()[-1]["id"] == record["id"]
    with server(runs, "--require-key", "--max-body", "4KB", "--max-tokens", "64", "--max-n", "2") as base:
        assert httpx.get(base + "/v1/health").status_code == 200  # liveness is open
        for auth in ({}, {"Authorization": "Bearer gl-wrong"}, {"Authorization": key}):
            r = httpx.get(base + "/v1/models", headers=auth)
            assert r.status_code == 401 and error_of(r)["code"] == "invalid_api_key"
        c = client(base, key)
        assert c.completions.create(model="tiny", prompt="a", max_tokens=3, seed=1).choices[0].finish_reason
        headers = {"Authorization": f"Bearer {key}"}
        big = httpx.post(base + "/v1/completions", headers=headers, json={"model": "tiny", "prompt": "a" * 5000})
        assert big.status_code == 413 and error_of(big)["code"] == "body_too_large"
        for ask, param in (({"max_tokens": 65}, "max_tokens"), ({"n": 3}, "n")):
            r = httpx.post(base + "/v1/completions", headers=headers, json={"model": "tiny", "prompt": "a", **ask})
            assert r.status_code == 400 and error_of(r)["param"] == param


def test_serving_off_loopback_without_keys_is_refused(runs, tmp_path):
    r = subprocess.run([sys.executable, "-m", "genlab", "serve", "--runs", str(runs), "--host", "0.0.0.0"],
                       capture_output=True, text=True, timeout=60, env={**__import__("os").environ,
                                                                       "GENLAB_HOME": str(tmp_path)})
    assert r.returncode == 2 and "keys create-api" in r.stderr and "Traceback" not in r.stderr


def test_serve_refuses_a_missing_folder_and_a_port_in_use(runs, url, tmp_path):
    import os

    port = url.rsplit(":", 1)[1]  # the module's server holds it
    for args, said in ((["--runs", str(tmp_path / "none")], "no such folder"),
                       (["--runs", str(runs), "--port", port], f"port {port} on 127.0.0.1 is in use")):
        r = subprocess.run([sys.executable, "-m", "genlab", "serve", *args], capture_output=True, text=True,
                           timeout=60, env={**os.environ})
        assert r.returncode == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# -- the pool ----------------------------------------------------------------------------------------------------------
def test_pool_reloads_changed_runs_and_unloads_the_least_recently_used(trained_run, tmp_path):
    import os

    from genlab.serve.config import ServeConfig
    from genlab.serve.errors import APIError
    from genlab.serve.pool import RunPool

    for name in ("a", "b"):
        shutil.copytree(trained_run.path, tmp_path / name)
    (tmp_path / "outside").symlink_to(trained_run.path)
    weights = (tmp_path / "a" / "model.safetensors").stat().st_size
    pool = RunPool(ServeConfig(runs=tmp_path, max_memory=3 * weights + (64 << 20)))  # room for one run
    assert pool.names() == ["a", "b"]  # the symlink is not served
    a = pool.get("a")
    assert pool.get("a") is a
    st = (tmp_path / "a" / "model.safetensors").stat()
    os.utime(tmp_path / "a" / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert pool.get("a") is not a  # its weights changed: loaded again
    pool.get("b")
    assert list(pool.loaded) == ["b"]  # a was the least recently used
    for bad in ("outside", "..", "a/../b", "/etc", ""):
        with pytest.raises(APIError):
            pool.path(bad)


def test_a_run_without_weights_is_refused_without_naming_server_paths(trained_run, tmp_path):
    from fastapi.testclient import TestClient

    from genlab.serve.app import create_app
    from genlab.serve.config import ServeConfig

    shutil.copytree(trained_run.path, tmp_path / "partial")
    (tmp_path / "partial" / "model.safetensors").unlink()  # a run still training
    with TestClient(create_app(ServeConfig(runs=tmp_path), jobs=False)) as c:
        assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["partial"]
        r = c.post("/v1/completions", json={"model": "partial", "prompt": "a", "max_tokens": 2})
    assert r.status_code == 400 and "partial: no model.safetensors" in error_of(r)["message"]
    assert str(tmp_path) not in r.text


# -- schemathesis ------------------------------------------------------------------------------------------------------
def test_schemathesis_finds_no_server_error(url, tmp_path):
    st = Path(sys.executable).parent / "st"
    if not st.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    r = subprocess.run([str(st), "run", url + "/openapi.json", "--checks", "not_a_server_error", "--seed", "1",
                        "--max-examples", "8", "--max-time", "30", "--workers", "1", "--no-shrink",
                        "--phases", "examples,coverage,fuzzing", "--exclude-path-regex", "^/v1/jobs",
                        "--report-dir", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:]


# -- past one machine -----------------------------------------------------------------------------------------------
def test_two_servers_on_one_runs_folder_agree(url, runs):
    """Two stateless servers on one runs folder: the same seeded answer, and one shared list of jobs."""
    import time

    ask = {"model": "tiny", "prompt": PROMPT, "max_tokens": 16, "seed": 11}
    with server(runs) as other:
        texts = [httpx.post(u + "/v1/completions", json=ask, timeout=60).json()["choices"][0]["text"]
                 for u in (url, other)]
        assert texts[0] == texts[1]
        job = httpx.post(url + "/v1/jobs", json={"family": "tvae", "data": "diabetes", "name": "shared-job",
                                                 "set": ["train.max_steps=100000", "train.eval_every=0"]}).json()
        assert httpx.get(f"{other}/v1/jobs/{job['id']}").json()["family"] == "tvae"
        assert httpx.delete(f"{other}/v1/jobs/{job['id']}").status_code == 200  # cancelled through the other one
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            seen = [httpx.get(f"{u}/v1/jobs/{job['id']}").json()["status"] for u in (url, other)]
            if seen[0] == seen[1] == "cancelled":
                break
            time.sleep(0.5)
        assert seen == ["cancelled", "cancelled"]
