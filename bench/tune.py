"""Quality recipe: tuning a Shakespeare-char gpt run to a person's prose it never saw (`genlab tune`).

The base: ``gpt`` on the ``shakespeare`` dataset with the shipped ``shakespeare-20min`` shape (4 layers, width 128,
context 128, characters), trained for a few minutes (kept in --base and reused when it is there). The person: about
eight pages of English prose from the Python reference manual (``pydoc_data.topics``, in the standard library), a
text Shakespeare never wrote; characters the base's tokenizer does not know are dropped first (what the user would
be told to do). Each tuning (LoRA adapters, and full fine-tuning for comparison) reports the held-out perplexity on
the person's text and on Shakespeare's held-out works before and after, the bytes it saves against the base's
weights, and its wall time. The base run's files are hashed before and after: tuning must leave them unchanged.

    python bench/tune.py [--base-minutes 3] [--steps 300] [--out bench/results/tune-runs]

Prints a table and writes ``bench/results/tune.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from pathlib import Path

import torch

import genlab

ROOT = Path(__file__).resolve().parent.parent
PERSON_CHARS = 40_000  # about eight pages


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def base_run(path: Path, minutes: float, steps: int) -> genlab.Run:
    if (path / "model.safetensors").is_file():
        return genlab.load(path)
    shutil.rmtree(path, ignore_errors=True)
    return genlab.train("gpt", "shakespeare", out=path, config_file="shakespeare-20min", progress=True,
                        overrides=[f"train.max_minutes={minutes}", f"train.max_steps={steps}", "train.eval_every=0",
                                   "release.track_energy=false"])


def person_text(base: genlab.Run, path: Path) -> dict:
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k].strip() for k in sorted(topics))[:PERSON_CHARS]
    kept = "".join(c for c in text if base.model.tokenizer_.token_to_id(c) is not None)
    path.write_text(kept, encoding="utf-8")
    return {"chars": len(kept), "dropped_chars": len(text) - len(kept),
            "dropped": "".join(sorted({c for c in text if base.model.tokenizer_.token_to_id(c) is None}))}


def tune(base: genlab.Run, data: Path, out: Path, overrides: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    run = genlab.train("lora", str(data), out=out, parent=base.path, overrides=overrides, progress=True)
    seconds = time.perf_counter() - t0
    r = run.evaluate()
    return {"overrides": overrides, "steps": run.summary()["steps"], "tune_s": round(seconds, 1),
            **{k: round(r[k], 3) for k in ("person_ppl_before", "person_ppl_after", "base_ppl_before",
                                           "base_ppl_after")},
            "saved_params": r["adapter_params"], "base_params": r["base_params"],
            "saved_bytes": (out / "model.safetensors").stat().st_size,
            "base_bytes": (base.path / "model.safetensors").stat().st_size,
            "sample": run.sample(1, prompt="The ", max_new_tokens=200, seed=0)[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=str(ROOT / "bench" / "results" / "tune-base"), help="the base run (reused)")
    ap.add_argument("--base-minutes", type=float, default=3.0, help="training budget of a new base run")
    ap.add_argument("--base-steps", type=int, default=1200, help="max_steps of a new base run (its cosine schedule)")
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps of each tuning")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tune-runs"))
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = base_run(Path(args.base), args.base_minutes, args.base_steps)
    person = person_text(base, out / "my-writing.txt")
    before = hashes(base.path)
    common = [f"train.max_steps={args.steps}", "train.eval_every=0", "data.val_fraction=0.2",
              "release.track_energy=false"]
    rows = {"lora r=8": tune(base, out / "my-writing.txt", out / "lora", common),
            "lora gentle": tune(base, out / "my-writing.txt", out / "lora-gentle",  # a quarter of the rate
                                [*common, "train.lr=5e-4", "train.min_lr=5e-5"]),
            "full": tune(base, out / "my-writing.txt", out / "full",
                         [*common, "model.full=true", "train.lr=3e-4", "train.min_lr=3e-5"])}
    result = {"cpu_amx": bool(torch.cpu._is_amx_tile_supported()), "torch_threads": torch.get_num_threads(),
              "base": {"path": str(base.path), "steps": base.summary()["steps"],
                       "val_loss": base.summary().get("best_val_loss")},
              "person": person, "base_unchanged": hashes(base.path) == before, "tunings": rows}
    print(f"{'tuning':<12} {'person ppl before -> after':>28} {'base ppl before -> after':>26} "
          f"{'saved / base bytes':>22} {'time':>7}")
    for name, r in rows.items():
        print(f"{name:<12} {r['person_ppl_before']:>12.3f} -> {r['person_ppl_after']:<12.3f}"
              f"{r['base_ppl_before']:>11.3f} -> {r['base_ppl_after']:<11.3f}"
              f"{r['saved_bytes']:>10,} / {r['base_bytes']:<10,} {r['tune_s']:>6.1f}s")
    print(f"base run unchanged: {result['base_unchanged']}; amx: {result['cpu_amx']}")
    (ROOT / "bench" / "results" / "tune.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
