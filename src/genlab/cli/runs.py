"""Verbs about runs: train, eval, export, runs, data list, demo."""

from __future__ import annotations

import math
import shlex
import signal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.text import Text

import genlab
from genlab.cli.common import RunArg, err, given, out, print_json, table, with_options
from genlab.errors import GenlabError
from genlab.numbers import duration

Json = Annotated[bool, typer.Option("--json", help="print JSON")]


def train(
    family: Annotated[str, typer.Argument(help="model family, e.g. gpt (genlab config show FAMILY lists its settings)")],
    data: Annotated[str, typer.Option("--data", help="dataset name (genlab data list) or a path to your files")],
    out_: Annotated[Optional[Path], typer.Option("--out", help="run folder (default runs/FAMILY-DATA-TIME)")] = None,
    config: Annotated[Optional[str], typer.Option("--config", help="a TOML file with [model], [data], [train], or the name of one genlab ships (genlab config list)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. train.max_steps=500 (repeat it)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out from its checkpoint")] = False,
    max_steps: Annotated[Optional[int], typer.Option(help="train.max_steps: optimizer steps to train for")] = None,
    seed: Annotated[Optional[int], typer.Option(help="train.seed: the same seed gives the same run")] = None,
    device: Annotated[Optional[str], typer.Option(help="train.device: auto, cpu or cuda")] = None,
    precision: Annotated[Optional[str], typer.Option(help="train.precision: auto, bf16 or fp32")] = None,
) -> None:
    """Train a model and write a run folder (Ctrl-C or SIGTERM: the step finishes, a checkpoint is saved to continue
    from with --resume)."""
    from genlab.api import default_out

    if resume and out_ is None:
        raise GenlabError("--resume needs --out RUN, the run to continue")
    out_ = out_ if out_ is not None else default_out(family, data)
    shorthands = {"max_steps": max_steps, "seed": seed, "device": device, "precision": precision}
    overrides = [*(set_ or ()), *(f"train.{k}={v}" for k, v in shorthands.items() if v is not None)]
    try:
        run = genlab.train(family, data, out=out_, config_file=config, overrides=overrides, resume=resume,
                           progress=True)
    except KeyboardInterrupt as e:
        _interrupted(family, data, out_, e)
        raise typer.Exit(getattr(e, "exit_code", 130)) from None
    s = run.summary()
    err.print(Text.assemble(("done", "bold green"), f": {s['steps']} steps, best validation loss "
                            f"{s['best_val_loss']:.4f}, {s['wall_s']:.0f} s; run in {run.path}"), highlight=False)
    err.print("next:", highlight=False)
    for command in next_commands(run):
        err.print(f"  {command}", markup=False, highlight=False, soft_wrap=True)


def _interrupted(family: str, data: str, out_: Path, e: KeyboardInterrupt) -> None:
    """Say what stopping left: the checkpoint's step and the command that continues from it."""
    from genlab.runfiles import CHECKPOINT_FILE, CONFIG_TOML
    from genlab.train.checkpoint import checkpoint_step

    how = "stopped by SIGTERM" if getattr(e, "signum", None) == signal.SIGTERM else "interrupted"
    command = shlex.join(["genlab", "train", family, "--data", data, "--out", str(out_), "--resume"])
    step = checkpoint_step(out_ / CHECKPOINT_FILE)
    if step is None:
        if (out_ / CONFIG_TOML).is_file():
            err.print(f"{how} before the first checkpoint; train it from step 0 with\n  {command}", highlight=False,
                      soft_wrap=True)
        else:
            err.print(f"{how} before training started: nothing was kept", highlight=False)
        return
    exact = "" if getattr(e, "step", None) == step else " (the last one written: stopped at once, mid-step)"
    err.print(f"{how}: a checkpoint at step {step} is saved{exact}; continue with\n  {command}", highlight=False,
              soft_wrap=True)


def next_commands(run: Any) -> list[str]:
    """Commands that work for this run: its family's own verbs, sampling (with what its modality needs), eval."""
    from genlab.usage import commands

    return commands(type(run.model), run.modality, str(run.path))


