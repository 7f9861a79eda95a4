"""Training speed of genlab's GPT loop against a plain PyTorch loop, on CPU, in one run.

For each shape (nanoGPT's "shakespeare_char" and CPU "baby") it times optimizer steps of
  * plain:  transformers' GPT2LMHeadModel with its defaults (gelu_new), fp32, non-fused ``torch.optim.AdamW``,
            forward / F.cross_entropy / backward / step on random batches from the token memmap (nanoGPT style);
  * genlab: ``genlab.models.gpt.GPT`` driven by ``genlab.train.loop.Trainer`` (fp32; bf16 too where the CPU has
            AMX/AVX512-BF16; ``--compile`` adds train.compile=True), on the same prepared ``TextData``.
Both use the same dropout and thread count. The two are interleaved step by step: genlab's Trainer runs, and
after each of its steps its callback runs one plain step, so both see the same machine (other processes, thermal
state). Warm-up steps are not timed; ms/step is the median of the timed steps and each genlab row's speed-up is
against the plain steps interleaved with it. MFU = (6 N + 12 L T C) * tokens/s / peak, with N the non-embedding
parameter count (nanoGPT's estimate) and peak a 2048^3 matmul rate measured here in the precision under test.

Reproduce: ``python bench/train_gpt.py`` (about 3.5 min on 2 idle cores, longer on a shared CPU); ``--compile`` adds torch.compile runs.
Results: a table on stdout and JSON in bench/results/train_gpt.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from genlab.config import TrainConfig
from genlab.registry import get_dataset
from genlab.data.tokens import TextData, TextDataConfig, prepare_text
from genlab.models.gpt import GPT, GPTConfig
from genlab.train.loop import Trainer
from genlab.train.precision import cpu_has_fast_bf16

# name: (n_layer, n_head, n_embd, block_size, batch_size, dropout, lr, warm-up steps, timed steps per round)
SHAPES = {
    "shakespeare_char": (6, 6, 384, 256, 64, 0.2, 1e-3, 2, 5),
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


def flops_per_token(model: torch.nn.Module, L: int, C: int, T: int) -> dict:
    n = sum(p.numel() for p in model.parameters()) - model.transformer.wpe.weight.numel()  # nanoGPT's non-embedding N
    return {"n_params_nonembed": n, "flops_per_token": 6 * n + 12 * L * T * C}


class PlainLoop:
    """The reference: transformers defaults (gelu_new), fp32, default (non-fused) AdamW, nanoGPT-style batches."""

    def __init__(self, data: TextData, shape: tuple, seed: int) -> None:
        L, H, C, T, B, dropout, lr, *_ = shape
        self.arr, self.T, self.B = data.arrays["train"], T, B
        self.gen = torch.Generator().manual_seed(seed)
        cfg = GPT2Config(vocab_size=data.vocab_size, n_positions=T, n_embd=C, n_layer=L, n_head=H,
                         resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, bos_token_id=None,
                         eos_token_id=None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = GPT2LMHeadModel(cfg).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr)
        self.info = {**flops_per_token(self.model, L, C, T), "attn": self.model.config._attn_implementation,
                     "activation": cfg.activation_function}

    def step(self) -> float:
        ix = torch.randint(len(self.arr) - self.T, (self.B,), generator=self.gen).tolist()
        xy = torch.from_numpy(np.stack([self.arr[i : i + self.T + 1].astype(np.int64) for i in ix]))
        x, y = xy[:, :-1], xy[:, 1:]
        logits = self.model(input_ids=x).logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.item()


def time_pair(data: TextData, shape: tuple, warmup: int, steps: int, precision: str, compile_: bool,
              seed: int = 1337) -> tuple[list[float], list[float], dict]:
    """Run genlab's Trainer; after each of its steps, its callback runs one plain step. Returns both step times."""
    L, H, C, T, B, dropout, lr, *_ = shape
    plain = PlainLoop(data, shape, seed)
    fam = GPT(GPTConfig(n_layer=L, n_head=H, n_embd=C, block_size=T, dropout=dropout))
    fam.build(data, seed=seed)
    marks: list[tuple[float, float]] = []  # (end of genlab step k+1, end of the plain step after it)
    # One extra genlab step at the end, untimed: after its last step the loop validates before the callbacks run.
    max_steps = warmup + steps + 1

    def interleave(trainer, step, logs) -> None:
        t = time.perf_counter()
        if step < max_steps:
            plain.step()
        marks.append((t, time.perf_counter()))

    train = TrainConfig(seed=seed, max_steps=max_steps, batch_size=B, lr=lr, min_lr=lr / 10, warmup_steps=warmup,
                        precision=precision, compile=compile_, eval_every=10**9, eval_batches=1, log_every=10,
                        checkpoint_every=10**9)
    Trainer(fam, data, train, run_dir=None, progress=False, callbacks=[interleave]).run()
    timed = range(warmup, warmup + steps)  # genlab steps warmup+1 .. warmup+steps and the plain steps after them
    genlab_dts = [marks[k][0] - marks[k - 1][1] for k in timed]
    plain_dts = [marks[k][1] - marks[k][0] for k in timed]
    info = {**flops_per_token(fam.model_, L, C, T), "attn": fam.model_.config._attn_implementation,
            "activation": fam.config.activation}
    return genlab_dts, plain_dts, {"genlab": info, "plain": plain.info}


