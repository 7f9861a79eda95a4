"""Code assistant: a GPT trained on the Python standard library (byte-level BPE, 4,096 tokens), then measured as
a completer on held-out functions.

Trains ``gpt`` on ``pycode`` (about 10% of the files held out by a hash of their path) for ``--minutes`` of
training (data preparation not counted): 4 layers x 128, 4 heads, context 256, batch 16. ``train.max_steps`` is
``--minutes`` x ``--steps-per-minute``, so the cosine schedule ends with the budget (``train.max_minutes`` stops
it in any case). Then ``genlab.evaluate.code.code_report``: valid-syntax rate of
greedy completions against the ``pass`` and empty baselines, exact next-line match, next-token accuracy and
perplexity on the validation split; and five real completions.

    python bench/code_assistant.py [--minutes 15] [--n 100] [--eval-tokens 100000] [--out DIR]

Prints the figures, writes ``bench/results/code_assistant.json`` and leaves the run in --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch

import genlab
from genlab.evaluate.code import code_report
from genlab.nets import n_params

ROOT = Path(__file__).resolve().parent.parent
SHAPE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 256}
BATCH, VOCAB = 16, 4096


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget (data preparation not counted)")
    ap.add_argument("--steps-per-minute", type=float, default=90.0,
                    help="sets train.max_steps = minutes x this, so the cosine schedule ends near the budget "
                         "(about 90 measured here on one thread; train.max_minutes stops it in any case)")
    ap.add_argument("--n", type=int, default=100, help="held-out functions to complete")
    ap.add_argument("--eval-tokens", type=int, default=100_000, help="validation tokens for accuracy/perplexity")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "code_assistant"))
    ap.add_argument("--set", action="append", default=[], help="extra overrides, section.key=value")
    args = ap.parse_args()

    steps = max(10, int(args.minutes * args.steps_per_minute))
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    overrides = [f"model.{k}={v}" for k, v in SHAPE.items()] + [
        "data.tokenizer=bpe", f"data.vocab_size={VOCAB}", f"train.batch_size={BATCH}", f"train.max_steps={steps}",
        f"train.max_minutes={args.minutes}", f"train.warmup_steps={min(100, steps // 10)}", "train.lr=2e-3",
        "train.min_lr=2e-4", f"train.eval_every={max(steps // 5, 1)}", "train.eval_batches=10",
        f"train.checkpoint_every={steps}", *args.set,
    ]
    t0 = time.perf_counter()
    run = genlab.train("gpt", "pycode", out=out, overrides=overrides, progress=True)
    train_wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = code_report(run, n=args.n, seed=0, max_tokens=args.eval_tokens)
    report_s = time.perf_counter() - t1
    summary = run.summary()
    result = {
        "shape": SHAPE, "batch_size": BATCH, "vocab_size": VOCAB, "minutes": args.minutes,
        "smoke": args.minutes < 5, "overrides": args.set, "planned_steps": steps,
        "steps": summary["steps"], "train_wall_minutes": round(summary["wall_s"] / 60, 2),
        "total_train_call_minutes": round(train_wall / 60, 2), "report_seconds": round(report_s, 1),
        "n_params": n_params(run.model.model_), "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__, **report, "run": out.relative_to(ROOT).as_posix() if out.is_relative_to(ROOT)
        else out.name,
    }
    print(f"\n{summary['steps']} steps, {summary['wall_s'] / 60:.1f} min of training; report in {report_s:.0f} s")
    print(f"valid syntax: model {report['valid_syntax']:.2f}  'pass' {report['valid_syntax_pass']:.2f}  "
          f"empty {report['valid_syntax_empty']:.2f}   exact next line {report['exact_line']:.2f}   "
          f"non-empty {report['nonempty']:.2f}   valid and non-empty {report['valid_and_nonempty']:.2f}")
    print(f"next-token accuracy {report['next_token_accuracy']:.3f}   perplexity {report['perplexity']:.1f}   "
          f"val loss {report['val_loss']:.3f} nats/token   bits/char {report['bits_per_char']:.3f}")
    for ex in report["examples"][:5]:
        print(f"\n--- {ex['function']}: after  {ex['context']!r}")
        print(f"true next line: {ex['target']!r}")
        print(ex["completion"] or "(empty)", end="" if ex["completion"].endswith("\n") else "\n")
    dest = ROOT / "bench" / "results" / "code_assistant.json"
    dest.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
