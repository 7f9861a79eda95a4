"""The image modality's audit: nearest training images of generated samples (possible copies), and the class
balance of what is generated. ``IMAGE.audit`` calls ``audit_image``; the maths lives in ``responsible/memorise.py``
and ``bias.py``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from genlab.numbers import pct as _pct
from genlab.progress import task
from genlab.responsible import bias as B
from genlab.responsible import memorise as M

IMAGE_MEMO_METHOD = (
    "Memorisation: for each generated sample, the distance to its nearest training image, in pixels (root mean "
    "square difference, [-1, 1] units) and in the 128-d features of genlab's feature network; beside it the same "
    "distance for held-out real images. A possible copy is nearer to the training set than 1% of held-out images "
    "are, and also singled out: its nearest / second-nearest distance ratio is below that of 99% of held-out "
    "images (a blurry average is near many training images at once; a copy is near one). baseline_share is the "
    "share of held-out images flagged the same way. closest-pairs.png shows the samples most like a copy (top "
    "row) above their nearest training images (bottom row)."
)
IMAGE_MEMO_LIMITS = (
    "Nearest-neighbour distance finds near-exact copies; a copy that is shifted, flipped, cropped or recoloured is "
    "far in pixels and may or may not be near in features. Feature distances reflect what the feature network "
    "learnt (class identity), so a typical-looking sample can be near a training image without copying it. The "
    "thresholds are percentiles of a finite held-out set (rough below a few hundred images). Datasets with "
    "near-duplicate images (digits) make copies of those look less singled out."
)


IMAGE_BIAS_METHOD = (
    "Bias: the feature network's classifier labels every sample. A class-conditional model makes the same number "
    "of samples per class: the report gives the confusion counts, per-class agreement (beside the classifier's "
    "per-class accuracy on real held-out images) and the total variation distance between the produced and the "
    "requested class distribution. An unconditional model's produced distribution is compared with the training "
    "labels (total variation distance), beside the same distance for real held-out images."
)
IMAGE_BIAS_LIMITS = (
    "Classes are the dataset's own labels, not attributes of people; the classifier errs, most on poor samples, "
    "so agreement mixes sample quality with class balance. Unlabelled datasets get no bias figures."
)


def audit_image(run, *, n: int, seed: int = 0, out: Path | None = None, max_heldout: int = 2000,
                pairs: int = 16) -> dict:
    import torch

    from genlab.data.images import to_unit
    from genlab.evaluate.images import feature_net

    data, model = run.data, run.model
    net, accuracy, feature_task = feature_net(data)
    images = np.asarray(run.sample(n, seed=seed))  # uint8 (n, C, H, W); a conditional model cycles its classes
    xs, xtr = to_unit(images), data.x["train"]  # (n, C, H, W), (N, C, H, W) in [-1, 1]
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(data.x["val"]), generator=g)[:max_heldout]
    xva, yva = data.x["val"][keep], data.y["val"][keep]
    pix = math.sqrt(xtr[0].numel())  # Euclidean / sqrt(pixels) = RMS difference per pixel
    train_flat = xtr.flatten(1).numpy() / pix  # (N, C*H*W)
    near_pix = M.nearest_distances(xs.flatten(1).numpy() / pix, train_flat)
    pixels, score = M.copy_report(near_pix, M.nearest_distances(xva.flatten(1).numpy() / pix, train_flat))
    f_tr = net.features(xtr)  # (N, 128)
    features, _ = M.copy_report(M.nearest_distances(net.features(xs), f_tr),
                                M.nearest_distances(net.features(xva), f_tr))
    memo = {"pixels": pixels, "features": features, "n_samples": n, "n_heldout": len(xva), "n_train": len(xtr),
            "feature_net_task": feature_task, "feature_net_accuracy": accuracy, "method": IMAGE_MEMO_METHOD,
            "limits": IMAGE_MEMO_LIMITS}
    if len(xva) < 100:
        memo["note"] = f"only {len(xva)} held-out images: the 1% thresholds are their extremes, so read them loosely"
    if out is not None:
        path = _closest_pairs(images, score, near_pix.index, xtr, out / "closest-pairs.png", pairs)
        memo["closest_pairs"] = str(path)

    k = data.num_classes
    names = data.meta.get("class_names", [])
    if feature_task != "classes" or k == 0:
        bias = {"skipped": "the dataset has no class labels"}
    elif getattr(model, "num_classes_", 0):
        m = max(10, n // k)
        with task(f"sampling {m} images of each of {k} classes", total=k) as advance:
            produced = []
            for c in range(k):
                produced.append(net.predict(to_unit(run.sample(m, label=c, seed=seed + 1 + c))).numpy())
                advance()
        produced = np.concatenate(produced)  # (k * m,)
        conf = B.confusion(np.repeat(np.arange(k), m), produced, k)
        pred_va, y = net.predict(xva).numpy(), yva.numpy()
        real = np.array([(pred_va[y == c] == c).mean() if (y == c).any() else np.nan for c in range(k)])
        bias = B.conditional_label_report(conf, names, real) | {"per_class": m}
    else:
        bias = B.unconditional_label_report(net.predict(xs).numpy(), data.y["train"].numpy(), names,
                                            net.predict(xva).numpy())
    bias |= {"method": IMAGE_BIAS_METHOD, "limits": IMAGE_BIAS_LIMITS}
    verdict = image_verdict(memo, bias)
    return {"memorisation": memo, "bias": bias, "verdict": verdict, "summary": [verdict, *_image_summary(memo, bias)]}


def _closest_pairs(images: np.ndarray, score: np.ndarray, nearest: np.ndarray, xtr, path: Path, k: int) -> Path:
    """Top row: the k samples most like a copy (lowest copy score); bottom row: their nearest training images."""
    from genlab.data.images import from_unit
    from genlab.sample.images import save_grid

    order = np.argsort(score, kind="stable")[:k]
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_grid(np.concatenate([images[order], from_unit(xtr[nearest[order]])]), path, nrow=len(order))


def image_verdict(memo: dict, bias: dict) -> str:
    """One sentence: copies flagged more often than held-out real images are (twice, and one point more), and a
    class balance further from the data than held-out images' (TV distance 0.05 more)."""
    p = memo["pixels"]
    g, h = p["possible_copy_share"], p["baseline_share"]
    if g is None or h is None:
        memo_v = "copying could not be measured"
    elif g <= max(2 * h, h + 0.01):
        memo_v = "no sign of copying: samples look like copies of training images no more often than held-out images do"
    else:
        memo_v = (f"possible copies: {_pct(g)} of samples are flagged against {_pct(h)} of held-out images; look at "
                  "closest-pairs.png before sharing outputs")
    if "tv_distance" not in bias:
        return f"Verdict: {memo_v}; class balance not measured ({bias.get('skipped', 'no labels')})."
    reference = bias.get("heldout_tv_distance") or 0.0
    balance = "as in the data" if bias["tv_distance"] <= reference + 0.05 else "further from the data than held-out images"
    return f"Verdict: {memo_v}; the classes produced are {balance} (TV distance {bias['tv_distance']:.3f})."


