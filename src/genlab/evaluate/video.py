"""Video metrics: per-frame FID, a temporal measure, and continuation error beside two baselines.

- Features: the image families' feature network (``evaluate/images.py``). For ``moving-digits`` it is the mnist digit
  classifier trained on the very digits (and split) the image families use, so it is the same cached network;
  applied to a 64x64 frame, its pooled features describe the digit strokes in each quadrant. For the user's clips
  it learns the rotation task on training frames.
- Per-frame FID: the Fréchet distance between generated and held-out features at each frame index (a clip that
  degrades over time shows it as a rising curve); ``fid`` is their mean. The same for real training clips against
  held-out ones is the ceiling (how low FID can go with this many clips).
- Motion (the temporal measure): the mean feature distance between consecutive frames of generated clips over that
  of held-out clips (1 = changes as much from frame to frame as real clips; near 0 = frozen; above 1 = flicker).
- Continuation: the held-out clips' first ``given`` frames are continued and compared with their true future, frame
  by frame: MSE (pixels in [0, 1], per pixel) and SSIM (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5), beside
  copying the last given frame and extrapolating the last two linearly, scored the same way. ``mse_1_5`` and
  ``ssim_1_5`` average frames 1 to 5 after the prompt; ``beats_copy_last_1_5`` says whether the model beats copying
  on each of those frames in both. Black frames are scored too: SSIM rewards an empty frame on a black
  background (0.72 on moving-digits, above copy-last's 0.62), so a prediction that fades its digits can look good
  on SSIM alone. Every curve is in ``per_frame``. A family with a deterministic part
  (``predict``: vdm's motion predictor) is scored alone too, as ``predictor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genlab.data.images import to_unit
from genlab.errors import BadArgument
from genlab.evaluate.images import feature_net, fid
from genlab.progress import task

FEATURE_FRAMES = 5000  # training frames the feature network of user clips learns from


# -- metrics as pure functions ----------------------------------------------------------------------------------
def ssim(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """SSIM of each pair of images (N, C, H, W) -> (N,), Gaussian window 11x11 with sigma 1.5 (Wang et al. 2004)."""
    c = a.shape[1]
    x = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    g = (g / g.sum()).float()
    window = (g[:, None] * g[None, :]).expand(c, 1, 11, 11).contiguous()

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, window, groups=c)  # "valid" windows only, as scikit-image does

    a, b = a.float(), b.float()
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean((1, 2, 3))


def frame_errors(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, list[float]]:
    """Per future frame, mean over clips: MSE and SSIM of ``pred`` against ``truth`` (B, F, C, H, W) in [0, 1]."""
    f = pred.shape[1]
    mse = (pred - truth).pow(2).mean((0, 2, 3, 4))
    s = [float(ssim(pred[:, j], truth[:, j]).mean()) for j in range(f)]
    return {"mse": [round(float(v), 6) for v in mse], "ssim": [round(v, 5) for v in s]}


def copy_last(given: torch.Tensor, frames: int) -> torch.Tensor:
    """The last given frame, repeated: (B, K, C, H, W) -> (B, frames, C, H, W)."""
    return given[:, -1:].expand(-1, frames, -1, -1, -1)


def linear(given: torch.Tensor, frames: int) -> torch.Tensor:
    """Pixel-wise linear extrapolation of the last two given frames, clipped to [0, 1]."""
    step = given[:, -1:] - given[:, -2:-1] if given.shape[1] > 1 else torch.zeros_like(given[:, -1:])
    j = torch.arange(1, frames + 1, dtype=given.dtype)[None, :, None, None, None]
    return (given[:, -1:] + j * step).clamp(0, 1)


def temporal(feats: np.ndarray) -> float:
    """Mean feature distance between consecutive frames; ``feats`` is (N, T, D)."""
    return float(np.linalg.norm(np.diff(feats, axis=1), axis=-1).mean())


# -- the report -------------------------------------------------------------------------------------------------
@dataclass
class FrameSet:
    """Frames as ``feature_net`` takes a dataset: x and y per split, and the number of classes (0: rotation)."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    num_classes: int


