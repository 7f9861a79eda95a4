"""The video modality: clips in, clips out.

Data: ``moving-digits`` (Moving MNIST built from the ``mnist`` digits, made from seeds) or the user's folder of GIF
or MP4 clips (or sub-folders of frames), resized and cut to ``data.frames`` (``data/video.py``, ``data/clips.py``).
Outputs: uint8 clips (N, T, C, H, W) (``Clips``), each written as an animated GIF, an MP4 when an ffmpeg writer is
installed, and a PNG contact sheet; a continuation (``Continuation``) holds the given frames unchanged, then the
predicted ones, and its sheet shows them side by side (given, predicted, and the true future when it is known).
Watermark: the image mark carrying the run id, in every generated frame (given frames are the user's, untouched);
``genlab verify`` checks a GIF or MP4 frame by frame. Metrics: ``evaluate/video.py``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genlab.data.clips import clip_files, read_clip
from genlab.data.video import ClipFolder, VideoData, VideoDataConfig, prepare_video
from genlab.errors import GenlabError
from genlab.modalities.base import Modality, Option, PixelOutputs
from genlab.responsible.marks import ImageMarks, WatermarkVerdict


class Clips(PixelOutputs):
    """uint8 clips (N, T, C, H, W): a NumPy array that knows how to become files."""

    modality = "video"
    attached = (*PixelOutputs.attached, "given", "truth")
    given: int = 0  # leading frames of each clip that were given, not generated
    truth: np.ndarray | None = None  # (N, F, C, H, W) the true future of a continued clip, when known

    def __new__(cls, clips: Any, *, given: int = 0, truth: np.ndarray | None = None) -> Clips:
        out = super().__new__(cls, clips)
        out.given, out.truth = given, truth
        return out

    def files(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        """``{prefix}-0000.gif`` (+ ``.mp4``) and ``{prefix}-0000.png`` per clip, and ``sheet.png`` of them all."""
        from genlab.sample.video import gif_bytes, mp4_bytes, rows_png, sheet_png

        clips = np.asarray(self)
        for i, clip in enumerate(clips):
            yield f"{prefix}-{i:04d}.gif", gif_bytes(clip)
            mp4 = mp4_bytes(clip)
            if mp4 is not None:
                yield f"{prefix}-{i:04d}.mp4", mp4
            yield f"{prefix}-{i:04d}.png", rows_png(self._rows(i))
        yield "sheet.png", sheet_png(clips)

    def _rows(self, i: int) -> list[np.ndarray]:
        """The rows of clip ``i``'s contact sheet: its frames, ten to a row."""
        clip = np.asarray(self)[i]
        return [clip[j : j + 10] for j in range(0, len(clip), 10)]


