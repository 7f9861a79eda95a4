"""Quality and speed recipe for tables: genlab's ctgan, tvae and copula against SDV's, and what privacy costs.

1. On each table (default: breast-cancer, diabetes, medexp), genlab's ``ctgan``, ``tvae`` and ``copula`` are trained
   on the training split with the same number of epochs as SDV's CTGAN, TVAE and GaussianCopula (SDV runs in its own
   environment, ``--sdv-python``, on the very same training rows, written to a CSV). Every synthetic table, genlab's
   and SDV's alike, is scored by genlab's SDMetrics-compatible quality score against the held-out rows, by utility
   (gradient boosting trained on synthetic rows, tested on real held-out rows, against trained on real rows) and by a
   membership-inference attack's AUC, each the mean over 3 synthetic tables of the training split's size. Fit time is
   the wall time of reading, typing and splitting the table and fitting (SDV's ``fit`` includes its preprocessing
   too; genlab writes no run folder here), as a ratio genlab / SDV measured in the same run.
2. Differential privacy on ``--dp-table`` (default medexp): DP-SGD ``ctgan`` and ``tvae`` and the marginal-based
   ``mst`` at epsilon 1, 3 and 10 (domains declared public in a metadata file, as in NIST's challenges, where the
   schema is public), against the same families without privacy: the quality and utility each budget costs.

    python bench/tabular.py [--tables breast-cancer,diabetes,medexp] [--epochs 50] [--sdv-python .bench-sdv/bin/python]

Prints a table and writes ``bench/results/tabular.json``. Targets (issue 13): ctgan quality >= SDV CTGAN's at <= half
its fit time; copula quality >= SDV GaussianCopula's; at epsilon 1, mst quality above DP-ctgan's; MIA AUC <= 0.6.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

import genlab
from genlab import config as cfgmod
from genlab import registry
from genlab.data.tables import kept
from genlab.evaluate.tables import privacy, quality, utility

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("copula", "ctgan", "tvae")
SEEDS = 3  # synthetic tables scored per synthesiser (each of the training split's size), averaged
QUIET = ["release.track_energy=false", "train.eval_every=0", "train.checkpoint_every=1000000"]
# settings that suit DP-SGD (fewer, larger steps: each step spends budget), used with and without privacy alike
DP_SETTINGS = {"mst": [], "ctgan": ["train.max_steps=100"], "tvae": ["train.max_steps=300", "train.lr=5e-3",
                                                                      "train.min_lr=5e-4"]}


def score(data: Any, synth: pd.DataFrame, *, draws: int = SEEDS) -> dict[str, Any]:
    """Quality, utility headline and MIA AUC of ``synth`` against the run's held-out rows: ``synth`` holds ``draws``
    tables of the training split's size, scored one by one and averaged (a few hundred held-out rows make one
    draw's score noisy)."""
    columns, train, real = kept(data.meta), data.frame("train"), data.frame("val")
    synth = data.decode(data.encode(synth[list(columns)]))  # the run's types (SDV writes its own)
    n, figures = len(synth) // draws, []
    for k in range(draws):
        part = synth.iloc[k * n : (k + 1) * n].reset_index(drop=True)
        out = {"quality": quality(real, part, columns)["score"],
               "mia_auc": privacy(train, real, part, columns, seed=k)["mia_auc"]}
        if data.target:
            u = utility(train, real, part, data.target, columns, seed=k, threads=1)
            out["utility"], out["utility_real"] = u["synthetic"][u["headline"]], u["real"][u["headline"]]
        figures.append(out)
    return {key: statistics.mean(f[key] for f in figures) for key in figures[0]}


