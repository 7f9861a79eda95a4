"""Quality recipe: video diffusion (``vdm``) on moving-digits (Moving MNIST, 64x64, 20 frames) in under 20 minutes.

Trains ``vdm`` with its default settings under a wall-clock budget, then runs ``genlab eval``'s video report on
held-out clips (made only from held-out digits): per-frame FID on the image families' mnist feature network, the
temporal measure, and continuation from the first 10 frames to the next 10, frame by frame (MSE and SSIM), beside
copying the last given frame and extrapolating linearly, scored in the same run. Target (issue 17): continuation
beats copy-last-frame on frames 1 to 5 after the prompt, in both MSE and SSIM.

It also times training steps in bf16 and fp32, alternating in the same process, and writes the pictures to look at:
a contact sheet of 8 generated clips (one row each) and continuations of 4 held-out clips (given, predicted, truth).

    python bench/video.py [--steps 1100] [--minutes 14] [--n 100] [--out bench/results/video] [--set section.key=v]
    python bench/video.py --run bench/results/video   # score a trained run again (no training)

Prints a table, writes ``bench/results/video.json`` and leaves the run (samples/step-N.png, loss.png) in --out.
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
from _common import flat, step_seconds  # bench/ is on the path when a recipe runs
from genlab.sample.video import rows_png, sheet_png
from genlab.train.precision import cpu_has_fast_bf16

ROOT = Path(__file__).resolve().parent.parent


def pictures(run: genlab.Run, out: Path) -> dict[str, str]:
    """Generated clips (a row each) and continued held-out clips (given / predicted / truth rows)."""
    paths = {"generated": out / "generated-sheet.png", "continued": out / "continued-sheet.png"}
    paths["generated"].write_bytes(sheet_png(np.asarray(run.sample(8, seed=1))))
    rows = []
    for i in range(4):
        c = run.continue_clip(None, 10, held_out=i, given=10, seed=2)
        rows += [np.asarray(c)[0, :10], np.asarray(c)[0, 10:], c.truth[0]]
    paths["continued"].write_bytes(rows_png(rows))
    return {k: str(v) for k, v in paths.items()}


def speed(run: genlab.Run, steps: int, rounds: int) -> dict:
    """Training clips per second, fp32 against bf16 in alternating rounds (the same shared machine for both)."""
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(rounds):
        for precision in times:
            times[precision] += step_seconds(run, precision, steps)
    batch = run.config.train.batch_size
    out = {p: {"ms_per_step": round(statistics.median(t) * 1000, 1),
               "clips_per_s": round(batch / statistics.median(t), 2)} for p, t in times.items()}
    return {"cpu_has_fast_bf16": cpu_has_fast_bf16(), **out,
            "bf16_speedup": round(out["fp32"]["ms_per_step"] / out["bf16"]["ms_per_step"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=330, help="training steps (the learning-rate schedule spans them)")
    ap.add_argument("--minutes", type=float, default=12.0, help="training budget: stops earlier on a slow machine")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "video"))
    ap.add_argument("--set", action="append", default=[], help="extra overrides, section.key=value")
    ap.add_argument("--n", type=int, default=100, help="clips generated and continued for the metrics")
    ap.add_argument("--run", help="score this trained run instead of training one (the pictures go beside it)")
    ap.add_argument("--speed-steps", type=int, default=3, help="timed steps per precision per round")
    ap.add_argument("--speed-rounds", type=int, default=2, help="alternating fp32/bf16 rounds")
    args = ap.parse_args()

    out = Path(args.run or args.out)
    t0 = time.perf_counter()
    if args.run:
        run = genlab.load(out)
    else:
        if out.exists():
            shutil.rmtree(out)
        run = genlab.train("vdm", "moving-digits", out=out, progress=True,
                           overrides=[f"train.max_minutes={args.minutes}", f"train.max_steps={args.steps}",
                                      "train.eval_every=200", *args.set])
    t1 = time.perf_counter()
    report = run.evaluate(n=args.n, given=10, seed=0)
    eval_minutes = (time.perf_counter() - t1) / 60
    images = pictures(run, out)
    speeds = speed(run, args.speed_steps, args.speed_rounds)
    curves = report["per_frame"]
    result = {
        "overrides": args.set,
        "steps": run.summary()["steps"],
        "train_minutes": round(run.summary()["wall_s"] / 60, 2),
        "eval_minutes": round(eval_minutes, 2),
        "total_minutes": round((time.perf_counter() - t0) / 60, 2),
        "report": report,
        "met": report["beats_copy_last_1_5"],
        "speed": speeds,
        "images": images,
    }
    path = ROOT / "bench" / "results" / "video.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=float))

    names = [m for m in ("model", "predictor", "copy_last", "linear", "blank") if f"mse_{m}" in curves]
    print(f"\n{'future frame':<14}" + "".join(f"{m + ' ' + k:>17}" for k in ("mse", "ssim") for m in names))
    for j in range(len(curves["mse_model"])):
        print(f"{j + 1:<14}" + "".join(f"{curves[f'{k}_{m}'][j]:>17.4f}" for k in ("mse", "ssim") for m in names))
    print(f"\n{'metric':<44}{'value':>14}")
    report_rows = {k: v for k, v in report.items() if k != "per_frame"}
    table = {k: v for k, v in result.items() if k not in ("report", "speed", "overrides", "images")}
    for k, v in {**flat(report_rows, "report."), **table, **flat(speeds, "speed.")}.items():
        print(f"{k:<44}{(f'{v:.4f}' if isinstance(v, float) else str(v)):>14}")
    print(f"\npictures: {images['generated']}, {images['continued']}; loss curve: {out / 'loss.png'}")


if __name__ == "__main__":
    main()
