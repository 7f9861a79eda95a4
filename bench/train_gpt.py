"""Training speed of genlab's GPT loop against a plain PyTorch loop, on CPU, in one run.

For each shape (nanoGPT's "shakespeare_char" and CPU "baby") it times optimizer steps of
  * plain:  transformers' GPT2LMHeadModel with its defaults (gelu_new), fp32, non-fused ``torch.optim.AdamW``,
            forward / F.cross_entropy / backward / step on random batches from the token memmap (nanoGPT style);
  * genlab: ``genlab.models.gpt.GPT`` driven by ``genlab.train.loop.Trainer`` (fp32; bf16 too where the CPU has
            AMX/AVX512-BF16; ``--compile`` adds train.compile=True), on the same prepared ``TextData``.
Both use the same dropout and thread count. Warm-up steps are not timed; each variant is measured in ``--rounds``
rounds whose order alternates (A B, B A, ...), and ms/step is the median over all timed steps, so the ratio
genlab/plain comes from the same run. MFU = (6 N + 12 L T C) * tokens/s / peak, with N the non-embedding
parameter count (nanoGPT's estimate) and peak a 2048^3 matmul rate measured here in the precision under test.

Reproduce: ``python bench/train_gpt.py`` (about 6-8 min on 2 cores); ``--compile`` adds torch.compile runs.
Results: a table on stdout and JSON in bench/results/train_gpt.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from genlab.config import TrainConfig
from genlab.data import resolve
from genlab.data.tokens import TextData, TextDataConfig, prepare_text
from genlab.models.gpt import GPT, GPTConfig
from genlab.train.loop import Trainer
from genlab.train.precision import cpu_has_fast_bf16

# name: (n_layer, n_head, n_embd, block_size, batch_size, dropout, lr, warm-up steps, timed steps per round)
SHAPES = {
    "shakespeare_char": (6, 6, 384, 256, 64, 0.2, 1e-3, 2, 4),
    "baby": (4, 4, 128, 64, 12, 0.0, 1e-3, 5, 40),
}


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 3) -> float:
    """Best-of-``reps`` FLOP/s of an n^3 matrix product in ``dtype``."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def flops_per_token(model: torch.nn.Module, L: int, C: int, T: int) -> tuple[int, float]:
    n = sum(p.numel() for p in model.parameters()) - model.transformer.wpe.weight.numel()  # nanoGPT's non-embedding N
    return n, 6 * n + 12 * L * T * C


