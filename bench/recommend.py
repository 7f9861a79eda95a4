"""MovieLens 100k: Recall@20, Recall@50 and NDCG@100 of Mult-VAE beside item popularity and EASE, mean of 5 seeds.

Each seed trains Mult-VAE (the paper's shape: 600 hidden, 200 latent, dropout 0.5, beta annealed to 0.2) on the
training users of the fixed split and scores the test users; popularity and EASE are fitted on the same users
(closed form, no seed). Prints a table and writes ``bench/results/recommend.json``. About 1-3 minutes on 2 cores.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import genlab

SEEDS = (0, 1, 2, 3, 4)
STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 600
METRICS = ("recall@20", "recall@50", "ndcg@100")


def main() -> None:
    torch.set_num_threads(2)
    out, t0 = {"steps": STEPS, "seeds": list(SEEDS), "amx": bool(torch.cpu._is_amx_tile_supported()),
               "threads": torch.get_num_threads(), "runs": []}, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in SEEDS:
            run = genlab.train("multvae", "movielens-100k", out=Path(tmp) / f"s{seed}",
                               overrides=[f"train.seed={seed}", f"train.max_steps={STEPS}",
                                          "release.track_energy=false", "train.precision=fp32"])
            report = run.evaluate(save=False)
            out["runs"].append({"seed": seed, "multvae": {m: report[m] for m in METRICS},
                                **{b: {m: report[b][m] for m in METRICS} for b in ("popularity", "ease")}})
            print(f"seed {seed}: " + ", ".join(f"{m} {report[m]:.4f}" for m in METRICS), flush=True)
        out["users"] = report["users"]
    out["mean"] = {name: {m: float(np.mean([r[name][m] for r in out["runs"]])) for m in METRICS}
                   for name in ("multvae", "popularity", "ease")}
    out["std_over_seeds"] = {m: float(np.std([r["multvae"][m] for r in out["runs"]])) for m in METRICS}
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(f"\n{'model':<12}" + "".join(f"{m:>12}" for m in METRICS))
    for name, row in out["mean"].items():
        print(f"{name:<12}" + "".join(f"{row[m]:>12.4f}" for m in METRICS))
    print(f"({out['users']} test users, {len(SEEDS)} seeds, {STEPS} steps each, {out['wall_s']} s)")
    path = Path(__file__).parent / "results" / "recommend.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
