"""`genlab serve` under load: completion throughput and latency with continuous batching on and off in the same
run, time to first token against `genlab sample`'s, and a long mixed load with attacks from a second process.

1. **Model**: a gpt of nanoGPT's shakespeare_char shape (6 layers, 6 heads, width 384, context 256, character tokens,
   10.7 M parameters) trained on shakespeare for ``--train-steps`` (150: a few minutes on 2 cores), cached in
   ``bench/results/serve-runs-<steps>/`` and reused (``--run DIR`` serves a run of your own). It need not be good.
2. **Time to first token, in process**: ``genlab.load(run).sample(1, prompt=P, max_new_tokens=64, temperature=0.8,
   seed=i, on_text=...)`` timed to its first text, the median of ``--ttft-repeats`` (no server running).
3. **Throughput**: two servers at once, ``genlab serve`` and ``genlab serve --no-batching`` (only one is busy at a
   time), each warmed up; at each of 1, 4, 16 and 64 concurrent clients (asyncio + httpx, this process) every client
   sends streaming ``/v1/completions`` one after the other (prompt P, ``max_tokens`` 64, temperature 0.8, seed = the
   request's number), ``--rounds`` requests each (at least 8 at a level, and ``--ttft-repeats`` at 1 client), batching
   on and off interleaved level by level. tokens/s = completion tokens of all requests / the level's wall time (first
   request sent to last answer read); p50/p99 of each request's latency and time to first token (first SSE chunk with
   text). With 64 clients and batching off a request waits for the 63 before it, so its latency is long: the rounds
   are capped (3) to keep the whole bench under 15 minutes on 2 cores. The median ``GET /v1/health`` round trip is
   reported beside the first-token times: the floor of any answer over HTTP.
4. **Load and attack**: a third server, ``--require-key`` with a key made by ``genlab keys create-api`` under a new
   ``GENLAB_HOME`` (and a signing identity there), ``--queue 32 --max-batch 16`` so that 429s really happen,
   ``--max-body 64KB``. ``--load-requests`` (10,000) requests from ``--load-clients`` (64) clients, drawn from
   ``serve_load.make_cases``: mostly small completions (max_tokens 4-16, n 1-4, some streamed, some abandoned after
   the first chunk), chats, model lists, health, run pages, file generations; and bad ones: no key or a wrong one, a
   body over --max-body (with and without Content-Length), malformed JSON, bytes that are not UTF-8, a JSON that is no
   object, run names that climb out of the runs folder (``../../etc/passwd``, ``..%2F..``, ...) in bodies and in
   paths, max_tokens 10**9 and 10**30, n 10**6, unknown fields, wrong types, wrong methods, a prompt holding a lone
   surrogate. Beside it, slow clients on raw sockets: bodies sent a byte every 50 ms (must be answered), and
   connections whose headers or body never end (held ``--stall-s``; the server should close them). Every answer is
   checked (``serve_load.check``); the server's resident memory is sampled after the first 10% of the requests (at
   least 1,000, or half of them) and at the end. Then a probe that may wedge the server: two file generations asking
   for 10**9 tokens, and whether a completion is still answered after them. No secret (the API key, the run's text
   watermark key, the signing private key) may be in any answer or in the server's log.
5. A table on stdout; everything, the machine and PASS/FAIL per target in ``bench/results/serve.json``.

Targets (the issue's): batching >= 4x the unbatched tokens/s at 16 clients; p50 time to first token at 1 client
within 10% of `genlab sample`'s; under load no 5xx, every 429 with Retry-After, every error in the one shape, bad
requests refused with their 4xx, resident memory within 10%, no secret anywhere.

Reproduce:  python bench/serve.py            (about 10-15 minutes on 2 cores, training included)
            python bench/serve.py --quick    (a few minutes: 40 training steps, levels 1/4/16, 1,000 mixed requests)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT))

import serve_clients as sc  # noqa: E402
import serve_load as sl  # noqa: E402

SHAPE = ["model.n_layer=6", "model.n_head=6", "model.n_embd=384", "model.block_size=256", "model.dropout=0.0",
         "train.batch_size=16", "train.lr=2e-3", "train.min_lr=2e-4", "train.warmup_steps=30", "train.eval_every=0",
         "train.eval_batches=4", "release.track_energy=false"]
PROMPT = "ROMEO:\nWhat say "  # 16 characters = 16 tokens
NEW_TOKENS = 64
TEMPERATURE = 0.8
BATCH_RATIO_BAR, TTFT_BAR, RSS_BAR = 4.0, 1.10, 0.10
LOAD_FLAGS = ["--require-key", "--queue", "32", "--max-batch", "16", "--max-body", "64KB"]
MAX_BODY = 64 << 10


def machine() -> dict:
    import torch

    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else \
        platform.processor()
    return {"cpu": model, "cores": os.cpu_count(), "amx": bool(torch.cpu._is_amx_tile_supported()),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "platform": platform.platform()}


def get_run(args) -> tuple[Path, dict]:
    """The run folder to serve (trained now, or reused), and what is known of its training."""
    import genlab

    if args.run is not None:
        return args.run.resolve(), {"reused": True}
    run_dir = RESULTS / f"serve-runs-{args.train_steps}" / "shakespeare"
    if (run_dir / "summary.json").is_file():
        return run_dir, {"reused": True, "steps": args.train_steps}
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"training the served gpt for {args.train_steps} steps into {run_dir} (once)", flush=True)
    t0 = time.perf_counter()
    genlab.train("gpt", "shakespeare", out=run_dir, overrides=SHAPE + [f"train.max_steps={args.train_steps}"])
    return run_dir, {"reused": False, "steps": args.train_steps, "train_s": round(time.perf_counter() - t0, 1)}


def sample_ttft(run_dir: Path, repeats: int) -> dict:
    """`genlab sample`'s time to first token, in process: seconds from calling ``run.sample`` to its first text;
    then (after: its idle threads must not slow the other down) the server's batch (``serve.engine.Engine``) in
    process, from submitting a request to its first text: what the batch adds before HTTP does."""
    import threading

    import genlab
    from genlab.serve.engine import Completion, Engine

    run = genlab.load(run_dir)
    model = run.model
    engine = None

    def batch_first(seed: int) -> float:
        first, done = [], threading.Event()

        def sink(events: list) -> None:
            first or first.append(time.perf_counter())
            if any("done" in e for e in events):
                done.set()

        t0 = time.perf_counter()
        engine.submit(Completion(model.encode_prompt(PROMPT), 1, NEW_TOKENS, TEMPERATURE, None, None, seed, (), None,
                                 sink))
        done.wait()
        return first[0] - t0

    times = []
    for i in range(-2, repeats):  # two warm-ups
        first: list[float] = []
        t0 = time.perf_counter()
        run.sample(1, prompt=PROMPT, max_new_tokens=NEW_TOKENS, temperature=TEMPERATURE, seed=max(i, 0),
                   on_text=lambda piece: first or first.append(time.perf_counter()))
        if i >= 0:
            times.append(first[0] - t0)
    engine = Engine.for_run(run, max_batch=4, queue=4).start()
    batch = [batch_first(max(i, 0)) for i in range(-2, repeats)][2:]
    engine.close()
    params = sum(p.numel() for p in run.model.causal_lm().parameters())
    return {"p50_ms": round(1000 * statistics.median(times), 2), "min_ms": round(1000 * min(times), 2),
            "batch_p50_ms": round(1000 * statistics.median(batch), 2), "repeats": repeats, "parameters": params}


def http_floor(url: str, repeats: int = 30) -> float:
    """Median milliseconds of a ``GET /v1/health`` round trip: what any answer costs before any model runs."""
    import httpx

    with httpx.Client(timeout=30) as http:
        times = []
        for _ in range(repeats + 3):
            t0 = time.perf_counter()
            http.get(url + "/v1/health").raise_for_status()
            times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times[3:]), 2)


def throughput(runs: Path, levels: list[int], rounds: int, ttft_repeats: int, logs: Path) -> dict:
    """Streaming completions at each level of concurrency, batching on and off (two servers, interleaved)."""
    def body(i: int) -> dict:
        return {"model": "shakespeare", "prompt": PROMPT, "max_tokens": NEW_TOKENS, "temperature": TEMPERATURE,
                "seed": i, "stream": True, "stream_options": {"include_usage": True}}

    out: dict = {"batching": {}, "no_batching": {}}
    with sl.start_server(runs, log=logs / "batching.log") as on, \
            sl.start_server(runs, "--no-batching", log=logs / "no-batching.log") as off:
        servers = {"batching": on, "no_batching": off}
        for s in servers.values():  # loads the run and makes its engine
            asyncio.run(sc.stream_load(s.url, concurrency=2, requests=4, body=body))
        out["http_floor_ms"] = http_floor(on.url)
        for k, c in enumerate(levels):
            requests = max(ttft_repeats if c == 1 else 8, rounds * c)
            for mode in (["batching", "no_batching"] if k % 2 == 0 else ["no_batching", "batching"]):
                load = asyncio.run(sc.stream_load(servers[mode].url, concurrency=c, requests=requests, body=body))
                out[mode][str(c)] = row = sc.summarize(load)
                print(f"  {mode:<11} {c:>3} clients: {row['tokens_per_s']:>7.0f} tokens/s, latency p50/p99 "
                      f"{row['latency_p50_ms']}/{row['latency_p99_ms']} ms, first token p50 {row['ttft_p50_ms']} ms",
                      flush=True)
    out["ratio"] = {str(c): round(out["batching"][str(c)]["tokens_per_s"]
                                  / out["no_batching"][str(c)]["tokens_per_s"], 2) for c in levels}
    return out


def create_api_key(env: dict) -> str:
    """`genlab keys create-api --name bench`: the key is the one line it prints on stdout."""
    done = subprocess.run([sys.executable, "-m", "genlab", "keys", "create-api", "--name", "bench"], env=env,
                          check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def load_and_attack(runs: Path, run_dir: Path, home: Path, args, logs: Path) -> dict:
    from genlab.responsible.keys import ensure_identity

    env = {**os.environ, "GENLAB_HOME": str(home)}
    key = create_api_key(env)
    ensure_identity(home / "keys")  # what would sign generated files: its private key must never come back
    secrets = sl.secrets_of(run_dir, home, key)
    model = run_dir.name
    log = logs / "load.log"
    warm_at = max(args.load_requests // 10, min(1000, args.load_requests // 2))  # every kind seen, caches grown
    rss: dict = {"samples_mb": []}
    with sl.start_server(runs, *LOAD_FLAGS, log=log, env={"GENLAB_HOME": str(home)}) as server:
        def on_done(n: int) -> None:
            if n == warm_at:
                rss["warm_bytes"] = server.rss()

        async def run() -> tuple:
            stop = asyncio.Event()

            async def sampler() -> None:
                while not stop.is_set():
                    rss["samples_mb"].append(round(server.rss() / 2**20, 1))
                    try:
                        await asyncio.wait_for(stop.wait(), 2.0)
                    except asyncio.TimeoutError:
                        pass

            sampling = asyncio.create_task(sampler())
            slow = asyncio.create_task(sc.slow_clients(server.url, key, model, stalled_each=4, hold_s=args.stall_s,
                                                       slow_bodies=4, byte_every_s=0.05))
            report = await sl.mixed_load(server.url, total=args.load_requests, concurrency=args.load_clients, key=key,
                                         model=model, max_body=MAX_BODY, secrets=secrets, seed=1, on_done=on_done)
            rss["end_bytes"] = server.rss()
            slow_report = await slow
            stop.set()
            await sampling
            probe = await sc.unbounded_generation_probe(server.url, key, model, requests=2, give_up_s=3.0,
                                                        then_wait_s=args.probe_wait_s)
            return report, slow_report, probe

        report, slow_report, probe = asyncio.run(run())
    log_text = log.read_text(errors="replace")
    rss["growth"] = round(rss["end_bytes"] / rss["warm_bytes"] - 1, 4)
    rss["warm_mb"], rss["end_mb"] = round(rss.pop("warm_bytes") / 2**20, 1), round(rss.pop("end_bytes") / 2**20, 1)
    return {"flags": LOAD_FLAGS, "clients": args.load_clients, "report": report.as_dict(), "slow_clients": slow_report,
            "unbounded_generation": probe, "rss": rss, "log_leaks": sl.leaks(log_text, secrets),
            "log_tracebacks": log_text.count("Traceback (most recent call last)"),
            "secrets_checked": {name: len(needles) for name, needles in secrets.items()}}


def targets(result: dict) -> dict:
    out = {}
    tp = result.get("throughput")
    if tp and "16" in tp["ratio"]:
        out["batching >= 4x unbatched tokens/s at 16 clients"] = {"value": tp["ratio"]["16"], "bar": BATCH_RATIO_BAR,
                                                                 "pass": tp["ratio"]["16"] >= BATCH_RATIO_BAR}
    if result.get("sample_ttft"):
        s = result["sample_ttft"]
        inside = s["batch_p50_ms"] / s["p50_ms"]
        out["in process: the batch's first token within 10% of genlab sample's"] = {
            "value": round(inside, 3), "bar": TTFT_BAR, "pass": inside <= TTFT_BAR}
    if tp and "1" in tp["batching"] and result.get("sample_ttft"):
        ratio = tp["batching"]["1"]["ttft_p50_ms"] / result["sample_ttft"]["p50_ms"]
        result["ttft_ratio"] = round(ratio, 3)
        floor = tp.get("http_floor_ms") or 0.0
        net = (tp["batching"]["1"]["ttft_p50_ms"] - floor) / result["sample_ttft"]["p50_ms"]
        result["ttft_ratio_less_http"] = round(net, 3)
        out["p50 first token at 1 client within 10% of genlab sample's (less one HTTP round trip)"] = {
            "value": round(net, 3), "bar": TTFT_BAR, "pass": net <= TTFT_BAR}
    load = result.get("load")
    if load:
        rep, fails = load["report"], load["report"]["failures"]
        status = rep["statuses"]
        out["no 5xx under load"] = {"value": sum(v for k, v in status.items() if k.startswith("5")), "bar": 0,
                                    "pass": not any(k.startswith("5") for k in status)}
        out["every 429 carries Retry-After"] = {"value": f"{status.get('429', 0)} 429s, "
                                                         f"{fails.get('429_without_retry_after', 0)} without",
                                                "pass": not fails.get("429_without_retry_after")}
        out["429s really happen (queue small enough)"] = {"value": status.get("429", 0),
                                                          "pass": status.get("429", 0) > 0}
        out["every error in the one shape"] = {"value": fails.get("error_shape", 0), "bar": 0,
                                               "pass": not fails.get("error_shape")}
        out["bad requests refused with their 4xx"] = {
            "value": f"{fails.get('unexpected_status', 0)} unexpected, {fails.get('transport_error', 0)} dropped",
            "pass": not fails.get("unexpected_status") and not fails.get("transport_error")}
        out["streams end with [DONE], no error events"] = {
            "value": sum(fails.get(k, 0) for k in ("stream_unfinished", "stream_bad_event", "stream_error")),
            "pass": not any(fails.get(k) for k in ("stream_unfinished", "stream_bad_event", "stream_error"))}
        out["resident memory flat (within 10%)"] = {"value": load["rss"]["growth"], "bar": RSS_BAR,
                                                    "pass": load["rss"]["growth"] <= RSS_BAR}
        out["no secret in any response or the log"] = {
            "value": {"responses": rep["leaked"], "log": load["log_leaks"]},
            "pass": not rep["leaked"] and not load["log_leaks"]}
        slow = load["slow_clients"]
        out["slow bodies answered"] = {"value": f"{slow['slow_bodies_answered']}/{slow['slow_bodies']}",
                                       "pass": slow["slow_bodies_answered"] == slow["slow_bodies"]}
        out[f"stalled bodies closed by the server (408) within {slow['stalled_hold_s']:g} s"] = {
            "value": f"{slow['stalled_bodies_closed']}/{slow['stalled_bodies']}",
            "pass": slow["stalled_bodies_closed"] == slow["stalled_bodies"]}
        result["stalled_headers"] = (f"{slow['stalled_headers_closed']}/{slow['stalled_headers']} connections whose "
                                     "headers never end were closed (uvicorn has no header timeout: a proxy's job)")
        probe = load["unbounded_generation"]
        out["file generation of 10**9 tokens refused, server still answers"] = {
            "value": {"answers": probe["answers"], "completion_after": probe["completion_after"]},
            "pass": probe["refused"] and probe["server_still_answers"]}
    return out


def print_table(result: dict) -> None:
    tp = result.get("throughput")
    if tp:
        head = f"{'clients':>7} {'mode':<11} {'tokens/s':>9} {'req/s':>7} {'lat p50':>9} {'lat p99':>9} " \
               f"{'ttft p50':>9} {'ttft p99':>9} {'ratio':>6}"
        print("\n" + head + "\n" + "-" * len(head))
        for c in tp["ratio"]:
            for mode in ("batching", "no_batching"):
                r = tp[mode][c]
                ratio = f"{tp['ratio'][c]:>6.2f}" if mode == "batching" else ""
                print(f"{c:>7} {mode:<11} {r['tokens_per_s']:>9.0f} {r['requests_per_s']:>7.2f} "
                      f"{r['latency_p50_ms']:>9} {r['latency_p99_ms']:>9} {r['ttft_p50_ms']:>9} {r['ttft_p99_ms']:>9} "
                      f"{ratio}")
        print("(latency and time to first token in ms; ratio = batching / no batching tokens/s)")
    if result.get("sample_ttft"):
        print(f"genlab sample's first token (in process, median): {result['sample_ttft']['p50_ms']} ms, the "
              f"server's batch in process: {result['sample_ttft']['batch_p50_ms']} ms; "
              f"a GET /v1/health round trip (median): {(tp or {}).get('http_floor_ms')} ms")
    load = result.get("load")
    if load:
        rep = load["report"]
        print(f"\nload: {rep['requests']} requests from {load['clients']} clients in {rep['wall_s']} s; "
              f"statuses {rep['statuses']}")
        for kind, counts in rep["by_kind"].items():
            print(f"  {kind:<20} {counts}")
        for check, examples in rep["examples"].items():
            print(f"  FAILED {check} ({rep['failures'][check]}x), e.g. {examples[0]}")
        print(f"  resident memory: {load['rss']['warm_mb']} MB after warm-up, {load['rss']['end_mb']} MB at the end")
        print(f"  slow clients: {load['slow_clients']}")
        print(f"  unbounded generation probe: {load['unbounded_generation']}")
    print()
    for name, t in result["targets"].items():
        print(f"{'PASS' if t['pass'] else 'FAIL'}  {name}: {t['value']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short version (see the docstring)")
    ap.add_argument("--run", type=Path, help="a gpt run folder to serve (default: train or reuse one)")
    ap.add_argument("--train-steps", type=int, help="training steps of the served run (default 150; quick 40)")
    ap.add_argument("--levels", help="concurrent clients, comma-separated (default 1,4,16,64; quick 1,4,16)")
    ap.add_argument("--rounds", type=int, help="requests per client at each level (default 3; quick 2)")
    ap.add_argument("--ttft-repeats", type=int, help="genlab sample timings (default 20; quick 8)")
    ap.add_argument("--load-requests", type=int, help="mixed requests (default 10000; quick 1000)")
    ap.add_argument("--load-clients", type=int, default=64)
    ap.add_argument("--stall-s", type=float, help="how long stalled connections are held (default 60; quick 20)")
    ap.add_argument("--probe-wait-s", type=float, default=20.0, help="how long a completion may take after the probe")
    ap.add_argument("--skip", default="", help="parts to leave out, comma-separated: throughput, ttft, load")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve.json")
    args = ap.parse_args()
    quick = args.quick
    args.train_steps = args.train_steps or (40 if quick else 150)
    levels = [int(c) for c in (args.levels or ("1,4,16" if quick else "1,4,16,64")).split(",")]
    args.rounds = args.rounds or (2 if quick else 3)
    args.ttft_repeats = args.ttft_repeats or (8 if quick else 20)
    args.load_requests = args.load_requests or (1000 if quick else 10_000)
    args.stall_s = args.stall_s or (20.0 if quick else 60.0)
    skip = {s for s in args.skip.split(",") if s}

    t_start, load0 = time.perf_counter(), os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="genlab-bench-serve-"))
    home = tmp / "home"  # API keys and the signing identity of this bench only
    os.environ["GENLAB_HOME"] = str(home)
    logs = RESULTS / "serve-logs"
    shutil.rmtree(logs, ignore_errors=True)
    result: dict = {"machine": machine(), "quick": quick,
                    "settings": {"prompt": PROMPT, "max_tokens": NEW_TOKENS, "temperature": TEMPERATURE,
                                 "levels": levels, "rounds": args.rounds, "load_requests": args.load_requests,
                                 "load_clients": args.load_clients, "stall_s": args.stall_s}}
    try:
        run_dir, result["run"] = get_run(args)
        runs = run_dir.parent  # every run in it is served; the bench asks for this one
        result["run"]["path"] = str(run_dir)
        if "ttft" not in skip:
            print("genlab sample's time to first token ...", flush=True)
            result["sample_ttft"] = sample_ttft(run_dir, args.ttft_repeats)
            result["run"]["parameters"] = result["sample_ttft"]["parameters"]
        if "throughput" not in skip:
            print(f"throughput at {levels} clients, batching on and off ...", flush=True)
            result["throughput"] = throughput(runs, levels, args.rounds, args.ttft_repeats, logs)
        if "load" not in skip:
            print(f"load and attack: {args.load_requests} requests from {args.load_clients} clients ...", flush=True)
            result["load"] = load_and_attack(runs, run_dir, home, args, logs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["targets"] = targets(result)
    result["loadavg_1min_start_end"] = [load0, os.getloadavg()[0]]
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print_table(result)
    print(f"wrote {args.out} ({result['wall_s']} s; server logs in {logs})")


if __name__ == "__main__":
    main()
