"""Quality recipe: a class-conditional DCGAN on MNIST (5,000 digits) in about 18 minutes on 2 CPU cores.

Trains ``gan`` on the ``mnist`` dataset with the shipped config ``gan-mnist`` under a wall-clock budget, then runs
``genlab eval``'s image report on the held-out split: FID and KID on genlab's own MNIST feature network,
precision / recall / density / coverage, how often that network's classifier agrees with the requested label,
and the same metrics for a random-init model (the floor) and for real held-out data (the ceiling).
Targets (issue 3): FID at least 10x better than the floor, label agreement >= 80%.

It also times training steps in bf16 and in fp32, alternating in the same process (a few steps each, after the
main run) on the same config and data. Images per second count what the training loop counts: the real images
of the discriminator's phase(s); the generator's fakes are not counted.

    python bench/gan_mnist.py [--minutes 18] [--out bench/results/gan_mnist] [--set model.width=48]

Prints a table, writes ``bench/results/gan_mnist.json`` and leaves the run (samples/step-N.png, loss.png) in --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import genlab
from _common import flat, precision_speed  # bench/ is on the path when a recipe runs
from genlab.sample.images import save_grid

ROOT = Path(__file__).resolve().parent.parent
FID_FACTOR, AGREEMENT = 10.0, 0.80


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=18.0, help="training budget (data preparation not counted)")
    ap.add_argument("--config", default="gan-mnist", help="a shipped config name or a TOML file")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gan_mnist"))
    ap.add_argument("--set", action="append", default=[], help="extra overrides, section.key=value")
    ap.add_argument("--n", type=int, default=1000, help="generated images for the metrics")
    ap.add_argument("--speed-steps", type=int, default=10, help="timed steps per precision per round")
    ap.add_argument("--speed-rounds", type=int, default=2, help="alternating fp32/bf16 rounds")
    args = ap.parse_args()

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    run = genlab.train("gan", "mnist", out=out, config_file=args.config,
                       overrides=[f"train.max_minutes={args.minutes}", *args.set], progress=True)
    wall = time.perf_counter() - t0
    report = run.evaluate(n=args.n, seed=0)
    save_grid(run.sample(100, seed=0), out / "final-grid.png", nrow=10)  # one column per class when conditional
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
        "report": report,
        "fid_floor_over_model": (floor_fid / fid) if fid and floor_fid else None,
        "targets": {"fid_factor": FID_FACTOR, "label_agreement": AGREEMENT},
        "met": bool(fid and floor_fid and floor_fid / fid >= FID_FACTOR
                    and (agreement is None or agreement >= AGREEMENT)),
        "train_img_per_s_median": statistics.median(train_rate) if train_rate else None,
        "speed": speeds,
        "grid": str(out / "final-grid.png"),
    }
    path = ROOT / "bench" / "results" / "gan_mnist.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=float))

    print(f"\n{'metric':<44}{'value':>14}")
    table = {k: v for k, v in result.items() if k not in ("report", "speed", "targets", "overrides")}
    for k, v in {**flat(report, "report."), **table, **flat(speeds, "speed.")}.items():
        print(f"{k:<44}{(f'{v:.4f}' if isinstance(v, float) else str(v)):>14}")
    print(f"\nsamples: {out / 'final-grid.png'} (and {out / 'samples'}), loss curve: {out / 'loss.png'}")


if __name__ == "__main__":
    main()
