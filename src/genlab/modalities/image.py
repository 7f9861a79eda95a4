"""The image modality: pictures in, pictures out.

Data: a built-in set (``mnist``, ``digits``, ``faces``, ``fashion-mnist``) or the user's folder of PNG/JPEG files
(sub-folders as class labels), resized, split and cached as uint8 arrays (``data/images.py``). Outputs: uint8
arrays (N, C, H, W) (``Images``), written as one PNG each and a grid; an interpolation as a strip and an animated
GIF (``Interpolation``). Watermark: genlab's invisible mark carrying the run id, added after the images are made.
Audit: nearest training images of samples (possible copies) and the class balance of samples
(``image_audit.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genlab.data.images import IMAGE_SUFFIXES, ImageData, ImageDataConfig, folder_source, prepare_images
from genlab.errors import BadArgument
from genlab.modalities.base import Modality, Option, PixelOutputs
from genlab.responsible.marks import ImageMarks


class Images(PixelOutputs):
    """uint8 images (N, C, H, W), C = 1 (grey) or 3 (RGB): a NumPy array that knows how to become files."""

    modality = "image"

    def files(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        """``{prefix}-0000.png`` ... one per image, and all of them as ``grid.png``."""
        from genlab.sample.images import auto_scale, grid, png_bytes

        pixels = np.asarray(self)
        for i, image in enumerate(pixels):
            yield f"{prefix}-{i:04d}.png", png_bytes(image)
        yield "grid.png", png_bytes(grid(pixels, scale=auto_scale(pixels)))


class Interpolation(Images):
    """Frames (steps, C, H, W) of a walk between two points: ``strip.png`` and ``interpolation.gif``."""

    def files(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        from genlab.sample.images import auto_scale, gif_bytes, grid, png_bytes

        frames = np.asarray(self)
        yield "strip.png", png_bytes(grid(frames, nrow=len(frames), scale=auto_scale(frames)))
        yield "interpolation.gif", gif_bytes(frames)


def check_label(label: Any, num_classes: int) -> None:
    """Refuse a ``label`` that a model with ``num_classes`` classes (0: unconditional) cannot make."""
    if label is None:
        return
    if not num_classes:
        raise BadArgument("label", "needs a class-conditional model; this one is not one (trained with "
                                   "model.conditional=false)")
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < num_classes:
        raise BadArgument("label", f"{label!r} is out of range: it must be a class from 0 to {num_classes - 1}")


def class_labels(n: int, label: Any, num_classes: int) -> Any:
    """(n,) int64 class labels: ``label`` for every image, or classes 0..K-1 in turn when it is None (balanced
    classes); None for an unconditional model."""
    import torch

    check_label(label, num_classes)
    if not num_classes:
        return None
    if label is None:
        return torch.arange(n) % num_classes
    return torch.full((n,), int(label), dtype=torch.long)


def check_count(name: str, value: int, least: int = 1) -> None:
    """Refuse a count below ``least`` (``n`` images, interpolation ``steps``)."""
    if value < least:
        raise BadArgument(name, f"must be at least {least}, got {value}")


def check_strength(strength: float) -> None:
    if not 0 <= strength <= 1:
        raise BadArgument("strength", f"must be in [0, 1], got {strength}")


class ImageModality(Modality):
    name = "image"
    endpoint = "images"  # POST /v1/images/generations
    data_interface = "images"
    DataConfig = ImageDataConfig
    Marks = ImageMarks
    unit, unit_name = "img", "image"
    audit_samples = 500  # nearest-neighbour statistics need a few hundred
    pipeline_tag = "unconditional-image-generation"
    path_hint = "a folder of PNG or JPEG images (sub-folders are class labels)"
    sample_options = (
        Option("label", int, "the class to generate (class-conditional models)"),
        Option("sampler", str, "diffusion: ddim (deterministic, few steps) or ddpm (every step)"),
        Option("steps", int, "diffusion: denoising steps"),
        Option("guidance", float, "diffusion: classifier-free guidance scale (conditional models)"),
    )
    eval_options = (Option("n", int, "samples to score", default=1000),)
    intended_use = (
        ("A small image generator trained from scratch on the user's own images, at their resolution: for "
         "learning how generative models work, for data-set exploration and as a baseline."),
        ("It reproduces the look of its training set, including its biases (what and who is shown, and how), and "
         "can produce near-copies of training images; see the audit's nearest-neighbour figures before sharing "
         "outputs or weights trained on private images or images of people."),
        "Do not use it to make images of real people, or images meant to deceive.",
        ("Generated images carry an invisible watermark holding this run's id (`genlab verify FILE` reports it); "
         "images under 24x24 pixels carry none. Its key is public, so anyone can detect, remove or forge it: it "
         "labels honest provenance, it does not secure it, and the absence of the mark proves nothing. What it "
         "survives at this run's image size is said below, as measured."),
    )

    def output_bytes(self, model: Any, n: int, options: dict[str, Any]) -> int:
        return n * math.prod(model.shape_) * 4 * 4  # the noise, the result and two working copies in float32

    def prepare(self, source: Any, config: ImageDataConfig, folder: Path) -> ImageData:
        return prepare_images(source, config, folder)

    def load(self, config: ImageDataConfig, folder: Path) -> ImageData:
        return ImageData(folder)

    def from_path(self, path: Path) -> Any:
        return folder_source(path)

    def claims(self, path: Path) -> bool:
        return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*"))

    def example(self, folder: Path) -> str:
        return "digits"  # 1,797 digits of 8x8 pixels (scikit-learn)

    def card_notes(self, meta: dict[str, Any]) -> list[str]:
        """What the watermark was measured to survive at this run's image size."""
        from genlab.responsible.image_watermark import robustness_note

        shape = meta.get("shape") or []  # (C, H, W)
        return [robustness_note(min(shape[1:]))] if len(shape) == 3 else []

    def audit(self, run: Any, *, n: int, seed: int, out: Path | None) -> dict:
        from genlab.modalities.image_audit import audit_image

        return audit_image(run, n=n, seed=seed, out=out)


IMAGE = ImageModality()