@with_options("evaluate")
def eval_(run: RunArg, as_json: Json = False, **options: Any) -> None:
    """Evaluate a run on its held-out split. Which options apply depends on the run's kind of data.

    Tables: fidelity, utility and privacy beside a copula; the plots in RUN/report.html. Music: pitch, rhythm and
    key measures of new pieces and continuations, beside random tokens and real music.
    """
    r = genlab.load(run)
    report = r.evaluate(**given(options, r.modality, "evaluate"))
    if as_json:
        print_json(report)
        return
    out.print(report_table(report))


def report_table(report: dict) -> Any:
    """The model's figures as rows, and each reference a report holds (floor, ceiling, a baseline) as a column."""
    from genlab.evaluate.report import report_rows

    titles, rows = report_rows(report)
    partial = f", partial: {report['partial']}" if report.get("partial") else ""
    t = table(f"{report['family']} on {report['dataset']} (held-out split{partial})", *titles, right=tuple(titles[1:]))
    for row in rows:
        t.add_row(row[0], *map(_cell, row[1:]))
    return t


def _cell(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))


def export(
    run: RunArg,
    dest: Annotated[Path, typer.Argument(help="new folder for the exported model")],
) -> None:
    """Write a folder that plain transformers or diffusers loads (with the model card and how to use it)."""
    r = genlab.load(run)
    path = r.export(dest)
    err.print(f"exported to {path}: {r.model.export_hint.format(path=path)}", markup=False, highlight=False)


def runs(folder: Annotated[Path, typer.Argument(help="folder holding runs")] = Path("runs"), as_json: Json = False
         ) -> None:
    """List runs: family, dataset, steps, best validation loss, wall time."""
    rows = genlab.list_runs(folder)
    if as_json:
        print_json(rows)
        return
    t = table(f"runs in {folder}", "run", "family", "dataset", "steps", "best val loss", "wall time", "resumable",
              right=("steps", "best val loss", "wall time"))
    for r in rows:
        best = "-" if math.isnan(r["best_val_loss"]) else f"{r['best_val_loss']:.4f}"
        t.add_row(r["run"], r["family"], r["dataset"], f"{r['steps']}/{'?' if r['max_steps'] is None else r['max_steps']}", best, duration(r["wall_s"]),
                  "yes" if r["resumable"] else "no")
    out.print(t if rows else f"no runs in {folder}")


def data_list(as_json: Json = False) -> None:
    """Datasets by name: modality, size, installed or not, licence."""
    rows = [{"name": d.name, "modality": modality, "size": d.size, "installed": d.installed(),
             "install": d.install, "licence": d.licence, "description": d.description}
            for modality, d in genlab.list_datasets()]
    if as_json:
        print_json(rows)
        return
    t = table("datasets (any path to your own files works too)", "name", "modality", "size", "installed", "licence",
              "description")
    for d in rows:
        t.add_row(d["name"], d["modality"], d["size"], "yes" if d["installed"] else f"no: {d['install']}",
                  d["licence"], d["description"])
    out.print(t)


def data_describe(
    data: Annotated[str, typer.Argument(help="a dataset name or your .csv / .parquet file")],
    out_: Annotated[Optional[Path], typer.Option("--out", help="new JSON file for the metadata (default: print it)")
                    ] = None,
    target: Annotated[Optional[str], typer.Option(help="the column to predict in utility evaluation")] = None,
) -> None:
    """Detect a table's column types and domains into a metadata file to read, edit and pass back.

    Train with it: genlab train ctgan --data FILE --set data.metadata=meta.json
    """
    import json

    from genlab.files import atomic_write_bytes

    meta = genlab.describe(data, target=target)
    text = json.dumps(meta, indent=1)
    if out_ is None:
        print(text)
        return
    if out_.exists():
        raise GenlabError(f"{out_} already exists; choose a new --out")
    atomic_write_bytes(out_, (text + "\n").encode("utf-8"))
    err.print(f"wrote {out_}; edit it, then train with --set data.metadata={out_}", highlight=False)


def demo(
    out_: Annotated[Path, typer.Option("--out", help="run folder")] = Path("runs/demo"),
    minutes: Annotated[float, typer.Option(help="training budget in minutes")] = 4.0,
) -> None:
    """Train a small GPT on Shakespeare for a few minutes, then evaluate and sample it."""
    from genlab.demo import run_demo

    run_demo(out_, minutes=minutes, console=err)
