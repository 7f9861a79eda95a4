"""Invisible watermark for the images genlab generates: a 32-bit payload (a run id's first 32 bits) in every PNG.

numpy + scipy + Pillow only: ``invisible-watermark`` refuses images under 256x256 (every size genlab generates) and
has no "not marked" answer. docs/watermark-images.md explains the design and measures it. In short: payload +
CRC-16, convolutionally coded to 162 bits (Viterbi-decoded), spread over an S x S grid of keyed random-sign "chips"
in coordinates relative to the image (``TIERS``; larger grids add a keyed pilot for crop synchronisation), added to
the luminance with a closed-loop gain; detected by a robust correlator that searches crops of 0.86-1 of each side.
For an unmarked image every codeword's correlation is a sum of keyed random signs, so Hoeffding and a union bound
give ``p_value`` whatever the image; ``found`` needs a valid CRC and ``p_value <= 1e-6``. What survives at which
size is measured, not assumed (``MEASURED_SURVIVAL``, ``robustness_note``). The key is public (``DEFAULT_KEY``):
anyone can detect, and so remove or forge, a genlab mark; it labels honest provenance.
"""

from __future__ import annotations

import binascii
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage, special

from genlab.errors import GenlabError

DEFAULT_KEY = 0x67656E6C  # "genl": genlab's public key; any genlab install can detect genlab images with it
MIN_SIZE = 24  # shorter side, pixels
_TOO_SMALL = f"image too small to carry a watermark (min {MIN_SIZE}x{MIN_SIZE})"
FOUND_P_VALUE = 1e-6  # the false-positive rate ``found`` allows, per image
TIERS = (24, 28, 32, 48, 64, 96, 128)  # chips per side of the canonical grid
MIN_KEEP = 0.86  # the smallest fraction of a side a crop may keep and still be synchronised
N_MESSAGE, N_TAIL, N_CODED = 48, 6, 162  # payload + CRC-16; convolutional tail; (48 + 6) * 3
_GEN = (0o133, 0o171, 0o165)  # rate-1/3, constraint length 7
_EXHAUSTIVE = 32  # tiers up to this size synchronise on the payload itself, over every crop hypothesis; larger
# ones on the pilot
_LUMA = np.array([0.299, 0.587, 0.114])
_FLAT, _TEXTURE, _MAX_AMP = 2.5, 0.05, 3.0  # masking: grey levels in flat areas, + x local activity, cap
_BUSY = 2.0  # detector: a chip's weight is 1 / (1 + local activity / _BUSY) (busy areas are mostly host)
_TARGET, _PILOT_TARGET, _ITERS, _GAINS = 2.0, 10.0, 8, (0.5, 2.5)  # closed loop: margin, pilot z, rounds, gain cap
_PROBE_NOISE = 2.0  # closed loop: margins are measured with this much noise (grey levels) added, so a faint mark
# counts as weak; half of it on pixel-sized chips (tiers <= _EXHAUSTIVE), where more gain buys no robustness


@dataclass(frozen=True)
class ImageMark:
    """What ``detect`` found. ``found`` is decided at a false-positive rate of at most 1e-6 per image."""

    found: bool  # a genlab watermark with this key is present
    payload: int | None  # the 32-bit payload when found
    score: float  # correlation of the decoded codeword, in standard deviations of an unmarked image
    p_value: float  # upper bound on the probability that an unmarked image scores this high
    bit_confidence: float  # mean |2 Phi(z) - 1| over the 162 coded bits: ~0.5 unmarked, -> 1 strongly marked
    reason: str = ""  # why nothing could be looked for (image too small), else ""


@dataclass(frozen=True)
class _Pattern:
    sign: np.ndarray  # (S, S) +-1: the keyed sign of each chip
    bit: np.ndarray  # (S, S) int: the coded bit each chip carries
    rows: np.ndarray  # (S,) +-1: the pilot is outer(rows, cols)
    cols: np.ndarray  # (S,) +-1
    order: np.ndarray  # (S*S,) chip indices sorted by coded bit
    starts: np.ndarray  # (162,) where each coded bit's chips start in ``order``


