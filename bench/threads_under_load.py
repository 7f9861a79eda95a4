"""Training speed under competing load: genlab's default CPU thread count against fixed counts, alone and beside
another PyTorch training process, in one run (issue 12, item 7).

Each cell trains a fresh copy of the same small GPT (bench/train_gpt.py's "baby" shape: 4 layers, 4 heads, n_embd
128, context 64, batch 12, dropout 0; train.precision "auto") on shakespeare, tokenized once, with genlab's
``Trainer``, for ``--steps`` optimizer steps or ``--seconds`` of training, whichever comes first, and reports
tokens/s over all its steps but the first (start-up) and the last (validation), so the thread setting's own
start-up counts. Each variant trains in its own long-lived process (the OpenMP wait policy is fixed when a process
loads PyTorch; one process per variant also keeps Python's start-up out of the timed cells). The variants:
  * default:    nothing set (train.threads = 0): whatever genlab does by default;
  * threads=N:  --set train.threads=N;
  exploratory, for ``--variants``: ``passive`` (OMP_WAIT_POLICY=PASSIVE in the environment), ``spin=N``
  (GOMP_SPINCOUNT=N), ``governor`` (genlab.train.threads.ThreadGovernor passed as a callback), joined with "+".
The conditions: alone, and beside a competing process: a plain PyTorch training loop (no genlab, so no genlab
setting reaches it) of a GPT of the same shape with PyTorch's default threads and wait policy, started before the
measured cells and warmed up, killed when they are done (``--competitor genlab`` runs a second ``genlab train``
of the same model instead). Cells are interleaved: each round runs every variant alone, then every variant under
load (the order rotating per round), so slow drift of a shared machine hits all of them alike; a row's figure is
the median over rounds. "others" is the cores other processes kept busy during the cell (alone: background load
of the machine), with the competitor's own steps/s. OMP_*/GOMP_*/MKL_NUM_THREADS are removed from the children's
environment unless a variant sets them. Reproduce: ``python bench/threads_under_load.py`` (3 to 7 minutes on 2
cores); a table on stdout, JSON in bench/results/threads_under_load.json. The bar: the default within 20% of the
best variant (default/best >= 0.8) both alone and under load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
BABY = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12, "dropout": 0.0}
BAR = 0.8  # the default within 20% of the best variant
STRIPPED = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_DYNAMIC")


# -- the variants (one process each) and what they train ----------------------------------------------------------
def parse_variant(spec: str) -> tuple[list[str], dict[str, str], bool]:
    """A variant name -> (overrides, environment, governor callback)."""
    overrides: list[str] = []
    env: dict[str, str] = {}
    governor = False
    for part in spec.split("+"):
        if part == "default":
            pass
        elif part.startswith("threads="):
            overrides.append(f"train.threads={int(part.split('=', 1)[1])}")
        elif part == "passive":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        elif part.startswith("spin="):
            env["GOMP_SPINCOUNT"] = str(int(part.split("=", 1)[1]))
        elif part == "governor":
            governor = True
        else:
            raise SystemExit(f"unknown variant part {part!r} (default, threads=N, passive, spin=N, governor)")
    return overrides, env, governor


def worker(variant: str, data_dir: Path) -> None:
    """One variant's process: load the data, then train a fresh baby GPT through genlab's Trainer for each
    "STEPS SECONDS" line on stdin and answer with one JSON line (its tokens/s)."""
    overrides, _, governor = parse_variant(variant)
    import torch  # after the environment is set by the parent

    from genlab.config import TrainConfig
    from genlab.data.tokens import TextDataConfig
    from genlab.models.gpt import GPT, GPTConfig
    from genlab.train.loop import Trainer
    from genlab.train.threads import CpuMeter, ThreadGovernor

    data = GPT.load_data(TextDataConfig(), data_dir)
    fixed = dict(o.split("=", 1) for o in overrides)
    print("ready", flush=True)
    for line in sys.stdin:
        steps, seconds = int(line.split()[0]), float(line.split()[1])
        marks: list[tuple[float, int]] = []
        info: dict = {}

        class Watch:
            def on_train_start(self, trainer) -> None:
                info["t_start"] = time.perf_counter()
                try:
                    self.meter = CpuMeter()
                except Exception:
                    self.meter = None

            def on_step_end(self, trainer, step, logs) -> None:
                marks.append((time.perf_counter(), torch.get_num_threads()))

            def on_train_end(self, trainer, status, summary) -> None:
                info["others"] = self.meter.others() if self.meter else float("nan")
                govs = [c for c in trainer.callbacks if isinstance(c, ThreadGovernor)]
                info["governor"] = bool(govs) and not trainer.config.threads
                info["governor_looks"] = govs[0].history if govs else []
                info["precision"] = trainer.precision.name

        family = GPT(GPTConfig(**{k: BABY[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "dropout")}))
        family.build(data, seed=1337)
        train = TrainConfig(batch_size=BABY["batch_size"], max_steps=steps, max_minutes=seconds / 60,
                            warmup_steps=5, eval_every=0, eval_batches=1, log_every=10, checkpoint_every=10**9,
                            threads=int(fixed.get("train.threads", 0)))
        callbacks = [Watch()] + ([ThreadGovernor()] if governor else [])
        Trainer(family, data, train, run_dir=None, progress=False, callbacks=callbacks).run()
        tokens = BABY["batch_size"] * BABY["block_size"]
        gaps = [b[0] - a[0] for a, b in zip(marks[:-2], marks[1:-1])]  # steps 2 .. n-1: not start-up, not validation
        threads = [m[1] for m in marks[:-1]] or [marks[-1][1]]
        if len(gaps) >= 5:
            rate = tokens * len(gaps) / sum(gaps)
        else:  # a collapse: too few steps to leave any out, so all of them from the start of training
            rate = tokens * len(marks) / (marks[-1][0] - info["t_start"])
        print(json.dumps({
            "variant": variant, "steps": len(marks), "timed_steps": len(gaps), "tokens_per_s": rate,
            "ms_per_step_median": 1e3 * statistics.median(gaps) if gaps else None,
            "threads_mean": statistics.fmean(threads), "others_cores": info.get("others"),
            "governor": info.get("governor"), "governor_looks": info.get("governor_looks"),
            "precision": info.get("precision"),
        }), flush=True)


class Worker:
    """A variant's process (its own environment: the OpenMP wait policy is read when a process loads PyTorch)."""

    def __init__(self, variant: str, env: dict[str, str], data_dir: Path, log: Path) -> None:
        self.variant, self.log = variant, log
        self.proc = subprocess.Popen([sys.executable, str(HERE), "--worker", variant, "--data-dir", str(data_dir)],
                                     env={**env, **parse_variant(variant)[1]}, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.variant} worker failed:\n{self.log.read_text()[-3000:]}")
        return line

    def ready(self) -> None:
        while self._line().strip() != "ready":
            pass

    def cell(self, steps: int, seconds: float) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{steps} {seconds}\n")
        self.proc.stdin.flush()
        while not (line := self._line()).startswith("{"):
            pass
        return json.loads(line)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def prepare(folder: Path) -> Path:
    """Shakespeare, tokenized once for all cells: ``folder``/data and the tokenizer beside it, as in a run."""
    from genlab.data.tokens import TextDataConfig, prepare_text
    from genlab.registry import get_dataset
    from genlab.runfiles import TOKENIZER_FILE

    data = prepare_text(get_dataset("shakespeare").load(), TextDataConfig(), folder / "data")
    data.tokenizer.save(str(folder / TOKENIZER_FILE))
    return folder / "data"


