"""Music: a gpt trained on Bach's chorales against a random-token floor and real music, in one run; how long each
corpus takes to convert and tokenise; generation speed against transformers' ``generate()`` on the same weights.

1. **Corpora** from a cold cache (``GENLAB_CACHE`` pointed at a new temporary folder): music21 to MIDI, then reading
   and tokenising, timed apart, for ``chorales`` and ``folk`` (``--skip-folk`` leaves the 8,514 folk tunes out).
2. **Training**: ``genlab train gpt --data chorales --config chorales`` (about 7 minutes on 2 cores without AMX),
   or ``--run RUN`` to measure a run trained before.
3. **Quality** (``genlab eval``: ``--n`` pieces of 8 bars; continuations of held-out chorales): the issue's checks
   are printed as pass/fail: each histogram overlap nearer the held-out music than the floor's, at least 99% valid
   MIDI, continuation in the prompt's key within 5 points of the real next bars.
4. **Speed**: new tokens per second of 8 pieces of 16 bars (genlab's sampler with the bar stop) against
   ``model.generate(do_sample=True, top_p=0.95)`` on the same weights and as many new tokens, interleaved rounds.
5. **Listening**: 4 pieces of 16 bars and one continuation of a held-out chorale, written with their WAVs and
   piano rolls to ``bench/results/music/``, and each WAV's loudness envelope (RMS per second).

Reproduce:  python bench/music.py          (writes bench/results/music.json; about 15 minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"


def corpus_times(name: str) -> dict[str, float]:
    """Seconds to convert (music21 -> MIDI, cold cache) and to read and tokenise, and the corpus's size."""
    from genlab.data.music import MusicDataConfig, prepare_music
    from genlab.registry import get_dataset

    source = get_dataset(name).load()
    t0 = time.perf_counter()
    pieces = source.pieces()
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_music(source, MusicDataConfig(), Path(tmp))
        t2 = time.perf_counter()
        tokens = data.n_tokens("train") + data.n_tokens("val")
    return {"pieces": len(pieces), "tokens": tokens, "convert_s": round(t1 - t0, 1), "tokenize_s": round(t2 - t1, 1)}


def train(out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "genlab.cli", "train", "gpt", "--data", "chorales", "--config", "chorales",
                    "--out", str(out), "--set", "release.track_energy=false"], check=True)
    return time.perf_counter() - t0


def checks(report: dict) -> dict[str, bool]:
    """The issue's quality bars."""
    floor, ref = report["floor"], report["reference"]
    out = {f"{h}_overlap above the floor": report[f"{h}_overlap"] > floor[f"{h}_overlap"]
           for h in ("pitch_class", "duration", "interval")}
    out["valid MIDI >= 99%"] = report["valid_midi_share"] >= 0.99
    if "continuation_in_prompt_key" in report:
        gap = abs(report["continuation_in_prompt_key"] - ref["continuation_in_prompt_key"])
        out["continuation in the prompt's key within 5 points"] = gap <= 0.05
    return out


