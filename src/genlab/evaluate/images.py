"""Image metrics on features of a network genlab trains itself (Inception weights cannot be downloaded here).

- Feature network: a small CNN trained on the dataset's training split to classify its labels, or, for an
  unlabelled dataset (faces), to tell how an image was rotated (0/90/180/270 degrees; a standard self-supervised
  task). Features are its 128-d penultimate layer. It is cached per dataset (by a hash of the training images) in
  ``$GENLAB_CACHE`` (default ``~/.cache/genlab``); its held-out accuracy is reported, since every metric below is only
  as good as these features.
- FID: Fréchet distance between Gaussians fitted to real and generated features (Heusel et al. 2017). 0 = same.
- KID: unbiased squared MMD with the cubic polynomial kernel (Binkowski et al. 2018), averaged over subsets;
  unbiased, so it can be slightly negative for identical distributions.
- Precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020), with k = 5 nearest
  neighbours: precision = share of generated samples inside the real manifold (fidelity), recall = share of real
  samples inside the generated manifold (diversity); density is a count-based precision that is not fooled by
  outliers (about 1 when the distributions match), coverage the share of real neighbourhoods that hold a sample.
- Label agreement (conditional models): how often the feature network's classifier labels a sample as the class
  it was asked for.

``image_report`` puts every figure beside a floor (the same family with random weights) and a ceiling (real
training images, scored the same way as generated ones against the held-out split).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import linalg

from genlab.data.images import to_unit
from genlab.files import cache_dir
from genlab.progress import task

FEATURE_VERSION = 1  # bump when the feature network or its training changes: old caches are then ignored


# ---------------------------------------------------------------------------------------------------------------
# metrics as pure functions of feature matrices (N, D)


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    # Tr sqrt(S1 S2) = sum of sqrt(eigenvalues of S1^1/2 S2 S1^1/2), a symmetric matrix: stable where sqrtm is not
    w, v = linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def kid(real: np.ndarray, fake: np.ndarray, *, subsets: int = 10, subset_size: int = 500, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(real), len(fake))
    d = real.shape[1]
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        mmd = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(mmd - 2 * kxy.mean())
    return float(np.mean(values))


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    d = _dist(x, x)
    return np.partition(d, k, axis=1)[:, k]  # index 0 is the point itself


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0))


def prdc(real: np.ndarray, fake: np.ndarray, *, k: int = 5) -> dict[str, float]:
    real_r, fake_r = _kth_radius(real, k), _kth_radius(fake, k)
    d = _dist(real, fake)  # (N_real, N_fake)
    inside_real = d <= real_r[:, None]  # fake j inside real i's ball
    return {
        "precision": float(inside_real.any(0).mean()),
        "recall": float((d <= fake_r[None, :]).any(1).mean()),
        "density": float(inside_real.sum(0).mean() / k),
        "coverage": float((d.min(1) <= real_r).mean()),
    }


# ---------------------------------------------------------------------------------------------------------------
# the feature network


class FeatureNet(nn.Module):
    """Three conv layers, global pooling, a 128-d feature layer and a classifier head."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(512, 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        return self.head(self.trunk(x))

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch: int = 500) -> np.ndarray:
        self.eval()
        return torch.cat([self.trunk(x[i : i + batch]) for i in range(0, len(x), batch)]).numpy().astype(np.float64)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
        self.eval()
        return torch.cat([self(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


def _rotations(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(x, k)])


def feature_net(data, *, epochs: int = 8, seed: int = 0) -> tuple[FeatureNet, float, str]:
    """The dataset's feature network (trained once, then cached), its held-out accuracy and its task."""
    from safetensors.torch import load_file, save_file

    from genlab.files import atomic_write

    labelled = data.num_classes > 0
    task_name = "classes" if labelled else "rotation"
    xtr, xva = data.x["train"], data.x["val"]
    digest = hashlib.sha256(xtr.numpy().tobytes() + str((FEATURE_VERSION, task_name, tuple(xtr.shape))).encode())
    path = cache_dir() / f"features-{digest.hexdigest()[:20]}.safetensors"
    net = FeatureNet(xtr.shape[1], data.num_classes if labelled else 4)
    if path.is_file():
        try:
            tensors = load_file(str(path))
            acc = float(tensors.pop("_accuracy"))
            net.load_state_dict(tensors)
            return net.eval(), acc, task_name
        except Exception:  # a damaged cache is rebuilt, never trusted
            path.unlink(missing_ok=True)
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet(xtr.shape[1], data.num_classes if labelled else 4)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)

    def targets(x, y, gen):
        if labelled:
            return x, y
        k = torch.randint(4, (len(x),), generator=gen)
        return _rotations(x, k), k

    net.train()
    with task(f"feature network ({task_name}, once per dataset)", total=epochs) as advance:
        for _ in range(epochs):
            order = torch.randperm(len(xtr), generator=g)
            for i in range(0, len(xtr), 64):
                idx = order[i : i + 64]
                x, y = targets(xtr[idx], data.y["train"][idx], g)
                x = x + 0.05 * torch.randn(x.shape, generator=g)  # light noise: features robust to small artefacts
                loss = F.cross_entropy(net(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            advance()
    xv, yv = targets(xva, data.y["val"], torch.Generator().manual_seed(seed + 1))
    acc = float((net.predict(xv) == yv).float().mean())
    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    tensors["_accuracy"] = torch.tensor(acc)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
    return net.eval(), acc, task_name


# ---------------------------------------------------------------------------------------------------------------
# the report


def score(net: FeatureNet, real_feats: np.ndarray, images: torch.Tensor, *, seed: int = 0) -> dict[str, float]:
    """FID, KID and PRDC of ``images`` (float, [-1, 1]) against the real features."""
    feats = net.features(images)
    return {"fid": fid(real_feats, feats), "kid": kid(real_feats, feats, seed=seed), **prdc(real_feats, feats)}


def _requested_labels(n: int, classes: int) -> np.ndarray:
    return np.arange(n) % classes


def image_report(family, data, *, n: int = 1000, seed: int = 0, floor: bool = True) -> dict[str, Any]:
    """Score ``n`` samples of ``family`` against the held-out split, beside a random-init floor and a real ceiling."""
    net, accuracy, feature_task = feature_net(data)
    real_feats = net.features(data.x["val"])
    conditional = getattr(family, "num_classes_", 0) > 0

    def judge(model) -> dict[str, float]:
        images = to_unit(model.sample(n, seed=seed))
        out = score(net, real_feats, images, seed=seed)
        if conditional:
            wanted = torch.from_numpy(_requested_labels(n, family.num_classes_))
            out["label_agreement"] = float((net.predict(images) == wanted).float().mean())
        return out

    with task(f"scoring {n} samples: the model, real data, random weights", total=3 if floor else 2) as advance:
        report: dict[str, Any] = {"n_samples": n, "n_real": len(real_feats), "feature_net_task": feature_task,
                                  "feature_net_accuracy": accuracy, **judge(family)}
        advance()
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(data.x["train"]), generator=g)[:n]
        ceiling = score(net, real_feats, data.x["train"][idx], seed=seed)
        if conditional:
            ceiling["label_agreement"] = float((net.predict(data.x["train"][idx]) == data.y["train"][idx]).float()
                                               .mean())
        report["ceiling"] = ceiling
        advance()
        if floor:
            random_model = type(family)(family.config)
            random_model.build(data, seed=seed + 12345)
            report["floor"] = judge(random_model)
            advance()
    return report
