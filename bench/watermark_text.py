"""Text watermark quality: detection at a fixed false-positive rate, robustness to edits, and what it costs.

On a Shakespeare GPT (the demo's: 4x128, char-level, trained here for --minutes, or an existing run with --run),
all in one run:

1. **Human text** (the held-out split, four works the model never saw) cut into 50-, 100- and 200-token pieces:
   their z-scores give the empirical false-positive rate; the operating threshold is the larger of z = 3.09 (a
   one-sided p of 1e-3) and the empirical 99.9th percentile, so the false-positive rate is <= 1e-3 both ways.
2. **Watermarked samples** (prompts from held-out text, multinomial sampling at temperature 1, as in the paper),
   scored on their first 50 / 100 / 200 tokens, as generated and after replacing 10 / 20 / 30% of the tokens with
   random ones: the true-positive rate at that threshold (and at genlab's default z = 4).
3. **Cost**: the perplexity of watermarked and unwatermarked samples from the same prompts and seeds, under the
   model itself without the watermark; and generation speed with and without it, interleaved.

    python bench/watermark_text.py [--run RUN | --minutes 6] [--samples 400]

Prints tables and writes ``bench/results/watermark_text.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import genlab

ROOT = Path(__file__).resolve().parent.parent
LENGTHS = (50, 100, 200)
EDITS = (0.0, 0.1, 0.2, 0.3)
FPR = 1e-3
Z_FPR = 3.0902  # one-sided normal quantile for p = 1e-3


def get_run(args) -> genlab.Run:
    if args.run:
        return genlab.load(args.run)
    out = Path(args.out) / "run"
    if (out / "model.safetensors").is_file():
        return genlab.load(out)
    return genlab.train("gpt", "shakespeare", out=out, config_file=ROOT / "src" / "genlab" / "configs" / "demo.toml",
                        overrides=[f"train.max_minutes={args.minutes}"], progress=True)


def human_scores(wm, val: np.ndarray, length: int, limit: int) -> list[float]:
    """z of non-overlapping ``length``-token pieces of human text."""
    n = min(limit, len(val) // length)
    return [wm.score(val[i * length : (i + 1) * length].tolist()).z for i in range(n)]


def generate(run: genlab.Run, prompts: list[str], per_prompt: int, tokens: int,
             watermark: bool) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, sample ids) for ``per_prompt`` samples per prompt (same seeds with and without the mark)."""
    tok = run.model.tokenizer_
    out = []
    for i, prompt in enumerate(prompts):
        texts = run.sample(per_prompt, prompt=prompt, max_new_tokens=tokens, temperature=1.0, seed=1000 + i,
                           watermark=watermark)
        out += [(tok.encode(prompt).ids, tok.encode(t).ids) for t in texts]
    return out


def scored(pair: tuple[list[int], list[int]]) -> list[int]:
    """What detection sees: the sample, after the last prompt token (which seeds its first green list)."""
    return [pair[0][-1], *pair[1]]


def substitute(ids: list[int], share: float, vocab: int, rng: np.random.Generator) -> list[int]:
    """Replace ``share`` of the tokens (never the first, the seed) with uniformly random tokens."""
    ids = list(ids)
    k = int(round(share * (len(ids) - 1)))
    for j in rng.choice(np.arange(1, len(ids)), size=k, replace=False):
        ids[j] = int(rng.integers(vocab))
    return ids


@torch.inference_mode()
def perplexity(run: genlab.Run, pairs: list[tuple[list[int], list[int]]]) -> float:
    """exp(mean NLL) of the samples' tokens given their prompts, under the model (no watermark)."""
    model = run.model.model_.eval()
    nll, count = 0.0, 0
    for prompt, ids in pairs:
        x = torch.tensor([(prompt + ids)[-(run.model.config.block_size + 1) :]])  # (1, T + 1)
        k = min(len(ids), x.shape[1] - 1)  # sample tokens inside the window
        logits = model(x[:, :-1]).logits  # (1, T, V)
        nll += torch.nn.functional.cross_entropy(logits[0, -k:], x[0, -k:], reduction="sum").item()
        count += k
    return math.exp(nll / count)