def settings(family: str, table: str, *, epochs: int, extra: list[str]) -> list[str]:
    """Overrides for ``epochs`` passes over the training rows at batch 500 (as SDV), then ``extra``."""
    overrides = list(QUIET)
    if registry.get_family(family).iterative:
        n_rows = len(registry.get_dataset(table).load().frame)
        n_train = n_rows - max(1, round(0.2 * n_rows))  # data.val_fraction's default split
        steps = max(1, math.ceil(epochs * n_train / 500))
        overrides += ["train.batch_size=500", f"train.max_steps={steps}", "train.warmup_steps=0"]
    return overrides + extra  # a later --set wins


def fit_genlab(family: str, table: str, folder: Path, *, epochs: int) -> tuple[Any, Any, float]:
    """The family fitted as SDV's ``fit`` is timed: from the table in memory (as SDV's ``fit`` gets a DataFrame), type
    and split it, build, fit; no run folder is written (no checkpoint, card or plot). (model, data, seconds)."""
    cls = registry.get_family(family)
    modality = registry.get_modality(cls.modality)
    config = cfgmod.build(family, table, cls.Config, modality.DataConfig, base={"train": dict(cls.train_defaults)},
                          overrides=settings(family, table, epochs=epochs, extra=[]))
    source = modality.resolve(table)  # read from its package (not timed: SDV is handed the rows in memory)
    t0 = time.perf_counter()
    data = modality.prepare(source, config.data, folder / f"{family}-{table}")
    model = cls(config.model)
    model.build(data, seed=config.train.seed)
    model.fit(data, config.train)
    return model, data, time.perf_counter() - t0


def train_genlab(family: str, table: str, folder: Path, *, epochs: int, extra: list[str]) -> tuple[Any, float]:
    """A genlab run (the privacy runs: privacy.json says what they spent); (run, wall seconds)."""
    t0 = time.perf_counter()
    run = genlab.train(family, table, out=folder / f"{family}-{table}-{len(list(folder.iterdir()))}",
                       overrides=settings(family, table, epochs=epochs, extra=extra))
    return run, time.perf_counter() - t0


def draws(model: Any, data: Any) -> pd.DataFrame:
    """``SEEDS`` tables of the training split's size, one per seed, stacked."""
    n = len(data.rows["train"])
    return pd.concat([model.sample(n, seed=k).frame for k in range(SEEDS)], ignore_index=True)


def sdv_peer(python: str, data: Any, folder: Path, *, epochs: int) -> dict[str, Any]:
    """SDV's three synthesisers on the same training rows, in their own environment: {name: (frame, seconds)}."""
    folder.mkdir(parents=True, exist_ok=True)
    train_csv = folder / "train.csv"
    data.frame("train").to_csv(train_csv, index=False)
    out = folder / "sdv"
    subprocess.run([python, str(ROOT / "bench" / "_sdv_peer.py"), str(train_csv), str(out), "--epochs", str(epochs),
                    "--rows", str(SEEDS * len(data.rows["train"]))], check=True, timeout=1800)
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
    for module in ("opacus", "sklearn.mixture"):  # imported before any timing, as SDV's script imports its own
        importlib.import_module(module)

    work = Path(tempfile.mkdtemp(prefix="genlab-tabular-"))
    have_sdv = Path(args.sdv_python).exists()
    results: dict[str, Any] = {"epochs": args.epochs, "tables": {}, "dp": {}, "sdv": have_sdv}
    try:
        for table in args.tables.split(","):
            row: dict[str, Any] = {}
            data = None
            for family in FAMILIES:  # 1. genlab
                model, data, seconds = fit_genlab(family, table, work, epochs=args.epochs)
                row[family] = {"fit_s": round(seconds, 2), **score(data, draws(model, data))}
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
                extra = [f"data.metadata={meta}", *DP_SETTINGS[family]] + ([f"privacy.epsilon={eps}"] if eps else [])
                run, seconds = train_genlab(family, args.dp_table, work, epochs=args.epochs, extra=extra)
                spent = run.path / "privacy.json"
                figures = {"fit_s": round(seconds, 2), **score(run.data, draws(run.model, run.data))}
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
