"""Quality of the ``t5`` family on ``pycode-docstrings``: code -> the first line of its docstring.

Trains a T5 (the family's defaults unless ``--set`` says otherwise) from scratch for ``--minutes`` of training time,
then scores its outputs on the first ``--n`` held-out pairs (whole standard-library files are held out) with BLEU,
chrF and exact match, greedy and with beam search (4 beams, no 3-gram twice), beside the baseline that turns the
function's name into a sentence (``get_file_name`` -> "Get file name."). Prints ten random held-out pairs with
both outputs. Keeps the run in ``--run``.

Reproduce: ``python bench/t5_docstrings.py`` (18 minutes of training plus data preparation and two evaluations, about
20 minutes on one core). ``--minutes 0.5`` is a smoke test. Results: stdout and bench/results/t5_docstrings.json
(``--out`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import sys
import time
from pathlib import Path

import torch

import genlab

ROOT = Path(__file__).resolve().parent.parent


DECODINGS = {"greedy": {}, "beam4-norepeat3": {"beams": 4, "no_repeat_ngram": 3}}  # scored in the same run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=18.0, help="training time budget (train.max_minutes)")
    ap.add_argument("--n", type=int, default=500, help="held-out pairs to score")
    ap.add_argument("--seed", type=int, default=0, help="picks the ten pairs shown")
    ap.add_argument("--steps-per-minute", type=float, default=100.0,
                    help="sets train.max_steps = minutes x this, so the cosine schedule ends near the budget "
                         "(100 measured here on one thread beside another recipe, batches grouped by length)")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides, e.g. model.d_model=256")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "t5_docstrings.json")
    ap.add_argument("--run", type=Path, default=ROOT / "bench" / "results" / "t5_docstrings",
                    help="the run folder (replaced)")
    args = ap.parse_args()

    steps = max(1, int(args.minutes * args.steps_per_minute))
    # 6,081 pairs are few: without dropout the model memorises them (train loss 1.2, val loss rising from step 500)
    overrides = ["model.dropout=0.1", f"train.max_minutes={args.minutes}", f"train.max_steps={steps}",
                 "train.eval_every=250", "train.checkpoint_every=1000000000", "train.warmup_steps=200", *args.set]
    if args.run.exists():
        shutil.rmtree(args.run)
    t0 = time.perf_counter()
    run = genlab.train("t5", "pycode-docstrings", out=args.run, overrides=overrides)
    train_s = time.perf_counter() - t0
    summary = json.loads((run.path / "summary.json").read_text())
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    meta = run.data.meta
    reports, eval_s = {}, {}
    for name, options in DECODINGS.items():
        t1 = time.perf_counter()
        reports[name] = run.evaluate(n=args.n, save=False, **options)
        eval_s[name] = round(time.perf_counter() - t1, 1)
    pairs = run.data.texts("val")[: args.n]
    shown = random.Random(args.seed).sample(pairs, min(10, len(pairs)))
    outputs = {name: run.model.sample(1, source=[s for s, _ in shown], max_new_tokens=run.model.max_target_tokens_,
                                      **options) for name, options in DECODINGS.items()}
    examples = [{"source": s, "target": t, **{name: outputs[name][i] for name in DECODINGS}}
                for i, (s, t) in enumerate(shown)]
    report = reports["greedy"]

    result = {
        "smoke": args.minutes < 5,
        "minutes": args.minutes,
        "steps": summary.get("steps"),
        "best_val_loss": summary.get("best_val_loss"),
        "train_plus_prepare_s": round(train_s, 1),
        "eval_s": eval_s,
        "curve": [{k: r[k] for k in ("step", "val_loss", "elapsed_s")} for r in rows if "val_loss" in r],
        "pairs": {s: meta["splits"][s] for s in ("train", "val")},  # counts, and how many were truncated
        "vocab_size": meta["vocab_size"],
        "reports": reports,
        "examples": examples,
        "overrides": overrides,
        "run": str(args.run),
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine()},
    }
    for ex in examples:
        print(f"--- source ({len(ex['source'])} chars):\n{ex['source'][:400]}")
        print(f"target: {ex['target']}")
        for name in DECODINGS:
            print(f"{name}: {ex[name]}")
        print()
    print(f"pairs: train {meta['splits']['train']['pairs']}, val {meta['splits']['val']['pairs']}; "
          f"{summary.get('steps')} steps in {args.minutes} min; scored {report['n_pairs']} held-out pairs")
    print(f"{'':24} {'BLEU':>6} {'chrF':>6} {'exact':>6}")
    rows = [(f"model, {name}", reports[name]["model"]) for name in DECODINGS] + [("baseline", report["baseline"])]
    for who, r in rows:
        print(f"{who:24} {r['bleu']:6.2f} {r['chrf']:6.2f} {r['exact_match']:6.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
