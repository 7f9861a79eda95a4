"""The ``genlab`` command line: one subcommand per verb, each a thin layer over the Python API.

Bad input (``GenlabError``) prints one line and exits with code 2, without a traceback.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

import genlab
from genlab.errors import GenlabError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, generate, evaluate and release generative models on your own machine.",
)
data_app = typer.Typer(no_args_is_help=True, help="Datasets genlab knows.")
app.add_typer(data_app, name="data")
out = Console()
err = Console(stderr=True)


@app.command()
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
    err.print(f"next: genlab sample {run.path} --prompt '...'   genlab eval {run.path}")


@app.command()
def sample(
    run: Annotated[Path, typer.Argument(help="run folder")],
    n: Annotated[int, typer.Option("--n", help="number of samples; text with 1 streams as it comes")] = 1,
    seed: Annotated[Optional[int], typer.Option(help="the same seed gives the same output")] = None,
    prompt: Annotated[str, typer.Option(help="text: what to continue (empty: start a new document)")] = "",
    max_new_tokens: Annotated[int, typer.Option(help="text: tokens to generate per sample")] = 200,
    temperature: Annotated[Optional[float], typer.Option(help="text: 0 = greedy; higher = more random (default 0.8; t5: 0)")] = None,
    top_k: Annotated[Optional[int], typer.Option(help="text: sample among the k most likely tokens")] = None,
    top_p: Annotated[Optional[float], typer.Option(help="text: sample within the smallest set of this mass")] = None,
    label: Annotated[Optional[int], typer.Option(help="images: the class to generate (conditional models)")] = None,
    sampler: Annotated[Optional[str], typer.Option(help="diffusion: ddim or ddpm")] = None,
    steps: Annotated[Optional[int], typer.Option(help="diffusion: denoising steps")] = None,
    source: Annotated[Optional[list[str]], typer.Option(help="t5: the input to transform (repeat it; - = stdin)")] = None,
    beams: Annotated[int, typer.Option(help="t5: beam search width (1 = greedy or sampling)")] = 1,
    no_repeat_ngram: Annotated[int, typer.Option(help="t5: never repeat an n-gram of this many tokens (0 = off)")] = 0,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="new folder for the files (text: default is the terminal)")] = None,
    watermark: Annotated[Optional[bool], typer.Option("--watermark/--no-watermark", help="mark the outputs (default: the run's [release] setting, on)")] = None,
    sign: Annotated[Optional[bool], typer.Option("--sign/--no-sign", help="sign the files with C2PA (default: on)")] = None,
) -> None:
    """Generate from a trained run: text to the terminal or .txt files, images as PNG files and a grid.

    Outputs are watermarked and every file written is signed (C2PA), unless turned off.
    """
    _check_new(out_dir)
    r = genlab.load(run)
    if not r.model.generates:
        r.model.sample(n)  # raises the family's own one-line error (e.g. bert: use `genlab fill`)
    if r.model.modality == "image":
        options = {k: v for k, v in (("sampler", sampler), ("steps", steps)) if v is not None}
        images = r.sample(n, label=label, seed=seed, watermark=watermark, **options)
        write = _writer(r, sign, watermark=watermark, seed=seed, label=label, **options)
        folder = _write_images(out_dir or _fresh(r.path / "samples" / "sample"), images, "sample", write)
        err.print(f"{len(images)} images and grid.png in [bold]{folder}[/]")
        _say_watermark(r, watermark)
        return
    if r.model.modality == "pairs":
        _sample_pairs(r, n, source, beams=beams, no_repeat_ngram=no_repeat_ngram, max_new_tokens=max_new_tokens,
                      temperature=temperature or 0.0,
                      top_k=top_k, top_p=top_p, seed=seed, watermark=watermark, sign=sign, out_dir=out_dir)
        return
    if source:
        raise GenlabError(f"--source is for sequence-to-sequence runs (t5); {run} is a {r.config.family} run: use --prompt")
    temperature = 0.8 if temperature is None else temperature
    kwargs = dict(prompt=prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                  seed=seed, watermark=watermark)
    if out_dir is not None:
        texts = r.sample(n, **kwargs)
        write = _writer(r, sign, watermark=watermark, prompt=prompt, seed=seed, temperature=temperature,
                        top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens)

        def write_texts(tmp: Path) -> None:
            for i, text in enumerate(texts):
                write(tmp / f"sample-{i:04d}.txt", (prompt + text).encode("utf-8"))

        _new_folder(out_dir, write_texts)
        err.print(f"{len(texts)} texts in [bold]{out_dir}[/]")
        return
    if n == 1:
        sys.stdout.write(prompt)
        sys.stdout.flush()

        def stream(piece: str) -> None:
            sys.stdout.write(piece)
            sys.stdout.flush()

        r.sample(1, on_text=stream, **kwargs)
        sys.stdout.write("\n")
        return
    for i, text in enumerate(r.sample(n, **kwargs)):
        out.rule(f"sample {i + 1}", style="dim")
        out.print(prompt + text, markup=False, highlight=False)


def _sample_pairs(r, n: int, sources: Optional[list[str]], *, out_dir: Optional[Path], sign: Optional[bool],
                  **options) -> None:
    """t5: ``n`` outputs for each --source, printed, or written as .txt files (signed) with --out."""
    if not sources:
        raise GenlabError(f"{r.path} is a sequence-to-sequence run: give its input with --source TEXT (or - for stdin)")
    sources = [sys.stdin.read() if s == "-" else s for s in sources]
    outputs = r.sample(n, source=sources, **options)  # n per source, in source order
    if out_dir is None:
        for i, src in enumerate(sources):
            out.rule(f"source {i + 1}", style="dim")
            for text in outputs[i * n : (i + 1) * n]:
                out.print(text, markup=False, highlight=False)
        return
    watermark = options.pop("watermark")
    write = _writer(r, sign, watermark=watermark, prompt="\n".join(sources), **options)

    def write_texts(tmp: Path) -> None:
        for i, text in enumerate(outputs):
            write(tmp / f"sample-{i:04d}.txt", text.encode("utf-8"))

    _new_folder(out_dir, write_texts)
    err.print(f"{len(outputs)} outputs in [bold]{out_dir}[/]")


@app.command()
def vary(
    run: Annotated[Path, typer.Argument(help="run folder (vae or diffusion)")],
    image: Annotated[Path, typer.Argument(help="your image (PNG or JPEG)")],
    n: Annotated[int, typer.Option("--n", help="number of variations")] = 8,
    strength: Annotated[float, typer.Option(help="0 = the image itself, 1 = free sample")] = 0.5,
    seed: Annotated[Optional[int], typer.Option(help="the same seed gives the same variations")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="new folder for the PNGs")] = None,
) -> None:
    """Make variations of your own image."""
    from genlab.sample.images import load_image

    if not 0 <= strength <= 1:
        raise GenlabError(f"--strength must be in [0, 1], got {strength}")
    _check_new(out_dir)
    r = genlab.load(run)
    images = r.vary(load_image(image), n, strength=strength, seed=seed)
    write = _writer(r, None, seed=seed, strength=strength, action="vary")
    folder = _write_images(out_dir or _fresh(r.path / "samples" / "vary"), images, "variation", write)
    err.print(f"{len(images)} variations and grid.png in [bold]{folder}[/]")
    _say_watermark(r, None)


@app.command()
def interpolate(
    run: Annotated[Path, typer.Argument(help="run folder (gan, vae or diffusion)")],
    steps: Annotated[int, typer.Option(help="frames from one end to the other")] = 10,
    seed: Annotated[Optional[int], typer.Option(help="picks the two random end points")] = None,
    start: Annotated[Optional[Path], typer.Option("--from", help="an image to start from")] = None,
    end: Annotated[Optional[Path], typer.Option("--to", help="an image to end at")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="new folder for strip.png and the GIF")] = None,
) -> None:
    """Walk the latent space between two samples or two of your images: a strip and an animated GIF."""
    from genlab.sample.images import load_image, save_gif, save_grid

    if (start is None) != (end is None):
        raise GenlabError("give both --from and --to, or neither")
    if steps < 2:
        raise GenlabError(f"--steps must be at least 2, got {steps}")
    _check_new(out_dir)
    r = genlab.load(run)
    ends = None if start is None else [load_image(start), load_image(end)]
    frames = r.interpolate(steps, seed=seed, images=ends)
    signed = _writer(r, None, seed=seed, action="interpolate")

    def write(tmp: Path) -> None:
        save_grid(frames, tmp / "strip.png", nrow=len(frames), write=signed)
        save_gif(frames, tmp / "interpolation.gif", write=signed)

    folder = out_dir or _fresh(r.path / "samples" / "interpolate")
    _new_folder(folder, write)
    err.print(f"strip.png and interpolation.gif in [bold]{folder}[/]")
    _say_watermark(r, None)


def _fresh(prefix: Path) -> Path:
    import time

    return prefix.with_name(f"{prefix.name}-{time.strftime('%Y%m%d-%H%M%S')}")


def _new_folder(folder: Path, write) -> None:
    from genlab.files import atomic_folder

    if folder.exists():
        raise GenlabError(f"{folder} already exists; choose a new --out folder")
    atomic_folder(folder, write)


def _write_images(folder: Path, images, prefix: str, write) -> Path:
    from genlab.sample.images import save_samples

    _new_folder(folder, lambda tmp: save_samples(images, tmp, prefix=prefix, write=write))
    return folder


def _check_new(folder: Optional[Path]) -> None:
    """Refuse an existing --out before any work is done."""
    if folder is not None and folder.exists():
        raise GenlabError(f"{folder} already exists; choose a new --out folder")


def _say_watermark(r, watermark: Optional[bool]) -> None:
    note = getattr(r.release.marks, "note", "")
    if note and (r.config.release.watermark if watermark is None else watermark):
        err.print(f"note: {note}")


def _writer(r, sign: Optional[bool], *, watermark: Optional[bool] = None, prompt: Optional[str] = None, **params):
    """The release layer's file writer for this generation: signed unless --no-sign or [release] sign = false."""
    from genlab.responsible.keys import ensure_identity

    on = r.config.release.sign if sign is None else sign
    if on:
        identity, created = ensure_identity()
        if created:
            err.print(f"created a signing identity in {identity.folder} (see `genlab keys init`)")
    return r.release.writer(r.release.generation(watermark=watermark, prompt=prompt, **params), sign=on)


