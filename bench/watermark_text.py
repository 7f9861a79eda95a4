"""Text watermark schemes compared: detection at a fixed false-positive rate, robustness to edits, and cost.

On a Shakespeare GPT (the demo's: 4x128, char-level, trained here for --minutes, or an existing run with --run),
all in one run, for each scheme / setting in ``VARIANTS`` and several random keys (a run has one key, and with a
small vocabulary the key decides whether common pairs such as "th" are green, so one key is not a measurement):

1. **Human text** (the held-out split, four works the model never saw) cut into 50-, 100- and 200-token pieces and
   scored with every key: the empirical false-positive rate. The operating threshold is the larger of z = 3.09 (a
   one-sided p of 1e-3) and each key's 99.9th percentile of human z, so the false-positive rate is <= 1e-3 both
   ways and for every key (the threshold pooled over keys, lower, is reported too).
2. **Watermarked samples** (held-out prompts, multinomial sampling at temperatures 0.8 (genlab's default) and 1.0,
   each prompt with one of the keys), scored on their first 50 / 100 / 200 tokens, as generated and after
   replacing 10 / 20 / 30% of the tokens with uniformly random ones: the true-positive rate at that threshold, and
   at genlab's default verdict z > 4.
3. **Cost**: the perplexity of watermarked and unwatermarked samples from the same prompts and seeds, under the
   model itself without the watermark; generation speed with and without the mark, interleaved.

    python bench/watermark_text.py [--run RUN | --minutes 4] [--keys 5] [--prompts 40] [--per-prompt 10] [--threads 1]

Prints tables and writes ``bench/results/watermark_text.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import genlab
from genlab.responsible.text_watermark import TextWatermark

ROOT = Path(__file__).resolve().parent.parent
LENGTHS = (50, 100, 200)
EDITS = (0.0, 0.1, 0.2, 0.3)
TEMPERATURES = (0.8, 1.0)
FPR = 1e-3
Z_FPR = 3.0902  # one-sided normal quantile for p = 1e-3
CONTEXT = 4  # prompt tokens kept before each sample: every scheme has its full context from the first sample token


class Adaptive1(TextWatermark):
    """lefthash-1's green lists with lefthash-2-adaptive's bias (to separate the two changes)."""

    def processor(self):
        return self._adaptive


class Constant2(TextWatermark):
    """lefthash-2-adaptive's green lists with a constant bias ``delta``."""

    def _bias(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.full((logits.shape[0], 1), self.delta, device=logits.device)


class MinHash4(TextWatermark):
    """Min-hash over the 4 previous tokens (Kirchenbauer et al. 2023b, "Min-LeftHash", h = 4), constant ``delta``:
    the context token with the smallest keyed rank seeds the green list, so an edit moves the seed less often. A
    repeated (seeding token, token) pair counts once, since its flag is the same wherever it occurs."""

    def __init__(self, vocab_size: int, key: int, **kwargs) -> None:
        super().__init__(vocab_size, key, **{**kwargs, "scheme": "lefthash-2-adaptive"})
        self.context = 4
        self._rank = np.random.default_rng(key).permutation(vocab_size)  # (V,) keyed rank of each token

    def _bias(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.full((logits.shape[0], 1), self.delta, device=logits.device)

    def _seeds(self, contexts: np.ndarray) -> np.ndarray:  # (N, h) -> (N,): the seed of the lowest-ranked token
        return super()._seeds(np.take_along_axis(contexts, self._rank[contexts].argmin(1)[:, None], 1))

    def _flags(self, ids, start, end):
        flags = super()._flags(ids, start, end)
        seeds = self._seeds(np.array([k[:-1] for k, _ in flags], np.int64)) if flags else []
        return [((int(s), k[-1]), g) for s, (k, g) in zip(seeds, flags)]


# name -> (class, scheme, delta); "before" is genlab's old default, "after" its new one
VARIANTS: dict[str, tuple[Callable[..., TextWatermark], str, float]] = {
    "lefthash-1 delta=2 (before)": (TextWatermark, "lefthash-1", 2.0),
    "lefthash-1 delta=3": (TextWatermark, "lefthash-1", 3.0),
    "lefthash-1 adaptive delta=2": (Adaptive1, "lefthash-1", 2.0),
    "min-hash-4 delta=2": (MinHash4, "lefthash-2-adaptive", 2.0),
    "lefthash-2 delta=2": (Constant2, "lefthash-2-adaptive", 2.0),
    "lefthash-2-adaptive delta=2 (after)": (TextWatermark, "lefthash-2-adaptive", 2.0),
    "lefthash-2-adaptive delta=2.5": (TextWatermark, "lefthash-2-adaptive", 2.5),
}


def make(name: str, vocab: int, key: int) -> TextWatermark:
    cls, scheme, delta = VARIANTS[name]
    return cls(vocab, key, delta=delta, scheme=scheme)


def get_run(args) -> genlab.Run:
    if args.run:
        return genlab.load(args.run)
    out = Path(args.out) / "run"
    if (out / "model.safetensors").is_file():
        return genlab.load(out)
    return genlab.train("gpt", "shakespeare", out=out, config_file=ROOT / "src" / "genlab" / "configs" / "demo.toml",
                        overrides=[f"train.max_minutes={args.minutes}"], progress=True)


def generate(run: genlab.Run, prompts: list[list[int]], per_prompt: int, tokens: int, temperature: float,
             marks: list[TextWatermark] | None) -> list[list[int]]:
    """``per_prompt`` samples per prompt, each as its prompt's last ``CONTEXT`` tokens + the sample's tokens; prompt
    ``i`` is marked with ``marks[i % len(marks)]`` (None: unmarked, same seeds)."""
    tok, out = run.model.tokenizer_, []
    for i, prompt in enumerate(prompts):
        proc = marks[i % len(marks)].processor() if marks else None
        texts = run.model.sample(per_prompt, prompt=tok.decode(prompt), max_new_tokens=tokens,
                                 temperature=temperature, seed=1000 + i, logits_processor=proc)
        out += [prompt[-CONTEXT:] + tok.encode(t).ids for t in texts]
    return out


def substitute(ids: list[int], share: float, vocab: int, rng: np.random.Generator) -> list[int]:
    """Replace ``share`` of the sample's tokens (not the context before it) with uniformly random tokens."""
    ids = list(ids)
    k = int(round(share * (len(ids) - CONTEXT)))
    for j in rng.choice(np.arange(CONTEXT, len(ids)), size=k, replace=False):
        ids[j] = int(rng.integers(vocab))
    return ids


@torch.inference_mode()
def perplexity(run: genlab.Run, samples: list[list[int]], prompts: list[list[int]], per_prompt: int) -> float:
    """exp(mean NLL) of the samples' tokens given their prompts, under the model (no watermark)."""
    model, block = run.model.model_.eval(), run.model.config.block_size
    nll, count = 0.0, 0
    for j, ids in enumerate(samples):
        x = torch.tensor([(prompts[j // per_prompt] + ids[CONTEXT:])[-(block + 1) :]])  # (1, T + 1)
        k = min(len(ids) - CONTEXT, x.shape[1] - 1)  # sample tokens inside the window
        logits = model(x[:, :-1]).logits  # (1, T, V)
        nll += torch.nn.functional.cross_entropy(logits[0, -k:], x[0, -k:], reduction="sum").item()
        count += k
    return math.exp(nll / count)


def speed(run: genlab.Run, prompt: str, marks: dict[str, TextWatermark], rounds: int = 3) -> dict[str, float]:
    """Generated tokens per second, plain and with each variant's processor, interleaved (8 samples x 200 tokens)."""
    times: dict[str, list[float]] = {"plain": [], **{name: [] for name in marks}}
    for r in range(rounds):
        for name in times:
            proc = marks[name].processor() if name in marks else None
            t0 = time.perf_counter()
            texts = run.model.sample(8, prompt=prompt, max_new_tokens=200, temperature=1.0, seed=r,
                                     logits_processor=proc)
            times[name].append(sum(len(t) for t in texts) / (time.perf_counter() - t0))
    return {name: statistics.median(v) for name, v in times.items()}


def human_z(wm: TextWatermark, val: np.ndarray, length: int, limit: int) -> list[float]:
    """z of non-overlapping pieces of human text: ``CONTEXT`` tokens of context + ``length`` scored tokens."""
    step = length + CONTEXT
    return [wm.score(val[i * step : (i + 1) * step].tolist(), start=CONTEXT).z
            for i in range(min(limit, len(val) // step))]


def measure(run: genlab.Run, name: str, keys: list[int], val: np.ndarray, prompts: list[list[int]], args,
            plain: dict[float, list[list[int]]], plain_ppl: dict[float, float]) -> dict:
    """One variant: thresholds from human text, then TPR per temperature, edit share and length; perplexity."""
    vocab = run.model.vocab_size_
    marks = [make(name, vocab, k) for k in keys]
    human = {n: [human_z(wm, val, n, args.human) for wm in marks] for n in LENGTHS}  # length -> key -> z list
    res: dict = {"human": {}, "temperatures": {}}
    thresholds, pooled_thresholds = {}, {}
    for n in LENGTHS:
        pooled = np.concatenate(human[n])
        pooled_thresholds[n] = max(Z_FPR, float(np.quantile(pooled, 1 - FPR, method="higher")))
        thresholds[n] = max(Z_FPR, *(float(np.quantile(z, 1 - FPR, method="higher")) for z in human[n]))  # every key
        res["human"][str(n)] = {
            "pieces": int(pooled.size), "keys": len(keys), "threshold": thresholds[n],
            "pooled_threshold": pooled_thresholds[n], "fpr_at_threshold": float(np.mean(pooled > thresholds[n])),
            "worst_key_fpr_at_threshold": max(float(np.mean(np.array(z) > thresholds[n])) for z in human[n]),
            "fpr_at_z4": float(np.mean(pooled > 4.0)), "key_mean_z": [round(float(np.mean(z)), 2) for z in human[n]]}
    rng = np.random.default_rng(0)
    for temp in TEMPERATURES:
        t0 = time.perf_counter()
        marked = generate(run, prompts, args.per_prompt, max(LENGTHS), temp, marks)
        row: dict = {"generation_s": round(time.perf_counter() - t0, 1), "samples": len(marked),
                     "perplexity": perplexity(run, marked, prompts, args.per_prompt), "detection": {}}
        row["perplexity_ratio"] = row["perplexity"] / plain_ppl[temp]
        wm_of = [marks[(j // args.per_prompt) % len(marks)] for j in range(len(marked))]
        for share in EDITS:
            edited = [substitute(ids, share, vocab, rng) for ids in marked]
            for n in LENGTHS:
                z = np.array([wm.score(ids[: CONTEXT + n], start=CONTEXT).z for wm, ids in zip(wm_of, edited)
                              if len(ids) >= CONTEXT + n])
                row["detection"][f"{int(share * 100)}%/{n}"] = {
                    "samples": int(z.size), "median_z": float(np.median(z)), "tpr": float(np.mean(z > thresholds[n])),
                    "tpr_at_pooled_threshold": float(np.mean(z > pooled_thresholds[n])),
                    "tpr_at_z4": float(np.mean(z > 4.0))}
        plain_z = [wm.score(ids[: CONTEXT + 200], start=CONTEXT).z for wm, ids in zip(wm_of, plain[temp])]
        row["unmarked_samples_fpr_200"] = float(np.mean(np.array(plain_z) > thresholds[200]))
        res["temperatures"][str(temp)] = row
    return res


def print_tables(result: dict) -> None:
    for name, r in result["variants"].items():
        h = r["human"]
        print(f"\n{name}: thresholds " + ", ".join(f"{n} tok {h[str(n)]['threshold']:.2f}" for n in LENGTHS)
              + f" (human FPR <= {max(h[str(n)]['worst_key_fpr_at_threshold'] for n in LENGTHS):.4f} for every key; "
              f"at z > 4: {max(h[str(n)]['fpr_at_z4'] for n in LENGTHS):.4f})")
        for temp, row in r["temperatures"].items():
            det = row["detection"]
            cells = "  ".join(f"{int(s * 100):>2}%: " + " ".join(f"{det[f'{int(s * 100)}%/{n}']['tpr']:.2f}"
                                                                for n in LENGTHS) for s in EDITS)
            z4 = " ".join(f"{det[f'{int(s * 100)}%/200']['tpr_at_z4']:.2f}" for s in EDITS)
            print(f"  T {temp}: ppl x{row['perplexity_ratio']:.3f}  TPR (50/100/200 tok) {cells}  | z>4, 200 tok: {z4}")
    print("\nspeed (tokens/s, 8 x 200 tokens at T 1.0): "
          + ", ".join(f"{k} {v:.0f}" for k, v in result["speed_tok_per_s"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="an existing Shakespeare GPT run (default: train one)")
    ap.add_argument("--minutes", type=float, default=4.0, help="training budget when no --run is given")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "watermark_text"))
    ap.add_argument("--keys", type=int, default=5, help="random keys per variant (prompts are shared among them)")
    ap.add_argument("--prompts", type=int, default=40, help="held-out prompts")
    ap.add_argument("--per-prompt", type=int, default=10, help="samples per prompt")
    ap.add_argument("--human", type=int, default=3000, help="human pieces per length and key at most")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names from VARIANTS")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (generation speed is measured with them)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    run = get_run(args)
    val = np.asarray(run.data.arrays["val"])
    rng = np.random.default_rng(0)
    keys = [int(k) for k in rng.integers(1, 2**63 - 1, size=args.keys)]
    starts = rng.choice(len(val) - 400, size=args.prompts, replace=False)
    prompts = [val[s : s + 48].tolist() for s in starts]
    names = [n for n in args.variants.split(",") if n]
    t0 = time.perf_counter()
    plain = {t: generate(run, prompts, args.per_prompt, max(LENGTHS), t, None) for t in TEMPERATURES}
    plain_ppl = {t: perplexity(run, plain[t], prompts, args.per_prompt) for t in TEMPERATURES}
    result: dict = {
        "run": str(run.path), "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "gamma": 0.25, "keys": args.keys, "samples_per_temperature": len(prompts) * args.per_prompt,
        "plain_perplexity": {str(t): p for t, p in plain_ppl.items()}, "variants": {}}
    for name in names:
        result["variants"][name] = measure(run, name, keys, val, prompts, args, plain, plain_ppl)
        print(f"{name}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    result["speed_tok_per_s"] = speed(run, run.model.tokenizer_.decode(prompts[0]),
                                      {n: make(n, run.model.vocab_size_, keys[0]) for n in names})
    result["wall_s"] = time.perf_counter() - t0
    path = ROOT / "bench" / "results" / "watermark_text.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print_tables(result)
    print(f"wrote {path} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
