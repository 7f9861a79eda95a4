"""Clip outputs as files: an animated GIF per clip (its frames exactly, so the watermark and given frames survive),
an MP4 when an ffmpeg writer is installed, and PNG contact sheets (one row of frames per clip, or per part of a
continuation: given, predicted, and the true future when it is known).

Clips arrive as uint8 (T, C, H, W) with C = 1 (grey) or 3 (RGB).
"""

from __future__ import annotations

import numpy as np

from genlab.sample.images import auto_scale, grid, png_bytes, to_pil

FPS = 10  # playback speed of GIF and MP4 files
BLANK = 128  # grey frames that pad a short row of a contact sheet


def gif_bytes(frames: np.ndarray, *, fps: int = FPS) -> bytes:
    """(T, C, H, W) -> an animated GIF that loops, each frame's pixels as they are (grey GIFs are lossless)."""
    import io

    pics = [to_pil(f) for f in np.asarray(frames)]
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=round(1000 / fps), loop=0,
                 optimize=False, disposal=1)
    return buf.getvalue()


def mp4_bytes(frames: np.ndarray, *, fps: int = FPS) -> bytes | None:
    """(T, C, H, W) -> H.264 MP4 bytes (lossy), or None without an ffmpeg writer or for odd frame sides."""
    from genlab.data.clips import mp4_reader

    frames = np.asarray(frames)
    if not mp4_reader() or frames.shape[-1] % 2 or frames.shape[-2] % 2:
        return None
    import imageio.v3 as iio

    rgb = np.ascontiguousarray(np.repeat(frames, 3, 1) if frames.shape[1] == 1 else frames).transpose(0, 2, 3, 1)
    return iio.imwrite("<bytes>", rgb, extension=".mp4", plugin="FFMPEG", fps=fps, codec="libx264",
                       macro_block_size=2, ffmpeg_log_level="error")


def rows_png(rows: list[np.ndarray]) -> bytes:
    """A contact sheet: each entry of ``rows`` (k, C, H, W) is a row of frames, short rows padded with grey."""
    width = max(len(r) for r in rows)
    c, h, w = rows[0].shape[1:]
    blank = np.full((c, h, w), BLANK, dtype=np.uint8)
    cells = np.stack([f for r in rows for f in [*r, *[blank] * (width - len(r))]])
    return png_bytes(grid(cells, nrow=width, scale=auto_scale(cells)))


def sheet_png(clips: np.ndarray) -> bytes:
    """(N, T, C, H, W) -> one PNG with a row of frames per clip."""
    return rows_png(list(np.asarray(clips)))