@app.command("eval")
def eval_(
    run: Annotated[Path, typer.Argument(help="run folder")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    max_tokens: Annotated[int, typer.Option(help="text: evaluate on at most this many tokens (0 = all)")] = 0,
    n: Annotated[int, typer.Option("--n", help="images: samples to score; t5: held-out pairs")] = 1000,
    beams: Annotated[int, typer.Option(help="t5: decode with beam search of this width (1 = greedy)")] = 1,
    no_repeat_ngram: Annotated[int, typer.Option(help="t5: never repeat an n-gram of this many tokens (0 = off)")] = 0,
) -> None:
    """Evaluate a run on its held-out split."""
    r = genlab.load(run)
    modality = r.model.modality
    if modality != "pairs" and (beams != 1 or no_repeat_ngram):
        raise GenlabError(f"--beams and --no-repeat-ngram are for sequence-to-sequence runs (t5); {run} is a "
                          f"{r.config.family} run")
    options = {"text": {"max_tokens": max_tokens}, "pairs": {"n": n, "beams": beams,
                                                             "no_repeat_ngram": no_repeat_ngram}}
    report = r.evaluate(**options.get(modality, {"n": n}))
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


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="run folder")],
    dest: Annotated[Path, typer.Argument(help="new folder for the Hugging Face files")],
) -> None:
    """Write a folder that plain transformers loads (from_pretrained)."""
    r = genlab.load(run)
    path = r.export(dest)
    auto = getattr(r.model, "hf_auto_class", "AutoModel")
    err.print(f"exported to [bold]{path}[/]: transformers.{auto}.from_pretrained('{path}')")


