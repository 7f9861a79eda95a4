"""Quality and speed recipe for tables: genlab's ctgan, tvae and copula against SDV's, and what privacy costs.

1. On each table (default: breast-cancer, diabetes, medexp), genlab's ``ctgan``, ``tvae`` and ``copula`` are trained
   on the training split with the same number of epochs as SDV's CTGAN, TVAE and GaussianCopula (SDV runs in its own
   environment, ``--sdv-python``, on the very same training rows, written to a CSV). Every synthetic table, genlab's
   and SDV's alike, is scored by genlab's SDMetrics-compatible quality score against the held-out rows, by utility
   (gradient boosting trained on synthetic rows, tested on real held-out rows, against trained on real rows) and by a
   membership-inference attack's AUC. Fit time is wall time of the whole fit (preparation included) as a ratio
   genlab / SDV measured in the same run.
2. Differential privacy on ``--dp-table`` (default medexp): DP-SGD ``ctgan`` and ``tvae`` and the marginal-based
   ``mst`` at epsilon 1, 3 and 10 (domains declared public in a metadata file, as in NIST's challenges, where the
   schema is public), against the same families without privacy: the quality and utility each budget costs.

    python bench/tabular.py [--tables breast-cancer,diabetes,medexp] [--epochs 50] [--sdv-python .bench-sdv/bin/python]

Prints a table and writes ``bench/results/tabular.json``. Targets (issue 13): ctgan quality >= SDV CTGAN's at <= half
its fit time; copula quality >= SDV GaussianCopula's; at epsilon 1, mst quality above DP-ctgan's; MIA AUC <= 0.6.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

import genlab
from genlab.data.tables import kept
from genlab.evaluate.tables import privacy, quality, utility

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("copula", "ctgan", "tvae")
QUIET = ["release.track_energy=false", "train.eval_every=0", "train.checkpoint_every=1000000"]


def score(data: Any, synth: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """Quality, utility headline and MIA AUC of ``synth`` against the run's held-out rows."""
    columns, train, real = kept(data.meta), data.frame("train"), data.frame("val")
    synth = data.decode(data.encode(synth[list(columns)]))  # the run's types (SDV writes its own)
    out = {"quality": quality(real, synth, columns)["score"],
           "mia_auc": privacy(train, real, synth, columns, seed=seed)["mia_auc"]}
    if data.target:
        u = utility(train, real, synth, data.target, columns, seed=seed, threads=1)
        out["utility"], out["utility_real"] = u["synthetic"][u["headline"]], u["real"][u["headline"]]
    return out


def train_genlab(family: str, table: str, folder: Path, *, epochs: int, extra: list[str]) -> tuple[Any, float]:
    """A genlab run with ``epochs`` passes over the training rows (batch 500, as SDV); (run, wall seconds)."""
    overrides = [*QUIET, *extra]
    if family in ("ctgan", "tvae"):
        n_rows = _rows(table)
        n_train = n_rows - max(1, round(0.2 * n_rows))  # data.val_fraction's default split
        steps = max(1, math.ceil(epochs * n_train / 500))
        overrides += ["train.batch_size=500", f"train.max_steps={steps}", "train.warmup_steps=0"]
    t0 = time.perf_counter()
    run = genlab.train(family, table, out=folder / f"{family}-{table}-{len(list(folder.iterdir()))}",
                       overrides=overrides)
    return run, time.perf_counter() - t0


def _rows(table: str) -> int:
    from genlab import registry

    return len(registry.get_dataset(table).load().frame)


def sdv_peer(python: str, data: Any, folder: Path, *, epochs: int) -> dict[str, Any]:
    """SDV's three synthesisers on the same training rows, in their own environment: {name: (frame, seconds)}."""
    train_csv = folder / "train.csv"
    data.frame("train").to_csv(train_csv, index=False)
    out = folder / "sdv"
    subprocess.run([python, str(ROOT / "bench" / "_sdv_peer.py"), str(train_csv), str(out), "--epochs", str(epochs),
                    "--rows", str(len(data.rows["train"]))], check=True, timeout=1800)
    times = json.loads((out / "times.json").read_text())
    return {name: (pd.read_csv(out / f"{name}.csv"), seconds) for name, seconds in times.items()}