def _image_summary(memo: dict, bias: dict) -> list[str]:
    p, f = memo["pixels"], memo["features"]
    lines = [
        (f"Possible copies of training images: {p['possible_copies']} of {memo['n_samples']} samples in pixels "
         f"({_pct(p['possible_copy_share'])}), {f['possible_copies']} in features "
         f"({_pct(f['possible_copy_share'])}); held-out real images flagged the same way: "
         f"{_pct(p['baseline_share'])} in pixels."),
    ]
    if p["median_ratio"] is not None and f["median_ratio"] is not None:
        lines.append(f"Median distance to the nearest training image, samples / held-out real images: "
                     f"{p['median_ratio']:.2f} in pixels, {f['median_ratio']:.2f} in features "
                     "(below 1 = nearer than real data).")
    if "agreement" in bias:
        weakest = f"weakest class {bias['worst_class']}; " if bias["worst_class"] is not None else ""
        lines.append(f"Requested class recognised in {_pct(bias['agreement'])} of samples; {weakest}produced vs "
                     f"requested class distribution: TV distance {bias['tv_distance']:.3f}.")
    elif "tv_distance" in bias:
        lines.append(f"Class distribution of samples vs training labels: TV distance {bias['tv_distance']:.3f} "
                     f"(held-out real images: {bias['heldout_tv_distance']:.3f}).")
    return lines