@lru_cache(maxsize=64)
def _pattern(key: int, size: int) -> _Pattern:
    rng = np.random.default_rng([key, size, 0x57A7])
    sign = rng.choice([-1.0, 1.0], size=(size, size))
    bit = (rng.permutation(size * size) % N_CODED).reshape(size, size)
    rows, cols = rng.choice([-1.0, 1.0], size=(2, size))
    order = np.argsort(bit.ravel(), kind="stable")
    starts = np.searchsorted(bit.ravel()[order], np.arange(N_CODED))
    return _Pattern(sign, bit, rows, cols, order, starts)


# ----- message: payload + CRC-16, convolutional code, Viterbi -----

def _message(payload: int) -> np.ndarray:  # -> (48,) bits
    data = payload.to_bytes(4, "big")
    crc = binascii.crc_hqx(data, 0xFFFF)
    return np.unpackbits(np.frombuffer(data + crc.to_bytes(2, "big"), np.uint8)).astype(np.int64)


def _payload_if_valid(bits: np.ndarray) -> int | None:  # (48,) bits -> payload, or None when the CRC fails
    data = np.packbits(bits.astype(np.uint8)).tobytes()
    valid = binascii.crc_hqx(data[:4], 0xFFFF) == int.from_bytes(data[4:], "big")
    return int.from_bytes(data[:4], "big") if valid else None


def _parity(x: int) -> int:
    return x.bit_count() & 1


def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """For each next state (64) and each of its two predecessors: the predecessor and the +-1 output bits."""
    state = np.arange(64)
    prev = np.stack([(state << 1) & 63, ((state << 1) & 63) | 1], axis=1)  # (64, 2)
    register = ((state >> 5)[:, None] << 6) | prev  # newest input bit at position 6
    out = np.array([[[2.0 * _parity(int(r) & g) - 1.0 for g in _GEN] for r in row] for row in register])
    return prev, out  # (64, 2), (64, 2, 3)


_PREV, _OUT = _trellis()


def _encode(bits: np.ndarray) -> np.ndarray:  # (48,) bits -> (162,) +-1
    state, out = 0, []
    for b in [*bits.tolist(), *[0] * N_TAIL]:
        register = (b << 6) | state
        out += [2.0 * _parity(register & g) - 1.0 for g in _GEN]
        state = register >> 1
    return np.array(out)


def _viterbi(z: np.ndarray) -> np.ndarray:  # (162,) soft values, > 0 meaning +1 -> (48,) bits
    metric = np.full(64, -np.inf)
    metric[0] = 0.0
    steps = z.reshape(-1, 3)
    choice = np.empty((len(steps), 64), np.int64)
    for t, zt in enumerate(steps):
        cand = metric[_PREV] + _OUT @ zt  # (64, 2)
        choice[t] = np.argmax(cand, axis=1)
        metric = cand[np.arange(64), choice[t]]
    state, bits = 0, []  # the tail ends in state 0
    for t in range(len(steps) - 1, -1, -1):
        bits.append(state >> 5)
        state = int(_PREV[state, choice[t, state]])
    return np.array(bits[::-1][:N_MESSAGE])


# ----- geometry: chips <-> pixels -----