@app.command()
def runs(folder: Annotated[Path, typer.Argument(help="folder holding runs")] = Path("runs")) -> None:
    """List runs: family, dataset, steps, best validation loss, wall time."""
    rows = genlab.list_runs(folder)
    table = Table(title=f"runs in {folder}")
    for col in ("run", "family", "dataset", "steps", "best val loss", "wall time", "resumable"):
        table.add_column(col, justify="right" if col in ("steps", "best val loss", "wall time") else "left")
    for r in rows:
        best = "-" if math.isnan(r["best_val_loss"]) else f"{r['best_val_loss']:.4f}"
        table.add_row(r["run"], r["family"], r["dataset"], f"{r['steps']}/{r['max_steps']}", best,
                      _duration(r["wall_s"]), "yes" if r["resumable"] else "no")
    out.print(table if rows else f"no runs in {folder}")


@data_app.command("list")
def data_list() -> None:
    """Datasets by name: modality, size, installed or not, licence."""
    table = Table(title="datasets (any path to your own files works too)")
    for col in ("name", "modality", "size", "installed", "licence", "description"):
        table.add_column(col)
    for d in genlab.list_datasets():
        installed = "yes" if d.installed() else f"no: {d.install}"
        table.add_row(d.name, d.modality, d.size, installed, d.licence, d.description)
    out.print(table)


@app.command()
def demo(
    out_: Annotated[Path, typer.Option("--out", help="run folder")] = Path("runs/demo"),
    minutes: Annotated[float, typer.Option(help="training budget in minutes")] = 4.0,
) -> None:
    """Train a small GPT on Shakespeare for a few minutes, then evaluate and sample it."""
    from genlab.demo import run_demo

    run_demo(out_, minutes=minutes, console=err)


def _duration(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def main() -> None:
    import genlab.cli_release  # noqa: F401  (registers keys, verify, detect, audit, card on genlab.cli.app)
    import genlab.cli_text  # noqa: F401  (registers fill, embed, complete)
    from genlab.cli import app as commands  # the module's app, also when this file runs as __main__

    try:
        commands()
    except GenlabError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; a checkpoint was saved where training stopped: continue with --resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