def busy_cores(seconds: float = 1.0) -> float | None:
    """Cores kept busy by other processes (this one is idle meanwhile), from /proc/stat; None where unavailable."""
    def read() -> list[int]:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    try:
        a = read()
        time.sleep(seconds)
        b = read()
    except OSError:
        return None
    d = [y - x for x, y in zip(a, b)]
    return (1 - (d[3] + d[4]) / max(1, sum(d))) * (os.cpu_count() or 1)  # fields 3, 4: idle, iowait


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, help="timed steps per variant (default: per shape)")
    ap.add_argument("--warmup", type=int, help="untimed warm-up steps per variant, >= 1 (default: per shape)")
    ap.add_argument("--shapes", default="baby,shakespeare_char", help="comma-separated: " + ",".join(SHAPES))
    ap.add_argument("--compile", action="store_true", help="also time genlab with train.compile=True")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_gpt.json")
    args = ap.parse_args()
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for s in shapes:
        if s not in SHAPES:
            ap.error(f"unknown shape {s!r}; choose from {', '.join(SHAPES)}")
    fast_bf16, notes, busy = cpu_has_fast_bf16(), [], {"start": busy_cores()}
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; 2048^3 matmul peak: "
          f"fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s", flush=True)
    variants = [("genlab", "fp32", False)]  # each is timed step-interleaved with its own plain loop
    if fast_bf16:
        variants.append(("genlab", "bf16", False))
    else:
        notes.append("genlab bf16 skipped: this CPU lacks AMX/AVX512-BF16 (bf16 matmul is slower than fp32 here)")
    if args.compile:
        variants.append(("genlab+compile", "bf16" if fast_bf16 else "fp32", True))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_text(get_dataset("shakespeare").load(), TextDataConfig(), Path(tmp) / "shakespeare")
        for name in shapes:
            shape = SHAPES[name]
            L, H, C, T, B = shape[:5]
            steps = args.steps or shape[8]
            plain_all: list[float] = []
            for label, prec, comp in variants:
                warmup = max(1, args.warmup if args.warmup is not None else shape[7], 2 if comp else 1)
                t0 = time.perf_counter()
                g_dts, p_dts, info = time_pair(data, shape, warmup, steps, prec, comp)
                plain_all += p_dts
                g_ms, p_ms = 1e3 * statistics.median(g_dts), 1e3 * statistics.median(p_dts)
                print(f"  {name} {label} {prec}: {g_ms:.1f} ms/step, plain {p_ms:.1f} ms/step "
                      f"({time.perf_counter() - t0:.0f} s incl. warm-up)", flush=True)
                for variant, dts, ms in (("plain", p_dts, p_ms), (label, g_dts, g_ms)):
                    v_prec = "fp32" if variant == "plain" else prec
                    i = info["plain" if variant == "plain" else "genlab"]
                    tok_s = B * T / (ms / 1e3)
                    rows.append({"shape": name, "variant": variant, "precision": v_prec, "compile": comp and variant != "plain",
                                 "paired_with": f"{label} {prec}", "n_layer": L, "n_head": H, "n_embd": C,
                                 "block_size": T, "batch_size": B, "dropout": shape[5], "vocab_size": data.vocab_size,
                                 "warmup_steps": warmup, "timed_steps": len(dts), "ms_per_step": ms,
                                 "ms_per_step_min": 1e3 * min(dts), "ms_per_step_max": 1e3 * max(dts),
                                 "tokens_per_s": tok_s, "mfu": i["flops_per_token"] * tok_s / peaks[v_prec],
                                 "speedup_vs_plain": p_ms / ms, **i, "step_times_s": dts})
    header = f"{'shape':<17}{'variant':<16}{'prec':<6}{'tokens/s':>10}{'ms/step':>10}{'MFU':>8}{'vs plain':>10}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['shape']:<17}{r['variant']:<16}{r['precision']:<6}{r['tokens_per_s']:>10,.0f}"
              f"{r['ms_per_step']:>10.1f}{100 * r['mfu']:>7.1f}%{r['speedup_vs_plain']:>9.2f}x")
    busy["end"] = busy_cores()
    if max(b or 0 for b in busy.values()) > 0.25:
        notes.append(f"other processes kept {busy['start']:.1f} cores busy at the start and {busy['end']:.1f} at the "
                     "end: absolute rates and MFU are depressed; the interleaved speed-ups are more robust")
    for n in notes:
        print("note:", n)
    print("note: each genlab row's 'vs plain' uses plain steps interleaved with it (step by step), in the same run")
    result = {
        "benchmark": "train_gpt", "command": " ".join(["python", *sys.argv]),
        "args": {k: str(v) for k, v in vars(args).items()}, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpu": _cpu_name(), "cpu_fast_bf16": fast_bf16,
        "matmul_peak_flops": peaks, "busy_cores_other": busy, "notes": notes, "rows": rows, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