def time_plain(data: TextData, shape: tuple, warmup: int, steps: int, seed: int) -> tuple[list[float], dict]:
    L, H, C, T, B, dropout, lr, *_ = shape
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=data.vocab_size, n_positions=T, n_embd=C, n_layer=L, n_head=H,
                     resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)  # activation: gelu_new default
    model = GPT2LMHeadModel(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    arr = data.arrays["train"]
    times = [time.perf_counter()]
    for _ in range(warmup + steps):
        ix = torch.randint(len(arr) - T, (B,)).tolist()
        xy = torch.from_numpy(np.stack([arr[i : i + T + 1].astype(np.int64) for i in ix]))
        x, y = xy[:, :-1], xy[:, 1:]
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
        times.append(time.perf_counter())
    n, fpt = flops_per_token(model, L, C, T)
    info = {"n_params_nonembed": n, "flops_per_token": fpt, "attn": model.config._attn_implementation,
            "activation": cfg.activation_function}
    return np.diff(times[warmup:]).tolist(), info


def time_genlab(data: TextData, shape: tuple, warmup: int, steps: int, seed: int, precision: str,
                compile_: bool) -> tuple[list[float], dict]:
    L, H, C, T, B, dropout, lr, *_ = shape
    fam = GPT(GPTConfig(n_layer=L, n_head=H, n_embd=C, block_size=T, dropout=dropout))
    fam.build(data, seed=seed)
    times: list[float] = []
    # One extra, untimed step at the end: the loop validates (and would checkpoint) after its last step, before
    # the callbacks run, so the last interval is not a pure training step.
    train = TrainConfig(seed=seed, max_steps=warmup + steps + 1, batch_size=B, lr=lr, min_lr=lr / 10,
                        warmup_steps=warmup, precision=precision, compile=compile_, eval_every=10**9,
                        eval_batches=1, log_every=10, checkpoint_every=10**9)
    Trainer(fam, data, train, run_dir=None, progress=False,
            callbacks=[lambda tr, step, logs: times.append(time.perf_counter())]).run()
    # times[k] is taken after step k+1; intervals after the warm-up steps, dropping the extra last one
    n, fpt = flops_per_token(fam.model_, L, C, T)
    info = {"n_params_nonembed": n, "flops_per_token": fpt, "attn": fam.model_.config._attn_implementation,
            "activation": fam.config.activation}
    return np.diff(times[warmup - 1 : warmup + steps]).tolist(), info


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, help="timed steps per variant and round (default: per shape)")
    ap.add_argument("--warmup", type=int, help="untimed warm-up steps per measurement (default: per shape, >= 1)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds per variant (default 2)")
    ap.add_argument("--shapes", default="baby,shakespeare_char", help="comma-separated: " + ",".join(SHAPES))
    ap.add_argument("--compile", action="store_true", help="also time genlab with train.compile=True")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_gpt.json")
    args = ap.parse_args()
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in shapes:
        if s not in SHAPES:
            ap.error(f"unknown shape {s!r}; choose from {', '.join(SHAPES)}")
    torch.manual_seed(0)
    fast_bf16 = cpu_has_fast_bf16()
    notes = []
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 2048^3 matmul peak: "
          f"fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s", flush=True)
    variants = [("plain", "fp32", False), ("genlab", "fp32", False)]
    if fast_bf16:
        variants.append(("genlab", "bf16", False))
    else:
        notes.append("genlab bf16 skipped: this CPU lacks AMX/AVX512-BF16 (bf16 matmul is slower than fp32 here)")
    if args.compile:
        variants.append(("genlab+compile", "bf16" if fast_bf16 else "fp32", True))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_text(resolve("shakespeare", "text"), TextDataConfig(), Path(tmp) / "shakespeare")
        for name in shapes:
            shape = SHAPES[name]
            L, H, C, T, B = shape[:5]
            warmup = max(1, args.warmup if args.warmup is not None else shape[7])
            steps = args.steps or shape[8]
            if any(c for *_, c in variants):
                warmup = max(warmup, 2)  # the first compiled step compiles, the second may recompile
            data.block_size = T
            per_step: dict[int, list[float]] = {i: [] for i in range(len(variants))}
            infos: dict[int, dict] = {}
            for r in range(args.rounds):
                order = range(len(variants)) if r % 2 == 0 else reversed(range(len(variants)))
                for i in order:
                    label, prec, comp = variants[i]
                    t0 = time.perf_counter()
                    if label == "plain":
                        dts, info = time_plain(data, shape, warmup, steps, seed=1337 + r)
                    else:
                        dts, info = time_genlab(data, shape, warmup, steps, 1337 + r, prec, comp)
                    per_step[i] += dts
                    infos[i] = info
                    print(f"  {name} round {r + 1} {label} {prec}: median {1e3 * statistics.median(dts):.1f} "
                          f"ms/step ({time.perf_counter() - t0:.0f} s incl. warm-up)", flush=True)
            base_ms = 1e3 * statistics.median(per_step[0])
            for i, (label, prec, comp) in enumerate(variants):
                ms = 1e3 * statistics.median(per_step[i])
                tok_s = B * T / (ms / 1e3)
                mfu = infos[i]["flops_per_token"] * tok_s / peaks[prec]
                rows.append({"shape": name, "variant": label, "precision": prec, "compile": comp,
                             "n_layer": L, "n_head": H, "n_embd": C, "block_size": T, "batch_size": B,
                             "dropout": shape[5], "vocab_size": data.vocab_size, "warmup_steps": warmup,
                             "timed_steps": len(per_step[i]), "ms_per_step": ms,
                             "ms_per_step_min": 1e3 * min(per_step[i]), "ms_per_step_max": 1e3 * max(per_step[i]),
                             "tokens_per_s": tok_s, "mfu": mfu, "speedup_vs_plain": base_ms / ms,
                             **infos[i], "step_times_s": per_step[i]})
    header = f"{'shape':<17}{'variant':<16}{'prec':<6}{'tokens/s':>10}{'ms/step':>10}{'MFU':>8}{'vs plain':>10}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['shape']:<17}{r['variant']:<16}{r['precision']:<6}{r['tokens_per_s']:>10,.0f}"
              f"{r['ms_per_step']:>10.1f}{100 * r['mfu']:>7.1f}%{r['speedup_vs_plain']:>9.2f}x")
    for n in notes:
        print("note:", n)
    result = {
        "benchmark": "train_gpt", "command": " ".join(["python", *sys.argv]), "args": {k: str(v) for k, v in vars(args).items()},
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": _cpu_name(),
        "cpu_fast_bf16": fast_bf16, "matmul_peak_flops": peaks, "notes": notes, "rows": rows,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