# ----------------------------------------------------------------------------------------------------------------
# the competing process (a child process): plain PyTorch, no genlab
def hog() -> None:
    """Train a GPT of the baby shape in plain PyTorch (default threads and wait policy) until killed; print steps."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    L, H, C, T, B, V = BABY["n_layer"], BABY["n_head"], BABY["n_embd"], BABY["block_size"], BABY["batch_size"], 65

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok, self.pos = nn.Embedding(V, C), nn.Embedding(T, C)
            layer = nn.TransformerEncoderLayer(C, H, 4 * C, dropout=0.0, activation="gelu", batch_first=True,
                                               norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, L, enable_nested_tensor=False)
            self.norm, self.head = nn.LayerNorm(C), nn.Linear(C, V, bias=False)
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(T))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.tok(x) + self.pos(torch.arange(x.shape[1]))
            return self.head(self.norm(self.blocks(h, mask=self.mask, is_causal=True)))

    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    data = torch.randint(V, (200_000,))
    step = 0
    while True:
        ix = torch.randint(len(data) - T - 1, (B,))
        xy = torch.stack([data[i : i + T + 1] for i in ix.tolist()])
        loss = F.cross_entropy(net(xy[:, :-1]).reshape(-1, V), xy[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        print(step, time.perf_counter(), flush=True)


class Competitor:
    """The competing process, started and warmed up; ``rate(t0, t1)`` is its steps/s between two perf_counter times
    (its clock is the same CLOCK_MONOTONIC)."""

    def __init__(self, kind: str, env: dict[str, str], tmp: Path, warmup_s: float) -> None:
        if kind == "plain":
            cmd = [sys.executable, str(HERE), "--hog"]
        else:  # a second genlab training of the same model, long enough to outlast the cells
            sets = [f"model.{k}={BABY[k]}" for k in ("n_layer", "n_head", "n_embd", "block_size", "dropout")]
            sets += [f"train.batch_size={BABY['batch_size']}", "train.max_steps=100000000", "train.eval_every=0",
                     "train.log_every=1", "train.checkpoint_every=100000000", "release.track_energy=false"]
            out = tmp / f"competitor-{time.monotonic_ns()}"
            cmd = [sys.executable, "-c", "import sys, time, genlab\n"
                   "cb = lambda trainer, step, logs: print(step, time.perf_counter(), flush=True)\n"
                   f"genlab.train('gpt', 'shakespeare', out={str(out)!r}, overrides={sets!r}, callbacks=[cb])"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.marks: list[tuple[float, int]] = []
        threading.Thread(target=self._read, daemon=True).start()
        t0 = time.perf_counter()
        while (len(self.marks) < 20 or time.perf_counter() - self.marks[0][0] < warmup_s) and self.proc.poll() is None:
            if time.perf_counter() - t0 > 120:
                break
            time.sleep(0.2)
        if self.proc.poll() is not None or not self.marks:
            raise SystemExit(f"the competing process ({kind}) did not start training")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                step, t = line.split()
                self.marks.append((float(t), int(step)))
            except ValueError:
                continue

    def rate(self, t0: float, t1: float) -> float:
        inside = [m for m in list(self.marks) if t0 <= m[0] <= t1]
        if len(inside) < 2:
            return float("nan")
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


# ----------------------------------------------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def cpu_kind() -> dict:
    import torch

    cpu = torch.cpu
    amx = bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    bf16 = bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    return {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "torch_default_threads": torch.get_num_threads(),
            "amx": amx, "avx512_bf16": bf16, "torch": torch.__version__}


def run_cell(w: Worker, args, competitor: Competitor | None) -> dict:
    t0 = time.perf_counter()
    r = w.cell(args.steps, args.seconds)
    t1 = time.perf_counter()
    r["wall_s"] = t1 - t0
    r["competitor_steps_per_s"] = competitor.rate(t0, t1) if competitor else None
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="default,threads=1,threads=2",
                    help="comma-separated: default, threads=N; exploratory: passive, spin=N, governor, joined with +")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of all cells (the figure is the median)")
    ap.add_argument("--steps", type=int, default=120, help="optimizer steps per cell at most")
    ap.add_argument("--seconds", type=float, default=10.0, help="training seconds per cell at most")
    ap.add_argument("--conditions", default="alone,load", help="comma-separated: alone, load")
    ap.add_argument("--competitor", choices=("plain", "genlab"), default="plain")
    ap.add_argument("--warmup", type=float, default=4.0, help="seconds the competitor trains before the first cell")
    ap.add_argument("--out", type=Path, default=HERE.parent / "results" / "threads_under_load.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--hog", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.hog:
        return hog()
    if args.worker:
        return worker(args.worker, args.data_dir)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        parse_variant(v)
    kind = cpu_kind()
    print(f"{kind['cpu']}: {kind['logical_cpus']} logical CPUs, AMX {kind['amx']}, AVX512-BF16 {kind['avx512_bf16']}; "
          f"torch {kind['torch']} default {kind['torch_default_threads']} threads", flush=True)
    base_env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    conditions = tuple(c for c in ("alone", "load") if c in args.conditions.split(","))
    cells: list[dict] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data_dir = prepare(tmp)
        workers = {v: Worker(v, base_env, data_dir, tmp / f"worker-{i}.log") for i, v in enumerate(variants)}
        try:
            for w in workers.values():
                w.ready()
            for rnd in range(args.rounds):
                order = variants[rnd % len(variants):] + variants[: rnd % len(variants)]
                for cond in conditions if rnd % 2 == 0 else conditions[::-1]:
                    competitor = Competitor(args.competitor, base_env, tmp, args.warmup) if cond == "load" else None
                    try:
                        for v in order:
                            r = run_cell(workers[v], args, competitor)
                            r.update(condition=cond, round=rnd)
                            cells.append(r)
                            comp = f", competitor {r['competitor_steps_per_s']:.1f} steps/s" if competitor else ""
                            gov = ", governor" if r["governor"] else ""
                            print(f"  round {rnd} {cond:<5} {v:<16} {r['tokens_per_s']:>8,.0f} tokens/s "
                                  f"({r['timed_steps']} steps, threads {r['threads_mean']:.2f}{gov}, others "
                                  f"{r['others_cores']:.2f} cores{comp}; {r['wall_s']:.0f} s)", flush=True)
                    finally:
                        if competitor:
                            competitor.stop()
        finally:
            for w in workers.values():
                w.stop()
    summary: dict[str, dict] = {}
    for cond in conditions:
        rows = {}
        for v in variants:
            mine = [c for c in cells if c["condition"] == cond and c["variant"] == v]
            comp = [c["competitor_steps_per_s"] for c in mine if c["competitor_steps_per_s"] is not None]
            rows[v] = {"tokens_per_s": statistics.median(c["tokens_per_s"] for c in mine),
                       "runs": [round(c["tokens_per_s"]) for c in mine],
                       "threads_mean": statistics.fmean(c["threads_mean"] for c in mine),
                       "others_cores": statistics.median(c["others_cores"] for c in mine),
                       "competitor_steps_per_s": statistics.median(comp) if comp else None}
        best = max(rows, key=lambda v: rows[v]["tokens_per_s"])
        for v, r in rows.items():
            r["vs_best"] = r["tokens_per_s"] / rows[best]["tokens_per_s"]
        per_round = []  # default against the best variant of the same round (cells minutes apart, not tens of minutes)
        for rnd in range(args.rounds):
            mine = {c["variant"]: c["tokens_per_s"] for c in cells if c["condition"] == cond and c["round"] == rnd}
            if "default" in mine:
                per_round.append(round(mine["default"] / max(mine.values()), 3))
        summary[cond] = {"rows": rows, "best": best, "default_vs_best_per_round": per_round,
                         "default_vs_best": rows["default"]["vs_best"] if "default" in rows else None}
    header = (f"{'condition':<10}{'variant':<18}{'tokens/s':>10}{'vs best':>9}{'threads':>9}{'others':>8}"
              f"{'comp st/s':>11}  runs")
    print("\n" + header + "\n" + "-" * (len(header) + 14))
    for cond, s in summary.items():
        for v, r in s["rows"].items():
            comp = f"{r['competitor_steps_per_s']:>11.1f}" if r["competitor_steps_per_s"] is not None else f"{'':>11}"
            print(f"{cond:<10}{v:<18}{r['tokens_per_s']:>10,.0f}{r['vs_best']:>9.2f}{r['threads_mean']:>9.2f}"
                  f"{r['others_cores']:>8.2f}{comp}  {r['runs']}")
    verdict = {c: s["default_vs_best"] for c, s in summary.items()}
    for c, s in summary.items():
        if s["default_vs_best_per_round"]:
            print(f"{c}: default/best of the same round: {s['default_vs_best_per_round']}")
    ok = all(v is not None and v >= BAR for v in verdict.values())
    print("\ndefault/best: " + ", ".join(f"{c} {v:.2f}" for c, v in verdict.items() if v is not None)
          + f" (bar {BAR}): {'PASS' if ok else 'FAIL'}")
    notes = []
    alone_others = statistics.median(c["others_cores"] for c in cells if c["condition"] == "alone") \
        if "alone" in summary else 0.0
    if alone_others > 0.3:
        notes.append(f"the machine was not idle: other processes kept {alone_others:.1f} cores busy (median) during the "
                     "'alone' cells, so 'alone' here means beside that background load")
    for n in notes:
        print("note:", n)
    print(f"CPU: {kind['cpu']}, AMX {kind['amx']}, AVX512-BF16 {kind['avx512_bf16']}; "
          f"competitor: {args.competitor}; {time.perf_counter() - t_start:.0f} s")
    result = {"benchmark": "threads_under_load", "command": " ".join(["python", *sys.argv]),
              "args": {k: str(v) for k, v in vars(args).items() if k not in ("worker", "data_dir", "hog", "out")},
              **kind, "shape": BABY, "bar_default_vs_best": BAR, "pass": ok, "notes": notes, "summary": summary, "cells": cells,
              "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
