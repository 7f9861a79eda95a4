"""Generation speed: genlab's static-KV-cache sampler against transformers' ``model.generate()``, in one run.

Measures tokens/s (new tokens of all rows per wall-clock second) for ``--new-tokens`` (256) new tokens after a
16-token prompt, at batch 1 and batch 16 (ms/token = wall time per decoding step, all rows together), on a 4-layer / 4-head / 128-wide char-level GPT2LMHeadModel
(n_positions 512, gelu_pytorch_tanh, vocab 86). Rows:

* greedy: ``genlab.sample.text.generate_ids(temperature=0)`` vs ``model.generate(do_sample=False, use_cache=True)``;
  the two outputs must be equal token for token (``match``; ``first_mismatch`` is the first differing position).
* top-k sampling (k=10, temperature 1): same, with ``do_sample=True``; outputs differ by design (different RNGs).

Each measurement is taken with PyTorch's default thread count and with ``torch.set_num_threads(1)``. Every
configuration is warmed up once, then timed ``--repeats`` times with genlab and generate() interleaved (order
alternating), and the median is reported; ``ratio`` = genlab tokens/s / generate() tokens/s from the same rounds.

The model is trained briefly with genlab (``--train-steps`` 150 on shakespeare, cached in ``--model-dir`` and
reused) so greedy argmax is not decided by near-ties; ``--train-steps 0`` uses a seeded random init instead.

Reproduce:  python bench/sample_gpt.py          (writes bench/results/sample_gpt.json)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

import genlab
from genlab.data.tokenizers import eot_id
from genlab.sample.text import generate_ids

PROMPT = "ROMEO:\nWhat say "  # 16 characters = 16 tokens with the char tokenizer


def get_model(train_steps: int, model_dir: Path) -> tuple[GPT2LMHeadModel, list[int], int]:
    """(model in eval mode, prompt ids, pad id)."""
    if train_steps == 0:
        torch.manual_seed(0)
        cfg = GPT2Config(vocab_size=86, n_positions=512, n_embd=128, n_layer=4, n_head=4,
                         activation_function="gelu_pytorch_tanh", attn_implementation="sdpa")
        g = torch.Generator().manual_seed(1)
        return GPT2LMHeadModel(cfg).eval(), torch.randint(0, 86, (16,), generator=g).tolist(), 0
    run_dir = model_dir / f"steps{train_steps}"
    if (run_dir / "summary.json").is_file():
        run = genlab.load(run_dir)
    else:
        print(f"training the model for {train_steps} steps into {run_dir} (once; about 2 min on 2 cores)")
        run = genlab.train("gpt", "shakespeare", out=run_dir, overrides=[
            "model.block_size=512", f"train.max_steps={train_steps}", "train.batch_size=8", "train.lr=3e-3",
            "train.warmup_steps=20", "train.eval_every=0", "train.eval_batches=2", "train.seed=1337"])
    fam = run.model
    prompt = fam.encode_prompt(PROMPT)
    return fam.model_.eval(), prompt, eot_id(fam.tokenizer_)


def run_genlab(model, prompt, batch, new, sample):
    kw = dict(temperature=1.0, top_k=10, seed=0) if sample else dict(temperature=0.0)
    return generate_ids(model, prompt, n=batch, max_new_tokens=new, **kw)


def run_hf(model, prompt, batch, new, sample, pad_id):
    ids = torch.tensor([prompt] * batch)
    kw = dict(do_sample=True, top_k=10, temperature=1.0) if sample else dict(do_sample=False)
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                             pad_token_id=pad_id, eos_token_id=None, use_cache=True, **kw)
    assert out.shape == (batch, len(prompt) + new), out.shape
    return out[:, len(prompt):].tolist()


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def first_mismatch(a: list[list[int]], b: list[list[int]]) -> int | None:
    pos = [next((i for i, (x, y) in enumerate(zip(ra, rb)) if x != y), None) for ra, rb in zip(a, b)]
    pos = [p for p in pos if p is not None]
    return min(pos) if pos else None


def measure(model, prompt, pad_id, batch, new, sample, repeats) -> list[dict]:
    fns = {"genlab": lambda: run_genlab(model, prompt, batch, new, sample),
           "generate": lambda: run_hf(model, prompt, batch, new, sample, pad_id)}
    outs = {name: fn() for name, fn in fns.items()}  # warm-up (also the outputs compared for greedy)
    times = {name: [] for name in fns}
    for r in range(repeats):
        for name in (["genlab", "generate"] if r % 2 == 0 else ["generate", "genlab"]):
            times[name].append(timed(fns[name])[0])
    med = {name: statistics.median(ts) for name, ts in times.items()}
    mism = None if sample else first_mismatch(outs["genlab"], outs["generate"])
    rows = []
    for name in ("genlab", "generate"):
        rows.append({
            "batch": batch, "mode": f"top-k{10}" if sample else "greedy", "method": name,
            "threads": torch.get_num_threads(), "tokens_per_s": batch * new / med[name],
            "ms_per_token": 1e3 * med[name] / new, "times_s": times[name],
            "ratio_vs_generate": med["generate"] / med[name],
            "greedy_match": None if sample else mism is None, "first_mismatch": mism,
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sample_gpt.json")
    ap.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    ap.add_argument("--train-steps", type=int, default=150, help="0 = random init, no training")
    ap.add_argument("--model-dir", type=Path, default=Path("/tmp/genlab-bench-sample-gpt"))
    ap.add_argument("--no-sample", action="store_true", help="skip the top-k sampling rows")
    ap.add_argument("--no-single-thread", action="store_true", help="skip the torch.set_num_threads(1) rows")
    args = ap.parse_args()

    model, prompt, pad_id = get_model(args.train_steps, args.model_dir)
    assert len(prompt) + args.new_tokens <= model.config.n_positions, "raise n_positions or lower --new-tokens"
    default_threads = torch.get_num_threads()
    thread_settings = [default_threads] + ([] if args.no_single_thread or default_threads == 1 else [1])
    rows, t0, load0 = [], time.perf_counter(), os.getloadavg()[0]
    for threads in thread_settings:
        torch.set_num_threads(threads)
        for batch in [int(b) for b in args.batches.split(",")]:
            for sample in [False] + ([] if args.no_sample else [True]):
                rows += measure(model, prompt, pad_id, batch, args.new_tokens, sample, args.repeats)
    torch.set_num_threads(default_threads)

    head = f"{'thr':>3} {'batch':>5} {'mode':<7} {'method':<9} {'tokens/s':>9} {'ms/token':>9} {'ratio':>6} match"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        match = "-" if r["greedy_match"] is None else str(r["greedy_match"]) + (
            "" if r["greedy_match"] else f" (first at {r['first_mismatch']})")
        print(f"{r['threads']:>3} {r['batch']:>5} {r['mode']:<7} {r['method']:<9} {r['tokens_per_s']:>9.0f} "
              f"{r['ms_per_token']:>9.2f} {r['ratio_vs_generate']:>6.2f} {match}")
    b1 = [r for r in rows if r["batch"] == 1 and r["mode"] == "greedy" and r["method"] == "genlab"
          and r["threads"] == default_threads]
    if b1:
        print(f"target genlab >= 3x generate() at batch 1 (greedy, {default_threads} threads): "
              f"{b1[0]['ratio_vs_generate']:.2f}x -> {'met' if b1[0]['ratio_vs_generate'] >= 3 else 'NOT met'}")
    meta = {"new_tokens": args.new_tokens, "prompt_tokens": len(prompt), "repeats": args.repeats,
            "train_steps": args.train_steps, "default_threads": default_threads,
            "model": {k: getattr(model.config, k) for k in
                      ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size", "activation_function")},
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "loadavg_1min_start_end": [load0, os.getloadavg()[0]],
            "wall_s": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
