"""Verbs about runs: train, eval, export, runs, data list, demo."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

import genlab
from genlab.cli.common import RunArg, err, given, out, with_options
from genlab.errors import GenlabError
from genlab.numbers import duration


def train(
    family: Annotated[str, typer.Argument(help="model family, e.g. gpt")],
    data: Annotated[str, typer.Option("--data", help="dataset name (genlab data list) or a path")],
    out_: Annotated[Optional[Path], typer.Option("--out", help="run folder (default runs/FAMILY-DATA-TIME)")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML file with [model], [data], [train]")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. train.max_steps=500")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out from its checkpoint")] = False,
) -> None:
    """Train a model and write a run folder."""
    if resume and out_ is None:
        raise GenlabError("--resume needs --out RUN, the run to continue")
    run = genlab.train(family, data, out=out_, config_file=config, overrides=set_ or (), resume=resume, progress=True)
    s = run.summary()
    err.print(f"[bold green]done[/]: {s['steps']} steps, best validation loss {s['best_val_loss']:.4f}, "
              f"{s['wall_s']:.0f} s; run in [bold]{run.path}[/]")
    err.print(f"next: {next_commands(run)}", markup=False, highlight=False)


def next_commands(run: Any) -> str:
    """What to try next with a run: sampling (with an example of what its modality needs) and evaluating."""
    steps = [f"genlab eval {run.path}"]
    if run.model.generates:
        examples = " ".join(f"--{o.name.replace('_', '-')} {o.example!r}" for o in run.modality.sample_options
                            if o.example)
        steps.insert(0, f"genlab sample {run.path} {examples}".rstrip())
    return "   ".join(steps)


@with_options("evaluate")
def eval_(
    run: RunArg,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    **options: Any,
) -> None:
    """Evaluate a run on its held-out split. Which options apply depends on the run's kind of data."""
    r = genlab.load(run)
    report = r.evaluate(**given(options, r.modality, "evaluate"))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    out.print(report_table(report))


def report_table(report: dict) -> Table:
    """Metrics as rows; a nested 'floor' and 'ceiling' become columns beside the model's own figures."""
    refs = [k for k in ("floor", "ceiling") if isinstance(report.get(k), dict)]
    table = Table(title=f"{report['family']} on {report['dataset']} (held-out split)")
    table.add_column("metric")
    table.add_column("model", justify="right")
    for ref in refs:
        table.add_column(f"{ref} ({'random weights' if ref == 'floor' else 'real data'})", justify="right")

    def fmt(v) -> str:
        return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))

    for k, v in report.items():
        if k in ("run", "family", "dataset", *refs):
            continue
        table.add_row(k, fmt(v), *(fmt(report[ref].get(k)) for ref in refs))
    return table


def export(
    run: RunArg,
    dest: Annotated[Path, typer.Argument(help="new folder for the Hugging Face files")],
) -> None:
    """Write a folder that plain transformers loads (from_pretrained)."""
    r = genlab.load(run)
    path = r.export(dest)
    auto = getattr(r.model, "hf_auto_class", "AutoModel")
    err.print(f"exported to [bold]{path}[/]: transformers.{auto}.from_pretrained('{path}')")


def runs(folder: Annotated[Path, typer.Argument(help="folder holding runs")] = Path("runs")) -> None:
    """List runs: family, dataset, steps, best validation loss, wall time."""
    rows = genlab.list_runs(folder)
    table = Table(title=f"runs in {folder}")
    for col in ("run", "family", "dataset", "steps", "best val loss", "wall time", "resumable"):
        table.add_column(col, justify="right" if col in ("steps", "best val loss", "wall time") else "left")
    for r in rows:
        best = "-" if math.isnan(r["best_val_loss"]) else f"{r['best_val_loss']:.4f}"
        table.add_row(r["run"], r["family"], r["dataset"], f"{r['steps']}/{r['max_steps']}", best,
                      duration(r["wall_s"]), "yes" if r["resumable"] else "no")
    out.print(table if rows else f"no runs in {folder}")


def data_list() -> None:
    """Datasets by name: modality, size, installed or not, licence."""
    table = Table(title="datasets (any path to your own files works too)")
    for col in ("name", "modality", "size", "installed", "licence", "description"):
        table.add_column(col)
    for modality, d in genlab.list_datasets():
        installed = "yes" if d.installed() else f"no: {d.install}"
        table.add_row(d.name, modality, d.size, installed, d.licence, d.description)
    out.print(table)


def demo(
    out_: Annotated[Path, typer.Option("--out", help="run folder")] = Path("runs/demo"),
    minutes: Annotated[float, typer.Option(help="training budget in minutes")] = 4.0,
) -> None:
    """Train a small GPT on Shakespeare for a few minutes, then evaluate and sample it."""
    from genlab.demo import run_demo

    run_demo(out_, minutes=minutes, console=err)
