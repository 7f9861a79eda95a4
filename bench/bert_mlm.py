"""Quality recipe: a masked language model (``bert``) on Shakespeare (characters) and on Python code (BPE 4096).

Trains ``bert`` on each dataset within a wall-clock budget (``--minutes`` each; the default 9 + 9 plus data
preparation and evaluation fit in 20 minutes on one core), then reports on the held-out split, in the same run:
masked-token accuracy (15% of the tokens replaced by [MASK]) beside the unigram guess (always the most frequent
training token), the masked-token loss beside the unigram entropy, and pseudo-perplexity on 512 tokens.

    python bench/bert_mlm.py [--minutes 9] [--max-tokens 100000] [--out bench/results/bert_mlm]
    python bench/bert_mlm.py --only pycode-char      # code as characters: a second recipe, ~10 minutes

Prints a table, writes ``bench/results/bert_mlm.json`` (``bert_mlm-NAME.json`` for other ``--only`` choices) and
leaves the runs (with ``loss.png``) under --out.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import genlab

ROOT = Path(__file__).resolve().parent.parent

# Shared shape: nanoGPT's "baby" size with the family's 64-token context. MLM first sits on a unigram plateau; with
# 128 tokens the character model left it only after ~1,750 steps (9 minutes), with 64 after ~600.
SHAPE = ["model.n_layer=4", "model.n_head=4", "model.n_embd=128", "model.block_size=64", "train.batch_size=32",
         "train.lr=1e-3", "train.min_lr=1e-4", "train.warmup_steps=200", "train.eval_every=250"]
RECIPES = {
    "shakespeare-char": ("shakespeare", ["data.tokenizer=char"]),
    "pycode-bpe4096": ("pycode", ["data.tokenizer=bpe", "data.vocab_size=4096"]),
    "pycode-char": ("pycode", ["data.tokenizer=char"]),
}
DEFAULT = ["shakespeare-char", "pycode-bpe4096"]  # one run of ~19 minutes; `--only pycode-char` is a recipe of its own
KEYS = ("n_params", "steps", "train_minutes", "masked_accuracy", "unigram_accuracy", "mlm_loss", "unigram_entropy",
        "pseudo_perplexity", "masked_tokens", "pppl_tokens")


def bench(name: str, args: argparse.Namespace) -> dict:
    dataset, data_set = RECIPES[name]
    out = Path(args.out) / name
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    # the cosine schedule ends at max_steps: about what the budget allows, with max_minutes as the hard stop
    budget = [f"train.max_steps={max(100, round(args.minutes * args.steps_per_minute))}",
              f"train.max_minutes={args.minutes}"]
    run = genlab.train("bert", dataset, out=out, overrides=[*SHAPE, *data_set, *budget, *args.set], progress=True)
    report = run.evaluate(max_tokens=args.max_tokens)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], round(r["elapsed_s"] / 60, 2), r["val_loss"]) for r in rows if "val_loss" in r]
    examples = {
        "shakespeare-char": "To be, or not to b[MASK], that is the question",
        "pycode-bpe4096": "def main():\n    for i in [MASK](10):\n        print(i)",
        "pycode-char": "def main():\n    for i in ra[MASK]ge(10):\n        print(i)",
    }
    return {
        "dataset": dataset,
        "overrides": [*SHAPE, *data_set, *budget, *args.set],
        **{k: report[k] for k in KEYS if k in report},
        "steps": run.summary()["steps"],
        "train_minutes": curve[-1][1] if curve else 0.0,
        "total_minutes": round((time.perf_counter() - t0) / 60, 2),
        "accuracy_over_unigram": report["masked_accuracy"] / max(report["unigram_accuracy"], 1e-9),
        "curve": [{"step": s, "minutes": m, "val_mlm_loss_estimate": v} for s, m, v in curve],
        "fill_example": {"text": examples[name], "fillers": run.model.fill(examples[name], top_k=5)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=9.0, help="training budget per dataset (preparation not counted)")
    ap.add_argument("--steps-per-minute", type=float, default=400.0,
                    help="sets train.max_steps (the schedule's end) to minutes x this; measured ~400 on one core")
    ap.add_argument("--max-tokens", type=int, default=100_000, help="held-out tokens for masked accuracy (0 = all)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "bert_mlm"))
    ap.add_argument("--only", choices=sorted(RECIPES), action="append",
                    help=f"run this recipe (repeatable; default: {' and '.join(DEFAULT)})")
    ap.add_argument("--set", action="append", default=[], help="extra overrides, section.key=value")
    args = ap.parse_args()

    results = {"minutes_per_dataset": args.minutes, "max_tokens": args.max_tokens}
    for name in args.only or DEFAULT:
        results[name] = bench(name, args)
    suffix = "" if not args.only or args.only == DEFAULT else "-" + "-".join(args.only)
    path = ROOT / "bench" / "results" / f"bert_mlm{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))

    names = [n for n in RECIPES if n in results]
    print(f"\n{'metric':<24}" + "".join(f"{n:>20}" for n in names))
    for k in (*KEYS, "accuracy_over_unigram", "total_minutes"):
        cells = [results[n].get(k) for n in names]
        print(f"{k:<24}" + "".join(f"{(f'{v:.4f}' if isinstance(v, float) else str(v)):>20}" for v in cells))
    for n in names:
        ex = results[n]["fill_example"]
        print(f"\n{n}: {ex['text']!r}\n  " + ", ".join(f"{t!r} {p:.3f}" for t, p in ex["fillers"][0]))
    if any(math.isnan(results[n]["mlm_loss"]) for n in names):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