def frame_set(data: Any) -> FrameSet:
    """The digits of moving-digits (the image families' mnist split), or frames of the user's clips."""
    if data.generated:
        x = {s: to_unit(data.arrays[f"{s}_digits"][:, None]) for s in ("train", "val")}
        y = {s: torch.from_numpy(data.arrays[f"{s}_labels"]).long() for s in ("train", "val")}
        return FrameSet(x, y, 10)
    frames = {s: data.arrays[s].reshape(-1, *data.shape[1:]) for s in ("train", "val")}
    rng = np.random.default_rng(0)
    x = {s: to_unit(f[np.sort(rng.permutation(len(f))[:FEATURE_FRAMES])]) for s, f in frames.items()}
    return FrameSet(x, {s: torch.full((len(v),), -1) for s, v in x.items()}, 0)


def video_report(family: Any, data: Any, *, n: int = 100, given: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Generated clips scored against held-out ones, and continuations of held-out clips against their future."""
    if n < 1:
        raise BadArgument("n", f"must be at least 1, got {n}")
    frames = data.shape[0]
    k = given if given is not None else frames // 2
    if not 1 <= k < frames:
        raise BadArgument("given", f"must be between 1 and {frames - 1} (the clips have {frames} frames), got {k}")
    net, accuracy, feature_task = feature_net(frame_set(data))
    n_real = min(n, data.counts["val"])
    real = data.clips("val", np.arange(n_real))  # (N, T, C, H, W) in [-1, 1]
    train = data.clips("train", np.arange(min(n, data.counts["train"])))

    def feats(clips: torch.Tensor) -> np.ndarray:  # (N, T, C, H, W) -> (N, T, D)
        return net.features(clips.flatten(0, 1)).reshape(len(clips), frames, -1)

    with task(f"scoring {n} clips and {n_real} continuations", total=3) as advance:
        real_f, made_f, train_f = feats(real), feats(to_unit(np.asarray(family.sample(n, seed=seed)))), feats(train)
        advance()
        given_x, future = real[:, :k], (real[:, k:] + 1) / 2  # the prompt in [-1, 1], the truth in [0, 1]
        predicted = (family.extend(given_x, frames - k, seed=seed) + 1) / 2
        advance()
        past = (given_x + 1) / 2
        errors = {"model": frame_errors(predicted, future),
                  "copy_last": frame_errors(copy_last(past, frames - k), future),
                  "linear": frame_errors(linear(past, frames - k), future),
                  "blank": frame_errors(torch.zeros_like(future), future)}
        if hasattr(family, "predict"):
            errors["predictor"] = frame_errors((family.predict(given_x, frames - k) + 1) / 2, future)
        advance()
    fids = [round(fid(real_f[:, j], made_f[:, j]), 3) for j in range(frames)]
    ceiling = [round(fid(real_f[:, j], train_f[:, j]), 3) for j in range(frames)]
    motion = temporal(real_f)

    def summary(e: dict[str, list[float]]) -> dict[str, float]:  # frames 1-5 after the prompt, and all of them
        return {"mse_1_5": _mean(e["mse"][:5]), "ssim_1_5": _mean(e["ssim"][:5]), "mse": _mean(e["mse"]),
                "ssim": _mean(e["ssim"])}

    mine, copy = summary(errors["model"]), summary(errors["copy_last"])

    def beats(e: dict[str, list[float]]) -> bool:  # copy-last beaten on frames 1 to 5, in MSE and in SSIM
        return all(a < b for a, b in zip(e["mse"][:5], errors["copy_last"]["mse"][:5])) \
            and all(a > b for a, b in zip(e["ssim"][:5], errors["copy_last"]["ssim"][:5]))

    predictor = {"predictor": {"name": "the motion predictor alone, no diffusion", **summary(errors["predictor"]),
                               "beats_copy_last_1_5": beats(errors["predictor"])}} if "predictor" in errors else {}
    return {
        "n_clips": n, "n_real": n_real, "frames": frames, "given": k,
        "feature_net_task": feature_task, "feature_net_accuracy": accuracy,
        "fid": _mean(fids), "motion": round(temporal(made_f) / max(motion, 1e-12), 4), **mine,
        "beats_copy_last_1_5": beats(errors["model"]),
        "ceiling": {"fid": _mean(ceiling), "motion": round(temporal(train_f) / max(motion, 1e-12), 4)},
        "copy_last": {"name": "copy the last frame", **copy},
        "linear": {"name": "linear extrapolation", **summary(errors["linear"])},
        "blank": {"name": "black frames", **summary(errors["blank"])}, **predictor,
        "per_frame": {"fid": fids, "fid_ceiling": ceiling, **{f"{m}_{name}": e[m] for name, e in errors.items()
                                                             for m in ("mse", "ssim")}},
    }


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 6)
