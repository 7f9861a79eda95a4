"""The peer of bench/tabular.py: SDV's CTGAN, TVAE and GaussianCopula on a table, run in a separate environment.

SDV is never a dependency of genlab (its licence is not open source); this script runs with the Python of an
environment that has it (``make bench`` builds one in ``.bench-sdv/``), reads the training rows genlab's bench wrote,
fits each synthesiser with the given epochs, and writes its synthetic rows and its fit time:

    .bench-sdv/bin/python bench/_sdv_peer.py TRAIN.csv OUT_FOLDER --epochs 50 --rows 1000 --seed 0

Output: ``OUT_FOLDER/<name>.csv`` per synthesiser and ``OUT_FOLDER/times.json`` ({name: fit seconds}).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="copula,ctgan,tvae")
    args = ap.parse_args()

    import torch
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    torch.manual_seed(args.seed)
    frame = pd.read_csv(args.train)
    for name in frame.columns:  # SDV's CTGAN refuses pandas 'category' columns
        if frame[name].dtype.name == "category":
            frame[name] = frame[name].astype(object)
    metadata = Metadata.detect_from_dataframes({"t": frame})
    makers = {"copula": lambda: GaussianCopulaSynthesizer(metadata),
              "ctgan": lambda: CTGANSynthesizer(metadata, epochs=args.epochs),
              "tvae": lambda: TVAESynthesizer(metadata, epochs=args.epochs)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    for name in args.only.split(","):
        synth = makers[name]()
        t0 = time.perf_counter()
        synth.fit({"t": frame})
        times[name] = time.perf_counter() - t0
        rows = synth.sample(args.rows)
        (rows["t"] if isinstance(rows, dict) else rows).to_csv(out / f"{name}.csv", index=False)  # SDV 2: {name: frame}
    (out / "times.json").write_text(json.dumps(times))


if __name__ == "__main__":
    main()
