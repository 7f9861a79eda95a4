"""Quality recipe: a character-level GPT on Shakespeare in at most 20 minutes on 2 CPU cores.

Trains ``gpt`` on the ``shakespeare`` dataset (42 works; 4 whole works held out for validation) with
the shipped config ``shakespeare-20min`` under a wall-clock budget, then evaluates on the whole held-out split and
compares it, in the same run, with the unigram baseline (the entropy of character frequencies: what a model with
no context scores). Target: validation loss <= 1.70 nats per character.

    python bench/shakespeare_char.py [--minutes 20] [--out bench/results/shakespeare_char]

Prints a table, writes ``bench/results/shakespeare_char.json`` and leaves the run (with ``loss.png``) in --out.
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
TARGET = 1.70


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget (data preparation not counted)")
    ap.add_argument("--config", default="shakespeare-20min", help="a shipped config name or a TOML file")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "shakespeare_char"))
    ap.add_argument("--set", action="append", default=[], help="extra overrides, section.key=value")
    args = ap.parse_args()

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    run = genlab.train("gpt", "shakespeare", out=out, config_file=args.config,
                       overrides=[f"train.max_minutes={args.minutes}", *args.set], progress=True)
    wall = time.perf_counter() - t0
    report = run.evaluate()
    curve = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], round(r["elapsed_s"] / 60, 2), r["val_loss"]) for r in curve if "val_loss" in r]
    result = {
        "config": Path(args.config).name,
        "overrides": args.set,
        "n_params": report["n_params"],
        "steps": run.summary()["steps"],
        "train_minutes": round(curve[-1][1], 2),
        "total_minutes": round(wall / 60, 2),
        "val_loss": report["val_loss"],
        "bits_per_char": report["bits_per_char"],
        "unigram_baseline": report["unigram_entropy"],
        "ratio_to_baseline": report["val_loss"] / report["unigram_entropy"],
        "target": TARGET,
        "met": report["val_loss"] <= TARGET,
        "curve": [{"step": s, "minutes": m, "val_loss_estimate": v} for s, m, v in curve],
        "samples": run.sample(2, prompt="ROMEO:\n", max_new_tokens=300, seed=0, temperature=0.8),
    }
    path = ROOT / "bench" / "results" / "shakespeare_char.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))

    print(f"\n{'metric':<34}{'value':>12}")
    for k in ("n_params", "steps", "train_minutes", "val_loss", "bits_per_char", "unigram_baseline",
              "ratio_to_baseline", "target", "met"):
        v = result[k]
        print(f"{k:<34}{(f'{v:.4f}' if isinstance(v, float) else str(v)):>12}")
    print("\nvalidation curve (estimates on fixed batches):")
    for s, m, v in curve:
        print(f"  step {s:>6}  {m:6.2f} min  {v:.4f}")
    print(f"\nloss curve: {out / 'loss.png'}\nsample:\n{result['samples'][0]}")
    if math.isnan(report["val_loss"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
