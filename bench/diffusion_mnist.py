"""Quality recipe: a class-conditional DDPM on MNIST (5,000 digits) in about 18 minutes on 2 CPU cores.

Trains ``diffusion`` on the ``mnist`` dataset with the shipped config ``diffusion-mnist`` under a wall-clock budget, then
runs ``genlab eval``'s image report on the held-out split (DDIM sampling with the EMA weights): FID and KID on
genlab's own MNIST feature network, precision / recall / density / coverage, how often that network's classifier
agrees with the requested label, and the same metrics for a random-init model (the floor) and for real held-out
data (the ceiling). Targets (issue 3): FID at least 10x better than the floor, label agreement >= 80%.

It also times training steps in bf16 and in fp32, alternating in the same process (a few steps each, after the
main run) on the same config and data, and writes a 10x10 grid (one column per class), an interpolation strip
and variations of a held-out digit next to the run.

    python bench/diffusion_mnist.py [--minutes 18] [--out bench/results/diffusion_mnist] [--set model.guidance=1]

Prints a table, writes ``bench/results/diffusion_mnist.json`` and leaves the run (samples/step-N.png, loss.png) in
--out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

import genlab
from _common import flat, precision_speed  # bench/ is on the path when a recipe runs
from genlab.data.images import from_unit
from genlab.sample.images import save_grid

ROOT = Path(__file__).resolve().parent.parent
FID_FACTOR, AGREEMENT = 10.0, 0.80


def pictures(run: genlab.Run, out: Path) -> dict[str, str]:
    """The grid people look at, plus an interpolation strip and variations of a held-out digit."""
    model = run.model
    paths = {"grid": out / "final-grid.png", "interpolation": out / "interpolation.png",
             "variations": out / "variations.png"}
    save_grid(run.sample(100, seed=0), paths["grid"], nrow=10)  # one column per class when conditional
    save_grid(model.interpolate(10, seed=1), paths["interpolation"], nrow=10)
    digit = from_unit(run.data.x["val"][0])  # (1, 28, 28)
    rows = [np.concatenate([digit[None], model.vary(digit, 7, strength=s, seed=2)]) for s in (0.3, 0.6)]
    save_grid(np.concatenate(rows), paths["variations"], nrow=8)  # each row: the digit, then 7 variations
    return {k: str(v) for k, v in paths.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=18.0, help="training budget (data preparation not counted)")
    ap.add_argument("--config", default="diffusion-mnist", help="a shipped config name or a TOML file")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "diffusion_mnist"))
    ap.add_argument("--set", action="append", default=[], help="extra overrides, section.key=value")
    ap.add_argument("--n", type=int, default=1000, help="generated images for the metrics")
    ap.add_argument("--speed-steps", type=int, default=5, help="timed steps per precision per round")
    ap.add_argument("--speed-rounds", type=int, default=2, help="alternating fp32/bf16 rounds")
    args = ap.parse_args()

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    run = genlab.train("diffusion", "mnist", out=out, config_file=args.config,
                       overrides=[f"train.max_minutes={args.minutes}", *args.set], progress=True)
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = run.evaluate(n=args.n, seed=0)
    eval_minutes = (time.perf_counter() - t1) / 60
    images = pictures(run, out)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rate = [r["img_per_s"] for r in rows if "img_per_s" in r and r["img_per_s"] == r["img_per_s"]]  # not NaN
    speeds = precision_speed(run, args.speed_steps, args.speed_rounds)

    fid, floor_fid = report.get("fid"), (report.get("floor") or {}).get("fid")
    agreement = report.get("label_agreement")
    result = {
        "config": Path(args.config).name,
        "overrides": args.set,
        "steps": run.summary()["steps"],
        "train_minutes": round(run.summary()["wall_s"] / 60, 2),
        "total_minutes": round(wall / 60, 2),
        "eval_minutes": round(eval_minutes, 2),
        "report": report,
        "fid_floor_over_model": (floor_fid / fid) if fid and floor_fid else None,
        "targets": {"fid_factor": FID_FACTOR, "label_agreement": AGREEMENT},
        "met": bool(fid and floor_fid and floor_fid / fid >= FID_FACTOR
                    and (agreement is None or agreement >= AGREEMENT)),
        "train_img_per_s_median": statistics.median(train_rate) if train_rate else None,
        "speed": speeds,
        "images": images,
    }
    path = ROOT / "bench" / "results" / "diffusion_mnist.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=float))

    print(f"\n{'metric':<44}{'value':>14}")
    table = {k: v for k, v in result.items() if k not in ("report", "speed", "targets", "overrides", "images")}
    for k, v in {**flat(report, "report."), **table, **flat(speeds, "speed.")}.items():
        print(f"{k:<44}{(f'{v:.4f}' if isinstance(v, float) else str(v)):>14}")
    print(f"\nsamples: {images['grid']} (and {out / 'samples'}), interpolation: {images['interpolation']}, "
          f"variations: {images['variations']}, loss curve: {out / 'loss.png'}")


if __name__ == "__main__":
    main()