def _basis(size: int, n: int, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """(size, n) bilinear weights of each chip on each of n pixels; the pixels cover [offset, offset + scale] of
    the original image's side (a crop), in relative coordinates."""
    u = offset + scale * (np.arange(n) + 0.5) / n
    t = np.clip(u * size - 0.5, 0.0, size - 1.0)
    return np.maximum(0.0, 1.0 - np.abs(t[None, :] - np.arange(size)[:, None]))


def _pilot_rows(pilot: np.ndarray, hyps: np.ndarray, n: int) -> np.ndarray:
    """(n_hyp, n): the 1-D pilot ``pilot`` (S,) as seen by n pixels under each (scale, offset) hypothesis."""
    u = hyps[:, 1:2] + hyps[:, 0:1] * (np.arange(n) + 0.5) / n
    t = np.clip(u * len(pilot) - 0.5, 0.0, len(pilot) - 1.0)
    i = np.minimum(t.astype(np.int64), len(pilot) - 2)
    f = t - i
    return pilot[i] * (1.0 - f) + pilot[i + 1] * f


def _axis_hypotheses(size: int) -> np.ndarray:  # (n_hyp, 2) of (scale, offset); the uncropped frame first
    out = [(1.0, 0.0)]
    for scale in np.arange(1.0 - 1.0 / size, MIN_KEEP - 1e-9, -1.0 / size):
        steps = math.ceil((1.0 - scale) * size / 0.5)
        out += [(scale, d) for d in np.linspace(0.0, 1.0 - scale, steps + 1)]
    return np.array(out)


def _refine(size: int, best: np.ndarray) -> np.ndarray:  # a finer grid around one (scale, offset)
    scales = np.clip(best[0] + np.arange(-4, 5) / (4.0 * size), 0.5, 1.0)
    offsets = best[1] + np.arange(-4, 5) / (8.0 * size)
    grid = np.array([(s, d) for s in scales for d in offsets])
    return grid[(grid[:, 1] >= -0.02) & (grid[:, 1] + grid[:, 0] <= 1.02)]


# ----- the detector's view of an image -----

def _luma(image: np.ndarray) -> np.ndarray:  # (C, H, W) -> (H, W) float
    x = image.astype(np.float64)
    return x[0] if x.shape[0] == 1 else np.tensordot(_LUMA, x, axes=1)


def _working(y: np.ndarray, size: int) -> np.ndarray:
    """(H, W) luminance -> (h, w) at about two pixels per chip (area average), robustly whitened: high-passed,
    divided by the local mean absolute residual, clipped, and down-weighted where the image is busy."""
    h, w = min(y.shape[0], 2 * size), min(y.shape[1], 2 * size)
    if (h, w) != y.shape:
        y = np.asarray(Image.fromarray(y.astype(np.float32)).resize((w, h), Image.Resampling.BOX), np.float64)
    chip = min(h, w) / size
    e = y - ndimage.gaussian_filter(y, sigma=max(1.0, chip), mode="reflect")
    scale = ndimage.uniform_filter(np.abs(e), size=2 * round(2 * chip) + 1, mode="reflect") + 0.1
    return np.clip(e / scale, -2.0, 2.0) / (1.0 + scale / _BUSY)


def _z_scores(chips: np.ndarray, pat: _Pattern) -> np.ndarray:
    """(..., S, S) chip correlations -> (..., 162) z-scores of the coded bits: sums of random signs if unmarked."""
    flat = chips.reshape(*chips.shape[:-2], -1)[..., pat.order]
    num = np.add.reduceat(flat * pat.sign.ravel()[pat.order], pat.starts, axis=-1)
    den = np.sqrt(np.add.reduceat(flat**2, pat.starts, axis=-1))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _soft_bits(psi: np.ndarray, pat: _Pattern, hy: tuple[float, float], hx: tuple[float, float]) -> np.ndarray:
    """(162,) z-scores of the coded bits under one crop hypothesis (rows, cols)."""
    size = len(pat.rows)
    return _z_scores(_basis(size, psi.shape[0], *hy) @ psi @ _basis(size, psi.shape[1], *hx).T, pat)  # (S, S)


def _sync_payload(psi: np.ndarray, pat: _Pattern) -> tuple[tuple[float, float], tuple[float, float]]:
    """Small grids: the crop hypothesis whose coded bits carry the most energy (sum of z^2), over all of them."""
    size, hyps = len(pat.rows), _axis_hypotheses(len(pat.rows))
    by = np.stack([_basis(size, psi.shape[0], *h) for h in hyps])  # (n_hyp, S, h)
    bx = np.stack([_basis(size, psi.shape[1], *h) for h in hyps])  # (n_hyp, S, w)
    rows = (by @ psi).reshape(-1, psi.shape[1])  # (n_hyp * S, w)
    chips = (rows @ bx.reshape(-1, psi.shape[1]).T).reshape(len(hyps), size, len(hyps), size)
    energy = np.sum(_z_scores(chips.transpose(0, 2, 1, 3), pat) ** 2, axis=-1)  # (n_hyp, n_hyp)
    iy, ix = np.unravel_index(int(np.argmax(energy)), energy.shape)
    return tuple(hyps[iy]), tuple(hyps[ix])


def _pilot_z(psi: np.ndarray, pat: _Pattern) -> float:  # the pilot's z-score in the uncropped frame
    ident = np.array([[1.0, 0.0]])
    py, px = _pilot_rows(pat.rows, ident, psi.shape[0])[0], _pilot_rows(pat.cols, ident, psi.shape[1])[0]
    den = math.sqrt(float(py**2 @ psi**2 @ px**2))
    return float(py @ psi @ px) / den if den > 0 else 0.0


def _sync_pilot(psi: np.ndarray, pat: _Pattern) -> tuple[tuple[float, float], tuple[float, float]]:
    """Large grids: the crop hypothesis (rows, cols) whose pilot correlation is largest, coarse then fine."""
    size = len(pat.rows)
    hy = hx = _axis_hypotheses(size)
    for _ in range(2):
        py, px = _pilot_rows(pat.rows, hy, psi.shape[0]), _pilot_rows(pat.cols, hx, psi.shape[1])
        corr = py @ psi @ px.T  # (n_hy, n_hx)
        iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
        best_y, best_x = hy[iy], hx[ix]
        hy, hx = _refine(size, best_y), _refine(size, best_x)
    return (float(best_y[0]), float(best_y[1])), (float(best_x[0]), float(best_x[1]))


# ----- decisions -----

def _attempts() -> int:
    """Crop hypotheses whose decode a detect may report, over all tiers: every one where the choice among them
    looks at the payload's soft bits (small tiers), the refined pilot peak and the uncropped frame elsewhere."""
    return sum(len(_axis_hypotheses(s)) ** 2 + 1 if s <= _EXHAUSTIVE else 2 for s in TIERS)


def _log_p(score: float, codewords_log2: int) -> float:  # Hoeffding + union bound, natural log
    return min(0.0, math.log(_ATTEMPTS) + codewords_log2 * math.log(2.0) - score * score / 2.0)


def _decode(z: np.ndarray) -> tuple[ImageMark, int]:
    """(162,) soft bits -> the mark, and the decoded 32 payload bits whatever the CRC says (for bit accuracy)."""
    bits = _viterbi(z)
    score = float(_encode(bits) @ z) / math.sqrt(N_CODED)
    payload = _payload_if_valid(bits)
    log_p = _log_p(score, 32 if payload is not None else N_MESSAGE)
    found = payload is not None and log_p <= math.log(FOUND_P_VALUE)
    confidence = float(np.mean(special.erf(np.abs(z) / math.sqrt(2.0))))
    raw = int.from_bytes(np.packbits(bits[:32].astype(np.uint8)).tobytes(), "big")
    return ImageMark(found, payload if found else None, score, math.exp(log_p), confidence), raw


def _tiers_to_try(height: int, width: int) -> list[int]:
    fits = [s for s in TIERS if s * MIN_KEEP <= min(height, width)]  # a crop may have cut the side to MIN_KEEP
    first = _embed_tier(min(height, width)) if min(height, width) >= MIN_SIZE else None
    return sorted(fits, key=lambda s: (s != first, -s))


def _embed_tier(side: int) -> int:
    """Chips per side for an image whose shorter side is ``side``: about one pixel per chip under 96 px (capacity
    first), two from 96 px up (so a 50% resize keeps them), at most 128."""
    limit = side if side < 96 else side // 2
    return max(s for s in TIERS if s <= max(limit, MIN_SIZE))


# ----- public API -----

def _check_key(key: int) -> None:
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or key < 0:
        raise GenlabError(f"watermark key must be a non-negative integer, got {key!r}")


def _check_image(image: np.ndarray, ndims: tuple[int, ...], what: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise GenlabError(f"{what} must be a uint8 numpy array, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim not in ndims or image.shape[-3] not in (1, 3):
        raise GenlabError(f"{what} must have shape {' or '.join({3: '(C, H, W)', 4: '(N, C, H, W)'}[d] for d in ndims)}"
                          f" with C = 1 or 3, got {image.shape}")


def embed(images: np.ndarray, payload: int, *, key: int = DEFAULT_KEY) -> np.ndarray:
    """uint8 (N, C, H, W) or (C, H, W), C = 1 or 3 -> same shape and dtype, marked with the 32-bit ``payload``."""
    _check_image(images, (3, 4), "images")
    _check_key(key)
    if isinstance(payload, bool) or not isinstance(payload, (int, np.integer)) or not 0 <= payload < 2**32:
        raise GenlabError(f"watermark payload must be an integer in [0, 2**32), got {payload!r}")
    if min(images.shape[-2:]) < MIN_SIZE:
        raise GenlabError(f"{_TOO_SMALL}, got {images.shape[-2]}x{images.shape[-1]}")
    batch = images[None] if images.ndim == 3 else images
    code = _encode(_message(int(payload)))  # (162,) +-1
    marked = np.stack([_embed_one(image, code, int(key)) for image in batch])
    return marked[0] if images.ndim == 3 else marked


def _amplitude(y: np.ndarray) -> np.ndarray:  # (H, W) luminance -> (H, W) grey levels the mark may use
    activity = ndimage.uniform_filter(np.abs(y - ndimage.gaussian_filter(y, 1.0, mode="reflect")), 5, mode="reflect")
    return np.minimum(_FLAT + _TEXTURE * activity, _MAX_AMP)


def _embed_one(image: np.ndarray, code: np.ndarray, key: int) -> np.ndarray:  # (C, H, W) -> (C, H, W)
    y = _luma(image)
    size = _embed_tier(min(y.shape))
    pat = _pattern(key, size)
    by, bx = _basis(size, y.shape[0]), _basis(size, y.shape[1])  # (S, H), (S, W)
    payload_chips = pat.sign * code[pat.bit]  # (S, S)
    pilot_chips = np.outer(pat.rows, pat.cols)  # (S, S)
    amplitude = _amplitude(y)
    # a coded bit's z-score cannot exceed sqrt(its chips): ask for a share of that on small grids
    target = np.minimum(_TARGET, 0.45 * np.sqrt(np.bincount(pat.bit.ravel(), minlength=N_CODED)))  # (162,)
    pilot_target = _PILOT_TARGET if size > _EXHAUSTIVE else -np.inf
    gain, pilot_gain = np.ones(N_CODED), (0.3 if size > _EXHAUSTIVE else 0.0)
    identity = ((1.0, 0.0), (1.0, 0.0))
    stuck, boosted, before = np.zeros(N_CODED, bool), np.zeros(N_CODED, bool), np.zeros(N_CODED)
    sigma = _PROBE_NOISE if size > _EXHAUSTIVE else _PROBE_NOISE / 2
    probe_noise = np.random.default_rng([key, 0x9A0BE]).normal(0.0, sigma, y.shape)  # (H, W)
    marked = image
    for _ in range(_ITERS):
        chips = gain[pat.bit] * payload_chips + pilot_gain * pilot_chips
        delta = amplitude * (by.T @ chips @ bx)  # (H, W), the same on every channel
        marked = np.clip(np.rint(image + delta[None]), 0, 255).astype(np.uint8)
        psi = _working(np.clip(_luma(marked) + probe_noise, 0.0, 255.0), size)
        margin = _soft_bits(psi, pat, *identity) * code  # (162,), > 0 where right
        pilot_z = _pilot_z(psi, pat) if size > _EXHAUSTIVE else 0.0
        stuck |= boosted & (margin < before + 0.05)  # more gain did not help (clipping, a saturated correlator)
        short, slack = (margin < target) & ~stuck, margin > 2.0 * target
        if not short.any() and not slack.any() and pilot_z >= pilot_target:
            break
        boost = np.clip(1.0 + (target - margin) / (2.0 * target), 1.1, 1.8)
        gain = np.clip(np.where(short, gain * boost, np.where(slack, gain * 0.8, gain)), *_GAINS)
        pilot_gain *= 1.5 if pilot_z < pilot_target else 1.0
        boosted, before = short, margin
    return marked


def detect(image: np.ndarray, *, key: int = DEFAULT_KEY) -> ImageMark:
    """One uint8 (C, H, W) image (grey or RGB, any size): is there a genlab watermark, and what payload?"""
    return _detect(image, key)[0]


def _detect(image: np.ndarray, key: int) -> tuple[ImageMark, int]:
    """``detect``, plus the best attempt's 32 decoded payload bits even when nothing is found (the benchmark's
    bit accuracy)."""
    _check_image(image, (3,), "image")
    _check_key(key)
    if min(image.shape[-2:]) < MIN_SIZE:
        return ImageMark(False, None, 0.0, 1.0, 0.0, _TOO_SMALL), 0
    y = _luma(image)
    best: tuple[ImageMark, int] | None = None
    for size in _tiers_to_try(*y.shape):
        pat = _pattern(int(key), size)
        psi = _working(y, size)
        sync = _sync_payload if size <= _EXHAUSTIVE else _sync_pilot
        for hy, hx in (((1.0, 0.0), (1.0, 0.0)), sync(psi, pat)):
            mark, raw = _decode(_soft_bits(psi, pat, hy, hx))
            if mark.found:
                return mark, raw
            best = (mark, raw) if best is None or mark.score > best[0].score else best
    assert best is not None
    return best


_ATTEMPTS = _attempts()


# ----- what the mark survives, per image size: measured, for model cards -----

SURVIVAL_ATTACKS = {  # attack -> how a model card names it (bench/watermark_images.py defines each)
    "none": "lossless copies", "resize75": "a 75% resize and back", "resize50": "a 50% resize and back",
    "jpeg95": "JPEG 95", "jpeg90": "JPEG 90", "jpeg75": "JPEG 75", "jpeg50": "JPEG 50",
    "crop5each": "a 5% crop per side", "crop10right": "a 10% crop of one side", "bright1.2": "+20% brightness",
    "contrast0.8": "-20% contrast", "screenshot": "a screenshot-like re-encode", "rotate3": "a 3-degree rotation",
    "rotate90": "a 90-degree rotation", "flip": "mirroring"}
# Share of marked images still found, per shorter side (px) and attack in SURVIVAL_ATTACKS' order, measured by
# `python bench/watermark_images.py --survival --n 10`: 10 MNIST digits + 10 photo crops per side; 0/900 unmarked found.
MEASURED_SURVIVAL: dict[int, dict[str, float]] = {side: dict(zip(SURVIVAL_ATTACKS, rates)) for side, rates in {
    28: (0.90, 0.30, 0.00, 0.85, 0.20, 0.00, 0.00, 0.75, 0.80, 0.90, 0.90, 0.15, 0.05, 0.00, 0.00),
    64: (1.00, 1.00, 0.60, 1.00, 1.00, 0.45, 0.05, 1.00, 1.00, 1.00, 1.00, 1.00, 0.00, 0.00, 0.00),
    256: (1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 0.00, 0.00, 0.00),
}.items()}


def robustness_note(side: int) -> str:
    """What the mark was measured to survive at the nearest measured side at or below ``side`` (the shorter side of
    a run's images, px), in one or two plain sentences."""
    if side < MIN_SIZE:
        return f"Images under {MIN_SIZE}x{MIN_SIZE} pixels cannot carry the watermark; they are only signed."
    at = max((s for s in MEASURED_SURVIVAL if s <= side), default=min(MEASURED_SURVIVAL))
    rates = MEASURED_SURVIVAL[at].items()  # attack -> share of marked images found
    kept = ", ".join(SURVIVAL_ATTACKS[a] for a, r in rates if r >= 0.9) or "no edit"
    partly = ", ".join(f"{SURVIVAL_ATTACKS[a]} ({r:.0%})" for a, r in rates if 0.1 < r < 0.9)
    lost = ", ".join(SURVIVAL_ATTACKS[a] for a, r in rates if r <= 0.1)
    said = f"Measured on {at}x{at} images" + (f" (not {side}x{side}, which hold less of it)" if side < at else "")
    said += f": the watermark was found in 90% or more of them after {kept}"
    said += f"; in some after {partly}" if partly else ""
    return said + (f". It was not found after {lost}." if lost else ".")
