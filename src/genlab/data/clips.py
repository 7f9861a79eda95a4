"""Reading the user's clips: a GIF, an MP4 (with imageio's ffmpeg reader, when installed), or a folder of frames.

Every read is checked before frames are decoded (the frame size from the header, the number of frames) and every
failure is one line naming the file: an unreadable or truncated file, frames of mixed sizes, too many pixels.
A clip comes back as uint8 (T, C, H, W), grey (C = 1) when every frame is grey, else RGB, at its own size; given
``size``, each frame is resized (shorter side) and centre-cropped to it, as images in a user folder are.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from genlab.data.images import IMAGE_SUFFIXES, _square
from genlab.errors import GenlabError

CLIP_SUFFIXES = (".gif", ".mp4")
MAX_FRAMES = 10_000  # frames genlab reads from one file (checked before decoding)
MAX_PIXELS = 64_000_000  # pixels per frame, as for images
HINT = "a GIF or MP4 file, or a folder of PNG/JPEG frames"


def clip_files(path: Path) -> list[Path]:
    """The clips in a user's folder: GIF/MP4 files, and sub-folders that hold frames (one clip each)."""
    path = path.resolve()
    if path.is_file():
        raise GenlabError(f"{path} is a file; give a folder of clips (GIF or MP4 files, or sub-folders of frames)")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CLIP_SUFFIXES)
    frame_dirs = sorted({p.parent for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES})
    if not files and not frame_dirs:
        raise GenlabError(f"{path}: folder holds no clips (GIF or MP4 files, or sub-folders of PNG/JPEG frames)")
    if path in frame_dirs:
        raise GenlabError(f"{path} holds frames itself; put each clip's frames in a sub-folder of its own")
    return files + frame_dirs


def mp4_reader() -> bool:
    """Whether imageio and its ffmpeg plugin are installed (MP4 in and out: ``pip install genlab[video]``)."""
    return all(importlib.util.find_spec(m) is not None for m in ("imageio", "imageio_ffmpeg"))


def read_clip(path: Path, *, size: int | None = None, channels: int = 0) -> np.ndarray:
    """A clip file or a folder of frames as uint8 (T, C, H, W); errors are one line naming the file."""
    path = Path(path)
    if path.is_dir():
        frames = _frames_folder(path)
    elif not path.is_file():
        raise GenlabError(f"{path}: no such clip ({HINT})")
    elif path.suffix.lower() == ".gif":
        frames = _gif(path)
    elif path.suffix.lower() == ".mp4":
        frames = _mp4(path)
    else:
        raise GenlabError(f"{path}: not a clip genlab reads ({HINT})")
    if not frames:
        raise GenlabError(f"{path}: the clip holds no frames")
    shapes = {f.size for f in frames}
    if len(shapes) > 1:
        first = frames[0].size
        odd = next(i for i, f in enumerate(frames) if f.size != first)
        raise GenlabError(f"{path}: frames of mixed sizes (frame 0 is {first[0]}x{first[1]}, frame {odd} is "
                          f"{frames[odd].size[0]}x{frames[odd].size[1]}); make every frame the same size")
    rgb = [np.asarray(f.convert("RGB")) for f in frames]
    grey = all((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all() for a in rgb)
    mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if grey else "RGB")
    pics = [f.convert(mode) for f in frames]
    if size is not None:
        pics = [_square(p, size) for p in pics]
    x = np.stack([np.asarray(p) for p in pics])
    return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # (T, C, H, W)


def _frames_folder(path: Path) -> list:
    from genlab.sample.images import read_image

    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GenlabError(f"{path}: folder holds no PNG or JPEG frames ({HINT})")
    if len(files) > MAX_FRAMES:
        raise GenlabError(f"{path} holds {len(files):,} frames; genlab reads clips of up to {MAX_FRAMES:,}")
    return [read_image(p) for p in files]


def _gif(path: Path) -> list:
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as im:
            w, h = im.size
            n = getattr(im, "n_frames", 1)
            if w * h > MAX_PIXELS or n > MAX_FRAMES:
                raise GenlabError(f"{path} declares {n:,} frames of {w} x {h} pixels; genlab reads clips of up to "
                                  f"{MAX_FRAMES:,} frames of {MAX_PIXELS / 1e6:.0f} M pixels")
            return [frame.convert("RGBA").copy() for frame in ImageSequence.Iterator(im)]
    except GenlabError:
        raise
    except MemoryError:
        raise GenlabError(f"{path}: cannot read this GIF (it declares more data than fits in memory)") from None
    except Image.DecompressionBombError as e:
        raise GenlabError(f"{path} declares too many pixels ({e})") from None
    except Exception as e:  # Pillow's errors for a damaged or truncated file: OSError, EOFError, SyntaxError, ...
        raise GenlabError(f"{path}: cannot read this GIF, it is damaged or truncated ({type(e).__name__}: "
                          f"{str(e)[:120]})") from None


def _mp4(path: Path) -> list:
    from PIL import Image

    if not mp4_reader():
        raise GenlabError(f"{path}: reading MP4 needs an ffmpeg reader (pip install imageio imageio-ffmpeg), or "
                          "convert the clip to GIF")
    import imageio.v3 as iio

    try:
        meta = iio.immeta(path, plugin="FFMPEG")
        w, h = meta["size"]
        n = meta.get("duration", 0) * meta.get("fps", 0)
        if w * h > MAX_PIXELS or n > MAX_FRAMES + 1:
            raise GenlabError(f"{path} declares about {n:,.0f} frames of {w} x {h} pixels; genlab reads clips of up "
                              f"to {MAX_FRAMES:,} frames of {MAX_PIXELS / 1e6:.0f} M pixels")
        frames = []
        for frame in iio.imiter(path, plugin="FFMPEG"):
            frames.append(Image.fromarray(np.asarray(frame)[..., :3]))
            if len(frames) > MAX_FRAMES:
                raise GenlabError(f"{path} holds over {MAX_FRAMES:,} frames; genlab reads clips of up to that many")
        return frames
    except GenlabError:
        raise
    except Exception as e:  # ffmpeg's reader raises OSError, RuntimeError, ... for damaged or truncated files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GenlabError(f"{path}: cannot read this MP4, it is damaged or truncated ({first[:120]})") from None
