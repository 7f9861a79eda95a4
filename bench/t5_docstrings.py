"""Quality of the ``t5`` family on ``pycode-docstrings``: code -> the first line of its docstring.

Trains a T5 (the family's defaults unless ``--set`` says otherwise) from scratch for ``--minutes`` of training time,
then scores greedy outputs on the first ``--n`` held-out pairs (whole standard-library files are held out) with
BLEU, chrF and exact match, beside the baseline that turns the function's name into a sentence
(``get_file_name`` -> "Get file name."). Prints ten random held-out pairs with the model's output.

Reproduce: ``python bench/t5_docstrings.py`` (12 minutes of training plus data preparation and evaluation, about
14 minutes on one core). ``--minutes 0.5`` is a smoke test. Results: stdout and bench/results/t5_docstrings.json
(``--out`` to write elsewhere).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

import genlab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=12.0, help="training time budget (train.max_minutes)")
    ap.add_argument("--n", type=int, default=500, help="held-out pairs to score")
    ap.add_argument("--seed", type=int, default=0, help="picks the ten pairs shown")
    ap.add_argument("--steps-per-minute", type=float, default=140.0,
                    help="sets train.max_steps = minutes x this, so the cosine schedule ends near the budget "
                         "(140 measured here on one thread, batches grouped by length)")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides, e.g. model.d_model=256")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "t5_docstrings.json")
    args = ap.parse_args()

    steps = max(1, int(args.minutes * args.steps_per_minute))
    # 6,081 pairs are few: without dropout the model memorises them (train loss 1.2, val loss rising from step 500)
    overrides = ["model.dropout=0.1", f"train.max_minutes={args.minutes}", f"train.max_steps={steps}", "train.eval_every=250",
                 "train.checkpoint_every=1000000000", "train.warmup_steps=200", *args.set]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = genlab.train("t5", "pycode-docstrings", out=Path(tmp) / "run", overrides=overrides)
        train_s = time.perf_counter() - t0
        summary = json.loads((run.path / "summary.json").read_text())
        rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
        meta = run.data.meta
        t1 = time.perf_counter()
        report = run.evaluate(n=args.n, save=False)
        eval_s = time.perf_counter() - t1
        pairs = run.data.texts("val")[: args.n]
        shown = random.Random(args.seed).sample(pairs, min(10, len(pairs)))
        outputs = run.model.sample(1, source=[s for s, _ in shown], max_new_tokens=run.model.max_target_tokens_)
        examples = [{"source": s, "target": t, "model": o} for (s, t), o in zip(shown, outputs)]

    result = {
        "smoke": args.minutes < 5,
        "minutes": args.minutes,
        "steps": summary.get("steps"),
        "best_val_loss": summary.get("best_val_loss"),
        "train_plus_prepare_s": round(train_s, 1),
        "eval_s": round(eval_s, 1),
        "curve": [{k: r[k] for k in ("step", "val_loss", "elapsed_s")} for r in rows if "val_loss" in r],
        "pairs": {s: meta["splits"][s] for s in ("train", "val")},  # counts, and how many were truncated
        "vocab_size": meta["vocab_size"],
        "report": {k: v for k, v in report.items() if k != "run"},
        "examples": examples,
        "overrides": overrides,
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine()},
    }
    for ex in examples:
        print(f"--- source ({len(ex['source'])} chars):\n{ex['source'][:400]}")
        print(f"target: {ex['target']}\nmodel:  {ex['model']}\n")
    print(f"pairs: train {meta['splits']['train']['pairs']}, val {meta['splits']['val']['pairs']}; "
          f"{summary.get('steps')} steps in {args.minutes} min; scored {report['n_pairs']} held-out pairs")
    print(f"{'':10} {'BLEU':>6} {'chrF':>6} {'exact':>6}")
    for who in ("model", "baseline"):
        r = report[who]
        print(f"{who:10} {r['bleu']:6.2f} {r['chrf']:6.2f} {r['exact_match']:6.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
