"""Image outputs: one PNG per sample, a grid of them, a strip and an animated GIF for interpolations.

Images arrive as uint8 arrays (N, C, H, W) with C = 1 (grey) or 3 (RGB). Every file is written atomically,
by ``write(path, bytes)``: plain by default, signed when the release layer passes its writer.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from genlab.files import Writer, atomic_write_bytes


def to_pil(image: np.ndarray):
    """(C, H, W) uint8 -> PIL image ("L" or "RGB")."""
    from PIL import Image

    arr = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    return Image.fromarray(np.ascontiguousarray(arr), mode="L" if image.shape[0] == 1 else "RGB")


def grid(images: np.ndarray, *, nrow: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """Tile (N, C, H, W) into one (C, H', W') image with ``pad`` pixels of border, scaled up ``scale`` times."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    out = np.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), 255, dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        out[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = images[i]
    if scale > 1:
        out = out.repeat(scale, axis=1).repeat(scale, axis=2)
    return out


def auto_scale(images: np.ndarray) -> int:
    """Scale small images up so a grid is readable (8x8 digits become 64x64)."""
    return max(1, 64 // images.shape[-1])


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def save_png(image: np.ndarray, path: Path, *, write: Writer = atomic_write_bytes) -> Path:
    write(path, png_bytes(image))
    return path


def save_grid(images: np.ndarray, path: Path, *, nrow: int | None = None, write: Writer = atomic_write_bytes) -> Path:
    return save_png(grid(images, nrow=nrow, scale=auto_scale(images)), path, write=write)


def save_samples(images: np.ndarray, folder: Path, *, prefix: str = "sample",
                 write: Writer = atomic_write_bytes) -> list[Path]:
    """Each image as ``{prefix}-0000.png`` ... and all of them as ``grid.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [save_png(img, folder / f"{prefix}-{i:04d}.png", write=write) for i, img in enumerate(images)]
    save_grid(images, folder / "grid.png", write=write)
    return paths


def gif_bytes(frames: np.ndarray, *, ms_per_frame: int = 120) -> bytes:
    """(N, C, H, W) frames -> an animated GIF that plays forward then back."""
    frames = np.asarray(frames)
    scale = auto_scale(frames)
    pics = [to_pil(f.repeat(scale, axis=1).repeat(scale, axis=2)) for f in frames]
    pics = pics + pics[-2:0:-1]
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=ms_per_frame, loop=0)
    return buf.getvalue()


def save_gif(frames: np.ndarray, path: Path, *, ms_per_frame: int = 120, write: Writer = atomic_write_bytes) -> Path:
    write(path, gif_bytes(frames, ms_per_frame=ms_per_frame))
    return path


MAX_PIXELS = 64_000_000  # the largest image genlab decodes (8000 x 8000): checked from the header, before decoding
GREY_MODES = ("L", "1", "LA", "I", "I;16")


def read_image(path: Path, *, hint: str = "") -> Any:
    """A user's image file, decoded (a PIL image), or a one-line error; its declared size is checked before any
    pixel is decoded, so a small file declaring 30000 x 30000 pixels is refused, not unpacked into gigabytes."""
    from PIL import Image, UnidentifiedImageError

    from genlab.errors import GenlabError

    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise GenlabError(f"{path} declares {w} x {h} pixels ({w * h / 1e6:.0f} M); genlab reads images of "
                                  f"up to {MAX_PIXELS / 1e6:.0f} M pixels{hint}")
            im.load()
            return im.copy()
    except GenlabError:
        raise
    except MemoryError:  # a chunk declaring gigabytes: refused, whatever the allocator allows
        raise GenlabError(f"{path}: cannot read this image (it declares more data than fits in memory){hint}") \
            from None
    except Image.DecompressionBombError as e:  # Pillow's own bound, met while reading the header
        raise GenlabError(f"{path} declares too many pixels ({e}); genlab reads images of up to "
                          f"{MAX_PIXELS / 1e6:.0f} M pixels{hint}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise GenlabError(f"{path}: cannot read this image ({e}){hint}") from None


def load_image(path: Path) -> np.ndarray:
    """A user's image file as uint8 (C, H, W), in its own mode (grey or RGB); errors are one line."""
    from genlab.errors import GenlabError

    if not path.is_file():
        raise GenlabError(f"{path}: no such image file")
    im = read_image(path)
    arr = np.asarray(im.convert("L" if im.mode in GREY_MODES else "RGB"))
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