def public_metadata(table: str, folder: Path) -> Path:
    """The table's detected metadata with every domain declared public (the schema is public, as in NIST's
    challenges), for the private runs."""
    meta = genlab.describe(table)
    for col in meta["columns"].values():
        if col["type"] != "id":
            col["public"] = True
    path = folder / f"{table}-public.json"
    path.write_text(json.dumps(meta))
    return path


def print_summary(results: dict[str, Any]) -> None:
    print(f"\n{'table':14s} {'synthesiser':14s} {'fit s':>7s} {'quality':>8s} {'utility':>8s} {'real':>6s} "
          f"{'MIA AUC':>8s} {'eps spent':>9s}")
    rows = [(t, k, v) for t, row in results["tables"].items() for k, v in row.items() if isinstance(v, dict)]
    rows += [("dp", k, v) for k, v in results["dp"].items()]
    for table, name, v in rows:
        print(f"{table:14s} {name:14s} {v['fit_s']:7.2f} {v['quality']:8.3f} {v.get('utility', float('nan')):8.3f} "
              f"{v.get('utility_real', float('nan')):6.3f} {v['mia_auc']:8.3f} {v.get('epsilon_spent', '-'):>9}")
    for table, row in results["tables"].items():
        ratios = {k: v for k, v in row.items() if k.endswith("_fit_ratio")}
        if ratios:
            print(f"{table}: fit time genlab / SDV: {ratios}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default="breast-cancer,diabetes,medexp")
    ap.add_argument("--epochs", type=int, default=50, help="passes over the training rows, for genlab and SDV alike")
    ap.add_argument("--sdv-python", default=str(ROOT / ".bench-sdv" / "bin" / "python"),
                    help="the Python of an environment with sdv (skipped when it does not exist)")
    ap.add_argument("--dp-table", default="medexp")
    ap.add_argument("--epsilons", default="1,3,10")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tabular.json"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="genlab-tabular-"))
    have_sdv = Path(args.sdv_python).exists()
    results: dict[str, Any] = {"epochs": args.epochs, "tables": {}, "dp": {}, "sdv": have_sdv}
    try:
        for table in args.tables.split(","):
            row: dict[str, Any] = {}
            data = None
            for family in FAMILIES:  # 1. genlab
                run, seconds = train_genlab(family, table, work, epochs=args.epochs, extra=[])
                data = run.data
                synth = run.sample(len(data.rows["train"]), seed=0).frame
                row[family] = {"fit_s": round(seconds, 2), **score(data, synth)}
                print(f"{table:14s} genlab {family:7s} {row[family]}", flush=True)
            if have_sdv:  # 2. SDV on the same rows
                for name, (frame, seconds) in sdv_peer(args.sdv_python, data, work / table, epochs=args.epochs).items():
                    row[f"sdv_{name}"] = {"fit_s": round(seconds, 2), **score(data, frame)}
                    print(f"{table:14s} sdv    {name:7s} {row[f'sdv_{name}']}", flush=True)
                for family in FAMILIES:
                    row[f"{family}_fit_ratio"] = round(row[family]["fit_s"] / row[f"sdv_{family}"]["fit_s"], 3)
            results["tables"][table] = row
        meta = public_metadata(args.dp_table, work)  # 3. what privacy costs
        for family in ("mst", "ctgan", "tvae"):
            for eps in [None, *map(float, args.epsilons.split(","))]:
                extra = [f"data.metadata={meta}"] + ([f"privacy.epsilon={eps}"] if eps else [])
                run, seconds = train_genlab(family, args.dp_table, work, epochs=args.epochs, extra=extra)
                spent = run.path / "privacy.json"
                figures = {"fit_s": round(seconds, 2), **score(run.data, run.sample(len(run.data.rows["train"]),
                                                                                    seed=0).frame)}
                if spent.is_file():
                    figures["epsilon_spent"] = json.loads(spent.read_text())["epsilon_spent"]
                results["dp"][f"{family}@{eps or 'none'}"] = figures
                print(f"{args.dp_table:14s} {family:6s} epsilon {eps or 'none':>5} {figures}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_summary(results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
