"""Verbs that generate: sample (every generating family); vary, interpolate and continue (families that can)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

import genlab
from genlab.cli.common import (
    RunArg,
    announce_identity,
    check_new,
    fresh,
    given,
    print_json,
    rule,
    say_watermark,
    saved,
    with_options,
    write_text,
)
from genlab.errors import GenlabError
from genlab.runfiles import SAMPLES_DIR

Watermark = Annotated[Optional[bool], typer.Option("--watermark/--no-watermark",
                                                   help="mark the outputs (default: the run's release.watermark, on)")]
Sign = Annotated[Optional[bool], typer.Option("--sign/--no-sign", help="sign the files with C2PA (default: on)")]
Seed = Annotated[Optional[int], typer.Option(help="the same seed gives the same outputs")]


@with_options("sample")
def sample(
    run: RunArg,
    n: Annotated[int, typer.Option("--n", help="number of outputs (per source for sequence-to-sequence runs)")] = 1,
    seed: Seed = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="new folder for the files (text: default is the terminal; tables: a new .csv or .parquet file too)")] = None,
    watermark: Watermark = None,
    sign: Sign = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the outputs (or the files written) as JSON")] = False,
    **options: Any,
) -> None:
    """Generate from a trained run: text to the terminal or .txt files, images as PNG files and a grid, tables as CSV,
    music as MIDI with a WAV and a piano roll (--bars; --prompt-midi to continue your piece).

    Outputs are watermarked and every file written is signed (C2PA), unless turned off.

    Which options apply depends on the run's kind of data: see the groups below.
    """
    check_new(out_dir)
    r = genlab.load(run)
    chosen = given(options, r.modality, "sample")
    if out_dir is None and r.modality.prints:
        if n == 1 and r.modality.streams and not as_json:  # one text: shown as it is generated, verbatim
            sys.stdout.write(r.modality.stream_prefix(chosen))
            sys.stdout.flush()
            r.sample(1, seed=seed, watermark=watermark, on_text=_stream, **chosen)
            sys.stdout.write("\n")
            return
        sections = r.sample(n, seed=seed, watermark=watermark, **chosen).sections()
        if as_json:
            print_json([{"title": title, "text": text} for title, text in sections])
            return
        for title, text in sections:
            rule(title)
            write_text(text)
        return
    outputs = r.sample(n, seed=seed, watermark=watermark, **chosen)
    announce_identity(r, sign)
    folder = saved(outputs, out_dir or fresh(r.path / SAMPLES_DIR / "sample"), sign)
    say_watermark(r, watermark)
    if as_json:
        print_json({"file": str(folder)} if folder.is_file() else
                   {"folder": str(folder), "files": sorted(p.name for p in folder.iterdir())})


def _stream(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()


def vary(
    run: Annotated[Path, typer.Argument(help="run folder (vae or diffusion)")],
    image: Annotated[Path, typer.Argument(help="your image (PNG or JPEG)")],
    n: Annotated[int, typer.Option("--n", help="number of variations")] = 8,
    strength: Annotated[float, typer.Option(help="0 = the image itself, 1 = free sample")] = 0.5,
    seed: Seed = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="new folder for the PNGs")] = None,
    watermark: Watermark = None,
    sign: Sign = None,
) -> None:
    """Make variations of your own image."""
    from genlab.modalities.image import check_strength
    from genlab.sample.images import load_image

    check_strength(strength)  # before any work, as the family would
    check_new(out_dir)
    r = genlab.load(run)
    outputs = r.vary(load_image(image), n, strength=strength, seed=seed, watermark=watermark)
    announce_identity(r, sign)
    saved(outputs, out_dir or fresh(r.path / SAMPLES_DIR / "vary"), sign, prefix="variation")
    say_watermark(r, watermark)


def interpolate(
    run: Annotated[Path, typer.Argument(help="run folder (gan, vae or diffusion)")],
    steps: Annotated[int, typer.Option(help="frames from one end to the other")] = 10,
    seed: Annotated[Optional[int], typer.Option(help="picks the two random end points")] = None,
    start: Annotated[Optional[Path], typer.Option("--from", help="an image to start from")] = None,
    end: Annotated[Optional[Path], typer.Option("--to", help="an image to end at")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="new folder for strip.png and the GIF")] = None,
    watermark: Watermark = None,
    sign: Sign = None,
) -> None:
    """Walk the latent space between two samples or two of your images: a strip and an animated GIF."""
    from genlab.modalities.image import check_count
    from genlab.sample.images import load_image

    if (start is None) != (end is None):
        raise GenlabError("give both --from and --to, or neither")
    check_count("steps", steps, 2)  # before any work, as the family would
    check_new(out_dir)
    r = genlab.load(run)
    ends = None if start is None else [load_image(start), load_image(end)]
    outputs = r.interpolate(steps, seed=seed, images=ends, watermark=watermark)
    announce_identity(r, sign)
    saved(outputs, out_dir or fresh(r.path / SAMPLES_DIR / "interpolate"), sign)
    say_watermark(r, watermark)


def continue_(
    run: Annotated[Path, typer.Argument(help="run folder (vdm)")],
    clip: Annotated[Optional[Path], typer.Argument(help="your clip: a GIF, an MP4 or a folder of PNG/JPEG frames")]
    = None,
    frames: Annotated[int, typer.Option(help="frames to predict after the given ones")] = 10,
    given: Annotated[Optional[int], typer.Option(help="frames of the clip to continue from (default: the run's "
                                                      "clip length minus --frames, at least 1)")] = None,
    held_out: Annotated[Optional[int], typer.Option(help="continue clip I of the run's held-out split instead of "
                                                         "your own; its true future is shown under the prediction")]
    = None,
    n: Annotated[int, typer.Option("--n", help="futures to make from the same frames")] = 1,
    steps: Annotated[Optional[int], typer.Option(help="denoising steps (default: the run's model.sample_steps); 0: "
                                                      "the motion predictor's frames alone, deterministic")]
    = None,
    seed: Seed = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="new folder for the GIF and contact sheet")] = None,
    watermark: Watermark = None,
    sign: Sign = None,
) -> None:
    """Predict the next frames of your clip: its first frames unchanged, then the new ones, as a GIF (and MP4) and
    a contact sheet showing given and predicted frames side by side."""
    from genlab.data.clips import read_clip
    from genlab.modalities.image import check_count

    check_count("frames", frames)  # before any work, as the family would
    check_count("n", n)
    if given is not None:
        check_count("given", given)
    if (clip is None) == (held_out is None):
        raise GenlabError("give your clip (a GIF, an MP4 or a folder of frames) or --held-out I, not both or neither")
    check_new(out_dir)
    frames_in = read_clip(clip) if clip is not None else None
    r = genlab.load(run)
    outputs = r.continue_clip(frames_in, frames, held_out=held_out, given=given, n=n, steps=steps, seed=seed,
                              watermark=watermark)
    announce_identity(r, sign)
    saved(outputs, out_dir or fresh(r.path / SAMPLES_DIR / "continue"), sign, prefix="continued")
    say_watermark(r, watermark)