class Continuation(Clips):
    """Continued clips: the ``given`` frames unchanged, then the predicted ones; sheets show them side by side."""

    def files(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        yield from super().files("continued" if prefix == "sample" else prefix)

    def _rows(self, i: int) -> list[np.ndarray]:
        clip = np.asarray(self)[i]
        rows = [clip[: self.given], clip[self.given :]]  # given, predicted
        if self.truth is not None:
            rows.append(self.truth[i][: len(clip) - self.given])  # the true future, under the predicted frames
        return rows


def fit_clip(clip: Any, shape: tuple[int, int, int], *, need: int) -> np.ndarray:
    """A user's uint8 clip (K, C, H, W) as the model's frames (C, H, W), with at least ``need`` frames; each frame
    is fitted as a user's image is (same resize and crop, a channel mismatch refused)."""
    from genlab.data.images import fit_pixels

    clip = np.asarray(clip)
    if clip.dtype != np.uint8 or clip.ndim != 4:
        raise GenlabError(f"the clip must be uint8 (frames, C, H, W), got {clip.dtype} of shape {clip.shape}")
    if len(clip) < need:
        raise GenlabError(f"the clip has {len(clip)} frame(s); continuing it from its first {need} needs at least "
                          f"{need} (give fewer with --given)")
    return np.stack([fit_pixels(frame, shape, what="clip") for frame in clip])


class VideoMarks(ImageMarks):
    """The image mark in every generated frame; a GIF or MP4 is checked frame by frame."""

    scheme = "genlab-image-v1"
    suffixes = frozenset({".gif", ".mp4"})

    def after(self, clips: Any) -> Any:
        """Every generated frame marked (a continuation's given frames are left as they were)."""
        from genlab.responsible.image_watermark import MIN_SIZE, embed

        if min(clips.shape[-2:]) < MIN_SIZE:
            return clips
        out = clips.copy()
        k = getattr(clips, "given", 0)
        made = np.asarray(clips)[:, k:]  # (N, F, C, H, W)
        out[:, k:] = embed(made.reshape(-1, *made.shape[2:]), self.payload).reshape(made.shape)
        return out

    @staticmethod
    def detect(clip: Any) -> Any:
        """The ``ImageMark`` of each frame of a clip (T, C, H, W)."""
        from genlab.responsible.image_watermark import detect

        return [detect(np.asarray(frame)) for frame in clip]

    @staticmethod
    def read(path: Path) -> Any:
        return read_clip(Path(path))

    @classmethod
    def verdict(cls, content: Any, generation: dict[str, Any]) -> WatermarkVerdict:
        marks = cls.detect(content)
        found = [m for m in marks if m.found]
        payloads = Counter(f"{m.payload:08x}" for m in found)
        payload = payloads.most_common(1)[0][0] if payloads else None
        detail = {"payload": payload, "frames": len(marks), "frames_marked": len(found),
                  "p_value": min((m.p_value for m in marks), default=1.0)}
        matches = None
        if payload is not None and generation.get("run_id"):
            matches = generation["run_id"][:8] == payload
        note = "" if found else (marks[0].reason if marks else "the clip holds no frames")
        return WatermarkVerdict(cls.scheme, True, bool(found), detail, matches, note)


class VideoModality(Modality):
    name = "video"
    endpoint = "videos"  # POST /v1/videos/generations
    data_interface = "clips"
    DataConfig = VideoDataConfig
    Marks = VideoMarks
    unit, unit_name = "clip", "clip"
    audit_samples = 64
    pipeline_tag = "image-to-video"  # the nearest Hugging Face task: clips from given frames (or none)
    path_hint = "a folder of GIF or MP4 clips (or sub-folders of PNG frames)"
    sample_options = (Option("steps", int, "denoising (DDIM) steps; default: the run's model.sample_steps"),)
    eval_options = (
        Option("n", int, "clips to generate and to continue", default=100),
        Option("given", int, "frames given before the continuation is scored (default: half the clip)"),
    )
    intended_use = (
        ("A small video generator trained from scratch on the user's own clips at their size and length: for "
         "learning how video diffusion works, for predicting the next frames of simple scenes, and as a baseline."),
        ("It reproduces the motion and look of its training clips, including their biases, and may produce "
         "near-copies of them. Predicted frames are guesses, however sharp: never use them as a record of what "
         "happened."),
        "Do not use it to make clips of real people, or clips meant to deceive.",
        ("Every generated frame carries the invisible image watermark holding this run's id (`genlab verify "
         "FILE.gif` checks each frame); frames under 24x24 pixels carry none, and the lossy MP4 files are measured "
         "separately. Its key is public: it labels honest provenance, it does not secure it."),
    )

    def output_bytes(self, model: Any, n: int, options: dict[str, Any]) -> int:
        """The noise, the result and two working copies in float32 of ``n`` clips (continued by ``frames``)."""
        frames = model.shape_[0] + options.get("frames", 0)
        return n * frames * math.prod(model.shape_[1:]) * 4 * 4

    def prepare(self, source: Any, config: VideoDataConfig, folder: Path) -> VideoData:
        return prepare_video(source, config, folder)

    def load(self, config: VideoDataConfig, folder: Path) -> VideoData:
        return VideoData(folder)

    def from_path(self, path: Path) -> Any:
        clip_files(path)  # fail early on a folder without clips
        return ClipFolder(path.resolve())

    def claims(self, path: Path) -> bool:
        return path.is_dir() and any(p.suffix.lower() in (".gif", ".mp4") for p in path.rglob("*"))

    def example(self, folder: Path) -> str:
        return "moving-digits"  # made from seeds: the contract test sets data.frames and data.size small

    def card_notes(self, meta: dict[str, Any]) -> list[str]:
        from genlab.responsible.image_watermark import robustness_note

        shape = meta.get("shape") or []  # (T, C, H, W)
        return [robustness_note(min(shape[2:]))] if len(shape) == 4 else []


VIDEO = VideoModality()