def speed(run: genlab.Run, prompt: str, rounds: int = 3) -> dict[str, float]:
    times = {"plain": [], "watermarked": []}
    for r in range(rounds):
        for name in times:
            t0 = time.perf_counter()
            texts = run.sample(8, prompt=prompt, max_new_tokens=200, temperature=1.0, seed=r,
                               watermark=name == "watermarked")
            times[name].append(sum(len(t) for t in texts) / (time.perf_counter() - t0))
    res = {f"{k}_tok_per_s": statistics.median(v) for k, v in times.items()}
    res["watermarked_over_plain"] = res["watermarked_tok_per_s"] / res["plain_tok_per_s"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="an existing Shakespeare GPT run (default: train one)")
    ap.add_argument("--minutes", type=float, default=4.0, help="training budget when no --run is given")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "watermark_text"))
    ap.add_argument("--prompts", type=int, default=40, help="held-out prompts")
    ap.add_argument("--per-prompt", type=int, default=10, help="samples per prompt")
    ap.add_argument("--human", type=int, default=3000, help="human pieces per length at most")
    args = ap.parse_args()

    run = get_run(args)
    wm = run.release.marks.watermark
    vocab = run.model.vocab_size_
    val = np.asarray(run.data.arrays["val"])
    tok = run.model.tokenizer_
    rng = np.random.default_rng(0)

    # 1. human text -> false positives and the operating threshold
    human = {n: human_scores(wm, val, n, args.human) for n in LENGTHS}
    thresholds = {n: max(Z_FPR, float(np.quantile(human[n], 1 - FPR))) for n in LENGTHS}

    # 2. watermarked and plain samples from the same held-out prompts
    starts = rng.choice(len(val) - 400, size=args.prompts, replace=False)
    prompts = [tok.decode(val[s : s + 48].tolist()) for s in starts]
    t0 = time.perf_counter()
    marked = generate(run, prompts, args.per_prompt, max(LENGTHS), watermark=True)
    plain = generate(run, prompts, args.per_prompt, max(LENGTHS), watermark=False)
    gen_s = time.perf_counter() - t0

    table = {}
    for share in EDITS:
        edited = [substitute(scored(pair), share, vocab, rng) for pair in marked]
        for n in LENGTHS:
            rows = [ids[: n + 1] for ids in edited if len(ids) > n]
            z = [wm.score(ids).z for ids in rows]
            table[f"{int(share * 100)}%/{n}"] = {
                "edit": share, "tokens": n, "samples": len(z), "median_z": float(np.median(z)),
                "tpr_at_fpr_1e-3": float(np.mean(np.array(z) > thresholds[n])),
                "tpr_at_z4": float(np.mean(np.array(z) > 4.0)),
            }
    plain_z = {n: [wm.score(scored(p)[: n + 1]).z for p in plain if len(p[1]) >= n] for n in LENGTHS}
    result = {
        "run": str(run.path),
        "watermark": {"gamma": wm.gamma, "delta": wm.delta, "scheme": "lefthash, context 1", "ignore_repeated": wm.ignore_repeated},
        "samples": len(marked),
        "generation_seconds": round(gen_s, 1),
        "human": {str(n): {"pieces": len(human[n]), "fpr_at_z4": float(np.mean(np.array(human[n]) > 4.0)),
                           "fpr_at_3.09": float(np.mean(np.array(human[n]) > Z_FPR)),
                           "z_99.9th_percentile": float(np.quantile(human[n], 0.999)),
                           "threshold_used": thresholds[n]} for n in LENGTHS},
        "unwatermarked_samples_fpr_at_threshold": {str(n): float(np.mean(np.array(plain_z[n]) > thresholds[n]))
                                                    for n in LENGTHS},
        "detection": table,
        "perplexity": {"watermarked": perplexity(run, marked), "plain": perplexity(run, plain)},
        "speed": speed(run, prompts[0]),
    }
    result["perplexity"]["ratio"] = result["perplexity"]["watermarked"] / result["perplexity"]["plain"]
    path = ROOT / "bench" / "results" / "watermark_text.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))

    print("\nhuman text (held-out): false positives   (threshold = max(3.09, 99.9th pct))")
    for n in LENGTHS:
        h = result["human"][str(n)]
        print(f"  {n:>3} tokens: {h['pieces']:>5} pieces, FPR@z4 {h['fpr_at_z4']:.4f}, FPR@3.09 {h['fpr_at_3.09']:.4f}, "
              f"threshold {h['threshold_used']:.2f}")
    print(f"\nTPR at FPR <= 1e-3 ({len(marked)} watermarked samples)")
    print(f"{'edited':>8}" + "".join(f"{f'{n} tok':>12}" for n in LENGTHS))
    for share in EDITS:
        cells = [table[f"{int(share * 100)}%/{n}"]["tpr_at_fpr_1e-3"] for n in LENGTHS]
        print(f"{int(share * 100):>7}%" + "".join(f"{c:>12.3f}" for c in cells))
    p = result["perplexity"]
    print(f"\nperplexity under the model: watermarked {p['watermarked']:.3f}, plain {p['plain']:.3f} "
          f"(x{p['ratio']:.3f}); speed watermarked/plain {result['speed']['watermarked_over_plain']:.2f}")


if __name__ == "__main__":
    main()