def speed(run, rounds: int) -> dict[str, float]:
    """New tokens per second: 8 pieces of 16 bars (genlab, with the bar stop and the sliding window), and 8 rows of
    as many tokens as the context holds with genlab's sampler and with transformers' generate() on the same
    weights, interleaved rounds (generate() cannot go past the context)."""
    import torch

    from genlab.data.tokenizers import eot_id
    from genlab.sample.music_compose import compose

    model, data = run.model, run.data
    eot, new = eot_id(model.tokenizer_), model.config.block_size - 1
    pieces, ours, theirs = [], [], []
    for r in range(rounds):
        t0 = time.perf_counter()
        rows = compose(model, data, [], n=8, bars=16, seed=r)
        pieces.append(sum(map(len, rows)) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        model.sample(8, seed=r, max_new_tokens=new, temperature=1.0, top_p=0.95, stop=lambda t: t < 0)
        ours.append(8 * new / (time.perf_counter() - t0))
        start = torch.full((8, 1), eot, dtype=torch.long)
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.model_.eval().generate(start, attention_mask=torch.ones_like(start), do_sample=True, top_p=0.95,
                                         temperature=1.0, pad_token_id=eot, max_new_tokens=new, min_new_tokens=new)
        theirs.append(8 * new / (time.perf_counter() - t0))
    tok_s, peer = statistics.median(ours), statistics.median(theirs)
    return {"pieces_tokens_per_s": round(statistics.median(pieces)), "genlab_tokens_per_s": round(tok_s),
            "generate_tokens_per_s": round(peer), "ratio": round(tok_s / peer, 2)}


def envelope(path: Path) -> list[float]:
    """RMS loudness per second of a WAV (channels mixed)."""
    with wave.open(str(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels).mean(1) / 32768
    return [round(float(np.sqrt(np.mean(x[i : i + rate] ** 2))), 3) for i in range(0, len(x), rate)]


def listen(run, out: Path) -> dict:
    """4 pieces of 16 bars and a continuation of a held-out chorale, with their envelopes."""
    from genlab.sample.music import renderer

    shutil.rmtree(out, ignore_errors=True)
    run.sample(4, seed=1, bars=16).save(out / "pieces")
    held = run.data.decode(run.data.pieces("val")[0])
    prompt = out.parent / "music-prompt.mid"
    prompt.write_bytes(held.dumps_midi())
    run.sample(1, seed=1, bars=8, prompt_midi=str(prompt), prompt_bars=2).save(out / "continued")
    return {"renderer": renderer(),
            "envelopes": {p.relative_to(out).as_posix(): envelope(p) for p in sorted(out.rglob("*.wav"))}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="a chorales run to measure (default: train one)")
    ap.add_argument("--n", type=int, default=32, help="pieces generated for the metrics")
    ap.add_argument("--skip-folk", action="store_true", help="leave the folk corpus's conversion out")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import torch

    import genlab

    result: dict = {"machine": {"platform": platform.platform(), "cores": os.cpu_count(),
                                "amx": bool(torch.cpu._is_amx_tile_supported())}, "corpora": {}}
    cache = Path(tempfile.mkdtemp(prefix="genlab-music-cache-"))
    os.environ["GENLAB_CACHE"] = str(cache)  # cold: nothing converted yet
    try:
        for name in ["chorales"] + ([] if args.skip_folk else ["folk"]):
            result["corpora"][name] = corpus_times(name)
            print(name, result["corpora"][name], flush=True)
        run_dir = args.run or RESULTS / "music-run"
        if args.run is None:
            shutil.rmtree(run_dir, ignore_errors=True)
            result["train_s"] = round(train(run_dir), 1)
        run = genlab.load(run_dir)
        t0 = time.perf_counter()
        report = run.evaluate(n=args.n, bars=8, seed=0, save=True)
        result["eval_s"] = round(time.perf_counter() - t0, 1)
        result["eval"] = report
        result["checks"] = checks(report)
        result["speed"] = speed(run, args.rounds)
        result["listen"] = listen(run, RESULTS / "music")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "music.json").write_text(json.dumps(result, indent=1))
    print_table(result)


def print_table(result: dict) -> None:
    report = result["eval"]
    print(f"\n{'figure':36} {'model':>9} {'floor':>9} {'ceiling':>9} {'held-out':>9}")
    for key, value in report.items():
        if isinstance(value, float):
            row = [report.get("floor", {}).get(key), report.get("ceiling", {}).get(key),
                   report.get("reference", {}).get(key)]
            print(f"{key:36} {value:9.3f} " + " ".join(f"{v:9.3f}" if v is not None else " " * 9 for v in row))
    for name, ok in result["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print("speed:", result["speed"])
    print("corpora:", result["corpora"], "train_s:", result.get("train_s"), "eval_s:", result["eval_s"])
    print("renderer:", result["listen"]["renderer"])


if __name__ == "__main__":
    main()
